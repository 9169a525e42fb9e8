"""Dataset manifests (JSON), installed as the package `pybench.manifests`.

pyproject.toml maps `pybench.manifests` to this folder; read the files with
`importlib.resources.files("pybench.manifests")`, never by a path relative to the source tree.
"""

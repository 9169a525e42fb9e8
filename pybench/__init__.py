"""pybench: train the same models on the same data in PyTorch, JAX and Knet.jl, and compare.

The package is organised by responsibility: `datasets` hands every framework identical arrays,
`models` states each architecture once as data (shapes, names, canonical initial weights, FLOPs),
`backends` holds one module per framework behind one contract, `training` and `timing` run and
time every backend the same way, `compare`/`parity` orchestrate, and `report` reads stored results.
"""

__version__ = "0.1.0"

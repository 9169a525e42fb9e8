"""The dataset manifests ship inside the package (`pybench.manifests`, a link to the top-level
datasets/), both from the source tree and from a plain (non-editable) install; the wheel builds
without a setuptools warning."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_manifest_readable_as_package_resource():
    manifest = json.loads(resources.files("pybench.manifests").joinpath("mnist.json").read_text())
    assert set(manifest["files"]) == {"train_images", "train_labels", "test_images", "test_labels"}
    assert all(len(entry["sha256"]) == 64 for entry in manifest["files"].values())


def test_every_subpackage_is_listed_in_pyproject():
    # pyproject lists packages explicitly (a mapped package defeats packages.find): a new
    # sub-package that is not listed would be missing from installs.
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    listed = set(tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(REPO_ROOT).parts) for p in (REPO_ROOT / "pybench").rglob("__init__.py")}
    assert on_disk | {"pybench.manifests"} <= listed, sorted(on_disk - listed)


def test_plain_install_ships_the_manifests(tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--quiet",
                    str(REPO_ROOT), "--target", str(target)], check=True, capture_output=True, timeout=600)
    assert (target / "pybench" / "manifests" / "mnist.json").is_file()
    code = ("import json, importlib.resources as r, pybench.datasets.mnist as m; "
            "print(m.__file__); print(m.read_manifest()['files']['train_images']['file'])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(target)}, check=True)
    module_file, train_file = result.stdout.split()
    assert module_file.startswith(str(target)) and train_file == "train-images-idx3-ubyte.gz"


def test_the_wheel_builds_without_a_setuptools_warning(tmp_path):
    """`pip wheel -v` of the project: no deprecated `license` table, no package data outside a
    listed package (setuptools' warnings, which become errors on their deadlines), the license
    and the report's template inside the wheel."""
    import zipfile

    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # its own warning, not ours
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
                           "-w", str(tmp_path), str(REPO_ROOT)], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    output = done.stdout + done.stderr
    warnings = [line for line in output.splitlines()
                if any(sign in line for sign in ("Warning", "warning:", "deprecated", "absent from"))
                and "Location 'file:" not in line]  # pip's note on this machine's local indexes
    assert warnings == []
    (wheel,) = tmp_path.glob("pybench-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "pybench/report/templates/report.html.j2" in names
    assert any(name.endswith("licenses/LICENSE") for name in names)

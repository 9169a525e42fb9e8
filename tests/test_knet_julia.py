"""KnetModels' own Julia tests, run for real where a Julia executable exists.

Writes a parity .npz (canonical weights converted by knet_layout, a batch, PyTorch's logits and
loss) and runs `julia --project=julia/KnetModels julia/KnetModels/test/runtests.jl` with
KNETMODELS_PARITY_NPZ pointing at it. Without Julia (as on the machine this was written on) the
test is skipped with the reason. The Julia project must be instantiated first (README, "Julia and Knet").
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import knet_reference
from pybench import models
from pybench.backends import knet_layout

ROOT = Path(__file__).resolve().parent.parent
PARITY_MODELS = [("lenet5", (1, 28, 28), 10), ("resnet8", (3, 16, 16), 10)]


def julia_executable() -> str | None:
    return os.environ.get("PYTHON_JULIAPKG_EXE") or shutil.which("julia")


def parity_arrays(model, in_shape, classes, batch=8, seed=0) -> dict[str, np.ndarray]:
    """One model's entries of the parity file, keys as julia/KnetModels/test/runtests.jl reads."""
    import torch
    params, buffers = models.init_weights(model, in_shape, classes, seed)
    desc = models.describe(model, in_shape, classes)
    rng = np.random.default_rng(seed + 1)
    images = rng.normal(size=(batch, *in_shape)).astype(np.float32)
    labels = rng.integers(0, classes, batch)
    logits_train = knet_reference.torch_forward(desc, params, buffers, images, training=True)
    loss = torch.nn.functional.cross_entropy(torch.from_numpy(logits_train),
                                             torch.from_numpy(labels)).numpy()
    out = {f"{model}/param/{k}": v for k, v in knet_layout.weights_to_knet(params).items()}
    out.update({f"{model}/buffer/{k}": v
                for k, v in knet_layout.weights_to_knet(buffers).items()})
    out[f"{model}/images"] = knet_layout.images_to_knet(images)
    out[f"{model}/labels"] = knet_layout.labels_to_knet(labels)
    out[f"{model}/block_strides"] = np.array([b["stride"] for b in desc.get("blocks", [])],
                                             dtype=np.int64)
    # (classes, N): Knet's orientation, so Julia compares without transposing.
    out[f"{model}/logits_eval"] = np.ascontiguousarray(
        knet_reference.torch_forward(desc, params, buffers, images).T)
    out[f"{model}/logits_train"] = np.ascontiguousarray(logits_train.T)
    out[f"{model}/loss_train"] = np.asarray(loss, dtype=np.float32)
    return out


def write_parity_npz(path: Path) -> None:
    arrays = {}
    for case in PARITY_MODELS:
        arrays.update(parity_arrays(*case))
    np.savez(path, **arrays)


def test_parity_file_round_trips(tmp_path):
    """The file Julia reads holds Knet-layout arrays with the shapes runtests.jl expects."""
    path = tmp_path / "parity.npz"
    write_parity_npz(path)
    with np.load(path) as f:
        assert f["lenet5/param/conv1.weight"].shape == (5, 5, 1, 6)
        assert f["resnet8/images"].shape == (16, 16, 3, 8)
        assert f["resnet8/logits_eval"].shape == (10, 8)
        assert f["lenet5/labels"].min() >= 1
        np.testing.assert_array_equal(f["resnet8/block_strides"], [1, 2, 2])


def test_knet_models_runtests_in_julia(tmp_path):
    julia = julia_executable()
    if julia is None:
        pytest.skip("no Julia executable: neither PYTHON_JULIAPKG_EXE nor `julia` on PATH "
                    "(Julia 1.9 is needed for Knet 1.4.10; see the README, 'Julia and Knet')")
    npz = tmp_path / "parity.npz"
    write_parity_npz(npz)
    project = ROOT / "julia" / "KnetModels"
    env = {**os.environ, "KNETMODELS_PARITY_NPZ": str(npz)}
    # Pkg.test builds a sandbox with the [extras] (Test, NPZ) and runs test/runtests.jl.
    cmd = [julia, f"--project={project}", "-e", "using Pkg; Pkg.instantiate(); Pkg.test()"]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    assert out.returncode == 0, f"{' '.join(cmd)} failed:\n{out.stdout[-5000:]}\n{out.stderr[-5000:]}"

"""KnetModels' own Julia tests against real Knet, with PyTorch's reference written from Python.

For lenet5, resnet8, resnet20 and resnet18 (small 16x16 input for the ResNets) this writes a
parity .npz (keys: julia/KnetModels/test/parity.jl) holding the canonical weights in Knet layout,
PyTorch's parameter shapes and count, a batch with PyTorch's float32 eval/train logits and loss,
and PyTorch's float64 ten-step trajectories (SGD with momentum; Adam with weight decay) on the
same batches: the loss at every step and the final weights and BatchNorm statistics. PyTorch's
side is pybench's own torch backend, the reference every comparison uses. Then it runs
julia/KnetModels/test/runtests.jl, which rebuilds everything through the functions the Python
backend calls, checks every figure, proves each check can fail, and writes its figures to a
report file that this test asserts again and prints at the end of the session.

Finding Julia: `PYTHON_JULIAPKG_EXE` (else `julia` on PATH). With `KNETMODELS_JULIA_PROJECT` set
(a Julia environment holding KnetModels, Knet, CUDA, NPZ, Test and Random, as `.ci/run` makes
from ../shared/julia) the tests run there directly; otherwise through `Pkg.test()` in
julia/KnetModels. Without Julia the test skips with the reason, except in CI, where it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from needs import missing

from pybench import models
from pybench.backends import get_backend, knet_layout
from pybench.backends.contract import ModelInput, OptimizerConfig

ROOT = Path(__file__).resolve().parent.parent
KNET_MODELS = ROOT / "julia" / "KnetModels"
PARITY_MODELS = [("lenet5", (1, 28, 28), 10), ("resnet8", (3, 16, 16), 10),
                 ("resnet20", (3, 16, 16), 10), ("resnet18", (3, 16, 16), 10)]
FORWARD_BATCH = 8
TRAJ_BATCH, TRAJ_STEPS = 8, 10
TRAJ_OPTIMIZERS = {"sgd": OptimizerConfig("sgd", lr=0.01, momentum=0.9),
                   "adam": OptimizerConfig("adam", lr=1e-3, weight_decay=5e-4)}
# The checks parity.jl must report for every model (BatchNorm statistics only where there are any).
EXPECTED_CHECKS = {"shapes: mismatched arrays", "parameter count: |knet - torch|",
                   "float32 eval logits: max abs diff", "float32 train logits: max abs diff",
                   "float32 loss: rel diff"} | {
    f"float64 {opt}: {what}" for opt in TRAJ_OPTIMIZERS
    for what in ("max rel loss diff", "max abs weight diff")}


def julia_executable() -> str | None:
    return os.environ.get("PYTHON_JULIAPKG_EXE") or shutil.which("julia")


def knet(arrays: dict, prefix: str) -> dict[str, np.ndarray]:
    return {f"{prefix}/{k}": v for k, v in knet_layout.weights_to_knet(arrays).items()}


def torch_trajectory(torch_backend, model_input: ModelInput, optimizer: OptimizerConfig,
                     images, labels, order):
    """PyTorch's losses and final (params, buffers) over TRAJ_STEPS steps, through pybench's
    torch backend exactly as `pybench parity` runs it."""
    state = torch_backend.init_state(model_input, optimizer)
    data = torch_backend.put_data(images, labels)
    device_order = torch_backend.put_order(order, np.full(TRAJ_STEPS, optimizer.lr))
    losses = []
    for step in range(TRAJ_STEPS):
        state, loss = torch_backend.train_step(state, data, device_order, step, TRAJ_BATCH)
        losses.append(torch_backend.to_float(loss))
    return np.asarray(losses), *torch_backend.export_weights(state)


def parity_arrays(model: str, in_shape, classes: int, seed: int = 0) -> dict[str, np.ndarray]:
    """One model's entries of the parity file (keys: julia/KnetModels/test/parity.jl)."""
    torch_backend = get_backend("torch", "cpu")
    params, buffers = models.init_weights(model, in_shape, classes, seed)
    desc = models.describe(model, in_shape, classes)
    rng = np.random.default_rng(seed + 1)
    out = {**knet(params, f"{model}/param"), **knet(buffers, f"{model}/buffer")}
    if desc.get("blocks"):  # NPZ.jl cannot read a zero-length member: leave it out for LeNet-5
        out[f"{model}/block_strides"] = np.array([b["stride"] for b in desc["blocks"]], np.int64)
    if desc.get("ops"):  # a plain CNN (LeNet-5): its op list, the text's bytes (NPZ.jl reads no strings)
        out[f"{model}/ops"] = np.frombuffer(desc["ops"].encode(), np.uint8)

    state = torch_backend.init_state(ModelInput(model, in_shape, classes, params, buffers),
                                     OptimizerConfig())
    torch_params, torch_buffers = torch_backend.export_weights(state)
    out.update({f"{model}/shape/{k}": np.array(knet_layout.weight_to_knet(v).shape, np.int64)
                for k, v in {**torch_params, **torch_buffers}.items()})
    out[f"{model}/n_params"] = np.array([sum(v.size for v in torch_params.values())], np.int64)

    images = rng.normal(size=(FORWARD_BATCH, *in_shape)).astype(np.float32)
    labels = rng.integers(0, classes, FORWARD_BATCH)
    logits_train = torch_backend.forward(state, images, train=True)
    out[f"{model}/images"] = knet_layout.images_to_knet(images)
    out[f"{model}/labels"] = knet_layout.labels_to_knet(labels)
    # (classes, N): Knet's orientation, so Julia compares without transposing.
    out[f"{model}/logits_eval"] = np.ascontiguousarray(
        torch_backend.forward(state, images, train=False).T)
    out[f"{model}/logits_train"] = np.ascontiguousarray(logits_train.T)
    out[f"{model}/loss_train"] = np.array([torch_loss(logits_train, labels)], np.float32)

    n = TRAJ_BATCH * TRAJ_STEPS
    params64 = {k: v.astype(np.float64) for k, v in params.items()}
    buffers64 = {k: v.astype(np.float64) for k, v in buffers.items()}
    traj_images = rng.normal(size=(n, *in_shape))
    traj_labels = rng.integers(0, classes, n)
    order = rng.permutation(n)
    out.update({**knet(params64, f"{model}/traj/param"), **knet(buffers64, f"{model}/traj/buffer"),
                f"{model}/traj/images": knet_layout.images_to_knet(traj_images),
                f"{model}/traj/labels": knet_layout.labels_to_knet(traj_labels),
                f"{model}/traj/order": knet_layout.order_to_knet(order),
                f"{model}/traj/batch_size": np.array([TRAJ_BATCH], np.int64),
                f"{model}/traj/steps": np.array([TRAJ_STEPS], np.int64)})
    for name, optimizer in TRAJ_OPTIMIZERS.items():
        losses, final_params, final_buffers = torch_trajectory(
            torch_backend, ModelInput(model, in_shape, classes, params64, buffers64), optimizer,
            traj_images, traj_labels, order)
        prefix = f"{model}/traj/{name}"
        out[f"{prefix}/hyper"] = np.array([optimizer.lr, optimizer.momentum,
                                           optimizer.weight_decay, *optimizer.betas,
                                           optimizer.eps], np.float64)
        out[f"{prefix}/losses"] = losses
        out.update({**knet(final_params, f"{prefix}/final/param"),
                    **knet(final_buffers, f"{prefix}/final/buffer")})
    return out


def torch_loss(logits: np.ndarray, labels: np.ndarray) -> float:
    import torch
    return float(torch.nn.functional.cross_entropy(torch.from_numpy(logits),
                                                   torch.from_numpy(labels)))


def write_parity_npz(path: Path, cases=PARITY_MODELS) -> None:
    arrays = {}
    for case in cases:
        arrays.update(parity_arrays(*case))
    empty = [k for k, v in arrays.items() if v.size == 0]
    assert not empty, f"NPZ.jl cannot read zero-length members: {empty}"
    np.savez(path, **arrays)


def read_report(path: Path) -> list[dict]:
    rows = []
    for line in path.read_text().splitlines():
        model, check, figure, tolerance, ok = line.split("\t")
        rows.append({"model": model, "check": check, "figure": float(figure),
                     "tolerance": float(tolerance), "ok": ok == "true"})
    return rows


def test_parity_file_holds_what_julia_reads(tmp_path):
    """The file Julia reads: Knet-layout arrays with the shapes parity.jl expects, no empty
    member (NPZ.jl's EOFError), 1-based labels and orders, PyTorch's trajectories."""
    path = tmp_path / "parity.npz"
    write_parity_npz(path, [PARITY_MODELS[0], PARITY_MODELS[1]])
    with np.load(path) as f:
        assert all(f[k].size > 0 for k in f.files)
        assert f["lenet5/param/conv1.weight"].shape == (5, 5, 1, 6)
        assert "lenet5/block_strides" not in f.files
        np.testing.assert_array_equal(f["resnet8/block_strides"], [1, 2, 2])
        assert f["resnet8/images"].shape == (16, 16, 3, FORWARD_BATCH)
        assert f["resnet8/logits_eval"].shape == (10, FORWARD_BATCH)
        assert f["lenet5/labels"].min() >= 1 and f["lenet5/traj/order"].min() == 1
        assert f["lenet5/n_params"][0] == 61706
        np.testing.assert_array_equal(f["lenet5/shape/conv1.weight"], [5, 5, 1, 6])
        assert f["resnet8/traj/param/conv1.weight"].dtype == np.float64
        for opt in TRAJ_OPTIMIZERS:
            losses = f[f"resnet8/traj/{opt}/losses"]
            assert losses.shape == (TRAJ_STEPS,) and np.all(np.isfinite(losses))
            assert f"resnet8/traj/{opt}/final/buffer/bn1.running_var" in f.files
        # Weight decay reaches the reference: Adam's hyperparameters carry it.
        assert f["lenet5/traj/adam/hyper"][2] == 5e-4


def julia_command(julia: str) -> list[str]:
    project = os.environ.get("KNETMODELS_JULIA_PROJECT")
    if project:
        return [julia, "--startup-file=no", f"--project={project}",
                str(KNET_MODELS / "test" / "runtests.jl")]
    # Pkg.test builds a sandbox with the [extras] (Test, NPZ, Random) and runs test/runtests.jl.
    return [julia, "--startup-file=no", f"--project={KNET_MODELS}", "-e",
            "using Pkg; Pkg.instantiate(); Pkg.test()"]


@pytest.mark.slow
def test_knet_models_pass_against_real_knet_with_pytorch_parity(tmp_path, record_property):
    julia = julia_executable()
    if julia is None:
        missing("no Julia executable: neither PYTHON_JULIAPKG_EXE nor `julia` on PATH "
                "(see docs/julia.md)")
    npz, report = tmp_path / "parity.npz", tmp_path / "figures.tsv"
    write_parity_npz(npz)
    env = {**os.environ, "KNETMODELS_PARITY_NPZ": str(npz), "KNETMODELS_PARITY_REPORT": str(report)}
    cmd = julia_command(julia)
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    assert out.returncode == 0, f"{' '.join(cmd)} failed:\n{out.stdout[-6000:]}\n{out.stderr[-4000:]}"
    rows = read_report(report)
    record_property("knet_parity", rows)  # printed by conftest's terminal summary (from xdist workers too)
    for model, _, _ in PARITY_MODELS:
        checks = {r["check"]: r for r in rows if r["model"] == model}
        expected = set(EXPECTED_CHECKS)
        if model != "lenet5":
            expected |= {f"float64 {opt}: max abs running-stat diff" for opt in TRAJ_OPTIMIZERS}
        assert expected <= set(checks), (model, expected - set(checks))
        for row in checks.values():
            assert row["ok"] and row["figure"] <= row["tolerance"], row

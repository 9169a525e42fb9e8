"""On an NVIDIA GPU: the comparison runs on it, every framework in float32 without TF32, pinned to
one GPU, with device memory recorded, and parity holds there. Marked `gpu`: on a machine without
one they skip and say why (conftest). scripts/gpu-check runs the wider check the day a GPU
machine is available; these are the part pytest owns."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.gpu, pytest.mark.slow]


def test_a_cuda_comparison_runs_on_the_gpu_with_the_same_arithmetic(run_cli, tmp_path, data_dir):
    out = tmp_path / "run"
    result = run_cli("compare", "mnist", "--frameworks", "torch,jax", "--models", "lenet5",
                     "--device", "cuda", "--gpu", "0", "--max-steps", "200", "--out", out,
                     timeout=900)
    assert result.returncode == 0, result.stderr
    doc = json.loads((out / "results.json").read_text())
    runs = {run["framework"]: run for run in doc["runs"]}
    for name in ("torch", "jax"):
        run = runs[name]
        assert run["status"] == "ok", run
        assert run["device"] == "cuda" and run["gpu"] == 0
        assert run["tf32_override"] == "0" and run["memory_kind"].startswith("device")
        assert run["peak_memory_bytes"] > 0 and run["parity"]["ok"]
    precision = runs["torch"]["precision"]
    assert not precision["matmul_allow_tf32"] and not precision["cudnn_allow_tf32"]
    assert "HIGHEST" in runs["jax"]["precision"]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_parity_holds_on_the_gpu(run_cli, data_dir, tmp_path, dtype):
    result = run_cli("parity", "--frameworks", "torch,jax", "--models", "lenet5,resnet8",
                     "--device", "cuda", "--dtype", dtype, "--out", tmp_path, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr

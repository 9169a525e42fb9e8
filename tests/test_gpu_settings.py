"""What a CUDA worker runs with, checked on the CPU: the same float32 arithmetic for every
framework (TF32 off through the driver's override, which Knet has no setting for) and one GPU
pinned for all of them. The GPU itself is not exercised here (no GPU on the CI machine)."""

from __future__ import annotations

import pytest

from pybench.errors import PybenchError
from pybench.run.checks import check_gpu
from pybench.run.jobs import gpu_settings
from pybench.run.worker import cuda_env, worker_env


def test_a_cuda_worker_gets_tf32_off_and_one_gpu(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    env = worker_env("cuda", 1)
    assert env["NVIDIA_TF32_OVERRIDE"] == "0" and env["CUDA_VISIBLE_DEVICES"] == "1"
    # --gpu 1 is nvidia-smi's GPU 1 (PCI bus order), not CUDA's second-fastest.
    assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert worker_env("cuda", None)["CUDA_VISIBLE_DEVICES"] == "0"


def test_a_cpu_worker_is_left_alone(monkeypatch):
    monkeypatch.delenv("NVIDIA_TF32_OVERRIDE", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    env = worker_env("cpu", 1)
    assert "NVIDIA_TF32_OVERRIDE" not in env and "CUDA_VISIBLE_DEVICES" not in env


def test_gpu_indexes_into_the_gpus_the_user_made_visible():
    assert cuda_env(1, "4,6")["CUDA_VISIBLE_DEVICES"] == "6"
    assert cuda_env(0, "GPU-8f1c")["CUDA_VISIBLE_DEVICES"] == "GPU-8f1c"  # UUIDs work too
    with pytest.raises(PybenchError, match=r"--gpu 2: CUDA_VISIBLE_DEVICES=4,6 leaves 2 GPUs"):
        cuda_env(2, "4,6")


def test_a_gpu_the_machine_does_not_have_is_one_line(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr("pybench.run.checks.nvidia_gpus", lambda: (["NVIDIA A100-SXM4-40GB"], "550.54"))
    with pytest.raises(PybenchError, match=r"--gpu 1: this machine has 1 NVIDIA GPU \(0-0: NVIDIA A100"):
        check_gpu("cuda", 1)
    check_gpu("cuda", 0)
    check_gpu("cpu", 5)  # --gpu means nothing on the CPU


def test_the_run_records_what_it_ran_with(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    monkeypatch.setenv("NVIDIA_TF32_OVERRIDE", "0")
    assert gpu_settings({"device": "cuda", "gpu": 3}) == {
        "gpu": 3, "cuda_visible_devices": "3", "tf32_override": "0"}
    assert gpu_settings({"device": "cpu"}) == {}


def test_a_negative_gpu_is_a_one_line_error(cli_error):
    cli_error("compare", "digits", "--frameworks", "torch", "--gpu", "-1",
              fragments=("'-1' must not be negative",))


# --- `pybench list`'s GPU line: each framework's CUDA build and whether it can use the GPU ---

def test_torch_names_its_build_and_why_it_cannot_use_a_gpu(monkeypatch):
    import torch

    from pybench.backends import torch_backend
    from pybench.backends.torch_backend import TorchBackend

    monkeypatch.setattr(torch.version, "cuda", None)
    assert TorchBackend.gpu_support().startswith("CPU-only build")
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(TorchBackend, "cuda_usable", classmethod(lambda cls: False))
    monkeypatch.setattr(torch_backend, "machine_has_cuda_gpu", lambda: False)
    assert TorchBackend.gpu_support() == "CUDA 13.0 build, no NVIDIA GPU here"
    # A GPU and a driver too old for the wheel: the case where torch would silently be CPU-only.
    monkeypatch.setattr(torch_backend, "machine_has_cuda_gpu", lambda: True)
    monkeypatch.setattr(torch_backend, "nvidia_gpus", lambda: (["NVIDIA A100"], "525.60"))
    line = TorchBackend.gpu_support()
    assert "cannot use this GPU (driver 525.60)" in line and "README, Install" in line


def test_jax_reads_its_cuda_plugin_without_starting_xla(monkeypatch):
    from pybench.backends import jax_backend
    from pybench.backends.jax_backend import JaxBackend

    monkeypatch.setattr(jax_backend, "installed_version", lambda name: None)
    assert "pip install -U 'jax[cuda12]'" in JaxBackend.gpu_support()
    monkeypatch.setattr(jax_backend, "installed_version",
                        lambda name: "0.10.2" if name == "jax-cuda12-plugin" else None)
    monkeypatch.setattr(jax_backend, "machine_has_cuda_gpu", lambda: False)
    assert JaxBackend.gpu_support() == "CUDA build (jax-cuda12-plugin 0.10.2), no NVIDIA GPU here"


def test_list_shows_a_gpu_line_for_each_available_framework(run_cli):
    from pybench.backends import availability

    lines = run_cli("list").stdout.splitlines()
    for name in ("torch", "jax", "knet"):
        at = next(i for i, line in enumerate(lines) if line.strip().startswith(name))
        if availability(name).ok:
            assert lines[at + 1].strip().startswith("GPU: "), lines[at:at + 2]

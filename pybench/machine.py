"""Facts about this machine for the results record, found without importing a framework."""

from __future__ import annotations

import importlib.metadata
import platform
import shutil
import subprocess
from pathlib import Path

import psutil


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def nvidia_gpus() -> tuple[list[str], str | None]:
    """GPU names and the driver version from nvidia-smi; ([], None) without an NVIDIA GPU."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return [], None
    try:
        out = subprocess.run([smi, "--query-gpu=name,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return [], None
    rows = [line.split(",") for line in out.strip().splitlines() if line.strip()]
    return [r[0].strip() for r in rows], (rows[0][1].strip() if rows else None)


def machine_info() -> dict:
    gpus, driver = nvidia_gpus()
    return {
        "cpu": cpu_model(),
        "cores": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "gpus": gpus,
        "cuda_driver": driver,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def machine_has_cuda_gpu() -> bool:
    """Whether an NVIDIA GPU with a driver is present, asked without importing a framework."""
    return bool(nvidia_gpus()[0]) or Path("/proc/driver/nvidia/version").exists()


# Installed distributions that make up each framework, read from package metadata (nothing is
# imported, so no device starts).
FRAMEWORK_DISTRIBUTIONS = {"torch": ("torch", "torchvision"), "jax": ("jax", "jaxlib", "optax"),
                           "knet": ("juliacall",)}


def framework_versions() -> dict[str, dict[str, str | None]]:
    """Per framework, the version of each of its distributions (None when not installed), and
    for knet also what the backend's availability check found (the Julia and Knet versions)."""
    from pybench.backends import availability

    versions: dict[str, dict[str, str | None]] = {}
    for framework, distributions in FRAMEWORK_DISTRIBUTIONS.items():
        versions[framework] = {}
        for name in distributions:
            try:
                versions[framework][name] = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                versions[framework][name] = None
    knet = availability("knet")
    versions["knet"]["backend"] = knet.version if knet.ok else f"unavailable: {knet.reason}"
    return versions

"""Facts about this machine for the results record, found without importing a framework."""

from __future__ import annotations

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


# --- How busy the machine was while a run trained -------------------------------------------

# A run's step times are marked as measured on a busy machine when, while it trained, other
# processes used more than a quarter of a core on average, or the hypervisor stole more than 5%
# of the machine's CPU time. Either is enough to move a step time by more than the differences
# pybench reports: one other process keeping a core busy makes a framework's threads wait for
# the preempted one at every parallel region (the measurement: docs/statistics.md).
BUSY_OTHER_CORES = 0.25
BUSY_STEAL_SHARE = 0.05
_BUSY_FIELDS = ("user", "nice", "system", "irq", "softirq")  # guest time is counted in user


def load_snapshot() -> dict:
    """CPU counters now: the machine's (all processes) and this process's own, with a clock."""
    import time

    own = psutil.Process().cpu_times()
    return {"t": time.monotonic(), "machine": psutil.cpu_times()._asdict(),
            "own_s": own.user + own.system + own.children_user + own.children_system,
            "loadavg": psutil.getloadavg()[0]}


def machine_load(before: dict, after: dict) -> dict:
    """How busy the machine was between two snapshots, apart from this process: other
    processes' CPU time (in cores, on average), the share stolen by the hypervisor (where the
    kernel reports it), the 1-minute load average at both ends, and the verdict `busy`."""
    wall = max(after["t"] - before["t"], 1e-9)
    delta = {k: after["machine"].get(k, 0.0) - before["machine"].get(k, 0.0)
             for k in after["machine"]}
    busy_s = sum(delta.get(k, 0.0) for k in _BUSY_FIELDS)
    other_s = max(0.0, busy_s - (after["own_s"] - before["own_s"]))
    total_s = sum(v for k, v in delta.items() if k not in ("guest", "guest_nice"))
    steal = delta.get("steal", 0.0) / total_s if total_s > 0 else 0.0
    other_cores = other_s / wall
    reasons = []
    if other_cores > BUSY_OTHER_CORES:
        reasons.append(f"other processes used {other_cores:.2f} cores on average")
    if steal > BUSY_STEAL_SHARE:
        reasons.append(f"the hypervisor stole {steal:.0%} of the CPU time")
    return {"wall_s": wall, "other_cpu_s": other_s, "other_cores": other_cores,
            "steal_share": steal if "steal" in delta else None,
            "loadavg_start": before["loadavg"], "loadavg_end": after["loadavg"],
            "busy": bool(reasons), "busy_reason": "; ".join(reasons) or None}

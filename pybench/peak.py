"""The machine's peak float32 rate, as each framework reaches it, and a run's share of it.

A report that says "torch: 12 ms per step" does not say whether 12 ms is good. This module
measures, once per machine, device and framework, the rate of a large float32 matrix product in
that framework (the best of a few, 2 n^3 floating-point operations each), and caches it beside the
dataset cache, so that each run can record `peak_flops_per_s` and the report can show how much of
it the training step used: training FLOPs per step (forward and backward, 3x the forward count of
`pybench.models.forward_flops`, times the batch) over the median step time. The report divides by
the highest rate any framework reached on the same device, the machine's peak as far as the
frameworks can tell (a framework whose own matrix product is slower, e.g. a Julia linked to a
single-threaded BLAS, must not look closer to the machine's limit for it). It is an upper bound
for what a convolution network can reach, not a promise: small layers never fill a machine.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path

SIZES = {"cpu": 1024, "cuda": 4096}  # n of the product: seconds on 2 CPU cores, ms on a GPU
REPEATS = 5
TRAINING_FLOPS_PER_FORWARD = 3  # the backward pass costs about twice the forward


def cache_path(framework: str, device: str, device_name: str) -> Path:
    from pybench.datasets.cache import cache_dir  # here: reports import this module, lightly

    key = hashlib.sha256(f"{framework}|{device}|{device_name}".encode()).hexdigest()[:16]
    return cache_dir(Path(".")) / "peak" / f"{framework}-{device}-{key}.json"


def machine_peak(backend, device_name: str) -> dict:
    """{"peak_flops_per_s", "peak_matmul_n", "peak_measured"}: from the cache, else measured."""
    path = cache_path(backend.name, backend.device, device_name)
    n = SIZES.get(backend.device, SIZES["cpu"])
    cached = read_cached_peak(path, n)
    if cached is not None:
        return {**cached, "peak_measured": "cached"}
    seconds = min(backend.matmul_seconds(n) for _ in range(REPEATS))
    peak = {"peak_flops_per_s": 2 * n ** 3 / seconds, "peak_matmul_n": n}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(peak))
    except OSError:  # a read-only cache only costs the measurement next time
        pass
    return {**peak, "peak_measured": "now"}


def read_cached_peak(path: Path, n: int) -> dict | None:
    """The cached peak if `path` holds a valid entry for a product of size `n`; None if there is
    none, and None with one warning line if the entry is damaged or foreign (it is then measured
    again and rewritten: a bad entry must never reach a run's record)."""
    try:
        text = path.read_text()
    except OSError:
        return None
    problem = None
    try:
        entry = json.loads(text)
    except ValueError:
        entry, problem = None, "not JSON"
    if problem is None:
        problem = peak_entry_problem(entry, n)
    if problem is None:
        return {"peak_flops_per_s": float(entry["peak_flops_per_s"]), "peak_matmul_n": n}
    print(f"pybench: warning: {path}: damaged peak-rate cache entry ({problem}); measuring again",
          file=sys.stderr)
    return None


def peak_entry_problem(entry, n: int) -> str | None:
    """What is wrong with a cached peak entry, or None."""
    if not isinstance(entry, dict):
        return f"a {type(entry).__name__}, not an object"
    rate, size = entry.get("peak_flops_per_s"), entry.get("peak_matmul_n")
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) \
            or rate <= 0:
        return f"peak_flops_per_s is {rate!r}, not a positive number"
    if size != n or isinstance(size, bool):
        return f"peak_matmul_n is {size!r}, not {n}"
    return None


def share_of_peak(run: dict, batch_size: int | None, peak: float | None = None) -> float | None:
    """The fraction of `peak` (default: the run's own `peak_flops_per_s`) a run's median
    training step reached (None if a figure is missing)."""
    peak = peak or run.get("peak_flops_per_s")
    flops = run.get("flops_per_image")
    median_ms = (run.get("step_time_ms") or {}).get("median")
    if not (peak and flops and median_ms and batch_size):
        return None
    return TRAINING_FLOPS_PER_FORWARD * flops * batch_size / (median_ms / 1e3) / peak

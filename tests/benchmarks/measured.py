"""Feeding pytest-benchmark times measured somewhere else.

Knet runs in a process of its own (juliacall must not share one with torch), so its steps are
timed inside that process and only the figures come back. pytest-benchmark has no public call
for recording durations it did not measure itself; `record_measured_times` uses the same two
internals its own `pedantic` uses (a Metadata from `_make_stats`, one `update` per round), so the
rounds, the table, `--benchmark-json`, `--benchmark-compare` and `--benchmark-compare-fail` all see
the worker's per-step times, and no inter-process communication is among them.
"""

from __future__ import annotations


def record_measured_times(benchmark, seconds: list[float], where: str) -> None:
    """Record `seconds` (one per round, one iteration each) as `benchmark`'s statistics."""
    if benchmark.disabled:  # --benchmark-disable: run the code, keep no statistics
        return
    if not seconds:
        raise ValueError(f"no times were measured {where}")
    benchmark._mode = f"times measured {where}"
    stats = benchmark._make_stats(1)
    for duration in seconds:
        stats.update(duration)

"""Judging a time or a speed ratio only where the machine was quiet while it was measured.

A benchmark prints its figure whatever happens; an assertion on it (a target time, a speed-up,
an overhead ratio) holds only when no other process held the cores while it was measured. Each
measurement is wrapped in `LoadWatch.measuring()`, which reads the machine's CPU counters before
and after it (pybench.machine's `machine_load`, the same reading that marks a run's step times
busy in its results); `judge` then asserts, or skips with the measured load as the reason: two
busy cores cannot give two processes' speed-up, and that is the machine's fault, not the code's.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import pytest

from pybench.machine import load_snapshot, machine_load

MIN_WINDOW_S = 1.0  # the shortest span a machine load is judged over


class LoadWatch:
    """The machine load during each measurement made under `measuring()`."""

    def __init__(self) -> None:
        self.loads: list[dict] = []

    @contextmanager
    def measuring(self):
        before = load_snapshot()
        try:
            yield
        finally:
            # A load averaged over a few milliseconds is one context switch: a measurement
            # shorter than MIN_WINDOW_S is watched until the window is that long, so that the
            # verdict is about the machine, not about a kernel thread waking once.
            rest = MIN_WINDOW_S - (time.monotonic() - before["t"])
            if rest > 0:
                time.sleep(rest)
            self.loads.append(machine_load(before, load_snapshot()))

    def busy_reason(self) -> str | None:
        return next((load["busy_reason"] for load in self.loads if load["busy"]), None)


def judge(watch: LoadWatch, passed: bool, figure: str) -> None:
    """Print `figure`; assert `passed` if every measurement ran on a quiet machine, else skip
    naming the load (a time measured beside other work decides nothing)."""
    print(f"\n{figure}")
    reason = watch.busy_reason()
    if reason is not None:
        pytest.skip(f"the machine was busy while measuring ({reason}): {figure} not judged")
    assert passed, figure

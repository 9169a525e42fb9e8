"""Timing, in one place: every backend's steps are clocked by the same code.

The clock synchronises the device before every read (`torch.cuda.synchronize`,
`block_until_ready`, `CUDA.synchronize()` behind each backend's `synchronize`), so an
asynchronous framework cannot look fast by returning before its work is done. One read per step:
a step's time runs from the end of the previous step to the end of this one, so nothing is lost
between reads and the harness pays for one synchronisation per step, as any honest loop must.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


class SyncClock:
    """`now()` waits for the device, then reads a monotonic clock (seconds)."""

    def __init__(self, synchronize: Callable[[], None]):
        self._synchronize = synchronize

    def now(self) -> float:
        self._synchronize()
        return time.perf_counter()


def step_time_stats(step_times_s: list[float]) -> dict:
    """Median, IQR, p90 and mean of steady-state step times, in milliseconds.

    The caller passes the steps after the first (compilation / warm-up), which is reported on its
    own. Percentiles use numpy's default (linear) interpolation.
    """
    ms = np.asarray(step_times_s, dtype=np.float64) * 1e3
    if ms.size == 0:
        return {"median": None, "iqr": None, "p90": None, "mean": None, "n": 0}
    q25, q50, q75, q90 = np.percentile(ms, [25, 50, 75, 90])
    return {"median": float(q50), "iqr": float(q75 - q25), "p90": float(q90),
            "mean": float(ms.mean()), "n": int(ms.size)}

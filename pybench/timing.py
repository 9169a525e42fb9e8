"""Timing, in one place: every backend's steps are clocked by the same code.

The clock synchronises the device before every read (`torch.cuda.synchronize`,
`block_until_ready`, `CUDA.synchronize()` behind each backend's `synchronize`), so an
asynchronous framework cannot look fast by returning before its work is done. One read per step:
a step's time runs from the end of the previous step to the end of this one, so nothing is lost
between reads and the harness pays for one synchronisation per step, as any honest loop must.

A synchronisation per step also removes the overlap real training has, where the host queues the
next steps while the device still works: on a fast GPU, small models at small batches then
measure how fast Python or Julia issues work. `StepTimer` can therefore time every other block of
steps as a whole, with one synchronisation at the block's end, for a throughput figure beside the
per-step times (on by default on CUDA, `BLOCK_STEPS_ON_CUDA`).
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


BLOCK_STEPS_ON_CUDA = 50  # steps per throughput block on a GPU (0 would turn blocks off)


class StepTimer:
    """A run's training clock. Each step is timed alone (one synchronisation per step), except,
    when `block` > 0, the odd-numbered blocks of `block` steps of every epoch (steps block..2
    block-1, 3 block..4 block-1, ...), each timed as a whole with one synchronisation at its end.
    `step_times` holds the steps timed alone, `block_times` the whole blocks (a block cut short
    by the epoch's end counts in the total but not as a block), `total` every step's time."""

    def __init__(self, clock: SyncClock, block: int = 0):
        self.clock, self.block = clock, block
        self.step_times: list[float] = []
        self.block_times: list[float] = []
        self.total = 0.0
        self._last = 0.0
        self._queued = 0  # steps of the current block so far

    def start(self) -> None:
        """(Re)start the clock: before an epoch's first step, and after anything that must stay
        out of the step times (an evaluation), which only happens when `step_done` said True."""
        self._last = self.clock.now()

    def in_block(self, step: int) -> bool:
        return self.block > 0 and (step // self.block) % 2 == 1

    def step_done(self, step: int, last_of_epoch: bool) -> bool:
        """Record the end of the epoch's `step` (0-based); True when the clock was read (the
        device is synchronised: a loss may be read, an evaluation may run)."""
        if self.in_block(step):
            self._queued += 1
            if (step + 1) % self.block and not last_of_epoch:
                return False  # inside a block: no synchronisation, the host runs ahead
            now = self.clock.now()
            if self._queued == self.block:
                self.block_times.append(now - self._last)
            self._queued = 0
        else:
            now = self.clock.now()
            self.step_times.append(now - self._last)
        self.total += now - self._last
        self._last = now
        return True

    def block_images_per_s(self, batch_size: int) -> float | None:
        """Images per second over the whole blocks (their median), None without blocks."""
        if not self.block_times:
            return None
        return self.block * batch_size / float(np.median(self.block_times))


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

"""Learning-rate schedules: the learning rate of every optimizer step, computed once in numpy.

The training loop asks `learning_rates` for the whole run before the first step and hands each
epoch's slice to the backend with the epoch order (`Backend.put_order`), so PyTorch, JAX and Knet
follow exactly the same curve: no framework's scheduler is used, and none can round, offset or
step it differently. Each schedule is PyTorch's definition, stepped once per optimizer step
(tests compare every value with torch.optim.lr_scheduler):

- constant: `lr` at every step.
- step: `lr * gamma ** k` after the k-th milestone (MultiStepLR); milestones are epochs.
- cosine: cosine annealing from `lr` to 0 over the steps after warm-up (CosineAnnealingLR with
  T_max = those steps).
- onecycle: OneCycleLR with its defaults (cosine up from lr/25 to `lr`, then down to lr/25/1e4)
  and `cycle_momentum=False`: the learning rate is what moves, never the momentum or Adam's beta1;
  its warm-up is the rising phase, 30% of the run unless `warmup_steps` says otherwise.

`warmup_steps` for constant, step and cosine ramps linearly to `lr` over that many steps (step i
gets lr * (i + 1) / warmup_steps, so the first step already learns and the last warm-up step is at
`lr`; in torch, a LambdaLR), then the schedule runs on the remaining steps (cosine over those,
step's milestones still counted from the start of the run).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pybench.errors import PybenchError

SCHEDULES = ("constant", "step", "cosine", "onecycle")
ONECYCLE_PCT_START = 0.3  # torch.optim.lr_scheduler.OneCycleLR's defaults
ONECYCLE_DIV_FACTOR = 25.0
ONECYCLE_FINAL_DIV_FACTOR = 1e4


@dataclass(frozen=True)
class Schedule:
    """How the learning rate moves over a run; the peak value is the optimizer's `lr`."""

    name: str = "constant"
    warmup_steps: int = 0
    milestones: tuple[int, ...] = ()  # epochs, for "step"
    gamma: float = 0.1  # factor at each milestone, for "step"

    def __post_init__(self):
        if self.name not in SCHEDULES:
            raise PybenchError(f"unknown schedule {self.name!r}: choose one of "
                               f"{', '.join(SCHEDULES)}")
        if self.warmup_steps < 0:
            raise PybenchError(f"--warmup-steps {self.warmup_steps}: must not be negative")
        if self.milestones and self.name != "step":
            raise PybenchError(f"--milestones only applies to --schedule step, not "
                               f"{self.name}")
        if list(self.milestones) != sorted(set(self.milestones)):
            raise PybenchError(f"--milestones {','.join(map(str, self.milestones))}: give "
                               "increasing epochs")


def learning_rates(schedule: Schedule, lr: float, total_steps: int,
                   steps_per_epoch: int) -> np.ndarray:
    """float64 (total_steps,): the learning rate of each optimizer step of the run."""
    if schedule.warmup_steps >= total_steps and schedule.name != "constant" and total_steps:
        raise PybenchError(f"--warmup-steps {schedule.warmup_steps} leaves none of the "
                           f"{total_steps} steps for the {schedule.name} schedule")
    if schedule.name == "onecycle":
        return onecycle(lr, total_steps, schedule.warmup_steps or None)
    warmup = min(schedule.warmup_steps, total_steps)
    ramp = lr * np.arange(1, warmup + 1, dtype=np.float64) / max(warmup, 1)
    steps = np.arange(total_steps - warmup, dtype=np.float64)
    if schedule.name == "constant":
        main = np.full(steps.shape, lr)
    elif schedule.name == "step":
        milestone_steps = np.asarray(schedule.milestones, dtype=np.float64) * steps_per_epoch
        passed = np.searchsorted(milestone_steps, steps + warmup, side="right")
        main = lr * schedule.gamma ** passed.astype(np.float64)
    else:  # cosine
        main = lr * (1 + np.cos(np.pi * steps / max(len(steps), 1))) / 2
    return np.concatenate([ramp, main])


def onecycle(max_lr: float, total_steps: int, warmup_steps: int | None) -> np.ndarray:
    """torch's OneCycleLR (two phases, cosine annealing), step by step."""
    initial = max_lr / ONECYCLE_DIV_FACTOR
    final = initial / ONECYCLE_FINAL_DIV_FACTOR
    # torch: the rising phase ends at float(pct_start * total_steps) - 1.
    peak = (float(warmup_steps) if warmup_steps else ONECYCLE_PCT_START * total_steps) - 1
    last = total_steps - 1
    out = np.empty(total_steps, dtype=np.float64)
    for step in range(total_steps):
        if step <= peak:
            out[step] = cosine_between(initial, max_lr, step / peak if peak > 0 else 1.0)
        else:
            out[step] = cosine_between(max_lr, final, (step - peak) / (last - peak))
    return out


def cosine_between(start: float, end: float, fraction: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * fraction) + 1)

"""The learning-rate schedules are PyTorch's, step for step (pybench.schedules).

Each schedule is compared with torch.optim.lr_scheduler driven the way a PyTorch user drives it
(one scheduler.step() after each optimizer.step()), so "the same recipe" in every framework
means PyTorch's recipe.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pybench.errors import PybenchError
from pybench.schedules import Schedule, learning_rates

TOTAL, PER_EPOCH, LR = 100, 20, 0.1


def torch_lrs(make_scheduler, total=TOTAL) -> np.ndarray:
    """The lr torch's optimizer uses at each of `total` steps under `make_scheduler(opt)`."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=LR)
    scheduler = make_scheduler(optimizer)
    out = []
    for _ in range(total):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return np.array(out)


def ours(name, **kw) -> np.ndarray:
    return learning_rates(Schedule(name, **kw), LR, TOTAL, PER_EPOCH)


def test_constant():
    np.testing.assert_array_equal(ours("constant"), np.full(TOTAL, LR))


def test_step_is_multisteplr_with_milestones_in_epochs():
    expected = torch_lrs(lambda o: torch.optim.lr_scheduler.MultiStepLR(
        o, milestones=[2 * PER_EPOCH, 4 * PER_EPOCH], gamma=0.5))
    got = ours("step", milestones=(2, 4), gamma=0.5)
    np.testing.assert_allclose(got, expected, rtol=1e-15)
    assert got[2 * PER_EPOCH - 1] == LR and got[2 * PER_EPOCH] == LR * 0.5


def test_cosine_is_cosineannealinglr_over_the_run():
    expected = torch_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=TOTAL))
    np.testing.assert_allclose(ours("cosine"), expected, rtol=1e-12, atol=1e-15)


def test_onecycle_is_onecyclelr_without_momentum_cycling():
    expected = torch_lrs(lambda o: torch.optim.lr_scheduler.OneCycleLR(
        o, max_lr=LR, total_steps=TOTAL, cycle_momentum=False))
    np.testing.assert_allclose(ours("onecycle"), expected, rtol=1e-12)


def test_onecycle_warmup_sets_its_rising_phase():
    expected = torch_lrs(lambda o: torch.optim.lr_scheduler.OneCycleLR(
        o, max_lr=LR, total_steps=TOTAL, pct_start=0.1, cycle_momentum=False))
    got = ours("onecycle", warmup_steps=10)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert got.argmax() == 9


def test_warmup_then_cosine_is_lambdalr_then_cosineannealinglr():
    warmup = 10
    expected = torch_lrs(lambda o: torch.optim.lr_scheduler.SequentialLR(o, [
        torch.optim.lr_scheduler.LambdaLR(o, lambda i: (i + 1) / warmup),
        torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=TOTAL - warmup)],
        milestones=[warmup]))
    got = ours("cosine", warmup_steps=warmup)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    assert got[0] == LR / warmup and got[warmup - 1] == LR == got[warmup]


def test_a_run_cut_short_keeps_the_planned_length_prefix():
    # --max-steps shortens the run itself: the schedule spans the steps that will be run.
    assert len(learning_rates(Schedule("cosine"), LR, 7, PER_EPOCH)) == 7
    assert len(learning_rates(Schedule("onecycle"), LR, 0, PER_EPOCH)) == 0


@pytest.mark.parametrize("kw,message", [
    (dict(name="linear"), "unknown schedule 'linear'"),
    (dict(name="cosine", milestones=(2,)), "only applies to --schedule step"),
    (dict(name="step", milestones=(3, 2)), "increasing epochs"),
    (dict(name="cosine", warmup_steps=-1), "must not be negative"),
])
def test_bad_schedules_say_what_is_wrong(kw, message):
    with pytest.raises(PybenchError, match=message):
        Schedule(**kw)


def test_warmup_longer_than_the_run_is_refused():
    with pytest.raises(PybenchError, match="leaves none of the 100 steps"):
        learning_rates(Schedule("cosine", warmup_steps=100), LR, TOTAL, PER_EPOCH)

"""The training clock (pybench.timing): steps timed alone with a synchronisation each, and the
throughput blocks timed as a whole with one synchronisation at their end, so the host can queue
work ahead of the device as real training does (on by default on CUDA)."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest

from pybench.backends import get_backend
from pybench.config import TrainConfig
from pybench.datasets import load_dataset
from pybench.results import TrainingRecord
from pybench.timing import StepTimer
from pybench.training import throughput_block, train_and_evaluate


class FakeClock:
    """Each read is one synchronisation; time advances by one second per step taken."""

    def __init__(self):
        self.time, self.reads = 0.0, 0

    def now(self):
        self.reads += 1
        return self.time


def test_odd_blocks_are_timed_whole_with_one_synchronisation():
    clock = FakeClock()
    timer = StepTimer(clock, block=2)
    timer.start()
    synchronised = []
    for step in range(9):  # alone 0 1, block 2-3, alone 4 5, block 6-7, alone 8
        clock.time += 1.0
        synchronised.append(timer.step_done(step, last_of_epoch=step == 8))
    assert synchronised == [True, True, False, True, True, True, False, True, True]
    assert timer.step_times == [1.0] * 5 and timer.block_times == [2.0, 2.0]
    assert timer.total == 9.0 and clock.reads == 1 + 7
    assert timer.block_images_per_s(batch_size=32) == pytest.approx(2 * 32 / 2.0)


def test_a_block_cut_short_by_the_epoch_counts_in_the_total_only():
    clock = FakeClock()
    timer = StepTimer(clock, block=4)
    timer.start()
    for step in range(6):  # alone 0-3, then a block cut at step 5
        clock.time += 1.0
        timer.step_done(step, last_of_epoch=step == 5)
    assert timer.step_times == [1.0] * 4 and timer.block_times == [] and timer.total == 6.0
    assert timer.block_images_per_s(32) is None


def test_blocks_are_on_by_default_on_cuda_only():
    assert throughput_block(TrainConfig(), "cuda") == 50
    assert throughput_block(TrainConfig(), "cpu") == 0
    assert throughput_block(TrainConfig(throughput_block=0), "cuda") == 0


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_a_run_with_blocks_records_both_figures_and_loses_no_step(framework, isolated_cache):
    pytest.importorskip(framework, reason=f"{framework} is not installed")
    digits = load_dataset("digits", progress=False)
    cfg = TrainConfig(model="lenet5", epochs=2, batch_size=32, throughput_block=5)
    plain, _ = train_and_evaluate(get_backend(framework, "cpu"), digits,
                                  TrainConfig(model="lenet5", epochs=2, batch_size=32))
    record, _ = train_and_evaluate(get_backend(framework, "cpu"), digits, cfg)
    steps_per_epoch = len(digits.train.labels) // 32  # 44: blocks at 5-9, 15-19, 25-29, 35-39
    assert record["steps"] == 2 * steps_per_epoch == len(record["losses"])
    assert len(record["learning_rates"]) == record["steps"]
    assert record["block_steps"] == 5 and len(record["block_times_ms"]) == 2 * 4
    assert len(record["step_times_ms"]) == 2 * (steps_per_epoch - 4 * 5)
    assert record["block_images_per_s"] > 0 and record["images_per_s"] > 0
    # Every step's time is in the epoch's: the steps alone, the blocks, nothing else.
    assert sum(record["epoch_s"]) * 1e3 == pytest.approx(
        sum(record["step_times_ms"]) + sum(record["block_times_ms"]), rel=1e-6)
    # Timing changes no number: the same losses as a run with every step timed alone.
    np.testing.assert_array_equal(record["losses"], plain["losses"])
    assert plain["block_steps"] == 0 and plain["block_images_per_s"] is None
    assert set(record) == {f.name for f in fields(TrainingRecord)}  # the typed record, all of it

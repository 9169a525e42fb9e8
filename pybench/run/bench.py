"""Timing one training step and one evaluation pass, inside a worker, for `pytest --benchmark-only`.

Every framework is timed here the same way and in a worker process of its own (`pybench.run.worker`,
job kind "bench"): juliacall must not share a process with torch, and a benchmark that timed
torch and JAX in the pytest process but Knet in a worker would not time them alike. The worker
returns the raw durations; tests/benchmarks/test_bench_frameworks.py hands them to
pytest-benchmark as its rounds, so inter-process communication is never inside a timed call.

What is timed: `train_step` followed by `synchronize` (the device's queue drained inside the
timed call, as pybench's training loop does before every clock read), on the same data, weights,
batch order and optimizer settings `compare` uses; and `predict` over a fixed evaluation set. The
first step (compilation, Julia's JIT) is timed on its own and reported apart; `warmup` further
steps are run before the timed ones and left out.
"""

from __future__ import annotations

import time

from pybench import models
from pybench.backends import get_backend
from pybench.config import TrainConfig
from pybench.datasets import batch_order
from pybench.training import initial_weights, loss_settings, model_input, run_learning_rates

EVAL_IMAGES = 1000  # the evaluation pass: this many test images, in batches as compare's
EVAL_REPEATS = 5


def timed(fn, synchronize) -> float:
    """Seconds for `fn()`, with the device synchronised before the clock starts (uploads are
    asynchronous: a first step or evaluation must not pay for data still in flight) and before
    it stops."""
    synchronize()
    start = time.perf_counter()
    fn()
    synchronize()
    return time.perf_counter() - start


def time_steps(backend, dataset, cfg: TrainConfig, steps: int, warmup: int) -> dict:
    """First-step seconds, per-step seconds of `steps` steps after `warmup`, and the eval pass."""
    params, buffers = initial_weights(cfg, dataset)
    state = backend.init_state(model_input(cfg, dataset, params, buffers), loss_settings(cfg, dataset))
    labels = dataset.train.labels
    table = dataset.pixel_table()
    data = backend.put_data(dataset.train.images, labels, table)
    per_epoch = len(labels) // cfg.batch_size
    # compare's epoch 0, at the schedule's rates of its first epoch
    order = backend.put_order(batch_order(cfg.seed, 0, len(labels)),
                              run_learning_rates(cfg, per_epoch, per_epoch))
    holder = {"state": state}

    def step(i):
        holder["state"], loss = backend.train_step(holder["state"], data, order,
                                                   i % per_epoch, cfg.batch_size)
        return loss

    sync = backend.synchronize
    first_step_s = timed(lambda: step(0), sync)
    for i in range(1, 1 + warmup):
        step(i)
    sync()
    step_s = [timed(lambda i=i: step(i), sync) for i in range(1 + warmup, 1 + warmup + steps)]

    eval_data = backend.put_data(dataset.test.images[:EVAL_IMAGES], dataset.test.labels[:EVAL_IMAGES], table)
    batch = cfg.eval_batch_size  # as compare evaluates

    def evaluate():
        return backend.predict(holder["state"], eval_data, batch)

    first_eval_s = timed(evaluate, sync)
    eval_s = [timed(evaluate, sync) for _ in range(EVAL_REPEATS)]
    return {"first_step_s": first_step_s, "step_s": step_s, "first_eval_s": first_eval_s,
            "eval_s": eval_s, "eval_images": min(EVAL_IMAGES, len(dataset.test)),
            "final_loss": backend.to_float(step(1 + warmup + steps))}


def run_bench_job(job: dict) -> dict:
    """The worker's side of a "bench" job: device facts plus `time_steps`' figures."""
    from pybench.run.jobs import load_job_dataset, train_config

    dataset, cfg = load_job_dataset(job), train_config(job)
    backend = get_backend(job["framework"], job["device"])
    record = {"device": backend.device, **backend.device_info(),
              "dtype": "float32", "batch_size": cfg.batch_size,
              "dataset": dataset.name, "data_fingerprint": dataset.fingerprint,
              "init_fingerprint": models.weights_fingerprint(*initial_weights(cfg, dataset))}
    return {**record, **time_steps(backend, dataset, cfg, job["steps"], job["warmup"])}

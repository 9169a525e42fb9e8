"""A training step and an evaluation pass of each model in each framework, side by side.

The matrix (frameworks x models x batch sizes) comes from the command line, quick by default on a
2-core CPU (torch, jax and knet; lenet5 and resnet8; batch 32; MNIST when PYBENCH_DATA_DIR is set,
else the offline digits):

    pytest tests/benchmarks/test_bench_frameworks.py --benchmark-only
    pytest ... --pybench-models lenet5,resnet18 --pybench-batch 32,128 --pybench-device cuda

Each (framework, model, batch) runs once in a worker process of its own, through the same
backends and `TrainConfig` that `compare` uses; the worker times every step and the evaluation
passes itself (pybench.run.bench) and the durations become pytest-benchmark's rounds
(measured.record_measured_times), so no inter-process communication is timed, compilation is
kept out (the first step and first evaluation go to `extra_info`), and all three frameworks are
timed by the same code. Benchmarks are grouped by model, pass and batch size
(`benchmark.group`), so the table shows the frameworks for one model next to each other.
"""

from __future__ import annotations

import functools
import itertools
import os

import pytest
from measured import record_measured_times
from needs import missing

from pybench.backends import availability
from pybench.backends.contract import OptimizerConfig
from pybench.config import RunConfig, TrainConfig
from pybench.run.worker import job_for, run_in_worker

OPTIMIZER = OptimizerConfig(name="sgd", lr=0.01, momentum=0.9)  # compare's defaults
WORKER_TIMEOUT_S = 1800


def option_list(config, name: str) -> list[str]:
    return [v.strip() for v in config.getoption(name).split(",") if v.strip()]


def pytest_generate_tests(metafunc):
    if "case" not in metafunc.fixturenames:
        return
    config = metafunc.config
    matrix = itertools.product(option_list(config, "--pybench-models"),
                               [int(b) for b in option_list(config, "--pybench-batch")],
                               option_list(config, "--pybench-frameworks"),
                               ("train", "eval"))
    cases = list(matrix)
    metafunc.parametrize("case", cases, ids=[f"{m}-b{b}-{f}-{p}" for m, b, f, p in cases])


def dataset_spec() -> tuple[str, dict]:
    data_dir = os.environ.get("PYBENCH_DATA_DIR")
    return ("mnist", {"data_dir": data_dir}) if data_dir else ("digits", {})


@functools.cache
def measure(framework: str, model: str, batch: int, device: str, steps: int, warmup: int) -> dict:
    """One worker's record for this case; the train and eval benchmarks share it."""
    dataset, options = dataset_spec()
    cfg = TrainConfig(model=model, batch_size=batch, optimizer=OPTIMIZER, seed=0)
    job = job_for("bench", framework, model, RunConfig(dataset, cfg, options), device, steps=steps, warmup=warmup)
    return run_in_worker(job, WORKER_TIMEOUT_S, echo=False)


def test_framework_step(benchmark, case, request):
    model, batch, framework, phase = case
    status = availability(framework)
    if not status.ok:
        if framework == "knet":
            missing(f"knet is unavailable: {status.reason}")
        pytest.skip(f"{framework} is unavailable: {status.reason}")
    config = request.config
    device = config.getoption("--pybench-device")
    if device == "auto":
        from pybench.run.checks import resolve_device
        device = resolve_device("auto")
    record = measure(framework, model, batch, device, config.getoption("--pybench-steps"),
                     config.getoption("--pybench-warmup"))
    assert record["status"] == "ok", record
    benchmark.group = f"{model} {phase} b{batch}"
    times = record["step_s"] if phase == "train" else record["eval_s"]
    record_measured_times(benchmark, times, f"inside the {framework} worker")
    benchmark.extra_info.update(
        framework=framework, model=model, phase=phase, batch_size=batch,
        framework_version=record["framework_version"], device=record["device"],
        device_name=record["device_name"], dtype=record["dtype"], dataset=record["dataset"],
        data_fingerprint=record["data_fingerprint"], init_fingerprint=record["init_fingerprint"],
        first_s=record["first_step_s"] if phase == "train" else record["first_eval_s"],
        eval_images=record["eval_images"],
        **({"support_note": record["support_note"]} if "support_note" in record else {}))
    assert len(times) == (config.getoption("--pybench-steps") if phase == "train"
                          else len(record["eval_s"])) and min(times) > 0

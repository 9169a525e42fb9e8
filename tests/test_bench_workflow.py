"""`pytest --benchmark-only` as users run it, end to end, in real pytest subprocesses.

- The framework benchmark writes `--benchmark-json`, and `pybench report` builds a report from it.
- pytest-benchmark's own workflow works on pybench's worker-measured rounds: `--benchmark-autosave`,
  then `--benchmark-compare` against the saved run, and `--benchmark-compare-fail=median:10%`
  failing on a real slowdown. The slowdown is a sleep injected around the real torch step by the
  benchmark file this test writes (PYBENCH_TEST_INJECT_SLEEP_MS), never by the product.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "tests" / "benchmarks"

# A benchmark of the real torch LeNet-5 step through pybench.run.bench.time_steps (the code the
# framework benchmark's workers run), with an optional sleep before every step.
SLOWED_BENCHMARK = f"""
import os, sys, time
sys.path.insert(0, {str(BENCH_DIR)!r})
from measured import record_measured_times
from pybench.backends import get_backend
from pybench.run.bench import time_steps
from pybench.datasets import load_dataset
from pybench.config import TrainConfig


class Slowed:
    \"\"\"A backend whose train_step first sleeps: a real slowdown inside the timed call.\"\"\"

    def __init__(self, backend, delay_s):
        self.backend, self.delay_s = backend, delay_s

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def train_step(self, *args):
        time.sleep(self.delay_s)
        return self.backend.train_step(*args)


def test_torch_lenet5_step(benchmark):
    delay_s = float(os.environ.get("PYBENCH_TEST_INJECT_SLEEP_MS", "0")) / 1e3
    backend = Slowed(get_backend("torch", "cpu"), delay_s)
    figures = time_steps(backend, load_dataset("digits", progress=False),
                         TrainConfig(model="lenet5", batch_size=32), steps=20, warmup=2)
    record_measured_times(benchmark, figures["step_s"], "in this process")
"""


def run_pytest(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=cwd, env=full_env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_benchmark_json_becomes_a_report(tmp_path, isolated_cache):
    bench_json = tmp_path / "b.json"
    env = {k: v for k, v in os.environ.items() if k != "PYBENCH_DATA_DIR"}  # digits: quick
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
         "tests/benchmarks/test_bench_frameworks.py", "--benchmark-only",
         "--pybench-frameworks", "torch,jax", "--pybench-models", "lenet5",
         "--pybench-steps", "5", f"--benchmark-json={bench_json}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "benchmark 'lenet5 train b32'" in result.stdout  # grouped: frameworks side by side
    saved = json.loads(bench_json.read_text())
    pybench_info = saved["machine_info"]["pybench"]
    assert pybench_info["cores"] >= 1 and pybench_info["frameworks"]["torch"]["torch"]
    train = [b for b in saved["benchmarks"] if b["extra_info"]["phase"] == "train"]
    assert {b["extra_info"]["framework"] for b in train} == {"torch", "jax"}
    assert all(len(b["stats"]["data"]) == 5 for b in train)

    report = subprocess.run([sys.executable, "-m", "pybench", "report", str(bench_json)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "b-report" / "report.md").read_text()
    assert "| torch | lenet5 | ok |" in text and "| jax | lenet5 | ok |" in text
    assert "initial weights: **identical**" in text
    assert (tmp_path / "b-report" / "step-times-lenet5.png").is_file()

    # A .benchmarks folder of saved runs (--benchmark-autosave keeps no rounds unless
    # --benchmark-save-data): the newest is reported, from pytest-benchmark's own statistics.
    for bench in saved["benchmarks"]:
        del bench["stats"]["data"]
    storage = tmp_path / ".benchmarks" / "Linux-CPython-3.11-64bit"
    storage.mkdir(parents=True)
    (storage / "0001_old.json").write_text("{}")
    (storage / "0002_new.json").write_text(json.dumps(saved))
    report = subprocess.run([sys.executable, "-m", "pybench", "report",
                             str(tmp_path / ".benchmarks")],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr
    text = (tmp_path / ".benchmarks" / "report" / "report.md").read_text()
    torch_train = next(b for b in train if b["extra_info"]["framework"] == "torch")
    assert (f"| torch | lenet5 | ok | {torch_train['extra_info']['framework_version']} | "
            f"{1e3 * torch_train['stats']['median']:.2f} |") in text


@pytest.mark.slow
def test_autosave_compare_and_compare_fail_on_a_real_slowdown(tmp_path):
    (tmp_path / "test_slowed.py").write_text(SLOWED_BENCHMARK)
    storage = f"--benchmark-storage=file://{tmp_path / 'storage'}"
    saved = run_pytest(["test_slowed.py", "--benchmark-only", "--benchmark-autosave", storage],
                       tmp_path)
    assert saved.returncode == 0, saved.stdout[-3000:] + saved.stderr[-3000:]
    assert len(list((tmp_path / "storage").glob("*/0001_*.json"))) == 1

    compared = run_pytest(["test_slowed.py", "--benchmark-only", "--benchmark-compare", storage],
                          tmp_path)
    assert compared.returncode == 0, compared.stdout[-3000:]
    assert "0001" in compared.stdout and "(NOW)" in compared.stdout

    # ~3 ms steps plus a 30 ms sleep: a tenfold slowdown, far past any noise.
    slowed = run_pytest(["test_slowed.py", "--benchmark-only", "--benchmark-compare", storage,
                         "--benchmark-compare-fail=median:10%"], tmp_path,
                        env={"PYBENCH_TEST_INJECT_SLEEP_MS": "30"})
    assert slowed.returncode != 0, slowed.stdout[-3000:]
    assert "Performance has regressed" in slowed.stdout + slowed.stderr


def test_report_of_a_json_file_that_is_neither_kind_is_one_line(cli_error, tmp_path):
    other = tmp_path / "other.json"
    other.write_text('{"benchmarks": [], "machine_info": {}}')
    cli_error("report", str(other), fragments=(str(other), "no pybench framework benchmark"))
    other.write_text('{"a": 1}')
    cli_error("report", str(other), fragments=(str(other), "neither pybench's results.json"))


def test_a_timed_call_does_not_pay_for_uploads_still_in_flight():
    # JAX's device_put (and CUDA copies) return before the data is on the device: the first
    # step's or evaluation's clock must start after a synchronisation, or it includes them.
    import time

    from pybench.run.bench import timed

    pending = {"upload_s": 0.3}

    def synchronize():  # the first call waits for the "upload", later ones return at once
        time.sleep(pending["upload_s"])
        pending["upload_s"] = 0.0

    assert timed(lambda: time.sleep(0.01), synchronize) < 0.2

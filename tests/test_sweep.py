"""`pybench sweep`: a real grid on `digits` in real worker processes, locally and on a real local
Ray instance; resuming; a diverging run that does not stop the sweep; a Ray worker killed
mid-task; SWEEP.toml errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import command_line, start_pybench

from pybench.commands.sweep import expand
from pybench.run.executors import RayExecutor
from pybench.sweep_file import load_sweep_spec, spec_from_dict

pytestmark = pytest.mark.slow  # real workers and a real local Ray

REPO_ROOT = Path(__file__).resolve().parents[1]

# 2 frameworks x 2 seeds, 20 steps each: the grid of the issue, small enough for CI.
SMALL_SWEEP = """\
dataset = "digits"
frameworks = ["torch", "jax"]
models = ["lenet5"]
batch_sizes = [32]
optimizers = ["sgd"]
lrs = [0.05]
seeds = [0, 1]
max_steps = 20
device = "cpu"  # the tests below assert CPU facts (bit-identical reruns, the device)
"""


def run_pybench(*args, cache: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYBENCH_CACHE_DIR": str(cache), **(env or {})}
    return subprocess.run([sys.executable, "-m", "pybench", *map(str, args)],
                          capture_output=True, text=True, cwd=REPO_ROOT, env=full_env,
                          timeout=600)


def results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def key_of(run: dict) -> tuple:
    return run["framework"], run["model"], json.dumps(run["config"], sort_keys=True)


def by_key(document: dict) -> dict[tuple, dict]:
    return {key_of(r): r for r in document["runs"]}


@pytest.fixture(scope="module")
def sweep_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sweep") / "small.toml"
    path.write_text(SMALL_SWEEP)
    return path


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("dataset-cache")


@pytest.fixture(scope="module")
def local_sweep(sweep_file, cache, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("local") / "out"
    return out, run_pybench("sweep", sweep_file, "--out", out, "--no-report", cache=cache)


@pytest.fixture(scope="module")
def ray_sweep(sweep_file, cache, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("ray") / "out"
    return out, run_pybench("sweep", sweep_file, "--executor", "ray", "--out", out, cache=cache)


def only_the_data_description(stderr: str) -> bool:
    """stderr is what every command says of its data first (`data: ...` and its indented lines)."""
    lines = stderr.splitlines()
    return bool(lines) and lines[0].startswith("data: digits") and all(line.startswith("  ") for line in lines[1:])


def test_local_sweep_runs_every_combination_into_one_results_file(local_sweep):
    out, result = local_sweep
    assert result.returncode == 0, result.stderr[-3000:]
    # No terminal: the progress bar stays silent; stderr holds the data's description alone.
    assert only_the_data_description(result.stderr)
    doc = results(out)
    assert doc["schema"] == 1 and doc["config"]["executor"] == "local"
    assert doc["config"]["sweep"] == {"batch_sizes": [32], "optimizers": ["sgd"], "lrs": [0.05],
                                      "seeds": [0, 1]}
    assert doc["config"]["max_steps"] == 20 and doc["config"]["device"] == "cpu"
    assert [(r["framework"], r["config"]["seed"]) for r in doc["runs"]] == [
        ("torch", 0), ("jax", 0), ("torch", 1), ("jax", 1)]
    for run in doc["runs"]:
        assert run["status"] == "ok", run
        assert run["config"] == {"batch_size": 32, "optimizer": "sgd", "lr": 0.05,
                                 "seed": run["config"]["seed"], "epochs": 1, "max_steps": 20}
        assert run["run_id"] == f"{run['framework']}-lenet5-b32-sgd-lr0.05-s{run['config']['seed']}"
        assert run["steps"] == 20 and len(run["losses"]) == 20
        assert run["predictions"] == f"predictions/{run['run_id']}.npz"
        predictions = np.load(out / run["predictions"])
        assert np.mean(predictions["logits"].argmax(1) == predictions["labels"]) == \
            pytest.approx(run["test_accuracy"])
        # compare's forward check, against torch of the same configuration (same weights)
        assert run["parity"]["reference"] == "torch" and run["parity"]["ok"], run["parity"]
    seed0, seed1 = doc["runs"][0], doc["runs"][2]
    assert seed0["init_fingerprint"] != seed1["init_fingerprint"]
    assert "torch-lenet5-b32-sgd-lr0.05-s0" in result.stdout and "results:" in result.stdout
    table = pd.read_csv(out / "runs.csv")  # the swept values are columns of the CSV too
    assert list(table["run_id"]) == [r["run_id"] for r in doc["runs"]]
    assert list(table["config.seed"]) == [0, 0, 1, 1] and set(table["config.lr"]) == {0.05}


def test_ray_sweep_gives_the_same_runs_and_accuracies_as_local(local_sweep, ray_sweep):
    (local_out, _), (ray_out, result) = local_sweep, ray_sweep
    assert result.returncode == 0, result.stderr[-3000:]
    # Ray's logging, dashboard and workers' output stay out of the user's terminal.
    assert only_the_data_description(result.stderr), result.stderr[-3000:]
    local, ray = by_key(results(local_out)), by_key(results(ray_out))
    assert results(ray_out)["config"]["executor"] == "ray"
    assert set(local) == set(ray) and len(local) == 4
    for key, run in ray.items():
        assert run["status"] == "ok", run
        assert run["init_fingerprint"] == local[key]["init_fingerprint"]
        # Ray runs a task with OMP_NUM_THREADS = its CPUs, so PyTorch's CPU reductions may
        # round differently from the local run (measured: 2.4e-7): close, not identical.
        np.testing.assert_allclose(run["losses"], local[key]["losses"], rtol=1e-5)
        # ... and so a test image that lies on a class boundary may flip: at most one of 360.
        assert abs(run["test_accuracy"] - local[key]["test_accuracy"]) <= 1 / 360 + 1e-12, key
        # the files were made on the node that ran the task and brought back to the folder
        assert (ray_out / run["predictions"]).is_file()
        assert (ray_out / run["parity_arrays"]).is_file()
        assert run["parity"]["ok"]
    # the report reads a sweep's folder (one row per run)
    assert (ray_out / "report.md").is_file() and "report:" in result.stdout


def test_resume_runs_only_what_is_missing(local_sweep, cache, sweep_file, tmp_path):
    out = tmp_path / "out"
    subprocess.run(["cp", "-r", str(local_sweep[0]), str(out)], check=True)
    doc = results(out)
    kept = [r for r in doc["runs"] if r["config"]["seed"] == 0]
    doc["runs"] = kept + [{**r, "status": "failed", "reason": "node lost"}
                          for r in doc["runs"] if r["config"]["seed"] == 1 and r["framework"] == "jax"]
    (out / "results.json").write_text(json.dumps(doc))

    again = run_pybench("sweep", sweep_file, "--out", out, "--no-report", cache=cache)
    assert again.returncode == 2 and "--resume" in again.stderr  # never overwritten unasked
    assert results(out)["runs"] == doc["runs"]

    resumed = run_pybench("sweep", sweep_file, "--out", out, "--resume", "--no-report",
                          cache=cache)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = results(out)["runs"]
    assert len(after) == 4 and all(r["status"] == "ok" for r in after)
    # the seed-0 runs were kept as they were (their measured step times too), not run again
    assert after[0] == kept[0] and after[1] == kept[1]
    original = by_key(results(local_sweep[0]))
    for run in after[2:]:  # the failed one and the missing one ran again, to the same result
        assert run["test_accuracy"] == original[key_of(run)]["test_accuracy"]
        assert run["step_times_ms"] != original[key_of(run)]["step_times_ms"]  # measured anew


def test_a_diverging_run_does_not_stop_the_sweep(tmp_path, isolated_cache):
    sweep = tmp_path / "diverge.toml"
    sweep.write_text('dataset = "digits"\nframeworks = ["torch"]\nlrs = [1e30, 0.05]\n'
                     'max_steps = 5\n')
    out = tmp_path / "out"
    result = run_pybench("sweep", sweep, "--out", out, "--no-report", cache=isolated_cache)
    assert result.returncode == 0, result.stderr[-3000:]
    diverged, fine = results(out)["runs"]
    assert diverged["config"]["lr"] == 1e30 and diverged["status"] == "diverged"
    assert "nan" in diverged["reason"]  # the losses became NaN, at a recorded step
    assert len(diverged["losses"]) == diverged["diverged_at_step"] < 5
    assert fine["status"] == "ok" and fine["steps"] == 5


def test_a_killed_ray_worker_is_retried_once_then_recorded_as_failed(tmp_path):
    """A task whose Ray worker dies (as when its node is lost) runs again on another worker;
    dying twice makes a failed record, and the other runs still arrive."""
    runs = expand(spec_from_dict({"dataset": "digits", "frameworks": ["torch"], "seeds": [0, 1, 2]},
                                 tmp_path / "sweep.toml"))
    marks = tmp_path / "attempts"
    marks.mkdir()

    def execute(run, folder):  # the first seed's worker dies once, the second's every time
        seed = run.train.seed
        (marks / f"{seed}-{os.getpid()}").touch()
        if seed == 1 or (seed == 0 and len(list(marks.glob("0-*"))) == 1):
            os.kill(os.getpid(), signal.SIGKILL)
        (folder / "logs").mkdir()
        (folder / "logs" / f"{run.run_id}.log").write_text(f"attempt {os.getpid()}\n")
        return {"framework": run.framework, "model": run.model, "status": "ok", "reason": ""}

    with RayExecutor() as executor:
        records = {run.train.seed: record
                   for run, record in executor.run(runs, execute, tmp_path / "out")}
    assert records[0]["status"] == "ok" and len(list(marks.glob("0-*"))) == 2
    assert records[1]["status"] == "failed" and len(list(marks.glob("1-*"))) == 2
    assert records[1]["reason"].startswith("ray task lost: ")
    assert records[2]["status"] == "ok" and len(list(marks.glob("2-*"))) == 1
    assert (tmp_path / "out" / "logs" / f"{runs[2].run_id}.log").is_file()


BAD_SWEEPS = {
    "unknown key": ('dataset = "digits"\nlearning_rates = [0.1]\n', "learning_rates"),
    "wrong type": ('dataset = "digits"\nbatch_sizes = ["32"]\n', "batch_sizes"),
    "a scalar for a list": ('dataset = "digits"\nseeds = 0\n', "seeds"),
    "empty list": ('dataset = "digits"\nlrs = []\n', "lrs"),
    "unknown framework": ('dataset = "digits"\nframeworks = ["torch", "mxnet"]\n', "mxnet"),
    "unknown model": ('dataset = "digits"\nmodels = ["vgg16"]\n', "vgg16"),
    "unknown optimizer": ('dataset = "digits"\noptimizers = ["rmsprop"]\n', "rmsprop"),
    "negative lr": ('dataset = "digits"\nlrs = [-0.1]\n', "lrs"),
    "bool for a number": ('dataset = "digits"\nmax_steps = true\n', "max_steps"),
    "unknown dataset option": ('dataset = "digits"\n[dataset_options]\nsize = 3\n',
                               "dataset_options.size"),
    "no dataset": ('frameworks = ["torch"]\n', "dataset"),
    "unknown pos_weight": ('dataset = "digits"\npos_weight = "heavy"\n', "pos_weight"),
    "not TOML": ('dataset = digits\n', "not valid TOML"),
}


@pytest.mark.parametrize("case", BAD_SWEEPS)
def test_a_bad_sweep_file_is_a_one_line_error_naming_file_and_key(case, cli_error, tmp_path):
    text, key = BAD_SWEEPS[case]
    path = tmp_path / "bad.toml"
    path.write_text(text)
    cli_error("sweep", path, "--out", tmp_path / "out", fragments=(str(path), key))
    assert not (tmp_path / "out").exists()


def test_executor_ray_without_ray_says_how_to_install_it(cli_error, tmp_path):
    shadow = tmp_path / "no-ray" / "ray"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    path = tmp_path / "ok.toml"
    path.write_text(SMALL_SWEEP)
    cli_error("sweep", path, "--executor", "ray",
              env={"PYTHONPATH": str(tmp_path / "no-ray")},
              fragments=("pip install -e '.[ray]'",))


def test_an_address_nobody_answers_at_is_a_one_line_error(cli_error, tmp_path):
    path = tmp_path / "ok.toml"
    path.write_text(SMALL_SWEEP)
    cli_error("sweep", path, "--executor", "ray", "--address", "127.0.0.1:1",
              fragments=("--address 127.0.0.1:1", "ray start --head"))


def test_a_sweep_takes_the_x_ray_settings(tmp_path):

    path = tmp_path / "xray.toml"
    path.write_text('dataset = "nih.zip"\npos_weight = "balanced"\nembeddings = 50\n'
                    'weights = "weights/r18.pth"\ntrainable = "layer4, fc"\n'
                    '[dataset_options]\nmultilabel = true\n')
    sweep = load_sweep_spec(path)
    assert sweep.dataset_options == {"multilabel": True}
    train = expand(sweep)[0].train
    assert train.pos_weight == "balanced" and train.embeddings == 50
    # The weights file is found beside the sweep file, and --trainable's list is split.
    assert train.weights == str((tmp_path / "weights" / "r18.pth").resolve())
    assert train.trainable == ("layer4", "fc")


def test_the_example_sweep_file_is_the_documented_grid():

    runs = expand(load_sweep_spec(REPO_ROOT / "examples" / "sweep.toml"))
    assert len(runs) == 16 and len({run.run_id for run in runs}) == 16
    assert {run.config["lr"] for run in runs} == {0.01, 0.05}
    sweeps_doc = (REPO_ROOT / "docs" / "sweeps.md").read_text()
    example = (REPO_ROOT / "examples" / "sweep.toml").read_text()
    grid = example[example.index('dataset = "digits"'):example.index("epochs = 2")]
    assert grid in sweeps_doc  # docs/sweeps.md shows the file as it is


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_ctrl_c_stops_the_running_worker_and_keeps_what_finished(executor, tmp_path,
                                                                 isolated_cache):
    import psutil

    sweep = tmp_path / "long.toml"
    sweep.write_text('dataset = "digits"\nframeworks = ["torch"]\nseeds = [0, 1]\nepochs = 500\n')
    out = tmp_path / "out"
    proc = start_pybench("sweep", sweep, "--out", out, "--no-report", "--executor", executor,
                         cache=isolated_cache, stderr=subprocess.PIPE)
    try:
        workers = []
        for _ in range(600):  # until the first run's worker has started (at most 60 s)
            workers = [p for p in psutil.Process(proc.pid).children(recursive=True)
                       if "pybench.run.worker" in command_line(p)]
            if workers:
                break
            proc.poll()
            assert proc.returncode is None, proc.stderr.read()
            time.sleep(0.1)
        assert workers, "no worker process started"
        for _ in range(600):  # until it trains (a worker still starting could die on its own)
            if sum(workers[0].cpu_times()[:2]) > 6:
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
        assert "interrupted" in proc.stderr.read()
        _, alive = psutil.wait_procs(workers, timeout=10)
        assert not alive, [command_line(p) for p in alive]  # no worker left training
        # The runs that were training are kept as interrupted: the local executor's first, or
        # every run Ray had submitted; a run never started is left to --resume.
        runs = results(out)["runs"]
        interrupted = ["torch-lenet5-b32-sgd-lr0.01-s0"]
        if executor == "ray":
            interrupted.append("torch-lenet5-b32-sgd-lr0.01-s1")
        assert [(r["run_id"], r["status"]) for r in runs] == [
            (run_id, "interrupted") for run_id in interrupted]
        assert runs[0]["reason"] == "interrupted by SIGINT during training"
    finally:
        if proc.poll() is None:
            proc.kill()
        for worker in workers:  # whatever happened, leave no worker behind
            if worker.is_running():
                worker.kill()


def test_address_without_the_ray_executor_is_a_one_line_error(cli_error, tmp_path):
    path = tmp_path / "ok.toml"
    path.write_text(SMALL_SWEEP)
    cli_error("sweep", path, "--address", "auto", fragments=("--address is for --executor ray",))


def test_the_sweep_report_pools_seeds_and_names_the_best_configuration(ray_sweep):
    out, result = ray_sweep
    assert result.returncode == 0, result.stderr[-3000:]
    text = (out / "report.md").read_text()
    assert (out / "report.html").exists()
    configurations = text.split("## Configurations")[1].split("\n## ")[0]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")]
            for line in configurations.split("### Best")[0].splitlines()
            if line.startswith("| torch") or line.startswith("| jax")}
    doc = results(out)
    for framework in ("torch", "jax"):
        # framework, model, device, configuration, runs, seeds, accuracy mean %, sd, ...
        cells = rows[framework]
        assert "batch_size=32, optimizer=sgd, lr=0.05" in cells[3]
        assert cells[4] == "2" and cells[5] == "0, 1"
        accuracies = [r["test_accuracy"] for r in doc["runs"] if r["framework"] == framework]
        assert float(cells[6]) == pytest.approx(100 * np.mean(accuracies), abs=0.006)
    best = configurations.split("### Best configuration per framework")[1]
    assert sum(line.startswith(("| torch", "| jax")) for line in best.splitlines()) == 2

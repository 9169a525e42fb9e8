"""Bad values get one line, a diverging run is a result (not a crash), results files are strict
JSON: each provoked through the real command line."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest
from conftest import REPO_ROOT, command_line, start_pybench

from pybench.backends import availability
from pybench.results import strict

BAD_TRAINING_VALUES = [
    (("--lr", "nan"), "'nan' is not a finite number"),
    (("--lr", "inf"), "'inf' is not a finite number"),
    (("--lr", "-1"), "'-1' must be a positive number"),
    (("--lr", "0"), "'0' must be a positive number"),
    (("--lr", "fast"), "'fast' is not a number"),
    (("--momentum", "1.5"), "'1.5' must lie in [0, 1)"),
    (("--momentum", "nan"), "'nan' is not a finite number"),
    (("--weight-decay", "-0.1"), "'-0.1' must not be negative"),
    (("--timeout", "0"), "'0' must be a positive number"),
    (("--frameworks", "torch,torch"), "'torch,torch' names torch more than once"),
    (("--batch-size", "0"), "'0' must be at least 1"),
]


@pytest.mark.parametrize("command", ["compare", "parity"])
@pytest.mark.parametrize("args, message", BAD_TRAINING_VALUES,
                         ids=[" ".join(a) for a, _ in BAD_TRAINING_VALUES])
def test_bad_training_values_are_one_line(cli_error, command, args, message):
    dataset = ["digits"] if command == "compare" else []
    line = cli_error(command, *dataset, *args)
    assert message in line and args[0] in line


def test_repeated_models_are_one_line(cli_error):
    cli_error("compare", "digits", "--models", "lenet5,resnet8,lenet5",
              fragments=("names lenet5 more than once",))


@pytest.mark.parametrize("command", ["compare", "parity"])
def test_an_out_folder_that_cannot_be_made_is_one_line(cli_error, tmp_path, command):
    a_file = tmp_path / "results.txt"
    a_file.write_text("keep me\n")
    dataset = ["digits"] if command == "compare" else []
    cli_error(command, *dataset, "--frameworks", "torch", "--out", str(a_file / "run"),
              fragments=(f"--out {a_file / 'run'}", "cannot create the results folder"))
    assert a_file.read_text() == "keep me\n"


@pytest.mark.slow
def test_the_same_seed_twice_gives_identical_loss_curves(run_cli, tmp_path):
    """On the CPU every framework is deterministic: a rerun with the same seed repeats every loss
    and every test-set logit bit for bit, and another seed does not."""
    frameworks = "torch,jax,knet" if availability("knet").ok else "torch,jax"
    runs = {}
    for name, seed, chosen in (("first", 3, frameworks), ("again", 3, frameworks),
                               ("other seed", 4, "torch")):
        out = tmp_path / name
        # --device cpu: bit-identical reruns are a CPU fact (cuDNN may pick other kernels).
        result = run_cli("compare", "digits", "--frameworks", chosen, "--max-steps", "30",
                         "--seed", str(seed), "--device", "cpu", "--out", out, "--no-report")
        assert result.returncode == 0, result.stderr[-3000:]
        doc = json.loads((out / "results.json").read_text())
        runs[name] = {r["framework"]: r for r in doc["runs"]}
        for run in runs[name].values():
            assert run["status"] == "ok" and len(run["losses"]) == 30, run
            run["logits"] = np.load(out / run["predictions"])["logits"]
    assert list(runs["first"]) == frameworks.split(",")
    for framework, first in runs["first"].items():
        again = runs["again"][framework]
        assert first["losses"] == again["losses"], framework
        np.testing.assert_array_equal(first["logits"], again["logits"])
    assert runs["other seed"]["torch"]["losses"] != runs["first"]["torch"]["losses"]


def reject_non_finite(text):
    raise ValueError(f"non-standard JSON constant {text}")


@pytest.mark.slow
def test_a_diverging_run_stops_with_its_step_and_losses(run_cli, tmp_path):
    out = tmp_path / "run"
    result = run_cli("compare", "digits", "--frameworks", "torch,jax", "--lr", "1e6",
                     "--max-steps", "50", "--out", out)
    assert result.returncode == 1, result.stderr[-2000:]  # no run finished ok
    assert "Traceback" not in result.stderr
    # strict JSON: no NaN or Infinity anywhere
    doc = json.loads((out / "results.json").read_text(), parse_constant=reject_non_finite)
    for run in doc["runs"]:
        assert run["status"] == "diverged", run
        step = run["diverged_at_step"]
        assert 0 < step < 50 and f"at step {step}" in run["reason"]
        assert len(run["losses"]) == step and all(math.isfinite(v) for v in run["losses"])
    # the same model, weights and batches diverge at the same step in both frameworks
    assert doc["runs"][0]["diverged_at_step"] == doc["runs"][1]["diverged_at_step"]
    assert "diverged" in result.stdout and (out / "report.md").exists()


def test_results_are_written_as_strict_json():
    document = {"a": float("nan"), "b": [1.0, float("inf"), np.float32("-inf")],
                "c": np.array([0.5, np.nan]), "d": {"e": np.float64(2.0)}}
    assert strict(document) == {"a": None, "b": [1.0, None, None], "c": [0.5, None],
                                "d": {"e": 2.0}}


@pytest.mark.slow
@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_mid_training_keeps_finished_runs(tmp_path, isolated_cache, signum, status):
    """A real comparison, signalled while its second run trains: the first run is kept, the
    second is marked interrupted, the report is written from what finished, the worker is gone."""
    out = tmp_path / "run"
    # A short first run (LeNet-5, seconds) and a long second one (ResNet-20, about a minute),
    # so that the signal falls in the middle of the second without waiting minutes for the first.
    proc = start_pybench("compare", "digits", "--frameworks", "torch", "--models",
                         "lenet5,resnet20", "--epochs", "20", "--out", out, cache=isolated_cache,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    results = out / "results.json"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if results.exists() and len(json.loads(results.read_text())["runs"]) == 1:
            break
        time.sleep(0.5)
    time.sleep(5)  # the second worker is now training
    assert proc.poll() is None, proc.communicate()
    workers = psutil.Process(proc.pid).children(recursive=True)
    assert any("pybench.run.worker" in command_line(w) for w in workers)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == status, stderr[-3000:]
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("pybench: interrupted by SIG") and str(results) in last
    doc = json.loads(results.read_text(), parse_constant=reject_non_finite)
    assert [(r["model"], r["status"]) for r in doc["runs"]] == [("lenet5", "ok"),
                                                               ("resnet20", "interrupted")]
    assert (out / "report.md").exists() and "interrupted" in (out / "report.md").read_text()
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, [command_line(w) for w in alive]  # no worker left training


@pytest.mark.slow
def test_a_signal_during_parity_keeps_the_finished_checks(tmp_path, isolated_cache):
    """`parity` signalled while its second model's first framework runs: the first model's
    checks are kept, the stopped one is marked interrupted, the exit status is 130."""
    out = tmp_path / "parity"
    proc = start_pybench("parity", "--frameworks", "torch,jax", "--models", "lenet5,resnet20",
                         "--steps", "80", "--out", out, cache=isolated_cache,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for line in proc.stdout:  # "== parity FRAMEWORK MODEL" as each check starts
            if line.startswith("== parity torch resnet20"):
                break
        time.sleep(3)
        assert proc.poll() is None
        workers = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("pybench: interrupted by SIGINT") and "parity.json" in last
    doc = json.loads((out / "parity.json").read_text())
    assert [(r["model"], r["framework"], r["status"]) for r in doc["results"]] == [
        ("lenet5", "torch", "ok"), ("lenet5", "jax", "ok"), ("resnet20", "torch", "interrupted")]
    assert doc["results"][1]["ok"] and doc["ok"] is False
    assert doc["interrupted"] == "interrupted by SIGINT"
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, [command_line(w) for w in alive]


# --- Every bad input, one line: one table through the real command line ----------------------

def write(path, content: bytes | str):
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    return path


def zip_without_images(tmp_path):
    import zipfile
    path = tmp_path / "xrays.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("Data_Entry.csv", "Image Index,Finding Labels\na.png,No Finding\n")
    return path


# (id, arguments (a function of tmp_path), fragments the one stderr line must hold)
BAD_INPUTS = [
    ("unknown dataset", lambda t: ["compare", "mnistt"],
     ("'mnistt'", "use one of mnist, digits")),
    ("unknown model", lambda t: ["compare", "digits", "--models", "lenet6"],
     ("unknown model 'lenet6'", "lenet5, resnet8, resnet20, resnet18")),
    ("unknown framework", lambda t: ["compare", "digits", "--frameworks", "torch,tensorflow"],
     ("unknown framework 'tensorflow'", "torch, jax, knet")),
    ("parity unknown model", lambda t: ["parity", "--models", "vgg"], ("unknown model 'vgg'",)),
    ("repeated frameworks", lambda t: ["compare", "digits", "--frameworks", "jax,jax"],
     ("'jax,jax' names jax more than once",)),
    ("epochs 0", lambda t: ["compare", "digits", "--epochs", "0"], ("--epochs", "'0' must be at least 1")),
    ("negative steps", lambda t: ["compare", "digits", "--max-steps", "-5"],
     ("--max-steps", "'-5' must be at least 1")),
    ("parity steps 0", lambda t: ["parity", "--steps", "0"], ("--steps", "'0' must be at least 1")),
    ("negative batch", lambda t: ["compare", "digits", "--batch-size", "-32"],
     ("--batch-size", "'-32' must be at least 1")),
    ("negative timeout", lambda t: ["compare", "digits", "--timeout", "-1"],
     ("--timeout", "'-1' must be a positive number")),
    ("image size 0", lambda t: ["compare", "digits", "--image-size", "0"],
     ("--image-size", "'0' must be a whole number from 1 to 4096")),
    ("lr nan", lambda t: ["compare", "digits", "--lr", "nan"], ("'nan' is not a finite number",)),
    ("lr -inf", lambda t: ["compare", "digits", "--lr=-inf"], ("'-inf' is not a finite number",)),
    ("momentum 1", lambda t: ["compare", "digits", "--momentum", "1"], ("'1' must lie in [0, 1)",)),
    ("momentum text", lambda t: ["compare", "digits", "--momentum", "high"],
     ("'high' is not a number",)),
    ("seed text", lambda t: ["compare", "digits", "--seed", "x"], ("--seed", "'x'")),
    ("target accuracy 2", lambda t: ["compare", "digits", "--target-accuracy", "2"],
     ("--target-accuracy", "'2': give a fraction between 0 and 1")),
    ("target accuracy nan", lambda t: ["compare", "digits", "--target-accuracy", "nan"],
     ("'nan' is not a finite number",)),
    ("label smoothing 1.5", lambda t: ["compare", "digits", "--label-smoothing", "1.5"],
     ("'1.5' must lie in [0, 1)",)),
    ("device not present", lambda t: ["compare", "digits", "--device", "cuda"],
     ("--device cuda", "no NVIDIA GPU")),
    ("device unknown", lambda t: ["compare", "digits", "--device", "tpu"],
     ("--device", "'tpu'")),
    ("out under a file", lambda t: ["compare", "digits", "--out",
                                    str(write(t / "f.txt", "x") / "run")],
     ("cannot create the results folder",)),
    ("results not pybench's", lambda t: ["report", str(write(t / "r" / "results.json",
                                                            '{"hello": 1}').parent)],
     ("results.json", "not a pybench results file")),
    ("results from a newer pybench", lambda t: ["report", str(write(
        t / "r" / "results.json", '{"schema": 7, "runs": []}').parent)],
     ("results.json", "written by a newer pybench (results schema 7")),
    ("results not JSON", lambda t: ["report", str(write(t / "r" / "results.json",
                                                       "{not json").parent)],
     ("results.json", "not valid JSON")),
    ("results folder missing", lambda t: ["report", str(t / "nothing")], ("not found",)),
    ("empty CSV manifest", lambda t: ["compare", str(write(t / "empty.csv", ""))],
     ("empty.csv", "empty manifest")),
    ("CSV with a header only", lambda t: ["compare", str(write(
        t / "h.csv", "Image Index,Finding Labels\n"))], ("h.csv", "header but no rows")),
    ("zip with no images", lambda t: ["compare", str(zip_without_images(t))],
     ("xrays.zip", "image 'a.png' not found")),
    ("corrupt npz", lambda t: ["compare", str(write(t / "organ.npz", b"PK\x03\x04broken"))],
     ("organ.npz", "not a readable .npz file")),
    ("corrupt npz in datasets info", lambda t: ["datasets", "info",
                                                str(write(t / "o.npz", b"\x00" * 64))],
     ("o.npz", "not a readable .npz file (not a zip archive of .npy arrays)")),
    ("sweep file missing", lambda t: ["sweep", str(t / "grid.toml")], ("grid.toml", "not found")),
    ("fail-on-regression without baseline", lambda t: ["report", str(t), "--fail-on-regression",
                                                       "5"], ("needs --baseline",)),
    ("nesterov with adam", lambda t: ["compare", "digits", "--optimizer", "adam", "--nesterov"],
     ("--nesterov needs --optimizer sgd",)),
]


@pytest.mark.parametrize("make_args, fragments", [c[1:] for c in BAD_INPUTS],
                         ids=[c[0] for c in BAD_INPUTS])
def test_every_bad_input_is_one_line_with_exit_status_2(cli_error, tmp_path, make_args,
                                                        fragments):
    cli_error(*make_args(tmp_path), fragments=fragments)
    # Nothing of what the test wrote was touched (a bad --out never replaces a file).
    for path in tmp_path.rglob("*.txt"):
        assert path.read_text() == "x"


def test_the_table_is_at_least_thirty_cases():
    assert len(BAD_INPUTS) >= 30 and len({c[0] for c in BAD_INPUTS}) == len(BAD_INPUTS)


def test_debug_shows_the_traceback_instead(run_cli):
    result = run_cli("--debug", "compare", "digits", "--models", "lenet6")
    assert result.returncode != 0 and "Traceback" in result.stderr
    assert "unknown model 'lenet6'" in result.stderr


@pytest.mark.slow
def test_a_batch_too_large_for_memory_is_one_reason_naming_framework_model_and_batch(
        run_cli, tmp_path):
    # The worker's data memory capped at 3 GB (RLIMIT_DATA): ResNet-18 at batch 1024 on 32x32
    # images needs ~10 GB of activations, so each framework's allocator fails for real.
    out = tmp_path / "run"
    result = run_cli("compare", "digits", "--frameworks", "torch,jax", "--models", "resnet18",
                     "--image-size", "32", "--batch-size", "1024", "--max-steps", "1",
                     "--out", out, "--no-report",
                     env={"PYBENCH_WORKER_MEMORY_LIMIT": str(3 * 10 ** 9)})
    assert result.returncode == 1  # no run finished
    runs = json.loads((out / "results.json").read_text())["runs"]
    for run in runs:
        assert run["status"] == "failed" and run["out_of_memory"] is True, run
        assert run["reason"].startswith(f"out of memory: {run['framework']} resnet18 at batch "
                                         "size 1024 does not fit in this machine's RAM")
        assert "\n" not in run["reason"]
        assert f"{run['framework']} resnet18: failed: out of memory" in result.stdout


# --- Signal tests wherever pytest runs ---------------------------------------------------------

def ignore_sigint() -> None:
    """What a non-interactive shell does to its background jobs (`pytest &` in a CI script)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


SIGINT_PROBE = ("import signal; handler = signal.getsignal(signal.SIGINT); "
                "print('ignored' if handler == signal.SIG_IGN else handler.__name__)")


def test_a_child_started_for_a_signal_test_hears_sigint_even_from_a_parent_that_ignores_it():
    from conftest import default_sigint

    def probe(preexec) -> str:
        parent = (f"import subprocess, sys\nsys.path.insert(0, {str(REPO_ROOT / 'tests')!r})\n"
                  f"from conftest import default_sigint\n"
                  f"subprocess.run([sys.executable, '-c', {SIGINT_PROBE!r}], "
                  f"preexec_fn={preexec})\n")
        return subprocess.run([sys.executable, "-c", parent], preexec_fn=ignore_sigint,
                              capture_output=True, text=True, check=True).stdout.strip()

    assert default_sigint is not None
    # Inherited SIG_IGN: Python installs no KeyboardInterrupt handler, a SIGINT does nothing.
    assert probe("None") == "ignored"
    # Started the way the signal tests start pybench: Ctrl-C works.
    assert probe("default_sigint") == "default_int_handler"


def test_pybench_hears_signals_a_julia_embedding_parent_left_blocked():
    """A process that ran Julia in its own process (juliacall in a notebook) passes SIGINT and
    SIGTERM blocked to its children; pybench unblocks them before anything else, so Ctrl-C and
    `kill` still stop it."""
    def block() -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})

    probe = ("import signal, sys\nfrom pybench.cli import main\nmain(['list'])\n"
             "print('blocked:', sorted(s.name for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])))")
    done = subprocess.run([sys.executable, "-c", probe], preexec_fn=block, capture_output=True,
                          text=True, timeout=300, check=True)
    assert done.stdout.strip().splitlines()[-1] == "blocked: []", done.stdout[-2000:]


@pytest.mark.slow
def test_the_signal_tests_pass_when_pytest_itself_ignores_sigint(tmp_path):
    """A real signal test run by a pytest that was started with SIGINT ignored, as `.ci/run &`
    or some CI runners start it: it must pass all the same."""
    test = "tests/test_sweep.py::test_ctrl_c_stops_the_running_worker_and_keeps_what_finished[local]"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--benchmark-disable",
         "--basetemp", str(tmp_path / "basetemp"), test], cwd=REPO_ROOT, capture_output=True,
        text=True, timeout=600, preexec_fn=ignore_sigint)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout


def limit_file_size(kib: int):
    """In the child: files of at most `kib` KiB (`ulimit -f KIB`), as on a nearly full disk."""
    def limit() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (kib * 1024, kib * 1024))

    return limit


@pytest.mark.parametrize("kib, unwritten, status", [
    (48, "", "ok"),  # room for results.json and the run's prediction files, not for a figure
    (20, "predictions/torch-lenet5.csv", "failed"),  # the worker's test predictions (360 rows) do not fit
])
def test_a_file_size_limit_ends_in_one_line_with_the_results_kept(tmp_path, isolated_cache, kib, unwritten, status):
    """`compare` under `ulimit -f KIB`: a file cannot be written, in the parent (a figure) or in the
    worker (its prediction CSV, and the parent stops on it: the next run would fail alike). One
    line naming the file and the OS error, a non-zero status, and results.json (written first,
    atomically) whole, with the run in it."""
    import os

    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "pybench", "compare", "digits", "--frameworks", "torch",
                           "--models", "lenet5", "--epochs", "1", "--out", str(out)],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
                          preexec_fn=limit_file_size(kib), env={**os.environ, "PYBENCH_CACHE_DIR": str(isolated_cache)})
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"pybench: error: cannot write {out}/{unwritten}") and "File too large (errno 27)" in last
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert [run["status"] for run in runs] == [status]
    if status == "ok":
        assert runs[0]["test_accuracy"] > 0

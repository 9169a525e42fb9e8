"""`pybench compare` end to end: real training in real worker processes, real result files."""

from __future__ import annotations

import json
import re
import signal
import sys

import numpy as np
import pandas as pd
import pytest

from pybench.backends import availability
from pybench.machine import machine_has_cuda_gpu
from pybench.run.worker import run_in_worker

KNET_UNAVAILABLE = not availability("knet").ok


@pytest.mark.slow
def test_mnist_lenet5_every_framework_agrees(run_cli, data_dir, tmp_path):
    """The acceptance run: LeNet-5 on the real MNIST in PyTorch, JAX and Knet with the
    documented recipe (one-cycle Nesterov SGD, label smoothing, batch 128, four epochs)."""
    out = tmp_path / "run"
    # --device cpu: the test asserts CPU facts (process RSS as the memory, the CPU's matmul
    # size for the peak rate); on a GPU machine `auto` would pick CUDA.
    result = run_cli("compare", "mnist", "--frameworks", "torch,jax,knet", "--models", "lenet5",
                     "--recipe", "mnist-fast", "--device", "cpu", "--embeddings", "500",
                     "--out", out,
                     env={"PYBENCH_DATA_DIR": str(data_dir)}, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    doc = json.loads((out / "results.json").read_text())
    runs = {r["framework"]: r for r in doc["runs"]}
    torch_run, jax_run = runs["torch"], runs["jax"]
    trained = [torch_run, jax_run] + ([] if KNET_UNAVAILABLE else [runs["knet"]])
    steps = 4 * (60000 // 128)
    for run in trained:
        assert run["status"] == "ok", run
        # The bound is a margin over the measured spread, not one machine's figure. Measured
        # with `PYBENCH_DATA_DIR=../shared/datasets python -m pybench compare mnist --frameworks
        # torch,jax --recipe mnist-fast --seed N` (torch 2.14.1, jax 0.10.2): on the 2-core
        # machine of the earlier CI runs, seeds 0-2, torch 99.23-99.30% and jax 99.28-99.30%
        # (Knet 99.30% at seed 0); on a 2-core AMD EPYC with AVX-512, seeds 0-4, torch
        # 99.26-99.35% and jax 99.21-99.36%.
        # Lowest 99.21%, standard deviation over seeds and machines 0.04 pp: 98.8% is 0.4 pp,
        # ten standard deviations, below anything seen.
        assert run["test_accuracy"] >= 0.988, (run["framework"], run["test_accuracy"])
        stats = run["step_time_ms"]
        assert 0 < stats["median"] <= stats["p90"] and stats["iqr"] >= 0
        assert stats["n"] == run["steps"] - 1 == len(run["step_times_ms"]) - 1 == steps - 1
        assert len(run["losses"]) == run["steps"] and run["losses"][-1] < run["losses"][0]
        assert run["first_step_s"] > 0 and run["images_per_s"] > 0
        assert len(run["epoch_s"]) == 4 == run["kept_epoch"]
        assert sum(run["epoch_s"]) == pytest.approx(sum(run["step_times_ms"]) / 1e3)
        # Time to 99% at the resolution of the checks (a tenth of an epoch), training time only.
        # Whether a run reaches the 99% target is the float32 spread above (lowest 99.21%), so
        # the test holds the bookkeeping, not the outcome: a final accuracy at the target means
        # a recorded step, and a recorded step is a check's and carries its training time.
        every = run["target_eval_every"]
        assert every == 46
        target_step = run["time_to_target_step"]
        if run["test_accuracy"] >= 0.99:
            assert target_step is not None
        if target_step is not None:
            assert target_step % every == 0 or target_step % (steps // 4) == 0
            assert run["time_to_target_s"] == pytest.approx(
                sum(run["step_times_ms"][:target_step]) / 1e3)
        assert run["n_params"] == 61706 and run["data_on_device"] is True
        assert run["peak_flops_per_s"] > 1e9 and run["peak_matmul_n"] == 1024
        # Every framework followed the one schedule, step by step.
        assert run["learning_rates"] == torch_run["learning_rates"]
        assert len(run["learning_rates"]) == steps
        assert max(run["learning_rates"]) == pytest.approx(0.1, rel=1e-5)
    assert doc["config"]["optimizer"]["nesterov"] is True
    assert doc["config"]["optimizer"]["label_smoothing"] == 0.1
    assert doc["config"]["schedule"]["name"] == "onecycle"
    for run in (torch_run, jax_run):  # the settings each ran with, for reproducibility
        assert set(run["determinism"]) >= ({"deterministic_algorithms", "cudnn_benchmark"}
                                           if run is torch_run else {"xla_flags"})
        assert run["peak_memory_bytes"] > 0 and run["memory_kind"] == "rss"
        assert run["parity"]["ok"] and run["parity"]["reference"] == "torch"
        predictions = np.load(out / run["predictions"])
        assert predictions["logits"].shape == (10000, 10)
        assert predictions["embeddings"].shape == (500, 84)  # LeNet-5's fc2, after its relu
        assert np.mean(predictions["logits"].argmax(1) == predictions["labels"]) == \
            pytest.approx(run["test_accuracy"])
    for run in trained[1:]:
        # Same measurements: the paired difference torch - jax at one seed ranged over -0.07 to
        # +0.09 pp (standard deviation 0.055 pp); 0.4 pp is seven standard deviations.
        assert abs(torch_run["test_accuracy"] - run["test_accuracy"]) <= 0.004
        assert torch_run["init_fingerprint"] == run["init_fingerprint"]
        assert run["data_fingerprint"] == doc["dataset"]["fingerprint"]
    assert torch_run["data_fingerprint"] == doc["dataset"]["fingerprint"]
    if KNET_UNAVAILABLE:
        assert runs["knet"]["status"] == "unavailable"
        assert "PYTHON_JULIAPKG_EXE" in runs["knet"]["reason"]
    else:
        knet = runs["knet"]
        assert knet["framework_version"] == "Knet 1.4.10" and knet["julia"]
        # Knet gets the cores torch gets (NNlib splits each convolution's batch over Julia's
        # threads), with OpenBLAS on one thread beneath them so the two do not oversubscribe.
        assert knet["julia_threads"] == torch_run["threads"]
        if knet["julia_threads"] > 1:
            assert knet["blas_threads"] == 1
    assert doc["machine"]["cores"] >= 1 and doc["config"]["batch_size"] == 128

    table = pd.read_csv(out / "runs.csv")
    assert list(table["framework"]) == ["torch", "jax", "knet"]
    report = (out / "report.md").read_text()
    assert "identical" in report
    # The t-SNE panels of the 500 stored embeddings of each split, one per trained framework.
    assert "tsne-lenet5.png" in report
    assert "same first 500 training images (top row) and 500 test images (bottom row)" in report
    assert (out / "tsne-lenet5.png").stat().st_size > 10_000
    assert "torch" in result.stdout and "results:" in result.stdout


@pytest.mark.skipif(not KNET_UNAVAILABLE, reason="knet is available on this machine")
def test_knet_alone_is_a_one_line_error(cli_error):
    cli_error("compare", "digits", "--frameworks", "knet", fragments=("knet is unavailable",
                                                                      "PYTHON_JULIAPKG_EXE"))


def test_unknown_framework_and_model_are_one_line_errors(cli_error):
    cli_error("compare", "digits", "--frameworks", "torch,mxnet", fragments=("mxnet",))
    cli_error("compare", "digits", "--models", "vgg16", fragments=("vgg16",))


@pytest.mark.skipif(machine_has_cuda_gpu(), reason="this machine has a GPU")
def test_device_cuda_without_a_gpu_is_a_one_line_error(cli_error):
    cli_error("compare", "digits", "--frameworks", "torch", "--device", "cuda",
              fragments=("--device cuda",))


def test_timed_out_worker_is_recorded_and_the_others_go_on(run_cli, tmp_path):
    out = tmp_path / "run"
    # torch takes longer than 0.5 s to import; the next framework still runs (and also times out)
    result = run_cli("compare", "digits", "--frameworks", "torch,jax", "--max-steps", "2",
                     "--timeout", "0.5", "--out", out, "--no-report")
    assert result.returncode == 1  # no run finished
    doc = json.loads((out / "results.json").read_text())
    assert [(r["framework"], r["status"], r["reason"]) for r in doc["runs"]] == [
        ("torch", "failed", "timed out after 0.5 s"), ("jax", "failed", "timed out after 0.5 s")]


@pytest.mark.slow
def test_digits_resnet8_records_time_to_target_and_max_steps(run_cli, tmp_path):
    out = tmp_path / "run"
    result = run_cli("compare", "digits", "--frameworks", "torch", "--models", "lenet5",
                     "--epochs", "3", "--max-steps", "100", "--target-accuracy", "0.5",
                     "--out", out, "--no-report")
    assert result.returncode == 0, result.stderr[-2000:]
    run = json.loads((out / "results.json").read_text())["runs"][0]
    # 1437 digits / 32 = 44 steps an epoch: 100 steps end in the third epoch
    assert run["steps"] == 100 and run["epochs_run"] == 3
    # Over seeds 0-4 (this command with --seeds 0,1,2,3,4) the 50% target was reached at steps
    # 40-60 and the run ended at 70-93%: the final check alone is 20 points above it.
    assert run["time_to_target_s"] is not None
    assert run["time_to_target_s"] <= sum(run["epoch_s"]) + 1e-9


def crashing_python(tmp_path):
    script = tmp_path / "python"
    script.write_text("#!/bin/sh\necho 'loading the model' >&2\necho 'about to run out of memory' >&2\n"
                      f"kill -{int(signal.SIGKILL)} $$\n")
    script.chmod(0o755)
    return str(script)


def test_a_crashing_worker_becomes_a_failed_record(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "executable", crashing_python(tmp_path))
    record = run_in_worker({"kind": "train", "framework": "torch", "model": "lenet5"},
                           timeout=60, echo=False)
    assert record == {"framework": "torch", "model": "lenet5", "status": "failed",
                      "reason": "worker killed by signal 9 (SIGKILL): about to run out of memory",
                      "exit_status": -9,
                      "stderr_tail": ["loading the model", "about to run out of memory"]}


def test_a_model_that_cannot_take_the_images_is_refused_before_any_worker(cli_error, tmp_path):
    out = tmp_path / "run"
    # LeNet-5 needs 12x12 images, DenseNet-121 32x32: found by the pre-run checks, with the fix.
    cli_error("compare", "digits", "--image-size", "8", "--frameworks", "torch", "--out", out,
              fragments=("lenet5 cannot take the 8x8 images of sklearn.datasets.load_digits: it needs at least "
                         "12x12 (pass --image-size 12 or larger)",))
    cli_error("compare", "digits", "--models", "lenet5,densenet121-imagenet", "--frameworks", "torch",
              "--out", out, fragments=("densenet121-imagenet cannot take the 28x28 images",
                                       "pass --image-size 29 or larger"))
    assert not out.exists()


def test_the_parent_starts_no_device_when_checking_frameworks():
    """On a GPU, an XLA client started in the parent would hold 75% of the device's memory while
    the workers run, and a CUDA context would hold hundreds of MB: availability must not start
    either. (Reads JAX's private backend table, the only place that tells.)"""
    import subprocess

    code = (
        "from pybench.run.checks import check_requested_frameworks\n"
        "check_requested_frameworks(('torch', 'jax', 'knet'))\n"
        "import sys, torch, jax._src.xla_bridge as xb\n"
        "assert not xb._backends, xb._backends\n"
        "assert not torch.cuda.is_initialized()\n"
        "assert 'juliacall' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_compile_runs_torch_compile_as_its_own_framework_beside_torch(run_cli, tmp_path):
    out = tmp_path / "run"
    # A cache of its own: Inductor keeps compiled graphs in /tmp/torchinductor_<user> across
    # runs, and a warm cache would make the compiling first step fast (a rerun on one machine).
    result = run_cli("compare", "digits", "--frameworks", "torch", "--compile", "--max-steps",
                     "30", "--out", out, timeout=900,
                     env={"TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor-cache")})
    assert result.returncode == 0, result.stderr[-3000:]
    doc = json.loads((out / "results.json").read_text())
    assert doc["config"]["frameworks"] == ["torch", "torch.compile"]
    plain, compiled = doc["runs"]
    assert (plain["framework"], compiled["framework"]) == ("torch", "torch.compile")
    assert plain["compiled"] is False and compiled["compiled"] is True
    assert compiled["status"] == "ok" and compiled["steps"] == 30
    # The same model and batches: the compiled kernels may round differently, nothing more.
    np.testing.assert_allclose(compiled["losses"][:10], plain["losses"][:10], rtol=1e-4)
    assert compiled["init_fingerprint"] == plain["init_fingerprint"]
    # Its compilation is in the first step, reported apart from the step-time statistics.
    assert compiled["first_step_s"] > 1.0 > plain["first_step_s"]
    assert compiled["step_time_ms"]["n"] == 29
    summary = pd.read_csv(out / "summary.csv")
    assert sorted(summary["framework"]) == ["torch", "torch.compile"]


def test_compile_without_torch_is_a_one_line_error(cli_error):
    cli_error("compare", "digits", "--frameworks", "jax", "--compile",
              fragments=("--compile runs torch.compile beside torch",))


@pytest.mark.slow
def test_several_seeds_pair_the_frameworks_and_the_headline_gives_intervals(run_cli, tmp_path):
    out = tmp_path / "run"
    result = run_cli("compare", "digits", "--frameworks", "torch,jax", "--seeds", "0,1,2",
                     "--repeats", "2", "--max-steps", "40", "--out", out)
    assert result.returncode == 0, result.stderr[-3000:]
    doc = json.loads((out / "results.json").read_text())
    assert doc["config"]["seeds"] == [0, 1, 2] and doc["config"]["repeats"] == 2
    runs = doc["runs"]
    # Per seed and repeat, every framework in turn: a slow phase falls on all of them.
    assert [(r["seed"], r["repeat"], r["framework"]) for r in runs] == [
        (s, k, f) for s in (0, 1, 2) for k in (0, 1) for f in ("torch", "jax")]
    for run in runs:
        assert run["status"] == "ok", run
        assert run["predictions"] == f"predictions/{run['framework']}-lenet5-s{run['seed']}-r{run['repeat']}.npz"
        assert (out / run["predictions"]).is_file()
        # the forward check holds each run against torch's run of the same seed and repeat
        assert run["parity"]["ok"] and run["parity"]["reference"] == "torch"
        load = run["machine_load"]
        assert load["wall_s"] > 0 and load["other_cores"] >= 0 and isinstance(load["busy"], bool)
    by = {(r["seed"], r["repeat"], r["framework"]): r for r in runs}
    for seed in (0, 1, 2):  # paired: the same initial weights in every framework per seed
        prints = {by[(seed, k, f)]["init_fingerprint"] for k in (0, 1) for f in ("torch", "jax")}
        assert len(prints) == 1
        # a repeat is the same computation again: the same accuracy
        assert by[(seed, 0, "torch")]["test_accuracy"] == by[(seed, 1, "torch")]["test_accuracy"]
    assert by[(0, 0, "torch")]["init_fingerprint"] != by[(1, 0, "torch")]["init_fingerprint"]
    # The console: one aggregated row per framework, then the verdicts with their intervals.
    assert "accuracy 95% interval %" in result.stdout
    headline = next(line for line in result.stdout.splitlines() if line.startswith("- lenet5:"))
    assert "Accuracy over 3 seeds" in headline and "Paired by seed: " in headline
    assert re.search(r"\d\.\d\d× \[\d\.\d\d, \d\.\d\d\]", headline) or \
        "no measurable difference" in headline or "not compared" in headline, headline
    report = (out / "report.md").read_text()
    seeds = report.split("## Seeds aggregated")[1].split("\n## ")[0]
    assert "| torch | lenet5 |" in seeds and "| 6 | 0, 1, 2 | 2 |" in seeds
    # What the predictions say together: a McNemar test per seed, the ensembles; stored and shown.
    test_set = doc["test_set"]["lenet5"]
    assert [(p["a"], p["b"], p["seed"]) for p in test_set["pairs"]] == [("torch", "jax", s) for s in (0, 1, 2)]
    for pair in test_set["pairs"]:
        counts = pair["both_right"] + pair["only_a_right"] + pair["only_b_right"] + pair["both_wrong"]
        assert counts == by[(pair["seed"], 0, "torch")]["test_images"] == 360
        assert 0 <= pair["p"] <= pair["p_holm"] <= 1
        assert pair["agreement"] >= (pair["both_right"] + pair["both_wrong"]) / counts
    assert {e["ensemble"] for e in test_set["ensembles"]} == {
        "torch, 3 seeds", "jax, 3 seeds", "torch + jax, seed 0", "torch + jax, seed 1", "torch + jax, seed 2",
        "all 6 runs"}
    section = report.split("## Same mistakes?")[1].split("\n## ")[0]
    assert "| torch vs jax | 0 |" in section and "McNemar exact p" in section and "| torch, 3 seeds | 3 |" in section
    html = (out / "report.html").read_text()
    assert "Same mistakes?" in html and "Holm-adjusted p" in html and "all 6 runs" in html


@pytest.mark.parametrize("args, fragments", [
    (("--seed", "1", "--seeds", "0,1"), ("--seed 1 and --seeds 0,1", "give one")),
    (("--seeds", "0,1,0"), ("names 0 more than once",)),
    (("--seeds", "0,-1"), ("'-1' must not be negative",)),
    (("--repeats", "0"), ("--repeats",)),
])
def test_bad_seed_options_are_one_line_errors(cli_error, args, fragments):
    cli_error("compare", "digits", "--frameworks", "torch", *args, fragments=fragments)

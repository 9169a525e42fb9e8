"""Tests of pybench.report against run directories whose metrics are known by construction.

Two stored runs are built in temporary directories:
- binary ("normal"/"pneumonia", resnet18): torch and jax predict identically, with confusion
  [[40, 10], [0, 50]] and perfectly ranked probabilities (AUC 1.0); knet is unavailable.
- ten classes (digits, lenet5): torch confuses 2 threes as fives and 1 seven as a one, jax is
  perfect (agreement 0.97) but starts from a different init fingerprint; knet failed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pybench import evaluation
from pybench.errors import PybenchError
from pybench.report import summary_table, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
INIT = "a" * 64
OTHER_INIT = "b" * 64
DATA = "c" * 64
BINARY_CONFUSION = np.array([[40, 10], [0, 50]])
DIGITS_ERRORS = {(3, 5): 2, (7, 1): 1}  # (true, predicted): count; every other image is right


# --- building stored runs ---------------------------------------------------------------------


def binary_logits() -> tuple[np.ndarray, np.ndarray]:
    """Logit margins d = logit1 - logit0 giving BINARY_CONFUSION and separable probabilities.

    Negatives: 40 at d=-2 (right), 10 at d=+0.5 (false positives); positives: d in [1, 3].
    Every positive outranks every negative, so AUC is 1.0 though the 0.5 threshold errs.
    """
    margins = np.concatenate([np.full(40, -2.0), np.full(10, 0.5), np.linspace(1.0, 3.0, 50)])
    labels = np.repeat([0, 1], 50)
    return labels, np.stack([np.zeros_like(margins), margins], axis=1).astype(np.float32)


def digits_logits(errors: dict[tuple[int, int], int]) -> tuple[np.ndarray, np.ndarray]:
    """Ten of each digit; one-hot logits of the predicted class, wrong as `errors` says."""
    labels = np.repeat(np.arange(10), 10)
    predicted = labels.copy()
    for (true, wrong), count in errors.items():
        predicted[np.flatnonzero(labels == true)[:count]] = wrong
    return labels, (5.0 * np.eye(10)[predicted]).astype(np.float32)


def ok_run(framework: str, model: str, median_ms: float, accuracy: float,
           init: str = INIT, predictions: str | None = None) -> dict:
    rng = np.random.default_rng(len(framework))
    steps = [400.0] + list(median_ms + rng.normal(0, 0.5, 60))  # first step compiles
    return {
        "framework": framework, "model": model, "status": "ok", "reason": "",
        "framework_version": "1.0", "device": "cpu", "device_name": "cpu",
        "test_accuracy": accuracy, "val_accuracy": None,
        "epoch_accuracy": [accuracy - 0.05, accuracy], "epoch_s": [3.0, 2.0], "epochs_run": 2,
        "steps": len(steps),
        "step_time_ms": {"median": median_ms, "iqr": 0.6, "p90": median_ms + 0.8,
                         "mean": median_ms, "n": len(steps) - 1},
        "first_step_s": 0.4, "images_per_s": 128 / median_ms * 1000, "time_to_target_s": None,
        "peak_memory_bytes": 512_000_000, "memory_kind": "rss",
        "n_params": 61706, "flops_per_image": 833040,
        "init_fingerprint": init, "data_fingerprint": DATA, "data_on_device": True,
        "step_times_ms": steps, "losses": list(np.linspace(2.3, 0.1, len(steps))),
        "parity": {"max_abs_logit_diff_eval": 3e-6, "max_abs_logit_diff_train": 4e-6,
                   "reference": "torch", "ok": True},
        "predictions": predictions,
    }


def not_run(framework: str, model: str, status: str, reason: str) -> dict:
    return {"framework": framework, "model": model, "status": status, "reason": reason}


def write_run_dir(root: Path, classes: list[str], runs: list[dict],
                  predictions: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    """A run directory as `compare` writes it: results.json and predictions/*.npz."""
    (root / "predictions").mkdir(parents=True)
    for relative, (labels, logits) in predictions.items():
        np.savez(root / relative, labels=labels.astype(np.int64), logits=logits)
    results = {
        "schema": 1, "pybench_version": "0.1.0", "created": "2026-11-22T02:10:00+00:00",
        "command": "python -m pybench compare test --frameworks torch,jax,knet",
        "machine": {"cpu": "Test CPU", "cores": 2, "memory_gb": 24.0, "gpus": [],
                    "cuda_driver": None, "python": "3.11.7", "platform": "Linux-test"},
        "config": {"dataset": "test", "frameworks": ["torch", "jax", "knet"], "epochs": 2,
                   "batch_size": 128, "seed": 0, "device": "cpu", "target_accuracy": None,
                   "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.0}},
        "dataset": {"name": "test", "fingerprint": "d" * 64, "classes": classes,
                    "in_shape": [1, 28, 28], "train_size": 1000, "val_size": 0,
                    "test_size": 100, "mean": [0.5], "std": [0.25]},
        "runs": runs,
    }
    (root / "results.json").write_text(json.dumps(results))
    return root


def make_binary_run(root: Path) -> Path:
    labels, logits = binary_logits()
    jitter = np.random.default_rng(0).normal(0, 1e-4, logits.shape).astype(np.float32)
    return write_run_dir(root, ["normal", "pneumonia"], [
        ok_run("torch", "resnet18", 10.0, 0.90, predictions="predictions/torch-resnet18.npz"),
        ok_run("jax", "resnet18", 25.0, 0.90, predictions="predictions/jax-resnet18.npz"),
        not_run("knet", "resnet18", "unavailable",
                "knet is unavailable: juliacall is not installed"),
    ], {"predictions/torch-resnet18.npz": (labels, logits),
        "predictions/jax-resnet18.npz": (labels, logits + jitter)})


def make_digits_run(root: Path) -> Path:
    return write_run_dir(root, [str(d) for d in range(10)], [
        ok_run("jax", "lenet5", 6.0, 1.00, init=OTHER_INIT,
               predictions="predictions/jax-lenet5.npz"),
        ok_run("torch", "lenet5", 4.0, 0.97, predictions="predictions/torch-lenet5.npz"),
        not_run("knet", "lenet5", "failed", "julia exited | status 1\nsee log"),
        not_run("torch", "vgg11", "failed", "out of memory"),
    ], {"predictions/torch-lenet5.npz": digits_logits(DIGITS_ERRORS),
        "predictions/jax-lenet5.npz": digits_logits({})})


@pytest.fixture(scope="module")
def binary_report(tmp_path_factory) -> Path:
    return write_report(make_binary_run(tmp_path_factory.mktemp("binary")))


@pytest.fixture(scope="module")
def digits_report(tmp_path_factory) -> Path:
    return write_report(make_digits_run(tmp_path_factory.mktemp("digits")))


def section(text: str, heading: str) -> str:
    """The markdown from `heading` up to the next heading of the same or higher level."""
    start = text.index(heading + "\n")
    level = heading.split()[0]
    rest = text[start + len(heading):]
    ends = [rest.find("\n" + "#" * n + " ") for n in range(1, len(level) + 1)]
    ends = [e for e in ends if e >= 0]
    return rest[: min(ends)] if ends else rest


def table_row(text: str, first_cell: str) -> list[str]:
    """The cells of the markdown table row whose first cell is `first_cell` (\\| is not a bar)."""
    for line in text.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        if line.startswith("|") and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no table row starting with {first_cell!r}")


# --- binary task -----------------------------------------------------------------------------


def test_binary_report_states_known_confusion_accuracy_and_auc(binary_report):
    text = binary_report.read_text()
    torch_part = section(text, "### torch")
    assert table_row(torch_part, "true normal")[1:] == ["40", "10"]
    assert table_row(torch_part, "true pneumonia")[1:] == ["0", "50"]
    overview = section(text, "### Test-set metrics")
    # framework, accuracy %, its 95% interval, test images, sensitivity, specificity, AUC, its interval
    row = table_row(overview, "torch")
    assert row[:2] == ["torch", "90.00"] and row[3:] == ["100", "1.0000", "0.8000", "1.0000", "[1.000, 1.000]"]
    low, high = (float(x) for x in row[2].strip("[]").split(","))
    assert 82 < low < 88 and 93 < high < 97  # 90% of 100 images: about ±6 points
    assert table_row(overview, "jax")[-2] == "1.0000"


def test_binary_per_class_rates_match_the_confusion_matrix(binary_report):
    torch_part = section(binary_report.read_text(), "### torch")
    # class, accuracy, specificity, false positive rate, miss rate, precision, recall, f1, support
    assert table_row(torch_part, "pneumonia") == [
        "pneumonia", "0.9000", "0.8000", "0.2000", "0.0000", "0.8333", "1.0000", "0.9091", "50"]
    assert table_row(torch_part, "normal") == [
        "normal", "0.9000", "1.0000", "0.0000", "0.2000", "1.0000", "0.8000", "0.8889", "50"]


def test_the_report_reads_the_scores_stored_in_the_record(tmp_path):
    """The per-class figures and intervals come from each run's stored `evaluation`, not from
    a second computation in the report: a record's figures are what the reader sees."""
    root = make_binary_run(tmp_path / "stored")
    results = json.loads((root / "results.json").read_text())
    labels, logits = binary_logits()
    stored = evaluation.evaluate(logits, labels, ["normal", "pneumonia"], normal_class="normal")
    stored["score_interval"] = [0.123456, 0.987654]  # a figure only the record holds
    results["runs"][0]["evaluation"] = stored
    (root / "results.json").write_text(json.dumps(results))
    text = write_report(root).read_text()
    assert table_row(section(text, "### Test-set metrics"), "torch")[2] == "[12.35, 98.77]"
    torch_part = section(text, "### torch")
    assert "predicted as normal" in torch_part
    assert table_row(torch_part, "pneumonia")[-1] == "0.0000"  # every pneumonia called pneumonia
    assert table_row(torch_part, "normal")[-1] == "0.8000"
    assert "Paired accuracy differences against torch" in text


def test_identical_predictions_agree_fully(binary_report):
    text = binary_report.read_text()
    agreement = section(text, "## Model: resnet18").split("Agreement:")[1]
    assert table_row(agreement, "torch")[1:] == ["1.0000", "1.0000"]


def test_unavailable_run_is_listed_with_its_reason(binary_report):
    text = binary_report.read_text()
    # Said once, in the headline, with the reason (which names the fix); not again per model.
    headline = section(text, "## Headline")
    assert "- **knet** left out (unavailable): knet is unavailable: juliacall is not installed" in headline
    assert "knet: **unavailable**" not in text
    summary = section(text, "## Summary")
    knet = table_row(summary, "knet")
    assert "unavailable" in knet and "knet is unavailable: juliacall is not installed" in knet


def test_report_header_names_command_machine_and_dataset(binary_report):
    header = binary_report.read_text().split("## Fidelity")[0]
    assert "`python -m pybench compare test --frameworks torch,jax,knet`" in header
    assert "Test CPU; 2 cores; 24.0 GB RAM; GPU: none" in header
    assert "1,000 train / 0 val / 100 test" in header and "2 classes (normal, pneumonia)" in header
    assert "sgd lr=0.05 momentum=0.9 weight_decay=0.0" in header


def test_figures_are_valid_pngs_linked_relatively(binary_report):
    text = binary_report.read_text()
    for name in ("confusion-resnet18.png", "roc-resnet18.png", "curves-resnet18.png",
                 "step-times-resnet18.png"):
        path = binary_report.parent / name
        data = path.read_bytes()
        assert data[:8] == PNG_MAGIC, name
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert len(data) > 5_000 and width > 300 and height > 200, name
        assert f"]({name})" in text


# --- ten classes -----------------------------------------------------------------------------


def test_multiclass_confusion_matches_the_constructed_errors(digits_report):
    torch_part = section(digits_report.read_text(), "### torch")
    expected = 10 * np.eye(10, dtype=int)
    for (true, wrong), count in DIGITS_ERRORS.items():
        expected[true, true] -= count
        expected[true, wrong] += count
    for digit in range(10):
        assert table_row(torch_part, f"true {digit}")[1:] == [str(n) for n in expected[digit]]
    overview = section(digits_report.read_text(), "### Test-set metrics")
    assert table_row(overview, "torch")[1] == "97.00"


def test_multiclass_auc_and_agreement(digits_report):
    text = digits_report.read_text()
    overview = section(text, "### Test-set metrics")
    assert table_row(overview, "jax")[-2] == "1.0000"  # perfect one-hot logits: macro AUC 1
    agreement = section(text, "## Model: lenet5").split("Agreement:")[1]
    assert table_row(agreement, "jax")[1:] == ["1.0000", "0.9700"]
    # Per-class one-vs-rest AUC for class 3: torch ranks the two misread threes last.
    assert float(table_row(section(text, "### torch"), "3")[-2]) < 1.0
    assert (digits_report.parent / "roc-lenet5.png").read_bytes()[:8] == PNG_MAGIC


def test_fidelity_flags_a_differing_init_fingerprint(digits_report):
    fidelity = section(digits_report.read_text(), "## Fidelity")
    lenet = fidelity.split("**lenet5**")[1].split("- **")[0]
    assert "initial weights: **DIFFER** (red flag)" in lenet
    assert "`bbbbbbbb`: jax" in lenet and "`aaaaaaaa`: torch" in lenet
    assert "training data: **identical** across jax, torch (`cccccccc`)" in lenet
    assert "test labels: **identical**" in lenet
    assert "3.00e-06" in fidelity  # forward parity figures per run


def test_failed_runs_do_not_break_the_report(digits_report):
    text = digits_report.read_text()
    assert "knet: **failed** — julia exited | status 1 see log" in text  # on one line
    knet = table_row(section(text, "## Summary"), "knet")  # the | escaped in the table cell
    assert knet[2] == "failed" and knet[-1] == "julia exited \\| status 1 see log"
    assert "## Model: vgg11" in text and "out of memory" in text


# --- summary table ---------------------------------------------------------------------------


def test_summary_ratio_is_relative_to_the_fastest_ok_run_of_the_model(tmp_path):
    run_dir = make_digits_run(tmp_path / "digits")
    table = summary_table(json.loads((run_dir / "results.json").read_text()))
    assert list(zip(table["model"], table["framework"])) == [
        ("lenet5", "torch"), ("lenet5", "jax"), ("lenet5", "knet"), ("vgg11", "torch")]
    assert table["× fastest"].iloc[:2].tolist() == pytest.approx([1.0, 1.5])
    assert table["× fastest"].iloc[2:].isna().all()
    torch = table.iloc[0]
    assert torch["test accuracy %"] == pytest.approx(97.0)
    assert torch["peak memory MB"] == pytest.approx(512.0) and torch["memory kind"] == "rss"
    assert torch["MFLOPs/image"] == pytest.approx(0.83304)
    assert torch["init fingerprint"] == "aaaaaaaa" and torch["epoch s (mean)"] == pytest.approx(2.5)
    knet = table.iloc[2]
    assert knet["status"] == "failed" and pd.isna(knet["step median ms"])
    assert knet["reason"] == "julia exited | status 1 see log"


def test_summary_in_markdown_shows_the_ratio(binary_report):
    summary = section(binary_report.read_text(), "## Summary")
    header = table_row(summary, "framework")
    jax = table_row(summary, "jax")
    assert jax[header.index("× fastest")] == "2.50"
    assert table_row(summary, "torch")[header.index("× fastest")] == "1.00"
    assert "time to target s" not in header  # no run reached a target: column left out
    assert (binary_report.parent / "summary.csv").is_file()


# --- options ---------------------------------------------------------------------------------


def test_no_plots_and_out_dir(tmp_path):
    run_dir = make_binary_run(tmp_path / "run")
    report = write_report(run_dir, out_dir=tmp_path / "elsewhere", plots=False)
    assert report == tmp_path / "elsewhere" / "report.md"
    assert "![" not in report.read_text() and "90.00" in report.read_text()
    assert not list((tmp_path / "elsewhere").glob("*.png"))
    assert not (run_dir / "report.md").exists()


def test_diverged_run_and_run_without_predictions_still_report(tmp_path):
    run_dir = make_binary_run(tmp_path / "run")
    labels, logits = binary_logits()
    logits[3] = np.nan  # a diverged model: its numbers are a result, not an input error
    np.savez(run_dir / "predictions" / "jax-resnet18.npz", labels=labels, logits=logits)
    results = json.loads((run_dir / "results.json").read_text())
    results["runs"].append(ok_run("knet", "resnet18", 30.0, 0.5))  # lists no predictions
    (run_dir / "results.json").write_text(json.dumps(results))
    text = write_report(run_dir, plots=False).read_text()
    assert table_row(section(text, "### Test-set metrics"), "jax")[-1] == "—"  # no AUC
    assert "no predictions stored for: knet" in text


# --- invalid input ---------------------------------------------------------------------------


def assert_one_line_error(run_dir: Path, file_name: str, words: str) -> None:
    with pytest.raises(PybenchError) as info:
        write_report(run_dir, plots=False)
    message = str(info.value)
    assert "\n" not in message and file_name in message and words in message, message


def test_missing_results_json(tmp_path):
    assert_one_line_error(tmp_path, "results.json", "not found")


def test_results_not_json(tmp_path):
    (tmp_path / "results.json").write_text("{not json")
    assert_one_line_error(tmp_path, "results.json", "not valid JSON")


@pytest.mark.parametrize("change, words", [
    ({"schema": 2}, "written by a newer pybench (results schema 2; this pybench reads 1)"),
    ({"schema": "1"}, "schema version '1' is not supported"),
    ({"runs": {"torch": {}}}, "'runs' must be a list"),
    ({"runs": [{"framework": "torch"}]}, "runs[0] lacks model, status"),
])
def test_wrong_schema(tmp_path, change, words):
    run_dir = make_binary_run(tmp_path / "run")
    results = json.loads((run_dir / "results.json").read_text())
    (run_dir / "results.json").write_text(json.dumps({**results, **change}))
    assert_one_line_error(run_dir, "results.json", words)


@pytest.mark.parametrize("field, value, words", [
    ("peak_flops_per_s", "garbage", "runs[0].peak_flops_per_s is 'garbage', not a number"),
    ("test_accuracy", True, "runs[0].test_accuracy is True, not a number"),
    ("step_time_ms", {"median": "fast"}, "runs[0].step_time_ms.median is 'fast', not a number"),
    ("step_time_ms", [1.0], "runs[0].step_time_ms must be an object"),
])
def test_a_run_field_that_is_not_a_number_is_one_line(tmp_path, field, value, words):
    run_dir = make_binary_run(tmp_path / "run")
    results = json.loads((run_dir / "results.json").read_text())
    results["runs"][0][field] = value
    (run_dir / "results.json").write_text(json.dumps(results))
    assert_one_line_error(run_dir, "results.json", words)


def test_listed_predictions_missing(tmp_path):
    run_dir = make_binary_run(tmp_path / "run")
    (run_dir / "predictions" / "jax-resnet18.npz").unlink()
    assert_one_line_error(run_dir, "jax-resnet18.npz", "not found")
    assert not (run_dir / "report.md").exists()  # checked before anything is written


def test_predictions_with_wrong_class_count(tmp_path):
    run_dir = make_binary_run(tmp_path / "run")
    labels, _ = binary_logits()
    np.savez(run_dir / "predictions" / "jax-resnet18.npz", labels=labels, logits=np.zeros((100, 3)))
    assert_one_line_error(run_dir, "jax-resnet18.npz", "3 logit columns")


# --- no framework imports -------------------------------------------------------------------


def test_report_never_imports_a_framework(tmp_path):
    """Even attempted imports of a framework are caught, whether or not it is installed here."""
    run_dir = make_digits_run(tmp_path / "run")
    # Every registered framework's distributions (a new framework is covered once registered), and
    # the libraries a report might be tempted to borrow from.
    from pybench.frameworks import FRAMEWORKS

    refused = sorted({d for f in FRAMEWORKS.values() for d in f.distributions} | {"flax", "tensorflow", "keras"})
    assert {"torch", "jax", "juliacall"} <= set(refused)
    code = f"""
import sys
FRAMEWORKS = {tuple(refused)!r}
attempted = []
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in FRAMEWORKS:
            attempted.append(name)
            raise ImportError("framework import refused in the report: " + name)
sys.meta_path.insert(0, Refuse())
import pybench.report
pybench.report.write_report({str(run_dir)!r})
loaded = [m for m in FRAMEWORKS if m in sys.modules]
assert not attempted and not loaded, (attempted, loaded)
print("clean")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "clean", done.stderr[-2000:]


def test_share_of_peak_is_against_the_best_rate_on_the_device():
    # 3 x 833,040 forward FLOPs x batch 128 in 10 ms = 31.99 GFLOP/s; the device's best
    # measured rate is jax's 200 GFLOP/s, so both runs are judged against it.
    runs = [{**ok_run("torch", "lenet5", 10.0, 0.9), "peak_flops_per_s": 100e9},
            {**ok_run("jax", "lenet5", 20.0, 0.9), "peak_flops_per_s": 200e9},
            {**ok_run("knet", "lenet5", 10.0, 0.9), "device_name": "another"}]
    table = summary_table({"config": {"batch_size": 128}, "runs": runs}).set_index("framework")
    assert table.loc["torch", "% of peak"] == pytest.approx(100 * 3 * 833040 * 128 / 0.01 / 200e9)
    assert table.loc["jax", "% of peak"] == pytest.approx(table.loc["torch", "% of peak"] / 2)
    assert pd.isna(table.loc["knet", "% of peak"])  # no rate measured on its device


def test_a_framework_left_out_is_said_once_whatever_the_seeds(tmp_path):
    """compare's console summary and the report's headline name an unavailable framework once,
    with its reason, however many seeds and models had to leave it out."""
    from pybench.report.console import summary_text
    from pybench.report.headline import left_out_lines

    reason = "juliacall is not installed: pip install -e '.[julia]' (docs/julia.md)"
    runs = []
    for seed in (0, 1, 2):
        for model in ("lenet5", "resnet8"):
            run = {**ok_run("torch", model, 10.0 + seed, 0.9), "seed": seed, "repeat": 0}
            run.pop("parity", None)  # no forward check: one framework ran
            runs.append(run)
            runs.append({**not_run("knet", model, "unavailable", reason), "seed": seed,
                         "repeat": 0})
    document = {"config": {"dataset": "digits"}, "runs": runs}
    assert left_out_lines(document) == [f"- **knet** left out (unavailable): {reason}"]
    text = summary_text(document)
    assert text.count(reason) == 1, text
    assert f"knet left out (unavailable): {reason}" in text


def test_the_example_grid_and_the_training_maps_come_from_the_stored_arrays(tmp_path):
    """With train embeddings and example images in the prediction files, the report draws the
    t-SNE of both splits and a grid of the examples that counts each framework's wrong calls."""
    root = make_digits_run(tmp_path / "digits")
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 10)
    index = np.concatenate([np.flatnonzero(labels == k)[:2] for k in range(10)])
    for name in ("torch", "jax"):
        path = root / f"predictions/{name}-lenet5.npz"
        with np.load(path) as arrays:
            stored = dict(arrays)
        centres = rng.normal(0, 5, (10, 6))
        stored.update(embeddings=centres[labels[:40]] + rng.normal(0, 1, (40, 6)),
                      train_embeddings=centres[labels[:60] % 10] + rng.normal(0, 1, (60, 6)),
                      train_labels=labels[:60], example_index=index,
                      example_images=rng.integers(0, 256, (len(index), 1, 8, 8), dtype=np.uint8))
        np.savez(path, **stored)
    text = write_report(root).read_text()
    assert "60 training images (top row) and 40 test images (bottom row)" in text
    # torch misreads the first two 3s (as 5s) and the first 7 (as a 1), all among the first two
    # images of their class, the examples: 3 of 20 wrong; jax none.
    assert "Wrong here: jax 0 of 20, torch 3 of 20." in text
    data = (root / "examples-lenet5.png").read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 10_000

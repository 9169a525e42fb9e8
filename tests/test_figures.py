"""Legible figures: the check itself (`tests/legibility.py`) catches what a reader would, and every
figure pybench draws passes it: text that overlaps, a legend over data, a line hidden under an
identical one. The report's figures of real runs are checked where those runs are made (the
three-seed, two-model time-to-result run; the tuned search); here, the figure functions on the
shapes of data that broke them before."""

from __future__ import annotations

import numpy as np
import pytest
from legibility import collecting_figures, problems
from matplotlib.figure import Figure

from pybench.report import plots
from pybench.report.tuning import trials_figure


def test_the_check_catches_overlapping_labels_a_covering_legend_and_a_hidden_line():
    crowded = Figure(figsize=(4, 3.4))
    ax = crowded.subplots()
    ax.scatter([0.011, 0.02, 0.03, 0.049], [1, 2, 3, 4])
    ax.set_xscale("log")  # matplotlib labels every minor tick of one decade: "3x10^-2" runs into "4x10^-2"
    assert any("overlaps" in p for p in problems(crowded))
    covered = Figure(figsize=(4, 3))
    ax = covered.subplots()
    ax.plot(np.linspace(0, 1, 50), np.linspace(0, 1, 50), label="a line through the corner")
    ax.legend(loc="upper left", fontsize=14)
    ax.plot([0, 1], [0.95, 0.95], label="_")
    assert any("legend covers" in p for p in problems(covered))
    hidden = Figure()
    ax = hidden.subplots()
    ax.plot([1, 2, 3], [4, 5, 6], label="torch")
    ax.plot([1, 2, 3], [4, 5, 6], label="jax")
    assert problems(hidden) == ["line 'jax' hides line 'torch' in ''"]


def identical_runs(epochs: int = 3, steps: int = 60) -> list[dict]:
    """Two frameworks that computed the same thing (bit-identical curves), as LeNet-5 on digits
    gives in torch and JAX."""
    rng = np.random.default_rng(0)
    losses = list(np.linspace(2.3, 0.3, steps) + rng.normal(0, 0.05, steps))
    accuracy = list(np.linspace(0.6, 0.95, epochs))
    def falling(start: float, end: float) -> list[float]:
        return list(np.linspace(start, end, epochs))

    run = {"losses": losses, "epoch_accuracy": accuracy, "epoch_val_accuracy": accuracy, "kept_epoch": epochs,
           "epoch_train_loss": falling(2, 0.3), "epoch_test_loss": falling(1.8, 0.4),
           "epoch_val_loss": falling(1.9, 0.45), "epoch_train_accuracy": falling(0.5, 0.97),
           "learning_rates": list(np.linspace(0.05, 0, steps))}
    return [{**run, "framework": framework} for framework in ("torch", "jax", "knet")]


def test_curves_of_identical_runs_stay_visible_and_their_legends_sit_off_the_data(tmp_path, monkeypatch):
    runs = identical_runs()
    with collecting_figures(monkeypatch) as seen:
        plots.training_curves(runs, "lenet5: training", tmp_path / "curves.png")
        plots.train_test_panels(runs, "lenet5: train against test, per epoch", tmp_path / "train-test.png")
        steps = {f"{f}\ns{s}": np.random.default_rng(s).gamma(9, 0.3, 300) for f in ("torch", "jax", "knet")
                 for s in range(5)}
        plots.step_time_box(steps, "lenet5: step time (first step excluded)", tmp_path / "steps.png", {"jax\ns2"})
    assert [(name, found) for name, found in seen if found] == []


@pytest.mark.parametrize("low, high", [(0.01, 0.05), (0.003, 0.3), (1e-5, 0.3)])
def test_the_trials_figure_labels_a_log_axis_legibly_over_any_span(tmp_path, monkeypatch, low, high):
    rng = np.random.default_rng(0)
    runs = [{"phase": "trial", "trial": k, "framework": framework, "model": "lenet5", "status": "ok",
             "objective": rng.uniform(0.2, 0.9), "test_accuracy": 0.5, "trial_state": "complete",
             "config": {"lr": float(np.exp(rng.uniform(np.log(low), np.log(high)))),
                        "momentum": float(rng.uniform(0.5, 0.95))}}
            for k in range(8) for framework in ("torch", "jax")]
    document = {"tuning": {"space": {"lr": f"log_uniform[{low}, {high}]", "momentum": "uniform[0.5, 0.95]"}},
                "runs": runs, "config": {"frameworks": ["torch", "jax"]}}
    with collecting_figures(monkeypatch) as seen:
        assert trials_figure(document, "lenet5", tmp_path) == "tuning-lenet5.png"
    assert seen == [("tuning-lenet5.png", [])]


def test_the_disputed_images_and_a_history_series_are_legible(tmp_path, monkeypatch):
    import json

    import pandas as pd

    from pybench.history.page import series_figure

    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (12, 1, 28, 28), dtype=np.uint8)
    disputed = [{"index": i * 37, "true": "pneumonia", "torch": "normal pneumonia normal",
                 "jax": "pneumonia pneumonia normal", "knet": "normal normal normal"} for i in range(12)]
    n = 36
    steps = np.r_[10 * np.exp(rng.normal(0, 0.02, 30)), 12 * np.exp(rng.normal(0, 0.02, 6))]
    series = pd.DataFrame({
        "framework": "torch", "framework_version": ["2.13.0"] * 20 + ["2.14.1+cu130"] * 16, "busy": [0] * 33 + [1] * 3,
        "step_ms": steps, "step_low_ms": steps * 0.97, "step_high_ms": steps * 1.03,
        "accuracy": rng.normal(0.96, 0.003, n), "accuracy_low": 0.94, "accuracy_high": 0.975,
        "time_to_target_s": None, "peak_memory_bytes": 3e8 + rng.normal(0, 1e6, n),
        "config": json.dumps({"batch_size": 64}), "machine": json.dumps({"cpu": "AMD EPYC", "cores": 2})})
    with collecting_figures(monkeypatch) as seen:
        plots.disputed_grid(images, disputed, ["torch", "jax", "knet"], "lenet5: the test images the frameworks "
                            "disagree on most", tmp_path / "disputed.png")
        series_figure(series, "torch lenet5 on digits, batch 64 (AMD EPYC, 2 cores)", tmp_path / "series.png", 5.0)
    assert [(name, found) for name, found in seen] == [("disputed.png", []), ("series.png", [])]

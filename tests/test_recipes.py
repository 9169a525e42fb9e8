"""Training recipes through the real CLI: best-epoch restore, augmentation that every framework
sees identically, named recipes, and the one-line errors of their options."""

from __future__ import annotations

import json

import numpy as np
import pytest


def runs_of(out):
    return {r["framework"]: r for r in json.loads((out / "results.json").read_text())["runs"]}


@pytest.mark.slow
def test_patience_evaluates_the_best_epoch_in_every_framework(run_cli, tmp_path):
    # Measured: with lr 0.05 LeNet-5 on digits peaks in validation accuracy at epoch 5 and stops
    # at epoch 7 (torch 2.14.1): the final figures must be epoch 5's, not epoch 7's.
    out = tmp_path / "run"
    result = run_cli("compare", "digits", "--frameworks", "torch,jax", "--epochs", "12",
                     "--patience", "2", "--lr", "0.05", "--out", out, "--no-report")
    assert result.returncode == 0, result.stderr[-2000:]
    runs = runs_of(out)
    for run in runs.values():
        kept = run["kept_epoch"]
        assert kept < run["epochs_run"], run["epoch_val_accuracy"]
        assert kept == int(np.argmax(run["epoch_val_accuracy"])) + 1  # the first best
        assert run["test_accuracy"] == run["epoch_accuracy"][kept - 1]
        assert run["test_accuracy"] != run["epoch_accuracy"][-1]
        predictions = np.load(out / run["predictions"])
        assert np.mean(predictions["logits"].argmax(1) == predictions["labels"]) == \
            pytest.approx(run["test_accuracy"])
    assert runs["torch"]["kept_epoch"] == runs["jax"]["kept_epoch"]


@pytest.mark.slow
def test_augmented_pixels_are_the_same_in_every_framework(run_cli, tmp_path):
    out = tmp_path / "run"
    result = run_cli("compare", "digits", "--frameworks", "torch,jax", "--epochs", "2",
                     "--augment", "crop,rotate", "--schedule", "cosine", "--optimizer", "adamw",
                     "--out", out, "--no-report")
    assert result.returncode == 0, result.stderr[-2000:]
    torch_run, jax_run = runs_of(out).values()
    prints = torch_run["augment_fingerprints"]
    assert len(prints) == 2 and prints[0] != prints[1]  # drawn anew each epoch
    assert jax_run["augment_fingerprints"] == prints
    for run in (torch_run, jax_run):
        assert len(run["augment_s"]) == 2 and all(s > 0 for s in run["augment_s"])
        # The augmentation is outside the steps: the epochs are the sum of their steps.
        assert sum(run["epoch_s"]) == pytest.approx(sum(run["step_times_ms"]) / 1e3)
        assert run["test_accuracy"] > 0.5
    assert torch_run["learning_rates"] == jax_run["learning_rates"]
    assert torch_run["learning_rates"][-1] < torch_run["learning_rates"][0] / 100  # cosine to ~0
    # Same pixels, same schedule, same recipe: the frameworks end close together.
    assert abs(torch_run["test_accuracy"] - jax_run["test_accuracy"]) <= 0.02


def test_a_recipe_fills_in_only_what_the_command_line_leaves_out(run_cli, tmp_path):
    out = tmp_path / "run"
    result = run_cli("compare", "digits", "--frameworks", "torch", "--recipe", "mnist-fast",
                     "--epochs", "1", "--max-steps", "5", "--out", out, "--no-report")
    assert result.returncode == 0, result.stderr[-2000:]
    config = json.loads((out / "results.json").read_text())["config"]
    assert config["epochs"] == 1 and config["max_steps"] == 5  # given: kept
    assert config["batch_size"] == 128 and config["schedule"]["name"] == "onecycle"
    assert config["optimizer"] == {**config["optimizer"], "lr": 0.1, "nesterov": True,
                                   "label_smoothing": 0.1}
    assert config["target_accuracy"] == 0.99


@pytest.mark.parametrize("args, fragments", [
    (("--optimizer", "adam", "--nesterov"), ("--nesterov needs --optimizer sgd",)),
    (("--momentum", "0", "--nesterov"), ("--nesterov needs", "momentum above 0")),
    (("--augment", "flip,mixup"), ("--augment flip,mixup", "unknown mixup")),
    (("--schedule", "cosine", "--milestones", "2"), ("--milestones only applies",)),
    (("--schedule", "step", "--milestones", "3,2"), ("--milestones 3,2", "increasing")),
    (("--schedule", "cosine", "--warmup-steps", "500", "--max-steps", "10"),
     ("--warmup-steps 500", "10 steps")),
    (("--label-smoothing", "1"), ("'1' must lie in [0, 1)",)),
    (("--warmup-steps", "-3"), ("'-3' must not be negative",)),
    (("--recipe", "imagenet"), ("invalid choice: 'imagenet'",)),
])
def test_bad_recipe_options_are_one_line_errors(cli_error, args, fragments):
    cli_error("compare", "digits", "--frameworks", "torch", *args, fragments=fragments)

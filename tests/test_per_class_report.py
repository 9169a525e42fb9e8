"""The per-class figures an X-ray reader looks for, end to end: a four-class image folder (real
MNIST digits 0-3 saved as PNGs under the four class names of a COVID-19 radiography set), a real
`compare` in every framework with `--normal-class`, and what results.json, runs.csv,
per_class.csv and the report then hold."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pybench import evaluation

CLASSES = ["COVID-19", "lung opacity", "normal", "viral pneumonia"]  # digits 0, 1, 2, 3
PER_CLASS = 60
FRAMEWORKS = "torch,jax,knet" if os.environ.get("CI") else "torch,jax"


@pytest.fixture(scope="module")
def four_class_folder(mnist, tmp_path_factory):
    root = tmp_path_factory.mktemp("covid-like") / "radiography"
    for digit, name in enumerate(CLASSES):
        folder = root / name
        folder.mkdir(parents=True)
        for i, index in enumerate(np.flatnonzero(mnist.train.labels == digit)[:PER_CLASS]):
            Image.fromarray(mnist.train.images[index, 0]).save(folder / f"{name}-{i:03d}.png")
    return root


@pytest.mark.slow
def test_a_four_class_compare_records_and_reports_per_class_rates_with_intervals(
        run_cli, four_class_folder, tmp_path):
    out = tmp_path / "run"
    result = run_cli("compare", four_class_folder, "--frameworks", FRAMEWORKS, "--epochs", "4",
                     "--batch-size", "16", "--normal-class", "normal", "--embeddings", "40",
                     "--out", out, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    document = json.loads((out / "results.json").read_text())
    runs = [run for run in document["runs"] if run["status"] == "ok"]
    assert sorted(run["framework"] for run in runs) == sorted(FRAMEWORKS.split(","))
    for run in runs:
        scored = run["evaluation"]
        assert scored["score_name"] == "accuracy" and scored["normal_class"] == "normal"
        assert scored["score"] == pytest.approx(run["test_accuracy"])
        low, high = scored["score_interval"]
        assert low <= scored["score"] <= high and high - low > 0.01  # 48 test images: wide
        assert scored["score"] > 0.6, run["framework"]  # real training on real digits
        assert set(scored["per_class"]) == set(CLASSES)
        # The stored rates are those of the stored predictions.
        stored = np.load(out / run["predictions"])
        again = evaluation.evaluate(stored["logits"], stored["labels"], CLASSES, "normal")
        assert again["per_class"] == scored["per_class"]
        assert scored["per_class"]["normal"]["predicted_as_normal"] == pytest.approx(
            scored["per_class"]["normal"]["recall"])
    table = pd.read_csv(out / "runs.csv")
    assert set(table["evaluation.score_name"]) == {"accuracy"}
    assert (table["evaluation.score_low"] <= table["evaluation.score"]).all()
    per_class = pd.read_csv(out / "per_class.csv")
    assert len(per_class) == 4 * len(runs) and set(per_class["class"]) == set(CLASSES)
    assert {"miss_rate", "false_positive_rate", "predicted_as_normal", "auc_low"} <= set(per_class.columns)
    for run in runs:  # train against test, per epoch
        assert len(run["epoch_train_loss"]) == len(run["epoch_test_loss"]) == 4
        assert run["epoch_train_loss"][-1] < run["epoch_train_loss"][0]
        # Counted by the steps on 192 training images an epoch (12 steps of 16): it rises.
        train_accuracy = run["epoch_train_accuracy"]
        assert len(train_accuracy) == 4 and all(0 <= a <= 1 for a in train_accuracy)
        assert train_accuracy[-1] > train_accuracy[0]
        assert all(abs(a * 192 - round(a * 192)) < 1e-9 for a in train_accuracy)  # right ones of 192
    assert (out / "train-test-lenet5.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    assert "](train-test-lenet5.png)" in report
    # t-SNE of both splits, the same images in every framework's panel, and the example grid.
    stored = {run["framework"]: np.load(out / run["predictions"]) for run in runs}
    for arrays in stored.values():
        assert arrays["train_embeddings"].shape == (40, 84) and arrays["embeddings"].shape == (40, 84)
        np.testing.assert_array_equal(arrays["train_labels"], next(iter(stored.values()))["train_labels"])
        assert arrays["example_images"].shape == (16, 1, 28, 28)  # 4 test images of each class
    assert "40 training images (top row) and 40 test images (bottom row)" in report
    assert "](examples-lenet5.png)" in report and "Wrong here: " in report
    for png in ("tsne-lenet5.png", "examples-lenet5.png"):
        assert (out / png).stat().st_size > 10_000
    assert "Paired accuracy differences against" in report and "predicted as normal" in report
    assert "false positive rate" in report and "miss rate" in report


def test_normal_class_that_is_not_a_class_is_one_line(cli_error):
    cli_error("compare", "digits", "--frameworks", "torch", "--normal-class", "ten",
              fragments=("--normal-class 'ten' is not one of the dataset's classes", "0, 1, 2"))

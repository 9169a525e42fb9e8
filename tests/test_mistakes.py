"""The test-set analysis of `pybench.report.mistakes`: McNemar's exact test against a case worked
by hand, Holm's correction, an ensemble of identical models, and the disputed images."""

from __future__ import annotations

import numpy as np
import pytest

from pybench.report.loading import Predictions
from pybench.report.mistakes import averaged, disputed_images, ensembles, holm, mcnemar, pair_tests


def test_mcnemar_matches_a_case_worked_by_hand():
    """10 images: both right on 5, only a on 4, only b on 0, both wrong on 1. Under the null each
    of the 4 discordant images is a fair coin for a: P(4 of 4) = 1/16, two-sided 2/16 = 0.125."""
    a = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 0], bool)
    b = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0], bool)
    result = mcnemar(a, b)
    assert (result["both_right"], result["only_a_right"], result["only_b_right"], result["both_wrong"]) == (5, 4, 0, 1)
    assert result["p"] == pytest.approx(0.125)
    # 10 discordant, 9 to 1: 2 * (C(10,0) + C(10,1)) / 2^10 = 22/1024.
    a, b = np.r_[np.ones(9), 0, np.zeros(5)].astype(bool), np.r_[np.zeros(9), 1, np.zeros(5)].astype(bool)
    assert mcnemar(a, b)["p"] == pytest.approx(22 / 1024)
    assert mcnemar(a, a)["p"] == 1.0  # no discordant image: nothing against the null


def test_holm_adjusts_step_down_and_keeps_the_order():
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.5]), [0.04, 0.09, 0.09, 0.5])


def predictions(labels, logits) -> Predictions:
    return Predictions(labels=np.asarray(labels), logits=np.asarray(logits, dtype=float))


def test_an_ensemble_of_identical_models_is_that_model():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 200)
    one = predictions(labels, rng.normal(size=(200, 3)))
    together = averaged([one, one, one])
    np.testing.assert_array_equal(together.logits.argmax(1), one.logits.argmax(1))
    table = ensembles({"torch": {0: one, 1: one}}, ["a", "b", "c"])
    row = table.iloc[0]
    assert row["score"] == pytest.approx(np.mean(one.logits.argmax(1) == labels))
    assert row["difference"] == 0 and row["difference interval"] == [0.0, 0.0]
    assert row["verdict"].startswith("no better than its best member")


def test_pairs_and_disputed_images_come_from_the_same_seeds():
    labels = np.array([0, 1, 2, 0])
    torch = {0: predictions(labels, np.eye(3)[[0, 1, 2, 1]]), 1: predictions(labels, np.eye(3)[[0, 1, 2, 0]])}
    jax = {0: predictions(labels, np.eye(3)[[0, 1, 1, 0]]), 1: predictions(labels, np.eye(3)[[0, 1, 1, 0]])}
    runs = {"torch": torch, "jax": jax}
    pairs = pair_tests(runs)
    assert list(pairs["seed"]) == [0, 1] and list(pairs["agreement"]) == [0.5, 0.75]
    assert list(pairs["only_a_right"]) == [1, 1] and list(pairs["only_b_right"]) == [1, 0]
    disputed = disputed_images(runs, classes=["zero", "one", "two"])
    assert list(disputed["index"]) == [2, 3]  # image 2 disputed at both seeds, image 3 at one
    assert list(disputed["pairs disagreeing"]) == [2, 1] and disputed["torch"].iloc[0] == "two two"

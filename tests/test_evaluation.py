"""pybench.evaluation: per-class rates for any number of classes, AUCs and their bootstrap
intervals, checked against scikit-learn and hand-counted confusion matrices."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

from pybench import evaluation
from pybench.errors import PybenchError

COVID = ["COVID-19", "lung opacity", "normal", "viral pneumonia"]
# Rows: true class; columns: predicted class (a confusion matrix chosen by hand).
MATRIX = np.array([[30, 2, 6, 2],
                   [3, 25, 10, 2],
                   [1, 4, 40, 5],
                   [2, 1, 3, 14]])


def logits_for(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels and logits whose argmax gives exactly `matrix` (with varied confidences)."""
    rng = np.random.default_rng(1)
    labels, predicted = [], []
    for true, row in enumerate(matrix):
        for guess, count in enumerate(row):
            labels += [true] * count
            predicted += [guess] * count
    labels, predicted = np.array(labels), np.array(predicted)
    logits = rng.normal(0, 1, (len(labels), matrix.shape[1]))
    logits[np.arange(len(labels)), predicted] += 5
    return labels, logits


def test_per_class_rates_of_four_classes_are_the_hand_counted_ones():
    labels, logits = logits_for(MATRIX)
    rates = evaluation.class_rates(labels, logits.argmax(axis=1), COVID, normal_class="normal")
    total = MATRIX.sum()
    # lung opacity one-vs-rest: TP 25, FN 15, FP 2+4+1 = 7, TN = total - 25 - 15 - 7
    lung = rates["lung opacity"]
    tn = total - 25 - 15 - 7
    assert lung["support"] == 40
    assert lung["precision"] == pytest.approx(25 / 32)
    assert lung["recall"] == pytest.approx(25 / 40)
    assert lung["miss_rate"] == pytest.approx(15 / 40)
    assert lung["false_positive_rate"] == pytest.approx(7 / (7 + tn))
    assert lung["specificity"] == pytest.approx(tn / (7 + tn))
    assert lung["accuracy"] == pytest.approx((25 + tn) / total)
    assert lung["f1"] == pytest.approx(2 * 25 / (2 * 25 + 7 + 15))
    # "Diagnosed as normal": each class's share predicted as the normal class.
    assert [rates[c]["predicted_as_normal"] for c in COVID] == pytest.approx([6 / 40, 10 / 40, 40 / 50, 3 / 20])
    # The same figures scikit-learn gives.
    precision, recall, f1, support = precision_recall_fscore_support(labels, logits.argmax(axis=1))
    assert [rates[c]["precision"] for c in COVID] == pytest.approx(precision)
    assert [rates[c]["recall"] for c in COVID] == pytest.approx(recall)
    assert [rates[c]["f1"] for c in COVID] == pytest.approx(f1)
    assert [rates[c]["support"] for c in COVID] == support.tolist()


def test_a_class_never_predicted_has_no_precision_rather_than_zero():
    labels = np.array([0, 0, 1, 1, 2])
    rates = evaluation.class_rates(labels, np.array([0, 0, 1, 1, 1]), ["a", "b", "c"])
    assert np.isnan(rates["c"]["precision"]) and rates["c"]["recall"] == 0.0
    assert rates["c"]["miss_rate"] == 1.0 and rates["b"]["false_positive_rate"] == pytest.approx(1 / 3)


@pytest.mark.parametrize("decimals", [None, 1])  # continuous scores, and many ties
def test_weighted_auc_is_sklearns_auc_of_the_resampled_images(decimals):
    rng = np.random.default_rng(0)
    truth = rng.random(300) < 0.3
    scores = rng.normal(truth * 0.8, 1.0)
    if decimals is not None:
        scores = np.round(scores, decimals)
    assert evaluation.weighted_auc(scores, truth, np.ones((1, 300)))[0] == pytest.approx(
        roc_auc_score(truth, scores), abs=1e-12)
    counts = next(evaluation.resample_counts(300))[:3]
    for row, auc in zip(counts, evaluation.weighted_auc(scores, truth, counts)):
        drawn = np.repeat(np.arange(300), row.astype(int))
        assert auc == pytest.approx(roc_auc_score(truth[drawn], scores[drawn]), abs=1e-12)


def test_resamples_depend_on_the_test_size_alone_so_frameworks_pair():
    first = np.concatenate(list(evaluation.resample_counts(50)))
    again = np.concatenate(list(evaluation.resample_counts(50)))
    assert first.shape == (evaluation.BOOTSTRAP_RESAMPLES, 50)
    np.testing.assert_array_equal(first, again)
    assert (first.sum(axis=1) == 50).all()
    same = evaluation.paired_difference(np.ones(50), np.ones(50))
    assert same == {"difference": 0.0, "interval": [0.0, 0.0]}


def test_accuracy_interval_has_the_binomial_width():
    """Over 4,000 test images at 90%, the 95% interval is about ±1.96 sqrt(p(1-p)/n)."""
    n, p = 4000, 0.9
    labels = np.zeros(n, np.int64)
    logits = np.zeros((n, 2))
    logits[: int(n * p), 0] = 1.0
    logits[int(n * p):, 1] = 1.0
    result = evaluation.evaluate(logits, labels, ["a", "b"])
    low, high = result["score_interval"]
    half = 1.96 * np.sqrt(p * (1 - p) / n)
    assert result["score_name"] == "accuracy" and result["score"] == pytest.approx(p)
    assert low < p < high and (high - low) / 2 == pytest.approx(half, rel=0.15)


def test_evaluation_of_four_classes_holds_auc_macro_and_intervals():
    labels, logits = logits_for(MATRIX)
    result = evaluation.evaluate(logits, labels, COVID, normal_class="normal")
    assert set(result["per_class"]) == set(COVID) and result["normal_class"] == "normal"
    from scipy.special import softmax

    probs = softmax(logits, axis=1)
    for k, name in enumerate(COVID):
        auc = result["auc"][name]
        assert auc["auc"] == pytest.approx(roc_auc_score(labels == k, probs[:, k]))
        assert auc["interval"][0] <= auc["auc"] <= auc["interval"][1]
    assert result["macro_auc"] == pytest.approx(roc_auc_score(labels, probs, multi_class="ovr"))
    low, high = result["macro_auc_interval"]
    assert low < result["macro_auc"] < high


def test_a_multilabel_score_is_named_mean_auc_with_each_findings_interval():
    rng = np.random.default_rng(3)
    labels = (rng.random((400, 3)) < [0.1, 0.3, 0.5]).astype(np.int64)
    labels[:, 2] = 0  # a finding absent from the test labels has no AUC
    logits = rng.normal(labels * 1.5, 1.0)
    result = evaluation.evaluate(logits, labels, ["Hernia", "Effusion", "Mass"])
    assert result["score_name"] == "mean AUC" and result["per_class"] == {}
    assert set(result["auc"]) == {"Hernia", "Effusion"}
    expected = [roc_auc_score(labels[:, k], logits[:, k]) for k in (0, 1)]
    assert result["score"] == pytest.approx(np.mean(expected))
    assert result["auc"]["Hernia"]["auc"] == pytest.approx(expected[0])
    hernia, effusion = result["auc"]["Hernia"]["interval"], result["auc"]["Effusion"]["interval"]
    assert hernia[1] - hernia[0] > effusion[1] - effusion[0]  # 40 positives against 120


def test_a_diverged_run_scores_nothing():
    result = evaluation.evaluate(np.full((10, 2), np.nan), np.zeros(10, np.int64), ["a", "b"])
    assert result["score"] is None and result["per_class"] == {} and result["auc"] == {}


def test_normal_class_must_be_a_class_of_a_single_label_task():
    evaluation.check_normal_class("normal", COVID, multilabel=False)
    with pytest.raises(PybenchError, match=r"--normal-class 'Normal' is not one of .*COVID-19"):
        evaluation.check_normal_class("Normal", COVID, multilabel=False)
    with pytest.raises(PybenchError, match="multi-label"):
        evaluation.check_normal_class("No Finding", ["Hernia"], multilabel=True)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_the_epoch_loss_of_a_split_is_pytorchs_cross_entropy(smoothing):
    torch = pytest.importorskip("torch", reason="the reference is PyTorch's own formula")
    from pybench import tasks

    rng = np.random.default_rng(5)
    logits, labels = rng.normal(0, 3, (50, 7)), rng.integers(0, 7, 50)
    expected = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels),
                                                 label_smoothing=smoothing).item()
    assert tasks.loss(logits, labels, smoothing) == pytest.approx(expected, rel=1e-12)
    multi = (rng.random((50, 7)) < 0.3).astype(np.float64)
    assert tasks.loss(logits, multi) == pytest.approx(tasks.bce_with_logits(logits, multi))

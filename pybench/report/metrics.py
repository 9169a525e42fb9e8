"""Classification metrics of stored predictions, and the fidelity checks across runs.

Everything is computed with scikit-learn from labels and logits; nothing here knows about files
or markdown. Results are pandas DataFrames so the table and plot modules can render them as is.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import softmax
from sklearn.metrics import (
    confusion_matrix,
    roc_auc_score,
    roc_curve,
)

from pybench.report.loading import Predictions


def probabilities(logits: np.ndarray) -> np.ndarray:
    return softmax(logits, axis=1)


# A multi-label prediction is positive where its sigmoid reaches this (a logit of 0 or more).
MULTILABEL_THRESHOLD = 0.5


def is_multilabel(predictions: Predictions) -> bool:
    return predictions.labels.ndim == 2


def predicted_classes(predictions: Predictions) -> np.ndarray:
    """The predicted class of each image, or for multi-label the (N, findings) 0/1 decisions at
    MULTILABEL_THRESHOLD."""
    if is_multilabel(predictions):
        return (predictions.logits >= 0).astype(np.int64)  # sigmoid(x) >= 0.5 <=> x >= 0
    return predictions.logits.argmax(axis=1)


def accuracy(predictions: Predictions) -> float:
    return float(np.mean(predicted_classes(predictions) == predictions.labels))


def confusion(predictions: Predictions, class_names: list[str]) -> pd.DataFrame:
    """Counts with true classes as rows and predicted classes as columns."""
    matrix = confusion_matrix(
        predictions.labels, predicted_classes(predictions), labels=range(len(class_names))
    )
    return pd.DataFrame(matrix, index=class_names, columns=class_names)


def specificity(matrix: np.ndarray) -> np.ndarray:
    """True-negative rate of each class treated as the positive one (one-vs-rest)."""
    total = matrix.sum()
    predicted = matrix.sum(axis=0)
    actual = matrix.sum(axis=1)
    true_positive = np.diag(matrix)
    true_negative = total - predicted - actual + true_positive
    negatives = total - actual
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(negatives > 0, true_negative / np.maximum(negatives, 1), 0.0)


@dataclass(frozen=True)
class RocCurve:
    """One ROC curve: the false/true positive rates and the area under it."""

    fpr: np.ndarray
    tpr: np.ndarray
    auc: float


def roc_curves(predictions: Predictions, class_names: list[str]) -> dict[str, RocCurve]:
    """ROC per positive class: class 1 alone when binary, every class one-vs-rest otherwise.

    A class absent from the labels (or present alone) has no ROC curve and is left out; a run
    with non-finite logits (diverged) gets no curves at all.
    """
    if not np.isfinite(predictions.logits).all():
        return {}
    probs = probabilities(predictions.logits)
    positive_classes = [1] if len(class_names) == 2 else range(len(class_names))
    curves = {}
    for k in positive_classes:
        is_positive = predictions.labels == k
        if is_positive.all() or not is_positive.any():
            continue
        fpr, tpr, _ = roc_curve(is_positive, probs[:, k])
        curves[class_names[k]] = RocCurve(fpr, tpr, float(roc_auc_score(is_positive, probs[:, k])))
    return curves


def finding_curves(predictions: Predictions, findings: list[str]) -> dict[str, RocCurve]:
    """Multi-label: the ROC of each finding's sigmoid (its logit ranks the same), for the
    findings the test labels hold both with and without."""
    if not np.isfinite(predictions.logits).all():
        return {}
    curves = {}
    for k, name in enumerate(findings):
        truth = predictions.labels[:, k]
        if truth.all() or not truth.any():
            continue
        fpr, tpr, _ = roc_curve(truth, predictions.logits[:, k])
        curves[name] = RocCurve(fpr, tpr, float(roc_auc_score(truth, predictions.logits[:, k])))
    return curves


def per_finding_metrics(predictions: Predictions, findings: list[str],
                        curves: dict[str, RocCurve]) -> pd.DataFrame:
    """Multi-label: each finding's test positives, ROC AUC, and sensitivity and specificity of
    its decision at MULTILABEL_THRESHOLD (NaN where the test set has no positive, or no
    negative, to measure them on)."""
    truth, decided = predictions.labels.astype(bool), predictions_decided(predictions)
    positives, negatives = truth.sum(axis=0), (~truth).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        sensitivity = np.where(positives > 0, (truth & decided).sum(axis=0) / positives, np.nan)
        specificity = np.where(negatives > 0, (~truth & ~decided).sum(axis=0) / negatives, np.nan)
    return pd.DataFrame({"positives": positives, "AUC": [curves[f].auc if f in curves else np.nan
                                                         for f in findings],
                         "sensitivity": sensitivity, "specificity": specificity},
                        index=pd.Index(findings, name="finding"))


def predictions_decided(predictions: Predictions) -> np.ndarray:
    return predicted_classes(predictions).astype(bool)


def finding_groups(labels: np.ndarray, findings: list[str]) -> tuple[np.ndarray, list[str]]:
    """Multi-label labels as one group per image, for colouring a map: "No Finding", the one
    finding, or "several findings"."""
    count = labels.sum(axis=1)
    names = ["No Finding", *findings, "several findings"]
    groups = np.where(count == 0, 0, np.where(count > 1, len(names) - 1, labels.argmax(axis=1) + 1))
    return groups, names


def macro_auc(curves: dict[str, RocCurve]) -> float:
    """Unweighted mean of the one-vs-rest AUCs, as sklearn's multi_class='ovr', average='macro'."""
    return float(np.mean([curve.auc for curve in curves.values()])) if curves else float("nan")


TSNE_MIN_POINTS = 10  # fewer test images than this make no map worth drawing
TSNE_PERPLEXITY = 30.0  # scikit-learn's default; smaller for small samples (it must stay below n)


def tsne_perplexity(n: int) -> float:
    return min(TSNE_PERPLEXITY, (n - 1) / 3)


def tsne_map(embeddings: np.ndarray) -> np.ndarray:
    """(n, 2) t-SNE coordinates of (n, features) embeddings: scikit-learn's TSNE with PCA
    initialisation and a fixed seed, so the same features always give the same map."""
    from sklearn.manifold import TSNE

    n = len(embeddings)
    return TSNE(n_components=2, perplexity=tsne_perplexity(n), init="pca",
                random_state=0).fit_transform(np.asarray(embeddings, np.float64))


def agreement(predictions_by_framework: dict[str, Predictions]) -> pd.DataFrame:
    """Fraction of test images on which each pair of frameworks predicts the same class."""
    names = list(predictions_by_framework)
    table = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    for a, b in itertools.combinations(names, 2):
        table.loc[a, b] = table.loc[b, a] = same_prediction_rate(
            predictions_by_framework[a], predictions_by_framework[b]
        )
    return table


def same_prediction_rate(a: Predictions, b: Predictions) -> float:
    """The share of test images (multi-label: of image-finding decisions) two runs decide alike."""
    if a.labels.shape != b.labels.shape:  # different test sets: there is no pairing to compare
        return float("nan")
    return float(np.mean(predicted_classes(a) == predicted_classes(b)))


def labels_identical(predictions_by_framework: dict[str, Predictions]) -> bool:
    """Whether every run scored the same test labels in the same order (agreement needs it)."""
    labels = [p.labels for p in predictions_by_framework.values()]
    return all(np.array_equal(labels[0], other) for other in labels[1:])


def fingerprint_groups(runs: list[dict], key: str) -> dict[str | None, list[str]]:
    """Run names grouped by the value of a fingerprint field: one group means identical."""
    groups: dict[str | None, list[str]] = {}
    for run in runs:
        groups.setdefault(run.get(key), []).append(run["framework"])
    return groups

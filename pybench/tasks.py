"""The two tasks, stated once: the loss every backend trains on and the score a run reports.

Single-label tasks train on the mean softmax cross-entropy (PyTorch's `F.cross_entropy`, with
its label smoothing). Multi-label tasks (`--task multilabel`: each image has a set of findings)
train on PyTorch's `BCEWithLogitsLoss`, a sigmoid per finding and the mean over images and
findings of

    (1 - y) x + (1 + (w - 1) y) (log(1 + exp(-|x|)) + max(-x, 0))

for logit x, target y in {0, 1} and the finding's positive weight w (`pos_weight`; 1 without
it). `bce_with_logits` is that formula in numpy, the reference tests hold the frameworks to.
`--pos-weight balanced` sets w to negatives / positives of each finding in the train split, the
usual fix for rare findings (NIH's Hernia is 0.2% of its images).

A run's score (`score`, recorded as its `test_accuracy`): the accuracy of single-label
predictions; for multi-label ones the mean over findings of the ROC AUC of each finding's logit
(CheXNet's figure), over the findings the labels hold both with and without.
"""

from __future__ import annotations

import numpy as np

from pybench.errors import PybenchError

POS_WEIGHTS = ("balanced",)  # --pos-weight's choices


def is_multilabel(labels: np.ndarray) -> bool:
    """(N, findings) 0/1 labels, not (N,) class indices."""
    return np.ndim(labels) == 2


def targets(labels: np.ndarray, dtype) -> np.ndarray:
    """Labels as a backend keeps them: int64 class indices, or multi-label 0/1 targets as floats
    of the data's dtype (what the binary cross-entropy multiplies the logits with)."""
    return np.asarray(labels, dtype if is_multilabel(labels) else np.int64)


def balanced_pos_weight(labels: np.ndarray) -> tuple[float, ...]:
    """Each finding's negatives / positives among (N, findings) train labels. A finding with no
    positive train image gets 1: its weight multiplies only positive targets, so it changes
    nothing there, and a finite value keeps the recorded configuration readable."""
    positives = labels.sum(axis=0).astype(np.float64)
    negatives = len(labels) - positives
    return tuple(float(n / p) if p else 1.0 for n, p in zip(negatives, positives))


def resolve_pos_weight(choice: str | None, labels: np.ndarray) -> tuple[float, ...] | None:
    """The per-finding weights `--pos-weight choice` means for these train labels."""
    if choice is None:
        return None
    if not is_multilabel(labels):
        raise PybenchError("--pos-weight applies to --task multilabel (a binary cross-entropy per finding); "
                           "single-label tasks can use --balance sampling instead")
    if choice not in POS_WEIGHTS:
        raise PybenchError(f"--pos-weight must be one of {', '.join(POS_WEIGHTS)}, got {choice!r}")
    return balanced_pos_weight(labels)


def bce_with_logits(logits: np.ndarray, labels: np.ndarray, pos_weight=None) -> float:
    """PyTorch's BCEWithLogitsLoss (mean reduction) in numpy float64: the reference."""
    x = np.asarray(logits, np.float64)
    y = np.asarray(labels, np.float64)
    w = np.ones(x.shape[-1]) if pos_weight is None else np.asarray(pos_weight, np.float64)
    soft = np.log1p(np.exp(-np.abs(x))) + np.maximum(-x, 0.0)
    return float(np.mean((1 - y) * x + (1 + (w - 1) * y) * soft))


def cross_entropy(logits: np.ndarray, labels: np.ndarray, label_smoothing: float = 0.0) -> float:
    """PyTorch's F.cross_entropy (mean, with its label smoothing) in numpy float64."""
    x = np.asarray(logits, np.float64)
    shifted = x - x.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    nll = -log_p[np.arange(len(x)), np.asarray(labels, np.int64)]
    return float(np.mean((1 - label_smoothing) * nll - label_smoothing * log_p.mean(axis=1)))


def loss(logits: np.ndarray, labels: np.ndarray, label_smoothing: float = 0.0,
         pos_weight=None) -> float:
    """The training loss's formula on any logits (a test or validation split's, per epoch): the
    same scale as the training loss, so the curves of both can be read together."""
    if is_multilabel(labels):
        return bce_with_logits(logits, labels, pos_weight)
    return cross_entropy(logits, labels, label_smoothing)


def score(logits: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy (single-label) or mean per-finding ROC AUC (multi-label); NaN where undefined
    (non-finite logits, or no finding both present and absent)."""
    if not is_multilabel(labels):
        return float(np.mean(np.argmax(logits, axis=1) == labels))
    from sklearn.metrics import roc_auc_score  # slow import, multi-label runs only

    scored = [k for k in range(labels.shape[1]) if 0 < labels[:, k].sum() < len(labels)]
    if not scored or not np.isfinite(logits).all():
        return float("nan")
    return float(np.mean([roc_auc_score(labels[:, k], logits[:, k]) for k in scored]))

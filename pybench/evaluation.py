"""What a run's test predictions score, computed once where the run ends and stored in its record.

The record's `evaluation` (docs/results.md) is what runs.csv, per_class.csv and the report read:
- the score under its own name: `accuracy` for single-label tasks, `mean AUC` for multi-label
  ones (the mean over findings of each finding's ROC AUC, CheXNet's figure);
- for single-label tasks, every class one-vs-rest, for any number of classes: accuracy,
  specificity, false positive rate, miss rate (false negative rate), precision, recall, F1 and
  support, and with `normal_class` the share of the class predicted as that class ("diagnosed as
  normal", the figure an X-ray reader asks of each disease);
- the ROC AUC of each class (one-vs-rest, from softmax probabilities) or finding (its logit), and
  their unweighted mean, the macro AUC;
- 95% percentile-bootstrap intervals over test images for the score, the macro AUC and each
  class's or finding's AUC.

The bootstrap's resamples are a fixed function of the test-set size (BOOTSTRAP_SEED and n seed
the generator), so every framework's run on the same test set is resampled identically: their
intervals are paired, and `paired_difference` gives the interval of the difference between two
frameworks over the very same resamples. Resampled AUCs are computed from one sort per class and
the resample's image counts as weights (ties count one half, as scikit-learn's), so 1,000
resamples of a 25,000-image test set take seconds, not the minutes of 14,000 `roc_auc_score` calls.
"""

from __future__ import annotations

import numpy as np

from pybench import tasks
from pybench.errors import PybenchError

BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
LEVEL = 0.95
CHUNK = 100  # resamples at a time: a (CHUNK, n) count matrix bounds the memory

SCORE_NAMES = {"single": "accuracy", "multilabel": "mean AUC"}
# Each class one-vs-rest, in the order of per_class.csv and the report's table.
CLASS_RATES = ("accuracy", "specificity", "false_positive_rate", "miss_rate", "precision",
               "recall", "f1", "support")


def score_name(labels: np.ndarray) -> str:
    return SCORE_NAMES["multilabel" if tasks.is_multilabel(labels) else "single"]


def check_normal_class(normal_class: str | None, classes: list[str], multilabel: bool) -> None:
    """--normal-class must name one of a single-label task's classes; one line otherwise."""
    if normal_class is None:
        return
    if multilabel:
        raise PybenchError(f"--normal-class {normal_class!r}: a multi-label task has findings, "
                           "not one predicted class per image; leave it out")
    if normal_class not in classes:
        raise PybenchError(f"--normal-class {normal_class!r} is not one of the dataset's "
                           f"classes: {', '.join(classes)}")


def resample_counts(n: int):
    """The bootstrap's resamples of n test images, CHUNK at a time: (chunk, n) float64 counts
    of how often each image was drawn. The same n always gives the same resamples."""
    rng = np.random.default_rng([BOOTSTRAP_SEED, n])
    for start in range(0, BOOTSTRAP_RESAMPLES, CHUNK):
        b = min(CHUNK, BOOTSTRAP_RESAMPLES - start)
        drawn = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
        yield np.bincount(drawn.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)


def weighted_auc(scores: np.ndarray, truth: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC of `scores` for 0/1 `truth` under each row of (b, n) image `weights` (a row of
    ones is scikit-learn's `roc_auc_score`): the weighted share of (positive, negative) pairs
    ranked right, ties counting one half. NaN for a row without a positive or a negative."""
    order = np.argsort(scores, kind="stable")
    ranked, positive = scores[order], truth[order].astype(bool)
    w = weights[:, order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])  # groups of tied scores
    pos = np.add.reduceat(w * positive, starts, axis=1)
    neg = np.add.reduceat(w * ~positive, starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pos * (below + 0.5 * neg)).sum(axis=1) / (pos.sum(axis=1) * neg.sum(axis=1))


def interval(values: np.ndarray) -> list[float] | None:
    """The central LEVEL percentile interval of the finite resampled values (None if none)."""
    values = values[np.isfinite(values)]
    if not len(values):
        return None
    tail = 100 * (1 - LEVEL) / 2
    return [float(v) for v in np.percentile(values, [tail, 100 - tail])]


def auc_targets(logits: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict:
    """name -> (scores, 0/1 truth) of every class (one-vs-rest; class 1 alone when binary) or
    finding that the test labels hold both with and without: what an AUC is computed of."""
    if tasks.is_multilabel(labels):
        pairs = {name: (logits[:, k], labels[:, k]) for k, name in enumerate(classes)}
    else:
        from scipy.special import softmax  # imported where used: the CLI starts without scipy

        probs = softmax(np.asarray(logits, np.float64), axis=1)
        positive = [1] if len(classes) == 2 else range(len(classes))
        pairs = {classes[k]: (probs[:, k], labels == k) for k in positive}
    return {name: (np.asarray(s, np.float64), np.asarray(t, bool)) for name, (s, t) in pairs.items()
            if 0 < np.sum(t) < len(t)}


def macro_auc(logits: np.ndarray, labels: np.ndarray) -> float:
    """The point estimate of the macro AUC (one-vs-rest; binary: class 1; multi-label: the mean
    over findings), without intervals: what `--select-by auc` holds the epochs to. NaN when no
    class has both positives and negatives."""
    logits = np.asarray(logits)
    classes = [str(k) for k in range(logits.shape[1])]
    targets = auc_targets(logits, np.asarray(labels), classes)
    if not targets:
        return float("nan")
    return float(np.mean([weighted_auc(s, t, np.ones((1, len(t))))[0] for s, t in targets.values()]))


def class_rates(labels: np.ndarray, predicted: np.ndarray, classes: list[str],
                normal_class: str | None = None) -> dict[str, dict]:
    """Each class one-vs-rest (CLASS_RATES; NaN where a rate has nothing to divide by), and
    `predicted_as_<normal_class>` when one is named."""
    k = len(classes)
    m = np.bincount(labels * k + predicted, minlength=k * k).reshape(k, k).astype(np.float64)
    total, actual, said = m.sum(), m.sum(axis=1), m.sum(axis=0)
    tp = np.diag(m)
    fn, fp = actual - tp, said - tp
    tn = total - tp - fn - fp

    def share(a, b):
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)

    precision, recall = share(tp, tp + fp), share(tp, tp + fn)
    rates = {"accuracy": share(tp + tn, np.full_like(tp, total)), "specificity": share(tn, tn + fp),
             "false_positive_rate": share(fp, fp + tn), "miss_rate": share(fn, tp + fn),
             "precision": precision, "recall": recall,
             "f1": share(2 * precision * recall, precision + recall), "support": actual}
    if normal_class is not None:
        rates[f"predicted_as_{normal_class}"] = share(m[:, classes.index(normal_class)], actual)
    return {name: {rate: (int(v[k]) if rate == "support" else float(v[k]))
                   for rate, v in rates.items()} for k, name in enumerate(classes)}


def evaluate(logits: np.ndarray, labels: np.ndarray, classes: list[str],
             normal_class: str | None = None) -> dict:
    """The record's `evaluation` of one run's test logits (see the module docstring)."""
    logits, labels = np.asarray(logits), np.asarray(labels)
    multilabel = tasks.is_multilabel(labels)
    result = {"score_name": score_name(labels), "score": None, "score_interval": None,
              "macro_auc": None, "macro_auc_interval": None, "auc": {}, "per_class": {},
              "normal_class": normal_class,
              "bootstrap": {"resamples": BOOTSTRAP_RESAMPLES, "seed": BOOTSTRAP_SEED,
                            "level": LEVEL, "over": "test images"}}
    if not len(labels) or not np.isfinite(logits).all():  # a diverged run scores nothing
        return result
    if not multilabel:
        predicted = logits.argmax(axis=1)
        result["per_class"] = class_rates(labels, predicted, classes, normal_class)
    targets = auc_targets(logits, labels, classes)
    point = {name: float(weighted_auc(s, t, np.ones((1, len(t))))[0]) for name, (s, t) in targets.items()}
    resampled = {name: [] for name in targets}
    scores = []
    correct = None if multilabel else (logits.argmax(axis=1) == labels).astype(np.float64)
    for counts in resample_counts(len(labels)):
        for name, (s, t) in targets.items():
            resampled[name].append(weighted_auc(s, t, counts))
        if correct is not None:
            scores.append(counts @ correct / len(labels))
    aucs = {name: np.concatenate(v) for name, v in resampled.items()}
    result["auc"] = {name: {"auc": point[name], "interval": interval(aucs[name])} for name in targets}
    if targets:
        macro = np.mean(np.stack(list(aucs.values())), axis=0)  # NaN where a class went missing
        result["macro_auc"] = float(np.mean(list(point.values())))
        result["macro_auc_interval"] = interval(macro)
    if multilabel:
        result["score"], result["score_interval"] = result["macro_auc"], result["macro_auc_interval"]
    else:
        result["score"] = float(np.mean(correct))
        result["score_interval"] = interval(np.concatenate(scores))
    return result


def paired_difference(a_correct: np.ndarray, b_correct: np.ndarray) -> dict:
    """Accuracy of b minus accuracy of a over the same test images, with its interval over the
    shared resamples: pairing removes the test set's own difficulty from the noise."""
    a, b = np.asarray(a_correct, np.float64), np.asarray(b_correct, np.float64)
    differences = np.concatenate([counts @ (b - a) / len(a) for counts in resample_counts(len(a))])
    return {"difference": float(np.mean(b - a)), "interval": interval(differences)}

"""What the stored test predictions say beyond each run's score: do two frameworks make the same
mistakes (agreement and McNemar's exact test, per seed), which images they disagree on most, and
whether averaging models (an ensemble) beats its best member.

Read from the prediction files every run stores (`predictions/<run>.npz`): `compare` calls
`test_set_analysis` when its runs are done and stores the result in results.json (`test_set`),
with the most disputed images drawn from the test split; the report shows what is stored, and
computes it from the prediction files for older results.

- **McNemar's exact test** for two classifiers on one test set: of the images exactly one of the
  two gets right (the discordant ones), how many each gets; under "equally accurate on this test
  set" each discordant image is a fair coin, so the p-value is the exact two-sided binomial test
  of one count among the discordant. One test per pair of frameworks and seed (the seed pairs
  them: same initial weights, same batches); over the pairs and seeds of a model the p-values are
  corrected with Holm's step-down method, which holds the chance of any false "differs" at 5%
  without assuming the tests independent (docs/statistics.md). Multi-label: per finding, the
  decision sigmoid >= 0.5 against the label.
- **Ensembles**: the average of members' probabilities (softmax; sigmoid per finding). Per
  framework over its seeds; across frameworks at each seed and over everything. Scored with the
  same bootstrap as each run (`pybench.evaluation`), and, single-label, the difference to the best
  member over the same resamples: an ensemble whose interval of that difference holds zero or
  lies below it is said to be no better than its best member.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit, softmax

from pybench import evaluation
from pybench.report.loading import Predictions, load_predictions

DISPUTED_SHOWN = 12
ALPHA = 0.05


def runs_by_framework(document: dict, run_dir: Path, model: str) -> dict[str, dict[object, Predictions]]:
    """framework -> seed -> the test predictions of the model's first ok run at that seed (repeats
    of a seed give the same predictions on the CPU). Tuned searches: their final runs only."""
    found: dict[str, dict[object, Predictions]] = {}
    for run in document.get("runs", []):
        if run.get("model") != model or run.get("status") != "ok" or not run.get("predictions"):
            continue
        if document.get("tuning") and run.get("phase") != "final":
            continue
        seed = run.get("seed", (run.get("config") or {}).get("seed"))
        per_seed = found.setdefault(run.get("framework_name", run["framework"]), {})
        if seed not in per_seed:
            per_seed[seed] = load_predictions(run_dir, run)
    return found


def multilabel(predictions: Predictions) -> bool:
    return predictions.labels.ndim == 2


def correct(predictions: Predictions) -> np.ndarray:
    """(N,) whether each image's class is right; multi-label (N, findings) per finding."""
    if multilabel(predictions):
        return (predictions.logits >= 0) == (predictions.labels == 1)
    return predictions.logits.argmax(axis=1) == predictions.labels


def decisions(predictions: Predictions) -> np.ndarray:
    if multilabel(predictions):
        return (predictions.logits >= 0).astype(np.int64)
    return predictions.logits.argmax(axis=1)


def mcnemar(a_correct: np.ndarray, b_correct: np.ndarray) -> dict:
    """McNemar's exact test on one test set: the images only a gets right, only b gets right,
    and the two-sided binomial p-value of one count among the discordant (1 when there are none)."""
    a, b = np.asarray(a_correct, bool), np.asarray(b_correct, bool)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    discordant = only_a + only_b
    p = float(stats.binomtest(only_a, discordant, 0.5).pvalue) if discordant else 1.0
    return {"both_right": int(np.sum(a & b)), "only_a_right": only_a, "only_b_right": only_b,
            "both_wrong": int(np.sum(~a & ~b)), "p": p}


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (each at most 1, never below an earlier one's)."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[index]))
        adjusted[index] = running
    return adjusted


def column_of(values: np.ndarray, column: int | None) -> np.ndarray:
    """A finding's column of a multi-label (N, findings) array; a single-label (N,) as it is."""
    return values if column is None else values[:, column]


def pair_tests(runs: dict[str, dict[object, Predictions]], findings: list[str] | None = None) -> pd.DataFrame:
    """One row per pair of frameworks, seed they share (and finding, multi-label): agreement,
    the four counts, McNemar's p and its Holm-adjusted p over every row of the model."""
    rows = []
    for a, b in itertools.combinations(runs, 2):
        for seed in [s for s in runs[a] if s in runs[b]]:
            first, second = runs[a][seed], runs[b][seed]
            if first.labels.shape != second.labels.shape or not np.array_equal(first.labels, second.labels):
                continue  # not the same test set: nothing to pair
            right_a, right_b = correct(first), correct(second)
            same = decisions(first) == decisions(second)
            columns = range(right_a.shape[1]) if right_a.ndim == 2 else [None]
            for column in columns:
                test = mcnemar(column_of(right_a, column), column_of(right_b, column))
                rows.append({"a": a, "b": b, "seed": seed,
                             **({"finding": (findings or [])[column] if findings else column}
                                if column is not None else {}),
                             "agreement": float(np.mean(column_of(same, column))), **test})
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["p_holm"] = holm(frame["p"])
        frame["differs"] = frame["p_holm"] < ALPHA
    return frame


def disputed_images(runs: dict[str, dict[object, Predictions]], names=None, classes=None,
                    shown: int = DISPUTED_SHOWN) -> pd.DataFrame:
    """The test images the frameworks disagree on most often: over every seed two frameworks
    share, the pairs that predict differently; each image's true class and every run's
    prediction. Single-label only (a multi-label image has a decision per finding)."""
    frameworks = list(runs)
    seeds = [s for s in next(iter(runs.values()), {}) if all(s in runs[f] for f in frameworks)]
    if len(frameworks) < 2 or not seeds or multilabel(runs[frameworks[0]][seeds[0]]):
        return pd.DataFrame()
    predicted = {(f, s): decisions(runs[f][s]) for f in frameworks for s in seeds}
    count = sum((predicted[(a, s)] != predicted[(b, s)]).astype(int)
                for s in seeds for a, b in itertools.combinations(frameworks, 2))
    order = [i for i in np.argsort(-count, kind="stable") if count[i] > 0][:shown]
    labels = runs[frameworks[0]][seeds[0]].labels
    name = (lambda k: str(classes[k])) if classes else str
    return pd.DataFrame([{"index": int(i), "file": names[i] if names is not None else None,
                          "true": name(labels[i]), "pairs disagreeing": int(count[i]),
                          "of pairs": len(seeds) * len(frameworks) * (len(frameworks) - 1) // 2,
                          **{f: " ".join(name(predicted[(f, s)][i]) for s in seeds) for f in frameworks}}
                         for i in order])


def probabilities(predictions: Predictions) -> np.ndarray:
    if multilabel(predictions):
        return expit(predictions.logits)
    return softmax(predictions.logits, axis=1)


def averaged(members: list[Predictions]) -> Predictions:
    """The ensemble of `members`: their probabilities averaged, as logits again (log of the mean
    softmax; the logit of the mean sigmoid), so it is scored as any run is."""
    mean = np.mean([probabilities(m) for m in members], axis=0)
    clipped = np.clip(mean, 1e-12, 1 - 1e-12)
    logits = np.log(clipped / (1 - clipped)) if multilabel(members[0]) else np.log(clipped)
    return Predictions(labels=members[0].labels, logits=logits)


def ensemble_groups(runs: dict[str, dict[object, Predictions]]) -> dict[str, list[tuple[str, object]]]:
    """The ensembles worth scoring: each framework's seeds (two or more), the frameworks at each
    shared seed (two or more), and every run of every framework together."""
    groups = {}
    for framework, per_seed in runs.items():
        if len(per_seed) > 1:
            groups[f"{framework}, {len(per_seed)} seeds"] = [(framework, s) for s in per_seed]
    shared = [s for s in next(iter(runs.values()), {}) if all(s in per_seed for per_seed in runs.values())]
    if len(runs) > 1:
        for seed in shared:
            groups[f"{' + '.join(runs)}, seed {seed}"] = [(f, seed) for f in runs]
        everything = [(f, s) for f, per_seed in runs.items() for s in per_seed]
        if len(everything) > len(runs):
            groups[f"all {len(everything)} runs"] = everything
    return groups


def ensembles(runs: dict[str, dict[object, Predictions]], classes: list[str]) -> pd.DataFrame:
    """Each ensemble's score and interval beside its best member's, and (single-label) the
    paired difference to that member, with the plain verdict."""
    rows = []
    for name, members in ensemble_groups(runs).items():
        chosen = [runs[f][s] for f, s in members]
        if any(not np.array_equal(c.labels, chosen[0].labels) for c in chosen):
            continue
        scored = [evaluation.evaluate(m.logits, m.labels, classes) for m in chosen]
        best = int(np.argmax([s["score"] if s["score"] is not None else -np.inf for s in scored]))
        together = averaged(chosen)
        result = evaluation.evaluate(together.logits, together.labels, classes)
        row = {"ensemble": name, "members": len(chosen), "score_name": result["score_name"],
               "score": result["score"], "interval": result["score_interval"],
               "best member": f"{members[best][0]} seed {members[best][1]}",
               "best member score": scored[best]["score"], "difference": None, "difference interval": None}
        if not multilabel(together):
            paired = evaluation.paired_difference(correct(chosen[best]), correct(together))
            row["difference"], row["difference interval"] = paired["difference"], paired["interval"]
        row["verdict"] = ensemble_verdict(row)
        rows.append(row)
    return pd.DataFrame(rows)


def ensemble_verdict(row: dict) -> str:
    interval = row["difference interval"]
    if interval is None:  # multi-label: intervals side by side, no paired difference
        return ("better than its best member" if row["score"] is not None and row["best member score"] is not None
                and row["interval"] and row["interval"][0] > row["best member score"]
                else "not shown better than its best member (its interval reaches the best member's score)")
    if interval[0] > 0:
        return "better than its best member"
    if interval[1] < 0:
        return "worse than its best member"
    return "no better than its best member (the interval of the difference holds 0)"


def test_set_analysis(document: dict, run_dir: Path, names=None) -> dict:
    """results.json's `test_set`: per model, the pair tests, the disputed images and the
    ensembles, as JSON. `names`: the test split's file names, where the dataset has them."""
    classes = [str(c) for c in (document.get("dataset") or {}).get("classes") or []]
    analysis = {}
    for model in dict.fromkeys(run["model"] for run in document.get("runs", [])):
        runs = runs_by_framework(document, run_dir, model)
        if not runs:
            continue
        any_run = next(iter(next(iter(runs.values())).values()))
        labels = classes or [str(k) for k in range(any_run.logits.shape[1])]
        pairs = pair_tests(runs, labels if multilabel(any_run) else None)
        disputed = disputed_images(runs, names, classes)
        analysis[model] = {"frameworks": list(runs), "seeds": sorted({s for r in runs.values() for s in r}, key=str),
                           "pairs": records(pairs), "disputed": records(disputed),
                           "ensembles": records(ensembles(runs, labels)), "alpha": ALPHA,
                           "correction": "holm"}
    return analysis


def records(frame: pd.DataFrame) -> list[dict]:
    """A table as JSON rows (numpy numbers as Python's)."""
    return [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
            for row in frame.to_dict("records")]

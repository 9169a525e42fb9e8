"""The headline: per model (and source, and swept configuration), the verdicts of
`verdicts` in one Markdown bullet each, then one per framework that could not run. `compare`
prints the same lines.
"""

from __future__ import annotations

from pybench.datasets.story import change_lines
from pybench.report.significance import run_seed, swept_values
from pybench.report.time_to_result import time_sentence
from pybench.report.tuning import is_tuned, tuned_headline_lines
from pybench.report.verdicts import (
    accuracy_sentence,
    accuracy_verdict,
    busy_caveat,
    group_by,
    speed_sentence,
    target_sentence,
)


def headline_groups(results: dict) -> dict[tuple, list[dict]]:
    """The runs compared with each other: per model, per source when the results hold several
    (sources are compared only through --baseline), per configuration in a sweep; each run
    carrying its seed."""
    runs = [{**run, "seed": run_seed(run, results)} for run in results.get("runs", [])]
    return group_by(runs, lambda r: (r.get("source"), r["model"], swept_values(r)))


def score_note(results: dict) -> list[str]:
    """What "accuracy" means in a multi-label report (`pybench.tasks.score`)."""
    if not (results.get("config", {}).get("dataset_options") or {}).get("multilabel"):
        return []
    return ["Multi-label task (--task multilabel): a run's score, called its accuracy wherever runs "
            "are compared (in %: times 100), is its mean ROC AUC over findings; the report gives "
            "each finding's AUC, sensitivity and specificity under each model.", ""]


def headline_lines(results: dict) -> list[str]:
    """One Markdown bullet per group: step-time ratios with intervals, accuracy over seeds with
    paired differences, and the time to the target when one was set."""
    if is_tuned(results):  # a search's verdict: each framework's best, on the final seeds
        return tuned_headline_lines(results) + left_out_lines(results)
    target = (results.get("config") or {}).get("target_accuracy")
    lines = []
    for (source, model, configuration), runs in headline_groups(results).items():
        name = (f"**{model}**" + (f" [{source}]" if source else "")
                + (f" ({configuration})" if configuration else ""))
        if source:  # the bullet names the source: the frameworks by their own names
            runs = [{**r, "framework": r.get("framework_name", r["framework"])} for r in runs]
        if not any(r.get("status") == "ok" for r in runs):
            lines.append(f"- {name}: no run finished. {failure_sentence(runs)}".rstrip())
            continue
        timed = any(r.get("time_to_result") for r in runs)  # older results: the time to target only
        # The verdicts first (accuracy, speed, time to result), each one sentence; then what was
        # left out of them, once.
        sentences = [accuracy_sentence(accuracy_verdict(runs), runs), speed_sentence(runs),
                     time_sentence(runs, target) if timed else target_sentence(runs, target),
                     busy_caveat(runs, "step-time and time-to-result" if timed and target else "step-time"),
                     failure_sentence(runs)]
        lines.append(f"- {name}: " + " ".join(s for s in sentences if s))
    return lines + left_out_lines(results)


def failure_sentence(runs: list[dict]) -> str:
    """The runs that ended without a result (failed, diverged, interrupted), the same reason said
    once for all the runs it stopped: "Failed: torch seed 0, jax seed 0 (trained 0 steps)."."""
    by_reason: dict[tuple[str, str], list[str]] = {}
    for run in runs:
        if run.get("status") in ("ok", "unavailable", None):
            continue
        seed = f" seed {run['seed']}" if run.get("seed") is not None else ""
        key = (run["status"], " ".join(str(run.get("reason") or "no reason recorded").split()))
        by_reason.setdefault(key, []).append(f"{run['framework']}{seed}")
    if not by_reason:
        return ""
    parts = [f"{status}: {', '.join(names)} ({reason})" for (status, reason), names in by_reason.items()]
    return "Did not finish: " + "; ".join(parts) + "."


def left_out_lines(results: dict) -> list[str]:
    """One bullet per framework that could not run at all, with why and the fix its reason
    names: the reason is the same for every model and seed, so it is said once, here."""
    reasons: dict[str, str] = {}
    for run in results.get("runs", []):
        if run.get("status") == "unavailable":
            reasons.setdefault(run["framework"], run.get("reason") or "no reason recorded")
    return [f"- **{framework}** left out (unavailable): {reason}"
            for framework, reason in reasons.items()]


def prediction_lines(results: dict) -> list[str]:
    """With an unlabelled folder predicted: where the predictions are, and per model how often
    each pair of frameworks gave an image the same label (over seeds: the mean and range)."""
    predict = results.get("predict")
    if not predict:
        return []
    changed = change_lines(predict.get("changes") or {})
    lines = [f"- Predictions for {predict['images']:,} unlabelled images ({predict['from']}, {predict['folder']}): "
             "predictions-<framework>-<model>[-s<seed>-r<repeat>].csv per run (filename, label, p_<class>)"
             + (f"; the images {'; '.join(changed)}" if changed else "") + "."]
    by_pair: dict[tuple, list[dict]] = {}
    for pair in predict.get("agreement") or []:
        by_pair.setdefault((pair["model"], pair["a"], pair["b"]), []).append(pair)
    for (model, a, b), pairs in by_pair.items():
        shares = [p["same"] / p["images"] for p in pairs if p["images"]]
        if len(pairs) == 1:
            text = f"{pairs[0]['same']:,} of {pairs[0]['images']:,} images ({100 * shares[0]:.1f}%)"
        else:
            text = (f"{100 * sum(shares) / len(shares):.1f}% of the images (the mean over {len(pairs)} runs each, "
                    f"{100 * min(shares):.1f}-{100 * max(shares):.1f}%)")
        lines.append(f"- {model}: {a} and {b} gave the same label to {text}.")
    return lines

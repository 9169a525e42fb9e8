"""Runs held against each other: seeds of one configuration pooled, and a baseline compared with
a test on the raw step times rather than by eye.

A step-time change is called significant only when both hold: Mann-Whitney U on the two runs'
per-step times (first step excluded) gives p < ALPHA, and the medians differ by at least
EFFECT_FLOOR. The test alone would flag a 0.5% shift on a 10,000-step run, which no reader cares
about and which a busy machine produces on its own; the floor alone would flag noise on short runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu

from pybench.report.verdicts import EFFECT_FLOOR, score_interval, test_images, timed_steps

ALPHA = 0.01
# Keys of a run's configuration that do not make it another configuration: the seed (that is
# what gets aggregated) and the lists a compare document names all its runs by.
NOT_CONFIGURATION = {"seed", "seeds", "repeats", "frameworks", "models", "timeout_s", "run_id"}


def step_change(baseline_ms: np.ndarray, run_ms: np.ndarray) -> dict:
    """Median ratio (run / baseline), the test's p-value, and whether the change is significant."""
    if len(baseline_ms) < 3 or len(run_ms) < 3:
        return {"ratio": np.nan, "p": np.nan, "significant": False}
    ratio = float(np.median(run_ms) / np.median(baseline_ms))
    p = float(mannwhitneyu(run_ms, baseline_ms, alternative="two-sided").pvalue)
    return {"ratio": ratio, "p": p,
            "significant": bool(p < ALPHA and abs(ratio - 1) >= EFFECT_FLOOR)}


def full_configuration(run: dict, document: dict) -> dict:
    """What a run was trained with, all keys: its own `config` (sweeps), else its source's (a
    report over several results files) or the document's."""
    config = run.get("config")
    if config is None:
        by_label = {s["label"]: s for s in document.get("sources") or []}
        source = by_label.get(run.get("source"))
        config = source["config"] if source else document.get("config") or {}
    return config


def run_configuration(run: dict, document: dict) -> dict:
    """A run's configuration without the keys in NOT_CONFIGURATION (what seeds are pooled by)."""
    return {k: v for k, v in full_configuration(run, document).items()
            if k not in NOT_CONFIGURATION}


def run_seed(run: dict, document: dict) -> object:
    """The run's own seed (compare --seeds records it per run), else its configuration's."""
    if run.get("seed") is not None:
        return run["seed"]
    return full_configuration(run, document).get("seed")


def is_sweep(document: dict) -> bool:
    """Whether the runs carry their own configurations (a sweep's grid)."""
    return any("config" in run for run in document.get("runs", []))


def swept_values(run: dict) -> str:
    """A sweep run's own settings, seed aside, e.g. "batch_size=32, optimizer=sgd, lr=0.01"."""
    return ", ".join(f"{k}={v}" for k, v in (run.get("config") or {}).items()
                     if k not in NOT_CONFIGURATION)


def seed_groups(document: dict) -> pd.DataFrame:
    """One row per configuration (framework, model, device, everything but the seed) with its
    ok runs pooled: accuracy mean and standard deviation over runs, and the median and p90 of
    all their step times together. Empty when no configuration has two runs, unless the runs
    are a sweep's (then every configuration has a row)."""
    groups: dict[str, list[dict]] = {}
    for run in document.get("runs", []):
        if run["status"] != "ok":
            continue
        key = json.dumps([run.get("framework_name", run["framework"]), run["model"],
                          run.get("device_name"), run_configuration(run, document)],
                         sort_keys=True, default=str)
        groups.setdefault(key, []).append(run)
    if not is_sweep(document) and not any(len(runs) > 1 for runs in groups.values()):
        return pd.DataFrame()
    rows = []
    for runs in groups.values():
        by_seed: dict[object, list[float]] = {}
        for r in runs:
            if r.get("test_accuracy") is not None:
                by_seed.setdefault(run_seed(r, document), []).append(r["test_accuracy"])
        # Repeats of one seed are one sample of training noise: averaged before the interval.
        accuracy = score_interval([np.mean(v) for v in by_seed.values()], images=test_images(runs))
        seeds = list(dict.fromkeys(run_seed(r, document) for r in runs))
        pooled = np.concatenate([timed_steps(r) for r in runs])
        rows.append({
            "framework": runs[0].get("framework_name", runs[0]["framework"]),
            "model": runs[0]["model"],
            "device": runs[0].get("device_name"),
            "configuration": swept_values(runs[0]),
            "runs": len(runs),
            "seeds": ", ".join(str(seed) for seed in seeds),
            "repeats per seed": len(runs) / len(seeds) if len(runs) > len(seeds) else None,
            "accuracy mean %": 100 * accuracy.estimate if accuracy.n else np.nan,
            "accuracy 95% interval %": (f"{100 * accuracy.low:.2f}-{100 * accuracy.high:.2f}"
                                        if accuracy.n > 1 else None),
            "accuracy sd pp": (100 * np.std([np.mean(v) for v in by_seed.values()], ddof=1)
                               if len(by_seed) > 1 else np.nan),
            "pooled step median ms": float(np.median(pooled)) if len(pooled) else np.nan,
            "pooled step p90 ms": float(np.percentile(pooled, 90)) if len(pooled) else np.nan,
        })
    return pd.DataFrame(rows)


def best_configurations(groups: pd.DataFrame) -> pd.DataFrame:
    """Per framework and model, the configuration of `seed_groups` with the highest mean
    accuracy (the faster pooled median breaks a tie)."""
    if groups.empty:
        return groups
    ranked = groups.sort_values(["accuracy mean %", "pooled step median ms"],
                                ascending=[False, True], kind="stable")
    return ranked.groupby(["framework", "model"], sort=False).head(1).reset_index(drop=True)


# Configuration keys that change nothing a run measures: where its files went.
NOT_MEASURED = {"tensorboard", "mlflow", "timeout_s"}
MACHINE_KEYS = ("cpu", "cores", "memory_gb", "gpus", "cuda_driver")


@dataclass(frozen=True)
class Differences:
    """What differs between the runs of a report and its baseline, each a readable phrase:
    `config` and `dataset` forbid a verdict (unless forced); `machine`, `versions` and `busy`
    are said beside it."""

    config: list[str]
    dataset: list[str]
    machine: list[str]
    versions: list[str]
    busy: list[str]

    @property
    def unlike(self) -> bool:
        """Whether the two sides trained differently or on other data."""
        return bool(self.config or self.dataset)

    def lines(self) -> list[str]:
        named = (("configuration", self.config), ("dataset", self.dataset), ("machine", self.machine),
                 ("versions", self.versions), ("measured on a busy machine", self.busy))
        return [f"{what}: {'; '.join(items)}" for what, items in named if items]


def shown(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return ",".join(map(str, value)) or "none"
    return "none" if value is None else str(value)


def changed(ours: dict, theirs: dict, skip=frozenset()) -> list[str]:
    """"epochs 1 (baseline 10)" for every key whose value differs."""
    return [f"{key} {shown(ours.get(key))} (baseline {shown(theirs.get(key))})"
            for key in dict.fromkeys([*ours, *theirs]) if key not in skip and ours.get(key) != theirs.get(key)]


def framework_versions(document: dict) -> dict:
    return {run.get("framework_name", run["framework"]): run.get("framework_version")
            for run in document.get("runs", []) if run.get("status") == "ok"}


def baseline_differences(document: dict, baseline: dict) -> Differences:
    """What differs between `document`'s runs and the `baseline`'s: the configuration (every key
    but the seeds and where files went), the dataset (its fingerprint), the machine, the versions
    (frameworks, pybench), and which runs of either side ran on a busy machine."""
    skip = NOT_CONFIGURATION | NOT_MEASURED
    config = changed(document.get("config") or {}, baseline.get("config") or {}, skip)
    ours, theirs = document.get("dataset") or {}, baseline.get("dataset") or {}
    dataset = ([f"fingerprint {str(ours.get('fingerprint'))[:8]} (baseline {str(theirs.get('fingerprint'))[:8]}): "
                f"{ours.get('name')} {ours.get('train_size')}/{ours.get('test_size')} images "
                f"(baseline {theirs.get('name')} {theirs.get('train_size')}/{theirs.get('test_size')})"]
               if ours.get("fingerprint") != theirs.get("fingerprint") else [])
    machine = changed({k: (document.get("machine") or {}).get(k) for k in MACHINE_KEYS},
                      {k: (baseline.get("machine") or {}).get(k) for k in MACHINE_KEYS})
    versions = changed(framework_versions(document), framework_versions(baseline))
    versions += changed({"pybench": document.get("pybench_version"), "commit": (document.get("commit") or "")[:10]},
                        {"pybench": baseline.get("pybench_version"), "commit": (baseline.get("commit") or "")[:10]})
    busy = [f"{side}: {len(runs)} of {total} runs" for side, runs, total in (
        ("these results", busy_runs(document), ok_count(document)),
        ("baseline", busy_runs(baseline), ok_count(baseline))) if runs]
    return Differences(config, dataset, machine, versions, busy)


def busy_runs(document: dict) -> list[dict]:
    return [r for r in document.get("runs", [])
            if r.get("status") == "ok" and (r.get("machine_load") or {}).get("busy")]


def ok_count(document: dict) -> int:
    return sum(1 for r in document.get("runs", []) if r.get("status") == "ok")


def baseline_table(document: dict, baseline: dict, baseline_path=None, force: bool = False) -> pd.DataFrame:
    """Each ok run beside the baseline's ok run of the same framework and model (the same seed
    when the baseline has several): accuracy, median step time, ratio, p-value, verdict. Runs of
    a source that is the baseline itself (`baseline_path` named again among the sources) are
    left out: a run held against itself says nothing. No ratio and no verdict across another
    configuration or dataset (`baseline_differences`) unless `force`, nor for a run measured on
    a busy machine on either side."""
    refused = baseline_differences(document, baseline).unlike and not force
    itself = {s["label"] for s in document.get("sources") or []
              if baseline_path is not None and same_results(s["path"], baseline_path)}
    candidates: dict[tuple, list[dict]] = {}
    for run in baseline.get("runs", []):
        if run["status"] == "ok":
            key = (run.get("framework_name", run["framework"]), run["model"])
            candidates.setdefault(key, []).append(run)
    rows = []
    for run in document.get("runs", []):
        if run["status"] != "ok" or run.get("source") in itself:
            continue
        options = candidates.get((run.get("framework_name", run["framework"]), run["model"]))
        if not options:
            continue
        seed = run_seed(run, document)
        base = next((b for b in options if run_seed(b, baseline) == seed), options[0])
        change = step_change(timed_steps(base), timed_steps(run))
        busy = any((r.get("machine_load") or {}).get("busy") for r in (run, base))
        if refused or busy:
            change = {"ratio": np.nan, "p": np.nan, "significant": False,
                      "why_not": ("not compared: the configuration or dataset differs (--force compares anyway)"
                                  if refused else "not compared: measured on a busy machine")}
        accuracy, base_accuracy = run.get("test_accuracy"), base.get("test_accuracy")
        rows.append({
            "framework": run["framework"], "model": run["model"],
            "accuracy %": None if accuracy is None else 100 * accuracy,
            "baseline accuracy %": None if base_accuracy is None else 100 * base_accuracy,
            "step median ms": (run.get("step_time_ms") or {}).get("median"),
            "baseline median ms": (base.get("step_time_ms") or {}).get("median"),
            "ratio": change["ratio"], "p (Mann-Whitney)": change["p"],
            "step time": verdict(change),
            "significant": change["significant"],
        })
    return pd.DataFrame(rows)


def same_results(a, b) -> bool:
    """Whether two paths name the same results (a folder and its results.json are the same)."""
    def folder(path) -> Path:
        path = Path(path).resolve()
        return path.parent if path.name == "results.json" else path

    return folder(a) == folder(b)


def p_value(p: float) -> str:
    """A p-value as text. Two runs of a few thousand steps that differ by 40% give a p below the
    smallest double (stored as 0): say it is below what the test can state."""
    return "< 1e-300" if p < 1e-300 else f"{p:.2g}"


def verdict(change: dict) -> str:
    if change.get("why_not"):
        return change["why_not"]
    if not change["significant"]:
        return "no significant change"
    return f"{abs(change['ratio'] - 1):.0%} " + ("slower" if change["ratio"] > 1 else "faster")


def regressions(table: pd.DataFrame, percent: float) -> pd.DataFrame:
    """Rows of `baseline_table` with a significant slowdown of more than `percent`%."""
    if table.empty:
        return table
    return table[table["significant"] & (table["ratio"] > 1 + percent / 100)]

"""Series and their change points: the store's runs grouped by what they hold fixed (machine,
framework, model, dataset, configuration), ordered by time or by the framework's version, and
the runs where a figure steps to another level.

Where the change points come from: ruptures' PELT (`ruptures.Pelt`, an L2 cost, segments of at
least two runs) proposes them, with a penalty of 2σ² log n from the series' own noise (σ from
the median absolute difference of neighbouring runs, which a step does not inflate). Each
proposal is then held to Apache Otava's rule, with a rank test in place of its t-test: the
Mann-Whitney U test between the segments either side (exact p at most 0.001) and a change of the
means of at least `min_change` (5%); a proposal that fails is merged away and the others tested
again. Its p-value is multiplied by the number of places the split could have fallen
(Bonferroni: PELT proposes the most contrasting one). Why ranks: a shared machine's step times
have outliers (a run 30-50% slow now and then), which inflate a t-test's variance and, two in a
row, pass it as a change; ranks give an outlier the weight of one run. The price: with 30 runs
before it, a new level needs five runs before its change can be called. On 1,000
simulated flat series of 30 runs this calls a change in at most 1 at 1-10% noise (none at 3-5%
noise with outliers), and finds a planted 20% step followed by 10 runs in 296-300 of 300 at 1-5%
noise (docs/history.md has the table; `tests/test_history.py` holds the rates). Step times and
memory are compared on the log scale (their noise grows with them), accuracy as it is. A run
measured on a busy machine is left out of the time figures: it can neither make nor hide a
change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

DEFAULT_MIN_CHANGE = 5.0  # percent
ALPHA = 0.001
MIN_SEGMENT = 2
LAST_RUNS = 5  # what `compare` holds a new result against
EXACT_UP_TO = 200  # runs in two segments up to which the rank test's p-value is exact
SHOWN_SETTINGS = 3  # in a series' label, of the settings that tell it from its twins


@dataclass(frozen=True)
class Metric:
    column: str
    label: str
    low: str | None  # the interval's columns, where the store has one
    high: str | None
    log: bool  # compared on the log scale
    timed: bool  # a busy machine's run says nothing about it
    unit: str
    higher_is_better: bool = False


METRICS = {
    "step": Metric("step_ms", "step time", "step_low_ms", "step_high_ms", True, True, "ms"),
    "accuracy": Metric("accuracy", "accuracy", "accuracy_low", "accuracy_high", False, False, "%", True),
    "time-to-result": Metric("time_to_target_s", "time to target", None, None, True, True, "s"),
    "memory": Metric("peak_memory_bytes", "peak memory", None, None, True, False, "MB"),
}
ORDERS = ("time", "version")
# What may differ between the two sides of a change, said beside it.
CHANGED_FIELDS = (("framework_version", "{framework}"), ("pybench_version", "pybench"),
                  ("git_commit", "commit"))


@dataclass(frozen=True)
class Change:
    index: int  # the first run of the new level, in the series' order
    before: float
    after: float
    p: float

    @property
    def relative(self) -> float:
        return self.after / self.before - 1 if self.before else float("inf")


def version_key(version) -> tuple:
    from packaging.version import InvalidVersion, Version

    text = str(version or "").split()[-1] if version else ""
    try:
        return (0, Version(text.split("+")[0]))
    except InvalidVersion:
        return (1, text)


def series(rows: pd.DataFrame, order: str = "time") -> dict[str, pd.DataFrame]:
    """The store's rows by series, each in the order asked: time (as recorded), or the framework's
    version, then time."""
    grouped = {}
    for key, group in rows.groupby("series_key", sort=False):
        group = group.sort_values(["recorded_at", "seed", "repeat"], na_position="first", kind="stable")
        if order == "version":
            keys = group["framework_version"].map(version_key)
            group = group.iloc[sorted(range(len(group)), key=lambda i: keys.iloc[i])]
        grouped[key] = group.reset_index(drop=True)
    return grouped


def points(group: pd.DataFrame, metric: Metric) -> pd.DataFrame:
    """The runs of a series that speak to `metric`: a value, and a quiet machine for a time."""
    kept = group[group[metric.column].notna()]
    if metric.timed:
        kept = kept[kept["busy"] == 0]
    return kept.reset_index(drop=True)


def noise(values: np.ndarray) -> float:
    """σ of the series from neighbouring differences (robust: a step is one large difference)."""
    if len(values) < 3:
        return float(np.std(values))
    differences = np.diff(values)
    return float(1.4826 * np.median(np.abs(differences - np.median(differences))) / np.sqrt(2))


def segment_test(left: np.ndarray, right: np.ndarray) -> float:
    """The Mann-Whitney U test's two-sided p-value (exact for the sizes of a series); two flat
    segments at different levels differ for certain."""
    if np.std(left) == 0 and np.std(right) == 0:
        return 0.0 if left.mean() != right.mean() else 1.0
    method = "exact" if len(left) + len(right) <= EXACT_UP_TO else "asymptotic"
    return float(stats.mannwhitneyu(left, right, alternative="two-sided", method=method).pvalue)


def change_points(values, log: bool = False, min_change: float = DEFAULT_MIN_CHANGE,
                  alpha: float = ALPHA) -> list[Change]:
    """Where `values` (in order) step to another level: PELT's proposals that pass the rank test
    and the minimum change (in percent), each with the means either side."""
    import ruptures

    raw = np.asarray(values, dtype=float)
    if len(raw) < 2 * MIN_SEGMENT:
        return []
    scaled = np.log(raw) if log else raw
    sigma = max(noise(scaled), 1e-12 * max(1.0, float(np.abs(scaled).max())))
    proposed = ruptures.Pelt(model="l2", min_size=MIN_SEGMENT, jump=1).fit(scaled.reshape(-1, 1)).predict(
        pen=2 * sigma**2 * np.log(len(scaled)))[:-1]
    kept = list(proposed)
    while True:
        bounds = [0, *kept, len(raw)]
        # Bonferroni over the places a split could have been proposed: PELT picks the most
        # contrasting one, and its nominal p-value would ignore that choice.
        tests = [(min(1.0, segment_test(scaled[bounds[i]:b], scaled[b:bounds[i + 2]])
                      * (bounds[i + 2] - bounds[i] - 2 * MIN_SEGMENT + 1)),
                  raw[bounds[i]:b].mean(), raw[b:bounds[i + 2]].mean()) for i, b in enumerate(kept)]
        failing = [i for i, (p, before, after) in enumerate(tests)
                   if p > alpha or abs(after / before - 1) * 100 < min_change]
        if not failing:
            return [Change(b, before, after, p) for b, (p, before, after) in zip(kept, tests)]
        weakest = max(failing, key=lambda i: tests[i][0])  # merge the least certain first
        kept.pop(weakest)


def what_changed(before: pd.Series, after: pd.Series) -> list[str]:
    """"torch 2.13.0 -> 2.14.1", "commit 1a2b3c4 -> 5d6e7f8": what differs between two runs."""
    said = []
    for column, name in CHANGED_FIELDS:
        old, new = before.get(column), after.get(column)
        if old != new:
            name = name.format(framework=after["framework"])
            if column == "git_commit":
                old, new = (str(v)[:7] if v else "none" for v in (old, new))
            said.append(f"{name} {old} -> {new}")
    if before.get("machine") != after.get("machine"):
        changed = [k for k in set(json.loads(before["machine"])) | set(json.loads(after["machine"]))
                   if json.loads(before["machine"]).get(k) != json.loads(after["machine"]).get(k)]
        said.append("machine record: " + ", ".join(sorted(changed)))
    return said or ["nothing recorded"]


def shown(value: float, metric: Metric) -> str:
    if metric.unit == "%":
        return f"{100 * value:.2f}%"
    if metric.unit == "MB":
        return f"{value / 1e6:.0f} MB"
    return f"{value:.3g} {metric.unit}"


def series_label(row: pd.Series) -> str:
    """"torch lenet5 on digits, batch 32 (AMD EPYC, 2 cores)": what a reader tells series by."""
    config = json.loads(row["config"])
    machine = json.loads(row["machine"])
    batch = config.get("batch_size")
    return (f"{row['framework']} {row['model']} on {row['dataset']}"
            + (f", batch {batch}" if batch else "") + f" ({machine.get('cpu')}, {machine.get('cores')} cores"
            + (f", {', '.join(machine['gpus'])}" if machine.get("gpus") else "") + ")")


def flat(config: dict, prefix: str = "") -> dict:
    """{"optimizer": {"lr": 0.1}} as {"optimizer.lr": 0.1}."""
    items = {}
    for key, value in config.items():
        if isinstance(value, dict):
            items.update(flat(value, f"{prefix}{key}."))
        else:
            items[f"{prefix}{key}"] = value
    return items


def series_labels(grouped: dict[str, pd.DataFrame]) -> dict[str, str]:
    """Each series' label, with the settings where it departs from most series of the same label
    (two compares of LeNet-5 at other learning rates: "..., optimizer.lr=0.05")."""
    labels = {key: series_label(group.iloc[-1]) for key, group in grouped.items()}
    configs = {key: flat(json.loads(group["config"].iloc[-1])) for key, group in grouped.items()}
    told = {}
    for key, label in labels.items():
        twins = [k for k, other in labels.items() if other == label and k != key]
        own = {name: json.dumps(value, default=str) for name, value in configs[key].items() if value is not None}
        departing = []
        for name, value in own.items():
            others = [json.dumps(configs[t].get(name), default=str) for t in twins if configs[t].get(name) is not None]
            if others and value != max(set(others), key=others.count):
                departing.append(name)
        told[key] = label + "".join(f", {name}={configs[key][name]}" for name in departing[:SHOWN_SETTINGS])
        if len(departing) > SHOWN_SETTINGS:
            told[key] += f" (+{len(departing) - SHOWN_SETTINGS} other settings)"
    return told


def changes_table(rows: pd.DataFrame, metrics=tuple(METRICS), min_change: float = DEFAULT_MIN_CHANGE,
                  order: str = "time") -> pd.DataFrame:
    """One row per change point found in any series of the store."""
    found = []
    grouped = series(rows, order)
    labels = series_labels(grouped)
    for key, group in grouped.items():
        for name in metrics:
            metric = METRICS[name]
            kept = points(group, metric)
            for change in change_points(kept[metric.column], metric.log, min_change):
                first, last_before = kept.iloc[change.index], kept.iloc[change.index - 1]
                found.append({"id": key[:6], "series": labels[key], "figure": metric.label,
                              "from run": f"{change.index + 1} of {len(kept)}",
                              "recorded": str(first["recorded_at"])[:19],
                              "before": shown(change.before, metric), "after": shown(change.after, metric),
                              "change": f"{100 * change.relative:+.1f}%", "p (rank test)": f"{change.p:.1g}",
                              "what changed": "; ".join(what_changed(last_before, first))})
    return pd.DataFrame(found, columns=["id", "series", "figure", "from run", "recorded", "before", "after",
                                        "change", "p (rank test)", "what changed"])


def series_summary(rows: pd.DataFrame, order: str = "time") -> pd.DataFrame:
    """One row per series: its label, runs, busy runs left out of the times, first and last."""
    grouped = series(rows, order)
    labels = series_labels(grouped)
    return pd.DataFrame([{"id": key[:6], "series": labels[key], "runs": len(group),
                          "busy (left out of times)": int(group["busy"].sum()),
                          "first": str(group["recorded_at"].iloc[0])[:19],
                          "last": str(group["recorded_at"].iloc[-1])[:19],
                          "versions": ", ".join(dict.fromkeys(str(v) for v in group["framework_version"]))}
                         for key, group in grouped.items()])


def outside_history(rows: pd.DataFrame, new_uids: set[str], min_change: float = DEFAULT_MIN_CHANGE,
                    last: int = LAST_RUNS) -> list[str]:
    """What `compare` says of its new runs: for each series and figure (step time, accuracy), one
    line when the new runs' median lies outside the range of the series' last `last` runs before
    them and at least `min_change` percent from their median. Nothing for a series with fewer
    than three earlier runs."""
    lines = []
    for group in series(rows).values():
        new = group[group["uid"].isin(new_uids)]
        if new.empty:
            continue
        for metric in (METRICS["step"], METRICS["accuracy"]):
            earlier = points(group[~group["uid"].isin(new_uids)], metric).tail(last)
            fresh = points(new, metric)
            if len(earlier) < 3 or fresh.empty:
                continue
            value, reference = fresh[metric.column].median(), earlier[metric.column].median()
            lowest, highest = earlier[metric.column].min(), earlier[metric.column].max()
            change = value / reference - 1
            if lowest <= value <= highest or abs(change) * 100 < min_change:
                continue
            direction = ("higher" if change > 0 else "lower") if metric.unit == "%" else \
                ("slower" if change > 0 else "faster")
            lines.append(f"history: {fresh.iloc[0]['framework']} {fresh.iloc[0]['model']}: {metric.label} "
                         f"{abs(change) * 100:.0f}% {direction} than the last {len(earlier)} runs of this series "
                         f"({shown(value, metric)} against {shown(reference, metric)}, range "
                         f"{shown(lowest, metric)}-{shown(highest, metric)}); "
                         + "; ".join(what_changed(earlier.iloc[-1], fresh.iloc[0])))
    return lines

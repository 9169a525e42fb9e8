"""`pybench history --html FILE`: the store's series on one self-contained page.

One figure per series: a panel per figure it has (step time, accuracy, time to target, peak
memory), each run a point with its interval, busy runs hollow and grey (left out of the times),
each change point a dashed line with its change, and the framework's version under the first
run of each version. The page is made the way report.html is (`pybench.report.html`): Markdown
rendered, every figure embedded, nothing fetched.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

import pybench.report.plots as plots
from pybench.errors import writing
from pybench.history.series import METRICS, change_points, changes_table, points, series, series_labels
from pybench.report.html import render_html
from pybench.report.tables import markdown_table

SCALE = {"%": 100.0, "MB": 1e-6, "ms": 1.0, "s": 1.0}


def version_ticks(ax, group: pd.DataFrame) -> None:
    """The framework's version under the first run of each version."""
    versions = group["framework_version"].astype(str).tolist()
    firsts = [i for i, v in enumerate(versions) if i == 0 or v != versions[i - 1]]
    ax.set_xticks(firsts, labels=[versions[i].split("+")[0] for i in firsts], rotation=30, ha="right",
                  fontsize=8)
    ax.set_xlabel(f"run of the series (n = {len(group)}), labelled by the {group['framework'].iloc[0]} version "
                  "it ran")


def draw_metric(ax, group: pd.DataFrame, name: str, min_change: float) -> None:
    metric = METRICS[name]
    scale = SCALE[metric.unit]
    index = np.arange(len(group))
    values = group[metric.column].to_numpy(dtype=float) * scale
    left_out = group["busy"].to_numpy(bool) & metric.timed
    kept = points(group, metric)
    positions = index[group[metric.column].notna().to_numpy() & ~left_out]
    if metric.low:
        low = group[metric.low].to_numpy(dtype=float) * scale
        high = group[metric.high].to_numpy(dtype=float) * scale
        errors = np.vstack([values - low, high - values])
        ax.errorbar(index[~left_out], values[~left_out], yerr=errors[:, ~left_out], fmt="none",
                    ecolor="0.6", elinewidth=1)
    ax.plot(positions, values[positions], "o", color=plots.color(group["framework"].iloc[0], 0), markersize=4,
            label="run (95% interval)" if metric.low else "run")
    if left_out.any():
        ax.plot(index[left_out], values[left_out], "o", mfc="none", color="0.6", markersize=4,
                label="busy machine: left out")
    for change in change_points(kept[metric.column], metric.log, min_change):
        at = positions[change.index] - 0.5
        ax.axvline(at, color="black", linestyle="--", linewidth=1)
        ax.annotate(f"{100 * change.relative:+.0f}%", (at, 1.0), xycoords=("data", "axes fraction"),
                    xytext=(3, -12), textcoords="offset points", fontsize=8)
    ax.set_ylabel(f"{metric.label} ({metric.unit})")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def series_figure(group: pd.DataFrame, label: str, path: Path, min_change: float) -> Path:
    names = [n for n, m in METRICS.items() if group[m.column].notna().any()]
    figure = Figure(figsize=(8.5, 2.3 * len(names) + 0.8), layout="constrained")
    axes = figure.subplots(len(names), 1, squeeze=False, sharex=True)[:, 0]
    for ax, name in zip(axes, names):
        draw_metric(ax, group, name, min_change)
    version_ticks(axes[-1], group)
    figure.suptitle(label, fontsize=9, wrap=True)
    return plots.save(figure, path)


def page_markdown(rows: pd.DataFrame, folder: Path, min_change: float, order: str) -> tuple[str, str]:
    changes = changes_table(rows, min_change=min_change, order=order)
    headline = (f"- {len(changes)} change(s) of {min_change:g}% or more found in "
                f"{rows['series_key'].nunique()} series of {len(rows)} runs" if len(changes)
                else f"- No change of {min_change:g}% or more in {rows['series_key'].nunique()} series of "
                     f"{len(rows)} runs")
    body = ["## Changes", "", markdown_table(changes) if len(changes) else "None found.", "", "## Series", ""]
    grouped = series(rows, order)
    labels = series_labels(grouped)
    for number, (key, group) in enumerate(grouped.items(), start=1):
        name = f"series-{number}.png"
        series_figure(group, labels[key], folder / name, min_change)
        body += [f"### {number}. {labels[key]}", "", f"![{labels[key]}]({name})", ""]
    return headline, "\n".join(body)


def write_page(rows: pd.DataFrame, path: Path, min_change: float, order: str = "time") -> Path:
    with tempfile.TemporaryDirectory() as scratch:
        headline, body = page_markdown(rows, Path(scratch), min_change, order)
        html = render_html("pybench history", headline, body, Path(scratch))
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(html, encoding="utf-8")
    return path

"""The summary table of a comparison run, and DataFrames rendered as GitHub markdown.

`summary_table` keeps numbers as numbers (NaN where a run has none) so callers can sort, export
or test it; `markdown_table` does the formatting. Markdown is written here rather than with
`DataFrame.to_markdown` so the report does not need `tabulate`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from pybench.peak import share_of_peak

SHORT_FINGERPRINT = 8  # hex digits: enough to tell runs apart by eye, short enough for a table
MISSING = "—"

Formatter = Callable[[object], str]


def batch_size_of(run: dict, results: dict) -> int | None:
    return ((run.get("config") or {}).get("batch_size")
            or (results.get("config") or {}).get("batch_size"))


def summary_table(results: dict) -> pd.DataFrame:
    """One row per run, sorted by model then median step time, with the speed ratio per model.

    `× fastest` is a run's median step time divided by that of the fastest ok run of the same
    model, so 1.00 marks the fastest framework and failed runs have none. Only runs measured on
    a quiet machine are ranked: a run measured on a busy one has no ratio (the headline refuses
    to compare it, and no table may rank what the headline refused).
    """
    peaks = device_peaks(results.get("runs", []))
    rows = [summary_row(run, batch_size_of(run, results), peaks.get(run.get("device_name")))
            for run in results.get("runs", [])]
    table = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    if table.empty:
        return table
    quiet = pd.Series([not (run.get("machine_load") or {}).get("busy") for run in results.get("runs", [])])
    ok_medians = table["step median ms"].where((table["status"] == "ok") & quiet)
    # Within each source: several results files are held against each other only through
    # --baseline, never ranked as if each were a framework.
    source = pd.Series([run.get("source") or "" for run in results.get("runs", [])])
    fastest = ok_medians.groupby([source, table["model"]]).transform("min")
    table["× fastest"] = ok_medians / fastest
    table = table.sort_values(["model", "step median ms"], na_position="last", kind="stable")
    return table.reset_index(drop=True)


def device_peaks(runs: list[dict]) -> dict:
    """The highest measured float32 rate per device, over every framework's runs on it."""
    peaks: dict = {}
    for run in runs:
        if run.get("peak_flops_per_s"):
            name = run.get("device_name")
            peaks[name] = max(peaks.get(name, 0.0), run["peak_flops_per_s"])
    return peaks


def summary_row(run: dict, batch_size: int | None = None, peak: float | None = None) -> dict:
    row = {"framework": run["framework"], "model": run["model"], "seed": run.get("seed"),
           "status": run["status"], "reason": one_line(run.get("reason") or "")}
    if run["status"] != "ok":
        # A run that did not finish has no metrics worth showing, whatever fields it carries.
        return row
    steps = run.get("step_time_ms") or {}
    epochs = run.get("epoch_s") or []
    memory = run.get("peak_memory_bytes")
    flops = run.get("flops_per_image")
    row.update({
        "version": run.get("framework_version"),
        "test accuracy %": scaled(run.get("test_accuracy"), 100),
        "step median ms": steps.get("median"),
        "step IQR ms": steps.get("iqr"),
        "step p90 ms": steps.get("p90"),
        "images/s": run.get("images_per_s"),
        "block images/s": run.get("block_images_per_s"),
        "first step s": run.get("first_step_s"),
        "epoch s (mean)": float(np.mean(epochs)) if epochs else None,
        "time to target s": run.get("time_to_target_s"),
        "target step": run.get("time_to_target_step"),
        "kept epoch": run.get("kept_epoch") if run.get("epochs_run", 0) > 1 else None,
        "peak memory MB": scaled(memory, 1e-6),
        "memory kind": run.get("memory_kind"),
        "params": run.get("n_params"),
        "MFLOPs/image": scaled(flops, 1e-6),
        "% of peak": scaled(share_of_peak(run, batch_size, peak), 100),
        "busy machine": (run.get("machine_load") or {}).get("busy_reason"),
        "init fingerprint": short(run.get("init_fingerprint")),
        "data fingerprint": short(run.get("data_fingerprint")),
    })
    return row


SUMMARY_COLUMNS = [
    "framework", "model", "seed", "status", "version", "test accuracy %", "step median ms", "step IQR ms",
    "step p90 ms", "× fastest", "images/s", "block images/s", "first step s", "epoch s (mean)", "time to target s",
    "target step", "kept epoch",
    "peak memory MB", "memory kind", "params", "MFLOPs/image", "% of peak", "busy machine",
    "init fingerprint",
    "data fingerprint", "reason",
]

SUMMARY_FORMATS: dict[str, Formatter] = {
    "seed": lambda v: f"{int(v)}",
    "test accuracy %": lambda v: f"{v:.2f}",
    "step median ms": lambda v: f"{v:.2f}",
    "step IQR ms": lambda v: f"{v:.2f}",
    "step p90 ms": lambda v: f"{v:.2f}",
    "× fastest": lambda v: f"{v:.2f}",
    "images/s": lambda v: f"{v:,.0f}",
    "block images/s": lambda v: f"{v:,.0f}",
    "first step s": lambda v: f"{v:.2f}",
    "epoch s (mean)": lambda v: f"{v:.1f}",
    "time to target s": lambda v: f"{v:.1f}",
    "peak memory MB": lambda v: f"{v:,.0f}",
    "params": lambda v: f"{int(v):,}",
    "target step": lambda v: f"{int(v):,}",
    "kept epoch": lambda v: f"{int(v)}",
    "MFLOPs/image": lambda v: f"{v:.3f}",
    "% of peak": lambda v: f"{v:.1f}",
}


def scaled(value: float | None, factor: float) -> float | None:
    return None if value is None else value * factor


def short(fingerprint: str | None) -> str | None:
    return fingerprint[:SHORT_FINGERPRINT] if fingerprint else None


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def is_missing(value: object) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists and other non-scalars are values, not missing
        return False


def format_cell(value: object, formatter: Formatter | None = None) -> str:
    if is_missing(value):
        return MISSING
    if formatter is not None:
        return formatter(value)
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return one_line(str(value))


def escape(cell: str) -> str:
    # A bare | would end the cell: framework failure reasons can contain shell pipelines.
    return cell.replace("|", "\\|")


def markdown_table(frame: pd.DataFrame, formats: Mapping[str, Formatter] | None = None,
                   index: bool = False, drop_empty: bool = False) -> str:
    """`frame` as a GitHub markdown table; `formats` maps column names to cell formatters.

    With `drop_empty`, columns with no value in any row are left out (e.g. `time to target s`
    when no target was set) so the table stays readable.
    """
    formats = formats or {}
    if drop_empty:
        frame = frame.loc[:, [c for c in frame.columns if not frame[c].map(is_missing).all()]]
    if index:
        frame = frame.reset_index()
    header = [escape(str(c)) for c in frame.columns]
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]
    rows = [
        [escape(format_cell(value, formats.get(column)))
         for column, value in zip(frame.columns, row)]
        for row in frame.itertuples(index=False, name=None)
    ]
    align = ["---:" if is_number else "---" for is_number in numeric]
    lines = [header, align, *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)

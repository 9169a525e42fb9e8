"""What the commands print: `compare`'s summary, `parity`'s table, `sweep`'s one row per run.

Like every report, it reads only the stored document (results.json, parity.json) and never
imports a framework; the commands call it after their runs are stored.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pybench.report.headline import headline_lines, prediction_lines, score_note
from pybench.report.significance import seed_groups
from pybench.report.tables import summary_table

CONSOLE_COLUMNS = ["framework", "model", "status", "test accuracy %", "step median ms",
                   "step IQR ms", "images/s", "first step s", "× fastest"]
AGGREGATE_COLUMNS = ["framework", "model", "runs", "seeds", "accuracy mean %",
                     "accuracy 95% interval %", "step median ms", "× fastest"]


def summary_text(document: dict) -> str:
    """What `compare` prints: the runs (one row each, or with several seeds or repeats one row
    per framework and model, aggregated), the forward check per model, one line per run that
    did not finish with its full reason, then the headline's verdicts."""
    several = len({(r.get("seed"), r.get("repeat")) for r in document["runs"]}) > 1
    lines = [*score_note(document)[:1], console_table(document, several)]
    checks: dict[str, dict[str, float]] = {}
    tolerances: dict[str, float] = {}
    bad: set[tuple[str, str]] = set()
    for run in document["runs"]:
        if run.get("parity"):
            p = run["parity"]
            diff = max(p["max_abs_logit_diff_eval"], p["max_abs_logit_diff_train"])
            worst = checks.setdefault(run["model"], {})
            worst[run["framework"]] = max(worst.get(run["framework"], 0.0), diff)
            tolerances[run["model"]] = min(tolerances.get(run["model"], np.inf), p["tolerance"])
            if not p["ok"]:
                bad.add((run["model"], run["framework"]))
    for model, worst in checks.items():
        items = ", ".join(f"{framework} {diff:.1e}"
                          f"{' (OVER TOLERANCE)' if (model, framework) in bad else ''}"
                          for framework, diff in worst.items())
        lines.append(f"forward check, {model} (max |logit diff| to the reference"
                     f"{', the largest over seeds' if several else ''}, tolerance "
                     f"{tolerances[model]:.1e}): {items}")
    lines += [f"{run['framework']} {run['model']}"
              f"{' seed ' + str(run['seed']) if several else ''}: {run['status']}: "
              f"{run.get('reason', '')}"
              for run in document["runs"] if run.get("status") not in ("ok", "unavailable")]
    lines += [line.replace("**", "") for line in headline_lines(document) + prediction_lines(document)]
    return "\n".join(lines)


BUSY_MARK = "busy"  # in place of a ratio the headline refused: measured on a busy machine


def printable(table: pd.DataFrame) -> str:
    """A table as text with "—" for every missing figure (never NaN or None)."""
    shown = table.astype(object).where(table.notna(), "—")
    return shown.to_string(index=False)


def console_table(document: dict, several: bool) -> str:
    if not several:
        full = summary_table(document)
        # The throughput over blocks of steps, where it was measured (by default on CUDA).
        blocks = ["block images/s"] if full["block images/s"].notna().any() else []
        table = full[CONSOLE_COLUMNS + blocks].round(3).round({"images/s": 0, **dict.fromkeys(blocks, 0)})
        table = table.astype(object)
        table.loc[full["busy machine"].notna() & (full["status"] == "ok"), "× fastest"] = BUSY_MARK
        return printable(table)
    table = seed_groups(document)
    if table.empty:
        return "no run finished"
    # The headline's statistic: the median over a framework's runs of each run's median step,
    # ranked only from the runs measured on a quiet machine; a framework measured only on a busy
    # one shows its median, marked, and no ratio.
    medians, busy = {}, {}
    for run in document["runs"]:
        if run.get("status") == "ok" and (run.get("step_time_ms") or {}).get("median"):
            which = busy if (run.get("machine_load") or {}).get("busy") else medians
            which.setdefault((run["framework"], run["model"]), []).append(
                run["step_time_ms"]["median"])
    keys = list(zip(table["framework"], table["model"]))
    quiet = pd.Series([float(np.median(medians[key])) if key in medians else np.nan for key in keys])
    table["step median ms"] = [q if not np.isnan(q) else float(np.median(busy.get(key, [np.nan])))
                               for q, key in zip(quiet, keys)]
    ratios = (quiet / quiet.groupby(table["model"]).transform("min")).round(3)
    table["× fastest"] = [r if not np.isnan(r) else (BUSY_MARK if key in busy else np.nan)
                          for r, key in zip(ratios, keys)]
    return printable(table[AGGREGATE_COLUMNS].round(3))


def parity_table(document: dict) -> pd.DataFrame:
    cols = ["model", "framework", "status", "reference", "n_params",
            "max_abs_logit_diff_eval", "max_abs_logit_diff_train", "logit_tolerance", "max_rel_loss_diff",
            "max_abs_weight_diff", "ok", "reason"]
    return pd.DataFrame(document["results"]).reindex(columns=cols)


def sweep_table(document: dict):
    """One row per run: its id, status and headline figures (what `sweep` prints)."""
    rows = [{"run": r.get("run_id", f"{r['framework']}-{r['model']}"), "status": r["status"],
             "test accuracy %": (r["test_accuracy"] * 100
                                 if r.get("test_accuracy") is not None else None),
             "step median ms": (r.get("step_time_ms") or {}).get("median"),
             "reason": r.get("reason", "")}
            for r in document["runs"]]
    return pd.DataFrame(rows, columns=["run", "status", "test accuracy %", "step median ms",
                                       "reason"])

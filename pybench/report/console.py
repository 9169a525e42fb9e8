"""What the commands print: `compare`'s summary, `parity`'s table, `sweep`'s one row per run.

Like every report, it reads only the stored document (results.json, parity.json) and never
imports a framework; the commands call it after their runs are stored.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pybench.report.headline import headline_lines, score_note
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
    lines += [line.replace("**", "") for line in headline_lines(document)]
    return "\n".join(lines)


def console_table(document: dict, several: bool) -> str:
    if not several:
        table = summary_table(document)
        # The throughput over blocks of steps, where it was measured (by default on CUDA).
        blocks = ["block images/s"] if table["block images/s"].notna().any() else []
        table = table[CONSOLE_COLUMNS + blocks].round(3).round({"images/s": 0, **dict.fromkeys(blocks, 0)})
        return table.to_string(index=False)
    table = seed_groups(document)
    if table.empty:
        return "no run finished"
    # The headline's statistic: the median over a framework's runs of each run's median step,
    # from the runs measured on a quiet machine (all of them when none was).
    medians, busy = {}, {}
    for run in document["runs"]:
        if run.get("status") == "ok" and (run.get("step_time_ms") or {}).get("median"):
            which = busy if (run.get("machine_load") or {}).get("busy") else medians
            which.setdefault((run["framework"], run["model"]), []).append(
                run["step_time_ms"]["median"])
    medians = {key: medians.get(key) or busy[key] for key in {**busy, **medians}}
    table["step median ms"] = [float(np.median(medians.get((f, m), [np.nan])))
                               for f, m in zip(table["framework"], table["model"])]
    table["× fastest"] = table["step median ms"] / table.groupby("model")[
        "step median ms"].transform("min")
    return table[AGGREGATE_COLUMNS].round(3).to_string(index=False)


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

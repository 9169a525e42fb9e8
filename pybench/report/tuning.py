"""A tuned sweep's report: each framework's trials, the configurations chosen side by side, the
trials drawn against the searched values, and the headline's tuned verdict.

It reads only the stored document: `tuning` (what `pybench.commands.tune` searched and chose) and
the runs, whose `phase` is "trial" or "final".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pybench.report.tables import markdown_table
from pybench.report.verdicts import accuracy_sentence, accuracy_verdict, busy_caveat, speed_sentence

SEARCH_NAMES = {"grid": "grid search", "random": "random search", "tpe": "TPE search"}


def is_tuned(results: dict) -> bool:
    return bool(results.get("tuning"))


def trial_runs(results: dict, model: str) -> list[dict]:
    return [r for r in results.get("runs", []) if r.get("phase") == "trial" and r["model"] == model
            and "trial" in r]


def final_runs(results: dict, model: str) -> list[dict]:
    return [{**r, "seed": (r.get("config") or {}).get("seed")} for r in results.get("runs", [])
            if r.get("phase") == "final" and r["model"] == model]


def searched_keys(results: dict) -> list[str]:
    return list(results["tuning"].get("space", {}))


FORMATS = {"val %": lambda v: f"{v:.2f}", "test %": lambda v: f"{v:.2f}", "s": lambda v: f"{v:.1f}"}


def trials_frame(results: dict, model: str) -> pd.DataFrame:
    """One row per trial: framework, slot, the searched values, validation and test score,
    what became of it, epochs and seconds."""
    keys = searched_keys(results)
    order = {f: i for i, f in enumerate((results.get("config") or {}).get("frameworks", []))}
    rows = []
    for r in sorted(trial_runs(results, model), key=lambda r: (r["trial"], order.get(r["framework"], 99))):
        config = r.get("config") or {}
        rows.append({"framework": r["framework"], "trial": r["trial"],
                     **{k: config.get(k) for k in keys},
                     "val %": 100 * r["objective"] if r.get("objective") is not None else None,
                     "test %": 100 * r["test_accuracy"] if r.get("test_accuracy") is not None else None,
                     "state": r.get("trial_state", r.get("status")),
                     "epochs": r.get("epochs_run"), "s": r.get("wall_s")})
    return pd.DataFrame(rows)


def chosen_frame(results: dict, model: str) -> pd.DataFrame:
    """The configuration each framework chose, side by side (one column per framework)."""
    studies = results["tuning"].get("models", {}).get(model, {})
    keys = searched_keys(results)
    rows = {}
    for framework, s in studies.items():
        config = s.get("best_config") or {}
        rows[framework] = {"best trial": s.get("best_trial"), **{k: config.get(k) for k in keys},
                           "val %": 100 * s["best_val"] if s.get("best_val") is not None else None,
                           "trials run": s.get("trials_run"), "pruned": s.get("pruned"),
                           "failed": s.get("failed"), "trial time s": s.get("spent_s"),
                           "stopped by": s.get("stopped_by")}
    frame = pd.DataFrame(rows)
    frame.index.name = "setting"
    return frame


def budget_words(tuning: dict) -> str:
    """"tuned over 8 trials each (random search, the same configurations in every framework)"."""
    search = SEARCH_NAMES.get(tuning["search"], tuning["search"])
    same = ("the same configurations in every framework" if tuning.get("same_configurations")
            else "each framework's configurations drawn from its own results, so they may differ")
    budget = f", at most {tuning['time_budget_s']:g} s of trials each" if tuning.get("time_budget_s") else ""
    return f"tuned over {tuning['trials']} trials each ({search}, {same}{budget}; best on validation)"


def tuned_headline_lines(results: dict) -> list[str]:
    """Per model: the tuned verdict on the final seeds, with the chosen configurations."""
    tuning = results["tuning"]
    lines = []
    for model, studies in tuning.get("models", {}).items():
        runs = final_runs(results, model)
        if not any(r.get("status") == "ok" for r in runs):
            lines.append(f"- **{model}** ({budget_words(tuning)}): no verdict run finished.")
            continue
        chosen = "; ".join(f"{f} trial {s['best_trial']} ({values_text(s.get('best_config') or {})})"
                           for f, s in studies.items() if s.get("best_trial") is not None)
        sentences = [f"Chosen: {chosen}.", accuracy_sentence(accuracy_verdict(runs), runs),
                     speed_or_why_not(runs), busy_caveat(runs)]
        stopped = [f for f, s in studies.items() if s.get("stopped_by") == "time_budget"]
        if stopped:
            sentences.append(f"The time budget stopped {', '.join(stopped)} before its last trial.")
        lines.append(f"- **{model}** ({budget_words(tuning)}; verdict on the fresh seeds "
                     f"{', '.join(map(str, tuning['final_seeds']))}): " + " ".join(s for s in sentences if s))
    return lines


def values_text(config: dict) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in config.items())


def speed_or_why_not(runs: list[dict]) -> str:
    """Step times compare only at the same batch size."""
    sizes = {(r.get("config") or {}).get("batch_size") for r in runs if r.get("status") == "ok"}
    if len(sizes) > 1:
        return "Step times not compared: the chosen batch sizes differ."
    return speed_sentence(runs)


def tuning_section(results: dict, figures: Path | None) -> str:
    """## Tuning: the search, then per model the chosen configurations, the trials figure and
    the trials table."""
    tuning = results["tuning"]
    space = ", ".join(f"{k} {d}" for k, d in tuning.get("space", {}).items())
    lines = ["## Tuning", "",
             f"{budget_words(tuning).capitalize()}. Space: {space}. Trials train on seed "
             f"{tuning.get('seed', 0)} and are scored by their best epoch's validation score "
             f"(the test split never selects); pruner: {tuning.get('pruner')}; sampler seed "
             f"{tuning.get('sampler_seed')}. The verdict runs train each framework's choice on the "
             f"fresh seeds {', '.join(map(str, tuning['final_seeds']))}."]
    for model in tuning.get("models", {}):
        lines += ["", f"### {model}: chosen configurations", "",
                  markdown_table(chosen_frame(results, model), index=True)]
        if figures is not None and (name := trials_figure(results, model, figures)):
            lines += ["", f"![{model}: validation score of every trial against the searched values]({name})"]
        lines += ["", f"### {model}: trials", "",
                  markdown_table(trials_frame(results, model), FORMATS)]
    return "\n".join(lines)


def log_axis(axis, values: list[float]) -> None:
    """A log axis labelled 1, 2 and 5 times a power of ten when its values span two decades or
    fewer, powers of ten beyond, in plain numbers ("0.02"), minor ticks unlabelled: matplotlib's
    own labels over a decade or two are "2×10^-2, 3×10^-2, ..." on every minor tick, and run into
    each other."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.axes.set_xscale("log") if axis is axis.axes.xaxis else axis.axes.set_yscale("log")
    span = np.log10(max(values) / min(values)) if values else 3.0
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if span <= 2 else (1.0,), numticks=12))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def trials_figure(results: dict, model: str, out: Path) -> str | None:
    """tuning-<model>.png: each searched value against the trials' validation score, one colour
    per framework (pruned trials hollow); None when nothing finished."""
    from matplotlib.figure import Figure

    from pybench.report.plots import save

    frame = trials_frame(results, model)
    keys = searched_keys(results)
    if frame.empty or frame["val %"].isna().all():
        return None
    space = results["tuning"].get("space", {})
    figure = Figure(figsize=(4.2 * len(keys), 3.6), layout="constrained")
    axes = figure.subplots(1, len(keys), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for i, (framework, rows) in enumerate(frame.groupby("framework", sort=False)):
            x = rows[key].astype(str) if rows[key].map(lambda v: isinstance(v, str)).any() else rows[key]
            pruned = rows["state"] == "pruned"
            colour, marker = f"C{i}", "os^D"[i % 4]  # shapes: random search puts frameworks on one spot
            jitter = (i - 0.5) * 0.08 if x.dtype == object else 0
            positions = x if x.dtype != object else pd.Categorical(x).codes + jitter
            ax.scatter(np.asarray(positions)[~pruned.values], rows["val %"][~pruned], color=colour,
                       marker=marker, label=framework, alpha=0.6, s=40 + 30 * (i == 0))
            ax.scatter(np.asarray(positions)[pruned.values], rows["val %"][pruned], facecolors="none",
                       edgecolors=colour, marker=marker, label=f"{framework} (pruned)" if pruned.any() else None)
            if x.dtype == object:
                categories = pd.Categorical(x).categories
                ax.set_xticks(range(len(categories)), categories)
        if str(space.get(key, "")).startswith("log_uniform"):
            log_axis(ax.xaxis, [v for v in frame[key] if isinstance(v, (int, float)) and v > 0])
        ax.set_xlabel(key)
        ax.set_ylabel("validation %")
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside right upper", fontsize=8)  # beside the panels, off the points
    figure.suptitle(f"{model}: trials")
    name = f"tuning-{model}.png".replace("/", "_")
    save(figure, out / name)
    return name

"""Render `report.md` and `report.html` from stored runs: headline, header, sources, fidelity,
summary, seeds, baseline, per-model metrics, curves.

`write_report` is the entry point. `pybench.report.building` loads and checks everything first
(results and every prediction file), so an invalid run directory raises a one-line PybenchError
before any file is written; here each section is a small function returning a markdown string.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

# The submodules themselves, not the package (whose __init__ imports this module); `plots` as
# `draw`, since `plots` is write_report's on/off flag, as the CLI's --no-plots names it.
import pybench.report.metrics as metrics
import pybench.report.mistakes as mistakes
import pybench.report.plots as draw
from pybench import evaluation, short_runs
from pybench.datasets.story import summary_lines
from pybench.errors import writing
from pybench.report.building import ModelRuns, build_report, classes_for
from pybench.report.headline import headline_lines, prediction_lines, score_note
from pybench.report.html import write_html
from pybench.report.loading import Predictions
from pybench.report.significance import (
    ALPHA,
    EFFECT_FLOOR,
    baseline_differences,
    baseline_table,
    best_configurations,
    is_sweep,
    p_value,
    seed_groups,
)
from pybench.report.tables import (
    MISSING,
    SUMMARY_FORMATS,
    markdown_table,
    one_line,
    short,
)
from pybench.report.tuning import is_tuned, tuning_section
from pybench.report.verdicts import timed_steps

REPORT_FILE = "report.md"
SUMMARY_CSV = "summary.csv"


def rate(value: float) -> str:
    """Rates in [0, 1] (precision, recall, AUC, agreement) to 4 decimals throughout."""
    return f"{value:.4f}"


def percent(value: float) -> str:
    return f"{value:.2f}"


def seconds(value: float) -> str:
    return f"{value:.1f}"


def bounds(value) -> str:
    """A stored 95% interval [low, high] as a cell (— when there is none)."""
    return f"[{value[0]:.3f}, {value[1]:.3f}]" if isinstance(value, (list, tuple)) else MISSING


def percent_bounds(value) -> str:
    return f"[{100 * value[0]:.2f}, {100 * value[1]:.2f}]" if isinstance(value, (list, tuple)) else MISSING


def evaluations(model: ModelRuns, class_names: list[str]) -> dict[str, dict]:
    """Each framework's stored `evaluation` (pybench.evaluation, made where the run ended); a
    results file written before runs stored it gets the same figures from its predictions."""
    runs = {run["framework"]: run for run in model.ok_runs}
    return {fw: runs.get(fw, {}).get("evaluation") or evaluation.evaluate(p.logits, p.labels, class_names)
            for fw, p in model.predictions.items()}


def scientific(value: float) -> str:
    return f"{value:.2e}"


def write_report(sources: str | Path | list, out_dir: str | Path | None = None,
                 plots: bool = True, baseline: str | Path | None = None, force: bool = False) -> Path:
    """Write `report.md` and `report.html` (and PNG figures beside them unless `plots` is
    False); return the Markdown file's path.

    `sources` is one results folder or file, or several (see `sources.combine`); `baseline`, if
    given, is a results folder or file every run is held against (`significance`; `force`
    compares runs unlike the baseline's, which otherwise get no verdict). The report
    goes into the single source's folder unless `out_dir` is given (several sources: a new
    runs/<timestamp>-report/); figure links are relative, so the folder can be moved whole.
    """
    plots = short_runs.figures_wanted(plots)  # the docs tests' override draws none
    inputs = build_report(sources, baseline)  # everything checked before a file is written
    results, models, class_names, table = (inputs.results, inputs.models, inputs.class_names,
                                           inputs.table)
    out = Path(out_dir) if out_dir is not None else inputs.default_out
    out.mkdir(parents=True, exist_ok=True)

    table.to_csv(out / SUMMARY_CSV, index=False)
    figures = out if plots else None
    headline = headline_section(results)
    body = [
        header_section(results),
        sources_section(results),
        fidelity_section(models.values()),
        summary_section(table),
        seeds_section(results) if not is_tuned(results) else tuning_section(results, figures),
        time_to_result_section(results, figures),
        baseline_section(results, inputs.baseline, baseline, force),
        *(model_section(m, classes_for(m, class_names), figures) for m in models.values()),
        test_set_section(test_set_of(inputs), inputs.run_dir, out if plots else None),
        training_section(models.values(), figures),
    ]
    body_md = "\n\n".join(s for s in body if s).rstrip() + "\n"
    title = report_title(results)
    path = out / REPORT_FILE
    with writing(path):
        path.write_text(f"# {title}\n\n{headline}\n\n{body_md}", encoding="utf-8")
    write_html(out, title, headline, body_md)
    return path


def report_title(results: dict) -> str:
    dataset = results.get("dataset") or {}
    name = dataset.get("name") or (results.get("config") or {}).get("dataset", "?")
    return f"pybench report: {name}"


def file_stem(name: str) -> str:
    """A model name made safe and stable as part of a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def image(name: str, alt: str) -> str:
    return f"![{alt}]({name})"


# --- header -------------------------------------------------------------------------------


def header_section(results: dict) -> str:
    dataset = results.get("dataset") or {}
    version = results.get("pybench_version", MISSING)
    if results.get("commit"):
        version += f", commit {results['commit'][:10]}"
        version += " with uncommitted changes" if results.get("dirty") else ""
    several = bool(results.get("sources"))
    lines = [
        "## Run",
        "",
        f"- **Command:** `{results.get('command', MISSING)}`",
        f"- **Created:** {results.get('created', MISSING)} (pybench {version})",
        "- **Machine:** " + ("see Sources (one per results file)" if several
                             else machine_line(results.get("machine") or {})),
        f"- **Dataset:** {dataset_line(dataset)}",
        "",
        *data_lines(dataset, results.get("config") or {}),
        "### Configuration" + (" (of the first source)" if several else ""),
        "",
        markdown_table(config_frame(results.get("config") or {})),
    ]
    return "\n".join(lines)


def sources_section(results: dict) -> str:
    """With several results files: each one's label, machine, creation time and command."""
    sources = results.get("sources")
    if not sources:
        return ""
    rows = [{"source": s["label"], "machine": machine_line(s["machine"]),
             "created": s.get("created"), "dataset": s.get("dataset"),
             "data fingerprint": short(s.get("data_fingerprint")),
             "seed": (s.get("config") or {}).get("seed"), "command": s.get("command"),
             "path": s["path"]} for s in sources]
    return "\n".join(["## Sources", "",
                      "The runs of several results files; each run is labelled `framework "
                      "[source]`.", "", markdown_table(pd.DataFrame(rows))])


# --- headline -------------------------------------------------------------------------------


def headline_section(results: dict) -> str:
    """Per model (and source): the verdicts, each with its interval (see `verdicts`)."""
    return "\n".join(["## Headline", "", *score_note(results), *headline_lines(results), *prediction_lines(results)])


# --- seeds and baseline -----------------------------------------------------------------------


def time_to_result_section(results: dict, figures: Path | None) -> str:
    """## Time to result: each workload's median per framework and, over two or more
    workloads, AlgoPerf's performance profile (`time_to_result`)."""
    from pybench.report.headline import headline_groups
    from pybench.report.time_to_result import performance_profile, profile_figure, workload_medians

    medians = workload_medians(headline_groups(results))
    if not medians:
        return ""
    frameworks = list(dict.fromkeys(f for times in medians.values() for f in times))
    table = pd.DataFrame([{"workload": name, **{f: times.get(f) for f in frameworks}}
                          for name, times in medians.items()])
    lines = ["## Time to result", "",
             "Median time to the target over seeds, in seconds (set-up, compilation and training; "
             "evaluation excluded; ∞: missed in half the runs or more). See the headline for the "
             "intervals, and pybench's docs/statistics.md (Time to result) for the rules.", "",
             markdown_table(table, {f: lambda v: "∞" if v == float("inf") else f"{v:.1f}" for f in frameworks})]
    if len(medians) >= 2:
        _, _, area = performance_profile(medians)
        lines += ["", f"Performance profile over {len(medians)} workloads (AlgoPerf): the fraction of "
                  "workloads each framework reaches the target on within r times the fastest "
                  "framework's time, r from 1 to 4; its area divided by 3 as one score: "
                  + ", ".join(f"{f} {a:.2f}" for f, a in sorted(area.items(), key=lambda item: -item[1])) + "."]
        if figures is not None:
            lines += ["", image(profile_figure(medians, figures), "performance profile")]
    return "\n".join(lines)


def seeds_section(results: dict) -> str:
    table = seed_groups(results)
    if table.empty:
        return ""
    formats = {"accuracy mean %": percent, "accuracy sd pp": lambda v: f"{v:.2f}",
               "repeats per seed": lambda v: f"{v:g}",
               "pooled step median ms": lambda v: f"{v:.2f}",
               "pooled step p90 ms": lambda v: f"{v:.2f}"}
    sweep = is_sweep(results)
    shown = table if sweep else table.drop(columns=["configuration"])
    lines = [
        "## Configurations" if sweep else "## Seeds aggregated", "",
        "Runs of the same framework, model, device and configuration that differ only in the "
        "seed (or repeat the same seed): accuracy as the mean over seeds with its 95% t interval on the logit "
        "scale (never outside 0-100%) "
        "and standard deviation (repeats of a seed averaged first), step times pooled over all "
        "runs (first steps excluded).", "", markdown_table(shown, formats, drop_empty=True)]
    if sweep:
        lines += ["", "### Best configuration per framework", "",
                  "Highest mean test accuracy over seeds (a tie goes to the faster step).", "",
                  markdown_table(best_configurations(table), formats, drop_empty=True)]
    return "\n".join(lines)


def baseline_section(results: dict, baseline: dict | None, where, force: bool = False) -> str:
    if baseline is None:
        return ""
    table = baseline_table(results, baseline, where, force)
    differences = baseline_differences(results, baseline)
    intro = (f"Each run against the baseline `{where}` run of the same framework and model. A "
             f"step-time change is significant when Mann-Whitney U on the per-step times gives "
             f"p < {ALPHA} and the medians differ by at least {EFFECT_FLOOR:.0%}.")
    if differences.unlike:
        intro += (" **These runs are not like the baseline's** (below): " +
                  ("compared anyway (--force)." if force else
                   "no ratio and no verdict is given across another configuration or dataset; --force compares "
                   "anyway."))
    said = [f"- {line}" for line in differences.lines()] or ["- nothing differs: the same configuration, "
                                                             "dataset, machine and versions"]
    intro += "\n\nWhat differs from the baseline:\n\n" + "\n".join(said)
    if table.empty:
        return "\n".join(["## Baseline", "", intro, "", "No run has a counterpart in the baseline."])
    formats = {"accuracy %": percent, "baseline accuracy %": percent,
               "step median ms": lambda v: f"{v:.2f}", "baseline median ms": lambda v: f"{v:.2f}",
               "ratio": lambda v: f"{v:.3f}×", "p (Mann-Whitney)": p_value}
    return "\n".join(["## Baseline", "", intro, "",
                      markdown_table(table.drop(columns=["significant"]), formats)])


def machine_line(machine: dict) -> str:
    gpus = machine.get("gpus") or []
    gpu_names = [g.get("name", str(g)) if isinstance(g, dict) else str(g) for g in gpus]
    gpu = ", ".join(gpu_names) if gpu_names else "none"
    driver = machine.get("cuda_driver")
    if gpu_names and driver:
        gpu += f" (CUDA driver {driver})"
    memory = machine.get("memory_gb")
    parts = [
        f"{machine.get('cpu', 'unknown CPU')}",
        f"{machine.get('cores', '?')} cores",
        f"{memory:.1f} GB RAM" if isinstance(memory, (int, float)) else None,
        f"GPU: {gpu}",
        f"Python {machine['python']}" if machine.get("python") else None,
        machine.get("platform"),
    ]
    return "; ".join(p for p in parts if p)


def dataset_line(dataset: dict) -> str:
    classes = [str(c) for c in dataset.get("classes") or []]
    shown = ", ".join(classes[:12]) + (", …" if len(classes) > 12 else "")
    sizes = " / ".join(
        f"{dataset[key]:,} {key.removesuffix('_size')}"
        for key in ("train_size", "val_size", "test_size") if isinstance(dataset.get(key), int)
    )
    shape = "×".join(str(d) for d in dataset.get("in_shape") or [])
    parts = [
        str(dataset.get("name", "?")),
        sizes or None,
        f"{len(classes)} {'findings, multi-label' if dataset.get('task') == 'multilabel' else 'classes'} "
        f"({shown})" if classes else None,
        f"input {shape}" if shape else None,
        f"fingerprint `{short(dataset.get('fingerprint')) or MISSING}`",
    ]
    return "; ".join(p for p in parts if p)


def data_lines(dataset: dict, config: dict) -> list[str]:
    """### Data: how the data was read and what was done to it, the lines `datasets info` and the
    console print (`story.summary_lines`); results from before it was recorded have none."""
    provenance = dataset.get("provenance")
    if not isinstance(provenance, dict) or not provenance.get("layout"):
        return []
    lines = summary_lines(dataset, config)
    # A split's source is indented under the layout: a nested bullet, as in the console.
    bullets = [f"    - {line.strip()}" if line.startswith("  ") else f"- {line}" for line in lines]
    return ["### Data", "", *bullets, ""]


def config_frame(config: dict) -> pd.DataFrame:
    rows = []
    for key, value in config.items():
        if isinstance(value, dict):  # the optimizer: one readable line, e.g. "sgd lr=0.05 ..."
            name = value.get("name", "")
            settings = [f"{k}={v}" for k, v in value.items() if k != "name"]
            value = " ".join([str(name), *settings]).strip()
        elif isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        rows.append({"setting": key, "value": MISSING if value is None else str(value)})
    return pd.DataFrame(rows, columns=["setting", "value"])


# --- fidelity -------------------------------------------------------------------------------


def fidelity_section(models) -> str:
    lines = [
        "## Fidelity",
        "",
        "A fair comparison starts every framework from the same initial weights and feeds it the "
        "same data; the fingerprints below are hashes of both, recorded by each run.",
        "",
    ]
    parity_rows = []
    for model in models:
        lines.append(f"- **{model.name}**")
        # Four spaces: the nesting both GitHub and Python-Markdown (report.html) read.
        lines.extend(f"    - {line}" for line in fidelity_lines(model))
        parity_rows.extend(parity_row(run) for run in model.ok_runs if run.get("parity"))
    if parity_rows:
        formats = {"max abs logit diff (eval)": scientific,
                   "max abs logit diff (train)": scientific}
        lines += ["", "Forward parity (same weights, same batch: largest logit difference to the "
                  "reference):", "", markdown_table(pd.DataFrame(parity_rows), formats)]
    return "\n".join(lines)


def fidelity_lines(model: ModelRuns) -> list[str]:
    ok = model.ok_runs
    if len(ok) < 2:
        names = ", ".join(r["framework"] for r in ok) or "none"
        return [f"fewer than two ok runs ({names}): nothing to compare"]
    lines = [fingerprint_line(ok, "init_fingerprint", "initial weights"),
             fingerprint_line(ok, "data_fingerprint", "training data")]
    if any(run.get("augment_fingerprints") for run in ok):  # a joined tuple per run: hashable
        joined = [{**run, "augment": ",".join(run.get("augment_fingerprints") or []) or None} for run in ok]
        epochs = max(len(run.get("augment_fingerprints") or []) for run in ok)
        lines.append(fingerprint_line(joined, "augment", f"augmented training pixels ({epochs} epochs)"))
    if any(run.get("normalization") for run in ok):
        stated = {}
        for run in ok:
            stated.setdefault(normalization_text(run.get("normalization")), []).append(run["framework"])
        if len(stated) == 1 and None not in stated:
            lines.append(f"input normalisation: **identical** across {', '.join(next(iter(stated.values())))} "
                         f"({next(iter(stated))})")
        else:
            lines.append("input normalisation: **DIFFER** (red flag) — " + "; ".join(
                f"{text or 'not recorded'}: {', '.join(names)}" for text, names in stated.items()))
    if model.shown is not None:
        lines.append(seeds_fingerprint_line(model))
    if len(model.predictions) >= 2:
        if metrics.labels_identical(model.predictions):
            lines.append("test labels: **identical** in every prediction file")
        else:
            lines.append("test labels: **DIFFER** between prediction files (red flag: agreement "
                         "and metrics are not comparable)")
    return lines


def normalization_text(normalization: dict | None) -> str | None:
    """"imagenet: mean 0.449, std 0.226": what a run normalised its inputs with."""
    if not normalization:
        return None
    numbers = " / ".join(f"{m:.3f}" for m in normalization["mean"])
    spreads = " / ".join(f"{s:.3f}" for s in normalization["std"])
    return f"{normalization['name']}: mean {numbers}, std {spreads}"


def seeds_fingerprint_line(model: ModelRuns) -> str:
    """With several seeds: whether, at each seed, every framework started from the same
    weights (the pairing the accuracy verdict rests on)."""
    by_seed: dict = {}
    for run in model.all_runs:
        if run["status"] == "ok":
            by_seed.setdefault((run.get("source"), run.get("seed")), set()).add(
                run.get("init_fingerprint"))
    differ = [str(seed) for (_, seed), prints in by_seed.items() if len(prints) > 1 or None in prints]
    if differ:
        return f"initial weights per seed: **DIFFER** (red flag) at seed {', '.join(differ)}"
    return (f"initial weights per seed: **identical** across frameworks at each of the "
            f"{len(model.seeds)} seeds (the pairing of the accuracy verdict)")


def fingerprint_line(runs: list[dict], key: str, what: str) -> str:
    groups = metrics.fingerprint_groups(runs, key)
    if len(groups) == 1 and None not in groups:
        (fingerprint, names), = groups.items()
        return f"{what}: **identical** across {', '.join(names)} (`{short(fingerprint)}`)"
    listed = "; ".join(f"`{short(fp) or 'not recorded'}`: {', '.join(names)}"
                       for fp, names in groups.items())
    return f"{what}: **DIFFER** (red flag) — {listed}"


def parity_row(run: dict) -> dict:
    parity = run["parity"]
    ok = parity.get("ok")
    return {
        "framework": run["framework"], "model": run["model"],
        "reference": parity.get("reference"),
        "max abs logit diff (eval)": parity.get("max_abs_logit_diff_eval"),
        "max abs logit diff (train)": parity.get("max_abs_logit_diff_train"),
        "parity": MISSING if ok is None else ("ok" if ok else "**FAILED**"),
    }


# --- summary --------------------------------------------------------------------------------


def summary_section(table: pd.DataFrame) -> str:
    if table.empty:
        return "## Summary\n\nNo runs recorded."
    return "\n".join([
        "## Summary",
        "",
        "Step times exclude the first (compiling) step; `× fastest` is the median step time "
        "relative to the fastest ok run of the same model (and source); `busy machine` names "
        "the runs during which other processes or the hypervisor took CPU time (their step "
        "times are left out of the headline's verdict). Memory in MB of 10^6 bytes. `% of "
        "peak`: training FLOPs per step (3 × the forward FLOPs × the batch) over the median step "
        "time, as a share of the machine's peak: the highest float32 rate of a large matrix "
        "product that any framework reached on the same device (measured once per machine and "
        "framework, and cached).",
        "",
        markdown_table(table, SUMMARY_FORMATS, drop_empty=True),
        "",
        f"The same table as CSV: [{SUMMARY_CSV}]({SUMMARY_CSV}).",
    ])


# --- per model ------------------------------------------------------------------------------


def shown_note(model: ModelRuns) -> list[str]:
    if model.shown is None:
        return []
    seed, repeat = model.shown
    return [f"Seed {seed}{f' (repeat {repeat})' if repeat else ''}, the first of "
            f"{len(model.seeds)} seed{'s' if len(model.seeds) > 1 else ''}: the headline and "
            "Seeds aggregated cover every run.", ""]


def model_section(model: ModelRuns, class_names: list[str], figures: Path | None) -> str:
    lines = [f"## Model: {model.name}", "", *shown_note(model)]
    # A framework that could not run at all is said once, in the headline (`left_out_lines`).
    lines += [f"- {run['framework']}: **{run['status']}** — "
              f"{one_line(run.get('reason') or 'no reason recorded')}" for run in model.other_runs
              if run["status"] != "unavailable"]
    without = [r["framework"] for r in model.ok_runs if r["framework"] not in model.predictions]
    if without:
        lines.append(f"- no predictions stored for: {', '.join(without)}")
    if not model.predictions:
        return "\n".join(lines + ["", "No predictions to evaluate."])
    if lines[-1] != "":
        lines.append("")
    if any(metrics.is_multilabel(p) for p in model.predictions.values()):
        return "\n".join(lines + multilabel_lines(model, class_names, figures))

    binary = len(class_names) == 2
    curves = {fw: metrics.roc_curves(p, class_names) for fw, p in model.predictions.items()}
    scored = evaluations(model, class_names)
    formats = {"accuracy %": percent, "accuracy 95% CI": percent_bounds, "macro AUC 95% CI": bounds,
               "AUC 95% CI": bounds,
               **{c: rate for c in ("sensitivity", "specificity", "AUC", "macro AUC")}}
    lines += ["### Test-set metrics", "",
              markdown_table(overview_frame(model.predictions, scored, class_names), formats), ""]
    if binary:
        lines.append(f"Positive class: `{class_names[1]}` (class 1); AUC from its softmax "
                     "probability.")
    else:
        lines.append("AUC: one-vs-rest per class from softmax probabilities; macro AUC is their "
                     "unweighted mean.")
    lines += ["", interval_note()]
    lines += paired_lines(model)
    if len(model.predictions) >= 2:
        agreement = metrics.agreement(model.predictions).rename_axis("")
        lines += ["", "Agreement: fraction of test images on which two frameworks predict the same "
                  "class.", "",
                  markdown_table(agreement, dict.fromkeys(agreement, rate), index=True)]
    if figures is not None:
        lines += ["", *model_figures(model, curves, class_names, figures)]
    for framework, predictions in model.predictions.items():
        lines += ["", *framework_subsection(framework, predictions, scored[framework], class_names)]
    return "\n".join(lines)


def test_set_of(inputs) -> dict:
    """The stored `test_set` analysis, or for results written before it (one source folder)
    the same made from the stored prediction files."""
    results = inputs.results
    if "test_set" in results or results.get("sources"):
        return results.get("test_set") or {}
    return mistakes.test_set_analysis(results, inputs.run_dir)


def test_set_section(analysis: dict, run_dir: Path, figures: Path | None) -> str:
    """## Same mistakes? Per model: agreement and McNemar's test per pair and seed, the images
    the frameworks disagree on most, the ensembles."""
    parts = []
    for model, found in analysis.items():
        lines = [f"### {model}", ""]
        lines += mcnemar_lines(found)
        lines += disputed_lines(model, found, run_dir, figures)
        lines += ensemble_lines(found)
        if len(lines) > 2:
            parts.append("\n".join(lines))
    if not parts:
        return ""
    return "\n\n".join(["## Same mistakes? Agreement, McNemar's test and ensembles",
                         "The test predictions of every run, side by side (`test_set` in results.json; the "
                         "method is in docs/statistics.md, McNemar's test and ensembles).", *parts])


def mcnemar_lines(found: dict) -> list[str]:
    pairs = pd.DataFrame(found.get("pairs") or [])
    if pairs.empty:
        return []
    pairs["pair"] = pairs["a"] + " vs " + pairs["b"]
    pairs["verdict"] = np.where(pairs["differs"], "accuracies differ on this test set", "no difference resolved")
    shown = pairs[["pair", "seed", *(["finding"] if "finding" in pairs else []), "agreement", "both_right",
                   "only_a_right", "only_b_right", "both_wrong", "p", "p_holm", "verdict"]].rename(columns={
        "both_right": "both right", "only_a_right": "only the first right", "only_b_right": "only the second right",
        "both_wrong": "both wrong", "p": "McNemar exact p", "p_holm": "Holm-adjusted p"})
    differing = int(pairs["differs"].sum())
    return [f"Agreement: the share of test images two frameworks decide alike, {pairs['agreement'].min():.2%} to "
            f"{pairs['agreement'].max():.2%} over {len(pairs)} pairings. McNemar's exact test on the images only "
            f"one of the two gets right, Holm-adjusted over all {len(pairs)} tests: "
            + (f"**{differing} {'resolves' if differing == 1 else 'resolve'} a difference in accuracy on this "
               "test set** (adjusted p < "
               f"{found.get('alpha', 0.05):g})." if differing else "none resolves a difference in accuracy on "
               "this test set (the same seed's runs may still err on different images: the counts say how many)."),
            "", markdown_table(shown, {"agreement": rate, "McNemar exact p": p_cell, "Holm-adjusted p": p_cell}), ""]


def p_cell(value: float) -> str:
    return "< 0.0001" if value < 1e-4 else f"{value:.4f}"


def disputed_lines(model: str, found: dict, run_dir: Path, figures: Path | None) -> list[str]:
    disputed = pd.DataFrame(found.get("disputed") or [])
    if disputed.empty:
        return ["No test image on which the frameworks disagree.", ""] if found.get("pairs") else []
    disputed["pairs disagreeing"] = [f"{k} of {n}" for k, n in zip(disputed["pairs disagreeing"], disputed["of pairs"])]
    frameworks = found.get("frameworks") or []
    columns = ["index", *(["file"] if disputed["file"].notna().any() else []), "true", "pairs disagreeing",
               *frameworks]
    lines = [f"The test images the frameworks disagree on most (each framework's predicted class at seeds "
             f"{', '.join(map(str, found.get('seeds') or []))}):", "",
             markdown_table(disputed[columns].rename(columns={"index": "test image"})), ""]
    name = found.get("disputed_figure")
    if figures is not None and name and (run_dir / name).is_file():
        if (figures / name).resolve() != (run_dir / name).resolve():
            (figures / name).write_bytes((run_dir / name).read_bytes())
        lines += [image(name, f"{model}: the test images the frameworks disagree on most"), ""]
    return lines


def ensemble_lines(found: dict) -> list[str]:
    table = pd.DataFrame(found.get("ensembles") or [])
    if table.empty:
        return []
    name = table["score_name"].iloc[0]
    scale = percent if name == "accuracy" else rate
    factor = 100 if name == "accuracy" else 1
    table[name] = table["score"] * factor
    table[f"best member {name}"] = table["best member score"] * factor
    table["difference (points)"] = table["difference"].map(lambda v: None if v is None or pd.isna(v) else 100 * v)
    columns = ["ensemble", "members", name, "interval", "best member", f"best member {name}",
               *(["difference (points)", "difference interval"] if table["difference"].notna().any() else []),
               "verdict"]
    formats = {name: scale, "interval": percent_bounds if name == "accuracy" else bounds,
               f"best member {name}": scale, "difference (points)": percent, "difference interval": percent_bounds}
    better = table["verdict"].str.startswith("better").sum()
    return [f"Ensembles: the members' probabilities averaged. {better} of {len(table)} beat their best member "
            "beyond the noise of the test images (the difference's 95% paired bootstrap interval above 0); "
            "the others are no better than their best member.", "",
            markdown_table(table[columns].rename(columns={"interval": "95% CI"}),
                           {**formats, "95% CI": formats["interval"]}), ""]


def interval_note() -> str:
    return (f"Intervals: 95% percentile bootstrap over the test images "
            f"({evaluation.BOOTSTRAP_RESAMPLES:,} resamples, the same resamples for every "
            "framework, so intervals pair); the noise they measure is the test set's sampling, "
            "not the training seed's (see Seeds for that).")


def paired_lines(model: ModelRuns) -> list[str]:
    """Each framework's accuracy minus the first framework's on the same test images, with the
    paired bootstrap interval (the noise of which images were tested cancels out)."""
    names = list(model.predictions)
    if len(names) < 2 or not metrics.labels_identical(model.predictions):
        return []
    first = model.predictions[names[0]]
    rows = []
    for name in names[1:]:
        other = model.predictions[name]
        difference = evaluation.paired_difference(
            metrics.predicted_classes(first) == first.labels,
            metrics.predicted_classes(other) == other.labels)
        rows.append({"framework": name, f"accuracy − {names[0]} (points)": 100 * difference["difference"],
                     "paired 95% CI": difference["interval"]})
    frame = pd.DataFrame(rows)
    return ["", f"Paired accuracy differences against {names[0]} (same test images, same "
            "resamples): an interval that holds 0 resolves no difference on this test set.", "",
            markdown_table(frame, {frame.columns[1]: percent, "paired 95% CI": percent_bounds})]


def multilabel_lines(model: ModelRuns, findings: list[str], figures: Path | None) -> list[str]:
    """A multi-label model's section: mean AUC per framework, each finding's AUC side by side,
    then per framework each finding's sensitivity and specificity at the stated threshold."""
    curves = {fw: metrics.finding_curves(p, findings) for fw, p in model.predictions.items()}
    tables = {fw: metrics.per_finding_metrics(p, findings, curves[fw])
              for fw, p in model.predictions.items()}
    scored = evaluations(model, findings)
    overview = pd.DataFrame([{"framework": fw, "mean AUC": none_nan(scored[fw]["macro_auc"]),
                              "mean AUC 95% CI": scored[fw]["macro_auc_interval"],
                              "findings scored": len(scored[fw]["auc"]), "test images": len(p.labels)}
                             for fw, p in model.predictions.items()])
    aucs = pd.DataFrame({"test positives": next(iter(tables.values()))["positives"]})
    for fw in tables:
        aucs[fw] = [none_nan(scored[fw]["auc"].get(f, {}).get("auc")) for f in findings]
        aucs[f"{fw} 95% CI"] = [scored[fw]["auc"].get(f, {}).get("interval") for f in findings]
    threshold = metrics.MULTILABEL_THRESHOLD
    lines = ["### Test-set metrics (multi-label)", "",
             markdown_table(overview, {"mean AUC": rate, "mean AUC 95% CI": bounds}), "",
             "ROC AUC of each finding's sigmoid output; mean AUC is the unweighted mean over the "
             "findings the test set holds both with and without (the others have no AUC: —).",
             "", interval_note(), "",
             markdown_table(aucs.rename_axis("finding"),
                            {**dict.fromkeys(tables, rate),
                             **{f"{fw} 95% CI": bounds for fw in tables}}, index=True)]
    if len(model.predictions) >= 2:
        agreement = metrics.agreement(model.predictions).rename_axis("")
        lines += ["", f"Agreement: fraction of image-finding decisions (sigmoid ≥ {threshold:g}) "
                  "on which two frameworks agree.", "",
                  markdown_table(agreement, dict.fromkeys(agreement, rate), index=True)]
    if figures is not None:
        if any(curves.values()):
            roc_png = f"roc-{file_stem(model.name)}.png"
            draw.roc_plot(curves, f"{model.name}: ROC per finding (test set)", figures / roc_png)
            lines += ["", image(roc_png, f"{model.name} ROC curves per finding")]
        lines += embedding_maps(model, findings, figures)
    for framework, table in tables.items():
        lines += ["", f"### {framework}", "",
                  f"Sensitivity and specificity of the decision sigmoid ≥ {threshold:g} "
                  "(a logit ≥ 0).", "",
                  markdown_table(table, {c: rate for c in table.columns if c != "positives"},
                                 index=True)]
    return lines


def overview_frame(predictions: dict[str, Predictions], scored: dict[str, dict],
                   class_names: list[str]) -> pd.DataFrame:
    """One row per framework, from its stored evaluation: accuracy and AUC with their
    intervals; sensitivity and specificity of the positive class (class 1) when binary."""
    rows = []
    for framework, p in predictions.items():
        result = scored[framework]
        row = {"framework": framework, "accuracy %": 100 * none_nan(result["score"]),
               "accuracy 95% CI": result["score_interval"], "test images": len(p.labels)}
        if len(class_names) == 2:
            positive = result["per_class"].get(class_names[1], {})
            auc = result["auc"].get(class_names[1], {})
            row["sensitivity"] = none_nan(positive.get("recall"))
            row["specificity"] = none_nan(positive.get("specificity"))
            row["AUC"], row["AUC 95% CI"] = none_nan(auc.get("auc")), auc.get("interval")
        else:
            row["macro AUC"] = none_nan(result["macro_auc"])
            row["macro AUC 95% CI"] = result["macro_auc_interval"]
        rows.append(row)
    return pd.DataFrame(rows)


def none_nan(value) -> float:
    """A stored figure, NaN where the record holds none (JSON's null)."""
    return np.nan if value is None else float(value)


def model_figures(model: ModelRuns, curves: dict, class_names: list[str],
                  out: Path) -> list[str]:
    stem = file_stem(model.name)
    confusion_png = f"confusion-{stem}.png"
    confusions = {fw: metrics.confusion(p, class_names) for fw, p in model.predictions.items()}
    draw.confusion_grid(confusions, f"{model.name}: confusion matrices (test set)",
                         out / confusion_png)
    lines = [image(confusion_png, f"{model.name} confusion matrices")]
    if any(curves.values()):
        roc_png = f"roc-{stem}.png"
        draw.roc_plot(curves, f"{model.name}: ROC curves (test set)", out / roc_png)
        lines += ["", image(roc_png, f"{model.name} ROC curves")]
    return lines + embedding_maps(model, class_names, out)


def embedding_maps(model: ModelRuns, class_names: list[str], out: Path) -> list[str]:
    """The t-SNE panels of the runs that stored embeddings (--embeddings), over the images
    every one of them stored."""
    stored = {fw: p for fw, p in model.predictions.items() if p.embeddings is not None}
    if not stored:
        return []
    n = min(len(p.embeddings) for p in stored.values())
    if n < metrics.TSNE_MIN_POINTS:
        return ["", f"Embeddings: only {n} test images stored, too few for a t-SNE map."]
    maps = {fw: metrics.tsne_map(p.embeddings[:n]) for fw, p in stored.items()}
    png = f"tsne-{file_stem(model.name)}.png"
    first = next(iter(stored.values()))
    labels, names = first.labels[:n], class_names
    trained = {fw: p for fw, p in stored.items() if p.train_embeddings is not None}
    m = min((len(p.train_embeddings) for p in trained.values()), default=0)
    train_maps = train_labels = None
    if len(trained) == len(stored) and m >= metrics.TSNE_MIN_POINTS:
        train_maps = {fw: metrics.tsne_map(p.train_embeddings[:m]) for fw, p in trained.items()}
        train_labels = first.train_labels[:m]
    if labels.ndim == 2:  # multi-label: one colour per "No Finding", single finding, "several"
        labels, names = metrics.finding_groups(labels, class_names)
        if train_maps:
            train_labels = metrics.finding_groups(train_labels, class_names)[0]
    split_text = f"{m} training and {n} test images" if train_maps else f"{n} test images"
    which = (f"{m} training images (top row) and {n} test images (bottom row)" if train_maps
             else split_text)
    draw.tsne_panels(maps, labels, names,
                     f"{model.name}: t-SNE of the penultimate features ({split_text})", out / png,
                     train_maps, train_labels)
    lines = ["", image(png, f"{model.name} t-SNE maps"), "",
             f"Each panel is one framework's penultimate features (what its classifier sees) of "
             f"the same first {which}, mapped to 2-d by t-SNE (scikit-learn, "
             f"perplexity {metrics.tsne_perplexity(n):g} or less, PCA initialisation, seed 0) and "
             "coloured by true class (multi-label: No Finding, the one finding, or several). A "
             "map's axes and orientation are arbitrary: compare which classes form clusters and "
             "which mix, and whether the training images mix the same classes as the test "
             "images, not where they lie."]
    return lines + example_lines(model, stored, class_names, out)


def example_lines(model: ModelRuns, stored: dict[str, Predictions], class_names: list[str],
                  out: Path) -> list[str]:
    """The example grid: the stored test images of each class with every framework's call."""
    first = next(iter(stored.values()))
    if first.example_index is None or not len(first.example_index) or first.labels.ndim == 2:
        return []
    index = first.example_index
    predicted = {fw: metrics.predicted_classes(p)[index] for fw, p in stored.items()
                 if p.example_index is not None and np.array_equal(p.example_index, index)}
    png = f"examples-{file_stem(model.name)}.png"
    draw.example_grid(first.example_images, first.labels[index], predicted, class_names,
                      f"{model.name}: test images per class, and each framework's call",
                      out / png)
    wrong = {fw: int((p != first.labels[index]).sum()) for fw, p in predicted.items()}
    return ["", image(png, f"{model.name} example predictions"), "",
            "The first test images of each class (a row per true class), and under each what every "
            "framework predicted; wrong calls in red, framed in red. Wrong here: "
            + ", ".join(f"{fw} {n} of {len(index)}" for fw, n in wrong.items()) + "."]


# The per-class table's columns: the stored rate's name -> its heading.
RATE_HEADINGS = {"accuracy": "accuracy", "specificity": "specificity",
                 "false_positive_rate": "false positive rate", "miss_rate": "miss rate",
                 "precision": "precision", "recall": "recall (sensitivity)", "f1": "f1",
                 "support": "support"}


def per_class_frame(result: dict, class_names: list[str]) -> pd.DataFrame:
    """The stored one-vs-rest rates of every class, its AUC and interval where it has one,
    and with a normal class the share of each class predicted as it."""
    per_class = result["per_class"]  # empty for a run that diverged: every cell —
    frame = pd.DataFrame([{RATE_HEADINGS[k]: none_nan(per_class.get(c, {}).get(k)) if k != "support"
                           else per_class.get(c, {}).get(k) for k in RATE_HEADINGS} for c in class_names],
                         index=pd.Index(class_names, name="class"))
    if len(class_names) > 2:  # binary: the positive class's AUC is in the overview
        frame["AUC"] = [none_nan(result["auc"].get(c, {}).get("auc")) for c in class_names]
        frame["AUC 95% CI"] = [result["auc"].get(c, {}).get("interval") for c in class_names]
    normal = result.get("normal_class")
    if normal:
        frame[f"predicted as {normal}"] = [none_nan(per_class.get(c, {}).get(f"predicted_as_{normal}"))
                                           for c in class_names]
    return frame


def framework_subsection(framework: str, predictions: Predictions, result: dict,
                         class_names: list[str]) -> list[str]:
    per_class = per_class_frame(result, class_names)
    formats = {c: bounds if c.endswith("CI") else rate for c in per_class.columns if c != "support"}
    confusion = metrics.confusion(predictions, class_names)
    confusion.index = [f"true {c}" for c in confusion.index]
    confusion.columns = [f"pred {c}" for c in confusion.columns]
    return [
        f"### {framework}",
        "",
        "Each class one-vs-rest: accuracy, specificity, false positive rate, miss rate (false "
        "negative rate), precision, recall, f1, support (test images of the class)"
        + (f"; predicted as {result['normal_class']}: the share of the class's test images the "
           "model called that class" if result.get("normal_class") else "") + ". — : nothing to "
        "divide by.",
        "",
        markdown_table(per_class, formats, index=True),
        "",
        "Confusion matrix (rows: true class, columns: predicted class):",
        "",
        markdown_table(confusion.rename_axis(""), index=True),
    ]


# --- training curves and step times -----------------------------------------------------------


def training_section(models, figures: Path | None) -> str:
    lines = ["## Training", ""]
    for model in models:
        ok = model.ok_runs
        if not ok:
            continue
        formats = {"accuracy %": percent, "val accuracy %": percent, "epoch s": seconds,
                   "train accuracy %": percent,
                   **dict.fromkeys(("train loss", "test loss", "val loss"), rate)}
        lines += [f"### {model.name}", "", *shown_note(model),
                  markdown_table(epoch_frame(ok), formats)]
        if figures is None:
            lines.append("")
            continue
        stem = file_stem(model.name)
        if any(run.get("losses") or run.get("epoch_accuracy") for run in ok):
            draw.training_curves(ok, f"{model.name}: training", figures / f"curves-{stem}.png")
            lines += ["", image(f"curves-{stem}.png", f"{model.name} training curves")]
        if any(run.get("epoch_test_loss") for run in ok):
            draw.train_test_panels(ok, f"{model.name}: train against test, per epoch",
                                   figures / f"train-test-{stem}.png")
            lines += ["", image(f"train-test-{stem}.png", f"{model.name} train against test"), "",
                      "Per framework: the training loss per epoch (the mean over that epoch's "
                      "training batches, as they were trained on) beside the test loss "
                      "(validation dotted) on the same formula, and the training against the "
                      "test accuracy (grey, right axis; training accuracy counted by each step on "
                      "the batch it trained on). A test loss that turns up while the training "
                      "loss goes on down, or a training accuracy that pulls away from the test "
                      "accuracy, is overfitting."]
        step_times, busy, several = run_step_times(model)
        if step_times:
            draw.step_time_box(step_times, f"{model.name}: step time (first step excluded)",
                               figures / f"step-times-{stem}.png", busy)
            lines += ["", image(f"step-times-{stem}.png", f"{model.name} step times")]
            if several:
                lines += ["", "A box per run: every seed (and repeat) of every framework, as the headline and "
                          "Seeds aggregated count them; the headline's step time is the median of a "
                          "framework's run medians, from the runs on a quiet machine (hatched: busy)."]
        lines.append("")
    return "\n".join(lines) if len(lines) > 2 else ""


def run_step_times(model: ModelRuns) -> tuple[dict[str, np.ndarray], set[str], bool]:
    """Each ok run's timed steps, labelled by framework (and, with several, seed and repeat),
    the labels of the runs measured on a busy machine, and whether there were several."""
    runs = [run for run in model.all_runs if run["status"] == "ok" and len(timed_steps(run))]
    several = len({(run.get("seed"), run.get("repeat")) for run in runs}) > 1

    def label(run: dict) -> str:
        if not several:
            return run["framework"]
        return f"{run['framework']}\ns{run.get('seed')}" + (f" r{run['repeat']}" if run.get("repeat") else "")

    ordered = sorted(runs, key=lambda run: (run["framework"], str(run.get("seed")), run.get("repeat") or 0))
    frameworks = list(dict.fromkeys(run["framework"] for run in runs))
    ordered.sort(key=lambda run: frameworks.index(run["framework"]))
    times = {label(run): timed_steps(run) for run in ordered}
    busy = {label(run) for run in ordered if (run.get("machine_load") or {}).get("busy")}
    return times, busy, several


def per_epoch(run: dict):
    """at(key, epoch): the run's figure `key` of that epoch (0-based), None where not recorded."""
    def at(key: str, epoch: int):
        values = run.get(key) or []
        return values[epoch] if epoch < len(values) else None
    return at


def epoch_frame(runs: list[dict]) -> pd.DataFrame:
    rows = []
    for run in runs:
        accuracy = run.get("epoch_accuracy") or []
        val = run.get("epoch_val_accuracy") or []
        durations = run.get("epoch_s") or []
        at = per_epoch(run)

        for epoch in range(max(len(accuracy), len(durations))):
            fraction = accuracy[epoch] if epoch < len(accuracy) else None
            rows.append({
                "framework": run["framework"], "epoch": epoch + 1,
                "train loss": at("epoch_train_loss", epoch), "test loss": at("epoch_test_loss", epoch),
                "train accuracy %": None if at("epoch_train_accuracy", epoch) is None
                else 100 * at("epoch_train_accuracy", epoch),
                "accuracy %": None if fraction is None else 100 * fraction,
                "val loss": at("epoch_val_loss", epoch),
                "val accuracy %": 100 * val[epoch] if epoch < len(val) else None,
                "kept": "✓" if run.get("kept_epoch") == epoch + 1 and val else "",
                "epoch s": durations[epoch] if epoch < len(durations) else None,
            })
    columns = ["framework", "epoch", "train loss", "test loss", "train accuracy %", "accuracy %",
               "val loss", "val accuracy %", "kept", "epoch s"]
    frame = pd.DataFrame(rows, columns=columns)
    if frame["val accuracy %"].isna().all():  # no validation split: the columns say nothing
        frame = frame.drop(columns=["val loss", "val accuracy %", "kept"])
    # Results recorded before the losses per epoch were: no empty columns.
    return frame.drop(columns=[c for c in ("train loss", "test loss", "train accuracy %")
                               if frame[c].isna().all()])

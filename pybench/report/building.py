"""The report's first half: everything it needs, loaded and checked before a file is written.

`build_report` reads the sources (one results folder or file, or several combined), the baseline
and every listed prediction file, and groups the runs by model; any invalid input raises a
one-line PybenchError here, so a bad run directory leaves no half-written report. The second
half, `pybench.report.markdown`, renders what this returns into Markdown, HTML and figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd

from pybench.errors import PybenchError
from pybench.report.loading import RESULTS_FILE, Predictions, benchmark_source, load_predictions, load_results
from pybench.report.sources import combine, read_sources
from pybench.report.tables import summary_table


@dataclass
class ModelRuns:
    """Everything the report says about one model: its runs and the loaded predictions."""

    name: str
    # The runs the per-framework sections show: with several seeds or repeats, each source's
    # first (seed, repeat); `all_runs` holds every one (the headline and seed tables use them).
    runs: list[dict] = field(default_factory=list)
    all_runs: list[dict] = field(default_factory=list)
    predictions: dict[str, Predictions] = field(default_factory=dict)  # by framework

    @property
    def seeds(self) -> list:
        return list(dict.fromkeys(r.get("seed") for r in self.all_runs))

    @property
    def shown(self) -> tuple | None:
        """The (seed, repeat) the per-framework sections show, when the runs have several."""
        tags = list(dict.fromkeys((r.get("seed"), r.get("repeat")) for r in self.all_runs))
        return tags[0] if len(tags) > 1 else None

    @property
    def ok_runs(self) -> list[dict]:
        return [run for run in self.runs if run["status"] == "ok"]

    @property
    def other_runs(self) -> list[dict]:
        return [run for run in self.runs if run["status"] != "ok"]


@dataclass
class ReportInputs:
    """What a report is made from: the combined results, the baseline's, the runs by model."""

    results: dict
    baseline: dict | None
    baseline_source: Path | None
    run_dir: Path  # relative prediction paths start here
    default_out: Path
    class_names: list[str]
    models: dict[str, ModelRuns]
    table: pd.DataFrame  # the summary table, one row per run


def build_report(sources: str | Path | list, baseline: str | Path | None = None) -> ReportInputs:
    """Load and check every input of a report (see the module docstring)."""
    paths = [Path(sources)] if isinstance(sources, (str, Path)) else [Path(p) for p in sources]
    results = combine(read_sources(paths))
    baseline_results = load_results(baseline) if baseline is not None else None
    run_dir, default_out = folders(paths)
    class_names = [str(c) for c in (results.get("dataset") or {}).get("classes") or []]
    models = group_by_model(results, run_dir, class_names)
    return ReportInputs(results, baseline_results, Path(baseline) if baseline is not None else None,
                        run_dir, default_out, class_names, models, summary_table(results))


def folders(paths: list[Path]) -> tuple[Path, Path]:
    """(the folder relative file names start from, the default output folder)."""
    if len(paths) > 1:  # runs carry absolute prediction paths (sources.labelled)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        return Path.cwd(), Path("runs") / f"{stamp}-report"
    source = paths[0]
    # A results file (pytest-benchmark's JSON): its folder holds the files it names, and the
    # report goes beside it, not over it.
    run_dir = source.parent if source.is_file() else source
    default_out = source.with_name(f"{source.stem}-report") if source.is_file() else source
    if benchmark_source(source) is not None and source.is_dir():
        default_out = source / "report"
    return run_dir, default_out

def group_by_model(results: dict, run_dir: Path,
                   class_names: list[str]) -> dict[str, ModelRuns]:
    """Runs grouped by model, in stored order, with every listed prediction file loaded."""
    models: dict[str, ModelRuns] = {}
    first: dict[tuple, tuple] = {}
    tuned = bool(results.get("tuning"))
    for run in results["runs"]:
        model = models.setdefault(run["model"], ModelRuns(run["model"]))
        model.all_runs.append(run)
        if tuned and run.get("phase") != "final":  # a search's trials: the tuning section's
            continue
        tag = (run.get("seed", (run.get("config") or {}).get("seed") if tuned else None), run.get("repeat"))
        if first.setdefault((run["model"], run.get("source")), tag) != tag:
            continue
        model.runs.append(run)
        if run["status"] != "ok":
            continue
        predictions = load_predictions(run_dir, run)
        if predictions is None:
            continue
        n_classes = predictions.logits.shape[1]
        if class_names and n_classes != len(class_names):
            raise PybenchError(
                f"{run_dir / run['predictions']}: {n_classes} logit columns but "
                f"{RESULTS_FILE} lists {len(class_names)} classes"
            )
        model.predictions[run["framework"]] = predictions
    return models

def classes_for(model: ModelRuns, class_names: list[str]) -> list[str]:
    """The dataset's class names, or 0..K-1 when the record does not list them."""
    if class_names:
        return class_names
    widths = {p.logits.shape[1] for p in model.predictions.values()}
    return [str(k) for k in range(max(widths, default=0))]

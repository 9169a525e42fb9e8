"""Turn stored comparison runs into `report.md`, `report.html` and PNG figures a reader can paste into a paper.

Reports read only what `pybench compare` stored (`results.json`, `predictions/*.npz`) and never
import a framework. One module per responsibility, as in pytest-benchmark:

- `loading`: read and check the run directory (one-line `PybenchError` on bad input)
- `metrics`: per-class rates, confusion, ROC/AUC, agreement, fingerprints (scikit-learn)
- `tables`: the summary table and markdown rendering
- `plots`: PNG figures (matplotlib, Agg)
- `sources`: several results files combined into one document
- `significance`: seeds pooled, and a baseline held against with Mann-Whitney U (scipy)
- `building`: everything a report needs, loaded and checked before any file is written
- `markdown`: the report's sections and `write_report` (rendering what `building` returns)
- `html`: `report.html`, the same Markdown as one self-contained page (Jinja2)

Usage::

    from pybench.report import write_report
    write_report("runs/2026-11-22T02-10-00")   # -> runs/.../report.md
"""

from pathlib import Path

from pybench.errors import PybenchError
from pybench.report.loading import load_predictions, load_results
from pybench.report.markdown import write_report
from pybench.report.significance import baseline_differences, baseline_table, regressions
from pybench.report.sources import combine, read_sources
from pybench.report.tables import summary_table


def slowdowns(sources: list[Path], baseline: Path, percent: float, force: bool = False):
    """The runs of `sources` significantly more than `percent`% slower than `baseline`'s. Unlike
    runs (another configuration or dataset: `baseline_differences`) are one line, not a pass,
    unless `force`."""
    document, base = combine(read_sources(sources)), load_results(baseline)
    differences = baseline_differences(document, base)
    if differences.unlike and not force:
        raise PybenchError(f"--fail-on-regression: {baseline} is not a baseline of these runs ("
                           + "; ".join(differences.lines()[:2]) + "): pass --force to compare anyway")
    return regressions(baseline_table(document, base, baseline, force), percent)


__all__ = ["load_predictions", "load_results", "slowdowns", "summary_table", "write_report"]

"""Turn one stored comparison run into `report.md` plus PNG figures a reader can paste into a paper.

Reports read only what `pybench compare` stored (`results.json`, `predictions/*.npz`) and never
import a framework. One module per responsibility, as in pytest-benchmark:

- `loading`: read and check the run directory (one-line `PybenchError` on bad input)
- `metrics`: per-class rates, confusion, ROC/AUC, agreement, fingerprints (scikit-learn)
- `tables`: the summary table and markdown rendering
- `plots`: PNG figures (matplotlib, Agg)
- `markdown`: the report's sections and `write_report`

Usage::

    from pybench.report import write_report
    write_report("runs/2026-11-22T02-10-00")   # -> runs/.../report.md
"""

from pybench.report.loading import load_predictions, load_results
from pybench.report.markdown import write_report
from pybench.report.tables import summary_table

__all__ = ["load_predictions", "load_results", "summary_table", "write_report"]

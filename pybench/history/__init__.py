"""History: every result kept in one store (`store`), read back as series with their change
points (`series`), on a page (`page`). `record` is what `compare`, `sweep` and a tuned search
call when their runs are done; `pybench history` reads the store.
"""

from __future__ import annotations

from pathlib import Path

from pybench.errors import PybenchError

NO_RUNS = ("history: no runs stored yet in {store}: every compare, sweep and tuned search adds its finished "
           "runs, and `pybench history import RESULTS...` adds earlier ones")


def record(document: dict, out_dir: Path, store=None, against_history: bool = False,
           min_change: float = 5.0) -> list[str]:
    """Add a results document's ok runs to the store; the lines to print: how many were added
    and, with `against_history` (compare), each series its new runs left. A store that cannot be
    written costs the history, never the results (already in `out_dir`): one warning line."""
    from pybench.history.series import outside_history
    from pybench.history.store import add_document, document_rows, read_rows

    rows = document_rows(document, str(out_dir))
    if not rows:
        return []
    try:
        path, added = add_document(document, out_dir, store)
        lines = [f"history: {added} run{'s' if added != 1 else ''} added to {path}"]
        if against_history:
            lines += outside_history(read_rows(path), {row["uid"] for row in rows}, min_change)
    except PybenchError as exc:
        return [f"pybench: warning: the runs were not added to the history: {exc}"]
    return lines


def history_text(store, metrics, min_change: float, order: str) -> str:
    """What `pybench history` prints: one line per series, then the change points found."""
    import pandas as pd

    from pybench.history.series import changes_table, series_summary
    from pybench.history.store import read_rows, store_path

    rows = read_rows(store)
    if rows.empty:
        return NO_RUNS.format(store=store_path(store))
    changes = changes_table(rows, metrics, min_change, order)
    with pd.option_context("display.width", 250, "display.max_colwidth", 90):
        return "\n".join([f"history: {store_path(store)}, {len(rows)} runs in {rows['series_key'].nunique()} series",
                          series_summary(rows, order).to_string(index=False), "",
                          changes.to_string(index=False) if len(changes) else
                          f"No change of {min_change:g}% or more in any series."])


def import_sources(sources, store) -> list[str]:
    """`pybench history import`: each results folder's ok runs, or another store's rows, added."""
    from pybench.history.store import add_document, merge_store, store_path
    from pybench.report.loading import load_results

    lines, total = [], 0
    for source in sources:
        if not source.exists():
            raise PybenchError(f"{source}: not found: give a results folder or another store's .sqlite file")
        if source.is_file() and source.suffix in (".sqlite", ".db"):
            added = merge_store(source, store)
        else:
            added = add_document(load_results(source), source.resolve(), store)[1]
        lines.append(f"{source}: {added} run{'s' if added != 1 else ''} added")
        total += added
    return lines + [f"history: {total} runs added to {store_path(store)}"]

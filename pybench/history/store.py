"""The result store: every run a `compare`, `sweep` or tuned search finishes, one row each, in
one SQLite file, so that a series (same machine, framework, model, dataset and configuration)
can be read back across framework versions, pybench commits and weeks.

Why SQLite: writers on one machine (a Ray sweep's runs, two terminals) append at once, and
SQLite's file lock makes each append all or nothing (a JSON-lines file or a folder of copies
would need a lock of our own); the store stays one file, so a colleague's store or a cluster
node's merges with `pybench history import OTHER.sqlite`. A row is keyed by the run's identity
(`uid`): adding the same results twice adds nothing.

What a row holds: the machine (CPU model, cores, memory, GPUs: its `machine_key`), the
framework and its version, pybench's version and commit, the model, the dataset's fingerprint,
the configuration (everything but the seeds and where files went), whether the machine was busy,
and the four figures a series follows, with their intervals: the median step time (an
order-statistic 95% interval from the run's own step times), the test accuracy (Wilson 95% over
the test images), the time to the target, the peak memory.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from contextlib import closing
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from pybench.datasets.core import data_root
from pybench.errors import PybenchError
from pybench.report.significance import NOT_CONFIGURATION, NOT_MEASURED, full_configuration

STORE_ENV = "PYBENCH_STORE"
STORE_FILE = "history.sqlite"
# Seconds a writer waits for another's append to end before it gives up (SQLite's busy timeout).
LOCK_WAIT_S = 60.0
COLUMNS = {
    "uid": "TEXT PRIMARY KEY", "recorded_at": "TEXT NOT NULL", "added_at": "TEXT NOT NULL",
    "source": "TEXT", "command": "TEXT", "machine_key": "TEXT NOT NULL", "machine": "TEXT NOT NULL",
    "series_key": "TEXT NOT NULL", "framework": "TEXT NOT NULL", "framework_version": "TEXT",
    "pybench_version": "TEXT", "git_commit": "TEXT", "model": "TEXT NOT NULL", "dataset": "TEXT",
    "dataset_fingerprint": "TEXT", "config": "TEXT NOT NULL", "seed": "INTEGER", "repeat": "INTEGER",
    "busy": "INTEGER NOT NULL", "step_ms": "REAL", "step_low_ms": "REAL", "step_high_ms": "REAL",
    "accuracy": "REAL", "accuracy_low": "REAL", "accuracy_high": "REAL", "time_to_target_s": "REAL",
    "peak_memory_bytes": "REAL",
}
MACHINE_FIELDS = ("cpu", "cores", "memory_gb", "gpus", "cuda_driver")
CONFIDENCE = 0.95


def store_path(store: str | os.PathLike | None = None) -> Path:
    """The store file: `store` (a folder holds history.sqlite), else $PYBENCH_STORE, else
    history.sqlite under the data directory."""
    chosen = Path(store or os.environ.get(STORE_ENV) or data_root() / STORE_FILE).expanduser()
    return chosen / STORE_FILE if chosen.is_dir() else chosen


def connect(path: Path) -> sqlite3.Connection:
    """The store, created on first use; write-ahead logging, so readers never block a writer."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, timeout=LOCK_WAIT_S, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        columns = ", ".join(f"{name} {kind}" for name, kind in COLUMNS.items())
        connection.execute(f"CREATE TABLE IF NOT EXISTS runs ({columns})")
        connection.execute("CREATE INDEX IF NOT EXISTS runs_series ON runs (series_key, recorded_at)")
    except (OSError, sqlite3.Error) as exc:
        raise PybenchError(f"history store {path}: {exc}") from None
    return connection


def digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def machine_key(machine: dict) -> str:
    """The machine as far as results record it: CPU model, cores, memory (whole GB), GPUs, driver."""
    fields = {k: machine.get(k) for k in MACHINE_FIELDS}
    if isinstance(fields["memory_gb"], (int, float)):
        fields["memory_gb"] = round(fields["memory_gb"])
    return digest(fields)


def series_configuration(run: dict, document: dict) -> dict:
    """What a series holds fixed: the run's configuration less its seed and where files went."""
    config = full_configuration(run, document)
    if "config" in run:  # a sweep's run holds its own settings; the document's hold the rest
        config = {**(document.get("config") or {}), **config}
        config.pop("sweep", None)  # the grid it was drawn from, not what this run trained with
    return {k: v for k, v in config.items() if k not in NOT_CONFIGURATION | NOT_MEASURED | {"out", "store"}}


def median_interval(step_times_ms) -> tuple[float | None, float | None]:
    """A distribution-free 95% interval of the median step time (binomial order statistics);
    the first step, which compiles, is left out as the recorded median leaves it out."""
    times = np.sort(np.asarray(step_times_ms or [], dtype=float)[1:])
    n = len(times)
    if n < 6:  # too few for a 95% order-statistic interval: the range
        return (float(times[0]), float(times[-1])) if n else (None, None)
    low = int(stats.binom.ppf((1 - CONFIDENCE) / 2, n, 0.5)) - 1
    return float(times[max(low, 0)]), float(times[min(n - 1 - low, n - 1)])


def accuracy_interval(accuracy, images) -> tuple[float | None, float | None]:
    if accuracy is None or not images:
        return None, None
    interval = stats.binomtest(round(accuracy * images), images).proportion_ci(CONFIDENCE, method="wilson")
    return float(interval.low), float(interval.high)


def run_row(run: dict, document: dict, source: str | None, added_at: str) -> dict:
    """One store row for an ok run of a results document."""
    machine = document.get("machine") or {}
    config = series_configuration(run, document)
    dataset = document.get("dataset") or {}
    framework = run.get("framework_name", run["framework"])
    identity = [document.get("created"), document.get("command"), machine_key(machine), framework,
                run["model"], run.get("seed"), run.get("repeat"), run.get("run_id"), config]
    key = [machine_key(machine), framework, run["model"], dataset.get("fingerprint"), config]
    step = (run.get("step_time_ms") or {}).get("median")
    step_low, step_high = median_interval(run.get("step_times_ms"))
    accuracy = run.get("test_accuracy")
    accuracy_low, accuracy_high = accuracy_interval(accuracy, run.get("test_images"))
    return {"uid": digest(identity), "recorded_at": document.get("created") or added_at, "added_at": added_at,
            "source": source, "command": document.get("command"), "machine_key": machine_key(machine),
            "machine": json.dumps(machine, sort_keys=True), "series_key": digest(key), "framework": framework,
            "framework_version": run.get("framework_version"), "pybench_version": document.get("pybench_version"),
            "git_commit": document.get("commit"), "model": run["model"], "dataset": dataset.get("name"),
            "dataset_fingerprint": dataset.get("fingerprint"),
            "config": json.dumps(config, sort_keys=True, default=str),
            "seed": run.get("seed"), "repeat": run.get("repeat"),
            "busy": int(bool((run.get("machine_load") or {}).get("busy"))),
            "step_ms": step, "step_low_ms": step_low, "step_high_ms": step_high,
            "accuracy": accuracy, "accuracy_low": accuracy_low, "accuracy_high": accuracy_high,
            "time_to_target_s": run.get("time_to_target_s"), "peak_memory_bytes": run.get("peak_memory_bytes")}


def document_rows(document: dict, source: str | None = None) -> list[dict]:
    """The rows of a results document: its ok runs (a short run, the docs tests' override,
    measures nothing and adds none)."""
    if document.get("short_runs"):
        return []
    added_at = pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds")
    return [run_row(run, document, source, added_at) for run in document.get("runs", [])
            if isinstance(run, dict) and run.get("status") == "ok"]


def append_rows(path: Path, rows: list[dict]) -> int:
    """Add `rows` in one transaction (all or none); rows already there are left as they are.
    The number added."""
    names = list(COLUMNS)
    sql = f"INSERT OR IGNORE INTO runs ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    with closing(connect(path)) as connection:
        try:
            connection.execute("BEGIN IMMEDIATE")  # the write lock now, not halfway through
            before = connection.total_changes
            connection.executemany(sql, [[row.get(name) for name in names] for row in rows])
            connection.execute("COMMIT")
            return connection.total_changes - before
        except sqlite3.Error as exc:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise PybenchError(f"history store {path}: {exc}") from None


def add_document(document: dict, source: str | os.PathLike | None = None, store=None) -> tuple[Path, int]:
    """Append a results document's ok runs to the store; the store's path and the rows added."""
    path = store_path(store)
    return path, append_rows(path, document_rows(document, str(source) if source else None))


def read_rows(store=None) -> pd.DataFrame:
    """Every row of the store (an empty table with the columns when there is none yet)."""
    path = store_path(store)
    if not path.exists():
        return pd.DataFrame(columns=list(COLUMNS))
    with closing(connect(path)) as connection:
        try:
            return pd.read_sql_query("SELECT * FROM runs ORDER BY recorded_at, framework, model, seed, repeat",
                                     connection)
        except (sqlite3.Error, pd.errors.DatabaseError) as exc:
            raise PybenchError(f"history store {path}: {exc}") from None


def merge_store(other: Path, store=None) -> int:
    """Append every row of another store file (a colleague's, a cluster node's)."""
    if not other.is_file():
        raise PybenchError(f"{other}: not a store file")
    try:
        with closing(sqlite3.connect(f"file:{other}?mode=ro", uri=True)) as connection:
            rows = pd.read_sql_query("SELECT * FROM runs", connection)
    except (sqlite3.Error, pd.errors.DatabaseError) as exc:
        raise PybenchError(f"{other}: not a pybench history store ({exc})") from None
    return append_rows(store_path(store), rows.astype(object).where(rows.notna(), None).to_dict("records"))

"""Stored results: the machine record, atomic writes of results.json and its CSV.

results.json is the one document reports read (schema in docs/results.md). It is rewritten atomically
after every finished run, so an interrupted comparison keeps everything that had finished.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pybench.errors import writing

SCHEMA = 1


@dataclass
class TrainingRecord:
    """What one training run measured: the fields of a `runs` entry in results.json that
    `pybench.training` fills, each once, typed (the worker adds who ran it: RUN_IDENTITY;
    docs/results.md says what each means)."""

    test_accuracy: float | None
    test_images: int  # the test split's size (what a score's interval over seeds is bounded by)
    val_accuracy: float | None
    epoch_accuracy: list[float]
    epoch_val_accuracy: list[float]
    # With --select-by auc: the validation split's macro AUC per epoch, what kept the epoch.
    epoch_val_auc: list[float]
    # Per epoch, on the training loss's formula: the mean of the epoch's step losses (over its
    # training batches, as they were trained on), and the test and validation splits' loss.
    epoch_train_loss: list[float]
    # The share of the epoch's training predictions that were right, counted by each step on
    # the batch it trained on (Backend.train_hits); multi-label: of the finding decisions.
    epoch_train_accuracy: list[float]
    epoch_test_loss: list[float]
    epoch_val_loss: list[float]
    epoch_s: list[float]
    epochs_run: int
    steps: int
    step_time_ms: dict  # pybench.timing.step_time_stats: median, iqr, p90, mean, n
    machine_load: dict  # pybench.machine.machine_load
    first_step_s: float | None
    images_per_s: float | None
    block_steps: int
    block_times_ms: list[float]
    block_images_per_s: float | None
    time_to_target_s: float | None
    time_to_target_step: int | None
    target_eval_every: int | None
    # Wall-clock seconds of the whole run: set-up, first (compiling) step, other steps,
    # augmentation, evaluation (pybench.training.train_and_evaluate).
    time_split_s: dict
    # With --target-accuracy: the time to result (pybench.training.time_to_result), else None.
    time_to_result: dict | None
    kept_epoch: int | None
    learning_rates: list[float]
    augment_s: list[float]
    augment_fingerprints: list[str]
    peak_memory_bytes: int
    memory_kind: str
    n_params: int
    flops_per_image: int
    model_fingerprint: str  # a CNN file's architecture fingerprint; '' for a built-in model
    init_fingerprint: str
    data_fingerprint: str
    data_on_device: bool
    step_times_ms: list[float]
    losses: list[float]
    # The pixel statistics the inputs were normalised with: name, mean, std (--normalize)
    normalization: dict
    # pybench.evaluation.evaluate: the score's name and interval, per-class rates, AUCs
    evaluation: dict

    def to_dict(self) -> dict:
        return asdict(self)


# Who ran a run and how it ended: what the worker and the command add to a TrainingRecord.
RUN_IDENTITY = ["framework", "model", "status", "reason", "device", "device_name",
                "framework_version"]

# The columns of runs.csv: the scalar facts of each run (raw per-step lists stay in the JSON).
CSV_COLUMNS = [
    *RUN_IDENTITY, "test_accuracy", "evaluation.score_name", "evaluation.score",
    "evaluation.score_low", "evaluation.score_high", "evaluation.macro_auc",
    "evaluation.macro_auc_low", "evaluation.macro_auc_high", "val_accuracy", "step_time_ms.median", "step_time_ms.iqr",
    "step_time_ms.p90", "first_step_s", "images_per_s", "time_to_target_s",
    "time_to_result.reached", "time_to_result.seconds", "time_to_result.seconds_with_eval",
    "time_split_s.setup_s", "time_split_s.compile_s", "time_split_s.train_s", "time_split_s.eval_s", "epochs_run",
    "steps", "peak_memory_bytes", "memory_kind", "n_params", "flops_per_image",
    "model_fingerprint", "init_fingerprint", "data_fingerprint", "data_on_device",
]


def code_info() -> dict:
    """What code ran: pybench's installed version (package metadata), and when pybench runs from
    a git checkout its commit and whether the tree had uncommitted changes (None otherwise), so
    that two results files can tell whether the code differed."""
    try:
        version = importlib.metadata.version("pybench")
    except importlib.metadata.PackageNotFoundError:
        from pybench import __version__ as version
    source = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(source), *args], capture_output=True,
                                  text=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"pybench_version": version, "commit": commit,
            "dirty": None if status is None else bool(status)}


def process_umask() -> int:
    """The umask this process creates files under (read by setting it, then restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# What `open` would give a new file here: tempfile.mkstemp makes its files 0600 whatever the
# umask, and a results folder shared on a lab machine would be half unreadable to colleagues.
FILE_MODE = 0o666 & ~process_umask()


def temporary_beside(path: Path, suffix: str = "") -> tuple[int, str]:
    """A temporary file in `path`'s folder (same file system: renamed into place), with the mode
    a file written by `open` would have."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.fchmod(fd, FILE_MODE)
    return fd, tmp


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """`data` into `path` through a temporary file renamed into place: a failed write (a full
    disk) leaves the previous file whole, and is one `OutputError` line."""
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = temporary_beside(path)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def strict(value):
    """`value` with every non-finite float (NaN, inf: a diverged loss) as None, so the file is
    strict JSON that any reader accepts; numpy scalars and arrays become Python ones."""
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    if isinstance(value, np.ndarray):
        return strict(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path, document: dict) -> None:
    text = json.dumps(strict(document), indent=1, default=_json_default, allow_nan=False)
    atomic_write_bytes(Path(path), text.encode())


def write_npz(path: Path, **arrays) -> None:
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = temporary_beside(path, suffix=".npz")
        os.close(fd)
        try:
            np.savez(tmp, **arrays)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


# An interval [low, high] is two CSV columns, NAME_low and NAME_high.
CSV_INTERVALS = ("evaluation.score", "evaluation.macro_auc")


def runs_table(runs: list[dict]) -> pd.DataFrame:
    flat = pd.json_normalize(runs, max_level=1) if runs else pd.DataFrame()
    for name in CSV_INTERVALS:
        bounds = flat.get(f"{name}_interval", pd.Series([None] * len(flat), dtype=object))
        flat[f"{name}_low"] = [b[0] if isinstance(b, list) else None for b in bounds]
        flat[f"{name}_high"] = [b[1] if isinstance(b, list) else None for b in bounds]
    # A sweep's runs also carry their id and own values (config.batch_size, config.lr, ...).
    swept = [c for c in flat.columns if c == "run_id" or c.startswith("config.")]
    return flat.reindex(columns=CSV_COLUMNS[:2] + swept + CSV_COLUMNS[2:])


def per_class_table(runs: list[dict]) -> pd.DataFrame:
    """One row per run and class: who ran it, then the class's one-vs-rest rates and AUC
    (`evaluation.per_class`, single-label runs), for a pandas reader of the per-class figures."""
    rows = []
    for run in runs:
        evaluation = run.get("evaluation") or {}
        who = {key: run.get(key) for key in ("framework", "model", "seed", "repeat", "run_id") if key in run}
        for name, rates in (evaluation.get("per_class") or {}).items():
            auc = (evaluation.get("auc") or {}).get(name) or {}
            low, high = auc.get("interval") or (None, None)
            rows.append({**who, "class": name, **rates, "auc": auc.get("auc"), "auc_low": low,
                         "auc_high": high})
    return pd.DataFrame(rows)


def write_results(out_dir: Path, document: dict) -> None:
    """results.json, runs.csv and per_class.csv, each atomically."""
    write_json(out_dir / "results.json", document)
    csv = runs_table(document["runs"]).to_csv(index=False)
    atomic_write_bytes(out_dir / "runs.csv", csv.encode())
    atomic_write_bytes(out_dir / "per_class.csv", per_class_table(document["runs"]).to_csv(index=False).encode())

"""A run's life after its checks, shared by `compare`, `sweep` and `parity`: the results folder,
the document's header and dataset summary, one training job handed to a worker with its files
named, and what an interruption leaves behind. Each command keeps only what is its own (which
jobs, its document's body); `pybench.run.checks` comes before, `pybench.run.worker` is the
process boundary they all cross.
"""

from __future__ import annotations

import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

from pybench import short_runs
from pybench.config import RunConfig
from pybench.datasets.story import summary_lines
from pybench.errors import Interrupted, PybenchError
from pybench.machine import machine_info
from pybench.results import SCHEMA, atomic_write_bytes, code_info
from pybench.run.worker import job_for, run_in_worker


def default_out_dir(name: str) -> Path:
    """runs/<timestamp>-<name>: where every command writes unless told otherwise."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{stamp}-{name}"


def make_out_dir(path: Path) -> Path:
    """The results folder, created; one line naming it if it cannot be (under a file, no
    permission)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PybenchError(f"--out {path}: cannot create the results folder "
                           f"({exc.strerror or type(exc).__name__})") from None
    return path


def command_line() -> str:
    return "python -m pybench " + shlex.join(sys.argv[1:])


def results_header(command: str | None) -> dict:
    """What every results document starts with: the schema, the code that ran, when, the
    command and the machine."""
    return {"schema": SCHEMA, **code_info(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": command or "", "machine": machine_info(),
            **({"short_runs": True} if short_runs.active() else {})}


def dataset_summary(dataset) -> dict:
    return {"name": dataset.name, "source": dataset.source, "fingerprint": dataset.fingerprint,
            "classes": list(dataset.classes), "in_shape": list(dataset.in_shape),
            "task": "multilabel" if dataset.multilabel else "single",
            "train_size": len(dataset.train.labels),
            "val_size": len(dataset.val.labels) if dataset.val is not None else 0,
            "test_size": len(dataset.test.labels),
            "mean": [float(m) for m in dataset.mean], "std": [float(s) for s in dataset.std],
            # How it was read (layout, where each split came from, what was left out); the
            # unreadable images' names go to the run's unreadable.txt (`write_unreadable`).
            "provenance": {**dataset.provenance.to_dict(), "unreadable": len(dataset.provenance.unreadable)},
            "groups": dataset.groups}


def describe_data(document: dict, echo: bool = False) -> list[str]:
    """What was done to the data, said once for the whole document (`story.summary_lines`, the
    lines `datasets info` and the report print too): stored as the dataset's `notes` and, with
    `echo`, printed as the console's header before any run starts."""
    notes = summary_lines(document["dataset"], document.get("config"))
    document["dataset"]["notes"] = notes
    if echo:
        print(data_header(document["dataset"], notes), file=sys.stderr, flush=True)
    return notes


def data_header(summary: dict, notes: list[str]) -> str:
    """"data: NAME (sizes; classes; input)", then each note indented."""
    sizes = ", ".join(f"{summary[key]:,} {key.removesuffix('_size')}" for key in ("train_size", "val_size",
                                                                                  "test_size") if summary.get(key))
    shape = "x".join(str(d) for d in summary.get("in_shape") or [])
    kind = "findings" if summary.get("task") == "multilabel" else "classes"
    head = f"data: {summary.get('name')} ({sizes}; {len(summary.get('classes') or [])} {kind}; input {shape})"
    return "\n".join([head, *(f"  {line}" for line in notes)])


UNREADABLE_FILE = "unreadable.txt"


def write_unreadable(out_dir: Path, dataset) -> None:
    """The images `--skip-unreadable` left out, one per line, in the run's folder (the results
    count them; a list of thousands belongs in a file)."""
    if dataset.provenance.unreadable:
        atomic_write_bytes(out_dir / UNREADABLE_FILE, "".join(f"{name}\n" for name in
                                                              dataset.provenance.unreadable).encode())


def as_interrupted(exc: BaseException) -> Interrupted:
    """A KeyboardInterrupt (Ctrl-C before pybench's handler was installed) as the Interrupted
    every command records and re-raises."""
    return exc if isinstance(exc, Interrupted) else Interrupted("SIGINT", 130)


def cache_entry_of(dataset) -> str | None:
    """The cache entry a loaded dataset was read from (what workers open), or None."""
    return str(dataset.cache_entry) if getattr(dataset, "cache_entry", None) else None


def train_in_worker(run: RunConfig, framework: str, model: str, device: str, out_dir: Path, *, stem: str,
                    cache_entry: Path | None = None, timeout: float | None = None, gpu: int = 0,
                    progress: bool = False, echo: bool = False, board: Path | None = None,
                    prune: dict | None = None) -> dict:
    """One training job (`pybench.run.jobs.run_train_job`) in a worker; its files are named
    `stem` under `out_dir` (forward-check arrays, predictions, log), and with `board` its
    TensorBoard event files go there; with `prune`, a search's pruner may stop it after an epoch
    (`pybench.tuning.EpochPruner`). `cache_entry`, the dataset's cache entry the parent loaded,
    is what the worker opens (it never reads the source then). Returns the run's record."""
    train = run.train
    files = {"predictions": f"predictions/{stem}.npz", "parity_arrays": f"parity/{stem}.npz",
             "test_predictions_csv": f"predictions/{stem}.csv",
             **({"predict_csv": f"predictions-{stem}.csv"} if train.predict else {})}
    job = job_for("train", framework, model, run, device,
                  cache_entry=str(cache_entry) if cache_entry else None,
                  progress=progress, gpu=gpu,
                  parity_path=str(out_dir / files["parity_arrays"]),
                  predictions_path=str(out_dir / files["predictions"]),
                  test_csv_path=str(out_dir / files["test_predictions_csv"]),
                  predict_csv_path=str(out_dir / files["predict_csv"]) if train.predict else None,
                  tensorboard_dir=str(board) if board else None, prune=prune)
    record = run_in_worker(job, timeout, log_path=out_dir / "logs" / f"{stem}.log", echo=echo)
    if record.get("status") == "ok":
        record.update(files)
    return record

"""A run's life, shared by `compare`, `sweep` and `parity`: one device for every framework, the
frameworks that can run, the results folder, the document's header, the reference framework and
what an interruption leaves behind. Each command keeps only what is its own (its jobs, its
document's body); `worker.py` is the process boundary they all cross.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

from pybench.backends import availability, check_framework
from pybench.errors import Interrupted, PybenchError, UnavailableError
from pybench.machine import machine_has_cuda_gpu, machine_info, nvidia_gpus
from pybench.results import SCHEMA, atomic_write_bytes, code_info
from pybench.worker import cuda_env

# Every check of one framework against another is against this one when it ran: its numbers are
# the ones most readers know.
REFERENCE_FRAMEWORK = "torch"


def resolve_device(requested: str) -> str:
    """One device for every framework: comparing torch on a GPU with JAX on the CPU is
    meaningless, so "auto" means the GPU when the machine has one, for all of them."""
    if requested == "auto":
        return "cuda" if machine_has_cuda_gpu() else "cpu"
    if requested == "cuda" and not machine_has_cuda_gpu():
        raise PybenchError("--device cuda: no NVIDIA GPU with a driver on this machine "
                           "(nvidia-smi finds none); use --device cpu")
    if requested not in ("cpu", "cuda"):
        raise PybenchError(f"--device {requested!r}: choose auto, cpu or cuda")
    return requested


def check_gpu(device: str, gpu: int) -> None:
    """On CUDA, that `--gpu` names a GPU this process can see (one line if not)."""
    if device != "cuda":
        return
    cuda_env(gpu, os.environ.get("CUDA_VISIBLE_DEVICES"))  # an index the variable holds
    names = nvidia_gpus()[0]
    if names and gpu >= len(names):
        raise PybenchError(f"--gpu {gpu}: this machine has {len(names)} NVIDIA GPU"
                           f"{'s' if len(names) != 1 else ''} (0-{len(names) - 1}: "
                           f"{', '.join(names)})")


def check_requested_frameworks(frameworks) -> dict[str, str]:
    """Unavailable frameworks -> reason. All of them unavailable is an error (nothing to run)."""
    unavailable = {}
    for name in frameworks:
        check_framework(name)
        status = availability(name)
        if not status.ok:
            unavailable[name] = status.reason
    if unavailable and len(unavailable) == len(frameworks):
        raise UnavailableError("; ".join(f"{name} is unavailable: {reason}"
                                         for name, reason in unavailable.items()))
    return unavailable


def reference_framework(finished: Iterable[str]) -> str | None:
    """The framework the others are checked against: REFERENCE_FRAMEWORK when it finished, else
    the first that did (alphabetically, so the choice does not depend on the order of runs)."""
    finished = sorted(set(finished))
    if REFERENCE_FRAMEWORK in finished:
        return REFERENCE_FRAMEWORK
    return finished[0] if finished else None


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
            "command": command or "", "machine": machine_info()}


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

"""The process boundary: every (framework, model) job runs in a worker process of its own.

PyTorch, JAX and Julia cannot safely share one process (juliacall beside torch can crash, and
each framework claims GPU memory its own way), so the parent (every command) never imports
a framework. It writes a job file, starts `python -m pybench.run.worker JOB RESULT`, forwards the
worker's stderr (progress bars) and keeps its tail, and reads the result file. A worker that
crashes or runs past its timeout becomes a `failed` record with the reason; the others go on.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
from collections import deque
from dataclasses import replace
from pathlib import Path

from pybench.config import RunConfig
from pybench.errors import OutputError, PybenchError, UnavailableError
from pybench.results import write_json
from pybench.training import Diverged

MEMORY_LIMIT_ENV = "PYBENCH_WORKER_MEMORY_LIMIT"


# ---------------------------------------------------------------- the worker side

# What each kind of job runs (`pybench.run.jobs`, `pybench.run.bench`), imported on demand: a
# worker loads only what its job needs, and the parent, which imports this module to start
# workers, never imports a framework.
JOB_KINDS = {"train": "pybench.run.jobs:run_train_job", "parity": "pybench.run.jobs:run_parity_job",
             "bench": "pybench.run.bench:run_bench_job"}


def job_function(kind: str):
    module, name = JOB_KINDS[kind].split(":")
    return getattr(importlib.import_module(module), name)


def no_work(record: dict) -> str | None:
    """Why a finished training job's record is not a result (no step trained, no test figure),
    or None: such a run is `failed`, never `ok`."""
    if not record.get("steps"):
        return "trained 0 steps: the train split gave no full batch"
    if record.get("test_accuracy") is None:
        return "no test figure: the test split was not evaluated"
    return None


def run_job(job: dict) -> dict:
    """Run one job; any failure becomes a record with a status and a one-line reason."""
    base = {"framework": job["framework"], "model": job["model"]}
    try:
        if job.get("cnn"):
            from pybench.models.cnn import register_description

            register_description(job["cnn"])
        record = {**base, "status": "ok", "reason": "", **job_function(job["kind"])(job)}
        problem = no_work(record) if job["kind"] == "train" else None
        if problem:
            record.update(status="failed", reason=problem)
        return record
    except Diverged as exc:  # a result, not an error: the losses up to it are kept
        return {**base, "status": "diverged", "reason": str(exc),
                "diverged_at_step": exc.step, "losses": exc.losses}
    except UnavailableError as exc:
        return {**base, "status": "unavailable", "reason": str(exc)}
    except OutputError as exc:  # the results folder cannot be written: the parent stops on it too
        return {**base, "status": "failed", "reason": str(exc), "output_error": True}
    except PybenchError as exc:
        return {**base, "status": "failed", "reason": str(exc)}
    except Exception as exc:  # a framework error: keep the traceback in the log, one line here
        traceback.print_exc(file=sys.stderr)
        first_line = (str(exc).strip().splitlines() or [""])[0]
        if is_out_of_memory(exc):
            return {**base, "status": "failed", "out_of_memory": True,
                    "reason": out_of_memory_reason(job, first_line)}
        return {**base, "status": "failed", "reason": f"{type(exc).__name__}: {first_line}"}


# How each framework says it ran out of memory: Python's MemoryError, torch's
# OutOfMemoryError (CUDA) or its CPU allocator's message, XLA's RESOURCE_EXHAUSTED, Julia's
# OutOfMemoryError (through juliacall) and CUDA.jl's.
OUT_OF_MEMORY_SIGNS = ("out of memory", "can't allocate memory", "cannot allocate memory",
                       "resource_exhausted", "outofmemoryerror")


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = f"{type(exc).__name__} {exc}".lower()
    return any(sign in text for sign in OUT_OF_MEMORY_SIGNS)


def out_of_memory_reason(job: dict, detail: str) -> str:
    where = "GPU memory" if job["device"] == "cuda" else "RAM"
    return (f"out of memory: {job['framework']} {job['model']} at batch size "
            f"{job['run']['batch_size']} does not fit in this machine's {where}; try a "
            f"smaller --batch-size ({detail[:160]})")


def limit_memory() -> None:
    """Cap this worker's data memory at $PYBENCH_WORKER_MEMORY_LIMIT bytes (RLIMIT_DATA), so a
    run that needs more fails here with an out-of-memory error instead of pushing the machine
    into swap or the kernel's OOM killer (which would leave no reason behind)."""
    limit = os.environ.get(MEMORY_LIMIT_ENV)
    if limit:
        import resource
        resource.setrlimit(resource.RLIMIT_DATA, (int(limit), int(limit)))


def worker_main(argv: list[str]) -> int:
    job_path, result_path = argv
    job = json.loads(Path(job_path).read_text())
    limit_memory()
    write_json(Path(result_path), run_job(job))
    return 0


# ---------------------------------------------------------------- the parent side

def worker_env(device: str | None = None, gpu: int | None = None) -> dict:
    """The worker's environment. On CUDA: the arithmetic and the GPU pinned for every framework
    alike (see `cuda_env`)."""
    env = dict(os.environ)
    # JAX must not take 75% of a GPU that the next framework's worker needs.
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    env.setdefault("PYTHON_JULIACALL_HANDLE_SIGNALS", "yes")
    if device == "cuda":
        env.update(cuda_env(gpu or 0, os.environ.get("CUDA_VISIBLE_DEVICES")))
    return env


def cuda_env(gpu: int, visible: str | None) -> dict[str, str]:
    """What a CUDA worker runs with, whatever its framework:

    - NVIDIA_TF32_OVERRIDE=0: cuBLAS and cuDNN may compute float32 convolutions and products
      in TF32 on Ampere and newer. torch and JAX turn it off in their own settings; Knet 1.4.10
      has no setting (its cuDNN descriptors carry no math type), so the driver-level override
      turns it off for all three, and each run records it.
    - CUDA_VISIBLE_DEVICES: the one GPU of the comparison (`--gpu`: an index as nvidia-smi
      numbers the GPUs, or into the GPUs CUDA_VISIBLE_DEVICES already names), so that no
      framework picks another (Knet takes the GPU with the most free memory) and every framework
      sees it as device 0.
    - CUDA_DEVICE_ORDER=PCI_BUS_ID: CUDA numbers GPUs fastest first unless told otherwise, while
      nvidia-smi (and `pybench list`, and --gpu's error) number them by PCI bus: on a machine of
      mixed GPUs "--gpu 1" would otherwise be another card than the one named.
    """
    devices = [d.strip() for d in visible.split(",") if d.strip()] if visible else None
    if devices is not None and gpu >= len(devices):
        raise PybenchError(f"--gpu {gpu}: CUDA_VISIBLE_DEVICES={visible} leaves "
                           f"{len(devices)} GPU{'s' if len(devices) != 1 else ''}")
    return {"NVIDIA_TF32_OVERRIDE": "0", "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
            "CUDA_VISIBLE_DEVICES": devices[gpu] if devices is not None else str(gpu)}


def _forward_stream(stream, sink, tail: deque) -> None:
    """Copy the worker's stderr through (progress bars) while keeping its last lines."""
    pending = b""
    for chunk in iter(lambda: stream.read1(4096), b""):
        if sink is not None:
            sink.write(chunk)
            sink.flush()
        pending += chunk
        *lines, pending = pending.replace(b"\r", b"\n").split(b"\n")
        tail.extend(line for line in lines if line.strip())
    if pending.strip():
        tail.append(pending)


def run_in_worker(job: dict, timeout: float | None, log_path: Path | None = None,
                  echo: bool = True) -> dict:
    """Run `job` in a fresh `python -m pybench.run.worker` process and return its record."""
    base = {"framework": job["framework"], "model": job["model"]}
    with tempfile.TemporaryDirectory(prefix="pybench-job-") as tmp:
        job_path, result_path = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job_path.write_text(json.dumps(job))
        proc = subprocess.Popen(
            [sys.executable, "-m", "pybench.run.worker", str(job_path), str(result_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env=worker_env(job.get("device"), job.get("gpu")), start_new_session=True)
        tail: deque = deque(maxlen=200)
        sink = sys.stderr.buffer if echo else None
        reader = threading.Thread(target=_forward_stream, args=(proc.stderr, sink, tail),
                                  daemon=True)
        reader.start()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc.pid)  # the whole group: Julia and XLA spawn threads
            proc.wait()
            reader.join(timeout=5)
            _save_log(log_path, tail)
            return {**base, "status": "failed", "reason": f"timed out after {timeout:g} s",
                    "stderr_tail": stderr_tail(tail)}
        except BaseException:
            # Ctrl-C (or a cancelled Ray task): the worker, in a session of its own, would not
            # hear it and would go on training, holding its CPUs or GPU.
            kill_group(proc.pid)
            proc.wait()
            raise
        reader.join(timeout=30)
        _save_log(log_path, tail)
        if result_path.exists():
            return json.loads(result_path.read_text())
        return {**base, "status": "failed", "reason": _crash_reason(proc.returncode, tail),
                "exit_status": proc.returncode, "stderr_tail": stderr_tail(tail)}


def kill_group(pid: int) -> None:
    """SIGKILL a worker's process group; a worker that ended on its own meanwhile (a signal
    arriving as it exits) has nothing left to kill."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


STDERR_TAIL_LINES = 20  # kept in a crashed run's record (the whole tail is in logs/)


def stderr_tail(tail: deque) -> list[str]:
    """The worker's last stderr lines, as text, for the record of a run that did not finish."""
    return [line.decode(errors="replace").rstrip() for line in list(tail)[-STDERR_TAIL_LINES:]]


def _crash_reason(returncode: int, tail: deque) -> str:
    how = (f"killed by signal {-returncode} ({signal.Signals(-returncode).name})"
           if returncode < 0 else f"exited with status {returncode}")
    last = tail[-1].decode(errors="replace").strip() if tail else ""
    return f"worker {how}" + (f": {last}" if last else "")


def _save_log(log_path: Path | None, tail: deque) -> None:
    if log_path is not None and tail:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_bytes(b"\n".join(tail) + b"\n")


def job_for(kind: str, framework: str, model: str, run: RunConfig, device: str, **extra) -> dict:
    """A job file's contents: the run's configuration (`RunConfig.to_json`, the form results.json
    stores), the framework and device, and what the job kind needs besides (`extra`: the
    dataset's cache entry, file paths). A CNN file's model travels as its description, which
    the worker registers before it runs the job (`run_job`)."""
    from pybench.models import cnn_description

    return {"kind": kind, "framework": framework, "model": model,
            "run": RunConfig(run.dataset, replace(run.train, model=model), run.load).to_json(),
            "device": device, "cnn": cnn_description(model), **extra}


if __name__ == "__main__":
    raise SystemExit(worker_main(sys.argv[1:]))

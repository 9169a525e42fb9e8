"""Where a sweep's runs execute: one after another on this machine, or as Ray tasks.

An executor takes the runs and a picklable `execute(run, folder) -> record` (which trains the run
in a worker process of its own, as `compare` does) and yields `(run, record)` as runs finish,
with each run's files (predictions, forward-check arrays, log) in the sweep's folder. It never
decides what a run is or how records are gathered: that is `pybench.commands.sweep`.

Ray does the scheduling: each run is one task reserving one GPU when the device is CUDA (so runs
on the same GPU never overlap and their timings stay clean) or `cpus` CPUs. The task trains in a
scratch folder on whichever node runs it and returns the files with the record, so the nodes need
no shared file system. A task whose Ray worker dies (a node lost) is retried once on another
worker, else recorded as failed.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from pybench.errors import PybenchError

INSTALL_RAY = "--executor ray needs Ray, which is not installed: pip install -e '.[ray]'"


class LocalExecutor:
    """Runs one after another on this machine, each in its own worker process."""

    name = "local"

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def resolve_device(self, requested: str) -> str:
        from pybench.run.checks import resolve_device

        return resolve_device(requested)

    def run(self, runs: list, execute: Callable, out_dir: Path, cpus: float = 1.0,
            gpu: bool = False) -> Iterator[tuple[object, dict]]:
        for run in runs:
            yield run, execute(run, out_dir)


def import_ray():
    try:
        import ray
    except ImportError:
        raise PybenchError(INSTALL_RAY) from None
    return ray


def run_in_scratch(execute: Callable, run) -> tuple[dict, dict[str, bytes]]:
    """The Ray task: train in a scratch folder on this node; return the record and its files."""
    with tempfile.TemporaryDirectory(prefix="pybench-sweep-") as tmp:
        record = execute(run, Path(tmp))
        files = {str(path.relative_to(tmp)): path.read_bytes()
                 for path in Path(tmp).rglob("*") if path.is_file()}
    return record, files


def check_reachable(address: str) -> None:
    """A HOST:PORT nobody answers at is an error now: Ray itself would retry for minutes."""
    if address == "auto" or "://" in address or ":" not in address:
        return
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except (OSError, ValueError) as exc:
        raise PybenchError(f"--address {address}: no Ray cluster answers there "
                           f"({type(exc).__name__}: {exc}); start one with "
                           "`ray start --head`") from None


class RayExecutor:
    """Runs as Ray tasks: on a local Ray started for the sweep, or on the cluster at `address`."""

    name = "ray"

    def __init__(self, address: str | None = None):
        self.ray = import_ray()
        self.address = address
        self.started = False

    def __enter__(self):
        ray = self.ray
        # Ray's dashboard, its usage-stats notice and its workers' output stay out of the
        # user's terminal: the sweep has one progress bar and the runs' logs are files.
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        quiet = dict(log_to_driver=False, logging_level=logging.ERROR,
                     configure_logging=True)
        if ray.is_initialized():
            return self
        try:
            if self.address:
                check_reachable(self.address)
                ray.init(address=self.address, **quiet)
            else:
                ray.init(include_dashboard=False, **quiet)
        except ConnectionError as exc:
            first = (str(exc).strip().splitlines() or [""])[0]
            raise PybenchError(f"--address {self.address}: cannot connect to Ray ({first})") \
                from None
        self.started = True
        return self

    def __exit__(self, *exc) -> None:
        if self.started:
            self.ray.shutdown()
            self.started = False

    def resolve_device(self, requested: str) -> str:
        """The device of every run: "auto" is CUDA when the cluster has GPUs (this machine
        may be a head node without one)."""
        gpus = self.ray.cluster_resources().get("GPU", 0)
        if requested == "cuda" and not gpus:
            raise PybenchError("device cuda: the Ray cluster has no GPU; use device = \"cpu\"")
        if requested == "auto":
            return "cuda" if gpus else "cpu"
        return requested

    def run(self, runs: list, execute: Callable, out_dir: Path, cpus: float = 1.0,
            gpu: bool = False) -> Iterator[tuple[object, dict]]:
        ray = self.ray
        resources = {"num_cpus": cpus, "num_gpus": 1 if gpu else 0}
        task = ray.remote(max_retries=1, retry_exceptions=False)(run_in_scratch)
        pending = {task.options(**resources).remote(execute, run): run for run in runs}
        try:
            while pending:
                [done], _ = ray.wait(list(pending), num_returns=1)
                run = pending.pop(done)
                yield run, self.gather(done, run, out_dir)
        finally:
            # Interrupted: leave the cluster free. A cancelled task hears KeyboardInterrupt and
            # stops its worker process (force=True would kill the task before it could).
            for ref in pending:
                ray.cancel(ref)

    def gather(self, ref, run, out_dir: Path) -> dict:
        try:
            record, files = self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:
            # Its worker or node died twice, or the task was cancelled: the sweep goes on.
            first = (str(exc).strip().splitlines() or [""])[0]
            return {"framework": run.framework, "model": run.model, "status": "failed",
                    "reason": f"ray task lost: {type(exc).__name__}: {first}"}
        for relative, data in files.items():
            path = Path(out_dir) / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return record


def make_executor(name: str, address: str | None = None):
    if name == "local":
        if address:
            raise PybenchError("--address is for --executor ray")
        return LocalExecutor()
    return RayExecutor(address)

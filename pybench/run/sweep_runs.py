"""A sweep's runs, shared by the grid (`pybench.commands.sweep`) and the search
(`pybench.commands.tune`): what one run is (`SweepRun`: framework, model, `TrainConfig`, its id
and `config`), training it in a worker (`execute_run`), the record's identity, the forward check
across a sweep's runs, the results document's shared `config`, resuming an earlier document and
the MLflow log.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from pybench.config import RunConfig, TrainConfig
from pybench.errors import PybenchError
from pybench.run.fidelity import forward_parity
from pybench.run.life import train_in_worker
from pybench.sweep_spec import SweepSpec

# The grid's first keys, in the order the first sweeps expanded them (then the file's others).
GRID_ORDER = ("batch_size", "optimizer", "seed", "lr")
# A run's `config` always names these (the keys reports group runs by), then what else it sweeps.
CONFIG_KEYS = ("batch_size", "optimizer", "lr", "seed", "epochs", "max_steps")


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep: a (framework, model) trained with one configuration."""

    framework: str
    model: str
    train: TrainConfig
    swept: tuple = ()  # (key, value) of the grid's other keys, or a trial's searched values
    tag: str = ""  # a search's trial or final run: "t3", "final-t3"
    prune: dict | None = None  # a search's pruning, decided in the worker (pybench.tuning)

    @property
    def config(self) -> dict:
        """The run's values (and its length), stored in the run's record as `config`."""
        t = self.train
        base = {"batch_size": t.batch_size, "optimizer": t.optimizer.name, "lr": t.optimizer.lr,
                "seed": t.seed, "epochs": t.epochs, "max_steps": t.max_steps}
        return {**base, **{k: as_json(v) for k, v in self.swept if k not in base}}

    @property
    def run_id(self) -> str:
        c = self.config
        if self.tag:  # a search's run: its trial names its values (stored in its config)
            return f"{self.framework}-{self.model}-{self.tag}-s{c['seed']}"
        # repr: distinct learning rates never share a name (":g" would round 1.0000001e-7)
        head = (f"{self.framework}-{self.model}-b{c['batch_size']}-{c['optimizer']}"
                f"-lr{c['lr']!r}")
        others = "".join(f"-{id_part(k, v)}" for k, v in c.items() if k not in CONFIG_KEYS)
        return head + others + f"-s{c['seed']}"

    @property
    def key(self) -> tuple:
        return run_key(self.framework, self.model, self.config, self.tag)


def as_json(value):
    """A swept value as results.json stores it (tuples as lists, paths as text)."""
    if isinstance(value, tuple):
        return list(value)
    return str(value) if isinstance(value, Path) else value


def id_part(key: str, value) -> str:
    """`key=value` made safe for a file name."""
    text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    return re.sub(r"[^A-Za-z0-9.,:+=_-]", "_", f"{key}={text}")


def run_key(framework: str, model: str, config: dict, tag: str = "") -> tuple:
    """What makes two runs the same run (for --resume)."""
    return framework, model, json.dumps(config, sort_keys=True), tag.startswith("final")


def grid_keys(spec: SweepSpec) -> list[str]:
    return [k for k in GRID_ORDER if k in spec.grid] + [k for k in spec.grid if k not in GRID_ORDER]


# ---------------------------------------------------------------- one run

@dataclass(frozen=True)
class RunContext:
    """What every run of a sweep needs besides its own configuration (picklable, for Ray)."""

    dataset: str
    dataset_options: dict
    device: str
    timeout: float | None
    cache_entry: str | None = None  # the dataset's cache entry, opened by the workers that can see it


def execute_run(context: RunContext, run: SweepRun, out_dir: Path) -> dict:
    """Train one run in a worker process, exactly as `compare` does; its files go in `out_dir`.
    `wall_s` is the run's whole time, worker start to record (what a search's time budget
    spends)."""
    began = time.monotonic()
    record = train_in_worker(RunConfig(context.dataset, run.train, context.dataset_options), run.framework,
                             run.model, context.device, Path(out_dir), stem=run.run_id,
                             cache_entry=context.cache_entry, timeout=context.timeout, prune=run.prune)
    return with_identity({**record, "wall_s": time.monotonic() - began}, run)


def with_identity(record: dict, run: SweepRun) -> dict:
    """The record with the run's id and swept values right after its framework and model."""
    head = {"framework": run.framework, "model": run.model, "run_id": run.run_id,
            "config": run.config}
    return {**head, **{k: v for k, v in record.items() if k not in head}}


# ---------------------------------------------------------------- the document

def shared_config(spec: SweepSpec, runs: list[SweepRun], device: str, executor: str, dataset_options: dict) -> dict:
    """The document-level `config`: what all runs share, and the grid they were drawn from."""
    train = asdict(runs[0].train)
    optimizer = train.pop("optimizer")
    per_run = {"batch_size", "optimizer", "lr", "seed", *spec.grid, *spec.space, "model"}
    for key in [k for k in train if k in per_run]:
        train.pop(key)
    optimizer = {k: v for k, v in optimizer.items() if k not in ("name", "lr", *spec.grid, *spec.space)}
    others = {k: [as_json(v) for v in values] for k, values in spec.grid.items()
              if k not in GRID_ORDER}
    return {"dataset": spec.dataset, "dataset_options": dataset_options,
            "frameworks": list(spec.frameworks), "models": list(spec.models),
            "device": device, "timeout_s": spec.timeout, **train,
            "optimizer_settings": optimizer,
            "sweep": {"batch_sizes": list(spec.grid.get("batch_size", (runs[0].train.batch_size,))),
                      "optimizers": list(spec.grid.get("optimizer", (runs[0].train.optimizer.name,))),
                      "lrs": list(spec.grid["lr"]) if "lr" in spec.grid else spec.fixed.get("lr"),
                      "seeds": list(spec.seeds), **others},
            "executor": executor}


def previous_document(out_dir: Path, resume: bool, fingerprint: str) -> dict | None:
    """The results of an earlier sweep into `out_dir`, to resume; never overwritten unasked."""
    path = out_dir / "results.json"
    if not path.exists():
        return None
    if not resume:
        raise PybenchError(f"{path} exists: pass --resume to continue that sweep, or choose "
                           "another --out")
    try:
        document = json.loads(path.read_text())
        previous = document["dataset"]["fingerprint"]
        runs = document["runs"]
    except (ValueError, KeyError, TypeError):
        raise PybenchError(f"{path}: not a pybench results file; cannot --resume it") from None
    if previous != fingerprint:
        raise PybenchError(f"{path}: was made on other data (fingerprint {previous[:12]}, now "
                           f"{fingerprint[:12]}); cannot --resume it")
    if not isinstance(runs, list):
        raise PybenchError(f"{path}: 'runs' is not a list; cannot --resume it")
    return document


# What the forward check's logits depend on besides the model: the initial weights (seed, or a
# weights file) and how the pixels are normalised; the first batch is PARITY_BATCH images of the
# seed's order whatever the batch size.
FORWARD_KEYS = ("seed", "weights", "normalize")


def check_forward(records: list[dict], out_dir: Path) -> None:
    """compare's forward check, each run against the reference framework's run that started from
    the same weights on the same images."""
    groups: dict[str, list[dict]] = {}
    for record in records:
        key = json.dumps([record["config"].get(k) for k in FORWARD_KEYS])
        groups.setdefault(key, []).append(record)
    for group in groups.values():
        forward_parity(group, out_dir)


def open_tracker(folder: Path | None, out_dir: Path):
    """The MLflow log of a sweep's runs (`mlflow = "DIR"`): one experiment named after its
    results folder; None without one."""
    if folder is None:
        return None
    from pybench.tracking import MlflowTracker

    return MlflowTracker(folder, Path(out_dir).resolve().name)



"""`pybench sweep SWEEP.toml`: every combination of a grid, one run each, gathered into one results.json.

pybench only expands the grid, hands the runs to an executor (`pybench.run.executors`: one after
another on this machine, or as Ray tasks on a cluster) and gathers their records exactly as
`compare` does: each run is `pybench.run.life.train_in_worker`, a training job in a worker process
of its own.
results.json is rewritten after every finished run, so a sweep that stops midway keeps what
finished, and `--resume` skips the runs that already finished. Each run record carries its own
`config` (the swept values) and `run_id`; the document's `config` holds what all runs share.

SWEEP.toml::

    dataset = "digits"
    frameworks = ["torch", "jax"]
    models = ["lenet5"]
    batch_sizes = [32, 64]
    optimizers = ["sgd"]
    lrs = [0.01, 0.05]
    seeds = [0, 1]
    max_steps = 200
"""

from __future__ import annotations

import functools
import itertools
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from pybench.backends import FRAMEWORK_DESCRIPTIONS, FRAMEWORK_NAMES
from pybench.backends.contract import (
    DEFAULT_LR,  # a rate when SWEEP.toml lists no lrs
    OptimizerConfig,
)
from pybench.datasets.normalization import check_normalize
from pybench.errors import Interrupted, PybenchError
from pybench.models import MODEL_DESCRIPTIONS, cnn_records, model_names
from pybench.models.cnn import is_cnn_file
from pybench.results import write_results
from pybench.run import life
from pybench.run.checks import preflight
from pybench.run.fidelity import forward_parity
from pybench.run.life import (
    as_interrupted,
    dataset_summary,
    make_out_dir,
    results_header,
    train_in_worker,
    write_unreadable,
)
from pybench.tasks import POS_WEIGHTS
from pybench.training import TrainConfig

# Keys of SWEEP.toml: the swept lists, with the type of their items ...
GRID_KEYS = {"frameworks": str, "models": str, "batch_sizes": int, "lrs": float,
             "optimizers": str, "seeds": int}
# ... the settings every run shares ...
SHARED_KEYS = {"dataset": str, "epochs": int, "max_steps": int, "momentum": float,
               "weight_decay": float, "target_accuracy": float, "patience": int,
               "balance": bool, "pos_weight": str, "normal_class": str, "normalize": str, "embeddings": int,
               "weights": str, "trainable": str, "device": str, "timeout": float, "cpus_per_run": float}
# ... and the `[dataset_options]` table: `load_dataset`'s keywords (the CLI's dataset options).
DATASET_OPTION_KEYS = {"data_dir": str, "image_size": int, "grayscale": bool,
                       "test_fraction": float, "seed": int, "manifest": str, "image_col": str,
                       "label_col": str, "binary_negative": str, "group_col": str, "multilabel": bool,
                       "val_fraction": float, "layout": str, "split": str, "skip_unreadable": bool,
                       "checksum": bool, "workers": int, "cache": bool}
POSITIVE = {"batch_sizes", "lrs", "epochs", "max_steps", "patience", "timeout", "cpus_per_run"}
CHOICES = {"frameworks": tuple(FRAMEWORK_DESCRIPTIONS), "models": tuple(MODEL_DESCRIPTIONS),
           "optimizers": tuple(DEFAULT_LR), "device": ("auto", "cpu", "cuda"), "pos_weight": POS_WEIGHTS}


@dataclass(frozen=True)
class Sweep:
    """A parsed SWEEP.toml: the grid and the shared settings."""

    dataset: str
    frameworks: tuple[str, ...] = FRAMEWORK_NAMES
    models: tuple[str, ...] = ("lenet5",)
    batch_sizes: tuple[int, ...] = (32,)
    optimizers: tuple[str, ...] = ("sgd",)
    lrs: tuple[float, ...] | None = None  # None: each optimizer's default
    seeds: tuple[int, ...] = (0,)
    dataset_options: dict = field(default_factory=dict)
    device: str = "auto"
    timeout: float | None = None
    cpus_per_run: float = 1.0  # Ray: CPUs each task reserves (CPU runs)
    # The TrainConfig fields every run shares.
    train: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SweepRun:
    """One combination of the grid: a (framework, model) trained with one configuration."""

    framework: str
    model: str
    train: TrainConfig

    @property
    def config(self) -> dict:
        """The swept values (and the run length), stored in the run's record as `config`."""
        t = self.train
        return {"batch_size": t.batch_size, "optimizer": t.optimizer.name, "lr": t.optimizer.lr,
                "seed": t.seed, "epochs": t.epochs, "max_steps": t.max_steps}

    @property
    def run_id(self) -> str:
        c = self.config
        # repr: distinct learning rates never share a name (":g" would round 1.0000001e-7)
        return (f"{self.framework}-{self.model}-b{c['batch_size']}-{c['optimizer']}"
                f"-lr{c['lr']!r}-s{c['seed']}")

    @property
    def key(self) -> tuple:
        return run_key(self.framework, self.model, self.config)


def run_key(framework: str, model: str, config: dict) -> tuple:
    """What makes two runs the same run (for --resume)."""
    return framework, model, json.dumps(config, sort_keys=True)


# ---------------------------------------------------------------- SWEEP.toml

def load_sweep(path: Path) -> Sweep:
    """Parse and check SWEEP.toml; anything wrong is a one-line error naming the file and key."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PybenchError(f"{path}: not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PybenchError(f"{path}: cannot be read ({type(exc).__name__})") from None
    except tomllib.TOMLDecodeError as exc:
        raise PybenchError(f"{path}: not valid TOML ({exc})") from None
    return sweep_from_dict(raw, path)


def sweep_from_dict(raw: dict, path: Path) -> Sweep:
    def bad(key: str, what: str) -> PybenchError:
        return PybenchError(f"{path}: {key}: {what}")

    known = {*GRID_KEYS, *SHARED_KEYS, "dataset_options"}
    for key in raw:
        if key not in known:
            raise bad(key, f"unknown key (known: {', '.join(sorted(known))})")
    if "dataset" not in raw:
        raise bad("dataset", "missing (e.g. dataset = \"digits\")")
    values: dict = {}
    for key, kind in GRID_KEYS.items():
        if key in raw:
            items = raw[key]
            if not isinstance(items, list):
                raise bad(key, f"expected a list, e.g. {key} = [{example(kind)}]")
            if not items:
                raise bad(key, "empty list: give at least one value")
            values[key] = tuple(checked(key, item, kind, bad) for item in items)
            if len(set(values[key])) != len(values[key]):
                raise bad(key, "lists a value twice")
    if "models" in values:  # CNN files relative to the sweep file, read and registered
        values["models"] = model_names(str((path.parent / Path(m).expanduser()).resolve())
                                       if is_cnn_file(m) else m for m in values["models"])
    shared = {key: checked(key, raw[key], kind, bad)
              for key, kind in SHARED_KEYS.items() if key in raw}
    options = raw.get("dataset_options", {})
    if not isinstance(options, dict):
        raise bad("dataset_options", "expected a table ([dataset_options])")
    for key, value in options.items():
        if key not in DATASET_OPTION_KEYS:
            raise bad(f"dataset_options.{key}",
                      f"unknown key (known: {', '.join(DATASET_OPTION_KEYS)})")
        checked(f"dataset_options.{key}", value, DATASET_OPTION_KEYS[key], bad)
    train = {key: shared[key] for key in ("epochs", "max_steps", "target_accuracy", "patience",
                                          "balance", "pos_weight", "normal_class", "normalize",
                                          "embeddings")
             if key in shared}
    if "normalize" in train:
        try:
            check_normalize(train["normalize"])
        except PybenchError as error:
            raise bad("normalize", str(error).split(": ", 1)[1]) from None
    if "weights" in shared:  # a path relative to the sweep file, as a file's own paths read
        train["weights"] = str((path.parent / Path(shared["weights"]).expanduser()).resolve())
    if "trainable" in shared:  # "layer4,fc", as --trainable takes it
        train["trainable"] = tuple(part.strip() for part in shared["trainable"].split(",") if part.strip())
    if "target_accuracy" in train and not 0 < train["target_accuracy"] <= 1:
        raise bad("target_accuracy", "give a fraction between 0 and 1, e.g. 0.98")
    train["optimizer"] = {k: shared[k] for k in ("momentum", "weight_decay") if k in shared}
    return Sweep(dataset=shared["dataset"], dataset_options=dict(options), train=train,
                 **values, **{k: shared[k] for k in ("device", "timeout", "cpus_per_run")
                              if k in shared})


def example(kind: type) -> str:
    return {str: '"torch"', int: "1", float: "0.01", bool: "true"}[kind]


def checked(key: str, value, kind: type, bad):
    # TOML's booleans are not numbers here, and an integer is a fine float (lr = 1).
    ok = (isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
          or kind is float and isinstance(value, int) and not isinstance(value, bool))
    if not ok:
        what = f"a list of {kind.__name__} values" if key in GRID_KEYS else kind.__name__
        raise bad(key, f"expected {what}, got {value!r}")
    name = key.removeprefix("dataset_options.")
    if name in POSITIVE and value <= 0:
        raise bad(key, f"{value!r} must be positive")
    if name in CHOICES and value not in CHOICES[name] and not (name == "models" and is_cnn_file(value)):
        raise bad(key, f"unknown {name.rstrip('s')} {value!r}: choose from "
                       f"{', '.join(CHOICES[name])}")
    return float(value) if kind is float else value


def expand(sweep: Sweep) -> list[SweepRun]:
    """Every combination, in a stable order: configurations outermost, frameworks innermost,
    so the frameworks of one configuration finish close together."""
    shared = dict(sweep.train)
    optimizer_settings = shared.pop("optimizer", {})
    runs = []
    for model, batch_size, optimizer, seed in itertools.product(
            sweep.models, sweep.batch_sizes, sweep.optimizers, sweep.seeds):
        for lr in sweep.lrs or (DEFAULT_LR[optimizer],):
            train = TrainConfig(model=model, batch_size=batch_size, seed=seed,
                                optimizer=OptimizerConfig(name=optimizer, lr=lr,
                                                          **optimizer_settings), **shared)
            runs += [SweepRun(framework, model, train) for framework in sweep.frameworks]
    return runs


# ---------------------------------------------------------------- one run

@dataclass(frozen=True)
class RunContext:
    """What every run of a sweep needs besides its own configuration (picklable, for Ray)."""

    dataset: str
    dataset_options: dict
    device: str
    timeout: float | None


def execute_run(context: RunContext, run: SweepRun, out_dir: Path) -> dict:
    """Train one run in a worker process, exactly as `compare` does; its files go in `out_dir`."""
    record = train_in_worker(context.dataset, context.dataset_options, run.train, run.framework,
                             run.model, context.device, Path(out_dir), stem=run.run_id,
                             timeout=context.timeout)
    return with_identity(record, run)


def with_identity(record: dict, run: SweepRun) -> dict:
    """The record with the run's id and swept values right after its framework and model."""
    head = {"framework": run.framework, "model": run.model, "run_id": run.run_id,
            "config": run.config}
    return {**head, **{k: v for k, v in record.items() if k not in head}}


# ---------------------------------------------------------------- the sweep

def default_out_dir(sweep_path: Path) -> Path:
    return life.default_out_dir(f"sweep-{Path(sweep_path).stem}")


def shared_config(sweep: Sweep, device: str, executor: str) -> dict:
    """The document-level `config`: what all runs share, and the grid they were drawn from."""
    defaults = asdict(TrainConfig())
    for key in ("model", "batch_size", "seed", "optimizer"):
        defaults.pop(key)
    optimizer = asdict(OptimizerConfig())
    for key in ("name", "lr"):
        optimizer.pop(key)
    train = {k: v for k, v in sweep.train.items() if k != "optimizer"}
    return {"dataset": sweep.dataset, "dataset_options": sweep.dataset_options,
            "frameworks": list(sweep.frameworks), "models": list(sweep.models),
            "device": device, "timeout_s": sweep.timeout, **defaults, **train,
            "optimizer_settings": {**optimizer, **sweep.train.get("optimizer", {})},
            "sweep": {"batch_sizes": list(sweep.batch_sizes), "optimizers": list(sweep.optimizers),
                      "lrs": list(sweep.lrs) if sweep.lrs else None,
                      "seeds": list(sweep.seeds)},
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


def finished_records(document: dict | None) -> dict[tuple, dict]:
    """Records of an earlier sweep by run key; failed runs are not kept and run again."""
    if document is None:
        return {}
    return {run_key(r["framework"], r["model"], r["config"]): r for r in document["runs"]
            if isinstance(r, dict) and r.get("status") == "ok" and "config" in r}


def ordered_runs(runs: list[SweepRun], records: dict[tuple, dict]) -> list[dict]:
    """The records in grid order (finished ones only), then any kept from other grids."""
    keys = [run.key for run in runs]
    in_grid = [records[key] for key in keys if key in records]
    return in_grid + [r for key, r in records.items() if key not in set(keys)]


def check_forward(records: list[dict], out_dir: Path) -> None:
    """compare's forward check, within each configuration (the initial weights depend on it)."""
    groups: dict[str, list[dict]] = {}
    for record in records:
        groups.setdefault(json.dumps(record["config"], sort_keys=True), []).append(record)
    for group in groups.values():
        forward_parity(group, out_dir)


def run_sweep(sweep_path: Path, executor, out: Path | None = None, resume: bool = False,
              command: str | None = None, progress: bool = True) -> tuple[Path, dict]:
    """Run every combination of SWEEP.toml with `executor`; return the folder and the document."""
    sweep = load_sweep(sweep_path)
    runs = expand(sweep)
    # The device is resolved on the executor (a Ray cluster's nodes, not this machine).
    checked = preflight(model_names=sweep.models, frameworks=sweep.frameworks,
                        dataset=sweep.dataset, dataset_options=sweep.dataset_options,
                        train=runs[0].train, seed=sweep.seeds[0], device=None, progress=progress)
    unavailable, dataset = checked.unavailable, checked.dataset
    out_dir = Path(out) if out else default_out_dir(sweep_path)
    records = finished_records(previous_document(out_dir, resume, dataset.fingerprint))
    with executor:
        device = executor.resolve_device(sweep.device)
        make_out_dir(out_dir)
        write_unreadable(out_dir, dataset)
        document = {
            **results_header(command),
            "config": shared_config(sweep, device, executor.name),
            "cnn_models": cnn_records(sweep.models),
            "dataset": dataset_summary(dataset), "runs": ordered_runs(runs, records),
        }
        write_results(out_dir, document)
        gather_runs(runs, records, document, executor, out_dir,
                    RunContext(sweep.dataset, sweep.dataset_options, device, sweep.timeout),
                    unavailable, sweep.cpus_per_run, progress)
    return out_dir, document


def keep_interrupted(exc: BaseException, unfinished: list[SweepRun], records: dict,
                     runs: list[SweepRun], document: dict, out_dir: Path, executor: str) -> None:
    """After a signal: the runs that were training are recorded as `interrupted` (the local
    executor trains one at a time, in order; Ray had every unfinished run submitted), the
    results saved, and `Interrupted` raised. Runs never started are left out: `--resume` runs
    them, and the interrupted ones, again."""
    interrupted = as_interrupted(exc)
    stopped = unfinished if executor == "ray" else unfinished[:1]
    for run in stopped:
        records[run.key] = with_identity({"status": "interrupted",
                                          "reason": f"{interrupted} during training"}, run)
    document["runs"] = ordered_runs(runs, records)
    write_results(out_dir, document)
    raise interrupted


def gather_runs(runs: list[SweepRun], records: dict, document: dict, executor, out_dir: Path,
                context: RunContext, unavailable: dict[str, str], cpus: float,
                progress: bool) -> None:
    """Submit the runs not yet done; store each record as it arrives (results.json rewritten)."""
    from tqdm import tqdm

    todo = [run for run in runs if run.key not in records]
    finished = len(runs) - len(todo)
    for run in [r for r in todo if r.framework in unavailable]:
        records[run.key] = with_identity({"status": "unavailable",
                                          "reason": unavailable[run.framework]}, run)
    todo = [run for run in todo if run.framework not in unavailable]
    bar = tqdm(total=len(todo), desc="sweep", unit="run", file=sys.stderr,
               disable=not progress or None, dynamic_ncols=True)
    if finished and progress:
        bar.write(f"{finished} of {len(runs)} runs already finished in {out_dir}: kept")
    execute = functools.partial(execute_run, context)
    try:
        for run, record in executor.run(todo, execute, out_dir, cpus=cpus,
                                        gpu=context.device == "cuda"):
            records[run.key] = with_identity(record, run)
            document["runs"] = ordered_runs(runs, records)
            check_forward([r for r in document["runs"] if r.get("status") == "ok"], out_dir)
            write_results(out_dir, document)
            bar.set_postfix_str(f"{run.run_id}: {record.get('status')}", refresh=False)
            bar.update(1)
    except (KeyboardInterrupt, Interrupted) as exc:
        keep_interrupted(exc, [r for r in todo if r.key not in records], records, runs,
                         document, out_dir, executor.name)
    finally:
        bar.close()
    document["runs"] = ordered_runs(runs, records)
    write_results(out_dir, document)

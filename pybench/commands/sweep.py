"""`pybench sweep SWEEP.toml`: every combination of a grid, one run each, gathered into one results.json.

SWEEP.toml is read by `pybench.commands.sweep_file` (every `compare` option is a key; a list is part
of the grid). With `search = ...` the sweep is a tuned search instead (`pybench.commands.tune`),
which runs its trials and verdict runs through the same `SweepRun`s and `execute_run`.
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
import sys
from pathlib import Path

from pybench.errors import Interrupted
from pybench.models import cnn_records
from pybench.results import write_results
from pybench.run import life
from pybench.run.checks import preflight
from pybench.run.life import (
    as_interrupted,
    cache_entry_of,
    dataset_summary,
    describe_data,
    make_out_dir,
    results_header,
    write_unreadable,
)
from pybench.run.sweep_runs import (
    CONFIG_KEYS,
    RunContext,
    SweepRun,
    check_forward,
    execute_run,
    grid_keys,
    open_tracker,
    previous_document,
    run_key,
    shared_config,
    with_identity,
)
from pybench.sweep_file import run_dataset_options, run_train_config
from pybench.sweep_spec import SweepSpec

# ---------------------------------------------------------------- SWEEP.toml

def expand(spec: SweepSpec) -> list[SweepRun]:
    """Every combination, in a stable order: configurations outermost, frameworks innermost,
    so the frameworks of one configuration finish close together."""
    keys = grid_keys(spec)
    runs = []
    for model in spec.models:
        for values in itertools.product(*(spec.grid[k] for k in keys)):
            point = dict(zip(keys, values))
            train = run_train_config(spec, model, point)
            swept = tuple((k, v) for k, v in point.items() if k not in CONFIG_KEYS)
            runs += [SweepRun(framework, model, train, swept) for framework in spec.frameworks]
    return runs


# ---------------------------------------------------------------- the sweep

def default_out_dir(sweep_path: Path) -> Path:
    return life.default_out_dir(f"sweep-{Path(sweep_path).stem}")


def finished_records(document: dict | None) -> dict[tuple, dict]:
    """Records of an earlier sweep by run key; failed runs are not kept and run again."""
    if document is None:
        return {}
    return {run_key(r["framework"], r["model"], r["config"], r.get("phase", "")): r
            for r in document["runs"]
            if isinstance(r, dict) and r.get("status") == "ok" and "config" in r}


def ordered_runs(runs: list[SweepRun], records: dict[tuple, dict]) -> list[dict]:
    """The records in grid order (finished ones only), then any kept from other grids."""
    keys = [run.key for run in runs]
    in_grid = [records[key] for key in keys if key in records]
    return in_grid + [r for key, r in records.items() if key not in set(keys)]


def run_sweep(spec: SweepSpec, executor, out: Path | None = None, resume: bool = False,
              command: str | None = None, progress: bool = True) -> tuple[Path, dict]:
    """Run every combination of a grid sweep with `executor` (a file with `search = ...` is
    `pybench.commands.tune`'s); return the folder and the document."""
    runs = expand(spec)
    options = run_dataset_options(spec)
    # The device is resolved on the executor (a Ray cluster's nodes, not this machine).
    checked = preflight(model_names=spec.models, frameworks=spec.frameworks,
                        dataset=spec.dataset, dataset_options=options,
                        train=runs[0].train, seed=spec.seeds[0], device=None, progress=progress,
                        batch_size=max(run.train.batch_size for run in runs))
    unavailable, dataset = checked.unavailable, checked.dataset
    out_dir = Path(out) if out else default_out_dir(spec.path)
    records = finished_records(previous_document(out_dir, resume, dataset.fingerprint))
    with executor:
        device = executor.resolve_device(spec.device)
        make_out_dir(out_dir)
        write_unreadable(out_dir, dataset)
        document = {
            **results_header(command),
            "config": shared_config(spec, runs, device, executor.name, options),
            "cnn_models": cnn_records(spec.models),
            "dataset": dataset_summary(dataset), "runs": ordered_runs(runs, records),
        }
        describe_data(document, progress)
        write_results(out_dir, document)
        gather_runs(runs, records, document, executor, out_dir,
                    RunContext(spec.dataset, options, device, spec.timeout, cache_entry_of(dataset)),
                    unavailable, spec.cpus_per_run, progress,
                    tracker=open_tracker(spec.mlflow, out_dir))
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
                progress: bool, tracker=None) -> None:
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
            if tracker is not None:
                tracker.log_run(records[run.key], out_dir)
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

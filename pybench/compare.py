"""`pybench compare`: train every (framework, model) on one dataset and store the results.

The parent process never imports a framework: it checks availability through the registry's
lightweight path where it can, runs each job in its own worker (`pybench.worker`), compares the
workers' forward-check logits against a reference framework, and rewrites results.json after every
run so nothing finished is lost.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from pybench import memory, runlife
from pybench.backends import get_backend
from pybench.datasets.core import with_validation
from pybench.errors import Interrupted
from pybench.models import builds_for, check_model
from pybench.parity import logit_tolerance
from pybench.peak import machine_peak
from pybench.results import write_npz, write_results
from pybench.runlife import (
    as_interrupted,
    check_gpu,
    check_requested_frameworks,
    dataset_summary,
    make_out_dir,
    reference_framework,
    resolve_device,
    results_header,
    write_unreadable,
)
from pybench.tensorboard import run_folder
from pybench.training import TrainConfig, check_options, train_and_evaluate
from pybench.worker import (
    PARITY_BATCH,
    float64_logits,
    forward_check,
    gpu_settings,
    job_for,
    load_job_dataset,
    run_in_worker,
    train_config,
)


@dataclass(frozen=True)
class CompareConfig:
    dataset: str
    frameworks: tuple[str, ...]
    models: tuple[str, ...]
    train: TrainConfig
    device: str = "auto"
    out: Path | None = None
    timeout: float | None = None
    dataset_options: dict | None = None
    seeds: tuple[int, ...] = ()  # several seeds: runs paired across frameworks by seed
    repeats: int = 1  # the same seed again, for timing noise
    gpu: int = 0  # with --device cuda: the GPU every worker is pinned to (CUDA_VISIBLE_DEVICES)
    tensorboard: Path | None = None  # event files of every run under it (pybench.tensorboard)

    @property
    def run_seeds(self) -> tuple[int, ...]:
        return self.seeds or (self.train.seed,)






def default_out_dir(dataset: str) -> Path:
    return runlife.default_out_dir(Path(dataset).stem if dataset not in ("mnist", "digits") else dataset)






def forward_parity(runs: list[dict], out_dir: Path) -> None:
    """Add each ok run's forward-check figures against the reference framework's logits
    (`runlife.reference_framework`), run against run of the same model, seed and repeat (the
    seed sets the initial weights)."""
    groups: dict[tuple, dict[str, dict]] = {}
    for run in runs:
        if run.get("status") == "ok":
            key = (run["model"], run.get("seed"), run.get("repeat"))
            groups.setdefault(key, {})[run["framework"]] = run
    for runs_of_group in groups.values():
        ref = reference_framework(runs_of_group)
        ref_arrays = np.load(out_dir / runs_of_group[ref]["parity_arrays"])
        for run in runs_of_group.values():
            arrays = np.load(out_dir / run["parity_arrays"])
            diffs = {mode: float(np.max(np.abs(arrays[f"{mode}_logits"]
                                               - ref_arrays[f"{mode}_logits"])))
                     for mode in ("eval", "train")}
            tolerance = logit_tolerance(ref_arrays)
            run["parity"] = {"reference": ref,
                             "max_abs_logit_diff_eval": diffs["eval"],
                             "max_abs_logit_diff_train": diffs["train"],
                             "tolerance": tolerance,
                             "ok": max(diffs.values()) <= tolerance}




def run_compare(cfg: CompareConfig, command: str | None = None,
                echo: bool = True) -> tuple[Path, dict]:
    """Run the comparison; return the results directory and the results document."""
    # The parent loads once: it fills the cache and fails early on bad input.
    from pybench.datasets import load_dataset
    from pybench.training import planned_steps, run_learning_rates

    for model in cfg.models:
        check_model(model)
    device = resolve_device(cfg.device)
    check_gpu(device, cfg.gpu)
    unavailable = check_requested_frameworks(cfg.frameworks)
    # --patience needs a validation split; the workers get these very options.
    options = with_validation(cfg.dataset_options or {}, cfg.train.patience)
    dataset = load_dataset(cfg.dataset, progress=echo, **options)
    # A schedule that cannot fit the run (a warm-up longer than it) fails here, in one line, and
    # so does a CPU run that cannot fit in memory (each worker checks again, with its device).
    run_learning_rates(cfg.train, *planned_steps(cfg.train, len(dataset.train.labels)))
    if device == "cpu":
        for model in cfg.models:
            if models_fit_data(model, dataset):  # one that does not fails in its worker, with why
                memory.check_host_memory(dataset, model, cfg.train.batch_size, cfg.train.optimizer.name,
                                         augment=bool(cfg.train.augment))
    fitted = check_options(cfg.train, cfg.models, dataset, cfg.run_seeds[0])
    out_dir = make_out_dir(Path(cfg.out) if cfg.out else default_out_dir(cfg.dataset))

    train = asdict(cfg.train)
    train.pop("model")
    document = {
        **results_header(command),
        "config": {"dataset": cfg.dataset, "dataset_options": options,
                   "frameworks": list(cfg.frameworks), "models": list(cfg.models),
                   "device": device, "gpu": cfg.gpu if device == "cuda" else None,
                   "timeout_s": cfg.timeout, **train,
                   "seed": cfg.run_seeds[0], "seeds": list(cfg.run_seeds),
                   "repeats": cfg.repeats,
                   "tensorboard": str(cfg.tensorboard) if cfg.tensorboard else None,
                   **({"weights_fit": fitted} if fitted else {})},
        "dataset": dataset_summary(dataset), "runs": [],
    }
    write_results(out_dir, document)
    write_unreadable(out_dir, dataset)
    progress = echo and sys.stderr.isatty()
    for job in planned_runs(cfg):
        framework, model = job.framework, job.model
        tag = {"seed": job.seed, "repeat": job.repeat}
        if framework in unavailable:
            record = {"framework": framework, "model": model, "status": "unavailable",
                      "reason": unavailable[framework]}
        else:
            if echo:
                print(f"== {framework} {model} on {device}{job.label}", file=sys.stderr,
                      flush=True)
            try:
                board = None
                if cfg.tensorboard is not None:
                    board = run_folder(cfg.tensorboard, model, framework, job.seed,
                                       job.repeat if cfg.repeats > 1 else None)
                record = run_one(replace(cfg, train=replace(cfg.train, seed=job.seed)),
                                 framework, model, device, out_dir, progress, echo,
                                 stem=job.stem, board=board)
            except (KeyboardInterrupt, Interrupted) as exc:
                keep_interrupted(document, out_dir, framework, model, exc, tag)
        document["runs"].append({**record, **tag})
        forward_parity(document["runs"], out_dir)
        write_results(out_dir, document)
    return out_dir, document


@dataclass(frozen=True)
class PlannedRun:
    framework: str
    model: str
    seed: int
    repeat: int
    several: bool  # more than one seed or repeat: files and progress lines name them

    @property
    def stem(self) -> str:
        if not self.several:
            return f"{self.framework}-{self.model}"
        return f"{self.framework}-{self.model}-s{self.seed}-r{self.repeat}"

    @property
    def label(self) -> str:
        return f" (seed {self.seed}, repeat {self.repeat})" if self.several else ""


def planned_runs(cfg: CompareConfig) -> list[PlannedRun]:
    """Every run in the order it trains: per model and seed, each repeat runs every framework
    one after the other, so that a slow phase of a shared machine falls on all frameworks
    rather than on whichever happened to run then."""
    several = len(cfg.run_seeds) > 1 or cfg.repeats > 1
    return [PlannedRun(framework, model, seed, repeat, several)
            for model in cfg.models for seed in cfg.run_seeds for repeat in range(cfg.repeats)
            for framework in cfg.frameworks]


def keep_interrupted(document: dict, out_dir: Path, framework: str, model: str,
                     exc: BaseException, tag: dict | None = None) -> None:
    """Record the run a signal stopped as `interrupted`, save the results, and raise
    `Interrupted` (the worker is already stopped: `run_in_worker` kills it on the way out)."""
    interrupted = as_interrupted(exc)
    document["runs"].append({"framework": framework, "model": model, "status": "interrupted",
                             "reason": f"{interrupted} during training", **(tag or {})})
    forward_parity(document["runs"], out_dir)
    write_results(out_dir, document)
    raise interrupted


def models_fit_data(model: str, dataset) -> bool:
    """Whether `model` can be built for the dataset's images (LeNet-5 needs 12x12 at least)."""
    return builds_for(model, dataset.in_shape, dataset.num_classes)


def check_memory(backend, dataset, cfg: TrainConfig) -> None:
    """Refuse, before anything is put on the device, a run that cannot fit (pybench.memory)."""
    args = (dataset, cfg.model, cfg.batch_size, cfg.optimizer.name)
    if backend.device == "cpu":
        memory.check_host_memory(*args, augment=bool(cfg.augment))
    else:
        memory.check_device_memory(backend, *args, augment=bool(cfg.augment))


def run_train_job(job: dict) -> dict:
    dataset = load_job_dataset(job)
    cfg = train_config(job)
    backend = get_backend(job["framework"], job["device"])
    check_memory(backend, dataset, cfg)
    record = {"device": backend.device, **backend.device_info(), **gpu_settings(job)}
    logits, _ = forward_check(backend, dataset, cfg, PARITY_BATCH)
    if backend.name == runlife.REFERENCE_FRAMEWORK:
        # The reference's own float32 rounding, against float64, sets the check's tolerance
        # for deep models (pybench.parity.logit_tolerance). Only torch: compare's JAX workers
        # start without float64.
        logits.update(float64_logits(backend, dataset, cfg, PARITY_BATCH))
    write_npz(Path(job["parity_path"]), **logits)
    run, predictions = train_and_evaluate(backend, dataset, cfg, progress=job.get("progress"),
                                          board_folder=job.get("tensorboard_dir"))
    write_npz(Path(job["predictions_path"]), **predictions)
    # After training, so a first measurement never delays or disturbs the timed steps.
    return {**record, **run, **machine_peak(backend, record.get("device_name", ""))}


def run_one(cfg: CompareConfig, framework: str, model: str, device: str, out_dir: Path,
            progress: bool, echo: bool, stem: str | None = None, board: Path | None = None) -> dict:
    """One training job in a worker; its files are named `stem` (a sweep has many per pair);
    with `board`, its TensorBoard event files go there."""
    stem = stem or f"{framework}-{model}"
    job = job_for("train", framework, model, cfg.dataset,
                  with_validation(cfg.dataset_options or {}, cfg.train.patience), cfg.train,
                  device, progress=progress, gpu=cfg.gpu,
                  parity_path=str(out_dir / "parity" / f"{stem}.npz"),
                  predictions_path=str(out_dir / "predictions" / f"{stem}.npz"),
                  tensorboard_dir=str(board) if board else None)
    record = run_in_worker(job, cfg.timeout, log_path=out_dir / "logs" / f"{stem}.log",
                           echo=echo)
    if record.get("status") == "ok":
        record["predictions"] = f"predictions/{stem}.npz"
        record["parity_arrays"] = f"parity/{stem}.npz"
    return record


CONSOLE_COLUMNS = ["framework", "model", "status", "test accuracy %", "step median ms",
                   "step IQR ms", "images/s", "first step s", "× fastest"]
AGGREGATE_COLUMNS = ["framework", "model", "runs", "seeds", "accuracy mean %",
                     "accuracy 95% interval %", "step median ms", "× fastest"]


def summary_text(document: dict) -> str:
    """What `compare` prints: the runs (one row each, or with several seeds or repeats one row
    per framework and model, aggregated), the forward check per model, one line per run that
    did not finish with its full reason, then the headline's verdicts."""
    from pybench.report.headline import headline_lines, score_note

    several = len({(r.get("seed"), r.get("repeat")) for r in document["runs"]}) > 1
    lines = [*score_note(document)[:1], console_table(document, several)]
    checks: dict[str, dict[str, float]] = {}
    tolerances: dict[str, float] = {}
    bad: set[tuple[str, str]] = set()
    for run in document["runs"]:
        if run.get("parity"):
            p = run["parity"]
            diff = max(p["max_abs_logit_diff_eval"], p["max_abs_logit_diff_train"])
            worst = checks.setdefault(run["model"], {})
            worst[run["framework"]] = max(worst.get(run["framework"], 0.0), diff)
            tolerances[run["model"]] = min(tolerances.get(run["model"], np.inf), p["tolerance"])
            if not p["ok"]:
                bad.add((run["model"], run["framework"]))
    for model, worst in checks.items():
        items = ", ".join(f"{framework} {diff:.1e}"
                          f"{' (OVER TOLERANCE)' if (model, framework) in bad else ''}"
                          for framework, diff in worst.items())
        lines.append(f"forward check, {model} (max |logit diff| to the reference"
                     f"{', the largest over seeds' if several else ''}, tolerance "
                     f"{tolerances[model]:.1e}): {items}")
    lines += [f"{run['framework']} {run['model']}"
              f"{' seed ' + str(run['seed']) if several else ''}: {run['status']}: "
              f"{run.get('reason', '')}"
              for run in document["runs"] if run.get("status") != "ok"]
    lines += [line.replace("**", "") for line in headline_lines(document)]
    return "\n".join(lines)


def console_table(document: dict, several: bool) -> str:
    from pybench.report.significance import seed_groups
    from pybench.report.tables import summary_table

    if not several:
        table = summary_table(document)
        # The throughput over blocks of steps, where it was measured (by default on CUDA).
        blocks = ["block images/s"] if table["block images/s"].notna().any() else []
        table = table[CONSOLE_COLUMNS + blocks].round(3).round({"images/s": 0, **dict.fromkeys(blocks, 0)})
        return table.to_string(index=False)
    table = seed_groups(document)
    if table.empty:
        return "no run finished"
    # The headline's statistic: the median over a framework's runs of each run's median step,
    # from the runs measured on a quiet machine (all of them when none was).
    medians, busy = {}, {}
    for run in document["runs"]:
        if run.get("status") == "ok" and (run.get("step_time_ms") or {}).get("median"):
            which = busy if (run.get("machine_load") or {}).get("busy") else medians
            which.setdefault((run["framework"], run["model"]), []).append(
                run["step_time_ms"]["median"])
    medians = {key: medians.get(key) or busy[key] for key in {**busy, **medians}}
    table["step median ms"] = [float(np.median(medians.get((f, m), [np.nan])))
                               for f, m in zip(table["framework"], table["model"])]
    table["× fastest"] = table["step median ms"] / table.groupby("model")[
        "step median ms"].transform("min")
    return table[AGGREGATE_COLUMNS].round(3).to_string(index=False)


"""`pybench compare`: train every (framework, model) on one dataset and store the results.

The parent process never imports a framework: it makes the pre-run checks (`pybench.run.checks`),
runs each job in its own worker (`pybench.run.life.train_in_worker`), compares the workers'
forward-check logits against a reference framework (`pybench.run.fidelity`), and rewrites
results.json after every run so nothing finished is lost. What it prints is
`pybench.report.console`'s.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from pybench import models
from pybench.config import RunConfig, TrainConfig
from pybench.errors import Interrupted, OutputError
from pybench.results import write_results
from pybench.run.checks import preflight
from pybench.run.fidelity import forward_parity, prediction_agreement
from pybench.run.life import (
    as_interrupted,
    dataset_summary,
    describe_data,
    make_out_dir,
    results_header,
    train_in_worker,
    write_unreadable,
)
from pybench.run.life import default_out_dir as named_out_dir
from pybench.tensorboard import run_folder


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
    mlflow: Path | None = None  # every run logged to the MLflow database there (pybench.tracking)

    @property
    def run_seeds(self) -> tuple[int, ...]:
        return self.seeds or (self.train.seed,)


def default_out_dir(dataset: str) -> Path:
    return named_out_dir(Path(dataset).stem if dataset not in ("mnist", "digits") else dataset)


def run_compare(cfg: CompareConfig, command: str | None = None,
                echo: bool = True) -> tuple[Path, dict]:
    """Run the comparison; return the results directory and the results document."""
    checked = preflight(model_names=cfg.models, frameworks=cfg.frameworks, dataset=cfg.dataset,
                        dataset_options=cfg.dataset_options, train=cfg.train,
                        seed=cfg.run_seeds[0], device=cfg.device, gpu=cfg.gpu, progress=echo,
                        predict_unlabelled=True)
    device, unavailable, dataset = checked.device, checked.unavailable, checked.dataset
    options, fitted = checked.dataset_options, checked.weights_fit
    if checked.predict:  # the dataset's own unlabelled folder, when --predict named none
        cfg = replace(cfg, train=replace(cfg.train, predict=checked.predict["folder"]))
    out_dir = make_out_dir(Path(cfg.out) if cfg.out else default_out_dir(cfg.dataset))

    run = RunConfig(cfg.dataset, cfg.train, options).to_json()  # as every job file holds it
    run.pop("model")  # the runs name their models
    document = {
        **results_header(command),
        "config": {**run, "frameworks": list(cfg.frameworks), "models": list(cfg.models),
                   "device": device, "gpu": cfg.gpu if device == "cuda" else None,
                   "timeout_s": cfg.timeout,
                   "seed": cfg.run_seeds[0], "seeds": list(cfg.run_seeds),
                   "repeats": cfg.repeats,
                   "tensorboard": str(cfg.tensorboard) if cfg.tensorboard else None,
                   "mlflow": str(cfg.mlflow) if cfg.mlflow else None,
                   **({"weights_fit": fitted} if fitted else {})},
        "cnn_models": models.cnn_records(cfg.models),
        "dataset": dataset_summary(dataset), "runs": [],
        **({"predict": checked.predict} if checked.predict else {}),
    }
    describe_data(document, echo)
    write_results(out_dir, document)
    write_unreadable(out_dir, dataset)
    tracker = None
    if cfg.mlflow is not None:
        from pybench.tracking import MlflowTracker

        tracker = MlflowTracker(cfg.mlflow, Path(out_dir).resolve().name)
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
                record = train_in_worker(RunConfig(cfg.dataset, replace(cfg.train, seed=job.seed), options),
                                         framework, model, device, out_dir, stem=job.stem,
                                         cache_entry=dataset.cache_entry, timeout=cfg.timeout,
                                         gpu=cfg.gpu, progress=progress, echo=echo, board=board)
            except (KeyboardInterrupt, Interrupted) as exc:
                keep_interrupted(document, out_dir, framework, model, exc, tag)
        document["runs"].append({**record, **tag})
        forward_parity(document["runs"], out_dir)
        prediction_agreement(document, out_dir)
        write_results(out_dir, document)
        if tracker is not None and record["status"] != "unavailable":
            tracker.log_run(document["runs"][-1], out_dir,
                            params={**asdict(replace(cfg.train, seed=job.seed)), "model": model})
        if record.get("output_error"):  # the next run would fail to write the same way
            raise OutputError(record["reason"])
    add_test_set_analysis(document, out_dir, dataset)
    write_results(out_dir, document)
    return out_dir, document


def add_test_set_analysis(document: dict, out_dir: Path, dataset) -> None:
    """What the runs' test predictions say together (`pybench.report.mistakes`): agreement and
    McNemar's test per pair and seed, the ensembles, and the images the frameworks disagree on
    most, drawn here, where the test images are at hand (a report reads only stored results)."""
    from pybench.report.mistakes import test_set_analysis
    from pybench.report.plots import disputed_grid

    analysis = test_set_analysis(document, out_dir, dataset.test.names)
    for model, found in analysis.items():
        disputed = found["disputed"]
        if disputed:
            name = f"disputed-{model}.png"
            disputed_grid(dataset.test.images[[row["index"] for row in disputed]], disputed, found["frameworks"],
                          f"{model}: the test images the frameworks disagree on most", out_dir / name)
            found["disputed_figure"] = name
    if analysis:
        document["test_set"] = analysis


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

"""`pybench parity`: prove that every framework computes the same function and the same training.

Each framework, in its own worker, builds each model from the same canonical weights, runs a
forward pass in eval and train mode on the same batch, then `steps` optimizer steps on the same
batches, and exports its parameters. The forward check runs in float32, as every comparison does;
the trajectory runs in float64 by default, because float32 ResNet training is chaotic enough that a
ResNet-20 drifts from its own float64 twin by 1e-2 in ten steps: in float64 any real difference
in a formula stands out by orders of magnitude. Here the arrays are compared with a reference framework
(torch when it ran): equal parameter counts and shapes, logits within `LOGIT_ATOL`, the loss at
every step within `LOSS_RTOL`, and the final weights close (`pybench.run.fidelity`). parity.json
records every figure.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from pybench import models
from pybench.config import RunConfig, TrainConfig
from pybench.errors import Interrupted
from pybench.results import code_info, write_json
from pybench.run.checks import preflight
from pybench.run.fidelity import (
    FLOAT32_NOISE_FACTOR,
    LOGIT64_ATOL,
    LOGIT_ATOL,
    LOSS_RTOL,
    WEIGHT_ATOL,
    WEIGHT_RTOL,
    check_model_parity,
)
from pybench.run.life import as_interrupted, cache_entry_of, default_out_dir, make_out_dir
from pybench.run.worker import job_for, run_in_worker


@dataclass(frozen=True)
class ParityConfig:
    models: tuple[str, ...]
    frameworks: tuple[str, ...]
    train: TrainConfig
    steps: int = 10
    dtype: str = "float64"  # of the training trajectory; the forward check is float32
    device: str = "cpu"
    dataset: str = "digits"
    dataset_options: dict | None = None
    out: Path | None = None  # None: runs/<timestamp>-parity, like every command's results
    timeout: float | None = None
    gpu: int = 0  # with --device cuda: the GPU every worker is pinned to
    # The models were not named (`parity` with no --models): every built-in model that takes
    # the images runs, the others are left out and said, instead of stopping the command.
    every_model: bool = False


def run_parity(cfg: ParityConfig, echo: bool = True) -> dict:
    checked = preflight(model_names=cfg.models, frameworks=cfg.frameworks, dataset=cfg.dataset,
                        dataset_options=cfg.dataset_options, train=cfg.train,
                        seed=cfg.train.seed, device=cfg.device, gpu=cfg.gpu, steps=cfg.steps,
                        fitting_models=cfg.every_model)
    device, unavailable, dataset = checked.device, checked.unavailable, checked.dataset
    cfg = replace(cfg, models=checked.models)
    for model, why in checked.left_out.items():
        if echo:
            print(f"pybench: {model} left out: {why}", flush=True)
    if cfg.out is None:
        cfg = replace(cfg, out=default_out_dir("parity"))
    make_out_dir(cfg.out)
    rows = []
    for model in cfg.models:
        records, arrays = {}, {}
        for framework in cfg.frameworks:
            if framework in unavailable:
                records[framework] = {"status": "unavailable", "reason": unavailable[framework]}
                continue
            if echo:
                print(f"== parity {framework} {model}", flush=True)
            path = cfg.out / "arrays" / f"{framework}-{model}.npz"
            job = job_for("parity", framework, model, RunConfig(cfg.dataset, cfg.train, checked.dataset_options),
                          device, cache_entry=cache_entry_of(dataset), steps=cfg.steps, dtype=cfg.dtype,
                          arrays_path=str(path), gpu=cfg.gpu)
            try:
                records[framework] = run_in_worker(job, cfg.timeout, echo=echo)
            except (KeyboardInterrupt, Interrupted) as exc:
                # The worker is stopped (run_in_worker kills it on the way out): keep what
                # finished, this model's checks so far included, and say which one stopped.
                interrupted = as_interrupted(exc)
                records[framework] = {"status": "interrupted",
                                      "reason": f"{interrupted} during the check"}
                expected = models.n_params(model, dataset.in_shape, dataset.num_classes)
                rows += check_model_parity(model, records, arrays, expected)
                write_json(cfg.out / "parity.json",
                           parity_document(cfg, device, dataset, rows, interrupted, checked.left_out))
                raise interrupted from None
            if records[framework]["status"] == "ok":
                arrays[framework] = np.load(path)
        expected = models.n_params(model, dataset.in_shape, dataset.num_classes)
        rows += check_model_parity(model, records, arrays, expected)
    document = parity_document(cfg, device, dataset, rows, left_out=checked.left_out)
    write_json(cfg.out / "parity.json", document)
    return document


def parity_document(cfg: ParityConfig, device: str, dataset, rows: list[dict],
                    interrupted: Interrupted | None = None, left_out: dict | None = None) -> dict:
    """parity.json: the settings, the tolerances, one row per (model, framework), the verdict."""
    document = {**code_info(), "device": device, "steps": cfg.steps, "trajectory_dtype": cfg.dtype,
                "dataset": dataset.name,
                "data_fingerprint": dataset.fingerprint,
                "tolerances": {"logit_atol": LOGIT_ATOL, "logit64_atol": LOGIT64_ATOL,
                               "float32_noise_factor": FLOAT32_NOISE_FACTOR, "loss_rtol": LOSS_RTOL,
                               "weight_rtol": WEIGHT_RTOL, "weight_atol": WEIGHT_ATOL},
                "train": cfg.train.to_dict(), "cnn_models": models.cnn_records(cfg.models),
                "models_left_out": left_out or {},
                "results": rows,
                "ok": interrupted is None
                and all(r.get("ok", r["status"] == "unavailable") for r in rows)
                and any(r["status"] == "ok" for r in rows)}
    if interrupted is not None:
        document["interrupted"] = str(interrupted)
    return document

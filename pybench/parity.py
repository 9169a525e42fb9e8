"""`pybench parity`: prove that every framework computes the same function and the same training.

Each framework, in its own worker, builds each model from the same canonical weights, runs a
forward pass in eval and train mode on the same batch, then `steps` optimizer steps on the same
batches, and exports its parameters. The forward check runs in float32, as every comparison does;
the trajectory runs in float64 by default, because float32 ResNet training is chaotic enough that a
ResNet-20 drifts from its own float64 twin by 1e-2 in ten steps: in float64 any real difference
in a formula stands out by orders of magnitude. Here the arrays are compared with a reference framework
(torch when it ran): equal parameter counts and shapes, logits within `LOGIT_ATOL`, the loss at
every step within `LOSS_RTOL`, and the final weights close. parity.json records every figure.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from pybench import models
from pybench.backends import get_backend
from pybench.datasets import batch_order
from pybench.errors import Interrupted, PybenchError
from pybench.results import code_info, write_json, write_npz
from pybench.runlife import (
    as_interrupted,
    check_gpu,
    check_requested_frameworks,
    default_out_dir,
    make_out_dir,
    reference_framework,
    resolve_device,
)
from pybench.training import (
    TrainConfig,
    check_options,
    initial_weights,
    loss_settings,
    model_input,
    run_learning_rates,
)
from pybench.worker import (
    float64_logits,
    forward_check,
    gpu_settings,
    job_for,
    load_job_dataset,
    run_in_worker,
    train_config,
)

LOGIT_ATOL = 1e-4  # max abs difference of logits, float32 on CPU
# Deep train-mode networks round more than LOGIT_ATOL allows: ResNet-50's float32 train-mode logits
# are 2.3e-4 from its own float64 ones in torch alone (JAX's 2.2e-4, torch against JAX 2.4e-4),
# while the float64 forwards agree to 6e-13. So the float32 bound is the larger of LOGIT_ATOL and
# this many times the reference's own float32 error (its float32 logits against its float64 ones,
# measured in the same worker): two float32 implementations each err by about that much.
FLOAT32_NOISE_FACTOR = 3
LOGIT64_ATOL = 1e-9  # the float64 forward (trajectory dtype): a wrong formula shows, rounding not
LOSS_RTOL = 1e-3  # relative difference of the loss at every step
WEIGHT_RTOL, WEIGHT_ATOL = 1e-3, 1e-4  # final weights: |a - b| <= atol + rtol * |b|


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


def compare_arrays(ref: dict, other: dict) -> dict:
    """The figures of one framework against the reference, and whether each is in tolerance."""
    ref_losses, losses = ref["losses"], other["losses"]
    if len(losses) != len(ref_losses):
        loss_rel = None  # not comparable (JSON has no infinity)
    elif len(ref_losses):
        loss_rel = float(np.max(np.abs(losses - ref_losses)
                                / np.maximum(np.abs(ref_losses), 1e-12)))
    else:
        loss_rel = 0.0
    finals = sorted(k for k in ref.files if k.startswith("final/"))
    weight_diff, weights_close = 0.0, set(finals) == {k for k in other.files
                                                      if k.startswith("final/")}
    for k in finals if weights_close else []:
        a, b = other[k], ref[k]
        if a.shape != b.shape:
            weights_close = False
            break
        weight_diff = max(weight_diff, float(np.max(np.abs(a - b))))
        weights_close &= bool(np.allclose(a, b, rtol=WEIGHT_RTOL, atol=WEIGHT_ATOL))
    eval_diff = float(np.max(np.abs(other["eval_logits"] - ref["eval_logits"])))
    train_diff = float(np.max(np.abs(other["train_logits"] - ref["train_logits"])))
    tolerance, exact = logit_tolerance(ref), {}
    if "train_logits64" in ref.files and "train_logits64" in other.files:
        # The same forward in float64: equal up to summation order, or a formula differs.
        diff64 = max(float(np.max(np.abs(other[f"{mode}_logits64"] - ref[f"{mode}_logits64"])))
                     for mode in ("eval", "train"))
        exact = {"max_abs_logit_diff_float64": diff64}
    return {"max_abs_logit_diff_eval": eval_diff, "max_abs_logit_diff_train": train_diff,
            **exact, "logit_tolerance": tolerance,
            "max_rel_loss_diff": loss_rel, "max_abs_weight_diff": weight_diff,
            "logits_ok": max(eval_diff, train_diff) <= tolerance
            and exact.get("max_abs_logit_diff_float64", 0.0) <= LOGIT64_ATOL,
            "losses_ok": loss_rel is not None and loss_rel <= LOSS_RTOL,
            "weights_ok": weights_close}


def logit_tolerance(ref) -> float:
    """The float32 logits bound: LOGIT_ATOL, or FLOAT32_NOISE_FACTOR times the reference's own
    float32 rounding where that is larger (measured when the trajectory ran in float64)."""
    if "train_logits64" not in ref.files:
        return LOGIT_ATOL
    own = max(float(np.max(np.abs(ref[f"{mode}_logits"] - ref[f"{mode}_logits64"])))
              for mode in ("eval", "train"))
    return max(LOGIT_ATOL, FLOAT32_NOISE_FACTOR * own)


def check_model_parity(model: str, records: dict[str, dict], arrays: dict[str, dict],
                       expected_params: int) -> list[dict]:
    ok_frameworks = [f for f, r in records.items() if r["status"] == "ok"]
    rows = []
    reference = reference_framework(ok_frameworks)
    for framework, record in records.items():
        row = {"model": model, "framework": framework, "status": record["status"],
               "reason": record.get("reason", ""), "reference": reference}
        if record["status"] == "ok":
            ref = records[reference]
            row.update(n_params=record["n_params"],
                       params_ok=record["n_params"] == ref["n_params"] == expected_params,
                       shapes_ok=record["shapes"] == ref["shapes"],
                       losses=arrays[framework]["losses"].tolist(),
                       **compare_arrays(arrays[reference], arrays[framework]))
            row["ok"] = all(row[k] for k in ("params_ok", "shapes_ok", "logits_ok",
                                             "losses_ok", "weights_ok"))
        rows.append(row)
    return rows


def run_parity_job(job: dict) -> dict:
    """Everything parity compares: float32 logits of the canonical model on the first batch, then
    `steps` optimizer steps on the same batches in `job["dtype"]` (float64 by default: see the
    contract), with the losses and the final weights."""
    dtype = np.dtype(job.get("dtype", "float64"))
    if dtype == np.float64:
        os.environ["JAX_ENABLE_X64"] = "1"  # read when JAX starts, which is below
    dataset = load_job_dataset(job)
    cfg = train_config(job)
    backend = get_backend(job["framework"], job["device"])
    arrays, state = forward_check(backend, dataset, cfg, cfg.batch_size)
    exported, exported_buffers = backend.export_weights(state)
    shapes = {k: list(v.shape) for k, v in {**exported, **exported_buffers}.items()}

    params, buffers = initial_weights(cfg, dataset)
    state = backend.init_state(
        model_input(cfg, dataset, {k: v.astype(dtype) for k, v in params.items()},
                    {k: v.astype(dtype) for k, v in buffers.items()}), loss_settings(cfg, dataset))
    if dtype == np.float64:  # the forward in float64 too: exact agreement, and the float32 noise
        arrays.update(float64_logits(backend, dataset, cfg, cfg.batch_size))
    # The float64 trajectory gathers from a float64 table: the float32 table's values, widened.
    data = backend.put_data(dataset.train.images, dataset.train.labels,
                            dataset.pixel_table().astype(dtype))
    # The trajectory follows the run's schedule over its `steps` steps.
    steps_per_epoch = len(dataset.train.labels) // cfg.batch_size
    order = backend.put_order(batch_order(cfg.seed, 0, len(dataset.train.labels)),
                              run_learning_rates(cfg, steps_per_epoch, job["steps"]))
    losses = []
    for step in range(job["steps"]):
        state, loss = backend.train_step(state, data, order, step, cfg.batch_size)
        losses.append(backend.to_float(loss))
    final, final_buffers = backend.export_weights(state)
    arrays["losses"] = np.asarray(losses, np.float64)
    arrays.update({f"final/{k}": v for k, v in {**final, **final_buffers}.items()})
    write_npz(Path(job["arrays_path"]), **arrays)
    return {"device": backend.device, **backend.device_info(), **gpu_settings(job),
            "shapes": shapes,
            "n_params": int(sum(v.size for v in exported.values())), "dtype": dtype.name}


def run_parity(cfg: ParityConfig, echo: bool = True) -> dict:
    from pybench.datasets import load_dataset  # parent loads once: fills the cache, fails early

    device = resolve_device(cfg.device)
    check_gpu(device, cfg.gpu)
    if cfg.out is None:
        cfg = replace(cfg, out=default_out_dir("parity"))
    make_out_dir(cfg.out)  # before any work: a folder that cannot be made fails now, not at the end
    unavailable = check_requested_frameworks(cfg.frameworks)
    dataset = load_dataset(cfg.dataset, progress=False, **(cfg.dataset_options or {}))
    if cfg.steps * cfg.train.batch_size > len(dataset.train.labels):
        raise PybenchError(f"--steps {cfg.steps} x --batch-size {cfg.train.batch_size} needs "
                           f"more than the {len(dataset.train.labels)} training images of "
                           f"{dataset.name}")
    # The trajectory follows the schedule over its steps: one that cannot fit fails here.
    run_learning_rates(cfg.train, len(dataset.train.labels) // cfg.train.batch_size, cfg.steps)
    check_options(cfg.train, cfg.models, dataset, cfg.train.seed)
    rows = []
    for model in cfg.models:
        models.check_model(model)
        records, arrays = {}, {}
        for framework in cfg.frameworks:
            if framework in unavailable:
                records[framework] = {"status": "unavailable", "reason": unavailable[framework]}
                continue
            if echo:
                print(f"== parity {framework} {model}", flush=True)
            path = cfg.out / "arrays" / f"{framework}-{model}.npz"
            job = job_for("parity", framework, model, cfg.dataset, cfg.dataset_options or {},
                          cfg.train, device, steps=cfg.steps, dtype=cfg.dtype,
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
                           parity_document(cfg, device, dataset, rows, interrupted))
                raise interrupted from None
            if records[framework]["status"] == "ok":
                arrays[framework] = np.load(path)
        expected = models.n_params(model, dataset.in_shape, dataset.num_classes)
        rows += check_model_parity(model, records, arrays, expected)
    document = parity_document(cfg, device, dataset, rows)
    write_json(cfg.out / "parity.json", document)
    return document


def parity_document(cfg: ParityConfig, device: str, dataset, rows: list[dict],
                    interrupted: Interrupted | None = None) -> dict:
    """parity.json: the settings, the tolerances, one row per (model, framework), the verdict."""
    document = {**code_info(), "device": device, "steps": cfg.steps, "trajectory_dtype": cfg.dtype,
                "dataset": dataset.name,
                "data_fingerprint": dataset.fingerprint,
                "tolerances": {"logit_atol": LOGIT_ATOL, "logit64_atol": LOGIT64_ATOL,
                               "float32_noise_factor": FLOAT32_NOISE_FACTOR, "loss_rtol": LOSS_RTOL,
                               "weight_rtol": WEIGHT_RTOL, "weight_atol": WEIGHT_ATOL},
                "train": cfg.train.to_dict(), "results": rows,
                "ok": interrupted is None
                and all(r.get("ok", r["status"] == "unavailable") for r in rows)
                and any(r["status"] == "ok" for r in rows)}
    if interrupted is not None:
        document["interrupted"] = str(interrupted)
    return document


def parity_table(document: dict) -> pd.DataFrame:
    cols = ["model", "framework", "status", "reference", "n_params",
            "max_abs_logit_diff_eval", "max_abs_logit_diff_train", "logit_tolerance", "max_rel_loss_diff",
            "max_abs_weight_diff", "ok", "reason"]
    return pd.DataFrame(document["results"]).reindex(columns=cols)

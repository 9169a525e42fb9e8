"""What a worker runs: a training job (`compare`, `sweep`) and a parity job (`parity`).

Each function takes the job dictionary the parent wrote (`pybench.run.worker.job_for`) and
returns the fields of its record; the worker adds the status. Everything here runs inside the
worker process, the only place a framework is imported. The forward check lives here too: both
jobs start from the same canonical weights and the same first batch.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pybench import memory
from pybench.backends import get_backend
from pybench.config import RunConfig, TrainConfig
from pybench.datasets import batch_order, load_dataset
from pybench.datasets.cache import read_cached
from pybench.datasets.core import normalize
from pybench.datasets.unlabelled import load_unlabelled, prediction_frame
from pybench.peak import machine_peak
from pybench.results import atomic_write_bytes, write_npz
from pybench.run.fidelity import REFERENCE_FRAMEWORK
from pybench.training import (
    initial_weights,
    loss_settings,
    model_input,
    run_learning_rates,
    train_and_evaluate,
)

# Images in the forward-parity batch that `compare` checks before training.
PARITY_BATCH = 32


def load_job_dataset(job: dict):
    """The job's dataset: the cache entry the parent loaded (`cache_entry`), opened directly, so
    a worker never lists the source or reads an image file; the source itself only when the
    parent had no entry (`--no-cache`, an unwritable cache) or the entry is gone."""
    if job.get("cache_entry"):
        dataset = read_cached(Path(job["cache_entry"]))
        if dataset is not None:
            return dataset
    run = RunConfig.from_json(job["run"])
    return load_dataset(run.dataset, progress=False, **run.load)


def train_config(job: dict) -> TrainConfig:
    return RunConfig.from_json(job["run"]).train


def gpu_settings(job: dict) -> dict:
    """On CUDA, what this worker ran with (`pybench.run.worker.cuda_env`): the GPU asked for
    and the one it saw, and the TF32 override every framework shares."""
    if job.get("device") != "cuda":
        return {}
    return {"gpu": job.get("gpu", 0),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "tf32_override": os.environ.get("NVIDIA_TF32_OVERRIDE")}


# ---------------------------------------------------------------- the forward check

def forward_batch(dataset, cfg: TrainConfig, n_images: int):
    """The first `n_images` of epoch 0's order, normalised (float32): the forward checks' batch."""
    idx = batch_order(cfg.seed, 0, len(dataset.train.labels))[:n_images]
    # Only these images are normalised, never the whole split (tens of GB at NIH scale).
    return normalize(dataset.train.images[idx], dataset.pixel_table())


def forward_check(backend, dataset, cfg: TrainConfig, n_images: int):
    """(logits, state): eval- and train-mode logits of the initial float32 model on the first
    `n_images` of epoch 0's order, and the state they came from."""
    params, buffers = initial_weights(cfg, dataset)
    state = backend.init_state(model_input(cfg, dataset, params, buffers), loss_settings(cfg, dataset))
    images = forward_batch(dataset, cfg, n_images)
    logits = {"eval_logits": backend.forward(state, images, train=False),
              "train_logits": backend.forward(state, images, train=True)}
    return logits, state


def float64_logits(backend, dataset, cfg: TrainConfig, n_images: int) -> dict:
    """`forward_check`'s logits again from the same weights and images widened to float64 (keys
    eval_logits64, train_logits64): what a framework's own float32 rounding is measured against
    (`pybench.run.fidelity.logit_tolerance`)."""
    params, buffers = initial_weights(cfg, dataset)
    wide = {k: v.astype(np.float64) for k, v in params.items()}
    wide_buffers = {k: v.astype(np.float64) for k, v in buffers.items()}
    state = backend.init_state(model_input(cfg, dataset, wide, wide_buffers), loss_settings(cfg, dataset))
    images = forward_batch(dataset, cfg, n_images).astype(np.float64)
    return {f"{mode}_logits64": backend.forward(state, images, train=mode == "train")
            for mode in ("eval", "train")}


# ---------------------------------------------------------------- training (compare, sweep)

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
    if backend.name == REFERENCE_FRAMEWORK:
        # The reference's own float32 rounding, against float64, sets the check's tolerance
        # for deep models (pybench.run.fidelity.logit_tolerance). Only torch: compare's JAX
        # workers start without float64.
        logits.update(float64_logits(backend, dataset, cfg, PARITY_BATCH))
    write_npz(Path(job["parity_path"]), **logits)
    pruner = None
    if job.get("prune"):
        from pybench.tuning import EpochPruner

        pruner = EpochPruner(job["prune"])
    unlabelled = (load_unlabelled(cfg.predict, dataset.in_shape, **job["run"].get("dataset_options", {}))
                  if cfg.predict else None)
    run, predictions = train_and_evaluate(backend, dataset, cfg, progress=job.get("progress"),
                                          board_folder=job.get("tensorboard_dir"), on_epoch=pruner,
                                          unlabelled=None if unlabelled is None else unlabelled.images)
    if pruner is not None:  # a search's trial: whether its pruner stopped it, and when
        run["pruned_at_epoch"] = pruner.pruned_at
    write_npz(Path(job["predictions_path"]), **predictions)
    write_prediction_files(job, dataset, predictions, unlabelled)
    # After training, so a first measurement never delays or disturbs the timed steps.
    return {**record, **run, **machine_peak(backend, record.get("device_name", ""))}


def write_prediction_files(job: dict, dataset, predictions: dict, unlabelled) -> None:
    """The run's predictions as CSV, the Kaggle submission form: the labelled test split's, with
    the true label (`test_csv_path`), and the unlabelled folder's (`predict_csv_path`)."""
    multilabel = dataset.multilabel
    if job.get("test_csv_path"):
        frame = prediction_frame(dataset.test.image_names("test"), predictions["logits"], dataset.classes,
                                 multilabel, dataset.test.labels)
        atomic_write_bytes(Path(job["test_csv_path"]), frame.to_csv(index=False).encode())
    if unlabelled is not None and job.get("predict_csv_path"):
        frame = prediction_frame(unlabelled.names, predictions["unlabelled_logits"], dataset.classes, multilabel)
        atomic_write_bytes(Path(job["predict_csv_path"]), frame.to_csv(index=False).encode())


# ---------------------------------------------------------------- parity

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

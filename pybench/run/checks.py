"""The checks every command makes before any worker starts, in one place and one order.

A run that cannot succeed fails here, in the parent, in one line, before a worker spends a Julia
start or a compilation on it: the models exist, one device for every framework (and the GPU it
names), which requested frameworks can run, the dataset loads (which also fills the cache the
workers read), every split can do its part (a full batch to train on, a test image), every model
can take the images, the schedule fits the run, a CPU run fits in memory, and the options fit
the data (a weights file, `--trainable`, the loss options). `preflight` runs them all; `compare`, `parity`
and `sweep` call it and keep only what is their own.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pybench import memory, models, pretrained
from pybench.backends import availability, check_framework
from pybench.config import TrainConfig, with_validation
from pybench.errors import PybenchError, UnavailableError
from pybench.machine import machine_has_cuda_gpu, nvidia_gpus
from pybench.run.worker import cuda_env
from pybench.training import check_options, planned_steps, run_learning_rates


def resolve_device(requested: str) -> str:
    """One device for every framework: comparing torch on a GPU with JAX on the CPU is
    meaningless, so "auto" means the GPU when the machine has one, for all of them."""
    if requested == "auto":
        return "cuda" if machine_has_cuda_gpu() else "cpu"
    if requested == "cuda" and not machine_has_cuda_gpu():
        raise PybenchError("--device cuda: no NVIDIA GPU with a driver on this machine "
                           "(nvidia-smi finds none); use --device cpu")
    if requested not in ("cpu", "cuda"):
        raise PybenchError(f"--device {requested!r}: choose auto, cpu or cuda")
    return requested


def check_gpu(device: str, gpu: int) -> None:
    """On CUDA, that `--gpu` names a GPU this process can see (one line if not)."""
    if device != "cuda":
        return
    cuda_env(gpu, os.environ.get("CUDA_VISIBLE_DEVICES"))  # an index the variable holds
    names = nvidia_gpus()[0]
    if names and gpu >= len(names):
        raise PybenchError(f"--gpu {gpu}: this machine has {len(names)} NVIDIA GPU"
                           f"{'s' if len(names) != 1 else ''} (0-{len(names) - 1}: "
                           f"{', '.join(names)})")


def check_requested_frameworks(frameworks) -> dict[str, str]:
    """Unavailable frameworks -> reason. All of them unavailable is an error (nothing to run)."""
    unavailable = {}
    for name in frameworks:
        check_framework(name)
        status = availability(name)
        if not status.ok:
            unavailable[name] = status.reason
    if unavailable and len(unavailable) == len(frameworks):
        raise UnavailableError("; ".join(f"{name} is unavailable: {reason}"
                                         for name, reason in unavailable.items()))
    return unavailable


@dataclass(frozen=True)
class Checked:
    """What the checks found, for the command to run with."""

    device: str | None  # None: the command resolves it elsewhere (a sweep's executor)
    unavailable: dict[str, str]  # framework -> why it cannot run (its runs are recorded so)
    dataset: object  # the loaded Dataset
    dataset_options: dict  # load_dataset's keywords, as every worker gets them
    weights_fit: dict  # per model, what fitting --weights did (empty without a file)
    # The unlabelled folder the runs predict (`--predict`, or the dataset's own unlabelled split
    # folder): {"folder", "images", "from", "changes"}; None: nothing to predict.
    predict: dict | None = None
    # With `fitting_models`: the models kept, and why each other one was left out.
    models: tuple[str, ...] = ()
    left_out: dict[str, str] = field(default_factory=dict)


def largest_batch_for(images: int) -> int:
    """The largest power of two that one split of `images` images fills (at least 1)."""
    return 1 << max(0, images.bit_length() - 1)


def check_splits(data, batch_size: int, steps: int | None = None) -> None:
    """That every split a run uses can do its part: the train split gives at least one full batch
    (or, for `parity`, `steps` of them) and holds two classes or more, the test and validation
    splits at least one image each. A run that trained nothing would otherwise end "ok" with no
    figure at all."""
    n_train = len(data.train.labels)
    needed = batch_size * (steps or 1)
    if n_train < needed:
        what = (f"fewer than one batch of {batch_size}" if steps is None
                else f"fewer than --steps {steps} x --batch-size {batch_size} = {needed}")
        fix = largest_batch_for(n_train // (steps or 1) or 1)
        raise PybenchError(f"{data.source}: the train split has {n_train:,} images, {what}: pass --batch-size {fix} "
                           f"or less, or add images to the train split")
    for name, split in (("test", data.test), ("val", data.val)):
        if split is not None and len(split.labels) == 0:
            raise PybenchError(f"{data.source}: the {name} split has no images: add images to it"
                               + (" or raise --test-fraction" if name == "test" else ""))
    if not data.multilabel:
        present = sorted({int(label) for label in data.train.labels})
        if len(present) < 2:
            only = data.classes[present[0]] if present else "none"
            raise PybenchError(f"{data.source}: the train split holds one class ({only}, {n_train:,} images): a "
                               "classifier needs images of two classes or more in the train split")


def preflight(*, model_names: Sequence[str], frameworks: Sequence[str], dataset: str,
              dataset_options: dict | None, train: TrainConfig, seed: int,
              device: str | None = "auto", gpu: int = 0, steps: int | None = None,
              progress: bool = False, resolve: Callable[[str], str] = resolve_device,
              batch_size: int | None = None, predict_unlabelled: bool = False,
              fitting_models: bool = False) -> Checked:
    """Every check, in this order: models, device and GPU, frameworks, the dataset, its splits
    against the largest batch any run uses (`batch_size`, default the run's), the schedule (over
    `steps` steps when given, as `parity` trains, else the whole run), host memory on the CPU,
    then the options against the data, and the folder the runs predict (`check_predict`). With
    `fitting_models` (parity's default list of every model), a model that cannot take the images
    is left out and said (`Checked.left_out`) instead of stopping the command.
    `device=None` leaves the device to the caller (a sweep resolves it on its executor)."""
    from pybench.datasets import load_dataset

    for model in model_names:
        models.check_model(model)
    if device is not None:
        device = resolve(device)
        check_gpu(device, gpu)
    unavailable = check_requested_frameworks(frameworks)
    # --patience needs a validation split; the workers get these very options.
    options = with_validation(dataset_options or {}, train.patience)
    data = load_dataset(dataset, progress=progress, **options)
    n_train = len(data.train.labels)
    check_splits(data, max(batch_size or 0, train.batch_size), steps)
    left_out = {}
    for model in model_names:  # a model that cannot take the images never reaches a worker
        try:
            models.check_builds(model, data.in_shape, data.num_classes, data.source)
        except PybenchError as error:
            if not fitting_models:
                raise
            left_out[model] = str(error)
    model_names = [model for model in model_names if model not in left_out]
    if steps is not None:
        run_learning_rates(train, n_train // train.batch_size, steps)
    else:
        # A warm-up longer than the run fails here, in one line.
        run_learning_rates(train, *planned_steps(train, n_train))
    if device == "cpu" and steps is None:
        # Each worker checks again, with its device.
        for model in model_names:
            memory.check_host_memory(data, model, train.batch_size, train.optimizer.name,
                                     augment=bool(train.augment))
    if train.weights:  # converted once here, so no worker reads the torch file
        pretrained.prepare(train.weights)
    fitted = check_options(train, model_names, data, seed)
    return Checked(device, unavailable, data, options, fitted, check_predict(train, data, options, predict_unlabelled),
                   tuple(model_names), left_out)


def check_predict(train: TrainConfig, data, options: dict, predict_unlabelled: bool) -> dict | None:
    """The folder every run will predict, decoded here once so that a folder the models cannot
    take fails before any worker starts: `--predict DIR`, else (with `predict_unlabelled`) the
    dataset's own unlabelled split folder (a Kaggle `test/`)."""
    from pybench.datasets.unlabelled import load_unlabelled

    folder, given = train.predict, "--predict"
    if folder is None and predict_unlabelled and data.provenance.unlabelled:
        found = next(iter(data.provenance.unlabelled.values()))
        folder, given = found["path"], f"the dataset's unlabelled {found['folder']}"
    if folder is None:
        return None
    unlabelled = load_unlabelled(folder, data.in_shape, **options)
    return {"folder": unlabelled.folder, "images": len(unlabelled.names), "from": given,
            "changes": unlabelled.changes}

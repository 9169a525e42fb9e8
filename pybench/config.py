"""What one run is, as one object: what it trains with (`TrainConfig`) and on which data (the
dataset and its load options): `RunConfig`. Built from the option table's values
(`pybench.options.train_config`, `pybench.options.load_options`), written to the worker's job file
and to results.json by one `to_json`, read back by `from_json`. The rules between options live
here, on the objects, so the command line, a sweep file and a job file are held to the same ones.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field

from pybench.errors import PybenchError
from pybench.optimizers import OptimizerConfig
from pybench.schedules import Schedule


@dataclass(frozen=True)
class TrainConfig:
    model: str = "lenet5"
    epochs: int = 1
    max_steps: int | None = None  # stop after this many steps in all (across epochs)
    batch_size: int = 32
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    seed: int = 0  # initial weights and sample order
    target_accuracy: float | None = None
    patience: int | None = None  # epochs without a better validation figure before stopping
    select_by: str = "accuracy"  # the validation figure that keeps the best epoch: accuracy or auc
    balance: bool = False  # class-balanced sampling (with replacement) instead of a permutation
    # Evaluation batches of 100: on the CPU a batch of 1000 spills the caches and every
    # framework's evaluation slows down (the figures: docs/results.md, Timing).
    eval_batch_size: int = 100
    schedule: Schedule = field(default_factory=Schedule)  # the learning rate of every step
    augment: tuple[str, ...] = ()  # see pybench.datasets.augment
    # Steps between test evaluations while looking for target_accuracy (None: a tenth of an
    # epoch); evaluation is never inside a timed step.
    eval_every: int | None = None
    # Steps per throughput block (pybench.timing.StepTimer): every other block of this many
    # steps is timed as a whole, with one synchronisation; None: BLOCK_STEPS_ON_CUDA on a GPU,
    # none on the CPU; 0: every step timed alone.
    throughput_block: int | None = None
    # A PyTorch state_dict file (or its .npz) to start from instead of the seeded draw
    # (pybench.pretrained: the head replaced to fit the classes, grey images folded into conv1).
    weights: str | None = None
    # Parameter name prefixes that train (e.g. ("layer4", "fc")); empty: every parameter. The
    # rest is frozen in every framework (pybench.models.frozen_params).
    trainable: tuple[str, ...] = ()
    # Store the penultimate features of this many test images with the predictions, for the
    # report's t-SNE maps (0: none).
    embeddings: int = 0
    # Multi-label tasks: "balanced" weighs each finding's positive targets by its negatives /
    # positives in the train split (pybench.tasks); None: weight 1.
    pos_weight: str | None = None
    # A single-label task's "normal" class: each class's share predicted as it is recorded
    # (pybench.evaluation), the "diagnosed as normal" figure of a screening study.
    normal_class: str | None = None
    # The pixel statistics inputs are normalised with (pybench.datasets.normalization): dataset,
    # imagenet or fixed:MEAN,STD; None: imagenet with `weights`, else dataset.
    normalize: str | None = None
    # A folder of unlabelled images the final model predicts (pybench.datasets.unlabelled).
    predict: str | None = None

    def __post_init__(self) -> None:
        """The rules between options, whoever built the configuration (the command line, a sweep
        file, a job file): one line each."""
        from pybench.datasets.augment import check_augmentations
        from pybench.datasets.normalization import check_normalize

        if self.optimizer.nesterov and (self.optimizer.name != "sgd" or self.optimizer.momentum == 0):
            raise PybenchError("--nesterov needs --optimizer sgd with a momentum above 0")
        if self.target_accuracy is not None and not 0 < self.target_accuracy <= 1:
            raise PybenchError(f"--target-accuracy {self.target_accuracy}: give a fraction between 0 and 1, "
                               "e.g. 0.98")
        check_augmentations(self.augment)
        check_normalize(self.normalize)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, fields: dict) -> TrainConfig:
        """The inverse of `to_dict` (JSON turned the tuples into lists); keys that are not fields
        (a results document's run-wide settings) are left out."""
        known = {f.name for f in dataclasses.fields(cls)}
        fields = {k: v for k, v in fields.items() if k in known}

        def as_tuples(d: dict) -> dict:
            return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}

        fields["optimizer"] = OptimizerConfig(**as_tuples(fields.get("optimizer", {})))
        fields["schedule"] = Schedule(**as_tuples(fields.get("schedule", {})))
        for key in ("augment", "trainable"):
            fields[key] = tuple(fields.get(key, ()))
        return cls(**fields)


# The validation share `--patience` carves when no --val-fraction is given and the source has no
# validation split of its own: early stopping needs a split that is neither trained on nor the test.
PATIENCE_VAL_FRACTION = 0.1


def with_validation(options: dict, patience: int | None) -> dict:
    """load_dataset keywords `options`, with a validation split asked for when `patience` needs
    one and none is (a source with its own validation split keeps it). Every process that loads
    the dataset (the parent, each worker) applies it alike, so they all get the same split,
    made with the split seed: the same for every run seed, and part of the fingerprint."""
    if patience is None or options.get("val_fraction") is not None:
        return options
    return {**options, "val_fraction": PATIENCE_VAL_FRACTION}


@dataclass(frozen=True)
class RunConfig:
    """One run: its training configuration and its data (the dataset spec and load_dataset's
    keywords, `--patience`'s validation split included). `to_json` is what the job file and a
    results document's `config` hold: the dataset, its options, and every training setting."""

    dataset: str
    train: TrainConfig
    load: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "load", with_validation(dict(self.load), self.train.patience))

    def to_json(self) -> dict:
        return {"dataset": self.dataset, "dataset_options": dict(self.load), **self.train.to_dict()}

    @classmethod
    def from_json(cls, fields: dict) -> RunConfig:
        return cls(dataset=fields["dataset"], train=TrainConfig.from_dict(fields),
                   load=dict(fields.get("dataset_options") or {}))

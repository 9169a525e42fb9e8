"""The one training and evaluation loop that drives every backend.

Everything that could make two frameworks differ outside the model itself is decided here, once:
the canonical initial weights (from `pybench.models`), the normalised arrays and the per-epoch
sample order (from `pybench.datasets`), the full batches (the last partial batch of an epoch is
dropped, so every step has the same shape and no framework recompiles), the clock
(`pybench.timing`), evaluation (accuracy computed here in numpy from each backend's logits) and
what is recorded. A backend only runs steps.
"""

from __future__ import annotations

import hashlib
import resource
import sys
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from tqdm import tqdm

from pybench import evaluation, models, pretrained, tasks
from pybench.backends.contract import Backend, ModelInput, OptimizerConfig
from pybench.datasets import Dataset, augmented_train, balanced_order, batch_order
from pybench.datasets.normalization import default_normalize, normalized_as, statistics
from pybench.errors import PybenchError
from pybench.machine import load_snapshot, machine_load
from pybench.results import TrainingRecord
from pybench.schedules import Schedule, learning_rates
from pybench.tensorboard import open_board
from pybench.timing import BLOCK_STEPS_ON_CUDA, StepTimer, SyncClock, step_time_stats


@dataclass(frozen=True)
class TrainConfig:
    model: str = "lenet5"
    epochs: int = 1
    max_steps: int | None = None  # stop after this many steps in all (across epochs)
    batch_size: int = 32
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    seed: int = 0  # initial weights and sample order
    target_accuracy: float | None = None
    patience: int | None = None  # epochs without a better validation accuracy before stopping
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

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, fields: dict) -> TrainConfig:
        """The inverse of `to_dict` (JSON turned the tuples into lists)."""
        fields = dict(fields)
        def as_tuples(d: dict) -> dict:
            return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}

        fields["optimizer"] = OptimizerConfig(**as_tuples(fields.get("optimizer", {})))
        fields["schedule"] = Schedule(**as_tuples(fields.get("schedule", {})))
        fields["augment"] = tuple(fields.get("augment", ()))
        fields["trainable"] = tuple(fields.get("trainable", ()))
        return cls(**fields)


def epoch_order(cfg: TrainConfig, epoch: int, labels: np.ndarray) -> np.ndarray:
    """This epoch's sample order: the dataset layer's, so every framework gets the same one."""
    if cfg.balance:
        return balanced_order(cfg.seed, epoch, labels)
    return batch_order(cfg.seed, epoch, len(labels))


class Diverged(Exception):
    """The training loss became NaN or infinite: the run stops there, keeping its losses."""

    def __init__(self, step: int, value: float, losses: list[float]):
        super().__init__(f"the loss became {value} at step {step}")
        self.step, self.value, self.losses = step, value, losses


def check_finite(backend: Backend, losses: list[float], epoch_losses: list, first_step: int):
    """Raise `Diverged` at the first non-finite loss among this epoch's so far (its 0-based step
    counted over the whole run, `losses` holding the earlier epochs' as floats)."""
    if np.isfinite(backend.to_float(epoch_losses[-1])):
        return
    values = [backend.to_float(v) for v in epoch_losses]
    bad = next(i for i, v in enumerate(values) if not np.isfinite(v))
    raise Diverged(first_step + bad, values[bad], losses + values[:bad])


def planned_steps(cfg: TrainConfig, n_train: int) -> tuple[int, int]:
    """(steps per epoch, steps of the whole run) for a training split of `n_train` images."""
    steps_per_epoch = n_train // cfg.batch_size
    total_steps = cfg.epochs * steps_per_epoch
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    return steps_per_epoch, total_steps


def run_learning_rates(cfg: TrainConfig, steps_per_epoch: int, total_steps: int) -> np.ndarray:
    """The learning rate of every step of the run, from the framework-neutral schedule."""
    return learning_rates(cfg.schedule, cfg.optimizer.lr, total_steps, steps_per_epoch)


def target_eval_every(cfg: TrainConfig, steps_per_epoch: int) -> int | None:
    """Steps between test evaluations while a target accuracy is sought.

    A tenth of an epoch by default: on MNIST at batch 128 that is 46 steps (about 0.4 s of LeNet-5
    training on 2 CPU cores), fine enough to place the time to 99% within 3% of a 3-epoch run,
    while the ten evaluations of 10,000 test images cost about a second per epoch, outside the
    training clock.
    """
    if cfg.target_accuracy is None:
        return None
    return cfg.eval_every or max(1, steps_per_epoch // 10)


def throughput_block(cfg: TrainConfig, device: str) -> int:
    """Steps per throughput block for a run on `device` (0: none)."""
    if cfg.throughput_block is not None:
        return cfg.throughput_block
    return BLOCK_STEPS_ON_CUDA if device == "cuda" else 0


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """The run's score: accuracy, or for a multi-label task the mean per-finding AUC
    (`pybench.tasks.score`); target accuracy, patience and the records all use it."""
    return tasks.score(logits, labels)


def loss_settings(cfg: TrainConfig, dataset: Dataset) -> OptimizerConfig:
    """`cfg.optimizer` with the task's loss settings resolved (`--pos-weight` from the train
    labels); settings that have no meaning for the task are one-line errors."""
    multilabel = dataset.multilabel
    if multilabel and cfg.optimizer.label_smoothing:
        raise PybenchError("--label-smoothing applies to single-label cross-entropy, not to --task multilabel")
    if multilabel and cfg.balance:
        raise PybenchError("--balance samples by class, which --task multilabel does not have; "
                           "use --pos-weight balanced to weigh rare findings")
    return replace(cfg.optimizer, pos_weight=tasks.resolve_pos_weight(cfg.pos_weight, dataset.train.labels))


def split_loss(logits: np.ndarray, labels: np.ndarray, settings: OptimizerConfig) -> float:
    """A split's loss on the training loss's formula (label smoothing, positive weights)."""
    return tasks.loss(logits, labels, settings.label_smoothing, settings.pos_weight)


def array_fingerprint(array: np.ndarray) -> str:
    """sha256 of an array's bytes (first 16 hex digits): equal in two runs means equal pixels."""
    return hashlib.sha256(np.ascontiguousarray(array).view(np.uint8)).hexdigest()[:16]


def peak_rss_bytes() -> int:
    # ru_maxrss is in kilobytes on Linux (bytes on macOS).
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def initial_weights(cfg: TrainConfig, dataset: Dataset):
    """The canonical initial weights every framework starts from: the seeded draw, or
    `cfg.weights` fitted to the task."""
    if cfg.weights:
        return pretrained.fit_weights(pretrained.read_weights(cfg.weights), cfg.model,
                                      dataset.in_shape, dataset.num_classes, cfg.seed,
                                      source=cfg.weights)
    return models.init_weights(cfg.model, dataset.in_shape, dataset.num_classes, cfg.seed)


def check_options(cfg: TrainConfig, model_names, dataset: Dataset, seed: int) -> dict:
    """Fail in one line, in the parent before any worker starts, on a weights file that does not
    fit, an unknown --trainable layer, or a loss option the task has no use for (a model that
    cannot take the images failed before, `models.check_builds`). Returns what fitting the
    weights did, per model (`pretrained.check_fits`)."""
    fitted = pretrained.check_fits(cfg.weights, list(model_names), dataset, seed)
    for model in model_names:
        models.frozen_params(model, dataset.in_shape, dataset.num_classes, cfg.trainable)
    loss_settings(cfg, dataset)
    statistics(cfg.normalize or default_normalize(cfg.weights), dataset)
    evaluation.check_normal_class(cfg.normal_class, dataset.classes,
                                  tasks.is_multilabel(dataset.train.labels))
    return fitted


def model_input(cfg: TrainConfig, dataset: Dataset, params, buffers) -> ModelInput:
    """What a backend builds the model from: these weights, and what `cfg.trainable` freezes."""
    return ModelInput(cfg.model, dataset.in_shape, dataset.num_classes, params, buffers,
                      frozen=models.frozen_params(cfg.model, dataset.in_shape,
                                                  dataset.num_classes, cfg.trainable))


def train_and_evaluate(backend: Backend, dataset: Dataset, cfg: TrainConfig,
                       progress: bool = False, board_folder: str | None = None,
                       on_epoch=None, unlabelled: np.ndarray | None = None) -> tuple[dict, dict]:
    """Train `cfg.model` on `dataset` with `backend`; return (run record, test predictions).

    The run record is a `TrainingRecord` (pybench.results) as a dict: the fields of a `runs`
    entry in results.json that training measures; the predictions are the
    final model's eval-mode test logits and labels, which reports turn into per-class metrics.
    With `board_folder`, every epoch's figures also go to TensorBoard event files there
    (`pybench.tensorboard`). `on_epoch(epoch, val_score)`, called after each epoch's validation
    (1-based epochs), stops the run when it returns True: a search's pruner
    (`pybench.tuning.EpochPruner`). `unlabelled` uint8 images are predicted by the final model
    too (predictions' `unlabelled_logits`), after everything timed.
    """
    began = time.perf_counter()  # the time to result counts from here (set-up included)
    normalize = cfg.normalize or default_normalize(cfg.weights)
    dataset = normalized_as(dataset, normalize)
    params, buffers = initial_weights(cfg, dataset)
    inputs = model_input(cfg, dataset, params, buffers)
    state = backend.init_state(inputs, loss_settings(cfg, dataset))
    train_labels = dataset.train.labels
    # uint8 images and the pixel table: each batch is normalised on the device, in the step.
    table = dataset.pixel_table(np.dtype(inputs.dtype))
    train = None if cfg.augment else backend.put_data(dataset.train.images, train_labels, table)
    test = backend.put_data(dataset.test.images, dataset.test.labels, table)
    val = (backend.put_data(dataset.val.images, dataset.val.labels, table)
           if dataset.val is not None else None)

    steps_per_epoch, total_steps = planned_steps(cfg, len(train_labels))
    if total_steps < 1:  # the pre-run checks refuse this; a run must never end "ok" having trained nothing
        raise PybenchError(f"the train split's {len(train_labels):,} images give no full batch of "
                           f"{cfg.batch_size}: nothing to train (pass a smaller --batch-size)")
    lrs = run_learning_rates(cfg, steps_per_epoch, total_steps)
    eval_every = target_eval_every(cfg, steps_per_epoch)
    # The target is checked on the validation split when there is one: the test split never
    # decides anything a run does.
    target_split, target_labels = (val, dataset.val.labels) if val is not None else (test, dataset.test.labels)
    clock = SyncClock(backend.synchronize)
    timer = StepTimer(clock, throughput_block(cfg, backend.device))

    losses: list[float] = []
    epoch_s: list[float] = []
    epoch_accuracy: list[float] = []
    val_accuracy: list[float] = []
    epoch_loss: dict[str, list[float]] = {"train": [], "test": [], "val": []}
    epoch_train_accuracy: list[float] = []
    backend.train_hits()  # start the count of training predictions here
    settings = loss_settings(cfg, dataset)
    augment_s: list[float] = []
    augment_fingerprints: list[str] = []
    time_to_target = time_to_target_step = None
    eval_s = 0.0  # evaluation wall time (target checks, each epoch's evaluation), outside the steps
    at_target: dict = {}  # evaluation and augmentation seconds spent when the target was reached
    test_logits = None
    best_val, epochs_since_best, kept_epoch, best_weights = -1.0, 0, None, None
    bar = tqdm(total=total_steps, disable=not progress, file=sys.stderr, leave=False,
               desc=f"{backend.name} {cfg.model}", unit="step")
    refresh = max(1, steps_per_epoch // 20)
    done = 0
    load_before = load_snapshot()
    board = open_board(board_folder)
    setup_s = clock.now() - began  # weights and data onto the device
    for epoch in range(cfg.epochs):
        if done >= total_steps:
            break
        if cfg.augment:
            # Outside the timed steps: the same numpy work for every framework, reported beside
            # the step times (augment_s) rather than diluting their differences.
            began = clock.now()
            images = augmented_train(dataset, cfg.augment, cfg.seed, epoch)
            augment_fingerprints.append(array_fingerprint(images))
            train = backend.put_data(images, train_labels)
            augment_s.append(clock.now() - began)
        steps = min(steps_per_epoch, total_steps - done)
        order = backend.put_order(epoch_order(cfg, epoch, train_labels), lrs[done:done + steps], done)
        epoch_losses = []
        epoch_began = timer.total
        shown, check_due, eval_due = 0, False, False
        timer.start()
        for step in range(steps):
            state, loss = backend.train_step(state, train, order, step, cfg.batch_size)
            epoch_losses.append(loss)
            synchronised = timer.step_done(step, last_of_epoch=step + 1 == steps)
            check_due |= (step + 1) % refresh == 0
            # The epoch's end is evaluated below anyway.
            eval_due |= bool(eval_every and time_to_target is None
                             and (done + step + 1) % eval_every == 0 and step + 1 < steps)
            if not synchronised:
                # Inside a throughput block nothing may wait for the device: the bar, the loss
                # check and an evaluation wait for the block's end.
                continue
            if check_due:  # a few bar updates an epoch: microseconds each
                bar.update(step + 1 - shown)
                shown, check_due = step + 1, False
                # A diverged loss stops the run within 1/20 of an epoch. Reading the scalar costs
                # microseconds (the clock's synchronisation already waited for it), 20 times an
                # epoch; it falls in the next step's interval.
                check_finite(backend, losses, epoch_losses, done)
            if eval_due and step + 1 < steps:
                eval_due = False
                checked = clock.now()
                score = accuracy(backend.predict(state, target_split, cfg.eval_batch_size), target_labels)
                eval_s += clock.now() - checked
                if score >= cfg.target_accuracy:
                    time_to_target, time_to_target_step = timer.total, done + step + 1
                    at_target = {"eval_s": eval_s, "data_s": sum(augment_s, 0.0)}
                timer.start()  # the evaluation stays out of the next step's time
        bar.update(steps - shown)
        done += steps
        epoch_s.append(timer.total - epoch_began)
        check_finite(backend, losses, epoch_losses, done - steps)
        losses.extend(backend.to_float(v) for v in epoch_losses)

        evaluated = clock.now()
        test_logits = backend.predict(state, test, cfg.eval_batch_size)
        epoch_accuracy.append(accuracy(test_logits, dataset.test.labels))
        epoch_loss["train"].append(float(np.mean(losses[done - steps:])))
        right, counted = backend.train_hits()
        epoch_train_accuracy.append(right / counted if counted else float("nan"))
        epoch_loss["test"].append(split_loss(test_logits, dataset.test.labels, settings))
        bar.set_postfix(loss=f"{losses[-1]:.4f}", acc=f"{epoch_accuracy[-1]:.4f}")
        if val is not None:
            val_logits = backend.predict(state, val, cfg.eval_batch_size)
            val_accuracy.append(accuracy(val_logits, dataset.val.labels))
            epoch_loss["val"].append(split_loss(val_logits, dataset.val.labels, settings))
        eval_s += clock.now() - evaluated
        target_score = val_accuracy[-1] if val is not None else epoch_accuracy[-1]
        if (time_to_target is None and cfg.target_accuracy is not None
                and target_score >= cfg.target_accuracy):
            time_to_target, time_to_target_step = timer.total, done
            at_target = {"eval_s": eval_s, "data_s": sum(augment_s, 0.0)}
        board.epoch(done - steps, losses[done - steps:], lrs[done - steps:done],
                    {"eval/test_accuracy": epoch_accuracy[-1],
                     "eval/val_accuracy": val_accuracy[-1] if val is not None else None,
                     "eval/test_loss": epoch_loss["test"][-1],
                     "eval/val_loss": epoch_loss["val"][-1] if val is not None else None,
                     "train/epoch_loss": epoch_loss["train"][-1],
                     "train/epoch_accuracy": epoch_train_accuracy[-1],
                     "time/epoch_s": epoch_s[-1]})
        if val is not None:
            # The validation split selects the kept epoch; the test split is recorded every epoch
            # (for curves) but never selects.
            if val_accuracy[-1] > best_val:
                best_val, epochs_since_best, kept_epoch = val_accuracy[-1], 0, epoch + 1
                best_weights = backend.export_weights(state)  # restored before the final evaluation
            else:
                epochs_since_best += 1
            if cfg.patience is not None and epochs_since_best >= cfg.patience:
                break
            if on_epoch is not None and epoch + 1 < cfg.epochs and on_epoch(epoch + 1, val_accuracy[-1]):
                break
    bar.close()
    board.close()
    load = machine_load(load_before, load_snapshot())
    if best_weights is not None and kept_epoch != len(epoch_s):
        # With a validation split the best validation epoch is kept: its weights, not the
        # last, give the test figures.
        state = backend.init_state(model_input(cfg, dataset, *best_weights), loss_settings(cfg, dataset))
        test_logits = backend.predict(state, test, cfg.eval_batch_size)
    elif val is None:
        kept_epoch = len(epoch_s) or None

    device_peak = backend.peak_memory_bytes()
    step_times = timer.step_times
    steady = step_times[1:]
    record = TrainingRecord(
        test_accuracy=(accuracy(test_logits, dataset.test.labels)
                       if test_logits is not None else None),
        test_images=len(dataset.test.labels),
        val_accuracy=val_accuracy[-1] if val_accuracy else None,
        epoch_accuracy=epoch_accuracy,
        epoch_val_accuracy=val_accuracy,
        epoch_train_loss=epoch_loss["train"],
        epoch_train_accuracy=epoch_train_accuracy,
        epoch_test_loss=epoch_loss["test"],
        epoch_val_loss=epoch_loss["val"],
        epoch_s=epoch_s,
        epochs_run=len(epoch_s),
        steps=done,
        step_time_ms=step_time_stats(steady),
        machine_load=load,
        first_step_s=step_times[0] if step_times else None,
        images_per_s=(cfg.batch_size * len(steady) / sum(steady)) if steady else None,
        # Throughput over whole blocks of steps with one synchronisation each (see StepTimer):
        # the host queues work ahead of the device, as real training does.
        block_steps=timer.block,
        block_times_ms=[t * 1e3 for t in timer.block_times],
        block_images_per_s=timer.block_images_per_s(cfg.batch_size),
        time_to_target_s=time_to_target,
        time_to_target_step=time_to_target_step,
        target_eval_every=eval_every,
        time_split_s={"setup_s": setup_s, "compile_s": step_times[0] if step_times else 0.0,
                      "train_s": timer.total - (step_times[0] if step_times else 0.0),
                      "data_s": sum(augment_s, 0.0), "eval_s": eval_s},
        time_to_result=time_to_result(cfg, eval_every, val is not None, setup_s, step_times,
                                      time_to_target, time_to_target_step, at_target),
        kept_epoch=kept_epoch,
        learning_rates=lrs[:done].tolist(),
        augment_s=augment_s,
        augment_fingerprints=augment_fingerprints,
        peak_memory_bytes=device_peak if device_peak is not None else peak_rss_bytes(),
        memory_kind=backend.device_memory_kind if device_peak is not None else "rss",
        # Counted from what the framework holds, not from the description: a backend that built
        # a different model shows up here.
        n_params=int(sum(v.size for v in backend.export_weights(state)[0].values())),
        flops_per_image=models.forward_flops(cfg.model, dataset.in_shape, dataset.num_classes),
        model_fingerprint=models.model_fingerprint(cfg.model),
        init_fingerprint=models.weights_fingerprint(params, buffers),
        data_fingerprint=dataset.fingerprint,
        data_on_device=backend.data_on_device(train),
        step_times_ms=[t * 1e3 for t in step_times],
        losses=losses,
        normalization={"name": normalize, "mean": list(dataset.mean), "std": list(dataset.std)},
        evaluation={},
    ).to_dict()
    if test_logits is None:  # no step was run: evaluate the initial model
        test_logits = backend.predict(state, test, cfg.eval_batch_size)
    # Outside every timed step: the score under its name, per-class rates and the intervals.
    record["evaluation"] = evaluation.evaluate(test_logits, dataset.test.labels, dataset.classes,
                                               cfg.normal_class)
    predictions = {"labels": dataset.test.labels, "logits": test_logits}
    if unlabelled is not None:
        predictions["unlabelled_logits"] = backend.predict(
            state, backend.put_data(unlabelled, np.zeros((len(unlabelled), *dataset.test.labels.shape[1:]), np.int64),
                                    table), cfg.eval_batch_size)
    if cfg.embeddings:  # after the timed run, from the evaluated state
        predictions["embeddings"] = embeddings_of(backend, state, dataset.test, cfg, table)
        predictions["train_embeddings"] = embeddings_of(backend, state, dataset.train, cfg, table)
        predictions["train_labels"] = dataset.train.labels[:len(predictions["train_embeddings"])]
        if not dataset.multilabel:
            predictions["example_index"] = example_index(dataset.test.labels, dataset.num_classes)
            predictions["example_images"] = dataset.test.images[predictions["example_index"]]
    return record, predictions


def time_to_result(cfg: TrainConfig, eval_every: int | None, on_val: bool, setup_s: float,
                   step_times: list[float], time_to_target: float | None, step: int | None,
                   at_target: dict) -> dict | None:
    """The wall-clock time from the start of training to the first check at the target, split
    into set-up, the first (compiling) step, the other steps, augmentation and evaluation;
    `seconds` leaves evaluation out (AlgoPerf's rule), `seconds_with_eval` adds it. None without
    a target; `reached` false (and no seconds) when the run never got there."""
    if cfg.target_accuracy is None:
        return None
    result = {"target": cfg.target_accuracy, "split": "val" if on_val else "test",
              "eval_every": eval_every, "reached": time_to_target is not None, "step": step}
    if time_to_target is None:
        return result
    compile_s = step_times[0] if step_times else 0.0
    seconds = setup_s + time_to_target + at_target["data_s"]
    return {**result, "setup_s": setup_s, "compile_s": compile_s, "train_s": time_to_target - compile_s,
            "data_s": at_target["data_s"], "eval_s": at_target["eval_s"], "seconds": seconds,
            "seconds_with_eval": seconds + at_target["eval_s"]}


def embeddings_of(backend: Backend, state, split, cfg: TrainConfig, table: np.ndarray) -> np.ndarray:
    """The penultimate features of the split's first `cfg.embeddings` images (the same images
    for every framework: the split's order is the dataset's), unaugmented."""
    n = min(cfg.embeddings, len(split.labels))
    subset = backend.put_data(split.images[:n], split.labels[:n], table)
    return backend.embed(state, subset, cfg.eval_batch_size)


EXAMPLES_PER_CLASS = 4  # the report's example grid: a row of test images per class
EXAMPLE_CLASSES = 12  # beyond this many classes the grid is not drawn


def example_index(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """The first EXAMPLES_PER_CLASS test images of each class (the same in every framework)."""
    if num_classes > EXAMPLE_CLASSES:
        return np.zeros(0, np.int64)
    return np.concatenate([np.flatnonzero(labels == k)[:EXAMPLES_PER_CLASS]
                           for k in range(num_classes)]).astype(np.int64)

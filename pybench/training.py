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
from dataclasses import dataclass, field, replace

import numpy as np
from tqdm import tqdm

from pybench import evaluation, models, pretrained, tasks
from pybench.backends.contract import Backend, ModelInput, OptimizerConfig
from pybench.config import TrainConfig
from pybench.datasets import Dataset, augmented_train, balanced_order, batch_order
from pybench.datasets.normalization import default_normalize, normalized_as, statistics
from pybench.errors import PybenchError
from pybench.machine import load_snapshot, machine_load
from pybench.results import TrainingRecord
from pybench.schedules import learning_rates
from pybench.tensorboard import open_board
from pybench.timing import BLOCK_STEPS_ON_CUDA, StepTimer, SyncClock, step_time_stats


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

    A tenth of an epoch by default: fine enough to place the time to the target closely, while
    ten evaluations an epoch stay a small share of it, outside the training clock (what they
    cost on MNIST: docs/statistics.md, Time to result).
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


@dataclass
class Placed:
    """What a run trains on, put on the device once (`place`): the normalised dataset, the
    model's state, the data (the training split is put per epoch when augmented), the plan of
    steps and their learning rates, and the clock."""

    dataset: Dataset
    normalize: str
    params: dict
    buffers: dict
    state: object
    table: np.ndarray
    train: object
    test: object
    val: object
    steps_per_epoch: int
    total_steps: int
    lrs: np.ndarray
    settings: OptimizerConfig
    clock: SyncClock
    timer: StepTimer
    began: float  # when training started: the time to result counts from here, set-up included
    setup_s: float = 0.0


@dataclass
class Curves:
    """What each epoch adds to the record: per step the losses, per epoch the figures."""

    losses: list[float] = field(default_factory=list)
    epoch_s: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    val_auc: list[float] = field(default_factory=list)  # with --select-by auc
    loss: dict[str, list[float]] = field(default_factory=lambda: {"train": [], "test": [], "val": []})
    train_accuracy: list[float] = field(default_factory=list)
    augment_s: list[float] = field(default_factory=list)
    augment_fingerprints: list[str] = field(default_factory=list)
    test_logits: np.ndarray | None = None


@dataclass
class Target:
    """The search for `--target-accuracy`: how often it is checked, and when it was reached
    (the training time and step, and the evaluation and augmentation seconds spent by then)."""

    eval_every: int | None
    eval_s: float = 0.0  # every evaluation's wall time, outside the steps
    time: float | None = None
    step: int | None = None
    spent: dict = field(default_factory=dict)

    def reached(self, training_s: float, step: int, data_s: float) -> None:
        self.time, self.step = training_s, step
        self.spent = {"eval_s": self.eval_s, "data_s": data_s}


@dataclass
class Keeper:
    """The validation split's choice of the epoch whose weights give the test figures, and the
    patience it keeps."""

    best_val: float = -1.0
    since_best: int = 0
    kept_epoch: int | None = None
    best_weights: tuple | None = None


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

    The recipe: put everything on the device; each epoch, train its steps, evaluate, let the
    validation split keep the best epoch and decide whether to stop; then evaluate the kept
    weights on the test split and write the record.
    """
    placed = place(backend, dataset, cfg)
    curves, target, keeper = Curves(), Target(target_eval_every(cfg, placed.steps_per_epoch)), Keeper()
    bar = tqdm(total=placed.total_steps, disable=not progress, file=sys.stderr, leave=False,
               desc=f"{backend.name} {cfg.model}", unit="step")
    load_before = load_snapshot()
    board = open_board(board_folder)
    backend.train_hits()  # start the count of training predictions here
    done = 0
    for epoch in range(cfg.epochs):
        if done >= placed.total_steps:
            break
        steps = min(placed.steps_per_epoch, placed.total_steps - done)
        placed.state = train_epoch(backend, placed, cfg, curves, target, bar, epoch, done, steps)
        done += steps
        evaluate_epoch(backend, placed, cfg, curves, target, done, steps)
        board.epoch(done - steps, curves.losses[done - steps:], placed.lrs[done - steps:done],
                    epoch_figures(curves, placed.val is not None))
        if stop_after(backend, placed, cfg, curves, keeper, epoch, on_epoch):
            break
    bar.close()
    board.close()
    load = machine_load(load_before, load_snapshot())
    state = kept_state(backend, placed, cfg, curves, keeper)
    record = training_record(backend, placed, cfg, curves, target, keeper, done, load, state)
    return record, predictions_of(backend, placed, cfg, state, curves.test_logits, unlabelled)


def place(backend: Backend, dataset: Dataset, cfg: TrainConfig) -> Placed:
    """Everything a run needs on the device, once: the canonical weights, uint8 data with the
    pixel table (each batch normalised on the device, in the step), the steps and their rates."""
    began = time.perf_counter()
    normalize = cfg.normalize or default_normalize(cfg.weights)
    dataset = normalized_as(dataset, normalize)
    params, buffers = initial_weights(cfg, dataset)
    inputs = model_input(cfg, dataset, params, buffers)
    settings = loss_settings(cfg, dataset)
    state = backend.init_state(inputs, settings)
    table = dataset.pixel_table(np.dtype(inputs.dtype))
    train = None if cfg.augment else backend.put_data(dataset.train.images, dataset.train.labels, table)
    test = backend.put_data(dataset.test.images, dataset.test.labels, table)
    val = backend.put_data(dataset.val.images, dataset.val.labels, table) if dataset.val is not None else None
    steps_per_epoch, total_steps = planned_steps(cfg, len(dataset.train.labels))
    if total_steps < 1:  # the pre-run checks refuse this; a run must never end "ok" having trained nothing
        raise PybenchError(f"the train split's {len(dataset.train.labels):,} images give no full batch of "
                           f"{cfg.batch_size}: nothing to train (pass a smaller --batch-size)")
    clock = SyncClock(backend.synchronize)
    placed = Placed(dataset, normalize, params, buffers, state, table, train, test, val, steps_per_epoch,
                    total_steps, run_learning_rates(cfg, steps_per_epoch, total_steps), settings, clock,
                    StepTimer(clock, throughput_block(cfg, backend.device)), began)
    placed.setup_s = clock.now() - began  # weights and data onto the device
    return placed


def train_epoch(backend: Backend, placed: Placed, cfg: TrainConfig, curves: Curves, target: Target, bar,
                epoch: int, done: int, steps: int):
    """One epoch's steps, timed by the placed timer; returns the state. Inside a throughput block
    nothing waits for the device; at each synchronised step the bar moves, the loss is checked a
    few times an epoch, and a due target check evaluates (outside the timed steps)."""
    timer, clock, labels = placed.timer, placed.clock, placed.dataset.train.labels
    if cfg.augment:
        # Outside the timed steps: the same numpy work for every framework, reported beside the
        # step times (augment_s) rather than diluting their differences.
        began = clock.now()
        images = augmented_train(placed.dataset, cfg.augment, cfg.seed, epoch)
        curves.augment_fingerprints.append(array_fingerprint(images))
        placed.train = backend.put_data(images, labels)
        curves.augment_s.append(clock.now() - began)
    order = backend.put_order(epoch_order(cfg, epoch, labels), placed.lrs[done:done + steps], done)
    epoch_losses, state = [], placed.state
    refresh = max(1, placed.steps_per_epoch // 20)
    shown, check_due, eval_due = 0, False, False
    epoch_began = timer.total
    timer.start()
    for step in range(steps):
        state, loss = backend.train_step(state, placed.train, order, step, cfg.batch_size)
        epoch_losses.append(loss)
        synchronised = timer.step_done(step, last_of_epoch=step + 1 == steps)
        check_due |= (step + 1) % refresh == 0
        # The epoch's end is evaluated by evaluate_epoch anyway.
        eval_due |= bool(target.eval_every and target.time is None
                         and (done + step + 1) % target.eval_every == 0 and step + 1 < steps)
        if not synchronised:
            continue
        if check_due:  # a few bar updates an epoch: microseconds each
            bar.update(step + 1 - shown)
            shown, check_due = step + 1, False
            # A diverged loss stops the run within 1/20 of an epoch; reading the scalar costs
            # microseconds (the clock's synchronisation already waited for it).
            check_finite(backend, curves.losses, epoch_losses, done)
        if eval_due:
            eval_due = False
            check_target(backend, placed, cfg, curves, target, state, done + step + 1)
            timer.start()  # the evaluation stays out of the next step's time
    bar.update(steps - shown)
    curves.epoch_s.append(timer.total - epoch_began)
    check_finite(backend, curves.losses, epoch_losses, done)
    curves.losses.extend(backend.to_float(v) for v in epoch_losses)
    return state


def check_target(backend: Backend, placed: Placed, cfg: TrainConfig, curves: Curves, target: Target, state,
                 step: int) -> None:
    """A mid-epoch check for the target accuracy, on the validation split when there is one
    (the test split never decides anything a run does)."""
    split, labels = target_split(placed)
    checked = placed.clock.now()
    score = accuracy(backend.predict(state, split, cfg.eval_batch_size), labels)
    target.eval_s += placed.clock.now() - checked
    if score >= cfg.target_accuracy:
        target.reached(placed.timer.total, step, sum(curves.augment_s, 0.0))


def target_split(placed: Placed):
    if placed.val is not None:
        return placed.val, placed.dataset.val.labels
    return placed.test, placed.dataset.test.labels


def evaluate_epoch(backend: Backend, placed: Placed, cfg: TrainConfig, curves: Curves, target: Target,
                   done: int, steps: int) -> None:
    """The epoch's end: test (and validation) accuracy and loss, the epoch's training loss and
    accuracy, and the target checked on the split that decides."""
    dataset, clock = placed.dataset, placed.clock
    evaluated = clock.now()
    curves.test_logits = backend.predict(placed.state, placed.test, cfg.eval_batch_size)
    curves.test_accuracy.append(accuracy(curves.test_logits, dataset.test.labels))
    curves.loss["train"].append(float(np.mean(curves.losses[done - steps:])))
    right, counted = backend.train_hits()
    curves.train_accuracy.append(right / counted if counted else float("nan"))
    curves.loss["test"].append(split_loss(curves.test_logits, dataset.test.labels, placed.settings))
    if placed.val is not None:
        val_logits = backend.predict(placed.state, placed.val, cfg.eval_batch_size)
        curves.val_accuracy.append(accuracy(val_logits, dataset.val.labels))
        if cfg.select_by == "auc":
            curves.val_auc.append(evaluation.macro_auc(val_logits, dataset.val.labels))
        curves.loss["val"].append(split_loss(val_logits, dataset.val.labels, placed.settings))
    target.eval_s += clock.now() - evaluated
    score = curves.val_accuracy[-1] if placed.val is not None else curves.test_accuracy[-1]
    if target.time is None and cfg.target_accuracy is not None and score >= cfg.target_accuracy:
        target.reached(placed.timer.total, done, sum(curves.augment_s, 0.0))


def epoch_figures(curves: Curves, validated: bool) -> dict:
    """The epoch's figures as TensorBoard names them."""
    return {"eval/test_accuracy": curves.test_accuracy[-1],
            "eval/val_accuracy": curves.val_accuracy[-1] if validated else None,
            "eval/test_loss": curves.loss["test"][-1],
            "eval/val_loss": curves.loss["val"][-1] if validated else None,
            "train/epoch_loss": curves.loss["train"][-1],
            "train/epoch_accuracy": curves.train_accuracy[-1],
            "time/epoch_s": curves.epoch_s[-1]}


def stop_after(backend: Backend, placed: Placed, cfg: TrainConfig, curves: Curves, keeper: Keeper, epoch: int,
               on_epoch) -> bool:
    """The validation split keeps the best epoch's weights (the test split is recorded every
    epoch, for the curves, but never selects); whether to stop now: `--patience` epochs without
    a better validation score, or a search's pruner."""
    if placed.val is None:
        return False
    figure = curves.val_auc[-1] if cfg.select_by == "auc" else curves.val_accuracy[-1]
    if figure > keeper.best_val:  # NaN (an AUC of a split missing a class) never improves
        keeper.best_val, keeper.since_best, keeper.kept_epoch = figure, 0, epoch + 1
        keeper.best_weights = backend.export_weights(placed.state)  # restored before the final evaluation
    else:
        keeper.since_best += 1
    if cfg.patience is not None and keeper.since_best >= cfg.patience:
        return True
    return on_epoch is not None and epoch + 1 < cfg.epochs and bool(on_epoch(epoch + 1, curves.val_accuracy[-1]))


def kept_state(backend: Backend, placed: Placed, cfg: TrainConfig, curves: Curves, keeper: Keeper):
    """The state whose test figures the run records: the best validation epoch's weights, when
    that was not the last epoch (its test logits computed again), else the last."""
    if keeper.best_weights is not None and keeper.kept_epoch != len(curves.epoch_s):
        state = backend.init_state(model_input(cfg, placed.dataset, *keeper.best_weights), placed.settings)
        curves.test_logits = backend.predict(state, placed.test, cfg.eval_batch_size)
        return state
    if placed.val is None:
        keeper.kept_epoch = len(curves.epoch_s) or None
    return placed.state


def training_record(backend: Backend, placed: Placed, cfg: TrainConfig, curves: Curves, target: Target,
                    keeper: Keeper, done: int, load: dict, state) -> dict:
    """The run's `TrainingRecord` as a dict, its `evaluation` of the kept model's test logits
    computed outside every timed step."""
    dataset, timer = placed.dataset, placed.timer
    device_peak = backend.peak_memory_bytes()
    step_times = timer.step_times
    steady = step_times[1:]
    compile_s = step_times[0] if step_times else 0.0
    record = TrainingRecord(
        test_accuracy=accuracy(curves.test_logits, dataset.test.labels) if curves.test_logits is not None else None,
        test_images=len(dataset.test.labels),
        val_accuracy=curves.val_accuracy[-1] if curves.val_accuracy else None,
        epoch_accuracy=curves.test_accuracy, epoch_val_accuracy=curves.val_accuracy, epoch_val_auc=curves.val_auc,
        epoch_train_loss=curves.loss["train"], epoch_train_accuracy=curves.train_accuracy,
        epoch_test_loss=curves.loss["test"], epoch_val_loss=curves.loss["val"],
        epoch_s=curves.epoch_s, epochs_run=len(curves.epoch_s), steps=done,
        step_time_ms=step_time_stats(steady), machine_load=load,
        first_step_s=step_times[0] if step_times else None,
        images_per_s=(cfg.batch_size * len(steady) / sum(steady)) if steady else None,
        # Throughput over whole blocks of steps with one synchronisation each (see StepTimer):
        # the host queues work ahead of the device, as real training does.
        block_steps=timer.block, block_times_ms=[t * 1e3 for t in timer.block_times],
        block_images_per_s=timer.block_images_per_s(cfg.batch_size),
        time_to_target_s=target.time, time_to_target_step=target.step, target_eval_every=target.eval_every,
        time_split_s={"setup_s": placed.setup_s, "compile_s": compile_s, "train_s": timer.total - compile_s,
                      "data_s": sum(curves.augment_s, 0.0), "eval_s": target.eval_s},
        time_to_result=time_to_result(cfg, target.eval_every, placed.val is not None, placed.setup_s, step_times,
                                      target.time, target.step, target.spent),
        kept_epoch=keeper.kept_epoch, learning_rates=placed.lrs[:done].tolist(),
        augment_s=curves.augment_s, augment_fingerprints=curves.augment_fingerprints,
        peak_memory_bytes=device_peak if device_peak is not None else peak_rss_bytes(),
        memory_kind=backend.device_memory_kind if device_peak is not None else "rss",
        # Counted from what the framework holds, not from the description: a backend that built
        # a different model shows up here.
        n_params=int(sum(v.size for v in backend.export_weights(state)[0].values())),
        flops_per_image=models.forward_flops(cfg.model, dataset.in_shape, dataset.num_classes),
        model_fingerprint=models.model_fingerprint(cfg.model),
        init_fingerprint=models.weights_fingerprint(placed.params, placed.buffers),
        data_fingerprint=dataset.fingerprint, data_on_device=backend.data_on_device(placed.train),
        step_times_ms=[t * 1e3 for t in step_times], losses=curves.losses,
        normalization={"name": placed.normalize, "mean": list(dataset.mean), "std": list(dataset.std)},
        evaluation={},
    ).to_dict()
    if curves.test_logits is None:  # no step was run: evaluate the initial model
        curves.test_logits = backend.predict(state, placed.test, cfg.eval_batch_size)
    record["evaluation"] = evaluation.evaluate(curves.test_logits, dataset.test.labels, dataset.classes,
                                               cfg.normal_class)
    return record


def predictions_of(backend: Backend, placed: Placed, cfg: TrainConfig, state, test_logits: np.ndarray,
                   unlabelled: np.ndarray | None) -> dict:
    """The test predictions the report reads; with --embeddings the penultimate features (and an
    example grid's images); with an unlabelled folder its logits. After every timed step."""
    dataset = placed.dataset
    predictions = {"labels": dataset.test.labels, "logits": test_logits}
    if unlabelled is not None:
        labels = np.zeros((len(unlabelled), *dataset.test.labels.shape[1:]), np.int64)
        predictions["unlabelled_logits"] = backend.predict(
            state, backend.put_data(unlabelled, labels, placed.table), cfg.eval_batch_size)
    if cfg.embeddings:
        predictions["embeddings"] = embeddings_of(backend, state, dataset.test, cfg, placed.table)
        predictions["train_embeddings"] = embeddings_of(backend, state, dataset.train, cfg, placed.table)
        predictions["train_labels"] = dataset.train.labels[:len(predictions["train_embeddings"])]
        if not dataset.multilabel:
            predictions["example_index"] = example_index(dataset.test.labels, dataset.num_classes)
            predictions["example_images"] = dataset.test.images[predictions["example_index"]]
    return predictions


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

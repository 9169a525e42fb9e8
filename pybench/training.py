"""The one training and evaluation loop that drives every backend.

Everything that could make two frameworks differ outside the model itself is decided here, once:
the canonical initial weights (from `pybench.models`), the normalised arrays and the per-epoch
sample order (from `pybench.datasets`), the full batches (the last partial batch of an epoch is
dropped, so every step has the same shape and no framework recompiles), the clock
(`pybench.timing`), evaluation (accuracy computed here in numpy from each backend's logits) and
what is recorded. A backend only runs steps.
"""

from __future__ import annotations

import resource
import sys
from dataclasses import asdict, dataclass, field

import numpy as np
from tqdm import tqdm

from pybench import models
from pybench.backends.contract import Backend, ModelInput, OptimizerConfig
from pybench.datasets import Dataset, balanced_order, batch_order
from pybench.timing import SyncClock, step_time_stats


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
    eval_batch_size: int = 1000

    def to_dict(self) -> dict:
        return asdict(self)


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


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(logits, axis=1) == labels))


def peak_rss_bytes() -> int:
    # ru_maxrss is in kilobytes on Linux (bytes on macOS).
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def initial_weights(cfg: TrainConfig, dataset: Dataset):
    return models.init_weights(cfg.model, dataset.in_shape, dataset.num_classes, cfg.seed)


def train_and_evaluate(backend: Backend, dataset: Dataset, cfg: TrainConfig,
                       progress: bool = False) -> tuple[dict, dict]:
    """Train `cfg.model` on `dataset` with `backend`; return (run record, test predictions).

    The run record holds the fields of a `runs` entry in results.json; the predictions are the
    final model's eval-mode test logits and labels, which reports turn into per-class metrics.
    """
    params, buffers = initial_weights(cfg, dataset)
    model_input = ModelInput(cfg.model, dataset.in_shape, dataset.num_classes, params, buffers)
    state = backend.init_state(model_input, cfg.optimizer)
    train_labels = dataset.train.labels
    train = backend.put_data(dataset.normalized("train"), train_labels)
    test = backend.put_data(dataset.normalized("test"), dataset.test.labels)
    val = (backend.put_data(dataset.normalized("val"), dataset.val.labels)
           if dataset.val is not None else None)

    steps_per_epoch = len(train_labels) // cfg.batch_size
    total_steps = cfg.epochs * steps_per_epoch
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    clock = SyncClock(backend.synchronize)

    step_times: list[float] = []
    losses: list[float] = []
    epoch_s: list[float] = []
    epoch_accuracy: list[float] = []
    val_accuracy: list[float] = []
    trained_s = 0.0
    time_to_target = None
    test_logits = None
    best_val, epochs_since_best = -1.0, 0
    bar = tqdm(total=total_steps, disable=not progress, file=sys.stderr, leave=False,
               desc=f"{backend.name} {cfg.model}", unit="step")
    refresh = max(1, steps_per_epoch // 20)
    done = 0
    for epoch in range(cfg.epochs):
        if done >= total_steps:
            break
        order = backend.put_order(epoch_order(cfg, epoch, train_labels))
        steps = min(steps_per_epoch, total_steps - done)
        epoch_losses = []
        start = last = clock.now()
        for step in range(steps):
            state, loss = backend.train_step(state, train, order, step, cfg.batch_size)
            now = clock.now()
            step_times.append(now - last)
            epoch_losses.append(loss)
            last = now
            if (step + 1) % refresh == 0:  # a few bar updates an epoch: microseconds each
                bar.update(refresh)
                # A diverged loss stops the run within 1/20 of an epoch. Reading the scalar costs
                # microseconds (the clock's synchronisation already waited for it), 20 times an
                # epoch; it falls in the next step's interval.
                check_finite(backend, losses, epoch_losses, done)
        bar.update(steps % refresh)
        done += steps
        epoch_s.append(last - start)
        trained_s += last - start
        check_finite(backend, losses, epoch_losses, done - steps)
        losses.extend(backend.to_float(v) for v in epoch_losses)

        test_logits = backend.predict(state, test, cfg.eval_batch_size)
        epoch_accuracy.append(accuracy(test_logits, dataset.test.labels))
        bar.set_postfix(loss=f"{losses[-1]:.4f}", acc=f"{epoch_accuracy[-1]:.4f}")
        if (time_to_target is None and cfg.target_accuracy is not None
                and epoch_accuracy[-1] >= cfg.target_accuracy):
            time_to_target = trained_s
        if val is not None:
            val_accuracy.append(accuracy(backend.predict(state, val, cfg.eval_batch_size),
                                         dataset.val.labels))
            if val_accuracy[-1] > best_val:
                best_val, epochs_since_best = val_accuracy[-1], 0
            else:
                epochs_since_best += 1
            if cfg.patience is not None and epochs_since_best >= cfg.patience:
                break
    bar.close()

    device_peak = backend.peak_memory_bytes()
    steady = step_times[1:]
    record = {
        "test_accuracy": epoch_accuracy[-1] if epoch_accuracy else None,
        "val_accuracy": val_accuracy[-1] if val_accuracy else None,
        "epoch_accuracy": epoch_accuracy,
        "epoch_val_accuracy": val_accuracy,
        "epoch_s": epoch_s,
        "epochs_run": len(epoch_s),
        "steps": len(step_times),
        "step_time_ms": step_time_stats(steady),
        "first_step_s": step_times[0] if step_times else None,
        "images_per_s": (cfg.batch_size * len(steady) / sum(steady)) if steady else None,
        "time_to_target_s": time_to_target,
        "peak_memory_bytes": device_peak if device_peak is not None else peak_rss_bytes(),
        "memory_kind": "device" if device_peak is not None else "rss",
        # Counted from what the framework holds, not from the description: a backend that built
        # a different model shows up here.
        "n_params": int(sum(v.size for v in backend.export_weights(state)[0].values())),
        "flops_per_image": models.forward_flops(cfg.model, dataset.in_shape,
                                                dataset.num_classes),
        "init_fingerprint": models.weights_fingerprint(params, buffers),
        "data_fingerprint": dataset.fingerprint,
        "data_on_device": backend.data_on_device(train),
        "step_times_ms": [t * 1e3 for t in step_times],
        "losses": losses,
    }
    if test_logits is None:  # no step was run: evaluate the initial model
        test_logits = backend.predict(state, test, cfg.eval_batch_size)
    predictions = {"labels": dataset.test.labels, "logits": test_logits}
    return record, predictions

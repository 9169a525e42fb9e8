"""TensorBoard event files of training runs (`compare --tensorboard DIR`).

Each run writes to a folder of its own, `DIR/<model>/<framework>-seed<S>` (and `-repeat<R>` with
`--repeats`), so one `tensorboard --logdir DIR` overlays the frameworks of a model. The worker
writes at the end of every epoch, outside the timed steps, from the same lists the run's record in
results.json holds:

- `train/loss` and `train/learning_rate`: every optimizer step (x: the step, from 1);
- `eval/test_accuracy`, `eval/val_accuracy` (when there is a validation split) and
  `time/epoch_s` (the epoch's timed training seconds): once per epoch (x: the step it ended at).

tensorboardX writes the files: no TensorFlow, and no torch in the JAX and Knet workers.
"""

from __future__ import annotations

from pathlib import Path


def run_folder(root: Path, model: str, framework: str, seed: int, repeat: int | None = None) -> Path:
    """Where one run's event files go."""
    name = f"{framework}-seed{seed}" + (f"-repeat{repeat}" if repeat is not None else "")
    return Path(root) / model / name


class Board:
    """One run's event files, appended to epoch by epoch."""

    def __init__(self, folder: str | Path):
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(logdir=str(folder))

    def epoch(self, first_step: int, losses, lrs, figures: dict[str, float | None]) -> None:
        """The steps first_step+1.. (their losses and learning rates), then the epoch's
        `figures` at the step it ended on; flushed, so TensorBoard shows them now."""
        step = first_step
        for step, (loss, lr) in enumerate(zip(losses, lrs), start=first_step + 1):
            self.writer.add_scalar("train/loss", float(loss), step)
            self.writer.add_scalar("train/learning_rate", float(lr), step)
        for name, value in figures.items():
            if value is not None:
                self.writer.add_scalar(name, float(value), step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class NoBoard:
    """What training writes to without --tensorboard."""

    def epoch(self, first_step: int, losses, lrs, figures: dict) -> None:
        pass

    def close(self) -> None:
        pass


def open_board(folder: str | Path | None) -> Board | NoBoard:
    return Board(folder) if folder else NoBoard()

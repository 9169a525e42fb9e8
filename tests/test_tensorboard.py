"""`compare --tensorboard DIR`: one run folder per framework and seed, holding the very figures
results.json holds, written epoch by epoch (read back here from the event files themselves)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest


def read_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of a run folder's event files: TFRecord framing (length, its CRC, the record,
    its CRC) around `Event` protocol buffers, read with tensorboardX's own protobuf classes."""
    from tensorboardX.proto import event_pb2

    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data, at = path.read_bytes(), 0
        while at < len(data):
            (length,) = struct.unpack_from("<Q", data, at)
            event = event_pb2.Event.FromString(data[at + 12:at + 12 + length])
            at += 12 + length + 4
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


@pytest.mark.slow
def test_every_run_writes_the_figures_of_its_record(run_cli, tmp_path):
    board, out = tmp_path / "board", tmp_path / "run"
    result = run_cli("compare", "digits", "--frameworks", "torch,jax", "--epochs", "2",
                     "--seeds", "0,1", "--patience", "5", "--tensorboard", board, "--out", out,
                     "--no-report")
    assert result.returncode == 0, result.stderr[-3000:]
    document = json.loads((out / "results.json").read_text())
    assert document["config"]["tensorboard"] == str(board)
    folders = sorted(p.relative_to(board).as_posix() for p in board.glob("*/*"))
    assert folders == ["lenet5/jax-seed0", "lenet5/jax-seed1", "lenet5/torch-seed0",
                       "lenet5/torch-seed1"]
    for run in document["runs"]:
        scalars = read_scalars(board / "lenet5" / f"{run['framework']}-seed{run['seed']}")
        steps = list(range(1, run["steps"] + 1))
        assert [s for s, _ in scalars["train/loss"]] == steps
        # float32 in the event files: the record's values to float32 rounding.
        np.testing.assert_allclose([v for _, v in scalars["train/loss"]], run["losses"], rtol=1e-6)
        np.testing.assert_allclose([v for _, v in scalars["train/learning_rate"]],
                                   run["learning_rates"], rtol=1e-6)
        ends = np.cumsum([run["steps"] // 2] * 2).tolist()
        assert [s for s, _ in scalars["eval/test_accuracy"]] == ends
        np.testing.assert_allclose([v for _, v in scalars["eval/test_accuracy"]],
                                   run["epoch_accuracy"], rtol=1e-6)
        np.testing.assert_allclose([v for _, v in scalars["eval/val_accuracy"]],
                                   run["epoch_val_accuracy"], rtol=1e-6)
        np.testing.assert_allclose([v for _, v in scalars["time/epoch_s"]], run["epoch_s"], rtol=1e-6)
        # Train against test per epoch, on the training loss's formula.
        for tag, key in (("train/epoch_loss", "epoch_train_loss"), ("eval/test_loss", "epoch_test_loss"),
                         ("eval/val_loss", "epoch_val_loss"), ("train/epoch_accuracy", "epoch_train_accuracy")):
            assert [s for s, _ in scalars[tag]] == ends
            np.testing.assert_allclose([v for _, v in scalars[tag]], run[key], rtol=1e-6)
        half = run["steps"] // 2
        assert run["epoch_train_loss"][0] == pytest.approx(np.mean(run["losses"][:half]))

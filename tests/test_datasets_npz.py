"""MedMNIST .npz files: the shared PneumoniaMNIST (kept val split, class imbalance, balanced
order) and generated files in the other layouts."""

from __future__ import annotations

import numpy as np
import pytest

from pybench.datasets import balanced_order, load_dataset
from pybench.errors import PybenchError

pytestmark = pytest.mark.usefixtures("isolated_cache")


@pytest.fixture
def pneumonia(data_dir):
    return load_dataset(str(data_dir / "pneumoniamnist" / "pneumoniamnist.npz"), cache=False)


def test_pneumoniamnist_splits(pneumonia):
    assert pneumonia.train.images.shape == (3882, 1, 28, 28) and pneumonia.val.images.shape == (524, 1, 28, 28)
    assert pneumonia.test.images.shape == (624, 1, 28, 28) and pneumonia.test.labels.dtype == np.int64
    assert np.bincount(pneumonia.train.labels).tolist() == [388, 3494]
    assert pneumonia.classes == ["0", "1"] and pneumonia.name == "pneumoniamnist"
    assert pneumonia.normalized("val").dtype == np.float32


def test_balanced_order_on_pneumoniamnist(pneumonia):
    labels = pneumonia.train.labels
    order = balanced_order(0, 0, labels)
    assert len(order) == len(labels) and order.dtype == np.int64
    assert 0.45 < np.mean(labels[order] == 0) < 0.55  # 10% of the data, half of the draws
    assert not np.array_equal(order, balanced_order(0, 1, labels))


def test_rgb_npz_without_test_split_is_split_and_resized(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "colour.npz"
    np.savez(path, train_images=rng.integers(0, 256, (40, 10, 10, 3), dtype=np.uint8),
             train_labels=np.arange(40) % 4, val_images=rng.integers(0, 256, (8, 10, 10, 3), dtype=np.uint8),
             val_labels=(np.arange(8) % 4).reshape(8, 1))
    ds = load_dataset(str(path), test_fraction=0.25, cache=False)
    assert ds.in_shape == (3, 10, 10) and len(ds.train) == 30 and len(ds.test) == 10 and len(ds.val) == 8
    assert ds.classes == ["0", "1", "2", "3"]
    small = load_dataset(str(path), test_fraction=0.25, image_size=6, grayscale=True, cache=False)
    assert small.in_shape == (1, 6, 6) and small.val.images.shape == (8, 1, 6, 6)


@pytest.mark.parametrize("arrays, message", [
    ({"x": np.zeros(3)}, "no train_images"),
    ({"train_images": np.zeros((4, 5, 5), np.float32), "train_labels": np.zeros(4)}, "must be uint8"),
    ({"train_images": np.zeros((4, 5, 5), np.uint8), "train_labels": np.zeros((4, 2))}, "single-label"),
    ({"train_images": np.zeros((4, 5, 5), np.uint8)}, "no train_labels"),
    ({"train_images": np.zeros((4, 5, 5), np.uint8), "train_labels": -np.ones(4, np.int64)}, "0-based"),
])
def test_bad_npz_is_named(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(PybenchError, match=message) as info:
        load_dataset(str(path), cache=False)
    assert "bad.npz" in str(info.value)


def test_not_an_npz(tmp_path):
    path = tmp_path / "fake.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(PybenchError, match="fake.npz: not a readable .npz"):
        load_dataset(str(path), cache=False)

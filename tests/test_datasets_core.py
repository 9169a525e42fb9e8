"""The dataset record and its derived facts: digits, fingerprints, normalisation, the cache,
batch order, and the CLI helpers."""

from __future__ import annotations

import numpy as np
import pytest

import pybench.datasets.digits as digits_module
from pybench.datasets import (
    DATASETS,
    Split,
    balanced_order,
    batch_order,
    data_root,
    describe_dataset,
    load_dataset,
)
from pybench.datasets.core import build_dataset, channel_stats
from pybench.errors import PybenchError

pytestmark = pytest.mark.usefixtures("isolated_cache")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", cache=False)


def test_digits_shapes_and_stratified_split(digits):
    assert digits.train.images.shape == (1437, 1, 28, 28) and digits.test.images.shape == (360, 1, 28, 28)
    assert digits.train.images.dtype == np.uint8 and digits.test.labels.dtype == np.int64
    assert digits.classes == [str(d) for d in range(10)]
    assert digits.train.images.max() == 255 and digits.train.images.min() == 0
    test_share = np.bincount(digits.test.labels) / (np.bincount(digits.test.labels) + np.bincount(digits.train.labels))
    assert np.all(np.abs(test_share - 0.2) < 0.02)


def test_digits_split_depends_on_seed_and_fraction(digits):
    again = load_dataset("digits", cache=False)
    assert again.fingerprint == digits.fingerprint
    assert load_dataset("digits", seed=1, cache=False).fingerprint != digits.fingerprint
    assert len(load_dataset("digits", test_fraction=0.5, cache=False).test) == 899


def test_digits_image_size(digits):
    assert load_dataset("digits", image_size=32, cache=False).in_shape == (1, 32, 32)


def split_of(images: np.ndarray) -> Split:
    return Split(images, np.arange(len(images)) % 2)


def test_fingerprint_changes_with_one_pixel_and_class_names():
    images = np.random.default_rng(0).integers(0, 256, (6, 1, 4, 4), dtype=np.uint8)
    base = build_dataset("t", "t", ["a", "b"], split_of(images), split_of(images))
    same = build_dataset("t", "t", ["a", "b"], split_of(images.copy()), split_of(images.copy()))
    changed = images.copy()
    changed[3, 0, 2, 1] ^= 1
    assert same.fingerprint == base.fingerprint
    assert build_dataset("t", "t", ["a", "b"], split_of(changed), split_of(images)).fingerprint != base.fingerprint
    assert build_dataset("t", "t", ["a", "c"], split_of(images), split_of(images)).fingerprint != base.fingerprint


def test_channel_stats_match_float64_numpy():
    images = np.random.default_rng(1).integers(0, 256, (5000, 3, 5, 7), dtype=np.uint8)
    mean, std = channel_stats(images)
    scaled = images.astype(np.float64) / 255
    np.testing.assert_allclose(mean, scaled.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(std, scaled.std(axis=(0, 2, 3)), rtol=1e-9)


def test_normalized_train_has_zero_mean_unit_std(digits):
    normed = digits.normalized("train")
    assert normed.dtype == np.float32 and normed.flags.c_contiguous and normed.shape == digits.train.images.shape
    assert abs(float(normed.mean(dtype=np.float64))) < 1e-5
    assert float(normed.std(dtype=np.float64)) == pytest.approx(1.0, abs=1e-5)
    assert digits.normalized("train") is normed  # computed once
    expected = (digits.test.images.astype(np.float32) / np.float32(255) - np.float32(digits.mean[0])) / np.float32(
        digits.std[0])
    assert np.array_equal(digits.normalized("test"), expected)
    with pytest.raises(PybenchError, match="no split 'val'"):
        digits.normalized("val")


def test_cache_hit_does_not_decode(isolated_cache, monkeypatch):
    first = load_dataset("digits")
    assert len([p for p in isolated_cache.glob("digits-*") if p.is_dir()]) == 1  # one entry folder

    def must_not_decode(*args, **kwargs):
        raise AssertionError("decoded although the cache holds this dataset")

    monkeypatch.setattr(digits_module, "load_digits_dataset", must_not_decode)
    cached = load_dataset("digits")
    assert cached.fingerprint == first.fingerprint and cached.mean == first.mean and cached.std == first.std
    np.testing.assert_array_equal(cached.test.images, first.test.images)
    with pytest.raises(AssertionError, match="decoded although"):
        load_dataset("digits", cache=False)
    with pytest.raises(AssertionError, match="decoded although"):
        load_dataset("digits", seed=3)  # another option: another cache entry


def test_damaged_cache_file_is_ignored(isolated_cache):
    first = load_dataset("digits")
    (cached,) = isolated_cache.glob("digits-*")
    images = cached / "train_images.npy"
    truncated = images.read_bytes()[:1000]
    images.unlink()  # a new file: `first` keeps its mapping of the old one
    images.write_bytes(truncated)
    assert load_dataset("digits").fingerprint == first.fingerprint


def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("PYBENCH_DATA_DIR", str(tmp_path / "env"))
    assert data_root(tmp_path / "arg") == tmp_path / "arg"
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("PYBENCH_DATA_DIR")
    assert str(data_root()).endswith(".cache/pybench")


def test_batch_order_is_a_seeded_permutation():
    order = batch_order(3, 1, 1000)
    assert order.dtype == np.int64 and sorted(order.tolist()) == list(range(1000))
    np.testing.assert_array_equal(order, np.random.default_rng([3, 1]).permutation(1000))
    np.testing.assert_array_equal(order, batch_order(3, 1, 1000))
    assert not np.array_equal(order, batch_order(3, 2, 1000))


def test_balanced_order_on_synthetic_labels():
    labels = np.array([0] * 90 + [1] * 10 + [2] * 900)
    order = balanced_order(0, 0, labels)
    assert order.dtype == np.int64 and len(order) == len(labels)
    np.testing.assert_array_equal(order, balanced_order(0, 0, labels))
    shares = np.bincount(labels[order], minlength=3) / len(order)
    assert np.all(np.abs(shares - 1 / 3) < 0.05)
    assert len(balanced_order(0, 0, np.array([], dtype=np.int64))) == 0


def test_bad_options_are_pybench_errors():
    for kwargs, message in [({"image_size": 0}, "--image-size"), ({"image_size": "28"}, "--image-size"),
                            ({"test_fraction": 1.0}, "--test-fraction"), ({"test_fraction": 0}, "--test-fraction")]:
        with pytest.raises(PybenchError, match=message):
            load_dataset("digits", cache=False, **kwargs)
    with pytest.raises(PybenchError, match="cannot make a stratified split"):
        load_dataset("digits", test_fraction=0.001, cache=False)


def test_the_dataset_options_round_trip_from_the_command_line_to_load_datasets_keywords():
    from pybench.cli import parse_arguments
    from pybench.options import load_options

    def options(*args: str) -> dict:
        return load_options(vars(parse_arguments(["datasets", "info", "digits", *args])), "datasets info")

    given = options("--image-size", "32", "--grayscale", "--test-fraction", "0.3", "--split-seed", "4",
                    "--manifest", "m.csv", "--image-col", "img", "--label-col", "lab",
                    "--binary-negative", "No Finding",
                    "--group-col", "Patient ID", "--workers", "3", "--no-cache", "--data-dir", "/d", "--val-fraction",
                    "0.1", "--layout", "splits", "--split", "random", "--skip-unreadable", "--no-checksum",
                    "--resize", "pad")
    assert given == {"data_dir": "/d", "image_size": 32, "grayscale": True, "test_fraction": 0.3, "seed": 4,
                     "manifest": "m.csv", "image_col": "img", "label_col": "lab", "binary_negative": "No Finding",
                     "group_col": "Patient ID", "workers": 3, "cache": False, "multilabel": False, "val_fraction": 0.1,
                     "layout": "splits", "split": "random", "skip_unreadable": True, "checksum": False, "resize": "pad",
                     "hash_files": False}
    assert options("--hash-files")["hash_files"] is True
    assert options("--task", "multilabel")["multilabel"] is True
    defaults = options()
    assert defaults["test_fraction"] == 0.2 and defaults["seed"] == 0 and defaults["cache"] is True
    assert defaults["group_col"] is None and defaults["workers"] is None and defaults["checksum"] is True
    # Every keyword is one load_dataset takes.
    load_dataset("digits", progress=False, **{**defaults, "cache": False})


def test_describe_and_registry(digits):
    text = describe_dataset(digits)
    for fragment in ("name: digits", "train: images (1437, 1, 28, 28) uint8", "labels (360,) int64",
                     f"fingerprint: {digits.fingerprint}", "0: 142", "mean 0.3056"):
        assert fragment in text, fragment
    assert {"mnist", "digits"} <= set(DATASETS) and all("\n" not in v for v in DATASETS.values())


def test_cache_is_never_written_into_the_data_folder(data_dir, tmp_path, monkeypatch):
    """Data folders may be shared (and root can write into read-only ones): the cache goes to
    $PYBENCH_CACHE_DIR or the user's own ~/.cache/pybench/cache."""
    from pybench.datasets import load_dataset

    monkeypatch.delenv("PYBENCH_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    before = sorted(p.name for p in data_dir.iterdir())
    load_dataset(str(data_dir / "pneumoniamnist" / "pneumoniamnist.npz"), data_dir=data_dir,
                 progress=False, checksum=False)
    assert sorted(p.name for p in data_dir.iterdir()) == before
    entries = list((tmp_path / ".cache" / "pybench" / "cache").glob("pneumoniamnist-*"))
    assert entries and all((entry / "meta.json").is_file() for entry in entries)

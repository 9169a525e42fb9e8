"""MedMNIST-style .npz files: `train_images`, `val_images`, `test_images` and their `*_labels`.

Images are (N, H, W) or (N, H, W, C) uint8, labels (N, 1) or (N,). The val split is kept as
`val`; a file without a test split gets a seeded stratified split of its train images. The file
holds no class names, so classes are "0".."K-1" with K = the largest label + 1.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from pybench.datasets.core import Dataset, LoadOptions, Source, Split, build_dataset, stratified_split
from pybench.datasets.images import transform_images
from pybench.errors import PybenchError

MAX_CLASSES = 10_000


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array in the file (allow_pickle=False: an .npz must never run code)."""
    if not zipfile.is_zipfile(path):
        # np.load would try the bytes as a pickle and say so, which tells a user nothing.
        raise PybenchError(f"{path}: not a readable .npz file (not a zip archive of .npy arrays)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise PybenchError(f"{path}: not a readable .npz file ({error})") from None


def images_nchw(images: np.ndarray, key: str, path: Path) -> np.ndarray:
    if images.dtype != np.uint8:
        raise PybenchError(f"{path}: {key} must be uint8, got {images.dtype}")
    if images.ndim == 3:
        return images[:, None, :, :]
    if images.ndim == 4 and images.shape[3] in (1, 3):
        return images.transpose(0, 3, 1, 2)
    raise PybenchError(f"{path}: {key} must be (N, H, W) or (N, H, W, C) with C 1 or 3, got {images.shape}")


def labels_1d(labels: np.ndarray, key: str, path: Path, count: int) -> np.ndarray:
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or len(labels) != count:
        raise PybenchError(f"{path}: {key} must be ({count},) or ({count}, 1) single-label, got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise PybenchError(f"{path}: {key} must hold integers, got {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= MAX_CLASSES):
        raise PybenchError(f"{path}: {key} has label {int(labels.min() if labels.min() < 0 else labels.max())}: "
                           f"labels must be 0-based class indices")
    return labels.astype(np.int64)


def read_split(arrays: dict[str, np.ndarray], split_name: str, path: Path, options: LoadOptions) -> Split | None:
    images_key, labels_key = f"{split_name}_images", f"{split_name}_labels"
    if images_key not in arrays:
        return None
    if labels_key not in arrays:
        raise PybenchError(f"{path}: has {images_key} but no {labels_key}; keys present: {', '.join(arrays)}")
    images = images_nchw(arrays[images_key], images_key, path)
    labels = labels_1d(arrays[labels_key], labels_key, path, len(images))
    if len(images) == 0:
        raise PybenchError(f"{path}: {images_key} is empty")
    return Split(transform_images(np.ascontiguousarray(images), options.image_size, options.grayscale), labels)


def load_npz(path: Path, options: LoadOptions) -> Dataset:
    arrays = read_npz(path)
    splits = {name: read_split(arrays, name, path, options) for name in ("train", "val", "test")}
    train, val, test = splits["train"], splits["val"], splits["test"]
    if train is None:
        raise PybenchError(f"{path}: no train_images (MedMNIST layout expected); keys present: {', '.join(arrays)}")
    if test is None:
        train, test = stratified_split(train.images, train.labels, options.test_fraction, options.seed, str(path))
    present = [split for split in (train, val, test) if split is not None]
    classes = [str(i) for i in range(int(max(split.labels.max() for split in present)) + 1)]
    return build_dataset(path.stem, str(path), classes, train, test, val)


def npz_source(path: Path, options: LoadOptions) -> Source:
    return Source(name=path.stem, files=[path], load=lambda store: load_npz(path, options))

"""MedMNIST-style .npz files: `train_images`, `val_images`, `test_images` and their `*_labels`.

Images are (N, H, W) or (N, H, W, C) uint8, labels (N, 1) or (N,), or (N, findings) of 0/1 for
a multi-label task (`--task multilabel`, e.g. ChestMNIST). The val split is kept as `val`; a
file without a test split (or, with `val_fraction`, without a val split) gets a seeded
stratified split of its train images. A MedMNIST file known by name (`pybench.datasets.medmnist`)
takes its label names and task from medmnist.INFO and must have INFO's MD5; any other file
holds no class names, so its classes are "0".."K-1" with K = the largest label + 1.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from pybench.datasets import medmnist
from pybench.datasets.core import Dataset, LoadOptions, Source, Split, dataset_from_arrays
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


def labels_of(labels: np.ndarray, key: str, path: Path, count: int, multilabel: bool) -> np.ndarray:
    """int64 (N,) class indices, or with `multilabel` an (N, findings) 0/1 matrix."""
    if labels.ndim == 2 and labels.shape[1] == 1 and not multilabel:
        labels = labels[:, 0]
    if labels.ndim == 2 and not multilabel:
        raise PybenchError(f"{path}: {key} is {labels.shape}, one column per finding: a multi-label file, not "
                           "single-label; pass --task multilabel")
    if not np.issubdtype(labels.dtype, np.integer):
        raise PybenchError(f"{path}: {key} must hold integers, got {labels.dtype}")
    if len(labels) != count:
        raise PybenchError(f"{path}: {key} has {len(labels)} rows for {count} images")
    if multilabel:
        if labels.ndim != 2 or (labels.size and (labels.min() < 0 or labels.max() > 1)):
            raise PybenchError(f"{path}: {key} must be ({count}, findings) of 0 and 1 for --task multilabel, "
                               f"got {labels.shape}")
        return labels.astype(np.int64)
    if labels.ndim != 1:
        raise PybenchError(f"{path}: {key} must be ({count},) or ({count}, 1) single-label, got {labels.shape}")
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
    labels = labels_of(arrays[labels_key], labels_key, path, len(images), options.multilabel)
    if len(images) == 0:
        raise PybenchError(f"{path}: {images_key} is empty")
    return Split(transform_images(np.ascontiguousarray(images), options.image_size, options.grayscale,
                                  options.resize), labels)


def class_names(med: medmnist.MedFile | None, given: dict[str, Split], path: Path) -> list[str]:
    """INFO's label names for a MedMNIST file (every label checked against them), else "0".."K-1"."""
    if given["train"].labels.ndim == 2:
        count = given["train"].labels.shape[1]
    else:
        count = int(max(split.labels.max() for split in given.values())) + 1
    if med is None:
        return [str(i) for i in range(count)]
    if count > len(med.classes):
        raise PybenchError(f"{path}: labels reach class {count - 1}, but {med.flag} has {len(med.classes)} classes "
                           f"({', '.join(med.classes)})")
    return med.classes


def load_npz(path: Path, options: LoadOptions) -> Dataset:
    med = medmnist.recognise(path.name)
    layout = medmnist.check_md5(path, med, options.checksum) if med is not None else "MedMNIST-layout .npz"
    if med is not None and med.multilabel != options.multilabel:
        raise PybenchError(f"{path}: {med.flag} is {med.info.get('task')} ({len(med.classes)} "
                           f"{'findings' if med.multilabel else 'classes'}): "
                           + ("pass --task multilabel" if med.multilabel else "--task multilabel does not apply"))
    arrays = read_npz(path)
    splits = {name: read_split(arrays, name, path, options) for name in ("train", "val", "test")}
    given = {name: split for name, split in splits.items() if split is not None}
    if "train" not in given:
        raise PybenchError(f"{path}: no train_images (MedMNIST layout expected); keys present: {', '.join(arrays)}")
    classes = class_names(med, given, path)
    how = {name: f"given: {name}_images" for name in given}
    original = images_nchw(arrays["train_images"], "train_images", path).shape[1:]
    return dataset_from_arrays(path.stem, str(path), classes, given, how, options, layout, original_shape=original)


def npz_source(path: Path, options: LoadOptions) -> Source:
    return Source(name=path.stem, files=[path], load=lambda store: load_npz(path, options),
                  multilabel_capable=True)

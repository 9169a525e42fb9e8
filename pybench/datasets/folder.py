"""A folder of class sub-folders of images (ImageFolder layout): `root/<class>/<image>`.

Class names are the sub-folder names, sorted; each class folder is searched recursively for
png/jpg/jpeg/bmp files; hidden entries (starting with a dot) are skipped. There is no test split
in this layout, so a seeded stratified split is made.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pybench.datasets.core import Dataset, LoadOptions, Source, Split, build_dataset, split_indices
from pybench.datasets.decode import FileReader, decode_splits
from pybench.datasets.images import IMAGE_EXTENSIONS, is_image_name
from pybench.errors import PybenchError


def is_hidden(path: Path) -> bool:
    return path.name.startswith(".")


def class_folders(root: Path) -> list[Path]:
    folders = sorted((p for p in root.iterdir() if p.is_dir() and not is_hidden(p)), key=lambda p: p.name)
    if not folders:
        raise PybenchError(f"{root} has no class sub-folders: expected {root}/<class name>/<images>")
    return folders


def images_in(folder: Path) -> list[Path]:
    images = sorted(p for p in folder.rglob("*") if p.is_file() and is_image_name(p.name) and not is_hidden(p))
    if not images:
        raise PybenchError(f"class folder {folder} has no images ({'/'.join(e[1:] for e in IMAGE_EXTENSIONS)})")
    return images


def list_class_images(root: Path) -> tuple[list[str], list[Path], np.ndarray]:
    """Class names, every image path, and each image's class index."""
    classes, paths, labels = [], [], []
    for index, folder in enumerate(class_folders(root)):
        images = images_in(folder)
        classes.append(folder.name)
        paths.extend(images)
        labels.extend([index] * len(images))
    return classes, paths, np.asarray(labels, dtype=np.int64)


def load_folder(root: Path, classes: list[str], paths: list[Path], labels: np.ndarray, options: LoadOptions,
                progress: bool, workers: int, store) -> Dataset:
    """Split by the labels, then decode each split's images straight into the store."""
    train_idx, test_idx = split_indices(labels, options.test_fraction, options.seed, str(root))
    images = decode_splits(store, {"train": [str(paths[i]) for i in train_idx],
                                   "test": [str(paths[i]) for i in test_idx]},
                           FileReader(), options.image_size, options.grayscale, workers, progress)
    return build_dataset(root.name, str(root), classes, Split(images["train"], labels[train_idx]),
                         Split(images["test"], labels[test_idx]))


def folder_source(root: Path, options: LoadOptions, progress: bool, workers: int) -> Source:
    classes, paths, labels = list_class_images(root)
    return Source(name=root.name, files=paths,
                  load=lambda store: load_folder(root, classes, paths, labels, options, progress, workers, store))

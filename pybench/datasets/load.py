"""`load_dataset`: resolve a spec to a source, then read it from the cache or decode it.

A spec is a built-in name (`DATASETS`), a MedMNIST name (`pathmnist`, `chestmnist_64`: the file
under the data root, downloaded when absent) or a path: a folder (class folders, pre-split
folders, or a CSV manifest beside its images: `folder`), a .zip or .csv manifest, or a MedMNIST
.npz.
"""

from __future__ import annotations

import os
from pathlib import Path

from pybench.datasets.cache import ArrayStore, cache_path, read_cached
from pybench.datasets.core import Dataset, LoadOptions, Source, data_root
from pybench.datasets.decode import check_workers
from pybench.datasets.digits import digits_source
from pybench.datasets.folder import folder_source
from pybench.datasets.manifest import csv_source, zip_source
from pybench.datasets.medmnist import medmnist_path
from pybench.datasets.mnist import ensure_mnist_files, load_mnist, mnist_files
from pybench.datasets.npz import npz_source
from pybench.datasets.story import DEFAULT_RESIZE
from pybench.errors import PybenchError

DATASETS = {
    "mnist": "MNIST handwritten digits, 60,000/10,000 28x28 grayscale (downloaded into <data root>/mnist)",
    "digits": "scikit-learn's 1,797 8x8 digits resized to 28x28, stratified 80/20 split (offline, no download)",
    "pathmnist": "a MedMNIST dataset by name (pathmnist, chestmnist, ..., with _64/_128/_224 sizes): label "
                 "names from medmnist.INFO, MD5 checked, downloaded into <data root>/<name>/",
    "PATH": "your own data: a folder of class folders or of train/ val/ test/ split folders, a .zip/.csv "
            "manifest (NIH style, its official split lists used), or a MedMNIST .npz",
}


def mnist_source(root: Path, options: LoadOptions, progress: bool) -> Source:
    ensure_mnist_files(root, progress=progress)
    # version "2": --image-size resizes MNIST since then; entries made before kept 28x28 images.
    return Source(name="mnist", files=mnist_files(root), load=lambda store: load_mnist(root, options),
                  version="2")


def path_source(spec: str, options: LoadOptions, progress: bool, workers: int) -> Source:
    path = Path(spec).expanduser()
    if not path.exists():
        known = ", ".join(n for n in DATASETS if n not in ("PATH", "pathmnist"))
        raise PybenchError(f"no such dataset or path {spec!r}: use one of {known}, "
                           f"a MedMNIST name (pathmnist, ...), or a folder, .zip, .csv or .npz path")
    suffix = path.suffix.lower()
    if path.is_dir():
        return folder_source(path, options, progress, workers)
    if suffix == ".zip":
        return zip_source(path, options, progress, workers)
    if suffix == ".csv":
        return csv_source(path, options, progress, workers)
    if suffix == ".npz":
        return npz_source(path, options)
    raise PybenchError(f"{path}: unsupported dataset file (expected a folder, .zip, .csv or .npz)")


def resolve_source(spec: str, root: Path, options: LoadOptions, progress: bool, workers: int) -> Source:
    if spec == "mnist":
        source = mnist_source(root, options, progress)
    elif spec == "digits":
        source = digits_source(options)
    else:
        local = None if Path(spec).expanduser().exists() else medmnist_path(spec, root, progress)
        source = npz_source(local, options) if local is not None else path_source(spec, options, progress, workers)
    if options.multilabel and not source.multilabel_capable:
        raise PybenchError(f"--task multilabel needs a manifest (.zip, .csv or a folder with its CSV) whose "
                           f"label cells list findings (\"A|B\"), or a multi-label .npz; {spec!r} is not one")
    return source


def load_dataset(spec: str, *, data_dir: str | os.PathLike | None = None, image_size: int | None = None,
                 grayscale: bool = False, test_fraction: float = 0.2, seed: int = 0, manifest: str | None = None,
                 image_col: str | None = None, label_col: str | None = None, binary_negative: str | None = None,
                 group_col: str | None = None, multilabel: bool = False, val_fraction: float | None = None,
                 layout: str = "auto", split: str = "auto", skip_unreadable: bool = False, checksum: bool = True,
                 resize: str = DEFAULT_RESIZE, cache: bool = True, progress: bool = True,
                 workers: int | None = None, hash_files: bool = False) -> Dataset:
    """Load `spec` as uint8 (N, C, H, W) splits with int64 labels; see the package docstring.
    `multilabel` gives (N, findings) 0/1 labels (`manifest.encode_findings`); `val_fraction`
    carves a validation split from train when the source has none; `layout` and `split` force
    how a folder is read and where a manifest's test split comes from (`LoadOptions`);
    `skip_unreadable` leaves out (and names) images that cannot be decoded; `checksum=False`
    accepts a MedMNIST file whose MD5 differs from medmnist.INFO's; `resize` says how
    `image_size` makes a non-square image square (`story.RESIZE_METHODS`).

    A cached load memory-maps the entry's arrays (read-only): nothing is read until used. The
    entry is found by the source files' size and modification time (`hash_files`: their content,
    every byte read; `cache.cache_key`).
    `workers` decoding processes (default: every core) decode an image source.
    """
    options = LoadOptions(image_size=image_size, grayscale=grayscale, test_fraction=test_fraction, seed=seed,
                          manifest=manifest, image_col=image_col, label_col=label_col,
                          binary_negative=binary_negative, group_col=group_col, multilabel=multilabel,
                          val_fraction=val_fraction, layout=layout, split=split,
                          skip_unreadable=skip_unreadable, checksum=checksum, resize=resize)
    workers = check_workers(workers)
    root = data_root(data_dir)
    source = resolve_source(str(spec), root, options, progress, workers)
    path = cache_path(root, source, options, hash_files)
    if cache:
        dataset = read_cached(path)
        if dataset is not None:
            return dataset
    store = ArrayStore.beside(path)
    try:
        dataset = source.load(store)
        if cache and store.commit(dataset, path):
            return read_cached(path) or dataset
        return dataset  # its arrays stay readable after discard, as unlinked mapped files
    finally:
        store.discard()

"""The on-disk cache of decoded datasets: `<cache dir>/<name>-<key>/`, one .npy per array, opened
with np.load(mmap_mode="r"): opening a 112,000-image entry reads nothing but its headers.

The key is a sha256 of the SOURCE, not of the decoded data (that would need decoding): every image
file's path, size and modification time, the content of the few small files that say how the
images are read (a CSV manifest, NIH's split lists: `Source.metadata`), every option that changes
the arrays and a format version. Reading only each file's metadata keeps a cached load of a
20,000-image folder near the time of the same images in one zip; `hash_files` (`--hash-files`)
keys the entry by every file's content instead, for a folder whose files may change without their
size and time changing (it reads every byte). The folder
holds the arrays and the derived facts (meta.json: mean, std, fingerprint), so a hit is a few
np.load calls (allow_pickle=False); an entry is made in a temporary folder and renamed when
complete, so a half-written entry is never read; and every entry is checked as it is
read (the splits, labels, classes and normalisation it claims): a damaged or foreign entry is
decoded again from the source and rewritten, with one warning line, never used.

Cache folder: $PYBENCH_CACHE_DIR, else ~/.cache/pybench/cache. Never inside the data folder:
data folders are often shared between users or machines, and a root user could write into one
that is read-only for everybody else.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from pybench.datasets.core import DEFAULT_DATA_ROOT, Dataset, LoadOptions, Provenance, Source, Split

CACHE_DIR_ENV = "PYBENCH_CACHE_DIR"
CACHE_FORMAT = 5  # bump when the decoding, the file layout or the key changes: old entries stop matching


def cache_dir(root: Path) -> Path:
    """Where decoded datasets are cached (`root`, the data root, is deliberately not used)."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    return DEFAULT_DATA_ROOT.expanduser() / "cache"


def file_identity(path: Path) -> list:
    """An image file as the key knows it: its path, size and modification time (no byte read)."""
    stat = os.stat(path)
    return [os.fspath(path), stat.st_size, stat.st_mtime_ns]


def content_identity(path: Path) -> list:
    """A file as the key knows it by content: its path, size and sha256."""
    return [os.fspath(path), os.path.getsize(path), hashlib.sha256(Path(path).read_bytes()).hexdigest()]


def cache_key(source: Source, options: LoadOptions, hash_files: bool = False) -> str:
    identity = content_identity if hash_files else file_identity
    described = {"format": CACHE_FORMAT, "name": source.name, "version": source.version,
                 "options": dataclasses.asdict(options), "hashed": hash_files,
                 "files": [identity(p) for p in source.files],
                 "metadata": [content_identity(p) for p in source.metadata]}
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:32]


def cache_path(root: Path, source: Source, options: LoadOptions, hash_files: bool = False) -> Path:
    """The entry's folder: `<name>-<key>/` holding one .npy per array and meta.json."""
    return cache_dir(root) / f"{source.name}-{cache_key(source, options, hash_files)}"


class ArrayStore:
    """A folder being filled with a dataset's arrays, one .npy each, before it becomes a cache
    entry (`commit`) or is thrown away (`discard`).

    Decoders create their output here with `empty` and write into it (from several processes);
    sources that build arrays in memory are saved by `commit`.
    """

    def __init__(self, folder: Path):
        self.folder = folder

    @classmethod
    def beside(cls, entry: Path) -> ArrayStore:
        """A fresh store next to `entry` (same file system: `commit` is a rename), or in the
        system's temporary folder when the cache folder cannot be written."""
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            return cls(Path(tempfile.mkdtemp(prefix=f".{entry.name}.", suffix=".part", dir=entry.parent)))
        except OSError:
            return cls(Path(tempfile.mkdtemp(prefix="pybench-dataset-")))

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.npy"

    def empty(self, name: str, shape: tuple[int, ...], dtype=np.uint8) -> np.memmap:
        """A new array on disk, of `shape` and `dtype`, open for writing."""
        return np.lib.format.open_memmap(self.path(name), mode="w+", dtype=dtype, shape=shape)

    def save(self, dataset: Dataset) -> None:
        """Every split array (those not already in the store) and meta.json."""
        splits = dataset.splits()
        for split_name, split in splits.items():
            arrays = (("images", split.images), ("labels", split.labels), ("names", split.names))
            for kind, array in arrays:
                if array is None:
                    continue
                path = self.path(f"{split_name}_{kind}")
                # A file already here was written by a decoder and holds this very array (mapped
                # from it): saving over it would truncate the mapping under the writer.
                if not path.exists():
                    np.save(path, array)
        meta = {"name": dataset.name, "classes": dataset.classes, "mean": dataset.mean, "std": dataset.std,
                "fingerprint": dataset.fingerprint, "source": dataset.source, "splits": list(splits),
                "groups": dataset.groups, "provenance": dataset.provenance.to_dict()}
        (self.folder / "meta.json").write_text(json.dumps(meta))

    def commit(self, dataset: Dataset, entry: Path) -> bool:
        """Save and make the store the cache entry `entry`; False when it cannot be written."""
        try:
            self.save(dataset)
            if entry.exists():  # a damaged entry read_cached refused
                shutil.rmtree(entry)
            os.replace(self.folder, entry)
            return True
        except OSError:
            return False

    def discard(self) -> None:
        """Delete the folder; arrays already opened from it stay readable (Linux keeps an
        unlinked file's mapping)."""
        shutil.rmtree(self.folder, ignore_errors=True)


def read_cached(path: Path) -> Dataset | None:
    """The cached Dataset, its arrays memory-mapped read-only (opening costs no reading, and
    processes that open the same entry share the page cache); None if absent, and None with one
    warning line on stderr if the entry is unreadable, damaged or not a dataset (the caller then
    decodes the source again)."""
    if not (path / "meta.json").exists():
        return None
    try:
        meta = json.loads((path / "meta.json").read_text())
        splits = {name: Split(np.load(path / f"{name}_images.npy", mmap_mode="r", allow_pickle=False),
                              np.load(path / f"{name}_labels.npy", mmap_mode="r", allow_pickle=False),
                              names_of(path, name))
                  for name in meta["splits"]}
        problem = entry_problem(meta, splits)  # a truncated .npy fails np.load itself
    except (OSError, ValueError, KeyError, TypeError, EOFError) as exc:
        problem = f"unreadable: {type(exc).__name__}: {exc}"
    if problem is not None:
        print(f"pybench: warning: {path}: damaged dataset cache entry ({problem}); decoding the "
              "source again", file=sys.stderr)
        return None
    return Dataset(name=meta["name"], classes=meta["classes"], train=splits["train"], test=splits["test"],
                   val=splits.get("val"), mean=tuple(meta["mean"]), std=tuple(meta["std"]),
                   fingerprint=meta["fingerprint"], source=meta["source"], groups=meta.get("groups"),
                   provenance=Provenance.from_dict(meta.get("provenance")), cache_entry=path)


def names_of(entry: Path, split: str) -> np.ndarray | None:
    """A split's image names, when the entry holds them."""
    path = entry / f"{split}_names.npy"
    return np.load(path, allow_pickle=False) if path.exists() else None


def entry_problem(meta: dict, splits: dict[str, Split]) -> str | None:
    """What is wrong with a cache entry's contents, or None: every split uint8 (N, C, H, W) with
    one integer label per image in range of the classes, train and test present, one mean and one
    non-negative std per channel, and text where text is expected."""
    if not {"train", "test"} <= set(splits):
        return f"splits {sorted(splits)}, without train and test"
    classes = meta.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        return f"classes {classes!r}"
    shape = None
    for name, split in splits.items():
        images, labels = split.images, split.labels
        if images.dtype != np.uint8 or images.ndim != 4:
            return f"{name} images {images.dtype} {images.shape}, not uint8 (N, C, H, W)"
        if shape is not None and images.shape[1:] != shape:
            return f"{name} images {images.shape[1:]}, train's {shape}"
        shape = images.shape[1:]
        if (labels.ndim not in (1, 2) or len(labels) != len(images)
                or not np.issubdtype(labels.dtype, np.integer)
                or (labels.ndim == 2 and labels.shape[1] != len(classes))):
            return f"{name} labels {labels.dtype} {labels.shape} for {len(images)} images"
        highest = len(classes) - 1 if labels.ndim == 1 else 1  # multi-label: 0/1 per finding
        if len(labels) and (labels.min() < 0 or labels.max() > highest):
            return f"{name} labels outside 0..{highest}"
    for key in ("mean", "std"):
        values = meta.get(key)
        if (not isinstance(values, list) or len(values) != shape[0]
                or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)):
            return f"{key} {values!r} for {shape[0]} channels"
    if not all(v >= 0 for v in meta["std"]):
        return f"std {meta['std']!r} (a standard deviation is never negative)"
    for key in ("name", "fingerprint", "source"):
        if not isinstance(meta.get(key), str):
            return f"{key} {meta.get(key)!r}"
    if not isinstance(meta.get("provenance"), dict) or not isinstance(meta["provenance"].get("layout"), str):
        return f"provenance {meta.get('provenance')!r}"
    return None

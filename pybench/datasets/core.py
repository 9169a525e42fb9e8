"""The framework-neutral dataset record: `Split`, `Dataset`, and the facts derived from them.

Every loader ends in `build_dataset`, which computes the per-channel normalisation statistics of
the train images and a fingerprint of all the arrays, so two frameworks that report the same
fingerprint were handed the same bytes. Also here: the data root, option checks shared by every
loader, and the seeded stratified split used when a source has no test split.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pybench.datasets.story import DEFAULT_RESIZE, RESIZE_METHODS, array_changes, provenance_lines
from pybench.errors import PybenchError

SPLIT_NAMES = ("train", "val", "test")
# How a folder can be read (`--layout`): auto detects; classes: every sub-folder a class;
# splits: sub-folders train/, val/, test/ holding class folders; manifest: a CSV beside images.
LAYOUTS = ("auto", "classes", "splits", "manifest")
# Where a manifest's test split comes from (`--split`).
SPLIT_SOURCES = ("auto", "official", "random")
DEFAULT_DATA_ROOT = Path("~/.cache/pybench")
# Bytes of images per chunk when a whole split is read (statistics, normalising): bounds the
# temporaries whatever the image size, and reads a memory-mapped split sequentially.
CHUNK_BYTES = 64 << 20


def chunk_rows(images: np.ndarray) -> int:
    """Images per CHUNK_BYTES chunk (at least one)."""
    return max(1, CHUNK_BYTES // max(1, int(np.prod(images.shape[1:]))))


@dataclass(frozen=True)
class Split:
    """Images uint8 (N, C, H, W) and labels int64, both C-contiguous: (N,) class indices, or for
    a multi-label task (`--task multilabel`) an (N, findings) matrix of 0/1, one column per class
    (finding), an image with none of them (NIH's "No Finding") a row of zeros. `names`, when the
    source has them, is each image's file name (relative to the source), for prediction files."""

    images: np.ndarray
    labels: np.ndarray
    names: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {self.images.shape}")
        if self.labels.ndim not in (1, 2) or len(self.labels) != len(self.images):
            raise ValueError(f"labels must be (N,) or (N, findings) matching images, got {self.labels.shape}")
        if self.names is not None and len(self.names) != len(self.images):
            raise ValueError(f"{len(self.names)} names for {len(self.images)} images")
        # Frozen: set the normalised copies through object.__setattr__.
        object.__setattr__(self, "images", np.ascontiguousarray(self.images))
        object.__setattr__(self, "labels", np.ascontiguousarray(self.labels, dtype=np.int64))
        if self.names is not None:
            object.__setattr__(self, "names", np.asarray(self.names, dtype=str))

    def image_names(self, split_name: str) -> list[str]:
        """Each image's file name, or "<split>[i]" for a source without file names."""
        if self.names is not None:
            return [str(name) for name in self.names]
        return [f"{split_name}[{i}]" for i in range(len(self.labels))]

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Provenance:
    """How a dataset was read, said wherever the dataset is described (`datasets info`, results,
    the report), so that a layout read one way cannot pass for another without a word.

    `layout` names what was found ("pre-split folders train/, test/", "class folders", a
    manifest, a MedMNIST file); `splits` says where each split came from ("given: test/",
    "10% of train, stratified, split seed 0"); `left_out` counts what was deliberately not read
    ("mask files": 3616); `unreadable` names the images `--skip-unreadable` left out; `changes`
    is what was done to the images (`story.Tally.to_dict`: sizes, modes, the options that acted);
    `unlabelled` names split folders that hold images but no class folders (a Kaggle `test/`):
    split -> {"folder", "images"}.
    """

    layout: str
    splits: dict[str, str] = field(default_factory=dict)
    left_out: dict[str, int] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)
    changes: dict = field(default_factory=dict)
    unlabelled: dict[str, dict] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"layout": self.layout, "splits": dict(self.splits), "left_out": dict(self.left_out),
                "unreadable": list(self.unreadable), "changes": dict(self.changes),
                "unlabelled": dict(self.unlabelled)}

    @classmethod
    def from_dict(cls, fields: dict | None) -> Provenance:
        fields = fields or {}
        return cls(layout=str(fields.get("layout", "arrays")), splits=dict(fields.get("splits") or {}),
                   left_out=dict(fields.get("left_out") or {}), unreadable=list(fields.get("unreadable") or []),
                   changes=dict(fields.get("changes") or {}), unlabelled=dict(fields.get("unlabelled") or {}))

    def lines(self) -> list[str]:
        """`datasets info`'s lines: the layout, the splits' sources, what was left out and what
        was done to the images (`story.provenance_lines`)."""
        return provenance_lines(self.to_dict())


@dataclass
class Dataset:
    """A loaded dataset: splits, class names, train normalisation and a content fingerprint."""

    name: str
    classes: list[str]
    train: Split
    test: Split
    val: Split | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    fingerprint: str
    source: str
    # How the split kept groups apart, when it did: {"column", "train", "test"} (the numbers of
    # groups on each side; none is on both).
    groups: dict | None = None
    # How the source was read: its layout, where each split came from, what was left out.
    provenance: Provenance = field(default_factory=lambda: Provenance("arrays"))
    # The cache entry the arrays were read from (`cache.read_cached`): what a worker opens
    # instead of the source. None for a dataset decoded without the cache.
    cache_entry: Path | None = field(default=None, compare=False)
    _normalized: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def in_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.images.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def multilabel(self) -> bool:
        """Whether each image carries a set of findings (labels (N, findings)), not one class."""
        return self.train.labels.ndim == 2

    def splits(self) -> dict[str, Split]:
        """The splits present, in the order train, val, test."""
        named = {"train": self.train, "val": self.val, "test": self.test}
        return {name: split for name, split in named.items() if split is not None}

    def split(self, split_name: str) -> Split:
        splits = self.splits()
        if split_name not in splits:
            raise PybenchError(f"dataset {self.name!r} has no split {split_name!r}: it has {', '.join(splits)}")
        return splits[split_name]

    def pixel_table(self, dtype=np.float32) -> np.ndarray:
        """(C, 256): the normalised value of every uint8 value in every channel (`pixel_table`)."""
        return pixel_table(self.mean, self.std, dtype)

    def normalized(self, split_name: str) -> np.ndarray:
        """float32 (N, C, H, W): the split's images through `pixel_table`, computed once.

        Training does not use this: backends get the uint8 images and the table and normalise
        each batch in the step. It is the same lookup, so it gives the very bytes a step sees:
        for augmentation (which interpolates, so it works on normalised values), evaluation
        helpers and tests.
        """
        if split_name not in self._normalized:
            self._normalized[split_name] = normalize(self.split(split_name).images, self.pixel_table())
        return self._normalized[split_name]


def pixel_table(mean, std, dtype=np.float32) -> np.ndarray:
    """(C, 256) table: entry [c, v] is channel c's normalised value of the uint8 value v,
    (v/255 - mean[c])/std[c] computed in float32 with float32 mean and std (so the bytes are the
    same on every machine); a channel with std 0 (constant) is only centred, not scaled.

    Every framework normalises its batches by gathering from this table: a gather copies values
    and cannot round differently in different frameworks, so the float32 inputs are bit-identical
    everywhere, while the data stays uint8 (a quarter of float32's memory) on the host and the
    device. A float64 table (the parity trajectory) holds the same float32 values, widened.
    """
    values = np.arange(256, dtype=np.float32) / np.float32(255.0)
    mean = np.asarray(mean, dtype=np.float32).reshape(-1, 1)
    std = np.asarray(std, dtype=np.float32).reshape(-1, 1)
    std = np.where(std > 0, std, np.float32(1.0))
    table = ((values[None, :] - mean) / std).astype(np.float32)
    return np.ascontiguousarray(table, dtype=dtype)


def normalize(images: np.ndarray, table: np.ndarray) -> np.ndarray:
    """uint8 (N, C, H, W) images through a (C, 256) `pixel_table`, in numpy, chunk by chunk."""
    out = np.empty(images.shape, dtype=table.dtype)
    rows = chunk_rows(images)
    for start in range(0, len(images), rows):
        chunk = images[start:start + rows]
        for channel in range(images.shape[1]):
            out[start:start + rows, channel] = table[channel][chunk[:, channel]]
    return out


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """Where datasets live: `data_dir`, else $PYBENCH_DATA_DIR, else ~/.cache/pybench."""
    chosen = data_dir or os.environ.get("PYBENCH_DATA_DIR") or DEFAULT_DATA_ROOT
    return Path(chosen).expanduser()


def check_image_size(image_size: int | None) -> None:
    if image_size is None:
        return
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or not 1 <= image_size <= 4096:
        raise PybenchError(f"--image-size must be an integer from 1 to 4096, got {image_size!r}")


def check_test_fraction(test_fraction: float, option: str = "--test-fraction") -> None:
    if (isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float))
            or not 0.0 < test_fraction < 1.0):
        raise PybenchError(f"{option} must be a number strictly between 0 and 1, got {test_fraction!r}")


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 images scaled to [0, 1].

    The first two moments come exactly from each channel's histogram of the 256 values (counted
    chunk by chunk, in integers), then turn into float64, so the result does not depend on
    summation order or memory layout; a histogram reads each byte once, without the 8-byte
    temporaries a direct sum of squares needs.
    """
    channels = images.shape[1]
    histogram = np.zeros((channels, 256), dtype=np.int64)
    rows = chunk_rows(images)
    for start in range(0, len(images), rows):
        chunk = images[start:start + rows]
        for channel in range(channels):
            histogram[channel] += np.bincount(chunk[:, channel].ravel(), minlength=256)
    values = np.arange(256, dtype=np.uint64)
    total = (histogram.astype(np.uint64) * values).sum(axis=1, dtype=np.uint64)
    total_sq = (histogram.astype(np.uint64) * values * values).sum(axis=1, dtype=np.uint64)
    count = float(images.shape[0] * images.shape[2] * images.shape[3])
    if count == 0:
        raise PybenchError("the train split is empty: cannot compute normalisation statistics")
    mean = total.astype(np.float64) / count / 255.0
    variance = total_sq.astype(np.float64) / count / 255.0**2 - mean**2
    std = np.sqrt(np.maximum(variance, 0.0))
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def dataset_fingerprint(classes: list[str], splits: dict[str, Split]) -> str:
    """sha256 over class names and every split's name, shapes, dtypes and bytes."""
    digest = hashlib.sha256()
    digest.update(json.dumps(list(classes)).encode())
    for name, split in splits.items():
        header = {"split": name, "images": [list(split.images.shape), str(split.images.dtype)],
                  "labels": [list(split.labels.shape), str(split.labels.dtype)]}
        digest.update(json.dumps(header, sort_keys=True).encode())
        digest.update(memoryview(split.images).cast("B"))
        digest.update(memoryview(split.labels).cast("B"))
    return digest.hexdigest()


def build_dataset(name: str, source: str, classes: list[str], train: Split, test: Split,
                  val: Split | None = None, groups: dict | None = None,
                  provenance: Provenance | None = None) -> Dataset:
    """Assemble a Dataset, computing the train statistics and the fingerprint."""
    splits = {"train": train, "val": val, "test": test}
    splits = {split_name: split for split_name, split in splits.items() if split is not None}
    for split_name, split in splits.items():
        if split.images.shape[1:] != train.images.shape[1:]:
            raise PybenchError(f"{source}: split {split_name} has image shape {split.images.shape[1:]}, "
                               f"train has {train.images.shape[1:]}")
    mean, std = channel_stats(train.images)
    return Dataset(name=name, classes=list(classes), train=train, test=test, val=val, mean=mean, std=std,
                   fingerprint=dataset_fingerprint(classes, splits), source=source, groups=groups,
                   provenance=provenance or Provenance("arrays"))


def strata(labels: np.ndarray) -> np.ndarray:
    """What a split keeps in proportion: the class, or for multi-label (N, findings) labels
    whether an image has any finding (NIH's No Finding against the rest): a stratum per finding
    combination would leave most combinations too rare to split."""
    labels = np.asarray(labels)
    return labels if labels.ndim == 1 else (labels.sum(axis=1) > 0).astype(np.int64)


def split_indices(labels: np.ndarray, test_fraction: float, seed: int, source: str,
                  groups: np.ndarray | None = None,
                  option: str = "--test-fraction") -> tuple[np.ndarray, np.ndarray]:
    """Train and test positions of a seeded split that keeps class proportions (`strata`).

    Without groups: scikit-learn's train_test_split with stratify. With groups (one id per
    sample, e.g. NIH's patient ids), no group is on both sides: scikit-learn's
    StratifiedGroupKFold with round(1/test_fraction) folds (at least 2), shuffled by `seed`, and
    its first fold is the test split, so the test share is the nearest 1/k to test_fraction and
    class proportions are kept as far as whole groups allow. `option` names the fraction's
    option in messages (the same split makes the validation split: --val-fraction).
    """
    from sklearn.model_selection import StratifiedGroupKFold, train_test_split  # slow import

    labels = strata(labels)
    indices = np.arange(len(labels))
    if groups is not None:
        folds = max(2, round(1 / test_fraction))
        if len(np.unique(groups)) < folds:
            raise PybenchError(f"{source}: {len(np.unique(groups))} groups cannot make a grouped split "
                               f"into {folds} folds ({option} {test_fraction}): add images, change "
                               f"{option}, or pass --group-col none")
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        train_idx, test_idx = next(splitter.split(indices, labels, groups))
        return train_idx, test_idx
    try:
        train_idx, test_idx = train_test_split(indices, test_size=test_fraction, random_state=seed,
                                               stratify=labels)
    except ValueError as error:
        counts = dict(zip(*np.unique(labels, return_counts=True)))
        counts_text = ", ".join(f"class {int(k)}: {int(v)}" for k, v in counts.items())
        raise PybenchError(f"{source}: cannot make a stratified split with {option} {test_fraction} "
                           f"({counts_text}; {error}): add images or change {option}") from None
    return train_idx, test_idx


def carve(labels: np.ndarray, source: str, seed: int, test_fraction: float | None = None,
          val_fraction: float | None = None, groups: np.ndarray | None = None, group_col: str = "",
          pool: str = "the images") -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Positions (into `labels`) of the train split and of the test and validation splits made
    from it: test first (`test_fraction` of the pool), then validation (`val_fraction` of what
    is left for training), each seeded and stratified (`split_indices`), grouped when `groups`
    is given (`group_col` names their column). Returns the positions by split name and how
    each split was made (for `Provenance.splits`); `pool` names what was split ("the images").
    """
    kept = np.arange(len(labels))
    positions, described = {}, {}
    how = f"stratified, {f'grouped by {group_col!r}, ' if groups is not None else ''}split seed {seed}"
    if test_fraction is not None:
        train_idx, test_idx = split_indices(labels, test_fraction, seed, source, groups)
        positions["test"], kept = kept[test_idx], kept[train_idx]
        described["test"] = f"{test_fraction:g} of {pool}, {how}"
    if val_fraction is not None:
        train_idx, val_idx = split_indices(labels[kept], val_fraction, seed, source,
                                           None if groups is None else groups[kept], option="--val-fraction")
        positions["val"], kept = kept[val_idx], kept[train_idx]
        described["val"] = f"{val_fraction:g} of the training part, {how}"
    positions["train"] = kept
    return positions, described


def split_story(given: dict[str, str], carved: dict[str, str], options: LoadOptions,
                given_val: bool) -> dict[str, str]:
    """How each split was made, in the order train, val, test: `given` for the splits the
    source holds, `carved` for those `carve` made from the training part."""
    story = dict(given)
    if carved:
        taken = [name for name in ("val", "test") if name in carved]
        story["train"] = f"{given['train']}, less the {' and '.join(taken)} split{'s' if len(taken) > 1 else ''}"
    story.update(carved)
    if given_val and options.val_fraction is not None:
        story["val"] += f" (--val-fraction {options.val_fraction:g} not applied: the source has its own)"
    return {name: story[name] for name in SPLIT_NAMES if name in story}


def dataset_from_arrays(name: str, source: str, classes: list[str], given: dict[str, Split],
                        how: dict[str, str], options: LoadOptions, layout: str,
                        original_shape: tuple[int, int, int], image_size: int | None = None) -> Dataset:
    """A Dataset from splits that arrive as arrays (`given`, train at least; `how` says where
    each came from): the test split, when missing, and the validation split, when asked for
    and missing, are carved from train (`carve`). `original_shape` is the (C, H, W) the arrays
    had before the options resized them to `image_size` (default: `options.image_size`)."""
    # Each image named by its place in the source ("train[123]"), kept through the carving.
    given = {split: data if data.names is not None else Split(data.images, data.labels, data.image_names(split))
             for split, data in given.items()}
    train = given["train"]
    positions, carved = carve(train.labels, source, options.seed,
                              test_fraction=None if "test" in given else options.test_fraction,
                              val_fraction=None if "val" in given else options.val_fraction,
                              pool=how["train"])
    splits = dict(given)
    if carved:  # indexing copies: only when something was taken out of train
        splits.update({split: Split(train.images[idx], train.labels[idx], train.names[idx])
                       for split, idx in positions.items()})
    changes = array_changes(sum(len(split) for split in given.values()), original_shape,
                            image_size if image_size is not None else options.image_size, options.resize,
                            options.grayscale, train.images.shape[1])
    provenance = Provenance(layout, split_story(how, carved, options, "val" in given), changes=changes)
    return build_dataset(name, source, classes, splits["train"], splits["test"], splits.get("val"),
                         provenance=provenance)


@dataclass(frozen=True)
class LoadOptions:
    """Every load_dataset option that changes the arrays (and so belongs in the cache key)."""

    image_size: int | None = None
    grayscale: bool = False
    test_fraction: float = 0.2
    seed: int = 0
    manifest: str | None = None
    image_col: str | None = None
    label_col: str | None = None
    binary_negative: str | None = None
    # `--task multilabel`: a manifest's label cells are sets of findings ("A|B"), not classes.
    multilabel: bool = False
    # The manifest column whose values must not straddle train and test (None: "Patient ID"
    # when the manifest has it; "none": no grouping).
    group_col: str | None = None
    # A validation split carved from the training split when the source gives none (None: none).
    val_fraction: float | None = None
    # How a folder is read: "auto" detects (LAYOUTS); the others force one reading.
    layout: str = "auto"
    # Where the test split comes from when a manifest has official split lists: "auto" uses
    # them when present, "official" requires them, "random" ignores them.
    split: str = "auto"
    # Images that cannot be decoded are left out and listed instead of stopping the load.
    skip_unreadable: bool = False
    # A MedMNIST file must have medmnist.INFO's MD5 (False: a modified copy is accepted, said).
    checksum: bool = True
    # How a non-square image becomes image_size x image_size (`story.RESIZE_METHODS`).
    resize: str = DEFAULT_RESIZE

    def __post_init__(self) -> None:
        check_image_size(self.image_size)
        check_test_fraction(self.test_fraction)
        if self.val_fraction is not None:
            check_test_fraction(self.val_fraction, "--val-fraction")
        if self.layout not in LAYOUTS:
            raise PybenchError(f"--layout {self.layout!r}: choose {', '.join(LAYOUTS)}")
        if self.split not in SPLIT_SOURCES:
            raise PybenchError(f"--split {self.split!r}: choose {', '.join(SPLIT_SOURCES)}")
        if self.resize not in RESIZE_METHODS:
            raise PybenchError(f"--resize {self.resize!r}: choose {', '.join(RESIZE_METHODS)}")
        if self.multilabel and self.binary_negative is not None:
            raise PybenchError("--task multilabel and --binary-negative exclude each other: one keeps every "
                               "finding, the other folds them into one class")


@dataclass(frozen=True)
class Source:
    """A resolved dataset spec: its name, the files it is read from (for the cache key), and how to load it."""

    name: str
    files: list[Path]  # the image (or array) files: the cache key reads their size and time

    # Builds the Dataset; large arrays are created in the store (`cache.ArrayStore.empty`), the
    # folder the cache entry is made in, so decoded images are written once, straight to disk.
    load: Callable[[Any], Dataset]
    version: str = ""  # changes the cache key when a source without files changes (e.g. scikit-learn's digits)
    # Whether the source can give multi-label (N, findings) labels (`--task multilabel`): a
    # manifest's finding cells or an .npz's label matrix.
    multilabel_capable: bool = False
    # The small files that say how the images are read (a CSV manifest, split lists): the cache
    # key reads their content, which a copy that keeps size and time could change.
    metadata: list[Path] = field(default_factory=list)


def read_bytes(path: str | os.PathLike) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise PybenchError(f"cannot read {path}: {error.strerror or error}") from None

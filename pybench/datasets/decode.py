"""Decoding many images in parallel, straight into one preallocated uint8 array on disk.

A chest X-ray set is tens of thousands of PNGs: decoded one by one into a list and stacked, it
took one core and several times its own size in memory. Here a pool of processes (every core, or
`workers`) decodes slices of the image list; each process opens the output `.npy` file itself
(`np.lib.format.open_memmap`) and writes its images into their rows, so no image crosses a pipe,
no list of arrays is built and no second copy is made. Readers are opened per process too: a zip
archive is read member by member by whichever process decodes that member, never whole.

The output's shape is fixed before decoding starts (`probe_shape`): the image size option, or the
first image's size; one channel, or three when the first image is colour. An image of another
size is an error naming both images (unless an image size was given); a colour image in a set
that started grayscale makes the caller decode again with three channels (`ColourFound`), as the
old stacking promoted a mixed set to RGB.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pybench.datasets.images import SIZE_FIX, decode_image
from pybench.datasets.story import DEFAULT_RESIZE, Tally
from pybench.errors import PybenchError

# Below this many images decoding takes about a second: a progress bar would only be noise, and
# starting processes would cost more than it saves.
PARALLEL_MIN_IMAGES = 2000
TASK_IMAGES = 256  # images per pool task: large enough to amortise a task, small for a smooth bar


class ColourFound(Exception):
    """A colour image in a set being decoded as one channel: decode again with three."""


@dataclass(frozen=True)
class FileReader:
    """Reads an image file by its path."""

    def __call__(self, name: str) -> bytes:
        from pybench.datasets.core import read_bytes

        return read_bytes(name)

    def label(self, name: str) -> str:
        return name


@dataclass(frozen=True)
class ZipReader:
    """Reads members of one zip archive; each process opens the archive once, lazily."""

    archive: str

    def __call__(self, name: str) -> bytes:
        return read_zip_member(_open_archive(self.archive), name, Path(self.archive))

    def label(self, name: str) -> str:
        """"archive.zip:inner/path.png", so a decoding error says where the image is."""
        return f"{self.archive}:{name}"


def open_zip(archive: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as error:
        raise PybenchError(f"{archive}: not a readable zip archive ({error})") from None


def read_zip_member(bundle: zipfile.ZipFile, member: str, archive: Path) -> bytes:
    try:
        return bundle.read(member)
    # A damaged member raises BadZipFile (CRC), zlib.error (deflate), EOFError, OSError... all mean
    # "this member cannot be read".
    except Exception as error:  # noqa: BLE001
        raise PybenchError(f"{archive}:{member}: cannot read from the archive ({error})") from None


_archives: dict[tuple[int, str], zipfile.ZipFile] = {}


def _open_archive(archive: str) -> zipfile.ZipFile:
    key = (os.getpid(), archive)  # a forked child must not share its parent's file position
    if key not in _archives:
        _archives[key] = open_zip(Path(archive))
    return _archives[key]


def default_workers() -> int:
    """Every core this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def check_workers(workers) -> int:
    if workers is None:
        return default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise PybenchError(f"--workers must be a whole number of at least 1, got {workers!r}")
    return workers


def probe_shape(names: Sequence[str], read: Callable[[str], bytes], image_size: int | None,
                grayscale: bool, skip_unreadable: bool,
                resize: str = DEFAULT_RESIZE) -> tuple[tuple[int, int, int], str]:
    """(C, H, W) of the first image after the size and grayscale options, and its name (with
    `skip_unreadable`, the first image that decodes)."""
    for name in names:
        try:
            first, _ = decode_image(read(name), read.label(name), image_size, grayscale, resize)
        except PybenchError:
            if not skip_unreadable:
                raise
            continue
        channels = 3 if first.ndim == 3 else 1
        return (channels, first.shape[0], first.shape[1]), name
    raise PybenchError(f"none of the {len(names):,} images could be decoded (--skip-unreadable)")


def decode_slice(task: tuple) -> tuple[int, list[tuple[int, str]], Tally]:
    """Decode names[start:stop] into rows start:stop of the .npy at `out_path` (in a worker);
    returns how many were done, with `skip_unreadable` the (row, label) of each image that could
    not be read or decoded (its row stays zero), and what the decoded images were (`Tally`)."""
    out_path, names, start, read, image_size, grayscale, first_name, skip_unreadable, resize = task
    out = np.lib.format.open_memmap(out_path, mode="r+")
    channels, height, width = out.shape[1:]
    unreadable = []
    tally = Tally()
    for offset, name in enumerate(names):
        try:
            array, facts = decode_image(read(name), read.label(name), image_size, grayscale, resize)
        except PybenchError:
            if not skip_unreadable:
                raise
            unreadable.append((start + offset, read.label(name)))
            continue
        if array.shape[:2] != (height, width):
            raise PybenchError(f"images have different sizes ({read.label(first_name)} is {width}x{height}, "
                               f"{read.label(name)} is {array.shape[1]}x{array.shape[0]}): {SIZE_FIX}")
        if array.ndim == 3 and channels == 1:
            raise ColourFound(name)
        out[start + offset] = array.transpose(2, 0, 1) if array.ndim == 3 else array  # gray -> RGB broadcasts
        tally.add(facts)
    out.flush()
    del out
    return len(names), unreadable, tally


def pool_context():
    """fork where it is safe and available (Linux, before JAX has started its threads): children
    start in milliseconds, as PyTorch's DataLoader workers do; spawn otherwise (it re-imports the
    main module, about a second per process)."""
    if "fork" in multiprocessing.get_all_start_methods() and "jax" not in sys.modules:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def decode_into(outputs: dict[str, Path], names: dict[str, Sequence[str]], read: Callable[[str], bytes],
                image_size: int | None, grayscale: bool, workers: int, progress: bool, first_name: str,
                skip_unreadable: bool = False, resize: str = DEFAULT_RESIZE,
                tally: Tally | None = None) -> dict[str, list[tuple[int, str]]]:
    """Fill each (N, C, H, W) uint8 .npy of `outputs` (already created) with its `names`, in
    order, all splits through one pool of `workers` processes; returns, per split, the (row,
    label) of the images `skip_unreadable` left out, and adds what the images were to `tally`.

    Raises ColourFound when a colour image turns up in a one-channel array.
    """
    tally = tally if tally is not None else Tally()
    tasks = [(split, (str(outputs[split]), list(split_names[start:start + TASK_IMAGES]), start, read, image_size,
                      grayscale, first_name, skip_unreadable, resize))
             for split, split_names in names.items() for start in range(0, len(split_names), TASK_IMAGES)]
    total = sum(len(split_names) for split_names in names.values())
    parallel = workers > 1 and total >= PARALLEL_MIN_IMAGES
    bar = tqdm(total=total, desc="decoding images", unit="img", disable=not (progress and total >= PARALLEL_MIN_IMAGES))
    unreadable: dict[str, list[tuple[int, str]]] = {split: [] for split in names}
    try:
        if not parallel:
            results = (decode_slice(task) for _, task in tasks)
            for (split, _), (done, bad, seen) in zip(tasks, results):
                bar.update(done)
                unreadable[split] += bad
                tally.update(seen)
            return unreadable
        pool = ProcessPoolExecutor(min(workers, len(tasks)), mp_context=pool_context())
        try:
            for (split, _), (done, bad, seen) in zip(tasks, pool.map(decode_slice, [task for _, task in tasks])):
                bar.update(done)
                unreadable[split] += bad
                tally.update(seen)
        except BaseException:
            # A bad image or Ctrl-C: the queued slices are dropped, not decoded first.
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return unreadable
    finally:
        bar.close()


@dataclass(frozen=True)
class Decoded:
    """Each split's decoded images (memory-mapped, read-only), what `--skip-unreadable` left
    out (per split the positions dropped, into the names given, and every such image's label),
    and what was done to the images (`story.Tally.to_dict`: provenance's `changes`)."""

    images: dict[str, np.ndarray]
    dropped: dict[str, list[int]]
    unreadable: list[str]
    changes: dict


def decode_splits(store, splits: dict[str, Sequence[str]], read: Callable[[str], bytes],
                  image_size: int | None, grayscale: bool, workers: int, progress: bool,
                  skip_unreadable: bool = False, resize: str = DEFAULT_RESIZE) -> Decoded:
    """Decode each split's images, in the split's order, into `<split>_images.npy` of `store`
    (a `cache.ArrayStore`).

    Decoding in split order (the split is made from the labels first) writes every image once,
    where it stays: no full-set array is made and then copied into train and test. With
    `skip_unreadable`, an image that cannot be read or decoded is left out (its split's array is
    written again without its row) and named in `Decoded.unreadable`.
    """
    every = [name for names in splits.values() for name in names]
    shape, first = probe_shape(every, read, image_size, grayscale, skip_unreadable, resize)
    tally = Tally()
    try:
        unreadable = _decode_all(store, splits, read, image_size, grayscale, workers, progress, first,
                                 shape, skip_unreadable, resize, tally)
    except ColourFound:
        # A set that starts grayscale and holds a colour image becomes RGB (gray repeated).
        shape, tally = (3, *shape[1:]), Tally()
        unreadable = _decode_all(store, splits, read, image_size, grayscale, workers, progress, first,
                                 shape, skip_unreadable, resize, tally)
    images, dropped = {}, {}
    for split in splits:
        rows = [row for row, _ in unreadable[split]]
        if rows:
            drop_rows(store, f"{split}_images", rows)
        dropped[split] = rows
        images[split] = np.load(store.path(f"{split}_images"), mmap_mode="r")
        if not len(images[split]):
            raise PybenchError(f"every image of the {split} split is unreadable (--skip-unreadable)")
    return Decoded(images, dropped, [label for split in splits for _, label in unreadable[split]],
                   tally.to_dict(image_size, resize, grayscale, shape[0]))


def drop_rows(store, name: str, rows: list[int]) -> None:
    """Write `store`'s array `name` again without `rows`, chunk by chunk (the decoded set may
    not fit in memory)."""
    full = np.load(store.path(name), mmap_mode="r")
    keep = np.setdiff1d(np.arange(len(full)), rows)
    kept = store.empty(f"{name}.kept", (len(keep), *full.shape[1:]), full.dtype)
    step = 1024
    for start in range(0, len(keep), step):
        kept[start:start + step] = full[keep[start:start + step]]
    kept.flush()
    del kept, full
    os.replace(store.path(f"{name}.kept"), store.path(name))


def _decode_all(store, splits, read, image_size, grayscale, workers, progress, first, shape, skip_unreadable,
                resize, tally):
    outputs = {}
    for split_name, names in splits.items():
        outputs[split_name] = store.path(f"{split_name}_images")
        store.empty(f"{split_name}_images", (len(names), *shape))  # full size; decode_slice fills it
    return decode_into(outputs, splits, read, image_size, grayscale, workers, progress, first, skip_unreadable,
                       resize, tally)

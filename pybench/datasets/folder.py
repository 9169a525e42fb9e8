"""A folder of images, read the way its layout says, and said how (`Provenance`).

Layouts (`--layout`, detected with "auto"):
- **splits**: sub-folders named for splits (`train`, `val` / `valid` / `validation`, `test`, any
  case), each holding the same class folders (what `splitfolders` writes and Kaggle ships). The
  given splits are used as they are; a missing test (or, with `--val-fraction`, validation)
  split is carved from train. Detected when any sub-folder has a split name: reading such a tree
  as classes would train a classifier of "train" against "test". A split folder other than
  train/ that holds images but no class folders (a Kaggle competition's flat `test/`) is
  unlabelled: said, left out of training and evaluation (its split is carved from train as if
  absent), and named in the provenance so that every run can predict it.
- **classes**: `root/<class>/<images>` (ImageFolder); a seeded stratified split makes test
  (and validation).
- **manifest**: a CSV at the top level naming each image and its label (an extracted NIH
  release), read by `manifest.folder_manifest_source`. Detected when the top level holds a CSV
  and no split folders.

Inside a class folder, images are searched recursively, but masks are not images: folders named
`mask` / `masks` and files named `*_mask.*` are left out and counted, and a class folder with an
`images/` sub-folder (the COVID-19 Radiography Database's `<class>/images` beside
`<class>/masks`) takes its images from there only. Hidden entries (a dot first) and macOS's
`__MACOSX` folders are skipped. Everything left out is counted in the provenance.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pybench.datasets.core import (
    SPLIT_NAMES,
    Dataset,
    LoadOptions,
    Provenance,
    Source,
    Split,
    build_dataset,
    carve,
    split_story,
)
from pybench.datasets.decode import FileReader, decode_splits
from pybench.datasets.images import IMAGE_EXTENSIONS, is_image_name
from pybench.errors import PybenchError

# Folder names (lowercased) that name a split, and the split each names.
SPLIT_FOLDERS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
MASK_FOLDERS = {"mask", "masks"}
MASK_SUFFIX = "_mask"  # a file `<name>_mask.png` is a mask
IMAGES_FOLDER = "images"
SKIPPED_FOLDERS = {"__macosx"}  # macOS's resource forks in extracted zips

LEFT_MASKS = "mask files (folders named mask/masks, files named *_mask.*)"
LEFT_BESIDE_IMAGES = "image files outside the images/ folders of class folders that have one"
LEFT_LOOSE = "images outside any class folder"
LEFT_FOLDERS = "folders beside the split folders (--layout splits)"


def is_hidden(path: Path) -> bool:
    return path.name.startswith(".") or path.name.lower() in SKIPPED_FOLDERS


def visible_entries(folder: Path) -> list[os.DirEntry]:
    """`folder`'s entries, hidden ones aside (os.scandir: no stat per entry)."""
    with os.scandir(folder) as entries:
        return [entry for entry in entries if not (entry.name.startswith(".") or entry.name.lower() in SKIPPED_FOLDERS)]


def sub_folders(root: Path) -> list[Path]:
    return sorted((Path(entry.path) for entry in visible_entries(root) if entry.is_dir()), key=lambda p: p.name)


def loose_images(folder: Path) -> int:
    """Image files directly in `folder` (not in a sub-folder)."""
    return sum(1 for entry in visible_entries(folder) if entry.is_file() and is_image_name(entry.name))


def top_level_csvs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() == ".csv" and not is_hidden(p))


def split_folders_of(root: Path) -> dict[str, Path]:
    """The split name each split-named sub-folder stands for; two folders for one split is an error."""
    found: dict[str, Path] = {}
    for folder in sub_folders(root):
        split = SPLIT_FOLDERS.get(folder.name.lower())
        if split is None:
            continue
        if split in found:
            raise PybenchError(f"{root}: both {found[split].name}/ and {folder.name}/ name the {split} split: keep one")
        found[split] = folder
    return found


def detect_layout(root: Path, options: LoadOptions) -> str:
    """The layout `options.layout` asks for, or the one the folder's top level shows."""
    if options.layout != "auto":
        return options.layout
    splits = split_folders_of(root)
    if splits:
        others = [f.name for f in sub_folders(root) if f.name.lower() not in SPLIT_FOLDERS]
        if others:
            raise PybenchError(f"{root}: split folders ({', '.join(f.name + '/' for f in splits.values())}) beside "
                               f"other folders ({', '.join(o + '/' for o in others)}): pass --layout splits to read "
                               "only the split folders, or --layout classes to read every folder as a class")
        return "splits"
    if options.manifest is not None or top_level_csvs(root):
        return "manifest"
    return "classes"


def is_mask(relative: Path) -> bool:
    return (any(part.lower() in MASK_FOLDERS for part in relative.parts[:-1])
            or Path(relative.name).stem.lower().endswith(MASK_SUFFIX))


def class_images(folder: Path, left_out: Counter) -> list[str]:
    """The images of one class folder (see the module docstring), counting what is left out, as
    paths in the order of their parts. Walked with os.walk on strings: a folder of tens of
    thousands of images is listed (and, cached, found) in the time its directory entries take,
    with no stat of a file and no pathlib object per file."""
    images_dir = next((p.name for p in sub_folders(folder) if p.name.lower() == IMAGES_FOLDER), None)
    base = os.fspath(folder)
    chosen = []
    for directory, folders, files in os.walk(base):
        folders[:] = [f for f in folders if not (f.startswith(".") or f.lower() in SKIPPED_FOLDERS)]
        inner = os.path.relpath(directory, base)
        parts = () if inner == "." else tuple(inner.split(os.sep))
        in_masks = any(part.lower() in MASK_FOLDERS for part in parts)
        for name in files:
            if name.startswith(".") or not is_image_name(name):
                continue
            if in_masks or os.path.splitext(name)[0].lower().endswith(MASK_SUFFIX):
                left_out[LEFT_MASKS] += 1
            elif images_dir is not None and (not parts or parts[0] != images_dir):
                left_out[LEFT_BESIDE_IMAGES] += 1
            else:
                chosen.append(os.path.join(directory, name))
    return sorted(chosen, key=lambda path: path.split(os.sep))  # pathlib's order: part by part


@dataclass
class Listing:
    """Every image of one folder of class folders, and its class index."""

    paths: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)


def class_names(folder: Path) -> list[str]:
    return [f.name for f in sub_folders(folder)]


def list_classes(folder: Path, classes: list[str], left_out: Counter, empty_ok: bool) -> Listing:
    """The images under `folder/<class>/` for each of `classes` (index = position)."""
    listing = Listing()
    left_out[LEFT_LOOSE] += loose_images(folder)
    for index, name in enumerate(classes):
        images = class_images(folder / name, left_out)
        if not images and not empty_ok:
            raise PybenchError(f"class folder {folder / name} has no images "
                               f"({'/'.join(e[1:] for e in IMAGE_EXTENSIONS)})")
        listing.paths.extend(images)
        listing.labels.extend([index] * len(images))
    return listing


def check_classes(root: Path, classes: list[str], where: str) -> None:
    if not classes:
        raise PybenchError(f"{where} has no class sub-folders: expected {where}/<class name>/<images>")
    if len(classes) == 1:
        raise PybenchError(f"{where} has one class folder ({classes[0]}/): a classifier needs two or more; if "
                           f"{classes[0]}/ holds the class folders, point at it")


def same_classes(root: Path, splits: dict[str, Path]) -> list[str]:
    """The class folder names every split folder holds, or a one-line error naming the difference."""
    names = {split: class_names(folder) for split, folder in splits.items()}
    train = names["train"]
    check_classes(root, train, str(splits["train"]))
    for split, found in names.items():
        missing, extra = sorted(set(train) - set(found)), sorted(set(found) - set(train))
        if missing or extra:
            parts = ([f"lacks {', '.join(m + '/' for m in missing)}"] if missing else []) + (
                [f"has {', '.join(e + '/' for e in extra)} that {splits['train'].name}/ lacks"] if extra else [])
            raise PybenchError(f"{root}: the split folders hold different classes: {splits[split].name}/ "
                               f"{' and '.join(parts)} (every split needs the same class folders)")
    return train


@dataclass(frozen=True)
class FolderPlan:
    """What a folder holds, listed before anything is decoded: per given split its images and
    labels (`pools`; the classes layout gives only train), where each came from, the layout,
    what was left out, and the unlabelled split folders (split -> {"folder", "images", "path"})."""

    classes: list[str]
    pools: dict[str, Listing]
    given: dict[str, str]
    layout: str
    left_out: dict[str, int]
    unlabelled: dict[str, dict] = field(default_factory=dict)

    @property
    def files(self) -> list[Path]:
        """Every file the dataset is made from (the cache key's), unlabelled images included:
        the provenance counts them."""
        unlabelled = [path for found in self.unlabelled.values() for path in sorted(Path(found["path"]).iterdir())
                      if path.is_file() and is_image_name(path.name) and not is_hidden(path)]
        return [path for split in SPLIT_NAMES if split in self.pools for path in self.pools[split].paths] + unlabelled


def plan_classes(root: Path) -> FolderPlan:
    left_out: Counter = Counter()
    classes = class_names(root)
    check_classes(root, classes, str(root))
    listing = list_classes(root, classes, left_out, empty_ok=False)
    return FolderPlan(classes, {"train": listing}, {"train": f"all {len(listing.paths):,} images"},
                      "class folders (every sub-folder a class)", counted(left_out))


def unlabelled_folders(folders: dict[str, Path]) -> dict[str, dict]:
    """The split folders (train/ aside) that hold images directly and no folder at all: a flat
    folder of unlabelled images, e.g. a Kaggle competition's `test/`."""
    found = {}
    for split, folder in folders.items():
        if split != "train" and not sub_folders(folder):
            images = loose_images(folder)
            if images:
                found[split] = {"folder": f"{folder.name}/", "images": images, "path": str(folder.resolve())}
    return found


def plan_splits(root: Path, options: LoadOptions) -> FolderPlan:
    left_out: Counter = Counter()
    folders = split_folders_of(root)
    if "train" not in folders:
        raise PybenchError(f"{root}: split folders {', '.join(f.name + '/' for f in folders.values()) or 'none'} "
                           "but no train/ folder (--layout splits needs train/)")
    if options.layout == "splits":
        left_out[LEFT_FOLDERS] += sum(1 for f in sub_folders(root) if f.name.lower() not in SPLIT_FOLDERS)
    unlabelled = unlabelled_folders(folders)
    folders = {split: folder for split, folder in folders.items() if split not in unlabelled}
    classes = same_classes(root, folders)
    pools = {split: list_classes(folders[split], classes, left_out, empty_ok=split != "train")
             for split in SPLIT_NAMES if split in folders}
    for split, listing in pools.items():
        if not listing.paths:
            raise PybenchError(f"{folders[split]}: the {split} split has no images")
    layout = (f"pre-split folders ({', '.join(folders[s].name + '/' for s in pools)}), classes from the class "
              "folders inside them")
    return FolderPlan(classes, pools, {split: f"given: {folders[split].name}/" for split in pools}, layout,
                      counted(left_out), unlabelled)


def counted(left_out: Counter) -> dict[str, int]:
    return {what: count for what, count in left_out.items() if count}


def load_planned(root: Path, plan: FolderPlan, options: LoadOptions, progress: bool, workers: int,
                 store) -> Dataset:
    """Carve the splits the folder does not give from train (`carve`), then decode each split's
    images straight into the store (`--skip-unreadable` drops the ones that cannot be decoded,
    and names them)."""
    train = plan.pools["train"]
    train_labels = np.asarray(train.labels, dtype=np.int64)
    positions, carved = carve(train_labels, str(root), options.seed,
                              test_fraction=None if "test" in plan.pools else options.test_fraction,
                              val_fraction=None if "val" in plan.pools else options.val_fraction,
                              pool=plan.given["train"].removeprefix("given: "))
    paths = {split: listing.paths for split, listing in plan.pools.items()}
    labels = {split: np.asarray(listing.labels, dtype=np.int64) for split, listing in plan.pools.items()}
    if carved:
        paths.update({split: [train.paths[i] for i in idx] for split, idx in positions.items()})
        labels.update({split: train_labels[idx] for split, idx in positions.items()})
    decoded = decode_splits(store, {split: list(split_paths) for split, split_paths in paths.items()},
                            FileReader(), options.image_size, options.grayscale, workers, progress,
                            skip_unreadable=options.skip_unreadable, resize=options.resize)
    splits = {split: Split(decoded.images[split], np.delete(labels[split], decoded.dropped[split]),
                           np.delete(np.asarray([os.path.relpath(p, root) for p in paths[split]], dtype=str),
                                     decoded.dropped[split]))
              for split in paths}
    story = split_story(plan.given, carved, options, "val" in plan.pools)
    provenance = Provenance(plan.layout, story, dict(plan.left_out), decoded.unreadable, changes=decoded.changes,
                            unlabelled=plan.unlabelled)
    return build_dataset(root.name, str(root), plan.classes, splits["train"], splits["test"], splits.get("val"),
                         provenance=provenance)


def folder_source(root: Path, options: LoadOptions, progress: bool, workers: int) -> Source:
    layout = detect_layout(root, options)
    if layout == "manifest":
        from pybench.datasets.manifest import folder_manifest_source

        return folder_manifest_source(root, options, progress, workers)
    plan = plan_splits(root, options) if layout == "splits" else plan_classes(root)
    return Source(name=root.name, files=plan.files,
                  load=lambda store: load_planned(root, plan, options, progress, workers, store))

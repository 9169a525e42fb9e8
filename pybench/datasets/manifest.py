"""Images listed in a CSV manifest (NIH chest X-ray style), in a .zip archive or beside a .csv.

Columns: `image_col` names the image file (default "Image Index" if present, else the first
column), `label_col` its label (default "Finding Labels" if present, else the second column).
Images are matched to the manifest by file name only (basename): inside a zip they may sit in any
sub-folder and are read without extracting; for a standalone .csv they are looked up under the
csv's folder, recursively. Row numbers in messages count data rows from 1 (the header is row 0).

Splits: an archive or folder holding NIH's official lists (`train_val_list.txt`,
`test_list.txt`) is split by them unless `--split random` (`OFFICIAL_LISTS`); otherwise by a
seeded stratified split. Groups: when the manifest has a group column (`group_col`, default
NIH's "Patient ID" when present, "none" for none), the random split and the validation split
(`--val-fraction`, carved from the training part) keep each group's images on one side
(`split_indices`).

Labels: classes are the sorted unique label strings. A multi-label cell ("A|B") is an error,
unless `binary_negative` is given: then the label equal to it is class 0 (named by it) and every
other cell, multi-label cells included, is class 1 -- a multi-label cell can never equal the single
negative label, so it counts as positive. Class 1 is named as a reader would name it
(`positive_name`): "No Finding" gives "Finding", "Normal" gives "Abnormal", else "not <label>".
With `multilabel` (`--task multilabel`), a cell is a set of findings: split on "|", NIH's
"No Finding" (`NO_FINDING`) the empty set, the classes the sorted findings, and the labels an
(N, findings) 0/1 matrix (`encode_findings`).
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from pybench.datasets.core import (
    Dataset,
    LoadOptions,
    Provenance,
    Source,
    Split,
    build_dataset,
    carve,
    read_bytes,
    split_story,
)
from pybench.datasets.decode import FileReader, ZipReader, decode_splits, open_zip, read_zip_member
from pybench.datasets.images import is_image_name
from pybench.errors import PybenchError

DEFAULT_IMAGE_COLUMN = "Image Index"
DEFAULT_LABEL_COLUMN = "Finding Labels"
DEFAULT_GROUP_COLUMN = "Patient ID"  # NIH's: the follow-up images of one patient
NO_GROUPS = "none"
MULTI_LABEL_SEPARATOR = "|"
NO_FINDING = "No Finding"  # NIH's cell for an image with none of the findings


@dataclass(frozen=True)
class ManifestRows:
    """The image names and label cells of a manifest, in row order."""

    images: list[str]
    labels: list[str]
    groups: list[str] | None = None  # the group column's cells, when the split groups by one
    group_col: str | None = None


def choose_column(header: list[str], requested: str | None, default: str, fallback_index: int, what: str,
                  manifest_name: str) -> int:
    """Index of the requested column, else of `default` if present, else the positional fallback."""
    if requested is not None:
        if requested not in header:
            raise PybenchError(f"{manifest_name}: no {what} column {requested!r}; columns present: {', '.join(header)}")
        return header.index(requested)
    if default in header:
        return header.index(default)
    if len(header) <= fallback_index:
        raise PybenchError(f"{manifest_name}: needs an image and a label column; columns present: {', '.join(header)}")
    return fallback_index


def choose_group_column(header: list[str], requested: str | None, manifest_name: str) -> int | None:
    """Index of the group column: the requested one, else NIH's "Patient ID" when present;
    None for "none" or when there is no such column."""
    if requested == NO_GROUPS:
        return None
    if requested is not None:
        if requested not in header:
            raise PybenchError(f"{manifest_name}: no group column {requested!r} (--group-col); columns present: "
                               f"{', '.join(header)}; pass --group-col none for an ungrouped split")
        return header.index(requested)
    return header.index(DEFAULT_GROUP_COLUMN) if DEFAULT_GROUP_COLUMN in header else None


def parse_manifest(text: str, manifest_name: str, image_col: str | None = None,
                   label_col: str | None = None, group_col: str | None = None) -> ManifestRows:
    """Image names and label cells from CSV text; malformed CSV is a PybenchError."""
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as error:
        raise PybenchError(f"{manifest_name}: not a readable CSV file ({error})") from None
    rows = [row for row in rows if any(cell.strip() for cell in row)]  # blank lines carry nothing
    if not rows:
        raise PybenchError(f"{manifest_name}: empty manifest (no header row)")
    header = [cell.strip() for cell in rows[0]]
    image_index = choose_column(header, image_col, DEFAULT_IMAGE_COLUMN, 0, "image", manifest_name)
    label_index = choose_column(header, label_col, DEFAULT_LABEL_COLUMN, 1, "label", manifest_name)
    if image_index == label_index:
        raise PybenchError(f"{manifest_name}: the image and label columns are the same column {header[image_index]!r}")
    group_index = choose_group_column(header, group_col, manifest_name)
    images, labels, groups = [], [], []
    needed = max(image_index, label_index, -1 if group_index is None else group_index)
    for number, row in enumerate(rows[1:], start=1):
        if len(row) <= needed:
            raise PybenchError(f"{manifest_name}: row {number} has {len(row)} cells, expected {len(header)}")
        image, label = row[image_index].strip(), row[label_index].strip()
        if not image or not label:
            raise PybenchError(f"{manifest_name}: row {number} has an empty image name or label ({row!r})")
        images.append(image)
        labels.append(label)
        if group_index is not None:
            group = row[group_index].strip()
            if not group:
                raise PybenchError(f"{manifest_name}: row {number} has an empty {header[group_index]!r} "
                                   "(the group column); pass --group-col none for an ungrouped split")
            groups.append(group)
    if not images:
        raise PybenchError(f"{manifest_name}: the manifest has a header but no rows")
    if group_index is None:
        return ManifestRows(images, labels)
    return ManifestRows(images, labels, groups, header[group_index])


def positive_name(negative: str) -> str:
    """The positive class's name for a negative label: NIH's "No Finding" is "Finding"."""
    words = negative.split()
    if len(words) > 1 and words[0].lower() in ("no", "non", "not"):
        return " ".join(words[1:])
    if negative.lower() == "normal":
        return negative[0].replace("n", "a").replace("N", "A") + "bnormal"
    return f"not {negative}"


def encode_labels(cells: list[str], manifest_name: str,
                  binary_negative: str | None = None) -> tuple[list[str], np.ndarray]:
    """Class names and int64 labels from label cells (see the module docstring for the rules)."""
    if binary_negative is not None:
        if binary_negative not in cells:
            present = ", ".join(sorted(set(cells))[:5])
            raise PybenchError(f"{manifest_name}: no row has the label {binary_negative!r} given as --binary-negative "
                               f"(labels include: {present})")
        labels = np.asarray([0 if cell == binary_negative else 1 for cell in cells], dtype=np.int64)
        return [binary_negative, positive_name(binary_negative)], labels
    for number, cell in enumerate(cells, start=1):
        if MULTI_LABEL_SEPARATOR in cell:
            raise PybenchError(f"{manifest_name}: row {number} has the multi-label cell {cell!r}: single-label "
                               f"classification needs one label per image; pass --binary-negative LABEL "
                               f"(e.g. --binary-negative 'No Finding') for a two-class task, or --task "
                               f"multilabel for one output per finding")
    classes = sorted(set(cells))
    index = {name: i for i, name in enumerate(classes)}
    return classes, np.asarray([index[cell] for cell in cells], dtype=np.int64)


def encode_findings(cells: list[str], manifest_name: str) -> tuple[list[str], np.ndarray]:
    """Findings (sorted) and an int64 (N, findings) 0/1 matrix from "A|B" cells, "No Finding"
    a row of zeros. A cell naming "No Finding" beside a finding, or an empty part ("A||B"), is
    an error: it contradicts itself or hides a typo."""
    sets = []
    for number, cell in enumerate(cells, start=1):
        parts = [part.strip() for part in cell.split(MULTI_LABEL_SEPARATOR)]
        if cell.strip() == NO_FINDING:
            parts = []
        elif NO_FINDING in parts or not all(parts):
            raise PybenchError(f"{manifest_name}: row {number} has the finding cell {cell!r}: expected "
                               f"{NO_FINDING!r} alone or findings joined by {MULTI_LABEL_SEPARATOR!r}")
        sets.append(parts)
    findings = sorted({part for parts in sets for part in parts})
    if not findings:
        raise PybenchError(f"{manifest_name}: every row is {NO_FINDING!r}: --task multilabel needs at least one "
                           "finding")
    column = {name: i for i, name in enumerate(findings)}
    labels = np.zeros((len(cells), len(findings)), dtype=np.int64)
    for row, parts in enumerate(sets):
        labels[row, [column[part] for part in parts]] = 1
    return findings, labels


def index_by_basename(names: list[str]) -> dict[str, str | None]:
    """Map each image's file name to its full name; None marks a file name present twice (ambiguous)."""
    index: dict[str, str | None] = {}
    for name in names:
        base = PurePosixPath(name.replace("\\", "/")).name
        index[base] = None if base in index else name
    return index


def match_images(rows: ManifestRows, index: dict[str, str | None], manifest_name: str, container: str) -> list[str]:
    """The full name of each row's image, or a PybenchError for the first one missing."""
    matched = []
    for number, image in enumerate(rows.images, start=1):
        base = PurePosixPath(image.replace("\\", "/")).name
        if base not in index:
            raise PybenchError(f"{manifest_name}: row {number}: image {image!r} not found in {container}")
        if index[base] is None:
            raise PybenchError(f"{manifest_name}: row {number}: image {image!r} matches several files in {container}")
        matched.append(index[base])
    return matched


OFFICIAL_LISTS = ("train_val_list.txt", "test_list.txt")  # NIH ChestX-ray14's patient-wise split


@dataclass(frozen=True)
class OfficialLists:
    """The image names of an official split (NIH's train_val_list.txt and test_list.txt)."""

    train_val: frozenset[str]
    test: frozenset[str]
    where: str  # where the lists were found, for messages and the provenance

    @classmethod
    def parse(cls, texts: tuple[str, str], where: str) -> OfficialLists:
        names = [frozenset(basename(line.strip()) for line in text.splitlines() if line.strip()) for text in texts]
        return cls(names[0], names[1], where)


def basename(name: str) -> str:
    return PurePosixPath(name.replace("\\", "/")).name


def official_positions(rows: ManifestRows, lists: OfficialLists, manifest_name: str) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the rows the official lists put in train (train_val_list.txt) and in test;
    a row in both is an error; rows in neither are left out (counted by the caller)."""
    names = [basename(image) for image in rows.images]
    in_train = np.asarray([name in lists.train_val for name in names], dtype=bool)
    in_test = np.asarray([name in lists.test for name in names], dtype=bool)
    both = np.flatnonzero(in_train & in_test)
    if len(both):
        raise PybenchError(f"{manifest_name}: row {both[0] + 1}: image {rows.images[both[0]]!r} is in both "
                           f"{OFFICIAL_LISTS[0]} and {OFFICIAL_LISTS[1]} ({lists.where})")
    if not in_test.any() or not in_train.any():
        empty = OFFICIAL_LISTS[1] if not in_test.any() else OFFICIAL_LISTS[0]
        raise PybenchError(f"{manifest_name}: no manifest image is in {empty} ({lists.where}): pass --split random "
                           "to split at random instead")
    return np.flatnonzero(in_train), np.flatnonzero(in_test)


def choose_split_source(lists: OfficialLists | None, options: LoadOptions, source: str) -> OfficialLists | None:
    """The official lists to use, if any (`--split`)."""
    if options.split == "official" and lists is None:
        raise PybenchError(f"{source}: --split official needs {' and '.join(OFFICIAL_LISTS)} beside the manifest "
                           "(NIH's official split); none was found")
    return None if options.split == "random" else lists


def load_manifest_images(name: str, source: str, rows: ManifestRows, paths: list[str],
                         read: Callable[[str], bytes], manifest_name: str, options: LoadOptions,
                         progress: bool, workers: int, store, layout: str,
                         lists: OfficialLists | None = None) -> Dataset:
    """Split by the official lists when there are (and `--split` allows), else by the labels
    (grouped when the manifest has a group column); carve the validation split from train
    (grouped too) with `--val-fraction`; then decode each split's images straight into the store."""
    if options.multilabel:
        classes, labels = encode_findings(rows.labels, manifest_name)
    else:
        classes, labels = encode_labels(rows.labels, manifest_name, options.binary_negative)
    groups = None if rows.groups is None else np.asarray(rows.groups)
    left_out = {}
    found, lists = lists, choose_split_source(lists, options, source)
    if lists is not None:
        pool, test_idx = official_positions(rows, lists, manifest_name)
        if len(labels) - len(pool) - len(test_idx):
            left_out["manifest rows in neither official list"] = int(len(labels) - len(pool) - len(test_idx))
        carved_at, carved = carve(labels[pool], manifest_name, options.seed, val_fraction=options.val_fraction,
                                  groups=None if groups is None else groups[pool], group_col=rows.group_col or "",
                                  pool=OFFICIAL_LISTS[0])
        positions = {split: pool[idx] for split, idx in carved_at.items()}
        positions["test"] = test_idx
        given = {"train": f"given: {OFFICIAL_LISTS[0]} (official split, {lists.where})",
                 "test": f"given: {OFFICIAL_LISTS[1]} (official split, {lists.where})"}
    else:
        positions, carved = carve(labels, manifest_name, options.seed, test_fraction=options.test_fraction,
                                  val_fraction=options.val_fraction, groups=groups, group_col=rows.group_col or "")
        given = {"train": f"all {len(labels):,} manifest rows"}
        if found is not None:
            given["train"] += f" (--split random: the official lists in {found.where} are not used)"
    decoded = decode_splits(store, {split: [paths[i] for i in idx] for split, idx in positions.items()},
                            read, options.image_size, options.grayscale, workers, progress,
                            skip_unreadable=options.skip_unreadable, resize=options.resize)
    positions = {split: np.delete(idx, decoded.dropped[split]) for split, idx in positions.items()}
    grouping = None
    if groups is not None:
        grouping = {"column": rows.group_col,
                    **{split: int(len(np.unique(groups[idx]))) for split, idx in positions.items()},
                    # groups in more than one split: none unless the official lists put some there
                    "both": sum(1 for n in Counter(g for idx in positions.values()
                                                   for g in set(groups[idx].tolist())).values() if n > 1)}
    provenance = Provenance(layout, split_story(given, carved, options, False), left_out, decoded.unreadable,
                            changes=decoded.changes)
    names = np.asarray(rows.images, dtype=str)
    splits = {split: Split(decoded.images[split], labels[idx], names[idx]) for split, idx in positions.items()}
    return build_dataset(name, source, classes, splits["train"], splits["test"], splits.get("val"),
                         groups=grouping, provenance=provenance)


def decode_text(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise PybenchError(f"{name}: not UTF-8 text ({error.reason} at byte {error.start})") from None


# --- a .zip archive holding the manifest and the images -------------------------------------------------

def choose_zip_manifest(members: list[str], requested: str | None, archive: Path) -> str:
    csvs = [m for m in members if m.lower().endswith(".csv") and not PurePosixPath(m).name.startswith(".")]
    if requested is not None:
        hits = [m for m in csvs if m == requested or PurePosixPath(m).name == requested]
        if len(hits) != 1:
            raise PybenchError(f"{archive}: manifest {requested!r} not found; CSV files in the archive: "
                               f"{', '.join(csvs) or 'none'}")
        return hits[0]
    if len(csvs) != 1:
        listed = ", ".join(csvs) if csvs else "none"
        raise PybenchError(f"{archive}: pass --manifest NAME to choose the CSV manifest; "
                           f"CSV files in the archive: {listed}")
    return csvs[0]


def zip_lists(bundle: zipfile.ZipFile, members: list[str], archive: Path) -> OfficialLists | None:
    """The official split lists in the archive (any folder), or None when it holds not both."""
    found = {}
    for member in members:
        name = basename(member)
        if name in OFFICIAL_LISTS:
            if name in found:
                raise PybenchError(f"{archive}: {name} is in the archive twice ({found[name]}, {member}): keep one")
            found[name] = member
    if len(found) < len(OFFICIAL_LISTS):
        return None
    texts = tuple(decode_text(read_zip_member(bundle, found[n], archive), f"{archive}:{found[n]}")
                  for n in OFFICIAL_LISTS)
    return OfficialLists.parse(texts, f"in {archive.name}")


def folder_lists(folder: Path) -> OfficialLists | None:
    """The official split lists beside a manifest, or None when the folder holds not both."""
    paths = [folder / name for name in OFFICIAL_LISTS]
    if not all(path.is_file() for path in paths):
        return None
    texts = tuple(decode_text(read_bytes(path), str(path)) for path in paths)
    return OfficialLists.parse(texts, f"beside the manifest in {folder}")


def zip_source(archive: Path, options: LoadOptions, progress: bool, workers: int) -> Source:
    def load(store) -> Dataset:
        with open_zip(archive) as bundle:
            members = [info.filename for info in bundle.infolist() if not info.is_dir()]
            manifest = choose_zip_manifest(members, options.manifest, archive)
            manifest_name = f"{archive}:{manifest}"
            text = decode_text(read_zip_member(bundle, manifest, archive), manifest_name)
            rows = parse_manifest(text, manifest_name, options.image_col, options.label_col, options.group_col)
            index = index_by_basename([m for m in members if is_image_name(m)])
            members_in_order = match_images(rows, index, manifest_name, str(archive))
            lists = zip_lists(bundle, members, archive)
        # Each decoding process opens the archive itself and reads only its own members.
        return load_manifest_images(archive.stem, str(archive), rows, members_in_order, ZipReader(str(archive)),
                                    manifest_name, options, progress, workers, store,
                                    f"zip archive with the CSV manifest {manifest}", lists)

    return Source(name=archive.stem, files=[archive], load=load, multilabel_capable=True)


# --- a standalone .csv with images somewhere under its folder --------------------------------------------

def csv_source(manifest_path: Path, options: LoadOptions, progress: bool, workers: int,
               name: str | None = None, layout: str | None = None) -> Source:
    """Images under the manifest's folder (searched recursively), named by the manifest; the
    official split lists are looked for beside it. `name` and `layout` default to the manifest's."""
    folder = manifest_path.parent
    image_paths = [str(p) for p in folder.rglob("*") if p.is_file() and is_image_name(p.name)]
    list_files = [folder / n for n in OFFICIAL_LISTS if (folder / n).is_file()]

    def load(store) -> Dataset:
        manifest_name = str(manifest_path)
        rows = parse_manifest(decode_text(read_bytes(manifest_path), manifest_name), manifest_name,
                              options.image_col, options.label_col, options.group_col)
        index = index_by_basename(image_paths)
        paths = match_images(rows, index, manifest_name, f"{folder} (searched recursively)")
        return load_manifest_images(name or manifest_path.stem, str(manifest_path), rows, paths, FileReader(),
                                    manifest_name, options, progress, workers, store,
                                    layout or f"CSV manifest {manifest_path.name} with images under {folder}",
                                    folder_lists(folder))

    return Source(name=name or manifest_path.stem, files=sorted(map(Path, image_paths)), load=load,
                  multilabel_capable=True, metadata=[manifest_path, *list_files])


def folder_manifest_source(root: Path, options: LoadOptions, progress: bool, workers: int) -> Source:
    """A folder whose top level holds the CSV manifest (`--manifest NAME` picks one of several)
    and, anywhere below, the images (an extracted NIH release)."""
    csvs = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() == ".csv")
    if options.manifest is not None:
        chosen = [p for p in csvs if p.name == options.manifest]
        if not chosen:
            raise PybenchError(f"{root}: no manifest {options.manifest!r} at the top of the folder; CSV files "
                               f"there: {', '.join(p.name for p in csvs) or 'none'}")
    elif len(csvs) != 1:
        raise PybenchError(f"{root}: {'several CSV files' if csvs else 'no CSV file'} at the top of the folder "
                           f"({', '.join(p.name for p in csvs) or 'none'}): pass --manifest NAME to read one as the "
                           "manifest, or --layout classes to read the sub-folders as classes")
    else:
        chosen = csvs
    manifest = chosen[0]
    source = csv_source(manifest, options, progress, workers, name=root.name,
                        layout=f"folder with the CSV manifest {manifest.name} at its top level")
    if options.layout == "manifest":
        return source

    def load(store) -> Dataset:
        try:
            return source.load(store)
        except PybenchError as error:
            raise PybenchError(f"{error} (read as a manifest because {root} holds {manifest.name} at its top "
                               "level; --layout classes reads its sub-folders as classes)") from None

    return Source(name=source.name, files=source.files, load=load, multilabel_capable=True, metadata=source.metadata)

"""Images listed in a CSV manifest (NIH chest X-ray style), in a .zip archive or beside a .csv.

Columns: `image_col` names the image file (default "Image Index" if present, else the first
column), `label_col` its label (default "Finding Labels" if present, else the second column).
Images are matched to the manifest by file name only (basename): inside a zip they may sit in any
sub-folder and are read without extracting; for a standalone .csv they are looked up under the
csv's folder, recursively. Row numbers in messages count data rows from 1 (the header is row 0).

Groups: when the manifest has a group column (`group_col`, default NIH's "Patient ID" when
present, "none" for none), the split keeps each group's images on one side (`split_indices`).

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from pybench.datasets.core import Dataset, LoadOptions, Source, Split, build_dataset, read_bytes, split_indices
from pybench.datasets.decode import FileReader, ZipReader, decode_splits
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


def load_manifest_images(name: str, source: str, rows: ManifestRows, paths: list[str],
                         read: Callable[[str], bytes], manifest_name: str, options: LoadOptions,
                         progress: bool, workers: int, store) -> Dataset:
    """Split by the labels (grouped when the manifest has a group column), then decode each
    split's images straight into the store."""
    if options.multilabel:
        classes, labels = encode_findings(rows.labels, manifest_name)
    else:
        classes, labels = encode_labels(rows.labels, manifest_name, options.binary_negative)
    groups = None if rows.groups is None else np.asarray(rows.groups)
    train_idx, test_idx = split_indices(labels, options.test_fraction, options.seed, manifest_name, groups)
    images = decode_splits(store, {"train": [paths[i] for i in train_idx], "test": [paths[i] for i in test_idx]},
                           read, options.image_size, options.grayscale, workers, progress)
    grouping = None
    if groups is not None:
        grouping = {"column": rows.group_col, "train": int(len(np.unique(groups[train_idx]))),
                    "test": int(len(np.unique(groups[test_idx])))}
    return build_dataset(name, source, classes, Split(images["train"], labels[train_idx]),
                         Split(images["test"], labels[test_idx]), groups=grouping)


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
        # Each decoding process opens the archive itself and reads only its own members.
        return load_manifest_images(archive.stem, str(archive), rows, members_in_order, ZipReader(str(archive)),
                                    manifest_name, options, progress, workers, store)

    return Source(name=archive.stem, files=[archive], load=load)


# --- a standalone .csv with images somewhere under its folder --------------------------------------------

def csv_source(manifest_path: Path, options: LoadOptions, progress: bool, workers: int) -> Source:
    folder = manifest_path.parent
    image_paths = [str(p) for p in folder.rglob("*") if p.is_file() and is_image_name(p.name)]

    def load(store) -> Dataset:
        manifest_name = str(manifest_path)
        rows = parse_manifest(decode_text(read_bytes(manifest_path), manifest_name), manifest_name,
                              options.image_col, options.label_col, options.group_col)
        index = index_by_basename(image_paths)
        paths = match_images(rows, index, manifest_name, f"{folder} (searched recursively)")
        return load_manifest_images(manifest_path.stem, str(manifest_path), rows, paths, FileReader(),
                                    manifest_name, options, progress, workers, store)

    return Source(name=manifest_path.stem, files=[manifest_path, *sorted(map(Path, image_paths))], load=load)

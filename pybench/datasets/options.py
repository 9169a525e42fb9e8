"""Command-line helpers: the dataset arguments, their conversion to load_dataset keywords, and
the `datasets info` description.

Numbers are parsed here rather than by argparse so a bad value is a one-line PybenchError (argparse
would print its usage block too).
"""

from __future__ import annotations

import argparse

import numpy as np

from pybench.datasets.core import LAYOUTS, SPLIT_SOURCES, Dataset
from pybench.datasets.story import DEFAULT_RESIZE, RESIZE_HELP, RESIZE_METHODS
from pybench.errors import PybenchError

TASKS = ("single", "multilabel")


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("dataset options")
    group.add_argument("--data-dir", metavar="DIR", default=None,
                       help="data root (default: $PYBENCH_DATA_DIR, else ~/.cache/pybench)")
    group.add_argument("--image-size", metavar="S", default=None,
                       help="make every image S x S (bilinear; a non-square image as --resize says)")
    group.add_argument("--resize", choices=RESIZE_METHODS, default=DEFAULT_RESIZE,
                       help="how --image-size makes a non-square image square: "
                            + "; ".join(f"{name}: {text}" for name, text in RESIZE_HELP.items())
                            + f" (default {DEFAULT_RESIZE}); what was done is said with the dataset")
    group.add_argument("--grayscale", action="store_true", help="convert images to one channel")
    group.add_argument("--test-fraction", metavar="F", default="0.2",
                       help="test share when the source has no test split (default 0.2)")
    group.add_argument("--val-fraction", metavar="F", default=None,
                       help="validation share carved from train when the source has no validation split "
                            "(stratified, grouped like the test split); best epoch and --patience select on "
                            "it (default: none; 0.1 with --patience)")
    group.add_argument("--split-seed", metavar="N", default="0", help="seed of those splits (default 0)")
    group.add_argument("--layout", choices=LAYOUTS, default="auto",
                       help="how a folder is read: auto detects (default); classes: every sub-folder a class; "
                            "splits: train/ val/ test/ folders of class folders; manifest: a CSV beside images")
    group.add_argument("--split", choices=SPLIT_SOURCES, default="auto",
                       help="a manifest's test split: auto uses the official lists (train_val_list.txt, "
                            "test_list.txt) when present (default); official requires them; random ignores them")
    group.add_argument("--skip-unreadable", action="store_true",
                       help="leave out images that cannot be decoded (listed in the run's unreadable.txt) "
                            "instead of stopping")
    group.add_argument("--no-checksum", action="store_true",
                       help="accept a MedMNIST file whose MD5 differs from medmnist.INFO's (a modified copy)")
    group.add_argument("--manifest", metavar="NAME", default=None, help="the CSV manifest inside a .zip")
    group.add_argument("--image-col", metavar="COL", default=None,
                       help='manifest column of image file names (default "Image Index", else the first)')
    group.add_argument("--label-col", metavar="COL", default=None,
                       help='manifest column of labels (default "Finding Labels", else the second)')
    group.add_argument("--binary-negative", metavar="LABEL", default=None,
                       help="two classes: LABEL (class 0) against everything else, multi-label cells included")
    group.add_argument("--task", choices=TASKS, default="single",
                       help='single: one class per image (default); multilabel (a manifest only): each '
                            'image has a set of findings ("A|B", "No Finding" none), one sigmoid output each')
    group.add_argument("--group-col", metavar="COL", default=None,
                       help='manifest column whose groups never straddle train and test (default "Patient ID" '
                            'when present; "none": no grouping)')
    group.add_argument("--workers", metavar="N", default=None,
                       help="processes that decode images (default: every core)")
    group.add_argument("--no-cache", action="store_true", help="decode again instead of reading the cache")


def parse_number(text, convert, option: str, what: str):
    if text is None or isinstance(text, (int, float)):
        return text
    try:
        return convert(text)
    except ValueError:
        raise PybenchError(f"{option} must be {what}, got {text!r}") from None


def dataset_options(args: argparse.Namespace) -> dict:
    """load_dataset keyword arguments from parsed arguments (numbers checked, one-line errors)."""
    return {
        "data_dir": args.data_dir,
        "image_size": parse_number(args.image_size, int, "--image-size", "a positive integer"),
        "resize": args.resize,
        "grayscale": args.grayscale,
        "test_fraction": parse_number(args.test_fraction, float, "--test-fraction", "a number between 0 and 1"),
        "seed": parse_number(args.split_seed, int, "--split-seed", "an integer"),
        "manifest": args.manifest,
        "image_col": args.image_col,
        "label_col": args.label_col,
        "binary_negative": args.binary_negative,
        "group_col": args.group_col,
        "multilabel": args.task == "multilabel",
        "val_fraction": parse_number(args.val_fraction, float, "--val-fraction", "a number between 0 and 1"),
        "layout": args.layout,
        "split": args.split,
        "skip_unreadable": args.skip_unreadable,
        "checksum": not args.no_checksum,
        "workers": parse_number(args.workers, int, "--workers", "a whole number of at least 1"),
        "cache": not args.no_cache,
    }


def class_counts_text(labels: np.ndarray, classes: list[str]) -> str:
    counts = np.bincount(labels, minlength=len(classes))
    return ", ".join(f"{name}: {int(count)}" for name, count in zip(classes, counts))


def finding_counts_text(labels: np.ndarray, findings: list[str]) -> str:
    """Images per finding, then how many have none and how many several (multi-label labels)."""
    per_image = labels.sum(axis=1)
    counts = ", ".join(f"{name}: {int(count)}" for name, count in zip(findings, labels.sum(axis=0)))
    return (f"{counts}; no finding: {int((per_image == 0).sum())}, several findings: "
            f"{int((per_image > 1).sum())}")


def groups_text(groups: dict) -> str:
    """How many groups (patients) each split holds, and how many are in more than one."""
    counts = ", ".join(f"{groups[split]} in {split}" for split in ("train", "val", "test") if split in groups)
    shared = groups.get("both", 0)
    return (f"splits grouped by {groups['column']!r}: groups {counts}; "
            + (f"{shared} in more than one (the official lists' own overlap)" if shared else "none in two splits"))


def describe_dataset(ds: Dataset) -> str:
    """What `python -m pybench datasets info SPEC` prints."""
    kind = "findings, multi-label" if ds.multilabel else "classes"
    lines = [f"name: {ds.name}", f"source: {ds.source}",
             f"{kind} ({ds.num_classes}): {', '.join(ds.classes)}", f"input shape (C, H, W): {ds.in_shape}",
             *ds.provenance.lines(), "splits:"]
    for name, split in ds.splits().items():
        lines.append(f"  {name}: images {split.images.shape} {split.images.dtype}, "
                     f"labels {split.labels.shape} {split.labels.dtype}")
        if ds.multilabel:
            lines.append(f"    images per finding: {finding_counts_text(split.labels, ds.classes)}")
        else:
            lines.append(f"    class counts: {class_counts_text(split.labels, ds.classes)}")
    lines.append("normalisation (train, images/255): mean " + ", ".join(f"{m:.6f}" for m in ds.mean)
                 + "; std " + ", ".join(f"{s:.6f}" for s in ds.std))
    if ds.groups is not None:
        lines.append(groups_text(ds.groups))
    lines.append(f"fingerprint: {ds.fingerprint}")
    return "\n".join(lines)

"""Folder layouts as people have them (issue 31): pre-split train/ val/ test/ trees, image and
mask folders, the validation split, unreadable images; each read the way it is laid out, and
said so. Every image's pixels encode where it came from (split and class), so a test can check
that each image landed in the split and class its folder says, not only the counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pybench.datasets import describe_dataset, load_dataset
from pybench.errors import PybenchError

pytestmark = pytest.mark.usefixtures("isolated_cache")

SPLIT_CODE = {"train": 10, "val": 20, "valid": 20, "test": 30}
CLASSES = ("cat", "dog")


def write_images(folder: Path, count: int, value: int, suffix: str = "") -> None:
    """`count` 6x6 grayscale PNGs of constant `value` (readable back after decoding)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(np.full((6, 6), value, np.uint8)).save(folder / f"img{i}{suffix}.png")


def split_tree(root: Path, counts: dict[str, int], classes=CLASSES) -> Path:
    """root/<split>/<class>/*.png: pixel value = split code + class index."""
    for split, count in counts.items():
        for index, name in enumerate(classes):
            write_images(root / split / name, count, SPLIT_CODE[split.lower()] + index)
    return root


def pixel(split) -> np.ndarray:
    return split.images[:, 0, 0, 0].astype(int)


def test_train_test_tree_gives_the_real_classes_and_the_given_splits(tmp_path):
    root = split_tree(tmp_path / "xray", {"train": 6, "test": 3})
    ds = load_dataset(str(root), cache=False, progress=False)
    # Not two classes called "test" and "train": the classes inside them.
    assert ds.classes == ["cat", "dog"] and len(ds.train) == 12 and len(ds.test) == 6 and ds.val is None
    assert (pixel(ds.train) == 10 + ds.train.labels).all() and (pixel(ds.test) == 30 + ds.test.labels).all()
    text = describe_dataset(ds)
    assert "layout: pre-split folders (train/, test/), classes from the class folders inside them" in text
    assert "  test: given: test/" in text and "  train: given: train/" in text


def test_train_val_test_tree_keeps_all_three_given_splits(tmp_path):
    root = split_tree(tmp_path / "kaggle", {"Train": 5, "valid": 2, "TEST": 3})
    ds = load_dataset(str(root), cache=False, progress=False, val_fraction=0.3)
    assert [len(ds.train), len(ds.val), len(ds.test)] == [10, 4, 6]
    assert (pixel(ds.val) == 20 + ds.val.labels).all() and (pixel(ds.test) == 30 + ds.test.labels).all()
    assert ds.provenance.splits["val"].startswith("given: valid/")
    assert "--val-fraction 0.3 not applied: the source has its own" in ds.provenance.splits["val"]


def test_only_a_train_folder_gets_its_test_and_val_carved_from_it(tmp_path):
    root = split_tree(tmp_path / "only", {"train": 20})
    ds = load_dataset(str(root), cache=False, progress=False, test_fraction=0.2, val_fraction=0.25)
    assert [len(ds.train), len(ds.val), len(ds.test)] == [24, 8, 8]
    assert all((pixel(split) == 10 + split.labels).all() for split in (ds.train, ds.val, ds.test))
    assert all(np.bincount(split.labels).tolist() == [len(split) // 2] * 2 for split in (ds.val, ds.test))
    assert ds.provenance.splits["test"].startswith("0.2 of train/")
    assert ds.provenance.splits["val"].startswith("0.25 of the training part")


def test_split_folders_beside_other_folders_is_one_line_naming_the_way_out(tmp_path):
    root = split_tree(tmp_path / "mixed", {"train": 3, "test": 3})
    write_images(root / "extras" / "x", 2, 5)
    with pytest.raises(PybenchError, match=r"split folders \(test/, train/\) beside other folders \(extras/\): "
                                           "pass --layout splits"):
        load_dataset(str(root), cache=False, progress=False)
    ds = load_dataset(str(root), cache=False, progress=False, layout="splits")
    assert ds.classes == ["cat", "dog"]
    assert ds.provenance.left_out == {"folders beside the split folders (--layout splits)": 1}


def test_layout_classes_reads_folders_named_train_and_test_as_classes(tmp_path):
    """A dataset whose classes really are called train and test (--layout overrides detection)."""
    root = tmp_path / "named"
    for index, name in enumerate(("test", "train")):
        write_images(root / name, 5, index)
    ds = load_dataset(str(root), cache=False, progress=False, layout="classes", test_fraction=0.4)
    assert ds.classes == ["test", "train"] and len(ds.train) + len(ds.test) == 10
    assert ds.provenance.layout == "class folders (every sub-folder a class)"


def test_split_folders_with_different_classes_are_named(tmp_path):
    root = split_tree(tmp_path / "uneven", {"train": 2})
    split_tree(root, {"test": 2}, classes=("cat", "fox"))
    with pytest.raises(PybenchError, match=r"test/ lacks dog/ and has fox/ that train/ lacks"):
        load_dataset(str(root), cache=False, progress=False)


def test_images_beside_masks_train_on_the_images_only(tmp_path, run_cli):
    """The COVID-19 Radiography Database: <class>/images/*.png beside <class>/masks/*.png."""
    root = tmp_path / "covid"
    for index, name in enumerate(("COVID", "Normal")):
        write_images(root / name / "images", 5, 100 + index)
        write_images(root / name / "masks", 5, 255)  # lung masks: white, never an X-ray
    write_images(root / "Normal" / "images", 2, 101, suffix="_mask")  # a mask by its name
    ds = load_dataset(str(root), cache=False, progress=False, test_fraction=0.4)
    assert len(ds.train) + len(ds.test) == 10
    assert set(pixel(ds.train)) | set(pixel(ds.test)) == {100, 101}
    assert ds.provenance.left_out == {"mask files (folders named mask/masks, files named *_mask.*)": 12}
    info = run_cli("datasets", "info", root, "--test-fraction", "0.4")
    assert info.returncode == 0, info.stderr
    assert "left out 12 mask files (folders named mask/masks, files named *_mask.*)" in info.stdout


def test_class_folder_with_an_images_folder_takes_only_those(tmp_path):
    root = tmp_path / "pick"
    for index, name in enumerate(("a", "b")):
        write_images(root / name / "images", 4, index)
        write_images(root / name / "thumbnails", 3, 200)
    ds = load_dataset(str(root), cache=False, progress=False, test_fraction=0.5)
    assert set(pixel(ds.train)) | set(pixel(ds.test)) == {0, 1}
    assert ds.provenance.left_out == {
        "image files outside the images/ folders of class folders that have one": 6}


def test_val_fraction_is_stratified_seeded_and_fingerprinted(tmp_path):
    root = tmp_path / "flat"
    for index, name in enumerate(CLASSES):
        write_images(root / name, 20, index)
    plain = load_dataset(str(root), cache=False, progress=False)
    held = load_dataset(str(root), cache=False, progress=False, val_fraction=0.1)
    again = load_dataset(str(root), cache=False, progress=False, val_fraction=0.1)
    assert plain.val is None and len(held.val) == 4 and np.bincount(held.val.labels).tolist() == [2, 2]
    assert len(held.test) == len(plain.test) == 8 and len(held.train) == 28
    assert held.fingerprint == again.fingerprint != plain.fingerprint


def write_broken(path: Path) -> None:
    path.write_bytes(b"\x89PNG\r\n\x1a\n truncated")


def test_unreadable_images_stop_the_load_unless_skipped(tmp_path):
    root = tmp_path / "damaged"
    for index, name in enumerate(CLASSES):
        write_images(root / name, 6, index)
    write_broken(root / "dog" / "zz-broken.png")
    with pytest.raises(PybenchError, match="cannot decode image .*dog/zz-broken.png"):
        load_dataset(str(root), cache=False, progress=False)
    ds = load_dataset(str(root), cache=False, progress=False, skip_unreadable=True, test_fraction=0.25)
    assert len(ds.train) + len(ds.test) == 12
    assert all((pixel(split) == split.labels).all() for split in (ds.train, ds.test))  # no zero rows kept
    assert [Path(name).name for name in ds.provenance.unreadable] == ["zz-broken.png"]
    assert any("left out 1 unreadable image (--skip-unreadable)" in line for line in ds.provenance.lines())
    cached = load_dataset(str(root), progress=False, skip_unreadable=True, test_fraction=0.25)
    again = load_dataset(str(root), progress=False, skip_unreadable=True, test_fraction=0.25)
    assert again.provenance == cached.provenance and again.fingerprint == ds.fingerprint


def test_a_top_level_csv_makes_a_manifest_folder(tmp_path):
    """An extracted NIH release: the CSV at the top, images in sub-folders."""
    root = tmp_path / "extracted"
    rows = []
    for i in range(12):
        label = ("No Finding", "Effusion")[i % 2]
        write_images(root / "images_001" / "images", 1, i % 2, suffix=f"-{i:03d}")
        (root / "images_001" / "images" / f"img0-{i:03d}.png").rename(root / "images_001" / "images" / f"{i:03d}.png")
        rows.append(f"{i:03d}.png,{label}")
    (root / "Data_Entry.csv").write_text("Image Index,Finding Labels\n" + "\n".join(rows) + "\n")
    ds = load_dataset(str(root), cache=False, progress=False, test_fraction=0.25)
    assert ds.classes == ["Effusion", "No Finding"] and len(ds.train) + len(ds.test) == 12
    assert ds.provenance.layout == "folder with the CSV manifest Data_Entry.csv at its top level"


def test_compare_selects_on_validation_and_records_both_per_epoch(tmp_path, run_cli):
    """A user's pre-split folder with a damaged image, as `compare` runs it: --skip-unreadable
    lists the image in the run's folder, --val-fraction 0.2 carves a validation split from
    train/, the kept epoch is the best validation epoch (never chosen on test), and the results
    and the report carry validation and test figures for every epoch."""
    import json

    rng = np.random.default_rng(0)
    root = tmp_path / "shapes"
    for split, count in (("train", 40), ("test", 12)):
        for index, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):  # two learnable classes: dark and bright noise
                pixels = rng.integers(0, 128, (28, 28)) + 100 * index
                Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    write_broken(root / "train" / "dog" / "broken.png")
    out = tmp_path / "run"
    result = run_cli("compare", root, "--frameworks", "torch", "--models", "lenet5", "--epochs", "4",
                     "--batch-size", "16", "--val-fraction", "0.2", "--skip-unreadable", "--out", out)
    assert result.returncode == 0, result.stderr[-2000:]
    document = json.loads((out / "results.json").read_text())
    provenance = document["dataset"]["provenance"]
    assert provenance["layout"].startswith("pre-split folders (train/, test/)") and provenance["unreadable"] == 1
    sizes = document["dataset"]
    # 81 files in train/, the damaged one left out after the split; the test split is test/'s.
    assert sizes["train_size"] + sizes["val_size"] == 80 and sizes["val_size"] in (16, 17) and sizes["test_size"] == 24
    assert (out / "unreadable.txt").read_text().strip().endswith("train/dog/broken.png")
    run = document["runs"][0]
    val, test, kept = run["epoch_val_accuracy"], run["epoch_accuracy"], run["kept_epoch"]
    assert len(val) == len(test) == run["epochs_run"] == 4
    assert kept == int(np.argmax(val)) + 1 and run["test_accuracy"] == test[kept - 1]
    report = (out / "report.md").read_text()
    assert "val accuracy %" in report and "- layout: pre-split folders (train/, test/)" in report
    assert "left out 1 unreadable image (--skip-unreadable; listed in unreadable.txt)" in report

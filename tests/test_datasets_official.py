"""NIH's official split lists (train_val_list.txt, test_list.txt) in a zip or beside a manifest:
used by default and said, overridden by --split random, required by --split official, and a
validation split carved from the official training part, grouped by patient."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from pybench.datasets import describe_dataset, load_dataset
from pybench.errors import PybenchError

pytestmark = pytest.mark.usefixtures("isolated_cache")

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def release_with_lists(tmp_path_factory) -> Path:
    """120 synthetic X-rays in the release's layout, with its patient-wise official lists."""
    out = tmp_path_factory.mktemp("nih-lists") / "nih.zip"
    subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "make_nih_zip.py"), str(out), "--images", "120",
                    "--workers", "1", "--official-lists"], check=True, capture_output=True, timeout=300)
    return out


def listed(archive: Path, name: str) -> set[str]:
    with zipfile.ZipFile(archive) as bundle:
        return set(bundle.read(name).decode().split())


def test_official_lists_are_used_by_default_and_said(release_with_lists):
    test_names = listed(release_with_lists, "test_list.txt")
    ds = load_dataset(str(release_with_lists), binary_negative="No Finding", image_size=16, progress=False)
    assert len(ds.test) == len(test_names) and len(ds.train) == 120 - len(test_names)
    assert ds.provenance.splits["test"] == f"given: test_list.txt (official split, in {release_with_lists.name})"
    assert ds.groups["both"] == 0  # the release's lists are patient-wise, and so are the generator's
    text = describe_dataset(ds)
    assert "  test: given: test_list.txt (official split" in text


def test_split_random_ignores_the_lists_and_says_so(release_with_lists):
    official = load_dataset(str(release_with_lists), binary_negative="No Finding", image_size=16, progress=False)
    rand = load_dataset(str(release_with_lists), binary_negative="No Finding", image_size=16, progress=False,
                        split="random", test_fraction=0.5)
    assert abs(len(rand.test) - 60) <= 20 and rand.fingerprint != official.fingerprint
    assert "--split random: the official lists" in rand.provenance.splits["train"]


def test_val_fraction_carves_the_official_training_part_by_patient(release_with_lists):
    ds = load_dataset(str(release_with_lists), binary_negative="No Finding", image_size=16, progress=False,
                      val_fraction=0.25)
    test_names = listed(release_with_lists, "test_list.txt")
    assert len(ds.test) == len(test_names) and len(ds.val) > 0
    assert len(ds.train) + len(ds.val) == 120 - len(test_names)
    assert ds.groups["val"] > 0 and ds.groups["both"] == 0  # no patient in two splits
    assert ds.provenance.splits["val"].startswith("0.25 of the training part, stratified, grouped by 'Patient ID'")


def test_split_official_without_lists_is_one_line(nih_zip):
    with pytest.raises(PybenchError, match="--split official needs train_val_list.txt and test_list.txt"):
        load_dataset(str(nih_zip()), binary_negative="No Finding", split="official", progress=False)


def test_lists_beside_an_extracted_manifest_are_used(nih_zip, tmp_path):
    names = [f"{i:08d}_000.png" for i in range(24)]
    lists = {"train_val_list.txt": "\n".join(names[:18]).encode(), "test_list.txt": "\n".join(names[18:]).encode()}
    with zipfile.ZipFile(nih_zip(extra=lists)) as bundle:
        bundle.extractall(tmp_path / "extracted")
    ds = load_dataset(str(tmp_path / "extracted"), binary_negative="No Finding", progress=False)
    assert len(ds.test) == 6 and len(ds.train) == 18
    assert "official split, beside the manifest" in ds.provenance.splits["test"]


def test_an_image_in_both_lists_is_named(nih_zip):
    names = [f"{i:08d}_000.png" for i in range(24)]
    lists = {"train_val_list.txt": "\n".join(names[:19]).encode(), "test_list.txt": "\n".join(names[18:]).encode()}
    with pytest.raises(PybenchError, match="00000018_000.png' is in both train_val_list.txt and test_list.txt"):
        load_dataset(str(nih_zip(extra=lists)), binary_negative="No Finding", progress=False)


def test_rows_in_neither_list_are_left_out_and_counted(nih_zip):
    names = [f"{i:08d}_000.png" for i in range(24)]
    lists = {"train_val_list.txt": "\n".join(names[:16]).encode(), "test_list.txt": "\n".join(names[16:20]).encode()}
    ds = load_dataset(str(nih_zip(extra=lists)), binary_negative="No Finding", progress=False)
    assert (len(ds.train), len(ds.test)) == (16, 4)
    assert ds.provenance.left_out == {"manifest rows in neither official list": 4}
    assert np.isin(ds.test.labels, [0, 1]).all()

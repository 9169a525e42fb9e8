"""The dataset layer at X-ray scale: parallel decoding into one array, memory-mapped cache
entries, patient-grouped splits, and the memory budget a run is checked against.

The NIH-layout archives come from scripts/make_nih_zip.py (the release's folders, manifest
header, multi-label cells and patient ids), run as the script it is.
"""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from pybench import memory, models
from pybench.datasets import decode, load_dataset
from pybench.datasets.core import pixel_table
from pybench.errors import PybenchError

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("isolated_cache")


@pytest.fixture
def nih(nih_release_zip) -> Path:
    return nih_release_zip


def manifest_rows(archive: Path) -> list[dict]:
    with zipfile.ZipFile(archive) as bundle:
        return list(csv.DictReader(io.StringIO(bundle.read("Data_Entry_2017.csv").decode())))


def test_the_generated_archive_has_the_nih_layout(nih):
    with zipfile.ZipFile(nih) as bundle:
        names = bundle.namelist()
    rows = manifest_rows(nih)
    assert len(rows) == 300 and "Data_Entry_2017.csv" in names
    assert all(n.startswith("images_001/images/") for n in names if n.endswith(".png"))
    assert any("|" in r["Finding Labels"] for r in rows) and any(r["Finding Labels"] == "No Finding" for r in rows)
    assert len({r["Patient ID"] for r in rows}) < len(rows)  # follow-ups: several images per patient
    assert {r["Follow-up #"] for r in rows} >= {"0", "1"}


def test_the_split_keeps_each_patients_images_on_one_side(nih):
    ds = load_dataset(str(nih), binary_negative="No Finding", image_size=32, progress=False)
    rows = manifest_rows(nih)
    ungrouped = load_dataset(str(nih), binary_negative="No Finding", image_size=32, group_col="none", progress=False)
    assert ds.groups["column"] == "Patient ID" and ungrouped.groups is None
    patients = {r["Patient ID"] for r in rows}
    assert ds.groups["train"] + ds.groups["test"] == len(patients)  # no patient counted on both sides
    assert len(ds.train) + len(ds.test) == 300
    # Class proportions are kept as far as whole patients allow.
    train_share = ds.train.labels.mean()
    assert abs(ds.test.labels.mean() - train_share) < 0.15


def test_patient_ids_never_straddle_the_split(tmp_path):
    """A manifest whose pixels name their patient: every test image's patient has no train image."""
    from PIL import Image

    rows, path = [], tmp_path / "patients.zip"
    with zipfile.ZipFile(path, "w") as bundle:
        for i in range(120):
            patient, label = i // 3, "No Finding" if i % 2 else "Mass"
            rows.append(f"{i:05d}.png,{label},{patient}")
            pixels = np.full((16, 16), patient, np.uint8)  # the patient id, readable after decoding
            out = io.BytesIO()
            Image.fromarray(pixels).save(out, "PNG")
            bundle.writestr(f"images/{i:05d}.png", out.getvalue())
        bundle.writestr("Data_Entry_2017.csv", "Image Index,Finding Labels,Patient ID\n" + "\n".join(rows) + "\n")
    ds = load_dataset(str(path), binary_negative="No Finding", progress=False)
    train_patients = set(np.unique(ds.train.images[:, 0, 0, 0]))
    test_patients = set(np.unique(ds.test.images[:, 0, 0, 0]))
    assert train_patients and test_patients and not train_patients & test_patients
    assert ds.groups == {"column": "Patient ID", "train": len(train_patients), "test": len(test_patients),
                         "both": 0}
    ungrouped = load_dataset(str(path), binary_negative="No Finding", group_col="none", progress=False)
    assert set(np.unique(ungrouped.train.images[:, 0, 0, 0])) & set(np.unique(ungrouped.test.images[:, 0, 0, 0]))


def test_datasets_info_says_how_the_split_was_grouped(run_cli, nih):
    result = run_cli("datasets", "info", nih, "--binary-negative", "No Finding", "--image-size", "32")
    assert result.returncode == 0, result.stderr
    assert "splits grouped by 'Patient ID'" in result.stdout and "none in two splits" in result.stdout


def test_bad_group_and_worker_options_are_one_line_errors(cli_error, nih):
    cli_error("datasets", "info", nih, "--binary-negative", "No Finding", "--group-col", "Patient",
              fragments=("no group column 'Patient'", "Patient ID", "--group-col none"))
    cli_error("datasets", "info", nih, "--workers", "0", fragments=("--workers", "at least 1", "0"))
    cli_error("datasets", "info", nih, "--workers", "two", fragments=("--workers", "'two'"))


def test_parallel_decoding_gives_the_serial_arrays(nih, monkeypatch):
    """Every worker writes its own rows of one array: the result is the one-process result."""
    serial = load_dataset(str(nih), binary_negative="No Finding", image_size=48, workers=1, cache=False,
                          progress=False)
    monkeypatch.setattr(decode, "PARALLEL_MIN_IMAGES", 1)
    monkeypatch.setattr(decode, "TASK_IMAGES", 7)  # many slices, a short last one
    parallel = load_dataset(str(nih), binary_negative="No Finding", image_size=48, workers=2, cache=False,
                            progress=False)
    assert parallel.fingerprint == serial.fingerprint
    np.testing.assert_array_equal(parallel.train.images, serial.train.images)


def test_a_colour_image_in_a_parallel_decode_makes_the_set_rgb(tmp_path, monkeypatch):
    from PIL import Image

    path = tmp_path / "mixed.zip"
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as bundle:
        lines = []
        for i in range(40):
            colour = i == 33
            pixels = rng.integers(0, 256, (12, 12, 3) if colour else (12, 12), dtype=np.uint8)
            out = io.BytesIO()
            Image.fromarray(pixels).save(out, "PNG")
            bundle.writestr(f"x/{i}.png", out.getvalue())
            lines.append(f"{i}.png,{'AB'[i % 2]}")
        bundle.writestr("list.csv", "Image Index,Finding Labels\n" + "\n".join(lines) + "\n")
    monkeypatch.setattr(decode, "PARALLEL_MIN_IMAGES", 1)
    monkeypatch.setattr(decode, "TASK_IMAGES", 5)
    ds = load_dataset(str(path), workers=2, cache=False, progress=False)
    assert ds.in_shape == (3, 12, 12)
    serial = load_dataset(str(path), workers=1, cache=False, progress=False)
    assert serial.fingerprint == ds.fingerprint


def test_a_cached_entry_is_memory_mapped_read_only(nih, isolated_cache):
    first = load_dataset(str(nih), binary_negative="No Finding", image_size=32, progress=False)
    (entry,) = [p for p in isolated_cache.iterdir() if p.is_dir()]
    assert sorted(p.name for p in entry.iterdir()) == ["meta.json", "test_images.npy", "test_labels.npy",
                                                       "test_names.npy", "train_images.npy", "train_labels.npy",
                                                       "train_names.npy"]
    again = load_dataset(str(nih), binary_negative="No Finding", image_size=32, progress=False)
    assert again.fingerprint == first.fingerprint and not again.train.images.flags.writeable
    assert isinstance(again.train.images.base, np.memmap) or isinstance(again.train.images, np.memmap)
    with pytest.raises(ValueError):
        again.train.images[0, 0, 0, 0] = 1  # read-only: no run can change the shared pages


def test_the_pixel_table_is_the_old_normalisation_bit_for_bit(nih):
    ds = load_dataset(str(nih), binary_negative="No Finding", image_size=32, progress=False)
    images = ds.train.images
    mean = np.asarray(ds.mean, np.float32).reshape(-1, 1, 1)
    std = np.asarray(ds.std, np.float32).reshape(-1, 1, 1)
    direct = (images.astype(np.float32) / np.float32(255.0) - mean) / std  # what put_data used to get
    assert np.array_equal(ds.normalized("train").view(np.uint32), direct.view(np.uint32))
    assert ds.pixel_table(np.float64).dtype == np.float64
    assert np.array_equal(ds.pixel_table(np.float64), ds.pixel_table().astype(np.float64))
    constant = pixel_table((0.5,), (0.0,))  # std 0: only centred
    assert constant[0, 255] == np.float32(1.0) - np.float32(0.5)


def test_the_memory_estimate_adds_up_its_parts(nih):
    ds = load_dataset(str(nih), binary_negative="No Finding", image_size=32, progress=False)
    est = memory.estimate(ds, "resnet8", 64, "adam")
    data = ds.train.images.nbytes + ds.test.images.nbytes + ds.train.labels.nbytes + ds.test.labels.nbytes
    assert est.data == data
    assert est.model == models.n_params("resnet8", ds.in_shape, 2) * 4 * (2 + 2)
    assert est.activations == memory.ACTIVATION_COPIES * models.activation_elements("resnet8", ds.in_shape, 2) * 4 * 64
    assert est.total == est.data + est.model + est.activations
    with pytest.raises(PybenchError, match="lower --batch-size or --image-size"):
        memory.check_fits(est, est.total - 1, "this machine", "resnet8", 64)
    memory.check_fits(est, est.total, "this machine", "resnet8", 64)  # exactly enough: runs


def test_a_run_that_cannot_fit_is_refused_before_training(cli_error, tmp_path):
    line = cli_error("compare", "digits", "--image-size", "224", "--models", "resnet18", "--batch-size", "512",
                     "--frameworks", "torch", "--max-steps", "1", "--out", tmp_path / "out",
                     fragments=("resnet18 at batch size 512 needs about", "GB available", "--batch-size",
                                "--image-size", "--grayscale"))
    assert "activations" in line
    assert not (tmp_path / "out" / "results.json").exists()

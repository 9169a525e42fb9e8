"""Every cache pybench reads back is checked as it is read: a damaged or foreign entry is decoded
or measured again, with one warning line, and never reaches a dataset or a run's record."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest

from pybench import peak
from pybench.datasets import load_dataset

pytestmark = pytest.mark.usefixtures("isolated_cache")


def replace_file(path, data: bytes) -> None:
    """Write `path` as a new file: the first load's arrays stay mapped to the old one, unchanged
    (writing in place would change them, or fault on reading past a truncation)."""
    path.unlink()
    path.write_bytes(data)


def rewrite_entry(folder, **changes):
    """Rewrite a dataset cache entry (a folder: meta.json and one .npy per array) with some meta
    fields or arrays replaced."""
    meta = json.loads((folder / "meta.json").read_text())
    for key, value in changes.items():
        if key in meta:
            meta[key] = value
        else:
            path = folder / f"{key}.npy"
            assert path.is_file(), f"{key}: neither a meta field nor an array of the entry"
            buffer = io.BytesIO()
            np.save(buffer, value)
            replace_file(path, buffer.getvalue())
    replace_file(folder / "meta.json", json.dumps(meta).encode())


def truncate(path, size: int) -> None:
    replace_file(path, path.read_bytes()[:size])


@pytest.mark.parametrize("damage, named", [
    (lambda p: truncate(p / "train_images.npy", 1000), "unreadable"),
    (lambda p: replace_file(p / "meta.json", b"not json at all"), "unreadable: JSONDecodeError"),
    (lambda p: rewrite_entry(p, std="garbage"), "std 'garbage'"),
    (lambda p: rewrite_entry(p, mean=[0.1, 0.2, 0.3]), "mean [0.1, 0.2, 0.3] for 1 channels"),
    (lambda p: rewrite_entry(p, classes=[]), "classes []"),
    (lambda p: rewrite_entry(p, test_labels=np.full(360, 99, np.int64)), "test labels outside"),
    (lambda p: rewrite_entry(p, train_labels=np.zeros(3, np.int64)),
     "labels must be (N,) or (N, findings) matching images"),
    (lambda p: rewrite_entry(p, train_images=np.zeros((3, 8, 8), np.float32)), "images must be uint8"),
    (lambda p: rewrite_entry(p, fingerprint=7), "fingerprint 7"),
])
def test_a_damaged_dataset_entry_is_decoded_again_with_one_warning(isolated_cache, capfd, damage,
                                                                   named):
    first = load_dataset("digits")
    (entry,) = isolated_cache.glob("digits-*")
    assert entry.is_dir()
    damage(entry)
    capfd.readouterr()
    again = load_dataset("digits")
    warning = capfd.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and "damaged dataset cache entry" in warning[0], warning
    assert named in warning[0] and entry.name in warning[0]
    assert again.fingerprint == first.fingerprint and again.std == first.std
    np.testing.assert_array_equal(again.test.labels, first.test.labels)
    capfd.readouterr()
    load_dataset("digits")  # rewritten: the next read is a quiet hit
    assert capfd.readouterr().err == ""


class FakeBackend:
    name, device = "torch", "cpu"

    def matmul_seconds(self, n):
        return 2 * n ** 3 / 5e10  # 50 GFLOP/s


@pytest.mark.parametrize("entry, named", [
    ('{"peak_flops_per_s": "garbage", "peak_matmul_n": 1024}', "'garbage', not a positive number"),
    ('{"peak_flops_per_s": -1.0, "peak_matmul_n": 1024}', "-1.0"),
    ('{"peak_flops_per_s": NaN, "peak_matmul_n": 1024}', "nan"),
    ('{"peak_flops_per_s": true, "peak_matmul_n": 1024}', "True"),
    ('{"peak_flops_per_s": 1e11, "peak_matmul_n": 4096}', "peak_matmul_n is 4096, not 1024"),
    ('[1e11]', "a list, not an object"),
    ('{"peak_flops', "not JSON"),
])
def test_a_damaged_peak_entry_is_measured_again_with_one_warning(capfd, entry, named):
    path = peak.cache_path("torch", "cpu", "test-cpu")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(entry)
    record = peak.machine_peak(FakeBackend(), "test-cpu")
    assert record["peak_measured"] == "now" and record["peak_flops_per_s"] == pytest.approx(5e10)
    warning = capfd.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and "damaged peak-rate cache entry" in warning[0] and named in warning[0]
    again = peak.machine_peak(FakeBackend(), "test-cpu")  # rewritten: a valid, quiet hit
    assert again["peak_measured"] == "cached" and math.isclose(again["peak_flops_per_s"], 5e10)
    assert capfd.readouterr().err == ""

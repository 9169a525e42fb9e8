"""MedMNIST .npz files: the shared PneumoniaMNIST (kept val split, class imbalance, balanced
order) and generated files in the other layouts."""

from __future__ import annotations

import numpy as np
import pytest

from pybench.datasets import balanced_order, load_dataset
from pybench.errors import PybenchError

pytestmark = pytest.mark.usefixtures("isolated_cache")


@pytest.fixture
def pneumonia(data_dir):
    # A modified copy (fewer train images than the release): its MD5 is not INFO's.
    return load_dataset(str(data_dir / "pneumoniamnist" / "pneumoniamnist.npz"), cache=False, checksum=False)


def test_pneumoniamnist_splits(pneumonia):
    assert pneumonia.train.images.shape == (3882, 1, 28, 28) and pneumonia.val.images.shape == (524, 1, 28, 28)
    assert pneumonia.test.images.shape == (624, 1, 28, 28) and pneumonia.test.labels.dtype == np.int64
    assert np.bincount(pneumonia.train.labels).tolist() == [388, 3494]
    # Label names from medmnist.INFO, not "0" and "1".
    assert pneumonia.classes == ["normal", "pneumonia"] and pneumonia.name == "pneumoniamnist"
    assert pneumonia.provenance.splits == {"train": "given: train_images", "val": "given: val_images",
                                           "test": "given: test_images"}
    assert pneumonia.normalized("val").dtype == np.float32


def test_balanced_order_on_pneumoniamnist(pneumonia):
    labels = pneumonia.train.labels
    order = balanced_order(0, 0, labels)
    assert len(order) == len(labels) and order.dtype == np.int64
    assert 0.45 < np.mean(labels[order] == 0) < 0.55  # 10% of the data, half of the draws
    assert not np.array_equal(order, balanced_order(0, 1, labels))


def test_rgb_npz_without_test_split_is_split_and_resized(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "colour.npz"
    np.savez(path, train_images=rng.integers(0, 256, (40, 10, 10, 3), dtype=np.uint8),
             train_labels=np.arange(40) % 4, val_images=rng.integers(0, 256, (8, 10, 10, 3), dtype=np.uint8),
             val_labels=(np.arange(8) % 4).reshape(8, 1))
    ds = load_dataset(str(path), test_fraction=0.25, cache=False)
    assert ds.in_shape == (3, 10, 10) and len(ds.train) == 30 and len(ds.test) == 10 and len(ds.val) == 8
    assert ds.classes == ["0", "1", "2", "3"]
    small = load_dataset(str(path), test_fraction=0.25, image_size=6, grayscale=True, cache=False)
    assert small.in_shape == (1, 6, 6) and small.val.images.shape == (8, 1, 6, 6)


@pytest.mark.parametrize("arrays, message", [
    ({"x": np.zeros(3)}, "no train_images"),
    ({"train_images": np.zeros((4, 5, 5), np.float32), "train_labels": np.zeros(4)}, "must be uint8"),
    ({"train_images": np.zeros((4, 5, 5), np.uint8), "train_labels": np.zeros((4, 2))}, "single-label"),
    ({"train_images": np.zeros((4, 5, 5), np.uint8)}, "no train_labels"),
    ({"train_images": np.zeros((4, 5, 5), np.uint8), "train_labels": -np.ones(4, np.int64)}, "0-based"),
])
def test_bad_npz_is_named(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(PybenchError, match=message) as info:
        load_dataset(str(path), cache=False)
    assert "bad.npz" in str(info.value)


def test_not_an_npz(tmp_path):
    path = tmp_path / "fake.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(PybenchError, match="fake.npz: not a readable .npz"):
        load_dataset(str(path), cache=False)


# --- MedMNIST files known by name (medmnist.INFO) ------------------------------------------------

def test_a_medmnist_file_must_have_infos_md5(data_dir):
    """The shared file is a modified copy: without --no-checksum, one line naming both sums."""
    from pybench.datasets.medmnist import recognise

    expected = recognise("pneumoniamnist").md5
    with pytest.raises(PybenchError, match=f"MD5 [0-9a-f]{{32}} is not MedMNIST's pneumoniamnist.npz "
                                           f"\\(expected {expected}\\).*--no-checksum"):
        load_dataset(str(data_dir / "pneumoniamnist" / "pneumoniamnist.npz"), cache=False)


@pytest.mark.parametrize("name, flag, size", [("pathmnist", "pathmnist", ""), ("chestmnist_64.npz", "chestmnist", "64"),
                                              ("/data/OrganAMNIST_224.npz", "organamnist", "224"),
                                              ("mnist", None, None), ("pathmnist_32", None, None)])
def test_medmnist_names_are_recognised(name, flag, size):
    from pybench.datasets.medmnist import recognise

    med = recognise(name)
    assert (med.flag, med.size) == (flag, size) if flag else med is None


def with_info_md5(monkeypatch, flag: str, md5: str) -> None:
    """medmnist.INFO with `flag`'s MD5 replaced (the only way to have a matching file offline)."""
    from pybench.datasets import medmnist

    info = {key: dict(value) for key, value in medmnist.medmnist_info().items()}
    info[flag]["MD5"] = md5
    monkeypatch.setattr(medmnist, "medmnist_info", lambda: info)


def test_by_name_downloads_into_the_data_root_md5_checked(data_dir, tmp_path, monkeypatch):
    from pybench.datasets.medmnist import MIRROR_ENV, file_md5

    shared = data_dir / "pneumoniamnist" / "pneumoniamnist.npz"
    with_info_md5(monkeypatch, "pneumoniamnist", file_md5(shared))
    monkeypatch.setenv(MIRROR_ENV, shared.parent.as_uri())  # a file:// mirror: the download code runs
    ds = load_dataset("pneumoniamnist", data_dir=tmp_path / "root", cache=False, progress=False)
    assert (tmp_path / "root" / "pneumoniamnist" / "pneumoniamnist.npz").read_bytes() == shared.read_bytes()
    assert ds.classes == ["normal", "pneumonia"] and len(ds.val) == 524
    assert f"MD5 {file_md5(shared)} checked" in ds.provenance.layout


def test_a_download_with_the_wrong_md5_keeps_nothing(data_dir, tmp_path, monkeypatch):
    from pybench.datasets.medmnist import MIRROR_ENV

    monkeypatch.setenv(MIRROR_ENV, (data_dir / "pneumoniamnist").as_uri())  # INFO's MD5: not this copy
    with pytest.raises(PybenchError, match="the download's MD5 is .*expected .*nothing was kept"):
        load_dataset("pneumoniamnist", data_dir=tmp_path / "root", cache=False, progress=False)
    assert not list((tmp_path / "root").rglob("*.npz*"))


def test_without_network_says_where_to_put_the_file(tmp_path, monkeypatch):
    from pybench.datasets.medmnist import MIRROR_ENV

    monkeypatch.setenv(MIRROR_ENV, (tmp_path / "no-such-mirror").as_uri())
    with pytest.raises(PybenchError, match=r"breastmnist.npz is not under .* could not be downloaded .*: download "
                                           r"https://zenodo.org/\S+ \(MD5 [0-9a-f]{32}\) into .*breastmnist/"):
        load_dataset("breastmnist", data_dir=tmp_path / "root", cache=False, progress=False)


def test_a_3d_medmnist_set_is_one_line(tmp_path):
    path = tmp_path / "organmnist3d.npz"
    np.savez(path, train_images=np.zeros((4, 28, 28, 28), np.uint8), train_labels=np.zeros((4, 1)))
    with pytest.raises(PybenchError, match="organmnist3d is a 3D MedMNIST set"):
        load_dataset(str(path), cache=False)
    with pytest.raises(PybenchError, match="organmnist3d is a 3D MedMNIST set"):
        load_dataset("organmnist3d", data_dir=tmp_path, cache=False)


def test_chestmnist_is_a_multilabel_task_with_infos_findings(tmp_path, monkeypatch):
    from pybench.datasets.medmnist import file_md5

    rng = np.random.default_rng(0)
    path = tmp_path / "chestmnist.npz"
    arrays = {}
    for split, count in (("train", 40), ("val", 8), ("test", 10)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = (rng.random((count, 14)) < 0.2).astype(np.uint8)
    np.savez(path, **arrays)
    with_info_md5(monkeypatch, "chestmnist", file_md5(path))
    with pytest.raises(PybenchError, match="chestmnist is multi-label.*pass --task multilabel"):
        load_dataset(str(path), cache=False)
    ds = load_dataset(str(path), multilabel=True, cache=False)
    assert ds.multilabel and ds.classes[:3] == ["atelectasis", "cardiomegaly", "effusion"] and len(ds.classes) == 14
    assert ds.train.labels.shape == (40, 14) and len(ds.val) == 8

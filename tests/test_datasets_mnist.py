"""MNIST on the real files: shapes, label counts, checksums, corrupt files, and downloading
from a real local HTTP server (mirror fallback, checksum mismatch, atomic write, no network)."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import os
import shutil
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from pybench.datasets import load_dataset
from pybench.datasets import mnist as mnist_module
from pybench.errors import PybenchError

pytestmark = pytest.mark.usefixtures("isolated_cache")

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"


def test_mnist_real_files(data_dir):
    ds = load_dataset("mnist", data_dir=data_dir, cache=False)
    assert ds.train.images.shape == (60000, 1, 28, 28) and ds.test.images.shape == (10000, 1, 28, 28)
    assert ds.train.images.dtype == np.uint8 and ds.train.labels.dtype == np.int64
    assert ds.train.images.flags.c_contiguous and ds.test.labels.flags.c_contiguous
    assert np.bincount(ds.train.labels).tolist() == TRAIN_COUNTS
    assert np.bincount(ds.test.labels).tolist() == TEST_COUNTS
    assert ds.train.labels[0] == 5
    assert ds.classes == [str(d) for d in range(10)] and ds.val is None and ds.in_shape == (1, 28, 28)
    # The well-known MNIST statistics.
    assert ds.mean[0] == pytest.approx(0.1307, abs=1e-4) and ds.std[0] == pytest.approx(0.3081, abs=1e-4)


def test_mnist_image_size_resizes_every_image_as_pil_does(data_dir):
    """--image-size 32 on MNIST gives 32x32 images (the ImageNet models need them), resized the
    way every other source is, with the labels untouched; it was once ignored without a word."""
    from PIL import Image

    plain = load_dataset("mnist", data_dir=data_dir, cache=False)
    sized = load_dataset("mnist", data_dir=data_dir, cache=False, image_size=32)
    assert sized.in_shape == (1, 32, 32) and sized.train.images.shape == (60000, 1, 32, 32)
    assert sized.test.images.shape == (10000, 1, 32, 32) and sized.train.images.dtype == np.uint8
    np.testing.assert_array_equal(sized.train.labels, plain.train.labels)
    expected = np.asarray(Image.fromarray(plain.test.images[7, 0]).resize((32, 32), Image.BILINEAR))
    np.testing.assert_array_equal(sized.test.images[7, 0], expected)
    assert sized.fingerprint != plain.fingerprint


def test_mnist_cache_gives_same_dataset(data_dir, isolated_cache):
    first = load_dataset("mnist", data_dir=data_dir)
    (entry,) = isolated_cache.glob("mnist-*")
    assert {p.name for p in entry.iterdir()} >= {"meta.json", "train_images.npy", "test_labels.npy"}
    second = load_dataset("mnist", data_dir=data_dir)
    assert second.fingerprint == first.fingerprint
    np.testing.assert_array_equal(second.train.images, first.train.images)


def rewrite_gz(path: Path, edit) -> None:
    path.write_bytes(gzip.compress(edit(gzip.decompress(path.read_bytes()))))


def test_checksum_mismatch_names_file_expected_and_got(mnist_copy):
    def change_last_label(data: bytes) -> bytes:
        return data[:-1] + bytes([(data[-1] + 1) % 10])

    rewrite_gz(mnist_copy / "mnist" / TEST_LABELS, change_last_label)
    expected = mnist_module.read_manifest()["files"]["test_labels"]["sha256"]
    with pytest.raises(PybenchError, match="checksum mismatch") as info:
        load_dataset("mnist", data_dir=mnist_copy, cache=False)
    assert TEST_LABELS in str(info.value) and f"expected {expected}" in str(info.value) and "got " in str(info.value)


def test_truncated_gz_is_named(mnist_copy):
    path = mnist_copy / "mnist" / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(PybenchError, match="train-labels-idx1-ubyte.gz: truncated gzip"):
        load_dataset("mnist", data_dir=mnist_copy, cache=False)


def test_not_idx_content_is_named_even_with_matching_checksum(mnist_copy, monkeypatch):
    path = mnist_copy / "mnist" / TEST_LABELS
    path.write_bytes(gzip.compress(b"this is not an IDX file"))
    manifest = mnist_module.read_manifest()
    manifest["files"]["test_labels"]["sha256"] = hashlib.sha256(b"this is not an IDX file").hexdigest()
    monkeypatch.setattr(mnist_module, "read_manifest", lambda name="mnist": manifest)
    with pytest.raises(PybenchError, match=f"{TEST_LABELS}: not an IDX file"):
        load_dataset("mnist", data_dir=mnist_copy, cache=False)


# --- downloads from a real local HTTP server ----------------------------------------------------------

class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def http_site(tmp_path, data_dir):
    """A local web server with good/ (the real files) and bad/ (a wrong test-labels file)."""
    site = tmp_path / "site"
    shutil.copytree(data_dir / "mnist", site / "good")
    (site / "bad").mkdir()
    (site / "bad" / TEST_LABELS).write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x01\x03"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=site))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


def mnist_root_without_test_labels(mnist_copy: Path) -> Path:
    (mnist_copy / "mnist" / TEST_LABELS).unlink()
    return mnist_copy


def test_download_falls_back_across_mirrors(mnist_copy, http_site, closed_port_url, monkeypatch, data_dir):
    root = mnist_root_without_test_labels(mnist_copy)
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(mnist_module.os, "replace", lambda src, dst: replaced.append((Path(src), Path(dst)))
                        or real_replace(src, dst))
    # dead port, then a 404, then a wrong file, then the right one
    mirrors = [closed_port_url, f"{http_site}/missing/", f"{http_site}/bad/", f"{http_site}/good/"]
    monkeypatch.setenv("PYBENCH_MNIST_MIRRORS", ",".join(mirrors))
    ds = load_dataset("mnist", data_dir=root, cache=False, progress=False)
    assert np.bincount(ds.test.labels).tolist() == TEST_COUNTS
    target = root / "mnist" / TEST_LABELS
    assert target.read_bytes() == (data_dir / "mnist" / TEST_LABELS).read_bytes()
    # Atomic: written to a temporary file in the same folder, then renamed over the target.
    assert len(replaced) == 1 and replaced[0][1] == target and replaced[0][0].parent == target.parent
    assert sorted(p.name for p in target.parent.iterdir()) == sorted(p.name for p in (data_dir / "mnist").iterdir())


def test_download_checksum_mismatch_leaves_nothing_behind(mnist_copy, http_site):
    root = mnist_root_without_test_labels(mnist_copy)
    with pytest.raises(PybenchError, match="checksum mismatch") as info:
        mnist_module.ensure_mnist_files(root, mirrors=[f"{http_site}/bad/"], progress=False)
    assert TEST_LABELS in str(info.value) and "\n" not in str(info.value)
    assert sorted(p.name for p in (root / "mnist").iterdir()) == [
        "t10k-images-idx3-ubyte.gz", "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]


def test_download_whole_dataset_into_empty_root(tmp_path, http_site):
    mnist_module.ensure_mnist_files(tmp_path / "fresh", mirrors=[f"{http_site}/good"], progress=False)
    ds = load_dataset("mnist", data_dir=tmp_path / "fresh", cache=False)
    assert ds.train.images.shape == (60000, 1, 28, 28)


def test_no_network_is_one_line_naming_folder_files_and_digits(tmp_path, closed_port_url, monkeypatch):
    monkeypatch.setenv("PYBENCH_MNIST_MIRRORS", closed_port_url)
    with pytest.raises(PybenchError) as info:
        load_dataset("mnist", data_dir=tmp_path / "offline", progress=False)
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / "offline" / "mnist") in message
    for name in ("train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "`digits`"):
        assert name in message


def test_manifest_mirrors_are_the_public_ones(monkeypatch):
    monkeypatch.delenv("PYBENCH_MNIST_MIRRORS", raising=False)
    mirrors = mnist_module.mirror_urls()
    assert "https://ossci-datasets.s3.amazonaws.com/mnist/" in mirrors
    assert "https://storage.googleapis.com/cvdf-datasets/mnist/" in mirrors

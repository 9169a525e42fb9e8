"""MNIST: the four IDX .gz files, their checksums, and their download from public mirrors.

The file names, the sha256 of each file's DECOMPRESSED bytes (mirrors re-compress, so the .gz
bytes differ) and the mirror list live in the packaged manifest `datasets/mnist.json`.
The mirrors can be overridden, for a local mirror or for tests, by the `mirrors` argument or by
$PYBENCH_MNIST_MIRRORS (URLs separated by commas or spaces, each ending in the folder that holds
the four files). A download goes to a temporary file in the target folder, is checked, then
renamed into place, so an interrupted download never leaves a file that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import urllib.error
import urllib.request
from importlib import resources
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pybench.datasets.core import Dataset, LoadOptions, Split, dataset_from_arrays, read_bytes
from pybench.datasets.idx import gunzip, parse_idx
from pybench.datasets.images import transform_images
from pybench.errors import PybenchError

MIRRORS_ENV = "PYBENCH_MNIST_MIRRORS"
DOWNLOAD_TIMEOUT_S = 30
DOWNLOAD_CHUNK = 1 << 16
IMAGE_SIDE = 28


def read_manifest(name: str = "mnist") -> dict:
    """The packaged manifest `datasets/<name>.json`."""
    return json.loads(resources.files("pybench.manifests").joinpath(f"{name}.json").read_text())


def mirror_urls(mirrors: list[str] | None = None) -> list[str]:
    """Mirrors to try in order: the argument, else $PYBENCH_MNIST_MIRRORS, else the manifest's."""
    if mirrors is None and os.environ.get(MIRRORS_ENV):
        mirrors = os.environ[MIRRORS_ENV].replace(",", " ").split()
    if mirrors is None:
        mirrors = read_manifest()["mirrors"]
    return [url if url.endswith("/") else url + "/" for url in mirrors]


def mnist_folder(root: Path) -> Path:
    return root / read_manifest()["folder"]


def mnist_files(root: Path) -> list[Path]:
    folder = mnist_folder(root)
    return [folder / entry["file"] for entry in read_manifest()["files"].values()]


def check_decompressed_sha256(data: bytes, expected: str, name: str) -> None:
    got = hashlib.sha256(data).hexdigest()
    if got != expected:
        raise PybenchError(f"{name}: checksum mismatch (sha256 of the decompressed bytes: "
                           f"expected {expected}, got {got})")


def fetch_to(url: str, target: Path, progress: bool) -> Path:
    """Stream `url` into a temporary file beside `target`; return the temporary path."""
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        # mkstemp's 0600 would leave the downloaded file unreadable to the others sharing a data folder.
        mask = os.umask(0o022)
        os.umask(mask)
        os.fchmod(handle, 0o666 & ~mask)
        try:
            with os.fdopen(handle, "wb") as out, tqdm(total=total, unit="B", unit_scale=True, desc=target.name,
                                                      disable=True if not progress else None) as bar:
                while chunk := response.read(DOWNLOAD_CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
        except BaseException:
            os.unlink(temp_name)
            raise
    return Path(temp_name)


def download_file(target: Path, expected_sha256: str, mirrors: list[str], progress: bool) -> None:
    """Download `target` from the first mirror that serves it with the right checksum.

    Mirrors are tried in order: an unreachable mirror or a wrong file moves on to the next.
    If none worked: a checksum error if some mirror answered with wrong bytes, else the no-network
    error (naming the folder and the expected files, and the offline alternative).
    """
    checksum_error = None
    network_error = None
    for base in mirrors:
        url = base + target.name
        try:
            temp = fetch_to(url, target, progress)
        except (urllib.error.URLError, OSError, ValueError) as error:  # ValueError: a malformed URL
            network_error = f"{url}: {getattr(error, 'reason', error)}"
            continue
        try:
            check_decompressed_sha256(gunzip(temp.read_bytes(), url), expected_sha256, url)
        except PybenchError as error:
            temp.unlink()
            checksum_error = error
            continue
        os.replace(temp, target)
        return
    if checksum_error is not None:
        raise checksum_error
    expected = ", ".join(entry["file"] for entry in read_manifest()["files"].values())
    raise PybenchError(f"MNIST is not in {target.parent} and could not be downloaded (last error: {network_error}): "
                       f"put {expected} there, point --data-dir or PYBENCH_DATA_DIR at a folder holding mnist/, "
                       f"or use the offline dataset `digits`")


def ensure_mnist_files(root: Path, mirrors: list[str] | None = None, progress: bool = True) -> list[Path]:
    """The four MNIST files under `root/mnist`, downloading the missing ones."""
    folder = mnist_folder(root)
    manifest = read_manifest()
    urls = None
    for entry in manifest["files"].values():
        target = folder / entry["file"]
        if target.exists():
            continue
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise PybenchError(f"cannot create the MNIST folder {folder}: {error.strerror}") from None
        urls = urls or mirror_urls(mirrors)
        download_file(target, entry["sha256"], urls, progress)
    return mnist_files(root)


def read_idx_file(path: Path, expected_sha256: str) -> np.ndarray:
    """Decompress, verify and parse one MNIST file."""
    data = gunzip(read_bytes(path), str(path))
    check_decompressed_sha256(data, expected_sha256, str(path))
    return parse_idx(data, str(path))


def check_mnist_arrays(images: np.ndarray, labels: np.ndarray, images_path: Path, labels_path: Path) -> None:
    """Shape checks a checksum cannot replace when the checksum itself was edited."""
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise PybenchError(f"{images_path}: expected uint8 images (N, 28, 28), got {images.dtype} {images.shape}")
    if labels.dtype != np.uint8 or labels.ndim != 1 or len(labels) != len(images):
        raise PybenchError(f"{labels_path}: expected {len(images)} uint8 labels, got {labels.dtype} {labels.shape}")
    if labels.size and labels.max() > 9:
        raise PybenchError(f"{labels_path}: label {int(labels.max())} is not a digit 0-9")


def read_mnist_split(root: Path, images_key: str, labels_key: str) -> Split:
    files = read_manifest()["files"]
    folder = mnist_folder(root)
    images_path, labels_path = folder / files[images_key]["file"], folder / files[labels_key]["file"]
    images = read_idx_file(images_path, files[images_key]["sha256"])
    labels = read_idx_file(labels_path, files[labels_key]["sha256"])
    check_mnist_arrays(images, labels, images_path, labels_path)
    return Split(images.reshape(len(images), 1, IMAGE_SIDE, IMAGE_SIDE).copy(), labels.astype(np.int64))


def load_mnist(root: Path, options: LoadOptions | None = None) -> Dataset:
    """MNIST from `root/mnist` (the files must be present: see ensure_mnist_files); with
    `options.val_fraction`, a validation split carved from the 60,000 training images, and with
    `options.image_size` every image resized (PIL bilinear, as every other source)."""
    options = options or LoadOptions()
    files = read_manifest()["files"]
    given = {"train": read_mnist_split(root, "train_images", "train_labels"),
             "test": read_mnist_split(root, "test_images", "test_labels")}
    given = {split: Split(transform_images(data.images, options.image_size, options.grayscale, options.resize),
                          data.labels)
             for split, data in given.items()}
    how = {split: f"given: {files[f'{split}_images']['file']}" for split in given}
    classes = [str(digit) for digit in range(10)]
    return dataset_from_arrays("mnist", str(mnist_folder(root)), classes, given, how, options,
                               "MNIST IDX files (sha256 checked)", original_shape=(1, IMAGE_SIDE, IMAGE_SIDE))

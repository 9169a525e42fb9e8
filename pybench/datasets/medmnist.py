"""MedMNIST files known by name: label names, task and MD5 from the `medmnist` package's INFO.

`pathmnist.npz`, `chestmnist_64.npz`, ... are recognised by their file name (the flag, then an
optional `_64`, `_128` or `_224` size). The `medmnist` package (a dependency; it holds no data)
ships `medmnist.INFO`, every dataset's label names, task, channels, split sizes, download address
and the MD5 of each file. Importing `medmnist` imports torch, which the parent process never
does (one framework per worker), so INFO is read from the package's `info.py` as a literal with
`ast`: nothing of the package runs.

A recognised file must have INFO's MD5: a damaged, truncated or foreign file is one line naming
both sums, and `--no-checksum` accepts a modified copy (a subset, a re-balanced variant), said in
the dataset's provenance. By name (`pybench compare pathmnist`), the file is looked for under the
data root (`<root>/<flag>/<file>` or `<root>/<file>`) and downloaded into the first where the
network allows, MD5 checked; otherwise one line says where to put it.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.metadata
import importlib.util
import os
import re
import urllib.error
from dataclasses import dataclass
from pathlib import Path

from pybench.errors import PybenchError

SIZES = ("64", "128", "224")  # the larger MedMNIST+ files; 28 px has no suffix
MD5_CHUNK = 1 << 22
MIRROR_ENV = "PYBENCH_MEDMNIST_MIRROR"  # a folder URL serving the .npz files instead of Zenodo


@functools.lru_cache(maxsize=1)
def medmnist_info() -> dict | None:
    """medmnist.INFO, read as a literal from the installed package's info.py; None when the
    package is not installed."""
    try:
        spec = importlib.util.find_spec("medmnist")  # finds the package without running it
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    info_path = Path(next(iter(spec.submodule_search_locations))) / "info.py"
    try:
        tree = ast.parse(info_path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "INFO" for t in node.targets):
            return ast.literal_eval(node.value)
    return None


def medmnist_version() -> str:
    try:
        return importlib.metadata.version("medmnist")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


@dataclass(frozen=True)
class MedFile:
    """One MedMNIST file: its dataset (`flag`), size suffix and INFO entry."""

    flag: str
    size: str  # "" for 28 px, else one of SIZES
    info: dict

    @property
    def file_name(self) -> str:
        return f"{self.flag}{'_' + self.size if self.size else ''}.npz"

    @property
    def md5(self) -> str:
        return self.info[f"MD5{'_' + self.size if self.size else ''}"]

    @property
    def url(self) -> str:
        return self.info[f"url{'_' + self.size if self.size else ''}"]

    @property
    def is_3d(self) -> bool:
        return self.flag.endswith("3d")

    @property
    def multilabel(self) -> bool:
        return self.info.get("task", "").startswith("multi-label")

    @property
    def classes(self) -> list[str]:
        labels = self.info["label"]
        return [labels[str(i)] for i in range(len(labels))]


def recognise(name: str) -> MedFile | None:
    """The MedMNIST file a name (`pathmnist`, `pathmnist_64.npz`, a path) stands for, or None."""
    info = medmnist_info()
    if not info:
        return None
    match = re.fullmatch(r"([a-z0-9]+?)(?:_(\d+))?(?:\.npz)?", Path(name).name.lower())
    if not match or match.group(1) not in info:
        return None
    size = match.group(2) or ""
    if size and size not in SIZES:
        return None
    return MedFile(match.group(1), size, info[match.group(1)])


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(MD5_CHUNK):
                digest.update(chunk)
    except OSError as error:
        raise PybenchError(f"cannot read {path}: {error.strerror or error}") from None
    return digest.hexdigest()


def check_md5(path: Path, med: MedFile, checksum: bool) -> str:
    """The layout line for a recognised file: its MD5 checked against INFO's (a mismatch is an
    error unless `checksum` is False, when it is accepted and said)."""
    if med.is_3d:
        raise PybenchError(f"{path}: {med.flag} is a 3D MedMNIST set (volumes of 28x28x28): pybench "
                           "trains 2D image models; use a 2D MedMNIST file")
    got = file_md5(path)
    where = f"MedMNIST {med.file_name} (medmnist {medmnist_version()} INFO: label names, task"
    if got == med.md5:
        return f"{where}; MD5 {got} checked)"
    if checksum:
        raise PybenchError(f"{path}: MD5 {got} is not MedMNIST's {med.file_name} (expected {med.md5}): a "
                           "damaged or modified file; download it again, or pass --no-checksum to use a "
                           "modified copy as it is")
    return f"{where}; MD5 {got} differs from INFO's {med.md5}: a modified copy, accepted with --no-checksum)"


def candidate_paths(root: Path, med: MedFile) -> list[Path]:
    return [root / med.flag / med.file_name, root / med.file_name]


def medmnist_path(name: str, root: Path, progress: bool) -> Path | None:
    """The local file of a MedMNIST name (`pathmnist`, `chestmnist_64`), downloaded into
    `<root>/<flag>/` when absent and the network allows (MD5 checked); None when `name` is not
    a MedMNIST name; one line saying where to put the file when it cannot be had."""
    med = recognise(name)
    if med is None or Path(name).suffix:
        return None
    for path in candidate_paths(root, med):
        if path.is_file():
            return path
    target = candidate_paths(root, med)[0]
    if med.is_3d:
        raise PybenchError(f"{med.flag} is a 3D MedMNIST set (volumes of 28x28x28): pybench trains 2D image "
                           "models; use a 2D MedMNIST set")
    download(med, target, progress)
    return target


def download_url(med: MedFile) -> str:
    """INFO's address, or the same file name under $PYBENCH_MEDMNIST_MIRROR (a local mirror)."""
    mirror = os.environ.get(MIRROR_ENV)
    return f"{mirror.rstrip('/')}/{med.file_name}" if mirror else med.url


def download(med: MedFile, target: Path, progress: bool) -> None:
    """Fetch `med` into `target` (a temporary file, MD5 checked, then renamed into place)."""
    from pybench.datasets.mnist import fetch_to

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = fetch_to(download_url(med), target, progress)
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or getattr(error, "strerror", None) or error
        raise PybenchError(f"{med.file_name} is not under {target.parent.parent} and could not be downloaded "
                           f"({reason}): download {med.url} (MD5 {med.md5}) into {target.parent}/, or point "
                           "--data-dir or PYBENCH_DATA_DIR at the folder that holds it") from None
    got = file_md5(temp)
    if got != med.md5:
        temp.unlink()
        raise PybenchError(f"{download_url(med)}: the download's MD5 is {got}, expected {med.md5}: nothing was kept")
    os.replace(temp, target)

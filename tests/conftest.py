"""Shared fixtures: the real data folder (PYBENCH_DATA_DIR), an isolated dataset cache, generated
image folders and NIH-style zip manifests, and a runner for the real command line.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared real datasets (mnist/, pneumoniamnist/), from $PYBENCH_DATA_DIR."""
    value = os.environ.get("PYBENCH_DATA_DIR")
    if not value:
        pytest.skip("PYBENCH_DATA_DIR is not set: point it at the shared datasets folder to run real-data tests")
    root = Path(value)
    if not (root / "mnist").is_dir() or not (root / "pneumoniamnist").is_dir():
        pytest.skip(f"PYBENCH_DATA_DIR={root} does not hold mnist/ and pneumoniamnist/")
    return root


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch) -> Path:
    """A fresh dataset cache folder for this test (never ~/.cache)."""
    folder = tmp_path / "dataset-cache"
    monkeypatch.setenv("PYBENCH_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def mnist_copy(data_dir, tmp_path) -> Path:
    """A data root in tmp_path holding a writable copy of the real MNIST files (to corrupt)."""
    root = tmp_path / "data"
    shutil.copytree(data_dir / "mnist", root / "mnist")
    for path in (root / "mnist").iterdir():
        path.chmod(0o644)
    return root


def random_image(rng: np.random.Generator, width: int, height: int, colour: bool) -> Image.Image:
    shape = (height, width, 3) if colour else (height, width)
    return Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8), "RGB" if colour else "L")


def encode_image(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture
def image_folder(tmp_path) -> Path:
    """Three classes of real PNG/JPEG/BMP files, grayscale and RGB, of different sizes (5 per class)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "shapes"
    formats = [("PNG", ".png"), ("JPEG", ".jpg"), ("BMP", ".bmp"), ("PNG", ".PNG"), ("JPEG", ".jpeg")]
    for class_index, name in enumerate(["circle", "square", "triangle"]):
        folder = root / name
        folder.mkdir(parents=True)
        for i, (fmt, ext) in enumerate(formats):
            colour = (i + class_index) % 2 == 0
            image = random_image(rng, 20 + 3 * i, 16 + 2 * class_index, colour)
            (folder / f"{name}{i}{ext}").write_bytes(encode_image(image, fmt))
    return root


NIH_LABELS = ["No Finding", "Effusion", "Effusion|Infiltration", "No Finding", "Infiltration", "No Finding",
              "Effusion", "Infiltration", "No Finding", "Effusion|Infiltration", "Infiltration", "Effusion"]


def nih_rows(count: int) -> list[dict]:
    return [{"Image Index": f"{i:08d}_000.png", "Finding Labels": NIH_LABELS[i % len(NIH_LABELS)],
             "Patient Age": str(30 + i)} for i in range(count)]


def manifest_text(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


@pytest.fixture
def nih_zip(tmp_path):
    """Factory: an NIH-style zip (images in nested folders, Data_Entry.csv at the top) -> its path."""

    def make(rows: list[dict] | None = None, name: str = "nih.zip", extra: dict[str, bytes] | None = None) -> Path:
        rows = rows if rows is not None else nih_rows(24)
        rng = np.random.default_rng(1)
        path = tmp_path / name
        with zipfile.ZipFile(path, "w") as bundle:
            bundle.writestr("Data_Entry.csv", manifest_text(rows))
            for i, row in enumerate(rows):
                image = random_image(rng, 32, 32, colour=False)
                image_name = next(iter(row.values()))  # the first column names the image
                bundle.writestr(f"images_{i % 2 + 1:03d}/images/{image_name}", encode_image(image, "PNG"))
            for member, data in (extra or {}).items():
                bundle.writestr(member, data)
        return path

    return make


@pytest.fixture(scope="session")
def nih_release_zip(tmp_path_factory) -> Path:
    """300 synthetic X-rays in the NIH ChestX-ray14 release's layout (scripts/make_nih_zip.py, run
    as the script it is): its folders, manifest header, multi-label finding cells at the
    release's rates, and patient ids."""
    out = tmp_path_factory.mktemp("nih-release") / "nih.zip"
    script = REPO_ROOT / "scripts" / "make_nih_zip.py"
    subprocess.run([sys.executable, str(script), str(out), "--images", "300", "--workers", "2"],
                   check=True, capture_output=True, timeout=300)
    return out


def default_sigint() -> None:
    """In the child, before it runs Python: SIGINT back to its default disposition. A process
    started with SIGINT ignored (every background job of a non-interactive shell: `cmd &` in a
    script, some CI runners) passes SIG_IGN on to its children, and Python then installs no
    KeyboardInterrupt handler: a test's Ctrl-C would do nothing. pybench is right to respect an
    inherited SIG_IGN; a test that sends SIGINT must not depend on what its parent inherited.
    The signals are also unblocked: a parent that ever started Julia in its own process (its
    runtime blocks SIGINT and SIGTERM in every thread but its own listener) passes that mask on,
    and a blocked signal waits unheard until the process ends."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_pybench(*args, cache: Path, **popen) -> subprocess.Popen:
    """Start `python -m pybench ARGS...` the way a user at a terminal does (SIGINT delivered),
    with the dataset cache `cache`, whatever this test process inherited."""
    env = {**os.environ, "PYBENCH_CACHE_DIR": str(cache)}
    return subprocess.Popen([sys.executable, "-m", "pybench", *map(str, args)], cwd=REPO_ROOT,
                            text=True, env=env, preexec_fn=default_sigint, **popen)


@pytest.fixture
def run_cli(isolated_cache):
    """Run `python -m pybench ARGS...` as a subprocess with the isolated cache."""

    def run(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        full_env = {**os.environ, "PYBENCH_CACHE_DIR": str(isolated_cache), **(env or {})}
        return subprocess.run([sys.executable, "-m", "pybench", *map(str, args)], capture_output=True, text=True,
                              cwd=REPO_ROOT, env=full_env, timeout=timeout)

    return run


@pytest.fixture
def cli_error(run_cli):
    """Run the CLI expecting a user error: exit 2, one stderr line naming `fragments`, no traceback."""

    def check(*args: str, fragments: tuple[str, ...] = (), env: dict | None = None) -> str:
        result = run_cli(*args, env=env)
        assert result.returncode == 2, (result.returncode, result.stderr)
        assert "Traceback" not in result.stderr
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("pybench: error: ")
        for fragment in fragments:
            assert fragment in lines[0], (fragment, lines[0])
        return lines[0]

    return check


@pytest.fixture(scope="session")
def mnist(data_dir, tmp_path_factory):
    """The real MNIST dataset, loaded once per session (its cache in a session temp folder)."""
    from pybench.datasets import load_dataset

    cache = tmp_path_factory.mktemp("mnist-cache")
    old = os.environ.get("PYBENCH_CACHE_DIR")
    os.environ["PYBENCH_CACHE_DIR"] = str(cache)
    try:
        return load_dataset("mnist", data_dir=data_dir, progress=False)
    finally:
        if old is None:
            os.environ.pop("PYBENCH_CACHE_DIR")
        else:
            os.environ["PYBENCH_CACHE_DIR"] = old


def pytest_addoption(parser):
    """The framework benchmark's matrix (tests/benchmarks/test_bench_frameworks.py)."""
    group = parser.getgroup("pybench", "pybench framework benchmarks")
    group.addoption("--pybench-frameworks", default="torch,jax,knet",
                    help="comma-separated frameworks to benchmark (default torch,jax,knet)")
    group.addoption("--pybench-models", default="lenet5,resnet8",
                    help="comma-separated models (default lenet5,resnet8)")
    group.addoption("--pybench-batch", default="32",
                    help="comma-separated batch sizes (default 32)")
    group.addoption("--pybench-device", default="cpu", choices=("cpu", "cuda", "auto"),
                    help="device for every framework (default cpu; auto: the GPU if any)")
    group.addoption("--pybench-steps", type=int, default=30,
                    help="timed training steps per case (default 30)")
    group.addoption("--pybench-warmup", type=int, default=3,
                    help="untimed steps after the first (compiling) one (default 3)")


BENCHMARKS_DIR = Path(__file__).parent / "benchmarks"
# Tests that measure time (or load the cores on purpose) outside tests/benchmarks/: with the
# benchmarks they are `serial`, run alone after the rest (tools/run-tests), never beside another.
SERIAL_FILES = {"test_bench_workflow.py"}


def pytest_configure(config):
    """Under pytest-xdist, each worker gets a dataset cache of its own (two workers decoding the
    same dataset into one cache entry at once would race for it) and, with as many workers as
    cores, a core of its own (`pin_to_own_core`). A relative PYBENCH_DATA_DIR (the documented
    `PYBENCH_DATA_DIR=../shared/datasets`) is made absolute from where pytest started: tests that
    start pybench in another folder, or build file:// addresses from it, see the same data.
    The history store is a folder of the session's."""
    # Every run a test's compare finishes goes to a store of the session's, never the user's
    # (whose default lives in the data directory, here the shared datasets).
    os.environ["PYBENCH_STORE"] = tempfile.mkdtemp(prefix="pybench-store-")
    data = os.environ.get("PYBENCH_DATA_DIR")
    if data and not Path(data).is_absolute():
        os.environ["PYBENCH_DATA_DIR"] = str(Path(data).resolve())
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and os.environ.get("PYBENCH_CACHE_DIR"):
        os.environ["PYBENCH_CACHE_DIR"] = str(Path(os.environ["PYBENCH_CACHE_DIR"]) / worker)
    if worker:
        pin_to_own_core(worker, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0")))


def pin_to_own_core(worker: str, workers: int) -> None:
    """Worker gwN runs on the Nth core alone, and so does everything it starts (affinity is
    inherited): torch's OpenMP, XLA's and Julia's thread pools and pybench's decoders all size
    themselves from the affinity mask, so each test's processes take one core instead of every
    worker's taking all of them, which oversubscribes the machine (spinning OpenMP threads then
    wait on each other). With more workers than cores nothing is pinned."""
    cores = sorted(os.sched_getaffinity(0))
    if 1 < workers <= len(cores):
        os.sched_setaffinity(0, {cores[int(worker.removeprefix("gw")) % len(cores)]})


def pytest_collection_modifyitems(config, items):
    """Every benchmark is `slow` (the fast tier, `-m "not slow"`, leaves them out) and `serial`
    (as are SERIAL_FILES); `gpu` tests run where torch can use a GPU and skip with the reason
    everywhere else."""
    for item in items:
        if BENCHMARKS_DIR in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.serial)
        elif Path(str(item.path)).name in SERIAL_FILES:
            item.add_marker(pytest.mark.serial)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # Under xdist the long tests are handed out first (tools/run-tests: --dist load), so that
        # no worker is left with one of them at the end while the others idle (a stable sort:
        # the order within each group is kept).
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    from pybench.backends import gpu_support
    from pybench.backends.torch_backend import TorchBackend

    if not TorchBackend.cuda_usable():
        skip = pytest.mark.skip(reason=f"needs a GPU torch can use; here torch: {gpu_support('torch')}")
        for item in gpu_items:
            item.add_marker(skip)


def pytest_benchmark_update_machine_info(config, machine_info):
    """The saved JSON says what ran: CPU model, cores, GPUs and driver, framework versions."""
    from pybench.backends import framework_versions
    from pybench.machine import machine_info as pybench_machine_info

    machine_info["pybench"] = {**pybench_machine_info(), "frameworks": framework_versions()}


def benchmark_results(module_name: str) -> dict:
    """The RESULTS a benchmark module filled in this session (empty when it did not run)."""
    module = next((m for name, m in list(sys.modules.items()) if name.endswith(module_name)), None)
    return getattr(module, "RESULTS", None) or {}


def pytest_terminal_summary(terminalreporter):
    """Print the benchmarks' figures (harness overhead, step variants) when measured."""
    print_step_variants(terminalreporter, benchmark_results("test_bench_step_variants"))
    print_knet_parity(terminalreporter)
    RESULTS = benchmark_results("test_bench_harness")
    if not RESULTS:
        return
    terminalreporter.section("pybench harness overhead (median step time, LeNet-5, MNIST)")
    for framework, f in RESULTS.items():
        terminalreporter.write_line(
            f"{framework:6} minimal {f['minimal_median_ms']:.3f} ms, pybench "
            f"{f['pybench_median_ms']:.3f} ms, ratio {f['ratio']:.3f} "
            f"({f['steps_each']} steps each)")


def print_step_variants(terminalreporter, results: dict) -> None:
    """Each framework's step variants: median step time and ratio to the default step."""
    for framework, rows in results.items():
        terminalreporter.section(f"{framework} step variants (MNIST, batch 32, median step)")
        terminalreporter.write_line(f"{'variant':72} {'median ms':>9} {'ratio':>6}")
        for row in sorted(rows, key=lambda r: r["median_ms"]):
            extra = f"  (compile {row['compile_s']:.1f} s apart)" if "compile_s" in row else ""
            terminalreporter.write_line(
                f"{row['variant']:72} {row['median_ms']:9.3f} {row['ratio']:6.3f}{extra}")


KNET_PARITY_ROWS: list[dict] = []  # from the test's report: it may have run in an xdist worker


def pytest_runtest_logreport(report):
    for name, value in getattr(report, "user_properties", ()):
        if name == "knet_parity" and report.when == "call":
            KNET_PARITY_ROWS.extend(value)


def print_knet_parity(terminalreporter) -> None:
    """Knet against PyTorch, per model and check, when tests/test_knet_julia.py ran Julia."""
    rows = KNET_PARITY_ROWS
    if not rows:
        return
    terminalreporter.section("Knet.jl against PyTorch (julia/KnetModels/test/parity.jl)")
    for row in rows:
        terminalreporter.write_line(f"{row['model']:9} {row['check']:42} {row['figure']:10.3g} "
                                    f"(tolerance {row['tolerance']:g})")


def command_line(process) -> str:
    """A process's command line, or "" once it has exited: Ray and the workers start and reap
    short-lived helpers all the time, and one can turn into a zombie between listing a parent's
    children and reading its command line."""
    import psutil

    try:
        return " ".join(process.cmdline())
    except (psutil.ZombieProcess, psutil.NoSuchProcess, psutil.AccessDenied):
        return ""

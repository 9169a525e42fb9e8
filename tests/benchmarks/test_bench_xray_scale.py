"""X-ray scale: decoding 512x512 PNGs from an NIH-layout zip, opening the cache, and a training
worker's peak memory per byte of uint8 data.

The zip is made by scripts/make_nih_zip.py (the layout of the NIH ChestX-ray14 release,
synthetic pixels), IMAGES of them, decoded to 224x224 as `--image-size 224` does. Targets on a
2-core machine (issue 22): decoding with every core at least SCALING_TARGET times one process's
rate (on 2 or more cores; asserted at SCALING_FLOOR, the figure printed); a cached load under
CACHED_TARGET_S; a worker's peak RSS under twice
the uint8 data plus the frameworks' own baseline, measured by the same command (same model, same
image size, so the same activations) on scikit-learn's digits. The README's X-ray scale section
has the same figures for 20,000 and 112,120 images.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from measured import record_measured_times
from quiet import LoadWatch, judge

from pybench.datasets import load_dataset
from pybench.datasets.decode import default_workers

# PYBENCH_XRAY_IMAGES: a smaller zip for the test that runs this benchmark beside a busy machine.
IMAGES = int(os.environ.get("PYBENCH_XRAY_IMAGES", "3000"))
SIZE = 224
SCALING_TARGET = 1.8  # the target, printed beside the measured figure
# What the assertion holds to: a pool that stopped decoding in parallel (1.0x) fails it, while the
# run-to-run noise of a shared 2-core machine around 1.8-1.9x (README, X-ray scale) does not.
SCALING_FLOOR = 1.5
CACHED_TARGET_S = 1.0
OPTIONS = {"image_size": SIZE, "binary_negative": "No Finding", "progress": False}
ROOT = Path(__file__).resolve().parents[2]
rates: dict[int, float] = {}
decode_load = LoadWatch()  # both decoding measurements: the ratio needs both quiet


@pytest.fixture(scope="module")
def nih_zip(tmp_path_factory) -> Path:
    import sklearn.model_selection  # noqa: F401  (the split's import: not the first timed load's cost)

    out = tmp_path_factory.mktemp("xray") / "nih.zip"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_nih_zip.py"), str(out), "--images", str(IMAGES)],
                   check=True, capture_output=True, timeout=600)
    return out


# Timed in a fresh process, as `pybench datasets info` decodes: the pool's start method depends on
# what the process has imported (fork before JAX is loaded, spawn after), and this test session
# has loaded every framework by now.
DECODE = """
import sys, time, zipfile
from pathlib import Path
from pybench.datasets.cache import ArrayStore
from pybench.datasets.decode import ZipReader, decode_splits
archive, folder, workers, size = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
with zipfile.ZipFile(archive) as bundle:
    names = sorted(n for n in bundle.namelist() if n.endswith(".png"))
folder.mkdir()
began = time.perf_counter()
arrays = decode_splits(ArrayStore(folder), {"train": names}, ZipReader(archive), size, False, workers, False).images
print(time.perf_counter() - began, len(arrays["train"]), int(arrays["train"][-1].any()))
"""


def decode_seconds(archive: Path, folder: Path, workers: int) -> float:
    """Seconds to decode every image of the zip into a store, by `workers` processes."""
    done = subprocess.run([sys.executable, "-c", DECODE, str(archive), str(folder), str(workers), str(SIZE)],
                          capture_output=True, text=True, timeout=600, env={**os.environ})
    assert done.returncode == 0, done.stderr[-3000:]
    seconds, count, last_filled = done.stdout.split()
    assert int(count) == IMAGES and last_filled == "1"
    return float(seconds)


@pytest.mark.parametrize("workers", [1, "all"])
def test_decode_throughput(benchmark, nih_zip, tmp_path, workers):
    count = 1 if workers == 1 else default_workers()
    with decode_load.measuring():
        seconds = decode_seconds(nih_zip, tmp_path / "store", count)
    record_measured_times(benchmark, [seconds], "in a fresh process")
    rates[count] = IMAGES / seconds
    benchmark.extra_info["images_per_s"] = round(rates[count], 1)
    print(f"\ndecoding with {count} process(es): {rates[count]:.0f} images/s")
    if count > 1 and 1 in rates:
        scaling = rates[count] / rates[1]
        benchmark.extra_info["scaling"] = round(scaling, 2)
        judge(decode_load, scaling >= SCALING_FLOOR,
              f"{count} processes decode {scaling:.2f}x as fast as one (target {SCALING_TARGET}x, "
              f"asserted at {SCALING_FLOOR}x)")


def test_cold_and_cached_load(benchmark, nih_zip, isolated_cache):
    began = time.perf_counter()
    first = load_dataset(str(nih_zip), **OPTIONS)  # every core
    cold_s = time.perf_counter() - began
    benchmark.extra_info["cold_load_s"] = round(cold_s, 2)
    print(f"\ncold load of {IMAGES} images (decode, split, statistics, fingerprint, cache): {cold_s:.1f} s")
    watch = LoadWatch()
    with watch.measuring():
        ds = benchmark.pedantic(load_dataset, args=(str(nih_zip),), kwargs=OPTIONS, rounds=5, warmup_rounds=1)
    assert ds.fingerprint == first.fingerprint
    assert not ds.train.images.flags.writeable  # memory-mapped from the cache, read-only
    if benchmark.stats is not None:
        median = benchmark.stats.stats.median
        judge(watch, median < CACHED_TARGET_S, f"cached load of {IMAGES} X-rays: median {median:.3f} s "
                                               f"(target {CACHED_TARGET_S} s)")


def peak_rss_per_run(dataset_args: list[str], out: Path) -> dict[str, int]:
    """Each framework's worker peak RSS from a real `pybench compare` (a few LeNet-5 steps)."""
    done = subprocess.run([sys.executable, "-m", "pybench", "compare", *dataset_args, "--frameworks", "torch,jax",
                           "--models", "lenet5", "--max-steps", "5", "--no-report", "--out", str(out)],
                          capture_output=True, text=True, timeout=900, env={**os.environ})
    assert done.returncode == 0, done.stderr[-3000:]
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert all(r["memory_kind"] == "rss" for r in runs)
    return {r["framework"]: r["peak_memory_bytes"] for r in runs}


def test_worker_peak_rss_per_byte_of_uint8_data(benchmark, nih_zip, isolated_cache, tmp_path):
    ds = load_dataset(str(nih_zip), **OPTIONS)
    data_bytes = ds.train.images.nbytes + ds.test.images.nbytes
    # The baseline: the same command at the same image size (the same model, activations and
    # framework runtime) on scikit-learn's digits, whose data is a few MB.
    baseline = peak_rss_per_run(["digits", "--image-size", str(SIZE)], tmp_path / "digits")
    scale = benchmark.pedantic(peak_rss_per_run, args=([str(nih_zip), "--image-size", str(SIZE), "--binary-negative",
                                                        "No Finding"], tmp_path / "xray"), rounds=1)
    for framework, peak in scale.items():
        over = (peak - baseline[framework]) / data_bytes
        benchmark.extra_info[f"{framework}_rss_over_baseline_per_data_byte"] = round(over, 2)
        print(f"\n{framework}: peak RSS {peak / 1e6:.0f} MB, digits baseline {baseline[framework] / 1e6:.0f} MB, "
              f"uint8 data {data_bytes / 1e6:.0f} MB: {over:.2f} bytes over the baseline per byte of data")
        assert peak < 2 * data_bytes + baseline[framework]

"""Read one stored comparison run: `results.json` and the per-run prediction files.

This is the only module that touches the run directory. It checks the stored record against the
contract `compare` writes (schema 1) and turns anything unusable into a one-line `PybenchError`
naming the file, so a bad directory is reported, not a traceback.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pybench.errors import PybenchError
from pybench.report.benchmark_json import load_benchmark_json, newest_saved_run

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"
REQUIRED_RUN_KEYS = ("framework", "model", "status")
# Run fields the report computes with: a number or null when present (a string there would
# otherwise surface as a TypeError deep inside a table or a plot).
NUMERIC_RUN_KEYS = ("test_accuracy", "val_accuracy", "first_step_s", "images_per_s",
                    "time_to_target_s", "peak_memory_bytes", "peak_flops_per_s", "n_params",
                    "flops_per_image", "steps", "epochs_run")
NUMERIC_STEP_TIME_KEYS = ("median", "iqr", "p90", "mean")


@dataclass(frozen=True)
class Predictions:
    """Test labels and eval-mode logits of one run, rows in the same order for every framework."""

    labels: np.ndarray  # (N,) int, 0-based
    logits: np.ndarray  # (N, classes) float
    # (n, features): the penultimate features of the first n test images (--embeddings), if stored
    embeddings: np.ndarray | None = None
    # With --embeddings: the first n training images' features and labels (the train t-SNE), and
    # the example grid's test images (`example_index` into the test split, their uint8 pixels).
    train_embeddings: np.ndarray | None = None
    train_labels: np.ndarray | None = None
    example_index: np.ndarray | None = None
    example_images: np.ndarray | None = None


def benchmark_source(source: str | Path) -> Path | None:
    """The pytest-benchmark JSON file `source` names, if it names one: a .json file other than
    results.json, or a folder without results.json holding saved runs (.benchmarks/: the
    newest)."""
    source = Path(source)
    if source.is_file() and source.name != RESULTS_FILE:
        return source
    if source.is_dir() and not (source / RESULTS_FILE).exists():
        return newest_saved_run(source)
    return None


def load_results(run_dir: str | Path) -> dict:
    """The parsed and checked results of `run_dir`: a folder `compare` wrote (its results.json),
    or a pytest-benchmark JSON file / `.benchmarks` folder converted to the same document."""
    benchmark_file = benchmark_source(run_dir)
    if benchmark_file is not None:
        results = load_benchmark_json(benchmark_file)
        check_results(results, benchmark_file)
        return results
    path = Path(run_dir)
    path = path if path.is_file() else path / RESULTS_FILE
    if not path.is_file():
        raise PybenchError(f"{path}: not found; pass the directory `pybench compare` wrote")
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        # exc.msg alone: str(exc) of a decode error can be long but stays on one line
        detail = getattr(exc, "msg", type(exc).__name__)
        raise PybenchError(f"{path}: not valid JSON ({detail})") from None
    check_results(results, path)
    return results


def check_results(results: object, path: Path) -> None:
    """Raise a one-line PybenchError unless `results` follows the stored-results contract."""
    if not isinstance(results, dict):
        raise PybenchError(f"{path}: expected a JSON object at the top level")
    schema = results.get("schema")
    if "schema" not in results and "runs" not in results:
        raise PybenchError(f"{path}: not a pybench results file (it has no 'schema' and no "
                           "'runs'); pass a folder `pybench compare` or `sweep` wrote")
    if isinstance(schema, int) and not isinstance(schema, bool) and schema > SCHEMA_VERSION:
        raise PybenchError(f"{path}: written by a newer pybench (results schema {schema}; this "
                           f"pybench reads {SCHEMA_VERSION}): upgrade pybench to read it")
    if schema != SCHEMA_VERSION:
        raise PybenchError(
            f"{path}: schema version {schema!r} is not supported "
            f"(this pybench reads {SCHEMA_VERSION})"
        )
    runs = results.get("runs")
    if not isinstance(runs, list):
        raise PybenchError(f"{path}: 'runs' must be a list of run records")
    for index, run in enumerate(runs):
        if not isinstance(run, dict):
            raise PybenchError(f"{path}: runs[{index}] must be an object")
        missing = [key for key in REQUIRED_RUN_KEYS if not run.get(key)]
        if missing:
            raise PybenchError(f"{path}: runs[{index}] lacks {', '.join(missing)}")
        check_numbers(run, path, index)
    for section in ("machine", "config", "dataset"):
        if not isinstance(results.get(section, {}), dict):
            raise PybenchError(f"{path}: '{section}' must be an object")


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_numbers(run: dict, path: Path, index: int) -> None:
    """Raise a one-line PybenchError naming the first numeric field of `run` that is not a number
    (or null)."""
    fields = {key: run[key] for key in NUMERIC_RUN_KEYS if key in run}
    stats = run.get("step_time_ms")
    if stats is not None and not isinstance(stats, dict):
        raise PybenchError(f"{path}: runs[{index}].step_time_ms must be an object, not {stats!r}")
    fields.update({f"step_time_ms.{key}": (stats or {})[key] for key in NUMERIC_STEP_TIME_KEYS
                   if key in (stats or {})})
    for key, value in fields.items():
        if value is not None and not is_number(value):
            raise PybenchError(f"{path}: runs[{index}].{key} is {value!r}, not a number")


def load_predictions(run_dir: str | Path, run: dict) -> Predictions | None:
    """The predictions a run lists, or None when it lists none (failed runs, old records)."""
    relative = run.get("predictions")
    if not relative:
        return None
    path = Path(run_dir) / relative
    if not path.is_file():
        raise PybenchError(
            f"{path}: listed as predictions of {run['framework']}/{run['model']} but not found"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in ("labels", "logits") if key not in archive.files]
            if missing:
                raise PybenchError(f"{path}: lacks array(s) {', '.join(missing)}")
            labels, logits = archive["labels"], archive["logits"]
            embeddings = archive["embeddings"] if "embeddings" in archive.files else None
            extra = {key: archive[key] for key in EXTRA_ARRAYS if key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise PybenchError(f"{path}: not a readable .npz file ({type(exc).__name__})") from None
    check_predictions(labels, logits, path)
    if embeddings is not None and (embeddings.ndim != 2 or len(embeddings) > len(labels)):
        raise PybenchError(f"{path}: embeddings must be (n, features) for at most the "
                           f"{len(labels)} test images, got {embeddings.shape}")
    check_extra(extra, labels, path)
    return Predictions(labels=labels.astype(np.int64), logits=logits.astype(np.float64),
                       embeddings=None if embeddings is None else embeddings.astype(np.float64),
                       **extra)


EXTRA_ARRAYS = ("train_embeddings", "train_labels", "example_index", "example_images")


def check_extra(extra: dict, labels: np.ndarray, path: Path) -> None:
    """The optional arrays agree with each other and with the test labels; one line if not."""
    train = extra.get("train_embeddings")
    if train is not None and (train.ndim != 2 or len(extra.get("train_labels", [])) != len(train)):
        raise PybenchError(f"{path}: train_embeddings must be (n, features) with n train_labels")
    index = extra.get("example_index")
    if index is not None:
        images = extra.get("example_images")
        if (images is None or images.ndim != 4 or len(images) != len(index)
                or (len(index) and not (0 <= index.min() and index.max() < len(labels)))):
            raise PybenchError(f"{path}: example_index must point into the {len(labels)} test "
                               "images, with one (C, H, W) image of example_images each")


def check_predictions(labels: np.ndarray, logits: np.ndarray, path: Path) -> None:
    """Labels (N,) of classes, or (N, findings) 0/1 of a multi-label task, beside (N, classes)
    logits."""
    if (labels.ndim not in (1, 2) or logits.ndim != 2 or len(labels) != len(logits)
            or (labels.ndim == 2 and labels.shape != logits.shape)):
        raise PybenchError(
            f"{path}: expected labels (N,) or (N, findings) and logits (N, classes), "
            f"got {labels.shape} and {logits.shape}"
        )
    highest = logits.shape[1] - 1 if labels.ndim == 1 else 1
    if len(labels) and (labels.min() < 0 or labels.max() > highest):
        raise PybenchError(f"{path}: labels must lie in 0..{highest}")
    # Non-finite logits (a diverged run) are not rejected here: that is a result to report.

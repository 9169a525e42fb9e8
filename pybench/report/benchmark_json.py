"""pytest-benchmark's JSON as a pybench results document, so `pybench report` reads it too.

`pytest --benchmark-only --benchmark-json=b.json` (or `--benchmark-autosave`, which saves under
`.benchmarks/<machine>/NNNN_*.json`) stores each framework benchmark's statistics, its raw
rounds (`stats.data`, seconds: always with --benchmark-json, with --benchmark-save-data for saved
runs; without them the report has no step-time plot) and pybench's `extra_info`
(tests/benchmarks/test_bench_frameworks.py). Each training benchmark becomes one ok run (its
rounds are the step times; its eval pass beside it), so the summary table, the speed ratios and
the step-time plots come out as for `compare`. Benchmarks without pybench's `extra_info`
(dataset loading, harness overhead) are not framework runs and are
left out, and the report says how many.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pybench.errors import PybenchError

SCHEMA = 1


def is_benchmark_json(document: object) -> bool:
    return isinstance(document, dict) and "benchmarks" in document and "machine_info" in document


def newest_saved_run(folder: Path) -> Path | None:
    """The newest file pytest-benchmark saved under `folder` (.benchmarks/<machine>/NNNN_*.json)."""
    saved = sorted(folder.glob("*/[0-9][0-9][0-9][0-9]_*.json"))
    return saved[-1] if saved else None


def step_stats(ms: np.ndarray) -> dict:
    q25, q50, q75, q90 = np.percentile(ms, [25, 50, 75, 90])
    return {"median": float(q50), "iqr": float(q75 - q25), "p90": float(q90),
            "mean": float(ms.mean()), "n": int(ms.size)}


def summary_stats(stats: dict) -> dict:
    """pytest-benchmark's own statistics (seconds) in pybench's form (ms), for files saved
    without the rounds; there is no 90th percentile among them."""
    return {"median": 1e3 * stats["median"], "iqr": 1e3 * stats["iqr"], "p90": None,
            "mean": 1e3 * stats["mean"], "n": int(stats["rounds"])}


def run_from(bench: dict, label: str, eval_bench: dict | None) -> dict:
    info = bench["extra_info"]
    ms = np.asarray(bench["stats"].get("data") or [], dtype=float) * 1e3
    run = {"framework": info["framework"], "model": label, "status": "ok", "reason": "",
           "framework_version": info.get("framework_version"), "device": info.get("device"),
           "device_name": info.get("device_name"), "dtype": info.get("dtype"),
           "batch_size": info["batch_size"], "data_fingerprint": info.get("data_fingerprint"),
           "init_fingerprint": info.get("init_fingerprint"),
           "step_time_ms": step_stats(ms) if ms.size else summary_stats(bench["stats"]),
           "first_step_s": info.get("first_s"),
           # The first entry is the first (compiling) step, as `compare` stores it; without the
           # rounds (saved without --benchmark-save-data) there is no distribution to plot.
           "step_times_ms": [1e3 * (info.get("first_s") or 0.0), *ms.tolist()] if ms.size else [],
           "images_per_s": info["batch_size"] / bench["stats"]["mean"],
           "benchmark": bench.get("fullname", bench.get("name"))}
    if eval_bench is not None:
        eval_ms = np.asarray(eval_bench["stats"].get("data") or [], dtype=float) * 1e3
        run["eval_ms"] = step_stats(eval_ms) if eval_ms.size else summary_stats(eval_bench["stats"])
        run["eval_images"] = eval_bench["extra_info"].get("eval_images")
    if info.get("support_note"):
        run["support_note"] = info["support_note"]
    return run


def results_from_benchmark_json(document: dict, source: Path) -> dict:
    """The results document for one pytest-benchmark JSON file."""
    ours = [b for b in document.get("benchmarks", [])
            if isinstance(b, dict) and {"framework", "model", "phase", "batch_size"}
            <= set(b.get("extra_info") or {})]
    if not ours:
        raise PybenchError(f"{source}: a pytest-benchmark file with no pybench framework "
                           "benchmark in it (run tests/benchmarks/test_bench_frameworks.py)")
    batches = {b["extra_info"]["batch_size"] for b in ours}

    def label(info):  # one "model" per batch size when several were benchmarked
        return info["model"] if len(batches) == 1 else f"{info['model']} b{info['batch_size']}"

    def key(b):
        info = b["extra_info"]
        return info["framework"], info["model"], info["batch_size"]

    evals = {key(b): b for b in ours if b["extra_info"]["phase"] == "eval"}
    runs = [run_from(b, label(b["extra_info"]), evals.get(key(b)))
            for b in ours if b["extra_info"]["phase"] == "train"]
    first = ours[0]["extra_info"]
    machine = dict(document["machine_info"].get("pybench") or {})
    machine.setdefault("cpu", (document["machine_info"].get("cpu") or {}).get("brand_raw"))
    commit = document.get("commit_info") or {}
    return {
        "schema": SCHEMA, "created": document.get("datetime", ""),
        "command": f"pytest --benchmark-only (pytest-benchmark {document.get('version', '?')}: "
                   f"{source})",
        "machine": machine,
        "config": {"source": "pytest-benchmark", "dataset": first.get("dataset"),
                   "batch_sizes": sorted(batches), "device": first.get("device"),
                   "commit": commit.get("id"), "dirty": commit.get("dirty")},
        "dataset": {"name": first.get("dataset"), "fingerprint": first.get("data_fingerprint")},
        "runs": runs,
        "skipped_benchmarks": len(document.get("benchmarks", [])) - len(ours),
    }


def load_benchmark_json(path: Path) -> dict:
    """Read and convert one pytest-benchmark JSON file (one-line errors on bad input)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PybenchError(f"{path}: not readable as JSON ({getattr(exc, 'msg', type(exc).__name__)})") \
            from None
    if not is_benchmark_json(document):
        raise PybenchError(f"{path}: neither pybench's results.json nor a pytest-benchmark JSON file")
    return results_from_benchmark_json(document, path)

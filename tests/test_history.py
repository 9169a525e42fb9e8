"""The history store and its change points: real runs appended by `compare`, series that never
mix machines, two writers at once, and the change-point rule held to its false-alarm and
detection rates on simulated noise and to a planted step on real runs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pybench.history import store
from pybench.history.series import change_points, changes_table, outside_history, series

REPO_ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- the rule, on simulated noise

def flat(rng, n: int, noise: float) -> np.ndarray:
    return 10.0 * np.exp(rng.normal(0.0, noise, n))


def test_thirty_flat_runs_rarely_make_a_change_and_a_planted_step_is_found_where_it_starts():
    """Measured with 1,000 flat series per noise level (docs/history.md): no false alarm at 1-10%
    noise, with or without outliers; here 200 at 5% noise with 8% outliers (runs 30-50% slow)
    may give at most 1, and a 20% step after run 30, followed by 10 runs, must be found at run
    31 in 45 of 50 series at 3% noise (measured: 300 of 300)."""
    rng = np.random.default_rng(7)
    noisy = [flat(rng, 30, 0.05) for _ in range(200)]
    for values in noisy[:16]:  # a few runs far slower, as a shared machine gives
        values[rng.random(30) < 0.08] *= 1.4
    assert sum(bool(change_points(values, log=True)) for values in noisy) <= 1
    found = [change_points(np.concatenate([flat(rng, 30, 0.03), 1.2 * flat(rng, 10, 0.03)]), log=True)
             for _ in range(50)]
    at_the_step = [c for c in found if [change.index for change in c] == [30]]
    assert len(at_the_step) >= 45
    assert all(0.12 < c[0].relative < 0.28 for c in at_the_step)


def test_a_spike_is_not_a_change_and_a_new_level_is_one_once_it_holds():
    rng = np.random.default_rng(3)
    values = flat(rng, 30, 0.01)
    spiked = values.copy()
    spiked[[10, 11]] *= 1.5  # two slow runs in a row: a shared machine's, not a new level
    assert change_points(spiked, log=True) == []
    assert change_points(np.concatenate([values, [13.0, 13.1]]), log=True) == []  # too few runs yet
    held = np.concatenate([values, 13.0 * np.exp(rng.normal(0, 0.01, 6))])
    assert [c.index for c in change_points(held, log=True)] == [30]


def test_a_change_below_the_minimum_is_not_reported():
    rng = np.random.default_rng(5)
    values = np.concatenate([flat(rng, 15, 0.002), 1.03 * flat(rng, 15, 0.002)])
    assert change_points(values, log=True, min_change=5.0) == []
    assert [c.index for c in change_points(values, log=True, min_change=2.0)] == [15]


def rows_of(values, busy=(), column="step_ms", framework="torch", version="2.14.1") -> pd.DataFrame:
    n = len(values)
    return pd.DataFrame({
        "uid": [f"u{i}" for i in range(n)], "series_key": "s1",
        "recorded_at": [f"2026-12-07T10:{i:02d}:00" for i in range(n)],
        "seed": 0, "repeat": list(range(n)), "framework": framework, "model": "lenet5", "dataset": "digits",
        "framework_version": version, "pybench_version": "0.1.0", "git_commit": "abc",
        "machine": json.dumps({"cpu": "AMD EPYC", "cores": 2}), "config": json.dumps({"batch_size": 64}),
        "dataset_fingerprint": "f", "busy": [int(i in busy) for i in range(n)],
        "step_ms": values if column == "step_ms" else 5.0, "accuracy": 0.9, "time_to_target_s": None,
        "peak_memory_bytes": 1e8})


def test_a_busy_machines_runs_neither_make_nor_hide_a_change():
    rng = np.random.default_rng(11)
    quiet = flat(rng, 24, 0.01)
    with_busy = quiet.copy()
    with_busy[[8, 9, 10]] *= 1.6  # three slow runs in a row, all measured beside other work
    assert changes_table(rows_of(with_busy, busy={8, 9, 10}), ("step",)).empty
    stepped = np.concatenate([quiet[:12], 1.25 * quiet[12:]])
    stepped[[12, 13]] = quiet[[12, 13]]  # busy runs at the change that happened to look unchanged
    table = changes_table(rows_of(stepped, busy={12, 13}), ("step",))
    assert list(table["from run"]) == ["13 of 22"]  # the first quiet run after the change
    assert table["change"].iloc[0].startswith("+2")


def test_compare_line_names_the_series_and_what_changed():
    rng = np.random.default_rng(2)
    rows = rows_of(np.concatenate([flat(rng, 6, 0.01), [12.5]]))
    rows.loc[6, "framework_version"] = "2.15.0"
    lines = outside_history(rows, {"u6"})
    assert len(lines) == 1
    assert lines[0].startswith("history: torch lenet5: step time 2") and "% slower than the last 5 runs" in lines[0]
    assert "torch 2.14.1 -> 2.15.0" in lines[0]
    assert outside_history(rows_of(flat(rng, 7, 0.01)), {"u6"}) == []  # within the range: nothing


# ---------------------------------------------------------------- the store

def document(tmp_path: Path, cpu: str = "AMD EPYC", created: str = "2026-12-07T10:00:00+00:00") -> dict:
    """A results document as compare writes it, from a real run's results.json."""
    return {"schema": 1, "pybench_version": "0.1.0", "commit": "abc", "created": created,
            "command": "python -m pybench compare digits",
            "machine": {"cpu": cpu, "cores": 2, "memory_gb": 23.5, "gpus": [], "cuda_driver": None},
            "config": {"dataset": "digits", "batch_size": 64, "epochs": 1, "seeds": [0, 1]},
            "dataset": {"name": "digits", "fingerprint": "f" * 64},
            "runs": [{"framework": "torch", "model": "lenet5", "status": "ok", "seed": seed, "repeat": 0,
                      "framework_version": "2.14.1", "step_time_ms": {"median": 4.195 + seed},
                      "step_times_ms": [50.0] + [4.0 + seed + 0.01 * i for i in range(40)],
                      "test_accuracy": 0.9, "test_images": 360, "peak_memory_bytes": 1e8,
                      "machine_load": {"busy": False}} for seed in (0, 1)]
            + [{"framework": "jax", "model": "lenet5", "status": "failed", "reason": "x"}]}


def test_the_store_keeps_each_run_once_with_its_intervals(tmp_path):
    path = tmp_path / "history.sqlite"
    assert store.add_document(document(tmp_path), "/r1", path) == (path, 2)  # the failed run adds nothing
    assert store.add_document(document(tmp_path), "/r1", path)[1] == 0  # the same results again
    rows = store.read_rows(path)
    assert list(rows["seed"]) == [0, 1] and rows["series_key"].nunique() == 1  # seeds share a series
    first = rows.iloc[0]
    assert first["step_low_ms"] <= first["step_ms"] <= first["step_high_ms"]
    assert first["step_high_ms"] - first["step_low_ms"] < 0.5  # the compiling first step left out
    assert first["accuracy_low"] < 0.9 < first["accuracy_high"]
    assert first["accuracy_high"] - first["accuracy_low"] < 0.07  # Wilson over 360 test images
    assert json.loads(first["config"]) == {"dataset": "digits", "batch_size": 64, "epochs": 1}


def test_series_never_mix_machines_and_a_colleagues_store_merges(tmp_path):
    mine, theirs = tmp_path / "mine.sqlite", tmp_path / "theirs.sqlite"
    store.add_document(document(tmp_path), "/r1", mine)
    store.add_document(document(tmp_path, cpu="Intel Xeon"), "/r2", theirs)
    assert store.merge_store(theirs, mine) == 2
    assert store.merge_store(theirs, mine) == 0
    rows = store.read_rows(mine)
    assert len(rows) == 4 and rows["series_key"].nunique() == 2
    for group in series(rows).values():
        assert group["machine_key"].nunique() == 1


def test_two_writers_at_once_lose_nothing(tmp_path):
    """Two processes append 150 single-run documents each, at the same time, to one store."""
    path = tmp_path / "history.sqlite"
    script = textwrap.dedent(f"""
        import sys
        from pybench.history import store
        writer = sys.argv[1]
        for i in range(150):
            document = {{"created": f"2026-12-07T10:00:{{i:03d}}+00:00", "command": writer,
                         "machine": {{"cpu": "c", "cores": 2}}, "config": {{}}, "dataset": {{"fingerprint": "f"}},
                         "runs": [{{"framework": "torch", "model": "lenet5", "status": "ok", "seed": i,
                                   "step_time_ms": {{"median": 1.0}}}}]}}
            assert store.add_document(document, None, {str(path)!r})[1] == 1
    """)
    writers = [subprocess.Popen([sys.executable, "-c", script, name], cwd=REPO_ROOT) for name in ("a", "b")]
    assert [w.wait(timeout=300) for w in writers] == [0, 0]
    rows = store.read_rows(path)
    assert len(rows) == 300 and rows["uid"].nunique() == 300
    assert sorted(rows.groupby("command").size()) == [150, 150]


def test_a_store_that_cannot_be_written_costs_the_history_not_the_results(tmp_path):
    from pybench.history import record

    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    lines = record(document(tmp_path), tmp_path, blocked / "history.sqlite")
    assert len(lines) == 1 and lines[0].startswith("pybench: warning: the runs were not added to the history")


def test_history_of_a_store_without_runs_says_so_and_a_missing_source_is_one_line(run_cli, cli_error, tmp_path):
    empty = run_cli("history", "--store", str(tmp_path / "none.sqlite"), "--html", str(tmp_path / "h.html"))
    assert empty.returncode == 0 and not empty.stderr, empty.stderr
    assert empty.stdout.startswith(f"history: no runs stored yet in {tmp_path / 'none.sqlite'}")
    assert "page: none written" in empty.stdout and not (tmp_path / "h.html").exists()
    cli_error("history", "import", str(tmp_path / "missing"), "--store", str(tmp_path / "s.sqlite"),
              fragments=("missing",))


# ---------------------------------------------------------------- real runs

PLANT = '''
import importlib.abc, importlib.util, os, sys, time
_DELAY = float(os.environ["PYBENCH_TEST_STEP_DELAY_S"])

class _Planted(importlib.abc.MetaPathFinder):
    """Slows TorchBackend.train_step by a fixed wait, inside the timed step (a busy wait: a
    sleep overshoots and wakes to cold caches, which made a 20% sleep a 26% step)."""
    def find_spec(self, name, path, target=None):
        if name != "pybench.backends.torch_backend":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module
        def exec_module(module):
            run(module)
            step = module.TorchBackend.train_step
            def slowed(self, *args, **kwargs):
                end = time.perf_counter() + _DELAY
                while time.perf_counter() < end:
                    pass
                return step(self, *args, **kwargs)
            module.TorchBackend.train_step = slowed
        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, _Planted())
'''


def on_one_core() -> list[str]:
    """A command prefix pinning the child to the last core: one thread, no neighbour on its core
    (the serial tests run alone), the quietest step times this machine gives. taskset (Debian's
    essential util-linux), not a preexec_fn: that would fork this JAX-threaded process."""
    return ["taskset", "-c", str(max(os.sched_getaffinity(0)))]


@pytest.mark.slow
@pytest.mark.serial  # step times: measured alone, or every run is a busy machine's
def test_history_finds_a_planted_step_in_real_runs_and_nothing_in_thirty_unchanged(tmp_path, isolated_cache):
    """30 real runs of LeNet-5 (torch, batch 128, 60 steps), then 10 with a wait of 20% of their
    median step added inside the timed step: `history` finds nothing in the 30 and names run 31
    as the first of the new level; compare's own line says its new runs left the series."""
    history = tmp_path / "history.sqlite"
    common = ["compare", "digits", "--frameworks", "torch", "--batch-size", "128", "--max-steps", "60",
              "--no-report", "--store", str(history)]

    def pybench(*args, env=None, timeout=900):
        return subprocess.run([*on_one_core(), sys.executable, "-m", "pybench", *map(str, args)], capture_output=True,
                              text=True, cwd=REPO_ROOT, timeout=timeout,
                              env={**os.environ, "PYBENCH_CACHE_DIR": str(isolated_cache), **(env or {})})

    flat_run = pybench(*common, "--repeats", "30", "--out", tmp_path / "flat", timeout=1800)
    assert flat_run.returncode == 0, flat_run.stderr[-3000:]
    assert "history: 30 runs added to" in flat_run.stdout
    unchanged = pybench("history", "--store", history, "--metrics", "step")
    assert unchanged.returncode == 0 and "No change of 5% or more in any series." in unchanged.stdout, unchanged.stdout
    median = float(store.read_rows(history)["step_ms"].median())
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(PLANT)
    planted = pybench(*common, "--repeats", "10", "--out", tmp_path / "planted",
                      env={"PYTHONPATH": str(hook), "PYBENCH_TEST_STEP_DELAY_S": str(0.2 * median / 1e3)})
    assert planted.returncode == 0, planted.stderr[-3000:]
    # compare held its new runs against the series' last five.
    assert re.search(r"history: torch lenet5: step time \d+% slower than the last 5 runs", planted.stdout), \
        planted.stdout
    page = tmp_path / "history.html"
    found = pybench("history", "--store", history, "--metrics", "step", "--html", page)
    assert found.returncode == 0, found.stderr
    changes = [line for line in found.stdout.splitlines() if "step time" in line]
    assert len(changes) == 1 and "31 of 40" in changes[0], found.stdout
    assert 12 < float(re.search(r" \+(\d+\.\d)% ", changes[0]).group(1)) < 30, changes[0]  # the planted 20%
    assert store.read_rows(history)["series_key"].nunique() == 1
    assert page.stat().st_size > 20_000 and "data:image/png;base64," in page.read_text()
    from test_report_html import screenshot_offline

    dom = screenshot_offline(page, tmp_path)
    assert "31 of 40" in dom and dom.count("<img") == 1

"""The step-variant search (tools/step_search) under pytest-benchmark: every framework's
default step beside the other ways of writing it, per model, the default's rounds being the
benchmark's. Opt-in: a search, not a regression test, and its verdict (each default within
step_search.SLOWEST_RATIO of the fastest variant of its table) is meant for a quiet machine.

    PYBENCH_DATA_DIR=../shared/datasets PYBENCH_BENCH_VARIANTS=1 \
        PYBENCH_BENCH_MODELS=lenet5,resnet8 pytest tests/benchmarks/test_bench_step_variants.py \
        --benchmark-only -s

PYBENCH_BENCH_ROUNDS sets the rounds (default 5), PYBENCH_BENCH_COMPILE=1 adds torch.compile.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import step_search  # noqa: E402  (tools/step_search is a package outside pybench)

OPT_IN_ENV = "PYBENCH_BENCH_VARIANTS"
MODELS = os.environ.get("PYBENCH_BENCH_MODELS", "lenet5").split(",")
RESULTS: dict[str, list[dict]] = {}  # "model: table" -> rows, printed by conftest's summary
pytestmark = pytest.mark.skipif(os.environ.get(OPT_IN_ENV) != "1",
                                reason=f"step-variant search is opt-in: set {OPT_IN_ENV}=1 "
                                       "(about eight minutes per model on 2 cores)")


def pedantic(benchmark) -> step_search.Drive:
    """The search's rounds driven by pytest-benchmark, the default's being the measured ones."""
    def drive(before, target, after, rounds):
        benchmark.pedantic(target, setup=before, teardown=after, rounds=rounds, iterations=1)

    return drive


@pytest.mark.parametrize("table", step_search.TABLES)
@pytest.mark.parametrize("model", MODELS)
def test_step_variants(benchmark, mnist, data_dir, tmp_path, model, table):
    reason = step_search.table_skip_reason(table, model)
    if reason:
        pytest.skip(reason)
    search = replace(step_search.Search(model, step_search.DEFAULT_STEPS[model]),
                     rounds=int(os.environ.get("PYBENCH_BENCH_ROUNDS", step_search.DEFAULT_ROUNDS)),
                     compile=os.environ.get("PYBENCH_BENCH_COMPILE") == "1")
    inputs = step_search.make_inputs(mnist, model) if table in ("torch", "jax") else None
    rows = step_search.run_table(table, search, inputs, tmp_path, pedantic(benchmark))
    RESULTS[f"{model}: {table}"] = rows
    benchmark.extra_info["variants"] = rows
    failed = step_search.verdict(rows)
    assert failed is None, failed

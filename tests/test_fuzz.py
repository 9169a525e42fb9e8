"""Arbitrary input to the results reader and to the command line's number parsing gives a valid
result or a clean error (PybenchError, or argparse's one-line usage error), never a traceback.
Beside the dataset parsers' own fuzz tests (test_datasets_idx, test_datasets_manifest)."""

from __future__ import annotations

import contextlib
import io
import json
import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pybench import cli, options
from pybench.errors import PybenchError
from pybench.report.loading import load_results

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20)
RUN = st.fixed_dictionaries({}, optional={
    "framework": JSON | st.sampled_from(["torch", "jax"]), "model": JSON | st.just("lenet5"),
    "status": JSON | st.sampled_from(["ok", "failed"]), "predictions": JSON})
DOCUMENT = st.fixed_dictionaries({}, optional={
    "schema": st.sampled_from([1, 2, 0, "1", None, 1.0, True]), "runs": st.lists(RUN, max_size=3)
    | JSON, "machine": JSON, "config": JSON, "dataset": JSON})


def read(text: str | bytes) -> dict | None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "results.json"
        (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
        try:
            return load_results(folder)
        except PybenchError as exc:
            assert "\n" not in str(exc) and str(path) in str(exc)
            return None


@settings(max_examples=200, deadline=None)
@given(DOCUMENT | JSON)
def test_any_json_is_a_results_document_or_a_one_line_error(document):
    results = read(json.dumps(document))
    if results is not None:  # accepted: then it holds what the report relies on
        assert results["schema"] == 1 and isinstance(results["runs"], list)
        for run in results["runs"]:
            assert all(run.get(k) for k in ("framework", "model", "status"))


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_are_read_or_refused_in_one_line(data):
    read(data)


NUMBER_TEXT = (st.text(max_size=12) | st.floats().map(repr) | st.integers().map(str)
               | st.sampled_from(["nan", "inf", "-inf", "1e309", "0x10", "1_000", " 3 ", "", "-0"]))
PARSERS = {  # the option table's checks (pybench.options), each with what a value it accepts must be
    options.number: lambda v: math.isfinite(v),
    options.positive_float: lambda v: math.isfinite(v) and v > 0,
    options.non_negative_float: lambda v: math.isfinite(v) and v >= 0,
    options.fraction_below_one: lambda v: 0 <= v < 1,
    options.open_fraction: lambda v: 0 < v < 1,
    options.positive_int: lambda v: isinstance(v, int) and v >= 1,
    options.non_negative_int: lambda v: isinstance(v, int) and v >= 0,
    options.image_side: lambda v: isinstance(v, int) and 1 <= v <= 4096,
}


@pytest.mark.parametrize("parse", PARSERS, ids=[p.__name__ for p in PARSERS])
@settings(max_examples=150, deadline=None)
@given(text=NUMBER_TEXT)
def test_number_parsing_gives_a_valid_value_or_a_usage_error(parse, text):
    try:
        value = parse(text)
    except ValueError as exc:  # the command line makes it its one-line usage error
        assert repr(text.strip()) in str(exc) or repr(text) in str(exc) or "not a" in str(exc)
        return
    assert PARSERS[parse](value), (text, value)


@settings(max_examples=60, deadline=None)
@given(option=st.sampled_from(["--lr", "--momentum", "--weight-decay", "--batch-size",
                               "--epochs", "--label-smoothing", "--warmup-steps", "--timeout"]),
       text=NUMBER_TEXT.filter(lambda t: not t.startswith("-")))
def test_the_real_parser_accepts_or_exits_2_with_one_line(option, text):
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            args = cli.parse_arguments(["compare", "digits", option, text])
        except SystemExit as exc:
            assert exc.code == 2 and stderr.getvalue().count("\n") == 1, stderr.getvalue()
            return
    value = getattr(args, option.lstrip("-").replace("-", "_"))
    assert value is not None and (not isinstance(value, float) or math.isfinite(value))

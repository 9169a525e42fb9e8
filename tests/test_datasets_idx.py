"""The IDX parser and gzip layer: exact round trips, every malformed input named, and fuzzing
(arbitrary bytes either parse to a valid array or raise PybenchError)."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pybench.datasets.idx import IDX_DTYPES, gunzip, parse_idx
from pybench.errors import PybenchError


def idx_bytes(array: np.ndarray, type_code: int) -> bytes:
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(IDX_DTYPES[type_code]).tobytes()


@pytest.mark.parametrize("type_code", sorted(IDX_DTYPES))
def test_round_trip_every_type(type_code):
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(IDX_DTYPES[type_code])
    if type_code == 0x08:
        array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    parsed = parse_idx(idx_bytes(array, type_code), "x.idx")
    assert parsed.shape == (2, 3, 4)
    np.testing.assert_array_equal(parsed, array)


def test_empty_dimension_is_valid():
    assert parse_idx(idx_bytes(np.zeros((0, 28, 28), np.uint8), 0x08), "e").shape == (0, 28, 28)


@pytest.mark.parametrize("data, message", [
    (b"\x00\x00", "only 2 bytes"),
    (b"\x01\x00\x08\x01" + b"\x00\x00\x00\x01" + b"\x07", "bad magic"),
    (b"\x00\x00\x07\x01" + b"\x00\x00\x00\x01" + b"\x07", "unknown type code 0x07"),
    (b"\x00\x00\x08\x00", "0 dimensions"),
    (b"\x00\x00\x08\x03\x00\x00\x00\x02", "truncated IDX header"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02", "truncated IDX data"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x01\x01\x02", "longer than its shape"),
])
def test_malformed_idx_is_named(data, message):
    with pytest.raises(PybenchError, match=message) as info:
        parse_idx(data, "train-images-idx3-ubyte")
    assert "train-images-idx3-ubyte" in str(info.value)


def test_gunzip_round_trip_and_multiple_members():
    assert gunzip(gzip.compress(b"abc") + gzip.compress(b"def"), "two.gz") == b"abcdef"


def test_gunzip_truncated_and_not_gzip():
    data = gzip.compress(bytes(range(256)) * 100)
    with pytest.raises(PybenchError, match="cut.gz: truncated gzip"):
        gunzip(data[: len(data) // 2], "cut.gz")
    with pytest.raises(PybenchError, match="plain.gz: not a valid gzip"):
        gunzip(b"plain text, not gzip", "plain.gz")


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=64))
def test_fuzz_arbitrary_bytes(data):
    try:
        array = parse_idx(data, "fuzz")
    except PybenchError:
        return
    assert isinstance(array, np.ndarray) and array.ndim == data[3]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(IDX_DTYPES)), st.lists(st.integers(0, 4), min_size=1, max_size=4),
       st.binary(max_size=200))
def test_fuzz_valid_headers_with_random_payloads(type_code, shape, payload):
    data = struct.pack(">BBBB", 0, 0, type_code, len(shape)) + struct.pack(f">{len(shape)}I", *shape) + payload
    try:
        array = parse_idx(data, "fuzz")
    except PybenchError:
        assert len(payload) != int(np.prod(shape)) * IDX_DTYPES[type_code].itemsize
        return
    assert array.shape == tuple(shape) and array.dtype == IDX_DTYPES[type_code]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_gzip_then_parse(data):
    try:
        parse_idx(gunzip(data, "fuzz.gz"), "fuzz")
    except PybenchError:
        pass

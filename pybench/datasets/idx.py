"""The IDX file format (MNIST's): gzip decompression and a strict parser.

An IDX file is a 4-byte magic (two zero bytes, a type code, the number of dimensions), one
big-endian uint32 per dimension, then the values in C order. The parser accepts exactly that:
anything else (bad magic, unknown type, short or over-long data) is a PybenchError naming the file.
"""

from __future__ import annotations

import zlib

import numpy as np

from pybench.errors import PybenchError

# Type codes from the IDX specification; multi-byte values are big-endian.
IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
# wbits=31: a gzip header and trailer; zlib is a little faster than the gzip module and tells
# truncation (no end of stream) apart from corruption.
GZIP_WBITS = 31


def gunzip(data: bytes, name: str) -> bytes:
    """Decompress every gzip member of `data`; a truncated or non-gzip input is a PybenchError."""
    pieces = []
    remaining = data
    try:
        while True:
            decompressor = zlib.decompressobj(GZIP_WBITS)
            pieces.append(decompressor.decompress(remaining))
            if not decompressor.eof:
                raise PybenchError(f"{name}: truncated gzip file (the compressed stream ends early)")
            remaining = decompressor.unused_data
            if not remaining:
                break
    except zlib.error as error:
        raise PybenchError(f"{name}: not a valid gzip file ({error})") from None
    return b"".join(pieces) if len(pieces) > 1 else pieces[0]


def parse_idx(data: bytes, name: str) -> np.ndarray:
    """The array stored in IDX bytes (a read-only view of `data`, in the file's byte order)."""
    if len(data) < 4:
        raise PybenchError(f"{name}: not an IDX file (only {len(data)} bytes, the header needs 4)")
    if data[0] != 0 or data[1] != 0:
        raise PybenchError(f"{name}: not an IDX file (bad magic {data[:4].hex()}: must start with 0000)")
    type_code, ndim = data[2], data[3]
    if type_code not in IDX_DTYPES:
        raise PybenchError(f"{name}: not an IDX file (unknown type code 0x{type_code:02x})")
    if ndim == 0:
        raise PybenchError(f"{name}: IDX file with 0 dimensions")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise PybenchError(f"{name}: truncated IDX header ({len(data)} bytes, {ndim} dimensions need {header_size})")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[type_code]
    expected = int(np.prod(shape, dtype=object)) * dtype.itemsize
    actual = len(data) - header_size
    if actual < expected:
        raise PybenchError(f"{name}: truncated IDX data (shape {shape} needs {expected} bytes, found {actual})")
    if actual > expected:
        raise PybenchError(f"{name}: IDX data longer than its shape {shape} ({actual} bytes, expected {expected})")
    return np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize, offset=header_size).reshape(shape)

"""Dropout masks every framework draws identically: a counter-based hash, not a random stream.

Each framework's own dropout draws from its own generator (torch's Philox, JAX's threefry,
Julia's Xoshiro), so the same model would drop different units in each and their losses would
part after the first step. Here the mask of a dropout layer is a pure function of the element's
position in the canonical (N, C, H, W) or (N, F) batch, the training step (counted over the whole
run: `Backend.put_order`'s `first_step` plus the step in the epoch) and the layer's index among the
model's dropouts: an integer hash (murmur3's finaliser) on 32-bit unsigned arithmetic, which
torch (int64, masked), JAX (uint32) and Julia (UInt32) compute bit for bit alike. An element is
kept when the hash's top 24 bits are at least `threshold(p)`, so it is dropped with probability p
to within 2^-24, and a kept element is multiplied by `scale(p)` = 1 / (1 - p), as PyTorch's
inverted dropout. The masks repeat across seeds: the seed changes the weights and the order.
"""

from __future__ import annotations

MASK32 = 0xFFFFFFFF
K_INDEX, K_STEP, K_LAYER = 0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D
K_MIX1, K_MIX2 = 0x85EBCA6B, 0xC2B2AE35


def threshold(p: float) -> int:
    return round(p * (1 << 24))


def scale(p: float) -> float:
    return 1.0 / (1.0 - p)


def base(step, layer_index: int, wrap, const=int):
    """The step's and layer's part of the hash's input (step: an int, or a device integer)."""
    # The layer's term reduced on the host: a Python int past 2^32 cannot meet a uint32 array.
    return wrap(wrap(step * const(K_STEP)) + const(((layer_index + 1) * K_LAYER) & MASK32))


def keep_mask(index, step, op, wrap=lambda x: x & MASK32, const=int):
    """Booleans: which elements `op` (a `layers.Dropout`) keeps at `step`. `index` holds each
    element's canonical flat position, as integers whose arithmetic `wrap` brings back to 32 bits
    (x & MASK32 for int64, nothing for uint32 arrays, which wrap by themselves); `const` makes
    the hash's constants the integers `index` computes with (JAX takes no Python int past
    2^31 beside a uint32 array)."""
    h = wrap(wrap(index * const(K_INDEX)) + base(step, op.index, wrap, const))
    h = h ^ (h >> const(16))
    h = wrap(h * const(K_MIX1))
    h = h ^ (h >> const(13))
    h = wrap(h * const(K_MIX2))
    h = h ^ (h >> const(16))
    return (h >> const(8)) >= const(threshold(op.p))

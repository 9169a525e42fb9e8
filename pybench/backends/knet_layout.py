"""Layout conversions between pybench's canonical arrays and what KnetModels (Julia) expects.

Pure numpy, so they are tested without Julia. Julia arrays are column-major: a C-order numpy
array of shape (a, b, c, d) has the same bytes as a Julia array of size (d, c, b, a), and numpy's
`x.transpose(3, 2, 1, 0)` is that array as an F-contiguous view. juliacall hands numpy arrays to
Julia as `PyArray`s that keep numpy's shape and strides without copying, so every conversion
into Julia here is a view; conversions back are copies (the Julia memory may be freed later).

Knet layout, per canonical name (see julia/KnetModels/src/layers.jl):
- conv weight (out, in, kh, kw) -> (kw, kh, in, out), used by `conv4(...; mode=1)`;
- everything else keeps its canonical shape: dense weight (out, in) is Knet's `w * x` as is,
  biases, BatchNorm weight/bias and running statistics are vectors Julia reshapes itself;
- images (N, C, H, W) -> (W, H, C, N); labels 0-based -> 1-based (Knet's `nll`), multi-label
  (N, findings) -> (findings, N);
  sample orders 0-based -> 1-based (Julia indexing); logits (classes, N) -> (N, classes).

Element types: float32 and float64 arrays keep their dtype both ways (KnetModels computes in the
dtype of the canonical weights: float64 for the parity trajectory, see the contract); anything
else (integers, float16) becomes float32.
"""

from __future__ import annotations

import numpy as np

Arrays = dict[str, np.ndarray]

# Reverses the dimensions: C-order (N, C, H, W) <-> F-order (W, H, C, N), same bytes.
REVERSE_4D = (3, 2, 1, 0)
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def float_dtype(array: np.ndarray) -> np.dtype:
    """The dtype a conversion keeps: float32 or float64 as given, float32 for anything else."""
    dtype = np.dtype(array.dtype)
    return dtype if dtype in FLOAT_DTYPES else np.dtype(np.float32)


def is_conv_weight(array: np.ndarray) -> bool:
    """Conv weights are the only 4-d parameters in every pybench model."""
    return array.ndim == 4


def weight_to_knet(array: np.ndarray) -> np.ndarray:
    """One canonical array in Knet layout, as a view when it is float32 or float64 and
    C-contiguous."""
    array = np.asarray(array)
    array = np.ascontiguousarray(array, dtype=float_dtype(array))
    return array.transpose(REVERSE_4D) if is_conv_weight(array) else array


def weight_from_knet(array) -> np.ndarray:
    """One Knet-layout array (numpy view of a Julia array) back to a canonical C-order copy."""
    array = np.asarray(array)
    dtype = float_dtype(array)
    if array.ndim == 4:
        array = array.transpose(REVERSE_4D)
    return np.array(array, dtype=dtype, order="C", copy=True)


def weights_to_knet(weights: Arrays) -> Arrays:
    return {name: weight_to_knet(a) for name, a in weights.items()}


def weights_from_knet(weights) -> Arrays:
    return {str(name): weight_from_knet(a) for name, a in weights.items()}


def images_to_knet(images: np.ndarray) -> np.ndarray:
    """(N, C, H, W) float32 or float64 -> (W, H, C, N) F-contiguous view of the same dtype (a
    copy only if the input is not already C-contiguous float32/float64)."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {images.shape}")
    return np.ascontiguousarray(images, dtype=float_dtype(images)).transpose(REVERSE_4D)


def labels_to_knet(labels: np.ndarray) -> np.ndarray:
    """0-based class indices -> 1-based int64 (Knet's `nll` skips label 0, so 0-based labels
    would silently drop class 0 from the loss); multi-label (N, findings) 0/1 labels -> the
    (findings, N) view Julia reads as its column-major targets (KnetModels makes them floats)."""
    if np.ndim(labels) == 2:
        return np.ascontiguousarray(labels, dtype=np.float64).T
    return np.asarray(labels, dtype=np.int64) + 1


def order_to_knet(order: np.ndarray) -> np.ndarray:
    """0-based sample positions -> 1-based int64 positions for Julia indexing."""
    return np.asarray(order, dtype=np.int64) + 1


def logits_from_knet(logits) -> np.ndarray:
    """Knet scores (classes, N) -> canonical (N, classes) C-order copy, dtype kept."""
    logits = np.asarray(logits)
    return np.array(logits.T, dtype=float_dtype(logits), order="C", copy=True)

"""Batch order: the only source of sample order for every framework.

Both functions depend only on (seed, epoch) and the data, through NumPy's PCG64 generator seeded
with a list, so PyTorch, JAX and Knet.jl visit samples in exactly the same order.
"""

from __future__ import annotations

import numpy as np


def batch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """A permutation of range(n) for this epoch."""
    return np.random.default_rng([seed, epoch]).permutation(n).astype(np.int64)


def balanced_order(seed: int, epoch: int, labels: np.ndarray) -> np.ndarray:
    """len(labels) indices drawn with replacement so every class is equally likely.

    Each draw picks one of the classes present uniformly, then one sample of that class uniformly.
    The trailing 1 in the seed keeps this stream apart from batch_order's.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng([seed, epoch, 1])
    if labels.size == 0:
        return np.empty(0, dtype=np.int64)
    classes, counts = np.unique(labels, return_counts=True)
    by_class = np.argsort(labels, kind="stable")  # samples grouped class by class, in index order
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    drawn_class = rng.integers(0, len(classes), size=len(labels))
    offset_in_class = rng.integers(0, counts[drawn_class])
    return by_class[starts[drawn_class] + offset_in_class].astype(np.int64)

"""`digits`: scikit-learn's bundled 8x8 handwritten digits, as a 28x28 MNIST look-alike.

1,797 images, values 0-16, shipped inside scikit-learn: it never touches the network, which is
why it is the offline default of the quick start. Values are scaled to 0-255, resized to 28x28
(or `image_size`) with PIL bilinear, and split by a seeded stratified split (a validation split
too with `val_fraction`).
"""

from __future__ import annotations

import numpy as np

from pybench.datasets.core import Dataset, LoadOptions, Source, Split, dataset_from_arrays
from pybench.datasets.images import transform_images

DIGITS_SIDE = 28
DIGITS_MAX_VALUE = 16


def digits_images() -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, 1, 8, 8) images scaled to 0-255, and int64 labels."""
    from sklearn.datasets import load_digits  # slow import: only when digits is asked for

    bunch = load_digits()
    scaled = np.rint(bunch.images * (255.0 / DIGITS_MAX_VALUE)).astype(np.uint8)
    return scaled[:, None, :, :], bunch.target.astype(np.int64)


def load_digits_dataset(options: LoadOptions) -> Dataset:
    images, labels = digits_images()
    original = images.shape[1:]
    size = options.image_size or DIGITS_SIDE
    images = transform_images(images, size, options.grayscale, options.resize)
    return dataset_from_arrays("digits", "sklearn.datasets.load_digits", [str(d) for d in range(10)],
                               {"train": Split(images, labels)}, {"train": f"all {len(labels):,} images"},
                               options, "scikit-learn's bundled digits (arrays, no split of their own)",
                               original_shape=original, image_size=size)


def digits_source(options: LoadOptions) -> Source:
    import sklearn

    return Source(name="digits", files=[], load=lambda store: load_digits_dataset(options),
                  version=f"scikit-learn {sklearn.__version__}")

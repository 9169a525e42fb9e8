"""Training-set augmentation drawn in numpy from (seed, epoch): every framework trains on the very
same augmented pixels.

Augmenting inside a framework (torchvision transforms, a jitted JAX function, Julia) would give each
framework other random draws and other interpolation code; here each epoch's augmented training
images are computed once by the dataset layer, fingerprinted, and handed to every backend like the
batch order. Kinds (any combination, always drawn in this order so that adding one kind does not
change the draws of another):

- flip: a horizontal flip with probability 1/2 (torchvision's RandomHorizontalFlip).
- crop: a random crop of the image padded by `crop_padding` pixels on every side (torchvision's
  RandomCrop(size, padding)), i.e. a shift by a whole number of pixels in [-p, p] each way.
- rotate: a rotation by an angle uniform in [-ROTATE_DEGREES, ROTATE_DEGREES] about the centre.

All three are one affine map per image, sampled bilinearly: flips and whole-pixel shifts land on
pixel centres, so without rotation the output pixels are input pixels exactly. Pixels that come
from outside the image get the value a black pixel (0) has after normalisation, as padding with
zeros before normalising would.
"""

from __future__ import annotations

import numpy as np

from pybench.errors import PybenchError

AUGMENTATIONS = ("flip", "crop", "rotate")
ROTATE_DEGREES = 10.0  # small enough for digits (a 6 stays a 6), ample for chest X-rays
CHUNK = 2048  # images per vectorised pass: bounds the coordinate temporaries to ~100 MB at 224 px
STREAM = 2  # seeds are [seed, epoch, STREAM]: apart from batch_order's and balanced_order's


def crop_padding(size: int) -> int:
    """Padding of the random crop: 4 px for 32 px images as in the usual CIFAR recipe (1/8)."""
    return max(1, size // 8)


def check_augmentations(kinds) -> tuple[str, ...]:
    kinds = tuple(kinds)
    unknown = [k for k in kinds if k not in AUGMENTATIONS]
    if unknown:
        raise PybenchError(f"--augment {','.join(kinds)}: unknown {', '.join(unknown)}; choose "
                           f"from {', '.join(AUGMENTATIONS)}")
    return kinds


def draws(seed: int, epoch: int, n: int, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Every image's flip, shift and angle for this epoch, whichever kinds are used."""
    rng = np.random.default_rng([seed, epoch, STREAM])
    pad_y, pad_x = crop_padding(size[0]), crop_padding(size[1])
    return {"flip": rng.random(n) < 0.5,
            "dy": rng.integers(-pad_y, pad_y + 1, n), "dx": rng.integers(-pad_x, pad_x + 1, n),
            "angle": rng.uniform(-ROTATE_DEGREES, ROTATE_DEGREES, n)}


def augment(images: np.ndarray, kinds, seed: int, epoch: int, fill: np.ndarray) -> np.ndarray:
    """This epoch's augmented copy of normalised float32 (N, C, H, W) `images`.

    `fill` is the per-channel value outside the image (C,), normally the normalised black pixel.
    """
    kinds = check_augmentations(kinds)
    n, _, height, width = images.shape
    d = draws(seed, epoch, n, (height, width))
    flip = d["flip"] if "flip" in kinds else np.zeros(n, bool)
    dy = d["dy"] if "crop" in kinds else np.zeros(n, np.int64)
    dx = d["dx"] if "crop" in kinds else np.zeros(n, np.int64)
    angle = np.deg2rad(d["angle"]) if "rotate" in kinds else np.zeros(n)
    out = np.empty_like(images)
    for start in range(0, n, CHUNK):
        part = slice(start, start + CHUNK)
        out[part] = warp(images[part], flip[part], dy[part], dx[part], angle[part], fill)
    return out


def warp(images, flip, dy, dx, angle, fill) -> np.ndarray:
    """Bilinear sampling of each image through its inverse affine map (see the module doc)."""
    n, channels, height, width = images.shape
    cy, cx = (height - 1) / 2, (width - 1) / 2
    rows, cols = np.meshgrid(np.arange(height, dtype=np.float64),
                             np.arange(width, dtype=np.float64), indexing="ij")
    # Undo the shift, then the rotation about the centre, then the flip.
    y = rows[None] - dy[:, None, None] - cy
    x = cols[None] - dx[:, None, None] - cx
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    src_y = cos * y + sin * x + cy
    src_x = -sin * y + cos * x + cx
    src_x = np.where(flip[:, None, None], (width - 1) - src_x, src_x)
    # Rounding first keeps whole-pixel positions whole despite the sin/cos arithmetic.
    src_y, src_x = np.round(src_y, 9), np.round(src_x, 9)
    y0, x0 = np.floor(src_y).astype(np.int64), np.floor(src_x).astype(np.int64)
    wy, wx = (src_y - y0).astype(np.float32), (src_x - x0).astype(np.float32)
    flat = images.reshape(n, channels, height * width)
    fill = np.asarray(fill, np.float32).reshape(1, channels, 1)
    out = np.zeros((n, channels, height * width), np.float32)
    for oy, ox, weight in ((0, 0, (1 - wy) * (1 - wx)), (0, 1, (1 - wy) * wx),
                           (1, 0, wy * (1 - wx)), (1, 1, wy * wx)):
        yy, xx = y0 + oy, x0 + ox
        inside = ((yy >= 0) & (yy < height) & (xx >= 0) & (xx < width)).reshape(n, 1, -1)
        index = (np.clip(yy, 0, height - 1) * width + np.clip(xx, 0, width - 1)).reshape(n, 1, -1)
        values = np.take_along_axis(flat, np.broadcast_to(index, (n, channels, index.shape[-1])),
                                    axis=2)
        out += weight.reshape(n, 1, -1) * np.where(inside, values, fill)
    return out.reshape(images.shape)


def black_pixel(dataset) -> np.ndarray:
    """The normalised value of a 0 pixel in each channel (see `Dataset.normalized`)."""
    mean = np.asarray(dataset.mean, np.float32)
    std = np.asarray(dataset.std, np.float32)
    return (np.float32(0) - mean) / np.where(std > 0, std, np.float32(1))


def augmented_train(dataset, kinds, seed: int, epoch: int) -> np.ndarray:
    """The dataset's normalised training images, augmented for this epoch."""
    return augment(dataset.normalized("train"), kinds, seed, epoch, black_pixel(dataset))

"""Training-set augmentation drawn in numpy from (seed, epoch): every framework trains on the very
same augmented pixels.

Augmenting inside a framework (torchvision transforms, a jitted JAX function, Julia) would give each
framework other random draws and other interpolation code; here each epoch's augmented training
images are computed once by the dataset layer, fingerprinted, and handed to every backend like the
batch order. Kinds (any combination, applied in this order):

- flip: a horizontal flip with probability 1/2 (torchvision's RandomHorizontalFlip).
- vflip: a vertical flip with probability 1/2 (RandomVerticalFlip).
- crop: a random crop of the image padded by `crop_padding` pixels on every side (torchvision's
  RandomCrop(size, padding)), i.e. a shift by a whole number of pixels in [-p, p] each way.
- rotate, rotate:DEG: a rotation by an angle uniform in [-DEG, DEG] about the centre (DEG
  defaults to ROTATE_DEGREES).
- zoom:MIN: a random resized crop (RandomResizedCrop with the aspect ratio kept): a square of a
  share of the image's area uniform in [MIN, 1], at a uniform position, resized to the full image.
- brightness:F: the pixel values (in [0, 1], before normalisation) times a factor uniform in
  [1 - F, 1 + F], clipped to [0, 1] (ColorJitter's brightness).
- contrast:F: each image's pixel values moved away from (or towards) the image's mean by a
  factor uniform in [1 - F, 1 + F], clipped to [0, 1] (ColorJitter's contrast; the mean is over
  every channel); after brightness when both are given.

The geometric kinds are one affine map per image, sampled bilinearly: flips and whole-pixel
shifts land on pixel centres, so without rotation or zoom the output pixels are input pixels
exactly. Pixels that come from outside the image get the value a black pixel (0) has after
normalisation, as padding with zeros before normalising would. Every draw is made for every
image whichever kinds are used, so adding a kind (or changing a parameter) leaves the other
kinds' draws as they were, and the draws of flip, crop and rotate are those of earlier versions.
"""

from __future__ import annotations

import numpy as np

from pybench.errors import PybenchError

AUGMENTATIONS = ("flip", "vflip", "crop", "rotate", "zoom", "brightness", "contrast")
ROTATE_DEGREES = 10.0  # small enough for digits (a 6 stays a 6), ample for chest X-rays
# kind -> (what its parameter is, its range, its default; None: it must be given)
PARAMETERS = {"rotate": ("DEG, the largest angle in degrees", (0.0, 180.0), ROTATE_DEGREES),
              "zoom": ("MIN, the smallest share of the area kept", (0.05, 1.0), None),
              "brightness": ("F, the largest change of the factor", (0.0, 1.0), None),
              "contrast": ("F, the largest change of the factor", (0.0, 1.0), None)}
EXAMPLES = {"zoom": "zoom:0.8", "brightness": "brightness:0.2", "contrast": "contrast:0.2"}
CHUNK = 2048  # images per vectorised pass: bounds the coordinate temporaries to ~100 MB at 224 px
STREAM = 2  # seeds are [seed, epoch, STREAM]: apart from batch_order's and balanced_order's


def crop_padding(size: int) -> int:
    """Padding of the random crop: 4 px for 32 px images as in the usual CIFAR recipe (1/8)."""
    return max(1, size // 8)


def check_augmentations(kinds) -> tuple[str, ...]:
    """The kinds as given ("rotate:15", "zoom:0.8"), each checked; one line naming a bad one."""
    kinds = tuple(kinds)
    parse_augmentations(kinds)
    return kinds


def parse_augmentations(kinds) -> dict[str, float | None]:
    """kind -> its parameter (None for a kind without one), from the `--augment` items."""
    parsed: dict[str, float | None] = {}
    for item in kinds:
        name, _, value = str(item).partition(":")
        if name not in AUGMENTATIONS:
            raise PybenchError(f"--augment {','.join(map(str, kinds))}: unknown {name}; choose "
                               f"from {', '.join(AUGMENTATIONS)}")
        if name in parsed:
            raise PybenchError(f"--augment {','.join(map(str, kinds))}: {name} is given twice")
        parsed[name] = parameter(name, value)
    return parsed


def parameter(name: str, value: str) -> float | None:
    """The number after `name:`, checked against its range (or the kind's default)."""
    if name not in PARAMETERS:
        if value:
            raise PybenchError(f"--augment {name}:{value}: {name} takes no value")
        return None
    meaning, (low, high), default = PARAMETERS[name]
    if not value:
        if default is None:
            raise PybenchError(f"--augment {name}: give {meaning.split(',')[0]} ({meaning}), "
                               f"e.g. {EXAMPLES[name]}")
        return default
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not low <= number <= high:  # NaN fails too
        raise PybenchError(f"--augment {name}:{value}: {meaning} must be a number from {low:g} "
                           f"to {high:g}")
    return number


def draws(seed: int, epoch: int, n: int, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Every image's draws for this epoch, whichever kinds are used (the first four in the
    order they have always had, so earlier runs' augmentations are unchanged)."""
    rng = np.random.default_rng([seed, epoch, STREAM])
    pad_y, pad_x = crop_padding(size[0]), crop_padding(size[1])
    return {"flip": rng.random(n) < 0.5,
            "dy": rng.integers(-pad_y, pad_y + 1, n), "dx": rng.integers(-pad_x, pad_x + 1, n),
            # uniform in [-1, 1] times ROTATE_DEGREES: rotate:DEG scales it to [-DEG, DEG]
            "angle": rng.uniform(-ROTATE_DEGREES, ROTATE_DEGREES, n),
            "vflip": rng.random(n) < 0.5,
            "zoom_area": rng.random(n), "zoom_y": rng.random(n), "zoom_x": rng.random(n),
            "brightness": rng.random(n), "contrast": rng.random(n)}


def geometry(given: dict, d: dict, n: int, height: int, width: int) -> dict[str, np.ndarray]:
    """Each image's flips, shift, angle (radians) and zoom (side `scale` of the kept square at
    `top`, `left`): the identity for a kind not given."""
    angle = d["angle"] * (given["rotate"] / ROTATE_DEGREES) if "rotate" in given else np.zeros(n)
    scale = (np.sqrt(given["zoom"] + (1 - given["zoom"]) * d["zoom_area"]) if "zoom" in given
             else np.ones(n))
    return {"flip": d["flip"] if "flip" in given else np.zeros(n, bool),
            "vflip": d["vflip"] if "vflip" in given else np.zeros(n, bool),
            "dy": d["dy"] if "crop" in given else np.zeros(n, np.int64),
            "dx": d["dx"] if "crop" in given else np.zeros(n, np.int64),
            "angle": np.deg2rad(angle), "scale": scale,
            # The kept square's top-left corner, uniform over where it fits.
            "top": (1 - scale) * height * d["zoom_y"], "left": (1 - scale) * width * d["zoom_x"]}


def augment(images: np.ndarray, kinds, seed: int, epoch: int, fill: np.ndarray,
            mean=None, std=None) -> np.ndarray:
    """This epoch's augmented copy of normalised float32 (N, C, H, W) `images`.

    `fill` is the per-channel value outside the image (C,), normally the normalised black pixel;
    `mean` and `std` (C,), the normalisation, are needed by brightness and contrast, which act on
    the pixel values in [0, 1].
    """
    given = parse_augmentations(kinds)
    n, _, height, width = images.shape
    d = draws(seed, epoch, n, (height, width))
    shapes = geometry(given, d, n, height, width)
    colour = {kind: 1 + given[kind] * (2 * d[kind] - 1) for kind in ("brightness", "contrast")
              if kind in given}
    if colour and (mean is None or std is None):
        raise PybenchError("--augment brightness and contrast need the normalisation's mean and std")
    out = np.empty_like(images)
    for start in range(0, n, CHUNK):
        part = slice(start, start + CHUNK)
        out[part] = warp(images[part], {k: v[part] for k, v in shapes.items()}, fill)
        if colour:
            out[part] = jitter(out[part], {k: v[part] for k, v in colour.items()}, mean, std)
    return out


def warp(images, shapes: dict, fill) -> np.ndarray:
    """Bilinear sampling of each image through its inverse affine map (see the module doc)."""
    n, channels, height, width = images.shape
    cy, cx = (height - 1) / 2, (width - 1) / 2
    rows, cols = np.meshgrid(np.arange(height, dtype=np.float64),
                             np.arange(width, dtype=np.float64), indexing="ij")
    g = {k: np.asarray(v)[:, None, None] for k, v in shapes.items()}
    # Undo the shift, then the rotation about the centre, then the flips, then the zoom.
    y = rows[None] - g["dy"] - cy
    x = cols[None] - g["dx"] - cx
    cos, sin = np.cos(g["angle"]), np.sin(g["angle"])
    src_y = cos * y + sin * x + cy
    src_x = -sin * y + cos * x + cx
    src_x = np.where(g["flip"], (width - 1) - src_x, src_x)
    src_y = np.where(g["vflip"], (height - 1) - src_y, src_y)
    src_y = zoomed(src_y, g["top"], g["scale"], height)
    src_x = zoomed(src_x, g["left"], g["scale"], width)
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


def zoomed(position, start, scale, size: int):
    """Where pixel centre `position` of the zoomed image lies in the source: start + (position +
    0.5) * scale - 0.5. The kept square lies inside the image, but its outer half-pixels reach
    past the outermost pixel centres: there the edge pixel is repeated, as image resizing does,
    rather than blended with the fill (which stays for what rotation or a shift brought in)."""
    inside = (position >= -0.5) & (position <= size - 0.5) & (scale < 1)
    moved = start + (position + 0.5) * scale - 0.5
    return np.where(inside, np.clip(moved, 0, size - 1), moved)


def jitter(images: np.ndarray, factors: dict[str, np.ndarray], mean, std) -> np.ndarray:
    """Brightness, then contrast, on the pixel values in [0, 1], normalised back (float32)."""
    channels = images.shape[1]
    mean = np.asarray(mean, np.float32).reshape(1, channels, 1, 1)
    std = np.asarray(std, np.float32).reshape(1, channels, 1, 1)
    safe = np.where(std > 0, std, np.float32(1))
    pixels = images * safe + mean
    if "brightness" in factors:
        pixels = np.clip(pixels * factors["brightness"].astype(np.float32)[:, None, None, None], 0, 1)
    if "contrast" in factors:
        centre = pixels.mean(axis=(1, 2, 3), keepdims=True)
        c = factors["contrast"].astype(np.float32)[:, None, None, None]
        pixels = np.clip((pixels - centre) * c + centre, 0, 1)
    return ((pixels - mean) / safe).astype(np.float32)


def black_pixel(dataset) -> np.ndarray:
    """The normalised value of a 0 pixel in each channel (see `Dataset.normalized`)."""
    mean = np.asarray(dataset.mean, np.float32)
    std = np.asarray(dataset.std, np.float32)
    return (np.float32(0) - mean) / np.where(std > 0, std, np.float32(1))


def augmented_train(dataset, kinds, seed: int, epoch: int) -> np.ndarray:
    """The dataset's normalised training images, augmented for this epoch."""
    return augment(dataset.normalized("train"), kinds, seed, epoch, black_pixel(dataset),
                   dataset.mean, dataset.std)

"""Image decoding and the pixel transforms shared by every source (PIL, bilinear).

Decoded images become uint8 arrays (H, W) for grayscale or (H, W, 3) for colour; `stack_images`
turns a list of them into (N, C, H, W), promoting grayscale to RGB when the set is mixed (unless
`grayscale` was asked for) and refusing differently sized images unless an image size was given.
A non-square image is made square the way `--resize` says (`fit_square`: centre crop, squash or
letterbox). `transform_images` applies the same options to sources that arrive as arrays. Every
decoded image also reports what it was (`story.ImageFacts`), so that what the options did to it
can be said (`pybench.datasets.story`).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps

from pybench.datasets.story import DEFAULT_RESIZE, GRAY_MODES, RESIZE_METHODS, ImageFacts
from pybench.errors import PybenchError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
# PIL modes that hold one intensity per pixel; everything else (RGB, RGBA, P, CMYK...) is colour.
GRAYSCALE_MODES = GRAY_MODES


# What to do about images of several sizes, said wherever they are refused.
SIZE_FIX = ("pass --image-size S to make them all S x S (--resize crop: centre crop, the default; squash; "
            "pad: letterbox)")


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def to_8bit_gray(image: Image.Image) -> Image.Image:
    """16-bit and float grayscale scaled to 8 bits (PIL's convert('L') would clip instead)."""
    if image.mode in {"I", "I;16", "I;16B", "I;16L", "F"}:
        values = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if values.max(initial=0) > 255 else 255.0
        return Image.fromarray(np.clip(np.rint(values * (255.0 / peak)), 0, 255).astype(np.uint8), "L")
    return image.convert("L")


def resize_shorter_side_and_crop(image: Image.Image, size: int) -> Image.Image:
    """Resize so the shorter side is `size` (bilinear), then crop the central size x size square."""
    width, height = image.size
    if (width, height) != (size, size):
        scale = size / min(width, height)
        new_width, new_height = max(size, round(width * scale)), max(size, round(height * scale))
        image = image.resize((new_width, new_height), Image.BILINEAR)
        left, top = (new_width - size) // 2, (new_height - size) // 2
        image = image.crop((left, top, left + size, top + size))
    return image


def letterbox(image: Image.Image, size: int) -> Image.Image:
    """Resize so the longer side is `size` (bilinear) and pad the shorter with black, centred:
    PIL's own `ImageOps.pad`."""
    if image.size == (size, size):
        return image
    return ImageOps.pad(image, (size, size), Image.BILINEAR, color=0, centering=(0.5, 0.5))


def fit_square(image: Image.Image, size: int, resize: str = DEFAULT_RESIZE) -> Image.Image:
    """`image` as size x size: `resize` crop (centre crop after the shorter side is resized),
    squash (resized, aspect not kept) or pad (letterbox). A square image is only resized."""
    if image.size == (size, size):
        return image
    if resize == "crop":
        return resize_shorter_side_and_crop(image, size)
    if resize == "pad":
        return letterbox(image, size)
    if resize == "squash":
        return image.resize((size, size), Image.BILINEAR)
    raise PybenchError(f"--resize {resize!r}: choose {', '.join(RESIZE_METHODS)}")


def is_gray_colour(array: np.ndarray) -> bool:
    """An (H, W, 3) image whose three channels are equal everywhere (a gray image saved as RGB)."""
    return bool(np.array_equal(array[..., 0], array[..., 1]) and np.array_equal(array[..., 1], array[..., 2]))


def prepare_image(image: Image.Image, image_size: int | None, grayscale: bool,
                  resize: str = DEFAULT_RESIZE) -> np.ndarray:
    """A decoded image as uint8 (H, W) or (H, W, 3) after the grayscale and size options."""
    if grayscale or image.mode in GRAYSCALE_MODES:
        image = to_8bit_gray(image)
    else:
        image = image.convert("RGB")
    if image_size is not None:
        image = fit_square(image, image_size, resize)
    return np.asarray(image, dtype=np.uint8)


def decode_image(data: bytes, name: str, image_size: int | None, grayscale: bool,
                 resize: str = DEFAULT_RESIZE) -> tuple[np.ndarray, ImageFacts]:
    """Decode image bytes into `prepare_image`'s array, with what the image was before
    (`ImageFacts`); any failure is a PybenchError naming the image."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            array = prepare_image(image, image_size, grayscale, resize)
            facts = ImageFacts(image.mode, image.format or "?", image.width, image.height,
                               gray_colour=array.ndim == 3 and is_gray_colour(array))
            return array, facts
    # PIL signals a bad image with many exception types (OSError, SyntaxError, ValueError,
    # DecompressionBombError...): all mean "this file is not a usable image".
    except Exception as error:  # noqa: BLE001
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise PybenchError(f"cannot decode image {name}: {reason}") from None


def stack_images(arrays: list[np.ndarray], names: list[str]) -> np.ndarray:
    """uint8 (N, C, H, W) from decoded images; mixed grayscale/RGB becomes RGB."""
    if not arrays:
        raise PybenchError("no images to stack")
    sizes = {array.shape[:2] for array in arrays}
    if len(sizes) > 1:
        first = arrays[0].shape[:2]
        odd = next(i for i, array in enumerate(arrays) if array.shape[:2] != first)
        raise PybenchError(f"images have different sizes ({names[0]} is {first[1]}x{first[0]}, {names[odd]} is "
                           f"{arrays[odd].shape[1]}x{arrays[odd].shape[0]}): {SIZE_FIX}")
    colour = any(array.ndim == 3 for array in arrays)
    channels = 3 if colour else 1
    height, width = next(iter(sizes))
    stacked = np.empty((len(arrays), channels, height, width), dtype=np.uint8)
    for i, array in enumerate(arrays):
        stacked[i] = array.transpose(2, 0, 1) if array.ndim == 3 else array  # gray broadcasts to RGB
    return stacked


def transform_images(images: np.ndarray, image_size: int | None, grayscale: bool,
                     resize: str = DEFAULT_RESIZE) -> np.ndarray:
    """Apply the size and grayscale options to uint8 (N, C, H, W) arrays, image by image with PIL."""
    channels, height, width = images.shape[1:]
    needs_gray = grayscale and channels == 3
    needs_resize = image_size is not None and (height, width) != (image_size, image_size)
    if not (needs_gray or needs_resize):
        return images
    converted = []
    for image in images:
        pil = Image.fromarray(image[0] if channels == 1 else image.transpose(1, 2, 0))
        converted.append(prepare_image(pil, image_size, grayscale, resize))
    return stack_images(converted, [f"image {i}" for i in range(len(converted))])

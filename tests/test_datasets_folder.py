"""Image folders (class sub-folders) of real PNG/JPEG/BMP files: mixed modes and sizes, resizing,
grayscale, fingerprints, caching, and every bad-folder error."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import pybench.datasets.decode as decode_module
from pybench.datasets import load_dataset
from pybench.datasets.images import resize_shorter_side_and_crop
from pybench.errors import PybenchError

pytestmark = pytest.mark.usefixtures("isolated_cache")


def test_mixed_sizes_need_image_size(image_folder):
    with pytest.raises(PybenchError, match="different sizes .*pass --image-size"):
        load_dataset(str(image_folder), cache=False)


def test_mixed_folder_becomes_rgb_at_the_given_size(image_folder):
    ds = load_dataset(str(image_folder), image_size=12, test_fraction=0.4, cache=False)
    assert ds.classes == ["circle", "square", "triangle"]
    assert ds.in_shape == (3, 12, 12) and ds.name == "shapes"
    assert len(ds.train) == 9 and len(ds.test) == 6
    assert np.bincount(ds.test.labels).tolist() == [2, 2, 2]
    assert ds.train.images.dtype == np.uint8 and ds.train.labels.dtype == np.int64
    assert len(ds.mean) == 3 and len(ds.std) == 3


def test_grayscale_option_gives_one_channel(image_folder):
    ds = load_dataset(str(image_folder), image_size=12, grayscale=True, test_fraction=0.4, cache=False)
    assert ds.in_shape == (1, 12, 12)


def test_grayscale_images_are_replicated_into_rgb(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    for name, value in (("dark", 10), ("light", 200)):
        (root / name).mkdir()
        for i in range(3):
            Image.new("L", (6, 6), value + i).save(root / name / f"{i}.png")
        Image.new("RGB", (6, 6), (value, value + 1, value + 2)).save(root / name / "rgb.png")
    ds = load_dataset(str(root), test_fraction=0.5, cache=False)
    assert ds.in_shape == (3, 6, 6)
    gray = [img for img in np.concatenate([ds.train.images, ds.test.images]) if len(np.unique(img)) == 1]
    assert len(gray) == 6  # each grayscale image has the same value in all three channels


def test_resize_shorter_side_then_center_crop():
    image = Image.fromarray(np.tile(np.arange(40, dtype=np.uint8), (20, 1)))  # 40 wide, 20 high
    result = resize_shorter_side_and_crop(image, 10)
    assert result.size == (10, 10)
    expected = image.resize((20, 10), Image.BILINEAR).crop((5, 0, 15, 10))
    assert np.array_equal(np.asarray(result), np.asarray(expected))


def test_fingerprint_and_cache_follow_one_pixel(tmp_path, isolated_cache, monkeypatch):
    root = tmp_path / "data"
    root.mkdir()
    for name in ("a", "b"):
        (root / name).mkdir()
        for i in range(4):
            Image.fromarray(np.full((5, 5), 40 * i + (name == "b"), np.uint8)).save(root / name / f"{i}.png")
    first = load_dataset(str(root), test_fraction=0.5)
    # Fewer than PARALLEL_MIN_IMAGES images: decode_slice runs in this process, so both patches see
    # every image. `opened` counts every image decoded (the shape probe too), `decoded` the images
    # written into the arrays.
    opened, decoded = [], []
    real_decode_image, real_decode_slice = decode_module.decode_image, decode_module.decode_slice
    monkeypatch.setattr(decode_module, "decode_image", lambda *a: opened.append(a[1]) or real_decode_image(*a))
    monkeypatch.setattr(decode_module, "decode_slice", lambda task: decoded.extend(task[1]) or real_decode_slice(task))
    assert load_dataset(str(root), test_fraction=0.5).fingerprint == first.fingerprint
    assert opened == [] and decoded == []  # second load: read from the cache, no image opened
    pixels = np.asarray(Image.open(root / "a" / "2.png")).copy()
    pixels[1, 1] += 1
    Image.fromarray(pixels).save(root / "a" / "2.png")
    changed = load_dataset(str(root), test_fraction=0.5)
    every_image = sorted(str(p) for p in root.glob("*/*.png"))
    assert sorted(decoded) == every_image  # decoded again, each image once
    assert set(opened) == set(every_image)
    assert changed.fingerprint != first.fingerprint


def test_empty_class_folder_is_named(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    (root / "cats").mkdir()
    Image.new("L", (4, 4)).save(root / "cats" / "c.png")
    (root / "dogs").mkdir()
    (root / "dogs" / "notes.txt").write_text("no images here")
    with pytest.raises(PybenchError, match="class folder .*dogs has no images"):
        load_dataset(str(root), cache=False)


def test_folder_without_class_folders_is_named(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    Image.new("L", (4, 4)).save(root / "loose.png")
    with pytest.raises(PybenchError, match="has no class sub-folders"):
        load_dataset(str(root), cache=False)


def test_undecodable_image_is_named(image_folder):
    (image_folder / "square" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(PybenchError, match="cannot decode image .*square/broken.png"):
        load_dataset(str(image_folder), image_size=8, cache=False)


def test_class_too_small_to_stratify(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    for name, count in (("big", 6), ("tiny", 1)):
        (root / name).mkdir()
        for i in range(count):
            Image.new("L", (4, 4), i).save(root / name / f"{i}.bmp")
    with pytest.raises(PybenchError, match="cannot make a stratified split"):
        load_dataset(str(root), cache=False)

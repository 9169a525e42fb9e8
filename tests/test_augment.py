"""Augmentation is drawn in numpy from (seed, epoch), so every framework trains on the same pixels
(pybench.datasets.augment), and each kind does what it says."""

from __future__ import annotations

import numpy as np
import pytest

from pybench.datasets.augment import ROTATE_DEGREES, augment, check_augmentations, crop_padding, draws
from pybench.errors import PybenchError

FILL = np.array([-1.0], np.float32)


def images(n=64, size=12, channels=1, seed=0):
    return np.random.default_rng(seed).standard_normal((n, channels, size, size)).astype(np.float32)


def test_same_seed_and_epoch_give_the_same_pixels_and_others_do_not():
    x = images()
    a = augment(x, ("flip", "crop", "rotate"), seed=3, epoch=1, fill=FILL)
    np.testing.assert_array_equal(a, augment(x, ("flip", "crop", "rotate"), 3, 1, FILL))
    assert not np.array_equal(a, augment(x, ("flip", "crop", "rotate"), 3, 2, FILL))
    assert not np.array_equal(a, augment(x, ("flip", "crop", "rotate"), 4, 1, FILL))


def test_flip_mirrors_exactly_the_drawn_images():
    x = images()
    out = augment(x, ("flip",), seed=0, epoch=0, fill=FILL)
    flipped = draws(0, 0, len(x), x.shape[2:])["flip"]
    assert 10 < flipped.sum() < 54  # about half
    np.testing.assert_array_equal(out[flipped], x[flipped][..., ::-1])
    np.testing.assert_array_equal(out[~flipped], x[~flipped])


def test_crop_is_a_whole_pixel_shift_padded_with_the_fill_value():
    x = images(size=16)
    out = augment(x, ("crop",), seed=1, epoch=0, fill=FILL)
    d = draws(1, 0, len(x), (16, 16))
    pad = crop_padding(16)
    assert pad == 2 and set(np.unique(d["dy"])) <= set(range(-pad, pad + 1))
    for i in range(len(x)):
        padded = np.pad(x[i, 0], pad, constant_values=FILL[0])
        top, left = pad - d["dy"][i], pad - d["dx"][i]
        np.testing.assert_array_equal(out[i, 0], padded[top:top + 16, left:left + 16])


def test_rotation_turns_the_image_about_its_centre():
    # A bright pixel to the right of the centre moves up or down by about r * sin(angle).
    x = np.full((200, 1, 21, 21), FILL[0], np.float32)
    x[:, 0, 10, 18] = 1.0  # 8 px right of the centre (10, 10)
    out = augment(x, ("rotate",), seed=2, epoch=0, fill=FILL)
    angles = np.deg2rad(draws(2, 0, 200, (21, 21))["angle"])
    assert np.abs(np.rad2deg(angles)).max() <= ROTATE_DEGREES
    rows = np.arange(21)[None, :, None]
    mass = out[:, 0] - FILL[0]
    centre_row = (mass * rows).sum(axis=(1, 2)) / mass.sum(axis=(1, 2))
    # Whichever way the angle turns, the row of the pixel's centre of mass follows 8 * sin.
    np.testing.assert_allclose(np.abs(centre_row - 10), 8 * np.abs(np.sin(angles)), atol=0.35)
    assert np.corrcoef(centre_row - 10, np.sin(angles))[0, 1] ** 2 > 0.95


def test_every_channel_gets_the_same_transform_and_its_own_fill():
    x = np.repeat(images(size=10), 3, axis=1)
    same = augment(x, ("crop", "rotate"), seed=5, epoch=0, fill=np.full(3, -1.0, np.float32))
    np.testing.assert_array_equal(same[:, 0], same[:, 1])
    np.testing.assert_array_equal(same[:, 0], same[:, 2])
    fill = np.array([-1.0, 0.0, 2.0], np.float32)
    out = augment(x, ("crop", "rotate"), seed=5, epoch=0, fill=fill)
    np.testing.assert_array_equal(out[:, 0], same[:, 0])
    # A corner that came wholly from outside shows each channel's own fill value.
    outside = np.isclose(out[:, 0, 0, 0], -1.0) & np.isclose(out[:, 2, 0, 0], 2.0)
    assert outside.any()
    assert np.allclose(out[outside, 1, 0, 0], 0.0)


def test_unknown_kind_is_one_clear_error():
    with pytest.raises(PybenchError, match="unknown mixup; choose from flip, vflip, crop, rotate, zoom"):
        augment(images(), ("flip", "mixup"), 0, 0, FILL)


@pytest.mark.parametrize("kinds, fragment", [
    (("zoom",), "--augment zoom: give MIN (MIN, the smallest share of the area kept), e.g. zoom:0.8"),
    (("zoom:2",), "--augment zoom:2: MIN, the smallest share of the area kept must be a number from 0.05 to 1"),
    (("rotate:abc",), "--augment rotate:abc: DEG, the largest angle in degrees must be a number from 0 to 180"),
    (("brightness:nan",), "must be a number from 0 to 1"),
    (("flip:1",), "--augment flip:1: flip takes no value"),
    (("rotate", "rotate:5"), "rotate is given twice"),
])
def test_a_bad_parameter_is_one_line_naming_it(kinds, fragment):
    with pytest.raises(PybenchError) as error:
        check_augmentations(kinds)
    assert fragment in str(error.value) and "\n" not in str(error.value)


def test_vflip_mirrors_the_rows_of_the_drawn_images_and_leaves_the_flips_alone():
    x = images()
    out = augment(x, ("vflip",), seed=0, epoch=0, fill=FILL)
    d = draws(0, 0, len(x), x.shape[2:])
    assert 10 < d["vflip"].sum() < 54
    np.testing.assert_array_equal(out[d["vflip"]], x[d["vflip"]][:, :, ::-1])
    np.testing.assert_array_equal(out[~d["vflip"]], x[~d["vflip"]])
    # Adding a kind leaves the others' draws as they were.
    both = augment(x, ("flip", "vflip"), seed=0, epoch=0, fill=FILL)
    alone = augment(x, ("flip",), seed=0, epoch=0, fill=FILL)
    np.testing.assert_array_equal(both[~d["vflip"]], alone[~d["vflip"]])


def test_rotate_deg_scales_the_same_draws_and_rotate_0_is_the_identity():
    x = images()
    np.testing.assert_array_equal(augment(x, ("rotate:0",), 1, 0, FILL), x)
    np.testing.assert_array_equal(augment(x, ("rotate",), 1, 0, FILL),
                                  augment(x, ("rotate:10",), 1, 0, FILL))
    assert not np.array_equal(augment(x, ("rotate:15",), 1, 0, FILL), augment(x, ("rotate",), 1, 0, FILL))


def test_zoom_keeps_a_square_of_the_drawn_area_and_resizes_it_to_the_whole_image():
    """On a ramp image (value = column), bilinear resizing is exact: each output row is a ramp
    whose slope is the kept side's share, starting where the kept square starts (the outer
    half-pixels repeat the edge pixel, so the middle columns are compared)."""
    n, size = 300, 16
    x = np.broadcast_to(np.arange(size, dtype=np.float32), (n, 1, size, size)).copy()
    out = augment(x, ("zoom:0.5",), seed=4, epoch=0, fill=FILL)
    slope = (out[:, 0, 0, 12] - out[:, 0, 0, 3]) / 9
    d = draws(4, 0, n, (size, size))
    scale = np.sqrt(0.5 + 0.5 * d["zoom_area"])
    np.testing.assert_allclose(slope, scale, atol=1e-5)
    left = (1 - scale) * size * d["zoom_x"]
    np.testing.assert_allclose(out[:, 0, 0, 3], left + 3.5 * scale - 0.5, atol=1e-4)
    assert (out >= -1e-4).all() and (out <= size - 1 + 1e-4).all()  # never outside the image
    assert slope.min() < 0.75 and slope.max() > 0.95  # areas from 1/2 to 1: sides 0.71 to 1
    np.testing.assert_array_equal(augment(x, ("zoom:1",), 4, 0, FILL), x)


def test_brightness_and_contrast_act_on_pixel_values_in_0_1_and_clip():
    mean, std = np.array([0.5], np.float32), np.array([0.25], np.float32)
    pixels = np.where(np.arange(16) % 2, 0.6, 0.2).astype(np.float32).reshape(1, 1, 4, 4)
    x = np.repeat((pixels - mean) / std, 200, axis=0)
    d = draws(7, 0, 200, (4, 4))
    bright = augment(x, ("brightness:0.4",), 7, 0, FILL, mean, std) * std + mean
    factor = 1 + 0.4 * (2 * d["brightness"] - 1)
    np.testing.assert_allclose(bright[:, 0, 0, 1], np.clip(0.6 * factor, 0, 1), atol=1e-6)
    assert factor.min() < 0.7 and factor.max() > 1.3
    contrast = augment(x, ("contrast:0.5",), 7, 0, FILL, mean, std) * std + mean
    c = 1 + 0.5 * (2 * d["contrast"] - 1)
    spread = contrast[:, 0, 0, 1] - contrast[:, 0, 0, 0]
    np.testing.assert_allclose(spread, 0.4 * c, atol=1e-6)  # about the image's mean, 0.4
    np.testing.assert_allclose(contrast.mean(axis=(1, 2, 3)), 0.4, atol=1e-6)
    with pytest.raises(PybenchError, match="need the normalisation's mean and std"):
        augment(x, ("contrast:0.5",), 7, 0, FILL)

"""Augmentation is drawn in numpy from (seed, epoch), so every framework trains on the same pixels
(pybench.datasets.augment), and each kind does what it says."""

from __future__ import annotations

import numpy as np
import pytest

from pybench.datasets.augment import ROTATE_DEGREES, augment, crop_padding, draws
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
    with pytest.raises(PybenchError, match="unknown mixup; choose from flip, crop, rotate"):
        augment(images(), ("flip", "mixup"), 0, 0, FILL)

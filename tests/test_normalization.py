"""--normalize: which statistics turn pixels into inputs, resolved once and the same for every
framework (pybench.datasets.normalization)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from pybench.datasets import load_dataset
from pybench.datasets.normalization import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    check_normalize,
    default_normalize,
    normalized_as,
    statistics,
)
from pybench.errors import PybenchError


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", progress=False, cache=False)


def test_each_choice_gives_its_statistics(digits):
    assert statistics("dataset", digits) == (tuple(digits.mean), tuple(digits.std))
    grey_mean, grey_std = statistics("imagenet", digits)
    assert grey_mean == pytest.approx((np.mean(IMAGENET_MEAN),)) and grey_std == pytest.approx((np.mean(IMAGENET_STD),))
    assert statistics("fixed:0.5,0.25", digits) == ((0.5,), (0.25,))
    assert default_normalize("weights.pth") == "imagenet" and default_normalize(None) == "dataset"


def test_the_pixel_table_follows_the_choice_and_the_arrays_are_shared(digits):
    fixed = normalized_as(digits, "fixed:0.5,0.25")
    assert fixed.train.images is digits.train.images
    np.testing.assert_allclose(fixed.pixel_table()[0, [0, 255]], [-2.0, 2.0], atol=1e-6)
    assert normalized_as(digits, "dataset") is digits


def test_imagenet_on_rgb_images_is_torchvisions_and_other_channel_counts_are_refused():
    rgb = SimpleNamespace(in_shape=(3, 8, 8), mean=(0.1,) * 3, std=(0.2,) * 3)
    assert statistics("imagenet", rgb) == (IMAGENET_MEAN, IMAGENET_STD)
    assert statistics("fixed:0.5,0.25", rgb) == ((0.5,) * 3, (0.25,) * 3)
    with pytest.raises(PybenchError, match="for 1 or 3 channels, the images have 4"):
        statistics("imagenet", SimpleNamespace(in_shape=(4, 8, 8), mean=(0,) * 4, std=(1,) * 4))


@pytest.mark.parametrize("spec", ["imagenet1k", "fixed:0.5", "fixed:0.5,0", "fixed:a,b", "fixed:nan,1"])
def test_a_bad_choice_is_one_line(spec):
    with pytest.raises(PybenchError, match=r"--normalize .*: choose dataset, imagenet or fixed:MEAN,STD"):
        check_normalize(spec)

"""The Python half of the Knet backend, checked without Julia.

Canonical weights converted by pybench.backends.knet_layout and run through a numpy model of
Knet's semantics (tests/knet_reference.py) must give PyTorch's logits. This pins the layout
facts the Julia code relies on: conv weights reversed to (kW, kH, Cin, Cout) with mode=1, images
as (W, H, C, N) views, column-major `mat` matching torch's flatten, 1-based labels.
"""

from __future__ import annotations

import knet_reference as knet
import numpy as np
import pytest

from pybench import models
from pybench.backends import knet_layout

TOL = 1e-5
CASES = [("lenet5", (1, 28, 28), 10), ("resnet8", (3, 16, 16), 10)]


def setup(model, in_shape, classes, batch=4, seed=0):
    params, buffers = models.init_weights(model, in_shape, classes, seed)
    # Non-trivial running statistics, so eval-mode BN really uses them.
    rng = np.random.default_rng(seed + 1)
    buffers = {k: (rng.uniform(0.5, 1.5, v.shape) if k.endswith("var")
                   else rng.normal(0, 0.1, v.shape)).astype(np.float32)
               for k, v in buffers.items()}
    images = rng.normal(size=(batch, *in_shape)).astype(np.float32)
    return models.describe(model, in_shape, classes), params, buffers, images


def knet_logits(desc, params, buffers, images, training=False, mode=1, flip=False):
    scores = knet.forward(desc, knet_layout.weights_to_knet(params),
                          knet_layout.weights_to_knet(buffers),
                          knet_layout.images_to_knet(images), training, mode, flip)
    return knet_layout.logits_from_knet(scores)


@pytest.mark.parametrize("model,in_shape,classes", CASES)
def test_mode1_reproduces_pytorch_logits(model, in_shape, classes):
    desc, params, buffers, images = setup(model, in_shape, classes)
    expected = knet.torch_forward(desc, params, buffers, images)
    np.testing.assert_allclose(knet_logits(desc, params, buffers, images), expected,
                               atol=TOL, rtol=TOL)


@pytest.mark.parametrize("model,in_shape,classes", CASES)
def test_train_mode_batch_statistics_match_pytorch(model, in_shape, classes):
    desc, params, buffers, images = setup(model, in_shape, classes, batch=8)
    expected = knet.torch_forward(desc, params, buffers, images, training=True)
    got = knet_logits(desc, params, buffers, images, training=True)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("model,in_shape,classes", CASES)
def test_mode0_without_flip_differs_and_with_flip_matches(model, in_shape, classes):
    """Knet's default mode=0 is true convolution: forgetting mode=1 gives wrong logits, which
    is why KnetModels passes mode=1 on every conv4 (flipping the kernels would also work)."""
    desc, params, buffers, images = setup(model, in_shape, classes)
    expected = knet.torch_forward(desc, params, buffers, images)
    wrong = knet_logits(desc, params, buffers, images, mode=0)
    assert np.abs(wrong - expected).max() > 100 * TOL
    flipped = knet_logits(desc, params, buffers, images, mode=0, flip=True)
    np.testing.assert_allclose(flipped, expected, atol=TOL, rtol=TOL)


def test_weights_round_trip_and_conv_layout():
    params, _ = models.init_weights("resnet8", (3, 8, 8), 10, seed=3)
    knet_weights = knet_layout.weights_to_knet(params)
    w = params["conv1.weight"]  # (out, in, kh, kw)
    kw = knet_weights["conv1.weight"]
    assert kw.shape == (3, 3, 3, 16)  # (kW, kH, Cin, Cout)
    assert kw.flags.f_contiguous and np.shares_memory(kw, w)  # a view: Julia sees it uncopied
    assert kw[2, 1, 0, 5] == w[5, 0, 1, 2]
    assert knet_weights["fc.weight"].shape == params["fc.weight"].shape
    back = knet_layout.weights_from_knet(knet_weights)
    for name, a in params.items():
        assert back[name].flags.c_contiguous
        np.testing.assert_array_equal(back[name], a)


def test_images_labels_order_conversions():
    images = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    x = knet_layout.images_to_knet(images)
    assert x.shape == (5, 4, 3, 2) and x.flags.f_contiguous and np.shares_memory(x, images)
    assert x[4, 3, 2, 1] == images[1, 2, 3, 4]
    np.testing.assert_array_equal(knet_layout.labels_to_knet(np.array([0, 9])), [1, 10])
    np.testing.assert_array_equal(knet_layout.order_to_knet(np.array([2, 0, 1])), [3, 1, 2])
    logits = np.asfortranarray(np.arange(6, dtype=np.float32).reshape(3, 2))  # (classes, N)
    np.testing.assert_array_equal(knet_layout.logits_from_knet(logits), logits.T)


def test_mat_matches_torch_flatten():
    images = np.random.default_rng(0).normal(size=(2, 3, 4, 5)).astype(np.float32)
    flat = knet.mat(knet_layout.images_to_knet(images))  # (C*H*W, N)
    np.testing.assert_array_equal(flat.T, images.reshape(2, -1))


def test_nll_with_one_based_labels_is_cross_entropy():
    import torch
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 4)).astype(np.float32)  # (N, classes)
    labels = np.array([0, 3, 1, 2, 3, 0])
    expected = torch.nn.functional.cross_entropy(torch.from_numpy(logits),
                                                 torch.from_numpy(labels)).item()
    got = knet.nll(logits.T, knet_layout.labels_to_knet(labels))
    assert got == pytest.approx(expected, rel=1e-6)


def test_running_variance_rule_is_pytorchs_unbiased_one():
    """The rule KnetModels implements (Knet's CPU batchnorm uses the biased variance)."""
    import torch
    x = np.random.default_rng(0).normal(size=(4, 3, 5, 5)).astype(np.float32)
    mean, var = torch.zeros(3), torch.ones(3)
    torch.nn.functional.batch_norm(torch.from_numpy(x), mean, var, training=True,
                                   momentum=models.BN_MOMENTUM, eps=models.BN_EPS)
    got_mean, got_var = knet.update_running_stats(knet_layout.images_to_knet(x),
                                                  np.zeros(3), np.ones(3))
    np.testing.assert_allclose(got_mean, mean.numpy(), atol=1e-6)
    np.testing.assert_allclose(got_var, var.numpy(), atol=1e-6)


# --- float64: the parity trajectory's dtype ----------------------------------------------------

def as_float64(arrays):
    return {k: v.astype(np.float64) for k, v in arrays.items()}


@pytest.mark.parametrize("model,in_shape,classes", CASES)
@pytest.mark.parametrize("training", [False, True])
def test_float64_reference_matches_float64_pytorch_tightly(model, in_shape, classes, training):
    """In float64 the layouts and the reference agree with PyTorch to ~1e-12, far below float32's
    rounding: every conversion kept float64 (a float32 step anywhere would show as ~1e-7)."""
    desc, params, buffers, images = setup(model, in_shape, classes, batch=8)
    params, buffers, images = as_float64(params), as_float64(buffers), images.astype(np.float64)
    expected = knet.torch_forward(desc, params, buffers, images, training=training)
    assert expected.dtype == np.float64
    got = knet_logits(desc, params, buffers, images, training=training)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, expected, atol=1e-11, rtol=1e-11)


def test_float64_reference_differs_from_float32_at_float32_rounding():
    """The tolerance above means something: the float32 computation is ~1e-7 away."""
    desc, params, buffers, images = setup("resnet8", (3, 16, 16), 10, batch=8)
    f32 = knet_logits(desc, params, buffers, images, training=True)
    f64 = knet_logits(desc, as_float64(params), as_float64(buffers), images.astype(np.float64),
                      training=True)
    assert f32.dtype == np.float32 and f64.dtype == np.float64
    assert 1e-10 < np.abs(f32 - f64).max() < 1e-3


def test_float64_conversions_keep_dtype_and_views():
    params, _ = models.init_weights("resnet8", (3, 8, 8), 10, seed=3)
    params = as_float64(params)
    knet_weights = knet_layout.weights_to_knet(params)
    kw = knet_weights["conv1.weight"]
    assert kw.dtype == np.float64 and kw.flags.f_contiguous
    assert np.shares_memory(kw, params["conv1.weight"])  # still a view: no float32 copy
    assert all(a.dtype == np.float64 for a in knet_weights.values())
    back = knet_layout.weights_from_knet(knet_weights)
    for name, a in params.items():
        assert back[name].dtype == np.float64 and back[name].flags.c_contiguous
        np.testing.assert_array_equal(back[name], a)

    images = np.random.default_rng(0).normal(size=(2, 3, 4, 5))  # float64
    x = knet_layout.images_to_knet(images)
    assert x.dtype == np.float64 and x.flags.f_contiguous and np.shares_memory(x, images)
    logits = np.asfortranarray(np.arange(6, dtype=np.float64).reshape(3, 2) / 3)
    out = knet_layout.logits_from_knet(logits)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, logits.T)


def test_other_dtypes_become_float32():
    images = np.arange(2 * 1 * 2 * 2, dtype=np.uint8).reshape(2, 1, 2, 2)
    assert knet_layout.images_to_knet(images).dtype == np.float32
    w = {"fc.weight": np.ones((2, 3), np.float16), "fc.bias": np.zeros(2, np.int64)}
    assert all(a.dtype == np.float32 for a in knet_layout.weights_to_knet(w).values())
    assert all(a.dtype == np.float32 for a in knet_layout.weights_from_knet(w).values())
    assert knet_layout.logits_from_knet(np.ones((3, 2), np.float16)).dtype == np.float32
    assert knet_layout.weight_to_knet(np.ones((2, 2), np.float32)).dtype == np.float32

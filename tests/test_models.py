"""The models as data: parameter counts, shapes, FLOPs and canonical initial weights."""

import numpy as np
import pytest

from pybench import models
from pybench.errors import PybenchError

MNIST = (1, 28, 28)


@pytest.mark.parametrize("model, expected", [
    # Hand-counted: LeNet-5 6*25+6 + 16*150+16 + 400*120+120 + 120*84+84 + 84*10+10.
    ("lenet5", 61706),
    # He et al. report 0.27M for ResNet-20 on CIFAR (3 channels); ours is for 1 channel.
    ("resnet20", 272186),
    ("resnet8", 77754),
    ("resnet18", 11172810),
])
def test_parameter_counts(model, expected):
    assert models.n_params(model, MNIST, 10) == expected


def test_resnet18_matches_torchvision_parameter_count():
    # torchvision's resnet18 has 11,689,512 parameters for 3-channel 1000-class input with a
    # 7x7 stem; ours differs only in the stem (3x3) and the classifier (10 classes).
    torchvision_total = 11_689_512
    stem_delta = 64 * 3 * (7 * 7 - 3 * 3)
    fc_delta = 512 * (1000 - 10) + (1000 - 10)
    assert models.n_params("resnet18", (3, 32, 32), 10) == torchvision_total - stem_delta - fc_delta


def test_lenet5_flatten_follows_input_size():
    assert models.lenet5_flat_size(28, 28) == (16, 5, 5)
    assert models.lenet5_flat_size(32, 32) == (16, 6, 6)
    assert models.param_shapes("lenet5", (3, 32, 32), 2)["fc1.weight"] == (120, 16 * 6 * 6)
    with pytest.raises(PybenchError, match="at least 12x12"):
        models.lenet5_flat_size(8, 8)


def test_resnet_blocks_follow_he_et_al():
    blocks = models.resnet_blocks(models.RESNETS["resnet20"])
    assert len(blocks) == 9 and 6 * 3 + 2 == 20
    assert [b.stride for b in blocks] == [1, 1, 1, 2, 1, 1, 2, 1, 1]
    assert [b.prefix for b in blocks if b.has_downsample] == ["layer2.0", "layer3.0"]
    shapes = models.param_shapes("resnet20", MNIST, 10)
    assert shapes["layer2.0.downsample.0.weight"] == (32, 16, 1, 1)
    assert "layer1.0.downsample.0.weight" not in shapes


def test_forward_flops_by_hand():
    # conv1: 2*1*25*6*28*28, conv2: 2*6*25*16*10*10, dense: 2*(400*120+120*84+84*10)
    expected = 2 * 25 * 6 * 784 + 2 * 6 * 25 * 16 * 100 + 2 * (48000 + 10080 + 840)
    assert models.forward_flops("lenet5", MNIST, 10) == expected
    # resnet18 on 32x32 CIFAR with the small stem is quoted at ~0.56 GMACs = 1.11 GFLOPs.
    assert models.forward_flops("resnet18", (3, 32, 32), 10) == pytest.approx(1.11e9, rel=0.01)


def test_init_is_pytorch_default_distribution():
    params, buffers = models.init_weights("resnet8", MNIST, 10, seed=0)
    w = params["layer3.0.conv1.weight"]  # fan_in 32*9
    bound = 1 / np.sqrt(32 * 9)
    assert w.dtype == np.float32 and np.abs(w).max() <= bound
    # A uniform distribution on [-b, b] has std b/sqrt(3).
    assert w.std() == pytest.approx(bound / np.sqrt(3), rel=0.05)
    assert np.all(params["bn1.weight"] == 1) and np.all(params["bn1.bias"] == 0)
    assert np.all(buffers["bn1.running_var"] == 1) and np.all(buffers["bn1.running_mean"] == 0)


def test_init_and_fingerprint_are_deterministic():
    a = models.init_weights("lenet5", MNIST, 10, seed=3)
    b = models.init_weights("lenet5", MNIST, 10, seed=3)
    c = models.init_weights("lenet5", MNIST, 10, seed=4)
    assert models.weights_fingerprint(*a) == models.weights_fingerprint(*b)
    assert models.weights_fingerprint(*a) != models.weights_fingerprint(*c)
    a[0]["fc3.bias"][0] += 1e-7
    assert models.weights_fingerprint(*a) != models.weights_fingerprint(*b)


def test_unknown_model_is_a_one_line_error():
    with pytest.raises(PybenchError, match="unknown model 'vgg'"):
        models.layers("vgg", MNIST, 10)

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


def test_lenet5_is_a_plain_cnn_whose_flatten_follows_the_input_size():
    assert models.family("lenet5") == models.CNN and models.model_fingerprint("lenet5") == ""
    assert models.param_shapes("lenet5", (1, 28, 28), 10)["fc1.weight"] == (120, 16 * 5 * 5)
    assert models.param_shapes("lenet5", (3, 32, 32), 2)["fc1.weight"] == (120, 16 * 6 * 6)
    assert models.n_params("lenet5", (1, 28, 28), 10) == 61_706
    assert models.smallest_square("lenet5", (1, 8, 8), 10) == 12
    with pytest.raises(PybenchError,
                       match=r"lenet5: layer 4 \(conv conv2\): field .kernel. = 5 does not fit the 4x4 maps"):
        models.layers("lenet5", (1, 8, 8), 10)


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


@pytest.mark.parametrize("model, torchvision_params, gflops", [
    # torchvision's figures for 224x224 ImageNet (1000 classes): 11,689,512 parameters and 1.81
    # GMACs for ResNet-18, 25,557,032 and 4.09 GMACs for ResNet-50; 21,797,672 and 3.66 for
    # ResNet-34; 7,978,856 and 2.83 for DenseNet-121.
    ("resnet18-imagenet", 11_689_512, 3.63), ("resnet50-imagenet", 25_557_032, 8.18),
    ("resnet34-imagenet", 21_797_672, 7.33), ("densenet121-imagenet", 7_978_856, 5.67)])
def test_imagenet_resnets_have_torchvisions_size(model, torchvision_params, gflops):
    assert models.n_params(model, (3, 224, 224), 1000) == torchvision_params
    assert models.forward_flops(model, (3, 224, 224), 1000) / 1e9 == pytest.approx(gflops, rel=0.01)


def test_imagenet_stem_and_bottlenecks_are_described_for_knet():
    desc = models.describe("resnet50-imagenet", (1, 64, 64), 14)
    assert desc["stem"] == {"kernel": 7, "stride": 2, "padding": 3, "pool": [3, 2, 1]}
    assert [b["kind"] for b in desc["blocks"]] == ["bottleneck"] * 16
    first = desc["blocks"][0]
    assert (first["in"], first["out"], first["stride"], first["downsample"]) == (64, 256, 1, True)
    assert models.describe("resnet18", (3, 32, 32), 10)["stem"]["pool"] == [0, 0, 0]


def test_trainable_prefixes_freeze_everything_else_and_the_norms_inside():
    frozen = models.frozen_params("resnet18-imagenet", (3, 32, 32), 10, ("layer4", "fc"))
    names = models.param_shapes("resnet18-imagenet", (3, 32, 32), 10)
    assert "conv1.weight" in frozen and "layer3.1.bn2.bias" in frozen
    assert not any(n.startswith(("layer4.", "fc.")) for n in frozen)
    assert len(frozen) == len([n for n in names if not n.startswith(("layer4.", "fc."))])
    norms = models.frozen_norms("resnet18-imagenet", (3, 32, 32), 10, frozen)
    assert "bn1" in norms and "layer3.0.downsample.1" in norms
    assert not any(n.startswith("layer4") for n in norms)
    # "layer1" is a prefix of names, "layer1.0" too; "layer" is not a layer of its own.
    assert models.frozen_params("resnet8", (3, 16, 16), 10, ()) == frozenset()
    with pytest.raises(PybenchError, match="--trainable layer: resnet8 has no such layer "
                                           r"\(its top-level layers: conv1, bn1, layer1, layer2, "
                                           r"layer3, fc\)"):
        models.frozen_params("resnet8", (3, 16, 16), 10, ("layer",))

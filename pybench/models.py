"""The models, stated once as data, for every framework.

Each architecture is described here by its layers (names, shapes, strides, paddings); every
backend builds its model from this description and from the canonical initial weights made here,
so two frameworks cannot disagree on a width, a padding or a parameter name. Parameter names are
PyTorch's `state_dict` keys (torchvision's for the ResNets), layouts are PyTorch's: conv weights
(out, in, kh, kw), dense weights (out, in). Each backend converts to its own layout.

Also here, because they follow from the description alone: parameter counts, forward FLOPs per
image, and a fingerprint of a set of weights.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from pybench.errors import PybenchError

# BatchNorm semantics shared by every backend (PyTorch's defaults): the running statistics move
# by MOMENTUM towards the batch statistics, the running variance uses the unbiased batch
# variance, and normalisation in training uses the biased batch variance.
BN_MOMENTUM = 0.1
BN_EPS = 1e-5


@dataclass(frozen=True)
class Conv:
    name: str
    in_channels: int
    out_channels: int
    kernel: int
    stride: int = 1
    padding: int = 0
    bias: bool = True


@dataclass(frozen=True)
class BatchNorm:
    name: str
    channels: int


@dataclass(frozen=True)
class Dense:
    name: str
    in_features: int
    out_features: int


BASIC, BOTTLENECK = "basic", "bottleneck"
# Output channels of a block per unit of its stage width, as torchvision's `expansion`.
EXPANSION = {BASIC: 1, BOTTLENECK: 4}


@dataclass(frozen=True)
class Block:
    """A residual block, torchvision's. basic: conv3x3-bn-relu-conv3x3-bn; bottleneck (ResNet-50,
    torchvision's "v1.5", stride on the 3x3): conv1x1-bn-relu-conv3x3-bn-relu-conv1x1-bn; then
    the shortcut is added and a relu follows."""

    prefix: str  # e.g. "layer2.0"
    in_channels: int
    width: int  # the stage width: the 3x3 convolution's channels
    stride: int
    kind: str = BASIC

    @property
    def out_channels(self) -> int:
        return self.width * EXPANSION[self.kind]

    @property
    def has_downsample(self) -> bool:
        # Projection shortcut (1x1 conv + BN) wherever the shape changes, as in torchvision.
        return self.stride != 1 or self.in_channels != self.out_channels


@dataclass(frozen=True)
class Stem:
    """The first convolution (no bias, then BatchNorm and relu) and the max pool after it, if any."""

    kernel: int
    stride: int
    padding: int
    pool: tuple[int, int, int] | None = None  # max pool (kernel, stride, padding)


SMALL_STEM = Stem(kernel=3, stride=1, padding=1)
# torchvision's: 7x7 stride 2, then a 3x3 stride-2 max pool padded by 1 (its padding never wins
# the max: it follows a relu, and PyTorch pads max pools with -inf).
IMAGENET_STEM = Stem(kernel=7, stride=2, padding=3, pool=(3, 2, 1))


@dataclass(frozen=True)
class ResNetSpec:
    stem_width: int
    widths: tuple[int, ...]
    blocks_per_stage: tuple[int, ...]
    stem: Stem = SMALL_STEM
    block: str = BASIC

    @property
    def features(self) -> int:
        """Channels entering the classifier (the penultimate features)."""
        return self.widths[-1] * EXPANSION[self.block]


# LeNet-5 widths: conv 6@5x5 (padding 2), conv 16@5x5, fc 120, fc 84, fc classes.
LENET5 = {"conv1": 6, "conv2": 16, "fc1": 120, "fc2": 84, "kernel": 5, "conv1_padding": 2}

RESNETS = {
    # CIFAR ResNets of He et al. (6n+2 layers): three stages of n blocks at 16/32/64 channels.
    "resnet8": ResNetSpec(stem_width=16, widths=(16, 32, 64), blocks_per_stage=(1, 1, 1)),
    "resnet20": ResNetSpec(stem_width=16, widths=(16, 32, 64), blocks_per_stage=(3, 3, 3)),
    # torchvision's ResNet-18 with a small-input stem: 3x3 stride-1 conv, no max pool.
    "resnet18": ResNetSpec(stem_width=64, widths=(64, 128, 256, 512), blocks_per_stage=(2, 2, 2, 2)),
    # torchvision's resnet18 and resnet50 as they are, ImageNet stem included: the models whose
    # pretrained weights (--weights) fit, named apart from the small-input ResNet-18.
    "resnet18-imagenet": ResNetSpec(stem_width=64, widths=(64, 128, 256, 512),
                                    blocks_per_stage=(2, 2, 2, 2), stem=IMAGENET_STEM),
    "resnet50-imagenet": ResNetSpec(stem_width=64, widths=(64, 128, 256, 512),
                                    blocks_per_stage=(3, 4, 6, 3), stem=IMAGENET_STEM,
                                    block=BOTTLENECK),
}

MODEL_NAMES = ("lenet5", *RESNETS)

MODEL_DESCRIPTIONS = {
    "lenet5": "LeNet-5: conv6@5x5(pad 2)-pool-conv16@5x5-pool-fc120-fc84-fc, ReLU, max pool",
    "resnet8": "CIFAR ResNet-8 (He et al.), 16/32/64 channels, 1 block per stage",
    "resnet20": "CIFAR ResNet-20 (He et al.), 16/32/64 channels, 3 blocks per stage",
    "resnet18": "torchvision ResNet-18 with a 3x3 stride-1 stem and no max pool",
    "resnet18-imagenet": "torchvision ResNet-18 as it is: 7x7 stride-2 stem, 3x3 max pool",
    "resnet50-imagenet": "torchvision ResNet-50 (v1.5, bottleneck blocks), ImageNet stem",
}


def check_model(name: str) -> None:
    if name not in MODEL_NAMES:
        raise PybenchError(f"unknown model {name!r}: choose from {', '.join(MODEL_NAMES)}")


def builds_for(model: str, in_shape, num_classes: int) -> bool:
    """Whether `model` can be built for these images (LeNet-5 needs 12x12 at least)."""
    try:
        layers(model, in_shape, num_classes)
    except PybenchError:
        return False
    return True


def lenet5_flat_size(height: int, width: int) -> tuple[int, int, int]:
    """(channels, h, w) entering fc1: conv1 keeps the size, each pool halves (floor), conv2 -4."""
    k = LENET5["kernel"]
    h = (height + 2 * LENET5["conv1_padding"] - k + 1) // 2
    w = (width + 2 * LENET5["conv1_padding"] - k + 1) // 2
    h, w = (h - k + 1) // 2, (w - k + 1) // 2
    if h < 1 or w < 1:
        raise PybenchError(f"lenet5 needs images of at least 12x12, got {height}x{width}")
    return LENET5["conv2"], h, w


def resnet_blocks(spec: ResNetSpec) -> list[Block]:
    blocks = []
    channels = spec.stem_width
    for stage, (width, count) in enumerate(zip(spec.widths, spec.blocks_per_stage), start=1):
        for j in range(count):
            stride = 2 if (stage > 1 and j == 0) else 1
            block = Block(f"layer{stage}.{j}", channels, width, stride, spec.block)
            blocks.append(block)
            channels = block.out_channels
    return blocks


def block_layers(b: Block) -> list:
    """One block's parametrised layers in canonical (torchvision's) order."""
    if b.kind == BOTTLENECK:
        out = [Conv(f"{b.prefix}.conv1", b.in_channels, b.width, 1, bias=False),
               BatchNorm(f"{b.prefix}.bn1", b.width),
               Conv(f"{b.prefix}.conv2", b.width, b.width, 3, b.stride, 1, bias=False),
               BatchNorm(f"{b.prefix}.bn2", b.width),
               Conv(f"{b.prefix}.conv3", b.width, b.out_channels, 1, bias=False),
               BatchNorm(f"{b.prefix}.bn3", b.out_channels)]
    else:
        out = [Conv(f"{b.prefix}.conv1", b.in_channels, b.width, 3, b.stride, 1, bias=False),
               BatchNorm(f"{b.prefix}.bn1", b.width),
               Conv(f"{b.prefix}.conv2", b.width, b.width, 3, 1, 1, bias=False),
               BatchNorm(f"{b.prefix}.bn2", b.width)]
    if b.has_downsample:
        out += [Conv(f"{b.prefix}.downsample.0", b.in_channels, b.out_channels, 1, b.stride, 0,
                     bias=False),
                BatchNorm(f"{b.prefix}.downsample.1", b.out_channels)]
    return out


def layers(model: str, in_shape: tuple[int, int, int], num_classes: int) -> list:
    """The parametrised layers of `model`, in canonical order (the order weights are drawn in)."""
    check_model(model)
    channels, height, width = in_shape
    if model == "lenet5":
        c, h, w = lenet5_flat_size(height, width)
        k = LENET5["kernel"]
        return [
            Conv("conv1", channels, LENET5["conv1"], k, padding=LENET5["conv1_padding"]),
            Conv("conv2", LENET5["conv1"], LENET5["conv2"], k),
            Dense("fc1", c * h * w, LENET5["fc1"]),
            Dense("fc2", LENET5["fc1"], LENET5["fc2"]),
            Dense("fc3", LENET5["fc2"], num_classes),
        ]
    spec = RESNETS[model]
    stem = spec.stem
    out = [Conv("conv1", channels, spec.stem_width, stem.kernel, stem.stride, stem.padding,
                bias=False),
           BatchNorm("bn1", spec.stem_width)]
    for b in resnet_blocks(spec):
        out += block_layers(b)
    out.append(Dense("fc", spec.features, num_classes))
    return out


def describe(model: str, in_shape: tuple[int, int, int], num_classes: int) -> dict:
    """A JSON-able description a non-Python backend (Knet) builds the same model from."""
    desc = {"model": model, "in_shape": list(in_shape), "num_classes": num_classes,
            "bn_momentum": BN_MOMENTUM, "bn_eps": BN_EPS}
    if model == "lenet5":
        desc["conv1_padding"] = LENET5["conv1_padding"]
    else:
        spec = RESNETS[model]
        desc["stem"] = {"kernel": spec.stem.kernel, "stride": spec.stem.stride,
                        "padding": spec.stem.padding,
                        "pool": list(spec.stem.pool) if spec.stem.pool else [0, 0, 0]}
        desc["blocks"] = [
            {"prefix": b.prefix, "in": b.in_channels, "out": b.out_channels, "stride": b.stride,
             "kind": b.kind, "downsample": b.has_downsample}
            for b in resnet_blocks(spec)
        ]
    return desc


def param_shapes(model: str, in_shape, num_classes: int) -> dict[str, tuple[int, ...]]:
    """Trainable parameters by canonical name, in canonical order."""
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in layers(model, in_shape, num_classes):
        if isinstance(layer, Conv):
            shapes[f"{layer.name}.weight"] = (layer.out_channels, layer.in_channels,
                                              layer.kernel, layer.kernel)
            if layer.bias:
                shapes[f"{layer.name}.bias"] = (layer.out_channels,)
        elif isinstance(layer, Dense):
            shapes[f"{layer.name}.weight"] = (layer.out_features, layer.in_features)
            shapes[f"{layer.name}.bias"] = (layer.out_features,)
        else:
            shapes[f"{layer.name}.weight"] = (layer.channels,)
            shapes[f"{layer.name}.bias"] = (layer.channels,)
    return shapes


def buffer_shapes(model: str, in_shape, num_classes: int) -> dict[str, tuple[int, ...]]:
    """Non-trainable state (BatchNorm running statistics) by canonical name."""
    shapes = {}
    for layer in layers(model, in_shape, num_classes):
        if isinstance(layer, BatchNorm):
            shapes[f"{layer.name}.running_mean"] = (layer.channels,)
            shapes[f"{layer.name}.running_var"] = (layer.channels,)
    return shapes


def n_params(model: str, in_shape, num_classes: int) -> int:
    return sum(int(np.prod(s)) for s in param_shapes(model, in_shape, num_classes).values())


def _conv_flops(conv: Conv, h: int, w: int) -> tuple[int, int, int]:
    """(FLOPs, out_h, out_w) of one convolution on an h x w input."""
    oh = (h + 2 * conv.padding - conv.kernel) // conv.stride + 1
    ow = (w + 2 * conv.padding - conv.kernel) // conv.stride + 1
    return 2 * conv.in_channels * conv.kernel**2 * conv.out_channels * oh * ow, oh, ow


def conv_passes(model: str, in_shape, num_classes: int) -> list[tuple[int, int]]:
    """(FLOPs, output elements) of every convolution of one image's forward pass, in order."""
    _, h, w = in_shape
    by_name = {layer.name: layer for layer in layers(model, in_shape, num_classes)}

    def run(name, h, w):
        flops, oh, ow = _conv_flops(by_name[name], h, w)
        return (flops, by_name[name].out_channels * oh * ow), oh, ow

    if model == "lenet5":
        first, h, w = run("conv1", h, w)
        return [first, run("conv2", h // 2, w // 2)[0]]
    spec = RESNETS[model]
    first, h, w = run("conv1", h, w)
    passes = [first]
    if spec.stem.pool:
        h, w = pooled_size(h, spec.stem.pool), pooled_size(w, spec.stem.pool)
    for b in resnet_blocks(spec):
        names = ["conv1", "conv2", "conv3"] if b.kind == BOTTLENECK else ["conv1", "conv2"]
        bh, bw = h, w
        for name in names:
            done, bh, bw = run(f"{b.prefix}.{name}", bh, bw)
            passes.append(done)
        if b.has_downsample:
            passes.append(run(f"{b.prefix}.downsample.0", h, w)[0])
        h, w = bh, bw
    return passes


def pooled_size(size: int, pool: tuple[int, int, int]) -> int:
    kernel, stride, padding = pool
    return (size + 2 * padding - kernel) // stride + 1


def forward_flops(model: str, in_shape, num_classes: int) -> int:
    """FLOPs of one image's forward pass, a multiply-add counted as 2 (convolutions and dense
    layers only: activations, pooling and BatchNorm add a few percent and are left out)."""
    dense = sum(2 * layer.in_features * layer.out_features for layer in layers(model, in_shape, num_classes)
                if isinstance(layer, Dense))
    return sum(flops for flops, _ in conv_passes(model, in_shape, num_classes)) + dense


def activation_elements(model: str, in_shape, num_classes: int) -> int:
    """Elements of one image's convolution outputs (each is followed by a BatchNorm and a ReLU,
    or a ReLU and a pool, of about its size): the scale of what training keeps for backward."""
    return sum(elements for _, elements in conv_passes(model, in_shape, num_classes))


def init_weights(model: str, in_shape, num_classes: int, seed: int):
    """Canonical initial weights: PyTorch's default initialisation, drawn in numpy from `seed`.

    Conv and Linear weights and biases are U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (what
    kaiming_uniform_(a=sqrt(5)) and PyTorch's bias rule give); BatchNorm weight 1, bias 0,
    running mean 0, running variance 1. Returns (params, buffers): name -> float32 array.
    """
    rng = np.random.default_rng(seed)
    params: dict[str, np.ndarray] = {}
    buffers: dict[str, np.ndarray] = {}
    for layer in layers(model, in_shape, num_classes):
        if isinstance(layer, (Conv, Dense)):
            if isinstance(layer, Conv):
                shape = (layer.out_channels, layer.in_channels, layer.kernel, layer.kernel)
                has_bias, out = layer.bias, layer.out_channels
            else:
                shape = (layer.out_features, layer.in_features)
                has_bias, out = True, layer.out_features
            bound = 1.0 / np.sqrt(np.prod(shape[1:]))
            params[f"{layer.name}.weight"] = rng.uniform(-bound, bound, shape).astype(np.float32)
            if has_bias:
                params[f"{layer.name}.bias"] = rng.uniform(-bound, bound, out).astype(np.float32)
        else:
            params[f"{layer.name}.weight"] = np.ones(layer.channels, np.float32)
            params[f"{layer.name}.bias"] = np.zeros(layer.channels, np.float32)
            buffers[f"{layer.name}.running_mean"] = np.zeros(layer.channels, np.float32)
            buffers[f"{layer.name}.running_var"] = np.ones(layer.channels, np.float32)
    return params, buffers


def frozen_params(model: str, in_shape, num_classes: int, trainable) -> frozenset[str]:
    """The parameters `--trainable` leaves out: every parameter whose name is not one of the
    `trainable` prefixes (a layer, a block, a stage: "fc", "layer4.1", "layer4") or below one.
    Empty `trainable`: everything trains. A prefix that names no parameter is an error."""
    names = list(param_shapes(model, in_shape, num_classes))
    if not trainable:
        return frozenset()
    def under(name, prefix):
        return name == prefix or name.startswith(prefix + ".")

    for prefix in trainable:
        if not any(under(name, prefix) for name in names):
            stems = sorted({n.split(".")[0] for n in names}, key=names_order(names))
            raise PybenchError(f"--trainable {prefix}: {model} has no such layer (its top-level "
                               f"layers: {', '.join(stems)})")
    return frozenset(n for n in names if not any(under(n, p) for p in trainable))


def names_order(names: list[str]):
    """Sort key: the position of a name's first appearance in the canonical order."""
    first = {}
    for i, name in enumerate(names):
        first.setdefault(name.split(".")[0], i)
    return lambda stem: first[stem]


def frozen_norms(model: str, in_shape, num_classes: int, frozen) -> tuple[str, ...]:
    """BatchNorm layers none of whose parameters train: they normalise with their running
    statistics in training steps too, and keep them (what torchvision users get by calling
    eval() on the frozen layers)."""
    return tuple(layer.name for layer in layers(model, in_shape, num_classes)
                 if isinstance(layer, BatchNorm)
                 and {f"{layer.name}.weight", f"{layer.name}.bias"} <= set(frozen))


def weights_fingerprint(params: dict[str, np.ndarray], buffers: dict[str, np.ndarray]) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes, in sorted name order."""
    h = hashlib.sha256()
    for name, arr in sorted({**params, **buffers}.items()):
        arr = np.ascontiguousarray(arr)
        h.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
        h.update(arr.tobytes())
    return h.hexdigest()

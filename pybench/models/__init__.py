"""The models, stated once as data, for every framework.

Each architecture is described by its layers (names, shapes, strides, paddings: the vocabulary
of `pybench.models.layers`); every backend builds its model from this description and from the
canonical initial weights made here, so two frameworks cannot disagree on a width, a padding or
a parameter name. Parameter names are PyTorch's `state_dict` keys (torchvision's for the ResNets
and DenseNets), layouts are PyTorch's: conv weights (out, in, kh, kw), dense weights (out, in).
Each backend converts to its own layout.

Three families, each a `Family` of functions in one registry (`FAMILIES`), so that nothing asks
a model's name what to do: the plain CNNs, layer lists (`cnn`: LeNet-5, built in, and the user's
own CNNs read from a file, known by their `name` once registered), the ResNets (`resnets`) and
the DenseNets (`densenets`). Every backend builds a family through a registry of its own keyed
by the same names. Also here, because they follow from the description alone: parameter counts,
forward FLOPs per image, the activation scale the memory estimate uses, and a fingerprint of a
set of weights.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pybench.errors import PybenchError
from pybench.models import cnn
from pybench.models.densenets import (
    DENSENETS,
    concatenated_elements,
    densenet_conv_inputs,
    densenet_layers,
    describe_densenet,
)
from pybench.models.layers import (  # noqa: F401  (the vocabulary, re-exported)
    BN_EPS,
    BN_MOMENTUM,
    BatchNorm,
    Conv,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool,
    Pool,
    Relu,
    pooled_size,
)
from pybench.models.resnets import (  # noqa: F401  (re-exported for the backends)
    BASIC,
    BOTTLENECK,
    EXPANSION,
    IMAGENET_STEM,
    RESNETS,
    SMALL_STEM,
    Block,
    ResNetSpec,
    Stem,
    block_layers,
    describe_resnet,
    resnet_blocks,
    resnet_conv_inputs,
    resnet_layers,
)

RESNET, DENSENET, CNN = "resnet", "densenet", "cnn"

MODEL_NAMES = (*cnn.BUILT_IN, *RESNETS, *DENSENETS)

MODEL_DESCRIPTIONS = {
    "lenet5": "LeNet-5: conv6@5x5(pad 2)-pool-conv16@5x5-pool-fc120-fc84-fc, ReLU, max pool",
    "resnet8": "CIFAR ResNet-8 (He et al.), 16/32/64 channels, 1 block per stage",
    "resnet20": "CIFAR ResNet-20 (He et al.), 16/32/64 channels, 3 blocks per stage",
    "resnet18": "torchvision ResNet-18 with a 3x3 stride-1 stem and no max pool",
    "resnet18-imagenet": "torchvision ResNet-18 as it is: 7x7 stride-2 stem, 3x3 max pool",
    "resnet34-imagenet": "torchvision ResNet-34 as it is: basic blocks 3/4/6/3, ImageNet stem",
    "resnet50-imagenet": "torchvision ResNet-50 (v1.5, bottleneck blocks), ImageNet stem",
    "densenet121-imagenet": "torchvision DenseNet-121 (CheXNet's): growth 32, blocks 6/12/24/16",
}


def family(model: str) -> str:
    """cnn (LeNet-5 or a registered CNN file), resnet or densenet; an unknown name is an error."""
    if model in RESNETS:
        return RESNET
    if model in DENSENETS:
        return DENSENET
    if cnn.registered(model) is not None:
        return CNN
    raise PybenchError(f"unknown model {model!r}: choose from {', '.join(MODEL_NAMES)}, or give "
                       f"a CNN file (.toml or .json)")


def check_model(name: str) -> None:
    family(name)


def model_names(args) -> tuple[str, ...]:
    """--models entries as model names: a .toml or .json entry is read, registered, and stands
    for its `name`."""
    out = []
    for arg in args:
        if cnn.is_cnn_file(arg):
            arg = cnn.register(cnn.read_cnn_file(arg), MODEL_NAMES)
        check_model(arg)
        out.append(arg)
    return tuple(out)


def from_file(model: str) -> cnn.CnnSpec | None:
    """The spec of a model read from a CNN file (None for a built-in model, LeNet-5 included)."""
    return None if model in cnn.BUILT_IN else cnn.registered(model)


def cnn_description(model: str) -> dict | None:
    """A CNN file's description (what a worker registers it from); None for a built-in."""
    spec = from_file(model)
    return None if spec is None else spec.description()


def cnn_records(names) -> dict:
    """For results documents: each CNN file model's description and fingerprint, by name."""
    return {name: {**from_file(name).description(), "fingerprint": from_file(name).fingerprint}
            for name in names if from_file(name) is not None}


def model_fingerprint(model: str) -> str:
    """A CNN file's architecture fingerprint (`cnn.CnnSpec.fingerprint`); '' for a built-in."""
    spec = from_file(model)
    return "" if spec is None else spec.fingerprint


def smallest_square(model: str, in_shape, num_classes: int) -> int | None:
    """The smallest S such that `model` takes S x S images of these channels (None beyond 4096)."""
    channels, height, width = in_shape
    for side in range(max(height, width) + 1, 4097):
        if builds_for(model, (channels, side, side), num_classes):
            return side
    return None


def check_builds(model: str, in_shape, num_classes: int, where: str = "the dataset") -> None:
    """One line, before any worker starts, when `model` cannot take these images, naming the
    smallest --image-size it can."""
    try:
        layers(model, in_shape, num_classes)
    except PybenchError:
        _, height, width = in_shape
        side = smallest_square(model, in_shape, num_classes)
        fix = f"pass --image-size {side} or larger" if side else "no --image-size up to 4096 fits"
        raise PybenchError(f"{model} cannot take the {width}x{height} images of {where}: it needs at least "
                           f"{side}x{side} ({fix})") from None


def builds_for(model: str, in_shape, num_classes: int) -> bool:
    """Whether `model` can be built for these images (LeNet-5 needs 12x12 at least)."""
    try:
        layers(model, in_shape, num_classes)
    except PybenchError:
        return False
    return True


def ops(model: str, in_shape, num_classes: int) -> list:
    """A plain CNN's every layer (`cnn.cnn_ops`), relus, pools and dropouts included."""
    return cnn.cnn_ops(cnn.registered(model), tuple(in_shape), num_classes)


# ---------------------------------------------------------------- the families

@dataclass(frozen=True)
class Family:
    """What every question about a model's architecture needs, for one family: its
    parametrised layers in canonical order, every convolution's input size, the description a
    non-Python backend (Knet) builds it from, its classifier and its first convolution, and the
    activations it keeps beyond its convolutions' outputs."""

    layers: Callable[[str, tuple, int], list]
    conv_inputs: Callable[[str, tuple, int], list]
    describe: Callable[[str, tuple, int], dict]
    head: Callable[[str], str]
    first_conv: Callable[[str], str]
    extra_elements: Callable[[str, tuple], int] = lambda model, in_shape: 0


def cnn_layers(model: str, in_shape, num_classes: int) -> list:
    return [op for op in ops(model, in_shape, num_classes) if isinstance(op, (Conv, BatchNorm, Dense))]


def sized(layers_of: Callable, conv_inputs_of: Callable) -> Callable:
    """An ImageNet-stem family's layers, after checking every stage gets maps of at least 1x1."""
    def layers_for(model: str, in_shape, num_classes: int) -> list:
        _, height, width = in_shape
        if min(min(h, w) for _, h, w in conv_inputs_of(model, height, width)) < 1:
            raise PybenchError(f"{model} needs larger images than {height}x{width} (its last stage "
                               f"would get no pixels)")
        return layers_of(model, in_shape[0], num_classes)
    return layers_for


def first_named_conv(model: str) -> str:
    return next((layer["name"] for layer in cnn.registered(model).layers if layer["type"] == "conv"), "")


FAMILIES = {
    CNN: Family(
        layers=cnn_layers,
        conv_inputs=lambda m, shape, classes: cnn.cnn_conv_inputs(cnn.registered(m), tuple(shape), classes),
        describe=lambda m, shape, classes: {"ops": cnn.knet_ops(cnn.registered(m), tuple(shape), classes)},
        head=lambda m: cnn.registered(m).layers[-1]["name"],
        first_conv=first_named_conv),
    RESNET: Family(
        layers=sized(lambda m, c, k: resnet_layers(RESNETS[m], c, k),
                     lambda m, h, w: resnet_conv_inputs(RESNETS[m], h, w)),
        conv_inputs=lambda m, shape, classes: resnet_conv_inputs(RESNETS[m], shape[1], shape[2]),
        describe=lambda m, shape, classes: describe_resnet(RESNETS[m]),
        head=lambda m: "fc", first_conv=lambda m: "conv1"),
    DENSENET: Family(
        layers=sized(lambda m, c, k: densenet_layers(DENSENETS[m], c, k),
                     lambda m, h, w: densenet_conv_inputs(DENSENETS[m], h, w)),
        conv_inputs=lambda m, shape, classes: densenet_conv_inputs(DENSENETS[m], shape[1], shape[2]),
        describe=lambda m, shape, classes: describe_densenet(DENSENETS[m]),
        head=lambda m: "classifier", first_conv=lambda m: "features.conv0",
        extra_elements=lambda m, shape: concatenated_elements(DENSENETS[m], shape[1], shape[2])),
}


def family_of(model: str) -> Family:
    return FAMILIES[family(model)]


def layers(model: str, in_shape: tuple[int, int, int], num_classes: int) -> list:
    """The parametrised layers of `model`, in canonical order (the order weights are drawn in)."""
    return family_of(model).layers(model, tuple(in_shape), num_classes)


def head_layer(model: str) -> str:
    """The classifier, whose shape follows the class count: fc3 (LeNet-5), fc, classifier, or a
    CNN file's last dense layer."""
    return family_of(model).head(model)


def first_conv(model: str) -> str:
    """The convolution that sees the images (a weights file's colour weights are folded into it
    for grey images)."""
    return family_of(model).first_conv(model)


def describe(model: str, in_shape: tuple[int, int, int], num_classes: int) -> dict:
    """A JSON-able description a non-Python backend (Knet) builds the same model from."""
    return {"model": model, "family": family(model), "in_shape": list(in_shape), "num_classes": num_classes,
            "bn_momentum": BN_MOMENTUM, "bn_eps": BN_EPS,
            **family_of(model).describe(model, tuple(in_shape), num_classes)}


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


def conv_inputs(model: str, in_shape, num_classes: int) -> list[tuple[str, int, int]]:
    """(name, input height, input width) of every convolution of one forward pass, in order."""
    return family_of(model).conv_inputs(model, tuple(in_shape), num_classes)


def conv_passes(model: str, in_shape, num_classes: int) -> list[tuple[int, int]]:
    """(FLOPs, output elements) of every convolution of one image's forward pass, in order."""
    by_name = {layer.name: layer for layer in layers(model, in_shape, num_classes)}
    passes = []
    for name, h, w in conv_inputs(model, in_shape, num_classes):
        conv = by_name[name]
        oh = pooled_size(h, conv.kernel, conv.stride, conv.padding)
        ow = pooled_size(w, conv.kernel, conv.stride, conv.padding)
        passes.append((2 * conv.in_channels * conv.kernel**2 * conv.out_channels * oh * ow,
                       conv.out_channels * oh * ow))
    return passes


def forward_flops(model: str, in_shape, num_classes: int) -> int:
    """FLOPs of one image's forward pass, a multiply-add counted as 2 (convolutions and dense
    layers only: activations, pooling and BatchNorm add a few percent and are left out)."""
    dense = sum(2 * layer.in_features * layer.out_features for layer in layers(model, in_shape, num_classes)
                if isinstance(layer, Dense))
    return sum(flops for flops, _ in conv_passes(model, in_shape, num_classes)) + dense


def activation_elements(model: str, in_shape, num_classes: int) -> int:
    """Elements of one image's convolution outputs (each is followed by a BatchNorm and a ReLU,
    or a ReLU and a pool, of about its size): the scale of what training keeps for backward. A
    DenseNet adds its concatenated layer inputs, which it keeps too."""
    elements = sum(elements for _, elements in conv_passes(model, in_shape, num_classes))
    return elements + family_of(model).extra_elements(model, tuple(in_shape))


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

"""DenseNets, torchvision's structure and parameter names (CheXNet's DenseNet-121).

torchvision's `densenet121`: a 7x7 stride-2 stem (features.conv0, norm0, relu, 3x3 stride-2 max
pool padded by 1), four dense blocks of 6, 12, 24 and 16 layers with transitions between them,
a final BatchNorm (features.norm5), relu, global average pool and the classifier. Each dense
layer takes the concatenation of everything before it in its block: norm1-relu-conv1 (1x1, to
bn_size x growth channels)-norm2-relu-conv2 (3x3 padded by 1, to growth channels), and its
output is appended to the concatenation. A transition is norm-relu-conv (1x1, half the
channels)-2x2 average pool. No convolution has a bias; dropout is torchvision's default, none.
"""

from __future__ import annotations

from dataclasses import dataclass

from pybench.models.layers import BatchNorm, Conv, Dense, pooled_size


@dataclass(frozen=True)
class DenseNetSpec:
    growth: int
    block_layers: tuple[int, ...]
    init_features: int
    bn_size: int = 4
    stem_pool: tuple[int, int, int] = (3, 2, 1)  # max pool (kernel, stride, padding)

    def block_inputs(self) -> list[int]:
        """Channels entering each dense block."""
        channels, out = self.init_features, []
        for count in self.block_layers:
            out.append(channels)
            channels = (channels + count * self.growth) // 2
        return out

    @property
    def features(self) -> int:
        """Channels entering the classifier (after norm5)."""
        return self.block_inputs()[-1] + self.block_layers[-1] * self.growth


DENSENETS = {
    "densenet121-imagenet": DenseNetSpec(growth=32, block_layers=(6, 12, 24, 16), init_features=64),
}


def dense_layer_names(spec: DenseNetSpec) -> list[tuple[int, int, str]]:
    """(block, layer, prefix) of every dense layer, 1-based as torchvision names them."""
    return [(i, j, f"features.denseblock{i}.denselayer{j}")
            for i, count in enumerate(spec.block_layers, start=1) for j in range(1, count + 1)]


def densenet_layers(spec: DenseNetSpec, channels: int, num_classes: int) -> list:
    """The parametrised layers in torchvision's state_dict order."""
    out = [Conv("features.conv0", channels, spec.init_features, 7, 2, 3, bias=False),
           BatchNorm("features.norm0", spec.init_features)]
    inner = spec.bn_size * spec.growth
    blocks = len(spec.block_layers)
    for i, (count, start) in enumerate(zip(spec.block_layers, spec.block_inputs()), start=1):
        for j in range(1, count + 1):
            prefix = f"features.denseblock{i}.denselayer{j}"
            cin = start + (j - 1) * spec.growth
            out += [BatchNorm(f"{prefix}.norm1", cin),
                    Conv(f"{prefix}.conv1", cin, inner, 1, bias=False),
                    BatchNorm(f"{prefix}.norm2", inner),
                    Conv(f"{prefix}.conv2", inner, spec.growth, 3, 1, 1, bias=False)]
        if i < blocks:
            cin = start + count * spec.growth
            out += [BatchNorm(f"features.transition{i}.norm", cin),
                    Conv(f"features.transition{i}.conv", cin, cin // 2, 1, bias=False)]
    out += [BatchNorm("features.norm5", spec.features), Dense("classifier", spec.features, num_classes)]
    return out


def densenet_conv_inputs(spec: DenseNetSpec, height: int, width: int) -> list[tuple[str, int, int]]:
    """(convolution name, input height, input width) of every convolution, in order."""
    out = [("features.conv0", height, width)]
    h, w = pooled_size(height, 7, 2, 3), pooled_size(width, 7, 2, 3)
    h, w = pooled_size(h, *spec.stem_pool), pooled_size(w, *spec.stem_pool)
    blocks = len(spec.block_layers)
    for i, count in enumerate(spec.block_layers, start=1):
        for j in range(1, count + 1):
            prefix = f"features.denseblock{i}.denselayer{j}"
            out += [(f"{prefix}.conv1", h, w), (f"{prefix}.conv2", h, w)]
        if i < blocks:
            out.append((f"features.transition{i}.conv", h, w))
            h, w = pooled_size(h, 2, 2, 0), pooled_size(w, 2, 2, 0)
    return out


def concatenated_elements(spec: DenseNetSpec, height: int, width: int) -> int:
    """Elements of one image's concatenated dense-layer inputs (each is stored for backward,
    beside the convolution outputs): what makes a DenseNet's activations outgrow its FLOPs."""
    sizes = {name: (h, w) for name, h, w in densenet_conv_inputs(spec, height, width)}
    total = 0
    for i, j, prefix in dense_layer_names(spec):
        h, w = sizes[f"{prefix}.conv1"]
        total += (spec.block_inputs()[i - 1] + (j - 1) * spec.growth) * h * w
    return total


def describe_densenet(spec: DenseNetSpec) -> dict:
    """What Knet builds the DenseNet from, beside its weights."""
    return {"block_layers": list(spec.block_layers), "stem_pool": list(spec.stem_pool)}

"""The ResNets, torchvision's structure and parameter names: CIFAR ResNet-8/20 (He et al.),
ResNet-18 with a small-input stem, and torchvision's resnet18, resnet34 and resnet50 as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

from pybench.models.layers import BatchNorm, Conv, Dense, pooled_size

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


IMAGENET_WIDTHS = (64, 128, 256, 512)

RESNETS = {
    # CIFAR ResNets of He et al. (6n+2 layers): three stages of n blocks at 16/32/64 channels.
    "resnet8": ResNetSpec(stem_width=16, widths=(16, 32, 64), blocks_per_stage=(1, 1, 1)),
    "resnet20": ResNetSpec(stem_width=16, widths=(16, 32, 64), blocks_per_stage=(3, 3, 3)),
    # torchvision's ResNet-18 with a small-input stem: 3x3 stride-1 conv, no max pool.
    "resnet18": ResNetSpec(stem_width=64, widths=IMAGENET_WIDTHS, blocks_per_stage=(2, 2, 2, 2)),
    # torchvision's resnet18, resnet34 and resnet50 as they are, ImageNet stem included: the
    # models whose pretrained weights (--weights) fit, named apart from the small-input ResNet-18.
    "resnet18-imagenet": ResNetSpec(stem_width=64, widths=IMAGENET_WIDTHS,
                                    blocks_per_stage=(2, 2, 2, 2), stem=IMAGENET_STEM),
    "resnet34-imagenet": ResNetSpec(stem_width=64, widths=IMAGENET_WIDTHS,
                                    blocks_per_stage=(3, 4, 6, 3), stem=IMAGENET_STEM),
    "resnet50-imagenet": ResNetSpec(stem_width=64, widths=IMAGENET_WIDTHS,
                                    blocks_per_stage=(3, 4, 6, 3), stem=IMAGENET_STEM,
                                    block=BOTTLENECK),
}


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


def resnet_layers(spec: ResNetSpec, channels: int, num_classes: int) -> list:
    stem = spec.stem
    out = [Conv("conv1", channels, spec.stem_width, stem.kernel, stem.stride, stem.padding,
                bias=False),
           BatchNorm("bn1", spec.stem_width)]
    for b in resnet_blocks(spec):
        out += block_layers(b)
    out.append(Dense("fc", spec.features, num_classes))
    return out


def resnet_conv_inputs(spec: ResNetSpec, height: int, width: int) -> list[tuple[str, int, int]]:
    """(convolution name, input height, input width) of every convolution, in order."""
    sizes = {}
    by_name = {layer.name: layer for layer in resnet_layers(spec, 1, 1)}

    def run(name, h, w):
        conv = by_name[name]
        sizes[name] = (h, w)
        return (pooled_size(h, conv.kernel, conv.stride, conv.padding),
                pooled_size(w, conv.kernel, conv.stride, conv.padding))

    h, w = run("conv1", height, width)
    if spec.stem.pool:
        h, w = pooled_size(h, *spec.stem.pool), pooled_size(w, *spec.stem.pool)
    for b in resnet_blocks(spec):
        names = ["conv1", "conv2", "conv3"] if b.kind == BOTTLENECK else ["conv1", "conv2"]
        bh, bw = h, w
        for name in names:
            bh, bw = run(f"{b.prefix}.{name}", bh, bw)
        if b.has_downsample:
            run(f"{b.prefix}.downsample.0", h, w)
        h, w = bh, bw
    return [(name, *size) for name, size in sizes.items()]


def describe_resnet(spec: ResNetSpec) -> dict:
    """What Knet builds the ResNet from, beside its weights: the stem and every block."""
    return {"stem": {"kernel": spec.stem.kernel, "stride": spec.stem.stride,
                     "padding": spec.stem.padding,
                     "pool": list(spec.stem.pool) if spec.stem.pool else [0, 0, 0]},
            "blocks": [{"prefix": b.prefix, "in": b.in_channels, "out": b.out_channels,
                        "stride": b.stride, "kind": b.kind, "downsample": b.has_downsample}
                       for b in resnet_blocks(spec)]}

"""The layer vocabulary every model is written in, and the BatchNorm constants every backend uses.

Parametrised layers (`Conv`, `BatchNorm`, `Dense`) carry their canonical name (a PyTorch
`state_dict` prefix) and their shapes; the others (`Relu`, `Pool`, `GlobalAvgPool`, `Flatten`,
`Dropout`) only what they compute. The built-in models list their parametrised layers in these
terms; a CNN file (`pybench.models.cnn`) is a sequence of all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class Relu:
    pass


@dataclass(frozen=True)
class Pool:
    """PyTorch's MaxPool2d (padding is -inf) or AvgPool2d (padding counts as zeros in the mean,
    count_include_pad=True); sizes floored (ceil_mode=False)."""

    mode: str  # "max" or "avg"
    kernel: int
    stride: int
    padding: int = 0


@dataclass(frozen=True)
class GlobalAvgPool:
    """The mean over height and width: (N, C, H, W) -> (N, C), ready for a dense layer."""


@dataclass(frozen=True)
class Flatten:
    """(N, C, H, W) -> (N, C * H * W) in (C, H, W) order, torch's flatten(1)."""


@dataclass(frozen=True)
class Dropout:
    """Training-mode dropout with probability `p`, its masks drawn by `pybench.models.dropout`
    so that every framework drops the same elements; eval mode passes the input through.
    `index` numbers the model's dropout layers from 0 (each draws its own masks)."""

    p: float
    index: int = 0


def pooled_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output size of a convolution or pool along one axis, floored as PyTorch's."""
    return (size + 2 * padding - kernel) // stride + 1

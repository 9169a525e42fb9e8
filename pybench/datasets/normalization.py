"""Which mean and std turn a dataset's pixels into a network's inputs (`--normalize`).

- `dataset`: the training split's own per-channel statistics (`Dataset.mean`, `Dataset.std`), the
  default when training from the seeded draw;
- `imagenet`: torchvision's ImageNet statistics, what ImageNet-pretrained weights were trained on
  and so the default with `--weights`; a grey image (one channel, whose conv1 pybench folds from
  the RGB weights) gets the mean of the three means and of the three stds;
- `fixed:MEAN,STD`: the same mean and std for every channel, e.g. `fixed:0.5,0.5`.

The choice only changes the pixel table every backend normalises with (`Dataset.pixel_table`),
so every framework still sees the very same float inputs; the run records what it used.
"""

from __future__ import annotations

import dataclasses

from pybench.errors import PybenchError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CHOICES = ("dataset", "imagenet", "fixed:MEAN,STD")


def check_normalize(spec: str | None) -> str | None:
    """`spec` when it is one of CHOICES (fixed with two numbers, std > 0); one line otherwise."""
    if spec is None or spec in ("dataset", "imagenet"):
        return spec
    name, _, values = spec.partition(":")
    parts = values.split(",")
    try:
        mean, std = (float(p) for p in parts) if name == "fixed" and len(parts) == 2 else (None, None)
    except ValueError:
        mean = std = None
    if mean is None or not (0 < std < float("inf")) or mean != mean:
        raise PybenchError(f"--normalize {spec}: choose dataset, imagenet or fixed:MEAN,STD (two "
                           "numbers, std above 0, e.g. fixed:0.5,0.25)")
    return spec


def default_normalize(weights: str | None) -> str:
    return "imagenet" if weights else "dataset"


def statistics(spec: str, dataset) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per channel that `spec` means for this dataset."""
    channels = dataset.in_shape[0]
    if spec == "dataset":
        return tuple(dataset.mean), tuple(dataset.std)
    if spec == "imagenet":
        if channels == 3:
            return IMAGENET_MEAN, IMAGENET_STD
        if channels == 1:
            return (sum(IMAGENET_MEAN) / 3,), (sum(IMAGENET_STD) / 3,)
        raise PybenchError(f"--normalize imagenet: ImageNet's statistics are for 1 or 3 channels, "
                           f"the images have {channels}")
    mean, std = (float(v) for v in check_normalize(spec).split(":")[1].split(","))
    return (mean,) * channels, (std,) * channels


def normalized_as(dataset, spec: str):
    """The dataset with the mean and std `spec` means (its arrays shared, not copied)."""
    mean, std = statistics(spec, dataset)
    if (mean, std) == (tuple(dataset.mean), tuple(dataset.std)):
        return dataset
    return dataclasses.replace(dataset, mean=mean, std=std)

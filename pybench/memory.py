"""Memory as a budget: what a training worker will hold, estimated before it trains, and the
one-line refusal when that cannot fit.

A 112,000-image X-ray set at 224x224 is 5.6 GB of uint8 pixels; a ResNet's activations at a
large batch are gigabytes more. Finding that out from the kernel's OOM killer, an hour into a
comparison, loses the hour. The estimate adds up:

- data: the uint8 splits (on the CPU the device's memory is the host's, and the backends share
  the memory-mapped cache's pages, so it counts once), plus, with --augment, each epoch's
  normalised float training images (made on the host, then put on the device);
- model: weights, gradients and optimizer state (Adam keeps two slots per weight);
- activations: what the training step keeps for its backward pass, ACTIVATION_COPIES times
  every convolution's output at the batch size (its BatchNorm and ReLU outputs are the same
  size, and the backward pass holds gradients of that size too).

It is an estimate, checked against measured peaks in docs/datasets.md (X-ray scale): it must not
refuse a run that fits, so the check allows what the machine has available (MemAvailable,
which counts the reclaimable page cache) or, on a GPU, the device's free memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pybench import models
from pybench.errors import PybenchError

ACTIVATION_COPIES = 4
OPTIMIZER_SLOTS = {"sgd": 1, "adam": 2, "adamw": 2}  # momentum; Adam's two moments
GB = 1e9


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a training worker will hold, by what holds them."""

    data: int
    model: int
    activations: int

    @property
    def total(self) -> int:
        return self.data + self.model + self.activations

    def text(self) -> str:
        return (f"about {self.total / GB:.1f} GB (data {self.data / GB:.1f} GB, model "
                f"{self.model / GB:.2f} GB, activations {self.activations / GB:.1f} GB)")


def estimate(dataset, model: str, batch_size: int, optimizer: str = "sgd", dtype=np.float32,
             augment: bool = False) -> MemoryEstimate:
    """What training `model` on `dataset` at `batch_size` holds (see the module docstring)."""
    itemsize = np.dtype(dtype).itemsize
    data = sum(split.images.nbytes + split.labels.nbytes for split in dataset.splits().values())
    if augment:
        data += 2 * dataset.train.images.size * itemsize  # the epoch's floats, host and device
    weights = models.n_params(model, dataset.in_shape, dataset.num_classes)
    model_bytes = weights * itemsize * (2 + OPTIMIZER_SLOTS.get(optimizer, 2))
    per_image = models.activation_elements(model, dataset.in_shape, dataset.num_classes)
    activations = ACTIVATION_COPIES * per_image * itemsize * batch_size
    return MemoryEstimate(int(data), int(model_bytes), int(activations))


def available_host_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (free memory plus the page cache the kernel can reclaim);
    None where there is no /proc."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_fits(needed: MemoryEstimate, available: int | None, where: str, model: str,
               batch_size: int) -> None:
    """Refuse, in one line naming the figures and the options that help, a run that cannot fit."""
    if available is None or needed.total <= available:
        return
    raise PybenchError(f"{model} at batch size {batch_size} needs {needed.text()} but {where} has "
                       f"{available / GB:.1f} GB available: lower --batch-size or --image-size, or "
                       "use --grayscale (one channel instead of three)")


def check_host_memory(dataset, model: str, batch_size: int, optimizer: str = "sgd",
                      augment: bool = False) -> MemoryEstimate:
    """The CPU check: the whole estimate against the host's available memory."""
    needed = estimate(dataset, model, batch_size, optimizer, augment=augment)
    # The data already in the page cache (a memory-mapped entry another run just read) is both
    # in MemAvailable and in the estimate: counted once as available, once as needed, as it
    # should be, since training keeps it resident.
    check_fits(needed, available_host_bytes(), "this machine", model, batch_size)
    return needed


def check_device_memory(backend, dataset, model: str, batch_size: int, optimizer: str = "sgd",
                        augment: bool = False) -> None:
    """The GPU check: the model and its activations against the device's free memory (the data
    goes to the device only when it fits beside them: `Backend.fits_on_device`)."""
    needed = estimate(dataset, model, batch_size, optimizer, augment=augment)
    on_device = MemoryEstimate(0, needed.model, needed.activations)
    check_fits(on_device, backend.free_device_bytes(), f"the {backend.device} device", model, batch_size)

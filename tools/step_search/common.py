"""What every part of the search shares: its settings, the inputs every variant starts from, a
round's figures, and each framework's default step (its pybench backend, driven as
`pybench.training` drives it) with the backends' own alternatives."""

from __future__ import annotations

import importlib
import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pybench import models
from pybench.backends import get_backend
from pybench.backends.contract import ModelInput, OptimizerConfig
from pybench.datasets import batch_order

BATCH = 32
OPTIMIZER = OptimizerConfig(name="sgd", lr=0.01, momentum=0.9)
LOSS_RTOL = 1e-4  # every variant's first loss against the default's (float32)
SLOWEST_RATIO = 1.2  # default median / fastest candidate's median: beyond it, adopt the faster
# Steps per round and variant (the first of each round is left out: warm-up), chosen so that one
# round of one variant takes about a second on 2 cores whatever the model.
DEFAULT_STEPS = {"lenet5": 60, "resnet8": 40, "resnet20": 16, "resnet18": 6}
FALLBACK_STEPS = 4  # a registered model without a measured default (the ImageNet-size ResNets)
DEFAULT_ROUNDS = 5
TABLES = ("torch", "jax", "jax process options", "knet", "jax against Keras",
          "torch against Keras")
KNET_PLAIN = Path(__file__).with_name("knet_plain.jl")


@dataclass(frozen=True)
class Search:
    """What one search measures: the model, steps per round and rounds per variant."""

    model: str = "lenet5"
    steps: int = 60
    rounds: int = DEFAULT_ROUNDS
    compile: bool = False  # add torch.compile to torch's variants
    # What --model said: the name, or a CNN file's path (round workers register it again).
    model_arg: str = ""
    image_size: int | None = None  # MNIST resized to this (None: 28x28 as it is)

    def load_mnist(self):
        """MNIST as the search trains on it (the model's CNN file registered, if it has one)."""
        from pybench.datasets import load_dataset

        models.model_names([self.model_arg or self.model])
        options = {"image_size": self.image_size} if self.image_size else {}
        return load_dataset("mnist", progress=False, **options)


@dataclass
class Inputs:
    """The arrays every variant starts from."""

    model: str
    images: np.ndarray  # (N, 1, 28, 28) float32, normalised: what hand-written variants take
    labels: np.ndarray  # int64 (N,)
    order: np.ndarray  # int64, one epoch's sample order
    params: dict[str, np.ndarray]  # canonical weights
    buffers: dict[str, np.ndarray]  # canonical BatchNorm statistics
    # What pybench's backends take (pybench.training): the uint8 images and the pixel table, so
    # the default pays its per-batch normalisation; the hand-written variants get the normalised
    # floats for free, which only makes the 1.2x rule stricter on the default.
    in_shape: tuple[int, int, int]
    num_classes: int
    pixels: np.ndarray | None = None
    table: np.ndarray | None = None


@dataclass
class Round:
    """What one round gave: step times after the first (ms), the first step's time (ms:
    compilation, when the variant compiles on first use) and the first loss."""

    step_ms: list[float]
    first_step_ms: float
    first_loss: float


Variant = Callable[[], Round]  # one round of one variant (built once: compilation not timed)


def make_inputs(dataset, model: str) -> Inputs:
    params, buffers = models.init_weights(model, dataset.in_shape, dataset.num_classes, 0)
    return Inputs(model, dataset.normalized("train"), dataset.train.labels,
                  batch_order(0, 0, len(dataset.train.labels)), params, buffers,
                  dataset.in_shape, dataset.num_classes, dataset.train.images, dataset.pixel_table())


def timed_steps(step: Callable[[int], object], sync: Callable[[object], None], steps: int) -> Round:
    """`steps` calls of step(i), each closed by sync(its result) before the clock is read."""
    times, first_loss = [], None
    last = time.perf_counter()
    for i in range(steps):
        out = step(i)
        sync(out)
        now = time.perf_counter()
        times.append((now - last) * 1e3)
        last = now
        if first_loss is None:
            first_loss = float(out)
    return Round(times[1:], times[0], first_loss)


# ---------------------------------------------------------------------------------------------
# The default of each framework: its pybench backend as pybench.training drives it.

def backend_variant(framework: str, inputs: Inputs, search: Search,
                    change: Callable | None = None) -> Variant:
    """Rounds of the framework's pybench backend, as one run drives it: one backend and one
    training state for all rounds (built and compiled once), each round continuing the epoch
    where the last one stopped (so JAX meets every step number for the first time, as it does
    in a one-epoch run). `change(backend)`, if given, alters the backend's per-device choice."""
    backend = get_backend(framework, "cpu")
    if change is not None:
        change(backend)
    model = ModelInput(inputs.model, inputs.in_shape, inputs.num_classes, inputs.params,
                       inputs.buffers)
    holder = [backend.init_state(model, OPTIMIZER)]
    data = (backend.put_data(inputs.pixels, inputs.labels, inputs.table) if inputs.pixels is not None
            else backend.put_data(inputs.images, inputs.labels))
    order = backend.put_order(inputs.order, np.full(len(inputs.order), OPTIMIZER.lr))
    next_step = [0]

    def step(i):
        holder[0], loss = backend.train_step(holder[0], data, order, next_step[0], BATCH)
        next_step[0] += 1
        return loss

    def run() -> Round:
        backend.synchronize()
        return timed_steps(step, lambda loss: backend.synchronize(), search.steps)

    return run


def set_backend_choice(attribute: str, module: str, name: str) -> Callable:
    """A change for `backend_variant`: backend.<attribute> = <module>.<name>."""
    def change(backend):
        setattr(backend, attribute, getattr(importlib.import_module(module), name))

    return change


# The backends' own alternatives to their per-device choices (the JAX backend's `layout`, the
# torch backend's `memory_format`), so that a machine can re-check the choice with pybench's code.
BACKEND_VARIANTS: dict[str, dict[str, Callable]] = {
    "jax": {"pybench backend, NCHW inside the step":
            set_backend_choice("layout", "pybench.backends.jax_backend", "NCHW"),
            "pybench backend, NHWC inside the step":
            set_backend_choice("layout", "pybench.backends.jax_backend", "NHWC")},
    "torch": {"pybench backend, contiguous (NCHW) memory":
              set_backend_choice("memory_format", "torch", "contiguous_format"),
              "pybench backend, channels_last memory":
              set_backend_choice("memory_format", "torch", "channels_last")},
}

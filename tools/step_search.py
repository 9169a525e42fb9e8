"""The step-variant search: each framework's training step beside every other way of writing it.

For one model (lenet5, resnet8, resnet20, resnet18) on real MNIST, batch 32, SGD lr 0.01
momentum 0.9, from the same canonical weights and the same sample order, each framework's default
step (its pybench backend, driven as `pybench.training` drives it: `train_step`, then
`synchronize` before every clock read, the rounds continuing one epoch) runs beside the other ways
of writing the same step that could be faster:

- torch: memory layout, thread count, zero_grad, the optimizer's kernels, the gather,
  `torch.compile` (opt-in: it compiles for tens of seconds);
- jax: the backend's activation layout; for LeNet-5 also hand-written steps that differ in one
  choice each (layout, precision, loss, gather, donation, the step number, one jitted program or
  two); XLA's process options, each in a worker process of its own;
- knet: Julia and OpenBLAS thread counts, and a plain-Knet loop inside Julia (tools/knet_plain.jl);
- the yardstick: Keras 3 on JAX and on PyTorch, the same model in its own layers and `fit` loop.

Rounds alternate between the variants in an order rotated every round, so that a noisy, shared
machine hurts all of them alike. Every variant must compute the same first loss as the default (a
candidate cannot win by computing something else), and the default must be within SLOWEST_RATIO
of the fastest candidate of its table: the check that a faster form has been found and not
adopted. Exit status 1 when a default is slower than that, 2 on bad input.

    PYBENCH_DATA_DIR=../shared/datasets python tools/step_search.py --model resnet8

The opt-in benchmark tests/benchmarks/test_bench_step_variants.py runs the same search under
pytest-benchmark. Re-run it on another machine (a GPU box may prefer another layout) before
changing a backend's default.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pybench import models
from pybench.backends import availability, get_backend
from pybench.backends.contract import ModelInput, OptimizerConfig
from pybench.datasets import batch_order
from pybench.errors import PybenchError

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


# ---------------------------------------------------------------------------------------------
# JAX candidates (LeNet-5): plain-JAX steps that differ from each other in one choice each.

def jax_lenet5(layout: str, precision, weights_layout: str = "OIHW"):
    """logits(params, x) of LeNet-5 with activations in `layout` ("NCHW" or "NHWC") for x given
    in that layout, conv weights given as `weights_layout` ("OIHW": canonical, converted inside
    the step when needed; "HWIO": stored that way, as a high-level library keeps them)."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    nchw = layout == "NCHW"

    def conv(x, w, b, pad):
        if not nchw and weights_layout == "OIHW":
            w = jnp.transpose(w, (2, 3, 1, 0))
        y = lax.conv_general_dilated(
            x, w, (1, 1), [(pad, pad)] * 2, precision=precision,
            dimension_numbers=("NCHW", "OIHW", "NCHW") if nchw else ("NHWC", "HWIO", "NHWC"))
        return y + (b[None, :, None, None] if nchw else b)

    window = (1, 1, 2, 2) if nchw else (1, 2, 2, 1)

    def pool(x):
        return lax.reduce_window(x, -jnp.inf, lax.max, window, window, "VALID")

    def dense(x, w, b):
        return jnp.matmul(x, w.T, precision=precision) + b

    def logits(p, x):
        x = pool(jax.nn.relu(conv(x, p["conv1.weight"], p["conv1.bias"], 2)))
        x = pool(jax.nn.relu(conv(x, p["conv2.weight"], p["conv2.bias"], 0)))
        if not nchw:  # fc1 reads (C, H, W) order, as torch's flatten gives it
            x = jnp.transpose(x, (0, 3, 1, 2))
        x = x.reshape(x.shape[0], -1)
        x = jax.nn.relu(dense(x, p["fc1.weight"], p["fc1.bias"]))
        x = jax.nn.relu(dense(x, p["fc2.weight"], p["fc2.bias"]))
        return dense(x, p["fc3.weight"], p["fc3.bias"])

    return logits


def optax_loss(logits, labels):
    import optax

    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def log_softmax_take_loss(logits, labels):
    import jax
    import jax.numpy as jnp

    return -jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=1).mean()


@dataclass(frozen=True)
class JaxVariant:
    layout: str = "NCHW"  # activations inside the step
    precision: str = "HIGHEST"  # lax.Precision of conv and matmul
    loss: Callable = optax_loss
    gather: str = "inside"  # "inside" the step, "jit" (a jitted gather of its own), "host"
    split: bool = False  # gradient and optimizer update as two jitted programs
    donate: bool = False  # donate params and optimizer state to the step
    step_arg: str = "cached"  # the step number: "cached" device scalars, "put", "int"
    data_layout: str = "NCHW"  # images on the device
    weights_layout: str = "OIHW"  # conv weights as stored


def jax_variant(inputs: Inputs, search: Search, v: JaxVariant) -> Variant:
    import jax
    import jax.numpy as jnp
    import optax
    from jax import lax

    steps = search.steps
    logits_fn = jax_lenet5(v.layout, getattr(lax.Precision, v.precision), v.weights_layout)
    tx = optax.sgd(OPTIMIZER.lr, momentum=OPTIMIZER.momentum)

    def to_step_layout(x):
        return jnp.transpose(x, (0, 2, 3, 1)) if v.layout != v.data_layout else x

    def loss_and_grads(p, x, y):
        return jax.value_and_grad(lambda p: v.loss(logits_fn(p, to_step_layout(x)), y))(p)

    def update(p, s, grads):
        updates, s = tx.update(grads, s, p)
        return optax.apply_updates(p, updates), s

    def whole_step(p, s, x, y):
        loss, grads = loss_and_grads(p, x, y)
        return (*update(p, s, grads), loss)

    def gather(images, labels, order, step):
        idx = lax.dynamic_slice(order, (step * BATCH,), (BATCH,))
        return (jnp.take(images, idx, axis=0, mode="clip"),
                jnp.take(labels, idx, axis=0, mode="clip"))

    donate = (0, 1) if v.donate else ()
    if v.split:
        grads_jit, update_jit = jax.jit(loss_and_grads), jax.jit(update, donate_argnums=donate)

        def batch_step(p, s, x, y):
            loss, grads = grads_jit(p, x, y)
            return (*update_jit(p, s, grads), loss)
    else:
        batch_step = jax.jit(whole_step, donate_argnums=donate)
    if v.gather == "inside":
        step_fn = jax.jit(lambda p, s, images, labels, order, step:
                          whole_step(p, s, *gather(images, labels, order, step)),
                          donate_argnums=donate)
    elif v.gather == "jit":
        gather_jit = jax.jit(gather)

        def step_fn(p, s, images, labels, order, step):
            return batch_step(p, s, *gather_jit(images, labels, order, step))

    images_np = inputs.images
    if v.data_layout == "NHWC":
        images_np = np.ascontiguousarray(images_np.transpose(0, 2, 3, 1))
    params_np = dict(inputs.params)
    if v.weights_layout == "HWIO":
        for name in ("conv1.weight", "conv2.weight"):
            params_np[name] = np.ascontiguousarray(params_np[name].transpose(2, 3, 1, 0))
    images, labels = jax.device_put(images_np), jax.device_put(inputs.labels.astype(np.int32))
    labels_host = inputs.labels.astype(np.int32)
    order = jax.device_put(inputs.order.astype(np.int32))
    cached_steps = [jax.device_put(np.int32(i)) for i in range(steps)]
    step_value = {"cached": cached_steps.__getitem__, "int": int,
                  "put": lambda i: jax.device_put(np.int32(i))}[v.step_arg]

    def run() -> Round:
        state = [jax.device_put(params_np), None]
        state[1] = tx.init(state[0])
        jax.block_until_ready(state)

        def step(i):
            if v.gather == "host":  # numpy gather and a copy per step, as a data loader does
                idx = inputs.order[i * BATCH:(i + 1) * BATCH]
                x, y = jax.device_put(images_np[idx]), jax.device_put(labels_host[idx])
                state[0], state[1], loss = batch_step(state[0], state[1], x, y)
            else:
                state[0], state[1], loss = step_fn(state[0], state[1], images, labels, order,
                                                   step_value(i))
            return loss

        return timed_steps(step, lambda loss: loss.block_until_ready(), steps)

    run()  # compile, outside the measurement
    return run


JAX_LENET5_VARIANTS: dict[str, JaxVariant] = {
    "by hand: nchw highest": JaxVariant(),
    "by hand: nchw precision DEFAULT": JaxVariant(precision="DEFAULT"),
    "by hand: nhwc highest": JaxVariant(layout="NHWC"),
    "by hand: nhwc precision DEFAULT": JaxVariant(layout="NHWC", precision="DEFAULT"),
    "by hand: nhwc, images stored NHWC": JaxVariant(layout="NHWC", data_layout="NHWC"),
    "by hand: nhwc, images NHWC, weights HWIO, DEFAULT (high-level-library style)": JaxVariant(
        layout="NHWC", data_layout="NHWC", weights_layout="HWIO", precision="DEFAULT"),
    "by hand: nchw loss log_softmax+take": JaxVariant(loss=log_softmax_take_loss),
    "by hand: nchw gather in a jitted function of its own": JaxVariant(gather="jit"),
    "by hand: nchw gather on the host, batch copied per step": JaxVariant(gather="host"),
    "by hand: nchw gradient and update jitted apart": JaxVariant(split=True, gather="jit"),
    "by hand: nchw donate params and optimizer state": JaxVariant(donate=True),
    "by hand: nchw step number device_put per step": JaxVariant(step_arg="put"),
    "by hand: nchw step number as a Python int": JaxVariant(step_arg="int"),
}


# ---------------------------------------------------------------------------------------------
# PyTorch candidates: the backend's own module, stepped in one of several ways.

@dataclass(frozen=True)
class TorchVariant:
    channels_last: bool = False
    threads: int | None = None  # torch.set_num_threads for the round (None: as it is)
    set_to_none: bool = True
    optimizer: str = "foreach"  # "foreach", "for-loop" (foreach=False), "fused"
    gather: str = "index_select"  # or "indexing": images[idx]
    compile: bool = False


def torch_variant(inputs: Inputs, search: Search, v: TorchVariant) -> Variant:
    import torch
    import torch.nn.functional as F

    from pybench.backends.torch_backend import build_module

    images, labels = torch.from_numpy(inputs.images), torch.from_numpy(inputs.labels)
    if v.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    order = torch.from_numpy(inputs.order)
    kwargs = {"foreach": {"foreach": True}, "for-loop": {"foreach": False},
              "fused": {"fused": True}}[v.optimizer]
    weights = {k: torch.from_numpy(a) for k, a in {**inputs.params, **inputs.buffers}.items()}

    def run() -> Round:
        module = build_module(inputs.model, inputs.in_shape, inputs.num_classes)
        module.load_state_dict(weights, strict=False)  # strict=False: num_batches_tracked
        module.train()
        if v.channels_last:
            module = module.to(memory_format=torch.channels_last)
        net = torch.compile(module) if v.compile else module
        opt = torch.optim.SGD(module.parameters(), lr=OPTIMIZER.lr,
                              momentum=OPTIMIZER.momentum, **kwargs)
        threads = torch.get_num_threads()
        if v.threads:
            torch.set_num_threads(v.threads)

        def step(i):
            idx = order[i * BATCH:(i + 1) * BATCH]
            if v.gather == "indexing":
                x, y = images[idx], labels[idx]
            else:
                x, y = images.index_select(0, idx), labels.index_select(0, idx)
            opt.zero_grad(set_to_none=v.set_to_none)
            loss = F.cross_entropy(net(x), y)
            loss.backward()
            opt.step()
            return loss.detach()

        try:
            return timed_steps(step, lambda loss: None, search.steps)
        finally:
            torch.set_num_threads(threads)

    # torch.compile compiles in the first step of the first round (later rounds' new modules
    # find dynamo's cache): that step's time is reported apart as the compile time, and the
    # step time is the median of the steps after each round's first.
    run.compiles = v.compile  # type: ignore[attr-defined]
    return run


def torch_variants(search: Search) -> dict[str, TorchVariant]:
    variants = {
        "by hand: channels_last": TorchVariant(channels_last=True),
        "by hand: contiguous NCHW": TorchVariant(),
        "by hand: channels_last, 1 thread": TorchVariant(channels_last=True, threads=1),
        "by hand: channels_last, 2 threads": TorchVariant(channels_last=True, threads=2),
        "by hand: channels_last, zero_grad(set_to_none=False)":
            TorchVariant(channels_last=True, set_to_none=False),
        "by hand: channels_last, SGD foreach=False":
            TorchVariant(channels_last=True, optimizer="for-loop"),
        "by hand: channels_last, SGD fused=True":
            TorchVariant(channels_last=True, optimizer="fused"),
        "by hand: channels_last, batch by indexing images[idx]":
            TorchVariant(channels_last=True, gather="indexing"),
    }
    if search.compile:
        variants["by hand: torch.compile, channels_last"] = TorchVariant(channels_last=True,
                                                                          compile=True)
    return variants


def in_process_variants(framework: str, inputs: Inputs, search: Search) -> dict[str, Variant]:
    """Every in-process candidate of `framework` for the model, the backend's default first."""
    variants = {"default": backend_variant(framework, inputs, search)}
    for name, change in BACKEND_VARIANTS[framework].items():
        variants[name] = backend_variant(framework, inputs, search, change)
    if framework == "torch":
        for name, v in torch_variants(search).items():
            variants[name] = torch_variant(inputs, search, v)
    elif inputs.model == "lenet5":
        for name, v in JAX_LENET5_VARIANTS.items():
            variants[name] = jax_variant(inputs, search, v)
    return variants


# ---------------------------------------------------------------------------------------------
# Options read once, when a framework starts (XLA's flags, Julia's threads), and the Keras
# yardstick (Keras picks its backend once): each runs in a worker process of its own.

JAX_PROCESS_OPTIONS: dict[str, dict[str, str]] = {
    "no options (default)": {},
    "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1": {
        "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"},
    "--xla_cpu_use_onednn=true": {"XLA_FLAGS": "--xla_cpu_use_onednn=true"},
    "--xla_cpu_use_xnnpack=true": {"XLA_FLAGS": "--xla_cpu_use_xnnpack=true"},
    "--xla_cpu_enable_concurrency_optimized_scheduler=true": {
        "XLA_FLAGS": "--xla_cpu_enable_concurrency_optimized_scheduler=true"},
    "JAX_CPU_ENABLE_ASYNC_DISPATCH=false": {"JAX_CPU_ENABLE_ASYNC_DISPATCH": "false"},
}

# KNET_FORM_ENV picks pybench's knet backend ("backend", driven as pybench.training drives it)
# or the plain-Knet loop of knet_plain.jl ("plain"); KNET_SETUP_ENV is Julia code run before the
# step is built. NNlib's CPU convolutions (which Knet's conv4 calls) split the batch over Julia's
# threads; OpenBLAS has threads of its own for the matrix products.
KNET_FORM_ENV = "PYBENCH_BENCH_KNET_FORM"
KNET_SETUP_ENV = "PYBENCH_BENCH_KNET_SETUP"
KERAS_ENV = "PYBENCH_BENCH_KERAS"


def blas_threads(n: int) -> str:
    """Julia code setting OpenBLAS's threads (run after the backend's own choice)."""
    return f"import LinearAlgebra; LinearAlgebra.BLAS.set_num_threads({n})"


def julia_threads(n: int) -> dict[str, str]:
    """The environment that starts Julia with n threads: JULIA_NUM_THREADS for Julia itself
    (what juliacall 0.5.1 on the CI toolchain's Julia 1.5 reads), PYTHON_JULIACALL_THREADS for
    juliacall 0.9."""
    return {"JULIA_NUM_THREADS": str(n), "PYTHON_JULIACALL_THREADS": str(n)}


KNET_PROCESS_OPTIONS: dict[str, dict[str, str]] = {
    "pybench backend as it starts (default: a Julia thread per core, BLAS on 1 thread)": {},
    "pybench backend, 1 Julia thread, BLAS as it starts": julia_threads(1),
    "pybench backend, 1 Julia thread, BLAS on 1 thread": {
        **julia_threads(1), KNET_SETUP_ENV: blas_threads(1)},
    "pybench backend, 2 Julia threads, BLAS on 2 threads": {
        **julia_threads(2), KNET_SETUP_ENV: blas_threads(2)},
    "plain Knet loop inside Julia (Knet's Momentum), 1 Julia thread": {
        **julia_threads(1), KNET_FORM_ENV: "plain"},
    "plain Knet loop inside Julia (Knet's Momentum), 2 Julia threads, BLAS on 1 thread": {
        **julia_threads(2), KNET_FORM_ENV: "plain"},
}

KERAS_OPTIONS: dict[str, dict[str, dict[str, str]]] = {
    framework: {f"pybench {framework} backend (default)": {},
                f"Keras 3 on {framework}, its own fit loop": {
                    "KERAS_BACKEND": framework, KERAS_ENV: "1"}}
    for framework in ("jax", "torch")}


def knet_variant(inputs: Inputs, search: Search) -> Variant:
    """The Knet form KNET_FORM_ENV names, after the Julia code in KNET_SETUP_ENV."""
    from pybench.backends.knet_backend import julia_dict, julia_main

    jl = julia_main()
    if os.environ.get(KNET_SETUP_ENV):
        jl.seval(os.environ[KNET_SETUP_ENV])
    if os.environ.get(KNET_FORM_ENV, "backend") == "backend":
        return backend_variant("knet", inputs, search)
    from pybench.backends import knet_layout

    jl.seval(f"include({json.dumps(str(KNET_PLAIN))})")
    args = [knet_layout.images_to_knet(inputs.images), knet_layout.labels_to_knet(inputs.labels),
            knet_layout.order_to_knet(inputs.order),
            julia_dict(knet_layout.weights_to_knet(inputs.params))]
    if inputs.model == "lenet5":
        loop = jl.seval("plain_lenet5_loop")
    else:
        loop = jl.seval("plain_resnet_loop")
        blocks = models.resnet_blocks(models.RESNETS[inputs.model])
        args.append(";".join(f"{b.prefix},{b.stride}" for b in blocks))

    def run() -> Round:  # every round from the canonical weights, steps timed inside Julia
        times, losses = loop(*args, search.steps, BATCH, OPTIMIZER.lr, OPTIMIZER.momentum)
        times_ms = [t * 1e3 for t in list(times)]
        return Round(times_ms[1:], times_ms[0], float(list(losses)[0]))

    return run


# A widely used high-level library on the same backend, as its users run it: Keras 3 (on JAX or
# PyTorch, KERAS_BACKEND), the same model in its own layers (NHWC, HWIO kernels), its SGD and its
# own fit loop, from pybench's canonical weights (converted, so the first loss is the same) on
# the same batches. Optional (`pip install keras`).

def keras_lenet5(inputs: Inputs):
    """Keras LeNet-5 holding the canonical weights (conv kernels OIHW -> HWIO; fc1's inputs
    reordered from torch's (C, H, W) flatten to Keras' (H, W, C); dense kernels transposed)."""
    import keras

    p = inputs.params
    c, h, w = inputs.in_shape
    model = keras.Sequential([
        keras.Input((h, w, c)),
        keras.layers.Conv2D(6, 5, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(16, 5, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(120, activation="relu"),
        keras.layers.Dense(84, activation="relu"),
        keras.layers.Dense(inputs.num_classes),
    ])
    fc1 = p["fc1.weight"].reshape(120, 16, 5, 5).transpose(0, 2, 3, 1).reshape(120, -1)
    weights = [p["conv1.weight"].transpose(2, 3, 1, 0), p["conv1.bias"],
               p["conv2.weight"].transpose(2, 3, 1, 0), p["conv2.bias"],
               fc1.T, p["fc1.bias"], p["fc2.weight"].T, p["fc2.bias"],
               p["fc3.weight"].T, p["fc3.bias"]]
    model.set_weights([np.ascontiguousarray(w) for w in weights])
    return model


def keras_resnet(inputs: Inputs):
    """The same ResNet in Keras layers, holding the canonical weights. PyTorch pads a stride-2
    3x3 convolution by 1 on every side, while Keras' "same" pads an even input on the right and
    bottom only: those convolutions get an explicit ZeroPadding2D(1) and "valid"."""
    import keras
    from keras import layers

    p, b = inputs.params, inputs.buffers
    kernels = {}

    def conv(x, name, width, kernel, stride, pad):
        if pad and stride > 1:
            x = layers.ZeroPadding2D(pad)(x)
        padding = "same" if pad and stride == 1 else "valid"
        kernels[name] = layers.Conv2D(width, kernel, stride, padding=padding, use_bias=False)
        return kernels[name](x)

    def norm(x, name):
        kernels[name] = layers.BatchNormalization(momentum=1 - models.BN_MOMENTUM,
                                                  epsilon=models.BN_EPS)
        return kernels[name](x)

    c, h, w = inputs.in_shape
    spec = models.RESNETS[inputs.model]
    inp = keras.Input((h, w, c))
    x = layers.ReLU()(norm(conv(inp, "conv1", spec.stem_width, 3, 1, 1), "bn1"))
    for block in models.resnet_blocks(spec):
        q = block.prefix
        y = layers.ReLU()(norm(conv(x, f"{q}.conv1", block.out_channels, 3, block.stride, 1),
                               f"{q}.bn1"))
        y = norm(conv(y, f"{q}.conv2", block.out_channels, 3, 1, 1), f"{q}.bn2")
        shortcut = x
        if block.has_downsample:
            shortcut = norm(conv(x, f"{q}.downsample.0", block.out_channels, 1, block.stride, 0),
                            f"{q}.downsample.1")
        x = layers.ReLU()(layers.Add()([y, shortcut]))
    x = layers.GlobalAveragePooling2D()(x)
    kernels["fc"] = layers.Dense(inputs.num_classes)
    model = keras.Model(inp, kernels["fc"](x))
    for name, layer in kernels.items():
        if isinstance(layer, layers.BatchNormalization):
            weights = [p[f"{name}.weight"], p[f"{name}.bias"], b[f"{name}.running_mean"],
                       b[f"{name}.running_var"]]
        elif isinstance(layer, layers.Dense):
            weights = [p[f"{name}.weight"].T, p[f"{name}.bias"]]
        else:
            weights = [p[f"{name}.weight"].transpose(2, 3, 1, 0)]
        layer.set_weights([np.ascontiguousarray(a) for a in weights])
    return model


def keras_variant(inputs: Inputs, search: Search) -> Variant:
    """Rounds of `model.fit` over the next steps' batches of the epoch (unshuffled: the order is
    pybench's), each step timed from one `on_train_batch_end` to the next, as `fit` runs them."""
    import keras

    model = keras_lenet5(inputs) if inputs.model == "lenet5" else keras_resnet(inputs)
    model.compile(optimizer=keras.optimizers.SGD(OPTIMIZER.lr, momentum=OPTIMIZER.momentum),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    images = np.ascontiguousarray(inputs.images.transpose(0, 2, 3, 1))
    start = [0]

    class StepClock(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.times, self.first_loss, self.last = [], None, time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            now = time.perf_counter()
            self.times.append((now - self.last) * 1e3)
            self.last = now
            if self.first_loss is None:  # the running mean of one batch: that batch's loss
                self.first_loss = float(logs["loss"])

    def run() -> Round:
        idx = inputs.order[start[0] * BATCH:(start[0] + search.steps) * BATCH]
        start[0] += search.steps
        clock = StepClock()
        model.fit(images[idx], inputs.labels[idx], batch_size=BATCH, epochs=1, shuffle=False,
                  verbose=0, callbacks=[clock])
        return Round(clock.times[1:], clock.times[0], clock.first_loss)

    return run


class RoundWorker:
    """This file run in a process of its own with `env` added to its environment: it serves
    rounds of one framework's step (the default backend; for knet, the form the environment
    names; Keras when KERAS_ENV is set), one per request, each a JSON line."""

    def __init__(self, framework: str, search: Search, env: dict[str, str]):
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve-rounds", framework, "--model", search.model,
             "--steps", str(search.steps)],
            env={**os.environ, **env}, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def round(self) -> Round:
        self.process.stdin.write("round\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"round worker exited with status {self.process.wait()}")
        return Round(**json.loads(line))

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=60)


def serve_rounds(framework: str, search: Search):
    """The worker side of RoundWorker: build the step once, then one round per line."""
    from pybench.datasets import load_dataset

    inputs = make_inputs(load_dataset("mnist", progress=False), search.model)
    if os.environ.get(KERAS_ENV):
        run = keras_variant(inputs, search)
    elif framework == "knet":
        run = knet_variant(inputs, search)
    else:
        run = backend_variant(framework, inputs, search)
    # Julia's libuv makes the inherited stdin pipe non-blocking when it starts: reading it would
    # then see "no data yet" as the end of input and end the worker between two requests.
    os.set_blocking(sys.stdin.fileno(), True)
    for _ in sys.stdin:
        result = run()
        print(json.dumps(result.__dict__), flush=True)


# ---------------------------------------------------------------------------------------------
# Rounds, rows and verdicts.

Drive = Callable[[Callable, Callable, Callable, int], None]


def plain_drive(before: Callable, target: Callable, after: Callable, rounds: int) -> None:
    for _ in range(rounds):
        before()
        target()
        after()


def interleaved_rounds(variants: dict[str, Variant], rounds: int,
                       drive: Drive = plain_drive) -> dict[str, list[Round]]:
    """`rounds` rounds of every variant, the first one (the default) being the target `drive`
    times (pytest-benchmark's pedantic mode under pytest). Each round runs them all in an order
    rotated by one from the last, the default included, so that no variant always follows
    another: a worker's threads still spinning from the round before it, or a cache its
    predecessor emptied, then hurts each in turn."""
    names = list(variants)
    measured: dict[str, list[Round]] = {name: [] for name in names}
    turn = [0]

    def order() -> tuple[list[str], list[str]]:
        shift = turn[0] % len(names)
        rotated = names[shift:] + names[:shift]
        at = rotated.index(names[0])
        return rotated[:at], rotated[at + 1:]

    def run(batch: list[str]) -> None:
        for name in batch:
            measured[name].append(variants[name]())

    def before():
        run(order()[0])

    def target():
        run([names[0]])

    def after():
        run(order()[1])
        turn[0] += 1

    drive(before, target, after, rounds)
    return measured


def summarize(measured: dict[str, list[Round]], compiling: set[str],
              first_losses: dict[str, float] | None = None) -> list[dict]:
    """One row per variant (the default first): median step time, ratio to the default, first
    loss (and compile time for `compiling` variants); fails if a variant lost steps or computed
    another first loss than the default. The first loss is that of each variant's very first
    step: its first round's, unless `first_losses` gives it (rounds measured after a warm-up)."""
    first_losses = first_losses or {name: runs[0].first_loss for name, runs in measured.items()}
    default_ms = float(np.median([t for r in measured["default"] for t in r.step_ms]))
    default_loss = first_losses["default"]
    expected = sum(len(r.step_ms) for r in measured["default"])
    rows = []
    for name, runs in measured.items():
        step_ms = [t for r in runs for t in r.step_ms]
        if len(step_ms) != expected:
            raise AssertionError(f"{name}: {len(step_ms)} timed steps, the default {expected}")
        median = float(np.median(step_ms))
        row = {"variant": name, "median_ms": median, "ratio": median / default_ms,
               "first_loss": first_losses[name]}
        if name in compiling:  # the first round compiles; later rounds find dynamo's cache
            row["compile_s"] = runs[0].first_step_ms / 1e3
        rows.append(row)
        # The same weights and the same first batch must give the same loss in every form.
        if abs(row["first_loss"] - default_loss) > LOSS_RTOL * abs(default_loss):
            raise AssertionError(f"{name}: first loss {row['first_loss']!r} is not the "
                                 f"default's {default_loss!r} (relative tolerance {LOSS_RTOL})")
    return rows


def verdict(rows: list[dict]) -> str | None:
    """None when the default (the first row) is within SLOWEST_RATIO of the fastest row; else
    the sentence saying which variant is faster and by how much."""
    fastest = min(rows, key=lambda r: r["median_ms"])
    ratio = rows[0]["median_ms"] / fastest["median_ms"]
    if ratio <= SLOWEST_RATIO:
        return None
    return (f"the default ({rows[0]['median_ms']:.2f} ms) is {ratio:.2f}x the fastest variant, "
            f"{fastest['variant']!r} ({fastest['median_ms']:.2f} ms): beyond {SLOWEST_RATIO}x")


def run_in_process(framework: str, inputs: Inputs, search: Search,
                   drive: Drive = plain_drive) -> list[dict]:
    variants = in_process_variants(framework, inputs, search)
    measured = interleaved_rounds(variants, search.rounds, drive)
    compiling = {name for name, v in variants.items() if getattr(v, "compiles", False)}
    rows = summarize(measured, compiling)
    rows[0]["variant"] = f"pybench {framework} backend (default)"
    return rows


def run_in_processes(framework: str, search: Search, options: dict[str, dict[str, str]],
                     cache_root: Path, drive: Drive = plain_drive) -> list[dict]:
    """Rounds of `framework` in one worker process per entry of `options` (the first is the
    default), alternating; the summary rows. Each worker loads MNIST from the data folder into
    a dataset cache of its own under `cache_root`."""
    labels = ["default", *list(options)[1:]]
    workers = {label: RoundWorker(framework, search,
                                  {**env, "PYBENCH_CACHE_DIR": str(cache_root / f"cache{i}")})
               for i, (label, env) in enumerate(zip(labels, options.values()))}
    try:  # a warm-up round each (compilation, not measured), which also takes the first step
        first_losses = {name: worker.round().first_loss for name, worker in workers.items()}
        measured = interleaved_rounds({name: w.round for name, w in workers.items()},
                                      search.rounds, drive)
    finally:
        for worker in workers.values():
            worker.close()
    rows = summarize(measured, set(), first_losses)
    # The default's label says what it is; "default" only keyed the rounds.
    rows[0]["variant"] = list(options)[0]
    return rows


def keras_installed() -> bool:
    return importlib.util.find_spec("keras") is not None  # not imported: it picks its backend once


def table_skip_reason(table: str) -> str | None:
    """Why `table` cannot run here, or None."""
    framework = table.split()[0]
    if framework == "knet":
        status = availability("knet")
        return None if status.ok else f"knet is unavailable: {status.reason}"
    if importlib.util.find_spec(framework) is None:
        return f"{framework} is not installed"
    if table.endswith("against Keras") and not keras_installed():
        return ("keras is not installed (pip install -e '.[bench]'): the high-level-library "
                "yardstick is optional")
    return None


def run_table(table: str, search: Search, inputs: Inputs | None, cache_root: Path,
              drive: Drive = plain_drive) -> list[dict]:
    """The rows of one of TABLES for `search.model`."""
    if table in ("torch", "jax"):
        return run_in_process(table, inputs, search, drive)
    if table == "jax process options":
        return run_in_processes("jax", search, JAX_PROCESS_OPTIONS, cache_root, drive)
    if table == "knet":
        return run_in_processes("knet", search, KNET_PROCESS_OPTIONS, cache_root, drive)
    framework = table.split()[0]
    return run_in_processes(framework, search, KERAS_OPTIONS[framework], cache_root, drive)


def format_table(title: str, rows: list[dict]) -> str:
    """A Markdown table of one search table, fastest first, the default in bold."""
    lines = [f"#### {title}", "", "| variant | median step | / default |", "| --- | ---: | ---: |"]
    for row in sorted(rows, key=lambda r: r["median_ms"]):
        name = f"**{row['variant']}**" if row is rows[0] else row["variant"]
        extra = f" (compiling {row['compile_s']:.1f} s apart)" if "compile_s" in row else ""
        lines.append(f"| {name}{extra} | {row['median_ms']:.2f} ms | {row['ratio']:.2f} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The command line.

def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tools/step_search.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="lenet5",
                        help=f"one of {', '.join(models.MODEL_NAMES)} (default lenet5)")
    parser.add_argument("--tables", default=",".join(TABLES),
                        help=f"comma-separated, from: {', '.join(TABLES)} (default all)")
    parser.add_argument("--steps", type=int, default=None,
                        help="steps per round and variant, the first untimed (default per model: "
                             + ", ".join(f"{m} {n}" for m, n in DEFAULT_STEPS.items())
                             + f", any other {FALLBACK_STEPS})")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS,
                        help=f"alternating rounds per variant (default {DEFAULT_ROUNDS})")
    parser.add_argument("--compile", action="store_true",
                        help="add torch.compile to torch's variants (compiles for tens of seconds)")
    parser.add_argument("--json", type=Path, default=None,
                        help="also write every table's rows to this JSON file")
    parser.add_argument("--serve-rounds", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def checked_search(args: argparse.Namespace) -> tuple[Search, list[str]]:
    """The search and tables the arguments ask for, or PybenchError naming the bad value."""
    models.check_model(args.model)
    tables = [t.strip() for t in args.tables.split(",") if t.strip()]
    unknown = [t for t in tables if t not in TABLES]
    if unknown or not tables:
        raise PybenchError(f"--tables {args.tables!r}: unknown table {', '.join(unknown) or '(none)'}"
                           f"; choose from {', '.join(TABLES)}")
    steps = DEFAULT_STEPS.get(args.model, FALLBACK_STEPS) if args.steps is None else args.steps
    if steps < 2 or args.rounds < 1:
        raise PybenchError(f"--steps {steps} --rounds {args.rounds}: a round needs at least 2 "
                           "steps (the first is untimed) and a search at least 1 round")
    return Search(args.model, steps, args.rounds, args.compile), tables


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        search, tables = checked_search(args)
        if args.serve_rounds:
            serve_rounds(args.serve_rounds, search)
            return 0
        return run_search(search, tables, args.json)
    except PybenchError as e:
        print(f"step_search: {e}", file=sys.stderr)
        return 2


def run_search(search: Search, tables: list[str], json_path: Path | None) -> int:
    from pybench.datasets import load_dataset

    inputs = None
    if {"torch", "jax"} & set(tables):
        inputs = make_inputs(load_dataset("mnist", progress=False), search.model)
    results, failures = {}, []
    print(f"step-variant search: {search.model}, MNIST, batch {BATCH}, SGD {OPTIMIZER.lr} momentum "
          f"{OPTIMIZER.momentum}, {search.rounds} rounds of {search.steps} steps per variant\n",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="step-search-") as tmp:
        for table in tables:
            reason = table_skip_reason(table)
            if reason:
                print(f"#### {table}\n\nskipped: {reason}\n", flush=True)
                continue
            rows = run_table(table, search, inputs, Path(tmp))
            results[table] = rows
            print(format_table(f"{search.model}: {table}", rows) + "\n", flush=True)
            failed = verdict(rows)
            if failed:
                failures.append(f"{search.model}, {table}: {failed}")
    if json_path:
        json_path.write_text(json.dumps({"search": asdict(search), "tables": results}, indent=1))
    for failure in failures:
        print(f"step_search: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

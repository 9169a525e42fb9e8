"""Candidate forms of the LeNet-5 training step, side by side, one process per framework.

Each framework's default step (its pybench backend, driven exactly as `pybench.training` drives
it: `train_step` then `synchronize` before every clock read, the rounds continuing one epoch) runs beside every other way of writing the same step that could be faster: memory
layout, precision, where the batch is gathered, the loss formulation, buffer donation, how the step
number reaches the device, one jitted program or two; for PyTorch channels_last, thread count,
zero_grad, the optimizer's foreach/fused kernels, the gather, and torch.compile (opt-in, see
COMPILE_ENV). Everything is LeNet-5 on real MNIST, batch 32, SGD lr 0.01 momentum 0.9, from the
same canonical weights and the same sample order. Rounds alternate between the variants (in an
order rotated every round) so that a noisy, shared machine hurts all of them alike.

Printed at the end of the session (see conftest's terminal summary) and stored in each
benchmark's `extra_info`: every variant's median step time and its ratio to the default. Every
variant must compute the same first loss as the default (so a candidate cannot win by computing
something else), and the default must be within SLOWEST_RATIO of the fastest candidate measured
in the same run: the check that a faster form has been found and not adopted. This file decides
the defaults in pybench/backends/*_backend.py: re-run it on another machine (a GPU box may prefer
another layout) before changing them.

    PYBENCH_DATA_DIR=/work/shared/datasets pytest tests/benchmarks/test_bench_step_variants.py \
        --benchmark-only -s
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from pybench import models
from pybench.backends import get_backend
from pybench.backends.contract import ModelInput, OptimizerConfig
from pybench.datasets import batch_order

STEPS = 60  # per round and variant; the first step of each round (warm-up) is left out
ROUNDS = int(os.environ.get("PYBENCH_BENCH_ROUNDS", "5"))  # alternating between variants
BATCH = 32
OPTIMIZER = OptimizerConfig(name="sgd", lr=0.01, momentum=0.9)
LOSS_RTOL = 1e-4  # every variant's first loss against the default's (float32)
SLOWEST_RATIO = 1.2  # default median / fastest candidate's median: beyond it, adopt the faster
COMPILE_ENV = "PYBENCH_BENCH_COMPILE"  # =1 adds torch.compile (~40 s of compiling per round here)
# XLA and JAX options are read once, when JAX starts: each set runs the default JAX backend in a
# worker process of its own (this file run as a script), the rounds still alternating.
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
RESULTS: dict[str, list[dict]] = {}  # framework -> rows, printed by conftest's terminal summary
# Opt-in: a search, not a regression test. Every variant of every framework, alternating rounds,
# takes about eight minutes on 2 cores (PYBENCH_BENCH_COMPILE adds torch.compile's compiling), and
# its verdict (the 1.2x check below) is meant for a quiet machine.
OPT_IN_ENV = "PYBENCH_BENCH_VARIANTS"
pytestmark = pytest.mark.skipif(os.environ.get(OPT_IN_ENV) != "1",
                                reason=f"step-variant search is opt-in: set {OPT_IN_ENV}=1 "
                                       "(about eight minutes on 2 cores)")


@dataclass
class Inputs:
    """The arrays every variant of one framework starts from."""

    images: np.ndarray  # (N, 1, 28, 28) float32, normalised
    labels: np.ndarray  # int64 (N,)
    order: np.ndarray  # int64, one epoch's sample order
    params: dict[str, np.ndarray]  # canonical LeNet-5 weights
    in_shape: tuple[int, int, int]
    num_classes: int


@dataclass
class Round:
    """What one round of STEPS steps gave: step times after the first (ms), the first step's
    time (ms: compilation, when the variant compiles on first use) and the first loss."""

    step_ms: list[float]
    first_step_ms: float
    first_loss: float


Variant = Callable[[], Round]  # one round of one variant (built once: compilation not timed)


def timed_steps(step: Callable[[int], object], sync: Callable[[object], None]) -> Round:
    """STEPS calls of step(i), each closed by sync(its result) before the clock is read."""
    times, first_loss = [], None
    last = time.perf_counter()
    for i in range(STEPS):
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

def backend_variant(framework: str, inputs: Inputs, change: Callable | None = None) -> Variant:
    """Rounds of the framework's pybench backend, as one run drives it: one backend and one
    training state for all rounds (built and compiled once), each round continuing the epoch
    where the last one stopped (so JAX meets every step number for the first time, as it does
    in a one-epoch run). `change(backend)`, if given, alters the backend's per-device choice."""
    backend = get_backend(framework, "cpu")
    if change is not None:
        change(backend)
    model = ModelInput("lenet5", inputs.in_shape, inputs.num_classes, inputs.params)
    holder = [backend.init_state(model, OPTIMIZER)]
    data = backend.put_data(inputs.images, inputs.labels)
    order = backend.put_order(inputs.order, np.full(len(inputs.order), OPTIMIZER.lr))
    next_step = [0]

    def step(i):
        holder[0], loss = backend.train_step(holder[0], data, order, next_step[0], BATCH)
        next_step[0] += 1
        return loss

    def run() -> Round:
        backend.synchronize()
        return timed_steps(step, lambda loss: backend.synchronize())

    return run


# ---------------------------------------------------------------------------------------------
# JAX candidates: plain-JAX LeNet-5 steps that differ from each other in one choice each.

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


def jax_variant(inputs: Inputs, v: JaxVariant) -> Variant:
    import jax
    import jax.numpy as jnp
    import optax
    from jax import lax

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
    order = jax.device_put(inputs.order.astype(np.int32))
    cached_steps = [jax.device_put(np.int32(i)) for i in range(STEPS)]
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

        return timed_steps(step, lambda loss: loss.block_until_ready())

    labels_host = inputs.labels.astype(np.int32)
    run()  # compile, outside the measurement
    return run


def set_backend_choice(attribute: str, module: str, name: str) -> Callable:
    """A change for `backend_variant`: backend.<attribute> = <module>.<name>."""
    def change(backend):
        setattr(backend, attribute, getattr(importlib.import_module(module), name))

    return change


# The backends' own alternatives to their per-device choices (the JAX backend's `layout`, the
# torch backend's `memory_format`), so that a machine can re-check the choice with pybench's code.
BACKEND_VARIANTS: dict[str, dict[str, Callable]] = {
    "jax": {"pybench backend, NCHW inside the step (the default before issue 13)":
            set_backend_choice("layout", "pybench.backends.jax_backend", "NCHW"),
            "pybench backend, NHWC inside the step":
            set_backend_choice("layout", "pybench.backends.jax_backend", "NHWC")},
    "torch": {"pybench backend, contiguous (NCHW) memory (the default before issue 13)":
              set_backend_choice("memory_format", "torch", "contiguous_format"),
              "pybench backend, channels_last memory":
              set_backend_choice("memory_format", "torch", "channels_last")},
}

JAX_VARIANTS: dict[str, JaxVariant] = {
    "nchw highest": JaxVariant(),
    "nchw precision DEFAULT": JaxVariant(precision="DEFAULT"),
    "nhwc highest": JaxVariant(layout="NHWC"),
    "nhwc precision DEFAULT": JaxVariant(layout="NHWC", precision="DEFAULT"),
    "nhwc, images stored NHWC": JaxVariant(layout="NHWC", data_layout="NHWC"),
    "nhwc, images NHWC, weights HWIO, DEFAULT (high-level-library style)": JaxVariant(
        layout="NHWC", data_layout="NHWC", weights_layout="HWIO", precision="DEFAULT"),
    "nchw loss log_softmax+take": JaxVariant(loss=log_softmax_take_loss),
    "nchw gather in a jitted function of its own": JaxVariant(gather="jit"),
    "nchw gather on the host, batch copied per step": JaxVariant(gather="host"),
    "nchw gradient and update jitted apart": JaxVariant(split=True, gather="jit"),
    "nchw donate params and optimizer state": JaxVariant(donate=True),
    "nchw step number device_put per step": JaxVariant(step_arg="put"),
    "nchw step number as a Python int": JaxVariant(step_arg="int"),
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


def torch_variant(inputs: Inputs, v: TorchVariant) -> Variant:
    import torch
    import torch.nn.functional as F

    from pybench.backends.torch_backend import build_module

    images, labels = torch.from_numpy(inputs.images), torch.from_numpy(inputs.labels)
    if v.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    order = torch.from_numpy(inputs.order)
    kwargs = {"foreach": {"foreach": True}, "for-loop": {"foreach": False},
              "fused": {"fused": True}}[v.optimizer]

    def run() -> Round:
        module = build_module("lenet5", inputs.in_shape, inputs.num_classes)
        module.load_state_dict({k: torch.from_numpy(a) for k, a in inputs.params.items()})
        if v.channels_last:
            module = module.to(memory_format=torch.channels_last)
        net = module
        if v.compile:
            net = torch.compile(module)
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
            return timed_steps(step, lambda loss: None)
        finally:
            torch.set_num_threads(threads)

    # torch.compile compiles in the first step of the first round (later rounds' new modules
    # find dynamo's cache): that step's time is reported apart as the compile time, and the
    # step time is the median of the steps after each round's first.
    run.compiles = v.compile  # type: ignore[attr-defined]
    return run


TORCH_VARIANTS: dict[str, TorchVariant] = {
    "channels_last": TorchVariant(channels_last=True),
    "1 thread": TorchVariant(threads=1),
    "2 threads": TorchVariant(threads=2),
    "zero_grad(set_to_none=False)": TorchVariant(set_to_none=False),
    "SGD foreach=False": TorchVariant(optimizer="for-loop"),
    "SGD fused=True": TorchVariant(optimizer="fused"),
    "batch by indexing images[idx]": TorchVariant(gather="indexing"),
}
if os.environ.get(COMPILE_ENV) == "1":
    TORCH_VARIANTS["torch.compile (first step apart)"] = TorchVariant(compile=True)


# ---------------------------------------------------------------------------------------------

MAKE = {"jax": (jax_variant, JAX_VARIANTS), "torch": (torch_variant, TORCH_VARIANTS)}


def make_inputs(mnist) -> Inputs:
    params, _ = models.init_weights("lenet5", mnist.in_shape, mnist.num_classes, 0)
    return Inputs(mnist.normalized("train"), mnist.train.labels,
                  batch_order(0, 0, len(mnist.train.labels)), params, mnist.in_shape,
                  mnist.num_classes)


@pytest.fixture(scope="module")
def inputs(mnist) -> Inputs:
    return make_inputs(mnist)


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_step_variants(benchmark, inputs, framework):
    pytest.importorskip(framework, reason=f"{framework} is not installed")
    make, table = MAKE[framework]
    variants = {name: make(inputs, v) for name, v in table.items()}
    for name, change in BACKEND_VARIANTS[framework].items():
        variants[name] = backend_variant(framework, inputs, change)
    rounds = interleaved_rounds(benchmark, {"default": backend_variant(framework, inputs),
                                            **variants})
    rows = summarize(rounds, {name for name, v in variants.items() if getattr(v, "compiles", 0)})
    RESULTS[framework] = rows
    benchmark.extra_info["variants"] = rows
    fastest = min(rows, key=lambda r: r["median_ms"])
    assert rows[0]["median_ms"] <= SLOWEST_RATIO * fastest["median_ms"], (fastest, rows[0])


def interleaved_rounds(benchmark, variants: dict[str, Variant]) -> dict[str, list[Round]]:
    """ROUNDS rounds of every variant, the first one (the default) being the benchmark's
    target. Each round runs them all in an order rotated by one from the last, the default
    included, so that no variant always follows another: a worker's threads still spinning
    from the round before it, or a cache its predecessor emptied, then hurts each in turn."""
    names = list(variants)
    rounds: dict[str, list[Round]] = {name: [] for name in names}
    turn = [0]

    def order() -> tuple[list[str], list[str]]:
        shift = turn[0] % len(names)
        rotated = names[shift:] + names[:shift]
        at = rotated.index(names[0])
        return rotated[:at], rotated[at + 1:]

    def run(batch: list[str]) -> None:
        for name in batch:
            rounds[name].append(variants[name]())

    def before():
        run(order()[0])

    def target():
        run([names[0]])

    def after():
        run(order()[1])
        turn[0] += 1

    benchmark.pedantic(target, setup=before, teardown=after, rounds=ROUNDS, iterations=1)
    return rounds


def summarize(rounds: dict[str, list[Round]], compiling: set[str],
              first_losses: dict[str, float] | None = None) -> list[dict]:
    """One row per variant (the default first): median step time, ratio to the default, first
    loss (and compile time for `compiling` variants); fails if a variant lost steps or computed
    another first loss than the default. The first loss is that of each variant's very first
    step: its first round's, unless `first_losses` gives it (rounds measured after a warm-up)."""
    first_losses = first_losses or {name: runs[0].first_loss for name, runs in rounds.items()}
    default_ms = float(np.median([t for r in rounds["default"] for t in r.step_ms]))
    default_loss = first_losses["default"]
    rows = []
    for name, runs in rounds.items():
        step_ms = [t for r in runs for t in r.step_ms]
        assert len(step_ms) == ROUNDS * (STEPS - 1), name
        median = float(np.median(step_ms))
        row = {"variant": name, "median_ms": median, "ratio": median / default_ms,
               "first_loss": first_losses[name]}
        if name in compiling:  # the first round compiles; later rounds find dynamo's cache
            row["compile_s"] = runs[0].first_step_ms / 1e3
        rows.append(row)
        # The same weights and the same first batch must give the same loss in every form.
        assert abs(row["first_loss"] - default_loss) <= LOSS_RTOL * abs(default_loss), row
    return rows


# Julia's thread count is fixed when Julia starts, like XLA's options: each Knet form runs in a
# worker process of its own. KNET_FORM_ENV picks pybench's knet backend ("backend", driven as
# pybench.training drives it) or the plain-Knet loop of knet_harness.py ("plain": Params,
# Knet's Momentum, the whole loop inside Julia, no juliacall call per step); KNET_SETUP_ENV is
# Julia code run before the step is built. NNlib's CPU convolutions (which Knet's conv4 calls)
# split the batch over Julia's threads; OpenBLAS has threads of its own for the matrix products.
KNET_FORM_ENV = "PYBENCH_BENCH_KNET_FORM"
KNET_SETUP_ENV = "PYBENCH_BENCH_KNET_SETUP"


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
    "pybench backend, 1 Julia thread, BLAS as it starts (the default before issue 13)":
        julia_threads(1),
    "pybench backend, 1 Julia thread, BLAS on 1 thread": {
        **julia_threads(1), KNET_SETUP_ENV: blas_threads(1)},
    "pybench backend, 2 Julia threads, BLAS on 2 threads": {
        **julia_threads(2), KNET_SETUP_ENV: blas_threads(2)},
    "plain Knet loop inside Julia (Knet's Momentum), 1 Julia thread": {
        **julia_threads(1), KNET_FORM_ENV: "plain"},
    "plain Knet loop inside Julia (Knet's Momentum), 2 Julia threads, BLAS on 1 thread": {
        **julia_threads(2), KNET_FORM_ENV: "plain"},
}


def knet_variant(inputs: Inputs) -> Variant:
    """The Knet form KNET_FORM_ENV names, after the Julia code in KNET_SETUP_ENV."""
    from pybench.backends.knet_backend import julia_main

    jl = julia_main()
    if os.environ.get(KNET_SETUP_ENV):
        jl.seval(os.environ[KNET_SETUP_ENV])
    if os.environ.get(KNET_FORM_ENV, "backend") == "backend":
        return backend_variant("knet", inputs)
    from knet_harness import MINIMAL_KNET_LOOP  # beside this file, on sys.path as a script

    from pybench.backends import knet_layout
    from pybench.backends.knet_backend import julia_dict

    jl.seval(MINIMAL_KNET_LOOP)
    loop = jl.seval("minimal_knet_loop")
    args = (knet_layout.images_to_knet(inputs.images), knet_layout.labels_to_knet(inputs.labels),
            knet_layout.order_to_knet(inputs.order),
            julia_dict(knet_layout.weights_to_knet(inputs.params)))

    def run() -> Round:  # every round from the canonical weights, steps timed inside Julia
        times, losses = loop(*args, STEPS, BATCH, OPTIMIZER.lr, OPTIMIZER.momentum)
        times_ms = [t * 1e3 for t in list(times)]
        return Round(times_ms[1:], times_ms[0], float(list(losses)[0]))

    return run


# A widely used high-level library on the same backend, as its users run it: Keras 3 (on JAX or
# PyTorch, KERAS_BACKEND), LeNet-5 in its own layers (NHWC, HWIO kernels), its SGD and its own fit
# loop, from pybench's canonical weights (converted, so the first loss is the same) on the same
# batches. The yardstick issue 13 measured pybench against; optional (`pip install keras`).
KERAS_ENV = "PYBENCH_BENCH_KERAS"


def keras_lenet5(inputs: Inputs):
    """Keras LeNet-5 holding the canonical weights (conv kernels OIHW -> HWIO; fc1's inputs
    reordered from torch's (C, H, W) flatten to Keras' (H, W, C); dense kernels transposed)."""
    import keras

    p = inputs.params
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
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
    model.compile(optimizer=keras.optimizers.SGD(OPTIMIZER.lr, momentum=OPTIMIZER.momentum),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def keras_variant(inputs: Inputs) -> Variant:
    """Rounds of `model.fit` over the next STEPS batches of the epoch (unshuffled: the order is
    pybench's), each step timed from one `on_train_batch_end` to the next, as `fit` runs them."""
    import keras

    model = keras_lenet5(inputs)
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
        idx = inputs.order[start[0] * BATCH:(start[0] + STEPS) * BATCH]
        start[0] += STEPS
        clock = StepClock()
        model.fit(images[idx], inputs.labels[idx], batch_size=BATCH, epochs=1, shuffle=False,
                  verbose=0, callbacks=[clock])
        return Round(clock.times[1:], clock.times[0], clock.first_loss)

    return run


KERAS_OPTIONS: dict[str, dict[str, dict[str, str]]] = {
    framework: {f"pybench {framework} backend (default)": {},
                f"Keras 3 on {framework}, its own fit loop": {
                    "KERAS_BACKEND": framework, KERAS_ENV: "1"}}
    for framework in ("jax", "torch")}


class RoundWorker:
    """This file run as a script in a process of its own with `env` added to its environment:
    it serves rounds of one framework's step (the default JAX backend; for knet, the form the
    environment names), one per request, each a JSON line."""

    def __init__(self, framework: str, env: dict[str, str]):
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve-rounds", framework], env={**os.environ, **env},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

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


def serve_rounds(framework: str):
    """The worker side of RoundWorker: build the step once, then one round per line."""
    from pybench.datasets import load_dataset

    inputs = make_inputs(load_dataset("mnist", progress=False))
    if os.environ.get(KERAS_ENV):
        run = keras_variant(inputs)
    elif framework == "knet":
        run = knet_variant(inputs)
    else:
        run = backend_variant(framework, inputs)
    # Julia's libuv makes the inherited stdin pipe non-blocking when it starts: reading it would
    # then see "no data yet" as the end of input and end the worker between two requests.
    os.set_blocking(sys.stdin.fileno(), True)
    for _ in sys.stdin:
        result = run()
        print(json.dumps(result.__dict__), flush=True)


def process_option_rounds(benchmark, framework: str, options: dict[str, dict[str, str]],
                          tmp_path) -> list[dict]:
    """Rounds of `framework` in one worker process per entry of `options` (the first is the
    default, whose rounds are the benchmark's), alternating; the summary rows."""
    # Each worker loads MNIST from the data folder into a dataset cache of its own. The first
    # option is summarized as "default", as every variant table names its default.
    labels = ["default", *list(options)[1:]]
    workers = {label: RoundWorker(framework, {**env, "PYBENCH_CACHE_DIR": str(tmp_path / f"cache{i}")})
               for i, (label, env) in enumerate(zip(labels, options.values()))}
    try:  # a warm-up round each (compilation, not measured), which also takes the first step
        first_losses = {name: worker.round().first_loss for name, worker in workers.items()}
        rounds = interleaved_rounds(benchmark, {name: w.round for name, w in workers.items()})
    finally:
        for worker in workers.values():
            worker.close()
    rows = summarize(rounds, set(), first_losses)
    benchmark.extra_info["variants"] = rows
    return rows


def test_jax_process_options(benchmark, data_dir, tmp_path):
    pytest.importorskip("jax", reason="jax is not installed")
    RESULTS["jax process options"] = process_option_rounds(benchmark, "jax", JAX_PROCESS_OPTIONS,
                                                           tmp_path)


def test_knet_step_variants(benchmark, data_dir, tmp_path):
    from needs import missing
    from pybench.backends import availability

    status = availability("knet")
    if not status.ok:
        missing(f"knet is unavailable: {status.reason}")
    rows = process_option_rounds(benchmark, "knet", KNET_PROCESS_OPTIONS, tmp_path)
    RESULTS["knet"] = rows
    fastest = min(rows, key=lambda r: r["median_ms"])
    assert rows[0]["median_ms"] <= SLOWEST_RATIO * fastest["median_ms"], (fastest, rows[0])


@pytest.mark.parametrize("framework", ["jax", "torch"])
def test_against_keras(benchmark, data_dir, tmp_path, framework):
    """pybench's default step beside Keras 3's fit loop on the same backend, one process each."""
    pytest.importorskip(framework, reason=f"{framework} is not installed")
    if importlib.util.find_spec("keras") is None:  # not imported here: Keras picks its backend once
        pytest.skip("keras is not installed (pip install -e '.[bench]'): the high-level-library "
                    "yardstick is optional")
    rows = process_option_rounds(benchmark, framework, KERAS_OPTIONS[framework], tmp_path)
    RESULTS[f"{framework} against Keras"] = rows


if __name__ == "__main__" and sys.argv[1:2] == ["--serve-rounds"]:
    serve_rounds(sys.argv[2])

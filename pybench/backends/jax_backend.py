"""The JAX backend: each model a pure function over explicit weight dictionaries, trained with optax.

The model is `apply(params, buffers, x, train) -> (logits, new_buffers)`, built by `make_apply`
from the layer description in `pybench.models` and written one layer per line with PyTorch's layer
names. `params` and `buffers` are dicts keyed by the canonical names, in the canonical (PyTorch)
layouts, so weights cross the contract without conversion. One jitted training step (donating its
buffers on accelerators) selects its batch on the device from data and an epoch order uploaded
once, so every step of every epoch runs the same compiled program and copies nothing from the host.

Numerics follow PyTorch exactly: float32 (float64 only for parity trajectories, with
JAX_ENABLE_X64 set by the worker), convolutions and matmuls at `lax.Precision.HIGHEST` (no TF32
on GPUs; the torch backend turns TF32 off too), PyTorch's BatchNorm (see `batch_norm`), and
optax transforms chosen to be torch.optim's SGD, Adam and AdamW (see `make_direction`), applied
at each step's scheduled learning rate.

Nothing global is set here, and JAX itself is imported on first use only, so the registry, or a
process that must not load JAX, can import this module and ask `JaxBackend.availability()`. The
worker launcher sets XLA_PYTHON_CLIENT_PREALLOCATE=false before JAX starts, so on a GPU XLA
allocates what it needs instead of 75% of the memory up front, and peak memory means something.

Usage (normally through `pybench.backends.get_backend("jax", device)` and `pybench.training`):
    backend = JaxBackend("cpu")
    state = backend.init_state(ModelInput("lenet5", (1, 28, 28), 10, params), OptimizerConfig())
    data, order = backend.put_data(images, labels), backend.put_order(permutation, lrs)
    state, loss = backend.train_step(state, data, order, step=0, batch_size=128)
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from pybench import models, tasks
from pybench.backends.contract import Arrays, Availability, Backend, ModelInput, OptimizerConfig
from pybench.errors import PybenchError
from pybench.machine import cpu_model, machine_has_cuda_gpu
from pybench.models import (
    BN_EPS,
    BN_MOMENTUM,
    BOTTLENECK,
    DENSENETS,
    RESNETS,
    BatchNorm,
    dropout,
    layers,
    resnet_blocks,
)


class _LazyModule:
    """A module imported on first attribute access: importing this file must not import JAX."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str):
        return getattr(importlib.import_module(self._name), attr)


jax = _LazyModule("jax")
jnp = _LazyModule("jax.numpy")
lax = _LazyModule("jax.lax")
optax = _LazyModule("optax")


# ---------------------------------------------------------------------------------------------
# Layers: canonical weights used as they are, activations in the backend's layout.
#
# NCHW (PyTorch's) or NHWC activations: the layout changes where the channel axis is, never a
# number beyond float rounding (the forward parity and float64 trajectories hold in both). XLA's
# CPU convolutions work in NHWC, so NCHW activations cost transposes around every convolution
# (measured with tools/step_search; docs/performance.md). GPUs keep NCHW, the layout these
# runs were verified with, until a GPU measurement says otherwise.

NCHW, NHWC = "NCHW", "NHWC"
LAYOUTS = {"cpu": NHWC, "cuda": NCHW}


def per_channel(v, layout: str):
    """A (C,) vector shaped to broadcast over activations of `layout`."""
    return v[None, :, None, None] if layout == NCHW else v[None, None, None, :]


def spatial_axes(layout: str) -> tuple[int, int]:
    return (2, 3) if layout == NCHW else (1, 2)


# On the CPU, XLA's convolution of maps this small (output height and width at most this) is
# far slower than the same product written as patches times a matrix, and slows a whole ResNet
# whose last stage runs on such maps; above it XLA's own convolution is the faster.
# docs/performance.md gives the measurements and the command that made them.
MATMUL_CONV_MAX_OUTPUT = 2


def conv2d(layer, params, x, layout: str):
    # OIHW (PyTorch) weights stated as dimension numbers: the canonical weights are used as-is,
    # and XLA picks the physical layouts it prefers for the device. HIGHEST precision keeps
    # float32 on GPUs (no TF32) like torch.
    weight = params[f"{layer.name}.weight"]
    window = dict(window_strides=(layer.stride, layer.stride),
                  padding=[(layer.padding, layer.padding)] * 2,
                  dimension_numbers=(layout, "OIHW", layout), precision=lax.Precision.HIGHEST)
    height, width = (x.shape[axis] for axis in spatial_axes(layout))
    kernel = weight.shape[-1]
    out = [(size + 2 * layer.padding - kernel) // layer.stride + 1 for size in (height, width)]
    if layout == NHWC and kernel > 1 and max(out) <= MATMUL_CONV_MAX_OUTPUT:
        # Patches (N, H', W', C_in * kh * kw), in the order of OIHW's flattened (I, H, W) axes.
        patches = lax.conv_general_dilated_patches(x, (kernel, kernel), **window)
        y = jnp.einsum("nhwk,ok->nhwo", patches, weight.reshape(weight.shape[0], -1),
                       precision=lax.Precision.HIGHEST)
    else:
        y = lax.conv_general_dilated(x, weight, **window)
    if layer.bias:
        y = y + per_channel(params[f"{layer.name}.bias"], layout)
    return y


def dense(layer, params, x):
    # PyTorch's Linear: x @ W.T + b with W (out, in); HIGHEST for the same reason as conv2d.
    w, b = params[f"{layer.name}.weight"], params[f"{layer.name}.bias"]
    return jnp.matmul(x, w.T, precision=lax.Precision.HIGHEST) + b


@dataclass(frozen=True)
class FrozenNorm(BatchNorm):
    """A BatchNorm layer `--trainable` freezes: eval mode in training steps too (running
    statistics used and kept), as torchvision users freeze layers."""


def batch_norm(layer, params, buffers, new_buffers, x, train, layout: str):
    """PyTorch's BatchNorm2d. Training normalises with the batch mean and BIASED variance over
    (N, H, W) and records the moved running statistics in `new_buffers` (the running variance
    moves towards the UNBIASED batch variance); eval normalises with the running statistics."""
    mean_name, var_name = f"{layer.name}.running_mean", f"{layer.name}.running_var"
    if train and not isinstance(layer, FrozenNorm):
        axes = (0, *spatial_axes(layout))
        mean = x.mean(axis=axes)
        var = x.var(axis=axes)
        n = x.size // mean.shape[0]
        new_buffers[mean_name] = (1 - BN_MOMENTUM) * buffers[mean_name] + BN_MOMENTUM * mean
        new_buffers[var_name] = ((1 - BN_MOMENTUM) * buffers[var_name]
                                 + BN_MOMENTUM * var * (n / (n - 1)))
    else:
        mean, var = buffers[mean_name], buffers[var_name]
    # Folded into one per-channel scale and shift, y = x * scale + shift, computed on (C,)
    # vectors: the same function as ((x - mean) * rsqrt(var + eps)) * weight + bias up to
    # float rounding, but two full-size operations instead of four, forward and backward: XLA
    # on the CPU does not fuse the four-operation form (docs/performance.md has what it costs).
    scale = params[f"{layer.name}.weight"] * lax.rsqrt(var + BN_EPS)
    shift = params[f"{layer.name}.bias"] - mean * scale
    return x * per_channel(scale, layout) + per_channel(shift, layout)


CUDA_PLUGINS = ("jax-cuda13-plugin", "jax-cuda12-plugin")  # what `jax[cudaNN]` installs


def float_dtype(images: np.ndarray) -> np.dtype:
    """The images' dtype when it is float32 or float64 (what the contract computes in), else
    float32."""
    dtype = np.asarray(images).dtype
    return dtype if dtype in (np.float32, np.float64) else np.dtype(np.float32)


def installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def relu(x):
    # jax.nn.relu, not jnp.maximum(x, 0): maximum splits the gradient 0.5/0.5 at a tie, relu's
    # gradient at exactly 0 is 0, as in PyTorch.
    return jax.nn.relu(x)


def stem_max_pool(x, pool: tuple[int, int, int], layout: str):
    # PyTorch's MaxPool2d(kernel, stride, padding): the padding is -inf, the size floored.
    return window_pool(x, *pool, layout, -jnp.inf, lax.max)


def flatten(x, layout: str):
    # (C, H, W) order, the order torch's flatten(1) feeds fc1 in: NHWC is transposed first.
    if layout == NHWC:
        x = jnp.transpose(x, (0, 3, 1, 2))
    return x.reshape(x.shape[0], -1)


def global_avg_pool(x, layout: str):
    return x.mean(axis=spatial_axes(layout))


def lookup(images, table, layout: str):
    """A batch as the model takes it: uint8 `images` through the flattened (C * 256) pixel
    `table` (a gather: the same values in every framework); float images (table None) as given."""
    if table is None:
        return images
    channels = table.shape[0] // 256
    offsets = jnp.arange(channels, dtype=jnp.int32) * 256
    offsets = offsets.reshape((1, channels, 1, 1) if layout == NCHW else (1, 1, 1, channels))
    return jnp.take(table, images.astype(jnp.int32) + offsets, mode="clip")


def to_layout(images: np.ndarray, layout: str) -> np.ndarray:
    """Canonical (N, C, H, W) images in `layout`, on the host (once, outside any timed step)."""
    if layout == NHWC:
        return np.ascontiguousarray(np.transpose(images, (0, 2, 3, 1)))
    return np.ascontiguousarray(images)


# ---------------------------------------------------------------------------------------------
# Models: apply(params, buffers, x, train) -> (logits, new_buffers); with features=True the
# penultimate features (what the classifier sees) instead of the logits.

def residual_block(block, by_name, layout, params, buffers, new_buffers, x, train):
    """A basic block (conv3x3-bn-relu-conv3x3-bn) or a bottleneck (conv1x1-bn-relu-conv3x3-bn-
    relu-conv1x1-bn), plus the shortcut, then relu: torchvision's."""
    def layer(suffix):
        return by_name[f"{block.prefix}.{suffix}"]

    out = conv2d(layer("conv1"), params, x, layout)
    out = batch_norm(layer("bn1"), params, buffers, new_buffers, out, train, layout)
    out = relu(out)
    out = conv2d(layer("conv2"), params, out, layout)
    out = batch_norm(layer("bn2"), params, buffers, new_buffers, out, train, layout)
    if block.kind == BOTTLENECK:
        out = relu(out)
        out = conv2d(layer("conv3"), params, out, layout)
        out = batch_norm(layer("bn3"), params, buffers, new_buffers, out, train, layout)
    if block.has_downsample:
        x = conv2d(layer("downsample.0"), params, x, layout)
        x = batch_norm(layer("downsample.1"), params, buffers, new_buffers, x, train, layout)
    return relu(out + x)


def resnet_features(spec, by_name, layout, params, buffers, new_buffers, x, train):
    """The penultimate features (what the classifier sees); BatchNorm updates go to new_buffers."""
    x = conv2d(by_name["conv1"], params, x, layout)
    x = batch_norm(by_name["bn1"], params, buffers, new_buffers, x, train, layout)
    x = relu(x)
    if spec.stem.pool:
        x = stem_max_pool(x, spec.stem.pool, layout)
    for block in resnet_blocks(spec):
        x = residual_block(block, by_name, layout, params, buffers, new_buffers, x, train)
    return global_avg_pool(x, layout)


def resnet(spec, by_name, layout, params, buffers, x, train, features=False, step=0):
    new_buffers = dict(buffers)  # eval mode returns the running statistics unchanged
    x = resnet_features(spec, by_name, layout, params, buffers, new_buffers, x, train)
    if features:
        return x, new_buffers
    x = dense(by_name["fc"], params, x)
    return x, new_buffers


def channel_axis(layout: str) -> int:
    return 1 if layout == NCHW else 3


def avg_pool(x, kernel: int, stride: int, padding: int, layout: str):
    """PyTorch's AvgPool2d: the padding counts as zeros in the mean (count_include_pad)."""
    return window_pool(x, kernel, stride, padding, layout, 0.0, lax.add) / (kernel * kernel)


def window_pool(x, kernel, stride, padding, layout, init, op):
    window = (1, 1, kernel, kernel) if layout == NCHW else (1, kernel, kernel, 1)
    strides = (1, 1, stride, stride) if layout == NCHW else (1, stride, stride, 1)
    pads = ([(0, 0), (0, 0), (padding, padding), (padding, padding)] if layout == NCHW
            else [(0, 0), (padding, padding), (padding, padding), (0, 0)])
    # A Python scalar init lets JAX see the monoid (max or add) and use its differentiable
    # reduce_window_max / reduce_window_sum.
    return lax.reduce_window(x, init, op, window, strides, pads)


def dense_layer(prefix, by_name, layout, params, buffers, new_buffers, inputs, train):
    """torchvision's _DenseLayer on the concatenation of the block's inputs so far."""
    x = jnp.concatenate(inputs, axis=channel_axis(layout))
    x = relu(batch_norm(by_name[f"{prefix}.norm1"], params, buffers, new_buffers, x, train, layout))
    x = conv2d(by_name[f"{prefix}.conv1"], params, x, layout)
    x = relu(batch_norm(by_name[f"{prefix}.norm2"], params, buffers, new_buffers, x, train, layout))
    return conv2d(by_name[f"{prefix}.conv2"], params, x, layout)


def densenet(spec, by_name, layout, params, buffers, x, train, features=False, step=0):
    """torchvision's DenseNet: stem, dense blocks with transitions, norm5, relu, pool, classifier."""
    new_buffers = dict(buffers)

    def norm(name, x):
        return batch_norm(by_name[name], params, buffers, new_buffers, x, train, layout)

    x = conv2d(by_name["features.conv0"], params, x, layout)
    x = stem_max_pool(relu(norm("features.norm0", x)), spec.stem_pool, layout)
    for i, count in enumerate(spec.block_layers, start=1):
        inputs = [x]
        for j in range(1, count + 1):
            inputs.append(dense_layer(f"features.denseblock{i}.denselayer{j}", by_name, layout,
                                      params, buffers, new_buffers, inputs, train))
        x = jnp.concatenate(inputs, axis=channel_axis(layout))
        if i < len(spec.block_layers):
            x = relu(norm(f"features.transition{i}.norm", x))
            x = conv2d(by_name[f"features.transition{i}.conv"], params, x, layout)
            x = avg_pool(x, 2, 2, 0, layout)
    x = global_avg_pool(relu(norm("features.norm5", x)), layout)
    if features:
        return x, new_buffers
    return dense(by_name["classifier"], params, x), new_buffers


def dropout_keep(op, x, step, layout: str):
    """`pybench.models.dropout`'s mask for x: each element's canonical (N, C, H, W) or (N, F)
    flat position, hashed in uint32 with the step."""
    u32 = jnp.uint32
    if x.ndim == 2:
        n, f = (lax.broadcasted_iota(u32, x.shape, axis) for axis in (0, 1))
        index = n * u32(x.shape[1]) + f
    else:
        axes = (0, 1, 2, 3) if layout == NCHW else (0, 3, 1, 2)  # N, C, H, W positions
        n, c, h, w = (lax.broadcasted_iota(u32, x.shape, axis) for axis in axes)
        channels, height, width = (x.shape[axis] for axis in axes[1:])
        index = ((n * u32(channels) + c) * u32(height) + h) * u32(width) + w
    return dropout.keep_mask(index, jnp.asarray(step).astype(u32), op, wrap=lambda v: v, const=u32)


def cnn(ops, layout, params, buffers, x, train, features=False, step=0):
    """A plain CNN's layers in order (`pybench.models.cnn`: LeNet-5, a CNN file); `step` picks
    the dropout masks."""
    new_buffers = dict(buffers)
    for op in ops[:-1] if features else ops:
        if isinstance(op, models.Conv):
            x = conv2d(op, params, x, layout)
        elif isinstance(op, BatchNorm):
            x = batch_norm(op, params, buffers, new_buffers, x, train, layout)
        elif isinstance(op, models.Dense):
            x = dense(op, params, x)
        elif isinstance(op, models.Relu):
            x = relu(x)
        elif isinstance(op, models.Pool) and op.mode == "max":
            x = window_pool(x, op.kernel, op.stride, op.padding, layout, -jnp.inf, lax.max)
        elif isinstance(op, models.Pool):
            x = avg_pool(x, op.kernel, op.stride, op.padding, layout)
        elif isinstance(op, models.GlobalAvgPool):
            x = global_avg_pool(x, layout)
        elif isinstance(op, models.Flatten):
            x = flatten(x, layout)
        elif isinstance(op, models.Dropout) and train:
            scale = jnp.asarray(dropout.scale(op.p), x.dtype)
            x = x * jnp.where(dropout_keep(op, x, step, layout), scale, jnp.zeros((), x.dtype))
    return x, new_buffers


# Each family's forward, by pybench.models' family names: the one place a model's kind decides.
# Each takes (model, in_shape, num_classes, by_name, frozen, layout) and returns apply.
FORWARDS = {
    models.CNN: lambda model, shape, classes, by_name, frozen, layout: functools.partial(
        cnn, [frozen(op) for op in models.ops(model, shape, classes)], layout),
    models.RESNET: lambda model, shape, classes, by_name, frozen, layout: functools.partial(
        resnet, RESNETS[model], by_name, layout),
    models.DENSENET: lambda model, shape, classes, by_name, frozen, layout: functools.partial(
        densenet, DENSENETS[model], by_name, layout),
}


def make_apply(model: str, in_shape, num_classes: int, layout: str = NCHW,
               frozen_norms=()) -> Callable:
    """The pure function apply(params, buffers, x, train, features=False, step=0) -> (logits,
    new_buffers) of `model`, taking and computing activations in `layout`; `frozen_norms`
    normalise as in eval mode; `step` (the run's step) picks a CNN's dropout masks."""
    def frozen(layer):
        if isinstance(layer, BatchNorm) and layer.name in frozen_norms:
            return FrozenNorm(layer.name, layer.channels)
        return layer

    by_name = {layer.name: frozen(layer) for layer in layers(model, in_shape, num_classes)}
    return FORWARDS[models.family(model)](model, in_shape, num_classes, by_name, frozen, layout)


# ---------------------------------------------------------------------------------------------
# Loss, optimizer, and the compiled programs.

def cross_entropy(logits, labels, label_smoothing: float = 0.0):
    """Mean cross-entropy; with smoothing s, PyTorch's (1 - s) * nll + s * mean(-log p), which is
    the cross-entropy against (1 - s) * one_hot + s / classes (optax.smooth_labels)."""
    if not label_smoothing:
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype),
                                  label_smoothing)
    return optax.softmax_cross_entropy(logits, targets).mean()


def bce_with_logits(logits, targets, pos_weight):
    """PyTorch's BCEWithLogitsLoss, mean over images and findings (pybench.tasks): written out
    rather than optax.sigmoid_binary_cross_entropy, which has no positive weight."""
    soft = jnp.log1p(jnp.exp(-jnp.abs(logits))) + jnp.maximum(-logits, 0)
    if pos_weight is None:
        return ((1 - targets) * logits + soft).mean()
    weight = jnp.asarray(pos_weight, logits.dtype)
    return ((1 - targets) * logits + (1 + (weight - 1) * targets) * soft).mean()


def batch_loss(logits, labels, loss_settings):
    """The step's loss: the binary cross-entropy of multi-label targets ((B, findings) floats),
    else the cross-entropy of class indices. `loss_settings` is (label_smoothing, pos_weight),
    static (hashable) for jit."""
    label_smoothing, pos_weight = loss_settings
    if labels.ndim == 2:
        return bce_with_logits(logits, labels, pos_weight)
    return cross_entropy(logits, labels, label_smoothing)


def make_direction(config: OptimizerConfig):
    """torch.optim's SGD, Adam or AdamW up to the learning rate, as an optax transformation whose
    output d gives the update w -= lr * d, lr being the step's scheduled rate (`apply_step`).

    optax.trace is v = g + momentum * v from v = 0, so its first v is g, as torch's buffer starts
    at g (no dampening); with nesterov it returns g + momentum * v, torch's nesterov; with
    momentum 0 torch keeps no buffer, so neither do we. scale_by_adam with eps_root=0 computes
    m_hat / (sqrt(v_hat) + eps), eps outside the square root, which is torch's
    lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps) rearranged. torch's weight_decay for SGD and Adam adds
    weight_decay * w to the gradient before anything else: add_decayed_weights first in the
    chain. AdamW's decoupled decay w *= 1 - lr * wd before the Adam step is the same as
    d = adam + wd * w: add_decayed_weights after scale_by_adam (optax.adamw's own order).
    """
    wd = config.weight_decay
    if config.name == "sgd":
        core = (optax.trace(decay=config.momentum, nesterov=config.nesterov)
                if config.momentum else optax.identity())
    elif config.name in ("adam", "adamw"):
        b1, b2 = config.betas
        core = optax.scale_by_adam(b1=b1, b2=b2, eps=config.eps, eps_root=0.0)
    else:
        raise PybenchError(f"unknown optimizer {config.name!r}: choose sgd, adam or adamw")
    if not wd:
        return core
    if config.name == "adamw":
        return optax.chain(core, optax.add_decayed_weights(wd))
    return optax.chain(optax.add_decayed_weights(wd), core)


def apply_step(params, direction, lr):
    """w -= lr * d, at the step's learning rate (a device scalar of the weights' dtype)."""
    return jax.tree_util.tree_map(lambda w, d: w - lr * d, params, direction)


def split_frozen(params: dict, frozen) -> tuple[dict, dict]:
    """(trained, frozen) parameters: `frozen` (names) gets no gradient and no optimizer state."""
    return ({k: v for k, v in params.items() if k not in frozen},
            {k: v for k, v in params.items() if k in frozen})


def batch_step_fn(apply, optimizer, loss_settings, frozen, params, buffers, opt_state, x, y, lr,
                  run_step=0):
    """One optimizer step on the batch (x, y) at learning rate `lr`; the `frozen` parameters
    are constants of the step (no gradient is computed for them); `run_step` counts the run's
    steps (dropout's masks)."""
    trained, fixed = split_frozen(params, frozen)

    def loss_fn(p):
        logits, new_buffers = apply({**fixed, **p}, buffers, x, train=True, step=run_step)
        return batch_loss(logits, y, loss_settings), (new_buffers, right_predictions(logits, y))

    (loss, (new_buffers, right)), grads = jax.value_and_grad(loss_fn, has_aux=True)(trained)
    direction, opt_state = optimizer.update(grads, opt_state, trained)
    return {**fixed, **apply_step(trained, direction, lr)}, new_buffers, opt_state, loss, right


def right_predictions(logits, y):
    """The step's own right predictions (Backend.train_hits): argmax against the class, or for
    multi-label targets each finding's decision (logit >= 0) against its target."""
    if y.ndim == 2:
        return jnp.sum((logits >= 0) == (y > 0.5))
    return jnp.sum(jnp.argmax(logits, axis=1) == y)


def train_step_fn(apply, optimizer, loss_settings, frozen, layout, params, buffers, opt_state,
                  images, table, labels, order, lrs, step, first_step, batch_size):
    """One optimizer step on the batch at position `step` of `order`, at learning rate
    lrs[step], all on the device (the batch normalised through `table` there too)."""
    # dynamic_slice takes a traced start, so one compiled program serves every step.
    batch = lax.dynamic_slice(order, (step * batch_size,), (batch_size,))
    # The order is a permutation of valid positions; "clip" skips the masking of out-of-range
    # indices that jnp.take's default ("fill") adds to the gather.
    x = lookup(jnp.take(images, batch, axis=0, mode="clip"), table, layout)
    y = jnp.take(labels, batch, axis=0, mode="clip")
    lr = lax.dynamic_index_in_dim(lrs, step, keepdims=False).astype(x.dtype)
    return batch_step_fn(apply, optimizer, loss_settings, frozen, params, buffers, opt_state,
                         x, y, lr, first_step + step)


def eval_batch_fn(apply, layout, params, buffers, images, table, start, size, features=False):
    """Eval-mode logits (or penultimate features) of images[start:start + size], sliced (and
    normalised) on the device."""
    x = lookup(lax.dynamic_slice_in_dim(images, start, size, axis=0), table, layout)
    return apply(params, buffers, x, train=False, features=features)[0]


def host_batch_fn(apply, optimizer, loss_settings, frozen, layout, params, buffers, opt_state,
                  x, table, y, lr, run_step):
    """`batch_step_fn` on a batch copied from the host, normalised on the device."""
    return batch_step_fn(apply, optimizer, loss_settings, frozen, params, buffers, opt_state,
                         lookup(x, table, layout), y, lr, run_step)


@dataclass(frozen=True)
class Program:
    """The compiled functions of one model and optimizer."""

    apply: Callable
    optimizer: Any
    # (params, buffers, opt_state, images, table, labels, order, lrs, step, first_step, batch_size)
    train_step: Callable
    # (params, buffers, opt_state, x, table, y, lr, run_step): for data kept on the host
    train_batch: Callable
    forward: Callable  # jitted apply: (params, buffers, x, train) -> (logits, new_buffers)
    eval_batch: Callable  # (params, buffers, images, table, start, size, features) -> logits
    optimizer_config: OptimizerConfig
    # Canonical name order (pytrees come back from jit with sorted keys).
    param_names: tuple[str, ...]
    buffer_names: tuple[str, ...]


def make_program(model: ModelInput, config: OptimizerConfig, donate: bool,
                 layout: str = NCHW) -> Program:
    apply = make_apply(model.model, model.in_shape, model.num_classes, layout, model.frozen_norms)
    optimizer = make_direction(config)
    loss_settings = (config.label_smoothing, config.pos_weight)
    train_step = jax.jit(
        functools.partial(train_step_fn, apply, optimizer, loss_settings, model.frozen, layout),
        # On a GPU the step's outputs replace params, buffers and optimizer state in place
        # instead of holding two copies of the model and its optimizer state. On the CPU
        # donation made the step slower (docs/performance.md), so it is used on accelerators
        # only.
        donate_argnums=(0, 1, 2) if donate else (),
        static_argnames="batch_size",
    )
    train_batch = jax.jit(functools.partial(host_batch_fn, apply, optimizer, loss_settings,
                                            model.frozen, layout),
                          donate_argnums=(0, 1, 2) if donate else ())
    forward = jax.jit(apply, static_argnames="train")
    eval_batch = jax.jit(functools.partial(eval_batch_fn, apply, layout),
                         static_argnames=("size", "features"))
    return Program(apply, optimizer, train_step, train_batch, forward, eval_batch, config,
                   tuple(model.params), tuple(model.buffers))


class TrainState(NamedTuple):
    params: dict
    buffers: dict
    opt_state: Any
    program: Program


class DeviceData(NamedTuple):
    images: Any  # uint8 (normalised per batch through `table`) or normalised images, on the device
    labels: Any  # int32 (N,), or multi-label float targets (N, findings), on the device
    table: Any  # the flattened (C * 256) pixel table in the state's dtype, on the device; or None

    on_device = True  # see Backend.data_on_device

    @property
    def input_dtype(self):
        """The dtype the model sees: the table's, or the normalised images'."""
        return self.images.dtype if self.table is None else self.table.dtype


class HostData(NamedTuple):
    """A training set too large for the device: batches are gathered and copied per step."""

    images: np.ndarray
    labels: np.ndarray
    table: Any

    on_device = False
    input_dtype = DeviceData.input_dtype


class EpochOrder(NamedTuple):
    device: Any  # int32 on the device, for data on the device
    host: np.ndarray  # for data kept on the host
    lrs: Any  # the learning rate of each step, on the device, in the weights' dtype
    host_lrs: np.ndarray  # the same on the host, for data kept on the host
    first_step: int = 0  # the run's step count at the epoch's first step (dropout's masks)


def to_numpy(tree: dict, names: tuple[str, ...]) -> Arrays:
    # np.array copies: the result must not alias device buffers a later step donates.
    return {name: np.array(tree[name]) for name in names}


# ---------------------------------------------------------------------------------------------

class JaxBackend(Backend):
    name = "jax"

    @classmethod
    def availability(cls) -> Availability:
        try:
            import jax as jax_module
            import optax as optax_module  # noqa: F401  (training needs it as much as JAX)

            # No jax.devices() here: it starts XLA's backend, which on a GPU would claim 75% of
            # its memory in the (parent) process asking, before any worker ran.
            return Availability(True, version=jax_module.__version__)
        except Exception as exc:
            return Availability(False, reason=f"JAX does not work here ({type(exc).__name__}: "
                                              f"{exc}); install jax and optax")

    @classmethod
    def cuda_usable(cls) -> bool:
        try:
            return any(d.platform in ("gpu", "cuda") for d in jax.devices())
        except Exception:
            return False

    @classmethod
    def gpu_support(cls) -> str:
        # jax.devices() would start XLA's GPU client (and take most of the GPU's memory) in the
        # parent process: the installed CUDA plugin is read from the package metadata instead.
        plugins = [name for name in CUDA_PLUGINS if installed_version(name)]
        if not plugins:
            return "CPU-only build: pip install -U 'jax[cuda12]' to use a GPU"
        build = f"CUDA build ({plugins[0]} {installed_version(plugins[0])})"
        if not machine_has_cuda_gpu():
            return f"{build}, no NVIDIA GPU here"
        return f"{build}; an NVIDIA GPU is present (the worker checks that JAX can use it)"

    def __init__(self, device: str):
        super().__init__(device)
        if device not in ("cpu", "cuda"):
            raise PybenchError(f"unknown device {device!r} for jax: choose cpu or cuda")
        self._device = jax.devices(device)[0]
        # Activation layout inside every compiled program (see LAYOUTS); the data is uploaded in
        # it. Set before init_state and put_data to try the other one (the variant benchmark).
        self.layout = LAYOUTS[device]
        self.dtype = np.dtype(np.float32)  # until init_state sees the canonical weights' dtype
        # The latest output of each kind of queued work ("data", "order", "step"), for
        # `synchronize`.
        self._pending: dict[str, Any] = {}

    def device_info(self) -> dict[str, Any]:
        import jaxlib

        return {
            "framework_version": jax.__version__,
            "device_name": cpu_model() if self.device == "cpu" else self._device.device_kind,
            "jaxlib": jaxlib.__version__,
            "optax": optax.__version__,
            "device": self.device,
            "platform": self._device.platform,
            "device_kind": self._device.device_kind,
            "precision": "float32, lax.Precision.HIGHEST for conv and matmul",
            "layout": self.layout,
            # XLA runs a compiled program the same way every time on the CPU; on GPUs some
            # reductions (scatter, autotuned convolutions) are deterministic only when asked.
            "determinism": {
                "xla_flags": os.environ.get("XLA_FLAGS", ""),
                "xla_gpu_deterministic_ops": "--xla_gpu_deterministic_ops=true"
                in os.environ.get("XLA_FLAGS", "")},
        }

    def synchronize(self) -> None:
        # JAX has no global device barrier; blocking on the latest outputs is equivalent. Each
        # step consumes the previous step's state, so it finishes after every earlier step, and
        # all outputs of one XLA execution become ready together (one completion event), so its
        # loss is ready exactly when its params, buffers and optimizer state are. Blocking on the
        # loss alone costs ~1 us; on every leaf of the state, ~100 us for ResNet-18 (168 arrays),
        # which the timer would add to every step. Uploads are blocked on separately.
        jax.block_until_ready(list(self._pending.values()))

    def _put(self, tree, copy: bool = False):
        # may_alias=False: on CPU device_put may share the numpy memory, and donated params
        # would then be overwritten inside the caller's (canonical) arrays.
        return jax.device_put(tree, self._device, may_alias=False if copy else None)

    def init_state(self, model: ModelInput, optimizer: OptimizerConfig) -> TrainState:
        self.dtype = np.dtype(model.dtype)
        if self.dtype == np.float64 and not jax.config.jax_enable_x64:
            raise PybenchError("float64 weights need JAX_ENABLE_X64=1 set before JAX starts")
        program = make_program(model, optimizer, donate=self.device != "cpu", layout=self.layout)
        params = self._put({k: np.asarray(v, self.dtype) for k, v in model.params.items()}, True)
        buffers = self._put({k: np.asarray(v, self.dtype) for k, v in model.buffers.items()},
                            True)
        # Placed explicitly: some optimizer state (Adam's step count) is made from no parameter.
        # Frozen parameters (--trainable) get no optimizer state.
        opt_state = self._put(program.optimizer.init(split_frozen(params, model.frozen)[0]))
        return TrainState(params, buffers, opt_state, program)

    def free_device_bytes(self) -> int | None:
        stats = self._device.memory_stats()  # None on the CPU client
        if not stats or "bytes_limit" not in stats:
            return None
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))

    def put_data(self, images: np.ndarray, labels: np.ndarray,
                 table: np.ndarray | None = None) -> DeviceData | HostData:
        if table is None:  # already normalised (augmented epochs)
            images = np.asarray(images, float_dtype(images))
        images = to_layout(images, self.layout)
        # Labels as int32 (int32 indexes any dataset that fits a device); multi-label targets
        # as floats of the data's dtype.
        labels = tasks.targets(labels, images.dtype if table is None else table.dtype)
        labels = labels if labels.ndim == 2 else labels.astype(np.int32)
        device_table = None if table is None else self._put(np.ascontiguousarray(table).reshape(-1))
        if not self.fits_on_device(images.nbytes + labels.nbytes):
            return HostData(images, labels, device_table)
        # On the CPU device_put may share the numpy memory (a page-aligned memory-mapped cache
        # entry is): the uint8 images then stay the cache's pages, with no copy.
        data = DeviceData(self._put(images), self._put(labels), device_table)
        self._pending["data"] = data
        return data

    def put_order(self, order: np.ndarray, lrs: np.ndarray, first_step: int = 0) -> EpochOrder:
        host = np.asarray(order, np.int32)
        # float64 on the host; on the device as JAX keeps floats (float32 unless x64 is on). A
        # step casts its rate to the weights' dtype, whatever the order was made after.
        host_lrs = np.asarray(lrs, np.float64)
        plan = EpochOrder(self._put(host), host, self._put(host_lrs), host_lrs, int(first_step))
        self._pending["order"] = plan.device, plan.lrs
        return plan

    def train_step(self, state: TrainState, data: DeviceData | HostData, order: EpochOrder,
                   step: int, batch_size: int):
        # dynamic_slice would silently clamp a batch running past the order: refuse it here,
        # from shapes the host knows, without waiting for the device.
        if step < 0 or (step + 1) * batch_size > order.host.shape[0]:
            raise PybenchError(f"step {step} of batch size {batch_size} runs past an epoch of "
                               f"{order.host.shape[0]} samples")
        dtype = state.params[state.program.param_names[0]].dtype
        if data.input_dtype != dtype:
            raise PybenchError(f"the data is {data.input_dtype} but the model computes in {dtype}: "
                               "put_data images (or a pixel table) of the state's dtype")
        if isinstance(data, HostData):
            idx = order.host[step * batch_size:(step + 1) * batch_size]
            params, buffers, opt_state, loss, right = state.program.train_batch(
                state.params, state.buffers, state.opt_state, self._put(data.images[idx]), data.table,
                self._put(data.labels[idx]), np.asarray(order.host_lrs[step], dtype),
                order.first_step + step)
        else:
            params, buffers, opt_state, loss, right = state.program.train_step(
                state.params, state.buffers, state.opt_state, data.images, data.table, data.labels,
                # The step number as a Python int: jit's C++ dispatch passes it to the device
                # in microseconds, where a jax.device_put per step (every step number of an
                # epoch is new, so no cache of them hits) cost a tenth of a LeNet-5 step on the
                # CPU (docs/performance.md).
                order.device, order.lrs, step, order.first_step, batch_size=batch_size)
        state = TrainState(params, buffers, opt_state, state.program)
        self._pending["step"] = loss
        self._hits.append(right)
        self._counted += batch_size * (int(np.prod(data.labels.shape[1:])) or 1)
        return state, loss

    def train_hits(self) -> tuple[int, int]:
        right = int(np.sum(jax.device_get(self._hits))) if self._hits else 0
        counted, self._hits, self._counted = self._counted, [], 0
        return right, counted

    def batch_inputs(self, data: DeviceData | HostData, positions: np.ndarray) -> np.ndarray:
        batch = np.asarray(positions, np.int32)
        images = data.images[batch] if isinstance(data, HostData) else jnp.take(data.images, batch, axis=0)
        x = np.array(lookup(images, data.table, self.layout))
        return np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2))) if self.layout == NHWC else x

    def to_float(self, value: Any) -> float:
        return float(value)

    def predict(self, state: TrainState, data: DeviceData | HostData,
                batch_size: int) -> np.ndarray:
        return self._evaluate(state, data, batch_size, features=False)

    def embed(self, state: TrainState, data: DeviceData | HostData, batch_size: int) -> np.ndarray:
        return self._evaluate(state, data, batch_size, features=True)

    def _evaluate(self, state: TrainState, data: DeviceData | HostData, batch_size: int,
                  features: bool) -> np.ndarray:
        n = data.images.shape[0]
        # Full batches share one compiled program; a last partial batch compiles one more.
        if isinstance(data, HostData):
            outputs = [state.program.eval_batch(state.params, state.buffers,
                                                self._put(data.images[start:start + batch_size]),
                                                data.table, 0, size=min(batch_size, n - start),
                                                features=features)
                       for start in range(0, n, batch_size)]
        else:
            outputs = [state.program.eval_batch(state.params, state.buffers, data.images, data.table,
                                                start, size=min(batch_size, n - start),
                                                features=features)
                       for start in range(0, n, batch_size)]
        return np.array(jnp.concatenate(outputs))

    def forward(self, state: TrainState, images: np.ndarray, train: bool) -> np.ndarray:
        dtype = state.params[state.program.param_names[0]].dtype
        x = self._put(to_layout(np.asarray(images, dtype), self.layout))
        # The moved running statistics are dropped: forward must not change the state.
        logits, _ = state.program.forward(state.params, state.buffers, x, train=bool(train))
        return np.array(logits)

    def export_weights(self, state: TrainState) -> tuple[Arrays, Arrays]:
        program = state.program
        return (to_numpy(state.params, program.param_names),
                to_numpy(state.buffers, program.buffer_names))

    def matmul_seconds(self, n: int) -> float:
        a = self._put(np.random.default_rng(0).standard_normal((n, n), np.float32))
        product = jax.jit(lambda x, y: jnp.dot(x, y, precision=lax.Precision.HIGHEST))
        product(a, a).block_until_ready()  # compiled outside the clock
        start = time.perf_counter()
        product(a, a).block_until_ready()
        return time.perf_counter() - start

    device_memory_kind = "device (peak bytes in use)"

    def peak_memory_bytes(self) -> int | None:
        # GPU allocators report statistics (peak over the process's life on this device, which
        # a worker process dedicates to one backend); the CPU client reports none.
        stats = self._device.memory_stats()
        if stats and "peak_bytes_in_use" in stats:
            return int(stats["peak_bytes_in_use"])
        return None

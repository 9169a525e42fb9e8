"""JAX candidates (LeNet-5): plain-JAX steps that differ from each other in one choice each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from step_search.common import BATCH, OPTIMIZER, Inputs, Round, Search, Variant, timed_steps


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

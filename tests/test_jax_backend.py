"""The JAX backend against PyTorch, written here from torch.nn.functional on the same weights.

The reference is a few lines of F.conv2d / F.batch_norm / F.linear over the canonical weight
dicts (not the torch backend, so these tests check JAX alone). Covered: forward logits in train
and eval mode and BatchNorm running statistics for every model, SGD-momentum and Adam steps with
weight decay against torch.optim, one compilation across steps and epochs, predict order,
exact export of untouched weights, and that importing the module does not import JAX.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pybench.backends.contract import ModelInput, OptimizerConfig
from pybench.backends.jax_backend import LAYOUTS, NCHW, NHWC, JaxBackend, to_layout
from pybench.errors import PybenchError
from pybench.models import BN_EPS, BN_MOMENTUM, RESNETS, init_weights, layers, resnet_blocks

NUM_CLASSES = 10
# (model, input shape, batch): resnet18 on 16x16 images, batch 4, to stay fast on a CPU.
FORWARD_CASES = [
    ("lenet5", (1, 28, 28), 8),
    ("resnet8", (3, 32, 32), 8),
    ("resnet20", (3, 32, 32), 8),
    ("resnet18", (3, 16, 16), 4),
]


# --- The PyTorch reference ------------------------------------------------------------------

def torch_forward(model, in_shape, params, buffers, x, train):
    """Logits of `model` from torch.nn.functional; F.batch_norm updates `buffers` in place when
    training, exactly as nn.BatchNorm2d does."""
    by_name = {layer.name: layer for layer in layers(model, in_shape, NUM_CLASSES)}

    def conv(name, x):
        layer = by_name[name]
        return F.conv2d(x, params[f"{name}.weight"], params.get(f"{name}.bias"),
                        stride=layer.stride, padding=layer.padding)

    def bn(name, x):
        return F.batch_norm(x, buffers[f"{name}.running_mean"], buffers[f"{name}.running_var"],
                            params[f"{name}.weight"], params[f"{name}.bias"], training=train,
                            momentum=BN_MOMENTUM, eps=BN_EPS)

    def linear(name, x):
        return F.linear(x, params[f"{name}.weight"], params[f"{name}.bias"])

    if model == "lenet5":
        x = F.max_pool2d(F.relu(conv("conv1", x)), 2)
        x = F.max_pool2d(F.relu(conv("conv2", x)), 2)
        x = F.relu(linear("fc1", x.flatten(1)))
        x = F.relu(linear("fc2", x))
        return linear("fc3", x)
    x = F.relu(bn("bn1", conv("conv1", x)))
    for b in resnet_blocks(RESNETS[model]):
        out = F.relu(bn(f"{b.prefix}.bn1", conv(f"{b.prefix}.conv1", x)))
        out = bn(f"{b.prefix}.bn2", conv(f"{b.prefix}.conv2", out))
        if b.has_downsample:
            x = bn(f"{b.prefix}.downsample.1", conv(f"{b.prefix}.downsample.0", x))
        x = F.relu(out + x)
    return linear("fc", x.mean(dim=(2, 3)))


def to_torch(arrays, requires_grad=False):
    return {k: torch.tensor(v, requires_grad=requires_grad) for k, v in arrays.items()}


def torch_train(model, in_shape, params, buffers, images, labels, order, batch_size, steps,
                make_optimizer, lrs=None, label_smoothing=0.0):
    """Per-step losses and final (params, buffers) of torch.optim on the same batches, at the
    learning rates `lrs` (default: the optimizer's own)."""
    params, buffers = to_torch(params, requires_grad=True), to_torch(buffers)
    optimizer = make_optimizer(list(params.values()))
    losses = []
    for step in range(steps):
        if lrs is not None:
            for group in optimizer.param_groups:
                group["lr"] = float(lrs[step])
        batch = order[step * batch_size:(step + 1) * batch_size]
        logits = torch_forward(model, in_shape, params, buffers, torch.tensor(images[batch]),
                               train=True)
        loss = F.cross_entropy(logits, torch.tensor(labels[batch]),
                               label_smoothing=label_smoothing)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, {k: v.detach().numpy() for k, v in params.items()}, \
        {k: v.numpy() for k, v in buffers.items()}


# --- Helpers ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def backend():
    return JaxBackend("cpu")


def synthetic(in_shape, n, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((n, *in_shape)).astype(np.float32)
    labels = rng.integers(0, NUM_CLASSES, n).astype(np.int64)
    return images, labels


def make_state(backend, model, in_shape, optimizer=None, seed=0):
    params, buffers = init_weights(model, in_shape, NUM_CLASSES, seed)
    state = backend.init_state(ModelInput(model, in_shape, NUM_CLASSES, params, buffers),
                               optimizer or OptimizerConfig())
    return state, params, buffers


def jax_train(backend, state, images, labels, order, batch_size, steps, lrs=None):
    """Losses of `steps` steps, at the learning rates `lrs` (default: the optimizer's own)."""
    if lrs is None:
        lrs = np.full(steps, state.program.optimizer_config.lr)
    data, device_order = backend.put_data(images, labels), backend.put_order(order, lrs)
    losses = []
    for step in range(steps):
        state, loss = backend.train_step(state, data, device_order, step, batch_size)
        losses.append(loss)
    return state, [backend.to_float(v) for v in losses]


# --- (1) Forward parity -----------------------------------------------------------------------

@pytest.mark.parametrize("model,in_shape,batch", FORWARD_CASES, ids=[c[0] for c in FORWARD_CASES])
def test_forward_and_batch_norm_statistics_match_torch(backend, model, in_shape, batch):
    state, params, buffers = make_state(backend, model, in_shape)
    images, _ = synthetic(in_shape, batch)
    for train in (False, True):
        ours = backend.forward(state, images, train=train)
        torch_buffers = to_torch(buffers)
        with torch.no_grad():
            ref = torch_forward(model, in_shape, to_torch(params), torch_buffers,
                                torch.tensor(images), train).numpy()
        assert ours.shape == (batch, NUM_CLASSES)
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-4, err_msg=f"train={train}")

    # The running statistics one train-mode pass produces (the jitted `apply` behind forward,
    # which returns them) are F.batch_norm's; forward itself leaves the state alone.
    _, moved = state.program.forward(state.params, state.buffers,
                                     to_layout(images, backend.layout), train=True)
    assert set(moved) == set(buffers)
    for name, value in torch_buffers.items():
        np.testing.assert_allclose(np.asarray(moved[name]), value.numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=name)
        assert not np.array_equal(value.numpy(), buffers[name]), f"{name} did not move"
    np.testing.assert_array_equal(backend.forward(state, images, train=True), ours)
    for name, value in backend.export_weights(state)[1].items():
        np.testing.assert_array_equal(value, buffers[name])


# --- (2) Optimizer parity ---------------------------------------------------------------------

OPTIMIZER_CASES = {
    "sgd-momentum-wd": (OptimizerConfig("sgd", lr=0.05, momentum=0.9, weight_decay=5e-3),
                        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=5e-3)),
    "sgd-plain": (OptimizerConfig("sgd", lr=0.1, momentum=0.0),
                  lambda p: torch.optim.SGD(p, lr=0.1)),
    "adam-wd": (OptimizerConfig("adam", lr=3e-3, betas=(0.9, 0.99), eps=1e-8, weight_decay=1e-2),
                lambda p: torch.optim.Adam(p, lr=3e-3, betas=(0.9, 0.99), eps=1e-8,
                                           weight_decay=1e-2)),
    "sgd-nesterov-wd": (OptimizerConfig("sgd", lr=0.05, momentum=0.9, nesterov=True,
                                        weight_decay=5e-3),
                        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True,
                                                  weight_decay=5e-3)),
    "adamw": (OptimizerConfig("adamw", lr=3e-3, weight_decay=0.1),
              lambda p: torch.optim.AdamW(p, lr=3e-3, weight_decay=0.1)),
    "sgd-label-smoothing": (OptimizerConfig("sgd", lr=0.05, momentum=0.9, label_smoothing=0.1),
                            lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
}
# A learning rate that changes at every step (as the schedules make it) for these cases.
SCHEDULED = {"sgd-momentum-wd", "adamw"}


@pytest.mark.parametrize(
    "model,in_shape,case",
    [("lenet5", (1, 28, 28), case) for case in OPTIMIZER_CASES]
    # A ResNet too: gradients through batch statistics, and buffers moved by training.
    + [("resnet8", (3, 16, 16), "sgd-momentum-wd")])
def test_training_matches_torch_optim(backend, model, in_shape, case):
    config, make_torch_optimizer = OPTIMIZER_CASES[case]
    steps, batch_size = 5, 16
    state, params, buffers = make_state(backend, model, in_shape, config)
    images, labels = synthetic(in_shape, steps * batch_size + 7, seed=2)
    order = np.random.default_rng(3).permutation(len(labels))

    lrs = (config.lr * np.linspace(1.0, 0.2, steps) if case in SCHEDULED
           else np.full(steps, config.lr))
    state, losses = jax_train(backend, state, images, labels, order, batch_size, steps, lrs)
    ref_losses, ref_params, ref_buffers = torch_train(
        model, in_shape, params, buffers, images, labels, order, batch_size, steps,
        make_torch_optimizer, lrs, config.label_smoothing)

    np.testing.assert_allclose(losses, ref_losses, rtol=1e-4)
    assert losses[-1] < losses[0]  # the steps did train
    ours, our_buffers = backend.export_weights(state)
    for name in params:
        np.testing.assert_allclose(ours[name], ref_params[name], rtol=0, atol=1e-4, err_msg=name)
        assert not np.array_equal(ours[name], params[name]), f"{name} was not updated"
    for name in buffers:
        np.testing.assert_allclose(our_buffers[name], ref_buffers[name], rtol=0, atol=1e-4,
                                   err_msg=name)


# --- (3) One compilation, and synchronize -----------------------------------------------------

def test_train_step_compiles_once_across_steps_and_epochs(backend):
    in_shape, batch_size = (1, 28, 28), 8
    state, _, _ = make_state(backend, "lenet5", in_shape)
    images, labels = synthetic(in_shape, 30)
    data = backend.put_data(images, labels)
    rng = np.random.default_rng(4)
    for _ in range(2):  # epochs: a new order each
        order = backend.put_order(rng.permutation(len(labels)), np.full(3, 0.01))
        for step in range(len(labels) // batch_size):
            state, loss = backend.train_step(state, data, order, step, batch_size)
    assert state.program.train_step._cache_size() == 1

    backend.synchronize()
    leaves = [loss, *state.params.values(), *state.buffers.values()]
    assert all(x.is_ready() for x in leaves)
    with pytest.raises(PybenchError, match="runs past"):
        backend.train_step(state, data, order, len(labels) // batch_size, batch_size)


# --- (4) predict ------------------------------------------------------------------------------

def test_predict_returns_every_sample_in_order(backend):
    in_shape, n = (3, 16, 16), 37  # 37 is not a multiple of the batch size
    state, _, _ = make_state(backend, "resnet8", in_shape)
    images, labels = synthetic(in_shape, n)
    logits = backend.predict(state, backend.put_data(images, labels), batch_size=16)
    assert logits.shape == (n, NUM_CLASSES) and logits.dtype == np.float32
    assert state.program.eval_batch._cache_size() == 2  # full batches, and the last partial one
    np.testing.assert_allclose(logits, backend.forward(state, images, train=False),
                               rtol=0, atol=1e-5)


# --- (5) export -------------------------------------------------------------------------------

def test_export_round_trips_and_training_leaves_inputs_alone(backend):
    in_shape = (3, 16, 16)
    state, params, buffers = make_state(backend, "resnet8", in_shape)
    originals = ({k: v.copy() for k, v in params.items()},
                 {k: v.copy() for k, v in buffers.items()})
    exported = backend.export_weights(state)
    for ours, canonical in zip(exported, (params, buffers)):
        assert list(ours) == list(canonical)
        for name, value in canonical.items():
            assert ours[name].dtype == np.float32
            np.testing.assert_array_equal(ours[name], value)

    # Steps donate the state's buffers; neither the canonical arrays it was made from nor the
    # exported copies may change with it.
    images, labels = synthetic(in_shape, 16)
    jax_train(backend, state, images, labels, np.arange(16), batch_size=8, steps=2)
    for now, before in zip((params, buffers), originals):
        for name in before:
            np.testing.assert_array_equal(now[name], before[name])
    for ours, before in zip(exported, originals):
        for name in before:
            np.testing.assert_array_equal(ours[name], before[name])


# --- (6) lazy import --------------------------------------------------------------------------

def test_import_does_not_load_jax():
    code = ("import sys, pybench.backends.jax_backend as m\n"
            "assert 'jax' not in sys.modules and 'optax' not in sys.modules\n"
            "assert m.JaxBackend.availability().ok\n"
            "assert 'jax' in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.parametrize("model,in_shape", [("lenet5", (1, 28, 28)), ("resnet8", (3, 16, 16))])
def test_both_layouts_compute_the_same_function_and_step(model, in_shape):
    """The per-device layout choice changes speed, not numbers: NCHW and NHWC give the same
    logits and the same first training steps (float32 rounding apart)."""
    assert LAYOUTS == {"cpu": NHWC, "cuda": NCHW}
    images, labels = synthetic(in_shape, 32, seed=5)
    results = {}
    for layout in (NCHW, NHWC):
        backend = JaxBackend("cpu")
        backend.layout = layout
        state, _, _ = make_state(backend, model, in_shape)
        logits = backend.forward(state, images, train=False)
        state, losses = jax_train(backend, state, images, labels, np.arange(32), 8, 4)
        results[layout] = logits, losses, backend.export_weights(state)
        assert backend.device_info()["layout"] == layout
    (la, lossa, (pa, ba)), (lb, lossb, (pb, bb)) = results[NCHW], results[NHWC]
    np.testing.assert_allclose(la, lb, atol=1e-5)
    np.testing.assert_allclose(lossa, lossb, rtol=1e-5)
    for name in pa:
        np.testing.assert_allclose(pa[name], pb[name], atol=1e-5, err_msg=name)
    for name in ba:
        np.testing.assert_allclose(ba[name], bb[name], atol=1e-5, err_msg=name)


@pytest.mark.parametrize("size, stride, kernel, padding", [(2, 1, 3, 1), (1, 1, 3, 1), (4, 2, 3, 1), (3, 2, 7, 3)])
def test_a_convolution_of_small_maps_as_patches_times_a_matrix_is_torchs(size, stride, kernel, padding):
    """On the CPU, outputs of at most MATMUL_CONV_MAX_OUTPUT per side are computed as patches
    times a matrix (XLA's convolution is 30x slower there): the same values as torch's conv2d,
    to float32 rounding, channel order included."""
    import jax.numpy as jnp

    from pybench.backends.jax_backend import MATMUL_CONV_MAX_OUTPUT, conv2d
    from pybench.models import Conv

    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 6, size, size)).astype(np.float32)
    weight = rng.standard_normal((5, 6, kernel, kernel)).astype(np.float32)
    layer = Conv("c", 6, 5, kernel, stride, padding, bias=False)
    expected = F.conv2d(torch.from_numpy(x), torch.from_numpy(weight), stride=stride, padding=padding).numpy()
    assert max(expected.shape[2:]) <= MATMUL_CONV_MAX_OUTPUT  # the patches path, not XLA's conv
    got = conv2d(layer, {"c.weight": jnp.asarray(weight)}, jnp.asarray(to_layout(x, NHWC)), NHWC)
    np.testing.assert_allclose(np.transpose(np.asarray(got), (0, 3, 1, 2)), expected, rtol=1e-5, atol=1e-5)

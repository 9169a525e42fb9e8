"""The PyTorch backend against independent references: torchvision's ResNet-18, BatchNorm and
SGD written out by hand, and the contract's promises (no state change in forward, batches picked
by the epoch order, predictions in order)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed")
torchvision = pytest.importorskip("torchvision", reason="torchvision is not installed")

from pybench import models  # noqa: E402
from pybench.backends.contract import ModelInput, OptimizerConfig  # noqa: E402
from pybench.backends.torch_backend import TorchBackend  # noqa: E402


def state_for(backend, model, in_shape=(1, 28, 28), classes=10, optimizer=None, seed=0):
    params, buffers = models.init_weights(model, in_shape, classes, seed)
    return backend.init_state(ModelInput(model, in_shape, classes, params, buffers),
                              optimizer or OptimizerConfig(lr=0.1, momentum=0.9))


@pytest.fixture
def backend():
    return TorchBackend("cpu")


def test_resnet18_is_torchvision_resnet18_with_small_stem(backend):
    params, buffers = models.init_weights("resnet18", (3, 32, 32), 10, 0)
    reference = torchvision.models.resnet18(num_classes=10)
    reference.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    reference.maxpool = torch.nn.Identity()
    missing, unexpected = reference.load_state_dict(
        {k: torch.from_numpy(v) for k, v in {**params, **buffers}.items()}, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing)
    state = backend.init_state(ModelInput("resnet18", (3, 32, 32), 10, params, buffers),
                               OptimizerConfig())
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    # In the backend's memory format, so that the kernels (and their rounding) are the same.
    reference.to(memory_format=backend.memory_format).eval()
    with torch.no_grad():
        expected = reference(torch.from_numpy(x).contiguous(
            memory_format=backend.memory_format)).numpy()
    np.testing.assert_array_equal(backend.forward(state, x, train=False), expected)


@pytest.mark.parametrize("model, constructor", [("resnet18-imagenet", "resnet18"),
                                                ("resnet34-imagenet", "resnet34"),
                                                ("resnet50-imagenet", "resnet50"),
                                                ("densenet121-imagenet", "densenet121")])
def test_imagenet_models_are_torchvisions_own(backend, model, constructor):
    """Same names, shapes and order as torchvision's state_dict, and bit-identical logits with
    the same weights, in both modes (the 7x7 stem, the padded max pool, v1.5 bottlenecks,
    DenseNet's concatenations, transitions and norm5)."""
    params, buffers = models.init_weights(model, (3, 48, 48), 7, 0)
    reference = getattr(torchvision.models, constructor)(num_classes=7)
    expected_names = [k for k in reference.state_dict() if not k.endswith("num_batches_tracked")]
    module = torch_backend_module(backend, model, params, buffers)
    assert [k for k in module.state_dict() if not k.endswith("num_batches_tracked")] == expected_names
    reference.load_state_dict({k: torch.from_numpy(v) for k, v in {**params, **buffers}.items()},
                              strict=False)
    state = backend.init_state(ModelInput(model, (3, 48, 48), 7, params, buffers), OptimizerConfig())
    x = np.random.default_rng(0).standard_normal((4, 3, 48, 48)).astype(np.float32)
    reference.to(memory_format=backend.memory_format)
    for train in (False, True):
        reference.train(train)
        with torch.no_grad():
            expected = reference(torch.from_numpy(x).contiguous(
                memory_format=backend.memory_format)).numpy()
        np.testing.assert_array_equal(backend.forward(state, x, train=train), expected)


def torch_backend_module(backend, model, params, buffers):
    return backend.init_state(ModelInput(model, (3, 48, 48), 7, params, buffers),
                              OptimizerConfig()).module


def test_export_round_trips_canonical_weights(backend):
    params, buffers = models.init_weights("resnet8", (1, 28, 28), 10, 5)
    state = backend.init_state(ModelInput("resnet8", (1, 28, 28), 10, params, buffers),
                               OptimizerConfig())
    got_params, got_buffers = backend.export_weights(state)
    assert list(got_params) == list(params)  # same names, same canonical order
    for k in params:
        np.testing.assert_array_equal(got_params[k], params[k])
    for k in buffers:
        np.testing.assert_array_equal(got_buffers[k], buffers[k])


def test_forward_in_train_mode_leaves_running_statistics_alone(backend):
    state = state_for(backend, "resnet8")
    x = np.random.default_rng(1).standard_normal((8, 1, 28, 28)).astype(np.float32)
    before = backend.export_weights(state)[1]
    train_logits = backend.forward(state, x, train=True)
    after = backend.export_weights(state)[1]
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert not np.allclose(train_logits, backend.forward(state, x, train=False))


def test_batchnorm_running_variance_is_unbiased(backend):
    state = state_for(backend, "resnet8")
    x = np.random.default_rng(2).standard_normal((6, 1, 28, 28)).astype(np.float32)
    with torch.no_grad():
        stem = torch.nn.functional.conv2d(torch.from_numpy(x),
                                          state.module.conv1.weight, padding=1).numpy()
    data = backend.put_data(x, np.zeros(6, np.int64))
    backend.train_step(state, data, backend.put_order(np.arange(6), [0.01]), 0, 6)
    running_var = backend.export_weights(state)[1]["bn1.running_var"]
    unbiased = stem.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(running_var, 0.9 * 1 + 0.1 * unbiased, rtol=1e-5)


def test_sgd_momentum_and_weight_decay_follow_the_stated_formula(backend):
    opt = OptimizerConfig(name="sgd", lr=0.1, momentum=0.9, weight_decay=0.01)
    state = state_for(backend, "lenet5", optimizer=opt)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 8)
    data, order = backend.put_data(x, y), backend.put_order(np.arange(8), [0.1])
    w = backend.export_weights(state)[0]["fc3.bias"].astype(np.float64)
    v = np.zeros_like(w)
    for _ in range(3):
        module = state.module
        module.zero_grad()
        torch.nn.functional.cross_entropy(module(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        g = module.fc3.bias.grad.numpy().astype(np.float64) + 0.01 * w
        v = 0.9 * v + g if v.any() else g
        w = w - 0.1 * v
        backend.train_step(state, data, order, 0, 8)
        np.testing.assert_allclose(backend.export_weights(state)[0]["fc3.bias"], w, atol=1e-6)


def test_train_step_uses_the_batch_the_order_names(backend):
    state = state_for(backend, "lenet5")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((20, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 20)
    order = rng.permutation(20)
    _, loss = backend.train_step(state_for(backend, "lenet5"), backend.put_data(x, y),
                                 backend.put_order(order, [0.01] * 4), 1, 5)
    picked = order[5:10]
    with torch.no_grad():
        expected = torch.nn.functional.cross_entropy(
            state.module(torch.from_numpy(x[picked])), torch.from_numpy(y[picked]))
    assert backend.to_float(loss) == pytest.approx(float(expected), rel=1e-6)


def test_predict_covers_every_sample_in_order(backend):
    state = state_for(backend, "lenet5")
    x = np.random.default_rng(5).standard_normal((23, 1, 28, 28)).astype(np.float32)
    logits = backend.predict(state, backend.put_data(x, np.zeros(23, np.int64)), batch_size=10)
    assert logits.shape == (23, 10)
    np.testing.assert_allclose(logits, backend.forward(state, x, train=False), atol=1e-5)

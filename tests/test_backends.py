"""What every Python backend promises through the contract, checked the same way for each."""

from __future__ import annotations

import numpy as np
import pytest

from pybench import models
from pybench.backends import get_backend
from pybench.backends.contract import ModelInput, OptimizerConfig
from pybench.frameworks import FRAMEWORK_NAMES

# Every registered framework that may share the pytest process (which has imported torch).
# juliacall must not (docs/julia.md): tests/test_knet_backend.py holds knet to the same
# promises from a worker process of its own.
OWN_PROCESS = {"knet"}
FRAMEWORKS = [name for name in FRAMEWORK_NAMES if name not in OWN_PROCESS]
SHAPE = (1, 28, 28)


def backend_for(framework):
    pytest.importorskip(framework, reason=f"{framework} is not installed")
    return get_backend(framework, "cpu")


def fresh_state(backend, model="resnet8"):
    params, buffers = models.init_weights(model, SHAPE, 10, 0)
    return backend.init_state(ModelInput(model, SHAPE, 10, params, buffers),
                              OptimizerConfig(lr=0.05, momentum=0.9))


def train(backend, data, order, steps=3, batch_size=8):
    state, losses = fresh_state(backend), []
    for step in range(steps):
        state, loss = backend.train_step(state, data, order, step, batch_size)
        losses.append(backend.to_float(loss))
    return state, losses


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_exports_canonical_names_shapes_and_info(framework):
    backend = backend_for(framework)
    params, buffers = backend.export_weights(fresh_state(backend))
    assert {k: v.shape for k, v in params.items()} == models.param_shapes("resnet8", SHAPE, 10)
    assert {k: v.shape for k, v in buffers.items()} == models.buffer_shapes("resnet8", SHAPE, 10)
    info = backend.device_info()
    assert info["framework_version"] and info["device_name"]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_data_too_large_for_the_device_trains_the_same_from_the_host(framework, monkeypatch):
    backend = backend_for(framework)
    rng = np.random.default_rng(0)
    images = rng.standard_normal((40, *SHAPE)).astype(np.float32)
    labels = rng.integers(0, 10, 40)
    order = rng.permutation(40)
    fresh_state(backend)  # sets the backend's dtype, as the training loop does
    on_device = backend.put_data(images, labels)
    device_state, device_losses = train(backend, on_device, backend.put_order(order, np.full(5, 0.05)))

    monkeypatch.setattr(backend, "fits_on_device", lambda nbytes: False)
    on_host = backend.put_data(images, labels)
    assert backend.data_on_device(on_device) and not backend.data_on_device(on_host)
    host_state, host_losses = train(backend, on_host, backend.put_order(order, np.full(5, 0.05)))

    np.testing.assert_allclose(host_losses, device_losses, rtol=1e-6)
    np.testing.assert_allclose(backend.predict(host_state, on_host, 16),
                               backend.predict(device_state, on_device, 16), atol=1e-5)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_the_device_fit_rule_is_the_contracts(framework, monkeypatch):
    backend = backend_for(framework)
    assert backend.fits_on_device(10**15)  # the CPU: no limit to keep to
    monkeypatch.setattr(backend, "free_device_bytes", lambda: 1000)
    assert backend.fits_on_device(499) and not backend.fits_on_device(500)

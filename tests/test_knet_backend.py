"""The Python plumbing of the knet backend, against a fake Julia that records its calls.

No Julia runs here: `julia_main` is replaced by an object whose `seval` hands back Python
stand-ins for the KnetModels functions. What this pins is what Python decides and sends: the
state's array type follows the canonical weights' dtype and the data's the images' dtype,
float64 weights reach Julia as float64 views, Julia functions are looked up once (not on every
step), and `data_on_device` asks KnetModels rather than reading an attribute of a Julia object.
Whether the Julia side then computes correctly is for julia/KnetModels/test/runtests.jl.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pytest

from pybench import models
from pybench.backends import knet_backend
from pybench.backends.contract import ModelInput, OptimizerConfig
from pybench.backends.knet_backend import knet_gpu_verdict
from pybench.errors import UnavailableError


@dataclass
class FakeState:
    atype: tuple


@dataclass
class FakeData:
    images: np.ndarray
    labels: np.ndarray
    atype: tuple


class FakeJulia:
    """`seval(name)` returns a Python stand-in for the Julia function `name`, recording calls."""

    def __init__(self, cuda_functional=False, on_device=True, gpu_probe=None):
        self.sevals: list[str] = []
        self.calls: list[tuple] = []
        probe = gpu_probe or {"functional": cuda_functional}
        self.functions = {
            "Dict{String,Any}": dict,
            "CUDA.functional()": cuda_functional,
            "KnetModels.gpu_probe": self.record("gpu_probe", lambda max_capability: probe),
            "KnetModels.package_versions": lambda: {"julia": "1.9.4", "Knet": "1.4.10",
                                                    "CUDA": "3.13.1", "AutoGrad": "1.2.5"},
            "Threads.nthreads()": 2,
            "KnetModels.array_type": self.record("array_type", lambda device, dtype:
                                                 ("atype", device, dtype)),
            "KnetModels.build_model": self.record("build_model", lambda *a, **k: ("net", a[4])),
            "KnetModels.init_state": self.record("init_state", lambda net, atype, **k:
                                                 FakeState(atype)),
            "KnetModels.put_data": self.record("put_data", FakeData),
            "KnetModels.put_order": self.record("put_order", lambda order, lrs, atype, first_step: order),
            "KnetModels.on_device": self.record("on_device", lambda data: on_device),
            "KnetModels.synchronize_device": self.record("synchronize", lambda atype: None),
            "KnetModels.train_step!": self.record("train_step", lambda s, d, o, i, b: (s, 1.5)),
        }

    def record(self, name, fn):
        def wrapped(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            return fn(*args, **kwargs)
        return wrapped

    def seval(self, code):
        self.sevals.append(code)
        return self.functions[code]

    def called(self, name):
        return [(a, k) for n, a, k in self.calls if n == name]


@pytest.fixture
def fake_julia(monkeypatch):
    fake = FakeJulia()
    knet_backend.jl_function.cache_clear()
    monkeypatch.setattr(knet_backend, "julia_main", lambda: fake)
    yield fake
    knet_backend.jl_function.cache_clear()  # the cache holds the fake's functions


def model_input(dtype, model="resnet8", in_shape=(3, 8, 8)):
    params, buffers = models.init_weights(model, in_shape, 10, seed=0)
    cast = lambda arrays: {k: v.astype(dtype) for k, v in arrays.items()}  # noqa: E731
    return ModelInput(model, in_shape, 10, cast(params), cast(buffers))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_array_type_follows_the_weights_dtype(fake_julia, dtype):
    backend = knet_backend.KnetBackend("cpu")
    state = backend.init_state(model_input(dtype), OptimizerConfig())
    assert state.atype == ("atype", "cpu", dtype)
    assert backend.dtype == dtype
    (args, _), = fake_julia.called("build_model")
    weights, buffers, atype = args[1], args[2], args[4]
    assert atype == ("atype", "cpu", dtype)
    assert all(a.dtype == np.dtype(dtype) for a in {**weights, **buffers}.values())
    # Data of the state's dtype lands in the state's array type, as a view of the images.
    images = np.zeros((4, 3, 8, 8), dtype)
    data = backend.put_data(images, np.arange(4))
    assert data.atype == ("atype", "cpu", dtype)
    assert data.images.shape == (8, 8, 3, 4) and np.shares_memory(data.images, images)
    np.testing.assert_array_equal(data.labels, [1, 2, 3, 4])


def test_the_images_dtype_decides_whatever_init_state_came_last(fake_julia):
    """The parity job builds a float32 state for the logits, then a float64 one to train: the
    data follows the images it is given, not the order of those calls."""
    backend = knet_backend.KnetBackend("cpu")
    first = backend.init_state(model_input("float32"), OptimizerConfig())
    second = backend.init_state(model_input("float64"), OptimizerConfig())
    assert first.atype[2] == "float32" and second.atype[2] == "float64"
    data = backend.put_data(np.zeros((2, 3, 8, 8), np.float64), np.zeros(2, np.int64))
    assert data.atype[2] == "float64" and data.images.dtype == np.float64
    assert backend.put_data(np.zeros((2, 3, 8, 8), np.float32), np.zeros(2)).atype[2] == "float32"
    # One array type per dtype, each made once.
    assert [a for a, _ in fake_julia.called("array_type")] == [("cpu", "float32"),
                                                                ("cpu", "float64")]


def test_put_data_before_any_state_follows_the_images(fake_julia):
    backend = knet_backend.KnetBackend("cpu")
    assert backend.put_data(np.zeros((1, 1, 2, 2)), np.zeros(1)).atype[2] == "float64"
    assert backend.put_data(np.zeros((1, 1, 2, 2), np.float32), np.zeros(1)).atype[2] == "float32"
    backend.synchronize()  # before any state: works, the device is all it needs


def test_mixed_or_unsupported_dtypes_are_refused(fake_julia):
    backend = knet_backend.KnetBackend("cpu")
    mixed = model_input("float64")
    mixed.buffers["bn1.running_var"] = mixed.buffers["bn1.running_var"].astype(np.float32)
    with pytest.raises(ValueError, match="share one dtype"):
        backend.init_state(mixed, OptimizerConfig())
    with pytest.raises(ValueError, match="float32 or float64"):
        backend.init_state(model_input("float16"), OptimizerConfig())
    assert backend.dtype is None  # nothing was built


def test_julia_functions_are_looked_up_once(fake_julia):
    backend = knet_backend.KnetBackend("cpu")
    state = backend.init_state(model_input("float32"), OptimizerConfig())
    data = backend.put_data(np.zeros((8, 3, 8, 8), np.float32), np.zeros(8, np.int64))
    order = backend.put_order(np.arange(8), np.full(2, 0.01))
    for step in range(4):
        state, loss = backend.train_step(state, data, order, step % 2, 4)
        backend.synchronize()
    assert backend.to_float(loss) == 1.5
    assert len(fake_julia.called("train_step")) == 4
    assert fake_julia.sevals.count("KnetModels.train_step!") == 1
    assert fake_julia.sevals.count("KnetModels.synchronize_device") == 1
    assert len(fake_julia.sevals) == len(set(fake_julia.sevals))


@pytest.mark.parametrize("answer", [True, False])
def test_data_on_device_asks_knet_models(monkeypatch, answer):
    fake = FakeJulia(on_device=answer)
    knet_backend.jl_function.cache_clear()
    monkeypatch.setattr(knet_backend, "julia_main", lambda: fake)
    try:
        backend = knet_backend.KnetBackend("cpu")
        data = backend.put_data(np.zeros((1, 1, 2, 2), np.float32), np.zeros(1))
        assert backend.data_on_device(data) is answer
        assert fake.called("on_device") == [((data,), {})]
    finally:
        knet_backend.jl_function.cache_clear()


def test_cuda_without_a_usable_gpu_fails_clearly(fake_julia):
    backend = knet_backend.KnetBackend("cuda")
    with pytest.raises(UnavailableError, match="CUDA.jl sees no usable GPU"):
        backend.init_state(model_input("float64"), OptimizerConfig())


@pytest.mark.parametrize("probe, verdict", [
    ({"functional": False}, "CUDA.jl sees no usable GPU (CUDA.functional() is false"),
    ({"functional": True, "name": "NVIDIA H100 80GB HBM3", "capability": "9.0"},
     "NVIDIA H100 80GB HBM3 has compute capability 9.0; CUDA.jl 3.13, the newest Knet 1.4.10 "
     "accepts, targets up to 8.9: use --device cpu for knet, or a GPU up to the Ada generation"),
    ({"functional": True, "name": "NVIDIA B200", "capability": "10.0"}, "compute capability 10.0"),
    ({"functional": True, "name": "NVIDIA A100-SXM4-40GB", "capability": "8.0",
      "smoke": "CUDNNError: CUDNN_STATUS_NOT_SUPPORTED"},
     "a convolution, BatchNorm and gradient failed on NVIDIA A100-SXM4-40GB (compute capability "
     "8.0): CUDNNError: CUDNN_STATUS_NOT_SUPPORTED"),
    ({"functional": True, "name": "NVIDIA GeForce RTX 4090", "capability": "8.9", "smoke": ""},
     None),
    ({"functional": True, "name": "Tesla T4", "capability": "7.5", "smoke": ""}, None),
])
def test_whether_knet_can_use_a_gpu_is_decided_from_the_probe(probe, verdict):
    answer = knet_gpu_verdict(probe)
    assert answer == verdict if verdict is None else verdict in answer


def test_a_gpu_knet_cannot_use_is_unavailable_before_anything_names_it(monkeypatch):
    fake = FakeJulia(gpu_probe={"functional": True, "name": "NVIDIA H100", "capability": "9.0"})
    knet_backend.jl_function.cache_clear()
    monkeypatch.setattr(knet_backend, "julia_main", lambda: fake)
    try:
        backend = knet_backend.KnetBackend("cuda")
        with pytest.raises(UnavailableError, match=r"^--device cuda: NVIDIA H100 has compute "
                                                   r"capability 9\.0"):
            backend.device_info()  # the worker's first question
        # Nothing but the probe asked CUDA anything (CUDA.name before the check was the bug).
        assert not [code for code in fake.sevals if code.startswith("CUDA.")]
        assert len(fake.called("gpu_probe")) == 1
    finally:
        knet_backend.jl_function.cache_clear()


def test_a_usable_gpu_is_named_and_recorded(monkeypatch):
    fake = FakeJulia(gpu_probe={"functional": True, "name": "NVIDIA L4", "capability": "8.9",
                                "smoke": ""})
    knet_backend.jl_function.cache_clear()
    monkeypatch.setattr(knet_backend, "julia_main", lambda: fake)
    monkeypatch.setattr(knet_backend, "blas_threads", lambda: 1)
    try:
        info = knet_backend.KnetBackend("cuda").device_info()
        assert info["device_name"] == "NVIDIA L4" and info["compute_capability"] == "8.9"
    finally:
        knet_backend.jl_function.cache_clear()


def test_julia_gets_the_threads_torch_gets(monkeypatch):
    # OMP_NUM_THREADS (Ray sets it to a task's CPUs; torch follows it), else every usable CPU.
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert knet_backend.julia_threads_wanted() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert knet_backend.julia_threads_wanted() == len(os.sched_getaffinity(0))
    monkeypatch.setenv("OMP_NUM_THREADS", "not a number")
    assert knet_backend.julia_threads_wanted() == len(os.sched_getaffinity(0))

"""The contract's promises, exercised on one backend in a process of its own (knet must not share
a process with torch): `python tests/conformance.py FRAMEWORK OUT.npz`.

It records what tests/test_conformance.py compares across every registered framework: the
exported initial weights (names, shapes, values), float32 eval- and train-mode logits on a fixed
batch and whether a train-mode forward left the state alone, predictions against the eval
forward, the penultimate features (`embed`) against the classifier, float64 trajectories (losses
and final weights) of three steps for each optimizer formula, and how bad input fails. The checks
that need no other framework are made here and stored as `facts`; the comparisons with torch's
figures are made by the test.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

# float64 trajectories below: JAX reads this when it starts (the backend imports it lazily).
os.environ.setdefault("JAX_ENABLE_X64", "1")

from pybench import models, tasks  # noqa: E402
from pybench.backends import get_backend  # noqa: E402
from pybench.backends.contract import ModelInput, OptimizerConfig  # noqa: E402
from pybench.datasets.core import normalize, pixel_table  # noqa: E402

MODELS = ("lenet5", "resnet8")
SHAPE, CLASSES, N = (1, 28, 28), 10, 24
BATCH, STEPS = 8, 3
# One formula each: SGD with momentum, Nesterov with weight decay, Adam with weight decay as L2,
# AdamW's decoupled decay, and label smoothing in the loss.
OPTIMIZERS = {
    "sgd": OptimizerConfig("sgd", lr=0.05, momentum=0.9),
    "nesterov_wd": OptimizerConfig("sgd", lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-3),
    "adam_wd": OptimizerConfig("adam", lr=1e-3, weight_decay=5e-3),
    "adamw": OptimizerConfig("adamw", lr=1e-3, weight_decay=5e-2),
    "smoothing": OptimizerConfig("sgd", lr=0.05, momentum=0.9, label_smoothing=0.1),
}
# The multi-label loss (--task multilabel, pybench.tasks) with per-finding positive weights.
MULTILABEL = OptimizerConfig("sgd", lr=0.05, momentum=0.9, pos_weight=tuple(np.linspace(0.5, 4.0, CLASSES)))


def inputs(dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.standard_normal((N, *SHAPE)).astype(dtype)
    return images, rng.integers(0, CLASSES, N), rng.permutation(N)


def model_input(model: str, dtype) -> ModelInput:
    params, buffers = models.init_weights(model, SHAPE, CLASSES, 0)
    cast = lambda arrays: {k: v.astype(dtype) for k, v in arrays.items()}  # noqa: E731
    return ModelInput(model, SHAPE, CLASSES, cast(params), cast(buffers))


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def raises(call) -> str | None:
    """The exception's type name if `call` raised, else None."""
    try:
        call()
    except Exception as exc:  # any error will do: what matters is that bad input is refused
        return type(exc).__name__
    return None


def float32_checks(backend, model: str, arrays: dict, facts: dict) -> None:
    mi = model_input(model, np.float32)
    state = backend.init_state(mi, OptimizerConfig())
    params, buffers = backend.export_weights(state)
    facts[f"{model}/export_is_canonical"] = same(params, mi.params) and same(buffers, mi.buffers)
    facts[f"{model}/export_shapes"] = (
        {k: v.shape for k, v in params.items()} == models.param_shapes(model, SHAPE, CLASSES)
        and {k: v.shape for k, v in buffers.items()} == models.buffer_shapes(model, SHAPE, CLASSES))
    images, labels, _ = inputs(np.float32)
    arrays[f"{model}/eval_logits"] = backend.forward(state, images[:BATCH], train=False)
    arrays[f"{model}/train_logits"] = backend.forward(state, images[:BATCH], train=True)
    after = backend.export_weights(state)
    facts[f"{model}/forward_leaves_state"] = same(after[0], params) and same(after[1], buffers)
    data = backend.put_data(images, labels)
    facts[f"{model}/data_on_device"] = bool(backend.data_on_device(data))
    predicted = backend.predict(state, data, 16)  # 16 and a last batch of 8
    facts[f"{model}/predict_shape"] = list(predicted.shape) == [N, CLASSES]
    facts[f"{model}/predict_is_eval_forward"] = bool(np.allclose(
        predicted[:BATCH], arrays[f"{model}/eval_logits"], atol=1e-5))
    # The penultimate features: what the classifier (the last dense layer) turns into the logits.
    embedded = arrays[f"{model}/embeddings"] = backend.embed(state, data, 16)
    head = models.layers(model, SHAPE, CLASSES)[-1]
    facts[f"{model}/embed_shape"] = list(embedded.shape) == [N, head.in_features]
    facts[f"{model}/embed_feeds_the_classifier"] = bool(np.allclose(
        embedded @ mi.params[f"{head.name}.weight"].T + mi.params[f"{head.name}.bias"], predicted,
        atol=1e-5))


def multilabel_labels() -> np.ndarray:
    """(N, CLASSES) 0/1 findings, some images with none, some with several."""
    return np.random.default_rng(1).binomial(1, 0.3, (N, CLASSES))


def trajectory(backend, model: str, name: str, optimizer: OptimizerConfig, arrays: dict,
               multilabel: bool = False) -> None:
    state = backend.init_state(model_input(model, np.float64), optimizer)
    images, labels, order = inputs(np.float64)
    data = backend.put_data(images, multilabel_labels() if multilabel else labels)
    plan = backend.put_order(order, np.full(N // BATCH, optimizer.lr))
    losses = []
    for step in range(STEPS):
        state, loss = backend.train_step(state, data, plan, step, BATCH)
        losses.append(backend.to_float(loss))
    backend.synchronize()
    params, buffers = backend.export_weights(state)
    arrays[f"{model}/{name}/losses"] = np.asarray(losses)
    for key, value in {**params, **buffers}.items():
        arrays[f"{model}/{name}/final/{key}"] = value


def multilabel_checks(backend, facts: dict) -> None:
    """A multi-label step's loss (float64) is PyTorch's BCEWithLogitsLoss as pybench.tasks
    writes it, on the backend's own train-mode logits of the batch, with per-finding positive
    weights and without."""
    images, _, order = inputs(np.float64)
    labels = multilabel_labels()
    weight = tuple(np.linspace(0.5, 4.0, CLASSES))
    batch = order[:BATCH]
    for name, pos_weight in (("weighted", weight), ("unweighted", None)):
        state = backend.init_state(model_input("lenet5", np.float64),
                                   OptimizerConfig("sgd", lr=0.05, pos_weight=pos_weight))
        logits = backend.forward(state, images[batch], train=True)
        data = backend.put_data(images, labels)
        backend.train_hits()
        _, loss = backend.train_step(state, data, backend.put_order(order, np.full(N // BATCH, 0.05)), 0, BATCH)
        expected = tasks.bce_with_logits(logits, labels[batch], pos_weight)
        facts[f"multilabel/{name}_loss_is_bce_with_logits"] = bool(
            np.isclose(backend.to_float(loss), expected, rtol=1e-13, atol=0))
        right = int(((logits >= 0) == (labels[batch] > 0.5)).sum())
        facts[f"multilabel/{name}_train_hits_count_the_decisions"] = (
            backend.train_hits() == (right, BATCH * CLASSES))


def train_hits_checks(backend, facts: dict) -> None:
    """`train_hits` counts each step's own training-mode predictions on its batch, before the
    update, and starts anew after each read."""
    images, labels, order = inputs(np.float64)
    state = backend.init_state(model_input("lenet5", np.float64), OptimizerConfig("sgd", lr=0.05))
    plan = backend.put_order(order, np.full(N // BATCH, 0.05))
    data = backend.put_data(images, labels)
    backend.train_hits()
    expected = 0
    for step in range(2):
        batch = order[step * BATCH:(step + 1) * BATCH]
        logits = backend.forward(state, images[batch], train=True)
        expected += int((logits.argmax(axis=1) == labels[batch]).sum())
        state, _ = backend.train_step(state, data, plan, step, BATCH)
    facts["train_hits/count_the_steps_own_predictions"] = backend.train_hits() == (expected, 2 * BATCH)
    facts["train_hits/start_anew_after_a_read"] = backend.train_hits() == (0, 0)


def pixel_checks(backend, arrays: dict, facts: dict) -> None:
    """uint8 data with a pixel table: the batches a step sees (compared bit for bit across
    frameworks by the test), and predictions on it against the same images normalised in numpy."""
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (N, 3, 8, 8), dtype=np.uint8)
    pixels[0] = np.arange(192).reshape(3, 8, 8)  # every value of the table reached somewhere
    pixels[1] = np.arange(192, 384).reshape(3, 8, 8) % 256
    table = pixel_table((0.2, 0.5, 0.7), (0.3, 0.25, 0.0))  # a constant channel: std 0
    labels, positions = rng.integers(0, CLASSES, N), rng.permutation(N)[:BATCH]
    data = backend.put_data(pixels, labels, table)
    arrays["pixels/batch"] = backend.batch_inputs(data, positions)
    facts["pixels/batch_is_numpy_lookup"] = bool(np.array_equal(
        arrays["pixels/batch"].view(np.uint32), normalize(pixels[positions], table).view(np.uint32)))
    images = rng.integers(0, 256, (N, *SHAPE), dtype=np.uint8)
    table1 = pixel_table((0.13,), (0.31,))
    state = backend.init_state(model_input("resnet8", np.float32), OptimizerConfig())
    from_pixels = backend.predict(state, backend.put_data(images, labels, table1), 16)
    from_floats = backend.predict(state, backend.put_data(normalize(images, table1), labels), 16)
    facts["pixels/predict_matches_normalised_floats"] = bool(np.allclose(from_pixels, from_floats, rtol=0, atol=1e-6))


def error_checks(backend, facts: dict) -> None:
    state = backend.init_state(model_input("lenet5", np.float32), OptimizerConfig())
    images, labels, order = inputs(np.float32)
    data = backend.put_data(images, labels)
    plan = backend.put_order(order, np.full(N // BATCH, 0.01))
    facts["errors/step_past_the_order"] = raises(
        lambda: (backend.train_step(state, data, plan, N // BATCH + 5, BATCH), backend.synchronize()))
    facts["errors/images_not_4d"] = raises(lambda: backend.put_data(images[:, 0], labels))
    # float64 data for a float32 model: refused at the step, not silently cast either way.
    data64 = backend.put_data(images.astype(np.float64), labels)
    facts["errors/data_of_another_dtype"] = raises(
        lambda: (backend.train_step(state, data64, plan, 0, BATCH), backend.synchronize()))


def main(framework: str, out: str) -> None:
    backend = get_backend(framework, "cpu")
    arrays: dict[str, np.ndarray] = {}
    info = backend.device_info()
    facts: dict = {"device_info": bool(info.get("framework_version") and info.get("device_name")),
                   "peak_memory_on_cpu": backend.peak_memory_bytes()}
    for model in MODELS:
        float32_checks(backend, model, arrays, facts)
    pixel_checks(backend, arrays, facts)
    for model in MODELS:
        for name, optimizer in OPTIMIZERS.items():
            trajectory(backend, model, name, optimizer, arrays)
        trajectory(backend, model, "multilabel", MULTILABEL, arrays, multilabel=True)
    multilabel_checks(backend, facts)
    train_hits_checks(backend, facts)
    error_checks(backend, facts)
    np.savez(out, facts=np.array(json.dumps(facts)), **arrays)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

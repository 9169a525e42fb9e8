"""`--trainable`: frozen parameters get no gradient, no optimizer state and no weight decay, and
frozen BatchNorm layers keep (and normalise with) their running statistics, in torch and JAX alike
(Knet: the float64 parity run in tests/test_parity.py, which checks the same in all three)."""

from __future__ import annotations

import numpy as np
import pytest

from pybench import models
from pybench.backends import get_backend
from pybench.backends.contract import ModelInput, OptimizerConfig

SHAPE, CLASSES, N, BATCH, STEPS = (3, 16, 16), 10, 24, 8, 3
TRAINABLE = ("layer3", "fc")


@pytest.fixture(scope="module")
def runs():
    """float32 trajectories of resnet8 with layer3 and fc trained, in torch and JAX (AdamW with
    decay: decay on a frozen parameter, or Adam state for one, would move it). float32, because
    JAX in this process may have started without float64; `pybench parity` compares in float64."""
    params, buffers = models.init_weights("resnet8", SHAPE, CLASSES, 0)
    frozen = models.frozen_params("resnet8", SHAPE, CLASSES, TRAINABLE)
    rng = np.random.default_rng(0)
    images = rng.standard_normal((N, *SHAPE)).astype(np.float32)
    labels = rng.integers(0, CLASSES, N)
    out = {}
    for framework in ("torch", "jax"):
        backend = get_backend(framework, "cpu")
        state = backend.init_state(
            ModelInput("resnet8", SHAPE, CLASSES, params, buffers, frozen=frozen),
            OptimizerConfig("adamw", lr=1e-2, weight_decay=0.1))
        data = backend.put_data(images, labels)
        order = backend.put_order(np.arange(N), np.full(STEPS, 1e-2))
        losses = []
        for step in range(STEPS):
            state, loss = backend.train_step(state, data, order, step, BATCH)
            losses.append(backend.to_float(loss))
        out[framework] = (np.array(losses), *backend.export_weights(state), state)
    return params, buffers, frozen, out


def test_frozen_parameters_and_their_norms_statistics_do_not_move(runs):
    params, buffers, frozen, out = runs
    norms = models.frozen_norms("resnet8", SHAPE, CLASSES, frozen)
    assert norms and all(not n.startswith("layer3") for n in norms)
    for framework, (_, final, final_buffers, _) in out.items():
        for name in frozen:
            np.testing.assert_array_equal(final[name], params[name], err_msg=f"{framework} {name}")
        for name in norms:
            for stat in ("running_mean", "running_var"):
                np.testing.assert_array_equal(final_buffers[f"{name}.{stat}"],
                                              buffers[f"{name}.{stat}"])
        # What trains does move, its BatchNorm statistics included.
        assert not np.array_equal(final["fc.weight"], params["fc.weight"])
        assert not np.array_equal(final_buffers["layer3.0.bn1.running_mean"],
                                  buffers["layer3.0.bn1.running_mean"])


def test_torch_and_jax_train_the_same_frozen_model(runs):
    _, _, _, out = runs
    (torch_losses, torch_final, torch_buffers, _), (jax_losses, jax_final, jax_buffers, _) = (
        out["torch"], out["jax"])
    # float32 rounding only, which Adam's division by sqrt(v) magnifies (measured: losses 3e-6
    # apart, weights 7e-5, against AdamW's steps of 1e-2).
    np.testing.assert_allclose(jax_losses, torch_losses, rtol=1e-5)
    for name in torch_final:
        np.testing.assert_allclose(jax_final[name], torch_final[name], atol=5e-4, rtol=0)
    for name in torch_buffers:
        np.testing.assert_allclose(jax_buffers[name], torch_buffers[name], atol=1e-4, rtol=0)


def test_only_trained_parameters_have_optimizer_state_and_gradients(runs):
    import jax

    params, _, frozen, out = runs
    trained = set(params) - frozen
    torch_state = out["torch"][3]
    assert sum(1 for p in torch_state.module.parameters() if p.requires_grad) == len(trained)
    assert all(p.grad is None for name, p in torch_state.module.named_parameters() if name in frozen)
    assert len(torch_state.optimizer.state) == len(trained)
    # JAX: Adam's moments are dicts keyed by parameter name, over the trained ones only.
    keys = {str(path[-1].key) for path, _ in
            jax.tree_util.tree_flatten_with_path(out["jax"][3].opt_state)[0]
            if path and hasattr(path[-1], "key")}
    assert keys == trained


def test_an_unknown_trainable_layer_fails_in_one_line(cli_error):
    cli_error("parity", "--frameworks", "torch", "--models", "resnet8", "--trainable", "layer4,fc",
              fragments=("--trainable layer4: resnet8 has no such layer", "layer3, fc"))

"""How much pybench's harness adds to a step: its loop against a minimal hand-written one.

For each framework (Knet in a process of its own: tests/benchmarks/knet_harness.py), a minimal
LeNet-5 training loop written the way a user would write it (data
on the device, one synchronisation per step, nothing else) runs beside pybench's own
`train_and_evaluate` on the same MNIST arrays, batch size and optimizer. Rounds alternate between
the two so that a noisy machine hurts both alike. The ratio of the median step times is stored
in the benchmark's `extra_info` and printed at the end of the session; the target is under 1.05.
The assertion is deliberately looser (1.25), so that it catches a harness that got heavier, not
a busy neighbour.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from measured import record_measured_times
from needs import missing
from quiet import LoadWatch, judge

from pybench import models
from pybench.backends import availability, get_backend
from pybench.backends.contract import OptimizerConfig
from pybench.config import TrainConfig
from pybench.datasets import batch_order
from pybench.training import train_and_evaluate

STEPS = 100  # per round; the first step of each round (warm-up) is left out of both medians
ROUNDS = 6  # alternating, so that a noisy machine hurts both loops alike
BATCH = 32
OPTIMIZER = OptimizerConfig(name="sgd", lr=0.01, momentum=0.9)
RESULTS: dict[str, dict] = {}  # framework -> figures, printed by conftest's terminal summary


def minimal_torch_loop(x, y, order, params):
    import torch
    import torch.nn.functional as F
    from torch import nn

    net = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
    with torch.no_grad():
        for p, value in zip(net.parameters(), params.values()):
            p.copy_(torch.from_numpy(value))
    opt = torch.optim.SGD(net.parameters(), lr=OPTIMIZER.lr, momentum=OPTIMIZER.momentum)
    X, Y, perm = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(order)
    times = []
    for i in range(STEPS):
        t0 = time.perf_counter()
        idx = perm[i * BATCH:(i + 1) * BATCH]
        opt.zero_grad()
        loss = F.cross_entropy(net(X[idx]), Y[idx])
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return times


def minimal_jax_loop(x, y, order, params):
    import jax
    import jax.numpy as jnp
    import optax

    def conv(x, w, b, pad):
        out = jax.lax.conv_general_dilated(x, w, (1, 1), [(pad, pad)] * 2,
                                           dimension_numbers=("NCHW", "OIHW", "NCHW"),
                                           precision=jax.lax.Precision.HIGHEST)
        return out + b[None, :, None, None]

    def pool(x):
        return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2),
                                     "VALID")

    def net(p, x):
        x = pool(jax.nn.relu(conv(x, p["conv1.weight"], p["conv1.bias"], 2)))
        x = pool(jax.nn.relu(conv(x, p["conv2.weight"], p["conv2.bias"], 0)))
        x = x.reshape(x.shape[0], -1)
        x = jax.nn.relu(x @ p["fc1.weight"].T + p["fc1.bias"])
        x = jax.nn.relu(x @ p["fc2.weight"].T + p["fc2.bias"])
        return x @ p["fc3.weight"].T + p["fc3.bias"]

    tx = optax.sgd(OPTIMIZER.lr, momentum=OPTIMIZER.momentum)

    @jax.jit
    def step(p, opt_state, X, Y, idx):
        def loss_fn(p):
            logits = net(p, X[idx])
            return optax.softmax_cross_entropy_with_integer_labels(logits, Y[idx]).mean()

        loss, grads = jax.value_and_grad(loss_fn)(p)
        updates, opt_state = tx.update(grads, opt_state, p)
        return optax.apply_updates(p, updates), opt_state, loss

    p = {k: jnp.array(v) for k, v in params.items()}
    opt_state = tx.init(p)
    X, Y = jnp.asarray(x), jnp.asarray(y.astype(np.int32))
    batches = jnp.asarray(order[:STEPS * BATCH].astype(np.int32).reshape(STEPS, BATCH))
    times = []
    for i in range(STEPS):
        t0 = time.perf_counter()
        p, opt_state, loss = step(p, opt_state, X, Y, batches[i])
        loss.block_until_ready()
        times.append(time.perf_counter() - t0)
    return times


MINIMAL = {"torch": minimal_torch_loop, "jax": minimal_jax_loop}


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_harness_overhead(benchmark, mnist, framework):
    pytest.importorskip(framework, reason=f"{framework} is not installed")
    x, y = mnist.normalized("train"), mnist.train.labels
    order = batch_order(0, 0, len(y))
    params, _ = models.init_weights("lenet5", mnist.in_shape, mnist.num_classes, 0)
    cfg = TrainConfig(model="lenet5", epochs=1, max_steps=STEPS, batch_size=BATCH,
                      optimizer=OPTIMIZER, seed=0)
    minimal_ms: list[float] = []
    pybench_ms: list[float] = []

    def run_minimal_round():
        minimal_ms.extend(t * 1e3 for t in MINIMAL[framework](x, y, order, params)[1:])

    def run_pybench_round():
        record, _ = train_and_evaluate(get_backend(framework, "cpu"), mnist, cfg)
        pybench_ms.extend(record["step_times_ms"][1:])

    watch = LoadWatch()
    with watch.measuring():
        benchmark.pedantic(run_pybench_round, setup=run_minimal_round, rounds=ROUNDS, iterations=1)
    figures = {"minimal_median_ms": float(np.median(minimal_ms)),
               "pybench_median_ms": float(np.median(pybench_ms)),
               "steps_each": len(pybench_ms)}
    figures["ratio"] = figures["pybench_median_ms"] / figures["minimal_median_ms"]
    benchmark.extra_info.update(figures)
    RESULTS[framework] = figures
    assert len(minimal_ms) == len(pybench_ms) == ROUNDS * (STEPS - 1)
    judge(watch, figures["ratio"] < 1.25, f"{framework}: pybench's step {figures['ratio']:.3f}x the minimal loop's "
                                          f"(asserted below 1.25x): {figures}")


KNET_ROUNDS = 3  # Julia's garbage collector makes single rounds noisier than torch's or JAX's


def test_knet_harness_overhead(benchmark, data_dir, isolated_cache):
    """pybench's knet backend (a juliacall call per step) against a minimal loop inside Julia,
    both timed inside one worker process; pybench's step times are the benchmark's rounds."""
    status = availability("knet")
    if not status.ok:
        missing(f"knet is unavailable: {status.reason}")
    script = Path(__file__).with_name("knet_harness.py")
    env = {**os.environ, "PYBENCH_DATA_DIR": str(data_dir)}
    watch = LoadWatch()
    with watch.measuring():
        out = subprocess.run([sys.executable, str(script), str(STEPS), str(KNET_ROUNDS), str(BATCH)],
                             capture_output=True, text=True, env=env, timeout=1800)
    assert out.returncode == 0, out.stderr[-3000:]
    measured = json.loads(out.stdout.strip().splitlines()[-1])
    minimal_ms, pybench_ms = measured["minimal_ms"], measured["pybench_ms"]
    record_measured_times(benchmark, [t / 1e3 for t in pybench_ms], "inside the knet worker")
    figures = {"minimal_median_ms": float(np.median(minimal_ms)),
               "pybench_median_ms": float(np.median(pybench_ms)),
               "steps_each": len(pybench_ms)}
    figures["ratio"] = figures["pybench_median_ms"] / figures["minimal_median_ms"]
    benchmark.extra_info.update(figures, framework_version=measured["framework_version"])
    RESULTS["knet"] = figures
    assert len(minimal_ms) == len(pybench_ms) == KNET_ROUNDS * (STEPS - 1)
    judge(watch, figures["ratio"] < 1.25, f"knet: pybench's step {figures['ratio']:.3f}x the minimal loop's "
                                          f"(asserted below 1.25x): {figures}")

"""Knet's harness overhead, measured in a process of its own (juliacall must not share a process
with torch, which the pytest process has imported): pybench's knet backend driven from Python,
step by step through juliacall, against a minimal LeNet-5 loop written in plain Knet the way a
Julia user would write it (Params, `conv4(mode=1)`, `pool`, `nll`, `@diff`, `Momentum`), entirely
inside Julia. Both see the same MNIST arrays, weights, batch order and optimizer, and alternate
rounds so that a noisy machine hurts both alike.

    python tests/benchmarks/knet_harness.py STEPS ROUNDS BATCH   -> one JSON line on stdout
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pybench import models
from pybench.backends import get_backend, knet_layout
from pybench.backends.contract import OptimizerConfig
from pybench.backends.knet_backend import julia_dict, julia_main
from pybench.config import TrainConfig
from pybench.datasets import batch_order, load_dataset
from pybench.training import train_and_evaluate

OPTIMIZER = OptimizerConfig(name="sgd", lr=0.01, momentum=0.9)

# A user's LeNet-5 in plain Knet (Params, `@diff`, one Momentum per Param, the loop inside Julia),
# shared with the step-variant search.
KNET_PLAIN = Path(__file__).resolve().parents[2] / "tools" / "step_search" / "knet_plain.jl"


def main(steps: int, rounds: int, batch: int) -> dict:
    mnist = load_dataset("mnist", progress=False)
    x, y = mnist.normalized("train"), mnist.train.labels
    order = batch_order(0, 0, len(y))
    params, _ = models.init_weights("lenet5", mnist.in_shape, mnist.num_classes, 0)
    cfg = TrainConfig(model="lenet5", epochs=1, max_steps=steps, batch_size=batch,
                      optimizer=OPTIMIZER, seed=0)
    backend = get_backend("knet", "cpu")
    jl = julia_main()
    jl.seval(f"include({json.dumps(str(KNET_PLAIN))})")
    minimal_loop = jl.seval("plain_lenet5_loop")
    images = knet_layout.images_to_knet(x)
    weights = julia_dict(knet_layout.weights_to_knet(params))
    minimal_ms: list[float] = []
    pybench_ms: list[float] = []
    for _ in range(rounds):
        times, _ = minimal_loop(images, knet_layout.labels_to_knet(y),
                                knet_layout.order_to_knet(order), weights, steps, batch,
                                OPTIMIZER.lr, OPTIMIZER.momentum)
        minimal_ms += [t * 1e3 for t in list(times)[1:]]
        record, _ = train_and_evaluate(backend, mnist, cfg)
        pybench_ms += record["step_times_ms"][1:]
    return {"minimal_ms": minimal_ms, "pybench_ms": pybench_ms,
            "framework_version": backend.device_info()["framework_version"]}


if __name__ == "__main__":
    print(json.dumps(main(*map(int, sys.argv[1:4]))))

"""Options read once, when a framework starts (XLA's flags), and the worker process that serves
rounds of one framework's step under them (`RoundWorker`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from step_search.common import Round, Search, backend_variant, make_inputs
from step_search.keras_models import KERAS_ENV, keras_variant
from step_search.knet_variants import knet_variant

JAX_PROCESS_OPTIONS: dict[str, dict[str, str]] = {
    "no options (default)": {},
    "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1": {
        "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"},
    "--xla_cpu_use_onednn=true": {"XLA_FLAGS": "--xla_cpu_use_onednn=true"},
    "--xla_cpu_use_xnnpack=true": {"XLA_FLAGS": "--xla_cpu_use_xnnpack=true"},
    "--xla_cpu_enable_concurrency_optimized_scheduler=true": {
        "XLA_FLAGS": "--xla_cpu_enable_concurrency_optimized_scheduler=true"},
    "JAX_CPU_ENABLE_ASYNC_DISPATCH=false": {"JAX_CPU_ENABLE_ASYNC_DISPATCH": "false"},
}

# Run as `python tools/step_search`: its __main__ serves rounds under --serve-rounds.
PACKAGE = Path(__file__).resolve().parent


class RoundWorker:
    """This file run in a process of its own with `env` added to its environment: it serves
    rounds of one framework's step (the default backend; for knet, the form the environment
    names; Keras when KERAS_ENV is set), one per request, each a JSON line."""

    def __init__(self, framework: str, search: Search, env: dict[str, str]):
        self.process = subprocess.Popen(
            [sys.executable, str(PACKAGE), "--serve-rounds", framework, "--model",
             search.model_arg or search.model, "--steps", str(search.steps),
             *(["--image-size", str(search.image_size)] if search.image_size else [])],
            env={**os.environ, **env}, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def round(self) -> Round:
        self.process.stdin.write("round\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"round worker exited with status {self.process.wait()}")
        return Round(**json.loads(line))

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=60)


def serve_rounds(framework: str, search: Search):
    """The worker side of RoundWorker: build the step once, then one round per line."""
    inputs = make_inputs(search.load_mnist(), search.model)
    if os.environ.get(KERAS_ENV):
        run = keras_variant(inputs, search)
    elif framework == "knet":
        run = knet_variant(inputs, search)
    else:
        run = backend_variant(framework, inputs, search)
    # Julia's libuv makes the inherited stdin pipe non-blocking when it starts: reading it would
    # then see "no data yet" as the end of input and end the worker between two requests.
    os.set_blocking(sys.stdin.fileno(), True)
    for _ in sys.stdin:
        result = run()
        print(json.dumps(result.__dict__), flush=True)

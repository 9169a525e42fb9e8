"""Knet's forms, each in a worker process of its own (Julia's threads are read once, when it
starts): pybench's backend under several thread settings, and a plain-Knet loop inside Julia
(knet_plain.jl)."""

from __future__ import annotations

import json
import os

from pybench import models
from step_search.common import BATCH, KNET_PLAIN, OPTIMIZER, Inputs, Round, Search, Variant, backend_variant

# KNET_FORM_ENV picks pybench's knet backend ("backend", driven as pybench.training drives it)
# or the plain-Knet loop of knet_plain.jl ("plain"); KNET_SETUP_ENV is Julia code run before the
# step is built. NNlib's CPU convolutions (which Knet's conv4 calls) split the batch over Julia's
# threads; OpenBLAS has threads of its own for the matrix products.
KNET_FORM_ENV = "PYBENCH_BENCH_KNET_FORM"
KNET_SETUP_ENV = "PYBENCH_BENCH_KNET_SETUP"


def blas_threads(n: int) -> str:
    """Julia code setting OpenBLAS's threads (run after the backend's own choice)."""
    return f"import LinearAlgebra; LinearAlgebra.BLAS.set_num_threads({n})"


def julia_threads(n: int) -> dict[str, str]:
    """The environment that starts Julia with n threads: JULIA_NUM_THREADS for Julia itself
    (what juliacall 0.5.1 on the CI toolchain's Julia 1.5 reads), PYTHON_JULIACALL_THREADS for
    juliacall 0.9."""
    return {"JULIA_NUM_THREADS": str(n), "PYTHON_JULIACALL_THREADS": str(n)}


KNET_PROCESS_OPTIONS: dict[str, dict[str, str]] = {
    "pybench backend as it starts (default: a Julia thread per core, BLAS on 1 thread)": {},
    "pybench backend, 1 Julia thread, BLAS as it starts": julia_threads(1),
    "pybench backend, 1 Julia thread, BLAS on 1 thread": {
        **julia_threads(1), KNET_SETUP_ENV: blas_threads(1)},
    "pybench backend, 2 Julia threads, BLAS on 2 threads": {
        **julia_threads(2), KNET_SETUP_ENV: blas_threads(2)},
    "plain Knet loop inside Julia (Knet's Momentum), 1 Julia thread": {
        **julia_threads(1), KNET_FORM_ENV: "plain"},
    "plain Knet loop inside Julia (Knet's Momentum), 2 Julia threads, BLAS on 1 thread": {
        **julia_threads(2), KNET_FORM_ENV: "plain"},
}

def knet_process_options(model: str) -> dict[str, dict[str, str]]:
    """The knet table's rows for `model`: the plain-Knet loop exists for LeNet-5 and the ResNets
    of basic blocks behind the small stem (knet_plain.jl: resnet8, resnet20, resnet18), the
    backend's thread settings for every model."""
    kind = models.family(model)
    plain = model == "lenet5" or (kind == models.RESNET and models.RESNETS[model].stem == models.SMALL_STEM
                                     and models.RESNETS[model].block == models.BASIC)
    return {name: env for name, env in KNET_PROCESS_OPTIONS.items()
            if plain or env.get(KNET_FORM_ENV) != "plain"}


def knet_variant(inputs: Inputs, search: Search) -> Variant:
    """The Knet form KNET_FORM_ENV names, after the Julia code in KNET_SETUP_ENV."""
    from pybench.backends.knet_backend import julia_dict, julia_main

    jl = julia_main()
    if os.environ.get(KNET_SETUP_ENV):
        jl.seval(os.environ[KNET_SETUP_ENV])
    if os.environ.get(KNET_FORM_ENV, "backend") == "backend":
        return backend_variant("knet", inputs, search)
    from pybench.backends import knet_layout

    jl.seval(f"include({json.dumps(str(KNET_PLAIN))})")
    args = [knet_layout.images_to_knet(inputs.images), knet_layout.labels_to_knet(inputs.labels),
            knet_layout.order_to_knet(inputs.order),
            julia_dict(knet_layout.weights_to_knet(inputs.params))]
    if inputs.model == "lenet5":
        loop = jl.seval("plain_lenet5_loop")
    else:
        loop = jl.seval("plain_resnet_loop")
        blocks = models.resnet_blocks(models.RESNETS[inputs.model])
        args.append(";".join(f"{b.prefix},{b.stride}" for b in blocks))

    def run() -> Round:  # every round from the canonical weights, steps timed inside Julia
        times, losses = loop(*args, search.steps, BATCH, OPTIMIZER.lr, OPTIMIZER.momentum)
        times_ms = [t * 1e3 for t in list(times)]
        return Round(times_ms[1:], times_ms[0], float(list(losses)[0]))

    return run

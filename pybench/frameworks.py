"""The frameworks pybench compares, as data: their names, where each backend lives, what
identifies its install, and the opt-in variants.

The one list of frameworks: the command line's and a sweep's defaults, `list`, the recorded
versions and the conformance tests all derive from it, so a new backend registered here is never
silently left out. Nothing here imports a framework (`pybench.backends` does, when asked)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Framework:
    """One registered framework: where its backend lives and what identifies its install."""

    module: str
    backend_class: str
    description: str
    distributions: tuple[str, ...]  # installed distributions whose versions every result records


FRAMEWORKS = {
    "torch": Framework("pybench.backends.torch_backend", "TorchBackend",
                       "PyTorch (nn.Module, torch.optim)", ("torch", "torchvision")),
    "jax": Framework("pybench.backends.jax_backend", "JaxBackend",
                     "JAX (pure functions, jit, optax)", ("jax", "jaxlib", "optax")),
    "knet": Framework("pybench.backends.knet_backend", "KnetBackend",
                      "Knet.jl through juliacall (Julia, CUDA.jl)", ("juliacall",)),
}
FRAMEWORK_NAMES = tuple(FRAMEWORKS)
FRAMEWORK_DESCRIPTIONS = {name: f.description for name, f in FRAMEWORKS.items()}

# Opt-in ways of running a framework other than its default: each runs and reports as a framework
# of its own name (its own row everywhere, never mixed with the default's figures). name ->
# (framework, backend attributes set before init_state).
VARIANTS = {
    "torch.compile": ("torch", {"compile_step": True}),
}
VARIANT_DESCRIPTIONS = {
    "torch.compile": "PyTorch with the training step's module under torch.compile (opt-in)",
}


def framework_problem(name: str) -> str | None:
    """Why `name` is not a framework or a variant (None when it is one)."""
    if name in FRAMEWORKS or name in VARIANTS:
        return None
    return (f"unknown framework {name!r}: choose from {', '.join(FRAMEWORKS)} "
            f"(or the variant {', '.join(VARIANTS)})")

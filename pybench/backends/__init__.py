"""The framework registry (`pybench.frameworks`) made live: names to backend classes, imported
only when asked for.

Importing a backend imports its framework, which is slow (PyTorch, JAX) or must not happen in a
process that already holds another framework (juliacall beside torch can crash). So nothing here
imports a backend until `get_backend_class` is called, normally inside a worker process.
"""

from __future__ import annotations

import importlib
import importlib.metadata

from pybench.backends.contract import Availability, Backend
from pybench.errors import PybenchError, UnavailableError
from pybench.frameworks import FRAMEWORKS, VARIANTS, framework_problem


def check_framework(name: str) -> None:
    problem = framework_problem(name)
    if problem:
        raise PybenchError(problem)


def get_backend_class(name: str) -> type[Backend]:
    check_framework(name)
    framework = FRAMEWORKS[VARIANTS[name][0] if name in VARIANTS else name]
    module_name, class_name = framework.module, framework.backend_class
    return getattr(importlib.import_module(module_name), class_name)


def availability(name: str) -> Availability:
    """Whether `name` can run here, and if not why. Never raises for a known framework."""
    try:
        return get_backend_class(name).availability()
    except Exception as exc:  # a broken install must show up as a reason, not a crash
        return Availability(False, reason=f"{type(exc).__name__}: {exc}")


def framework_versions() -> dict[str, dict[str, str | None]]:
    """Per framework, the installed version of each of its distributions (package metadata:
    nothing is imported, no device starts; None when not installed) and what its availability
    check found (`backend`: e.g. the Julia and Knet versions behind juliacall)."""
    versions: dict[str, dict[str, str | None]] = {}
    for name, framework in FRAMEWORKS.items():
        versions[name] = {}
        for distribution in framework.distributions:
            try:
                versions[name][distribution] = importlib.metadata.version(distribution)
            except importlib.metadata.PackageNotFoundError:
                versions[name][distribution] = None
        status = availability(name)
        versions[name]["backend"] = status.version if status.ok else f"unavailable: {status.reason}"
    return versions


def gpu_support(name: str) -> str:
    """`name`'s CUDA build and whether it can use a GPU here (one line); never raises."""
    try:
        return get_backend_class(name).gpu_support()
    except Exception as exc:
        return f"unknown ({type(exc).__name__}: {exc})"


def get_backend(name: str, device: str) -> Backend:
    """A ready backend for `name` on `device` ("auto", "cpu" or "cuda")."""
    cls = get_backend_class(name)
    status = cls.availability()
    if not status.ok:
        raise UnavailableError(f"{name} is unavailable: {status.reason}")
    if device == "auto":
        device = "cuda" if cls.cuda_usable() else "cpu"
    elif device == "cuda" and not cls.cuda_usable():
        raise UnavailableError(f"--device cuda: {name} sees no usable CUDA device on this machine")
    elif device not in ("cpu", "cuda"):
        raise PybenchError(f"unknown device {device!r}: choose auto, cpu or cuda")
    backend = cls(device)
    for attribute, value in VARIANTS.get(name, (None, {}))[1].items():
        setattr(backend, attribute, value)
    return backend

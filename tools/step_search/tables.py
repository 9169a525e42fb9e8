"""The search's tables: the variants of each, run in this process or in worker processes, and
the Markdown they print as."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from pybench.backends import availability
from step_search.common import BACKEND_VARIANTS, Inputs, Search, Variant, backend_variant
from step_search.jax_variants import JAX_LENET5_VARIANTS, jax_variant
from step_search.keras_models import KERAS_OPTIONS, keras_builds, keras_installed
from step_search.knet_variants import knet_process_options
from step_search.processes import JAX_PROCESS_OPTIONS, RoundWorker
from step_search.rounds import Drive, interleaved_rounds, plain_drive, summarize
from step_search.torch_variants import torch_variant, torch_variants


def in_process_variants(framework: str, inputs: Inputs, search: Search) -> dict[str, Variant]:
    """Every in-process candidate of `framework` for the model, the backend's default first."""
    variants = {"default": backend_variant(framework, inputs, search)}
    for name, change in BACKEND_VARIANTS[framework].items():
        variants[name] = backend_variant(framework, inputs, search, change)
    if framework == "torch":
        for name, v in torch_variants(search).items():
            variants[name] = torch_variant(inputs, search, v)
    elif inputs.model == "lenet5":
        for name, v in JAX_LENET5_VARIANTS.items():
            variants[name] = jax_variant(inputs, search, v)
    return variants


def run_in_process(framework: str, inputs: Inputs, search: Search,
                   drive: Drive = plain_drive) -> list[dict]:
    variants = in_process_variants(framework, inputs, search)
    measured = interleaved_rounds(variants, search.rounds, drive)
    compiling = {name for name, v in variants.items() if getattr(v, "compiles", False)}
    rows = summarize(measured, compiling)
    rows[0]["variant"] = f"pybench {framework} backend (default)"
    return rows


def run_in_processes(framework: str, search: Search, options: dict[str, dict[str, str]],
                     cache_root: Path, drive: Drive = plain_drive) -> list[dict]:
    """Rounds of `framework` in one worker process per entry of `options` (the first is the
    default), alternating; the summary rows. Each worker loads MNIST from the data folder into
    a dataset cache of its own under `cache_root`."""
    labels = ["default", *list(options)[1:]]
    workers = {label: RoundWorker(framework, search,
                                  {**env, "PYBENCH_CACHE_DIR": str(cache_root / f"cache{i}")})
               for i, (label, env) in enumerate(zip(labels, options.values()))}
    try:  # a warm-up round each (compilation, not measured), which also takes the first step
        first_losses = {name: worker.round().first_loss for name, worker in workers.items()}
        measured = interleaved_rounds({name: w.round for name, w in workers.items()},
                                      search.rounds, drive)
    finally:
        for worker in workers.values():
            worker.close()
    rows = summarize(measured, set(), first_losses)
    # The default's label says what it is; "default" only keyed the rounds.
    rows[0]["variant"] = list(options)[0]
    return rows


def table_skip_reason(table: str, model: str = "lenet5") -> str | None:
    """Why `table` cannot run here for `model`, or None."""
    framework = table.split()[0]
    if framework == "knet":
        status = availability("knet")
        return None if status.ok else f"knet is unavailable: {status.reason}"
    if importlib.util.find_spec(framework) is None:
        return f"{framework} is not installed"
    if table.endswith("against Keras") and not keras_installed():
        return ("keras is not installed (pip install -e '.[bench]'): the high-level-library "
                "yardstick is optional")
    if table.endswith("against Keras") and not keras_builds(model):
        return (f"the Keras yardstick has no {model} (it has lenet5, the small-stem ResNets and "
                "densenet121-imagenet)")
    return None


def run_table(table: str, search: Search, inputs: Inputs | None, cache_root: Path,
              drive: Drive = plain_drive) -> list[dict]:
    """The rows of one of TABLES for `search.model`."""
    if table in ("torch", "jax"):
        return run_in_process(table, inputs, search, drive)
    if table == "jax process options":
        return run_in_processes("jax", search, JAX_PROCESS_OPTIONS, cache_root, drive)
    if table == "knet":
        return run_in_processes("knet", search, knet_process_options(search.model), cache_root, drive)
    framework = table.split()[0]
    return run_in_processes(framework, search, KERAS_OPTIONS[framework], cache_root, drive)


def format_table(title: str, rows: list[dict]) -> str:
    """A Markdown table of one search table, fastest first, the default in bold."""
    lines = [f"#### {title}", "", "| variant | median step | / default |", "| --- | ---: | ---: |"]
    for row in sorted(rows, key=lambda r: r["median_ms"]):
        name = f"**{row['variant']}**" if row is rows[0] else row["variant"]
        extra = f" (compiling {row['compile_s']:.1f} s apart)" if "compile_s" in row else ""
        lines.append(f"| {name}{extra} | {row['median_ms']:.2f} ms | {row['ratio']:.2f} |")
    return "\n".join(lines)

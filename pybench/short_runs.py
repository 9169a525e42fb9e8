"""A test-only override: `PYBENCH_SHORT_RUNS=1` shortens every run a command starts, so that
the commands the README and docs/ show run as written in the tests (tests/test_doc_commands.py)
in seconds, and a renamed option or a stale example fails there.

With it set, `compare` and `sweep` train torch alone (JAX and Knet start slower than the runs
they would make), for at most `STEPS` steps per run, on at most two seeds, one repeat, and a
search's trials and final seeds are cut to two and one; `parity` runs `STEPS` steps; the
embeddings stored for t-SNE are capped, and reports are written without their figures (drawing
them is most of a report's time; `tests/test_figures.py` and the real runs' tests hold the
figures). Everything else (the options, the data, the checks, the results, the report's text) is
what the command does unshortened. Never set it for a real comparison:
every results file records it (`short_runs: true`), and the console says so first.
"""

from __future__ import annotations

import os
import sys

ENV = "PYBENCH_SHORT_RUNS"
STEPS = 2
SEEDS = 2
EMBEDDINGS = 60  # t-SNE needs a few dozen points
FRAMEWORK = "torch"


def active() -> bool:
    return os.environ.get(ENV, "") not in ("", "0")


def announce() -> None:
    print(f"pybench: {ENV} is set (test-only): every run is cut to {STEPS} steps, torch alone", file=sys.stderr)


def shorten_arguments(args):
    """`compare` and `parity` arguments, shortened in place (see the module docstring)."""
    if not active():
        return args
    announce()
    if getattr(args, "frameworks", None) is not None:
        args.frameworks = (FRAMEWORK,)
    if getattr(args, "compile", False):
        args.compile = False
    if args.command == "compare":
        args.max_steps = min(args.max_steps or STEPS, STEPS)
        if args.seeds:
            args.seeds = tuple(args.seeds)[:SEEDS]
        args.repeats = 1
        args.embeddings = min(args.embeddings, EMBEDDINGS)
    if args.command == "parity":
        args.steps = min(args.steps, STEPS)
    return args


def shorten_sweep(raw: dict) -> dict:
    """A sweep file's keys, shortened (see the module docstring)."""
    if not active():
        return raw
    announce()
    raw = {**raw, "frameworks": [FRAMEWORK]}
    steps = raw.get("max_steps", raw.get("max-steps"))
    raw["max_steps"] = min(steps, STEPS) if isinstance(steps, int) else STEPS
    raw.pop("max-steps", None)
    for key in ("seeds", "seed"):
        if isinstance(raw.get(key), list):
            raw[key] = raw[key][:1]
    if "search" in raw:
        if isinstance(raw.get("trials"), int):
            raw["trials"] = min(raw["trials"], SEEDS)
        final = raw.get("final_seeds")
        raw["final_seeds"] = final[:1] if isinstance(final, list) else 1
    return raw


def step_limit() -> int | None:
    """The steps a script's own training loop may take (None: unshortened)."""
    return STEPS if active() else None


def figures_wanted(plots: bool) -> bool:
    """Whether a report draws its figures: as asked, unless runs are shortened."""
    return plots and not active()

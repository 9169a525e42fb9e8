"""The command line: `python tools/step_search --model resnet8` (see the package docstring)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import step_search
from pybench import models
from pybench.errors import PybenchError
from step_search.common import (
    BATCH,
    DEFAULT_ROUNDS,
    DEFAULT_STEPS,
    FALLBACK_STEPS,
    OPTIMIZER,
    TABLES,
    Search,
    make_inputs,
)
from step_search.processes import serve_rounds
from step_search.rounds import verdict
from step_search.tables import format_table, run_table, table_skip_reason


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tools/step_search", description=step_search.__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="lenet5",
                        help=f"one of {', '.join(models.MODEL_NAMES)}, or a CNN file "
                             "(.toml, .json) (default lenet5)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="resize MNIST to N x N (default 28, as it is; 32 for a model that "
                             "needs more, such as densenet121-imagenet)")
    parser.add_argument("--tables", default=",".join(TABLES),
                        help=f"comma-separated, from: {', '.join(TABLES)} (default all)")
    parser.add_argument("--steps", type=int, default=None,
                        help="steps per round and variant, the first untimed (default per model: "
                             + ", ".join(f"{m} {n}" for m, n in DEFAULT_STEPS.items())
                             + f", any other {FALLBACK_STEPS})")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS,
                        help=f"alternating rounds per variant (default {DEFAULT_ROUNDS})")
    parser.add_argument("--compile", action="store_true",
                        help="add torch.compile to torch's variants (compiles for tens of seconds)")
    parser.add_argument("--json", type=Path, default=None,
                        help="also write every table's rows to this JSON file")
    parser.add_argument("--serve-rounds", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def checked_search(args: argparse.Namespace) -> tuple[Search, list[str]]:
    """The search and tables the arguments ask for, or PybenchError naming the bad value."""
    model = models.model_names([args.model])[0]
    image_size = args.image_size
    if image_size is None and not models.builds_for(model, (1, 28, 28), 10):
        image_size = 32
    if image_size is not None and not models.builds_for(model, (1, image_size, image_size), 10):
        raise PybenchError(f"--image-size {image_size}: {model} cannot be built for "
                           f"{image_size}x{image_size} images")
    tables = [t.strip() for t in args.tables.split(",") if t.strip()]
    unknown = [t for t in tables if t not in TABLES]
    if unknown or not tables:
        raise PybenchError(f"--tables {args.tables!r}: unknown table {', '.join(unknown) or '(none)'}"
                           f"; choose from {', '.join(TABLES)}")
    steps = DEFAULT_STEPS.get(model, FALLBACK_STEPS) if args.steps is None else args.steps
    if steps < 2 or args.rounds < 1:
        raise PybenchError(f"--steps {steps} --rounds {args.rounds}: a round needs at least 2 "
                           "steps (the first is untimed) and a search at least 1 round")
    return Search(model, steps, args.rounds, args.compile, args.model, image_size), tables


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        search, tables = checked_search(args)
        if args.serve_rounds:
            serve_rounds(args.serve_rounds, search)
            return 0
        return run_search(search, tables, args.json)
    except PybenchError as e:
        print(f"step_search: {e}", file=sys.stderr)
        return 2


def run_search(search: Search, tables: list[str], json_path: Path | None) -> int:
    inputs = None
    if {"torch", "jax"} & set(tables):
        inputs = make_inputs(search.load_mnist(), search.model)
    results, failures = {}, []
    size = search.image_size or 28
    print(f"step-variant search: {search.model}, MNIST at {size}x{size}, batch {BATCH}, SGD "
          f"{OPTIMIZER.lr} momentum "
          f"{OPTIMIZER.momentum}, {search.rounds} rounds of {search.steps} steps per variant\n",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="step-search-") as tmp:
        for table in tables:
            reason = table_skip_reason(table, search.model)
            if reason:
                print(f"#### {table}\n\nskipped: {reason}\n", flush=True)
                continue
            rows = run_table(table, search, inputs, Path(tmp))
            results[table] = rows
            print(format_table(f"{search.model}: {table}", rows) + "\n", flush=True)
            failed = verdict(rows)
            if failed:
                failures.append(f"{search.model}, {table}: {failed}")
    if json_path:
        json_path.write_text(json.dumps({"search": asdict(search), "tables": results}, indent=1))
    for failure in failures:
        print(f"step_search: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

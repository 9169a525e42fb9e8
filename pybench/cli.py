"""The command line: `python -m pybench list | datasets info | compare | parity | sweep | report`.

Thin on purpose: each command parses its options, calls one function of the package and prints
its result. Errors a user can fix arrive as `PybenchError` and are printed as one line on stderr
with exit status 2; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path

from pybench import short_runs
from pybench.errors import Interrupted, PybenchError
from pybench.models import MODEL_NAMES, model_names
from pybench.options import (  # noqa: F401 - the argument types, for anyone who used them from here
    DATASET_HELP,
    DEFAULT_BATCH_SIZE,
    add_compare_arguments,
    add_training_arguments,
    comma_list,
    epoch_list,
    finite_float,
    fraction_below_one,
    momentum_value,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    seed_list,
    train_config,
)
from pybench.recipes import RECIPES


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the usage stays available through --help)."""

    def error(self, message):
        command = self.prog.split(" ", 1)[1:]  # "pybench compare" -> name the subcommand
        where = f" ({command[0]})" if command else ""
        self.exit(2, f"pybench: error: {message}{where}\n")


def build_parser() -> argparse.ArgumentParser:
    from pybench.datasets import add_dataset_arguments

    parser = OneLineParser(prog="pybench", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    parser.subcommand_parsers = sub.choices  # for --recipe (see parse_arguments)

    sub.add_parser("list", help="datasets, models and frameworks, with availability")

    datasets = sub.add_parser("datasets", help="dataset commands")
    dsub = datasets.add_subparsers(dest="datasets_command", required=True,
                                   parser_class=OneLineParser)
    info = dsub.add_parser("info", help="splits, shapes, class counts, normalisation, fingerprint")
    info.add_argument("spec", help=DATASET_HELP)
    add_dataset_arguments(info)

    compare = sub.add_parser("compare", help="train every framework and model; store results")
    add_compare_arguments(compare)

    parity = sub.add_parser("parity", help="prove every framework computes the same thing")
    parity.add_argument("--models", type=comma_list, default=None,
                        help="comma-separated, CNN files (.toml, .json) included (default: every "
                             "built-in model that takes the dataset's images, the others said)")
    parity.add_argument("--steps", type=positive_int, default=10,
                        help="SGD steps of the trajectory check (default 10)")
    parity.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                        help="precision of the trajectory check (default float64; the forward "
                             "check is always float32)")
    parity.add_argument("--dataset", default="digits",
                        help=f"data for the batches: {DATASET_HELP} (default: digits, offline)")
    parity.add_argument("--out", type=Path, default=None,
                        help="folder for parity.json and the arrays (default "
                             "runs/<timestamp>-parity)")
    add_training_arguments(parity, batch_size=16)
    add_dataset_arguments(parity)

    sweep = sub.add_parser("sweep", help="train every combination of a SWEEP.toml grid")
    sweep.add_argument("sweep_file", type=Path, metavar="SWEEP.toml")
    sweep.add_argument("--executor", choices=("local", "ray"), default="local",
                       help="local: one run after another here; ray: Ray tasks (pip install "
                            "-e '.[ray]')")
    sweep.add_argument("--address", default=None,
                       help="the Ray cluster to use, e.g. auto or HOST:6379 (default: start "
                            "Ray locally)")
    sweep.add_argument("--out", type=Path, default=None,
                       help="results folder (default runs/<timestamp>-sweep-<name>)")
    sweep.add_argument("--resume", action="store_true",
                       help="keep the finished runs in --out and run only the others")
    sweep.add_argument("--no-report", action="store_true", help="skip report.md and plots")

    report = sub.add_parser("report", help="write report.md, report.html and plots from "
                                           "stored results")
    report.add_argument("run_dirs", type=Path, nargs="+", metavar="RESULTS",
                        help="folders `compare` or `sweep` wrote (several: one report holding "
                             "every run, seeds of one configuration aggregated), or a "
                             "pytest-benchmark JSON file (--benchmark-json) or .benchmarks "
                             "folder (the newest run)")
    report.add_argument("--out", type=Path, default=None,
                        help="default: the results folder; for a JSON file, FILE-report/ "
                             "beside it; for .benchmarks, .benchmarks/report/; for several, "
                             "runs/<timestamp>-report/")
    report.add_argument("--baseline", type=Path, default=None, metavar="RESULTS",
                        help="hold every run against this results folder's: ratios, and "
                             "Mann-Whitney U on the step times")
    report.add_argument("--fail-on-regression", type=positive_float, default=None,
                        metavar="PCT",
                        help="with --baseline: exit 1 when a step time is significantly more "
                             "than PCT%% slower than the baseline's")
    report.add_argument("--force", action="store_true",
                        help="with --baseline: compare runs whose configuration or dataset differs "
                             "from the baseline's (the differences are listed either way; without "
                             "--force such runs get no ratio and no verdict)")
    report.add_argument("--no-plots", action="store_true", help="write no PNG figures")
    return parser


def parse_arguments(argv: list[str] | None):
    """argparse's namespace; with --recipe, parsed again with the recipe's values as the
    defaults, so options given on the command line still win."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "recipe", None):
        parser.subcommand_parsers[args.command].set_defaults(**RECIPES[args.recipe])
        args = parser.parse_args(argv)
    return short_runs.shorten_arguments(args)  # the tests' override: a no-op unless PYBENCH_SHORT_RUNS


def cmd_list(args) -> int:
    from pybench.backends import FRAMEWORK_DESCRIPTIONS, VARIANT_DESCRIPTIONS, availability, gpu_support
    from pybench.datasets import DATASETS
    from pybench.models import MODEL_DESCRIPTIONS

    print("datasets:")
    for name, text in DATASETS.items():
        print(f"  {name:10} {text}")
    print("models:")
    width = max(map(len, MODEL_DESCRIPTIONS))
    for name, text in MODEL_DESCRIPTIONS.items():
        print(f"  {name:{width}} {text}")
    print(f"  {'FILE.toml':{width}} your own CNN, defined once in a TOML or JSON file (--models "
          "examples/tissue-cnn.toml; docs/models.md, Your own CNN)")
    print("frameworks:")
    for name, text in FRAMEWORK_DESCRIPTIONS.items():
        status = availability(name)
        state = f"available ({status.version})" if status.ok else f"unavailable: {status.reason}"
        print(f"  {name:10} {text}: {state}")
        if status.ok:
            print(f"  {'':10} GPU: {gpu_support(name)}")
    print("variants (opt-in, each reported as a framework of its own):")
    for name, text in VARIANT_DESCRIPTIONS.items():
        print(f"  {name:14} {text}")
    return 0


def cmd_datasets(args) -> int:
    from pybench.datasets import dataset_options, describe_dataset, load_dataset

    print(describe_dataset(load_dataset(args.spec, **dataset_options(args))))
    return 0


def cmd_compare(args) -> int:
    from pybench.commands.compare import CompareConfig, default_out_dir, run_compare
    from pybench.datasets import dataset_options
    from pybench.report.console import summary_text
    from pybench.run.life import command_line

    if args.seeds is not None and args.seed is not None:
        raise PybenchError(f"--seed {args.seed} and --seeds {','.join(map(str, args.seeds))}: "
                           "give one of them")
    cfg = CompareConfig(dataset=args.dataset, frameworks=with_variants(args),
                        models=model_names(args.models),
                        train=train_config(args), device=args.device, out=args.out,
                        timeout=args.timeout, dataset_options=dataset_options(args),
                        seeds=args.seeds or (), repeats=args.repeats, gpu=args.gpu,
                        tensorboard=args.tensorboard, mlflow=args.mlflow)
    out = cfg.out
    if out is None:  # named here, so that an interrupted run can say where its results are
        out = default_out_dir(cfg.dataset)
        cfg = replace(cfg, out=out)
    try:
        out_dir, document = run_compare(cfg, command=command_line())
    except Interrupted as exc:
        return report_interrupted(args, Path(out), exc)
    print(summary_text(document))
    print(f"results: {out_dir / 'results.json'}")
    if not args.no_report:
        from pybench.report import write_report

        print(f"report: {write_report(out_dir)}")
    return 0 if any(r["status"] == "ok" for r in document["runs"]) else 1


def with_variants(args) -> tuple[str, ...]:
    """--frameworks, with torch.compile right after torch under --compile."""
    frameworks = tuple(args.frameworks)
    if not args.compile or "torch.compile" in frameworks:
        return frameworks
    if "torch" not in frameworks:
        raise PybenchError("--compile runs torch.compile beside torch: name torch in "
                           "--frameworks")
    at = frameworks.index("torch") + 1
    return frameworks[:at] + ("torch.compile",) + frameworks[at:]


def report_interrupted(args, out_dir: Path, exc: Interrupted) -> int:
    """After a signal: the report from what finished (if any run did), then one line."""
    from pybench.report import write_report

    results = out_dir / "results.json"
    if not results.exists():
        print(f"pybench: {exc} before any run started", file=sys.stderr)
        return exc.exit_status
    report = ""
    if not args.no_report:
        report = f", report {write_report(out_dir)}"
    print(f"pybench: {exc}: finished runs kept in {results} (the stopped run is marked "
          f"interrupted){report}", file=sys.stderr)
    return exc.exit_status


def cmd_parity(args) -> int:
    from pybench.commands.parity import ParityConfig, run_parity
    from pybench.datasets import dataset_options
    from pybench.report.console import parity_table
    from pybench.run.life import default_out_dir

    cfg = ParityConfig(models=model_names(args.models or MODEL_NAMES), frameworks=args.frameworks,
                       every_model=args.models is None,
                       train=train_config(args), steps=args.steps, dtype=args.dtype,
                       device=args.device,
                       dataset=args.dataset, dataset_options=dataset_options(args),
                       out=args.out or default_out_dir("parity"), timeout=args.timeout,
                       gpu=args.gpu)
    try:
        document = run_parity(cfg)
    except Interrupted as exc:
        print(f"pybench: {exc}: the finished checks are in {cfg.out / 'parity.json'} (the "
              "stopped one is marked interrupted)", file=sys.stderr)
        return exc.exit_status
    print(parity_table(document).to_string(index=False))
    print(f"parity: {'PASS' if document['ok'] else 'FAIL'} ({cfg.out / 'parity.json'})")
    return 0 if document["ok"] else 1


def cmd_sweep(args) -> int:
    from pybench.commands.sweep import default_out_dir, run_sweep
    from pybench.report.console import sweep_table
    from pybench.run.executors import make_executor
    from pybench.run.life import command_line
    from pybench.sweep_file import load_sweep_spec

    spec = load_sweep_spec(args.sweep_file)
    executor = make_executor(args.executor, args.address)
    out = args.out or default_out_dir(args.sweep_file)  # named here, for an interrupted sweep
    if spec.search:  # a tuned search rather than a grid
        from pybench.commands.tune import run_search as run_sweep  # noqa: F811
    try:
        out_dir, document = run_sweep(spec, executor, out=out, resume=args.resume,
                                      command=command_line())
    except Interrupted as exc:
        return report_interrupted(args, Path(out), exc)
    print(sweep_table(document).round(3).to_string(index=False))
    if document.get("tuning"):  # a search ends with its tuned verdict
        from pybench.report.headline import headline_lines

        print("\n".join(line.replace("**", "") for line in headline_lines(document)))
    print(f"results: {out_dir / 'results.json'}")
    if not args.no_report:
        from pybench.report import write_report

        print(f"report: {write_report(out_dir)}")
    return 0 if any(r["status"] == "ok" for r in document["runs"]) else 1


def cmd_report(args) -> int:
    from pybench.report import write_report

    if args.fail_on_regression is not None and args.baseline is None:
        raise PybenchError("--fail-on-regression needs --baseline RESULTS to compare with")
    if args.force and args.baseline is None:
        raise PybenchError("--force compares runs unlike a baseline's: it needs --baseline RESULTS")
    path = write_report(args.run_dirs if len(args.run_dirs) > 1 else args.run_dirs[0],
                        args.out, plots=not args.no_plots, baseline=args.baseline, force=args.force)
    print(path)
    print(path.with_name("report.html"))
    if args.fail_on_regression is None:
        return 0
    from pybench.report import slowdowns
    from pybench.report.significance import p_value

    slower = slowdowns(args.run_dirs, args.baseline, args.fail_on_regression, args.force)
    for _, row in slower.iterrows():
        p = p_value(row["p (Mann-Whitney)"])
        print(f"pybench: {row['framework']} {row['model']}: step time {row['ratio']:.3f}× the "
              f"baseline's (p {p if p.startswith('<') else '= ' + p}), beyond --fail-on-regression "
              f"{args.fail_on_regression:g}%", file=sys.stderr)
    return 1 if len(slower) else 0


COMMANDS = {"list": cmd_list, "datasets": cmd_datasets, "compare": cmd_compare,
            "parity": cmd_parity, "report": cmd_report, "sweep": cmd_sweep}


def stop_on_sigterm(signum, frame):
    raise Interrupted("SIGTERM", 128 + signal.SIGTERM)


# The OS errors of an output that cannot be written: full disk, quota, file size limit,
# read-only file system, no permission.
OUTPUT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES}


def main(argv: list[str] | None = None) -> int:
    # Should anything in this process start JAX, it must not take the GPU memory the workers need.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    # SIGTERM (a scheduler, `kill`) stops like Ctrl-C does: finished runs kept, worker stopped.
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    # Started by a process that runs Julia in its own process (juliacall in a notebook or a
    # test runner), pybench inherits SIGINT and SIGTERM blocked (Julia's runtime blocks them in
    # every thread but its listener): they would wait unheard until the end. An inherited
    # SIG_IGN is a choice and is kept (Python installs no Ctrl-C handler then); a mask is not.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    args = parse_arguments(argv)
    try:
        return COMMANDS[args.command](args)
    except PybenchError as exc:
        if args.debug:
            raise
        print(f"pybench: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except Interrupted as exc:
        print(f"pybench: {exc}", file=sys.stderr)
        return exc.exit_status
    except OSError as exc:
        # A write that `errors.writing` does not guard (a library's own file): still one line.
        if args.debug or exc.errno not in OUTPUT_ERRNOS:
            raise
        print(f"pybench: error: cannot write {exc.filename or 'an output file'}: {exc.strerror}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pybench: interrupted by SIGINT", file=sys.stderr)
        return 130

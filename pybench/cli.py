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

from pybench import history, short_runs
from pybench.errors import Interrupted, PybenchError
from pybench.models import MODEL_NAMES, model_names
from pybench.options import COMMANDS as COMMAND_HELP
from pybench.options import add_options, load_options, train_config
from pybench.recipes import RECIPES


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the usage stays available through --help)."""

    def error(self, message):
        command = self.prog.split(" ", 1)[1:]  # "pybench compare" -> name the subcommand
        where = f" ({command[0]})" if command else ""
        self.exit(2, f"pybench: error: {message}{where}\n")


def build_parser() -> argparse.ArgumentParser:
    """The parsers of every command, from the option table (`pybench.options`)."""
    parser = OneLineParser(prog="pybench", description=COMMAND_HELP[""])
    add_options(parser, "")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    parser.subcommand_parsers = sub.choices  # for --recipe (see parse_arguments)
    for command in ("list", "datasets", "compare", "parity", "sweep", "report", "history"):
        add_options(sub.add_parser(command, help=COMMAND_HELP[command]), command)
    datasets = sub.choices["datasets"].add_subparsers(dest="datasets_command", required=True,
                                                      parser_class=OneLineParser)
    add_options(datasets.add_parser("info", help=COMMAND_HELP["datasets info"]), "datasets info")
    history = sub.choices["history"].add_subparsers(dest="history_command", parser_class=OneLineParser)
    add_options(history.add_parser("import", help=COMMAND_HELP["history import"]), "history import")
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
    from pybench.backends import availability, gpu_support
    from pybench.datasets import DATASETS
    from pybench.frameworks import FRAMEWORK_DESCRIPTIONS, VARIANT_DESCRIPTIONS
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
    from pybench.datasets import describe_dataset, load_dataset

    print(describe_dataset(load_dataset(args.spec, **load_options(vars(args), "datasets info"))))
    return 0


def cmd_compare(args) -> int:
    from pybench.commands.compare import CompareConfig, default_out_dir, run_compare
    from pybench.report.console import summary_text
    from pybench.run.life import command_line

    if args.seeds is not None and args.seed is not None:
        raise PybenchError(f"--seed {args.seed} and --seeds {','.join(map(str, args.seeds))}: "
                           "give one of them")
    cfg = CompareConfig(dataset=args.dataset, frameworks=with_variants(args),
                        models=model_names(args.models),
                        train=train_config(vars(args), "lenet5"), device=args.device,
                        out=paths(args.out), timeout=args.timeout,
                        dataset_options=load_options(vars(args)),
                        seeds=args.seeds or (), repeats=args.repeats, gpu=args.gpu,
                        tensorboard=paths(args.tensorboard), mlflow=paths(args.mlflow))
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
    for line in history.record(document, out_dir, args.store, against_history=True, min_change=args.min_change):
        print(line, file=sys.stderr if line.startswith("pybench:") else sys.stdout)
    if not args.no_report:
        from pybench.report import write_report

        print(f"report: {write_report(out_dir)}")
    return 0 if any(r["status"] == "ok" for r in document["runs"]) else 1


def paths(value):
    """A path option's value as a Path (None stays None)."""
    return None if value is None else Path(value)


def with_variants(args) -> tuple[str, ...]:
    """--frameworks, with torch.compile right after torch under --compile."""
    frameworks = tuple(args.frameworks or ())
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
    from pybench.report.console import parity_table
    from pybench.run.life import default_out_dir

    cfg = ParityConfig(models=model_names(args.models or MODEL_NAMES), frameworks=args.frameworks,
                       every_model=args.models is None,
                       train=train_config(vars(args), "lenet5", "parity"), steps=args.steps,
                       dtype=args.dtype, device=args.device,
                       dataset=args.dataset, dataset_options=load_options(vars(args), "parity"),
                       out=paths(args.out) or default_out_dir("parity"), timeout=args.timeout,
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
    from pybench.commands.tune import run_search
    from pybench.report.console import sweep_table
    from pybench.run.executors import make_executor
    from pybench.run.life import command_line
    from pybench.sweep_file import load_sweep_spec

    spec = load_sweep_spec(Path(args.sweep_file))
    executor = make_executor(args.executor, args.address)
    out = paths(args.out) or default_out_dir(Path(args.sweep_file))  # named here, for an interrupted sweep
    run = run_search if spec.search else run_sweep  # a tuned search, or every point of a grid
    try:
        out_dir, document = run(spec, executor, out=out, resume=args.resume, command=command_line())
    except Interrupted as exc:
        return report_interrupted(args, Path(out), exc)
    print(sweep_table(document).round(3).to_string(index=False))
    if document.get("tuning"):  # a search ends with its tuned verdict
        from pybench.report.headline import headline_lines

        print("\n".join(line.replace("**", "") for line in headline_lines(document)))
    print(f"results: {out_dir / 'results.json'}")
    for line in history.record(document, out_dir, args.store):
        print(line, file=sys.stderr if line.startswith("pybench:") else sys.stdout)
    if not args.no_report:
        from pybench.report import write_report

        print(f"report: {write_report(out_dir)}")
    return 0 if any(r["status"] == "ok" for r in document["runs"]) else 1


def cmd_history(args) -> int:
    if args.history_command == "import":
        print("\n".join(history.import_sources(map(Path, args.sources), args.store)))
        return 0
    print(history.history_text(args.store, args.metrics, args.min_change, args.order))
    if args.html:
        from pybench.history.page import write_page
        from pybench.history.store import read_rows

        rows = read_rows(args.store)
        print(f"page: {write_page(rows, Path(args.html), args.min_change, args.order)}" if len(rows) else
              f"page: none written ({args.html}): no runs to draw")
    return 0


def cmd_report(args) -> int:
    from pybench.report import write_report

    if args.fail_on_regression is not None and args.baseline is None:
        raise PybenchError("--fail-on-regression needs --baseline RESULTS to compare with")
    if args.force and args.baseline is None:
        raise PybenchError("--force compares runs unlike a baseline's: it needs --baseline RESULTS")
    run_dirs = [Path(d) for d in args.run_dirs]
    path = write_report(run_dirs if len(run_dirs) > 1 else run_dirs[0], paths(args.out),
                        plots=not args.no_plots, baseline=paths(args.baseline), force=args.force)
    print(path)
    print(path.with_name("report.html"))
    if args.fail_on_regression is None:
        return 0
    from pybench.report import slowdowns
    from pybench.report.significance import p_value

    slower = slowdowns(run_dirs, Path(args.baseline), args.fail_on_regression, args.force)
    for _, row in slower.iterrows():
        p = p_value(row["p (Mann-Whitney)"])
        print(f"pybench: {row['framework']} {row['model']}: step time {row['ratio']:.3f}× the "
              f"baseline's (p {p if p.startswith('<') else '= ' + p}), beyond --fail-on-regression "
              f"{args.fail_on_regression:g}%", file=sys.stderr)
    return 1 if len(slower) else 0


COMMANDS = {"list": cmd_list, "datasets": cmd_datasets, "compare": cmd_compare,
            "parity": cmd_parity, "report": cmd_report, "sweep": cmd_sweep, "history": cmd_history}


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

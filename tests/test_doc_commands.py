"""Docs that run: every command README.md and docs/ show is executed here, as written, so that a
renamed option, a stale example or a model that no longer takes the example's data fails CI.

- `pybench` commands run for real in a subprocess, with the test-only override
  `PYBENCH_SHORT_RUNS=1` (`pybench/short_runs.py`: torch alone, 2 steps a run, 2 seeds at most),
  in a scratch folder, one document's commands in the order it shows them (a later command reads
  what an earlier one wrote). Each must exit 0.
- The scripts the docs show run for real too (`make_nih_zip.py` with fewer images, the
  pretraining script shortened by the same override); a tool whose full run is a long
  experiment (the step-variant search, the whole suite) is held to its options: every option the
  docs give it must be in its `--help`.
- `pytest` commands are held to pytest's own `--help` and `--markers` (this checkout's plugins and
  options included): their options, markers and paths exist.

What a document names that the test cannot have (a 20,000-image zip in /tmp, a weights file made
from MNIST, a Ray cluster's address) is replaced by something of the same kind, as `SUBSTITUTES`
says; placeholders (`--seed S`, `--models NEW`) take a value. A line with `[...]`, `|` or a
capitalised placeholder (`COMMAND`, `SPEC`) is a synopsis, not a command. Two commands read input
only a benchmark run makes (`report b.json`, `report .benchmarks`): `COVERED_ELSEWHERE` names the
test that runs them on such input.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [REPO_ROOT / "README.md", *sorted(p for p in (REPO_ROOT / "docs").glob("*.md") if p.name != "options.md")]

# Stand-ins for what a document names but a test cannot have; "{work}" is the scratch folder.
SUBSTITUTES = {
    "/tmp/nih.zip": "{work}/nih.zip", "nih.zip": "{work}/nih.zip", "/tmp/nih2000.zip": "{work}/nih.zip",
    "radiography": "{work}/radiography", "/tmp/resnet18.pth": "{work}/resnet18.pth",
    # a sweep's Ray cluster: a local one is started instead of joining one at `auto`
    "--address": None, "auto": None,
}
IMAGES = "120"  # make_nih_zip's --images, whatever the document asks for
PLACEHOLDERS = {"S": "0", "NEW": "lenet5", "M": "lenet5"}
SYNOPSIS_WORDS = {"COMMAND", "SPEC", "RESULTS", "RESULTS...", "DIR", "PCT", "ADDR", "SWEEP.toml", "A", "B", "FILE",
                  "OUT.pth", "OUT.zip", "DEST", "..."}
COVERED_ELSEWHERE = {
    "python -m pybench report b.json": "tests/test_bench_workflow.py::test_benchmark_json_becomes_a_report",
    "python -m pybench report .benchmarks": "tests/test_bench_workflow.py::test_benchmark_json_becomes_a_report",
}
# Tools whose full run is an experiment of its own: held to their options only.
# (option_reference.py would rewrite docs/options.md in the checkout: tests/test_docs.py runs its --check.)
OPTIONS_ONLY = ("tools/step_search", "tools/run-tests", "scripts/gpu-check", "tools/option_reference.py")


def shown_commands(path: Path) -> list[str]:
    """The commands a document shows, in order: each line of a code block (backslash continuations
    joined, trailing `# comments` dropped) and each inline code span that starts like a command,
    split at `&&`."""
    text = path.read_text()
    found: list[tuple[int, str]] = []
    for block in re.finditer(r"```(\w*)\n(.*?)```", text, re.S):
        if block.group(1) not in ("sh", "bash", "shell"):  # not output, a layout or a file's text
            continue
        for line in block.group(2).replace("\\\n", " ").splitlines():
            found.append((block.start(), re.sub(r"\s+#\s.*$", "", line).strip()))
    prose = re.sub(r"```.*?```", lambda m: " " * len(m.group(0)), text, flags=re.S)
    for span in re.finditer(r"`([^`\n]+)`", prose.replace("\n", " ")):
        found.append((span.start(), span.group(1).strip()))
    commands = []
    for _, line in sorted(found, key=lambda item: item[0]):
        for part in line.split("&&"):
            part = part.strip()
            if command_kind(part):
                commands.append(part)
    return commands


def words(command: str) -> tuple[dict, list[str]]:
    """(environment assignments, the words after them)."""
    tokens = shlex.split(command)
    env = {}
    while tokens and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", tokens[0]):
        key, value = tokens.pop(0).split("=", 1)
        env[key] = value
    return env, tokens


def command_kind(command: str) -> str | None:
    """pybench, pytest (pytest-benchmark's own command too) or tool (a script of tools/ or
    scripts/); None for anything else (pip, a venv)."""
    try:
        _, tokens = words(command)
    except ValueError:
        return None
    if not tokens:
        return None
    if tokens[:3] == ["python", "-m", "pybench"] or tokens[0] == "pybench" and len(tokens) > 2:
        return "pybench"  # `pybench` or `pybench parity` alone, in a sentence, names a command, not an example
    if tokens[:3] == ["python", "-m", "pytest"] or tokens[0] in ("pytest", "pytest-benchmark"):
        return "pytest"
    return "tool" if script_of(tokens).startswith(("tools/", "scripts/")) and (REPO_ROOT / script_of(tokens)).exists() \
        else None


def script_of(tokens: list[str]) -> str:
    """The script a command runs: `python X ...` -> X, else its first word."""
    return tokens[1] if tokens[0] in ("python", "python3") and len(tokens) > 1 else tokens[0]


def is_synopsis(command: str) -> bool:
    _, tokens = words(command)
    return any(t in SYNOPSIS_WORDS or t.startswith("[") or "|" in t or t.endswith("]") for t in tokens)


def argv_for(command: str, work: Path) -> tuple[dict, list[str]]:
    """The command's environment and argv as the test runs it (see SUBSTITUTES)."""
    env, tokens = words(command)
    argv = []
    for i, token in enumerate(tokens):
        if token in SUBSTITUTES:
            if SUBSTITUTES[token] is not None:
                argv.append(SUBSTITUTES[token].format(work=work))
        elif token in PLACEHOLDERS:
            argv.append(PLACEHOLDERS[token])
        elif i and tokens[i - 1] == "--images":
            argv.append(IMAGES)
        elif token.startswith(("tools/", "scripts/", "examples/")):
            argv.append(str(REPO_ROOT / token))
        else:
            argv.append(token)
    if argv[:1] == ["pybench"]:
        argv = [sys.executable, "-m", "pybench", *argv[1:]]
    elif argv[:1] in (["python"], ["python3"]):
        argv = [sys.executable, *argv[1:]]
    if "PYBENCH_DATA_DIR" in env:
        env["PYBENCH_DATA_DIR"] = os.environ.get("PYBENCH_DATA_DIR", "")
    return env, argv


def radiography_folder(root: Path) -> None:
    """The COVID-19 Radiography Database's layout: <class>/images/ beside <class>/masks/."""
    rng = np.random.default_rng(0)
    for label in ("normal", "covid", "pneumonia"):
        for kind in ("images", "masks"):
            (root / label / kind).mkdir(parents=True)
            for i in range(16):
                Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8)).save(root / label / kind / f"{i}.png")


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """One dataset cache for every document's commands (MNIST decoded once per test worker)."""
    return tmp_path_factory.mktemp("doc-commands-cache")


@pytest.fixture
def work(tmp_path, shared_cache, monkeypatch):
    """The scratch folder, with the stand-ins the documents' commands read before they make them."""
    import torch
    import torchvision

    monkeypatch.setenv("PYBENCH_CACHE_DIR", str(shared_cache))

    subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "make_nih_zip.py"), str(tmp_path / "nih.zip"),
                    "--images", IMAGES, "--workers", "1"], check=True, capture_output=True, timeout=300)
    radiography_folder(tmp_path / "radiography")
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), tmp_path / "resnet18.pth")
    return tmp_path


def run_pybench(command: str, work: Path) -> subprocess.CompletedProcess:
    env, argv = argv_for(command, work)
    return subprocess.run(argv, cwd=work, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYBENCH_SHORT_RUNS": "1", **env})


def check_options_only(command: str, work: Path) -> None:
    """Every option the document gives the tool is one its --help lists."""
    env, argv = argv_for(command, work)
    program = argv[:2] if argv[0] == sys.executable else argv[:1]
    shown = subprocess.run([*program, "--help"], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
                           env={**os.environ, **env})
    assert shown.returncode == 0, (command, shown.stderr[-1000:])
    for option in (t.split("=")[0] for t in argv if t.startswith("--")):
        assert option in shown.stdout, f"{command}: {option} is not an option of {program[-1]}"


def run_tool(command: str, work: Path) -> None:
    """A script named alone in prose exists; gpu-check runs (exit 2 without a GPU, said in one
    line); an OPTIONS_ONLY tool is held to its options; any other runs for real, shortened."""
    _, tokens = words(command)
    script = script_of(tokens)
    env, argv = argv_for(command, work)
    if len(tokens) == 1 and script != "scripts/gpu-check":
        assert (REPO_ROOT / script).exists(), script
        return
    if script == "scripts/gpu-check" and len(tokens) == 1:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=work)
        assert done.returncode in (0, 2), done.stderr[-1000:]
        return
    if script.startswith(OPTIONS_ONLY):
        check_options_only(command, work)
        return
    done = subprocess.run(argv, cwd=work, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYBENCH_SHORT_RUNS": "1", **env})
    assert done.returncode == 0, (command, done.stderr[-2000:])


@functools.cache
def pytest_help() -> tuple[str, str]:
    """pytest's --help and --markers, as this checkout configures it (plugins, conftest options)."""
    def shown(flag: str) -> str:
        done = subprocess.run([sys.executable, "-m", "pytest", flag, "-p", "no:cacheprovider"], cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-1000:]
        return done.stdout

    return shown("--help"), shown("--markers")


def check_pytest(command: str) -> None:
    """A pytest command as the document gives it: every option one pytest (with this checkout's
    plugins and conftest) knows, every marker of `-m` registered, every path present; collecting
    the whole suite for each of the docs' pytest lines would cost minutes. pytest-benchmark's own
    command, by its options."""
    env, tokens = words(command)
    if tokens[0] == "pytest-benchmark":
        shown = subprocess.run(["pytest-benchmark", tokens[1], "--help"], capture_output=True, text=True, timeout=120)
        assert shown.returncode == 0 and all(t.split("=")[0] in shown.stdout for t in tokens if t.startswith("--"))
        return
    args = tokens[3:] if tokens[:2] == ["python", "-m"] else tokens[1:]
    options, markers = pytest_help()
    # The options that take a value: their help shows a metavar ("--dist=distmode", "-m MARKEXPR").
    valued = set(re.findall(r"(?:^|[\s,])(--?[\w-]+)(?:=| )(?:\{[^}]*\}|[A-Za-z_][\w.-]*)", options, re.M))
    for i, arg in enumerate(args):
        before = args[i - 1] if i else ""
        if arg.startswith("-"):
            assert re.search(rf"(^|[\s,]){re.escape(arg.split('=')[0])}[\s=,]", options, re.M), f"{command}: {arg}"
        elif before == "-m":
            for name in set(re.findall(r"\w+", arg)) - {"and", "or", "not"}:
                assert f"@pytest.mark.{name}:" in markers, f"{command}: marker {name}"
        elif before.startswith("-") and "=" not in before and before in valued:
            continue  # an option's value
        else:
            assert (REPO_ROOT / arg.split("::")[0]).exists(), f"{command}: {arg}"


def test_the_documents_show_commands_and_each_kind_is_recognised():
    everything = [c for d in DOCUMENTS for c in shown_commands(d)]
    kinds = {command_kind(c) for c in everything}
    assert kinds == {"pybench", "pytest", "tool"}, kinds
    assert "python -m pybench compare digits --epochs 10 --seeds 0,1,2" in everything  # the quick start
    # `pybench parity` named in a sentence: a command pybench has (the examples themselves run below).
    from pybench.cli import build_parser

    commands = build_parser().subcommand_parsers
    for document in DOCUMENTS:
        for span in re.findall(r"`pybench ([a-z]\w*)`", document.read_text()):
            assert span in commands, f"{document.name} names `pybench {span}`, not a command"
    for command, test in COVERED_ELSEWHERE.items():
        assert command in everything, f"{command} is no longer shown: drop it from COVERED_ELSEWHERE"
        path, name = test.split("::")
        assert f"def {name}(" in (REPO_ROOT / path).read_text(), test


@pytest.mark.slow
@pytest.mark.parametrize("document", DOCUMENTS, ids=[d.name for d in DOCUMENTS])
def test_every_command_a_document_shows_runs_as_written(document, work, data_dir):
    ran = []
    for command in dict.fromkeys(shown_commands(document)):  # a command shown twice runs once
        if is_synopsis(command) or command in COVERED_ELSEWHERE:
            continue
        began = time.perf_counter()
        kind = command_kind(command)
        if kind == "pybench":
            done = run_pybench(command, work)
            assert done.returncode == 0, (command, done.stdout[-1500:], done.stderr[-2500:])
            assert "Traceback" not in done.stderr, (command, done.stderr[-2500:])
        elif kind == "tool":
            run_tool(command, work)
        else:
            check_pytest(command)
        ran.append(f"{command} ({time.perf_counter() - began:.0f} s)")
    print(f"{document.name}: {len(ran)} commands run:\n" + "\n".join(ran))

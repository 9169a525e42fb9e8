"""The shape of the house, from the imports: the commands stand side by side on `pybench.run`
(none imports another), `run` never reaches up to a command or the command line, reports never
reach into a run, the option table and the run configuration stay below all of them, no two
modules of pybench import each other, directly or round a circle, and the house has at most
seven floors below `__main__` (a package is one room: its floor is one above the highest room it
imports).
Read from the source with `ast` (imports inside functions included): nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pybench"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The pybench modules `path` imports ("from pybench.x import y" counts pybench.x.y when
    that is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("pybench")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pybench"):
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names
                      if f"{node.module}.{alias.name}" in known}
    return {name for name in found if name in known}


GRAPH = {}
_KNOWN = {module_name(p) for p in PACKAGE.rglob("*.py")}
for _path in PACKAGE.rglob("*.py"):
    GRAPH[module_name(_path)] = imported_modules(_path, _KNOWN) - {module_name(_path)}


def under(prefix: str) -> list[str]:
    return sorted(m for m in GRAPH if m == prefix or m.startswith(prefix + "."))


def test_the_graph_was_read():
    assert "pybench.commands.compare" in GRAPH and "pybench.run.worker" in GRAPH
    assert "pybench.run.checks" in GRAPH["pybench.commands.compare"]


@pytest.mark.parametrize("command", ["compare", "parity", "sweep"])
def test_a_command_imports_no_other_command_and_stands_on_run(command):
    imports = GRAPH[f"pybench.commands.{command}"]
    assert not [m for m in imports if m.startswith("pybench.commands")], imports
    assert any(m.startswith("pybench.run") for m in imports)
    assert "pybench.cli" not in imports


def test_run_never_reaches_up_to_a_command_the_cli_or_a_report():
    for module in under("pybench.run"):
        upward = [m for m in GRAPH[module]
                  if m.startswith(("pybench.commands", "pybench.cli", "pybench.report"))]
        assert not upward, (module, upward)


def test_reports_never_reach_into_a_run_or_a_command():
    for module in under("pybench.report"):
        upward = [m for m in GRAPH[module] if m.startswith(("pybench.run", "pybench.commands"))]
        assert not upward, (module, upward)


def test_no_import_circle_in_pybench():
    """Depth-first search for a cycle among modules (a package's __init__ importing its own
    modules is not a circle back to it)."""
    def edges(module):
        return [m for m in GRAPH[module] if not module.startswith(m + ".")]

    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module):
        state[module] = 1
        stack.append(module)
        for target in edges(module):
            if state.get(target) == 1:
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(target):] + [target]))
            if target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)


# The low rooms: what a run is and which options make it, stated once as data. Every command,
# the worker and the sweep reader stand on them; they stand on nothing that runs or reports.
LOW = ["pybench.options", "pybench.config", "pybench.frameworks", "pybench.optimizers", "pybench.sweep_spec"]
ABOVE_LOW = ("pybench.commands", "pybench.cli", "pybench.run", "pybench.report", "pybench.training",
             "pybench.backends", "pybench.sweep_file", "pybench.__main__")


@pytest.mark.parametrize("module", LOW)
def test_the_option_table_and_the_run_configuration_stay_below_the_commands(module):
    upward = [m for m in GRAPH[module] if m.startswith(ABOVE_LOW)]
    assert not upward, (module, upward)
    assert "pybench.options" not in GRAPH["pybench.config"], "config must not need the table"


def room(module: str) -> str:
    """A package is one room (pybench.run, pybench.report, ...); a top-level module its own."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 or module in PACKAGES else module


PACKAGES = {m for m in GRAPH if (PACKAGE.parent / m.replace(".", "/") / "__init__.py").exists()}


def floors() -> dict[str, int]:
    rooms: dict[str, set[str]] = {}
    for module, targets in GRAPH.items():
        rooms.setdefault(room(module), set()).update(room(t) for t in targets)
    for name, targets in rooms.items():
        targets.discard(name)
    found: dict[str, int] = {}

    def floor(name: str) -> int:
        if name not in found:
            found[name] = 1 + max((floor(t) for t in rooms[name]), default=0)
        return found[name]

    for name in rooms:
        floor(name)
    return found


def test_seven_floors_or_fewer_below_main():
    found = floors()
    assert found["pybench.run"] > found["pybench.training"] > found["pybench.backends"], found
    assert found["pybench.__main__"] - 1 <= 7, sorted(found.items(), key=lambda item: -item[1])

"""Every Julia file in the repository parses (tree-sitter-julia), and the check can fail.

No Julia runs here, so this catches syntax errors only (not undefined names or wrong keywords);
a failure names the file and line.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import tree_sitter_julia
from tree_sitter import Language, Parser

ROOT = Path(__file__).resolve().parent.parent
JULIA_FILES = sorted(p for p in ROOT.rglob("*.jl")
                     if not any(part.startswith(".") for part in p.relative_to(ROOT).parts))


def syntax_problems(source: bytes, label: str) -> list[str]:
    """'label:line:col: ERROR|missing <type> (through line L)' for every error or missing node,
    in file order. tree-sitter recovers locally where it can; an unclosed construct can make the
    ERROR node span everything from the construct it could not finish, hence the line range."""
    tree = Parser(Language(tree_sitter_julia.language())).parse(source)
    problems = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            row, col = node.start_point
            kind = "ERROR" if node.type == "ERROR" else f"missing {node.type}"
            end_row, end_col = node.end_point
            last_line = end_row + 1 if end_col > 0 else end_row  # column 0: ended on a newline
            problems.append(f"{label}:{row + 1}:{col + 1}: {kind} (through line {last_line})")
        stack.extend(reversed(node.children))
    return problems


def test_there_are_julia_files():
    assert any(p.name == "KnetModels.jl" for p in JULIA_FILES)


@pytest.mark.parametrize("path", JULIA_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_julia_file_parses(path):
    problems = syntax_problems(path.read_bytes(), str(path.relative_to(ROOT)))
    assert not problems, "\n".join(problems)


def test_check_reports_the_broken_line():
    broken = b"function ok(x)\n    x + 1\nend\n\nfunction bad(x)\n    y = x + )\n    y\nend\n"
    assert syntax_problems(broken, "broken.jl") == ["broken.jl:6:13: ERROR (through line 6)"]


def test_check_reports_an_unclosed_parenthesis():
    broken = b"function ok(x)\n    x + 1\nend\n\nfunction bad(x)\n    y = (x +\nend\n"
    problems = syntax_problems(broken, "broken.jl")
    assert problems and all(p.startswith("broken.jl:") for p in problems)
    assert "through line 7" in problems[0]

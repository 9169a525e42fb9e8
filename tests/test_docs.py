"""The documentation stays true to the code: docs/options.md is what the argument parser generates,
the dataset option table names the parser's dataset options, every relative link and anchor
resolves, the README's feature list names every model and framework, and the README stays a front
page."""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tools"))
import check_links  # noqa: E402  (tools/ is not a package)
import option_reference  # noqa: E402

README = REPO_ROOT / "README.md"
README_MAX_LINES = 260


def test_docs_options_md_is_what_the_parser_generates():
    current = option_reference.OPTIONS_MD.read_text(encoding="utf-8")
    difference = option_reference.first_difference(option_reference.generate(), current)
    assert difference is None, f"docs/options.md is out of date ({difference}): run python tools/option_reference.py"


def test_the_docs_point_at_the_generated_option_reference_rather_than_copy_it():
    """Each option is described once, in the option table: docs/datasets.md and docs/usage.md link
    to docs/options.md, made from it, instead of keeping tables of their own that would drift."""
    datasets = (REPO_ROOT / "docs" / "datasets.md").read_text(encoding="utf-8")
    usage = (REPO_ROOT / "docs" / "usage.md").read_text(encoding="utf-8")
    assert "options.md#pybench-datasets-info" in datasets
    assert "options.md#pybench-compare" in usage and "options.md#pybench-parity" in usage
    for text in (datasets, usage):
        assert not re.search(r"^\| `--image-size", text, re.M) and not re.search(r"^\| `--lr", text, re.M)


def test_every_relative_link_and_anchor_in_the_docs_resolves():
    assert check_links.broken_links(REPO_ROOT) == []


def test_the_link_checker_catches_a_missing_file_and_a_missing_anchor(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("# Front\n\n[a](docs/a.md#two-words) [b](docs/none.md) "
                                        "[c](#front) [d](https://example.org/x) `[e](nowhere.md)`\n")
    (tmp_path / "docs" / "a.md").write_text("# A\n\n## Two words!\n\n```\n# not a heading\n```\n"
                                            "[back](../README.md#missing) [f](#not-a-heading)\n")
    problems = check_links.broken_links(tmp_path)
    assert [p.split(": ")[0:2] for p in problems] == [
        ["README.md:3", "docs/none.md"], ["docs/a.md:8", "../README.md#missing"],
        ["docs/a.md:8", "#not-a-heading"]], problems


def test_slugs_are_githubs():
    assert check_links.slug("Statistics: what a verdict means") == "statistics-what-a-verdict-means"
    assert check_links.slug("`report RESULTS... [--out DIR] [--baseline RESULTS] [--fail-on-regression PCT] "
                            "[--no-plots]`") == \
        "report-results---out-dir---baseline-results---fail-on-regression-pct---no-plots"
    assert check_links.slug("Performance: each framework's step written the fastest way we found") == \
        "performance-each-frameworks-step-written-the-fastest-way-we-found"


def readme_feature_list() -> str:
    """The bullet list between the README's first paragraph and its first section."""
    text = README.read_text(encoding="utf-8")
    head = text[:text.index("\n## ")]
    bullets = head[head.index("\n- "):]
    return bullets


def test_the_readme_feature_list_names_every_model_and_framework():
    from pybench.frameworks import FRAMEWORK_NAMES, VARIANTS
    from pybench.models import MODEL_DESCRIPTIONS, MODEL_NAMES

    features = readme_feature_list()
    names = {*MODEL_NAMES, *MODEL_DESCRIPTIONS, *FRAMEWORK_NAMES, *VARIANTS}
    missing = sorted(name for name in names if f"`{name}`" not in features)
    assert not missing, f"README.md's feature list does not name {missing}"


def test_the_readme_is_a_front_page():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail into docs/"

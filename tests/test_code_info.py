"""Results say what code ran: pybench's installed version, the git commit and whether the tree
had uncommitted changes, so two results files can tell whether the code differed."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess

import pytest

from pybench import results
from pybench.report.markdown import header_section


def test_the_version_comes_from_the_package_metadata_and_the_commit_from_git():
    info = results.code_info()
    assert info["pybench_version"] == importlib.metadata.version("pybench")
    if shutil.which("git") is None:
        pytest.skip("git is not installed: the commit cannot be read")
    head = subprocess.run(["git", "-C", str(results.Path(results.__file__).parent.parent),
                           "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        assert info["commit"] is None and info["dirty"] is None  # not a checkout: said, not guessed
    else:
        assert info["commit"] == head.stdout.strip() and isinstance(info["dirty"], bool)


def test_outside_a_checkout_commit_and_dirty_are_none(monkeypatch, tmp_path):
    monkeypatch.setattr(results, "__file__", str(tmp_path / "pybench" / "results.py"))
    info = results.code_info()
    assert info["commit"] is None and info["dirty"] is None and info["pybench_version"]


def test_the_report_header_names_the_commit_and_uncommitted_changes():
    header = header_section({"pybench_version": "0.1.0", "commit": "0123456789abcdef" * 2 + "01234567",
                             "dirty": True})
    assert "pybench 0.1.0, commit 0123456789 with uncommitted changes" in header

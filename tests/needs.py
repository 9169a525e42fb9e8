"""What a test does when something it needs is missing: skip with the reason on a user's machine,
fail in CI (`CI=true`), where everything the suite needs is installed by `.ci/run`, so that a
missing toolchain shows up as a failure instead of a quiet skip."""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def missing(reason: str) -> None:
    """Skip (locally) or fail (in CI) the calling test, naming `reason`."""
    if in_ci():
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)

"""Rounds, rows and verdicts: variants interleaved in a rotating order, their medians against
the default's, and whether the default is within SLOWEST_RATIO of the fastest."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from step_search.common import LOSS_RTOL, SLOWEST_RATIO, Round, Variant

Drive = Callable[[Callable, Callable, Callable, int], None]


def plain_drive(before: Callable, target: Callable, after: Callable, rounds: int) -> None:
    for _ in range(rounds):
        before()
        target()
        after()


def interleaved_rounds(variants: dict[str, Variant], rounds: int,
                       drive: Drive = plain_drive) -> dict[str, list[Round]]:
    """`rounds` rounds of every variant, the first one (the default) being the target `drive`
    times (pytest-benchmark's pedantic mode under pytest). Each round runs them all in an order
    rotated by one from the last, the default included, so that no variant always follows
    another: a worker's threads still spinning from the round before it, or a cache its
    predecessor emptied, then hurts each in turn."""
    names = list(variants)
    measured: dict[str, list[Round]] = {name: [] for name in names}
    turn = [0]

    def order() -> tuple[list[str], list[str]]:
        shift = turn[0] % len(names)
        rotated = names[shift:] + names[:shift]
        at = rotated.index(names[0])
        return rotated[:at], rotated[at + 1:]

    def run(batch: list[str]) -> None:
        for name in batch:
            measured[name].append(variants[name]())

    def before():
        run(order()[0])

    def target():
        run([names[0]])

    def after():
        run(order()[1])
        turn[0] += 1

    drive(before, target, after, rounds)
    return measured


def summarize(measured: dict[str, list[Round]], compiling: set[str],
              first_losses: dict[str, float] | None = None) -> list[dict]:
    """One row per variant (the default first): median step time, ratio to the default, first
    loss (and compile time for `compiling` variants); fails if a variant lost steps or computed
    another first loss than the default. The first loss is that of each variant's very first
    step: its first round's, unless `first_losses` gives it (rounds measured after a warm-up)."""
    first_losses = first_losses or {name: runs[0].first_loss for name, runs in measured.items()}
    default_ms = float(np.median([t for r in measured["default"] for t in r.step_ms]))
    default_loss = first_losses["default"]
    expected = sum(len(r.step_ms) for r in measured["default"])
    rows = []
    for name, runs in measured.items():
        step_ms = [t for r in runs for t in r.step_ms]
        if len(step_ms) != expected:
            raise AssertionError(f"{name}: {len(step_ms)} timed steps, the default {expected}")
        median = float(np.median(step_ms))
        row = {"variant": name, "median_ms": median, "ratio": median / default_ms,
               "first_loss": first_losses[name]}
        if name in compiling:  # the first round compiles; later rounds find dynamo's cache
            row["compile_s"] = runs[0].first_step_ms / 1e3
        rows.append(row)
        # The same weights and the same first batch must give the same loss in every form.
        if abs(row["first_loss"] - default_loss) > LOSS_RTOL * abs(default_loss):
            raise AssertionError(f"{name}: first loss {row['first_loss']!r} is not the "
                                 f"default's {default_loss!r} (relative tolerance {LOSS_RTOL})")
    return rows


def verdict(rows: list[dict]) -> str | None:
    """None when the default (the first row) is within SLOWEST_RATIO of the fastest row; else
    the sentence saying which variant is faster and by how much."""
    fastest = min(rows, key=lambda r: r["median_ms"])
    ratio = rows[0]["median_ms"] / fastest["median_ms"]
    if ratio <= SLOWEST_RATIO:
        return None
    return (f"the default ({rows[0]['median_ms']:.2f} ms) is {ratio:.2f}x the fastest variant, "
            f"{fastest['variant']!r} ({fastest['median_ms']:.2f} ms): beyond {SLOWEST_RATIO}x")

"""Time to result: which framework reaches the target accuracy first, compilation counted, over
seeds, and across workloads (MLCommons AlgoPerf's scoring).

A run's `time_to_result` (`pybench.training`) is the wall-clock time from the worker's start of
training to the first check at or above `--target-accuracy` on the validation split (the test
split when there is none), split into set-up (weights and data onto the device), the first step
(compilation), the other training steps, and evaluation. As AlgoPerf does, the verdict counts
set-up, compilation and training and leaves evaluation out (`seconds`); `seconds_with_eval`
adds it, and both are shown. A run that never reached the target counts as infinitely slow.

Per framework: the median over seeds (infinite when half or more of the runs missed the target)
with a 95% percentile bootstrap interval over seeds, and how many runs reached the target.
Against the fastest framework: the median of the per-seed ratios (seeds pair the runs: the
same initial weights and batches), with its bootstrap interval over seeds. Runs measured on a
busy machine are left out, as the step-time verdict does.

Across workloads (models, datasets or sources in one report): the performance profile, for each
framework the fraction of workloads it solves within r times the fastest framework's median
time, r from 1 to 4, and its area (normalised to 1: solving every workload fastest).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CONFIDENCE = 0.95
BOOTSTRAP_SAMPLES = 2000
PROFILE_MAX_RATIO = 4.0


def run_seconds(run: dict, with_eval: bool = False) -> float | None:
    """A run's time to result (inf: never reached; None: not measured)."""
    result = run.get("time_to_result")
    if not result or run.get("status") != "ok":
        return None
    if not result.get("reached"):
        return math.inf
    return result["seconds_with_eval" if with_eval else "seconds"]


@dataclass(frozen=True)
class Span:
    estimate: float
    low: float
    high: float


@dataclass(frozen=True)
class FrameworkTime:
    framework: str
    median: Span  # seconds, evaluation excluded
    median_with_eval: float
    reached: int
    runs: int


@dataclass(frozen=True)
class TimeVerdict:
    target: float
    split: str
    eval_every: int | None
    fastest: FrameworkTime | None
    others: list[tuple[FrameworkTime, Span | None]]  # each with its ratio to the fastest
    busy: list[str]
    seeds: int


def bootstrap_median(values: np.ndarray, rng: np.random.Generator,
                     samples: int = BOOTSTRAP_SAMPLES) -> Span:
    """The median with its percentile bootstrap interval; infinite values are ordered last and
    never interpolated with (the interval ends are order statistics of the draws)."""
    estimate = float(np.median(values)) if len(values) else math.nan
    if len(values) < 2:
        return Span(estimate, math.nan, math.nan)
    picks = rng.integers(0, len(values), size=(samples, len(values)))
    medians = np.median(values[picks], axis=1)  # a middle pair holding inf has median inf, not nan
    tail = (1 - CONFIDENCE) / 2 * 100
    low = float(np.percentile(medians, tail, method="lower"))
    high = float(np.percentile(medians, 100 - tail, method="higher"))
    return Span(estimate, low, high)


def median_of(values: np.ndarray) -> float:
    """np.median (inf when a middle value is inf), nan for no values."""
    return float(np.median(values)) if len(values) else math.nan


def per_seed(runs: list[dict], with_eval: bool = False) -> dict[str, dict[object, float]]:
    """framework -> seed -> time to result (repeats of a seed: their median)."""
    table: dict[str, dict[object, list[float]]] = {}
    for run in runs:
        seconds = run_seconds(run, with_eval)
        if seconds is not None:
            table.setdefault(run["framework"], {}).setdefault(run.get("seed"), []).append(seconds)
    return {f: {s: median_of(np.asarray(v)) for s, v in seeds.items()} for f, seeds in table.items()}


def time_verdict(runs: list[dict], target: float, seed: int = 0) -> TimeVerdict | None:
    """The time-to-result verdict of one group of runs (one model and configuration)."""
    measured = [r for r in runs if run_seconds(r) is not None]
    if not measured:
        return None
    busy = [r for r in measured if (r.get("machine_load") or {}).get("busy")]
    quiet = [r for r in measured if r not in busy]
    first = (measured[0].get("time_to_result") or {})
    rng = np.random.default_rng(seed)
    times, with_eval = per_seed(quiet), per_seed(quiet, with_eval=True)
    summaries = {}
    for framework, seeds in times.items():
        values = np.asarray(list(seeds.values()), dtype=float)
        summaries[framework] = FrameworkTime(
            framework, bootstrap_median(values, rng),
            median_of(np.asarray(list(with_eval[framework].values()), dtype=float)),
            int(np.isfinite(values).sum()), len(values))
    if not summaries:
        return TimeVerdict(target, first.get("split", "test"), first.get("eval_every"), None, [],
                           [r["framework"] for r in busy], 0)
    order = list(summaries)  # ties keep the runs' order of frameworks
    rank = {f: (s.median.estimate, -s.reached, order.index(f)) for f, s in summaries.items()}
    fastest = summaries[min(rank, key=rank.get)]
    others = [(summaries[f], paired_ratio(times[f], times[fastest.framework], rng))
              for f in sorted(rank, key=rank.get) if f != fastest.framework]
    shared = set.intersection(*(set(v) for v in times.values()))
    return TimeVerdict(target, first.get("split", "test"), first.get("eval_every"), fastest, others,
                       [r["framework"] for r in busy], len(shared))


def paired_ratio(slow: dict, fast: dict, rng: np.random.Generator) -> Span | None:
    """Median over the shared seeds of slow/fast time (a seed where only `fast` missed the target
    gives 0, only `slow` inf; neither reached: left out), with its bootstrap interval."""
    ratios = []
    for seed in set(slow) & set(fast):
        a, b = slow[seed], fast[seed]
        if math.isinf(a) and math.isinf(b):
            continue
        ratios.append(math.inf if math.isinf(a) else 0.0 if math.isinf(b) else a / b)
    if not ratios:
        return None
    return bootstrap_median(np.asarray(ratios, dtype=float), rng)


def seconds_text(value: float) -> str:
    if math.isinf(value):
        return "∞"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def ratio_text(value: float) -> str:
    return "∞" if math.isinf(value) else f"{value:.2f}"


def span_text(span: Span, unit: str = "") -> str:
    if math.isnan(span.low):
        return f"{seconds_text(span.estimate)}{unit}"
    return f"{seconds_text(span.estimate)}{unit} [{seconds_text(span.low)}, {seconds_text(span.high)}]"


def reached_text(s: FrameworkTime) -> str:
    return f"{s.reached}/{s.runs} reached"


def time_sentence(runs: list[dict], target: float | None) -> str:
    """The headline's third verdict: time to `target`, compile and training counted."""
    if target is None:
        return ""
    verdict = time_verdict(runs, target)
    if verdict is None:
        return ""
    where = "validation" if verdict.split == "val" else "test"
    cadence = f", checked every {verdict.eval_every} steps" if verdict.eval_every else ""
    head = (f"Time to result, {100 * target:g}% {where} accuracy{cadence} (set-up, compilation and "
            f"training counted, evaluation excluded as AlgoPerf does; a run that missed the target "
            f"counts as infinite): ")
    fast = verdict.fastest
    if fast is None:
        # The runs measured on a busy machine are said once, in the headline's caveat.
        return head + "not compared (every run was measured on a busy machine)."
    if math.isinf(fast.median.estimate):
        parts = [f"{s.framework} {reached_text(s)}" for s in [fast] + [o for o, _ in verdict.others]]
        return head + f"no framework reached it in half of its runs ({'; '.join(parts)})."
    parts = [f"**{fast.framework}** {span_text(fast.median, ' s')} ({reached_text(fast)}; "
             f"{seconds_text(fast.median_with_eval)} s with evaluation)"]
    for other, ratio in verdict.others:
        if math.isinf(other.median.estimate):
            parts.append(f"{other.framework} did not reach it in {other.runs - other.reached} of "
                         f"{other.runs} runs (median ∞)")
        elif ratio is None or math.isnan(ratio.low):
            parts.append(f"{other.framework} {seconds_text(other.median.estimate)} s "
                         f"({reached_text(other)})")
        else:
            figure = f"{ratio_text(ratio.estimate)}× [{ratio_text(ratio.low)}, {ratio_text(ratio.high)}]"
            how = ("slower" if ratio.low > 1 else "faster" if ratio.high < 1
                   else "not resolved (the interval includes 1)")
            parts.append(f"{other.framework} {figure} {how} ({reached_text(other)}; "
                         f"{seconds_text(other.median.estimate)} s)")
    level = (f" (median over seeds with its {CONFIDENCE:.0%} bootstrap interval; ratios paired by seed; "
             f"noise source: training seed and the machine)" if verdict.seeds >= 2 else
             " (one seed: no interval; run with --seeds 0,1,2 or more)")
    return head + ", ".join(parts) + level + "."


# ---------------------------------------------------------------- across workloads

def workload_medians(groups: dict[tuple, list[dict]]) -> dict[str, dict[str, float]]:
    """workload name -> framework -> median time to result over its quiet runs."""
    table = {}
    for key, runs in groups.items():
        # A framework is one framework across workloads: several sources label their runs
        # "torch [source]", and keep the framework's own name beside it.
        quiet = [{**r, "framework": r.get("framework_name", r["framework"])} for r in runs
                 if not (r.get("machine_load") or {}).get("busy")]
        times = per_seed(quiet)
        if times:
            name = " ".join(str(k) for k in key if k)
            table[name] = {f: median_of(np.asarray(list(v.values()), dtype=float)) for f, v in times.items()}
    return table


def performance_profile(medians: dict[str, dict[str, float]],
                        ratios: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, float]]:
    """(r, ρ_f(r), area_f): ρ_f(r) is the fraction of workloads framework f solves within r
    times the fastest framework's time on it; a workload f has no time for or never solved
    counts as unsolved. The area under ρ over r in [1, PROFILE_MAX_RATIO], divided by its
    width, is 1 for a framework that is fastest on every workload."""
    ratios = np.linspace(1.0, PROFILE_MAX_RATIO, 301) if ratios is None else ratios
    frameworks = list(dict.fromkeys(f for times in medians.values() for f in times))
    per_workload = []
    for times in medians.values():
        best = min(times.values())
        per_workload.append({f: (times[f] / best if f in times and math.isfinite(times[f])
                                 and math.isfinite(best) else math.inf) for f in frameworks})
    rho = {f: np.array([np.mean([w[f] <= r for w in per_workload]) for r in ratios])
           for f in frameworks}
    area = {f: float(np.trapezoid(rho[f], ratios) / (ratios[-1] - ratios[0])) for f in frameworks}
    return ratios, rho, area


def profile_figure(medians: dict[str, dict[str, float]], out: Path) -> str:
    from matplotlib.figure import Figure

    from pybench.report.plots import color, overlay_style, save

    ratios, rho, area = performance_profile(medians)
    figure = Figure(figsize=(7.5, 3.6), layout="constrained")
    ax = figure.subplots()
    for position, f in enumerate(rho):
        ax.step(ratios, rho[f], where="post", color=color(f, position), label=f"{f} (area {area[f]:.2f})",
                **overlay_style(position))
    ax.set_xlabel("r: within r× the fastest framework's time to result")
    ax.set_ylabel("fraction of workloads")
    ax.set_ylim(-0.02, 1.08)
    ax.set_xlim(1, PROFILE_MAX_RATIO)
    ax.grid(alpha=0.3)
    figure.legend(loc="outside right upper", fontsize=8)
    ax.set_title(f"Performance profile over {len(medians)} workloads")
    name = "performance-profile.png"
    save(figure, out / name)
    return name

"""The comparison's verdicts, each with its interval and the noise source it is drawn from.

Accuracy. pybench proves that the frameworks compute the same function (float64 trajectories
agree to 1e-11), so two frameworks' float32 accuracies at one seed differ by rounding amplified
by training: noise of the same kind as changing the seed. The seed is therefore the unit of
replication. Each framework's accuracy is averaged over seeds with a t interval made on the logit
scale (`score_interval`: a score in [0, 1] keeps its interval there); frameworks are
compared through the paired per-seed differences (a seed gives every framework the same initial
weights and batches), with t intervals made simultaneous over every pair of frameworks
(Bonferroni), so that choosing the best framework from the same data cannot inflate the rate of
false "differs" verdicts above 1 - CONFIDENCE. With one seed there is no verdict.

Step time. The ratio of two frameworks' median step times, with a percentile bootstrap interval
that resamples the steps within each run and, with several runs (seeds or repeats) per
framework, the runs too. "No measurable difference" when the whole interval lies within
EFFECT_FLOOR of 1. Runs measured on a busy machine (`machine_load.busy`) give no speed verdict;
`busy_caveat` names them once, after the verdicts.

Following Bouthillier et al., "Accounting for Variance in Machine Learning Benchmarks" (MLSys
2021): vary the sources of variation, pair what can be paired, and report intervals, not single
runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy import special, stats

CONFIDENCE = 0.95
EFFECT_FLOOR = 0.03  # step-time ratios within 3% of 1 are not a difference anyone acts on
BOOTSTRAP_SAMPLES = 2000
SUGGESTED_SEEDS = "0,1,2,3,4"


# --- accuracy -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    n: int

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def mean_interval(values, confidence: float = CONFIDENCE) -> Interval:
    """The mean of `values` with its two-sided t interval (NaN bounds for fewer than 2): for
    unbounded figures and differences; a score in [0, 1] takes `score_interval`."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean()) if len(values) else float("nan")
    if len(values) < 2:
        return Interval(mean, float("nan"), float("nan"), len(values))
    sd = float(values.std(ddof=1))
    half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * sd / np.sqrt(len(values))
    return Interval(mean, mean - half, mean + half, len(values))


# How a bounded score's interval is made, said beside it wherever it is printed.
SCORE_INTERVAL = "t interval over seeds on the logit scale"
# Without the test set's size, a score of exactly 0 or 1 is taken as this far inside [0, 1].
SCORE_EDGE = 1e-4


def score_interval(values, confidence: float = CONFIDENCE, images: int | None = None) -> Interval:
    """The mean of scores bounded by [0, 1] (accuracy, AUC) over seeds, with a t interval made
    on the logit scale and mapped back: it can never leave [0, 1], where a t interval on three
    seeds of 88% reaches past 100%. A score of 0 or 1 is moved half an image inside (`images`:
    the test set's size) before the logit. The estimate stays the plain mean; an interval around
    the logits' mean that misses it (seeds far apart) is widened to hold it."""
    values = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    mean = float(values.mean()) if len(values) else float("nan")
    if len(values) < 2:
        return Interval(mean, float("nan"), float("nan"), len(values))
    edge = 0.5 / images if images else SCORE_EDGE
    logits = special.logit(np.clip(values, edge, 1 - edge))
    half = (stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * float(logits.std(ddof=1))
            / np.sqrt(len(values)))
    low, high = (float(special.expit(logits.mean() + d)) for d in (-half, half))
    return Interval(mean, min(low, mean), max(high, mean), len(values))


def test_images(runs: list[dict]) -> int | None:
    """The test set's size the runs recorded (the fewest, if they differ), or None."""
    sizes = [r["test_images"] for r in runs if isinstance(r.get("test_images"), int) and r["test_images"] > 0]
    return min(sizes) if sizes else None


def accuracy_by_seed(runs: list[dict]) -> dict[str, dict[object, float]]:
    """framework -> seed -> test accuracy (repeats of one seed averaged: on the CPU they are
    identical, and a repeat is not a new sample of training noise)."""
    table: dict[str, dict[object, list[float]]] = {}
    for run in runs:
        if run.get("status") == "ok" and run.get("test_accuracy") is not None:
            table.setdefault(run["framework"], {}).setdefault(run.get("seed"), []).append(
                run["test_accuracy"])
    return {f: {s: float(np.mean(v)) for s, v in seeds.items()} for f, seeds in table.items()}


@dataclass(frozen=True)
class AccuracyVerdict:
    per_framework: dict[str, Interval]  # mean over seeds, CONFIDENCE interval
    best: str | None
    differences: dict[str, Interval]  # best minus each other framework, paired by seed
    pairs: int  # the Bonferroni family: every pair of frameworks
    confidence: float  # of each difference's interval, after the correction
    seeds: int  # seeds that every framework finished

    @property
    def comparable(self) -> bool:
        return self.seeds >= 2 and len(self.per_framework) >= 2

    def differs(self, framework: str) -> bool:
        return self.differences[framework].excludes_zero()


def accuracy_verdict(runs: list[dict], confidence: float = CONFIDENCE) -> AccuracyVerdict:
    """Per-framework means over seeds and the best framework's paired differences to the
    others, on the seeds every framework finished (see the module docstring)."""
    by_seed = accuracy_by_seed(runs)
    shared = set.intersection(*(set(s) for s in by_seed.values())) if by_seed else set()
    seeds = sorted(shared, key=str)
    images = test_images(runs)
    per_framework = {f: score_interval([by_seed[f][s] for s in seeds], confidence, images)
                     for f in by_seed}
    pairs = len(list(combinations(per_framework, 2)))
    corrected = 1 - (1 - confidence) / max(pairs, 1)
    if len(seeds) < 2 or len(per_framework) < 2:
        return AccuracyVerdict(per_framework, None, {}, pairs, corrected, len(seeds))
    best = max(per_framework, key=lambda f: per_framework[f].estimate)
    differences = {f: mean_interval([by_seed[best][s] - by_seed[f][s] for s in seeds], corrected)
                   for f in per_framework if f != best}
    return AccuracyVerdict(per_framework, best, differences, pairs, corrected, len(seeds))


def accuracy_sentence(verdict: AccuracyVerdict, runs: list[dict]) -> str:
    """The headline's accuracy sentence: intervals and paired differences with several seeds;
    with one seed, the figures and why they decide nothing."""
    if not verdict.comparable:
        scored = {r["framework"]: r["test_accuracy"] for r in runs
                  if r.get("status") == "ok" and r.get("test_accuracy") is not None}
        if not scored:
            return ""
        tried = {r.get("seed") for r in runs}
        if len(tried) > 1 and len(scored) > 1:  # seeds given, but too few finished everywhere
            return (f"Accuracy: not compared: {verdict.seeds} of the {len(tried)} seeds "
                    f"finished in every framework, and a verdict needs two.")
        figures = ", ".join(f"{f} {100 * a:.2f}%" for f, a in scored.items())
        if len(scored) < 2:
            return f"Accuracy: {figures}."
        return (f"Accuracy: {figures}, from one seed: accuracy cannot be compared from one seed "
                f"(at float32 the frameworks' gap at one seed is training noise, of the size of "
                f"a change of seed); run with --seeds {SUGGESTED_SEEDS} for a verdict.")
    means = ", ".join(f"{f} {pp(i.estimate)}% [{pp(i.low)}, {pp(i.high)}]"
                      for f, i in sorted(verdict.per_framework.items(),
                                         key=lambda item: -item[1].estimate))
    parts = []
    for framework, d in verdict.differences.items():
        word = "**differs**" if d.excludes_zero() else "no difference resolved"
        parts.append(f"{verdict.best} − {framework} {signed_pp(d.estimate)} pp "
                     f"[{signed_pp(d.low)}, {signed_pp(d.high)}]: {word}")
    if verdict.pairs == 1:
        level = f"{CONFIDENCE:.0%} interval"
    else:
        level = (f"{verdict.confidence:.1%} intervals, {CONFIDENCE:.0%} simultaneous over the "
                 f"{verdict.pairs} pairs of frameworks (Bonferroni)")
    return (f"Accuracy over {verdict.seeds} seeds (mean, {CONFIDENCE:.0%} {SCORE_INTERVAL}): "
            f"{means}. Paired by seed: {'; '.join(parts)} ({level}; noise source: "
            f"training seed).")


def pp(fraction: float) -> str:
    return f"{100 * fraction:.2f}"


def signed_pp(fraction: float) -> str:
    return f"{100 * fraction:+.2f}"


# --- step time ------------------------------------------------------------------------------


def timed_steps(run: dict) -> np.ndarray:
    """Stored step times (ms) without the first (compiling) step.

    `step_time_ms.n` says how many steps the statistics counted; a stored list longer than that
    still holds the warm-up step at the front. Without `n`, drop the first entry.
    """
    times = np.asarray(run.get("step_times_ms") or [], dtype=float)
    counted = (run.get("step_time_ms") or {}).get("n")
    if isinstance(counted, int) and 0 < counted <= len(times):
        return times[len(times) - counted:]
    return times[1:]


def bootstrap_medians(steps: np.ndarray, samples: int, rng: np.random.Generator,
                      chunk: int = 250) -> np.ndarray:
    """`samples` medians of `steps` resampled with replacement (in chunks: bounded memory)."""
    steps = np.asarray(steps, dtype=float)
    out = np.empty(samples)
    for start in range(0, samples, chunk):
        count = min(chunk, samples - start)
        picks = rng.integers(0, len(steps), size=(count, len(steps)), dtype=np.int32)
        out[start:start + count] = np.median(steps[picks], axis=1)
    return out


def bootstrap_statistic(runs_steps: list[np.ndarray], samples: int,
                        rng: np.random.Generator) -> np.ndarray:
    """Bootstrap draws of a framework's step time: the median of its runs' medians, resampling
    the runs (when there are several) and the steps within each."""
    per_run = np.stack([bootstrap_medians(s, samples, rng) for s in runs_steps])  # (runs, B)
    if len(runs_steps) == 1:
        return per_run[0]
    rows = rng.integers(0, len(runs_steps), size=(samples, len(runs_steps)))
    cols = rng.integers(0, samples, size=(samples, len(runs_steps)))
    return np.median(per_run[rows, cols], axis=1)


def point_statistic(runs_steps: list[np.ndarray]) -> float:
    return float(np.median([np.median(s) for s in runs_steps]))


@dataclass(frozen=True)
class Ratio:
    """How many times slower `slow` is than `fast`, with its bootstrap interval."""
    fast: str
    slow: str
    ratio: float
    low: float
    high: float
    runs: int  # runs per framework behind it (the fewer of the two)

    @property
    def within_floor(self) -> bool:
        return self.low >= 1 / (1 + EFFECT_FLOOR) and self.high <= 1 + EFFECT_FLOOR

    @property
    def resolved(self) -> bool:
        return self.low > 1

    def text(self) -> str:
        figure = f"{self.ratio:.2f}× [{self.low:.2f}, {self.high:.2f}]"
        if self.within_floor:
            return (f"no measurable difference from {self.slow} ({figure}, within "
                    f"±{EFFECT_FLOOR:.0%})")
        if not self.resolved:
            return f"{self.slow} not resolved ({figure}: the interval includes 1)"
        return f"{figure} faster than {self.slow}"


def step_ratios(steps_by_framework: dict[str, list[np.ndarray]],
                confidence: float = CONFIDENCE, samples: int = BOOTSTRAP_SAMPLES,
                seed: int = 0) -> list[Ratio]:
    """The fastest framework (by the median of its runs' median steps) against each other one:
    the ratio of the two statistics with a percentile bootstrap interval."""
    present = {f: [np.asarray(s, dtype=float) for s in runs if len(s)]
               for f, runs in steps_by_framework.items()}
    present = {f: runs for f, runs in present.items() if runs}
    if len(present) < 2:
        return []
    points = {f: point_statistic(runs) for f, runs in present.items()}
    fast = min(points, key=points.get)
    rng = np.random.default_rng(seed)
    draws = {f: bootstrap_statistic(runs, samples, rng) for f, runs in present.items()}
    tail = (1 - confidence) / 2 * 100
    ratios = []
    for framework in sorted(points, key=points.get):
        if framework == fast:
            continue
        ratio_draws = draws[framework] / draws[fast]
        low, high = np.percentile(ratio_draws, [tail, 100 - tail])
        ratios.append(Ratio(fast, framework, points[framework] / points[fast], float(low),
                            float(high), min(len(present[fast]), len(present[framework]))))
    return ratios


def quiet_and_busy(runs: list[dict]) -> tuple[list[dict], list[dict]]:
    """The ok runs with step times, split into those measured on a quiet machine and on a busy
    one (`machine_load.busy`): only the quiet ones decide anything about speed."""
    timed = [r for r in runs if r.get("status") == "ok" and (r.get("step_time_ms") or {}).get("median")]
    busy = [r for r in timed if (r.get("machine_load") or {}).get("busy")]
    return [r for r in timed if r not in busy], busy


def speed_sentence(runs: list[dict]) -> str:
    """The headline's step-time sentence: the fastest framework and each ratio with its
    interval, from the runs measured on a quiet machine (`busy_caveat` says what was left out)."""
    quiet, busy = quiet_and_busy(runs)
    steps: dict[str, list[np.ndarray]] = {}
    for run in quiet:
        steps.setdefault(run["framework"], []).append(timed_steps(run))
    if not steps:
        return ("Step time: not compared: every timed run was measured on a busy machine."
                if busy else "")
    ratios = step_ratios(steps)
    if not ratios:
        only = next(iter(steps))
        if busy:
            return f"Step time: not compared (only {only} was measured on a quiet machine)."
        return f"Step time: **{only}** {point_statistic(steps[only]):.2f} ms median."
    fast = ratios[0].fast
    runs_each = min(len(v) for v in steps.values())
    over = "steps" if runs_each == 1 else f"steps and runs ({runs_each} or more per framework)"
    median = "median" if runs_each == 1 else "median of its runs' medians"
    return (f"Step time: **{fast}** has the fastest step ({point_statistic(steps[fast]):.2f} ms, "
            f"{median}): {', '.join(r.text() for r in ratios)} ({CONFIDENCE:.0%} bootstrap "
            f"intervals over {over}; noise source: the machine, step to step"
            f"{' and run to run' if runs_each > 1 else ''}).")


def busy_caveat(runs: list[dict], timed_verdicts: str = "step-time") -> str:
    """One sentence for every run measured on a busy machine: how many, which (frameworks with
    their seeds), how busy (the range of other processes' cores, the hypervisor's share), and
    which verdicts they were left out of."""
    measured = [r for r in runs if r.get("status") == "ok" and r.get("machine_load")]
    busy = [r for r in measured if r["machine_load"].get("busy")]
    quiet = [r for r in measured if r not in busy]
    if not busy:
        return ""
    which = runs_named(busy)
    cores = [(r.get("machine_load") or {}).get("other_cores") for r in busy]
    cores = [c for c in cores if isinstance(c, (int, float))]
    # The hypervisor's share is named only where it made a run busy (a fraction of a percent is noise).
    steal = [(r.get("machine_load") or {}).get("steal_share") or 0.0 for r in busy
             if "hypervisor" in ((r.get("machine_load") or {}).get("busy_reason") or "")]
    how = []
    if cores:
        low, high = min(cores), max(cores)
        how.append(f"other processes used {low:.2f}{f'-{high:.2f}' if f'{high:.2f}' != f'{low:.2f}' else ''} cores")
    if steal:
        how.append(f"the hypervisor took up to {max(steal):.0%} of the CPU time")
    everything = "all" if not quiet else f"{len(busy)} of {len(busy) + len(quiet)}"
    shared = f"({' and '.join(how)})" if how else "with other work"
    return (f"Busy machine: {everything} runs ({which}) shared the CPU {shared}: "
            f"left out of the {timed_verdicts} verdict{'s' if ' and ' in timed_verdicts else ''}.")


def runs_named(runs: list[dict]) -> str:
    """"torch seeds 0, 1, 2; jax seed 1": runs named by framework and seed, compactly."""
    seeds: dict[str, list] = {}
    for run in runs:
        listed = seeds.setdefault(run["framework"], [])
        if run.get("seed") is not None and run["seed"] not in listed:
            listed.append(run["seed"])
    return "; ".join(framework + (f" seed{'s' if len(listed) > 1 else ''} {', '.join(map(str, listed))}"
                                  if listed else "") for framework, listed in seeds.items())


def seed_label(run: dict) -> str:
    if run.get("seed") is None:
        return ""
    return f" seed {run['seed']}" + (f" repeat {run['repeat']}" if run.get("repeat") else "")


def target_sentence(runs: list[dict], target: float | None) -> str:
    """Time to the target accuracy per framework over seeds: median, range, seeds that
    reached it."""
    if target is None:
        return ""
    parts = []
    for framework, group in group_by(runs, lambda r: r["framework"]).items():
        finished = [r for r in group if r.get("status") == "ok"]
        if not finished:
            continue
        times = [r["time_to_target_s"] for r in finished if r.get("time_to_target_s") is not None]
        reached = f"{len(times)} of {len(finished)} run{'s' if len(finished) != 1 else ''}"
        if not times:
            parts.append(f"{framework} never ({reached})")
        elif len(times) == 1:
            parts.append(f"{framework} {times[0]:.1f} s ({reached})")
        else:
            parts.append(f"{framework} median {np.median(times):.1f} s ({min(times):.1f}-"
                         f"{max(times):.1f} s, {reached})")
    return f"Time to {100 * target:g}% test accuracy: {'; '.join(parts)}." if parts else ""


def group_by(items, key) -> dict:
    groups: dict = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups

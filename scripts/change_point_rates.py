"""How often `pybench history`'s change-point rule is wrong on simulated series: the table in
docs/history.md. Each row: 1,000 flat series of 30 runs (how many get a change) and 300 series of
30 runs then 10 runs 20% slower (how many get a change, and how many exactly at run 31), with
log-normal noise and, in the last rows, outliers (8% of runs 30-50% slow, as a shared machine
gives). About a minute on one core: python scripts/change_point_rates.py
(The docs tests' PYBENCH_SHORT_RUNS cuts it to 20 and 6 series: they check that it runs.)
"""

import numpy as np

from pybench import short_runs
from pybench.history.series import change_points

ROWS = [(0.01, 0.0), (0.03, 0.0), (0.05, 0.0), (0.10, 0.0), (0.03, 0.08), (0.05, 0.08)]


def series(rng, runs: int, noise: float, outliers: float) -> np.ndarray:
    values = 10 * np.exp(rng.normal(0, noise, runs))
    slow = rng.random(runs) < outliers
    values[slow] *= 1.3 + 0.2 * rng.random(slow.sum())
    return values


def main() -> None:
    rng = np.random.default_rng(0)
    flat_series, stepped_series = (20, 6) if short_runs.active() else (1000, 300)
    print("| noise | outliers | flat series with a change | 20% step found | found at its run |")
    print("|---|---|---|---|---|")
    for noise, outliers in ROWS:
        false_alarms = sum(bool(change_points(series(rng, 30, noise, outliers), log=True)) for _ in range(flat_series))
        found = [change_points(np.concatenate([series(rng, 30, noise, outliers),
                                               1.2 * series(rng, 10, noise, outliers)]), log=True)
                 for _ in range(stepped_series)]
        at_its_run = sum([c.index for c in changes] == [30] for changes in found)
        print(f"| {noise:.0%} | {outliers:.0%} | {false_alarms} of {flat_series:,} "
              f"| {sum(map(bool, found))} of {stepped_series} | {at_its_run} |")


if __name__ == "__main__":
    main()

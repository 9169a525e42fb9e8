"""A sweep file, read: `SweepSpec` (what `pybench.sweep_file` makes of a SWEEP.toml) and the
distributions a search draws from. Plain data, so the runs of a sweep (`pybench.run.sweep_runs`)
hold one without reaching up to the reader.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

SEARCHES = ("grid", "random", "tpe")
PRUNERS = ("none", "median", "asha")
DISTRIBUTIONS = ("log_uniform", "uniform", "int", "choice")
# The keys that are not compare options (the search's own, and Ray's reservation), with their
# TOML types.
SEARCH_KEYS = {"search": str, "trials": int, "final_seeds": (int, list), "sampler_seed": int,
               "pruner": str, "time_budget": (str, int, float), "parallel_trials": int,
               "cpus_per_run": (int, float)}
DEFAULT_FINAL_SEEDS = 5


@dataclass(frozen=True)
class Distribution:
    """A searched key: Optuna's distribution of that kind (`pybench.tuning.optuna_distribution`)."""

    kind: str  # one of DISTRIBUTIONS
    values: tuple  # (low, high) or the choices

    def describe(self) -> str:
        if self.kind == "choice":
            return "{" + ", ".join(map(repr, self.values)) + "}"
        return f"{self.kind}[{self.values[0]:g}, {self.values[1]:g}]"


@dataclass(frozen=True)
class SweepSpec:
    """A parsed SWEEP.toml."""

    dataset: str
    frameworks: tuple[str, ...]
    models: tuple[str, ...]
    fixed: dict  # option -> value, as its check returns it
    grid: dict  # option -> tuple of values (every combination is one run)
    raw_grid: dict  # the same lists as the file wrote them (what a search's choices hold)
    space: dict  # option -> Distribution (search = "random" / "tpe")
    dataset_options: dict  # the [dataset_options] table (load_dataset's keywords)
    search: str | None = None  # None: a grid sweep, one run per combination
    trials: int | None = None
    final_seeds: tuple[int, ...] = ()
    sampler_seed: int = 0
    pruner: str = "none"
    time_budget_s: float | None = None
    parallel_trials: int | None = None
    cpus_per_run: float = 1.0
    path: Path = field(default=Path("SWEEP.toml"))

    @property
    def device(self) -> str:
        return self.fixed.get("device", "auto")

    @property
    def timeout(self) -> float | None:
        return self.fixed.get("timeout")

    @property
    def mlflow(self) -> Path | None:
        return self.fixed.get("mlflow")

    @property
    def seeds(self) -> tuple[int, ...]:
        return self.grid.get("seed", (self.fixed.get("seed") or 0,))

    def searched(self) -> dict:
        """The keys a search draws: its distributions, and its lists as choices."""
        lists = {k: Distribution("choice", v) for k, v in self.raw_grid.items() if k != "seed"}
        return {**lists, **self.space}

"""SWEEP.toml: every `compare` option, fixed, listed (a grid) or drawn from a distribution (a search).

There is one description of the run options: the option table (`pybench.options`). A sweep key
is a `compare` option's name with underscores (`--warmup-steps` is `warmup_steps`), its value
converted and checked by that option's own check and choices, and a run's `TrainConfig` is made
by the same `pybench.options.train_config` from the same values as the command line's. An option added
to the table is a sweep key at once, and the two cannot drift apart.

A value is fixed (a scalar), a grid (a list: every value, each combination one run) or, with
`search = "random"` or `"tpe"`, a distribution: `{log_uniform = [A, B]}`, `{uniform = [A, B]}`,
`{int = [A, B]}` or `{choice = [...]}` (a list is a choice there too). The keys of the search
itself (`search`, `trials`, `final_seeds`, ...) are `SEARCH_KEYS`; `pybench.commands.tune` runs
a search, `pybench.commands.sweep` a grid.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
import sys
from functools import cache
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from pybench import short_runs
from pybench.errors import PybenchError
from pybench.frameworks import FRAMEWORK_DESCRIPTIONS, FRAMEWORK_NAMES
from pybench.options import DATA, load_options, option_by_dest, train_config
from pybench.recipes import RECIPES
from pybench.sweep_spec import (
    DEFAULT_FINAL_SEEDS,
    DISTRIBUTIONS,
    PRUNERS,
    SEARCH_KEYS,
    SEARCHES,
    Distribution,
    SweepSpec,
)

# The first sweep files named the grid in plurals; they still read.
PLURAL_KEYS = {"batch_sizes": "batch_size", "lrs": "lr", "optimizers": "optimizer", "seeds": "seed"}
# compare's options that mean nothing per run, and why (the table says which: `Option.sweep`).
NOT_SWEEP_KEYS = {"out": "the sweep's folder is `sweep --out`",
                  "no_report": "`sweep --no-report` skips the report",
                  "repeats": "list the seeds to train instead (seeds = [0, 1, 2])",
                  "store": "`sweep --store` names the history store"}


# ---------------------------------------------------------------- compare's options

@cache
def compare_options() -> dict:
    """compare's options by sweep key (their `dest`), from the option table: those a sweep file
    takes (`Option.sweep`; NOT_SWEEP_KEYS says why the others are refused)."""
    return {dest: option for dest, option in option_by_dest("compare").items() if option.sweep}


@cache
def dataset_keys() -> frozenset[str]:
    """The dataset options: they decide the arrays, which every run of a sweep shares."""
    return frozenset(dest for dest, option in compare_options().items() if option.group == DATA)


def run_wide(key: str) -> bool:
    """Whether every run of a sweep must share the option's value (`Option.per_run`)."""
    return not compare_options()[key].per_run


@cache
def dataset_option_keys() -> dict[str, type]:
    """The [dataset_options] table of older sweep files: load_dataset's keywords (each dataset
    option's `to`) and their types."""
    keys = {}
    for option in compare_options().values():
        if option.group == DATA:
            keyword = option.to.removeprefix("load:")
            keys[keyword] = bool if option.dest == "task" else option_kind(option)
    return keys


def option_kind(option) -> type:
    """The TOML type one value of the option must have (a list option: its comma-separated
    text)."""
    return str if option.kind is tuple else option.kind


def flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def convert(key: str, value, bad):
    """One value of `key` as `compare` would store it, checked by the option's own check and
    choices; anything wrong is `bad(key, what)`."""
    option = compare_options()[key]
    kind = option_kind(option)
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not (isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
            or kind is float and is_number):
        raise bad(key, f"expected {kind.__name__}, got {value!r}")
    if kind is bool:
        return value
    if option.choices is not None and value not in option.choices:
        raise bad(key, f"unknown {key.replace('_', ' ')} {value!r}: choose from "
                       f"{', '.join(map(str, option.choices))}{did_you_mean(str(value), option.choices)}")
    try:
        return option.check(repr(value) if kind is float else str(value))
    except (ValueError, PybenchError) as exc:
        raise bad(key, f"{value!r}: {exc}") from None


# What people call some options elsewhere (Keras, Weights & Biases, Ray Tune).
SYNONYMS = {"learning_rate": "lr", "learning_rates": "lrs", "wd": "weight_decay", "bs": "batch_size",
            "n_epochs": "epochs", "num_epochs": "epochs", "optimiser": "optimizer", "warmup": "warmup_steps"}


def did_you_mean(word: str, options) -> str:
    names = [str(o) for o in options]
    if SYNONYMS.get(word) in names:
        return f" (did you mean {SYNONYMS[word]!r}?)"
    close = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


# ---------------------------------------------------------------- reading the file

def load_sweep_spec(path: Path) -> SweepSpec:
    """Parse and check SWEEP.toml; anything wrong is a one-line error naming the file and key."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PybenchError(f"{path}: not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PybenchError(f"{path}: cannot be read ({type(exc).__name__})") from None
    except tomllib.TOMLDecodeError as exc:
        raise PybenchError(f"{path}: not valid TOML ({exc})") from None
    return spec_from_dict(short_runs.shorten_sweep(raw), path)  # the tests' override: no-op unless set


def spec_from_dict(raw: dict, path: Path) -> SweepSpec:
    def bad(key: str, what: str) -> PybenchError:
        return PybenchError(f"{path}: {key}: {what}")

    options = compare_options()
    known = {*options, *PLURAL_KEYS, *SEARCH_KEYS, "dataset", "dataset_options"}
    entries: dict[str, tuple[str, object]] = {}  # option -> (the key as written, value)
    for written, value in raw.items():
        key = written.replace("-", "_")
        if key not in known:
            why = NOT_SWEEP_KEYS.get(key)
            raise bad(written, f"not a sweep key: {why}" if why else
                      f"unknown key{did_you_mean(key, sorted(known))}; a sweep key is a compare "
                      "option's name with underscores (docs/sweeps.md)")
        option = PLURAL_KEYS.get(key, key)
        if option in entries:
            raise bad(written, f"given twice (as {entries[option][0]} too)")
        if key in PLURAL_KEYS and not isinstance(value, list):
            raise bad(written, f"expected a list, e.g. {written} = [{example(options[option])}]")
        entries[option] = (written, value)
    if "dataset" not in entries:
        raise bad("dataset", "missing (e.g. dataset = \"digits\")")
    dataset = entries.pop("dataset")[1]
    if not isinstance(dataset, str):
        raise bad("dataset", f"expected a string, got {dataset!r}")
    search_settings = {k: entries.pop(k) for k in list(entries) if k in SEARCH_KEYS}
    search = search_value(search_settings, bad)
    table = entries.pop("dataset_options", (None, {}))[1]
    frameworks = list_of_names("frameworks", entries.pop("frameworks", (None, list(FRAMEWORK_NAMES))), bad)
    models = list_of_names("models", entries.pop("models", (None, ["lenet5"])), bad)
    models = checked_models(models, path, bad)

    fixed, grid, raw_grid, space = {}, {}, {}, {}
    for option, (written, value) in entries.items():
        if isinstance(value, dict):
            if run_wide(option):
                raise bad(written, "cannot be searched: every run shares it; give one value")
            space[option] = distribution(written, option, value, bad)
        elif isinstance(value, list):
            if run_wide(option):
                raise bad(written, "cannot be swept: every run shares it; give one value")
            if not value:
                raise bad(written, "empty list: give at least one value")
            items = tuple(convert(option, item, lambda k, w, written=written: bad(written, w)) for item in value)
            if len(set(map(repr, items))) != len(items):
                raise bad(written, "lists a value twice")
            grid[option], raw_grid[option] = items, tuple(value)
        else:
            fixed[option] = convert(option, value, lambda k, w, written=written: bad(written, w))
    fixed = with_paths_resolved(fixed, path)
    if space and search in (None, "grid"):
        key = next(iter(space))
        raise bad(key, "a distribution needs search = \"random\" or \"tpe\" (a grid takes a list)")
    if "seed" in fixed and "seed" in grid:  # pragma: no cover - PLURAL_KEYS rejects it
        raise bad("seeds", "given with seed")
    if search and "seed" in grid:
        raise bad(entries["seed"][0], "a search trains each trial on `seed` (one value) and gives "
                                      "its verdict on `final_seeds`")
    check_dataset_table(table, bad)
    both = dataset_table_names({k: v for k, v in fixed.items() if k in dataset_keys()}) & set(table)
    if both:  # the table would silently win over the top-level key
        key = sorted(both)[0]
        raise bad(f"dataset_options.{key}", "given at the top level too: give it once")
    spec = dict(dataset=dataset, frameworks=tuple(frameworks), models=tuple(models), fixed=fixed,
                grid=grid, raw_grid=raw_grid, space=space, dataset_options=dict(table), path=path)
    return SweepSpec(**spec, **search_fields(search, search_settings, fixed, grid, space, bad))


def example(option) -> str:
    return {str: '"torch"', int: "1", float: "0.01", bool: "true"}[option_kind(option)]


def list_of_names(key: str, entry: tuple, bad) -> list[str]:
    written, value = entry
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise bad(key, f"expected a list of names, e.g. {key} = [\"torch\", \"jax\"]" if value != []
                  else "empty list: give at least one value")
    if len(set(value)) != len(value):
        raise bad(key, "lists a value twice")
    if key == "frameworks":
        for name in value:
            if name not in FRAMEWORK_DESCRIPTIONS:
                raise bad(key, f"unknown framework {name!r}: choose from "
                               f"{', '.join(FRAMEWORK_DESCRIPTIONS)}{did_you_mean(name, FRAMEWORK_DESCRIPTIONS)}")
    return value


def checked_models(names: list[str], path: Path, bad) -> list[str]:
    """Built-in model names, and CNN files relative to the sweep file (read and registered)."""
    from pybench.models import MODEL_DESCRIPTIONS, model_names
    from pybench.models.cnn import is_cnn_file

    for name in names:
        if name not in MODEL_DESCRIPTIONS and not is_cnn_file(name):
            raise bad("models", f"unknown model {name!r}: choose from {', '.join(MODEL_DESCRIPTIONS)}"
                                f"{did_you_mean(name, MODEL_DESCRIPTIONS)}, or a CNN file (.toml, .json)")
    return list(model_names(str((path.parent / Path(m).expanduser()).resolve()) if is_cnn_file(m) else m
                            for m in names))


def with_paths_resolved(fixed: dict, path: Path) -> dict:
    """Files a sweep names are relative to the sweep file, as a file's own paths read."""
    fixed = dict(fixed)
    for key in ("weights", "tensorboard", "mlflow", "data_dir"):
        if fixed.get(key) is not None:
            fixed[key] = str((path.parent / Path(str(fixed[key])).expanduser()).resolve())
    return fixed


def distribution(written: str, option: str, value: dict, bad) -> Distribution:
    """`{log_uniform = [A, B]}` and its kin, checked against the option's type."""
    if len(value) != 1 or next(iter(value)) not in DISTRIBUTIONS:
        raise bad(written, f"a distribution is one of {{{' | '.join(f'{d} = [...]' for d in DISTRIBUTIONS)}}}, "
                           f"got {value!r}")
    kind, items = next(iter(value.items()))
    if not isinstance(items, list) or not items:
        raise bad(written, f"{kind}: expected a list, e.g. {{{kind} = [1e-4, 1e-1]}}")
    one = lambda k, w: bad(written, w)  # noqa: E731 - errors name the key as written
    converted = tuple(convert(option, item, one) for item in items)
    if kind == "choice":
        if len(set(map(repr, converted))) != len(converted):
            raise bad(written, "lists a value twice")
        return Distribution(kind, tuple(items))  # as written: Optuna's choices are plain values
    if len(converted) != 2 or not converted[0] < converted[1]:
        raise bad(written, f"{kind}: expected [low, high] with low < high, got {items!r}")
    action_kind = option_kind(compare_options()[option])
    if kind == "int" and action_kind is not int:
        raise bad(written, f"int: {written} takes {action_kind.__name__} values; use uniform")
    if kind in ("uniform", "log_uniform") and action_kind is not float:
        raise bad(written, f"{kind}: {written} takes {action_kind.__name__} values"
                           + ("; use int" if action_kind is int else "; use choice"))
    if kind == "log_uniform" and converted[0] <= 0:
        raise bad(written, "log_uniform: the low end must be above 0")
    return Distribution(kind, converted)


def search_value(settings: dict, bad) -> str | None:
    for key, (written, value) in settings.items():
        kind = SEARCH_KEYS[key]
        if isinstance(value, bool) or not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise bad(written, f"expected {names}, got {value!r}")
    if "search" not in settings:
        extra = [written for key, (written, _) in settings.items() if key != "cpus_per_run"]
        if extra:
            raise bad(extra[0], "needs search = \"grid\", \"random\" or \"tpe\"")
        return None
    search = settings["search"][1]
    if search not in SEARCHES:
        raise bad("search", f"unknown search {search!r}: choose from {', '.join(SEARCHES)}"
                            f"{did_you_mean(search, SEARCHES)}")
    return search


def search_fields(search: str | None, settings: dict, fixed: dict, grid: dict, space: dict,
                  bad) -> dict:
    """The SweepSpec fields of the search's own keys, checked."""
    values = {key: value for key, (_, value) in settings.items()}
    out: dict = {"cpus_per_run": float(values.get("cpus_per_run", 1.0))}
    if out["cpus_per_run"] <= 0:
        raise bad("cpus_per_run", f"{values['cpus_per_run']!r} must be positive")
    if search is None:
        return out
    out["search"] = search
    grid_size = math.prod(len(v) for k, v in grid.items() if k != "seed")
    trials = values.get("trials")
    if search != "grid" and trials is None:
        raise bad("trials", f"missing: search = \"{search}\" needs trials = N (per framework)")
    if trials is not None and trials < 1:
        raise bad("trials", f"{trials} must be at least 1")
    if search == "grid" and not grid:
        raise bad("search", "a grid search needs at least one list to search")
    out["trials"] = min(trials or grid_size, grid_size) if search == "grid" else trials
    seed = fixed.get("seed", 0)
    final = values.get("final_seeds", DEFAULT_FINAL_SEEDS)
    if isinstance(final, int):
        if final < 1:
            raise bad("final_seeds", f"{final} must be at least 1")
        final = [seed + 1 + i for i in range(final)]  # fresh: never the seed the trials used
    if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in final) or not final:
        raise bad("final_seeds", f"expected a count or a list of seeds (whole numbers >= 0), got {final!r}")
    if seed in final:
        raise bad("final_seeds", f"seed {seed} trained the trials: the verdict needs fresh seeds")
    if len(set(final)) != len(final):
        raise bad("final_seeds", "lists a seed twice")
    out["final_seeds"] = tuple(final)
    out["sampler_seed"] = values.get("sampler_seed", 0)
    pruner = values.get("pruner", "median" if search == "tpe" else "none")
    if pruner not in PRUNERS:
        raise bad("pruner", f"unknown pruner {pruner!r}: choose from {', '.join(PRUNERS)}"
                            f"{did_you_mean(pruner, PRUNERS)}")
    out["pruner"] = pruner
    if "time_budget" in values:
        out["time_budget_s"] = parse_duration(values["time_budget"], lambda w: bad("time_budget", w))
    if "parallel_trials" in values:
        if values["parallel_trials"] < 1:
            raise bad("parallel_trials", f"{values['parallel_trials']} must be at least 1")
        out["parallel_trials"] = values["parallel_trials"]
    if not grid and not space:
        raise bad("search", "nothing to search: give a list or a distribution, e.g. "
                            "lr = {log_uniform = [1e-4, 1e-1]}")
    return out


DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h)?\s*$")
UNIT_S = {None: 1, "s": 1, "m": 60, "min": 60, "h": 3600}


def parse_duration(value, bad) -> float:
    """"2h", "45m", "90s" or a number of seconds."""
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = DURATION.match(value)
        if not match:
            raise bad(f"{value!r}: give a duration such as \"2h\", \"45m\" or \"600s\"")
        seconds = float(match.group(1)) * UNIT_S[match.group(2)]
    if not seconds > 0:
        raise bad(f"{value!r} must be positive")
    return seconds


def check_dataset_table(table, bad) -> None:
    """The [dataset_options] table: load_dataset's keywords (older sweep files)."""
    if not isinstance(table, dict):
        raise bad("dataset_options", "expected a table ([dataset_options])")
    for key, value in table.items():
        known = dataset_option_keys()
        if key not in known:
            raise bad(f"dataset_options.{key}", f"unknown key{did_you_mean(key, known)} "
                                                f"(known: {', '.join(known)})")
        kind = known[key]
        if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind) and not (
                kind is float and isinstance(value, int)):
            raise bad(f"dataset_options.{key}", f"expected {kind.__name__}, got {value!r}")


# ---------------------------------------------------------------- runs from the file

def grid_points(spec: SweepSpec, keys=None) -> list[dict]:
    """Every combination of the grid's lists (seed aside) as the file wrote them, in the file's
    order."""
    keys = [k for k in (keys or spec.grid) if k != "seed"]
    return [dict(zip(keys, values)) for values in itertools.product(*(spec.raw_grid[k] for k in keys))]


def run_values(spec: SweepSpec, values: dict) -> dict:
    """compare's option values for one run, by dest: the table's defaults (a recipe's, when the
    file names one), the file's fixed values, then the run's own."""
    defaults = {dest: option.default_for("compare") for dest, option in compare_options().items()}
    return {**defaults, **RECIPES.get(spec.fixed.get("recipe"), {}), **spec.fixed, **values}


def run_train_config(spec: SweepSpec, model: str, values: dict):
    """The TrainConfig of one run (`pybench.options.train_config`, as compare makes it); a combination
    the configuration refuses (e.g. nesterov with adam) is a one-line error naming the file."""
    try:
        return train_config(run_values(spec, values), model)
    except PybenchError as exc:
        shown = ", ".join(f"{k} = {v!r}" for k, v in values.items())
        raise PybenchError(f"{spec.path}: {exc}" + (f" (with {shown})" if shown else "")) from None


def option_values(spec: SweepSpec, written: dict) -> dict:
    """Searched values as the file writes them (Optuna's choices are plain TOML values), as
    compare stores them."""
    def bad(key: str, what: str) -> PybenchError:
        return PybenchError(f"{spec.path}: {key}: {what}")

    return {k: convert(k, v, bad) for k, v in written.items()}


def run_dataset_options(spec: SweepSpec) -> dict:
    """load_dataset's keywords: compare's dataset options in the file, then its
    [dataset_options] table (the older spelling: load_dataset's own names)."""
    written = {k: v for k, v in spec.fixed.items() if k in dataset_keys()}
    options = load_options(run_values(spec, {}))
    return {**{k: v for k, v in options.items() if k in dataset_table_names(written)}, **spec.dataset_options}


def dataset_table_names(written: dict) -> set[str]:
    """The load_dataset keywords the file's top-level dataset options set."""
    options = option_by_dest("compare")
    return {options[k].to.removeprefix("load:") for k in written}

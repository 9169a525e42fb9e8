"""Every option of every command, described once, as data: `OPTIONS`.

Each `Option` says its flag, help, group (`train`: what a run trains with; `data`: how the
dataset is read; `run`: which runs, where, and what they write), the commands that take it, the
type of one value and the function that checks a value given as text, its default (and how the
docs say it), its choices, whether a sweep may vary it from run to run, and where its value goes
(`to`: a TrainConfig field, `optimizer.lr`, `schedule.gamma`, a load_dataset keyword). From this
one table are made: the command line's parsers (`add_options`), the sweep file's keys
(`pybench.sweep_file`), the run configuration (`train_config` and `load_options` here; the job
file and results.json store its `pybench.config.RunConfig`) and docs/options.md
(`tools/option_reference.py`). A new option is one entry here plus the code that uses it.

A check takes the value as text (the command line's) and returns it converted, or raises
ValueError saying why in a few words; a sweep file's values (TOML's int, float, bool, str) go
through the same check. Rules between options (`--nesterov` needs sgd) live on the config
objects, not here.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pybench.config import TrainConfig
from pybench.errors import PybenchError
from pybench.frameworks import FRAMEWORK_NAMES, framework_problem
from pybench.optimizers import OPTIMIZERS, OptimizerConfig
from pybench.recipes import RECIPES, recipe_help
from pybench.schedules import SCHEDULES, Schedule

TRAIN, DATA, RUN = "train", "data", "run"
GROUP_TITLES = {RUN: "run options", TRAIN: "training options", DATA: "dataset options"}
RUNS = ("compare", "parity")  # the commands that train
LOADS = ("compare", "parity", "datasets info")  # the commands that load a dataset
DEFAULT_BATCH_SIZE = 32  # LeNet-5 reaches about 98% on MNIST in one epoch (docs/usage.md, compare)
PARITY_BATCH_SIZE = 16


# ---------------------------------------------------------------- checks: text -> value

def number(text) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def positive_float(text) -> float:
    value = number(text)
    if value <= 0:
        raise ValueError(f"{text!r} must be a positive number")
    return value


def non_negative_float(text) -> float:
    value = number(text)
    if value < 0:
        raise ValueError(f"{text!r} must not be negative")
    return value


def fraction_below_one(text) -> float:
    """In [0, 1): a momentum, a label smoothing."""
    value = number(text)
    if not 0 <= value < 1:
        raise ValueError(f"{text!r} must lie in [0, 1)")
    return value


def open_fraction(text) -> float:
    """Strictly between 0 and 1: a split's share."""
    value = number(text)
    if not 0 < value < 1:
        raise ValueError(f"{text!r} must be a number strictly between 0 and 1")
    return value


def accuracy_target(text) -> float:
    value = number(text)
    if not 0 < value <= 1:
        raise ValueError(f"{text!r}: give a fraction between 0 and 1, e.g. 0.98")
    return value


def whole(text) -> int:
    if isinstance(text, float) and not text.is_integer():
        raise ValueError(f"{text!r} is not a whole number")
    try:
        return int(str(text))
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None


def positive_int(text) -> int:
    value = whole(text)
    if value < 1:
        raise ValueError(f"{text!r} must be at least 1")
    return value


def non_negative_int(text) -> int:
    value = whole(text)
    if value < 0:
        raise ValueError(f"{text!r} must not be negative")
    return value


def image_side(text) -> int:
    value = whole(text)
    if not 1 <= value <= 4096:
        raise ValueError(f"{text!r} must be a whole number from 1 to 4096")
    return value


def comma_list(text) -> tuple[str, ...]:
    """"a,b" -> ("a", "b"), each named once; "" -> () (a list option's "none")."""
    if isinstance(text, (list, tuple)):
        text = ",".join(map(str, text))
    items = tuple(item.strip() for item in str(text).split(",") if item.strip())
    repeated = sorted({item for item in items if items.count(item) > 1})
    if repeated:  # torch,torch would run torch twice and report it as two frameworks
        raise ValueError(f"{text!r} names {', '.join(repeated)} more than once")
    return items


def names(text) -> tuple[str, ...]:
    items = comma_list(text)
    if not items:
        raise ValueError("expected a comma-separated list")
    return items


def epoch_list(text) -> tuple[int, ...]:
    return tuple(positive_int(item) for item in comma_list(text))


def seed_list(text) -> tuple[int, ...]:
    return tuple(non_negative_int(item) for item in names(text))


def text(value) -> str:
    return str(value)


def frameworks(text) -> tuple[str, ...]:
    items = names(text)
    for problem in filter(None, map(framework_problem, items)):
        raise ValueError(problem)
    return items


HISTORY_METRICS = ("step", "accuracy", "time-to-result", "memory")  # pybench.history.series.METRICS


def history_metrics(text) -> tuple[str, ...]:
    items = names(text)
    for item in items:
        if item not in HISTORY_METRICS:
            raise ValueError(f"unknown figure {item!r}: choose from {', '.join(HISTORY_METRICS)}")
    return items


# ---------------------------------------------------------------- the table

@dataclass(frozen=True)
class Option:
    """One option (or positional argument) of the command line, a sweep key, a config field."""

    flag: str  # "--batch-size"; a positional argument: its name ("dataset")
    help: str
    group: str  # TRAIN, DATA or RUN
    commands: tuple[str, ...]
    check: Callable | None = text  # text -> value (ValueError: why); None for a flag
    kind: type = str  # one value's type in a sweep file: int, float, str, bool; tuple: a list option
    default: object = None
    shown_default: str | None = None  # the docs' words, where the default is not one value
    choices: tuple | None = None
    metavar: str | None = None
    # Where the value goes: a TrainConfig field ("epochs", "optimizer.lr", "schedule.gamma"), a
    # load_dataset keyword ("load:seed"), or the command's own ("" : its dest).
    to: str = ""
    per_run: bool = True  # a sweep may give each run its own value
    sweep: bool = True  # a sweep file takes it as a key
    inverted: bool = False  # a flag that turns its `to` off (--no-cache: load_dataset's cache=False)
    defaults: dict = field(default_factory=dict)  # per command, where it differs
    nargs: str | None = None  # a positional taking several values ("+")

    @property
    def positional(self) -> bool:
        return not self.flag.startswith("-")

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def is_flag(self) -> bool:
        return self.check is None

    def default_for(self, command: str):
        return self.defaults.get(command, self.default)


def model_list_help() -> str:
    from pybench.models import MODEL_NAMES

    return (f"comma-separated: {','.join(MODEL_NAMES)}, or a CNN file of your own (.toml or .json; "
            "docs/models.md, Your own CNN)")


def schedule_names() -> tuple[str, ...]:
    return tuple(SCHEDULES)


DATASET_HELP = ("mnist, digits, a MedMNIST name (pathmnist, chestmnist_64, ...), or a folder / .zip / .csv / "
                ".npz path")
RESIZE_METHODS = ("crop", "squash", "pad")  # pybench.datasets.story says what each does
LAYOUTS = ("auto", "classes", "splits", "manifest")
SPLIT_SOURCES = ("auto", "official", "random")
TASKS = ("single", "multilabel")


def build_options() -> tuple[Option, ...]:
    return (
        # -- run: which runs, where, and what they write
        Option("dataset", DATASET_HELP, RUN, ("compare",), sweep=False),
        Option("spec", DATASET_HELP, RUN, ("datasets info",), sweep=False),
        Option("--models", model_list_help() + " (default lenet5)", RUN, ("compare",), names, tuple,
               ("lenet5",), per_run=False),
        Option("--models", model_list_help() + " (default: every built-in model that takes the dataset's "
               "images, the others said)", RUN, ("parity",), names, tuple, None, "every model that fits"),
        Option("--frameworks", f"comma-separated: {','.join(FRAMEWORK_NAMES)} (default: all)", RUN, RUNS,
               frameworks, tuple, FRAMEWORK_NAMES, per_run=False),
        Option("--seed", "initial weights and batch order (default 0)", TRAIN, RUNS, non_negative_int, int,
               None, "0", to="seed"),
        Option("--seeds", "comma-separated seeds, e.g. 0,1,2,3,4: every framework trains once per seed (runs "
               "paired by seed); the headline's accuracy verdict needs two or more (instead of --seed)", RUN,
               ("compare",), seed_list, tuple, sweep=False),
        Option("--repeats", "train each seed N times, for the step-time intervals (default 1)", RUN,
               ("compare",), positive_int, int, 1, sweep=False),
        Option("--recipe", "defaults for the options not given: " + recipe_help(), RUN, ("compare",),
               choices=tuple(RECIPES), per_run=False),
        Option("--device", "auto: the GPU for every framework when the machine has one", RUN, RUNS,
               choices=("auto", "cpu", "cuda"), default="auto", per_run=False),
        Option("--gpu", "on CUDA, the GPU every framework runs on, numbered as nvidia-smi lists them (with "
               "CUDA_VISIBLE_DEVICES set: an index into the GPUs it names; default 0)", RUN, RUNS,
               non_negative_int, int, 0, per_run=False),
        Option("--timeout", "seconds before a worker is stopped and its run recorded as failed", RUN, RUNS,
               positive_float, float, per_run=False),
        Option("--compile", "also run torch with its training step under torch.compile, reported as the "
               "framework torch.compile (its compilation in first step s)", RUN, ("compare",), None, bool,
               False, per_run=False),
        Option("--steps", "SGD steps of the trajectory check (default 10)", RUN, ("parity",), positive_int,
               int, 10),
        Option("--dtype", "precision of the trajectory check (default float64; the forward check is always "
               "float32)", RUN, ("parity",), choices=("float64", "float32"), default="float64"),
        Option("--dataset", f"data for the batches: {DATASET_HELP} (default: digits, offline)", RUN,
               ("parity",), default="digits"),
        Option("--predict", "a folder of unlabelled images every run predicts with its final model: "
               "predictions-<run>.csv (filename,label,p_<class>...) and how often the frameworks agree "
               "(default: the dataset's own unlabelled split folder, e.g. a flat test/ beside train/ class "
               "folders, when it has one)", TRAIN, ("compare",), metavar="DIR", to="predict", per_run=False),
        Option("--tensorboard", "also write every run's loss, learning rate and evaluation figures as "
               "TensorBoard event files under DIR/MODEL/FRAMEWORK-seedS, epoch by epoch as training goes", RUN,
               ("compare",), metavar="DIR", per_run=False),
        Option("--mlflow", "also log every run to an MLflow tracking database in DIR (parameters, per-epoch "
               "figures, step times, its record): mlflow ui --backend-store-uri sqlite:///DIR/mlflow.db (pip "
               "install -e '.[mlflow]')", RUN, ("compare",), metavar="DIR", per_run=False),
        Option("--out", "results folder", RUN, ("compare",), metavar="DIR",
               shown_default="runs/<timestamp>-<dataset>", sweep=False),
        Option("--out", "folder for parity.json and the arrays", RUN, ("parity",), metavar="DIR",
               shown_default="runs/<timestamp>-parity"),
        Option("--no-report", "skip report.md and plots", RUN, ("compare", "sweep"), None, bool, False,
               sweep=False),
        # -- sweep and report: the commands that run a file of runs, or read stored results
        Option("sweep_file", "the sweep: a TOML file of compare's options, lists and searches (docs/sweeps.md)",
               RUN, ("sweep",), metavar="SWEEP.toml", sweep=False),
        Option("--executor", "local: one run after another here; ray: Ray tasks (pip install -e '.[ray]')", RUN,
               ("sweep",), choices=("local", "ray"), default="local", sweep=False),
        Option("--address", "the Ray cluster to use, e.g. auto or HOST:6379 (default: start Ray locally)", RUN,
               ("sweep",), sweep=False),
        Option("--out", "results folder", RUN, ("sweep",), metavar="DIR",
               shown_default="runs/<timestamp>-sweep-<name>", sweep=False),
        Option("--resume", "keep the finished runs in --out and run only the others", RUN, ("sweep",), None,
               bool, False, sweep=False),
        Option("run_dirs", "folders `compare` or `sweep` wrote (several: one report holding every run, seeds of "
               "one configuration aggregated), or a pytest-benchmark JSON file (--benchmark-json) or .benchmarks "
               "folder (the newest run)", RUN, ("report",), metavar="RESULTS", nargs="+", sweep=False),
        Option("--out", "where the report goes", RUN, ("report",), metavar="DIR",
               shown_default="the results folder; for a JSON file, FILE-report/ beside it; for .benchmarks, "
               ".benchmarks/report/; for several, runs/<timestamp>-report/", sweep=False),
        Option("--baseline", "hold every run against this results folder's: ratios, and Mann-Whitney U on the "
               "step times", RUN, ("report",), metavar="RESULTS", sweep=False),
        Option("--fail-on-regression", "with --baseline: exit 1 when a step time is significantly more than PCT% "
               "slower than the baseline's", RUN, ("report",), positive_float, float, metavar="PCT", sweep=False),
        Option("--force", "with --baseline: compare runs whose configuration or dataset differs from the "
               "baseline's (the differences are listed either way; without --force such runs get no ratio and "
               "no verdict)", RUN, ("report",), None, bool, False, sweep=False),
        Option("--no-plots", "write no PNG figures", RUN, ("report",), None, bool, False, sweep=False),
        # -- history: the store every run is added to, its series and change points
        Option("--store", "the history store every finished run is added to: a SQLite file, or a folder holding "
               "history.sqlite", RUN, ("compare", "sweep", "history", "history import"), metavar="PATH",
               shown_default="$PYBENCH_STORE, else history.sqlite in the data directory", sweep=False),
        Option("sources", "results folders `compare` or `sweep` wrote, or another store's .sqlite file (a "
               "colleague's, a cluster node's): their runs are added", RUN, ("history import",),
               metavar="RESULTS", nargs="+", sweep=False),
        Option("--min-change", "the smallest change reported (history's change points; compare's line when a "
               "result leaves its series' history), in percent of the earlier level", RUN,
               ("history", "compare"), positive_float, float, 5.0, metavar="PCT", sweep=False),
        Option("--metrics", "comma-separated figures to follow: step,accuracy,time-to-result,memory", RUN,
               ("history",), history_metrics, tuple, HISTORY_METRICS, sweep=False),
        Option("--order", "the order of a series' runs: time (as recorded) or version (the framework's, then "
               "time)", RUN, ("history",), choices=("time", "version"), default="time", sweep=False),
        Option("--html", "also write the series and their change points as one self-contained page", RUN,
               ("history",), metavar="FILE", sweep=False),
        Option("--debug", "show tracebacks", RUN, ("",), None, bool, False, sweep=False),
        # -- train: what a run trains with
        Option("--epochs", "passes over the training split (default 1); --max-steps may stop sooner", TRAIN,
               ("compare",), positive_int, int, 1, to="epochs"),
        Option("--max-steps", "stop every run after this many steps", TRAIN, ("compare",), positive_int, int,
               to="max_steps"),
        Option("--batch-size", "training batch; the last partial batch of each epoch is left out, in every "
               "framework alike", TRAIN, RUNS, positive_int, int, DEFAULT_BATCH_SIZE, to="batch_size",
               defaults={"parity": PARITY_BATCH_SIZE}),
        Option("--optimizer", "PyTorch's SGD, Adam or AdamW (decoupled weight decay)", TRAIN, RUNS,
               choices=OPTIMIZERS, default="sgd", to="optimizer.name"),
        Option("--lr", "learning rate, the peak of a schedule", TRAIN, RUNS, positive_float, float, None,
               "0.01 for sgd, 0.001 for adam and adamw", to="optimizer.lr"),
        Option("--momentum", "sgd momentum, in [0, 1) (default 0.9)", TRAIN, RUNS, fraction_below_one, float,
               0.9, to="optimizer.momentum"),
        Option("--nesterov", "Nesterov momentum for sgd", TRAIN, RUNS, None, bool, False,
               to="optimizer.nesterov"),
        Option("--weight-decay", "sgd and adam: L2 penalty added to the gradient; adamw: decoupled decay "
               "(default 0)", TRAIN, RUNS, non_negative_float, float, 0.0, to="optimizer.weight_decay"),
        Option("--label-smoothing", "cross-entropy label smoothing, PyTorch's definition (default 0)", TRAIN,
               RUNS, fraction_below_one, float, 0.0, to="optimizer.label_smoothing"),
        Option("--pos-weight", "--task multilabel: weigh each finding's positive targets by its negatives / "
               "positives in the train split (BCEWithLogitsLoss's pos_weight; default 1)", TRAIN, RUNS,
               choices=("balanced",), to="pos_weight"),
        Option("--schedule", "learning rate per step: constant, step (--milestones, --gamma), cosine (to 0), "
               "onecycle (torch's OneCycleLR) (default constant)", TRAIN, RUNS, choices=schedule_names(),
               default="constant", to="schedule.name"),
        Option("--warmup-steps", "linear warm-up steps (onecycle: its rising phase, default 30% of the run)",
               TRAIN, RUNS, non_negative_int, int, 0, to="schedule.warmup_steps"),
        Option("--milestones", "step schedule: epochs after which the rate is multiplied by --gamma", TRAIN,
               RUNS, epoch_list, tuple, (), to="schedule.milestones"),
        Option("--gamma", "step schedule factor (default 0.1)", TRAIN, RUNS, positive_float, float, 0.1,
               to="schedule.gamma"),
        Option("--weights", "start every framework from this PyTorch state_dict (torch.save of a model's "
               "state_dict, e.g. torchvision's pretrained resnet18 for resnet18-imagenet) or its .npz: the "
               "classifier replaced by the seeded draw when the classes differ, grey images folded into a "
               "colour conv1", TRAIN, RUNS, metavar="FILE", to="weights"),
        Option("--trainable", "train only these layers, e.g. layer4,fc (parameter name prefixes); the rest is "
               "frozen in every framework: no gradient, optimizer state or weight decay, and frozen BatchNorm "
               "layers keep their running statistics (eval mode) (default: everything trains)", TRAIN, RUNS,
               comma_list, tuple, (), metavar="LIST", to="trainable"),
        Option("--target-accuracy", "record the time to result: the time until the validation accuracy (the "
               "test accuracy without a validation split) reaches this (0-1), compilation counted", TRAIN,
               ("compare",), accuracy_target, float, to="target_accuracy"),
        Option("--patience", "stop after N epochs without a better validation accuracy (the val split, else "
               "10% of train held out, stratified)", TRAIN, ("compare",), positive_int, int, to="patience"),
        Option("--select-by", "the validation figure that keeps the best epoch (and that --patience waits on): "
               "accuracy, or auc (one-vs-rest macro AUC; multi-label: the mean over findings)", TRAIN,
               ("compare",), choices=("accuracy", "auc"), default="accuracy", to="select_by"),
        Option("--balance", "class-balanced sampling (with replacement), for imbalanced data", TRAIN,
               ("compare",), None, bool, False, to="balance"),
        Option("--augment", "comma-separated: flip, vflip, crop, rotate[:DEG], zoom:MIN, brightness:F, "
               "contrast:F, drawn per epoch from the seed (the same pixels in every framework)", TRAIN,
               ("compare",), comma_list, tuple, (), to="augment"),
        Option("--eval-every", "steps between the evaluations that check --target-accuracy until it is "
               "reached (default: a tenth of an epoch)", TRAIN, ("compare",), positive_int, int,
               to="eval_every"),
        Option("--throughput-block", "time every other block of N steps as a whole, with one "
               "synchronisation, for a throughput figure beside the per-step times (default: 50 on CUDA, off "
               "on the CPU; 0: off)", TRAIN, ("compare",), non_negative_int, int, to="throughput_block"),
        Option("--embeddings", "store each framework's penultimate features of the first N test and training "
               "images; the report draws them as t-SNE maps side by side, and a grid of test images per class "
               "with each framework's call (default 0: none)", TRAIN, ("compare",), non_negative_int, int, 0,
               metavar="N", to="embeddings"),
        Option("--normalize", "the pixel statistics inputs are normalised with: dataset (the train split's), "
               "imagenet (torchvision's) or fixed:MEAN,STD (default: imagenet with --weights, else dataset)",
               TRAIN, ("compare",), metavar="HOW", to="normalize"),
        Option("--normal-class", "a single-label task's normal class: also record and report each class's "
               "share predicted as NAME (\"diagnosed as normal\")", TRAIN, ("compare",), metavar="NAME",
               to="normal_class"),
        # -- data: how the dataset is read (every run of a command shares it)
        Option("--data-dir", "data root (default: $PYBENCH_DATA_DIR, else ~/.cache/pybench)", DATA, LOADS,
               metavar="DIR", to="load:data_dir", per_run=False),
        Option("--image-size", "make every image S x S (bilinear; a non-square image as --resize says)", DATA,
               LOADS, image_side, int, metavar="S", to="load:image_size", per_run=False),
        Option("--resize", "how --image-size makes a non-square image square: crop: the shorter side resized "
               "to S, the longer side's excess cut from both ends (centre crop); squash: resized to S x S, the "
               "aspect ratio not kept; pad: the longer side resized to S, the shorter side padded with black on "
               "both sides (letterbox) (default crop); what was done is said with the dataset", DATA, LOADS,
               choices=RESIZE_METHODS, default="crop", to="load:resize", per_run=False),
        Option("--grayscale", "convert images to one channel", DATA, LOADS, None, bool, False,
               to="load:grayscale", per_run=False),
        Option("--test-fraction", "test share when the source has no test split (default 0.2)", DATA, LOADS,
               open_fraction, float, 0.2, metavar="F", to="load:test_fraction", per_run=False),
        Option("--val-fraction", "validation share carved from train when the source has no validation split "
               "(stratified, grouped like the test split); best epoch and --patience select on it (default: "
               "none; 0.1 with --patience)", DATA, LOADS, open_fraction, float, metavar="F",
               to="load:val_fraction", per_run=False),
        Option("--split-seed", "seed of those splits (default 0)", DATA, LOADS, non_negative_int, int, 0,
               metavar="N", to="load:seed", per_run=False),
        Option("--layout", "how a folder is read: auto detects (default); classes: every sub-folder a class; "
               "splits: train/ val/ test/ folders of class folders; manifest: a CSV beside images", DATA, LOADS,
               choices=LAYOUTS, default="auto", to="load:layout", per_run=False),
        Option("--split", "a manifest's test split: auto uses the official lists (train_val_list.txt, "
               "test_list.txt) when present (default); official requires them; random ignores them", DATA,
               LOADS, choices=SPLIT_SOURCES, default="auto", to="load:split", per_run=False),
        Option("--skip-unreadable", "leave out images that cannot be decoded (listed in the run's "
               "unreadable.txt) instead of stopping", DATA, LOADS, None, bool, False, to="load:skip_unreadable",
               per_run=False),
        Option("--no-checksum", "accept a MedMNIST file whose MD5 differs from medmnist.INFO's (a modified "
               "copy)", DATA, LOADS, None, bool, False, to="load:checksum", per_run=False, inverted=True),
        Option("--manifest", "the CSV manifest inside a .zip", DATA, LOADS, metavar="NAME", to="load:manifest",
               per_run=False),
        Option("--image-col", 'manifest column of image file names (default "Image Index", else the first)', DATA,
               LOADS, metavar="COL", to="load:image_col", per_run=False),
        Option("--label-col", 'manifest column of labels (default "Finding Labels", else the second)', DATA,
               LOADS, metavar="COL", to="load:label_col", per_run=False),
        Option("--binary-negative", "two classes: LABEL (class 0) against everything else, multi-label cells "
               "included", DATA, LOADS, metavar="LABEL", to="load:binary_negative", per_run=False),
        Option("--task", 'single: one class per image (default); multilabel (a manifest only): each image has '
               'a set of findings ("A|B", "No Finding" none), one sigmoid output each', DATA, LOADS,
               choices=TASKS, default="single", to="load:multilabel", per_run=False),
        Option("--group-col", 'manifest column whose groups never straddle train and test (default "Patient '
               'ID" when present; "none": no grouping)', DATA, LOADS, metavar="COL", to="load:group_col",
               per_run=False),
        Option("--workers", "processes that decode images (default: every core)", DATA, LOADS, positive_int,
               int, metavar="N", to="load:workers", per_run=False),
        Option("--no-cache", "decode again instead of reading the cache", DATA, LOADS, None, bool, False,
               to="load:cache", per_run=False, inverted=True),
        Option("--hash-files", "find the dataset's cache entry by every source file's content (sha256; every "
               "byte read) instead of its size and modification time: for files that may change without either "
               "changing", DATA, LOADS, None, bool, False, to="load:hash_files", per_run=False),
    )


# Every command, and what it does (its line in `pybench --help`); "" is the top level.
COMMANDS = {
    "": "The command line: `python -m pybench list | datasets info | compare | parity | sweep | report | history`.",
    "list": "datasets, models and frameworks, with availability",
    "datasets": "dataset commands",
    "datasets info": "splits, shapes, class counts, normalisation, fingerprint",
    "compare": "train every framework and model; store results",
    "parity": "prove every framework computes the same thing",
    "sweep": "train every combination of a SWEEP.toml grid",
    "report": "write report.md, report.html and plots from stored results",
    "history": "every stored run in series, and where each series changed",
    "history import": "add results folders, or another machine's store, to the store",
}

# The docs' fuller words for some options, by command and flag (a positional by its name): docs/options.md
# shows them in place of the short `help` that --help prints.
ABOUT = {
    "compare": {
        "--frameworks": (
            "comma-separated, each named once; an unavailable framework is recorded as `unavailable` with the"
            " reason and the others run; if none is available, one-line error"
        ),
        "--epochs": (
            "epochs over the training split"
        ),
        "--max-steps": (
            "stop every run after N steps in all"
        ),
        "--batch-size": (
            "training batch; the last partial batch of an epoch is dropped so every step has one shape"
        ),
        "--recipe": (
            "fills in every option below that the command line leaves out from a named recipe (see "
            "[Recipes](models.md#recipes)); `mnist-fast` reaches 99% on MNIST with LeNet-5"
        ),
        "--optimizer": (
            "PyTorch's SGD, Adam or AdamW in every framework (see [Fidelity](statistics.md#fidelity))"
        ),
        "--lr": (
            "learning rate (the peak of a schedule); a finite positive number"
        ),
        "--schedule": (
            "the learning rate of every optimizer step, computed once in numpy and handed to every framework "
            "(see [Recipes](models.md#recipes))"
        ),
        "--warmup-steps": (
            "linear warm-up over the first N steps (constant, step, cosine); for onecycle, the length of its "
            "rising phase (default 30% of the run)"
        ),
        "--milestones": (
            "step schedule: comma-separated epochs after which the rate is multiplied by `--gamma`"
        ),
        "--gamma": (
            "step schedule factor"
        ),
        "--momentum": (
            "SGD momentum, in [0, 1)"
        ),
        "--nesterov": (
            "Nesterov momentum (SGD with a momentum above 0)"
        ),
        "--weight-decay": (
            "sgd and adam: L2 penalty added to the gradient of every parameter; adamw: decoupled decay (w *= "
            "1 - lr X each step); finite, not negative"
        ),
        "--label-smoothing": (
            "cross-entropy label smoothing, PyTorch's definition; in [0, 1)"
        ),
        "--pos-weight": (
            "`--task multilabel`: weigh each finding's positive targets by its negatives / positives in the "
            "train split (`BCEWithLogitsLoss`'s `pos_weight`; see [Multi-label "
            "findings](datasets.md#multi-label-findings---task-multilabel))"
        ),
        "--compile": (
            "also run torch with its training step's module under `torch.compile`, as the framework "
            "`torch.compile` (its own row everywhere, never mixed with torch's); its first step, reported "
            "apart as `first step s`, includes the compilation. `torch.compile` can also be named in "
            "`--frameworks`"
        ),
        "--augment": (
            "comma-separated, from `flip`, `vflip`, `crop`, `rotate` or `rotate:DEG`, `zoom:MIN`, "
            "`brightness:F`, `contrast:F` (e.g. `vflip,rotate:15,zoom:0.8`): each epoch's augmented training "
            "images are drawn in numpy from the seed, so every framework trains on the very same pixels (see "
            "[Recipes](models.md#recipes))"
        ),
        "--normalize": (
            "the pixel statistics inputs are normalised with: `dataset` (the train split's per-channel mean "
            "and std), `imagenet` (torchvision's; for grey images the mean of its three means and stds, 0.449"
            " and 0.226), `fixed:MEAN,STD` (one mean and std for every channel); recorded per run as "
            "`normalization`"
        ),
        "--seed": (
            "initial weights, batch order and augmentation"
        ),
        "--weights": (
            "start every framework from this PyTorch `state_dict` file (what `torch.save(model.state_dict(), "
            "FILE)` writes, torchvision's pretrained weights included) or the same arrays in an `.npz`, "
            "instead of the seeded draw; the head is replaced by the seeded draw when its classes differ, and"
            " grey images go to a colour model's first convolution summed over its three input channels, "
            "which is what repeating the grey channel three times computes (see [Pretrained weights and "
            "frozen layers](models.md#pretrained-weights-and-frozen-layers))"
        ),
        "--trainable": (
            "train only these layers, as parameter name prefixes (`layer4,fc`, `layer3.1`, `bn1`); every "
            "other parameter is frozen in every framework: no gradient, no optimizer state, no weight decay; "
            "BatchNorm layers with no trained parameter keep their running statistics and normalise with them"
            " in training too (eval mode, as torchvision users freeze layers)"
        ),
        "--seeds": (
            "comma-separated seeds (e.g. `0,1,2,3,4`), instead of `--seed`: every framework trains once per "
            "seed, so the runs are paired by seed (same initial weights and batches); the headline's accuracy"
            " verdict needs two or more (see [Statistics](statistics.md#statistics-what-a-verdict-means))"
        ),
        "--repeats": (
            "train each seed N times: repeats of one seed give the same accuracy on the CPU and add samples "
            "of timing noise to the step-time intervals"
        ),
        "--device": (
            "one device for all frameworks: `auto` is the GPU when the machine has an NVIDIA GPU, else the "
            "CPU; `cuda` without a GPU is a one-line error; a framework that cannot use the GPU fails with "
            "the reason instead of silently running on the CPU"
        ),
        "--gpu": (
            "on CUDA, the one GPU every framework runs on, numbered as `nvidia-smi` lists them (workers get "
            "`CUDA_DEVICE_ORDER=PCI_BUS_ID`, CUDA's own order otherwise being fastest first); with "
            "`CUDA_VISIBLE_DEVICES` set, an index into the GPUs it names. Each worker gets "
            "`CUDA_VISIBLE_DEVICES` for that one GPU, so no framework picks another; recorded as `gpu` and "
            "`cuda_visible_devices` in every run (see [On a GPU](gpu.md#on-a-gpu))"
        ),
        "--target-accuracy": (
            "also record the time to result: the time and the step at which the validation accuracy (the test"
            " accuracy when there is no validation split) first reaches A (a fraction, 0-1), checked every "
            "`--eval-every` steps and at each epoch's end, outside the timed steps (see [Time to "
            "result](statistics.md#time-to-result))"
        ),
        "--eval-every": (
            "steps between those checks (only while the target is not reached)"
        ),
        "--throughput-block": (
            "time every other block of N steps as a whole, with one synchronisation at its end, for a "
            "throughput figure (`block_images_per_s`) beside the per-step times; 0 turns it off (see "
            "[Timing](results.md#timing))"
        ),
        "--patience": (
            "early stopping: stop after N epochs without a better validation accuracy (the dataset's val "
            "split, else 10% of train held out, stratified and seeded, identically for every framework), then"
            " restore the best epoch's weights for the final evaluation (`kept_epoch` says which)"
        ),
        "--balance": (
            "class-balanced sampling with replacement, drawn in numpy so all frameworks get the same batches;"
            " for imbalanced data such as X-ray sets"
        ),
        "--timeout": (
            "a worker still running after S seconds is stopped and its run recorded as `failed`; positive"
        ),
        "--out": (
            "results folder; one that cannot be created (e.g. under a file) is a one-line error before any "
            "training"
        ),
        "--no-report": (
            "skip `report.md` and the plots"
        ),
        "--embeddings": (
            "store each framework's penultimate features (what its classifier sees: LeNet-5's fc2 after its "
            "relu, a ResNet's global average pool) of the first N test images and of the first N training "
            "images with its predictions; the report draws a t-SNE map per framework and split, side by side,"
            " of the same images coloured by class, and a grid of test images per class with each framework's"
            " prediction, wrong ones in red (see [Results](results.md#results))"
        ),
        "--normal-class": (
            "a single-label task's normal class (e.g. `normal`, `No Finding` with `--binary-negative`): each "
            "class's share predicted as NAME (\"diagnosed as normal\") is recorded beside its one-vs-rest rates"
            " and shown in the report's per-class table; a name that is not a class is one line listing the "
            "classes (see [Results](results.md#results))"
        ),
        "--tensorboard": (
            "also write every run's loss and learning rate (every step) and test accuracy, validation "
            "accuracy and epoch seconds (every epoch) as TensorBoard event files, one folder per run, "
            "`DIR/<model>/<framework>-seed<S>` (`-repeat<R>` with `--repeats`), so `tensorboard --logdir DIR`"
            " overlays the frameworks; written at each epoch's end, outside the timed steps, from the same "
            "figures results.json records (tensorboardX writes them; `pip install tensorboard` to view them)"
        ),
        "--mlflow": (
            "also log every run to an MLflow tracking database in DIR (`pip install -e '.[mlflow]'`): "
            "parameters, per-epoch figures, headline figures, tags (framework, model, seed) and the run's "
            "record as an artifact, one experiment per results folder; `mlflow ui --backend-store-uri "
            "sqlite:///DIR/mlflow.db` shows the frameworks side by side ([MLflow](sweeps.md#mlflow))"
        ),
    },
    "report": {
        "--baseline": (
            "a **Baseline** section: each run beside the baseline's run of the same framework and model (the "
            "same seed if it has one), accuracy and median step time with the ratio; a step-time change is "
            "called significant only when Mann-Whitney U (scipy) on the two runs' per-step times gives p < "
            "0.01 **and** the medians differ by at least 3% (so that a 0.5% shift over 10,000 steps is not "
            "flagged)"
        ),
        "--fail-on-regression": (
            "with `--baseline`: exit 1, naming each one on stderr, when a run is significantly more than PCT%"
            " slower than the baseline; without it the exit status is 0 whatever the report says. Against a "
            "baseline of another configuration or dataset it is one line (exit 2) instead of a pass, unless "
            "`--force`"
        ),
        "--force": (
            "with `--baseline`: compare runs whose configuration or dataset differs from the baseline's. The "
            "**Baseline** section always lists what differs (configuration keys with both values, the "
            "dataset's fingerprint, the machine, framework and pybench versions, runs measured on a busy "
            "machine on either side); without `--force` such runs get no ratio and no verdict, and a run "
            "measured on a busy machine (either side) never gets a step-time verdict"
        ),
        "--no-plots": (
            "no figures"
        ),
        "run_dirs": (
            "one or several results folders/files. Several make one report: a **Sources** section states each"
            " file's machine, command, time and seed, every run is labelled `framework [folder]`, and runs "
            "that differ only in the seed (same framework, model, device and configuration) are pooled in "
            "**Seeds aggregated** (for a sweep, **Configurations**, see [Sweeps](sweeps.md#sweeps)): accuracy"
            " mean and standard deviation, the median and p90 of all their step times together"
        ),
    },
}

_OPTIONS: tuple[Option, ...] | None = None


def all_options() -> tuple[Option, ...]:
    """The table (built on first use: its choices come from the model and framework registries)."""
    global _OPTIONS
    if _OPTIONS is None:
        _OPTIONS = build_options()
    return _OPTIONS


def about(option: Option, command: str) -> str:
    """What the docs say of the option: its ABOUT text where it has one, else its help."""
    return ABOUT.get(command, {}).get(option.flag, option.help)


def options_of(command: str) -> list[Option]:
    return [option for option in all_options() if command in option.commands]


def option_by_dest(command: str) -> dict[str, Option]:
    return {option.dest: option for option in options_of(command)}


# ---------------------------------------------------------------- the command line

def argparse_type(check: Callable):
    """A check as argparse's `type`: its ValueError (or one-line PybenchError) becomes argparse's
    one-line usage error."""
    def convert(value):
        try:
            return check(value)
        except (ValueError, PybenchError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = check.__name__
    return convert


def add_options(parser: argparse.ArgumentParser, command: str) -> None:
    """Every option of `command` from the table, in groups (run, training, dataset options)."""
    groups = {}
    for option in options_of(command):
        if option.positional:
            parser.add_argument(option.flag, help=option.help, metavar=option.metavar, nargs=option.nargs)
            continue
        group = groups.get(option.group) or groups.setdefault(
            option.group, parser.add_argument_group(GROUP_TITLES[option.group]))
        if option.is_flag:
            group.add_argument(option.flag, dest=option.dest, help=option.help, action="store_true")
            continue
        group.add_argument(option.flag, dest=option.dest, type=argparse_type(option.check),
                           default=option.default_for(command), choices=option.choices, metavar=option.metavar,
                           help=option.help.replace("%", "%%"))


def shown_default(option: Option, command: str) -> str:
    """The default as the docs say it: `shown_default`, else the value ("none" for no value)."""
    if option.shown_default is not None:
        return option.shown_default
    value = option.default_for(command)
    if option.is_flag:
        return "off"
    if value is None or value == ():
        return "none"
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


# ---------------------------------------------------------------- the run configuration

def train_config(values: dict, model: str, command: str = "compare") -> TrainConfig:
    """The training configuration a command's option values make (each training option's `to`
    names its field, `optimizer.*` and `schedule.*` the nested ones); options the command does
    not take keep their defaults."""
    parts: dict[str, dict] = {"": {}, "optimizer": {}, "schedule": {}}
    for option in options_of(command):
        if option.group == TRAIN and option.dest in values:
            where, _, name = option.to.rpartition(".")
            parts[where][name] = values[option.dest]
    plain = parts[""]
    plain["seed"] = plain.get("seed") or 0
    for key in ("weights", "predict"):  # files: absolute, as every process must find them
        if plain.get(key):
            plain[key] = str(Path(plain[key]).expanduser().resolve())
    return TrainConfig(model=model, optimizer=OptimizerConfig(**parts["optimizer"]),
                       schedule=Schedule(**parts["schedule"]), **plain)


def load_options(values: dict, command: str = "compare") -> dict:
    """load_dataset's keywords from a command's option values (each dataset option's `to`):
    `--task multilabel` is `multilabel=True`, the `--no-...` flags their keyword's False."""
    options = {}
    for option in options_of(command):
        if option.group == DATA and option.dest in values:
            keyword, value = option.to.removeprefix("load:"), values[option.dest]
            if option.inverted:  # --no-cache: cache=False
                value = not value
            options[keyword] = value == "multilabel" if option.dest == "task" else value
    return options

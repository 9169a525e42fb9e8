"""The run options, described once: `compare`'s arguments (and the training arguments `parity`
shares), their types, and the `TrainConfig` they make.

The command line (`pybench.cli`) adds them to its parsers, and a sweep file
(`pybench.sweep_file`) reads its keys through the same arguments: an option added here is both a
command-line option and a sweep key, and the two cannot drift apart.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from pybench.backends import FRAMEWORK_NAMES
from pybench.backends.contract import DEFAULT_LR, OPTIMIZERS
from pybench.errors import PybenchError
from pybench.models import MODEL_NAMES
from pybench.recipes import RECIPES, recipe_help

# What a dataset argument can be, said by every command that takes one.
DATASET_HELP = ("mnist, digits, a MedMNIST name (pathmnist, chestmnist_64, ...), or a folder / .zip / .csv / "
                ".npz path")

# Defaults chosen so that LeNet-5 reaches about 98% test accuracy on MNIST in one epoch in every
# framework (the seeds measured: docs/usage.md, compare); larger batches at this budget land lower.
# `--recipe mnist-fast` (pybench/recipes.py) is the one that reaches 99%.
DEFAULT_BATCH_SIZE = 32


def comma_list(text: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in text.split(",") if item.strip())
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    repeated = sorted({item for item in items if items.count(item) > 1})
    if repeated:  # torch,torch would run torch twice and report it as two frameworks
        raise argparse.ArgumentTypeError(f"{text!r} names {', '.join(repeated)} more than once")
    return items


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive_float(text: str) -> float:
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def non_negative_float(text: str) -> float:
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value


def momentum_value(text: str) -> float:
    value = finite_float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must lie in [0, 1)")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def fraction_below_one(text: str) -> float:
    value = finite_float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must lie in [0, 1)")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value


def epoch_list(text: str) -> tuple[int, ...]:
    return tuple(positive_int(item) for item in comma_list(text))


def seed_list(text: str) -> tuple[int, ...]:
    return tuple(non_negative_int(item) for item in comma_list(text))


def add_training_arguments(p: argparse.ArgumentParser, batch_size: int) -> None:
    from pybench.schedules import SCHEDULES

    p.add_argument("--frameworks", type=comma_list, default=FRAMEWORK_NAMES,
                   help=f"comma-separated: {','.join(FRAMEWORK_NAMES)} (default: all)")
    p.add_argument("--batch-size", type=positive_int, default=batch_size,
                   help=f"training batch; the last partial batch of each epoch is left out, in every "
                        f"framework alike (default {batch_size})")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd",
                   help="PyTorch's SGD, Adam or AdamW (decoupled weight decay)")
    p.add_argument("--lr", type=positive_float, default=None,
                   help="learning rate, the peak of a schedule (default: 0.01 for sgd, 0.001 "
                        "for adam and adamw)")
    p.add_argument("--momentum", type=momentum_value, default=0.9, help="sgd momentum (default 0.9)")
    p.add_argument("--nesterov", action="store_true", help="Nesterov momentum for sgd")
    p.add_argument("--weight-decay", type=non_negative_float, default=0.0,
                   help="sgd and adam: L2 penalty added to the gradient; adamw: decoupled decay "
                        "(default 0)")
    p.add_argument("--label-smoothing", type=fraction_below_one, default=0.0,
                   help="cross-entropy label smoothing, PyTorch's definition (default 0)")
    p.add_argument("--pos-weight", choices=("balanced",), default=None,
                   help="--task multilabel: weigh each finding's positive targets by its negatives / "
                        "positives in the train split (BCEWithLogitsLoss's pos_weight; default 1)")
    p.add_argument("--schedule", choices=SCHEDULES, default="constant",
                   help="learning rate per step: constant, step (--milestones, --gamma), "
                        "cosine (to 0), onecycle (torch's OneCycleLR) (default constant)")
    p.add_argument("--warmup-steps", type=non_negative_int, default=0,
                   help="linear warm-up steps (onecycle: its rising phase, default 30%% of "
                        "the run)")
    p.add_argument("--milestones", type=epoch_list, default=(),
                   help="step schedule: epochs after which the rate is multiplied by --gamma")
    p.add_argument("--gamma", type=positive_float, default=0.1,
                   help="step schedule factor (default 0.1)")
    p.add_argument("--seed", type=int, default=None,
                   help="initial weights and batch order (default 0)")
    p.add_argument("--weights", default=None, metavar="FILE",
                   help="start every framework from this PyTorch state_dict (torch.save of a "
                        "model's state_dict, e.g. torchvision's pretrained resnet18 for "
                        "resnet18-imagenet) or its .npz: the classifier replaced by the seeded "
                        "draw when the classes differ, grey images folded into a colour conv1")
    p.add_argument("--trainable", type=comma_list, default=(), metavar="LIST",
                   help="train only these layers, e.g. layer4,fc (parameter name prefixes); the "
                        "rest is frozen in every framework: no gradient, optimizer state or "
                        "weight decay, and frozen BatchNorm layers keep their running statistics "
                        "(eval mode) (default: everything trains)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="auto: the GPU for every framework when the machine has one")
    p.add_argument("--gpu", type=non_negative_int, default=0,
                   help="on CUDA, the GPU every framework runs on, numbered as nvidia-smi lists "
                        "them (with CUDA_VISIBLE_DEVICES set: an index into the GPUs it names; "
                        "default 0)")
    p.add_argument("--timeout", type=positive_float, default=None,
                   help="seconds before a worker is stopped and its run recorded as failed")


def add_compare_arguments(p: argparse.ArgumentParser) -> None:
    """Every option of `compare` (and its positional dataset)."""
    from pybench.datasets import add_dataset_arguments

    p.add_argument("dataset", help=DATASET_HELP)
    p.add_argument("--models", type=comma_list, default=("lenet5",),
                   help=f"comma-separated: {','.join(MODEL_NAMES)}, or a CNN file of "
                        "your own (.toml or .json; docs/models.md, Your own CNN) (default lenet5)")
    p.add_argument("--epochs", type=positive_int, default=1,
                   help="passes over the training split (default 1); --max-steps may stop sooner")
    p.add_argument("--max-steps", type=positive_int, default=None,
                   help="stop every run after this many steps")
    p.add_argument("--target-accuracy", type=finite_float, default=None,
                   help="record the time to result: the time until the validation accuracy "
                        "(the test accuracy without a validation split) reaches this (0-1), "
                        "compilation counted")
    p.add_argument("--patience", type=positive_int, default=None,
                   help="stop after N epochs without a better validation accuracy (the "
                        "val split, else 10%% of train held out, stratified)")
    p.add_argument("--balance", action="store_true",
                   help="class-balanced sampling (with replacement), for imbalanced data")
    p.add_argument("--augment", type=comma_list, default=(),
                   help="comma-separated: flip, vflip, crop, rotate[:DEG], zoom:MIN, "
                        "brightness:F, contrast:F, drawn per epoch from the seed (the same "
                        "pixels in every framework)")
    p.add_argument("--eval-every", type=positive_int, default=None,
                   help="steps between the evaluations that check --target-accuracy until it "
                        "is reached (default: a tenth of an epoch)")
    p.add_argument("--throughput-block", type=non_negative_int, default=None,
                   help="time every other block of N steps as a whole, with one "
                        "synchronisation, for a throughput figure beside the per-step "
                        "times (default: 50 on CUDA, off on the CPU; 0: off)")
    p.add_argument("--compile", action="store_true",
                   help="also run torch with its training step under torch.compile, "
                        "reported as the framework torch.compile (its compilation in "
                        "first step s)")
    p.add_argument("--embeddings", type=non_negative_int, default=0, metavar="N",
                   help="store each framework's penultimate features of the first N test "
                        "and training images; the report draws them as t-SNE maps side by "
                        "side, and a grid of test images per class with each framework's "
                        "call (default 0: none)")
    p.add_argument("--normalize", default=None, metavar="HOW",
                   help="the pixel statistics inputs are normalised with: dataset (the "
                        "train split's), imagenet (torchvision's) or fixed:MEAN,STD "
                        "(default: imagenet with --weights, else dataset)")
    p.add_argument("--normal-class", default=None, metavar="NAME",
                   help="a single-label task's normal class: also record and report each "
                        "class's share predicted as NAME (\"diagnosed as normal\")")
    p.add_argument("--tensorboard", type=Path, default=None, metavar="DIR",
                   help="also write every run's loss, learning rate and evaluation "
                        "figures as TensorBoard event files under DIR/MODEL/FRAMEWORK-"
                        "seedS, epoch by epoch as training goes")
    p.add_argument("--mlflow", type=Path, default=None, metavar="DIR",
                   help="also log every run to an MLflow tracking database in DIR "
                        "(parameters, per-epoch figures, step times, its record): mlflow "
                        "ui --backend-store-uri sqlite:///DIR/mlflow.db (pip install -e "
                        "'.[mlflow]')")
    p.add_argument("--predict", default=None, metavar="DIR",
                   help="a folder of unlabelled images every run predicts with its final model: "
                        "predictions-<run>.csv (filename,label,p_<class>...) and how often the "
                        "frameworks agree (default: the dataset's own unlabelled split folder, e.g. "
                        "a flat test/ beside train/ class folders, when it has one)")
    p.add_argument("--recipe", choices=tuple(RECIPES), default=None,
                   help="defaults for the options not given: " + recipe_help())
    p.add_argument("--out", type=Path, default=None,
                   help="results folder (default runs/<timestamp>-<dataset>)")
    p.add_argument("--no-report", action="store_true", help="skip report.md and plots")
    p.add_argument("--seeds", type=seed_list, default=None,
                   help="comma-separated seeds, e.g. 0,1,2,3,4: every framework trains "
                        "once per seed (runs paired by seed); the headline's accuracy "
                        "verdict needs two or more (instead of --seed)")
    p.add_argument("--repeats", type=positive_int, default=1,
                   help="train each seed N times, for the step-time intervals "
                        "(default 1)")
    add_training_arguments(p, batch_size=DEFAULT_BATCH_SIZE)
    add_dataset_arguments(p)


def compare_parser() -> argparse.ArgumentParser:
    """A parser of `compare`'s options alone (what a sweep file's keys are read against)."""
    parser = argparse.ArgumentParser(prog="pybench compare")
    add_compare_arguments(parser)
    return parser


def compare_defaults(dataset: str, recipe: str | None = None) -> argparse.Namespace:
    """`compare DATASET`'s parsed arguments with every option at its default (a recipe's, when
    named)."""
    parser = compare_parser()
    if recipe:
        parser.set_defaults(**RECIPES[recipe])
    args = parser.parse_args([dataset, *(["--recipe", recipe] if recipe else [])])
    args.command = "compare"
    return args


def train_config(args, model: str = "lenet5"):
    from pybench.backends.contract import OptimizerConfig
    from pybench.datasets.augment import check_augmentations
    from pybench.datasets.normalization import check_normalize
    from pybench.schedules import Schedule
    from pybench.training import TrainConfig

    lr = args.lr if args.lr is not None else DEFAULT_LR[args.optimizer]
    if args.nesterov and (args.optimizer != "sgd" or args.momentum == 0):
        raise PybenchError("--nesterov needs --optimizer sgd with a momentum above 0")
    optimizer = OptimizerConfig(name=args.optimizer, lr=lr, momentum=args.momentum,
                                weight_decay=args.weight_decay, nesterov=args.nesterov,
                                label_smoothing=args.label_smoothing)
    schedule = Schedule(name=args.schedule, warmup_steps=args.warmup_steps,
                        milestones=args.milestones, gamma=args.gamma)
    extra = {}
    if args.command == "compare":
        if args.target_accuracy is not None and not 0 < args.target_accuracy <= 1:
            raise PybenchError(f"--target-accuracy {args.target_accuracy}: give a fraction "
                               "between 0 and 1, e.g. 0.98")
        extra = dict(epochs=args.epochs, max_steps=args.max_steps, patience=args.patience,
                     predict=str(Path(args.predict).expanduser().resolve()) if args.predict else None,
                     target_accuracy=args.target_accuracy, balance=args.balance,
                     augment=check_augmentations(args.augment), eval_every=args.eval_every,
                     throughput_block=args.throughput_block, embeddings=args.embeddings,
                     normal_class=args.normal_class, normalize=check_normalize(args.normalize))
    weights = None
    if args.weights is not None:
        from pybench.pretrained import prepare

        prepare(args.weights)  # a missing or unreadable file fails here, in one line
        weights = str(Path(args.weights).expanduser().resolve())
    return TrainConfig(model=model, batch_size=args.batch_size, optimizer=optimizer,
                       seed=args.seed if args.seed is not None else 0, schedule=schedule,
                       weights=weights, trainable=tuple(args.trainable), pos_weight=args.pos_weight,
                       **extra)


"""Named training recipes: sets of `compare` options that are known to train well.

A recipe only fills in the options the command line leaves out (`--recipe mnist-fast --epochs 6`
trains six epochs with the rest of the recipe), and the options it sets are recorded in the
results like any others, so a recipe is a shorthand, never a hidden setting. Each recipe states
what it was measured to reach; docs/models.md (Recipes) gives the figures and the command that made them.
"""

from __future__ import annotations

RECIPES: dict[str, dict] = {
    # LeNet-5 on MNIST to 99% test accuracy in every framework in a few epochs: one-cycle SGD
    # with Nesterov momentum at batch 128, label smoothing 0.1 (docs/models.md, "Recipes",
    # gives what it reached in each framework and the command that measured it).
    "mnist-fast": {
        "batch_size": 128,
        "optimizer": "sgd",
        "lr": 0.1,
        "momentum": 0.9,
        "nesterov": True,
        "label_smoothing": 0.1,
        "schedule": "onecycle",
        "epochs": 4,
        "target_accuracy": 0.99,
    },
}


def recipe_help() -> str:
    return "; ".join(f"{name}: " + ", ".join(f"{k}={v}" for k, v in options.items())
                     for name, options in RECIPES.items())

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
    # The chest X-ray projects' experiments. Each starts from its model's ImageNet weights in
    # the projects; a recipe cannot name that file, so give it with --weights (torchvision's
    # state_dict). Without it the model trains from the seeded draw, as the run records.
    # Pretrained ResNet-50, layer2-4 and fc trained, "No Finding" against every finding, on an
    # NIH-layout zip (its manifest, its official split).
    "nih-resnet50-binary": {
        "models": ("resnet50-imagenet",),
        "trainable": ("layer2", "layer3", "layer4", "fc"),
        "binary_negative": "No Finding",
        "normal_class": "No Finding",
        "image_size": 224,
        "normalize": "imagenet",
        "augment": ("flip",),
        "batch_size": 32,
        "optimizer": "sgd",
        "lr": 0.001,
        "momentum": 0.9,
        "epochs": 5,
    },
    # CheXNet (Rajpurkar et al. 2017): DenseNet-121, every layer trained, the 14 findings each
    # with a sigmoid, Adam (0.9, 0.999) at 0.001, batch 16, 224 px, ImageNet statistics,
    # horizontal flips. The paper divides the rate by 10 whenever the validation loss plateaus;
    # here the rate is divided by 10 after epochs 5 and 8, a fixed schedule, because a plateau
    # rule reads each framework's own validation loss, and float32 noise in it could move one
    # framework's schedule and not another's.
    "chexnet": {
        "models": ("densenet121-imagenet",),
        "task": "multilabel",
        "image_size": 224,
        "normalize": "imagenet",
        "augment": ("flip",),
        "batch_size": 16,
        "optimizer": "adam",
        "lr": 0.001,
        "schedule": "step",
        "milestones": (5, 8),
        "gamma": 0.1,
        "epochs": 10,
    },
    # The four-class X-ray project (COVID-19, lung opacity, normal, viral pneumonia):
    # pretrained ResNet-18, SGD with momentum 0.9, class-weighted sampling, flips, on a
    # class-folder tree.
    "xray-resnet18": {
        "models": ("resnet18-imagenet",),
        "image_size": 224,
        "normalize": "imagenet",
        "augment": ("flip",),
        "balance": True,
        "batch_size": 32,
        "optimizer": "sgd",
        "lr": 0.001,
        "momentum": 0.9,
        "epochs": 10,
    },
    # MedMNIST v2's ResNet-18 baseline (Yang et al., Scientific Data 2023, Table 3), as the
    # MedMNIST/experiments code trains it (MedMNIST2D/train_and_eval_pytorch.py): Adam at 0.001
    # (betas 0.9/0.999, no weight decay), batch 128, 100 epochs, the rate x0.1 after 50% and 75% of
    # the epochs (MultiStepLR stepped once per epoch), inputs normalised with mean 0.5 and sd 0.5,
    # cross-entropy, the epoch with the best validation AUC kept. At 28 px its ResNet-18 is
    # kuangliu's CIFAR one: a 3x3 stride-1 stem, no max pool (pybench's `resnet18`). For the 224
    # row add `--image-size 224 --models resnet18-imagenet` (torchvision's ResNet-18, which the code
    # uses with --resize; its transforms.Resize upscales bilinearly, as pybench does).
    "medmnist-resnet18": {
        "models": ("resnet18",),
        "optimizer": "adam",
        "lr": 0.001,
        "batch_size": 128,
        "epochs": 100,
        "schedule": "step",
        "milestones": (50, 75),
        "gamma": 0.1,
        "normalize": "fixed:0.5,0.5",
        "select_by": "auc",
    },
}


def recipe_help() -> str:
    return "; ".join(f"{name}: " + ", ".join(f"{k}={v}" for k, v in options.items())
                     for name, options in RECIPES.items())

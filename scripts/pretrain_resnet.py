"""Make a pretrained-weights file offline: torchvision's ResNet trained on MNIST in plain PyTorch.

pybench downloads nothing, so the X-ray walkthrough (docs/xray-walkthrough.md)
starts from weights made here: torchvision's own `resnet18` (or `resnet50`), 3-channel like the
ImageNet weights (the grey digits are repeated over three channels), trained for `--epochs` with
SGD, then saved as `torch.save(model.state_dict(), OUT)`, exactly as torchvision's pretrained
weights are saved. Any such file works with `--weights`, torchvision's ImageNet weights included.

Usage:
    PYBENCH_DATA_DIR=../shared/datasets python scripts/pretrain_resnet.py OUT.pth [--model resnet18]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

from pybench import short_runs
from pybench.datasets import load_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--model", choices=("resnet18", "resnet50"), default="resnet18")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    mnist = load_dataset("mnist")
    images = torch.from_numpy(mnist.normalized("train")).repeat(1, 3, 1, 1)  # grey -> 3 channels
    labels = torch.from_numpy(mnist.train.labels)
    model = getattr(torchvision.models, args.model)(num_classes=mnist.num_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    began = time.perf_counter()
    limit = short_runs.step_limit()  # the tests' override (PYBENCH_SHORT_RUNS): a few steps only
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(labels))
        for step, start in enumerate(range(0, len(order) - args.batch_size + 1, args.batch_size)):
            if limit is not None and step >= limit:
                break
            batch = order[start:start + args.batch_size]
            optimizer.zero_grad()
            F.cross_entropy(model(images[batch]), labels[batch]).backward()
            optimizer.step()
        print(f"epoch {epoch + 1}: {time.perf_counter() - began:.0f} s", flush=True)
    model.eval()
    shown = 500 if limit is not None else len(mnist.test.labels)  # shortened: a few hundred test images
    test = torch.from_numpy(mnist.normalized("test")[:shown]).repeat(1, 3, 1, 1)
    with torch.no_grad():
        predicted = torch.cat([model(test[i:i + 500]).argmax(1) for i in range(0, len(test), 500)])
    accuracy = float(np.mean(predicted.numpy() == mnist.test.labels[:len(predicted)]))
    torch.save(model.state_dict(), args.out)
    print(f"{args.model} on MNIST: test accuracy {accuracy:.4f}; state_dict saved to {args.out}")


if __name__ == "__main__":
    main()

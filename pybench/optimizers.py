"""The optimizer settings, with PyTorch's semantics, stated once: what every backend reproduces
(`pybench.backends.contract`) and what the command line, a sweep and a run's configuration
describe (`pybench.options`, `pybench.config`). Framework-neutral data, no framework imported.
"""

from __future__ import annotations

from dataclasses import dataclass

# Every optimizer a backend must implement, with the learning rate used when none is given (for
# the command line, a sweep and OptimizerConfig alike).
DEFAULT_LR = {"sgd": 0.01, "adam": 1e-3, "adamw": 1e-3}
OPTIMIZERS = tuple(DEFAULT_LR)


@dataclass(frozen=True)
class OptimizerConfig:
    """Optimizer and loss settings with PyTorch semantics, which every backend reproduces exactly.

    sgd: v = momentum * v + g; w -= lr * v (v starts at g); with nesterov, w -= lr * (g +
    momentum * v). adam: PyTorch's Adam (eps outside the square root). weight_decay for sgd and
    adam is L2 added to the gradient (g += weight_decay * w); adamw: PyTorch's AdamW, whose decay
    is decoupled (w *= 1 - lr * weight_decay, then the Adam step). Either applies to every
    parameter, BatchNorm and biases included, as torch.optim does with a single parameter group.
    `lr` is the peak learning rate: the rate of each step comes from `pybench.schedules` with the
    epoch order (`Backend.put_order`). label_smoothing is the cross-entropy's, PyTorch's definition:
    (1 - s) * nll + s * mean over classes of -log p. A multi-label task (labels (N, findings))
    trains on PyTorch's BCEWithLogitsLoss instead (`pybench.tasks`), `pos_weight` its
    per-finding weight of positive targets (None: 1 for every finding).
    """

    name: str = "sgd"
    lr: float | None = None  # None: DEFAULT_LR[name]
    momentum: float = 0.9
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    nesterov: bool = False
    label_smoothing: float = 0.0
    pos_weight: tuple[float, ...] | None = None

    def __post_init__(self):
        if self.name not in DEFAULT_LR:
            raise ValueError(f"unknown optimizer {self.name!r}: choose {', '.join(OPTIMIZERS)}")
        if self.lr is None:
            object.__setattr__(self, "lr", DEFAULT_LR[self.name])

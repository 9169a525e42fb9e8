"""The PyTorch backend: `nn.Module` models with canonical parameter names, `torch.optim`.

The modules below are written one layer per line with the names of `pybench.models` (which are
PyTorch's own `state_dict` keys), so canonical weights load with `load_state_dict` unchanged.
torch is imported at module import; the registry imports this module only inside a worker.
"""

from __future__ import annotations

import copy
import functools
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pybench import models, tasks
from pybench.backends.contract import Availability, Backend, ModelInput, OptimizerConfig
from pybench.machine import cpu_model, machine_has_cuda_gpu, nvidia_gpus
from pybench.models import dropout


def batch_norm(channels: int) -> nn.BatchNorm2d:
    # PyTorch's BatchNorm2d is the reference semantics; the constants are stated in models.
    return nn.BatchNorm2d(channels, eps=models.BN_EPS, momentum=models.BN_MOMENTUM)


def conv3x3(cin: int, cout: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    def __init__(self, block: models.Block):
        super().__init__()
        self.conv1 = conv3x3(block.in_channels, block.width, block.stride)
        self.bn1 = batch_norm(block.width)
        self.conv2 = conv3x3(block.width, block.width, 1)
        self.bn2 = batch_norm(block.width)
        self.downsample = downsample(block)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


class Bottleneck(nn.Module):
    """torchvision's Bottleneck (v1.5: the stride on the 3x3 convolution)."""

    def __init__(self, block: models.Block):
        super().__init__()
        self.conv1 = nn.Conv2d(block.in_channels, block.width, 1, bias=False)
        self.bn1 = batch_norm(block.width)
        self.conv2 = conv3x3(block.width, block.width, block.stride)
        self.bn2 = batch_norm(block.width)
        self.conv3 = nn.Conv2d(block.width, block.out_channels, 1, bias=False)
        self.bn3 = batch_norm(block.out_channels)
        self.downsample = downsample(block)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


def downsample(block: models.Block) -> nn.Sequential | None:
    if not block.has_downsample:
        return None
    return nn.Sequential(
        nn.Conv2d(block.in_channels, block.out_channels, 1, stride=block.stride, bias=False),
        batch_norm(block.out_channels))


BLOCKS = {models.BASIC: BasicBlock, models.BOTTLENECK: Bottleneck}


class FreezableNorms(nn.Module):
    """A model whose frozen BatchNorm layers (--trainable) stay in eval mode: they normalise
    with their running statistics and keep them, as torchvision users freeze layers."""

    def train(self, mode: bool = True):
        super().train(mode)
        for name in getattr(self, "frozen_norms", ()):
            self.get_submodule(name).eval()
        return self


class ResNet(FreezableNorms):
    """Every pybench ResNet: torchvision's structure and names, with the stem its spec states
    (small: 3x3 stride 1, no pool; ImageNet: 7x7 stride 2 and a 3x3 max pool)."""

    def __init__(self, model: str, in_shape, num_classes):
        super().__init__()
        spec = models.RESNETS[model]
        stem = spec.stem
        self.conv1 = nn.Conv2d(in_shape[0], spec.stem_width, stem.kernel, stride=stem.stride,
                               padding=stem.padding, bias=False)
        self.bn1 = batch_norm(spec.stem_width)
        self.pool = stem.pool
        stages: dict[str, list] = {}
        for block in models.resnet_blocks(spec):
            stages.setdefault(block.prefix.split(".")[0], []).append(BLOCKS[block.kind](block))
        for stage, blocks in stages.items():
            setattr(self, stage, nn.Sequential(*blocks))
        self.stages = list(stages)
        self.fc = nn.Linear(spec.features, num_classes)

    def penultimate(self, x):
        """The penultimate features: what the classifier sees."""
        x = F.relu(self.bn1(self.conv1(x)))
        if self.pool:
            kernel, stride, padding = self.pool
            x = F.max_pool2d(x, kernel, stride, padding)
        for stage in self.stages:
            x = getattr(self, stage)(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    def forward(self, x):
        return self.fc(self.penultimate(x))


class DenseLayer(nn.Module):
    """torchvision's _DenseLayer: norm1-relu-conv1 (1x1)-norm2-relu-conv2 (3x3) on the
    concatenation of the block's inputs so far."""

    def __init__(self, norm1: models.BatchNorm, conv1: models.Conv, norm2: models.BatchNorm,
                 conv2: models.Conv):
        super().__init__()
        self.norm1 = batch_norm(norm1.channels)
        self.conv1 = conv_from(conv1)
        self.norm2 = batch_norm(norm2.channels)
        self.conv2 = conv_from(conv2)

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        x = torch.cat(inputs, 1)
        return self.conv2(F.relu(self.norm2(self.conv1(F.relu(self.norm1(x))))))


class DenseBlock(nn.ModuleDict):
    def forward(self, x):
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Module):
    def __init__(self, norm: models.BatchNorm, conv: models.Conv):
        super().__init__()
        self.norm = batch_norm(norm.channels)
        self.conv = conv_from(conv)

    def forward(self, x):
        return F.avg_pool2d(self.conv(F.relu(self.norm(x))), 2, 2)


class DenseNet(FreezableNorms):
    """torchvision's DenseNet (CheXNet's DenseNet-121): `features` holds the stem, the dense
    blocks, the transitions and norm5 under torchvision's names; then relu, global average pool
    and the classifier."""

    def __init__(self, model: str, in_shape, num_classes):
        super().__init__()
        spec = models.DENSENETS[model]
        by_name = {layer.name.removeprefix("features."): layer
                   for layer in models.layers(model, in_shape, num_classes)}
        features = nn.Sequential()
        features.add_module("conv0", conv_from(by_name["conv0"]))
        features.add_module("norm0", batch_norm(by_name["norm0"].channels))
        features.add_module("relu0", nn.ReLU())
        features.add_module("pool0", nn.MaxPool2d(*spec.stem_pool))
        for i, count in enumerate(spec.block_layers, start=1):
            block = DenseBlock()
            for j in range(1, count + 1):
                p = f"denseblock{i}.denselayer{j}"
                block[f"denselayer{j}"] = DenseLayer(by_name[f"{p}.norm1"], by_name[f"{p}.conv1"],
                                                     by_name[f"{p}.norm2"], by_name[f"{p}.conv2"])
            features.add_module(f"denseblock{i}", block)
            if i < len(spec.block_layers):
                features.add_module(f"transition{i}", Transition(
                    by_name[f"transition{i}.norm"], by_name[f"transition{i}.conv"]))
        features.add_module("norm5", batch_norm(spec.features))
        self.features = features
        self.classifier = nn.Linear(spec.features, num_classes)

    def penultimate(self, x):
        """The penultimate features: what the classifier sees."""
        x = F.relu(self.features(x))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    def forward(self, x):
        return self.classifier(self.penultimate(x))


def conv_from(conv: models.Conv) -> nn.Conv2d:
    return nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel, stride=conv.stride,
                     padding=conv.padding, bias=conv.bias)


class CNN(FreezableNorms):
    """A plain CNN's layers (`pybench.models.cnn`: LeNet-5, a CNN file), one module per
    parametrised layer under its name, the others applied in `forward` in the list's order. The
    list is turned into plain calls once, here: a forward pass is those calls and nothing else, as
    fast as a hand-written module's."""

    def __init__(self, model: str, in_shape, num_classes):
        super().__init__()
        self.ops = models.ops(model, in_shape, num_classes)
        for op in self.ops:
            if isinstance(op, models.Conv):
                self.add_module(op.name, conv_from(op))
            elif isinstance(op, models.BatchNorm):
                self.add_module(op.name, batch_norm(op.channels))
            elif isinstance(op, models.Dense):
                self.add_module(op.name, nn.Linear(op.in_features, op.out_features))
        # Training steps set it before each forward (TorchBackend.train_step): which masks
        # dropout draws (pybench.models.dropout).
        self.dropout_step = 0
        self.calls = [self.call_of(op) for op in self.ops]

    def call_of(self, op) -> Callable:
        """What one layer does, as a function of its input."""
        if isinstance(op, (models.Conv, models.BatchNorm, models.Dense)):
            return self.get_submodule(op.name)
        if isinstance(op, models.Relu):
            return F.relu
        if isinstance(op, models.Pool):
            pool = F.max_pool2d if op.mode == "max" else F.avg_pool2d
            return functools.partial(pool, kernel_size=op.kernel, stride=op.stride, padding=op.padding)
        if isinstance(op, models.GlobalAvgPool):
            return lambda x: torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        if isinstance(op, models.Flatten):
            return functools.partial(torch.flatten, start_dim=1)
        return lambda x: x * dropout_scale(op, x, self.dropout_step) if self.training else x  # Dropout

    def run(self, x, calls):
        for call in calls:
            x = call(x)
        return x

    def penultimate(self, x):
        """What the last dense layer sees."""
        return self.run(x, self.calls[:-1])

    def forward(self, x):
        return self.run(x, self.calls)


def dropout_scale(op: models.Dropout, x: torch.Tensor, step: int) -> torch.Tensor:
    """0 where `op` drops an element of `x` at `step`, 1 / (1 - p) elsewhere: the masks of
    `pybench.models.dropout`, computed on x's device in int64 (uint32 arithmetic masked)."""
    shape = x.shape
    index = torch.arange(x.numel(), device=x.device, dtype=torch.int64).reshape(shape)
    keep = dropout.keep_mask(index, step, op)
    scale = torch.tensor(dropout.scale(op.p), dtype=x.dtype, device=x.device)
    return torch.where(keep, scale, torch.zeros((), dtype=x.dtype, device=x.device))


# Each family's module, by pybench.models' family names: the one place a model's kind decides.
BUILDERS = {models.CNN: CNN, models.RESNET: ResNet, models.DENSENET: DenseNet}


def build_module(model: str, in_shape, num_classes) -> nn.Module:
    return BUILDERS[models.family(model)](model, in_shape, num_classes)


def make_optimizer(params, cfg: OptimizerConfig) -> torch.optim.Optimizer:
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay, nesterov=cfg.nesterov)
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                                weight_decay=cfg.weight_decay)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                                 weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.name!r}")


MEMORY_FORMATS = {"cpu": torch.channels_last, "cuda": torch.contiguous_format}
TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


@dataclass
class TorchState:
    module: nn.Module
    optimizer: torch.optim.Optimizer
    label_smoothing: float
    # Multi-label tasks: each finding's weight of its positive targets (BCEWithLogitsLoss's
    # pos_weight), on the device; None: every weight 1.
    pos_weight: torch.Tensor | None
    # What the training step calls: the module itself, or (torch.compile variant) its compiled
    # wrapper, which shares its parameters; evaluation keeps the module, so it compiles nothing.
    train_module: nn.Module


@dataclass
class TorchOrder:
    """One epoch's plan: sample positions on the device, learning rates as Python floats (torch
    reads a param group's lr on the host at every step anyway)."""

    positions: torch.Tensor
    lrs: list[float]
    first_step: int = 0  # the run's step count at the epoch's first step (dropout's masks)


@dataclass
class TorchData:
    images: torch.Tensor  # uint8 (normalised per batch through `table`) or already normalised
    labels: torch.Tensor
    on_device: bool
    table: torch.Tensor | None = None  # the flattened (C * 256) pixel table, on the device
    offsets: torch.Tensor | None = None  # int32 (1, C, 1, 1): channel c's entries start at 256 c

    def inputs(self, images: torch.Tensor, memory_format) -> torch.Tensor:
        """A batch of `images` as the model takes it: uint8 through the table (a gather, the
        same values in every framework), in the model's memory format."""
        if self.table is None:
            return images
        return self.table[images.int() + self.offsets].contiguous(memory_format=memory_format)


class TorchBackend(Backend):
    name = "torch"

    @classmethod
    def availability(cls) -> Availability:
        return Availability(True, version=torch.__version__)

    @classmethod
    def cuda_usable(cls) -> bool:
        try:
            return torch.cuda.is_available()
        except Exception:
            return False

    @classmethod
    def gpu_support(cls) -> str:
        # torch.cuda.is_available() asks the driver for a device count: no CUDA context.
        build = torch.version.cuda
        if build is None:
            return "CPU-only build: install a CUDA build of torch to use a GPU"
        if cls.cuda_usable():
            return f"CUDA {build} build, GPU usable ({torch.cuda.get_device_name(0)})"
        if not machine_has_cuda_gpu():
            return f"CUDA {build} build, no NVIDIA GPU here"
        driver = nvidia_gpus()[1] or "unknown version"
        return (f"CUDA {build} build, but it cannot use this GPU (driver {driver}): install a "
                f"driver for CUDA {build}, or a torch build for an older CUDA (README, Install)")

    def __init__(self, device: str):
        super().__init__(device)
        self.torch_device = torch.device("cuda" if device == "cuda" else "cpu")
        self.dtype = torch.float32  # until init_state sees the canonical weights' dtype
        # Memory layout of conv weights and images (the tensors stay NCHW-shaped, only their
        # strides change, so nothing else in pybench sees it). On the CPU oneDNN's convolutions
        # prefer channels_last, for LeNet-5 and the ResNets alike (tools/step_search;
        # docs/performance.md). GPUs keep the contiguous default, unmeasured here. Set before
        # init_state and put_data to try the other.
        self.memory_format = MEMORY_FORMATS.get(device, torch.contiguous_format)
        # The torch.compile variant (pybench.frameworks.VARIANTS): its first step, reported apart
        # as first_step_s, includes the compilation.
        self.compile_step = False
        # Full float32 everywhere, as in the other backends: TF32 would change the numbers
        # (cuDNN convolutions allow it by default) and make the frameworks incomparable.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        if device == "cuda":
            # Let cuDNN pick the fastest algorithms, as XLA autotunes for JAX; the first step,
            # reported on its own, pays for the search.
            torch.backends.cudnn.benchmark = True
            torch.cuda.reset_peak_memory_stats(self.torch_device)

    def device_info(self) -> dict:
        info = {"framework_version": torch.__version__, "device": self.device,
                "threads": torch.get_num_threads(),
                "memory_format": str(self.memory_format).removeprefix("torch."),
                "compiled": self.compile_step,
                # float32 throughout: TF32 off for matmuls and cuDNN (set in __init__).
                "precision": {"float32_matmul_precision": torch.get_float32_matmul_precision(),
                              "matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
                              "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32)},
                # What reproducibility was asked for. CPU runs are deterministic as they are (the
                # suite checks the same seed gives identical losses); on CUDA cuDNN's autotuner
                # may pick other kernels per run, and deterministic algorithms are not requested.
                "determinism": {
                    "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
                    "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
                    "cudnn_benchmark": bool(torch.backends.cudnn.benchmark)}}
        if self.device == "cuda":
            props = torch.cuda.get_device_properties(self.torch_device)
            info.update(device_name=props.name, cuda=torch.version.cuda,
                        cudnn=torch.backends.cudnn.version(),
                        device_memory_bytes=props.total_memory)
        else:
            info["device_name"] = cpu_model()
        return info

    def synchronize(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize(self.torch_device)

    def init_state(self, model: ModelInput, optimizer: OptimizerConfig) -> TorchState:
        module = build_module(model.model, model.in_shape, model.num_classes)
        weights = {k: torch.from_numpy(np.asarray(v)) for k, v in
                   {**model.params, **model.buffers}.items()}
        # strict=False only for num_batches_tracked, which momentum-based BN never reads.
        missing, unexpected = module.load_state_dict(weights, strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise ValueError(f"canonical weights do not fit: missing {missing}, "
                             f"unexpected {unexpected}")
        self.dtype = TORCH_DTYPES[np.dtype(model.dtype)]
        # Frozen parameters: no gradient (autograd skips their weight gradients), and the
        # optimizer never sees them (no state, no decay).
        for name, parameter in module.named_parameters():
            parameter.requires_grad_(name not in model.frozen)
        module.frozen_norms = model.frozen_norms
        module.to(self.torch_device, self.dtype, memory_format=self.memory_format).train()
        train_module = torch.compile(module) if self.compile_step else module
        trained = [p for p in module.parameters() if p.requires_grad]
        pos_weight = (None if optimizer.pos_weight is None else
                      torch.tensor(optimizer.pos_weight, dtype=self.dtype, device=self.torch_device))
        return TorchState(module, make_optimizer(trained, optimizer),
                          optimizer.label_smoothing, pos_weight, train_module)

    def free_device_bytes(self) -> int | None:
        if self.device != "cuda":
            return None
        return int(torch.cuda.mem_get_info(self.torch_device)[0])

    def put_data(self, images: np.ndarray, labels: np.ndarray, table: np.ndarray | None = None) -> TorchData:
        with warnings.catch_warnings():
            # A read-only memory-mapped cache entry: torch shares it (nothing here writes to it)
            # and warns that it could not be written to.
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            x = torch.from_numpy(np.ascontiguousarray(images))
        # Multi-label targets as floats of the data's dtype (the images' when already normalised).
        y = torch.from_numpy(tasks.targets(labels, images.dtype if table is None else table.dtype))
        if table is None:  # already normalised (augmented epochs): stored in the model's layout
            x = x.contiguous(memory_format=self.memory_format)
        norm = {}
        if table is not None:
            norm = {"table": torch.from_numpy(np.ascontiguousarray(table).reshape(-1)).to(self.torch_device),
                    "offsets": (torch.arange(table.shape[0], dtype=torch.int32) * 256)
                    .reshape(1, -1, 1, 1).to(self.torch_device)}
        if self.fits_on_device(images.nbytes + labels.nbytes):
            # On the CPU .to() is no copy: the uint8 images stay the memory-mapped cache's pages.
            return TorchData(x.to(self.torch_device), y.to(self.torch_device), True, **norm)
        # Pinned host memory lets each batch's copy to the GPU run asynchronously.
        pinned = self.device == "cuda"
        return TorchData(x.pin_memory() if pinned else x, y.pin_memory() if pinned else y, False, **norm)

    def put_order(self, order: np.ndarray, lrs: np.ndarray, first_step: int = 0) -> TorchOrder:
        return TorchOrder(torch.from_numpy(order).to(self.torch_device),
                          [float(lr) for lr in lrs], int(first_step))

    def _batch(self, data: TorchData, idx: torch.Tensor):
        if data.on_device:
            return data.images.index_select(0, idx), data.labels.index_select(0, idx)
        idx = idx.cpu()
        return (data.images.index_select(0, idx).to(self.torch_device, non_blocking=True),
                data.labels.index_select(0, idx).to(self.torch_device, non_blocking=True))

    def train_step(self, state: TorchState, data: TorchData, order: TorchOrder, step: int,
                   batch_size: int):
        x, y = self._batch(data, order.positions[step * batch_size:(step + 1) * batch_size])
        x = data.inputs(x, self.memory_format)
        for group in state.optimizer.param_groups:
            group["lr"] = order.lrs[step]
        state.optimizer.zero_grad(set_to_none=True)
        if isinstance(state.module, CNN):  # the run's step: dropout's masks
            state.module.dropout_step = order.first_step + step
        logits = state.train_module(x)
        if y.ndim == 2:  # multi-label (pybench.tasks)
            loss = F.binary_cross_entropy_with_logits(logits, y, pos_weight=state.pos_weight)
        else:
            loss = F.cross_entropy(logits, y, label_smoothing=state.label_smoothing)
        loss.backward()
        state.optimizer.step()
        with torch.no_grad():  # the step's own predictions: see Backend.train_hits
            right = (logits >= 0) == (y > 0.5) if y.ndim == 2 else logits.argmax(1) == y
            self._hits.append(right.sum())
        self._counted += y.numel()
        return state, loss.detach()

    def train_hits(self) -> tuple[int, int]:
        right = int(torch.stack(self._hits).sum()) if self._hits else 0
        counted, self._hits, self._counted = self._counted, [], 0
        return right, counted

    def batch_inputs(self, data: TorchData, positions: np.ndarray) -> np.ndarray:
        x, _ = self._batch(data, torch.from_numpy(np.asarray(positions, np.int64)).to(self.torch_device))
        return data.inputs(x, self.memory_format).cpu().numpy()

    def to_float(self, value) -> float:
        return float(value)

    def predict(self, state: TorchState, data: TorchData, batch_size: int) -> np.ndarray:
        return self._evaluate(state.module, state.module, data, batch_size)

    def embed(self, state: TorchState, data: TorchData, batch_size: int) -> np.ndarray:
        return self._evaluate(state.module, state.module.penultimate, data, batch_size)

    @torch.no_grad()
    def _evaluate(self, module: nn.Module, function, data: TorchData, batch_size: int) -> np.ndarray:
        """`function` (the module, or its features) in eval mode over all of `data`, in batches."""
        module.eval()
        try:
            n = data.images.shape[0]
            # No autograd graph (evaluation keeps no activations for a backward pass), and the
            # outputs stay on the device until the end: one copy to the host, as JAX makes.
            chunks = [function(data.inputs(data.images[start:start + batch_size].to(self.torch_device),
                                           self.memory_format))
                      for start in range(0, n, batch_size)]
            return torch.cat(chunks).cpu().numpy()
        finally:
            module.train()

    def forward(self, state: TorchState, images: np.ndarray, train: bool) -> np.ndarray:
        x = torch.from_numpy(images).to(self.torch_device, next(state.module.parameters()).dtype,
                                        memory_format=self.memory_format)
        # A train-mode forward moves BatchNorm's running statistics: run it on a copy.
        module = copy.deepcopy(state.module) if train else state.module
        if isinstance(module, CNN):
            module.dropout_step = 0  # train-mode forwards draw step 0's dropout masks, everywhere
        module.train(train)
        try:
            with torch.no_grad():
                return module(x).cpu().numpy()
        finally:
            state.module.train()

    def export_weights(self, state: TorchState):
        sd = {k: v.detach().cpu().numpy().copy()
              for k, v in state.module.state_dict().items()
              if not k.endswith("num_batches_tracked")}
        param_names = {name for name, _ in state.module.named_parameters()}
        params = {k: v for k, v in sd.items() if k in param_names}
        buffers = {k: v for k, v in sd.items() if k not in param_names}
        return params, buffers

    def matmul_seconds(self, n: int) -> float:
        a = torch.randn(n, n, device=self.torch_device)
        b = torch.randn(n, n, device=self.torch_device)
        self.synchronize()
        start = time.perf_counter()
        torch.mm(a, b)
        self.synchronize()
        return time.perf_counter() - start

    device_memory_kind = "device (peak of allocated tensors)"

    def peak_memory_bytes(self) -> int | None:
        if self.device == "cuda":
            return int(torch.cuda.max_memory_allocated(self.torch_device))
        return None

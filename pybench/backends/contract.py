"""The contract every framework backend implements, with the same names everywhere.

No logic lives here, only the interface (as `pybench.models` holds the architectures and
`pybench.training` the one loop that drives every backend). A backend is one module per framework
(`torch_backend`, `jax_backend`, `knet_backend`) defining a `Backend` subclass; nothing in this
contract assumes a Python framework, so a Julia backend behind juliacall fits it as well.

Conventions every backend follows:
- Weights cross the contract in canonical form: `{name: numpy array}` with PyTorch's names and
  layouts (see `pybench.models`), split into `params` (trained) and `buffers` (BatchNorm running
  statistics). Each backend converts to its own layout and back.
- The element type is the canonical weights' dtype (`ModelInput.dtype`): float32 for every
  comparison run, float64 for the parity command's training trajectory (a float32 ResNet-20
  trajectory drifts from its own float64 twin by 1e-2 in ten steps, so only float64 can show
  that two frameworks compute the same update). Data, logits and exported weights share it.
- Data crosses once: `put_data` receives the uint8 images (N, C, H, W), the 0-based int64
  labels and the dataset's pixel table (`pybench.datasets.core.pixel_table`: the normalised value
  of each pixel value per channel, in the state's dtype), and keeps them on the device when they
  fit, as uint8. Each step normalises its batch there by gathering from the table, so every
  framework sees bit-identical inputs while the data takes a quarter of float32's memory (on the
  CPU, backends share the memory-mapped cache's pages instead of copying them). Augmented epochs
  (interpolated pixels) arrive already normalised, as float images with no table. Training steps then select a
  batch by position in an epoch order that was also uploaded once (`put_order`, with the epoch's
  learning rates), so host-to-device copies stay out of the timed step.
- Steps are asynchronous where the framework is: `train_step` may return before the device is
  done, which is why the timer calls `synchronize` before every clock read.
- State flows in as an argument and out as a return value (`train_step(state, ...) -> state,
  loss`); a backend may update it in place (PyTorch does) but callers always use the result.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from pybench.models import frozen_norms
from pybench.optimizers import DEFAULT_LR, OPTIMIZERS, OptimizerConfig  # noqa: F401 - part of the contract

Arrays = dict[str, np.ndarray]

@dataclass(frozen=True)
class Availability:
    ok: bool
    version: str = ""
    reason: str = ""  # when not ok: why, and what to do about it


@dataclass
class ModelInput:
    """Everything a backend needs to build one model: the name, the input shape and the class
    count from the dataset, and the canonical initial weights."""

    model: str
    in_shape: tuple[int, int, int]
    num_classes: int
    params: Arrays
    buffers: Arrays = field(default_factory=dict)
    # Parameters that do not train (`--trainable`; `pybench.models.frozen_params`): no gradient
    # is computed for them, they have no optimizer state and no weight decay, and the BatchNorm
    # layers among them (`frozen_norms`) use and keep their running statistics in training too.
    frozen: frozenset[str] = frozenset()

    @property
    def dtype(self) -> np.dtype:
        return next(iter(self.params.values())).dtype

    @property
    def frozen_norms(self) -> tuple[str, ...]:
        return frozen_norms(self.model, self.in_shape, self.num_classes, self.frozen)


class Backend(ABC):
    """One framework on one device. Instantiate through `pybench.backends.get_backend`."""

    name: ClassVar[str]
    # What `peak_memory_bytes` measures on a device, recorded as the run's `memory_kind`.
    device_memory_kind: ClassVar[str] = "device"

    @classmethod
    @abstractmethod
    def availability(cls) -> Availability:
        """Whether the framework is installed and importable here; must not raise. Called in
        the parent process too, so it must not start a device (no CUDA context, no XLA client,
        no Julia): a worker finds out the rest and fails with the reason."""

    @classmethod
    @abstractmethod
    def cuda_usable(cls) -> bool:
        """Whether this framework sees a working CUDA device here; must not raise."""

    @classmethod
    @abstractmethod
    def gpu_support(cls) -> str:
        """One line for `pybench list`: which CUDA build is installed and whether it can use a
        GPU here, or what to install. Like `availability`, it must not start a device."""

    def __init__(self, device: str):
        self.device = device  # "cpu" or "cuda"; "auto" is resolved before a backend is made
        # The training predictions since the last `train_hits`: each step's count of right
        # ones, a device scalar, and how many were counted.
        self._hits: list = []
        self._counted = 0

    @abstractmethod
    def device_info(self) -> dict[str, Any]:
        """At least `framework_version` and `device_name`, plus anything else that identifies
        the run (library versions, precision settings)."""

    @abstractmethod
    def synchronize(self) -> None:
        """Block until all queued device work is done (called before every clock read)."""

    @abstractmethod
    def init_state(self, model: ModelInput, optimizer: OptimizerConfig) -> Any:
        """A training state (model, optimizer state) built from canonical weights."""

    @abstractmethod
    def put_data(self, images: np.ndarray, labels: np.ndarray, table: np.ndarray | None = None) -> Any:
        """Move (N, C, H, W) images and 0-based int64 labels to the device; multi-label
        (N, findings) 0/1 labels become float targets of the data's dtype (`tasks.targets`).

        With a (C, 256) pixel `table`, the images are uint8 and stay uint8: every batch is
        normalised in the step (and in `predict`) as table[c, pixel], a gather. Without one,
        the images are already normalised floats. Either way the data keeps the dtype it came
        in (the table's, or the images'), whatever `init_state` came before: the caller passes
        the state's dtype (float32 runs; the parity job's float64 trajectory), and a step on
        data of another dtype than its state's is refused."""

    # put_data keeps the data on the device when it takes under this share of the device's free
    # memory: the rest stays free for the model, its activations and the framework's workspace.
    DEVICE_DATA_SHARE = 0.5

    def fits_on_device(self, nbytes: int) -> bool:
        """put_data's rule, the same for every backend: the data goes to the device when it
        takes under DEVICE_DATA_SHARE of the free device memory (always on the CPU)."""
        free = self.free_device_bytes()
        return free is None or nbytes < free * self.DEVICE_DATA_SHARE

    def free_device_bytes(self) -> int | None:
        """Free device memory as the framework sees it; None where there is no limit to keep
        to (the CPU, or a framework that cannot tell)."""
        return None

    def data_on_device(self, data: Any) -> bool:
        """Whether `put_data` kept the data on the device (False: batches are copied per step,
        which then counts in the step time). Backends return handles with an `on_device`
        attribute, or override this."""
        return bool(getattr(data, "on_device", True))

    @abstractmethod
    def put_order(self, order: np.ndarray, lrs: np.ndarray, first_step: int = 0) -> Any:
        """Move one epoch's plan to the device: the sample order (0-based int64 positions into
        the data), the learning rate of each of its steps (float64, from `pybench.schedules`)
        and the run's step count at its first step, from which a dropout layer's masks follow
        (`pybench.models.dropout`: the same elements dropped in every framework)."""

    @abstractmethod
    def train_step(self, state: Any, data: Any, order: Any, step: int, batch_size: int):
        """One optimizer step on samples order[step*batch_size:(step+1)*batch_size], at the
        learning rate the epoch plan gives this step.

        Returns (state, loss), the loss a device scalar: the batch's mean loss before the update
        (cross-entropy, or for multi-label targets the binary cross-entropy: `pybench.tasks`).
        Read it with `to_float` (which synchronises).
        """

    @abstractmethod
    def train_hits(self) -> tuple[int, int]:
        """(right, counted): the training predictions that were right and how many were
        counted, over the steps since the last call, which starts the count anew. A step counts
        its own training-mode forward on the batch it trains on, before the update: the class
        of the largest logit against the label, or for multi-label targets each finding's
        decision (logit >= 0) against its target. Kept on the device until read, once an epoch:
        the training accuracy per epoch as a training log reports it."""

    @abstractmethod
    def to_float(self, value: Any) -> float:
        """A device scalar as a Python float."""

    @abstractmethod
    def batch_inputs(self, data: Any, positions: np.ndarray) -> np.ndarray:
        """The (B, C, H, W) images a training step on these 0-based positions feeds the model,
        gathered and normalised by the step's own code, copied to the host: what proves that
        every framework's inputs are bit-identical (tests/conformance.py)."""

    @abstractmethod
    def predict(self, state: Any, data: Any, batch_size: int) -> np.ndarray:
        """Eval-mode logits (N, classes) for all of `data`, in order."""

    @abstractmethod
    def embed(self, state: Any, data: Any, batch_size: int) -> np.ndarray:
        """Eval-mode penultimate features (N, features) for all of `data`, in order: what the
        classifier sees (LeNet-5: fc2 after its relu; ResNets: the global average pool), for
        the report's t-SNE maps (`--embeddings`)."""

    @abstractmethod
    def forward(self, state: Any, images: np.ndarray, train: bool) -> np.ndarray:
        """Logits for one batch, in train mode (batch statistics; a CNN file's dropout with the
        masks of step 0) or eval mode, without changing `state` (parity checks call it on the
        same state twice)."""

    @abstractmethod
    def export_weights(self, state: Any) -> tuple[Arrays, Arrays]:
        """(params, buffers) in canonical names and layouts, as numpy arrays of the state's
        dtype."""

    @abstractmethod
    def matmul_seconds(self, n: int) -> float:
        """Seconds for one float32 (n, n) x (n, n) matrix product on the device, operands
        already there, the device synchronised: what `pybench.peak` turns into the machine's
        peak rate. Called after a warm-up call of the same size."""

    @abstractmethod
    def peak_memory_bytes(self) -> int | None:
        """Peak device memory since the backend was made; None where the framework cannot tell
        (on CPU the caller records process RSS instead)."""

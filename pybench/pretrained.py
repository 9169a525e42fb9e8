"""Pretrained initial weights (`--weights FILE`): a PyTorch `state_dict`, made canonical once.

The file is what `torch.save(model.state_dict(), FILE)` writes, torchvision's pretrained
ResNets included (their names are pybench's: `resnet18-imagenet`, `resnet50-imagenet`), or
the same arrays in an .npz. It becomes the canonical initial weights of every framework, so the
init fingerprint of every run covers it. Fitting it to the task, the same way everywhere:

- every parameter and BatchNorm statistic of the model must be in the file with its shape
  (`num_batches_tracked` is ignored: pybench's BatchNorm never reads it); anything else in the
  file, or anything missing, is an error naming it;
- the classifier head (`fc`, LeNet-5's `fc3`) is kept when its shape fits the task's classes, and
  otherwise replaced by the seeded draw of `pybench.models.init_weights`, identical in every
  framework;
- grey images on a model made for colour: the first convolution's weights are summed over their
  three input channels, which computes exactly what repeating the grey channel three times
  would (up to float rounding), without tripling the images in memory.

Reading a .pt file needs torch. The parent process (compare, parity, sweep) converts it once into
an .npz in the cache folder (`prepare`), so the JAX and Knet workers read numpy only and never
load torch into the processes whose memory they measure.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np

from pybench import models
from pybench.errors import PybenchError

CACHE_SUBDIR = "weights"
IGNORED_SUFFIXES = ("num_batches_tracked",)


def head_names(model: str) -> tuple[str, str]:
    """The classifier's weight and bias: the layer whose shape depends on the class count."""
    head = models.head_layer(model)
    return f"{head}.weight", f"{head}.bias"


def cache_file(path: Path) -> Path:
    """Where `prepare` keeps the .npz of a weights file: keyed by its path, size and mtime."""
    from pybench.datasets.cache import cache_dir
    from pybench.datasets.core import DEFAULT_DATA_ROOT

    stat = path.stat()
    key = hashlib.sha256(json.dumps([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
                         .encode()).hexdigest()[:32]
    return cache_dir(DEFAULT_DATA_ROOT) / CACHE_SUBDIR / f"{path.stem}-{key}.npz"


def read_torch_file(path: Path) -> dict[str, np.ndarray]:
    """A `torch.save`d state_dict as numpy arrays (weights_only: no code in the file runs)."""
    import torch

    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch's own errors alike: one line
        raise PybenchError(f"{path}: not a PyTorch state_dict file torch.load can read "
                           f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from exc
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]  # a training checkpoint holding the state_dict
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise PybenchError(f"{path}: holds a {type(loaded).__name__}, not a state_dict (a dict "
                           "of tensors, as torch.save(model.state_dict(), FILE) writes)")
    return {str(k): v.detach().cpu().numpy() for k, v in loaded.items()}


def read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return {name: arrays[name] for name in arrays.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise PybenchError(f"{path}: not a readable .npz of weights ({exc})") from exc


def prepare(weights: str | Path) -> Path:
    """Check that the weights file exists and reads; convert a .pt file to the cached .npz the
    workers read. Returns the .npz path. Called by the parent process before any worker starts."""
    path = Path(weights).expanduser()
    if not path.is_file():
        raise PybenchError(f"--weights {weights}: no such file")
    if path.suffix == ".npz":
        read_npz(path)
        return path
    cached = cache_file(path)
    if not cached.is_file():
        arrays = read_torch_file(path)
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(".partial.npz")
        np.savez(partial, **arrays)
        partial.replace(cached)  # a half-written file is never read
    return cached


def read_weights(weights: str | Path) -> dict[str, np.ndarray]:
    """The file's arrays: from the .npz `prepare` made (converting now if it has not run)."""
    return read_npz(prepare(weights))


def fit_weights(loaded: dict[str, np.ndarray], model: str, in_shape, num_classes: int,
                seed: int, source: str = "weights") -> tuple[dict, dict]:
    """(params, buffers) of `model` from a loaded state_dict, fitted to the task (the rules in
    the module docstring), float32. `source` names the file in errors."""
    params, buffers = models.init_weights(model, in_shape, num_classes, seed)
    loaded = {k: v for k, v in loaded.items() if not k.endswith(IGNORED_SUFFIXES)}
    heads = head_names(model)
    unexpected = sorted(set(loaded) - set(params) - set(buffers))
    missing = [name for name in (*params, *buffers) if name not in loaded and name not in heads]
    if unexpected or missing:
        found = [f"{len(missing)} of its arrays missing (e.g. {', '.join(missing[:2])})"] if missing else []
        found += [f"{len(unexpected)} arrays it does not have (e.g. {', '.join(unexpected[:2])})"
                  ] if unexpected else []
        raise PybenchError(f"{source}: does not fit {model}: {'; '.join(found)} (a state_dict "
                           "of another model?)")
    for target in (params, buffers):
        for name, drawn in target.items():
            if name not in loaded:
                continue  # the head: the seeded draw
            target[name] = fitted_array(name, loaded[name], drawn, heads, model, source)
    return params, buffers


def fitted_array(name: str, array: np.ndarray, drawn: np.ndarray, heads, model: str,
                 source: str) -> np.ndarray:
    """One loaded array as the model takes it: as it is, summed over colour (the first
    convolution, on grey images), or, for a head of the wrong size, the seeded draw."""
    if not np.issubdtype(array.dtype, np.floating):
        raise PybenchError(f"{source}: {name} is {array.dtype}, not floating point")
    if array.shape == drawn.shape:
        return np.ascontiguousarray(array, dtype=np.float32)
    if name in heads:
        return drawn  # the task's classes: the head is replaced by the seeded draw
    if (name == f"{models.first_conv(model)}.weight" and array.ndim == 4 and drawn.shape[1] == 1
            and array.shape[1] == 3 and array.shape[:1] + array.shape[2:] == drawn.shape[:1] + drawn.shape[2:]):
        # Grey images: conv(repeat(x, 3), W) == conv(x, W summed over its input channels).
        return array.astype(np.float64).sum(axis=1, keepdims=True).astype(np.float32)
    raise PybenchError(f"{source}: {name} has shape {tuple(array.shape)}, {model} needs "
                       f"{tuple(drawn.shape)}")


def describe_fit(loaded: dict[str, np.ndarray], model: str, in_shape, num_classes: int) -> dict:
    """What fitting did, for results.json: whether the head was replaced and conv1 folded."""
    weight, _ = head_names(model)
    shapes = models.param_shapes(model, in_shape, num_classes)
    conv1, head = loaded.get(f"{models.first_conv(model)}.weight"), loaded.get(weight)
    return {"head": "loaded" if head is not None and tuple(head.shape) == shapes[weight] else
            "replaced (seeded draw)",
            "grey_to_colour": bool(conv1 is not None and conv1.ndim == 4
                                   and conv1.shape[1] == 3 and in_shape[0] == 1)}


def check_fits(weights: str | None, model_names, dataset, seed: int) -> dict[str, dict]:
    """In the parent, before any worker: that the weights file fits every model (else one line
    naming what does not), and what fitting does to each, for results.json (empty without a
    file)."""
    if not weights:
        return {}
    loaded = read_weights(weights)
    facts = {}
    for model in model_names:
        fit_weights(loaded, model, dataset.in_shape, dataset.num_classes, seed, source=weights)
        facts[model] = describe_fit(loaded, model, dataset.in_shape, dataset.num_classes)
    return facts

"""Your own CNN, defined once: a TOML or JSON file of layers that pybench builds identically in
every framework.

    name = "tissue-cnn"
    layers = [
      {type = "conv", channels = 32, kernel = 3, padding = 1},
      {type = "batchnorm"},
      {type = "relu"},
      {type = "max_pool", kernel = 2},
      {type = "global_avg_pool"},
      {type = "dropout", p = 0.5},
      {type = "dense"},            # the last layer: one output per class
    ]

Layer types and their fields (README, "Your own CNN"): conv (channels, kernel, stride=1,
padding=0, bias=true), batchnorm, relu, max_pool and avg_pool (kernel, stride=kernel,
padding=0), global_avg_pool, flatten, dropout (p), dense (units; the last layer's is the class
count). Parametrised layers take an optional `name`; by default the k-th of each kind is
conv{k}, bn{k} or fc{k}, so the LeNet-5 of `examples/lenet5.toml` has the built-in LeNet-5's
names and canonical weights: the built-in LeNet-5 is this very list (`LENET5_LAYERS`), a plain
CNN like any file's. Everything a file gets wrong is one line naming the file, the
layer and the field. A file is read once, in the parent process, and registered under its
`name`; workers receive its normalised description with their job (`description`,
`register_description`).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from pybench.errors import PybenchError
from pybench.models import dropout
from pybench.models.layers import (
    BatchNorm,
    Conv,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool,
    Pool,
    Relu,
    pooled_size,
)

# type -> {field: (kind, default)}; a default of REQUIRED must be given.
REQUIRED = object()
FIELDS = {
    "conv": {"name": ("name", None), "channels": ("count", REQUIRED), "kernel": ("count", REQUIRED),
             "stride": ("count", 1), "padding": ("size", 0), "bias": ("bool", True)},
    "batchnorm": {"name": ("name", None)},
    "relu": {},
    "max_pool": {"kernel": ("count", REQUIRED), "stride": ("count", None), "padding": ("size", 0)},
    "avg_pool": {"kernel": ("count", REQUIRED), "stride": ("count", None), "padding": ("size", 0)},
    "global_avg_pool": {},
    "flatten": {},
    "dropout": {"p": ("probability", REQUIRED)},
    "dense": {"name": ("name", None), "units": ("count", None)},
}
DEFAULT_PREFIX = {"conv": "conv", "batchnorm": "bn", "dense": "fc"}
TOP_LEVEL = ("name", "description", "layers")
LAYER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
SUFFIXES = (".toml", ".json")


@dataclass(frozen=True)
class CnnSpec:
    """A validated CNN description: every layer's fields filled in (defaults and names)."""

    name: str
    layers: tuple[dict, ...]
    source: str = ""  # the file it was read from
    text: str = ""  # its one-line description, if the file gives one

    @property
    def fingerprint(self) -> str:
        """sha256 of the normalised layers (not the name or the file): the architecture."""
        return hashlib.sha256(json.dumps(list(self.layers), sort_keys=True).encode()).hexdigest()

    def description(self) -> dict:
        """JSON-able: what a worker rebuilds the same spec from."""
        return {"name": self.name, "layers": list(self.layers), "source": self.source,
                "description": self.text}


# LeNet-5 is a plain CNN like any file's: this layer list, the same as examples/lenet5.toml, with
# the default names conv1, conv2, fc1, fc2, fc3 (so the canonical weights and every framework's
# model are those of a file naming the same layers).
LENET5_LAYERS = [
    {"type": "conv", "channels": 6, "kernel": 5, "padding": 2}, {"type": "relu"}, {"type": "max_pool", "kernel": 2},
    {"type": "conv", "channels": 16, "kernel": 5}, {"type": "relu"}, {"type": "max_pool", "kernel": 2},
    {"type": "flatten"},
    {"type": "dense", "units": 120}, {"type": "relu"},
    {"type": "dense", "units": 84}, {"type": "relu"},
    {"type": "dense"},
]


def built_in() -> dict[str, CnnSpec]:
    return {"lenet5": parse({"name": "lenet5", "layers": LENET5_LAYERS,
                             "description": "LeNet-5: conv6@5x5(pad 2)-pool-conv16@5x5-pool-fc120-fc84-fc, "
                                            "ReLU, max pool"}, "")}


_REGISTERED: dict[str, CnnSpec] = {}


def is_cnn_file(arg: str) -> bool:
    return arg.lower().endswith(SUFFIXES)


def registered(name: str) -> CnnSpec | None:
    """The CNN of that name: a built-in one (LeNet-5) or one a file registered."""
    return BUILT_IN.get(name) or _REGISTERED.get(name)


def register(spec: CnnSpec, builtin_names=()) -> str:
    """Make `spec` known by its name in this process; a clash is an error."""
    if spec.name in builtin_names:
        raise PybenchError(f"{spec.source or spec.name}: name {spec.name!r} is a built-in model's: "
                           f"choose another")
    known = _REGISTERED.get(spec.name)
    if known is not None and known.layers != spec.layers:
        raise PybenchError(f"{spec.source}: name {spec.name!r} is already used by {known.source}, "
                           f"whose layers differ")
    _REGISTERED[spec.name] = spec
    return spec.name


def register_description(description: dict) -> str:
    """Register a description a worker received with its job."""
    return register(parse(description, description.get("source", "")))


def read_cnn_file(path: str | Path) -> CnnSpec:
    """Read and validate a .toml or .json CNN file."""
    path = Path(path)
    where = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PybenchError(f"{where}: cannot read the CNN file ({exc.strerror or exc})") from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(raw)
        else:
            data = tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PybenchError(f"{where}: not valid {path.suffix.lower().lstrip('.').upper()}: {first}") from None
    if not isinstance(data, dict):
        raise PybenchError(f"{where}: expected a table with `name` and `layers`")
    data.setdefault("name", path.stem)
    return parse(data, str(path.resolve()), where)


def parse(data: dict, source: str, where: str | None = None) -> CnnSpec:
    """Validate a description (a file's contents) and fill in every default."""
    where = where or source or str(data.get("name", "CNN file"))
    unknown = [k for k in data if k not in TOP_LEVEL and k != "source"]
    if unknown:
        raise PybenchError(f"{where}: unknown key {unknown[0]!r}{closest(unknown[0], TOP_LEVEL)} "
                           f"(a CNN file has {', '.join(TOP_LEVEL)})")
    name = data.get("name")
    if not isinstance(name, str) or not MODEL_NAME.match(name):
        raise PybenchError(f"{where}: name {name!r} must be letters, digits, '_', '-' or '.', "
                           f"starting with a letter or digit")
    layers = data.get("layers")
    if not isinstance(layers, list) or not layers:
        raise PybenchError(f"{where}: `layers` must be a non-empty list of layers")
    normalised, counts, names = [], {}, {}
    for i, layer in enumerate(layers, start=1):
        here = f"{where}: layer {i}"
        if not isinstance(layer, dict) or "type" not in layer:
            raise PybenchError(f"{here}: each layer is a table with a `type`")
        kind = layer["type"]
        if kind not in FIELDS:
            raise PybenchError(f"{here}: unknown type {kind!r}{closest(str(kind), FIELDS)} "
                               f"(types: {', '.join(FIELDS)})")
        here = f"{here} ({kind})"
        fields = FIELDS[kind]
        for key in layer:
            if key != "type" and key not in fields:
                allowed = ", ".join(fields) or "no fields"
                raise PybenchError(f"{here}: unknown field {key!r}{closest(key, fields)} "
                                   f"({kind} takes {allowed})")
        out = {"type": kind}
        for key, (kind_of, default) in fields.items():
            if layer.get(key) is not None:  # null (JSON, a normalised description): not given
                out[key] = check_field(here, key, kind_of, layer[key])
            elif default is REQUIRED and not (kind == "dense" and i == len(layers)):
                raise PybenchError(f"{here}: field {key!r} is required")
            else:
                out[key] = default
        if kind in ("max_pool", "avg_pool"):
            out["stride"] = out["stride"] or out["kernel"]
            if 2 * out["padding"] > out["kernel"]:
                raise PybenchError(f"{here}: padding {out['padding']} is more than half the "
                                   f"kernel {out['kernel']} (PyTorch refuses it)")
        if kind in DEFAULT_PREFIX:
            counts[kind] = counts.get(kind, 0) + 1
            out["name"] = out["name"] or f"{DEFAULT_PREFIX[kind]}{counts[kind]}"
            if out["name"] in names:
                raise PybenchError(f"{here}: name {out['name']!r} is already layer {names[out['name']]}'s")
            names[out["name"]] = i
        normalised.append(out)
    if normalised[-1]["type"] != "dense":
        raise PybenchError(f"{where}: the last layer must be dense (one output per class), "
                           f"not {normalised[-1]['type']}")
    text = data.get("description", "")
    return CnnSpec(name, tuple(normalised), source, text if isinstance(text, str) else "")


def check_field(here: str, key: str, kind: str, value):
    if kind == "name":
        if not isinstance(value, str) or not LAYER_NAME.match(value):
            raise PybenchError(f"{here}: field 'name' = {value!r} must be a letter or '_' followed "
                               f"by letters, digits or '_'")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise PybenchError(f"{here}: field {key!r} = {value!r} must be true or false")
        return value
    if kind == "probability":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise PybenchError(f"{here}: field {key!r} = {value!r} must be a number in [0, 1)")
        return float(value)
    low = 1 if kind == "count" else 0
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise PybenchError(f"{here}: field {key!r} = {value!r} must be a whole number "
                           f"{'>= 1' if low else '>= 0'}")
    return value


def closest(word: str, choices) -> str:
    match = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


def cnn_ops(spec: CnnSpec, in_shape: tuple[int, int, int], num_classes: int) -> list:
    """Every layer of `spec` for these images, with its shapes: the model every backend builds.
    Shapes that do not fit are one line naming the layer and the field."""
    channels, h, w = in_shape
    flat: int | None = None  # features once flattened (or pooled globally), else None
    ops, dropouts = [], 0
    for i, layer in enumerate(spec.layers, start=1):
        kind = layer["type"]
        here = f"{spec.source or spec.name}: layer {i} ({kind}{' ' + layer['name'] if layer.get('name') else ''})"
        if kind in ("conv", "batchnorm", "max_pool", "avg_pool", "global_avg_pool", "flatten") \
                and flat is not None:
            raise PybenchError(f"{here}: comes after the maps were flattened; {kind} needs (C, H, W) maps")
        if kind == "conv":
            oh, ow = (pooled_size(s, layer["kernel"], layer["stride"], layer["padding"]) for s in (h, w))
            if oh < 1 or ow < 1:
                raise PybenchError(f"{here}: field 'kernel' = {layer['kernel']} does not fit the "
                                   f"{h}x{w} maps it gets (from {in_shape[1]}x{in_shape[2]} images)")
            ops.append(Conv(layer["name"], channels, layer["channels"], layer["kernel"],
                            layer["stride"], layer["padding"], layer["bias"]))
            channels, h, w = layer["channels"], oh, ow
        elif kind == "batchnorm":
            ops.append(BatchNorm(layer["name"], channels))
        elif kind == "relu":
            ops.append(Relu())
        elif kind in ("max_pool", "avg_pool"):
            oh, ow = (pooled_size(s, layer["kernel"], layer["stride"], layer["padding"]) for s in (h, w))
            if oh < 1 or ow < 1:
                raise PybenchError(f"{here}: field 'kernel' = {layer['kernel']} does not fit the "
                                   f"{h}x{w} maps it gets (from {in_shape[1]}x{in_shape[2]} images)")
            ops.append(Pool(kind.removesuffix("_pool"), layer["kernel"], layer["stride"], layer["padding"]))
            h, w = oh, ow
        elif kind == "global_avg_pool":
            ops.append(GlobalAvgPool())
            flat = channels
        elif kind == "flatten":
            ops.append(Flatten())
            flat = channels * h * w
        elif kind == "dropout":
            ops.append(Dropout(layer["p"], dropouts))
            dropouts += 1
        elif kind == "dense":
            if flat is None:
                raise PybenchError(f"{here}: gets (C, H, W) maps: put a flatten or a "
                                   f"global_avg_pool before it")
            last = i == len(spec.layers)
            units = layer["units"]
            if last and units not in (None, num_classes):
                raise PybenchError(f"{here}: field 'units' = {units}, but the data has {num_classes} "
                                   f"classes (leave units out on the last layer)")
            units = num_classes if last else units
            ops.append(Dense(layer["name"], flat, units))
            flat = units
    return ops


def cnn_conv_inputs(spec: CnnSpec, in_shape, num_classes: int) -> list[tuple[str, int, int]]:
    """(convolution name, input height, input width) of every convolution, in order."""
    _, h, w = in_shape
    out = []
    for op in cnn_ops(spec, in_shape, num_classes):
        if isinstance(op, Conv):
            out.append((op.name, h, w))
            h, w = (pooled_size(s, op.kernel, op.stride, op.padding) for s in (h, w))
        elif isinstance(op, Pool):
            h, w = (pooled_size(s, op.kernel, op.stride, op.padding) for s in (h, w))
    return out


def knet_ops(spec: CnnSpec, in_shape, num_classes: int) -> str:
    """The op list as one string for KnetModels' `CNN` (';' between ops, ',' between fields):
    it crosses juliacall the same way in every version."""
    parts = []
    for op in cnn_ops(spec, in_shape, num_classes):
        if isinstance(op, Conv):
            parts.append(f"conv,{op.name},{op.stride},{op.padding}")
        elif isinstance(op, BatchNorm):
            parts.append(f"batchnorm,{op.name}")
        elif isinstance(op, Dense):
            parts.append(f"dense,{op.name}")
        elif isinstance(op, Relu):
            parts.append("relu")
        elif isinstance(op, Pool):
            parts.append(f"{op.mode}_pool,{op.kernel},{op.stride},{op.padding}")
        elif isinstance(op, GlobalAvgPool):
            parts.append("global_avg_pool")
        elif isinstance(op, Flatten):
            parts.append("flatten")
        elif isinstance(op, Dropout):
            parts.append(f"dropout,{op.index},{op.p!r},{dropout.threshold(op.p)}")
    return ";".join(parts)


BUILT_IN: dict[str, CnnSpec] = built_in()  # the CNNs pybench ships, by name

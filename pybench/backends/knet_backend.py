"""Knet.jl (Julia) behind pybench's Backend contract, through juliacall.

The model, training step and layouts live in Julia (julia/KnetModels); this module only moves
arrays across. juliacall is imported only inside methods, never at module import: loading Julia
next to torch can crash (LLVM/libstdc++ symbol clashes), and the first import may install Julia
and packages. `availability()` therefore never imports juliacall either; it looks for the
package and for a Julia executable.

Versions (see docs/julia.md): Julia 1.9, Knet 1.4.10, CUDA.jl 3.13 and juliacall
0.9.28 are the supported configuration. Knet 1.4.10 also loads on Julia 1.5-1.8 (through an older
juliacall, as pybench's own CI runs it on Julia 1.5.3): accepted, and labelled unsupported in
every record (`support_note`). The Julia dependencies are declared in pybench/juliapkg.json,
which points juliapkg at julia/KnetModels in the source tree, so the backend needs an editable
install (pip install -e '.[julia]').
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pybench import models
from pybench.backends import knet_layout
from pybench.backends.contract import Availability, Backend, ModelInput, OptimizerConfig
from pybench.errors import UnavailableError
from pybench.machine import cpu_model, machine_has_cuda_gpu

JULIA_VERSION = "1.9"  # the supported configuration: juliacall 0.9.28 accepts ~1.9 only
# Julia minor versions Knet 1.4.10 loads on: 1.5 (with CUDA.jl 2.4.3, the last release for it) to
# 1.9 (CUDA.jl 3.13); CUDA.jl 3.x does not run on 1.10+. Anything but JULIA_VERSION works through
# an older juliacall and is labelled as unsupported wherever it is recorded (`support_note`).
JULIA_MINORS = ((1, 5), (1, 9))
JULIAPKG_JSON = Path(__file__).resolve().parent.parent / "juliapkg.json"
FIX = ("install the [julia] extra (pip install -e '.[julia]'), or point PYTHON_JULIAPKG_EXE at "
       "an existing Julia 1.9 and set PYTHON_JULIAPKG_OFFLINE=yes")
# With juliacall present but no Julia, juliapkg can install Julia itself on the first import.
FIX_NO_JULIA = ("run python -c 'import juliacall' once with network access (juliapkg installs "
                "Julia 1.9, Knet and CUDA.jl: minutes), or point PYTHON_JULIAPKG_EXE at an "
                "existing Julia 1.9 and set PYTHON_JULIAPKG_OFFLINE=yes")


# --- finding Julia without starting it -----------------------------------------------------------

def knet_models_path() -> Path:
    """julia/KnetModels as juliapkg.json names it (relative to the json, as juliapkg resolves)."""
    spec = json.loads(JULIAPKG_JSON.read_text())["packages"]["KnetModels"]
    return (JULIAPKG_JSON.parent / spec["path"]).resolve()


def juliapkg_install_prefix() -> Path:
    """Where juliapkg installs Julia itself: {project}/pyjuliapkg/install (juliapkg/state.py),
    project = PYTHON_JULIAPKG_PROJECT or {venv}/julia_env or ~/.julia/environments/pyjuliapkg."""
    project = os.environ.get("PYTHON_JULIAPKG_PROJECT")
    if not project:
        prefix = sys.prefix if sys.prefix != sys.base_prefix else os.environ.get("CONDA_PREFIX")
        depot = os.environ.get("JULIA_DEPOT_PATH", "").split(os.pathsep)[0] or \
            os.path.join(os.path.expanduser("~"), ".julia")
        project = (os.path.join(prefix, "julia_env") if prefix
                   else os.path.join(depot, "environments", "pyjuliapkg"))
    return Path(project) / "pyjuliapkg" / "install"


def julia_depot() -> Path:
    """The first Julia depot (JULIA_DEPOT_PATH's first entry, else ~/.julia), as juliapkg reads it."""
    first = os.environ.get("JULIA_DEPOT_PATH", "").split(os.pathsep)[0]
    return Path(first or os.path.join(os.path.expanduser("~"), ".julia"))


def juliaup_julias() -> list[str]:
    """The Julia executables juliaup has installed (its juliaup.json in the depot), newest
    first, as juliapkg lists them; [] without juliaup or with a file it cannot read."""
    folder = julia_depot() / "juliaup"
    try:
        installed = json.loads((folder / "juliaup.json").read_text()).get("InstalledVersions", {})
    except (OSError, ValueError, AttributeError):
        return []
    found = []
    for version, info in installed.items():
        if isinstance(info, dict) and "Path" in info:
            numbers = minor_version(version.replace("~", ".").split("+")[0]) or (0, 0)
            found.append((numbers, version, str((folder / info["Path"] / "bin" / "julia").resolve())))
    return [exe for _, _, exe in sorted(found, reverse=True)]


def julia_candidates() -> list[tuple[str, str]]:
    """(where it came from, path) for every Julia executable juliapkg could use, in juliapkg's
    own order (juliapkg/find_julia.py), so that pybench names the Julia juliacall will run:
    PYTHON_JULIAPKG_EXE, the Julia juliapkg installed into its project, the Julias juliaup
    installed, then `julia` on PATH (which juliapkg consults only when juliaup is absent)."""
    found = []
    exe = os.environ.get("PYTHON_JULIAPKG_EXE")
    if exe:
        found.append(("PYTHON_JULIAPKG_EXE", exe))
    installed = shutil.which(str(juliapkg_install_prefix() / "bin" / "julia"))
    if installed:
        found.append(("juliapkg install", installed))
    found += [("juliaup", path) for path in juliaup_julias() if shutil.which(path)]
    on_path = shutil.which("julia")
    if on_path and not shutil.which("juliaup"):
        found.append(("PATH", on_path))
    return found


def minor_version(version: str) -> tuple[int, int] | None:
    """(1, 9) for "1.9.4"; None if it does not look like a version."""
    parts = version.split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None


def knet_runs_on(version: str) -> bool:
    """Whether Knet 1.4.10 loads on this Julia version through the installed juliacall: 1.5-1.9
    (JULIA_MINORS) with an older juliacall set up by hand (as CI's), only 1.9 with juliacall
    0.9.x (the [julia] extra's 0.9.28 accepts nothing else)."""
    minor = minor_version(version)
    low = (1, 9) if juliacall_is_09() else JULIA_MINORS[0]
    return minor is not None and low <= minor <= JULIA_MINORS[1]


def juliacall_is_09() -> bool:
    """Whether the installed juliacall is 0.9.x or newer (the extra's), by its metadata."""
    return (minor_version(juliacall_version()) or (0, 0)) >= (0, 9)


def support_note(julia: str) -> str:
    """'' for the supported configuration; otherwise what a recorded figure must say about it."""
    if julia.startswith(JULIA_VERSION + "."):
        return ""
    return (f"Julia {julia} with juliacall {juliacall_version()}: not the supported "
            f"Julia {JULIA_VERSION} + juliacall 0.9.28 configuration")


@functools.cache
def julia_version(exe: str) -> str | None:
    """`julia --version` of `exe` ("1.9.4"), or None if it does not run."""
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    words = out.stdout.split()
    return words[-1] if out.returncode == 0 and words else None


def find_julia() -> tuple[str | None, str]:
    """The first Julia executable Knet 1.4.10 runs on (1.9 is the supported one, see
    JULIA_MINORS) and its version, or (None, what was found instead)."""
    seen = []
    for source, exe in julia_candidates():
        version = julia_version(exe)
        if version and knet_runs_on(version):
            return exe, version
        seen.append(f"{exe} ({source}) is {version or 'not runnable'}")
        if source == "PYTHON_JULIAPKG_EXE":  # juliapkg uses it whatever it is: so must we
            break
    return None, "; ".join(seen) or ("no Julia executable (PYTHON_JULIAPKG_EXE, juliapkg's "
                                     "install, juliaup, PATH)")


def juliapkg_can_install() -> bool:
    """Whether juliapkg is here and allowed online, so that the first `import juliacall`
    installs Julia 1.9 itself (juliapkg's own decision; pybench only reports it)."""
    offline = os.environ.get("PYTHON_JULIAPKG_OFFLINE", "").lower() in ("yes", "true", "1")
    return (not offline and not os.environ.get("PYTHON_JULIAPKG_EXE")
            and importlib.util.find_spec("juliapkg") is not None)


def juliapkg_will_install() -> bool:
    """Whether the first import of juliacall is about to install Julia packages (juliapkg is
    there and has not resolved our dependencies yet: needs the network, takes minutes). False
    without juliapkg (an older juliacall set up by hand installs nothing). Imports juliapkg,
    which is pure Python and starts no Julia."""
    try:
        from juliapkg import deps
    except ImportError:
        return False
    try:
        return not deps.can_skip_resolve()
    except Exception:
        return True


# --- whether Knet can use this GPU --------------------------------------------------------------

# CUDA.jl 3.13 (the newest Knet 1.4.10 accepts) ships CUDA toolkits up to 11.7, which cannot
# target compute capability 9.0 (Hopper) or newer, and `CUDA.functional()` does not check that:
# such a GPU fails at the first kernel. Ada (8.9) is the newest generation it can run.
MAX_CUDA_CAPABILITY = "8.9"
GPU_FIX = "use --device cpu for knet, or a GPU up to the Ada generation (compute capability 8.9)"


def knet_gpu_verdict(probe: dict) -> str | None:
    """None when Knet can use the GPU `KnetModels.gpu_probe` described, else the one-line
    reason naming the GPU, its compute capability and what to do."""
    if not probe.get("functional"):
        return ("CUDA.jl sees no usable GPU (CUDA.functional() is false: no driver, or one "
                "too old for CUDA.jl 3.13's CUDA 11 toolkits)")
    name, capability = probe.get("name", "the GPU"), str(probe.get("capability", "?"))
    if capability_tuple(capability) > capability_tuple(MAX_CUDA_CAPABILITY):
        return (f"{name} has compute capability {capability}; CUDA.jl 3.13, the newest "
                f"Knet 1.4.10 accepts, targets up to {MAX_CUDA_CAPABILITY}: {GPU_FIX}")
    if probe.get("smoke"):
        return (f"a convolution, BatchNorm and gradient failed on {name} (compute capability "
                f"{capability}): {probe['smoke']}")
    return None


def capability_tuple(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split("."))
    except ValueError:
        return (99,)  # unreadable: treated as newer than anything supported


# --- loading Julia, once per process ------------------------------------------------------------

@functools.cache
def julia_main():
    """juliacall's Main with KnetModels loaded. The only place juliacall is imported."""
    if juliapkg_will_install():
        print("pybench: first use of the knet backend: juliapkg is installing Julia packages "
              "(Knet 1.4.10, CUDA.jl 3.13; needs network, takes minutes)", file=sys.stderr)
    # As many Julia threads as torch and XLA get cores (see julia_threads_wanted); a user's own
    # setting wins. JULIA_NUM_THREADS is what Julia itself reads when juliacall starts it (as
    # juliacall 0.5 does on the CI toolchain), PYTHON_JULIACALL_THREADS juliacall 0.9's option.
    threads = str(julia_threads_wanted())
    os.environ.setdefault("JULIA_NUM_THREADS", threads)
    os.environ.setdefault("PYTHON_JULIACALL_THREADS", threads)
    # Julia's signal handling must be on when Julia runs more than one thread.
    os.environ.setdefault("PYTHON_JULIACALL_HANDLE_SIGNALS", "yes")
    from juliacall import Main as jl  # noqa: PLC0415 (deliberately lazy, see module docstring)

    jl.seval("using KnetModels, CUDA, Knet")
    # NNlib's CPU convolutions (Knet's conv4) split the batch over Julia's threads, one small
    # gemm per sample; OpenBLAS's own threads beneath them only oversubscribe the cores (the
    # thread counts measured side by side: tools/step_search; docs/performance.md).
    jl.seval("import LinearAlgebra; Threads.nthreads() > 1 && LinearAlgebra.BLAS.set_num_threads(1)")
    return jl


def julia_threads_wanted() -> int:
    """The Julia threads a worker starts with: OMP_NUM_THREADS when it is set (Ray sets it to a
    task's CPUs, and torch follows it too), else every CPU this process may run on (torch and
    XLA use them all)."""
    omp = os.environ.get("OMP_NUM_THREADS", "")
    if omp.isdigit() and int(omp) > 0:
        return int(omp)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@functools.cache
def jl_function(name: str):
    """A Julia function (or type) by qualified name (avoids juliacall's `_b` spelling of `!`).

    Cached: `train_step` looks its function up on every step, and `seval` parses and evaluates
    Julia code each time; cached, the per-step cost is a dict lookup. (A failed lookup raises
    and is not cached.)"""
    return julia_main().seval(name)


def blas_threads() -> int | None:
    """OpenBLAS's thread count as Julia reports it: BLAS.get_num_threads from Julia 1.6, asked
    of Julia's OpenBLAS directly before that; None where neither answers."""
    value = julia_main().seval("""
        if isdefined(LinearAlgebra.BLAS, :get_num_threads)
            LinearAlgebra.BLAS.get_num_threads()
        else
            try ccall((:openblas_get_num_threads64_, Base.libblas_name), Cint, ()) catch; nothing end
        end""")
    return None if value is None else int(value)


def juliacall_version() -> str:
    try:
        return importlib.metadata.version("juliacall")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def dtype_name(dtype) -> str:
    """The numpy name of a float32 or float64 dtype, as KnetModels.array_type accepts it;
    anything else fails."""
    dtype = np.dtype(dtype)
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"the knet backend computes in float32 or float64, not {dtype}")
    return dtype.name


def model_dtype(model: ModelInput) -> str:
    """The dtype every array of `model` shares (the contract's `ModelInput.dtype`), by name."""
    name = dtype_name(model.dtype)
    mixed = sorted({f"{k}: {a.dtype}" for k, a in {**model.params, **model.buffers}.items()
                    if np.dtype(a.dtype).name != name})
    if mixed:
        raise ValueError(f"canonical weights must share one dtype ({name}); got {mixed[:3]}")
    return name


def julia_dict(arrays: dict[str, np.ndarray]):
    """A Julia Dict{String,Any} whose values are no-copy PyArray views of the numpy arrays."""
    d = jl_function("Dict{String,Any}")()
    for name, array in arrays.items():
        d[name] = array
    return d


def numpy_dict(julia_dict_value) -> dict[str, np.ndarray]:
    """A Julia Dict{String,Array} as numpy views (converted and copied by knet_layout)."""
    return {str(k): np.asarray(julia_dict_value[k]) for k in julia_dict_value.keys()}


# --- the backend ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class KnetPixels:
    """uint8 data in KnetModels (`put_pixels`) and the numpy array whose memory it wraps: the
    array must live as long as the Julia data does."""

    julia: Any
    host: np.ndarray


def julia_data(data: Any) -> Any:
    """The KnetModels.DeviceData behind what put_data returned."""
    return data.julia if isinstance(data, KnetPixels) else data


class KnetBackend(Backend):
    name = "knet"

    @classmethod
    def availability(cls) -> Availability:
        if importlib.util.find_spec("juliacall") is None:
            return Availability(False, reason=f"juliacall is not installed: {FIX}")
        exe, found = find_julia()
        if exe is None and juliapkg_can_install():
            # Right after `pip install -e '.[julia]'`: no Julia yet, and juliapkg installs
            # one on the first use (julia_main prints a line when it does).
            return Availability(True, version=(
                f"Knet 1.4.10 (juliacall) after a one-time install: juliapkg installs Julia "
                f"{JULIA_VERSION}, Knet and CUDA.jl on first use (minutes, needs network)"))
        if exe is None:
            return Availability(False, reason=f"no Julia {JULIA_VERSION} found ({found}): {FIX_NO_JULIA}")
        if not knet_models_path().is_dir():
            return Availability(False, reason=(
                f"{knet_models_path()} is missing (pybench installed without its source tree): "
                "pip install -e '.[julia]' from a pybench checkout"))
        note = support_note(found)
        return Availability(True, version=f"Julia {found}, Knet 1.4.10 (juliacall)"
                            + (f"; {note}" if note else ""))

    @classmethod
    def cuda_usable(cls) -> bool:
        """Asks CUDA.jl when Julia is already loaded here; otherwise only whether an NVIDIA
        driver exists, because starting Julia in a parent process is what we must avoid.
        `init_state` fails with a clear message if CUDA.jl then disagrees."""
        try:
            if "juliacall" in sys.modules:
                return bool(julia_main().seval("CUDA.functional()"))
            return (os.path.exists("/proc/driver/nvidia/version")
                    or shutil.which("nvidia-smi") is not None)
        except Exception:
            return False

    @classmethod
    def gpu_support(cls) -> str:
        # Starting Julia to ask CUDA.jl is the worker's job (its probe decides before anything
        # touches CUDA); here only what is known without it.
        if not machine_has_cuda_gpu():
            return "CUDA.jl 3 (CUDA 11 toolkits), no NVIDIA GPU here"
        return ("CUDA.jl 3 (CUDA 11 toolkits); an NVIDIA GPU is present: the worker's probe "
                f"checks it (compute capability up to {MAX_CUDA_CAPABILITY})")

    def __init__(self, device: str):
        super().__init__(device)
        self._atypes: dict[str, Any] = {}  # dtype name -> Julia array type on this device
        self._gpu: dict | None = None  # KnetModels.gpu_probe's answer, on CUDA
        # The dtype of the latest init_state (the canonical weights'); put_data follows it.
        self.dtype: str | None = None

    def atype(self, dtype: str | None = None):
        """The Julia array type (`CuArray{T}` or `Array{T}`) for this device and `dtype` (default:
        the one the latest `init_state` chose, float32 before any); fails clearly if CUDA.jl
        cannot use the GPU."""
        name = dtype_name(dtype or self.dtype or "float32")
        if name not in self._atypes:
            if self.device == "cuda":
                self.gpu()
            self._atypes[name] = jl_function("KnetModels.array_type")(self.device, name)
        return self._atypes[name]

    def gpu(self) -> dict:
        """The GPU as `KnetModels.gpu_probe` found it, asked once and before anything else
        touches CUDA; `UnavailableError` with `knet_gpu_verdict`'s reason if Knet cannot use
        it (the run is then `unavailable`, not a Julia error or a crash at the first kernel)."""
        if self._gpu is None:
            probe = jl_function("KnetModels.gpu_probe")(MAX_CUDA_CAPABILITY)
            self._gpu = {str(k): probe[k] for k in probe.keys()}
        reason = knet_gpu_verdict(self._gpu)
        if reason:
            raise UnavailableError(f"--device cuda: {reason}")
        return self._gpu

    def device_info(self) -> dict[str, Any]:
        """Versions as Julia reports them (read from the loaded packages, not assumed), and
        `support_note` when this is not the supported Julia 1.9 configuration. On CUDA the GPU
        probe comes first: a GPU Knet cannot use makes the run `unavailable` right here."""
        gpu = self.gpu() if self.device == "cuda" else None
        versions = {str(k): str(v) for k, v in
                    jl_function("KnetModels.package_versions")().items()}
        info = {"framework_version": f"Knet {versions['Knet']}", "knet": versions["Knet"],
                "julia": versions["julia"], "cuda_jl": versions["CUDA"],
                "autograd": versions["AutoGrad"], "juliacall": juliacall_version(),
                "julia_threads": int(julia_main().seval("Threads.nthreads()")),
                "blas_threads": blas_threads(),
                # Knet 1.4.10 sets no cuDNN math type: on a GPU, TF32 is off only through the
                # worker's NVIDIA_TF32_OVERRIDE=0 (pybench.run.worker.cuda_env).
                "precision": "float32; no TF32 setting of its own (NVIDIA_TF32_OVERRIDE on CUDA)",
                "device": self.device, "device_name": cpu_model()}
        note = support_note(versions["julia"])
        if note:
            info["support_note"] = note
        if gpu is not None:
            info.update(device_name=str(gpu["name"]), compute_capability=str(gpu["capability"]))
        return info

    def synchronize(self) -> None:
        # Only the device kind of the array type matters here, not its element type.
        jl_function("KnetModels.synchronize_device")(self.atype())

    def init_state(self, model: ModelInput, optimizer: OptimizerConfig) -> Any:
        """Computes in the canonical weights' dtype (float32, or float64 for the parity
        trajectory); the state keeps its array type, and later `put_data` calls follow it."""
        dtype = model_dtype(model)
        atype = self.atype(dtype)
        desc = models.describe(model.model, model.in_shape, model.num_classes)
        strides = np.array([b["stride"] for b in desc.get("blocks", [])], dtype=np.int64)
        stem = desc.get("stem", {"stride": 1, "padding": 1, "pool": desc.get("stem_pool", [0, 0, 0])})
        net = jl_function("KnetModels.build_model")(
            model.model, julia_dict(knet_layout.weights_to_knet(model.params)),
            julia_dict(knet_layout.weights_to_knet(model.buffers)), strides, atype,
            family=desc["family"], bn_momentum=desc["bn_momentum"], bn_eps=desc["bn_eps"],
            stem_stride=stem["stride"],
            stem_padding=stem["padding"], stem_pool=np.array(stem["pool"], dtype=np.int64),
            block_layers=np.array(desc.get("block_layers", []), dtype=np.int64),
            ops=desc.get("ops", ""), frozen=",".join(sorted(model.frozen)))
        beta1, beta2 = optimizer.betas
        state = jl_function("KnetModels.init_state")(
            net, atype, optimizer=optimizer.name, lr=optimizer.lr,
            momentum=optimizer.momentum, nesterov=optimizer.nesterov,
            weight_decay=optimizer.weight_decay, beta1=beta1, beta2=beta2, eps=optimizer.eps,
            label_smoothing=optimizer.label_smoothing,
            pos_weight=None if optimizer.pos_weight is None else np.asarray(optimizer.pos_weight))
        self.dtype = dtype
        return state

    def put_data(self, images: np.ndarray, labels: np.ndarray, table: np.ndarray | None = None) -> Any:
        """uint8 images with a pixel table: KnetModels' `put_pixels` wraps the numpy memory
        (no copy on the CPU, one upload on the GPU) and normalises each batch through the table;
        the returned `KnetPixels` keeps the numpy array alive for it.

        Normalised images (no table) in their own float dtype (the contract's rule; KnetModels
        refuses a step on data of another dtype than the state's): Julia's `to_device` makes a
        host `Array{T}` copy of the numpy view and then uploads it, once, outside every timed
        step."""
        if table is not None:
            host = np.ascontiguousarray(images, dtype=np.uint8)
            dtype = np.dtype(table.dtype).name
            data = jl_function("KnetModels.put_pixels")(
                host.ctypes.data, np.asarray(host.shape[::-1], np.int64), knet_layout.labels_to_knet(labels),
                np.ascontiguousarray(table).T, self.atype(dtype))
            return KnetPixels(data, host)
        dtype = knet_layout.float_dtype(np.asarray(images)).name
        return jl_function("KnetModels.put_data")(
            knet_layout.images_to_knet(images), knet_layout.labels_to_knet(labels),
            self.atype(dtype))

    def data_on_device(self, data: Any) -> bool:
        """Asked of KnetModels (a Julia object has no `on_device` attribute for the contract's
        default to read): true, since put_data copies the whole dataset to the device."""
        return bool(jl_function("KnetModels.on_device")(julia_data(data)))

    def put_order(self, order: np.ndarray, lrs: np.ndarray, first_step: int = 0) -> Any:
        # On the device of the data (positions index the device images there).
        return jl_function("KnetModels.put_order")(knet_layout.order_to_knet(order),
                                                   np.asarray(lrs, np.float64), self.atype(),
                                                   int(first_step))

    def train_step(self, state: Any, data: Any, order: Any, step: int, batch_size: int):
        state, loss = jl_function("KnetModels.train_step!")(state, julia_data(data), order, step, batch_size)
        return state, loss

    def batch_inputs(self, data: Any, positions: np.ndarray) -> np.ndarray:
        images = np.asarray(jl_function("KnetModels.batch_inputs")(julia_data(data),
                                                                   knet_layout.order_to_knet(positions)))
        return np.ascontiguousarray(images.transpose(knet_layout.REVERSE_4D))

    def train_hits(self) -> tuple[int, int]:
        right, counted = jl_function("KnetModels.take_train_hits!")()
        return int(right), int(counted)

    def to_float(self, value: Any) -> float:
        return float(value)

    def predict(self, state: Any, data: Any, batch_size: int) -> np.ndarray:
        return knet_layout.logits_from_knet(
            jl_function("KnetModels.predict")(state, julia_data(data), batch_size))

    def embed(self, state: Any, data: Any, batch_size: int) -> np.ndarray:
        # (features, N) -> (N, features): the same transpose as the scores'.
        return knet_layout.logits_from_knet(
            jl_function("KnetModels.embed")(state, julia_data(data), batch_size))

    def forward(self, state: Any, images: np.ndarray, train: bool) -> np.ndarray:
        scores = jl_function("KnetModels.forward")(
            state, knet_layout.images_to_knet(images), training=train)
        return knet_layout.logits_from_knet(scores)

    def export_weights(self, state: Any):
        params, buffers = jl_function("KnetModels.export_weights")(state)
        return (knet_layout.weights_from_knet(numpy_dict(params)),
                knet_layout.weights_from_knet(numpy_dict(buffers)))

    def matmul_seconds(self, n: int) -> float:
        return float(jl_function("KnetModels.matmul_seconds")(n, self.atype("float32")))

    # What KnetModels can measure on a GPU: the driver's memory in use by the process, sampled
    # after each step, the pool's cached blocks included (see device_memory_peak in data.jl).
    device_memory_kind = "device (in use per the driver, pool cache included, sampled per step)"

    def peak_memory_bytes(self) -> int | None:
        if self.device != "cuda":
            return None  # on the CPU the caller records process RSS
        return int(jl_function("KnetModels.device_memory_peak")())

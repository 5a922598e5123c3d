"""The native core: loading, input validation, dispatch to CPU or CUDA.

Every input is checked here before a pointer leaves Python: type (numpy array
or torch tensor), dtype float32 (int64 for indices), C-contiguity, shapes,
one device, finite values, integer ranges. Errors name the argument and say
what was expected. Nothing is copied, cast or moved between host and device
behind the caller's back: numpy in gives numpy out on the CPU; torch CPU
tensors give a torch CPU tensor; torch CUDA tensors run on their GPU, on the
caller's current stream, and give a CUDA tensor.
"""

from __future__ import annotations

import operator
import os
import sys
import threading
from typing import Any

import numpy as np

try:
    from . import _core
except ImportError as err:  # pragma: no cover - only in an unbuilt checkout
    raise ImportError(
        "stressvae's native core (stressvae._core) is not built. Install the package "
        "with `pip install -e .` (see README.md), which compiles it."
    ) from err

try:
    from . import _cuda

    _CUDA_IMPORT_ERROR: str | None = None
except ImportError as err:  # not built (no nvcc at install time) or unloadable
    _cuda = None
    _CUDA_IMPORT_ERROR = str(err)

__all__ = [
    "ISA_LEVELS",
    "NativeInputError",
    "NativeRollout",
    "native_info",
    "normals",
    "rollout_noise",
    "sample_latent",
]

TAG_LATENT: int = int(_core.TAG_LATENT)
TAG_OBSERVATION: int = int(_core.TAG_OBSERVATION)
TAG_STEP: int = int(_core.TAG_STEP)  # + day t: the rollout's observation noise of day t
TAG_DRIFT: int = int(_core.TAG_DRIFT)  # + day t: the latent AR(1) innovation after day t
MAX_HORIZON: int = int(_core.MAX_HORIZON)
ISA_LEVELS = ("auto", "baseline", "avx2", "avx512")

_U64 = 1 << 64
_MODES = {"prior": 0, "rows": 1, "table": 2}


class NativeInputError(ValueError):
    """An argument of a native call has the wrong type, dtype, shape, layout or value."""


# ------------------------------------------------------------------ helpers
def _torch():
    """torch if it is already imported (a tensor can exist only then), else None."""
    return sys.modules.get("torch")


def _is_tensor(x: Any) -> bool:
    torch = _torch()
    return torch is not None and isinstance(x, torch.Tensor)


def default_threads() -> int:
    """Threads the CPU kernels use by default: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _as_int(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool):
        raise NativeInputError(f"{name} must be an integer, got a bool")
    try:
        v = operator.index(value)
    except TypeError:
        raise NativeInputError(f"{name} must be an integer, got {type(value).__name__}") from None
    if not lo <= v <= hi:
        raise NativeInputError(f"{name} must be in [{lo}, {hi}], got {v}")
    return v


def _as_scale(value: Any) -> float:
    if isinstance(value, bool):
        raise NativeInputError("scale must be a real number, got a bool")
    try:
        s = float(value)
    except (TypeError, ValueError):
        raise NativeInputError(f"scale must be a real number, got {type(value).__name__}") from None
    if not np.isfinite(s) or s < 0:
        raise NativeInputError(f"scale must be finite and >= 0, got {s}")
    if s != 0 and abs(s) > np.finfo(np.float32).max:
        raise NativeInputError(f"scale must fit in float32, got {s}")
    return s


def _shape_str(shape) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


def _check_array(name: str, x: Any, dtype: str, ndims: tuple[int, ...]) -> None:
    """Type, dtype, dimensions and C-contiguity of a numpy array or torch tensor."""
    if _is_tensor(x):
        torch = _torch()
        want = torch.float32 if dtype == "float32" else torch.int64
        if x.dtype != want:
            raise NativeInputError(f"{name} must have dtype {dtype}, got {x.dtype}")
        if x.dim() not in ndims:
            raise NativeInputError(
                f"{name} must be {' or '.join(f'{k}-D' for k in ndims)}, got shape "
                f"{_shape_str(x.shape)}"
            )
        if not x.is_contiguous():
            raise NativeInputError(f"{name} must be C-contiguous; call .contiguous() first")
        if x.device.type not in ("cpu", "cuda"):
            raise NativeInputError(f"{name} is on {x.device}; only cpu and cuda are supported")
        if x.requires_grad:
            raise NativeInputError(f"{name} requires grad; pass {name}.detach()")
        return
    if not isinstance(x, np.ndarray):
        raise NativeInputError(
            f"{name} must be a numpy array or torch tensor, got {type(x).__name__}"
        )
    if x.dtype != np.dtype(dtype):
        raise NativeInputError(f"{name} must have dtype {dtype}, got {x.dtype}")
    if x.ndim not in ndims:
        dims = " or ".join(f"{k}-D" for k in ndims)
        raise NativeInputError(f"{name} must be {dims}, got shape {_shape_str(x.shape)}")
    if not x.flags.c_contiguous:
        raise NativeInputError(f"{name} must be C-contiguous; use np.ascontiguousarray({name})")
    if not x.flags.aligned:
        raise NativeInputError(f"{name} must be aligned to its dtype")


def _device_of(x: Any) -> str:
    if _is_tensor(x):
        return str(x.device) if x.device.type == "cuda" else "cpu"
    return "cpu"


def _all_finite(name: str, x: Any) -> None:
    if _is_tensor(x) and x.device.type == "cuda":
        ok = bool(_torch().isfinite(x).all().item())
    else:
        x = _numpy_view(x)
        ok = bool(np.isfinite(x).all()) if x.size < 4096 else _core.all_finite(x, default_threads())
    if not ok:
        raise NativeInputError(f"{name} contains NaN or inf")


def _index_range(index: Any, k: int) -> None:
    if index.numel() if _is_tensor(index) else index.size:
        lo, hi = int(index.min()), int(index.max())
        if lo < 0 or hi >= k:
            raise NativeInputError(
                f"index values must be in [0, {k}) (rows of mu), got min {lo}, max {hi}"
            )


def _numpy_view(x: Any) -> np.ndarray:
    return x.detach().numpy() if _is_tensor(x) else x


# ------------------------------------------------------------- self-check
_SELF_CHECKED: set[int] = set()
_SELF_CHECK_LOCK = threading.Lock()


def _cuda_self_check(device_index: int) -> None:
    """Bit-for-bit agreement of the CUDA and CPU samplers, once per device."""
    if device_index in _SELF_CHECKED:
        return
    with _SELF_CHECK_LOCK:
        if device_index in _SELF_CHECKED:
            return
        torch = _torch()
        rng = np.random.default_rng(20261121)
        k, n, d = 7, 1031, 19
        mu = rng.normal(size=(k, d)).astype(np.float32)
        lv = rng.uniform(-6, 3, size=(k, d)).astype(np.float32)
        idx = rng.integers(0, k, size=n).astype(np.int64)
        seed, offset = 0x0123456789ABCDEF, (1 << 32) - 500  # crosses a 32-bit word
        cpu = np.empty((n, d), np.float32)
        _core.sample(cpu, mu, lv, idx, 2, seed, offset, 0.75, TAG_LATENT, 1, "auto")
        dev = torch.device("cuda", device_index)
        with torch.cuda.device(dev):
            gpu = torch.empty((n, d), dtype=torch.float32, device=dev)
            t_mu, t_lv, t_idx = (torch.from_numpy(a).to(dev) for a in (mu, lv, idx))
            stream = torch.cuda.current_stream(dev)
            _cuda.sample(
                gpu.data_ptr(), t_mu.data_ptr(), t_lv.data_ptr(), t_idx.data_ptr(),
                n, d, k, 2, seed, offset, 0.75, TAG_LATENT, stream.cuda_stream,
            )  # fmt: skip
            got = gpu.cpu().numpy()
        same = got.view(np.uint32) == cpu.view(np.uint32)
        if not same.all():
            bad = int((~same).sum())
            diff = float(np.nanmax(np.abs(got.astype(np.float64) - cpu)))
            raise RuntimeError(
                f"stressvae CUDA self-check failed on cuda:{device_index}: {bad} of {same.size} "
                f"sampled values differ from the CPU sampler (max abs diff {diff:.3g}). The CUDA "
                "module was built with settings that change float rounding (fast math or FMA "
                "contraction); rebuild without them."
            )
        _SELF_CHECKED.add(device_index)


def _cuda_ready(device_index: int) -> None:
    if _cuda is None:
        raise RuntimeError(
            "the CUDA module stressvae._cuda is not built (" + (_CUDA_IMPORT_ERROR or "") + "); "
            "reinstall on a machine with nvcc, e.g. STRESSVAE_CUDA=force pip install -e ."
        )
    count, why = _cuda.device_count()
    if device_index >= count:
        raise RuntimeError(f"CUDA device {device_index} is not usable by stressvae._cuda: {why}")
    _cuda_self_check(device_index)


# ------------------------------------------------------------- public API
def sample_latent(
    mu: Any,
    logvar: Any,
    n: int | None = None,
    *,
    seed: int,
    index: Any = None,
    offset: int = 0,
    scale: float = 1.0,
    out: Any = None,
    device: str | None = None,
    num_threads: int | None = None,
    isa: str = "auto",
    check_finite: bool = True,
    tag: int = TAG_LATENT,
):
    """Fused reparameterized draws ``z = mu + exp(logvar / 2) * scale * eps``.

    ``mu`` and ``logvar`` (float32, C-contiguous, the same shape) come in one
    of three forms:

    * prior: ``[d]`` or ``[1, d]`` and ``n``: n draws around one point;
    * per row: ``[n, d]``: one draw around each row (given encodings);
    * table: ``[k, d]`` with ``index`` (int64 ``[n]``, values in ``[0, k)``):
      draw i around row ``index[i]`` (many draws around a few anchors).

    ``eps`` (standard normal, ``|eps| <= 5.77``) is made inside the kernel from
    Philox4x32-10 keyed by ``seed``; its values for output row i depend only on
    ``(seed, offset + i)``, so any chunking, thread count or device gives the
    same z. ``std = exp(logvar / 2)`` uses logvar clamped to [-172, 176].

    Returns ``z`` float32 ``[n, d]``: a numpy array for numpy input, a tensor
    on the inputs' device for torch input (CUDA work goes on the current
    stream). ``out`` may be given to fill in place. ``check_finite=False``
    skips the scan of mu/logvar for NaN and inf (for arrays already checked).
    """
    _check_array("mu", mu, "float32", (1, 2))
    _check_array("logvar", logvar, "float32", (1, 2))
    if _is_tensor(mu) != _is_tensor(logvar):
        raise NativeInputError("mu and logvar must both be numpy arrays or both torch tensors")
    if index is not None and _is_tensor(index) != _is_tensor(mu):
        _check_array("index", index, "int64", (1,))
        raise NativeInputError("index must be of the same kind (numpy / torch) as mu")
    tag = _as_int("tag", tag, 0, (1 << 32) - 1)
    if isa not in ISA_LEVELS:
        raise NativeInputError(f"isa must be one of {ISA_LEVELS}, got {isa!r}")
    threads = (
        default_threads() if num_threads is None else _as_int("num_threads", num_threads, 1, 4096)
    )
    if device not in (None, "auto"):
        dev = _device_of(mu)
        if not isinstance(device, str) or device.split(":")[0] not in ("cpu", "cuda"):
            raise NativeInputError(
                f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {device!r}"
            )
        if device.split(":")[0] != dev.split(":")[0] or (":" in device and device != dev):
            raise NativeInputError(
                f"device={device!r} was asked but mu is on {dev}; move the inputs there first "
                "(nothing is moved between host and device implicitly)"
            )
    a = _LatentArgs.check(mu, logvar, n, seed, index, offset, scale, check_finite)
    n, d, k, mode, dev = a.n, a.d, a.k, a.mode, a.device
    if out is not None and _device_of(out) != dev:
        raise NativeInputError(f"out is on {_device_of(out)} but mu is on {dev}; use one device")

    if out is not None:
        _check_array("out", out, "float32", (2,))
        if tuple(out.shape) != (n, d):
            raise NativeInputError(f"out must have shape ({n}, {d}), got {_shape_str(out.shape)}")
        if _is_tensor(out) != _is_tensor(mu):
            raise NativeInputError("out must be of the same kind (numpy / torch) as mu")
        if not _is_tensor(out) and not out.flags.writeable:
            raise NativeInputError("out must be writeable")
        for name, x in (("mu", mu), ("logvar", logvar), ("index", index)):
            if x is not None and _may_share_memory(out, x):
                raise NativeInputError(f"out must not overlap {name}")

    if dev == "cpu":
        return _sample_cpu(a, index, out, tag, threads, isa, torch_out=_is_tensor(mu))
    return _sample_cuda(mu, logvar, index, out, n, d, k, mode, a.seed, a.offset, a.scale, tag)


def _may_share_memory(a: Any, b: Any) -> bool:
    if _is_tensor(a):
        if a.numel() == 0 or b.numel() == 0:
            return False
        a0, a1 = a.data_ptr(), a.data_ptr() + a.numel() * a.element_size()
        b0, b1 = b.data_ptr(), b.data_ptr() + b.numel() * b.element_size()
        return a0 < b1 and b0 < a1
    return bool(np.may_share_memory(a, b))


def _sample_cpu(a: _LatentArgs, index, out, tag, threads, isa, torch_out: bool):
    if out is None:
        out = (
            _torch().empty((a.n, a.d), dtype=_torch().float32)
            if torch_out
            else np.empty((a.n, a.d), dtype=np.float32)
        )
    idx = _numpy_view(index) if index is not None else np.empty(0, dtype=np.int64)
    _core.sample(
        _numpy_view(out), a.mu, a.logvar, idx, _MODES[a.mode], a.seed, a.offset, a.scale, tag,
        threads, isa,
    )  # fmt: skip
    return out


def _sample_cuda(mu, logvar, index, out, n, d, k, mode, seed, offset, scale, tag):
    torch = _torch()
    dev = mu.device
    _cuda_ready(dev.index if dev.index is not None else torch.cuda.current_device())
    with torch.cuda.device(dev):
        if out is None:
            out = torch.empty((n, d), dtype=torch.float32, device=dev)
        stream = torch.cuda.current_stream(dev).cuda_stream
        _cuda.sample(
            out.data_ptr(), mu.data_ptr(), logvar.data_ptr(),
            index.data_ptr() if index is not None else 0,
            n, d, k, _MODES[mode], seed, offset, scale, tag, stream,
        )  # fmt: skip
    return out


def normals(
    n: int,
    d: int,
    *,
    seed: int,
    offset: int = 0,
    tag: int = TAG_LATENT,
    out: Any = None,
    num_threads: int | None = None,
    isa: str = "auto",
    device: str = "cpu",
):
    """The standard normals the sampler and the decoder's noise use: eps
    [n, d] float32 for scenarios offset .. offset + n - 1 in stream ``tag``.
    A numpy array on the CPU; a torch tensor on ``device="cuda[:N]"`` (made on
    the current stream)."""
    n = _as_int("n", n, 0, (1 << 63) - 1)
    d = _as_int("d", d, 1, (1 << 31) - 1)
    seed = _as_int("seed", seed, 0, _U64 - 1)
    offset = _as_int("offset", offset, 0, _U64 - 1)
    if offset + n > _U64:
        raise NativeInputError(f"offset + n must be <= 2**64, got offset={offset}, n={n}")
    tag = _as_int("tag", tag, 0, (1 << 32) - 1)
    if isa not in ISA_LEVELS:
        raise NativeInputError(f"isa must be one of {ISA_LEVELS}, got {isa!r}")
    if not isinstance(device, str) or device.split(":")[0] not in ("cpu", "cuda"):
        raise NativeInputError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if device.startswith("cuda"):
        import torch

        dev = torch.device(device)
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        _cuda_ready(index)
        with torch.cuda.device(index):
            res = torch.empty((n, d), dtype=torch.float32, device=dev)
            stream = torch.cuda.current_stream(index).cuda_stream
            _cuda.normals(res.data_ptr(), n, d, seed, tag, offset, stream)
        return res
    threads = (
        default_threads() if num_threads is None else _as_int("num_threads", num_threads, 1, 4096)
    )
    if out is None:
        out = np.empty((n, d), dtype=np.float32)
    else:
        _check_array("out", out, "float32", (2,))
        if _is_tensor(out):
            raise NativeInputError("out must be a numpy array (normals runs on the CPU)")
        if tuple(out.shape) != (n, d):
            raise NativeInputError(f"out must have shape ({n}, {d}), got {_shape_str(out.shape)}")
        if not out.flags.writeable:
            raise NativeInputError("out must be writeable")
    _core.normals(out, seed, tag, offset, threads, isa)
    return out


def native_info() -> dict[str, Any]:
    """What was built, which devices are usable, and how often each native
    path has run in this process (tests use the counts to prove that the
    native path, not a fallback, did the work)."""
    cuda: dict[str, Any] = {"built": _cuda is not None}
    counts = dict(_core.counters())
    if _cuda is None:
        cuda.update(usable=False, devices=[], reason=f"not built: {_CUDA_IMPORT_ERROR}")
        counts.update(
            sample_cuda_calls=0, sample_cuda_rows=0, normals_cuda_calls=0, normals_cuda_rows=0
        )
    else:
        count, why = _cuda.device_count()
        devices = [_cuda.device_name(i) for i in range(count)]
        cuda.update(
            usable=count > 0,
            devices=devices,
            reason=why if count == 0 else "",
            archs=str(_cuda.ARCHS),
            runtime_version=_cuda.runtime_version(),
            driver_version=_cuda.driver_version(),
            self_checked=sorted(_SELF_CHECKED),
        )
        counts.update(_cuda.counters())
    return {
        "core": {
            "built": True,
            "isa": _core.best_isa(),
            "threads": default_threads(),
        },
        "cuda": cuda,
        "counts": counts,
    }


# ------------------------------------------------------------- decoder
_ACTIVATIONS = ("silu", "relu", "tanh", "gelu")


def _host_out(out: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    """The output array of a CPU kernel: a new one, or the caller's, checked
    (float32 numpy, C-contiguous, this shape, writeable)."""
    if out is None:
        return np.empty(shape, dtype=np.float32)
    _check_array("out", out, "float32", (len(shape),))
    if _is_tensor(out):
        raise NativeInputError(f"out must be a numpy array (the native {what} runs on the CPU)")
    if tuple(out.shape) != shape:
        raise NativeInputError(f"out must have shape {shape}, got {_shape_str(out.shape)}")
    if not out.flags.writeable:
        raise NativeInputError("out must be writeable")
    return out


def _device_out(out: Any, shape: tuple[int, ...], device: Any):
    """The output tensor of a CUDA kernel: a new one on ``device``, or the
    caller's, checked (float32, C-contiguous, this shape, that device)."""
    import torch

    if out is None:
        return torch.empty(shape, dtype=torch.float32, device=device)
    _check_array("out", out, "float32", (len(shape),))
    if not _is_tensor(out) or out.device != device or tuple(out.shape) != shape:
        raise NativeInputError(f"out must be a float32 tensor {shape} on {device}")
    return out


def _check_shift(shift: Any, n_assets: int) -> np.ndarray | None:
    """The drift shift of the unscaling: None, or float32 [assets], finite."""
    if shift is None:
        return None
    s = np.ascontiguousarray(shift, dtype=np.float32).reshape(-1)
    if s.shape != (n_assets,) or not np.isfinite(s).all():
        raise NativeInputError(f"shift must be {n_assets} finite numbers (one per asset)")
    return s


class NativeDecoder:
    """A decoder MLP packed once for the native core, then run on blocks of
    scenarios: ``decode(z)`` or the fused ``sample(mu, logvar)`` (z drawn
    inside the kernel, never written out).

    ``weights`` is a :class:`stressvae.DecoderWeights` (``model.export_decoder()``).
    Every array is checked here (float32, C-contiguous, chained shapes, finite)
    before it is packed. Output: float32 ``[n, window, assets]`` daily log
    returns in data units (or log prices with ``cumulative=True``); for the
    gaussian likelihood the observation noise ``eps`` of element j of scenario
    ``offset + i`` is Philox stream ``TAG_OBSERVATION``: a scenario depends on
    (weights, its latent draw, seed, its index) only.

    CPU only for now (``device="cpu"``); the generator falls back to a torch
    decoder on CUDA.
    """

    def __init__(self, weights: Any, *, isa: str = "auto", num_threads: int | None = None):
        self.window = _as_int("weights.window", weights.window, 1, 1 << 24)
        self.n_assets = _as_int("weights.n_assets", weights.n_assets, 1, 1 << 16)
        self.latent_dim = _as_int("weights.latent_dim", weights.latent_dim, 1, 1 << 16)
        if weights.likelihood not in ("gaussian", "mse"):
            raise NativeInputError(
                f"weights.likelihood must be 'gaussian' or 'mse', got {weights.likelihood!r}"
            )
        self.gaussian = weights.likelihood == "gaussian"
        self.out_dim = self.window * self.n_assets
        if isa not in ISA_LEVELS:
            raise NativeInputError(f"isa must be one of {ISA_LEVELS}, got {isa!r}")
        self.num_threads = (
            default_threads()
            if num_threads is None
            else _as_int("num_threads", num_threads, 1, 4096)
        )
        layers = []
        width = self.latent_dim
        for i, layer in enumerate(weights.layers):
            if len(layer) != 3:
                raise NativeInputError(f"layer {i} must be (W, b, activation)")
            w, b, act = layer
            last = i == len(weights.layers) - 1
            _check_array(f"layer {i} W", w, "float32", (2,))
            _check_array(f"layer {i} b", b, "float32", (1,))
            if _is_tensor(w) or _is_tensor(b):
                raise NativeInputError(f"layer {i}: weights must be numpy arrays")
            if w.shape[0] != width:
                raise NativeInputError(
                    f"layer {i} W must be [{width}, n] (its input is {width} wide), got "
                    f"{_shape_str(w.shape)}"
                )
            if b.shape[0] != w.shape[1]:
                raise NativeInputError(
                    f"layer {i} b must be [{w.shape[1]}], got {_shape_str(b.shape)}"
                )
            if not (np.isfinite(w).all() and np.isfinite(b).all()):
                raise NativeInputError(f"layer {i} has NaN or inf weights")
            if last and act is not None:
                raise NativeInputError("the last layer must be linear (activation None)")
            if not last and act not in _ACTIVATIONS:
                raise NativeInputError(
                    f"layer {i} activation must be one of {_ACTIVATIONS}, got {act!r}"
                )
            layers.append((w, b, act))
            width = int(w.shape[1])
        if not layers:
            raise NativeInputError("the decoder needs at least one layer")
        want = (2 if self.gaussian else 1) * self.out_dim
        if width != want:
            raise NativeInputError(
                f"the last layer must give {want} outputs for window {self.window} x "
                f"{self.n_assets} assets ({weights.likelihood}), got {width}"
            )
        mean = np.ascontiguousarray(weights.scaler_mean, dtype=np.float32).reshape(-1)
        std = np.ascontiguousarray(weights.scaler_std, dtype=np.float32).reshape(-1)
        if mean.shape != (self.n_assets,) or std.shape != (self.n_assets,):
            raise NativeInputError(f"scaler mean and std must be [{self.n_assets}]")
        if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
            raise NativeInputError("scaler std must be finite and > 0, mean finite")
        self.layers = layers
        self.log_scale_bounds = (float(weights.log_scale_min), float(weights.log_scale_max))
        self._impl = _core.Decoder(
            layers, self.gaussian, self.out_dim, self.n_assets, mean, std,
            *self.log_scale_bounds, isa,
        )  # fmt: skip

    @property
    def isa(self) -> str:
        return str(self._impl.isa)

    def _out(self, out: Any, n: int) -> np.ndarray:
        return _host_out(out, (n, self.window, self.n_assets), "decoder")

    def _shift(self, shift: Any) -> np.ndarray | None:
        return _check_shift(shift, self.n_assets)

    def decode(
        self,
        z: Any,
        *,
        seed: int,
        offset: int = 0,
        noise: bool = True,
        out: Any = None,
        demean: bool = False,
        cumulative: bool = False,
        shift: Any = None,
    ) -> np.ndarray:
        """z float32 [n, latent] -> windows float32 [n, window, assets]."""
        _check_array("z", z, "float32", (2,))
        z = _numpy_view(z)
        if z.shape[1] != self.latent_dim:
            raise NativeInputError(f"z must be [n, {self.latent_dim}], got {_shape_str(z.shape)}")
        _all_finite("z", z)
        seed = _as_int("seed", seed, 0, _U64 - 1)
        offset = _as_int("offset", offset, 0, _U64 - 1)
        n = int(z.shape[0])
        res = self._out(out, n)
        self._impl.decode(
            res.reshape(n, self.out_dim), z, seed, offset, bool(noise), bool(demean),
            bool(cumulative), self._shift(shift), self.num_threads,
        )  # fmt: skip
        return res

    def sample(
        self,
        mu: Any,
        logvar: Any,
        n: int | None = None,
        *,
        seed: int,
        index: Any = None,
        offset: int = 0,
        scale: float = 1.0,
        noise: bool = True,
        out: Any = None,
        demean: bool = False,
        cumulative: bool = False,
        shift: Any = None,
        check_finite: bool = True,
    ) -> np.ndarray:
        """Fused sampling and decode: z drawn as :func:`sample_latent` does
        (same seed, tag and scenario indices, so the same z), decoded in-block."""
        # Validate exactly as sample_latent does, without running it.
        probe = _LatentArgs.check(mu, logvar, n, seed, index, offset, scale, check_finite)
        if probe.device != "cpu":
            raise NativeInputError("the native decoder runs on the CPU: pass numpy arrays")
        if probe.d != self.latent_dim:
            raise NativeInputError(f"mu must have {self.latent_dim} columns, got {probe.d}")
        res = self._out(out, probe.n)
        idx = _numpy_view(index) if index is not None else np.empty(0, dtype=np.int64)
        self._impl.sample(
            res.reshape(probe.n, self.out_dim), probe.mu, probe.logvar, idx, _MODES[probe.mode],
            probe.n, probe.seed, probe.offset, probe.scale, bool(noise), bool(demean),
            bool(cumulative), self._shift(shift), self.num_threads,
        )  # fmt: skip
        return res


def rollout_noise(
    n: int,
    horizon: int,
    assets: int,
    latent: int,
    *,
    seed: int,
    offset: int = 0,
    drift: bool = False,
    device: str = "cpu",
):
    """The noise the native rollout makes inside, written out: eps [n,
    horizon, assets] (day t from stream ``TAG_STEP + t``) and, with
    ``drift``, eta [n, horizon, latent] (``TAG_DRIFT + t``; the last day's is
    drawn but never used). For the torch reference rollout and its tests."""
    horizon = _as_int("horizon", horizon, 1, MAX_HORIZON)
    kw = dict(seed=seed, offset=offset, device=device)
    eps = [normals(n, assets, tag=TAG_STEP + t, **kw) for t in range(horizon)]
    eta = [normals(n, latent, tag=TAG_DRIFT + t, **kw) for t in range(horizon)] if drift else None
    if device == "cpu":
        return np.stack(eps, 1), (np.stack(eta, 1) if drift else None)
    torch = _torch()
    return torch.stack(eps, 1), (torch.stack(eta, 1) if drift else None)


_GRU_ARRAYS = ("w0", "b0", "w_x", "w_z", "b_i", "w_h", "b_h", "w_o", "b_o")


def _check_gru_weights(weights: Any) -> dict[str, np.ndarray]:
    """The arrays of a RecurrentWeights, checked: float32 numpy, C-contiguous,
    finite, shapes chained from (latent, hidden, assets)."""
    L = _as_int("weights.latent_dim", weights.latent_dim, 1, 1 << 16)
    H = _as_int("weights.hidden", weights.hidden, 1, 4096)
    A = _as_int("weights.n_assets", weights.n_assets, 1, 1 << 12)
    shapes = {
        "w0": (L, H), "b0": (H,), "w_x": (2 * A, 3 * H), "w_z": (L, 3 * H), "b_i": (3 * H,),
        "w_h": (H, 3 * H), "b_h": (3 * H,), "w_o": (H, 2 * A), "b_o": (2 * A,),
    }  # fmt: skip
    out = {}
    for name in _GRU_ARRAYS:
        x = getattr(weights, name, None)
        _check_array(f"weights.{name}", x, "float32", (len(shapes[name]),))
        if _is_tensor(x):
            raise NativeInputError(f"weights.{name} must be a numpy array")
        if tuple(x.shape) != shapes[name]:
            raise NativeInputError(
                f"weights.{name} must be {_shape_str(shapes[name])} for latent {L}, hidden {H}, "
                f"{A} assets; got {_shape_str(x.shape)}"
            )
        if not np.isfinite(x).all():
            raise NativeInputError(f"weights.{name} has NaN or inf")
        out[name] = x
    return out


def check_phi(phi: Any) -> float:
    """The latent AR(1) coefficient: a real number in (0, 1]."""
    if isinstance(phi, bool):
        raise NativeInputError("phi must be a real number, got a bool")
    try:
        f = float(phi)
    except (TypeError, ValueError):
        raise NativeInputError(f"phi must be a real number, got {type(phi).__name__}") from None
    if not (0.0 < f <= 1.0):
        raise NativeInputError(f"phi must be in (0, 1], got {f}")
    return f


class NativeRollout:
    """The recurrent decoder packed once for the native CPU rollout, then run
    on blocks of scenarios: every day of a path in one call, the GRU state
    kept in cache, z drawn in-kernel (``sample``) or given (``rollout``).

    ``weights`` is a :class:`stressvae.model.RecurrentWeights`
    (``model.export_decoder()`` of a ``decoder="gru"`` model). Output: float32
    ``[n, horizon, assets]`` daily log returns in data units (or log prices
    with ``cumulative=True``). The noise of day t of scenario ``offset + i``
    is Philox stream ``TAG_STEP + t`` (and ``TAG_DRIFT + t`` for the latent
    drift with ``phi < 1``): a path depends on (weights, its latent draw,
    seed, its index) only, and a longer horizon extends a shorter one.
    """

    def __init__(self, weights: Any, *, isa: str = "auto", num_threads: int | None = None):
        arrays = _check_gru_weights(weights)
        self.latent_dim = int(weights.latent_dim)
        self.hidden = int(weights.hidden)
        self.n_assets = int(weights.n_assets)
        self.window = _as_int("weights.window", weights.window, 1, MAX_HORIZON)
        if isa not in ISA_LEVELS:
            raise NativeInputError(f"isa must be one of {ISA_LEVELS}, got {isa!r}")
        self.num_threads = (
            default_threads()
            if num_threads is None
            else _as_int("num_threads", num_threads, 1, 4096)
        )
        mean = np.ascontiguousarray(weights.scaler_mean, dtype=np.float32).reshape(-1)
        std = np.ascontiguousarray(weights.scaler_std, dtype=np.float32).reshape(-1)
        if mean.shape != (self.n_assets,) or std.shape != (self.n_assets,):
            raise NativeInputError(f"scaler mean and std must be [{self.n_assets}]")
        if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
            raise NativeInputError("scaler std must be finite and > 0, mean finite")
        lo, hi = float(weights.log_scale_min), float(weights.log_scale_max)
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            raise NativeInputError(
                f"log-scale bounds must be finite with min < max, got {lo}, {hi}"
            )
        self.log_scale_bounds = (lo, hi)
        self._impl = _core.Rollout(*(arrays[k] for k in _GRU_ARRAYS), mean, std, lo, hi, isa)

    @property
    def isa(self) -> str:
        return str(self._impl.isa)

    def _out(self, out: Any, n: int, horizon: int) -> np.ndarray:
        return _host_out(out, (n, horizon, self.n_assets), "rollout")

    def _shift(self, shift: Any) -> np.ndarray | None:
        return _check_shift(shift, self.n_assets)

    def rollout(
        self,
        z: Any,
        horizon: int,
        *,
        seed: int,
        offset: int = 0,
        noise: bool = True,
        phi: float = 1.0,
        out: Any = None,
        demean: bool = False,
        cumulative: bool = False,
        shift: Any = None,
    ) -> np.ndarray:
        """z_0 float32 [n, latent] -> paths float32 [n, horizon, assets]."""
        _check_array("z", z, "float32", (2,))
        z = _numpy_view(z)
        if z.shape[1] != self.latent_dim:
            raise NativeInputError(f"z must be [n, {self.latent_dim}], got {_shape_str(z.shape)}")
        _all_finite("z", z)
        horizon = _as_int("horizon", horizon, 1, MAX_HORIZON)
        seed = _as_int("seed", seed, 0, _U64 - 1)
        offset = _as_int("offset", offset, 0, _U64 - 1)
        phi = check_phi(phi)
        n = int(z.shape[0])
        res = self._out(out, n, horizon)
        empty = np.empty((0, self.latent_dim), np.float32)
        self._impl.run(
            res, z, empty, empty, np.empty(0, np.int64), 0, n, horizon, seed, offset, 1.0,
            bool(noise), bool(demean), bool(cumulative), self._shift(shift), phi, self.num_threads,
        )  # fmt: skip
        return res

    def sample(
        self,
        mu: Any,
        logvar: Any,
        n: int | None = None,
        *,
        horizon: int,
        seed: int,
        index: Any = None,
        offset: int = 0,
        scale: float = 1.0,
        noise: bool = True,
        phi: float = 1.0,
        out: Any = None,
        demean: bool = False,
        cumulative: bool = False,
        shift: Any = None,
        check_finite: bool = True,
    ) -> np.ndarray:
        """Fused: z_0 drawn as :func:`sample_latent` draws it (same seed, tag
        and scenario indices), then the rollout, in one call."""
        probe = _LatentArgs.check(mu, logvar, n, seed, index, offset, scale, check_finite)
        if probe.device != "cpu":
            raise NativeInputError("the native rollout runs on the CPU: pass numpy arrays")
        if probe.d != self.latent_dim:
            raise NativeInputError(f"mu must have {self.latent_dim} columns, got {probe.d}")
        horizon = _as_int("horizon", horizon, 1, MAX_HORIZON)
        phi = check_phi(phi)
        res = self._out(out, probe.n, horizon)
        idx = _numpy_view(index) if index is not None else np.empty(0, dtype=np.int64)
        self._impl.run(
            res, None, probe.mu, probe.logvar, idx, _MODES[probe.mode], probe.n, horizon,
            probe.seed, probe.offset, probe.scale, bool(noise), bool(demean), bool(cumulative),
            self._shift(shift), phi, self.num_threads,
        )  # fmt: skip
        return res


class _LatentArgs:
    """The validated arguments of a latent draw (shared by sample_latent and
    the fused decoder)."""

    __slots__ = ("d", "device", "k", "logvar", "mode", "mu", "n", "offset", "scale", "seed")

    @classmethod
    def check(cls, mu, logvar, n, seed, index, offset, scale, check_finite) -> _LatentArgs:
        _check_array("mu", mu, "float32", (1, 2))
        _check_array("logvar", logvar, "float32", (1, 2))
        if tuple(mu.shape) != tuple(logvar.shape):
            got, want = _shape_str(logvar.shape), _shape_str(mu.shape)
            raise NativeInputError(f"logvar must have mu's shape {want}, got {got}")
        self = cls()
        self.d = int(mu.shape[-1])
        if self.d < 1:
            raise NativeInputError("mu must have at least one column (latent dimension)")
        self.k = 1 if len(mu.shape) == 1 else int(mu.shape[0])
        if self.k < 1:
            raise NativeInputError("mu must have at least one row")
        if n is not None:
            n = _as_int("n", n, 0, (1 << 63) - 1)
        if index is not None:
            _check_array("index", index, "int64", (1,))
            if len(mu.shape) != 2:
                raise NativeInputError(
                    f"with index, mu must be 2-D [k, d], got {_shape_str(mu.shape)}"
                )
            rows = int(index.shape[0])
            if n is not None and n != rows:
                raise NativeInputError(f"n={n} but index has {rows} entries; they must agree")
            n, self.mode = rows, "table"
        elif len(mu.shape) == 1 or (n is not None and self.k == 1):
            if n is None:
                raise NativeInputError(
                    "n is required when mu is a single row (drawing from one point)"
                )
            self.mode = "prior"
        else:
            if n is not None and n != self.k:
                raise NativeInputError(
                    f"n={n} but mu has {self.k} rows: give one row (prior), n rows (one draw each) "
                    "or an index into the rows (table)"
                )
            n, self.mode = self.k, "rows"
        self.n = n
        self.seed = _as_int("seed", seed, 0, _U64 - 1)
        self.offset = _as_int("offset", offset, 0, _U64 - 1)
        if self.offset + n > _U64:
            raise NativeInputError(f"offset + n must be <= 2**64, got offset={self.offset}, n={n}")
        self.scale = _as_scale(scale)
        self.device = _device_of(mu)
        for name, x in (("logvar", logvar), ("index", index)):
            if x is not None and _device_of(x) != self.device:
                raise NativeInputError(
                    f"{name} is on {_device_of(x)} but mu is on {self.device}; use one device"
                )
        if check_finite:
            _all_finite("mu", mu)
            _all_finite("logvar", logvar)
        if self.mode == "table":
            _index_range(index, self.k)
        self.mu = _numpy_view(mu).reshape(-1, self.d) if self.device == "cpu" else mu
        self.logvar = _numpy_view(logvar).reshape(-1, self.d) if self.device == "cpu" else logvar
        return self


# ------------------------------------------------------------- CUDA decoder
_DECODE_CHECKED: set[int] = set()


def _round4(x: int) -> int:
    return (int(x) + 3) // 4 * 4


class CudaDecoder:
    """The decoder on a GPU: fused latent sampling, MLP and epilogue in one
    kernel, exact float32, on the caller's current stream.

    Takes decoders whose latent and hidden widths are at most 256 with at
    most 8 layers (the activations of 64 scenarios stay in shared memory);
    otherwise the constructor raises a NativeInputError that says so, and the
    ScenarioGenerator falls back to the torch decoder with a warning. The
    first use on a device checks the kernel against the CPU decoder (parity
    within float32 tolerance) and raises a RuntimeError on a mismatch. Inputs
    and outputs are torch tensors on the device.
    """

    def __init__(self, weights: Any, device: str = "cuda"):
        import torch

        self._cpu = NativeDecoder(weights)  # validates every array; the self-check's reference
        if _cuda is None:
            raise RuntimeError(f"stressvae._cuda is not built ({_CUDA_IMPORT_ERROR})")
        dev = torch.device(device)
        if dev.type != "cuda":
            raise NativeInputError(f"device must be a CUDA device, got {device!r}")
        self.index = dev.index if dev.index is not None else torch.cuda.current_device()
        self.device = torch.device("cuda", self.index)
        _cuda_ready(self.index)
        c = self._cpu
        self.window, self.n_assets, self.latent_dim = c.window, c.n_assets, c.latent_dim
        self.gaussian, self.out_dim = c.gaussian, c.out_dim
        max_w, max_l = int(_cuda.MAX_WIDTH), int(_cuda.MAX_LAYERS)
        widths = [self.latent_dim] + [int(w.shape[1]) for w, _, _ in c.layers[:-1]]
        if max(widths) > max_w or len(c.layers) > max_l:
            raise NativeInputError(
                f"the fused CUDA decoder takes latent and hidden widths up to {max_w} and at most "
                f"{max_l} layers; this decoder has widths {widths} and {len(c.layers)} layers"
            )
        self.width = _round4(max(widths))
        codes = {"silu": 1, "relu": 2, "tanh": 3, "gelu": 4, None: 0}
        self._tensors, self._layers = [], []
        for w, b, act in c.layers[:-1]:
            n_pad = _round4(w.shape[1])
            wp = np.zeros((w.shape[0], n_pad), np.float32)
            wp[:, : w.shape[1]] = w
            bp = np.zeros(n_pad, np.float32)
            bp[: b.shape[0]] = b
            self._add_layer(wp, bp, codes[act], torch)
        w, b, _ = c.layers[-1]
        d, groups = self.out_dim, (self.out_dim + 3) // 4
        per = 8 if self.gaussian else 4
        wp = np.zeros((w.shape[0], per * groups), np.float32)
        bp = np.zeros(per * groups, np.float32)
        for j in range(d):
            g, q = divmod(j, 4)
            wp[:, g * per + q], bp[g * per + q] = w[:, j], b[j]
            if self.gaussian:
                wp[:, g * per + 4 + q], bp[g * per + 4 + q] = w[:, d + j], b[d + j]
        self._add_layer(wp, bp, 0, torch)
        mean, std = weights.scaler_mean, weights.scaler_std
        self._std_j = torch.as_tensor(
            np.tile(np.asarray(std, np.float32), self.window), device=self.device
        )
        self._mean_j = np.tile(np.asarray(mean, np.float32), self.window)
        self._ls = c.log_scale_bounds

    def _add_layer(self, wp: np.ndarray, bp: np.ndarray, act: int, torch) -> None:
        wt = torch.as_tensor(wp, device=self.device).contiguous()
        bt = torch.as_tensor(bp, device=self.device).contiguous()
        self._tensors += [wt, bt]
        self._layers.append((wt.data_ptr(), bt.data_ptr(), int(wp.shape[0]), int(wp.shape[1]), act))

    def _launch(self, out, n, latent, seed, offset, noise, demean, cumulative, shift) -> None:
        import torch

        mean_j = (
            self._mean_j
            if shift is None
            else self._mean_j + np.tile(self._cpu._shift(shift), self.window)
        )
        mean_t = torch.as_tensor(mean_j, device=self.device)
        z, mu, lv, idx, k, mode, scale = latent
        with torch.cuda.device(self.device):
            stream = torch.cuda.current_stream(self.device).cuda_stream
            _cuda.decode(
                self._layers, self.latent_dim, self.out_dim, self.n_assets, self.gaussian,
                self._std_j.data_ptr(), mean_t.data_ptr(), *self._ls, self.width,
                z, mu, lv, idx, k, mode, scale, out.data_ptr(), n, seed, offset,
                bool(noise), bool(demean), bool(cumulative), stream,
            )  # fmt: skip
        self._keep = mean_t  # alive until the next launch on this stream

    def _out(self, out: Any, n: int):
        return _device_out(out, (n, self.window, self.n_assets), self.device)

    def _tensor_on_device(self, name: str, x: Any, dtype: str, ndims) -> None:
        _check_array(name, x, dtype, ndims)
        if not _is_tensor(x) or x.device != self.device:
            raise NativeInputError(f"{name} must be a tensor on {self.device}")

    def decode(
        self, z, *, seed, offset=0, noise=True, out=None, demean=False, cumulative=False, shift=None
    ):
        """z float32 tensor [n, latent] on the device -> [n, window, assets]."""
        self._tensor_on_device("z", z, "float32", (2,))
        if z.shape[1] != self.latent_dim:
            raise NativeInputError(f"z must be [n, {self.latent_dim}], got {_shape_str(z.shape)}")
        _all_finite("z", z)
        seed = _as_int("seed", seed, 0, _U64 - 1)
        offset = _as_int("offset", offset, 0, _U64 - 1)
        n = int(z.shape[0])
        self._self_check()
        res = self._out(out, n)
        self._launch(
            res,
            n,
            (z.data_ptr(), 0, 0, 0, 1, 0, 1.0),
            seed,
            offset,
            noise,
            demean,
            cumulative,
            shift,
        )
        return res

    def sample(
        self,
        mu,
        logvar,
        n=None,
        *,
        seed,
        index=None,
        offset=0,
        scale=1.0,
        noise=True,
        out=None,
        demean=False,
        cumulative=False,
        shift=None,
        check_finite=True,
    ):
        """Fused sampling and decode on the device; the same z as sample_latent."""
        for name, x in (("mu", mu), ("logvar", logvar)):
            self._tensor_on_device(name, x, "float32", (1, 2))
        if index is not None:
            self._tensor_on_device("index", index, "int64", (1,))
        a = _LatentArgs.check(mu, logvar, n, seed, index, offset, scale, check_finite)
        if a.d != self.latent_dim:
            raise NativeInputError(f"mu must have {self.latent_dim} columns, got {a.d}")
        self._self_check()
        res = self._out(out, a.n)
        latent = (0, mu.data_ptr(), logvar.data_ptr(), index.data_ptr() if index is not None else 0,
                  a.k, _MODES[a.mode], a.scale)  # fmt: skip
        self._launch(res, a.n, latent, a.seed, a.offset, noise, demean, cumulative, shift)
        return res

    def _self_check(self) -> None:
        """Once per device: the kernel against the CPU decoder, both latent
        sources, parity within rtol 1e-5 + atol 1e-5 * max|ref| (float32)."""
        if self.index in _DECODE_CHECKED:
            return
        import torch

        rng = np.random.default_rng(20261121)
        n = 257
        z = rng.normal(size=(n, self.latent_dim)).astype(np.float32)
        mu = rng.normal(size=(3, self.latent_dim)).astype(np.float32)
        lv = rng.uniform(-2, 0.5, (3, self.latent_dim)).astype(np.float32)
        idx = rng.integers(0, 3, n).astype(np.int64)
        seed, offset = 0xC0FFEE, (1 << 32) - 100
        want = [
            self._cpu.decode(z, seed=seed, offset=offset),
            self._cpu.sample(mu, lv, seed=seed, index=idx, offset=offset, scale=0.7),
        ]
        _DECODE_CHECKED.add(self.index)  # so the calls below run the kernel
        try:
            got = [
                self.decode(torch.from_numpy(z).to(self.device), seed=seed, offset=offset),
                self.sample(
                    torch.from_numpy(mu).to(self.device), torch.from_numpy(lv).to(self.device),
                    seed=seed, index=torch.from_numpy(idx).to(self.device), offset=offset,
                    scale=0.7,
                ),
            ]  # fmt: skip
            for name, g, w in zip(("decode(z)", "fused sample"), got, want, strict=True):
                g = g.cpu().numpy()
                err = np.abs(g.astype(np.float64) - w)
                tol = 1e-5 * np.abs(w) + 1e-5 * np.abs(w).max()
                if not np.all(err <= tol):
                    raise RuntimeError(
                        f"stressvae CUDA decoder self-check failed on cuda:{self.index} ({name}): "
                        f"{int(np.sum(err > tol))} of {err.size} values differ from the CPU "
                        f"decoder beyond float32 tolerance (max abs diff {err.max():.3g}); "
                        "not using it"
                    )
        except BaseException:
            _DECODE_CHECKED.discard(self.index)
            raise


# ------------------------------------------------------------- CUDA rollout
_ROLLOUT_CHECKED: set[tuple[int, int, int, int]] = set()


class CudaRollout:
    """The recurrent (GRU) decoder's rollout on a GPU: the latent draw, every
    day's GRU step, head, noise and unscaling of a path in one kernel, on the
    caller's current stream; the twin of :class:`NativeRollout`.

    The noise is the CPU's to the bit (the same Philox streams); the GRU
    arithmetic follows the CPU's FMA kernels operation for operation, and is
    checked against them within float32 tolerance. The kernel keeps the
    recurrent weights in shared memory: it takes hidden <= 128 when they fit
    the device's shared memory per block; otherwise the constructor raises a
    NativeInputError that says which limit, and the ScenarioGenerator falls
    back to the torch rollout with a warning. The first use of a model shape
    on a device checks the kernel against the CPU rollout and raises a
    RuntimeError on a mismatch. Inputs and outputs are torch tensors on the
    device.
    """

    def __init__(self, weights: Any, device: str = "cuda"):
        import torch

        self._cpu = NativeRollout(weights)  # validates every array; the self-check's reference
        if _cuda is None:
            raise RuntimeError(f"stressvae._cuda is not built ({_CUDA_IMPORT_ERROR})")
        if not hasattr(_cuda, "rollout"):
            raise NativeInputError(
                "the installed stressvae._cuda predates the fused rollout; rebuild it "
                "(pip install --no-build-isolation -e .)"
            )
        dev = torch.device(device)
        if dev.type != "cuda":
            raise NativeInputError(f"device must be a CUDA device, got {device!r}")
        self.index = dev.index if dev.index is not None else torch.cuda.current_device()
        self.device = torch.device("cuda", self.index)
        _cuda_ready(self.index)
        c = self._cpu
        self.latent_dim, self.hidden, self.n_assets = c.latent_dim, c.hidden, c.n_assets
        self.window = c.window
        L, H, A = self.latent_dim, self.hidden, self.n_assets
        max_h = int(_cuda.ROLLOUT_MAX_HIDDEN)
        if self.hidden > max_h:
            raise NativeInputError(
                f"the fused CUDA rollout takes hidden <= {max_h}; this model has hidden={H}"
            )
        plan = _cuda.rollout_plan(L, H, A, self.index)
        if plan["warps"] == 0:
            raise NativeInputError(
                f"the fused CUDA rollout needs {plan['smem_min']} bytes of shared memory per "
                f"block for hidden={H}, latent={L}, {A} assets; cuda:{self.index} allows "
                f"{plan['smem_limit']}"
            )
        hp, hk, image_floats = _cuda.rollout_shape(H, A)
        packed = self._pack(_check_gru_weights(weights), L, H, A, hp, hk)
        if packed[0].size != image_floats:
            raise RuntimeError(
                f"stressvae CUDA rollout: packed {packed[0].size} floats of weights, the kernel "
                f"expects {image_floats}; the Python and CUDA layouts disagree"
            )
        self._image, self._w0, self._b0, self._wz = (
            torch.as_tensor(x, device=self.device) for x in packed
        )
        self._mean = np.ascontiguousarray(weights.scaler_mean, dtype=np.float32).reshape(-1)
        self._std = np.ascontiguousarray(weights.scaler_std, dtype=np.float32).reshape(-1)
        self._scaler = torch.as_tensor(np.concatenate([self._mean, self._std]), device=self.device)
        self._ls = c.log_scale_bounds

    @staticmethod
    def _pack(
        arrays: dict[str, np.ndarray], L: int, H: int, A: int, hp: int, hk: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The kernel's layout (csrc/cuda/rollout_cuda.h): the shared-memory
        image (wh, wx, bi, bhn, wo, bo), then w0, b0 and wz; zero padding."""
        f32 = np.float32

        def gates(w: np.ndarray, rows: int) -> np.ndarray:  # [k, 3H] -> [rows, 3, hp]
            out = np.zeros((rows, 3, hp), f32)
            out[: w.shape[0], :, :H] = w.reshape(w.shape[0], 3, H)
            return out

        b_i, b_h = arrays["b_i"].reshape(3, H), arrays["b_h"].reshape(3, H)
        bi = np.zeros((3, hp), f32)
        bi[:2, :H] = b_i[:2] + b_h[:2]  # float32 sums, as the CPU packing
        bi[2, :H] = b_i[2]
        bhn = np.zeros(hp, f32)
        bhn[:H] = b_h[2]
        wo = np.zeros((hk, 2 * A), f32)
        wo[:H] = arrays["w_o"]
        bo = np.zeros(_round4(2 * A), f32)
        bo[: 2 * A] = arrays["b_o"]
        parts = (gates(arrays["w_h"], hk), gates(arrays["w_x"], 2 * A), bi, bhn, wo, bo)
        image = np.concatenate([p.ravel() for p in parts])
        w0 = np.zeros((L, hp), f32)
        w0[:, :H] = arrays["w0"]
        b0 = np.zeros(hp, f32)
        b0[:H] = arrays["b0"]
        return image, w0, b0, gates(arrays["w_z"], L)

    def _launch(
        self, out, n, horizon, latent, seed, offset, noise, phi, demean, cumulative, shift
    ) -> None:
        import torch

        if shift is None:
            scaler = self._scaler
        else:
            s = self._cpu._shift(shift)  # float32 [A], checked
            both = np.concatenate([self._mean + s, self._std])
            scaler = torch.as_tensor(both, device=self.device)
        z, mu, lv, idx, k, mode, scale = latent
        with torch.cuda.device(self.device):
            stream = torch.cuda.current_stream(self.device).cuda_stream
            _cuda.rollout(
                self._image.data_ptr(), self._w0.data_ptr(), self._b0.data_ptr(),
                self._wz.data_ptr(), scaler.data_ptr(), self.latent_dim, self.hidden,
                self.n_assets, *self._ls, z, mu, lv, idx, k, mode, scale, out.data_ptr(), n,
                horizon, seed, offset, bool(noise), phi, bool(demean), bool(cumulative), stream,
            )  # fmt: skip
        self._keep = scaler  # alive until the next launch on this stream

    def _out(self, out: Any, n: int, horizon: int):
        return _device_out(out, (n, horizon, self.n_assets), self.device)

    def _tensor_on_device(self, name: str, x: Any, dtype: str, ndims) -> None:
        _check_array(name, x, dtype, ndims)
        if not _is_tensor(x) or x.device != self.device:
            raise NativeInputError(f"{name} must be a tensor on {self.device}")

    def rollout(
        self,
        z,
        horizon,
        *,
        seed,
        offset=0,
        noise=True,
        phi=1.0,
        out=None,
        demean=False,
        cumulative=False,
        shift=None,
    ):
        """z_0 float32 tensor [n, latent] on the device -> paths [n, horizon, assets]."""
        self._tensor_on_device("z", z, "float32", (2,))
        if z.shape[1] != self.latent_dim:
            raise NativeInputError(f"z must be [n, {self.latent_dim}], got {_shape_str(z.shape)}")
        _all_finite("z", z)
        horizon = _as_int("horizon", horizon, 1, MAX_HORIZON)
        seed = _as_int("seed", seed, 0, _U64 - 1)
        offset = _as_int("offset", offset, 0, _U64 - 1)
        n = int(z.shape[0])
        if offset + n > _U64:
            raise NativeInputError(f"offset + n must be <= 2**64, got offset={offset}, n={n}")
        phi = check_phi(phi)
        self._self_check()
        res = self._out(out, n, horizon)
        latent = (z.data_ptr(), 0, 0, 0, 1, 0, 1.0)
        self._launch(res, n, horizon, latent, seed, offset, noise, phi, demean, cumulative, shift)
        return res

    def sample(
        self,
        mu,
        logvar,
        n=None,
        *,
        horizon,
        seed,
        index=None,
        offset=0,
        scale=1.0,
        noise=True,
        phi=1.0,
        out=None,
        demean=False,
        cumulative=False,
        shift=None,
        check_finite=True,
    ):
        """Fused on the device: z_0 drawn as :func:`sample_latent` draws it
        (same seed, tag and scenario indices), then the rollout."""
        for name, x in (("mu", mu), ("logvar", logvar)):
            self._tensor_on_device(name, x, "float32", (1, 2))
        if index is not None:
            self._tensor_on_device("index", index, "int64", (1,))
        a = _LatentArgs.check(mu, logvar, n, seed, index, offset, scale, check_finite)
        if a.d != self.latent_dim:
            raise NativeInputError(f"mu must have {self.latent_dim} columns, got {a.d}")
        horizon = _as_int("horizon", horizon, 1, MAX_HORIZON)
        phi = check_phi(phi)
        self._self_check()
        res = self._out(out, a.n, horizon)
        latent = (0, mu.data_ptr(), logvar.data_ptr(), index.data_ptr() if index is not None else 0,
                  a.k, _MODES[a.mode], a.scale)  # fmt: skip
        self._launch(
            res, a.n, horizon, latent, a.seed, a.offset, noise, phi, demean, cumulative, shift
        )
        return res

    def _self_check(self) -> None:
        """Once per device and model shape: the kernel against the CPU
        rollout, z given and drawn (table, latent drift, shift, demean and
        cumulative), within rtol 1e-5 + atol 1e-5 * max|ref| (float32)."""
        key = (self.index, self.latent_dim, self.hidden, self.n_assets)
        if key in _ROLLOUT_CHECKED:
            return
        import torch

        rng = np.random.default_rng(20261121)
        n, horizon, L = 257, 40, self.latent_dim
        z = rng.normal(size=(n, L)).astype(np.float32)
        mu = rng.normal(size=(3, L)).astype(np.float32)
        lv = rng.uniform(-2, 0.5, (3, L)).astype(np.float32)
        idx = rng.integers(0, 3, n).astype(np.int64)
        shift = rng.normal(0, 1e-3, self.n_assets).astype(np.float32)
        seed, offset = 0xC0FFEE, (1 << 32) - 100
        drawn = dict(horizon=horizon, seed=seed, offset=offset, scale=0.7, phi=0.9, shift=shift,
                     demean=True, cumulative=True)  # fmt: skip
        want = [
            self._cpu.rollout(z, horizon, seed=seed, offset=offset),
            self._cpu.sample(mu, lv, index=idx, **drawn),
        ]
        _ROLLOUT_CHECKED.add(key)  # so the calls below run the kernel
        try:
            dev = self.device
            got = [
                self.rollout(torch.from_numpy(z).to(dev), horizon, seed=seed, offset=offset),
                self.sample(
                    torch.from_numpy(mu).to(dev), torch.from_numpy(lv).to(dev),
                    index=torch.from_numpy(idx).to(dev), **drawn,
                ),
            ]  # fmt: skip
            for name, g, w in zip(("rollout(z)", "fused sample"), got, want, strict=True):
                g = g.cpu().numpy()
                err = np.abs(g.astype(np.float64) - w)
                tol = 1e-5 * np.abs(w) + 1e-5 * np.abs(w).max()
                if not np.all(err <= tol):
                    raise RuntimeError(
                        f"stressvae CUDA rollout self-check failed on cuda:{self.index} ({name}): "
                        f"{int(np.sum(~(err <= tol)))} of {err.size} values differ from the CPU "
                        f"rollout beyond float32 tolerance (max abs diff {np.nanmax(err):.3g}); "
                        "not using it"
                    )
        except BaseException:
            _ROLLOUT_CHECKED.discard(key)
            raise

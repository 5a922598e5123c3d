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

__all__ = ["ISA_LEVELS", "NativeInputError", "native_info", "normals", "sample_latent"]

TAG_LATENT: int = int(_core.TAG_LATENT)
TAG_OBSERVATION: int = int(_core.TAG_OBSERVATION)
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
    if tuple(mu.shape) != tuple(logvar.shape):
        raise NativeInputError(
            f"logvar must have mu's shape {_shape_str(mu.shape)}, got {_shape_str(logvar.shape)}"
        )
    if _is_tensor(mu) != _is_tensor(logvar):
        raise NativeInputError("mu and logvar must both be numpy arrays or both torch tensors")
    d = int(mu.shape[-1])
    if d < 1:
        raise NativeInputError("mu must have at least one column (latent dimension)")
    k = 1 if len(mu.shape) == 1 else int(mu.shape[0])
    if k < 1:
        raise NativeInputError("mu must have at least one row")
    if n is not None:
        n = _as_int("n", n, 0, (1 << 63) - 1)

    if index is not None:
        _check_array("index", index, "int64", (1,))
        if _is_tensor(index) != _is_tensor(mu):
            raise NativeInputError("index must be of the same kind (numpy / torch) as mu")
        if len(mu.shape) != 2:
            raise NativeInputError(f"with index, mu must be 2-D [k, d], got {_shape_str(mu.shape)}")
        rows = int(index.shape[0])
        if n is not None and n != rows:
            raise NativeInputError(f"n={n} but index has {rows} entries; they must agree")
        n, mode = rows, "table"
    elif len(mu.shape) == 1 or (n is not None and k == 1):
        if n is None:
            raise NativeInputError("n is required when mu is a single row (drawing from one point)")
        mode = "prior"
    else:
        if n is not None and n != k:
            raise NativeInputError(
                f"n={n} but mu has {k} rows: give one row (prior), n rows (one draw each) "
                "or an index into the rows (table)"
            )
        n, mode = k, "rows"

    seed = _as_int("seed", seed, 0, _U64 - 1)
    offset = _as_int("offset", offset, 0, _U64 - 1)
    if offset + n > _U64:
        raise NativeInputError(f"offset + n must be <= 2**64, got offset={offset}, n={n}")
    scale = _as_scale(scale)
    tag = _as_int("tag", tag, 0, (1 << 32) - 1)
    if isa not in ISA_LEVELS:
        raise NativeInputError(f"isa must be one of {ISA_LEVELS}, got {isa!r}")
    threads = (
        default_threads() if num_threads is None else _as_int("num_threads", num_threads, 1, 4096)
    )

    dev = _device_of(mu)
    for name, x in (("logvar", logvar), ("index", index), ("out", out)):
        if x is not None and _device_of(x) != dev:
            raise NativeInputError(
                f"{name} is on {_device_of(x)} but mu is on {dev}; use one device"
            )
    if device not in (None, "auto"):
        if not isinstance(device, str) or device.split(":")[0] not in ("cpu", "cuda"):
            raise NativeInputError(
                f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {device!r}"
            )
        if device.split(":")[0] != dev.split(":")[0] or (":" in device and device != dev):
            raise NativeInputError(
                f"device={device!r} was asked but mu is on {dev}; move the inputs there first "
                "(nothing is moved between host and device implicitly)"
            )

    if check_finite:
        _all_finite("mu", mu)
        _all_finite("logvar", logvar)
    if mode == "table":
        _index_range(index, k)

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
        return _sample_cpu(
            mu, logvar, index, out, n, d, mode, seed, offset, scale, tag, threads, isa
        )
    return _sample_cuda(mu, logvar, index, out, n, d, k, mode, seed, offset, scale, tag)


def _may_share_memory(a: Any, b: Any) -> bool:
    if _is_tensor(a):
        if a.numel() == 0 or b.numel() == 0:
            return False
        a0, a1 = a.data_ptr(), a.data_ptr() + a.numel() * a.element_size()
        b0, b1 = b.data_ptr(), b.data_ptr() + b.numel() * b.element_size()
        return a0 < b1 and b0 < a1
    return bool(np.may_share_memory(a, b))


def _sample_cpu(mu, logvar, index, out, n, d, mode, seed, offset, scale, tag, threads, isa):
    torch_out = _is_tensor(mu)
    if out is None:
        if torch_out:
            out = _torch().empty((n, d), dtype=_torch().float32)
        else:
            out = np.empty((n, d), dtype=np.float32)
    z = _numpy_view(out)
    m = _numpy_view(mu).reshape(-1, d)
    lv = _numpy_view(logvar).reshape(-1, d)
    idx = _numpy_view(index) if index is not None else np.empty(0, dtype=np.int64)
    _core.sample(z, m, lv, idx, _MODES[mode], seed, offset, scale, tag, threads, isa)
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
) -> np.ndarray:
    """The standard normals the sampler uses: eps [n, d] float32 for scenarios
    offset .. offset + n - 1 in stream ``tag`` (CPU)."""
    n = _as_int("n", n, 0, (1 << 63) - 1)
    d = _as_int("d", d, 1, (1 << 31) - 1)
    seed = _as_int("seed", seed, 0, _U64 - 1)
    offset = _as_int("offset", offset, 0, _U64 - 1)
    if offset + n > _U64:
        raise NativeInputError(f"offset + n must be <= 2**64, got offset={offset}, n={n}")
    tag = _as_int("tag", tag, 0, (1 << 32) - 1)
    if isa not in ISA_LEVELS:
        raise NativeInputError(f"isa must be one of {ISA_LEVELS}, got {isa!r}")
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

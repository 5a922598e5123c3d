"""The checks every input of the native core passes before a pointer leaves
Python: type (numpy array or torch tensor), dtype, dimensions, C-contiguity,
device, finite values, integer ranges, output buffers. Each raises a
:class:`NativeInputError` that names the argument and says what was
expected."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from .._checks import as_float, as_int
from ._loading import LOADING_MAX, MAX_HORIZON, core, default_threads

ISA_LEVELS = ("auto", "baseline", "avx2", "avx512")
U64 = 1 << 64


class NativeInputError(ValueError):
    """An argument of a native call has the wrong type, dtype, shape, layout or value."""


# ------------------------------------------------------------ arrays
def torch_module():
    """torch if it is already imported (a tensor can exist only then), else None."""
    return sys.modules.get("torch")


def is_tensor(x: Any) -> bool:
    torch = torch_module()
    return torch is not None and isinstance(x, torch.Tensor)


def numpy_view(x: Any) -> np.ndarray:
    return x.detach().numpy() if is_tensor(x) else x


def shape_str(shape) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


def check_array(name: str, x: Any, dtype: str, ndims: tuple[int, ...]) -> None:
    """Type, dtype, dimensions and C-contiguity of a numpy array or torch tensor."""
    if is_tensor(x):
        torch = torch_module()
        want = torch.float32 if dtype == "float32" else torch.int64
        if x.dtype != want:
            raise NativeInputError(f"{name} must have dtype {dtype}, got {x.dtype}")
        if x.dim() not in ndims:
            raise NativeInputError(
                f"{name} must be {' or '.join(f'{k}-D' for k in ndims)}, got shape "
                f"{shape_str(x.shape)}"
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
        raise NativeInputError(f"{name} must be {dims}, got shape {shape_str(x.shape)}")
    if not x.flags.c_contiguous:
        raise NativeInputError(f"{name} must be C-contiguous; use np.ascontiguousarray({name})")
    if not x.flags.aligned:
        raise NativeInputError(f"{name} must be aligned to its dtype")


def check_weight(name: str, x: Any, ndim: int) -> np.ndarray:
    """A weight array: float32 numpy (not a tensor), C-contiguous, ``ndim``-D."""
    check_array(name, x, "float32", (ndim,))
    if is_tensor(x):
        raise NativeInputError(f"{name} must be a numpy array")
    return x


def device_of(x: Any) -> str:
    if is_tensor(x):
        return str(x.device) if x.device.type == "cuda" else "cpu"
    return "cpu"


def tensor_on_device(name: str, x: Any, dtype: str, ndims: tuple[int, ...], device: Any) -> None:
    """A torch tensor on ``device`` (a CUDA kernel's input), checked as check_array does."""
    check_array(name, x, dtype, ndims)
    if not is_tensor(x) or x.device != device:
        raise NativeInputError(f"{name} must be a tensor on {device}")


def all_finite(name: str, x: Any) -> None:
    if is_tensor(x) and x.device.type == "cuda":
        ok = bool(torch_module().isfinite(x).all().item())
    else:
        x = numpy_view(x)
        ok = bool(np.isfinite(x).all()) if x.size < 4096 else core.all_finite(x, default_threads())
    if not ok:
        raise NativeInputError(f"{name} contains NaN or inf")


def index_range(index: Any, k: int) -> None:
    if index.numel() if is_tensor(index) else index.size:
        lo, hi = int(index.min()), int(index.max())
        if lo < 0 or hi >= k:
            raise NativeInputError(
                f"index values must be in [0, {k}) (rows of mu), got min {lo}, max {hi}"
            )


def may_share_memory(a: Any, b: Any) -> bool:
    if is_tensor(a):
        if a.numel() == 0 or b.numel() == 0:
            return False
        a0, a1 = a.data_ptr(), a.data_ptr() + a.numel() * a.element_size()
        b0, b1 = b.data_ptr(), b.data_ptr() + b.numel() * b.element_size()
        return a0 < b1 and b0 < a1
    return bool(np.may_share_memory(a, b))


def check_z(z: Any, latent_dim: int, device: Any = None):
    """Given latents: float32 [n, latent_dim], finite; a numpy view on the CPU
    (``device`` None), a tensor on ``device`` otherwise."""
    if device is None:
        check_array("z", z, "float32", (2,))
        z = numpy_view(z)
    else:
        tensor_on_device("z", z, "float32", (2,), device)
    if z.shape[1] != latent_dim:
        raise NativeInputError(f"z must be [n, {latent_dim}], got {shape_str(z.shape)}")
    all_finite("z", z)
    return z


# ------------------------------------------------------------ outputs
def host_out(out: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    """The output array of a CPU kernel: a new one, or the caller's, checked
    (float32 numpy, C-contiguous, this shape, writeable)."""
    if out is None:
        return np.empty(shape, dtype=np.float32)
    check_array("out", out, "float32", (len(shape),))
    if is_tensor(out):
        raise NativeInputError(f"out must be a numpy array (the native {what} runs on the CPU)")
    if tuple(out.shape) != shape:
        raise NativeInputError(f"out must have shape {shape}, got {shape_str(out.shape)}")
    if not out.flags.writeable:
        raise NativeInputError("out must be writeable")
    return out


def device_out(out: Any, shape: tuple[int, ...], device: Any):
    """The output tensor of a CUDA kernel: a new one on ``device``, or the
    caller's, checked (float32, C-contiguous, this shape, that device)."""
    import torch

    if out is None:
        return torch.empty(shape, dtype=torch.float32, device=device)
    check_array("out", out, "float32", (len(shape),))
    if not is_tensor(out) or out.device != device or tuple(out.shape) != shape:
        raise NativeInputError(f"out must be a float32 tensor {shape} on {device}")
    return out


# ------------------------------------------------------------ numbers
def check_int(name: str, value: Any, lo: int, hi: int) -> int:
    """An integer in [lo, hi] (no bools, no floats)."""
    return as_int(name, value, lo, hi, error=NativeInputError)


def check_u64(name: str, value: Any) -> int:
    """A seed or a scenario offset: an integer in [0, 2**64)."""
    return as_int(name, value, 0, U64 - 1, error=NativeInputError)


def check_offset(offset: Any, n: int) -> int:
    """The first scenario index of n scenarios: an integer in [0, 2**64 - n]."""
    offset = check_u64("offset", offset)
    if offset + n > U64:
        raise NativeInputError(f"offset + n must be <= 2**64, got offset={offset}, n={n}")
    return offset


def check_horizon(horizon: Any) -> int:
    return as_int("horizon", horizon, 1, MAX_HORIZON, error=NativeInputError)


def check_threads(num_threads: Any) -> int:
    """Threads of a CPU kernel: all this process may use by default, else 1 to 4096."""
    if num_threads is None:
        return default_threads()
    return as_int("num_threads", num_threads, 1, 4096, error=NativeInputError)


def check_isa(isa: Any) -> str:
    if isa not in ISA_LEVELS:
        raise NativeInputError(f"isa must be one of {ISA_LEVELS}, got {isa!r}")
    return isa


def check_scale(value: Any) -> float:
    """The latent spread: a finite number >= 0 that fits in float32."""
    s = as_float("scale", value, 0.0, error=NativeInputError)
    if s != 0 and abs(s) > np.finfo(np.float32).max:
        raise NativeInputError(f"scale must fit in float32, got {s}")
    return s


# The largest |eps| the sampler's normal transform gives: Box-Muller's radius
# sqrt(-2 ln u) at the smallest uniform, 2**-24, is 5.7666; 5.77 covers the
# float32 rounding of log, sqrt and the product.
EPS_MAX = 5.77
LOGVAR_CLAMP = (-172.0, 176.0)  # the kernels clamp logvar to this before exp(logvar / 2)
FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_draw_range(mu: Any, logvar: Any, scale: float) -> None:
    """Every draw ``mu + exp(logvar / 2) * scale * eps`` fits in float32 for
    every |eps| <= EPS_MAX; else NativeInputError naming logvar and scale.
    ``mu`` and ``logvar`` are numpy arrays or tensors of the same shape;
    NaN values pass (check_finite is the NaN check)."""

    def bound(m, lv):  # float64 |mu| + std * scale * EPS_MAX, elementwise or of maxima
        return m + np.exp(np.clip(lv, *LOGVAR_CLAMP) / 2) * scale * EPS_MAX

    if (mu.numel() if is_tensor(mu) else mu.size) == 0:
        return
    # max |mu| without a copy of mu; Python floats (one sync for CUDA tensors)
    m, lv = max(float(mu.max()), -float(mu.min())), float(logvar.max())
    if not bound(m, lv) > FLOAT32_MAX:  # the largest |mu| and std together fit (or NaN)
        return
    m = np.abs(numpy_view(mu.cpu() if is_tensor(mu) else mu).astype(np.float64))
    lv = numpy_view(logvar.cpu() if is_tensor(logvar) else logvar).astype(np.float64)
    b = bound(m, lv)
    if (b > FLOAT32_MAX).any():
        i = np.unravel_index(int(np.nanargmax(b)), b.shape)
        raise NativeInputError(
            f"logvar and scale too large: mu + exp(logvar / 2) * scale * eps overflows float32 "
            f"for |eps| up to {EPS_MAX} (at mu={float(m[i]):.4g}, logvar={float(lv[i]):.4g}, "
            f"scale={scale:.4g}, position {tuple(int(j) for j in i)}); the std "
            f"exp(logvar / 2) * scale must stay below about {FLOAT32_MAX / EPS_MAX:.3g}"
        )


def check_phi(phi: Any) -> float:
    """The latent AR(1) coefficient: a real number in (0, 1]."""
    f = as_float("phi", phi, error=NativeInputError)
    if not (0.0 < f <= 1.0):
        raise NativeInputError(f"phi must be in (0, 1], got {f}")
    return f


def check_shift(shift: Any, n_assets: int) -> np.ndarray | None:
    """The drift shift of the unscaling: None, or float32 [assets], finite."""
    if shift is None:
        return None
    s = np.ascontiguousarray(shift, dtype=np.float32).reshape(-1)
    if s.shape != (n_assets,) or not np.isfinite(s).all():
        raise NativeInputError(f"shift must be {n_assets} finite numbers (one per asset)")
    return s


def check_factors(weights: Any, n_assets: int, gaussian: bool = True) -> tuple[int, float]:
    """The factor model of exported weights: ``factors`` k in [0, n_assets]
    (0 when the weights have no such field, as before the factor model), and
    the loadings' clamp ``loading_max`` (default LOADING_MAX), finite > 0.
    k > 0 needs the gaussian likelihood."""
    k = check_int("weights.factors", getattr(weights, "factors", 0) or 0, 0, n_assets)
    if k and not gaussian:
        raise NativeInputError(
            f"weights.factors={k} needs likelihood 'gaussian' (mse draws no noise)"
        )
    bmax = getattr(weights, "loading_max", LOADING_MAX)
    bmax = as_float("weights.loading_max", bmax, error=NativeInputError)
    if not (np.isfinite(bmax) and 0 < bmax <= FLOAT32_MAX):
        raise NativeInputError(f"weights.loading_max must be finite and > 0, got {bmax}")
    return k, bmax


def check_scaler(weights: Any, n_assets: int) -> tuple[np.ndarray, np.ndarray]:
    """The unscaling of exported weights: mean and std float32 [assets],
    finite, std > 0."""
    mean = np.ascontiguousarray(weights.scaler_mean, dtype=np.float32).reshape(-1)
    std = np.ascontiguousarray(weights.scaler_std, dtype=np.float32).reshape(-1)
    if mean.shape != (n_assets,) or std.shape != (n_assets,):
        raise NativeInputError(f"scaler mean and std must be [{n_assets}]")
    if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
        raise NativeInputError("scaler std must be finite and > 0, mean finite")
    return mean, std


def cuda_device(device: Any):
    """``device`` ("cuda", "cuda:N" or a torch.device) as torch.device("cuda", N),
    N the current CUDA device when not given."""
    import torch

    dev = torch.device(device)
    if dev.type != "cuda":
        raise NativeInputError(f"device must be a CUDA device, got {device!r}")
    return torch.device("cuda", dev.index if dev.index is not None else torch.cuda.current_device())

"""Latent draws and the standard normals behind them: :func:`sample_latent`,
:func:`normals`, :func:`rollout_noise`, the checked arguments of a draw
(:class:`LatentArgs`, shared with the fused decoder and rollout), and the
CUDA sampler's readiness check (built, usable, bit-equal to the CPU)."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import selfcheck
from ._loading import (
    TAG_DRIFT,
    TAG_FACTOR,
    TAG_FACTOR_STEP,
    TAG_LATENT,
    TAG_OBSERVATION,
    TAG_STEP,
    core,
    require_cuda,
)
from .checks import (
    NativeInputError,
    all_finite,
    check_array,
    check_draw_range,
    check_horizon,
    check_int,
    check_isa,
    check_offset,
    check_scale,
    check_threads,
    check_u64,
    device_of,
    host_out,
    index_range,
    is_tensor,
    may_share_memory,
    numpy_view,
    shape_str,
    tensor_on_device,
    torch_module,
)

MODES = {"prior": 0, "rows": 1, "table": 2}  # how mu/logvar rows map to output rows


class LatentArgs:
    """The validated arguments of a latent draw (shared by sample_latent and
    the fused decoder and rollout)."""

    __slots__ = ("d", "device", "k", "logvar", "mode", "mu", "n", "offset", "scale", "seed")

    @classmethod
    def check(cls, mu, logvar, n, seed, index, offset, scale, check_finite) -> LatentArgs:
        check_array("mu", mu, "float32", (1, 2))
        check_array("logvar", logvar, "float32", (1, 2))
        if tuple(mu.shape) != tuple(logvar.shape):
            got, want = shape_str(logvar.shape), shape_str(mu.shape)
            raise NativeInputError(f"logvar must have mu's shape {want}, got {got}")
        self = cls()
        self.d = int(mu.shape[-1])
        if self.d < 1:
            raise NativeInputError("mu must have at least one column (latent dimension)")
        self.k = 1 if len(mu.shape) == 1 else int(mu.shape[0])
        if self.k < 1:
            raise NativeInputError("mu must have at least one row")
        if n is not None:
            n = check_int("n", n, 0, (1 << 63) - 1)
        if index is not None:
            check_array("index", index, "int64", (1,))
            if len(mu.shape) != 2:
                raise NativeInputError(
                    f"with index, mu must be 2-D [k, d], got {shape_str(mu.shape)}"
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
        self.seed = check_u64("seed", seed)
        self.offset = check_offset(offset, n)
        self.scale = check_scale(scale)
        self.device = device_of(mu)
        for name, x in (("logvar", logvar), ("index", index)):
            if x is not None and device_of(x) != self.device:
                raise NativeInputError(
                    f"{name} is on {device_of(x)} but mu is on {self.device}; use one device"
                )
        if check_finite:
            all_finite("mu", mu)
            all_finite("logvar", logvar)
        if n:
            check_draw_range(mu, logvar, self.scale)
        if self.mode == "table":
            index_range(index, self.k)
        self.mu = numpy_view(mu).reshape(-1, self.d) if self.device == "cpu" else mu
        self.logvar = numpy_view(logvar).reshape(-1, self.d) if self.device == "cpu" else logvar
        return self


def host_index(index: Any) -> np.ndarray:
    """The int64 index a CPU kernel takes: the caller's, or empty (no table)."""
    return numpy_view(index) if index is not None else np.empty(0, dtype=np.int64)


def check_latent(
    latent_dim: int, device: Any, what: str, mu, logvar, n, seed, index, offset, scale,
    check_finite,
) -> LatentArgs:  # fmt: skip
    """The latent draw of a fused decoder or rollout taking ``latent_dim``
    columns, checked: numpy arrays for its CPU kernel (``device`` None),
    tensors on ``device`` for its CUDA kernel."""
    if device is not None:
        for name, x in (("mu", mu), ("logvar", logvar)):
            tensor_on_device(name, x, "float32", (1, 2), device)
        if index is not None:
            tensor_on_device("index", index, "int64", (1,), device)
    a = LatentArgs.check(mu, logvar, n, seed, index, offset, scale, check_finite)
    if device is None and a.device != "cpu":
        raise NativeInputError(f"the native {what} runs on the CPU: pass numpy arrays")
    if a.d != latent_dim:
        raise NativeInputError(f"mu must have {latent_dim} columns, got {a.d}")
    return a


def cuda_latent_given(z: Any) -> tuple:
    """The latent source of a CUDA decode or rollout (z, mu, logvar, index,
    k, mode, scale) for a given z tensor."""
    return (z.data_ptr(), 0, 0, 0, 1, 0, 1.0)


def cuda_latent_drawn(a: LatentArgs, index: Any) -> tuple:
    """The latent source of a CUDA decode or rollout for z drawn in-kernel."""
    idx = index.data_ptr() if index is not None else 0
    return (0, a.mu.data_ptr(), a.logvar.data_ptr(), idx, a.k, MODES[a.mode], a.scale)


# ------------------------------------------------------------- CUDA readiness
def _sampler_self_check(device_index: int) -> None:
    """Bit-for-bit agreement of the CUDA and CPU samplers."""
    cuda = require_cuda()
    torch = torch_module()
    rng = np.random.default_rng(20261121)
    k, n, d = 7, 1031, 19
    mu = rng.normal(size=(k, d)).astype(np.float32)
    lv = rng.uniform(-6, 3, size=(k, d)).astype(np.float32)
    idx = rng.integers(0, k, size=n).astype(np.int64)
    seed, offset = 0x0123456789ABCDEF, (1 << 32) - 500  # crosses a 32-bit word
    cpu = np.empty((n, d), np.float32)
    core.sample(cpu, mu, lv, idx, 2, seed, offset, 0.75, TAG_LATENT, 1, "auto")
    dev = torch.device("cuda", device_index)
    with torch.cuda.device(dev):
        gpu = torch.empty((n, d), dtype=torch.float32, device=dev)
        t_mu, t_lv, t_idx = (torch.from_numpy(a).to(dev) for a in (mu, lv, idx))
        stream = torch.cuda.current_stream(dev)
        cuda.sample(
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


def cuda_ready(device_index: int) -> None:
    """The CUDA module is built, the device usable, and (checked once per
    device) its sampler agrees with the CPU's to the bit; else RuntimeError."""
    count, why = require_cuda().device_count()
    if device_index >= count:
        raise RuntimeError(f"CUDA device {device_index} is not usable by stressvae._cuda: {why}")
    selfcheck.run_once(("sample", device_index), lambda: _sampler_self_check(device_index))


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
    Inputs whose draws could overflow float32 (``|mu| + std * scale * 5.77``
    above 3.4e38) are refused with :class:`NativeInputError`, so z is finite.

    Returns ``z`` float32 ``[n, d]``: a numpy array for numpy input, a tensor
    on the inputs' device for torch input (CUDA work goes on the current
    stream). ``out`` may be given to fill in place. ``check_finite=False``
    skips the scan of mu/logvar for NaN and inf (for arrays already checked).
    """
    check_array("mu", mu, "float32", (1, 2))
    check_array("logvar", logvar, "float32", (1, 2))
    if is_tensor(mu) != is_tensor(logvar):
        raise NativeInputError("mu and logvar must both be numpy arrays or both torch tensors")
    if index is not None and is_tensor(index) != is_tensor(mu):
        check_array("index", index, "int64", (1,))
        raise NativeInputError("index must be of the same kind (numpy / torch) as mu")
    tag = check_int("tag", tag, 0, (1 << 32) - 1)
    isa = check_isa(isa)
    threads = check_threads(num_threads)
    if device not in (None, "auto"):
        dev = device_of(mu)
        if not isinstance(device, str) or device.split(":")[0] not in ("cpu", "cuda"):
            raise NativeInputError(
                f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {device!r}"
            )
        if device.split(":")[0] != dev.split(":")[0] or (":" in device and device != dev):
            raise NativeInputError(
                f"device={device!r} was asked but mu is on {dev}; move the inputs there first "
                "(nothing is moved between host and device implicitly)"
            )
    a = LatentArgs.check(mu, logvar, n, seed, index, offset, scale, check_finite)
    if out is not None and device_of(out) != a.device:
        raise NativeInputError(
            f"out is on {device_of(out)} but mu is on {a.device}; use one device"
        )

    if out is not None:
        check_array("out", out, "float32", (2,))
        if tuple(out.shape) != (a.n, a.d):
            raise NativeInputError(
                f"out must have shape ({a.n}, {a.d}), got {shape_str(out.shape)}"
            )
        if is_tensor(out) != is_tensor(mu):
            raise NativeInputError("out must be of the same kind (numpy / torch) as mu")
        if not is_tensor(out) and not out.flags.writeable:
            raise NativeInputError("out must be writeable")
        for name, x in (("mu", mu), ("logvar", logvar), ("index", index)):
            if x is not None and may_share_memory(out, x):
                raise NativeInputError(f"out must not overlap {name}")

    if a.device == "cpu":
        return _sample_cpu(a, index, out, tag, threads, isa, torch_out=is_tensor(mu))
    return _sample_cuda(a, index, out, tag)


def _sample_cpu(a: LatentArgs, index, out, tag, threads, isa, torch_out: bool):
    if out is None:
        torch = torch_module()
        out = (
            torch.empty((a.n, a.d), dtype=torch.float32)
            if torch_out
            else np.empty((a.n, a.d), dtype=np.float32)
        )
    core.sample(
        numpy_view(out), a.mu, a.logvar, host_index(index), MODES[a.mode], a.seed, a.offset,
        a.scale, tag, threads, isa,
    )  # fmt: skip
    return out


def _sample_cuda(a: LatentArgs, index, out, tag):
    torch = torch_module()
    dev = a.mu.device
    cuda_ready(dev.index if dev.index is not None else torch.cuda.current_device())
    with torch.cuda.device(dev):
        if out is None:
            out = torch.empty((a.n, a.d), dtype=torch.float32, device=dev)
        stream = torch.cuda.current_stream(dev).cuda_stream
        require_cuda().sample(
            out.data_ptr(), a.mu.data_ptr(), a.logvar.data_ptr(),
            index.data_ptr() if index is not None else 0,
            a.n, a.d, a.k, MODES[a.mode], a.seed, a.offset, a.scale, tag, stream,
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
    n = check_int("n", n, 0, (1 << 63) - 1)
    d = check_int("d", d, 1, (1 << 31) - 1)
    seed = check_u64("seed", seed)
    offset = check_offset(offset, n)
    tag = check_int("tag", tag, 0, (1 << 32) - 1)
    isa = check_isa(isa)
    if not isinstance(device, str) or device.split(":")[0] not in ("cpu", "cuda"):
        raise NativeInputError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if device.startswith("cuda"):
        import torch

        dev = torch.device(device)
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        cuda_ready(index)
        with torch.cuda.device(index):
            res = torch.empty((n, d), dtype=torch.float32, device=dev)
            stream = torch.cuda.current_stream(index).cuda_stream
            require_cuda().normals(res.data_ptr(), n, d, seed, tag, offset, stream)
        return res
    threads = check_threads(num_threads)
    out = host_out(out, (n, d), "normals")
    core.normals(out, seed, tag, offset, threads, isa)
    return out


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
    factors: int = 0,
):
    """The noise the native rollout makes inside, written out: eps [n,
    horizon, assets] (day t from stream ``TAG_STEP + t``) and, with
    ``drift``, eta [n, horizon, latent] (``TAG_DRIFT + t``; the last day's is
    drawn but never used). With ``factors`` k > 0, eps is [n, horizon,
    assets + k]: each day's asset noise e, then its factors f (stream
    ``TAG_FACTOR_STEP + t``, element j), the torch reference's layout. For
    the torch reference rollout and its tests."""
    horizon = check_horizon(horizon)
    factors = check_int("factors", factors, 0, 1 << 12)
    kw = dict(seed=seed, offset=offset, device=device)
    eps = [normals(n, assets, tag=TAG_STEP + t, **kw) for t in range(horizon)]
    eta = [normals(n, latent, tag=TAG_DRIFT + t, **kw) for t in range(horizon)] if drift else None
    f = [normals(n, factors, tag=TAG_FACTOR_STEP + t, **kw) for t in range(horizon) if factors]
    if device == "cpu":
        e = np.stack(eps, 1)
        if factors:
            e = np.concatenate([e, np.stack(f, 1)], axis=2)
        return e, (np.stack(eta, 1) if drift else None)
    torch = torch_module()
    e = torch.stack(eps, 1)
    if factors:
        e = torch.cat([e, torch.stack(f, 1)], dim=2)
    return e, (torch.stack(eta, 1) if drift else None)


def decode_noise(
    n: int,
    window: int,
    assets: int,
    *,
    seed: int,
    offset: int = 0,
    factors: int = 0,
    device: str = "cpu",
):
    """The noise the native MLP decoder makes inside, written out: [n,
    window, assets + k], each day's asset noise e (element ``t * assets + a``
    of stream ``TAG_OBSERVATION``) then its k factors f (element ``t * k + j``
    of stream ``TAG_FACTOR``), the torch reference's layout. For the torch
    reference decoder and its tests."""
    window = check_horizon(window)
    assets = check_int("assets", assets, 1, 1 << 16)
    factors = check_int("factors", factors, 0, 1 << 12)
    kw = dict(seed=seed, offset=offset, device=device)
    e = normals(n, window * assets, tag=TAG_OBSERVATION, **kw).reshape(n, window, assets)
    if not factors:
        return e
    f = normals(n, window * factors, tag=TAG_FACTOR, **kw).reshape(n, window, factors)
    if device == "cpu":
        return np.concatenate([e, f], axis=2)
    return torch_module().cat([e, f], dim=2)

"""The recurrent (GRU) decoder's rollout, every day of a path in one call:
on the CPU (:class:`NativeRollout`) and on a GPU (:class:`CudaRollout`, its
twin, checked against it)."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import selfcheck
from ._loading import MAX_HORIZON, core, require_cuda
from .checks import (
    NativeInputError,
    check_factors,
    check_horizon,
    check_int,
    check_isa,
    check_offset,
    check_phi,
    check_scaler,
    check_shift,
    check_threads,
    check_u64,
    check_weight,
    check_z,
    cuda_device,
    device_out,
    host_out,
    shape_str,
)
from .latent import (
    MODES,
    check_latent,
    cuda_latent_drawn,
    cuda_latent_given,
    cuda_ready,
    host_index,
)

GRU_ARRAYS = ("w0", "b0", "w_x", "w_z", "b_i", "w_h", "b_h", "w_o", "b_o")


def check_gru_weights(weights: Any) -> dict[str, np.ndarray]:
    """The arrays of a RecurrentWeights, checked: float32 numpy, C-contiguous,
    finite, shapes chained from (latent, hidden, assets, factors)."""
    L = check_int("weights.latent_dim", weights.latent_dim, 1, 1 << 16)
    H = check_int("weights.hidden", weights.hidden, 1, 4096)
    A = check_int("weights.n_assets", weights.n_assets, 1, 1 << 12)
    C = 2 + check_factors(weights, A)[0]  # head channels: mean, log-scale, k loadings
    shapes = {
        "w0": (L, H), "b0": (H,), "w_x": (2 * A, 3 * H), "w_z": (L, 3 * H), "b_i": (3 * H,),
        "w_h": (H, 3 * H), "b_h": (3 * H,), "w_o": (H, C * A), "b_o": (C * A,),
    }  # fmt: skip
    out = {}
    for name in GRU_ARRAYS:
        x = check_weight(f"weights.{name}", getattr(weights, name, None), len(shapes[name]))
        if tuple(x.shape) != shapes[name]:
            raise NativeInputError(
                f"weights.{name} must be {shape_str(shapes[name])} for latent {L}, hidden {H}, "
                f"{A} assets; got {shape_str(x.shape)}"
            )
        if not np.isfinite(x).all():
            raise NativeInputError(f"weights.{name} has NaN or inf")
        out[name] = x
    return out


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
    seed, its index) only, and a longer horizon extends a shorter one. With
    ``weights.factors`` k > 0 the head gives (2 + k) blocks of ``assets``
    (means, raw log-scales, loadings 1..k clamped to +-``LOADING_MAX``) and
    day t's factor j is element j of stream ``TAG_FACTOR_STEP + t``.
    """

    def __init__(self, weights: Any, *, isa: str = "auto", num_threads: int | None = None):
        self.arrays = check_gru_weights(weights)
        self.factors, self.loading_max = check_factors(weights, int(weights.n_assets))
        self.latent_dim = int(weights.latent_dim)
        self.hidden = int(weights.hidden)
        self.n_assets = int(weights.n_assets)
        self.window = check_int("weights.window", weights.window, 1, MAX_HORIZON)
        isa = check_isa(isa)
        self.num_threads = check_threads(num_threads)
        mean, std = check_scaler(weights, self.n_assets)
        lo, hi = float(weights.log_scale_min), float(weights.log_scale_max)
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            raise NativeInputError(
                f"log-scale bounds must be finite with min < max, got {lo}, {hi}"
            )
        self.log_scale_bounds = (lo, hi)
        self._impl = core.Rollout(
            *(self.arrays[k] for k in GRU_ARRAYS), mean, std, lo, hi, isa, self.factors,
            self.loading_max,
        )  # fmt: skip

    @property
    def isa(self) -> str:
        return str(self._impl.isa)

    def _out(self, out: Any, n: int, horizon: int) -> np.ndarray:
        return host_out(out, (n, horizon, self.n_assets), "rollout")

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
        z = check_z(z, self.latent_dim)
        horizon = check_horizon(horizon)
        seed = check_u64("seed", seed)
        n = int(z.shape[0])
        offset = check_offset(offset, n)
        phi = check_phi(phi)
        res = self._out(out, n, horizon)
        empty = np.empty((0, self.latent_dim), np.float32)
        self._impl.run(
            res, z, empty, empty, np.empty(0, np.int64), 0, n, horizon, seed, offset, 1.0,
            bool(noise), bool(demean), bool(cumulative), check_shift(shift, self.n_assets), phi,
            self.num_threads,
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
        a = check_latent(
            self.latent_dim, None, "rollout", mu, logvar, n, seed, index, offset, scale,
            check_finite,
        )  # fmt: skip
        horizon = check_horizon(horizon)
        phi = check_phi(phi)
        res = self._out(out, a.n, horizon)
        self._impl.run(
            res, None, a.mu, a.logvar, host_index(index), MODES[a.mode], a.n, horizon, a.seed,
            a.offset, a.scale, bool(noise), bool(demean), bool(cumulative),
            check_shift(shift, self.n_assets), phi, self.num_threads,
        )  # fmt: skip
        return res


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
        cuda = require_cuda()
        if not hasattr(cuda, "rollout"):
            raise NativeInputError(
                "the installed stressvae._cuda predates the fused rollout; rebuild it "
                "(pip install --no-build-isolation -e .)"
            )
        self.device = cuda_device(device)
        self.index = self.device.index
        cuda_ready(self.index)
        c = self._cpu
        self.latent_dim, self.hidden, self.n_assets = c.latent_dim, c.hidden, c.n_assets
        self.window = c.window
        L, H, A = self.latent_dim, self.hidden, self.n_assets
        max_h = int(cuda.ROLLOUT_MAX_HIDDEN)
        if self.hidden > max_h:
            raise NativeInputError(
                f"the fused CUDA rollout takes hidden <= {max_h}; this model has hidden={H}"
            )
        self.factors, self.loading_max = c.factors, c.loading_max
        plan = cuda.rollout_plan(L, H, A, self.index, self.factors)
        if plan["warps"] == 0:
            raise NativeInputError(
                f"the fused CUDA rollout needs {plan['smem_min']} bytes of shared memory per "
                f"block for hidden={H}, latent={L}, {A} assets, {self.factors} factors; "
                f"cuda:{self.index} allows "
                f"{plan['smem_limit']}"
            )
        # the kernel's layout, packed in C++ like the CPU rollout's weights
        packed = cuda.pack_rollout(*(c.arrays[k] for k in GRU_ARRAYS), self.factors)
        self._image, self._w0, self._b0, self._wz = (
            torch.as_tensor(x, device=self.device) for x in packed
        )
        self._mean = np.ascontiguousarray(weights.scaler_mean, dtype=np.float32).reshape(-1)
        self._std = np.ascontiguousarray(weights.scaler_std, dtype=np.float32).reshape(-1)
        self._scaler = torch.as_tensor(np.concatenate([self._mean, self._std]), device=self.device)
        self._ls = c.log_scale_bounds

    def _launch(
        self, out, n, horizon, latent, seed, offset, noise, phi, demean, cumulative, shift
    ) -> None:
        import torch

        if shift is None:
            scaler = self._scaler
        else:
            s = check_shift(shift, self.n_assets)
            both = np.concatenate([self._mean + s, self._std])
            scaler = torch.as_tensor(both, device=self.device)
        z, mu, lv, idx, k, mode, scale = latent
        with torch.cuda.device(self.device):
            stream = torch.cuda.current_stream(self.device).cuda_stream
            require_cuda().rollout(
                self._image.data_ptr(), self._w0.data_ptr(), self._b0.data_ptr(),
                self._wz.data_ptr(), scaler.data_ptr(), self.latent_dim, self.hidden,
                self.n_assets, *self._ls, z, mu, lv, idx, k, mode, scale, out.data_ptr(), n,
                horizon, seed, offset, bool(noise), phi, bool(demean), bool(cumulative), stream,
                self.factors, self.loading_max,
            )  # fmt: skip
        self._keep = scaler  # alive until the next launch on this stream

    def _out(self, out: Any, n: int, horizon: int):
        return device_out(out, (n, horizon, self.n_assets), self.device)

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
        z = check_z(z, self.latent_dim, self.device)
        horizon = check_horizon(horizon)
        seed = check_u64("seed", seed)
        n = int(z.shape[0])
        offset = check_offset(offset, n)
        phi = check_phi(phi)
        self._self_check()
        res = self._out(out, n, horizon)
        latent = cuda_latent_given(z)
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
        a = check_latent(
            self.latent_dim, self.device, "rollout", mu, logvar, n, seed, index, offset, scale,
            check_finite,
        )  # fmt: skip
        horizon = check_horizon(horizon)
        phi = check_phi(phi)
        self._self_check()
        res = self._out(out, a.n, horizon)
        latent = cuda_latent_drawn(a, index)
        self._launch(
            res, a.n, horizon, latent, a.seed, a.offset, noise, phi, demean, cumulative, shift
        )
        return res

    def _self_check(self) -> None:
        """Once per device and model shape: the kernel against the CPU rollout."""
        key = ("rollout", self.index, self.latent_dim, self.hidden, self.n_assets, self.factors)
        selfcheck.run_once(key, self._check_against_cpu)

    def _check_against_cpu(self) -> None:
        """z given and drawn (table, latent drift, shift, demean and
        cumulative), within rtol 1e-5 + atol 1e-5 * max|ref| (float32)."""
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
        dev = self.device
        got = [
            self.rollout(torch.from_numpy(z).to(dev), horizon, seed=seed, offset=offset),
            self.sample(
                torch.from_numpy(mu).to(dev), torch.from_numpy(lv).to(dev),
                index=torch.from_numpy(idx).to(dev), **drawn,
            ),
        ]  # fmt: skip
        for name, g, w in zip(("rollout(z)", "fused sample"), got, want, strict=True):
            selfcheck.assert_close_float32("rollout", self.index, name, g.cpu().numpy(), w)

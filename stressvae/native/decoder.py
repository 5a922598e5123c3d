"""The decoder MLP packed once and run on blocks of scenarios: on the CPU
(:class:`NativeDecoder`) and on a GPU (:class:`CudaDecoder`, its twin,
checked against it)."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import selfcheck
from ._loading import core, require_cuda
from .checks import (
    NativeInputError,
    check_factors,
    check_int,
    check_isa,
    check_offset,
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

ACTIVATIONS = ("silu", "relu", "tanh", "gelu")


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
    (weights, its latent draw, seed, its index) only. With ``weights.factors``
    k > 0 (the factor model) the last layer gives (2 + k) blocks of
    ``window * assets`` (means, raw log-scales, loadings 1..k, each clamped
    to +-``LOADING_MAX``) and day t's factor j is element ``t * k + j`` of
    stream ``TAG_FACTOR``: ``x = mean + sum_j B_j f_j + exp(ls) eps``.

    On the CPU (numpy arrays); :class:`CudaDecoder` is its twin on a GPU.
    """

    def __init__(self, weights: Any, *, isa: str = "auto", num_threads: int | None = None):
        self.window = check_int("weights.window", weights.window, 1, 1 << 24)
        self.n_assets = check_int("weights.n_assets", weights.n_assets, 1, 1 << 16)
        self.latent_dim = check_int("weights.latent_dim", weights.latent_dim, 1, 1 << 16)
        if weights.likelihood not in ("gaussian", "mse"):
            raise NativeInputError(
                f"weights.likelihood must be 'gaussian' or 'mse', got {weights.likelihood!r}"
            )
        self.gaussian = weights.likelihood == "gaussian"
        self.out_dim = self.window * self.n_assets
        isa = check_isa(isa)
        self.num_threads = check_threads(num_threads)
        self.factors, self.loading_max = check_factors(weights, self.n_assets, self.gaussian)
        self.layers = _check_layers(weights.layers, self.latent_dim)
        width = int(self.layers[-1][0].shape[1])
        want = ((2 + self.factors) if self.gaussian else 1) * self.out_dim
        if width != want:
            what = weights.likelihood + (f", {self.factors} factors" if self.factors else "")
            raise NativeInputError(
                f"the last layer must give {want} outputs for window {self.window} x "
                f"{self.n_assets} assets ({what}), got {width}"
            )
        mean, std = check_scaler(weights, self.n_assets)
        self.log_scale_bounds = (float(weights.log_scale_min), float(weights.log_scale_max))
        self._impl = core.Decoder(
            self.layers, self.gaussian, self.out_dim, self.n_assets, mean, std,
            *self.log_scale_bounds, isa, self.factors, self.loading_max,
        )  # fmt: skip

    @property
    def isa(self) -> str:
        return str(self._impl.isa)

    def _out(self, out: Any, n: int) -> np.ndarray:
        return host_out(out, (n, self.window, self.n_assets), "decoder")

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
        z = check_z(z, self.latent_dim)
        seed = check_u64("seed", seed)
        n = int(z.shape[0])
        offset = check_offset(offset, n)
        res = self._out(out, n)
        self._impl.decode(
            res.reshape(n, self.out_dim), z, seed, offset, bool(noise), bool(demean),
            bool(cumulative), check_shift(shift, self.n_assets), self.num_threads,
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
        a = check_latent(
            self.latent_dim, None, "decoder", mu, logvar, n, seed, index, offset, scale,
            check_finite,
        )  # fmt: skip
        res = self._out(out, a.n)
        self._impl.sample(
            res.reshape(a.n, self.out_dim), a.mu, a.logvar, host_index(index), MODES[a.mode],
            a.n, a.seed, a.offset, a.scale, bool(noise), bool(demean), bool(cumulative),
            check_shift(shift, self.n_assets), self.num_threads,
        )  # fmt: skip
        return res


def _check_layers(layers: Any, latent_dim: int) -> list[tuple[np.ndarray, np.ndarray, Any]]:
    """The decoder's (W [in, out], b [out], activation) layers, checked:
    float32 numpy, chained widths from ``latent_dim``, finite, the last linear."""
    checked = []
    width = latent_dim
    for i, layer in enumerate(layers):
        if len(layer) != 3:
            raise NativeInputError(f"layer {i} must be (W, b, activation)")
        w, b, act = layer
        last = i == len(layers) - 1
        check_weight(f"layer {i} W", w, 2)
        check_weight(f"layer {i} b", b, 1)
        if w.shape[0] != width:
            raise NativeInputError(
                f"layer {i} W must be [{width}, n] (its input is {width} wide), got "
                f"{shape_str(w.shape)}"
            )
        if b.shape[0] != w.shape[1]:
            raise NativeInputError(f"layer {i} b must be [{w.shape[1]}], got {shape_str(b.shape)}")
        if not (np.isfinite(w).all() and np.isfinite(b).all()):
            raise NativeInputError(f"layer {i} has NaN or inf weights")
        if last and act is not None:
            raise NativeInputError("the last layer must be linear (activation None)")
        if not last and act not in ACTIVATIONS:
            raise NativeInputError(
                f"layer {i} activation must be one of {ACTIVATIONS}, got {act!r}"
            )
        checked.append((w, b, act))
        width = int(w.shape[1])
    if not checked:
        raise NativeInputError("the decoder needs at least one layer")
    return checked


class CudaDecoder:
    """The decoder on a GPU: fused latent sampling, MLP and epilogue in one
    kernel, exact float32, on the caller's current stream.

    Takes decoders whose latent and hidden widths are at most 256 with at
    most 8 layers (the activations of 64 scenarios stay in shared memory; a
    factor model keeps their window x factors normals there too, so window
    64 x 4 factors fits at width 256 on an H100, window 252 x 4 does not);
    otherwise the constructor raises a NativeInputError that says so, and the
    ScenarioGenerator falls back to the torch decoder with a warning. The
    first use on a device checks the kernel against the CPU decoder (parity
    within float32 tolerance) and raises a RuntimeError on a mismatch. Inputs
    and outputs are torch tensors on the device.
    """

    def __init__(self, weights: Any, device: str = "cuda"):
        import torch

        self._cpu = NativeDecoder(weights)  # validates every array; the self-check's reference
        cuda = require_cuda()
        self.device = cuda_device(device)
        self.index = self.device.index
        cuda_ready(self.index)
        c = self._cpu
        self.window, self.n_assets, self.latent_dim = c.window, c.n_assets, c.latent_dim
        self.gaussian, self.out_dim = c.gaussian, c.out_dim
        max_w, max_l = int(cuda.MAX_WIDTH), int(cuda.MAX_LAYERS)
        widths = [self.latent_dim] + [int(w.shape[1]) for w, _, _ in c.layers[:-1]]
        if max(widths) > max_w or len(c.layers) > max_l:
            raise NativeInputError(
                f"the fused CUDA decoder takes latent and hidden widths up to {max_w} and at most "
                f"{max_l} layers; this decoder has widths {widths} and {len(c.layers)} layers"
            )
        self.factors, self.loading_max = c.factors, c.loading_max
        self.width = (max(widths) + 3) // 4 * 4  # shared-memory row: the widest input
        if self.factors:  # the CTA's factor normals f [64, window * k] sit in shared memory too
            plan = cuda.decode_plan(self.width, self.window * self.factors, self.index)
            if plan["smem"] > plan["smem_limit"]:
                raise NativeInputError(
                    f"the fused CUDA decoder needs {plan['smem']} bytes of shared memory per "
                    f"block for window {self.window} x {self.factors} factors and width "
                    f"{self.width}; cuda:{self.index} allows {plan['smem_limit']}"
                )
        # the kernel's layout, packed in C++ like the CPU decoder's weights
        packed = cuda.pack_decoder(c.layers, self.gaussian, self.out_dim, self.factors)
        self._tensors, self._layers = [], []
        for wp, bp, act in packed:
            wt = torch.as_tensor(wp, device=self.device).contiguous()
            bt = torch.as_tensor(bp, device=self.device).contiguous()
            self._tensors += [wt, bt]
            self._layers.append(
                (wt.data_ptr(), bt.data_ptr(), int(wp.shape[0]), int(wp.shape[1]), act)
            )
        mean, std = weights.scaler_mean, weights.scaler_std
        self._std_j = torch.as_tensor(
            np.tile(np.asarray(std, np.float32), self.window), device=self.device
        )
        self._mean_j = np.tile(np.asarray(mean, np.float32), self.window)
        self._ls = c.log_scale_bounds

    def _launch(self, out, n, latent, seed, offset, noise, demean, cumulative, shift) -> None:
        import torch

        mean_j = (
            self._mean_j
            if shift is None
            else self._mean_j + np.tile(check_shift(shift, self.n_assets), self.window)
        )
        mean_t = torch.as_tensor(mean_j, device=self.device)
        z, mu, lv, idx, k, mode, scale = latent
        with torch.cuda.device(self.device):
            stream = torch.cuda.current_stream(self.device).cuda_stream
            require_cuda().decode(
                self._layers, self.latent_dim, self.out_dim, self.n_assets, self.gaussian,
                self._std_j.data_ptr(), mean_t.data_ptr(), *self._ls, self.width,
                z, mu, lv, idx, k, mode, scale, out.data_ptr(), n, seed, offset,
                bool(noise), bool(demean), bool(cumulative), stream, self.factors,
                self.loading_max,
            )  # fmt: skip
        self._keep = mean_t  # alive until the next launch on this stream

    def _out(self, out: Any, n: int):
        return device_out(out, (n, self.window, self.n_assets), self.device)

    def decode(
        self, z, *, seed, offset=0, noise=True, out=None, demean=False, cumulative=False, shift=None
    ):
        """z float32 tensor [n, latent] on the device -> [n, window, assets]."""
        z = check_z(z, self.latent_dim, self.device)
        seed = check_u64("seed", seed)
        n = int(z.shape[0])
        offset = check_offset(offset, n)
        self._self_check()
        res = self._out(out, n)
        self._launch(res, n, cuda_latent_given(z), seed, offset, noise, demean, cumulative, shift)
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
        a = check_latent(
            self.latent_dim, self.device, "decoder", mu, logvar, n, seed, index, offset, scale,
            check_finite,
        )  # fmt: skip
        self._self_check()
        res = self._out(out, a.n)
        latent = cuda_latent_drawn(a, index)
        self._launch(res, a.n, latent, a.seed, a.offset, noise, demean, cumulative, shift)
        return res

    def _self_check(self) -> None:
        """Once per device and observation model (the factor model has its own
        output layer): the kernel against the CPU decoder."""
        selfcheck.run_once(("decode", self.index, self.factors > 0), self._check_against_cpu)

    def _check_against_cpu(self) -> None:
        """Both latent sources, parity within rtol 1e-5 + atol 1e-5 * max|ref|
        (float32)."""
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
        got = [
            self.decode(torch.from_numpy(z).to(self.device), seed=seed, offset=offset),
            self.sample(
                torch.from_numpy(mu).to(self.device), torch.from_numpy(lv).to(self.device),
                seed=seed, index=torch.from_numpy(idx).to(self.device), offset=offset,
                scale=0.7,
            ),
        ]  # fmt: skip
        for name, g, w in zip(("decode(z)", "fused sample"), got, want, strict=True):
            selfcheck.assert_close_float32("decoder", self.index, name, g.cpu().numpy(), w)

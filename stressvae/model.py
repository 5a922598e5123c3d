"""ScenarioVAE: a variational autoencoder of windows of daily log returns.

Units. Public methods take and return windows of daily log returns in data
units, float32 ``[k, window, assets]`` (numpy or torch), like
:class:`stressvae.WindowData` hands them out; standardization with the
training scaler happens inside. ``forward`` and ``loss`` work in standardized
units (what the Trainer feeds).

The model is an MLP encoder (window -> mu, logvar) and a decoder, in two
separate pieces: the decoder network (z -> a few numbers per day and asset)
and the observation model (what those numbers mean: the distribution of the
day's returns, its log-likelihood and how a day is drawn).

Observation models (``likelihood``, :data:`OBSERVATIONS`):

- ``"gaussian"`` (default): the network outputs a mean and a log-scale per
  day and asset (heteroscedastic, each asset its own noise), trained by
  Gaussian negative log-likelihood; generation draws ``x = mean + scale *
  eps``, so the latent carries the volatility regime.
- ``"mse"``: the network outputs a mean only, trained by squared error (the
  seed experiment's version); generated windows come out too smooth.

Assets that move together (``factors`` = k > 0, gaussian only,
:class:`FactorGaussian`): the network also outputs k loadings per day and
asset, and a day's return vector is ``x_t = m_t + B_t f_t + s_t * e_t`` with
f_t ~ N(0, I_k) common to all assets and e_t ~ N(0, I) each asset's own: a
low-rank-plus-diagonal Gaussian per day, trained by its exact likelihood
(Woodbury). The loadings depend on z (and, for the GRU, on its state), so a
crisis regime can raise correlations and make a day fall for all assets at
once. The default is 0 factors for one asset, min(4, assets - 1) otherwise.

Decoder networks (``decoder``, :class:`Decoder`):

- ``"mlp"`` (:class:`MLPDecoder`): z -> the whole window at once; the days of
  a window are independent given z, and longer paths chain windows.
- ``"gru"`` (:class:`GRUDecoder`, gaussian only): a recurrent decoder driven
  by z. The state starts at ``h_0 = tanh(W_0 z + b_0)``; day t feeds the
  previous day's standardized return x_{t-1} (0 on day 0), its absolute
  value and z_t into a GRU cell, and a linear head gives the mean and
  log-scale of x_t. Training feeds the real previous day (teacher forcing);
  generation feeds its own draw back (``rollout_scaled``) for any number of
  days. z_t is z for every day, or, with ``phi`` < 1, an AR(1) towards the
  prior, ``z_{t+1} = phi z_t + sqrt(1 - phi^2) eta_t``, so regimes can change
  within a long path.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ._checks import as_int
from ._files import atomic_path
from .data import RegimeThresholds, Scaler, as_windows

__all__ = [
    "ACTIVATIONS",
    "DECODERS",
    "LIKELIHOODS",
    "OBSERVATIONS",
    "Decoder",
    "DecoderWeights",
    "DiagonalGaussian",
    "FactorGaussian",
    "GRUDecoder",
    "MLPDecoder",
    "Observation",
    "RecurrentWeights",
    "ScenarioVAE",
    "SquaredError",
    "VAEOutput",
]

ACTIVATIONS = ("silu", "relu", "tanh", "gelu")
LIKELIHOODS = ("gaussian", "mse")
DECODERS = ("mlp", "gru")
DEFAULT_DECODER = "mlp"
REGIME_NAMES = ("calm", "normal", "crisis")
LOG_SCALE_MIN, LOG_SCALE_MAX = -7.0, 4.0  # standardized units: scale in [9e-4, 55]
LOADING_MAX = 10.0  # factor loadings are clamped to [-LOADING_MAX, LOADING_MAX] (standardized)
MAX_FACTORS = 4  # the default number of factors is min(MAX_FACTORS, assets - 1)
MAX_PRIOR_SIZE = 20_000  # components of the aggregate-posterior prior at most
LOGVAR_MIN, LOGVAR_MAX = -12.0, 8.0
FORMAT = "stressvae.ScenarioVAE/1"
MAX_PARAMETERS = 1 << 30  # numbers in a model (4 GiB of float32): larger configs are refused


def _activation(name: str) -> nn.Module:
    return {"silu": nn.SiLU, "relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}[name]()


def _mlp_layers(sizes: list[int], activation: str, dropout: float) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(_activation(activation))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return layers


@dataclasses.dataclass
class VAEOutput:
    """Standardized units. mean, log_scale: [b, window, assets]; mu, logvar,
    z: [b, latent]. log_scale is None for likelihood="mse"; loadings [b,
    window, assets, factors] for a factor model, else None."""

    mean: torch.Tensor
    log_scale: torch.Tensor | None
    mu: torch.Tensor
    logvar: torch.Tensor
    z: torch.Tensor
    loadings: torch.Tensor | None = None

    @property
    def params(self) -> tuple:
        """The observation model's parameters: (mean, log_scale[, loadings])."""
        if self.loadings is None:
            return self.mean, self.log_scale
        return self.mean, self.log_scale, self.loadings


@dataclasses.dataclass
class DecoderWeights:
    """The decoder as plain float32 arrays, in the layout the native decode
    takes.

    ``layers[i] = (W, b, activation)``: ``W`` float32 C-contiguous
    ``[in, out]`` (``h_out = act(h_in @ W + b)``), ``b`` float32 ``[out]``,
    activation one of :data:`ACTIVATIONS` or ``None`` for the last layer.
    The last layer's output, per scenario, is ``window * assets`` means (time
    major: day t, asset a at ``t * assets + a``), followed for the gaussian
    likelihood by as many raw log-scales, and, with ``factors`` = k > 0, by
    k blocks of as many loadings (block j: the loading of every day and asset
    on factor j). The log-scale is clamped to ``[log_scale_min,
    log_scale_max]``, loadings to ``[-loading_max, loading_max]``; a day is
    ``x = mean + sum_j loading_j f_j + exp(log_scale) e``. Outputs are
    standardized: data units are ``x * scaler_std[a] + scaler_mean[a]``.
    """

    layers: list[tuple[np.ndarray, np.ndarray, str | None]]
    likelihood: str
    latent_dim: int
    window: int
    n_assets: int
    scaler_mean: np.ndarray  # float32 [assets]
    scaler_std: np.ndarray  # float32 [assets]
    log_scale_min: float = LOG_SCALE_MIN
    log_scale_max: float = LOG_SCALE_MAX
    factors: int = 0
    loading_max: float = LOADING_MAX


@dataclasses.dataclass
class RecurrentWeights:
    """The recurrent (GRU) decoder as plain float32 arrays, in the layout the
    native rollout takes. Every matrix is C-contiguous ``[in, out]``
    (``y = x @ W + b``); gate blocks of 3 * hidden columns are in torch's
    order (reset r, update u, candidate n).

    - ``w0 [latent, hidden], b0 [hidden]``: ``h_0 = tanh(z_0 @ w0 + b0)``
    - ``w_x [2 * assets, 3 * hidden]``: input weights of (x_{t-1}, |x_{t-1}|)
    - ``w_z [latent, 3 * hidden]``: input weights of z_t; ``b_i [3 * hidden]``
    - ``w_h [hidden, 3 * hidden], b_h [3 * hidden]``: recurrent weights
    - ``w_o [hidden, (2 + factors) * assets], b_o``: head, means, raw
      log-scales (clamped to ``[log_scale_min, log_scale_max]``), then for
      each factor j every asset's loading (clamped to ``[-loading_max,
      loading_max]``); with factors, ``x_t = mean + loadings @ f_t +
      exp(log_scale) * eps_t``

    One step (standardized units), with ``gi = [x, |x|] @ w_x + z_t @ w_z + b_i``
    and ``gh = h @ w_h + b_h``::

        r = sigmoid(gi_r + gh_r); u = sigmoid(gi_u + gh_u)
        n = tanh(gi_n + r * gh_n); h = (1 - u) * n + u * h
        mean, log_scale = h @ w_o + b_o;  x_t = mean + exp(log_scale) * eps_t
    """

    w0: np.ndarray
    b0: np.ndarray
    w_x: np.ndarray
    w_z: np.ndarray
    b_i: np.ndarray
    w_h: np.ndarray
    b_h: np.ndarray
    w_o: np.ndarray
    b_o: np.ndarray
    latent_dim: int
    hidden: int
    window: int
    n_assets: int
    scaler_mean: np.ndarray  # float32 [assets]
    scaler_std: np.ndarray  # float32 [assets]
    log_scale_min: float = LOG_SCALE_MIN
    log_scale_max: float = LOG_SCALE_MAX
    likelihood: str = "gaussian"
    factors: int = 0
    loading_max: float = LOADING_MAX


# ------------------------------------------------------------ observation models
class Observation:
    """The distribution of a day's returns given what the decoder network
    outputs for that day (standardized units). The network gives
    :attr:`channels` numbers per day and asset, in blocks along its last
    dimension: every asset's mean, then every asset's next parameter, and so
    on. Holds no weights: an observation model that needs more (a factor
    model's loadings) asks the network for more channels.
    """

    name: str
    channels: int  # network outputs per day and asset
    factors = 0  # common factors (normals per day beyond one per asset)

    def params(self, out: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Network output ``[..., channels * k]`` -> (mean, clamped
        log-scale or None), each ``[..., k]`` (a factor model adds the
        loadings ``[..., k, factors]``)."""
        raise NotImplementedError

    def nll(
        self, x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor | None, *extra
    ) -> torch.Tensor:
        """Per-window reconstruction term [b] of windows x [b, window, assets]."""
        raise NotImplementedError

    def residual(
        self, x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor | None, *extra
    ) -> torch.Tensor:
        """What the model expects to be N(0, 1) noise, shaped like x."""
        raise NotImplementedError

    def draw(
        self, mean: torch.Tensor, log_scale: torch.Tensor | None, eps: torch.Tensor, *extra
    ) -> torch.Tensor:
        """A day drawn given its parameters and standard normals ``eps``
        ``[..., assets + factors]`` (each asset's own, then the factors')."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class DiagonalGaussian(Observation):
    """``x = mean + exp(log_scale) * eps``: each asset its own noise. The
    network's raw log-scale is clamped to [LOG_SCALE_MIN, LOG_SCALE_MAX]."""

    name, channels = "gaussian", 2

    def params(self, out):
        mean, raw = out.chunk(2, dim=-1)
        return mean, raw.clamp(LOG_SCALE_MIN, LOG_SCALE_MAX)

    def nll(self, x, mean, log_scale):
        u = self.residual(x, mean, log_scale)
        return (0.5 * math.log(2 * math.pi) + log_scale + 0.5 * u.pow(2)).flatten(1).sum(1)

    def residual(self, x, mean, log_scale):
        return (x - mean) * torch.exp(-log_scale)

    def draw(self, mean, log_scale, eps):
        return mean + torch.exp(log_scale) * eps


class SquaredError(Observation):
    """A mean only, fitted by the sum of squared errors; nothing is drawn."""

    name, channels = "mse", 1

    def params(self, out):
        return out, None

    def nll(self, x, mean, log_scale):
        return self.residual(x, mean, log_scale).pow(2).flatten(1).sum(1)

    def residual(self, x, mean, log_scale):
        return x - mean

    def draw(self, mean, log_scale, eps):
        return mean


class FactorGaussian(Observation):
    """``x = mean + B f + exp(log_scale) * e`` per day: k common factors f
    with loadings B [assets, k] and each asset's own noise e, all N(0, 1); a
    low-rank-plus-diagonal Gaussian, ``cov = B B^T + diag(scale^2)``, fitted
    by its exact log-likelihood (Woodbury: a k x k Cholesky per day). The
    network gives 2 + k channels per day and asset: means, raw log-scales
    (clamped as for :class:`DiagonalGaussian`), then each factor's loadings
    (clamped to [-LOADING_MAX, LOADING_MAX]). The loadings are bounded by
    the clamp only, so a day can fall for every asset together."""

    name = "gaussian"

    def __init__(self, factors: int) -> None:
        self.factors = int(factors)
        self.channels = 2 + self.factors

    def params(self, out):
        parts = out.chunk(self.channels, dim=-1)
        loadings = torch.stack(parts[2:], dim=-1).clamp(-LOADING_MAX, LOADING_MAX)
        return parts[0], parts[1].clamp(LOG_SCALE_MIN, LOG_SCALE_MAX), loadings

    def nll(self, x, mean, log_scale, loadings=None):
        """-log N(x; mean, B B^T + D) summed over a window's days, D =
        diag(scale^2), by Woodbury: with u = D^-1/2 (x - mean), W = D^-1/2 B
        and L L^T = I + W^T W (k x k), ``2 nll = A log 2 pi + log|D| + 2 log|L|
        + |u|^2 - |L^-1 W^T u|^2``. The k x k Cholesky factor and the
        substitution are unrolled over the factors, elementwise over days
        (what torch.distributions.LowRankMultivariateNormal computes, several
        times faster for a few factors: no batched tiny matrix kernels)."""
        k, n_assets = self.factors, x.shape[-1]
        inv_s = torch.exp(-log_scale)
        u = (x - mean) * inv_s
        w = [b * inv_s for b in loadings.unbind(-1)]
        chol: list[list[Any]] = [[None] * k for _ in range(k)]
        y: list[Any] = [None] * k
        logdet = 2.0 * log_scale.sum(-1)
        maha = u.pow(2).sum(-1)
        for j in range(k):
            s = 1.0 + w[j].pow(2).sum(-1)
            for p in range(j):
                s = s - chol[j][p].pow(2)
            d = torch.sqrt(s)
            logdet = logdet + 2.0 * torch.log(d)
            for i in range(j + 1, k):
                t = (w[i] * w[j]).sum(-1)
                for p in range(j):
                    t = t - chol[i][p] * chol[j][p]
                chol[i][j] = t / d
            t = (w[j] * u).sum(-1)
            for p in range(j):
                t = t - chol[j][p] * y[p]
            y[j] = t / d
            maha = maha - y[j].pow(2)
        return (0.5 * (n_assets * math.log(2 * math.pi) + logdet + maha)).flatten(1).sum(1)

    def residual(self, x, mean, log_scale, loadings=None):
        """The whitened residual ``L^-1 (x - mean)``, L the Cholesky factor
        of the day's covariance: N(0, I) across assets under the model."""
        cov = loadings @ loadings.transpose(-1, -2) + torch.diag_embed(torch.exp(2.0 * log_scale))
        chol = torch.linalg.cholesky(cov.double())
        u = torch.linalg.solve_triangular(chol, (x - mean).double().unsqueeze(-1), upper=False)
        return u.squeeze(-1).to(x.dtype)

    def draw(self, mean, log_scale, eps, loadings=None):
        a = mean.shape[-1]
        e, f = eps[..., :a], eps[..., a:]
        common = (loadings * f.unsqueeze(-2)).sum(-1)
        return mean + common + torch.exp(log_scale) * e

    def __repr__(self) -> str:
        return f"FactorGaussian(factors={self.factors})"


OBSERVATIONS: dict[str, Observation] = {o.name: o for o in (DiagonalGaussian(), SquaredError())}


def observation(likelihood: str, factors: int = 0) -> Observation:
    """The observation model of a likelihood name and a number of factors."""
    if factors:
        return FactorGaussian(factors)
    return OBSERVATIONS[likelihood]


# ------------------------------------------------------------ decoders
class Decoder(nn.Module):
    """z -> the observation model's parameters of each day. What the model,
    the trainer and the generator ask of a decoder network:

    - ``forward(z, x=None)``: (mean, log-scale or None) ``[b, window,
      assets]`` of a window, standardized; given the real window ``x`` a
      recurrent decoder predicts each day from the real previous ones
      (teacher forcing, what training fits).
    - :meth:`rollout`: a recurrent decoder's day-by-day draw (the torch
      reference of the native rollout).
    - :meth:`sample`: windows from latents, in data units (the torch
      reference of the native sampler).
    - :meth:`export`: the weights as the native kernels take them.
    """

    kind: str
    recurrent = False  # draws day by day to any horizon

    def __init__(self, latent_dim: int, window: int, n_assets: int, obs: Observation) -> None:
        super().__init__()
        self.latent_dim, self.window, self.n_assets = latent_dim, window, n_assets
        self.obs = obs

    def rollout(
        self,
        z: torch.Tensor,
        horizon: int,
        eps: torch.Tensor,
        phi: float = 1.0,
        eta: torch.Tensor | None = None,
        return_params: bool = False,
        state: tuple[torch.Tensor, torch.Tensor] | None = None,
    ):
        """See :meth:`ScenarioVAE.rollout_scaled`."""
        raise ValueError("rollout_scaled needs decoder='gru'")

    def sample(
        self,
        z: torch.Tensor,
        horizon: int,
        generator: torch.Generator,
        noise: bool,
        scaler_mean: torch.Tensor,
        scaler_std: torch.Tensor,
    ) -> torch.Tensor:
        """Windows [n, horizon, assets] of daily log returns (data units) from
        latents z [n, latent], the observation noise drawn from ``generator``
        (CPU) after z, unless ``noise=False``."""
        raise NotImplementedError

    def export(
        self, scaler_mean: np.ndarray, scaler_std: np.ndarray
    ) -> DecoderWeights | RecurrentWeights:
        """Float32 arrays for the native kernels (see :class:`DecoderWeights`
        and :class:`RecurrentWeights` for the layouts)."""
        raise NotImplementedError


class MLPDecoder(Decoder):
    """z -> the whole window at once by an MLP; its last layer gives
    ``channels * window * assets`` numbers (time major within a channel)."""

    kind = "mlp"

    def __init__(
        self,
        latent_dim: int,
        window: int,
        n_assets: int,
        obs: Observation,
        hidden_dims: tuple[int, ...],
        activation: str,
        dropout: float,
    ) -> None:
        super().__init__(latent_dim, window, n_assets, obs)
        self.activation = activation
        sizes = [latent_dim, *hidden_dims, obs.channels * window * n_assets]
        # children named 0, 1, ... (state dict keys decoder.0.weight, ... as
        # written by every version)
        for i, layer in enumerate(_mlp_layers(sizes, activation, dropout)):
            self.add_module(str(i), layer)

    def forward(self, z: torch.Tensor, x: torch.Tensor | None = None):
        out = z
        for layer in self.children():
            out = layer(out)
        mean, log_scale, *extra = self.obs.params(out)
        shape = (z.shape[0], self.window, self.n_assets)
        mean = mean.reshape(shape)
        log_scale = None if log_scale is None else log_scale.reshape(shape)
        if extra:  # loadings [b, window * assets, k] -> [b, window, assets, k]
            return mean, log_scale, extra[0].reshape(*shape, self.obs.factors)
        return mean, log_scale

    def sample(self, z, horizon, generator, noise, scaler_mean, scaler_std):
        """Unscales mean and scale, then adds ``scale * eps`` (the arithmetic
        of the native decode's epilogue)."""
        if horizon != self.window:
            raise ValueError("horizon needs decoder='gru' (ScenarioGenerator chains MLP windows)")
        mean, log_scale, *extra = self(z)
        if extra:  # factors: e then f drawn, the day drawn in standardized units
            if not noise:
                return mean * scaler_std + scaler_mean
            width = self.n_assets + self.obs.factors
            eps = torch.randn(*mean.shape[:2], width, generator=generator)
            x = self.obs.draw(mean, log_scale, eps.to(z.device), extra[0])
            return x * scaler_std + scaler_mean
        mean = mean * scaler_std + scaler_mean
        if log_scale is None or not noise:
            return mean
        scale = log_scale.exp() * scaler_std
        eps = torch.randn(mean.shape, generator=generator).to(z.device)
        return mean + scale * eps

    def export(self, scaler_mean, scaler_std) -> DecoderWeights:
        linears = [m for m in self.children() if isinstance(m, nn.Linear)]
        layers = []
        for i, lin in enumerate(linears):
            act = self.activation if i < len(linears) - 1 else None
            w = np.ascontiguousarray(lin.weight.detach().cpu().numpy().T, dtype=np.float32)
            b = np.ascontiguousarray(lin.bias.detach().cpu().numpy(), dtype=np.float32)
            if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
                raise ValueError(f"decoder layer {i} has non-finite weights")
            layers.append((w, b, act))
        return DecoderWeights(
            layers=layers,
            likelihood=self.obs.name,
            latent_dim=self.latent_dim,
            window=self.window,
            n_assets=self.n_assets,
            scaler_mean=scaler_mean,
            scaler_std=scaler_std,
            factors=self.obs.factors,
        )


class GRUDecoder(Decoder):
    """z -> daily observation parameters by a GRU cell fed the previous day
    (see the module docstring and :class:`RecurrentWeights`)."""

    kind, recurrent = "gru", True

    def __init__(
        self, latent_dim: int, window: int, n_assets: int, obs: Observation, hidden: int
    ) -> None:
        super().__init__(latent_dim, window, n_assets, obs)
        self.hidden = hidden
        self.init = nn.Linear(latent_dim, hidden)
        self.gru = nn.GRU(2 * n_assets + latent_dim, hidden, batch_first=True)
        self.head = nn.Linear(hidden, obs.channels * n_assets)

    def _inputs(self, x_prev: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return torch.cat([x_prev, x_prev.abs(), z], dim=-1)

    def cell_weights(self) -> tuple[torch.Tensor, ...]:
        """(w_ih, w_hh, b_ih, b_hh) of the GRU cell, torch's layout."""
        g = self.gru
        return g.weight_ih_l0, g.weight_hh_l0, g.bias_ih_l0, g.bias_hh_l0

    def forward(self, z: torch.Tensor, x: torch.Tensor | None = None):
        """Given x: one-step-ahead predictions of every day of x [b, T,
        assets] from the real previous days (teacher forcing). Without x: the
        noise-free rollout of a window (each day's mean fed back)."""
        if x is None:
            width = self.n_assets + self.obs.factors
            quiet = torch.zeros(z.shape[0], self.window, width, device=z.device)
            return self.rollout(z, self.window, quiet, return_params=True)[1:]
        b, t, _ = x.shape
        prev = torch.cat([x.new_zeros(b, 1, self.n_assets), x[:, :-1]], dim=1)
        inp = self._inputs(prev, z[:, None, :].expand(b, t, self.latent_dim))
        h0 = torch.tanh(self.init(z))[None]
        out, _ = self.gru(inp, h0.contiguous())
        return self.obs.params(self.head(out))

    def warm(self, z: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The state after reading the real days x [b, T, assets] (teacher
        forcing, as in training) and the last day: (h_T [b, hidden], x_T
        [b, assets]), where a rollout continues the path after x."""
        b = x.shape[0]
        prev = torch.cat([x.new_zeros(b, 1, self.n_assets), x[:, :-1]], dim=1)
        inp = self._inputs(prev, z[:, None, :].expand(b, x.shape[1], self.latent_dim))
        h0 = torch.tanh(self.init(z))[None]
        _, h = self.gru(inp, h0.contiguous())
        return h[0], x[:, -1]

    def rollout(self, z, horizon, eps, phi=1.0, eta=None, return_params=False, state=None):
        n = z.shape[0]
        w_ih, w_hh, b_ih, b_hh = self.cell_weights()
        if state is None:
            h = torch.tanh(self.init(z))
            x_prev = z.new_zeros(n, self.n_assets)
        else:  # (h, x_prev) of :meth:`warm`
            h, x_prev = state
        drift = phi < 1.0
        if drift and eta is None:
            raise ValueError("phi < 1 needs eta [n, horizon, latent]")
        c = math.sqrt(max(0.0, 1.0 - phi * phi))
        zt = z
        xs, params = [], []
        for t in range(int(horizon)):
            h = torch.gru_cell(self._inputs(x_prev, zt), h, w_ih, w_hh, b_ih, b_hh)
            p = self.obs.params(self.head(h))
            x_prev = self.obs.draw(p[0], p[1], eps[:, t], *p[2:])
            xs.append(x_prev)
            if return_params:
                params.append(p)
            if drift:
                zt = phi * zt + c * eta[:, t]
        x = torch.stack(xs, 1) if xs else z.new_zeros(n, 0, self.n_assets)
        if return_params:
            return (x, *(torch.stack(list(ps), 1) for ps in zip(*params, strict=True)))
        return x

    def sample(self, z, horizon, generator, noise, scaler_mean, scaler_std):
        """Rolls out in standardized units, then unscales (as the native
        rollout does)."""
        width = self.n_assets + self.obs.factors
        eps = torch.randn(z.shape[0], horizon, width, generator=generator)
        if not noise:
            eps.zero_()
        x = self.rollout(z, horizon, eps.to(z.device))
        return x * scaler_std + scaler_mean

    def export(self, scaler_mean, scaler_std) -> RecurrentWeights:
        w_ih, w_hh, b_ih, b_hh = (t.detach().cpu().double().numpy() for t in self.cell_weights())
        a2 = 2 * self.n_assets

        def f32(x):
            out = np.ascontiguousarray(x, dtype=np.float32)
            if not np.all(np.isfinite(out)):
                raise ValueError("the recurrent decoder has non-finite weights")
            return out

        return RecurrentWeights(
            w0=f32(self.init.weight.detach().cpu().numpy().T),
            b0=f32(self.init.bias.detach().cpu().numpy()),
            w_x=f32(w_ih[:, :a2].T),
            w_z=f32(w_ih[:, a2:].T),
            b_i=f32(b_ih),
            w_h=f32(w_hh.T),
            b_h=f32(b_hh),
            w_o=f32(self.head.weight.detach().cpu().numpy().T),
            b_o=f32(self.head.bias.detach().cpu().numpy()),
            latent_dim=self.latent_dim,
            hidden=self.hidden,
            window=self.window,
            n_assets=self.n_assets,
            scaler_mean=scaler_mean,
            scaler_std=scaler_std,
            likelihood=self.obs.name,
            factors=self.obs.factors,
        )


def _to_tensor(x: Any, device: torch.device) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to(device=device, dtype=torch.float32)
    return torch.as_tensor(np.asarray(x, dtype=np.float32), device=device)


def _thresholds(th: Any) -> RegimeThresholds | None:
    """The regime thresholds stored in a model file (None, or finite numbers)."""
    if not th:
        return None
    if not isinstance(th, dict):
        raise ValueError(f"thresholds must be an object, got {th!r}")
    for name, value in th.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"thresholds {name} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"thresholds {name} must be finite, got {value}")
    return RegimeThresholds(**th)


class ScenarioVAE(nn.Module):
    """MLP encoder (window -> mu, logvar) and a decoder (z -> window): a
    :class:`Decoder` network with an :class:`Observation` model.

    Parameters
    ----------
    window, n_assets: shape of a window of daily log returns.
    latent_dim: size of z.
    hidden_dims: hidden widths of the encoder; the decoder mirrors them.
    activation: "silu", "relu", "tanh" or "gelu".
    dropout: dropout after each hidden layer (training only).
    beta: weight of the KL term (beta-VAE).
    likelihood: "gaussian" (mean and log-scale per day) or "mse" (mean only).
    decoder: "mlp" (the whole window from z) or "gru" (recurrent, day by day,
        any horizon; gaussian likelihood only).
    rnn_hidden: state width of the recurrent decoder.
    factors: common factors of the daily return vector (gaussian only;
        0 <= factors <= n_assets): assets move together through them. None
        (default): 0 for one asset, min(4, n_assets - 1) otherwise.
    prior_size: components of the latent prior that generation draws from
        (0: N(0, I)). The Trainer sets it (:meth:`set_prior`) to the
        training windows' posteriors, the aggregate posterior.
    """

    def __init__(
        self,
        window: int,
        n_assets: int = 1,
        latent_dim: int = 16,
        hidden_dims: tuple[int, ...] | list[int] = (256, 256),
        activation: str = "silu",
        dropout: float = 0.0,
        beta: float = 1.0,
        likelihood: str = "gaussian",
        decoder: str = DEFAULT_DECODER,
        rnn_hidden: int = 128,
        factors: int | None = None,
        prior_size: int = 0,
    ) -> None:
        super().__init__()
        window = as_int("window", window, 2)
        n_assets = as_int("n_assets", n_assets, 1)
        latent_dim = as_int("latent_dim", latent_dim, 1)
        try:  # a sequence of widths; not a number, a string or a mapping
            if isinstance(hidden_dims, (str, bytes, dict)):
                raise TypeError
            hidden = tuple(int(h) for h in hidden_dims)
        except (TypeError, ValueError, OverflowError):
            hidden = ()
        if not hidden or any(h < 1 for h in hidden):
            raise ValueError(
                "hidden_dims must be one or more positive widths such as (256, 256), got "
                f"{hidden_dims!r}"
            )
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
        if decoder == "gru" and likelihood != "gaussian":
            raise ValueError(
                "decoder='gru' needs likelihood='gaussian' (it draws each day to feed the next)"
            )
        rnn_hidden = as_int("rnn_hidden", rnn_hidden, 1, 1024)
        if factors is None:
            single = n_assets == 1 or likelihood != "gaussian"
            factors = 0 if single else min(MAX_FACTORS, n_assets - 1)
        else:
            factors = as_int("factors", factors, 0)
            if factors > n_assets:
                raise ValueError(
                    f"factors must be <= n_assets ({n_assets}): at most one common factor per "
                    f"asset, got {factors}"
                )
            if factors and likelihood != "gaussian":
                raise ValueError(f"factors > 0 needs likelihood='gaussian', got {likelihood!r}")
        if not 0 <= float(dropout) < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if not math.isfinite(float(beta)) or float(beta) < 0:
            raise ValueError(f"beta must be finite and >= 0, got {beta!r}")
        self.window, self.n_assets, self.latent_dim = window, n_assets, latent_dim
        self.hidden_dims, self.activation = hidden, activation
        self.dropout, self.beta, self.likelihood = float(dropout), float(beta), likelihood
        self.rnn_hidden, self.factors = rnn_hidden, factors
        prior_size = as_int("prior_size", prior_size, 0, MAX_PRIOR_SIZE)
        obs = observation(likelihood, factors)
        self.encoder = nn.Sequential(
            *_mlp_layers([window * n_assets, *hidden, 2 * latent_dim], activation, self.dropout)
        )
        self.decoder: Decoder
        if decoder == "gru":
            self.decoder = GRUDecoder(latent_dim, window, n_assets, obs, rnn_hidden)
        else:
            self.decoder = MLPDecoder(
                latent_dim, window, n_assets, obs, tuple(reversed(hidden)), activation, self.dropout
            )
        # Data statistics, set by Trainer.fit (saved with the weights).
        self.register_buffer("scaler_mean", torch.zeros(self.n_assets))
        self.register_buffer("scaler_std", torch.ones(self.n_assets))
        # Linear discriminant in latent space for regime_of: score = mu @ W + b.
        self.register_buffer("regime_w", torch.zeros(self.latent_dim, 3))
        self.register_buffer("regime_b", torch.zeros(3))
        # The latent prior of generation: N(0, I) (prior_size 0), or the
        # mixture of the training windows' posteriors (set_prior).
        self.prior_size = 0
        if prior_size:
            empty = torch.zeros(prior_size, latent_dim)
            self._prior_buffers(empty, empty.clone())
        self.thresholds: RegimeThresholds | None = None
        self.fitted = False
        # runs of return dates the model was trained on, [(first, last), ...]
        self.trained_periods: list[tuple[str, str]] = []

    # ------------------------------------------------------------ config
    @property
    def decoder_kind(self) -> str:
        """The decoder network: "mlp" or "gru" (:data:`DECODERS`)."""
        return self.decoder.kind

    @property
    def observation(self) -> Observation:
        """The observation model (:data:`OBSERVATIONS`, named by ``likelihood``)."""
        return self.decoder.obs

    @property
    def config(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "n_assets": self.n_assets,
            "latent_dim": self.latent_dim,
            "hidden_dims": list(self.hidden_dims),
            "activation": self.activation,
            "dropout": self.dropout,
            "beta": self.beta,
            "likelihood": self.likelihood,
            "decoder": self.decoder_kind,
            "rnn_hidden": self.rnn_hidden,
            "factors": self.factors,
            "prior_size": self.prior_size,
        }

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _prior_buffers(self, mu: torch.Tensor, logvar: torch.Tensor) -> None:
        self.prior_size = int(mu.shape[0])
        self.register_buffer("prior_mu", mu.to(torch.float32).contiguous())
        self.register_buffer("prior_logvar", logvar.to(torch.float32).contiguous())

    def set_prior(self, windows: Any | None) -> None:
        """The latent prior that generation draws from: the mixture of the
        posteriors q(z | window) of ``windows`` (the aggregate posterior;
        at most MAX_PRIOR_SIZE of them, evenly spaced), or N(0, I) for None.

        Why: the KL term pulls the posteriors towards N(0, I) but not all the
        way; the training windows' posterior means are heavy tailed (kurtosis
        4-10 per dimension on 20 US stocks), so N(0, I) rarely reaches the
        regions of crisis windows and generated tails come out too thin. A
        draw from the aggregate posterior picks a training window's regime
        uniformly and a z around it (its posterior spread); the days are
        drawn anew by the decoder."""
        if windows is None:
            for name in ("prior_mu", "prior_logvar"):
                if name in self._buffers:
                    del self._buffers[name]
            self.prior_size = 0
            return
        mu, logvar = self.encode(windows)
        if len(mu) == 0:
            raise ValueError("set_prior needs at least one window")
        if len(mu) > MAX_PRIOR_SIZE:
            keep = np.linspace(0, len(mu) - 1, MAX_PRIOR_SIZE).round().astype(np.int64)
            mu, logvar = mu[keep], logvar[keep]
        self._prior_buffers(mu.detach().cpu(), logvar.detach().cpu())
        self.to(self.scaler_mean.device)

    def prior_tables(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(mu, logvar) float32 [prior_size, latent] of the mixture prior, or
        None for N(0, I)."""
        if not self.prior_size:
            return None
        return (
            self.prior_mu.detach().cpu().numpy().astype(np.float32),
            self.prior_logvar.detach().cpu().numpy().astype(np.float32),
        )

    def set_data_stats(self, scaler: Scaler, thresholds: RegimeThresholds | None) -> None:
        """Scaler (and regime thresholds) of the data the model is trained on."""
        if np.shape(scaler.mean) != (self.n_assets,):
            raise ValueError(f"scaler has {np.size(scaler.mean)} assets, the model {self.n_assets}")
        self.scaler_mean.copy_(torch.as_tensor(scaler.mean, dtype=torch.float32))
        self.scaler_std.copy_(torch.as_tensor(scaler.std, dtype=torch.float32))
        self.thresholds = thresholds

    # ------------------------------------------------------------ core (standardized)
    def encode_scaled(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x.reshape(x.shape[0], -1))
        mu, logvar = h.chunk(2, dim=-1)
        return mu, logvar.clamp(LOGVAR_MIN, LOGVAR_MAX)

    def decode_scaled(self, z: torch.Tensor, x: torch.Tensor | None = None) -> tuple:
        """(mean, clamped log-scale) [b, window, assets] of each day, and for
        a factor model the loadings [b, window, assets, factors] (the
        observation model's parameters). The MLP ignores ``x``. The
        recurrent decoder gives one-step-ahead predictions given the real
        window ``x`` (teacher forcing) or, without ``x``, the noise-free
        rollout (each day's mean fed back as the next input)."""
        return self.decoder(z, x)

    def forward(self, x: torch.Tensor, sample: bool = True) -> VAEOutput:
        """Standardized windows [b, window, assets] -> VAEOutput (z drawn by
        reparameterization when ``sample``, else z = mu)."""
        mu, logvar = self.encode_scaled(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if sample else mu
        mean, log_scale, *extra = self.decode_scaled(z, x)
        return VAEOutput(mean, log_scale, mu, logvar, z, extra[0] if extra else None)

    def rollout_scaled(
        self,
        z: torch.Tensor,
        horizon: int,
        eps: torch.Tensor,
        phi: float = 1.0,
        eta: torch.Tensor | None = None,
        return_params: bool = False,
        state: tuple[torch.Tensor, torch.Tensor] | None = None,
    ):
        """The recurrent decoder's rollout, the torch reference of the native
        one (standardized units): day t draws ``x_t = mean_t + exp(ls_t) *
        eps[:, t]`` and feeds it to day t + 1. ``state``: start from a
        warmed state (:meth:`warm_scaled`) instead of the start of a window.

        z: [n, latent] (z_0); eps: [n, horizon, assets + factors] standard
        normals (each asset's own, then the common factors');
        phi < 1 with eta [n, horizon, latent]: z follows the AR(1)
        ``z_{t+1} = phi z_t + sqrt(1 - phi^2) eta[:, t]`` (day t uses z_t).
        Returns x [n, horizon, assets], and with ``return_params`` also the
        means and clamped log-scales (and a factor model's loadings). A
        Python loop over days (eager torch).
        """
        return self.decoder.rollout(z, horizon, eps, phi, eta, return_params, state)

    def warm_scaled(self, z: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Recurrent decoder: the state (h, last day) after reading the real
        standardized days ``x`` [b, T, assets] with latent z [b, latent]
        (teacher forcing, as in training), for :meth:`rollout_scaled`'s
        ``state``: the path then continues from the last real day."""
        if not self.decoder.recurrent:
            raise ValueError("warm_scaled needs decoder='gru' (an MLP decoder has no state)")
        return self.decoder.warm(z, x)

    def recon_nll(
        self,
        x: torch.Tensor,
        mean: torch.Tensor,
        log_scale: torch.Tensor | None,
        loadings: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Per-window reconstruction term [b] (Gaussian NLL in nats, or the sum
        of squared errors for mse), standardized units; a factor model needs
        its loadings."""
        extra = () if loadings is None else (loadings,)
        return self.observation.nll(x, mean, log_scale, *extra)

    @staticmethod
    def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """KL(q(z|x) || N(0, I)) per window and latent dimension [b, latent]."""
        return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)

    def loss(
        self, x: torch.Tensor, beta: float | None = None, free_bits: float = 0.0
    ) -> dict[str, torch.Tensor]:
        """Training objective on standardized windows: mean recon + beta * KL,
        with KL per dimension floored at ``free_bits`` nats (batch mean).
        Returns the objective and its parts (recon and kl reported raw)."""
        out = self.forward(x)
        recon = self.recon_nll(x, *out.params)
        kld = self.kl_per_dim(out.mu, out.logvar)
        kl_dim = kld.mean(0)
        kl_term = torch.clamp(kl_dim, min=free_bits).sum() if free_bits > 0 else kl_dim.sum()
        b = self.beta if beta is None else beta
        return {
            "loss": recon.mean() + b * kl_term,
            "recon": recon.mean(),
            "kl": kld.sum(1).mean(),
            "kl_per_dim": kl_dim.detach(),
        }

    # ------------------------------------------------------------ data units
    def _scale_in(self, windows: Any, name: str = "windows") -> torch.Tensor:
        arr = as_windows(windows, self.window, self.n_assets, name)
        x = torch.as_tensor(arr, device=self.device)
        return (x - self.scaler_mean) / self.scaler_std

    def _scale_out(self, mean: torch.Tensor, scale: torch.Tensor | None):
        m = mean * self.scaler_std + self.scaler_mean
        return m, (None if scale is None else scale * self.scaler_std)

    @torch.no_grad()
    def encode(self, windows: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows of log returns [k, window, assets] -> (mu, logvar) [k, latent]."""
        with _eval(self):
            return self.encode_scaled(self._scale_in(windows))

    @torch.no_grad()
    def decode(self, z: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        """z [k, latent] -> (mean, scale) of the window's daily log returns,
        each [k, window, assets] in data units; scale is None for mse. For a
        factor model, scale is each asset's whole standard deviation (common
        and own parts); :meth:`covariance` gives the co-movement."""
        zt = _to_tensor(z, self.device)
        if zt.ndim != 2 or zt.shape[1] != self.latent_dim:
            raise ValueError(f"z must be [k, {self.latent_dim}], got {tuple(zt.shape)}")
        with _eval(self):
            mean, log_scale, *extra = self.decode_scaled(zt)
        if extra:
            scale = torch.sqrt(extra[0].pow(2).sum(-1) + torch.exp(2.0 * log_scale))
            return self._scale_out(mean, scale)
        return self._scale_out(mean, None if log_scale is None else log_scale.exp())

    @torch.no_grad()
    def covariance(self, z: Any) -> torch.Tensor:
        """z [k, latent] -> each day's covariance of the assets' log returns,
        [k, window, assets, assets] in data units (the MLP decoder's; a
        diagonal one without factors)."""
        if self.decoder.recurrent:
            raise ValueError("covariance needs decoder='mlp' (the GRU's depends on its path)")
        if self.likelihood != "gaussian":
            raise ValueError("covariance needs likelihood='gaussian'")
        zt = _to_tensor(z, self.device)
        if zt.ndim != 2 or zt.shape[1] != self.latent_dim:
            raise ValueError(f"z must be [k, {self.latent_dim}], got {tuple(zt.shape)}")
        with _eval(self):
            _, log_scale, *extra = self.decode_scaled(zt)
        cov = torch.diag_embed(torch.exp(2.0 * log_scale))
        if extra:
            cov = cov + extra[0] @ extra[0].transpose(-1, -2)
        std = self.scaler_std
        return cov * std[:, None] * std[None, :]

    @torch.no_grad()
    def sample(
        self, n: int, seed: int | None = None, noise: bool = True, horizon: int | None = None
    ) -> torch.Tensor:
        """n new windows of daily log returns [n, window, assets] from the
        prior (N(0, I), or the mixture of :meth:`set_prior`), with
        observation noise (gaussian) unless ``noise=False``; the
        plain torch path (ScenarioGenerator is the fast one). The recurrent
        decoder rolls out ``horizon`` days (default: the window)."""
        n = as_int("n", n, 0)
        h = self.window if horizon is None else as_int("horizon", horizon, 1)
        g = torch.Generator(device="cpu")
        if seed is not None:
            g.manual_seed(as_int("seed", seed, -(1 << 63), (1 << 64) - 1))  # torch's range
        else:
            g.seed()
        z = torch.randn(n, self.latent_dim, generator=g)
        if self.prior_size:  # a component of the mixture prior each, then z around it
            pick = torch.randint(self.prior_size, (n,), generator=g)
            mu, lv = self.prior_mu.cpu()[pick], self.prior_logvar.cpu()[pick]
            z = mu + torch.exp(0.5 * lv) * z
        z = z.to(self.device)
        with _eval(self):
            return self.decoder.sample(z, h, g, noise, self.scaler_mean, self.scaler_std)

    @torch.no_grad()
    def reconstruct(self, windows: Any) -> torch.Tensor:
        """Mean reconstruction (z = mu), data units [k, window, assets]. For
        the recurrent decoder: each day's one-step-ahead mean given the real
        previous days."""
        mu, _ = self.encode(windows)
        x = self._scale_in(windows)
        with _eval(self):
            mean = self.decode_scaled(mu, x)[0]
        return self._scale_out(mean, None)[0]

    @torch.no_grad()
    def extract_features(self, windows: Any) -> np.ndarray:
        """Latent means [k, latent] as float32 numpy: features of each window."""
        return self.encode(windows)[0].cpu().numpy()

    @torch.no_grad()
    def anomaly_parts(self, windows: Any) -> dict[str, np.ndarray]:
        """The two parts of :meth:`anomaly_score` per window, float64 [k]:
        ``residual`` (scan surprise of the standardized residuals) and ``kl``
        (KL of the window's posterior from the prior, nats)."""
        x = self._scale_in(windows)
        with _eval(self):
            mu, logvar = self.encode_scaled(x)
            params = self.decode_scaled(mu, x)
        kl = self.kl_per_dim(mu, logvar).sum(1)
        u = self.observation.residual(x, *params)
        return {
            "residual": residual_scan_surprise(u).cpu().numpy(),
            "kl": kl.double().cpu().numpy(),
        }

    @torch.no_grad()
    def anomaly_score(self, windows: Any, kl_weight: float = 1.0) -> np.ndarray:
        """How unlike the training data each window is, float64 [k]; higher
        is more anomalous: ``residual + kl_weight * KL``.

        ``residual`` tests the window's standardized residuals
        ``u = (x - mean) / scale`` under its reconstruction at z = mu, which
        the model expects to look like N(0, 1) noise. Over blocks of 1, 2, 4,
        8 and 16 consecutive days (all assets together) the sum of u^2 is held
        against its chi-square distribution in both tails; the score is the
        largest surprise, -log(two-sided p), less the log of the number of
        blocks tried at that length. Too large catches jumps and crashes; too
        small catches stale, unchanged prices, which a plain likelihood rates
        as *more* probable and a volatility filter as calm. ``KL`` (nats) is
        how far the window's posterior is from the prior: an unusual regime.
        """
        if not isinstance(kl_weight, (int, float)) or not math.isfinite(kl_weight) or kl_weight < 0:
            raise ValueError(f"kl_weight must be finite and >= 0, got {kl_weight!r}")
        parts = self.anomaly_parts(windows)
        return parts["residual"] + kl_weight * parts["kl"]

    def anomaly_threshold(
        self, windows: Any, percentile: float = 99.0, kl_weight: float = 1.0
    ) -> float:
        """The ``percentile`` of the anomaly scores of ``windows`` (typically
        the training windows): scores above it are flagged."""
        if not 0 < percentile < 100:
            raise ValueError(f"percentile must be in (0, 100), got {percentile!r}")
        return float(np.percentile(self.anomaly_score(windows, kl_weight), percentile))

    @torch.no_grad()
    def regime_of(self, windows: Any) -> np.ndarray | str:
        """Which regime ("calm", "normal", "crisis") each window belongs to,
        judged in latent space by a linear discriminant fitted on the training
        windows' posterior means and labels. One window in, one label out."""
        if not self.fitted:
            raise RuntimeError("regime_of needs a trained model (Trainer.fit sets the regimes)")
        single = np.ndim(windows) == 2 or (np.ndim(windows) == 1 and self.n_assets == 1)
        mu, _ = self.encode(windows)
        scores = mu @ self.regime_w + self.regime_b
        labels = np.array(REGIME_NAMES, dtype=object)[scores.argmax(1).cpu().numpy()]
        return str(labels[0]) if single else labels

    def fit_regimes(self, windows: np.ndarray, labels: np.ndarray) -> None:
        """Fits the latent-space discriminant of :meth:`regime_of` (LDA with a
        shared covariance) from windows and their calm / normal / crisis labels."""
        mu = self.extract_features(windows).astype(np.float64)
        classes = [np.asarray(labels) == name for name in REGIME_NAMES]
        means = np.stack([mu[c].mean(0) if c.any() else mu.mean(0) for c in classes])
        centered = np.concatenate([mu[c] - means[i] for i, c in enumerate(classes) if c.any()])
        cov = np.cov(centered.T) + 1e-6 * np.eye(self.latent_dim)
        prec = np.linalg.inv(np.atleast_2d(cov))
        prior = np.array([max(c.mean(), 1e-6) for c in classes])
        w = prec @ means.T  # [latent, 3]
        b = -0.5 * np.einsum("kd,dk->k", means, w) + np.log(prior)
        self.regime_w.copy_(torch.as_tensor(w, dtype=torch.float32))
        self.regime_b.copy_(torch.as_tensor(b, dtype=torch.float32))
        self.fitted = True

    # ------------------------------------------------------------ export
    def export_decoder(self) -> DecoderWeights | RecurrentWeights:
        """The decoder as float32 arrays for the native decode (see
        :class:`DecoderWeights` and :class:`RecurrentWeights` for the layouts)."""
        mean = self.scaler_mean.detach().cpu().numpy().astype(np.float32)
        std = self.scaler_std.detach().cpu().numpy().astype(np.float32)
        return self.decoder.export(mean, std)

    # ------------------------------------------------------------ save / load
    def save(self, path: str | Path) -> Path:
        """Writes weights (safetensors) with the config, scaler and regime
        thresholds (JSON in the file's metadata). Atomic: a temporary file in
        the same folder, then a rename."""
        from safetensors.torch import save_file

        path = Path(path)
        meta = {
            "format": FORMAT,
            "config": json.dumps(self.config),
            "thresholds": json.dumps(self.thresholds.to_dict() if self.thresholds else None),
            "fitted": json.dumps(self.fitted),
            "trained_periods": json.dumps(self.trained_periods),
        }
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=meta)
        return path

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> ScenarioVAE:
        """Reads a model written by :meth:`save`. Never unpickles: anything
        that is not a stressvae safetensors file is refused with a ValueError.
        The config and the tensors' shapes (read from the file's header) are
        checked before any tensor is read or the model is built, the values
        (finite, scaler_std > 0, finite thresholds) before they are used."""
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if not path.is_file():
            raise ValueError(f"model file not found: {path}")

        def read(what):
            try:
                with safe_open(str(path), framework="pt", device="cpu") as f:
                    return what(f)
            except (SafetensorError, OSError, ValueError, RuntimeError) as err:
                raise ValueError(
                    f"{path} is not a stressvae model file (safetensors could not read it: {err})"
                ) from None

        meta, shapes = read(
            lambda f: (
                f.metadata() or {},
                {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()},  # noqa: SIM118 - safe_open has no iteration
            )
        )
        if meta.get("format") != FORMAT:
            raise ValueError(
                f"{path} is not a stressvae model file (format {meta.get('format')!r})"
            )
        try:
            config = json.loads(meta["config"])
            if isinstance(config, dict):  # written before factors / the mixture prior
                config.setdefault("factors", 0)
                config.setdefault("prior_size", 0)
            th = json.loads(meta.get("thresholds", "null"))
            fitted = bool(json.loads(meta.get("fitted", "false")))
            periods = [(str(a), str(b)) for a, b in json.loads(meta.get("trained_periods", "[]"))]
            thresholds = _thresholds(th)
            with torch.device("meta"):  # shapes only: allocates nothing
                expected = {k: tuple(v.shape) for k, v in cls(**config).state_dict().items()}
        except (KeyError, TypeError, ValueError, OverflowError, RuntimeError) as err:
            raise ValueError(f"{path}: bad model config in the file's metadata ({err})") from None
        missing = sorted(set(expected) - set(shapes))
        extra = sorted(set(shapes) - set(expected))
        if missing or extra:
            raise ValueError(
                f"{path}: tensors do not match the config (missing {missing}, unexpected {extra})"
            )
        for k, shape in shapes.items():
            if shape != expected[k]:
                raise ValueError(
                    f"{path}: tensor {k!r} has shape {shape}, the config needs {expected[k]}"
                )
        size = sum(math.prod(s) for s in expected.values())
        if size > MAX_PARAMETERS:
            raise ValueError(
                f"{path}: the config needs {size:,} numbers, more than the {MAX_PARAMETERS:,} "
                "a model may have"
            )
        tensors = read(lambda f: {k: f.get_tensor(k) for k in shapes})
        for k, t in tensors.items():
            if not torch.isfinite(t).all():
                raise ValueError(f"{path}: tensor {k!r} has NaN or inf")
        if not (tensors["scaler_std"] > 0).all():
            low = float(tensors["scaler_std"].min())
            raise ValueError(f"{path}: tensor 'scaler_std' must be > 0, got a minimum of {low}")
        model = cls(**config)
        model.load_state_dict(tensors)
        model.thresholds = thresholds
        model.fitted = fitted
        model.trained_periods = periods
        return model.to(device).eval()

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.parameters())
        return (
            f"ScenarioVAE(window={self.window}, n_assets={self.n_assets}, "
            f"latent_dim={self.latent_dim}, "
            f"hidden_dims={self.hidden_dims}, activation={self.activation!r}, "
            f"likelihood={self.likelihood!r}, decoder={self.decoder_kind!r}, "
            f"factors={self.factors}, beta={self.beta}, "
            f"params={n:,})"
        )


class _eval:
    """Context: eval mode (no dropout), restoring the previous mode after."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __enter__(self):
        self.was_training = self.model.training
        self.model.eval()

    def __exit__(self, *exc):
        self.model.train(self.was_training)


SCAN_BLOCKS = (1, 2, 4, 8, 16)  # days per block of the residual scan


def residual_scan_surprise(u: torch.Tensor, blocks: tuple[int, ...] = SCAN_BLOCKS) -> torch.Tensor:
    """Multi-scale two-sided chi-square scan of standardized residuals.

    u: [b, window, assets]. For each block length k (<= window) and each run
    of k consecutive days, S = sum of u^2 over the run and the assets is
    chi-square with k * assets degrees of freedom if u ~ N(0, 1). Returns per
    window the largest -log(2 min(P(X <= S), P(X >= S))) - log(#runs of that
    length), float64 [b].
    """
    u2 = u.double().pow(2).sum(-1)  # [b, window]
    n_assets, window = u.shape[-1], u.shape[1]
    best = torch.full((u.shape[0],), -math.inf, dtype=torch.float64, device=u.device)
    for k in blocks:
        if k > window:
            continue
        s = u2.unfold(1, k, 1).sum(-1)  # [b, runs]
        dof = torch.tensor(0.5 * k * n_assets, dtype=torch.float64, device=u.device)
        lo = torch.special.gammainc(dof, 0.5 * s)
        hi = torch.special.gammaincc(dof, 0.5 * s)
        p = (2 * torch.minimum(lo, hi)).clamp(1e-300, 1.0)
        surprise = (-torch.log(p)).max(1).values - math.log(window - k + 1)
        best = torch.maximum(best, surprise)
    return best


def top_anomalies(
    model: ScenarioVAE, data, top: int = 10, kl_weight: float = 1.0, split: str = "all"
):
    """The ``top`` most anomalous real windows of ``data`` that do not overlap
    each other (the highest score first, then the next one whose dates do not
    touch any already listed), as a DataFrame with dates, score, its parts,
    regime label and the window's return and drawdown."""
    import pandas as pd

    top = as_int("top", top, 1)
    frame = data.frame(split)
    windows = data.windows[data.mask(split)]
    parts = model.anomaly_parts(windows)
    score = parts["residual"] + kl_weight * parts["kl"]
    order = np.argsort(-score, kind="stable")
    picked: list[int] = []
    starts, ends = frame["start"].to_numpy(), frame["end"].to_numpy()
    series = frame["series"].to_numpy()
    for i in order:
        clash = any(
            series[j] == series[i] and starts[i] <= ends[j] and starts[j] <= ends[i] for j in picked
        )
        if not clash:
            picked.append(int(i))
            if len(picked) == top:
                break
    out = frame.iloc[picked][["start", "end", "series", "split", "regime", "return", "drawdown"]]
    out = out.assign(
        score=score[picked], residual=parts["residual"][picked], kl=parts["kl"][picked]
    )
    out.insert(0, "rank", np.arange(1, len(picked) + 1))
    return pd.DataFrame(out).reset_index(drop=True)

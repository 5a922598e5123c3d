"""How real are the scenarios? Stylized facts, a discriminator, usefulness
and memorization, side by side with classical baselines.

``evaluate({"vae": gen}, data)`` samples every generator (the VAE's
ScenarioGenerator, plus the Gaussian, bootstrap and GJR-GARCH(1,1)-t
baselines of stressvae.baselines unless ``baselines=False``) and scores each
against two real references:

- **holdout**: the in-distribution holdout (``WindowData(holdout_every=k)``:
  whole blocks of the training period, purged, never trained on), the
  reference for scores that compare distributions;
- **test**: the later, out-of-period validation windows. When the later
  period is calmer or wilder than the training one (S&P 500 2013-2018 vs
  1999-2012), these scores mostly measure the regime shift.

With several assets the table also says whether they move together: the
average pairwise within-window correlation (all, calm and crisis windows,
and the crisis-minus-calm rise), the correlation-matrix error against the
holdout, the equal-weight portfolio's volatility quantiles, 1 %-quantile max
drawdown and 5 %-quantile total return, the frequency of joint crash days,
and the discriminator on the portfolio's windows (:func:`comovement`,
:func:`correlation_matrix_error`, :func:`portfolio_risk`,
:func:`joint_crash_frequency`, :func:`portfolio_windows`).

Window metrics use windows of the model's length; dependence metrics (ACF,
leverage) use long paths (``long_horizon`` days, 252 by default) and the
real series, because inside short demeaned windows the ACF of |r| is
dominated by small-sample bias.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

import numpy as np
from scipy import stats

from ._checks import as_int
from ._files import atomic_write
from .baselines import BootstrapBaseline, GarchBaseline, GaussianBaseline
from .data import WindowData

__all__ = [
    "RealismReport",
    "acf_pooled",
    "comovement",
    "correlation_matrix_error",
    "discriminative_score",
    "evaluate",
    "joint_crash_frequency",
    "kupiec_pof",
    "marginal_stats",
    "max_drawdown",
    "memorization",
    "pairwise_correlation",
    "portfolio_returns",
    "portfolio_risk",
    "portfolio_windows",
    "realized_vol",
    "regime_masks",
    "tail_risk",
    "tstr_score",
    "window_correlations",
]

LAGS = 20


# ------------------------------------------------------------------ metrics
def _flat_returns(windows: np.ndarray) -> np.ndarray:
    """All daily returns of a set of windows [k, w, a] -> [k * w, a] float64."""
    w = np.asarray(windows, np.float64)
    return w.reshape(-1, w.shape[-1])


def marginal_stats(windows: np.ndarray, horizons: tuple[int, ...] = (1, 5, 20)) -> dict[str, float]:
    """Mean, std, skew and excess kurtosis of 1-day returns and of returns
    summed over non-overlapping blocks of 5 and 20 days inside each window
    (first asset; for several assets the equal-weight portfolio)."""
    w = np.asarray(windows, np.float64)
    port = w.mean(axis=2)
    out = {}
    for h in horizons:
        if h > port.shape[1]:
            continue
        k = port.shape[1] // h
        agg = port[:, : k * h].reshape(len(port), k, h).sum(axis=2).ravel()
        out[f"mean_{h}d"] = float(agg.mean())
        out[f"std_{h}d"] = float(agg.std())
        out[f"skew_{h}d"] = float(stats.skew(agg))
        out[f"kurt_{h}d"] = float(stats.kurtosis(agg))
    return out


def realized_vol(windows: np.ndarray) -> np.ndarray:
    """Per-window daily standard deviation of the equal-weight portfolio."""
    return np.asarray(windows, np.float64).mean(axis=2).std(axis=1)


def acf_pooled(paths: np.ndarray, lags: int = LAGS) -> np.ndarray:
    """Autocorrelation at lags 1..lags of one or many series [k, t] (or [t]),
    pooled over series around one global mean: sum of products over every
    path's pairs divided by the total sum of squares."""
    x = np.atleast_2d(np.asarray(paths, np.float64))
    x = x - x.mean()
    den = float(np.sum(x * x))
    return np.array([float(np.sum(x[:, :-k] * x[:, k:])) / den for k in range(1, lags + 1)])


def leverage(paths: np.ndarray, lags: int = 10) -> np.ndarray:
    """corr(r_t, r^2_{t+k}) for k = 1..lags, pooled over paths [k, t]."""
    x = np.atleast_2d(np.asarray(paths, np.float64))
    out = []
    for k in range(1, lags + 1):
        a, b = x[:, :-k].ravel(), (x[:, k:] ** 2).ravel()
        out.append(float(np.corrcoef(a, b)[0, 1]))
    return np.array(out)


def tail_risk(returns: np.ndarray, levels: tuple[float, ...] = (0.95, 0.99)) -> dict[str, float]:
    """VaR and ES of daily returns as positive losses."""
    r = np.asarray(returns, np.float64).ravel()
    out = {}
    for q in levels:
        cut = np.quantile(r, 1 - q)
        out[f"var_{q * 100:g}"] = float(-cut)
        out[f"es_{q * 100:g}"] = float(-r[r <= cut].mean())
    return out


def kupiec_pof(real_returns: np.ndarray, var: float, level: float) -> float:
    """Kupiec's proportion-of-failures test: p-value of the number of real
    daily losses beyond ``var`` (a positive loss) if the true exceedance
    probability were 1 - level. Small p: the synthetic VaR is off."""
    r = np.asarray(real_returns, np.float64).ravel()
    n, x = len(r), int(np.sum(r < -var))
    p = 1 - level
    if n == 0:
        return math.nan
    phat = x / n

    def loglik(q):
        # x log q + (n - x) log(1 - q), with 0 log 0 = 0
        a = x * math.log(q) if x > 0 else 0.0
        b = (n - x) * math.log(1 - q) if n - x > 0 else 0.0
        return a + b

    lr = -2 * (loglik(p) - loglik(phat)) if 0 < phat < 1 else -2 * (loglik(p) - 0.0)
    return float(stats.chi2.sf(max(lr, 0.0), 1))


def discriminative_score(
    real: np.ndarray,
    fake: np.ndarray,
    seed: int = 0,
    epochs: int = 60,
    folds: int = 3,
    purge: int | None = None,
) -> float:
    """|accuracy - 0.5| of a small GRU trained to tell real windows from
    synthetic ones (0: indistinguishable; 0.5: told apart every time).

    Real windows in time order overlap their neighbours, so a random split
    would put near-copies on both sides and score memory, not realism: the
    real windows are split into ``folds`` contiguous blocks instead, each
    tested on a classifier trained on the others with ``purge`` windows (one
    window length by default) dropped at every boundary; synthetic windows
    are split at random in the same proportions; the accuracy is averaged
    over folds. Equal numbers of each kind; windows are scaled by one global
    number (the real std), so scale differences stay visible."""
    import torch
    from torch import nn

    rng = np.random.default_rng(seed)
    real = np.asarray(real, np.float32)
    fake = np.asarray(fake, np.float32)
    k = min(len(real), len(fake))
    if k < 30:
        raise ValueError(
            f"need at least 30 windows of each kind, got {len(real)} real, {len(fake)} fake"
        )
    if len(real) > k:  # keep time order: an evenly spaced subset
        real = real[np.linspace(0, len(real) - 1, k).astype(int)]
    fake = fake[rng.choice(len(fake), k, replace=False)]
    purge = real.shape[1] if purge is None else int(purge)
    scale = float(real.std()) or 1.0
    bounds = np.linspace(0, k, folds + 1).astype(int)

    class Disc(nn.Module):
        def __init__(self, assets: int):
            super().__init__()
            self.gru = nn.GRU(assets, 32, batch_first=True)
            self.head = nn.Linear(32, 1)

        def forward(self, v):
            _, h = self.gru(v)
            return self.head(h[-1]).squeeze(-1)

    accs = []
    for f in range(folds):
        lo, hi = bounds[f], bounds[f + 1]
        test_r = np.arange(lo, hi)
        train_r = np.concatenate(
            [np.arange(0, max(0, lo - purge)), np.arange(min(k, hi + purge), k)]
        )
        test_f = np.arange(lo, hi)  # fakes are independent: the same positions suffice
        train_f = np.setdiff1d(np.arange(k), test_f)
        xt = np.concatenate([real[train_r], fake[train_f]]) / scale
        yt = np.concatenate([np.ones(len(train_r)), np.zeros(len(train_f))]).astype(np.float32)
        xv = np.concatenate([real[test_r], fake[test_f]]) / scale
        yv = np.concatenate([np.ones(len(test_r)), np.zeros(len(test_f))]).astype(np.float32)
        torch.manual_seed(seed + f)
        net = Disc(real.shape[2])
        opt = torch.optim.Adam(net.parameters(), lr=2e-3)
        loss_fn = nn.BCEWithLogitsLoss(
            pos_weight=torch.tensor(len(train_f) / max(len(train_r), 1), dtype=torch.float32)
        )
        xt_t, yt_t = torch.from_numpy(xt), torch.from_numpy(yt)
        g = torch.Generator().manual_seed(seed + f)
        for _ in range(epochs):
            perm = torch.randperm(len(xt_t), generator=g)
            for i in range(0, len(xt_t), 128):
                idx = perm[i : i + 128]
                opt.zero_grad()
                loss_fn(net(xt_t[idx]), yt_t[idx]).backward()
                opt.step()
        with torch.no_grad():
            pred = (net(torch.from_numpy(xv)) > 0).numpy()
        # balanced accuracy: the mean of the two classes' hit rates
        accs.append(0.5 * (pred[yv == 1].mean() + (1 - pred[yv == 0]).mean()))
    return abs(float(np.mean(accs)) - 0.5)


# ------------------------------------------------------------------ many assets
def window_correlations(windows: np.ndarray) -> np.ndarray:
    """Pearson correlation matrix of each window's daily returns: float64
    ``[k, assets, assets]`` from windows ``[k, days, assets]``. An asset
    that does not move in a window gives NaN in its row and column."""
    w = np.asarray(windows, np.float64)
    if w.ndim != 3:
        raise ValueError(f"windows must be [k, days, assets], got shape {w.shape}")
    x = w - w.mean(axis=1, keepdims=True)
    cov = np.matmul(x.transpose(0, 2, 1), x)
    sd = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = cov / (sd[:, :, None] * sd[:, None, :])
    corr[np.isinf(corr)] = np.nan
    return corr


def pairwise_correlation(windows: np.ndarray) -> np.ndarray:
    """Average pairwise within-window correlation: for each window of
    ``[k, days, assets]`` (assets >= 2) the mean of the off-diagonal
    entries of its correlation matrix (:func:`window_correlations`), float64
    ``[k]`` (pairs with an asset that does not move are left out; NaN if
    none is left)."""
    c = window_correlations(windows)
    a = c.shape[1]
    if a < 2:
        raise ValueError("pairwise_correlation needs windows of at least 2 assets")
    off = c[:, ~np.eye(a, dtype=bool)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a window without a valid pair
        return np.nanmean(off, axis=1)


def regime_masks(
    windows: np.ndarray, calm: float = 0.5, crisis: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """Calm and crisis windows by the equal-weight portfolio's realized
    volatility (:func:`realized_vol`) among the windows themselves: calm the
    ``calm`` share with the lowest (vol <= its ``calm`` quantile), crisis
    the ``crisis`` share with the highest (vol >= its ``1 - crisis``
    quantile). Two bool ``[k]`` masks."""
    if not 0 < calm <= 1 or not 0 < crisis <= 1:
        raise ValueError(f"calm and crisis must be shares in (0, 1], got {calm}, {crisis}")
    vol = realized_vol(windows)
    return vol <= np.quantile(vol, calm), vol >= np.quantile(vol, 1 - crisis)


def comovement(windows: np.ndarray, calm: float = 0.5, crisis: float = 0.1) -> dict[str, Any]:
    """How a set of windows ``[k, days, assets]`` moves together.

    avg_corr: the mean over windows of :func:`pairwise_correlation`;
    avg_corr_calm / avg_corr_crisis: the same over the calm / crisis
    windows of :func:`regime_masks` (each set classified by its own
    volatility quantiles); avg_corr_rise: crisis minus calm. matrix,
    matrix_calm, matrix_crisis: the mean within-window correlation matrices
    ``[assets, assets]`` over the same sets (for :func:`correlation_matrix_error`
    and heatmaps)."""
    c = window_correlations(windows)
    pair = pairwise_correlation(windows)
    is_calm, is_crisis = regime_masks(windows, calm, crisis)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out: dict[str, Any] = {
            "avg_corr": float(np.nanmean(pair)),
            "avg_corr_calm": float(np.nanmean(pair[is_calm])),
            "avg_corr_crisis": float(np.nanmean(pair[is_crisis])),
        }
        out["avg_corr_rise"] = out["avg_corr_crisis"] - out["avg_corr_calm"]
        out["matrix"] = np.nanmean(c, axis=0)
        out["matrix_calm"] = np.nanmean(c[is_calm], axis=0)
        out["matrix_crisis"] = np.nanmean(c[is_crisis], axis=0)
    return out


def correlation_matrix_error(
    windows: np.ndarray, reference: np.ndarray, kind: str = "fro"
) -> float:
    """Distance between the mean within-window correlation matrices of two
    sets of windows (``comovement(...)["matrix"]``): ``kind="fro"`` the
    Frobenius norm of the difference, ``"mae"`` the mean absolute difference
    over the off-diagonal entries. Either argument may also be a
    precomputed ``[assets, assets]`` matrix."""
    if kind not in ("fro", "mae"):
        raise ValueError(f"kind must be 'fro' or 'mae', got {kind!r}")

    def matrix(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        return x if x.ndim == 2 else comovement(x)["matrix"]

    a, b = matrix(windows), matrix(reference)
    if a.shape != b.shape:
        raise ValueError(f"windows have {a.shape[0]} assets, the reference {b.shape[0]}")
    d = a - b
    if kind == "fro":
        return float(np.linalg.norm(d))
    return float(np.mean(np.abs(d[~np.eye(len(d), dtype=bool)])))


def portfolio_returns(windows: np.ndarray) -> np.ndarray:
    """Daily simple returns of the daily-rebalanced equal-weight portfolio:
    the mean over assets of ``exp(r) - 1`` of log returns ``[k, days,
    assets]``; float64 ``[k, days]``."""
    w = np.asarray(windows, np.float64)
    if w.ndim != 3:
        raise ValueError(f"windows must be [k, days, assets], got shape {w.shape}")
    return np.expm1(w).mean(axis=2)


def max_drawdown(simple_returns: np.ndarray) -> np.ndarray:
    """Maximum drawdown of each path of simple returns ``[k, days]``: the
    lowest ``wealth / running peak - 1`` with wealth starting at 1 (0 if it
    never falls below a peak; a negative fraction otherwise), float64 ``[k]``."""
    r = np.atleast_2d(np.asarray(simple_returns, np.float64))
    wealth = np.cumprod(1.0 + r, axis=1)
    peak = np.maximum(np.maximum.accumulate(wealth, axis=1), 1.0)
    return np.minimum((wealth / peak - 1.0).min(axis=1, initial=0.0), 0.0)


def portfolio_risk(windows: np.ndarray, year_days: int = 252) -> dict[str, float]:
    """The equal-weight portfolio (:func:`portfolio_returns`) over each
    window: quantiles 5/50/95 % of its annualized volatility (std of daily
    simple returns, ddof 1, times sqrt(year_days); vol_q05_annual, ...), the
    1 %-quantile of its max drawdown (max_drawdown_q01, negative) and the
    5 %-quantile of its total return over the window (total_return_q05)."""
    p = portfolio_returns(windows)
    if p.shape[1] < 2:
        raise ValueError("portfolio_risk needs windows of at least 2 days")
    vol = p.std(axis=1, ddof=1) * math.sqrt(year_days)
    q = np.quantile(vol, [0.05, 0.5, 0.95])
    total = np.prod(1.0 + p, axis=1) - 1.0
    return {
        "vol_q05_annual": float(q[0]),
        "vol_q50_annual": float(q[1]),
        "vol_q95_annual": float(q[2]),
        "max_drawdown_q01": float(np.quantile(max_drawdown(p), 0.01)),
        "total_return_q05": float(np.quantile(total, 0.05)),
    }


def joint_crash_frequency(
    windows: np.ndarray, sigma: np.ndarray, threshold: float = 2.0, share: float = 0.8
) -> float:
    """The fraction of days (over all windows ``[k, days, assets]``) on
    which at least ``share`` of the assets fall below ``-threshold *
    sigma`` (``sigma`` [assets]: each asset's daily std, e.g. of the full
    real sample, the same for every set compared)."""
    w = np.asarray(windows, np.float64)
    sig = np.asarray(sigma, np.float64).reshape(-1)
    if w.ndim != 3 or w.shape[2] != len(sig):
        raise ValueError(
            f"sigma must have one entry per asset of windows {w.shape}, got {len(sig)}"
        )
    if not np.all(np.isfinite(sig)) or np.any(sig <= 0):
        raise ValueError("sigma must be finite and > 0")
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share}")
    need = math.ceil(share * w.shape[2] - 1e-9)
    down = (w < -threshold * sig).sum(axis=2)
    return float(np.mean(down >= need)) if down.size else math.nan


def portfolio_windows(windows: np.ndarray) -> np.ndarray:
    """The equal-weight portfolio's daily log returns as one-asset windows
    ``[k, days, 1]`` float32 (for :func:`discriminative_score`)."""
    return np.log1p(portfolio_returns(windows)).astype(np.float32)[:, :, None]


def _forecast_features(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inputs: |r| of the last 20 days before the window's last day (first
    asset), their mean and the mean of r^2; target: |r| of the last day."""
    w = np.asarray(windows, np.float64)[:, :, 0]
    past, target = np.abs(w[:, :-1]), np.abs(w[:, -1])
    lag = min(20, past.shape[1])
    feats = np.column_stack([past[:, -lag:], past.mean(axis=1), (w[:, :-1] ** 2).mean(axis=1)])
    return feats, target


def tstr_score(train_windows: np.ndarray, test_windows: np.ndarray) -> float:
    """Train on synthetic (or real) windows, test on real ones: the mean
    absolute error of a ridge forecast of the next day's |return|."""
    from sklearn.linear_model import Ridge

    xf, yf = _forecast_features(train_windows)
    xr, yr = _forecast_features(test_windows)
    scale = float(np.abs(yr).mean()) or 1.0
    model = Ridge(alpha=1e-3).fit(xf / scale, yf / scale)
    return float(np.abs(model.predict(xr / scale) * scale - yr).mean())


def _standardize_windows(windows: np.ndarray) -> np.ndarray:
    w = np.asarray(windows, np.float64).reshape(len(windows), -1)
    w = w - w.mean(axis=1, keepdims=True)
    return w / np.maximum(w.std(axis=1, keepdims=True), 1e-12)


def _nearest(a: np.ndarray, b: np.ndarray, batch: int = 512) -> np.ndarray:
    """Euclidean distance from each row of a to its nearest row of b."""
    import torch

    bt = torch.from_numpy(b)
    out = []
    for i in range(0, len(a), batch):
        d = torch.cdist(torch.from_numpy(a[i : i + batch]), bt)
        out.append(d.min(dim=1).values.numpy())
    return np.concatenate(out) if out else np.zeros(0)


def memorization(
    train: np.ndarray, synthetic: np.ndarray, holdout: np.ndarray, quantile: float = 0.01
) -> dict[str, float]:
    """Does a generator copy its training windows? Each window is demeaned
    and divided by its own realized volatility (otherwise a calm or shrunken
    generator looks novel); then the distance of each window to its nearest
    training window.

    ratio: median distance of synthetic windows / that of real holdout
    windows (about 1: new but plausible; far below 1: copies).
    near_copies: the fraction of synthetic windows closer to a training window
    than all but ``quantile`` of the real holdout windows are.
    """
    tr, sy, ho = (_standardize_windows(x) for x in (train, synthetic, holdout))
    d_sy, d_ho = _nearest(sy, tr), _nearest(ho, tr)
    cut = np.quantile(d_ho, quantile)
    return {
        "ratio": float(np.median(d_sy) / np.median(d_ho)),
        "near_copies": float(np.mean(d_sy < cut)),
        "d_synthetic": d_sy,
        "d_holdout": d_ho,
    }


# ------------------------------------------------------------------ evaluate
@dataclasses.dataclass
class RealismReport:
    """The outcome of :func:`evaluate`.

    table: DataFrame indexed by (group, metric), one column per real
        reference ("real holdout", "real test") and per generator.
    details: the raw series behind the figures (ACFs, volatility
        distributions, memorization distances) per source; with several
        assets also "correlation": per source the mean within-window
        correlation matrices over all, calm and crisis windows ("matrix",
        "matrix_calm", "matrix_crisis").
    notes: what the references are and how they were cut.
    """

    table: Any
    details: dict
    notes: list

    def figures(self) -> dict[str, Any]:
        """matplotlib figures: ACF of |r|, leverage, realized-volatility
        distribution, daily-return tails, memorization distances."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        figs = {}
        d = self.details
        names = list(d["acf_abs"])
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
        lags = np.arange(1, LAGS + 1)
        for name in names:
            style = dict(color="black", lw=2) if name.startswith("real") else dict(lw=1.2)
            axes[0].plot(lags, d["acf_abs"][name], label=name, **style)
            axes[1].plot(lags, d["acf_r"][name], label=name, **style)
            axes[2].plot(np.arange(1, 11), d["leverage"][name], label=name, **style)
        axes[0].set_title("ACF of |r| (volatility clustering)")
        axes[1].set_title("ACF of r")
        axes[2].set_title("leverage: corr(r_t, r^2_{t+k})")
        for ax in axes:
            ax.axhline(0, color="grey", lw=0.5)
            ax.set_xlabel("lag (days)")
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        figs["dependence"] = fig

        fig, axes = plt.subplots(1, 2, figsize=(12, 3.6))
        for name, vol in d["vol"].items():
            style = dict(color="black", lw=2) if name.startswith("real") else dict(lw=1.2)
            xs = np.sort(vol) * np.sqrt(252)
            axes[0].plot(xs, np.linspace(0, 1, len(xs)), label=name, **style)
        axes[0].set_xlabel("annualized realized volatility of a window")
        axes[0].set_title("Spread of regimes (CDF)")
        axes[0].legend(fontsize=8)
        for name, r in d["returns"].items():
            style = dict(color="black", lw=2) if name.startswith("real") else dict(lw=1.2)
            q = np.linspace(0.001, 0.05, 50)
            axes[1].plot(q * 100, -np.quantile(r, q) * 100, label=name, **style)
        axes[1].set_xlabel("left-tail probability (%)")
        axes[1].set_ylabel("daily loss (%)")
        axes[1].set_title("Tails of daily returns")
        fig.tight_layout()
        figs["marginals"] = fig

        fig, ax = plt.subplots(figsize=(6.5, 3.6))
        for name, dist in d["memorization"].items():
            ax.hist(dist, bins=60, histtype="step", density=True, label=name, lw=1.2)
        ax.set_xlabel("distance to the nearest training window (standardized windows)")
        ax.set_title("Memorization")
        ax.legend(fontsize=8)
        fig.tight_layout()
        figs["memorization"] = fig
        return figs

    def to_html_section(self) -> str:
        """An HTML fragment (table, notes, figures as PNG data URIs)."""
        import base64
        import io

        import matplotlib.pyplot as plt

        parts = ["<h2>How real are the scenarios?</h2>"]
        parts += [f'<p class="note">{n}</p>' for n in self.notes]
        parts.append(self.table.to_html(float_format=lambda v: f"{v:.4g}", border=0, classes="t"))
        for name, fig in self.figures().items():
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=100)
            plt.close(fig)
            data = base64.b64encode(buf.getvalue()).decode("ascii")
            parts.append(f'<img alt="{name}" src="data:image/png;base64,{data}">')
        return "\n".join(parts)

    def to_html(self, path) -> Any:
        """A standalone page with :meth:`to_html_section`, written atomically."""
        page = (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>stressvae realism'
            "</title><style>body{font-family:system-ui,sans-serif;max-width:1180px;margin:24px "
            "auto;padding:0 16px}table.t{border-collapse:collapse;font-size:.85em}table.t td,"
            "table.t th{padding:2px 8px;border-bottom:1px solid #e6e9ef;text-align:right}"
            "img{max-width:100%}.note{color:#4b5361}</style></head><body>"
            + self.to_html_section()
            + "</body></html>"
        )
        return atomic_write(path, page.encode("utf-8"))


def _long_paths(source: Any, n: int, seed: int, horizon: int) -> np.ndarray:
    return source.sample(n, seed=seed, horizon=horizon).returns


def evaluate(
    generators: dict[str, Any],
    data: Any,
    baselines: bool = True,
    n: int = 10_000,
    n_long: int = 2_000,
    long_horizon: int = 252,
    seed: int = 0,
    discriminator: bool = True,
    discriminator_epochs: int = 60,
) -> RealismReport:
    """Scores each generator (anything with ``sample(n, seed, horizon=...)
    -> Scenarios``: a ScenarioGenerator, a baseline) against the real
    references; adds the "gaussian", "bootstrap" and "garch" baselines fitted
    to ``data`` unless ``baselines=False``. ``n`` windows per generator for
    window metrics, ``n_long`` paths of ``long_horizon`` days for dependence
    metrics. The discriminator dominates the cost (about 10 s per score at
    the defaults on 2 cores): ``discriminator_epochs`` trades power for time,
    ``discriminator=False`` skips it. Returns a :class:`RealismReport`."""
    import pandas as pd

    if not isinstance(generators, dict) or not generators:
        raise ValueError("generators must be a non-empty dict name -> generator")
    if not isinstance(data, WindowData):
        raise ValueError(f"data must be a WindowData, got {type(data).__name__}")
    n = as_int("n", n, 1)
    n_long = as_int("n_long", n_long, 1)
    long_horizon = as_int("long_horizon", long_horizon, 1)
    seed = as_int("seed", seed, 0)
    discriminator_epochs = as_int("discriminator_epochs", discriminator_epochs, 1)
    gens = dict(generators)
    if baselines:
        gens.setdefault("gaussian", GaussianBaseline(data))
        gens.setdefault("bootstrap", BootstrapBaseline(data))
        gens.setdefault("garch", GarchBaseline(data))
    for name, g in gens.items():
        if getattr(g, "window", data.window) != data.window:
            raise ValueError(
                f"generator {name!r} makes windows of {g.window} days, the data {data.window}"
            )

    for name, g in gens.items():
        _check_never_trained_on(name, g, data)

    notes = []
    holdout = data.holdout if np.any(data.split == "holdout") else None
    test = data.val
    if holdout is None:
        notes.append(
            "No in-distribution holdout in this data (WindowData(holdout_every=...)): the out-of-"
            "period test windows are the only reference; distribution scores then mostly measure "
            "the regime shift between periods."
        )
        holdout = test
    else:
        later = data.end_dates[data.split == "val"][0].date()
        notes.append(
            f"Reference 'real holdout': {len(holdout)} windows from whole blocks of the training "
            "period held out and purged (never trained on); 'real test': "
            f"{len(test)} windows of the later period {later}.."
            f"{data.end_dates[-1].date()}. Scores that compare distributions (discriminator, "
            "Wasserstein, KS of volatility, Kupiec) are judged against the holdout."
        )
    notes.append(
        "Discriminator (|accuracy - 0.5| of a GRU, real windows split into contiguous folds): "
        "the 'real holdout' column scores real training windows against the holdout (the noise "
        "floor of two real sets of one period), 'real test' the later period against it."
    )
    notes.append(
        f"Dependence (ACF, leverage): {n_long} generated paths of {long_horizon} days against the "
        "real daily series of the training period (and the later period). A window model's long "
        "paths chain windows whose seams carry no dependence."
    )
    train = data.train
    real_series = {
        "real holdout": _real_series(data, "train"),
        "real test": _real_series(data, "val"),
    }

    cols: dict[str, dict[str, float]] = {}
    details = {
        "acf_abs": {},
        "acf_r": {},
        "leverage": {},
        "vol": {},
        "returns": {},
        "memorization": {},
        "correlation": {},
    }
    many = data.n_assets > 1
    if many:
        ref_matrix = comovement(holdout)["matrix"]
        sigma = data.returns.std().to_numpy(np.float64)  # full real sample, per asset
        notes.append(
            "Many assets: co-movement is the mean pairwise correlation of daily returns inside "
            "each window, also over the calm half and the 10 % most volatile windows (by the "
            "equal-weight portfolio's volatility, each source by its own quantiles); "
            "corr_matrix_error is the Frobenius norm (corr_matrix_mae the mean absolute "
            "off-diagonal difference) between mean within-window correlation matrices and the "
            "holdout's; joint_crash_freq is the share of days on which at least 80 % of the "
            "assets fall below -2 x their full-sample daily std. The portfolio rows are the "
            "daily-rebalanced equal-weight portfolio over a window (simple returns, no fees)."
        )

    def stats_of(name, windows, long_paths):
        row = {}
        for k, v in marginal_stats(windows).items():
            row[("marginal", k)] = v
        r = _flat_returns(windows)[:, 0]
        ref_r = _flat_returns(holdout)[:, 0]
        rng = np.random.default_rng(seed)
        sub = r if len(r) <= 200_000 else rng.choice(r, 200_000, replace=False)
        row[("marginal", "wasserstein_1d")] = float(stats.wasserstein_distance(sub, ref_r))
        vol = realized_vol(windows)
        ref_vol = realized_vol(holdout)
        q = np.quantile(vol, [0.1, 0.5, 0.9]) * np.sqrt(252)
        row[("regimes", "vol_q10_annual")], row[("regimes", "vol_q50_annual")] = q[0], q[1]
        row[("regimes", "vol_q90_annual")] = q[2]
        row[("regimes", "vol_ks")] = float(stats.ks_2samp(vol, ref_vol).statistic)
        for k, v in tail_risk(r).items():
            row[("tails", k)] = v
        row[("tails", "kupiec_p_99")] = kupiec_pof(ref_r, tail_risk(r)["var_99"], 0.99)
        lp = np.asarray(long_paths, np.float64).mean(axis=2)
        acf_abs, acf_r = acf_pooled(np.abs(lp)), acf_pooled(lp)
        lev = leverage(lp)
        row[("dependence", "acf_r_lag1")] = acf_r[0]
        row[("dependence", "acf_r_mean_1_20")] = float(acf_r.mean())
        for lag in (1, 5, 20):
            row[("dependence", f"acf_abs_lag{lag}")] = acf_abs[lag - 1]
        row[("dependence", "acf_abs_mean_1_20")] = float(acf_abs.mean())
        row[("dependence", "acf_sq_mean_1_20")] = float(acf_pooled(lp**2).mean())
        row[("dependence", "leverage_lag1")] = lev[0]
        if windows.shape[2] > 1:
            c = np.corrcoef(_flat_returns(windows).T)
            c_ref = np.corrcoef(_flat_returns(holdout).T)
            row[("dependence", "cross_corr_error")] = float(np.linalg.norm(c - c_ref))
            cm = comovement(windows)
            for k in ("avg_corr", "avg_corr_calm", "avg_corr_crisis", "avg_corr_rise"):
                row[("co-movement", k)] = cm[k]
            row[("co-movement", "corr_matrix_error")] = correlation_matrix_error(
                cm["matrix"], ref_matrix
            )
            row[("co-movement", "corr_matrix_mae")] = correlation_matrix_error(
                cm["matrix"], ref_matrix, kind="mae"
            )
            row[("co-movement", "joint_crash_freq")] = joint_crash_frequency(windows, sigma)
            for k, v in portfolio_risk(windows).items():
                row[("portfolio", f"ew_{k}")] = v
            details["correlation"][name] = {
                k: cm[k] for k in ("matrix", "matrix_calm", "matrix_crisis")
            }
        details["acf_abs"][name], details["acf_r"][name], details["leverage"][name] = (
            acf_abs,
            acf_r,
            lev,
        )
        details["vol"][name], details["returns"][name] = vol, r
        return row

    # references
    for ref_name, wins in (("real holdout", holdout), ("real test", test)):
        series = real_series[ref_name][None, :, None]  # one long path
        cols[ref_name] = stats_of(ref_name, wins, series)
        # train on real training windows, test on this reference
        cols[ref_name][("usefulness", "tstr_mae")] = tstr_score(train, wins)
    for name, g in gens.items():
        windows = g.sample(n, seed=seed).returns
        long_paths = _long_paths(g, n_long, seed + 1, long_horizon)
        row = stats_of(name, windows, long_paths)
        if discriminator:
            row[("discriminator", "score_vs_holdout")] = discriminative_score(
                holdout, windows, seed, discriminator_epochs
            )
            row[("discriminator", "score_vs_test")] = discriminative_score(
                test, windows, seed, discriminator_epochs
            )
            if many:
                row[("discriminator", "ew_score_vs_holdout")] = discriminative_score(
                    portfolio_windows(holdout),
                    portfolio_windows(windows),
                    seed,
                    discriminator_epochs,
                )
        row[("usefulness", "tstr_mae")] = tstr_score(windows, holdout)
        mem = memorization(train, windows[:2000], holdout)
        row[("memorization", "ratio")] = mem["ratio"]
        row[("memorization", "near_copies")] = mem["near_copies"]
        details["memorization"][name] = mem["d_synthetic"]
        cols[name] = row
    details["memorization"]["real holdout"] = memorization(train, holdout, holdout)["d_holdout"]
    if discriminator:
        # real vs real: training windows against the holdout (same period: the noise floor),
        # the later period against the holdout (the regime shift)
        rng = np.random.default_rng(seed)
        sub = train[np.sort(rng.choice(len(train), min(len(train), n), replace=False))]
        cols["real holdout"][("discriminator", "score_vs_holdout")] = discriminative_score(
            holdout, sub, seed, discriminator_epochs
        )
        cols["real test"][("discriminator", "score_vs_holdout")] = discriminative_score(
            holdout, test, seed, discriminator_epochs
        )
        if many:
            ew_holdout = portfolio_windows(holdout)
            cols["real holdout"][("discriminator", "ew_score_vs_holdout")] = discriminative_score(
                ew_holdout, portfolio_windows(sub), seed, discriminator_epochs
            )
            cols["real test"][("discriminator", "ew_score_vs_holdout")] = discriminative_score(
                ew_holdout, portfolio_windows(test), seed, discriminator_epochs
            )
    table = pd.DataFrame(cols)
    table.index = pd.MultiIndex.from_tuples(table.index, names=["group", "metric"])
    order = [
        "marginal",
        "regimes",
        "tails",
        "dependence",
        "co-movement",
        "portfolio",
        "discriminator",
        "usefulness",
        "memorization",
    ]
    table = table.sort_index(
        level=0, key=lambda s: s.map({g: i for i, g in enumerate(order)}), sort_remaining=False
    )
    return RealismReport(table=table, details=details, notes=notes)


def _check_never_trained_on(name: str, gen: Any, data: Any) -> None:
    """The real references must hold no return the model was trained on."""
    periods = getattr(getattr(gen, "model", None), "trained_periods", None)
    if not periods:
        return
    import pandas as pd

    first = pd.DatetimeIndex([a for a, _ in periods])
    last = pd.DatetimeIndex([b for _, b in periods])
    for split, label in (("holdout", "in-distribution holdout"), ("val", "test")):
        mask = data.split == split
        if not mask.any():
            continue
        s, e = data.start_dates[mask], data.end_dates[mask]
        # window [s, e] meets a trained run [a, b] when s <= b and e >= a
        hit = (s.values[:, None] <= last.values[None, :]) & (
            e.values[:, None] >= first.values[None, :]
        )
        bad = hit.any(axis=1)
        if bad.any():
            k = int(np.argmax(bad))
            raise ValueError(
                f"{int(bad.sum())} of the {int(mask.sum())} {label} windows hold returns that "
                f"generator {name!r}'s model was trained on (first: {s[k].date()}..{e[k].date()}): "
                "build the data with the same split_date / holdout_every / holdout_offset as "
                "for training"
            )


def _real_series(data: Any, split: str) -> np.ndarray:
    """The real daily returns of a period as one series (first asset; the
    equal-weight portfolio for several): the training or the later period."""
    mask = data.split == split
    if not np.any(mask):
        return np.zeros(0)
    start, end = data.start_dates[mask].min(), data.end_dates[mask].max()
    r = data.returns.loc[start:end].to_numpy(np.float64)
    return np.nanmean(r, axis=1)

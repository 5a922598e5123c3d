"""VaR and ES backtests: can a risk model's numbers be trusted out of sample?

:func:`var_backtest` forecasts, every day of an out-of-sample period and
from the prices up to the day before only, the distribution of an asset's or
a portfolio's return over the next 1 and 10 days, reads VaR and ES at 95 and
99 % off it, and counts the exceptions. Forecasters side by side:

- ``"vae"``: the trained model's scenarios from the day's state
  (``ScenarioGenerator.from_today`` on the price history up to the day
  before). The model is trained once, before the period, and never refit.
- ``"hs"``: historical simulation on the last :data:`HS_DAYS` = 250 days.
- ``"fhs_gjr"``: filtered historical simulation on a GJR-GARCH(1,1)-t.
- ``"garch_t"``: a plain GARCH(1,1)-t, parametric.

The tests, each a function of its own: :func:`kupiec_pof`,
:func:`christoffersen` (independence and conditional coverage),
:func:`traffic_light` (Basel zones per 250-day window) and
:func:`acerbi_szekely_z2` (an ES backtest).

Conventions: returns are SIMPLE returns of the portfolio, rebalanced daily to
its weights (``r_p = sum_a w_a (exp(log_return_a) - 1)``); an h-day return is
the compounded ``prod(1 + r_p) - 1`` of h consecutive days. VaR and ES are
positive losses (fractions: 0.03 = a 3 % loss); an exception is a return
below ``-VaR``.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._checks import as_int
from ._files import atomic_path
from ._progress import progress_bar

__all__ = [
    "HS_DAYS",
    "MIN_GARCH_DAYS",
    "MODELS",
    "VarBacktest",
    "acerbi_szekely_z2",
    "basel_zone",
    "christoffersen",
    "empirical_var_es",
    "kupiec_band",
    "kupiec_pof",
    "traffic_light",
    "var_backtest",
]

MODELS = ("vae", "hs", "fhs_gjr", "garch_t")
HS_DAYS = 250  # historical simulation's look-back, trading days
MIN_GARCH_DAYS = 500  # returns before the period needed to fit a GARCH model
ZONE_DAYS = 250  # observations per traffic-light window
GARCH_SCALE = 100.0  # the GARCH models are fitted on returns in percent
Z2_SIMULATIONS = 2_000
_TAGS = {name: i for i, name in enumerate(MODELS)}  # seed streams, one per forecaster
_Z2_TAG = 17


# --------------------------------------------------------------------------
# the tests


def _xlogy(x: float, y: float) -> float:
    """x * log(y) with 0 * log(0) = 0."""
    return 0.0 if x == 0 else x * math.log(y)


def _chi2_sf(stat: float, df: int) -> float:
    from scipy.stats import chi2

    return float(chi2.sf(max(stat, 0.0), df))


def _check_level(level: Any, name: str = "level") -> float:
    try:
        v = float(level)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in (0, 1), got {level!r}") from None
    if isinstance(level, bool) or not 0.0 < v < 1.0:
        raise ValueError(f"{name} must be in (0, 1) (e.g. 0.99), got {level!r}")
    return v


def _hits(hits: Any) -> np.ndarray:
    h = np.asarray(hits)
    if h.ndim != 1:
        raise ValueError(f"hits must be one-dimensional, got shape {h.shape}")
    if h.dtype != bool:
        if not np.all(np.isin(h, (0, 1))):
            raise ValueError("hits must hold only 0/1 or True/False (1 = an exception)")
        h = h.astype(bool)
    return h


def kupiec_pof(exceptions: int, days: int, level: float) -> tuple[float, float]:
    """Kupiec's proportion-of-failures test (1995): is the exception rate
    ``exceptions / days`` equal to ``1 - level``?

    LR = -2 log[(1-p)^(T-x) p^x] + 2 log[(1-x/T)^(T-x) (x/T)^x], p = 1 -
    level, x exceptions in T days (0 log 0 = 0, so x = 0 and x = T are
    fine); chi-square with 1 degree of freedom under H0. Returns ``(LR,
    p-value)``; a small p-value rejects the VaR's coverage (too many
    exceptions or too few)."""
    t = as_int("days", days, 1)
    x = as_int("exceptions", exceptions, 0, t)
    p = 1.0 - _check_level(level)
    rate = x / t
    lr = -2.0 * (_xlogy(t - x, 1 - p) + _xlogy(x, p)) + 2.0 * (
        _xlogy(t - x, 1 - rate) + _xlogy(x, rate)
    )
    lr = max(lr, 0.0)
    return lr, _chi2_sf(lr, 1)


def kupiec_band(days: int, level: float, confidence: float = 0.95) -> tuple[int, int]:
    """The exception counts Kupiec's test accepts at ``confidence`` in
    ``days`` days: ``(lowest, highest)``, inclusive."""
    t = as_int("days", days, 1)
    _check_level(level)
    alpha = 1.0 - _check_level(confidence, "confidence")
    ok = [x for x in range(t + 1) if kupiec_pof(x, t, level)[1] > alpha]
    return ok[0], ok[-1]


def christoffersen(hits: Any, level: float) -> dict[str, float]:
    """Christoffersen's (1998) independence and conditional-coverage tests
    on a 0/1 exception sequence (``hits[t]`` = 1 when day t's loss exceeded
    VaR), days in order.

    Independence: a first-order Markov chain with P(exception | none
    yesterday) = pi01 and P(exception | one yesterday) = pi11 against one
    pi for both: LR_ind = -2 log[(1-pi)^(n00+n10) pi^(n01+n11)] + 2
    log[(1-pi01)^n00 pi01^n01 (1-pi11)^n10 pi11^n11], chi-square(1). A small
    p-value: exceptions cluster (the VaR reacts too slowly). Conditional
    coverage: LR_cc = LR_pof + LR_ind, chi-square(2). 0 log 0 = 0, so no
    exceptions, only exceptions or a single day give LR_ind = 0 (p = 1).

    Returns ``lr_ind``, ``ind_p``, ``lr_cc``, ``cc_p`` and the transition
    counts ``n00, n01, n10, n11``."""
    h = _hits(hits)
    level = _check_level(level)
    if len(h) == 0:
        raise ValueError("hits is empty: no days to test")
    prev, cur = h[:-1], h[1:]
    n00 = int(np.sum(~prev & ~cur))
    n01 = int(np.sum(~prev & cur))
    n10 = int(np.sum(prev & ~cur))
    n11 = int(np.sum(prev & cur))
    n = n00 + n01 + n10 + n11
    lr_ind = 0.0
    if n:
        pi = (n01 + n11) / n
        pi01 = n01 / (n00 + n01) if n00 + n01 else 0.0
        pi11 = n11 / (n10 + n11) if n10 + n11 else 0.0
        l0 = _xlogy(n00 + n10, 1 - pi) + _xlogy(n01 + n11, pi)
        l1 = _xlogy(n00, 1 - pi01) + _xlogy(n01, pi01) + _xlogy(n10, 1 - pi11) + _xlogy(n11, pi11)
        lr_ind = max(-2.0 * (l0 - l1), 0.0)
    lr_pof, _ = kupiec_pof(int(h.sum()), len(h), level)
    lr_cc = lr_pof + lr_ind
    return {
        "lr_ind": lr_ind,
        "ind_p": _chi2_sf(lr_ind, 1),
        "lr_cc": lr_cc,
        "cc_p": _chi2_sf(lr_cc, 2),
        "n00": n00,
        "n01": n01,
        "n10": n10,
        "n11": n11,
    }


def basel_zone(exceptions: int, days: int = ZONE_DAYS, level: float = 0.99) -> str:
    """The Basel traffic-light zone of ``exceptions`` in ``days`` days for a
    VaR at ``level``, from the binomial probability of at most that many
    exceptions when the VaR is right: ``"green"`` below 95 %, ``"yellow"``
    below 99.99 %, ``"red"`` otherwise. At 99 % and 250 days: green 0-4,
    yellow 5-9, red 10 or more (the Basel Committee's table)."""
    from scipy.stats import binom

    t = as_int("days", days, 1)
    x = as_int("exceptions", exceptions, 0, t)
    cdf = float(binom.cdf(x, t, 1.0 - _check_level(level)))
    return "green" if cdf < 0.95 else "yellow" if cdf < 0.9999 else "red"


def traffic_light(hits: Any, level: float, days: int = ZONE_DAYS) -> dict[str, int]:
    """Basel zones of every window of ``days`` consecutive observations
    (rolling: one window ending on each observation from the ``days``-th
    on): ``{"green": n, "yellow": n, "red": n}``. All three are 0 when there
    are fewer than ``days`` observations."""
    from scipy.stats import binom

    h = _hits(hits)
    t = as_int("days", days, 1)
    p = 1.0 - _check_level(level)
    out = {"green": 0, "yellow": 0, "red": 0}
    if len(h) < t:
        return out
    counts = np.convolve(h.astype(np.int64), np.ones(t, dtype=np.int64), mode="valid")
    cdf = binom.cdf(counts, t, p)
    out["green"] = int(np.sum(cdf < 0.95))
    out["yellow"] = int(np.sum((cdf >= 0.95) & (cdf < 0.9999)))
    out["red"] = int(np.sum(cdf >= 0.9999))
    return out


def empirical_var_es(draws: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """VaR and ES (positive losses) of equally likely draws, row by row.

    draws: float ``[days, m]`` (or ``[m]``) returns. VaR is minus the
    ``1 - level`` quantile (numpy's linear interpolation); ES is minus the
    mean of the worst ``(1 - level) m`` draws, the last one fractionally
    weighted (the exact ES of the draws' distribution). Returns float64
    arrays ``[days]`` (or scalars)."""
    x = np.asarray(draws, dtype=np.float64)
    alpha = 1.0 - _check_level(level)
    one = x.ndim == 1
    x = np.atleast_2d(x)
    m = x.shape[1]
    if m == 0:
        raise ValueError("draws is empty")
    s = np.sort(x, axis=1)
    pos = alpha * (m - 1)  # numpy's "linear" quantile, read off the sorted draws
    lo = math.floor(pos)
    var = -(s[:, lo] + (pos - lo) * (s[:, min(lo + 1, m - 1)] - s[:, lo]))
    k = alpha * m
    whole = math.floor(k)
    frac = k - whole
    tail = s[:, :whole].sum(axis=1)
    if whole < m:
        tail = tail + frac * s[:, whole]
    es = -tail / k
    es = np.maximum(es, var)  # the fractional tail can fall a hair short in float
    return (float(var[0]), float(es[0])) if one else (var, es)


def _z2(x: np.ndarray, var: np.ndarray, es: np.ndarray, alpha: float) -> np.ndarray:
    """Z2 along the last axis (see :func:`acerbi_szekely_z2`)."""
    hit = x < -var
    return np.sum(np.where(hit, x, 0.0) / es, axis=-1) / (x.shape[-1] * alpha) + 1.0


def acerbi_szekely_z2(
    returns: Any,
    var: Any,
    es: Any,
    level: float,
    draws: Any = None,
    simulations: int = Z2_SIMULATIONS,
    seed: int = 0,
) -> tuple[float, float]:
    """Acerbi and Szekely's (2014) second ES test, ``Z2 = sum_t X_t I_t /
    (T alpha ES_t) + 1``: X_t the realized return, I_t = 1 when X_t <
    -VaR_t, alpha = 1 - level, ES_t > 0 the forecast ES. E[Z2] = 0 when
    the forecasts are right; Z2 < 0 when the losses beyond VaR are larger
    than ES said (ES underestimated), Z2 > 0 when smaller.

    The p-value is one-sided, P(Z2 <= observed) under H0, from
    ``simulations`` samples of the whole period, each day's return drawn
    from that day's forecast distribution: ``draws`` float ``[T, m]``, m
    equally likely returns per day (the forecaster's own draws; for a
    parametric model a quantile grid). A small p-value: ES is
    underestimated. Without ``draws`` the p-value is NaN. Returns ``(Z2,
    p-value)``.
    """
    x = np.asarray(returns, dtype=np.float64)
    v = np.asarray(var, dtype=np.float64)
    e = np.asarray(es, dtype=np.float64)
    if x.ndim != 1 or v.shape != x.shape or e.shape != x.shape:
        raise ValueError(
            f"returns, var and es must be 1-D of one length, got {x.shape}, {v.shape}, {e.shape}"
        )
    if len(x) == 0:
        raise ValueError("returns is empty: no days to test")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(v)) and np.all(np.isfinite(e))):
        raise ValueError("returns, var and es must be finite")
    if np.any(e <= 0):
        raise ValueError("es must be > 0 (a positive loss) on every day for the Z2 test")
    alpha = 1.0 - _check_level(level)
    z2 = float(_z2(x, v, e, alpha))
    if draws is None:
        return z2, float("nan")
    d = np.asarray(draws, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != len(x) or d.shape[1] == 0:
        raise ValueError(f"draws must be [{len(x)}, m] (m >= 1 draws a day), got {d.shape}")
    sims = as_int("simulations", simulations, 1)
    rng = np.random.default_rng(as_int("seed", seed, 0))
    rows = np.arange(len(x))
    stats = np.empty(sims)
    block = max(1, (1 << 22) // max(len(x), 1))
    for s0 in range(0, sims, block):
        k = min(block, sims - s0)
        xs = d[rows, rng.integers(0, d.shape[1], size=(k, len(x)))]
        stats[s0 : s0 + k] = _z2(xs, v, e, alpha)
    return z2, float(np.mean(stats <= z2))


# --------------------------------------------------------------------------
# forecasters: each gives, for day i of the return series (information up to
# row i - 1 only), equally likely draws of the h-day compounded portfolio
# return for every horizon asked, and optionally exact VaR / ES.


def _compound(r: np.ndarray, h: int) -> np.ndarray:
    """Compounded returns of the first h days along axis 1: r [m, days] simple."""
    return np.prod(1.0 + r[:, :h], axis=1) - 1.0


class _Historical:
    """Historical simulation: 1 day, the last HS_DAYS daily returns; h
    days, the HS_DAYS overlapping h-day compounded returns ending on each of
    the last HS_DAYS days (HS_DAYS + h - 1 days of history)."""

    def __init__(self, r: np.ndarray) -> None:
        self.r = r

    def forecast(self, i: int, horizons: list[int], n: int, rng: Any) -> dict[int, np.ndarray]:
        out = {}
        for h in horizons:
            past = self.r[i - HS_DAYS - h + 1 : i]
            if h == 1:
                out[h] = past.copy()
            else:
                win = np.lib.stride_tricks.sliding_window_view(past, h)
                out[h] = np.prod(1.0 + win, axis=1) - 1.0
        return out

    exact = None


class _Garch:
    """GARCH(1,1)-t (``gjr=False``) or GJR-GARCH(1,1)-t (``gjr=True``),
    fitted by arch on 100 x the portfolio's simple returns before the
    period (refit on all days before the forecast day every ``refit``
    days), variance filtered day by day with the current parameters.

    ``filtered=True`` (FHS): draws are mu + sigma_t z with z the
    standardized residuals up to the day before (1 day: VaR / ES exact over
    all of them, the draws their quantile grid at (k + 0.5) / n for the Z2
    test; h days: z bootstrapped through the variance recursion).
    ``filtered=False`` (parametric): 1 day, exact t VaR / ES (draws: the t
    quantile grid); h days, unit-variance t innovations simulated through
    the recursion."""

    def __init__(self, r: np.ndarray, first: int, *, gjr: bool, filtered: bool, refit) -> None:
        self.y = GARCH_SCALE * r  # percent; y[0] is NaN (no return on the first row)
        self.gjr, self.filtered, self.refit = gjr, filtered, refit
        self.first = first
        self.fits: list[dict[str, float]] = []
        self._cache: dict[tuple, Any] = {}
        self._fit(first)

    def _fit(self, i: int) -> None:
        from arch import arch_model

        y = self.y[1:i]
        am = arch_model(y, mean="Constant", vol="GARCH", p=1, o=1 if self.gjr else 0, q=1, dist="t")
        start = None
        if self.fits:
            last = self.fits[-1]
            keys = ["mu", "omega", "alpha", "gamma", "beta", "nu"] if self.gjr else [
                "mu", "omega", "alpha", "beta", "nu"
            ]  # fmt: skip
            start = np.array([last[k] for k in keys])
        res = am.fit(disp="off", show_warning=False, starting_values=start)
        if res.convergence_flag != 0:
            what = "GJR-GARCH(1,1)-t" if self.gjr else "GARCH(1,1)-t"
            warnings.warn(
                f"var_backtest: the {what} fit on the {len(y)} returns before row {i} did not "
                f"converge (flag {res.convergence_flag}); using its last parameters",
                RuntimeWarning,
                stacklevel=4,
            )
        p = res.params
        self.p = {
            "mu": float(p["mu"]),
            "omega": float(p["omega"]),
            "alpha": float(p["alpha[1]"]),
            "gamma": float(p["gamma[1]"]) if self.gjr else 0.0,
            "beta": float(p["beta[1]"]),
            "nu": float(p["nu"]),
        }
        self.fits.append({"fitted_until": i, **self.p})
        self._filter()

    def _filter(self) -> None:
        """sigma2[i]: the variance of day i's return given rows < i, for
        every row, with the current parameters (started at the sample
        variance of the first day)."""
        p = self.p
        e = self.y - p["mu"]
        s2 = np.empty_like(self.y)
        s2[:2] = np.nanvar(self.y[1 : self.first])
        w, a, g, b = p["omega"], p["alpha"], p["gamma"], p["beta"]
        prev_s2, ev = s2[1], e[1:]
        for k in range(2, len(self.y)):
            x = ev[k - 2]
            prev_s2 = w + (a + (g if x < 0 else 0.0)) * x * x + b * prev_s2
            s2[k] = prev_s2
        self.s2 = s2
        self.z = e / np.sqrt(s2)

    def _t_grid(self, n: int) -> np.ndarray:
        """Unit-variance t quantiles at (k + 0.5) / n, k < n (cached per fit)."""
        from scipy.stats import t as student

        key = ("grid", n, self.p["nu"])
        if key not in self._cache:
            grid = (np.arange(n) + 0.5) / n
            self._cache[key] = student.ppf(grid, self.p["nu"]) * self._std_t()
        return self._cache[key]

    def _std_t(self) -> float:
        nu = self.p["nu"]
        return math.sqrt((nu - 2.0) / nu)

    def forecast(self, i: int, horizons: list[int], n: int, rng: Any) -> dict[int, np.ndarray]:
        if self.refit and i - self.fits[-1]["fitted_until"] >= self.refit:
            self._fit(i)
        p = self.p
        grid = (np.arange(n) + 0.5) / n
        pool = self.z[1:i]
        out = {}
        if 1 in horizons:
            if self.filtered:  # the pool's quantiles at the grid (numpy's linear rule)
                z = np.interp(grid * (len(pool) - 1), np.arange(len(pool)), np.sort(pool))
            else:
                z = self._t_grid(n)
            out[1] = (p["mu"] + math.sqrt(self.s2[i]) * z) / GARCH_SCALE
        long = [h for h in horizons if h > 1]
        if long:
            hmax = max(long)
            s2 = np.full(n, self.s2[i])
            r = np.empty((n, hmax))
            for k in range(hmax):
                if self.filtered:
                    z = pool[rng.integers(0, len(pool), size=n)]
                else:
                    z = rng.standard_t(p["nu"], size=n) * self._std_t()
                eps = np.sqrt(s2) * z
                r[:, k] = (p["mu"] + eps) / GARCH_SCALE
                s2 = p["omega"] + (p["alpha"] + p["gamma"] * (eps < 0)) * eps**2 + p["beta"] * s2
            for h in long:
                out[h] = _compound(r, h)
        return out

    def exact(self, i: int, level: float) -> tuple[float, float]:
        """The 1-day VaR and ES, exactly: FHS, those of mu + sigma_i z over
        the standardized residuals z up to the day before (not of the n-point
        grid); parametric, the t quantile and t tail mean."""
        p, alpha = self.p, 1.0 - level
        sigma = math.sqrt(self.s2[i])
        if self.filtered:
            var_z, es_z = empirical_var_es(self.z[1:i], level)
            return (sigma * var_z - p["mu"]) / GARCH_SCALE, (sigma * es_z - p["mu"]) / GARCH_SCALE
        from scipy.stats import t as student

        key = ("tail", level, p["nu"])
        if key not in self._cache:
            q = float(student.ppf(alpha, p["nu"]))
            tail = (p["nu"] + q * q) / (p["nu"] - 1.0) * float(student.pdf(q, p["nu"])) / alpha
            self._cache[key] = q, tail
        q, tail = self._cache[key]
        sigma *= self._std_t()
        return -(p["mu"] + sigma * q) / GARCH_SCALE, -(p["mu"] - sigma * tail) / GARCH_SCALE


class _Vae:
    """The trained model's scenarios from the day's state:
    ``gen.from_today(horizon, n, seed, prices=<the last window + 1 prices
    up to the day before>)``, log returns turned into the portfolio's simple
    returns and compounded."""

    def __init__(self, gen: Any, prices: Any, weights: np.ndarray) -> None:
        self.gen, self.prices, self.w = gen, prices, weights
        self.rows = int(gen.model.window) + 1

    def forecast(
        self, i: int, horizons: list[int], n: int, seed: int
    ) -> dict[int, np.ndarray]:  # fmt: skip
        hist = self.prices.iloc[i - self.rows : i]
        scen = self.gen.from_today(horizon=max(horizons), n=n, seed=seed, prices=hist)
        x = np.asarray(scen.returns, dtype=np.float64)
        if x.shape[0] != n or x.shape[1] < max(horizons) or x.shape[2] != len(self.w):
            raise RuntimeError(
                f"from_today returned scenarios of shape {x.shape}, expected "
                f"({n}, {max(horizons)}, {len(self.w)})"
            )
        r = np.expm1(x[:, : max(horizons), :]) @ self.w
        return {h: _compound(r, h) for h in horizons}

    exact = None


# --------------------------------------------------------------------------
# the backtest


@dataclasses.dataclass
class VarBacktest:
    """The result of :func:`var_backtest`.

    table: one row per (model, horizon, level): ``days`` (observations:
        every day for 1 day, non-overlapping blocks for h days),
        ``exceptions``, ``expected`` (= days x (1 - level)), ``rate``,
        ``kupiec_p``, ``christoffersen_ind_p``, ``cc_p``, ``green`` /
        ``yellow`` / ``red`` (Basel zones of the rolling 250-observation
        windows; <NA> with fewer observations), ``z2``, ``z2_p``,
        ``mean_var``, ``mean_es`` (positive losses, fractions).
    forecasts: one row per day of the period: ``return_1d`` (the realized
        simple portfolio return), ``{model}_var{pct}_{h}d`` and
        ``{model}_es{pct}_{h}d`` for every model, level and horizon, and
        ``return_{h}d`` for h > 1 (the h days from that day; on the first day
        of each block only, NaN elsewhere).
    weights: float64 [assets] over ``assets``.
    fits: per GARCH model, its parameter sets (percent units), one per fit.
    """

    table: Any
    forecasts: Any
    weights: np.ndarray
    assets: list[str]
    models: tuple[str, ...]
    levels: tuple[float, ...]
    horizons: tuple[int, ...]
    start: str
    end: str
    n: int
    fits: dict[str, list[dict[str, float]]]

    def plot(self, path: str | Path, level: float = 0.99, horizon: int = 1) -> Path:
        """Writes a PNG of the realized returns against each model's VaR at
        ``level`` and ``horizon`` (99 %, 1 day by default), exceptions
        marked; atomically (a temporary file renamed). Returns the path."""
        level = _check_level(level)
        if level not in self.levels:
            raise ValueError(f"level {level} was not backtested; levels: {list(self.levels)}")
        if horizon not in self.horizons:
            raise ValueError(
                f"horizon {horizon} was not backtested; horizons: {list(self.horizons)}"
            )
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        from ._figures import var_backtest_figure

        path = Path(path)
        fig = var_backtest_figure(self, level, horizon)
        try:
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format="png", dpi=110)
        finally:
            plt.close(fig)
        return path

    def __repr__(self) -> str:
        return (
            f"VarBacktest({self.start}..{self.end}, models {list(self.models)}, "
            f"levels {list(self.levels)}, horizons {list(self.horizons)}, n={self.n})"
        )


def _column(model: str, stat: str, level: float, h: int) -> str:
    return f"{model}_{stat}{100 * level:g}_{h}d"


def _check_models(models: Any) -> tuple[str, ...]:
    if isinstance(models, str):
        models = (models,)
    try:
        out = tuple(models)
    except TypeError:
        raise ValueError(
            f"models must be a sequence of names from {MODELS}, got {models!r}"
        ) from None
    if not out:
        raise ValueError(f"models is empty; choose from {MODELS}")
    bad = [m for m in out if m not in MODELS]
    if bad:
        raise ValueError(f"unknown model(s) {bad} in models; choose from {MODELS}")
    if len(set(out)) != len(out):
        raise ValueError(f"models lists a name twice: {list(out)}")
    return out


def _check_tuple(name: str, values: Any, check) -> tuple:
    if isinstance(values, (int, float, np.integer, np.floating)) and not isinstance(values, bool):
        values = (values,)
    try:
        out = tuple(check(v) for v in values)
    except TypeError:
        raise ValueError(f"{name} must be a sequence, got {values!r}") from None
    if not out:
        raise ValueError(f"{name} is empty")
    if len(set(out)) != len(out):
        raise ValueError(f"{name} lists a value twice: {list(out)}")
    return tuple(sorted(out))


def _horizon(v: Any) -> int:
    return as_int("horizons", v, 1)


def _weights(weights: Any, assets: list[str]) -> np.ndarray:
    a = len(assets)
    if weights is None:
        return np.full(a, 1.0 / a)
    if isinstance(weights, dict):
        unknown = [k for k in weights if k not in assets]
        if unknown:
            raise ValueError(f"weights name asset(s) {unknown} not in the model's assets {assets}")
        w = np.array([float(weights.get(k, 0.0)) for k in assets])
    else:
        try:
            w = np.asarray(weights, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise ValueError(
                f"weights must be numbers or a dict asset -> weight, got {weights!r}"
            ) from None
        if len(w) != a:
            raise ValueError(
                f"weights must be {a} number(s), one per asset ({', '.join(assets)}), got {len(w)}"
            )
    if not np.all(np.isfinite(w)):
        raise ValueError("weights must be finite")
    if not np.any(w != 0):
        raise ValueError("weights are all zero: no portfolio")
    return w


def _prices(prices: Any, assets: list[str] | None, n_assets: int | None):
    from .data import load_prices

    frame = load_prices(prices)
    if assets is None:
        return frame, list(frame.columns)
    missing = [a for a in assets if a not in frame.columns]
    if not missing:
        return frame[assets], assets
    generic = all(a == f"asset{k}" for k, a in enumerate(assets))
    if generic and frame.shape[1] == n_assets:  # a generator built without data
        return frame, list(frame.columns)
    raise ValueError(
        f"prices lack the model's asset column(s) {missing} (columns: {list(frame.columns)})"
    )


def _check_overlap(gen: Any, first: Any, last: Any) -> None:
    import pandas as pd

    for a, b in getattr(gen.model, "trained_periods", None) or []:
        if pd.Timestamp(a) <= last and pd.Timestamp(b) >= first:
            raise ValueError(
                f"the backtest period {first.date()}..{last.date()} overlaps the model's "
                f"training period {a}..{b}: judge a model on days it never trained on "
                "(start the backtest after its training data, or train on an earlier period)"
            )


def _seed(seed: int, tag: int, day: Any) -> int:
    """A 63-bit seed for (seed, forecaster, calendar day): the same day
    gets the same draws whatever the period around it."""
    ss = np.random.SeedSequence([seed, tag, int(day.toordinal())])
    return int(ss.generate_state(1, np.uint64)[0] >> np.uint64(1))


def var_backtest(
    gen: Any,
    prices: Any,
    start: str,
    end: str,
    weights: Any = None,
    levels: Sequence[float] = (0.95, 0.99),
    horizons: Sequence[int] = (1, 10),
    n: int = 1000,
    seed: int = 0,
    models: Sequence[str] = MODELS,
    refit: int | None = None,
    progress: bool = False,
    simulations: int = Z2_SIMULATIONS,
) -> VarBacktest:
    """Out-of-sample VaR / ES backtest of an asset or a portfolio.

    gen: a :class:`stressvae.ScenarioGenerator` (the ``"vae"`` forecaster;
        None when ``models`` leaves it out). Its model must never have
        trained on a day of the period (``model.trained_periods``), else
        ValueError naming the overlapping training period.
    prices: daily price levels (DataFrame with the model's asset columns, a
        Series, or a CSV / parquet path; :func:`stressvae.load_prices`
        checks). The history before ``start`` feeds the forecasts and the
        GARCH fits.
    start, end: the period (dates; inclusive). Every trading day t in it is
        forecast from the prices up to the trading day before t only.
    weights: the portfolio, one weight per asset (or a dict asset -> weight,
        the others 0); default the asset alone, or equal weights. Returns
        are simple and the portfolio is rebalanced to ``weights`` daily:
        ``r_p = sum_a w_a (exp(log_return_a) - 1)``.
    levels: VaR / ES confidence levels in (0, 1).
    horizons: days ahead (>= 1). The h-day return from day t is compounded
        over t..t+h-1. 1 day is evaluated every day; h > 1 on non-overlapping
        blocks (days 0, h, 2h, ... of the period, the last block complete)
        so that the exceptions are independent under H0 and the coverage
        tests stay valid.
    n: draws per forecast (the VAE's scenarios and the GARCH simulations).
    seed: the draws of day t are a function of (seed, model, t) alone.
    models: any of ``"vae"`` (``gen.from_today`` from the last ``window +
        1`` prices before t), ``"hs"`` (historical simulation, 250 days; h
        days: the 250 overlapping h-day compounded returns ending on the last
        250 days), ``"fhs_gjr"`` (filtered historical simulation on a
        GJR-GARCH(1,1)-t), ``"garch_t"`` (GARCH(1,1)-t, parametric; h days
        simulated). The classical models work on the portfolio's own return
        series. GARCH fits: ``arch_model(100 * r_p, mean="Constant",
        vol="GARCH", p=1, o=1 (GJR) or 0, q=1, dist="t")`` on all days
        before ``start`` (at least 500).
    refit: refit the GARCH models every ``refit`` days of the period on all
        days before (default None: parameters fixed, the variance filtered
        daily). The VAE is never refit.
    progress: a bar over the days.
    simulations: H0 samples for the Z2 p-value.

    Returns a :class:`VarBacktest` (``table``, ``forecasts``, ``plot``).
    Needs before ``start``: ``window + 1`` prices (vae), 250 + max(horizons)
    - 1 returns (hs), 500 returns (GARCH models).
    """
    import pandas as pd

    models = _check_models(models)
    levels = _check_tuple("levels", levels, lambda v: _check_level(v, "levels"))
    horizons = _check_tuple("horizons", horizons, _horizon)
    n = as_int("n", n, 1)
    seed = as_int("seed", seed, 0, 2**64 - 1)
    simulations = as_int("simulations", simulations, 1)
    if refit is not None:
        refit = as_int("refit", refit, 1)
    if "vae" in models:
        if gen is None:
            raise ValueError("gen is None but models include 'vae'; pass a ScenarioGenerator")
        if not callable(getattr(gen, "from_today", None)):
            raise ValueError(f"gen must be a ScenarioGenerator, got {type(gen).__name__}")
        frame, assets = _prices(prices, list(gen.asset_names), int(gen.model.n_assets))
    else:
        frame, assets = _prices(prices, None, None)
    w = _weights(weights, assets)

    idx = frame.index
    try:
        t0, t1 = pd.Timestamp(start), pd.Timestamp(end)
    except (TypeError, ValueError):
        raise ValueError(f"start and end must be dates, got {start!r}, {end!r}") from None
    if t0 > t1:
        raise ValueError(f"start {t0.date()} is after end {t1.date()}")
    if t0 < idx[0] or t1 > idx[-1]:
        raise ValueError(
            f"the period {t0.date()}..{t1.date()} is not inside the prices "
            f"({idx[0].date()}..{idx[-1].date()})"
        )
    first = int(idx.searchsorted(t0, side="left"))
    stop = int(idx.searchsorted(t1, side="right"))
    if stop <= first:
        raise ValueError(f"no trading day in the prices between {t0.date()} and {t1.date()}")
    days = idx[first:stop]
    if len(days) < max(horizons):
        raise ValueError(
            f"the period has {len(days)} trading day(s), fewer than the longest horizon "
            f"{max(horizons)}"
        )
    if "vae" in models:
        _check_overlap(gen, days[0], days[-1])
    need = {
        "vae": (int(gen.model.window) + 1 if "vae" in models else 0, "prices"),
        "hs": (HS_DAYS + max(horizons) - 1 + 1, "prices"),  # returns + the first price
        "fhs_gjr": (MIN_GARCH_DAYS + 1, "prices"),
        "garch_t": (MIN_GARCH_DAYS + 1, "prices"),
    }
    for m in models:
        rows = need[m][0]
        if first < rows:
            raise ValueError(
                f"model {m!r} needs {rows} prices before start ({rows - 1} returns), the prices "
                f"have {first} before {days[0].date()}"
            )

    logret = np.log(frame.to_numpy(np.float64))
    simple = np.full(len(idx), np.nan)
    simple[1:] = np.expm1(np.diff(logret, axis=0)) @ w
    if np.any(1.0 + simple[1:stop] <= 0):
        raise ValueError("the portfolio loses 100 % or more in a day: check the weights")

    forecasters: dict[str, Any] = {}
    for m in models:
        if m == "vae":
            forecasters[m] = _Vae(gen, frame, w)
        elif m == "hs":
            forecasters[m] = _Historical(simple)
        else:
            forecasters[m] = _Garch(
                simple, first, gjr=m == "fhs_gjr", filtered=m == "fhs_gjr", refit=refit
            )

    count = len(days)
    blocks = {h: [j for j in range(0, count - h + 1, h)] for h in horizons}
    draws = {(m, h): [] for m in models for h in horizons}
    risk = {(m, h, lv): ([], []) for m in models for h in horizons for lv in levels}
    bar = progress_bar(count, progress, unit="day", desc="VaR backtest")
    try:
        for j in range(count):
            hs_today = [h for h in horizons if j % h == 0 and j + h <= count]
            if not hs_today:
                bar.update(1)
                continue
            i = first + j
            for m in models:
                f = forecasters[m]
                s = _seed(seed, _TAGS[m], days[j])
                got = f.forecast(i, hs_today, n, s if m == "vae" else np.random.default_rng(s))
                for h in hs_today:
                    d = got[h]
                    if not np.all(np.isfinite(d)):
                        raise RuntimeError(
                            f"model {m!r} forecast non-finite returns on {days[j].date()}"
                        )
                    draws[(m, h)].append(d.astype(np.float32))
                    for lv in levels:
                        exact = f.exact is not None and h == 1
                        v, e = f.exact(i, lv) if exact else empirical_var_es(d, lv)
                        risk[(m, h, lv)][0].append(v)
                        risk[(m, h, lv)][1].append(e)
            bar.update(1)
    finally:
        bar.close()

    realized = {}
    cum = np.concatenate([[0.0], np.cumsum(np.log1p(simple[first:stop]))])
    for h in horizons:
        js = np.array(blocks[h], dtype=np.int64)
        realized[h] = np.expm1(cum[js + h] - cum[js])

    rows = []
    for m in models:
        for h in horizons:
            x = realized[h]
            d = np.stack(draws[(m, h)])
            for lv in levels:
                var = np.asarray(risk[(m, h, lv)][0])
                es = np.asarray(risk[(m, h, lv)][1])
                rows.append(_row(m, h, lv, x, var, es, d, simulations, seed))
    table = pd.DataFrame(rows)
    for c in ("green", "yellow", "red"):
        table[c] = table[c].astype("Int64")

    fc = pd.DataFrame({"return_1d": simple[first:stop]}, index=pd.DatetimeIndex(days, name="date"))
    for h in horizons:
        pos = np.array(blocks[h], dtype=np.int64)
        if h > 1:
            col = np.full(count, np.nan)
            col[pos] = realized[h]
            fc[f"return_{h}d"] = col
        for m in models:
            for lv in levels:
                for k, stat in enumerate(("var", "es")):
                    col = np.full(count, np.nan)
                    col[pos] = risk[(m, h, lv)][k]
                    fc[_column(m, stat, lv, h)] = col
    fits = {m: forecasters[m].fits for m in models if isinstance(forecasters[m], _Garch)}
    return VarBacktest(
        table=table,
        forecasts=fc,
        weights=w,
        assets=assets,
        models=models,
        levels=levels,
        horizons=horizons,
        start=str(days[0].date()),
        end=str(days[-1].date()),
        n=n,
        fits=fits,
    )


def _row(m, h, lv, x, var, es, draws, simulations, seed) -> dict[str, Any]:
    alpha = 1.0 - lv
    t = len(x)
    row: dict[str, Any] = {"model": m, "horizon": h, "level": lv, "days": t}
    nan = float("nan")
    hits = x < -var
    k = int(hits.sum())
    ch = christoffersen(hits, lv)
    zones = (
        traffic_light(hits, lv) if t >= ZONE_DAYS else {"green": None, "yellow": None, "red": None}
    )
    z_seed = int(
        np.random.SeedSequence([seed, _Z2_TAG, _TAGS[m], h, round(lv * 1e6)]).generate_state(1)[0]
    )
    if np.all(es > 0):
        z2, z2_p = acerbi_szekely_z2(x, var, es, lv, draws, simulations, z_seed)
    else:
        z2, z2_p = nan, nan
    row.update(
        exceptions=k,
        expected=t * alpha,
        rate=k / t,
        kupiec_p=kupiec_pof(k, t, lv)[1],
        christoffersen_ind_p=ch["ind_p"],
        cc_p=ch["cc_p"],
        **zones,
        z2=z2,
        z2_p=z2_p,
        mean_var=float(np.mean(var)),
        mean_es=float(np.mean(es)),
    )
    return row

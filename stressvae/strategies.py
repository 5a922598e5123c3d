"""Trading strategies, defined in vectorbt's terms.

A strategy turns a chunk of close prices (a DataFrame, one column per path,
rows = days, the start price first) into a vectorbt Portfolio. vectorbt is
imported here, when a strategy runs, never at package import. The built-in
strategies also have a fast path (stressvae._backtest_nb) that computes the
same metrics without building a Portfolio; user strategies always run on
vectorbt.

Built-in, long only, all-in, filled at the signal bar's close (vectorbt's
``from_signals`` defaults): :class:`BuyAndHold`, :class:`MACrossover`,
:class:`TimeSeriesMomentum`, :class:`RSIMeanReversion`; sized by target
percent (``from_orders``): :class:`VolatilityTarget`; for several assets, one
portfolio per scenario with its cash shared (:class:`PortfolioStrategy`):
:class:`EqualWeight`, :class:`FixedWeights`, :class:`InverseVolatility`,
:class:`MinimumVariance`, whose target weights come from one numba-compilable
function, :func:`target_weights_1d` (compiled by numba on first use).
:class:`Custom` wraps a user callable.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ._checks import as_int

__all__ = [
    "BuyAndHold",
    "Custom",
    "EqualWeight",
    "FixedWeights",
    "InverseVolatility",
    "MACrossover",
    "MinimumVariance",
    "PortfolioStrategy",
    "RSIMeanReversion",
    "Strategy",
    "TimeSeriesMomentum",
    "VolatilityTarget",
    "parse",
]


def _pos_float(name: str, value: Any, lo: float = 0.0, strict: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or (v <= lo if strict else v < lo):
        raise ValueError(f"{name} must be finite and {'>' if strict else '>='} {lo}, got {value!r}")
    return v


class Strategy:
    """Base class. Subclasses set ``name`` and implement :meth:`portfolio`.

    ``warmup``: bars of history the strategy needs before its first signal
    (the stress test checks paths are long enough). ``fast``: a key of the
    fast kernels that compute the same metrics without vectorbt, or None.
    ``portfolio_kind``: "per_asset" (each asset a separate backtest) or
    "grouped" (all assets of a scenario in one cash-sharing portfolio).
    """

    name: str = "strategy"
    warmup: int = 0
    fast: str | None = None
    portfolio_kind: str = "per_asset"

    def portfolio(
        self,
        close,
        *,
        fees: float,
        slippage: float,
        init_cash: float,
        freq: str,
        group_by: Any = None,
    ):
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        return {}

    def bind(self, asset_names: list) -> Strategy:
        """This strategy for scenarios of these assets (a strategy that
        names assets checks them here); returns self or a resolved copy."""
        return self

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.params() == other.params()

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted(self.params().items()))))

    def describe(self) -> str:
        p = ", ".join(f"{k}={v}" for k, v in self.params().items())
        return f"{type(self).__name__}({p})"

    def __repr__(self) -> str:
        return self.describe()


def _signals_portfolio(close, entries, exits, fees, slippage, init_cash, freq):
    import vectorbt as vbt

    return vbt.Portfolio.from_signals(
        close, entries, exits, fees=fees, slippage=slippage, init_cash=init_cash, freq=freq
    )


class BuyAndHold(Strategy):
    """Buy with all cash at the first close, hold to the end."""

    name = "buy_and_hold"
    fast = "buy_and_hold"

    def portfolio(self, close, *, fees, slippage, init_cash, freq, group_by=None):
        import vectorbt as vbt

        return vbt.Portfolio.from_holding(
            close, fees=fees, slippage=slippage, init_cash=init_cash, freq=freq
        )


class MACrossover(Strategy):
    """Simple moving averages of the close: enter long when the fast one
    crosses above the slow one, exit when it crosses below (vectorbt's
    ``MA.run`` and ``ma_crossed_above`` / ``ma_crossed_below``)."""

    name = "ma_crossover"
    fast = "ma_crossover"

    def __init__(self, fast_window: int = 10, slow_window: int = 40):
        self.fast_window = as_int("fast_window", fast_window, 1)
        self.slow_window = as_int("slow_window", slow_window, 2)
        if self.fast_window >= self.slow_window:
            raise ValueError(
                f"fast_window ({fast_window}) must be shorter than slow_window ({slow_window})"
            )
        self.warmup = self.slow_window

    def params(self):
        return {"fast_window": self.fast_window, "slow_window": self.slow_window}

    def signals(self, close):
        import vectorbt as vbt

        fast = vbt.MA.run(close, self.fast_window)
        slow = vbt.MA.run(close, self.slow_window)
        entries = fast.ma_crossed_above(slow)
        exits = fast.ma_crossed_below(slow)
        return _same_columns(entries, close), _same_columns(exits, close)

    def portfolio(self, close, *, fees, slippage, init_cash, freq, group_by=None):
        entries, exits = self.signals(close)
        return _signals_portfolio(close, entries, exits, fees, slippage, init_cash, freq)


class TimeSeriesMomentum(Strategy):
    """Long while the trailing ``lookback``-day return is positive, flat
    otherwise (entries when it turns positive, exits when it turns <= 0)."""

    name = "momentum"
    fast = "momentum"

    def __init__(self, lookback: int = 20):
        self.lookback = as_int("lookback", lookback, 1)
        self.warmup = self.lookback

    def params(self):
        return {"lookback": self.lookback}

    def signals(self, close):
        mom = close / close.shift(self.lookback) - 1.0
        up = mom > 0
        return up, (mom <= 0)

    def portfolio(self, close, *, fees, slippage, init_cash, freq, group_by=None):
        entries, exits = self.signals(close)
        return _signals_portfolio(close, entries, exits, fees, slippage, init_cash, freq)


class RSIMeanReversion(Strategy):
    """Buy when the RSI crosses below ``lower`` (oversold), sell when it
    crosses above ``upper`` (vectorbt's ``RSI.run``)."""

    name = "rsi_reversion"
    fast = "rsi_reversion"

    def __init__(self, window: int = 14, lower: float = 30.0, upper: float = 70.0):
        self.window = as_int("window", window, 2)
        self.lower = _pos_float("lower", lower)
        self.upper = _pos_float("upper", upper)
        if not self.lower < self.upper < 100:
            raise ValueError(f"need 0 < lower < upper < 100, got lower={lower}, upper={upper}")
        self.warmup = self.window

    def params(self):
        return {"window": self.window, "lower": self.lower, "upper": self.upper}

    def signals(self, close):
        import vectorbt as vbt

        rsi = vbt.RSI.run(close, self.window)
        entries = rsi.rsi_crossed_below(self.lower)
        exits = rsi.rsi_crossed_above(self.upper)
        return _same_columns(entries, close), _same_columns(exits, close)

    def portfolio(self, close, *, fees, slippage, init_cash, freq, group_by=None):
        entries, exits = self.signals(close)
        return _signals_portfolio(close, entries, exits, fees, slippage, init_cash, freq)


class VolatilityTarget(Strategy):
    """Hold a fraction of wealth in the asset sized to a target annualized
    volatility: target / trailing realized volatility (``lookback`` days,
    annualized with 252), capped at ``max_leverage``; rebalanced daily with
    vectorbt's ``from_orders`` (size type target percent). Flat until the
    volatility is known."""

    name = "vol_target"

    def __init__(self, target: float = 0.10, lookback: int = 20, max_leverage: float = 1.0):
        self.target = _pos_float("target", target)
        self.lookback = as_int("lookback", lookback, 2)
        self.max_leverage = _pos_float("max_leverage", max_leverage)
        self.warmup = self.lookback + 1

    def params(self):
        return {"target": self.target, "lookback": self.lookback, "max_leverage": self.max_leverage}

    def weights(self, close):
        r = np.log(close).diff()
        vol = r.rolling(self.lookback).std() * np.sqrt(252.0)
        return (self.target / vol).clip(upper=self.max_leverage).fillna(0.0)

    def portfolio(self, close, *, fees, slippage, init_cash, freq, group_by=None):
        import vectorbt as vbt

        return vbt.Portfolio.from_orders(
            close,
            self.weights(close),
            size_type="targetpercent",
            fees=fees,
            slippage=slippage,
            init_cash=init_cash,
            freq=freq,
        )


# ############# Portfolio strategies (several assets, cash shared) ############# #

HOLD = 1 << 62  # ``every`` that never comes again: bought on day 0, then held
WEIGHT_KINDS = {"fixed_weights": 0, "inverse_vol": 1, "min_variance": 2}
VOL_FLOOR = 1e-12  # realized volatility below this counts as this (a flat asset)
MINVAR_ITERATIONS = 200  # projected-gradient steps of the long-only solver


def target_weights_1d(
    close, kind, every, band, base, lookback, long_only, shrink, iterations, out
):  # fmt: skip
    """The target weights of one scenario's portfolio, day by day.

    Written in the subset of Python that numba compiles (and compiled by
    :func:`weights_kernel`): both backends, vectorbt's ``from_orders`` and
    the fast path, call this one compiled function, so they trade on the
    same weights, bit for bit.

    close: float64 [T, A] prices (row 0 the start price, each > 0).
    kind: 0 fixed weights (``base``, rebalanced on days 0, every, 2 every,
    ... and on a day when a weight has drifted more than ``band`` from its
    target, the drift measured from the prices since the last rebalance as
    if the targets had been held exactly; ``band`` NaN: no band); 1 inverse
    volatility; 2 minimum variance (both from the log returns of the
    ``lookback`` days up to and including the day, rebalanced on days
    lookback, lookback + every, ...). ``long_only`` (kind 2): weights >= 0
    (projected gradient on the simplex, ``iterations`` accelerated steps
    from equal weights), else the closed form; the sample covariance is
    shrunk toward its mean variance: (1 - shrink) S + shrink tr(S) / A I.
    out: float64 [T, A], written: the target weights (fractions of the
    portfolio value, each row summing to 1) on rebalancing days, NaN on the
    others (no order).
    """
    n, a_n = close.shape
    for i in range(n):
        for a in range(a_n):
            out[i, a] = np.nan
    if kind == 0:
        ref = 0
        for i in range(n):
            due = i % every == 0
            if not due and band == band:  # band not NaN
                tot = 0.0
                for a in range(a_n):
                    tot += base[a] * (close[i, a] / close[ref, a])
                for a in range(a_n):
                    drifted = base[a] * (close[i, a] / close[ref, a]) / tot
                    if abs(drifted - base[a]) > band:
                        due = True
            if due:
                ref = i
                for a in range(a_n):
                    out[i, a] = base[a]
        return
    rets = np.empty((n, a_n))  # daily log returns, row j: day j - 1 to day j
    for j in range(1, n):
        for a in range(a_n):
            rets[j, a] = np.log(close[j, a] / close[j - 1, a])
    mean = np.empty(a_n)
    cov = np.empty((a_n, a_n))
    x = np.empty(a_n)
    y = np.empty(a_n)
    v = np.empty(a_n)
    g = np.empty(a_n)
    for i in range(lookback, n, every):
        first = i - lookback + 1  # the window: returns of days first .. i
        for a in range(a_n):
            s = 0.0
            for j in range(first, i + 1):
                s += rets[j, a]
            mean[a] = s / lookback
        for a in range(a_n):
            for b in range(a, a_n if kind == 2 else a + 1):  # inverse vol: variances only
                s = 0.0
                for j in range(first, i + 1):
                    s += (rets[j, a] - mean[a]) * (rets[j, b] - mean[b])
                cov[a, b] = s / (lookback - 1)
                cov[b, a] = cov[a, b]
        if kind == 1:
            tot = 0.0
            for a in range(a_n):
                inv = 1.0 / max(np.sqrt(cov[a, a]), VOL_FLOOR)
                x[a] = inv
                tot += inv
            for a in range(a_n):
                out[i, a] = x[a] / tot
            continue
        # minimum variance: shrink toward the mean variance (stays positive definite)
        tr = 0.0
        for a in range(a_n):
            tr += cov[a, a]
        tr = max(tr / a_n, VOL_FLOOR * VOL_FLOOR)
        for a in range(a_n):
            for b in range(a_n):
                cov[a, b] = (1.0 - shrink) * cov[a, b]
            cov[a, a] += shrink * tr
        if not long_only:  # w = S^-1 1 / 1' S^-1 1, by Cholesky (S = L L')
            for a in range(a_n):
                for b in range(a + 1):
                    s = cov[a, b]
                    for k in range(b):
                        s -= cov[a, k] * cov[b, k]
                    if a == b:
                        cov[a, a] = np.sqrt(max(s, VOL_FLOOR * VOL_FLOOR))
                    else:
                        cov[a, b] = s / cov[b, b]
            for a in range(a_n):  # L y = 1
                s = 1.0
                for k in range(a):
                    s -= cov[a, k] * y[k]
                y[a] = s / cov[a, a]
            tot = 0.0
            for a in range(a_n - 1, -1, -1):  # L' x = y
                s = y[a]
                for k in range(a + 1, a_n):
                    s -= cov[k, a] * x[k]
                x[a] = s / cov[a, a]
            for a in range(a_n):
                tot += x[a]
            for a in range(a_n):
                out[i, a] = x[a] / tot
            continue
        # long only: accelerated projected gradient (FISTA with adaptive
        # restart) on the simplex. Step 1 / L: L is 1.05 x the top eigenvalue
        # of S from 30 power steps (from equal weights), at most the largest
        # row sum of |S| (a bound on it); cov is divided by L once. At most
        # ``iterations`` steps, fewer once a step moves no weight by more
        # than 1e-10.
        lip = 0.0
        for a in range(a_n):
            s = 0.0
            for b in range(a_n):
                s += abs(cov[a, b])
            lip = max(lip, s)
            y[a] = 1.0 / np.sqrt(a_n)
        top = 0.0
        for _ in range(30):
            norm = 0.0
            top = 0.0
            for a in range(a_n):
                s = 0.0
                for b in range(a_n):
                    s += cov[a, b] * y[b]
                g[a] = s
                norm += s * s
                top += y[a] * s
            norm = np.sqrt(norm)
            if not norm > 0:
                break
            for a in range(a_n):
                y[a] = g[a] / norm
        if top > 0:
            lip = min(lip, 1.05 * top)
        for a in range(a_n):
            for b in range(a_n):
                cov[a, b] /= lip
        for a in range(a_n):
            x[a] = 1.0 / a_n
            y[a] = x[a]
        t = 1.0
        for _ in range(iterations):
            for a in range(a_n):
                s = 0.0
                for b in range(a_n):
                    s += cov[a, b] * y[b]
                g[a] = y[a] - s
            # projection onto {w >= 0, sum w = 1}: sorted descending (v, by
            # insertion), the threshold theta from the largest prefix that stays positive
            for a in range(a_n):
                k = a - 1
                while k >= 0 and v[k] < g[a]:
                    v[k + 1] = v[k]
                    k -= 1
                v[k + 1] = g[a]
            css = 0.0
            theta = 0.0
            for k in range(a_n):
                css += v[k]
                th = (css - 1.0) / (k + 1)
                if v[k] - th > 0:
                    theta = th
            moved = 0.0
            turn = 0.0  # (y - x_new) . (x_new - x): > 0, the momentum points uphill
            for a in range(a_n):
                v[a] = max(g[a] - theta, 0.0)
                moved = max(moved, abs(v[a] - x[a]))
                turn += (y[a] - v[a]) * (v[a] - x[a])
            t_next = (1.0 + np.sqrt(1.0 + 4.0 * t * t)) / 2.0
            if turn > 0:
                t_next = 1.0
            for a in range(a_n):
                y[a] = v[a] + ((t - 1.0) / t_next) * (v[a] - x[a]) if turn <= 0 else v[a]
                x[a] = v[a]
            t = t_next
            if moved <= 1e-10:
                break
        tot = 0.0
        for a in range(a_n):
            tot += x[a]
        for a in range(a_n):
            out[i, a] = x[a] / tot


# Set by weights_kernel() when it compiles: the compiled one-scenario kernel
# and numba's parallel range (plain ``range`` until then).
_weights_1d = target_weights_1d
_prange = range


def target_weights_2d(
    close, n_assets, kind, every, band, base, lookback, long_only, shrink, iterations, out
):  # fmt: skip
    """:func:`target_weights_1d` on every scenario of close (float64 [T,
    scenarios x n_assets], each scenario's assets side by side) into out
    (the same shape), scenarios in parallel once compiled."""
    n = close.shape[0]
    for g in _prange(close.shape[1] // n_assets):
        c = np.empty((n, n_assets))
        w = np.empty((n, n_assets))
        for i in range(n):
            for a in range(n_assets):
                c[i, a] = close[i, g * n_assets + a]
        _weights_1d(c, kind, every, band, base, lookback, long_only, shrink, iterations, w)
        for i in range(n):
            for a in range(n_assets):
                out[i, g * n_assets + a] = w[i, a]


_KERNEL: list = []


def weights_kernel():
    """:func:`target_weights_2d` compiled by numba (imported here, on first
    use; cached on disk with the one-scenario kernel, in this file, so a
    change to either recompiles both): the one function both backends
    take their weights from, so they trade on the same numbers."""
    global _weights_1d, _prange
    if not _KERNEL:
        import numba

        _weights_1d = numba.njit(cache=True, error_model="numpy")(target_weights_1d)
        _prange = numba.prange
        jit = numba.njit(parallel=True, cache=True, error_model="numpy")
        _KERNEL.append(jit(target_weights_2d))
    return _KERNEL[0]


def group_size(group_by: Any, n_columns: int) -> int:
    """Assets per scenario from the column grouping (scenario labels, one per
    column, each scenario's columns next to each other, all the same size)."""
    if group_by is None:
        raise ValueError("a portfolio strategy needs the scenario grouping of the columns")
    g = np.asarray(group_by)
    if g.shape != (n_columns,) or n_columns == 0:
        raise ValueError(f"group_by must label each of the {n_columns} columns, got {g.shape}")
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    sizes = np.diff(np.r_[starts, n_columns])
    if (sizes != sizes[0]).any() or len(np.unique(g)) != len(starts):
        raise ValueError("group_by must put each scenario's assets in adjacent columns, "
                         "the same number for every scenario")  # fmt: skip
    return int(sizes[0])


class PortfolioStrategy(Strategy):
    """Base of the multi-asset strategies: one portfolio per scenario with
    cash shared across its assets, held at target weights (fractions of the
    portfolio's value) set on rebalancing days by :meth:`kernel_params`,
    through vectorbt's ``from_orders`` (size type target percent, cash
    sharing, call sequence auto: sells before buys) or the fast path, which
    reproduces it order by order. Long only unless said otherwise."""

    portfolio_kind = "grouped"
    fast = None  # set by subclasses: their kind in WEIGHT_KINDS

    def kernel_params(self, n_assets: int) -> dict:
        """Arguments of :func:`target_weights_1d` for ``n_assets`` assets."""
        raise NotImplementedError

    def target_weights(self, close: np.ndarray, n_assets: int) -> np.ndarray:
        """float64 [T, columns] target weights for the close matrix [T,
        columns] (each scenario's ``n_assets`` columns side by side): NaN
        where no order is sent."""
        p = self.kernel_params(n_assets)
        close = np.ascontiguousarray(close, dtype=np.float64)
        if close.ndim != 2 or close.shape[1] % n_assets:
            raise ValueError(f"close must be [T, scenarios x {n_assets}], got shape {close.shape}")
        out = np.empty_like(close)
        weights_kernel()(
            close, n_assets, WEIGHT_KINDS[self.fast], int(p["every"]), float(p["band"]),
            np.ascontiguousarray(p["base"], dtype=np.float64), int(p["lookback"]),
            bool(p["long_only"]), float(p["shrink"]), int(p["iterations"]), out,
        )  # fmt: skip
        return out

    def portfolio(self, close, *, fees, slippage, init_cash, freq, group_by=None):
        import pandas as pd
        import vectorbt as vbt

        a = group_size(group_by, close.shape[1])
        size = pd.DataFrame(
            self.target_weights(close.to_numpy(np.float64), a),
            index=close.index,
            columns=close.columns,
        )
        return vbt.Portfolio.from_orders(
            close,
            size,
            size_type="targetpercent",
            group_by=group_by,
            cash_sharing=True,
            call_seq="auto",
            fees=fees,
            slippage=slippage,
            init_cash=init_cash,
            freq=freq,
        )


def _base_params(**kw) -> dict:
    p = {"every": 1, "band": np.nan, "base": np.zeros(1), "lookback": 1, "long_only": True,
         "shrink": 0.0, "iterations": 0}  # fmt: skip
    p.update(kw)
    return p


class EqualWeight(PortfolioStrategy):
    """Each asset held at 1 / assets of the value, rebalanced daily
    (``rebalance=True``) or only bought at the start."""

    name = "equal_weight"
    fast = "fixed_weights"

    def __init__(self, rebalance: bool = True):
        self.rebalance = bool(rebalance)

    def params(self):
        return {"rebalance": self.rebalance}

    def kernel_params(self, n_assets):
        base = np.full(n_assets, 1.0 / n_assets)
        return _base_params(every=1 if self.rebalance else HOLD, base=base)


class FixedWeights(PortfolioStrategy):
    """Fixed target weights, rebalanced every ``every`` days (day 0, every,
    2 every, ...) and, with ``band``, on any day when an asset's weight has
    drifted more than ``band`` (absolute, 0.05 = 5 points) from its target.

    weights: a sequence in the data's asset order, or a dict asset name ->
    weight (assets left out get 0); each >= 0, summing to 1 within 1e-6.
    The drift is measured from the prices since the last rebalance (the
    weights the targets would have drifted to), so it is the same for every
    backend."""

    name = "fixed_weights"
    fast = "fixed_weights"

    def __init__(self, weights: Any, every: int = 21, band: float | None = None):
        if isinstance(weights, dict):
            if not weights:
                raise ValueError("weights must not be empty")
            names = list(weights)
            values = [weights[k] for k in names]
        elif isinstance(weights, (str, bytes)) or not hasattr(weights, "__len__"):
            raise ValueError(
                f"weights must be a sequence of numbers or a dict asset -> weight, got {weights!r}"
            )
        else:
            names = None
            values = list(np.asarray(weights, dtype=object).reshape(-1))
            if len(values) < 1:
                raise ValueError("weights must not be empty")
        keys = [repr(k) for k in names] if names else [str(i) for i in range(len(values))]
        pairs = zip(keys, values, strict=True)
        w = [_pos_float(f"weights[{k}]", v, strict=False) for k, v in pairs]
        total = math.fsum(w)
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"weights must sum to 1 (within 1e-6), got {total!r}")
        self.names = None if names is None else [str(k) for k in names]
        self.weights = tuple(w)
        self.every = as_int("every", every, 1)
        self.band = None if band is None else _pos_float("band", band)

    def params(self):
        w = dict(zip(self.names, self.weights, strict=True)) if self.names else self.weights
        return {"weights": str(w), "every": self.every, "band": self.band}

    def weight_vector(self, asset_names: list) -> np.ndarray:
        """float64 [assets] in the order of ``asset_names``."""
        n = len(asset_names)
        if self.names is None:
            if len(self.weights) != n:
                raise ValueError(
                    f"weights has {len(self.weights)} entries but the scenarios have {n} assets "
                    f"({', '.join(map(str, asset_names))})"
                )
            return np.asarray(self.weights, dtype=np.float64)
        have = [str(a) for a in asset_names]
        unknown = [k for k in self.names if k not in have]
        if unknown:
            raise ValueError(
                f"weights names asset(s) {unknown} that are not in the data; its assets: {have}"
            )
        out = np.zeros(n)
        for k, v in zip(self.names, self.weights, strict=True):
            out[have.index(k)] = v
        return out

    def bind(self, asset_names):
        if self.names is None:
            self.weight_vector(asset_names)  # checks the length
            return self
        return FixedWeights(tuple(self.weight_vector(asset_names)), self.every, self.band)

    def kernel_params(self, n_assets):
        if self.names is not None:
            raise ValueError("weights given by asset name: bind the strategy to the data's "
                             "assets first (strategy.bind(asset_names))")  # fmt: skip
        if len(self.weights) != n_assets:
            raise ValueError(
                f"weights has {len(self.weights)} entries but the scenarios have {n_assets} assets"
            )
        band = np.nan if self.band is None else self.band
        return _base_params(every=self.every, band=band, base=np.asarray(self.weights))


class InverseVolatility(PortfolioStrategy):
    """Weights proportional to 1 / realized volatility (the standard
    deviation of the last ``lookback`` daily log returns), set on day
    ``lookback`` and every ``every`` days after it; in cash before."""

    name = "inverse_vol"
    fast = "inverse_vol"

    def __init__(self, lookback: int = 20, every: int = 21):
        self.lookback = as_int("lookback", lookback, 2)
        self.every = as_int("every", every, 1)
        self.warmup = self.lookback

    def params(self):
        return {"lookback": self.lookback, "every": self.every}

    def kernel_params(self, n_assets):
        return _base_params(every=self.every, lookback=self.lookback)


class MinimumVariance(PortfolioStrategy):
    """Minimum-variance weights from the sample covariance of the last
    ``lookback`` daily log returns, shrunk toward the mean variance
    (``shrink``), set on day ``lookback`` and every ``every`` days after it;
    in cash before. ``long_only``: weights >= 0 (a fixed number of
    projected-gradient steps, deterministic), else the closed form, which
    may sell short."""

    name = "min_variance"
    fast = "min_variance"

    def __init__(self, lookback: int = 60, every: int = 21, long_only: bool = True,
                 shrink: float = 0.1):  # fmt: skip
        self.lookback = as_int("lookback", lookback, 2)
        self.every = as_int("every", every, 1)
        self.long_only = bool(long_only)
        self.shrink = _pos_float("shrink", shrink, strict=False)
        if self.shrink > 1:
            raise ValueError(f"shrink must be in [0, 1], got {shrink!r}")
        self.warmup = self.lookback

    def params(self):
        return {"lookback": self.lookback, "every": self.every, "long_only": self.long_only,
                "shrink": self.shrink}  # fmt: skip

    def kernel_params(self, n_assets):
        return _base_params(every=self.every, lookback=self.lookback, long_only=self.long_only,
                            shrink=self.shrink, iterations=MINVAR_ITERATIONS)  # fmt: skip


class Custom(Strategy):
    """A user strategy: ``func(close)`` takes a close-price DataFrame chunk
    (rows = days, one column per path) and returns either ``(entries,
    exits)`` (boolean DataFrames like close: vectorbt ``from_signals``) or one
    DataFrame of target percent sizes (vectorbt ``from_orders``). ``warmup``
    is the history it needs before its first signal."""

    name = "custom"

    def __init__(self, func: Callable, name: str = "custom", warmup: int = 0):
        if not callable(func):
            raise ValueError("Custom needs a callable: func(close) -> (entries, exits) or sizes")
        self.func = func
        self.name = str(name)
        self.warmup = as_int("warmup", warmup, 0)

    def params(self):
        return {"func": getattr(self.func, "__name__", "func")}

    def portfolio(self, close, *, fees, slippage, init_cash, freq, group_by=None):
        import pandas as pd
        import vectorbt as vbt

        out = self.func(close)
        if isinstance(out, tuple) and len(out) == 2:
            entries, exits = out
            for nm, x in (("entries", entries), ("exits", exits)):
                if getattr(x, "shape", None) != close.shape:
                    raise ValueError(
                        f"custom strategy {self.name!r}: {nm} must have the close chunk's shape "
                        f"{close.shape}, got {getattr(x, 'shape', type(x).__name__)}"
                    )
                self._check_values(nm, x)
            return _signals_portfolio(close, entries, exits, fees, slippage, init_cash, freq)
        if isinstance(out, (pd.DataFrame, np.ndarray)) and np.shape(out) == close.shape:
            self._check_values("sizes", out)
            return vbt.Portfolio.from_orders(
                close, out, size_type="targetpercent", fees=fees, slippage=slippage,
                init_cash=init_cash, freq=freq,
            )  # fmt: skip
        raise ValueError(
            f"custom strategy {self.name!r} must return (entries, exits) or a DataFrame of target "
            f"percent sizes shaped like close {close.shape}"
        )

    def _check_values(self, what: str, x: Any) -> None:
        """Refuses (ValueError) ``what`` (entries, exits or sizes, shaped like
        the close chunk) holding anything but booleans and numbers, or NaN:
        either would pass through vectorbt as no trade at all."""
        import pandas as pd

        arr = np.asarray(x)
        if arr.dtype.kind == "O":
            numbers = (bool, int, float, np.bool_, np.number)
            odd = [v for v in arr.flat if not isinstance(v, numbers) and v is not None]
            odd = [v for v in odd if v is not pd.NA]  # missing values: NaN below
            if odd:
                odd = odd[0]
                raise ValueError(
                    f"custom strategy {self.name!r}: {what} must be booleans or numbers, "
                    f"got dtype object holding {type(odd).__name__} ({odd!r})"
                )
            nan = pd.isna(arr)
        elif arr.dtype.kind in "biuf":
            nan = np.isnan(arr) if arr.dtype.kind == "f" else None
        else:
            raise ValueError(
                f"custom strategy {self.name!r}: {what} must be booleans or numbers, "
                f"got dtype {arr.dtype}"
            )
        if nan is not None and nan.any():
            day, col = np.argwhere(nan)[0]
            raise ValueError(
                f"custom strategy {self.name!r}: {what} hold NaN ({int(nan.sum())} NaN or "
                f"missing; the first on day {day} (0: the start price), column {col} of the "
                "close chunk)"
            )


def _same_columns(frame, close):
    """Indicator outputs carry a parameter column level; put close's back."""
    frame = frame.copy()
    frame.columns = close.columns
    return frame


_SPECS = {
    "buy_and_hold": (BuyAndHold, ()),
    "ma": (MACrossover, (int, int)),
    "momentum": (TimeSeriesMomentum, (int,)),
    "rsi": (RSIMeanReversion, (int, float, float)),
    "vol_target": (VolatilityTarget, (float, int, float)),
    "equal_weight": (EqualWeight, ()),
    "weights": (FixedWeights, ()),
    "inverse_vol": (InverseVolatility, (int, int)),
    "min_variance": (MinimumVariance, (int, int)),
}


def _parse_weights(args: str) -> FixedWeights:
    """``W1,W2,...[@EVERY][,band=B]`` or ``NAME=W,...[@EVERY][,band=B]``."""
    body, _, opts = args.partition("@")
    items = [p.strip() for p in body.split(",") if p.strip()]
    if not items:
        raise ValueError("weights needs the weights: weights:0.5,0.3,0.2 (or NAME=W,...)")
    every, band = 21, None
    try:
        if any("=" in p for p in items):
            pairs = [p.split("=", 1) for p in items]
            if any(len(kv) != 2 or not kv[0].strip() for kv in pairs):
                raise ValueError
            weights: Any = {k.strip(): float(v) for k, v in pairs}
        else:
            weights = [float(p) for p in items]
        for opt in [o.strip() for o in opts.split(",") if o.strip()] if opts else []:
            if opt.startswith("band="):
                band = float(opt[5:])
            else:
                every = int(opt)
    except ValueError:
        raise ValueError(
            f"bad parameters for weights: {args!r}; the syntax is weights:W1,W2,...[@EVERY]"
            "[,band=B] (or NAME=W,... for weights by asset name)"
        ) from None
    return FixedWeights(weights, every=every, band=band)


def parse(spec: str) -> Strategy:
    """A built-in strategy from a short spec: ``buy_and_hold``,
    ``ma:10,40`` (fast, slow), ``momentum:20`` (lookback), ``rsi:14,30,70``
    (window, lower, upper), ``vol_target:0.1,20`` (target, lookback[,
    max_leverage]); for several assets: ``equal_weight`` (or
    ``equal_weight:hold``: no rebalancing), ``weights:0.5,0.3,0.2`` (fixed
    weights in asset order, or ``weights:AAPL=0.6,MSFT=0.4`` by name;
    ``@21``: rebalanced every 21 days, the default; ``,band=0.05``: also
    when a weight drifts 5 points: ``weights:0.5,0.5@63,band=0.05``),
    ``inverse_vol:20`` (lookback[, every]), ``min_variance:60`` (lookback[,
    every]). Parameters left out take their defaults."""
    name, _, args = str(spec).strip().partition(":")
    if name not in _SPECS:
        raise ValueError(f"unknown strategy {name!r}; one of: {', '.join(_SPECS)}")
    cls, types = _SPECS[name]
    if name == "equal_weight":
        if args not in ("", "hold", "rebalance"):
            raise ValueError("equal_weight takes no parameters, or ':hold' (no rebalancing)")
        return EqualWeight(rebalance=args != "hold")
    if name == "weights":
        return _parse_weights(args)
    parts = [p for p in args.split(",") if p.strip()] if args else []
    if len(parts) > len(types):
        raise ValueError(f"{name} takes at most {len(types)} parameter(s), got {len(parts)}")
    try:
        values = [t(p) for t, p in zip(types, parts, strict=False)]
    except ValueError:
        raise ValueError(f"bad parameters for {name}: {args!r}") from None
    return cls(*values)

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
percent (``from_orders``): :class:`VolatilityTarget`, :class:`EqualWeight`
(multi-asset, cash shared). :class:`Custom` wraps a user callable.
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
    "MACrossover",
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


class EqualWeight(Strategy):
    """Multi-asset: one portfolio per scenario with cash shared across its
    assets, each held at 1 / assets of the value, rebalanced daily
    (``rebalance=True``) or only bought at the start (vectorbt's
    ``from_orders``, size type target percent, cash sharing, call sequence
    auto: sells before buys)."""

    name = "equal_weight"
    portfolio_kind = "grouped"

    def __init__(self, rebalance: bool = True):
        self.rebalance = bool(rebalance)

    def params(self):
        return {"rebalance": self.rebalance}

    def portfolio(self, close, *, fees, slippage, init_cash, freq, group_by=None):
        import pandas as pd
        import vectorbt as vbt

        if group_by is None:
            raise ValueError("EqualWeight needs the scenario grouping of the columns")
        counts = pd.Series(group_by).value_counts()
        w = 1.0 / pd.Series(group_by).map(counts).to_numpy()
        size = pd.DataFrame(np.tile(w, (len(close), 1)), index=close.index, columns=close.columns)
        if not self.rebalance:
            size.iloc[1:] = np.nan
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
}


def parse(spec: str) -> Strategy:
    """A built-in strategy from a short spec: ``buy_and_hold``,
    ``ma:10,40`` (fast, slow), ``momentum:20`` (lookback), ``rsi:14,30,70``
    (window, lower, upper), ``vol_target:0.1,20`` (target, lookback[,
    max_leverage]), ``equal_weight`` (or ``equal_weight:hold``: no
    rebalancing). Parameters left out take their defaults."""
    name, _, args = str(spec).strip().partition(":")
    if name not in _SPECS:
        raise ValueError(f"unknown strategy {name!r}; one of: {', '.join(_SPECS)}")
    cls, types = _SPECS[name]
    if name == "equal_weight":
        if args not in ("", "hold", "rebalance"):
            raise ValueError("equal_weight takes no parameters, or ':hold' (no rebalancing)")
        return EqualWeight(rebalance=args != "hold")
    parts = [p for p in args.split(",") if p.strip()] if args else []
    if len(parts) > len(types):
        raise ValueError(f"{name} takes at most {len(types)} parameter(s), got {len(parts)}")
    try:
        values = [t(p) for t, p in zip(types, parts, strict=False)]
    except ValueError:
        raise ValueError(f"bad parameters for {name}: {args!r}") from None
    return cls(*values)

"""Numba kernels: vectorbt 1.2.0's per-path metrics without a Portfolio.

For the built-in signal strategies (long only, all in, filled at the
signal bar's close, fees and slippage on top: ``Portfolio.from_signals``
defaults) :func:`metrics` returns, for every column of ``close``, the ten
numbers of ``stressvae.backtesting.METRICS`` with vectorbt's own arithmetic,
operation for operation, so the results are equal to vectorbt's bit for bit
(the tests hold them to 1e-9 relative):

- signals: ``MA.run`` (``rolling_mean_1d_nb``: running sum minus the sum
  ``window`` bars back), ``crossed_above_1d_nb``, ``RSI.run`` (simple moving
  averages of the up / down moves), ``close / close.shift(n) - 1``;
- the order simulation of ``simulate_from_signals_nb`` (``buy_nb`` /
  ``sell_nb`` with the ``add_nb`` / ``is_close_nb`` tolerances, the default
  ``min_size`` of 1e-8, conflicting signals ignored);
- the value series that a Portfolio rebuilds from its order records
  (``cash_flow_nb`` / ``cash_nb`` / ``assets_nb``, value = cash + close x
  assets), the total return from ``total_profit_nb`` and the returns of
  ``returns_1d_nb`` (first return against ``init_cash``);
- the returns statistics of ``vectorbt.returns.nb`` (numba's sequential
  ``nanmean`` / ``nanprod`` and two-pass ``nanvar``, ddof 1);
- exit trades (``get_exit_trades_nb``): an open position at the end is an
  open trade valued at the last close, counted in ``trade_count`` and in
  the denominator of ``win_rate``; a trade wins when its PnL is > 0.

One path per column, columns in parallel (``prange`` over blocks of
columns). Each path is copied once into a buffer of ``T`` floats owned
by its block's task, its signals are written to two boolean buffers, then one
pass simulates cash / position / value bar by bar and accumulates the
returns statistics, drawdown and trades in registers; the returns are kept
in a buffer too, for the second pass of the variance (numba's
``np.nanvar`` subtracts the mean first). Memory beyond the input and the
[paths, 10] output: a few buffers of ``T`` floats per block of columns.

For the portfolio strategies (several assets, one cash-sharing portfolio
per scenario) :func:`portfolio_metrics` takes the close matrix and the
strategy's target weights (``PortfolioStrategy.target_weights``, NaN = no
order) and reproduces ``Portfolio.from_orders(size_type="targetpercent",
cash_sharing=True, call_seq="auto")`` order by order
(:func:`portfolio_metrics_1d_nb`), with the same metrics and each asset's
contribution (its ``total_profit`` / init_cash), bit for bit.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit, prange

from ._checks import as_int
from .strategies import WEIGHT_KINDS

__all__ = ["KINDS", "N_METRICS", "PORTFOLIO_KINDS", "SUPPORTED", "metrics", "portfolio_metrics"]

N_METRICS = 10
KINDS = {"buy_and_hold": 0, "ma_crossover": 1, "momentum": 2, "rsi_reversion": 3}
SUPPORTED: frozenset[str] = frozenset(KINDS)
PORTFOLIO_KINDS: frozenset[str] = frozenset(WEIGHT_KINDS)  # grouped, cash shared
_GROUP_BLOCK = 16  # scenarios per parallel task of the portfolio kernel
_PARAMS = {
    "buy_and_hold": (),
    "ma_crossover": ("fast_window", "slow_window"),
    "momentum": ("lookback",),
    "rsi_reversion": ("window", "lower", "upper"),
}
_BLOCK = 64  # columns per parallel task (each task owns its buffers)

# vectorbt.utils.math_ tolerances and vectorbt's default portfolio settings
REL_TOL = 1e-9
ABS_TOL = 1e-12
MIN_SIZE = 1e-8  # settings["portfolio"]["min_size"]
FIXED_FEES = 0.0

_JIT = {"cache": True, "error_model": "numpy"}


# ############# Tolerance helpers (vectorbt.utils.math_) ############# #


@njit(**_JIT)
def is_close_nb(a: float, b: float) -> bool:
    """Whether two floats are equal within REL_TOL / ABS_TOL (never for NaN / inf)."""
    if np.isnan(a) or np.isnan(b):
        return False
    if np.isinf(a) or np.isinf(b):
        return False
    if a == b:
        return True
    return abs(a - b) <= max(REL_TOL * max(abs(a), abs(b)), ABS_TOL)


@njit(**_JIT)
def is_close_or_less_nb(a: float, b: float) -> bool:
    """a <= b, or close to it."""
    if is_close_nb(a, b):
        return True
    return a < b


@njit(**_JIT)
def is_less_nb(a: float, b: float) -> bool:
    """a < b and not close to it."""
    if is_close_nb(a, b):
        return False
    return a < b


@njit(**_JIT)
def add_nb(a: float, b: float) -> float:
    """a + b, or exactly 0.0 when the sum is zero within the tolerances."""
    if np.sign(a) != np.sign(b):
        if is_close_nb(abs(a), abs(b)):
            return 0.0
    elif is_close_nb(a + b, 0.0):
        return 0.0
    return a + b


@njit(**_JIT)
def get_return_nb(input_value: float, output_value: float) -> float:
    """Return of one bar (vectorbt.returns.nb.get_return_nb)."""
    if input_value == 0:
        if output_value == 0:
            return 0.0
        return np.inf * np.sign(output_value)
    return_value = (output_value - input_value) / input_value
    if input_value < 0:
        return_value *= -1
    return return_value


# ############# Signals ############# #


@njit(**_JIT)
def rolling_sum_push_nb(
    i: int, x: float, csum: float, nancnt: int, csum_arr: np.ndarray, nancnt_arr: np.ndarray
) -> tuple[float, int]:
    """One step of the running sum behind ``rolling_mean_1d_nb``: adds x
    (skipping NaN) and stores the sum and NaN count of bars 0..i."""
    if np.isnan(x):
        nancnt = nancnt + 1
    else:
        csum = csum + x
    nancnt_arr[i] = nancnt
    csum_arr[i] = csum
    return csum, nancnt


@njit(**_JIT)
def rolling_mean_at_nb(i: int, window: int, csum_arr: np.ndarray, nancnt_arr: np.ndarray) -> float:
    """The rolling mean at bar i (min_periods = window) from the stored
    running sums: the arithmetic of ``rolling_mean_1d_nb``."""
    if i < window:
        window_len = i + 1 - nancnt_arr[i]
        window_csum = csum_arr[i]
    else:
        window_len = window - (nancnt_arr[i] - nancnt_arr[i - window])
        window_csum = csum_arr[i] - csum_arr[i - window]
    if window_len < window:
        return np.nan
    return window_csum / window_len


@njit(**_JIT)
def crossed_above_step_nb(
    a1: float, a2: float, was_below: bool, crossed_ago: int
) -> tuple[bool, bool, int]:
    """One bar of ``crossed_above_1d_nb`` (wait=0): (signal, was_below, crossed_ago)."""
    if np.isnan(a1) or np.isnan(a2):
        return False, False, -1
    if a1 > a2:
        if was_below:
            crossed_ago += 1
            return crossed_ago == 0, was_below, crossed_ago
        return False, was_below, crossed_ago
    if a1 == a2:
        return False, was_below, -1
    return False, True, -1


@njit(**_JIT)
def buy_and_hold_signals_1d_nb(close: np.ndarray, entries: np.ndarray, exits: np.ndarray) -> None:
    """``from_holding``: an entry on every bar, no exit. close: [T]."""
    for i in range(close.shape[0]):
        entries[i] = True
        exits[i] = False


@njit(**_JIT)
def ma_crossover_signals_1d_nb(
    close: np.ndarray,
    fast_window: int,
    slow_window: int,
    entries: np.ndarray,
    exits: np.ndarray,
    csum_arr: np.ndarray,
    nancnt_arr: np.ndarray,
) -> None:
    """Entries where the fast simple MA crosses above the slow one, exits
    where it crosses below (``MA.run`` + ``ma_crossed_above/below``).
    close: [T] prices; entries, exits: [T] bool out; csum_arr, nancnt_arr:
    [T] float scratch."""
    csum = 0.0
    nancnt = 0
    up_below, up_ago = False, -1
    dn_below, dn_ago = False, -1
    for i in range(close.shape[0]):
        csum, nancnt = rolling_sum_push_nb(i, close[i], csum, nancnt, csum_arr, nancnt_arr)
        fast = rolling_mean_at_nb(i, fast_window, csum_arr, nancnt_arr)
        slow = rolling_mean_at_nb(i, slow_window, csum_arr, nancnt_arr)
        entries[i], up_below, up_ago = crossed_above_step_nb(fast, slow, up_below, up_ago)
        exits[i], dn_below, dn_ago = crossed_above_step_nb(slow, fast, dn_below, dn_ago)


@njit(**_JIT)
def momentum_signals_1d_nb(
    close: np.ndarray, lookback: int, entries: np.ndarray, exits: np.ndarray
) -> None:
    """mom = close / close.shift(lookback) - 1: entries where mom > 0,
    exits where mom <= 0, neither while mom is NaN. close: [T]."""
    for i in range(close.shape[0]):
        if i < lookback:
            entries[i] = False
            exits[i] = False
        else:
            mom = close[i] / close[i - lookback] - 1.0
            entries[i] = mom > 0
            exits[i] = mom <= 0


@njit(**_JIT)
def rsi_reversion_signals_1d_nb(
    close: np.ndarray,
    window: int,
    lower: float,
    upper: float,
    entries: np.ndarray,
    exits: np.ndarray,
    up_csum: np.ndarray,
    up_nancnt: np.ndarray,
    down_csum: np.ndarray,
    down_nancnt: np.ndarray,
) -> None:
    """``RSI.run(close, window)`` (simple means of the up and down moves,
    ``100 - 100 / (1 + up / down)``); entries where the RSI crosses below
    ``lower``, exits where it crosses above ``upper``. close: [T]; the last
    four: [T] float scratch."""
    up_sum, up_nan = 0.0, 0
    down_sum, down_nan = 0.0, 0
    en_below, en_ago = False, -1
    ex_below, ex_ago = False, -1
    for i in range(close.shape[0]):
        delta = close[i] - close[i - 1] if i > 0 else np.nan
        up = 0.0 if delta < 0 else delta
        down = np.abs(0.0 if delta > 0 else delta)
        up_sum, up_nan = rolling_sum_push_nb(i, up, up_sum, up_nan, up_csum, up_nancnt)
        down_sum, down_nan = rolling_sum_push_nb(
            i, down, down_sum, down_nan, down_csum, down_nancnt
        )
        roll_up = rolling_mean_at_nb(i, window, up_csum, up_nancnt)
        roll_down = rolling_mean_at_nb(i, window, down_csum, down_nancnt)
        rsi = 100 - 100 / (1 + roll_up / roll_down)
        entries[i], en_below, en_ago = crossed_above_step_nb(lower, rsi, en_below, en_ago)
        exits[i], ex_below, ex_ago = crossed_above_step_nb(rsi, upper, ex_below, ex_ago)


# ############# Simulation and metrics ############# #


@njit(**_JIT)
def returns_metrics_nb(rets: np.ndarray, ann_factor: float, out: np.ndarray) -> None:
    """The returns statistics of ``vectorbt.returns.nb`` from the bar
    returns rets [T] (the first against init_cash): out[1..6] and out[9]
    (annualized return, volatility, Sharpe, Sortino, max drawdown, Calmar,
    worst day), with numba's sequential ``nanmean`` / ``nanprod`` and
    two-pass ``nanvar`` (ddof 1)."""
    n = rets.shape[0]
    ret_sum = 0.0
    ret_cnt = 0
    growth = 1.0
    down_sum = 0.0
    down_cnt = 0
    worst = np.nan
    cumprod = 1.0
    dd_max = np.nan
    dd_cnt = 0
    mdd = 0.0
    for i in range(n):
        r = rets[i]
        if not np.isnan(r):
            ret_sum += r
            ret_cnt += 1
            if np.isnan(worst) or r < worst:
                worst = r
            adj = 0.0 if r > 0 else r
            down_sum += adj * adj
            down_cnt += 1
        g = r + 1.0
        if not np.isnan(g):
            growth *= g
            cumprod *= g
        cum = cumprod * 100.0
        if np.isnan(dd_max) or cum > dd_max:
            dd_max = cum
        if not np.isnan(cum):
            dd_cnt += 1
        dd = np.nan if dd_cnt < 1 else cum / dd_max - 1
        if i == 0 or (not np.isnan(mdd) and (np.isnan(dd) or dd < mdd)):  # np.min: NaN wins
            mdd = dd
    ann_return = growth ** (ann_factor / n) - 1
    out[1] = ann_return
    mean = ret_sum / ret_cnt
    std = np.nan
    if ret_cnt - 1 > 0:
        ssd = 0.0
        for i in range(n):
            v = rets[i]
            if not np.isnan(v):
                d = v - mean
                ssd += d * d
        std = np.sqrt(ssd / ret_cnt * ret_cnt / (ret_cnt - 1))
    if n < 2:
        out[2] = np.nan
        out[3] = np.nan
        out[4] = np.nan
    else:
        out[2] = std * ann_factor ** (1.0 / 2.0)
        out[3] = np.inf if std == 0.0 else mean / std * np.sqrt(ann_factor)
        downside = np.sqrt(down_sum / down_cnt) * np.sqrt(ann_factor)
        out[4] = np.inf if downside == 0.0 else mean * ann_factor / downside
    out[5] = mdd
    out[6] = np.nan if mdd == 0.0 else ann_return / np.abs(mdd)
    out[9] = worst


@njit(**_JIT)
def signals_metrics_1d_nb(
    close: np.ndarray,
    entries: np.ndarray,
    exits: np.ndarray,
    init_cash: float,
    fees: float,
    slippage: float,
    ann_factor: float,
    rets: np.ndarray,
    out: np.ndarray,
) -> None:
    """Long-only all-in ``from_signals`` on one path and its metrics.

    close: [T] prices (finite, > 0); entries, exits: [T] bool; init_cash in
    currency; fees, slippage: fractions of the traded value; ann_factor:
    bars a year. rets: [T] float scratch (the bar returns). out: [10] the
    metrics in METRICS order (returns and drawdown as fractions).
    """
    n = close.shape[0]
    # simulation state (simulate_from_signals_nb)
    cash = init_cash
    position = 0.0
    # series rebuilt from the order records (cash_nb, assets_nb)
    cash_ph = init_cash
    assets_ph = 0.0
    # total_profit_nb
    tp_cash = 0.0
    tp_assets = 0.0
    n_orders = 0
    # get_exit_trades_nb (long trades only: sells never exceed the position)
    in_trade = False
    entry_size_sum = 0.0
    entry_gross_sum = 0.0
    entry_fees_sum = 0.0
    trade_count = 0
    win_count = 0
    prev_value = init_cash

    for i in range(n):
        price = close[i]
        is_entry = entries[i]
        is_exit = exits[i]
        if is_entry and is_exit:  # upon_long_conflict="ignore"
            is_entry = False
            is_exit = False
        buy = position == 0 and is_entry
        sell = position > 0 and is_exit

        filled = False
        size = 0.0
        fill_price = 0.0
        fees_paid = 0.0
        if buy or sell:
            # execute_order_nb: numerical stability
            if is_close_nb(cash, 0):
                cash = 0.0
            if is_close_nb(position, 0):
                position = 0.0
            if buy:
                # buy_nb with size=inf: all the cash, fees on top
                fill_price = price * (1 + slippage)
                cash_limit = cash
                if cash_limit != 0:
                    max_req_cash = add_nb(cash_limit, -FIXED_FEES) / (1 + fees)
                    if max_req_cash > 0:
                        size = max_req_cash / fill_price
                        if not is_less_nb(size, MIN_SIZE):
                            fees_paid = cash_limit - max_req_cash
                            cash = add_nb(cash, -cash_limit)
                            position = add_nb(position, size)
                            filled = True
            else:
                # sell_nb, direction long only: the whole position
                fill_price = price * (1 - slippage)
                size = min(position, abs(position))
                if position != 0 and not is_close_nb(size, 0) and not is_less_nb(size, MIN_SIZE):
                    acq_cash = size * fill_price
                    fees_paid = acq_cash * fees + FIXED_FEES
                    final_acq_cash = add_nb(acq_cash, -fees_paid)
                    if final_acq_cash >= 0:
                        cash = cash + final_acq_cash
                        position = add_nb(position, -size)
                        filled = True

        cash_flow = 0.0
        asset_flow = 0.0
        if filled:  # the order record, as cash_flow_nb / asset_flow_nb / total_profit_nb read it
            n_orders += 1
            if buy:
                asset_flow = add_nb(0.0, size)
                cash_flow = add_nb(0.0, -size * fill_price - fees_paid)
                tp_assets = add_nb(tp_assets, size)
                tp_cash = add_nb(tp_cash, -(size * fill_price + fees_paid))
                if not in_trade:
                    in_trade = True
                    entry_size_sum = 0.0
                    entry_gross_sum = 0.0
                    entry_fees_sum = 0.0
                entry_size_sum += size
                entry_gross_sum += size * fill_price
                entry_fees_sum += fees_paid
            else:
                asset_flow = add_nb(0.0, -size)
                cash_flow = add_nb(0.0, size * fill_price - fees_paid)
                tp_assets = add_nb(tp_assets, -size)
                tp_cash = add_nb(tp_cash, size * fill_price - fees_paid)
                if in_trade and is_close_or_less_nb(size, entry_size_sum):
                    exit_size = entry_size_sum if is_close_nb(size, entry_size_sum) else size
                    entry_price = entry_gross_sum / entry_size_sum
                    entry_fees = exit_size / entry_size_sum * entry_fees_sum
                    val_diff = add_nb(exit_size * fill_price, -(exit_size * entry_price))
                    pnl = val_diff - entry_fees - fees_paid
                    trade_count += 1
                    if pnl > 0.0:
                        win_count += 1
                    if is_close_nb(size, entry_size_sum):
                        in_trade = False
                    else:
                        fraction = (entry_size_sum - size) / entry_size_sum
                        entry_size_sum *= fraction
                        entry_gross_sum *= fraction
                        entry_fees_sum *= fraction

        # value from the order records, then the bar's return
        if filled:
            cash_ph = add_nb(cash_ph, cash_flow)
            assets_ph = add_nb(assets_ph, asset_flow)
        else:  # add_nb(x, 0.0), cheaper: x, or 0.0 where |x| <= ABS_TOL
            if abs(cash_ph) <= ABS_TOL:
                cash_ph = 0.0
            if abs(assets_ph) <= ABS_TOL:
                assets_ph = 0.0
        asset_value = 0.0 if assets_ph == 0 else price * assets_ph
        value = cash_ph + asset_value
        r = get_return_nb(prev_value, value)
        prev_value = value
        rets[i] = r

    # an open position is an open trade, valued at the last close
    if in_trade and is_less_nb(-entry_size_sum, 0):
        entry_price = entry_gross_sum / entry_size_sum
        entry_fees = entry_size_sum / entry_size_sum * entry_fees_sum
        exit_price = close[n - 1]
        val_diff = add_nb(entry_size_sum * exit_price, -(entry_size_sum * entry_price))
        pnl = val_diff - entry_fees - 0.0
        trade_count += 1
        if pnl > 0.0:
            win_count += 1

    total_profit = 0.0 if n_orders == 0 else tp_cash + tp_assets * close[n - 1]
    out[0] = total_profit / init_cash
    returns_metrics_nb(rets, ann_factor, out)
    out[7] = trade_count
    out[8] = np.nan if trade_count == 0 else win_count / trade_count


@njit(parallel=True, **_JIT)
def metrics_nb(
    close: np.ndarray,
    kind: int,
    int_params: np.ndarray,
    float_params: np.ndarray,
    init_cash: float,
    fees: float,
    slippage: float,
    ann_factor: float,
    block: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Metrics of every column of close (float64 [T, paths]): float64
    [paths, 10], and a bool [paths] mask of columns with a price that is
    not finite and > 0 (their row is NaN)."""
    n_rows, n_cols = close.shape
    out = np.full((n_cols, N_METRICS), np.nan)
    bad = np.zeros(n_cols, dtype=np.bool_)
    n_blocks = (n_cols + block - 1) // block
    for b in prange(n_blocks):
        col_close = np.empty(n_rows)
        entries = np.empty(n_rows, dtype=np.bool_)
        exits = np.empty(n_rows, dtype=np.bool_)
        rets = np.empty(n_rows)
        s1 = np.empty(n_rows)
        s2 = np.empty(n_rows)
        s3 = np.empty(n_rows)
        s4 = np.empty(n_rows)
        for col in range(b * block, min(n_cols, (b + 1) * block)):
            ok = True
            for i in range(n_rows):
                x = close[i, col]
                col_close[i] = x
                if not (x > 0 and x < np.inf):
                    ok = False
            if not ok:
                bad[col] = True
                continue
            if kind == 0:
                buy_and_hold_signals_1d_nb(col_close, entries, exits)
            elif kind == 1:
                ma_crossover_signals_1d_nb(
                    col_close, int_params[0], int_params[1], entries, exits, s1, s2
                )
            elif kind == 2:
                momentum_signals_1d_nb(col_close, int_params[0], entries, exits)
            else:
                rsi_reversion_signals_1d_nb(
                    col_close, int_params[0], float_params[0], float_params[1],
                    entries, exits, s1, s2, s3, s4,
                )  # fmt: skip
            signals_metrics_1d_nb(
                col_close, entries, exits, init_cash, fees, slippage, ann_factor, rets, out[col]
            )
    return out, bad


# ############# Portfolios: from_orders, target percent, cash shared ############# #


@njit(**_JIT)
def trade_pnl_nb(size: float, entry_price: float, entry_fees: float, exit_price: float,
                 exit_fees: float, short: bool) -> float:  # fmt: skip
    """PnL of one exit trade (``get_trade_stats_nb``)."""
    val_diff = add_nb(size * exit_price, -(size * entry_price))
    if val_diff != 0 and short:
        val_diff *= -1
    return val_diff - entry_fees - exit_fees


@njit(**_JIT)
def portfolio_metrics_1d_nb(
    close: np.ndarray,
    weights: np.ndarray,
    init_cash: float,
    fees: float,
    slippage: float,
    ann_factor: float,
    rets: np.ndarray,
    state: np.ndarray,
    seq: np.ndarray,
    out: np.ndarray,
    contrib: np.ndarray,
) -> None:
    """One scenario's cash-sharing portfolio of A assets, as vectorbt's
    ``Portfolio.from_orders(close, weights, size_type="targetpercent",
    group_by=..., cash_sharing=True, call_seq="auto", fees, slippage)``
    simulates it (``simulate_from_orders_nb``: on every bar the group value
    at the close, the orders sorted by their approximate value, sells
    first, each through ``execute_order_nb`` / ``buy_nb`` / ``sell_nb``
    with direction both, min_size 1e-8, no value update between orders),
    and the metrics the Portfolio rebuilds from its order records (grouped
    cash and asset value, ``total_profit_nb``, exit trades per asset).

    close: [T, A] prices (finite, > 0); weights: [T, A] target weights,
    NaN = no order. rets: [T] scratch; state: [12, A] scratch; seq: [A]
    int scratch. out: [10] the metrics (METRICS order); contrib: [A] each
    asset's total profit / init_cash (they add up to the total return).
    """
    n, a_n = close.shape
    pos = state[0]  # simulation position per asset
    assets_ph = state[1]  # assets_nb from the asset flows
    tp_cash = state[2]  # total_profit_nb
    tp_assets = state[3]
    n_orders = state[4]
    cash_flow = state[5]  # this bar's cash flow per asset (cash_flow_nb)
    asset_flow = state[6]
    order_value = state[7]
    in_pos = state[8]  # exit trades (get_exit_trades_nb): 0 / 1 long / -1 short
    es = state[9]
    eg = state[10]
    ef = state[11]
    for a in range(a_n):
        for k in range(12):
            state[k, a] = 0.0
    cash = init_cash
    cash_g = init_cash  # cash_grouped_nb
    prev_value = init_cash
    trade_count = 0
    win_count = 0
    for i in range(n):
        value_now = cash
        for a in range(a_n):
            if pos[a] != 0:
                value_now += pos[a] * close[i, a]
        # approx_order_value_nb, then insert_argsort_nb: the orders sorted by
        # value (stable), those without a size (NaN) last. Those change
        # nothing but the rounding of cash and position to 0 that
        # execute_order_nb does on every call, which does not depend on
        # their order: they are left out of the sort and rounded below.
        n_sized = 0
        for a in range(a_n):
            cash_flow[a] = 0.0
            asset_flow[a] = 0.0
            value_a = weights[i, a] * value_now - pos[a] * close[i, a]
            if np.isnan(value_a):
                continue
            k = n_sized - 1
            while k >= 0 and order_value[k] > value_a:
                order_value[k + 1] = order_value[k]
                seq[k + 1] = seq[k]
                k -= 1
            order_value[k + 1] = value_a
            seq[k + 1] = a
            n_sized += 1
        for j in range(a_n):
            # execute_order_nb: numerical stability (kept even when no order fills)
            if is_close_nb(cash, 0):
                cash = 0.0
            if j >= n_sized:  # the orders without a size: only the rounding
                if j == n_sized:
                    for a in range(a_n):
                        if np.isnan(weights[i, a]) and is_close_nb(pos[a], 0):
                            pos[a] = 0.0
                continue
            col = seq[j]
            position = pos[col]
            if is_close_nb(position, 0):
                position = 0.0
            pos[col] = position
            size = weights[i, col]
            value = value_now
            if is_close_nb(value, 0):
                value = 0.0
            if np.isnan(size) or np.isnan(value) or value <= 0:
                continue
            price = close[i, col]
            order_size = size * value
            order_size /= price
            order_size -= position
            filled = False
            buy = order_size > 0
            if buy:
                adj_price = price * (1 + slippage)
                cash_limit = cash
                if cash_limit == 0:
                    continue
                req_cash = order_size * adj_price
                req_fees = req_cash * fees + FIXED_FEES
                total_req_cash = req_cash + req_fees
                if is_close_or_less_nb(total_req_cash, cash_limit):
                    final_size = order_size
                    fees_paid = req_fees
                    final_req_cash = total_req_cash
                else:
                    max_req_cash = add_nb(cash_limit, -FIXED_FEES) / (1 + fees)
                    if max_req_cash <= 0:
                        continue
                    final_size = max_req_cash / adj_price
                    fees_paid = cash_limit - max_req_cash
                    final_req_cash = cash_limit
                if is_close_nb(order_size, 0) or is_less_nb(final_size, MIN_SIZE):
                    continue
                cash = add_nb(cash, -final_req_cash)
                pos[col] = add_nb(position, final_size)
                filled = True
            else:
                adj_price = price * (1 - slippage)
                final_size = -order_size
                if is_close_nb(final_size, 0) or is_less_nb(final_size, MIN_SIZE):
                    continue
                acq_cash = final_size * adj_price
                fees_paid = acq_cash * fees + FIXED_FEES
                final_acq_cash = add_nb(acq_cash, -fees_paid)
                if final_acq_cash < 0:
                    continue
                cash = cash + final_acq_cash
                pos[col] = add_nb(position, -final_size)
                filled = True
            if not filled:
                continue
            # the order record, as the Portfolio reads it back
            n_orders[col] += 1
            if buy:
                tp_assets[col] = add_nb(tp_assets[col], final_size)
                tp_cash[col] = add_nb(tp_cash[col], -(final_size * adj_price + fees_paid))
                asset_flow[col] = add_nb(0.0, final_size)
                cash_flow[col] = add_nb(0.0, -final_size * adj_price - fees_paid)
            else:
                tp_assets[col] = add_nb(tp_assets[col], -final_size)
                tp_cash[col] = add_nb(tp_cash[col], final_size * adj_price - fees_paid)
                asset_flow[col] = add_nb(0.0, -final_size)
                cash_flow[col] = add_nb(0.0, final_size * adj_price - fees_paid)
            side = 1.0 if buy else -1.0
            if in_pos[col] == 0:
                in_pos[col] = side
                es[col] = 0.0
                eg[col] = 0.0
                ef[col] = 0.0
            if in_pos[col] == side:  # position increased
                es[col] += final_size
                eg[col] += final_size * adj_price
                ef[col] += fees_paid
            elif is_close_or_less_nb(final_size, es[col]):  # (partly) closed
                exit_size = es[col] if is_close_nb(final_size, es[col]) else final_size
                entry_price = eg[col] / es[col]
                entry_fees = exit_size / es[col] * ef[col]
                pnl = trade_pnl_nb(exit_size, entry_price, entry_fees, adj_price, fees_paid,
                                   in_pos[col] < 0)  # fmt: skip
                trade_count += 1
                if pnl > 0.0:
                    win_count += 1
                if is_close_nb(final_size, es[col]):
                    in_pos[col] = 0.0
                else:
                    fraction = (es[col] - final_size) / es[col]
                    es[col] *= fraction
                    eg[col] *= fraction
                    ef[col] *= fraction
            else:  # reversed: close the trade, open one the other way
                cl_size = es[col]
                cl_fees = cl_size / final_size * fees_paid
                entry_price = eg[col] / es[col]
                entry_fees = cl_size / es[col] * ef[col]
                pnl = trade_pnl_nb(cl_size, entry_price, entry_fees, adj_price, cl_fees,
                                   in_pos[col] < 0)  # fmt: skip
                trade_count += 1
                if pnl > 0.0:
                    win_count += 1
                es[col] = final_size - cl_size
                eg[col] = es[col] * adj_price
                ef[col] = fees_paid - cl_fees
                in_pos[col] = -in_pos[col]
        # the grouped value series: cash_grouped_nb + asset_value_grouped_nb
        flow_g = 0.0
        for a in range(a_n):
            flow_g += cash_flow[a]
        cash_g = add_nb(cash_g, flow_g)
        asset_value = 0.0
        for a in range(a_n):
            assets_ph[a] = add_nb(assets_ph[a], asset_flow[a])
            asset_value += (0.0 if assets_ph[a] == 0 else close[i, a]) * assets_ph[a]
        value = cash_g + asset_value
        rets[i] = get_return_nb(prev_value, value)
        prev_value = value
    # open trades, valued at the last close
    for a in range(a_n):
        if in_pos[a] != 0 and is_less_nb(-es[a], 0):
            entry_price = eg[a] / es[a]
            entry_fees = es[a] / es[a] * ef[a]
            pnl = trade_pnl_nb(es[a], entry_price, entry_fees, close[n - 1, a], 0.0, in_pos[a] < 0)
            trade_count += 1
            if pnl > 0.0:
                win_count += 1
    total_profit = 0.0
    for a in range(a_n):
        tp = 0.0 if n_orders[a] == 0 else tp_cash[a] + tp_assets[a] * close[n - 1, a]
        contrib[a] = tp / init_cash
        total_profit += tp
    out[0] = total_profit / init_cash
    returns_metrics_nb(rets, ann_factor, out)
    out[7] = trade_count
    out[8] = np.nan if trade_count == 0 else win_count / trade_count


@njit(parallel=True, **_JIT)
def portfolio_metrics_nb(
    close: np.ndarray,
    weights: np.ndarray,
    n_assets: int,
    init_cash: float,
    fees: float,
    slippage: float,
    ann_factor: float,
    block: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Metrics of every scenario of close (float64 [T, scenarios x
    n_assets], each scenario's assets side by side) held at weights (the
    same shape, NaN = no order): float64 [scenarios, 10], contributions
    [scenarios, n_assets], and a bool [scenarios] mask of scenarios with a
    price that is not finite and > 0 (their rows are NaN)."""
    n_rows = close.shape[0]
    n_groups = close.shape[1] // n_assets
    out = np.full((n_groups, N_METRICS), np.nan)
    contrib = np.full((n_groups, n_assets), np.nan)
    bad = np.zeros(n_groups, dtype=np.bool_)
    n_blocks = (n_groups + block - 1) // block
    for b in prange(n_blocks):
        c = np.empty((n_rows, n_assets))
        w = np.empty((n_rows, n_assets))
        rets = np.empty(n_rows)
        state = np.empty((12, n_assets))
        seq = np.empty(n_assets, dtype=np.int64)
        for g in range(b * block, min(n_groups, (b + 1) * block)):
            ok = True
            for i in range(n_rows):
                for a in range(n_assets):
                    x = close[i, g * n_assets + a]
                    c[i, a] = x
                    w[i, a] = weights[i, g * n_assets + a]
                    if not (x > 0 and x < np.inf):
                        ok = False
            if not ok:
                bad[g] = True
                continue
            portfolio_metrics_1d_nb(
                c, w, init_cash, fees, slippage, ann_factor, rets, state, seq, out[g], contrib[g]
            )
    return out, contrib, bad


# ############# Python entry point ############# #


def _float_param(kind: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{kind}: {name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{kind}: {name} must be finite, got {value!r}")
    return v


def _params(kind: str, params: dict) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(params, dict):
        raise ValueError(f"{kind}: params must be a dict, got {type(params).__name__}")
    want = _PARAMS[kind]
    missing = [k for k in want if k not in params]
    extra = sorted(set(params) - set(want))
    if missing or extra:
        raise ValueError(
            f"{kind}: params must have exactly the keys {list(want)}; "
            f"missing {missing}, unexpected {extra}"
        )
    ints = np.zeros(2, dtype=np.int64)
    floats = np.zeros(2, dtype=np.float64)
    if kind == "ma_crossover":
        ints[0] = as_int(f"{kind}: fast_window", params["fast_window"], 1)
        ints[1] = as_int(f"{kind}: slow_window", params["slow_window"], 1)
    elif kind == "momentum":
        ints[0] = as_int(f"{kind}: lookback", params["lookback"], 1)
    elif kind == "rsi_reversion":
        ints[0] = as_int(f"{kind}: window", params["window"], 1)
        floats[0] = _float_param(kind, "lower", params["lower"])
        floats[1] = _float_param(kind, "upper", params["upper"])
    return ints, floats


def _scalar(name: str, value: Any, lo: float, hi: float | None = None) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < lo or (hi is not None and v >= hi):
        bounds = f"in [{lo:g}, {hi:g})" if hi is not None else f">= {lo:g}"
        raise ValueError(f"{name} must be finite and {bounds}, got {value!r}")
    return v


def metrics(
    kind: str,
    close: np.ndarray,
    params: dict,
    init_cash: float,
    fees: float,
    slippage: float,
    ann_factor: float,
) -> np.ndarray:
    """vectorbt's metrics of strategy ``kind`` on every path.

    kind: one of :data:`SUPPORTED`. close: float64 [T, paths], T >= 1 bars
    (row 0 the start price), each column one path of finite prices > 0.
    params: the strategy's ``params()`` dict. init_cash: starting cash
    (currency, > 0). fees, slippage: fractions of each trade's value, in
    [0, 1). ann_factor: bars a year (252 for daily bars).

    Returns float64 [paths, 10] in ``stressvae.backtesting.METRICS`` order:
    returns, volatility and drawdown as fractions, ratios annualized,
    trade_count as a float, win_rate in [0, 1] (NaN without trades), Sharpe,
    Sortino and Calmar inf / NaN where vectorbt gives them (no trade).
    """
    if not isinstance(kind, str) or kind not in SUPPORTED:
        raise ValueError(
            f"unknown fast-path kind {kind!r}: supported kinds are {sorted(SUPPORTED)}"
        )
    if not isinstance(close, np.ndarray):
        raise ValueError(f"close must be a numpy array [T, paths], got {type(close).__name__}")
    if close.ndim != 2:
        raise ValueError(f"close must be 2-D [T, paths], got shape {close.shape}")
    if close.shape[0] < 1:
        raise ValueError(f"close must have at least one bar (row), got shape {close.shape}")
    if close.dtype.kind not in "fiu":
        raise ValueError(f"close must hold real numbers, got dtype {close.dtype}")
    ints, floats = _params(kind, params)
    init_cash = _scalar("init_cash", init_cash, 0.0)
    if init_cash <= 0:
        raise ValueError(f"init_cash must be > 0, got {init_cash!r}")
    fees = _scalar("fees", fees, 0.0, 1.0)
    slippage = _scalar("slippage", slippage, 0.0, 1.0)
    ann_factor = _scalar("ann_factor", ann_factor, 0.0)
    if ann_factor <= 0:
        raise ValueError(f"ann_factor must be > 0, got {ann_factor!r}")
    close = np.ascontiguousarray(close, dtype=np.float64)
    out, bad = metrics_nb(
        close, KINDS[kind], ints, floats, init_cash, fees, slippage, ann_factor, _BLOCK
    )
    if bad.any():
        cols = np.flatnonzero(bad)
        raise ValueError(
            f"close must hold finite prices > 0; {len(cols)} path(s) do not, the first is "
            f"column {int(cols[0])}"
        )
    return out


def portfolio_metrics(
    close: np.ndarray,
    weights: np.ndarray,
    n_assets: int,
    init_cash: float,
    fees: float,
    slippage: float,
    ann_factor: float,
) -> tuple[np.ndarray, np.ndarray]:
    """vectorbt's metrics of one cash-sharing portfolio per scenario held at
    target weights, and each asset's contribution to its total return.

    close: float64 [T, scenarios x n_assets] (each scenario's assets side by
    side, row 0 the start prices, all finite and > 0). weights: the same
    shape, the target fraction of the portfolio value per asset and day
    (a portfolio strategy's ``target_weights(close, n_assets)``), NaN where
    no order is sent. init_cash, fees, slippage, ann_factor: as
    :func:`metrics`.

    Returns (float64 [scenarios, 10] in METRICS order, float64 [scenarios,
    n_assets]: each asset's profit over the path, after its fees and
    slippage, / init_cash; a row adds up to the scenario's total return).
    """
    if not isinstance(close, np.ndarray) or close.ndim != 2 or close.dtype.kind not in "fiu":
        raise ValueError(
            "close must be a 2-D numpy array of real numbers [T, scenarios x assets], got "
            f"{getattr(close, 'shape', type(close).__name__)}"
        )
    if close.shape[0] < 1:
        raise ValueError(f"close must have at least one bar (row), got shape {close.shape}")
    n_assets = as_int("n_assets", n_assets, 1)
    if close.shape[1] % n_assets:
        raise ValueError(
            f"close has {close.shape[1]} columns, not a multiple of n_assets={n_assets}"
        )
    if not isinstance(weights, np.ndarray) or weights.shape != close.shape:
        raise ValueError(
            f"weights must be a numpy array shaped like close {close.shape}, got "
            f"{getattr(weights, 'shape', type(weights).__name__)}"
        )
    if weights.dtype.kind not in "fiu" or np.isinf(weights).any():
        raise ValueError("weights must hold finite numbers (NaN: no order)")
    init_cash = _scalar("init_cash", init_cash, 0.0)
    if init_cash <= 0:
        raise ValueError(f"init_cash must be > 0, got {init_cash!r}")
    fees = _scalar("fees", fees, 0.0, 1.0)
    slippage = _scalar("slippage", slippage, 0.0, 1.0)
    ann_factor = _scalar("ann_factor", ann_factor, 0.0)
    if ann_factor <= 0:
        raise ValueError(f"ann_factor must be > 0, got {ann_factor!r}")
    close = np.ascontiguousarray(close, dtype=np.float64)
    weights = np.ascontiguousarray(weights, dtype=np.float64)
    out, contrib, bad = portfolio_metrics_nb(
        close, weights, n_assets, init_cash, fees, slippage, ann_factor, _GROUP_BLOCK
    )
    if bad.any():
        groups = np.flatnonzero(bad)
        raise ValueError(
            f"close must hold finite prices > 0; {len(groups)} scenario(s) do not, the first is "
            f"scenario {int(groups[0])} of the chunk"
        )
    return out, contrib

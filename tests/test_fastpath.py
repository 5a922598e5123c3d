"""The numba fast path (stressvae._backtest_nb) against vectorbt 1.2.0.

Every supported kernel is compared with ``vectorbt_metrics`` (a real
vectorbt Portfolio) on random price paths plus edge-case paths, with and
without fees and slippage: equal within 1e-9 relative (in practice bit for
bit)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")
pytest.importorskip("vectorbt")

from stressvae import _backtest_nb
from stressvae.backtesting import METRICS, BacktestConfig, fast_metrics, vectorbt_metrics
from stressvae.strategies import (
    BuyAndHold,
    MACrossover,
    RSIMeanReversion,
    TimeSeriesMomentum,
)

N_PATHS = 2000
T = 253
COSTS = [(0.0, 0.0), (0.0, 0.0005), (0.001, 0.0), (0.001, 0.0005)]
BOTH_COSTS = [(0.001, 0.0005)]


def _strategy(kind: str, **params):
    make = {
        "buy_and_hold": BuyAndHold,
        "ma_crossover": MACrossover,
        "momentum": TimeSeriesMomentum,
        "rsi_reversion": RSIMeanReversion,
    }[kind]
    strategy = make(**params)
    strategy.fast = kind  # the kernel key, also for strategies not yet wired to it
    return strategy


def _paths(rng: np.random.Generator, n: int, t: int) -> np.ndarray:
    """float64 [t, n] prices from 100, log returns ~ N(3e-4, 0.012)."""
    logs = np.zeros((t, n))
    np.cumsum(rng.normal(3e-4, 0.012, (t - 1, n)), axis=0, out=logs[1:])
    return 100.0 * np.exp(logs)


def _edge_paths(t: int) -> np.ndarray:
    """[t, 6]: flat (no trade), steadily up and steadily down (the moving
    averages never cross), a 100 / 101 zigzag, a staircase (flat runs: RSI
    0 / 0), prices above 1e10 (all-in sizes under vectorbt's min_size)."""
    i = np.arange(t)
    flat = np.full(t, 100.0)
    up = 100.0 * np.exp(0.002 * i)
    down = 100.0 * np.exp(-0.002 * i)
    zigzag = np.where(i % 2 == 0, 100.0, 101.0)
    steps = 100.0 * np.exp(np.repeat(np.random.default_rng(1).normal(0, 0.02, t // 5 + 1), 5))[:t]
    huge = np.where(i % 7 == 0, 2e11, 1e11)
    return np.column_stack([flat, up, down, zigzag, steps, huge])


@pytest.fixture(scope="module")
def close() -> np.ndarray:
    rng = np.random.default_rng(20240611)
    return np.ascontiguousarray(np.hstack([_paths(rng, N_PATHS, T), _edge_paths(T)]))


CASES = [
    ("buy_and_hold", {}, COSTS),
    ("ma_crossover", {"fast_window": 10, "slow_window": 40}, COSTS),
    ("ma_crossover", {"fast_window": 5, "slow_window": 20}, BOTH_COSTS),
    ("ma_crossover", {"fast_window": 2, "slow_window": 3}, BOTH_COSTS),
    ("momentum", {"lookback": 20}, COSTS),
    ("momentum", {"lookback": 5}, BOTH_COSTS),
    ("rsi_reversion", {"window": 14, "lower": 30.0, "upper": 70.0}, COSTS),
    ("rsi_reversion", {"window": 5, "lower": 25.0, "upper": 75.0}, BOTH_COSTS),
]
PARAMS = [
    pytest.param(kind, params, fees, slippage, id=f"{kind}-{params}-fees{fees}-slip{slippage}")
    for kind, params, costs in CASES
    for fees, slippage in costs
]


def _check(close: np.ndarray, strategy, fees: float, slippage: float) -> np.ndarray:
    config = BacktestConfig(fees=fees, slippage=slippage)
    ref = vectorbt_metrics(close, strategy, config)
    fast = fast_metrics(close, strategy, config)
    assert fast.shape == ref.shape == (close.shape[1], len(METRICS))
    assert fast.dtype == np.float64
    for j, name in enumerate(METRICS):
        np.testing.assert_allclose(
            fast[:, j], ref[:, j], rtol=1e-9, atol=1e-12, equal_nan=True, err_msg=name
        )
    return fast


def test_supported_kinds():
    assert {"buy_and_hold", "ma_crossover", "momentum", "rsi_reversion"} <= _backtest_nb.SUPPORTED
    assert BuyAndHold().fast in _backtest_nb.SUPPORTED
    assert MACrossover().fast in _backtest_nb.SUPPORTED


@pytest.mark.parametrize(("kind", "params", "fees", "slippage"), PARAMS)
def test_matches_vectorbt(close, kind, params, fees, slippage):
    fast = _check(close, _strategy(kind, **params), fees, slippage)
    counts = fast[:N_PATHS, METRICS.index("trade_count")]
    assert counts.max() >= 1  # the random paths do trade
    edge = fast[N_PATHS:]
    if kind == "ma_crossover":  # flat, steadily up / down: the averages never cross
        assert (edge[:3, METRICS.index("trade_count")] == 0).all()
        assert (edge[:3, METRICS.index("total_return")] == 0).all()
    if kind != "buy_and_hold":  # no trade on a flat path: ratios NaN, not inf
        assert edge[0, METRICS.index("trade_count")] == 0
        assert np.isnan(edge[0, [METRICS.index(r) for r in ("sharpe_ratio", "calmar_ratio")]]).all()


@pytest.mark.parametrize("t", [2, 3, 5, 41])
@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("buy_and_hold", {}),
        ("ma_crossover", {"fast_window": 2, "slow_window": 3}),
        ("momentum", {"lookback": 2}),
        ("rsi_reversion", {"window": 2, "lower": 30.0, "upper": 70.0}),
    ],
)
def test_short_paths(kind, params, t):
    rng = np.random.default_rng(t)
    random = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.05, (t, 40)), axis=0))
    close = np.hstack([random, _edge_paths(t)])
    _check(close, _strategy(kind, **params), 0.001, 0.0005)


@pytest.mark.parametrize(("fees", "slippage"), [(0.0, 0.0), (0.001, 0.0005)])
def test_single_bar(fees, slippage):
    """T = 1 (vectorbt compiles anew for one-row frames, seconds: checked
    by hand instead): buy and hold buys at the only close, an open trade."""
    close = np.array([[100.0, 50.0, 1e11]])
    out = _backtest_nb.metrics("buy_and_hold", close, {}, 100.0, fees, slippage, 252.0)
    value = np.array(
        [100.0 / (1 + fees) / (1 + slippage), 100.0 / (1 + fees) / (1 + slippage), 100.0]
    )
    m = {name: out[:, j] for j, name in enumerate(METRICS)}
    np.testing.assert_allclose(m["total_return"], value / 100.0 - 1, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(m["worst_day"], value / 100.0 - 1, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(m["annualized_return"], (value / 100.0) ** 252 - 1, rtol=1e-9)
    assert np.isnan(out[:, 2:5]).all()  # volatility, Sharpe, Sortino need two bars
    assert (m["max_drawdown"] == 0).all() and np.isnan(m["calmar_ratio"]).all()
    # the last path's all-in size is under min_size (1e-8): no order, no trade
    np.testing.assert_array_equal(m["trade_count"], [1, 1, 0])
    np.testing.assert_array_equal(m["win_rate"], [0.0, 0.0, np.nan])
    none = _backtest_nb.metrics(
        "ma_crossover", close, {"fast_window": 2, "slow_window": 3}, 100.0, fees, slippage, 252.0
    )
    np.testing.assert_array_equal(none[:, [0, 1, 5, 7, 9]], 0.0)


def test_windows_longer_than_paths(close):
    sub = np.ascontiguousarray(close[:60, :200])
    for kind, params in [
        ("ma_crossover", {"fast_window": 70, "slow_window": 90}),
        ("momentum", {"lookback": 80}),
        ("rsi_reversion", {"window": 60, "lower": 30.0, "upper": 70.0}),
    ]:
        fast = _check(sub, _strategy(kind, **params), 0.001, 0.0)
        assert (fast[:, METRICS.index("trade_count")] == 0).all()


def test_signals_match_vectorbt(close):
    """The signal kernels alone, against the strategies' own vectorbt signals."""
    import pandas as pd

    frame = pd.DataFrame(close[:, :300])
    t = frame.shape[0]
    buf = [np.empty(t) for _ in range(4)]
    entries, exits = np.empty(t, np.bool_), np.empty(t, np.bool_)
    cases = [
        (MACrossover(10, 40), lambda c: _backtest_nb.ma_crossover_signals_1d_nb(
            c, 10, 40, entries, exits, buf[0], buf[1])),
        (TimeSeriesMomentum(20), lambda c: _backtest_nb.momentum_signals_1d_nb(
            c, 20, entries, exits)),
        (RSIMeanReversion(14, 30.0, 70.0), lambda c: _backtest_nb.rsi_reversion_signals_1d_nb(
            c, 14, 30.0, 70.0, entries, exits, *buf)),
    ]  # fmt: skip
    for strategy, run in cases:
        ref_entries, ref_exits = (x.to_numpy() for x in strategy.signals(frame))
        assert ref_entries.any() and ref_exits.any()
        for col in range(frame.shape[1]):
            run(np.ascontiguousarray(close[:, col]))
            np.testing.assert_array_equal(entries, ref_entries[:, col], err_msg=str(strategy))
            np.testing.assert_array_equal(exits, ref_exits[:, col], err_msg=str(strategy))


def test_no_paths():
    out = _backtest_nb.metrics("buy_and_hold", np.empty((10, 0)), {}, 100.0, 0.0, 0.0, 252.0)
    assert out.shape == (0, len(METRICS))


MA = {"fast_window": 10, "slow_window": 40}


@pytest.mark.parametrize(
    ("kind", "close", "params", "kwargs", "match"),
    [
        ("vol_target", np.full((5, 2), 100.0), {}, {}, "unknown fast-path kind 'vol_target'"),
        (None, np.full((5, 2), 100.0), {}, {}, "unknown fast-path kind None"),
        (
            "buy_and_hold",
            np.full(5, 100.0),
            {},
            {},
            r"close must be 2-D \[T, paths\], got shape \(5,\)",
        ),
        ("buy_and_hold", np.full((5, 2, 1), 100.0), {}, {}, "close must be 2-D"),
        ("buy_and_hold", np.empty((0, 3)), {}, {}, "at least one bar"),
        ("buy_and_hold", [[100.0]], {}, {}, "close must be a numpy array"),
        ("buy_and_hold", np.full((5, 2), "x"), {}, {}, "close must hold real numbers"),
        (
            "ma_crossover",
            np.full((5, 2), 100.0),
            {"fast_window": 10},
            {},
            r"missing \['slow_window'\]",
        ),
        ("ma_crossover", np.full((5, 2), 100.0), {**MA, "x": 1}, {}, r"unexpected \['x'\]"),
        (
            "ma_crossover",
            np.full((5, 2), 100.0),
            {**MA, "fast_window": 0},
            {},
            "fast_window must be an integer >= 1",
        ),
        (
            "rsi_reversion",
            np.full((5, 2), 100.0),
            {"window": 14, "lower": np.nan, "upper": 70.0},
            {},
            "lower must be finite",
        ),
        (
            "buy_and_hold",
            np.full((5, 2), 100.0),
            {},
            {"fees": 1.5},
            r"fees must be finite and in \[0, 1\)",
        ),
        ("buy_and_hold", np.full((5, 2), 100.0), {}, {"slippage": -0.1}, "slippage must be finite"),
        ("buy_and_hold", np.full((5, 2), 100.0), {}, {"init_cash": 0.0}, "init_cash must be > 0"),
        (
            "buy_and_hold",
            np.full((5, 2), 100.0),
            {},
            {"ann_factor": np.inf},
            "ann_factor must be finite",
        ),
    ],
)
def test_bad_input_raises(kind, close, params, kwargs, match):
    args = {"init_cash": 100.0, "fees": 0.0, "slippage": 0.0, "ann_factor": 252.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        _backtest_nb.metrics(kind, close, params, **args)


@pytest.mark.parametrize("bad", [np.nan, np.inf, 0.0, -1.0])
def test_bad_prices_raise(bad):
    close = np.full((6, 4), 100.0)
    close[3, 2] = bad
    with pytest.raises(ValueError, match=r"finite prices > 0.*column 2"):
        _backtest_nb.metrics("buy_and_hold", close, {}, 100.0, 0.0, 0.0, 252.0)

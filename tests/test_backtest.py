"""Streamed backtests: the same metrics as vectorbt's own Portfolio on the
full matrix, for every strategy; summaries, risk, historical windows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stressvae import Scenarios
from stressvae import strategies as S
from stressvae.backtesting import (
    METRICS,
    BacktestConfig,
    backtest,
    historical_windows,
    vectorbt_metrics,
)


def scenarios(n=2000, horizon=252, assets=1, seed=0):
    rng = np.random.default_rng(seed)
    vol = rng.uniform(0.006, 0.025, (n, 1, assets))  # calm and wild paths
    r = (rng.standard_t(5, (n, horizon, assets)) * vol * 0.77 + 3e-4).astype(np.float32)
    tags = pd.DataFrame({"scenario": np.arange(n), "set": "prior"})
    return Scenarios(r, tags, seed, horizon, horizon, [f"A{i}" for i in range(assets)])


ALL = [
    S.BuyAndHold(),
    S.MACrossover(10, 40),
    S.MACrossover(3, 7),
    S.TimeSeriesMomentum(20),
    S.RSIMeanReversion(14, 30, 70),
    S.VolatilityTarget(0.1, 20),
]


def full_matrix(sc: Scenarios, start=100.0) -> np.ndarray:
    p = sc.prices(start)  # [n, h+1, a]
    return np.ascontiguousarray(p.transpose(1, 0, 2).reshape(p.shape[1], -1))


@pytest.mark.parametrize("strategy", ALL, ids=lambda s: s.describe())
def test_streamed_metrics_equal_vectorbt_on_the_full_matrix(strategy):
    sc = scenarios(2000)
    res = backtest(sc, strategy, fees=0.001, slippage=0.0005, chunk_size=333, backend="vectorbt")
    ref = vectorbt_metrics(full_matrix(sc), strategy, BacktestConfig(0.001, 0.0005))
    got = res.metrics[list(METRICS)].to_numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=0, equal_nan=True)
    assert list(res.metrics["scenario"]) == list(range(2000)) and res.backend == "vectorbt"
    assert res.metrics["trade_count"].dtype == np.int64


def test_equal_weight_portfolio_of_two_assets():
    sc = scenarios(400, 120, assets=2)
    strat = S.EqualWeight()
    res = backtest(sc, strat, fees=0.001, chunk_size=150)
    assert len(res) == 400 and "asset" not in res.metrics
    ref = vectorbt_metrics(
        full_matrix(sc), strat, BacktestConfig(0.001), group_by=np.repeat(np.arange(400), 2)
    )
    np.testing.assert_allclose(
        res.metrics[list(METRICS)].to_numpy(), ref, rtol=1e-12, equal_nan=True
    )
    # held at half and half: the portfolio's total return lies between its two assets'
    each = backtest(sc, S.BuyAndHold()).metrics
    lo = each.groupby("scenario")["total_return"].min().to_numpy()
    hi = each.groupby("scenario")["total_return"].max().to_numpy()
    held = backtest(sc, S.EqualWeight(rebalance=False)).metrics["total_return"].to_numpy()
    assert np.all((held >= lo - 1e-9) & (held <= hi + 1e-9))
    with pytest.raises(ValueError, match="needs scenarios of two or more assets"):
        backtest(scenarios(10, 50), strat)


def test_per_asset_rows_for_several_assets():
    sc = scenarios(50, 80, assets=3)
    res = backtest(sc, S.BuyAndHold())
    assert len(res) == 150 and list(res.metrics["asset"][:3]) == ["A0", "A1", "A2"]
    assert list(res.metrics["scenario"][:4]) == [0, 0, 0, 1]


def test_paths_without_trades_have_nan_ratios():
    r = np.zeros((3, 100, 1), np.float32)
    r[1] = 0.01  # steady rise: MA never crosses down, no entry either
    sc = Scenarios(r, pd.DataFrame({"scenario": range(3)}), 0, 100, 100, ["A"])
    m = backtest(sc, S.MACrossover(5, 20)).metrics
    assert (m["trade_count"] == 0).all()
    assert m[["sharpe_ratio", "sortino_ratio", "calmar_ratio"]].isna().all().all()
    assert (m["total_return"] == 0).all()


def test_custom_strategies_run_on_vectorbt():
    sc = scenarios(300, 100)

    def breakout(close):
        high = close.rolling(20).max().shift(1)
        low = close.rolling(20).min().shift(1)
        return close > high, close < low

    res = backtest(sc, S.Custom(breakout, name="breakout", warmup=20))
    assert res.backend == "vectorbt" and res.metrics["trade_count"].sum() > 0
    half = backtest(sc, S.Custom(lambda close: close * 0 + 0.5, name="half"))
    full = backtest(sc, S.BuyAndHold())
    # half invested: about half the total return
    ratio = half.metrics["total_return"] / full.metrics["total_return"]
    assert abs(np.median(ratio) - 0.5) < 0.05
    with pytest.raises(ValueError, match="must return \\(entries, exits\\) or a DataFrame"):
        backtest(sc, S.Custom(lambda close: 3))
    with pytest.raises(ValueError, match="entries must have the close chunk's shape"):
        backtest(sc, S.Custom(lambda close: (close.iloc[:5] > 0, close > 0)))


def test_summary_and_risk():
    res = backtest(scenarios(1000, 60), S.BuyAndHold(), fees=0.001)
    s = res.summary()
    assert list(s.index) == list(METRICS) and {"mean", "q1", "q50", "q99"} <= set(s.columns)
    r = res.metrics["total_return"].to_numpy()
    risk = res.risk()
    assert risk["prob_loss"] == pytest.approx(np.mean(r < 0))
    cut = np.quantile(r, 0.01)
    assert risk["var_99"] == pytest.approx(-cut) and risk["es_99"] == pytest.approx(
        -r[r <= cut].mean()
    )
    assert risk["es_99"] >= risk["var_99"] >= risk["var_95"]
    by = backtest(scenarios(200, 60), S.BuyAndHold()).summary(by="set")
    assert by.index.names == ["set", None]


def test_portfolio_of_a_scenario_matches_its_row():
    sc = scenarios(2500, 100)
    res = backtest(sc, S.MACrossover(5, 20), fees=0.001)
    pf = res.portfolio(1234)
    col = list(pf.wrapper.columns).index(1234)
    assert pf.total_return().iloc[col] == pytest.approx(
        res.metrics.loc[1234, "total_return"], rel=1e-12
    )


def test_bad_arguments_name_the_problem():
    sc = scenarios(10, 30)
    with pytest.raises(ValueError, match=r"fees must be a fraction in \[0, 1\)"):
        backtest(sc, S.BuyAndHold(), fees=-0.1)
    with pytest.raises(ValueError, match="init_cash must be finite and > 0"):
        backtest(sc, S.BuyAndHold(), init_cash=0)
    with pytest.raises(ValueError, match="backend must be one of"):
        backtest(sc, S.BuyAndHold(), backend="rust")
    with pytest.raises(
        ValueError,
        match=r"paths of 30 days are too short for MACrossover\(fast_window=10, slow_window=40\)",
    ):
        backtest(sc, S.MACrossover(10, 40))
    with pytest.raises(ValueError, match="backend='fast' has no kernel"):
        backtest(sc, S.Custom(lambda c: (c > 0, c < 0)), backend="fast")
    with pytest.raises(ValueError, match=r"strategy must be a stressvae\.strategies\.Strategy"):
        backtest(sc, "ma")
    with pytest.raises(ValueError, match="needs n and seed"):
        from stressvae import ScenarioGenerator, ScenarioVAE

        backtest(ScenarioGenerator(ScenarioVAE(window=30), device="cpu"), S.BuyAndHold())


def test_historical_windows_on_real_prices():
    from stressvae import load_dataset

    prices = load_dataset("sp500")
    h = historical_windows(prices, S.BuyAndHold(), 252)
    assert len(h) == 5030 // 252 and h["start"].iloc[0] == pd.Timestamp("1999-01-05")
    # 2008: the window that holds the crash loses, by a lot
    crash = h[(h["start"] <= "2008-10-01") & (h["end"] >= "2008-10-31")]
    assert (crash["total_return"] < -0.2).all()
    exact = prices["SP500"].iloc[252] / prices["SP500"].iloc[0] - 1
    assert h["total_return"].iloc[0] == pytest.approx(exact, rel=1e-6)


def test_strategy_specs_and_validation():
    assert S.parse("ma:5,20") == S.MACrossover(5, 20)
    assert S.parse("rsi") == S.RSIMeanReversion()
    with pytest.raises(ValueError, match="unknown strategy 'macd'"):
        S.parse("macd")
    with pytest.raises(
        ValueError, match=r"fast_window \(40\) must be shorter than slow_window \(10\)"
    ):
        S.MACrossover(40, 10)
    with pytest.raises(ValueError, match="need 0 < lower < upper < 100"):
        S.RSIMeanReversion(14, 80, 20)

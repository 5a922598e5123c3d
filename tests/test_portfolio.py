"""Portfolio strategies (several assets, one cash-sharing portfolio per
scenario): the fast path against vectorbt's ``from_orders`` bit for bit,
the per-asset contributions, the target weights, parsing and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("numba")
pytest.importorskip("vectorbt")

from stressvae import Scenarios
from stressvae import strategies as S
from stressvae.backtesting import (
    METRICS,
    BacktestConfig,
    backtest,
    fast_metrics,
    vectorbt_metrics,
)

COSTS = BacktestConfig(fees=0.001, slippage=0.0005)
T = 65  # 64 days after the start price
ASSETS = (2, 3, 5, 8, 13, 20)

PORTFOLIOS = [
    S.EqualWeight(),
    S.EqualWeight(rebalance=False),
    "fixed",  # weights drawn for each number of assets, every 5 days, band 0.02
    S.InverseVolatility(lookback=10, every=7),
    S.MinimumVariance(lookback=30, every=10),
    S.MinimumVariance(lookback=8, every=5, long_only=False),  # sells short
]


def _strategy(spec, n_assets: int, rng: np.random.Generator):
    if spec == "fixed":
        w = rng.dirichlet(np.ones(n_assets))
        w[-1] = 1.0 - w[:-1].sum()
        return S.FixedWeights(np.clip(w, 0, None), every=5, band=0.02)
    return spec


def _close(rng: np.random.Generator, scenarios: int, n_assets: int, t: int = T) -> np.ndarray:
    """float64 [t, scenarios x n_assets], each scenario's assets side by side:
    correlated log returns with a scenario volatility from calm to wild,
    plus edge scenarios: flat prices (zero volatility), a crash to a
    thousandth, prices of 1e11 (orders under min_size)."""
    vol = rng.uniform(0.004, 0.04, (1, scenarios, 1))
    common = rng.standard_normal((t - 1, scenarios, 1))
    own = rng.standard_normal((t - 1, scenarios, n_assets))
    r = (0.6 * common + 0.8 * own) * vol + 2e-4
    logs = np.zeros((t, scenarios, n_assets))
    np.cumsum(r, axis=0, out=logs[1:])
    close = 100.0 * np.exp(logs)
    close[:, 0] = 100.0  # flat
    close[:, 1, 0] = np.geomspace(100.0, 0.1, t)  # one asset crashes
    close[:, 2] *= 1e9  # all-in sizes under 1e-8
    return np.ascontiguousarray(close.reshape(t, scenarios * n_assets))


def _same(fast: np.ndarray, ref: np.ndarray, what: str) -> None:
    assert fast.shape == ref.shape
    same = (fast == ref) | (np.isnan(fast) & np.isnan(ref))
    if not same.all():
        i, j = np.argwhere(~same)[0]
        pytest.fail(f"{what}: {(~same).sum()} values differ, first [{i}, {j}]: "
                    f"fast {fast[i, j]!r} vectorbt {ref[i, j]!r}")  # fmt: skip


@pytest.mark.parametrize("spec", PORTFOLIOS, ids=lambda s: str(s))
def test_fast_path_equals_vectorbt_bit_for_bit(spec):
    """Thousands of random scenarios, 2 to 20 assets, fees and slippage."""
    rng = np.random.default_rng(abs(hash(str(spec))) % 2**32)
    total = 0
    trades = 0
    for a in ASSETS:
        strategy = _strategy(spec, a, rng)
        scenarios = 3000 // (a + 2) + 3
        close = _close(rng, scenarios, a)
        group_by = np.repeat(np.arange(scenarios), a)
        ref, ref_c = vectorbt_metrics(close, strategy, COSTS, group_by, contributions=True)
        out, contrib = fast_metrics(close, strategy, COSTS, a, contributions=True)
        _same(out, ref, f"{strategy} metrics, {a} assets")
        _same(contrib, ref_c, f"{strategy} contributions, {a} assets")
        total += scenarios
        trades += out[3:, METRICS.index("trade_count")].sum()
    assert total >= 1000 and trades > 0


def test_contributions_add_up_and_match_vectorbt_asset_values(rng):
    import vectorbt as vbt  # noqa: F401  (the Portfolio below)

    a, scenarios = 6, 300
    close = _close(rng, scenarios, a)
    strategy = S.FixedWeights([0.3, 0.2, 0.2, 0.1, 0.1, 0.1], every=3)
    out, contrib = fast_metrics(close, strategy, COSTS, a, contributions=True)
    np.testing.assert_allclose(contrib.sum(axis=1), out[:, 0], rtol=0, atol=1e-9)
    pf = strategy.portfolio(
        pd.DataFrame(close), fees=COSTS.fees, slippage=COSTS.slippage,
        init_cash=COSTS.init_cash, freq="1D", group_by=np.repeat(np.arange(scenarios), a),
    )  # fmt: skip
    # an asset's profit: its final holdings' value plus all the cash that went into / out of it
    value = pf.asset_value(group_by=False).to_numpy()[-1]
    flows = pf.cash_flow(group_by=False).to_numpy().sum(axis=0)
    np.testing.assert_allclose(
        contrib.reshape(-1), (value + flows) / COSTS.init_cash, rtol=1e-9, atol=1e-9
    )
    np.testing.assert_allclose(pf.total_return().to_numpy(), contrib.sum(axis=1), rtol=0, atol=1e-9)
    # the crashing asset of scenario 1 is its biggest loser
    assert contrib[1].argmin() == 0 and contrib[1, 0] < -0.1


def _scenarios(n=600, horizon=64, assets=4, seed=0) -> Scenarios:
    rng = np.random.default_rng(seed)
    r = (rng.standard_t(5, (n, horizon, assets)) * 0.01).astype(np.float32)
    r += (rng.standard_normal((n, horizon, 1)) * 0.01).astype(np.float32)  # move together
    tags = pd.DataFrame({"scenario": np.arange(n), "set": "prior"})
    names = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF"][:assets]
    return Scenarios(r, tags, seed, horizon, horizon, names)


@pytest.mark.parametrize(
    "strategy",
    [
        S.EqualWeight(),
        S.FixedWeights({"AAA": 0.5, "CCC": 0.5}, every=10, band=0.05),
        S.InverseVolatility(20, 10),
        S.MinimumVariance(30, 10),
    ],
    ids=str,
)
def test_streamed_backtest_carries_contributions(strategy):
    sc = _scenarios()
    fast = backtest(sc, strategy, fees=0.001, slippage=0.0005, chunk_size=123)
    vbt = backtest(sc, strategy, fees=0.001, slippage=0.0005, chunk_size=250, backend="vectorbt")
    assert fast.backend == "fast" and vbt.backend == "vectorbt"
    assert fast.metrics.equals(vbt.metrics)
    assert fast.contributions.equals(vbt.contributions)
    c = fast.contributions
    assert list(c.columns) == ["AAA", "BBB", "CCC", "DDD"] and len(c) == len(fast.metrics)
    np.testing.assert_allclose(c.sum(axis=1), fast.metrics["total_return"], atol=1e-9, rtol=0)
    tail = fast.contribution_in_tail(0.99)
    assert list(tail.index) == list(c.columns)
    # the worst 1 %: the scenarios behind the expected shortfall
    assert tail.sum() == pytest.approx(-fast.risk()["es_99"], abs=1e-9)
    r = fast.metrics["total_return"]
    worst = r <= np.quantile(r, 0.05)
    np.testing.assert_allclose(fast.contribution_in_tail(0.95), c[worst].mean(), rtol=1e-12)
    if isinstance(strategy, S.FixedWeights):  # BBB and DDD are never held
        assert (c[["BBB", "DDD"]] == 0).all().all()
    # the bound strategy rebuilds the same portfolio
    pf = fast.portfolio(7)
    assert pf.total_return().iloc[7] == fast.metrics["total_return"][7]


def test_per_asset_strategies_have_no_contributions():
    res = backtest(_scenarios(50, 40, 2), S.BuyAndHold())
    assert res.contributions is None
    with pytest.raises(ValueError, match="no contributions"):
        res.contribution_in_tail()
    res = backtest(_scenarios(50, 40, 2), S.EqualWeight())
    with pytest.raises(ValueError, match="level must be a fraction"):
        res.contribution_in_tail(1.5)


def test_generator_backtest_carries_contributions_across_chunks():
    import stressvae as sv

    rng = np.random.default_rng(3)
    idx = pd.bdate_range("2000-01-03", periods=800)
    prices = pd.DataFrame(100 * np.exp(np.cumsum(rng.normal(0, 0.01, (800, 3)), axis=0)),
                          columns=["X", "Y", "Z"], index=idx)  # fmt: skip
    data = sv.WindowData.from_prices(prices, window=32)
    gen = sv.ScenarioGenerator(sv.ScenarioVAE(window=32, n_assets=3), data, device="cpu")
    one = backtest(gen, S.InverseVolatility(10, 5), n=1500, seed=1, fees=0.001)
    many = backtest(gen, S.InverseVolatility(10, 5), n=1500, seed=1, fees=0.001, chunk_size=400)
    assert one.contributions.equals(many.contributions) and one.metrics.equals(many.metrics)
    assert list(one.contributions.columns) == ["X", "Y", "Z"]


# ############# Target weights ############# #


def _weights(strategy, close):
    return strategy.target_weights(close, close.shape[1])


def test_fixed_weights_rebalance_on_schedule_and_on_drift():
    t = 30
    close = np.full((t, 3), 100.0)
    close[12:, 0] = 130.0  # asset 0 jumps on day 12: 0.5 -> 0.565, beyond a band of 0.05

    def days(strategy):
        w = _weights(strategy, close)
        return list(np.flatnonzero(~np.isnan(w[:, 0])))

    assert days(S.FixedWeights([0.5, 0.3, 0.2], every=10, band=0.05)) == [0, 10, 12, 20]
    assert days(S.FixedWeights([0.5, 0.3, 0.2], every=10, band=0.07)) == [0, 10, 20]
    assert days(S.FixedWeights([0.5, 0.3, 0.2], every=10)) == [0, 10, 20]
    # the drift is measured from the last rebalance's prices, whatever triggered it
    close[8:12, 0] = 130.0
    close[12:, 0] = 100.0  # back: 0.5 -> 0.435 from day 8's prices
    assert days(S.FixedWeights([0.5, 0.3, 0.2], every=10, band=0.05)) == [0, 8, 10, 12, 20]
    w = _weights(S.FixedWeights([0.5, 0.3, 0.2], every=10, band=0.05), close)
    np.testing.assert_array_equal(w[8], [0.5, 0.3, 0.2])
    assert days(S.EqualWeight(rebalance=False)) == [0]
    assert days(S.EqualWeight()) == list(range(t))


def test_inverse_volatility_weights(rng):
    vols = np.array([0.005, 0.01, 0.02, 0.04])
    close = 100 * np.exp(np.cumsum(rng.standard_normal((50, 4)) * vols, axis=0))
    w = _weights(S.InverseVolatility(lookback=20, every=15), close)
    assert list(np.flatnonzero(~np.isnan(w[:, 0]))) == [20, 35]
    r = np.diff(np.log(close), axis=0)
    for day in (20, 35):
        inv = 1 / r[day - 20 : day].std(axis=0, ddof=1)
        np.testing.assert_allclose(w[day], inv / inv.sum(), rtol=1e-10)
    assert w[20, 0] > w[20, 1] > w[20, 2] > w[20, 3]


@pytest.mark.parametrize("n_assets", [2, 5, 12, 20])
def test_minimum_variance_solves_its_problem(rng, n_assets):
    from scipy.optimize import minimize

    lookback, shrink = 40, 0.1
    loadings = rng.normal(0, 0.01, (n_assets, 2))
    own = rng.uniform(0.005, 0.03, n_assets)
    r = (
        rng.standard_normal((lookback, 2)) @ loadings.T
        + rng.standard_normal((lookback, n_assets)) * own
    )
    close = 100 * np.exp(np.vstack([np.zeros((1, n_assets)), np.cumsum(r, axis=0)]))
    cov = np.cov(r, rowvar=False)
    cov = (1 - shrink) * cov + shrink * np.trace(cov) / n_assets * np.eye(n_assets)
    # unconstrained: the closed form
    w = _weights(S.MinimumVariance(lookback, every=100, long_only=False), close)[lookback]
    x = np.linalg.solve(cov, np.ones(n_assets))
    np.testing.assert_allclose(w, x / x.sum(), rtol=1e-9, atol=1e-12)
    # long only: as good as scipy's SLSQP on the simplex (within 0.1 % of the variance)
    w = _weights(S.MinimumVariance(lookback, every=100), close)[lookback]
    assert (w >= 0).all() and w.sum() == pytest.approx(1.0, abs=1e-12)
    res = minimize(lambda v: v @ cov @ v, np.full(n_assets, 1 / n_assets), jac=lambda v: 2 * cov @ v,
                   bounds=[(0, 1)] * n_assets, method="SLSQP", options={"ftol": 1e-16, "maxiter": 500},
                   constraints=[{"type": "eq", "fun": lambda v: v.sum() - 1}])  # fmt: skip
    assert w @ cov @ w <= res.fun * (1 + 1e-3)
    eq = np.full(n_assets, 1 / n_assets)
    assert w @ cov @ w <= eq @ cov @ eq


# ############# Parsing and bad input ############# #


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("weights:0.5,0.3,0.2", S.FixedWeights([0.5, 0.3, 0.2], every=21)),
        ("weights:0.5,0.3,0.2@5", S.FixedWeights([0.5, 0.3, 0.2], every=5)),
        ("weights:0.5,0.5@63,band=0.05", S.FixedWeights([0.5, 0.5], every=63, band=0.05)),
        ("weights:AAPL=0.6,MSFT=0.4", S.FixedWeights({"AAPL": 0.6, "MSFT": 0.4})),
        ("inverse_vol:20", S.InverseVolatility(20)),
        ("inverse_vol:10,5", S.InverseVolatility(10, 5)),
        ("min_variance:60", S.MinimumVariance(60)),
        ("min_variance:40,10", S.MinimumVariance(40, 10)),
        ("equal_weight", S.EqualWeight()),
        ("equal_weight:hold", S.EqualWeight(rebalance=False)),
    ],
)
def test_parse(spec, expected):
    assert S.parse(spec) == expected


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: S.FixedWeights([0.5, 0.3]), r"weights must sum to 1 \(within 1e-6\), got 0.8"),
        (lambda: S.FixedWeights([1.2, -0.2]), r"weights\[1\] must be finite and >= 0"),
        (lambda: S.FixedWeights({"A": 0.5, "B": np.nan}), r"weights\['B'\] must be finite"),
        (lambda: S.FixedWeights([]), "weights must not be empty"),
        (lambda: S.FixedWeights("0.5,0.5"), "weights must be a sequence"),
        (lambda: S.FixedWeights([0.5, 0.5], every=0), "every must be an integer >= 1"),
        (lambda: S.FixedWeights([0.5, 0.5], band=0), "band must be finite and > 0"),
        (lambda: S.InverseVolatility(lookback=1), "lookback must be an integer >= 2"),
        (lambda: S.MinimumVariance(shrink=2), r"shrink must be in \[0, 1\]"),
        (lambda: S.parse("weights:"), "weights needs the weights"),
        (lambda: S.parse("weights:0.5,x"), "bad parameters for weights"),
        (lambda: S.parse("weights:0.5,0.5@x"), "bad parameters for weights"),
        (lambda: S.parse("min_variance:60,5,3"), "at most 2 parameter"),
    ],
)
def test_bad_strategy_arguments_name_the_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_weights_must_fit_the_data():
    sc = _scenarios(20, 40, 3)
    with pytest.raises(ValueError, match="weights has 2 entries but the scenarios have 3 assets"):
        backtest(sc, S.FixedWeights([0.5, 0.5]))
    with pytest.raises(ValueError, match=r"weights names asset\(s\) \['ZZZ'\] that are not in"):
        backtest(sc, S.FixedWeights({"AAA": 0.5, "ZZZ": 0.5}))
    with pytest.raises(ValueError, match="needs scenarios of two or more assets"):
        backtest(_scenarios(20, 40, 1), S.InverseVolatility(10))
    with pytest.raises(ValueError, match="too short"):
        backtest(sc, S.MinimumVariance(60))
    res = backtest(sc, S.FixedWeights({"CCC": 1.0}, every=100), fees=0.001)
    assert (res.contributions[["AAA", "BBB"]] == 0).all().all()
    assert res.strategy == S.FixedWeights([0.0, 0.0, 1.0], every=100)  # bound to the assets


def test_bad_prices_name_the_scenario():
    sc = _scenarios(30, 40, 3)
    sc.returns[17, 5, 2] = np.nan
    for backend in ("fast", "vectorbt"):
        with pytest.raises(ValueError, match="the first is scenario 17, asset 'CCC'"):
            backtest(sc, S.EqualWeight(), backend=backend)


@pytest.mark.slow
def test_dask_engine_carries_contributions():
    """engine="dask" gives the local metrics and contributions, bit for bit."""
    pytest.importorskip("distributed")
    import stressvae as sv
    from stressvae.backtesting import backtest_plan
    from stressvae.distributed import local_client

    rng = np.random.default_rng(4)
    idx = pd.bdate_range("2000-01-03", periods=800)
    prices = pd.DataFrame(100 * np.exp(np.cumsum(rng.normal(0, 0.01, (800, 3)), axis=0)),
                          columns=["X", "Y", "Z"], index=idx)  # fmt: skip
    data = sv.WindowData.from_prices(prices, window=32)
    gen = sv.ScenarioGenerator(sv.ScenarioVAE(window=32, n_assets=3), data, device="cpu")
    strategy = S.FixedWeights({"X": 0.5, "Z": 0.5}, every=5, band=0.03)
    kw = dict(n=3001, seed=2, fees=0.001, slippage=0.0005)
    local = backtest(gen, strategy, **kw)
    with local_client(2) as client:
        dask = backtest(gen, strategy, engine="dask", client=client, shards=5, **kw)
        metrics, used, _, contrib = backtest_plan(
            gen, gen.prior_plan(500), 3, 32, "keep", strategy, local.config, client=client,
            shards=3, contributions=True,
        )  # fmt: skip
    assert dask.metrics.equals(local.metrics) and dask.contributions.equals(local.contributions)
    assert list(dask.contributions.columns) == ["X", "Y", "Z"] and used == "fast"
    assert (contrib["Y"] == 0).all() and len(contrib) == len(metrics) == 500


def test_historical_windows_give_contributions_of_real_windows():
    from stressvae.backtesting import historical_windows

    rng = np.random.default_rng(6)
    idx = pd.bdate_range("2001-01-02", periods=700)
    prices = pd.DataFrame(100 * np.exp(np.cumsum(rng.normal(0, 0.01, (700, 3)), axis=0)),
                          columns=["X", "Y", "Z"], index=idx)  # fmt: skip
    strategy = S.FixedWeights({"X": 0.7, "Y": 0.3}, every=21)
    metrics = historical_windows(prices, strategy, horizon=64, fees=0.001)
    res = historical_windows(prices, strategy, horizon=64, fees=0.001, result=True)
    assert res.metrics.equals(metrics) and len(metrics) == 699 // 64
    assert (
        list(res.contributions.columns) == ["X", "Y", "Z"] and (res.contributions["Z"] == 0).all()
    )
    np.testing.assert_allclose(res.contributions.sum(axis=1), metrics["total_return"], atol=1e-12)

"""Classical baselines: known answers (fitted moments, real rows, GARCH
facts against a plain reference), the sampling contract shared with the
ScenarioGenerator (chunk-size invariance, shapes, tags) and input checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from arch.bootstrap import optimal_block_length
from conftest import bits
from scipy import special, stats

from stressvae import WindowData, load_dataset, native
from stressvae.baselines import (
    BURN_IN,
    START_PATHS,
    TAG_GARCH,
    TAG_GARCH_START,
    BootstrapBaseline,
    GarchBaseline,
    GaussianBaseline,
    training_returns,
)
from stressvae.generate import SETS, Scenarios

KINDS = ("gaussian", "bootstrap", "garch")
MAKERS = {"gaussian": GaussianBaseline, "bootstrap": BootstrapBaseline, "garch": GarchBaseline}


@pytest.fixture(scope="module")
def two_data():
    return WindowData.from_prices(load_dataset("sp500_nasdaq"), window=64)


@pytest.fixture(scope="module")
def fitted(sp500_data, two_data):
    """Every baseline fitted to the S&P 500 (1 asset) and S&P 500 + NASDAQ."""
    return {
        (kind, a): MAKERS[kind](data)
        for kind in KINDS
        for a, data in ((1, sp500_data), (2, two_data))
    }


def _tiny_data(n_prices: int, window: int = 4, val_fraction: float = 0.2) -> WindowData:
    rng = np.random.default_rng(n_prices)
    idx = pd.bdate_range("2020-01-01", periods=n_prices)
    prices = pd.DataFrame({"x": 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n_prices)))}, idx)
    return WindowData.from_prices(prices, window=window, val_fraction=val_fraction)


def _acf(x: np.ndarray, lags: int) -> np.ndarray:
    """ACF of paths [k, t] pooled around the global mean."""
    x = x - x.mean()
    den = np.sum(x * x) / x.size
    return np.array([np.mean(x[:, k:] * x[:, :-k]) / den for k in range(1, lags + 1)])


# ------------------------------------------------------------------ training returns
def test_training_returns_are_the_rows_the_training_windows_cover(sp500_data, two_data):
    for data in (sp500_data, two_data):
        tr = training_returns(data)
        train = data.split == "train"
        first, last = data.start_dates[train][0], data.end_dates[train][-1]
        want = data.returns.loc[first:last].to_numpy()
        assert tr.dtype == np.float64 and tr.shape == want.shape == (len(want), data.n_assets)
        np.testing.assert_array_equal(tr, want)
        win = np.lib.stride_tricks.sliding_window_view(tr.astype(np.float32), 64, axis=0)
        np.testing.assert_array_equal(win.transpose(0, 2, 1), data.train)


def test_training_returns_with_a_holdout_and_pooled():
    prices = load_dataset("sp500_nasdaq")
    held = WindowData.from_prices(prices, window=32, holdout_every=4)
    tr = training_returns(held)
    assert tr.shape[1] == 2 and tr.shape[0] < held.returns.shape[0]
    win = np.lib.stride_tricks.sliding_window_view(tr.astype(np.float32), 32, axis=0)
    have = {w.tobytes() for w in np.ascontiguousarray(win.transpose(0, 2, 1))}
    assert all(w.tobytes() in have for w in held.train)  # every window is a stretch of tr
    late = prices.copy()
    late.iloc[:1000, 1] = np.nan  # the second series starts later
    pooled = WindowData.from_prices(late, window=32, pool=True)
    parts = training_returns(pooled)
    assert isinstance(parts, list) and [p.shape[1] for p in parts] == [1, 1]
    assert parts[0].shape[0] == parts[1].shape[0] + 1000
    for b in (BootstrapBaseline(pooled), GarchBaseline(pooled), GaussianBaseline(pooled)):
        s = b.sample(3, seed=1, horizon=40)
        assert s.returns.shape == (3, 40, 1) and s.asset_names == ["pooled"]


# ------------------------------------------------------------------ gaussian
def test_gaussian_reproduces_the_training_mean_and_covariance(sp500_data, fitted):
    g = fitted[("gaussian", 1)]
    x = sp500_data.train.astype(np.float64).reshape(len(sp500_data.train), -1)
    mean, cov = x.mean(axis=0), np.cov(x, rowvar=False)
    np.testing.assert_allclose(g.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(g.cov, cov, rtol=1e-12)
    assert g.jitter == 0.0
    n = 200_000
    y = g.sample(n, seed=3).returns.astype(np.float64).reshape(n, -1)
    var = np.diag(cov)
    z_mean = (y.mean(axis=0) - mean) / np.sqrt(var / n)
    se_cov = np.sqrt((np.outer(var, var) + cov**2) / n)
    z_cov = (np.cov(y, rowvar=False) - cov) / se_cov
    assert np.max(np.abs(z_mean)) < 5, np.max(np.abs(z_mean))
    assert np.max(np.abs(z_cov)) < 6, np.max(np.abs(z_cov))


def test_gaussian_chains_independent_windows(fitted):
    g = fitted[("gaussian", 2)]
    one = g.sample(8, seed=5).returns  # stream rows 0..7
    two = g.sample(4, seed=5, horizon=128).returns  # scenario i: rows 2i, 2i + 1
    np.testing.assert_array_equal(bits(two), bits(one.reshape(4, 128, 2)))
    part = g.sample(4, seed=5, horizon=100).returns
    np.testing.assert_array_equal(bits(part), bits(two[:, :100]))


# ------------------------------------------------------------------ bootstrap
def test_bootstrap_paths_are_runs_of_real_training_rows(sp500_data, fitted):
    b = fitted[("bootstrap", 1)]
    rows = training_returns(sp500_data)
    np.testing.assert_array_equal(b.returns, rows)
    want_l = float(optimal_block_length(rows)["stationary"].mean())
    assert b.block_length == pytest.approx(want_l)
    n, h, t_rows = 2000, 500, len(rows)
    s = b.sample(n, seed=7, horizon=h)
    idx = b.source_index(n, seed=7, horizon=h)
    assert idx.shape == (n, h) and idx.dtype == np.int64
    assert idx.min() >= 0 and idx.max() < t_rows
    np.testing.assert_array_equal(bits(s.returns), bits(rows.astype(np.float32)[idx]))
    assert np.all(np.isin(s.returns, rows.astype(np.float32)))  # every value is real
    # a run continues with the next row (wrapping); breaks are the block starts
    brk = idx[:, 1:] != (idx[:, :-1] + 1) % t_rows
    p = 1 / b.block_length
    assert brk.mean() == pytest.approx(p * (1 - 1 / t_rows), rel=0.03)
    mean_run = n * h / (n + brk.sum())  # runs are cut at the path's end
    assert mean_run == pytest.approx(h / (1 + (h - 1) * p), rel=0.03)
    assert idx[:, 0].mean() / t_rows == pytest.approx(0.5, abs=0.02)  # uniform starts


def test_bootstrap_keeps_days_together_and_block_length_one_is_iid(two_data, fitted):
    b = fitted[("bootstrap", 2)]
    idx = b.source_index(300, seed=1, horizon=70)
    np.testing.assert_array_equal(
        bits(b.sample(300, seed=1, horizon=70).returns), bits(b.returns.astype(np.float32)[idx])
    )
    iid = BootstrapBaseline(two_data, block_length=1)
    assert iid.block_length == 1.0
    idx = iid.source_index(500, seed=2, horizon=64)
    brk = idx[:, 1:] != (idx[:, :-1] + 1) % len(iid.returns)
    assert brk.mean() > 0.99


# ------------------------------------------------------------------ garch
def _plain_gjr(g, eta, var0, days):
    """A per-path float64 loop of the fitted GJR-GARCH: returns (percent
    shocks + mu) [m, days, a] and the variance after the last day."""
    prm = g.params
    m, _, a = eta.shape
    out = np.empty((m, days, a))
    var = np.array(var0, dtype=np.float64, copy=True)
    for k in range(a):
        mu, om, al, ga, be, _ = prm.iloc[k]
        for t in range(days):
            eps = np.sqrt(var[:, k]) * eta[:, t, k]
            out[:, t, k] = mu + eps
            var[:, k] = om + (al + ga * (eps < 0)) * eps**2 + be * var[:, k]
    return out, var


def _exact_innovations(g, z):
    """Copula and scipy's exact t quantiles, float64: normals [..., a] -> eta."""
    x = z.astype(np.float64) @ np.linalg.cholesky(g.correlation).T
    nu = g.params["nu"].to_numpy()
    return special.stdtrit(nu, special.ndtr(x)) * np.sqrt((nu - 2) / nu)


def test_garch_fit_and_stylized_facts(sp500_data, fitted):
    g = fitted[("garch", 1)]
    p = g.params
    assert list(p.columns) == ["mu", "omega", "alpha", "gamma", "beta", "nu"]
    assert list(p.index) == ["SP500"]
    assert np.all(p["alpha"] >= 0) and np.all(p["beta"] > 0) and np.all(p["nu"] > 2)
    assert np.all(p["gamma"] > 0.05)  # the S&P 500's leverage effect
    pers = p["alpha"] + p["gamma"] / 2 + p["beta"]
    np.testing.assert_allclose(g.persistence, pers.to_numpy())
    assert np.all(pers < 1)
    uncond = p["omega"].iloc[0] / (1 - pers.iloc[0])
    np.testing.assert_allclose(g.burn_in_start, [uncond])
    assert g.start_variance.shape == (START_PATHS, 1)
    assert np.mean(g.start_variance) == pytest.approx(uncond, rel=0.1)  # stationary
    r = g.sample(20_000, seed=9).returns[..., 0].astype(np.float64)
    acf = _acf(np.abs(r), 5)
    assert np.all(acf > 0.02), acf
    assert stats.kurtosis(r.ravel()) > 0.5
    train_std = training_returns(sp500_data).std()
    assert r.std() == pytest.approx(train_std, rel=0.2)
    assert r.std() == pytest.approx(np.sqrt(uncond) / 100, rel=0.05)
    # the leverage effect: today's loss raises tomorrow's variance
    long = g.sample(2000, seed=3, horizon=252).returns[..., 0].astype(np.float64)
    x = long - long.mean()
    lev = np.corrcoef(x[:, :-1].ravel(), (x[:, 1:] ** 2).ravel())[0, 1]
    assert lev < -0.025, lev  # a plain GARCH-t gives 0 (the real S&P 500: -0.1)


def test_garch_matches_a_plain_reference(fitted):
    """Scenarios 5..7: a per-path float64 loop with scipy's exact t quantiles,
    from the start states their first normal picks."""
    g = fitted[("garch", 2)]
    h, seed, start, m = 30, 11, 5, 3
    got = g.sample(start + m, seed, horizon=h).returns[start:]
    z = native.normals(m, 1 + h * 2, seed=seed, offset=start, tag=TAG_GARCH)
    pick = np.floor(special.ndtr(z[:, 0].astype(np.float64)) * START_PATHS).astype(int)
    eta = _exact_innovations(g, z[:, 1:].reshape(m, h, 2))
    want, _ = _plain_gjr(g, eta, g.start_variance[pick], h)
    np.testing.assert_allclose(got, want / 100, rtol=1e-4, atol=1e-8)


def test_garch_start_states_are_a_plain_burn_in(fitted):
    """Start paths 0, 1 and 4097 against the plain loop over BURN_IN days from
    the unconditional variance (row day * START_PATHS + path of the stream)."""
    g = fitted[("garch", 2)]
    paths = np.array([0, 1, 4097])
    z = np.stack(
        [
            native.normals(1, 2, seed=0, offset=d * START_PATHS + p, tag=TAG_GARCH_START)[0]
            for p in paths
            for d in range(BURN_IN)
        ]
    ).reshape(len(paths), BURN_IN, 2)
    var0 = np.tile(g.burn_in_start, (len(paths), 1))
    _, var = _plain_gjr(g, _exact_innovations(g, z), var0, BURN_IN)
    np.testing.assert_allclose(g.start_variance[paths], var, rtol=1e-3)
    # the start states spread like a stationary distribution, not one point
    assert np.std(np.log(g.start_variance), axis=0).min() > 0.2


def test_garch_shorter_horizons_are_the_first_days(fitted):
    one, two = fitted[("garch", 1)], fitted[("garch", 2)]
    long, short = one.sample(50, seed=4, horizon=64), one.sample(50, seed=4, horizon=20)
    np.testing.assert_array_equal(bits(short.returns), bits(long.returns[:, :20]))
    long, short = two.sample(50, seed=4, horizon=64), two.sample(50, seed=4, horizon=20)
    np.testing.assert_allclose(short.returns, long.returns[:, :20], rtol=1e-6, atol=1e-9)


def test_garch_innovations_are_unit_t_with_the_copula_correlation(fitted):
    g = fitted[("garch", 2)]
    z = native.normals(200_000, 2, seed=4, tag=99)
    eta = g.innovations(z).astype(np.float64)
    assert eta.shape == z.shape
    nu = g.params["nu"].to_numpy()
    np.testing.assert_allclose(eta.std(axis=0), 1.0, atol=0.02)
    # normal scores of the t innovations are the correlated normals
    u = special.stdtr(nu, eta * np.sqrt(nu / (nu - 2)))
    scores = special.ndtri(u)
    assert np.corrcoef(scores.T)[0, 1] == pytest.approx(g.correlation[0, 1], abs=0.005)
    assert g.correlation[0, 1] == pytest.approx(g.residual_correlation[0, 1], abs=0.05)
    # the table lookup against scipy's exact quantile, asset by asset
    q = special.stdtrit(nu, special.ndtr(-np.abs(z))) * -np.sign(z) * np.sqrt((nu - 2) / nu)
    np.testing.assert_allclose(g._quantiles(z), q, rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(eta, _exact_innovations(g, z), rtol=1e-5, atol=1e-5)
    far = np.array([[-11.5, 0.5], [10.0, 12.0], [3.0, -10.5]], np.float32)  # beyond: exact
    exact = special.stdtrit(nu, special.ndtr(-np.abs(far))) * -np.sign(far)
    np.testing.assert_allclose(g._quantiles(far), exact * np.sqrt((nu - 2) / nu), 1e-6)


def test_garch_two_assets_correlation(two_data, fitted):
    r = fitted[("garch", 2)].sample(5000, seed=2).returns.reshape(-1, 2).astype(np.float64)
    real = np.corrcoef(training_returns(two_data).T)[0, 1]
    assert np.corrcoef(r.T)[0, 1] == pytest.approx(real, abs=0.1)


# ------------------------------------------------------------------ the shared contract
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("assets", [1, 2])
def test_scenario_i_does_not_depend_on_chunks(fitted, kind, assets):
    b = fitted[(kind, assets)]
    n, seed, h = 2100, 12345, 80
    full = b.sample(n, seed, chunk_size=n, horizon=h)
    by_1000 = b.sample(n, seed, chunk_size=1000, horizon=h)
    default = b.sample(n, seed, horizon=h)
    chunks = list(b.iter_chunks(n, seed, chunk_size=1000, horizon=h))
    ones = list(b.iter_chunks(25, seed, chunk_size=1, horizon=h))
    assert [len(c) for c in chunks] == [1000, 1000, 100] and len(ones) == 25
    for other in (by_1000, default, Scenarios.concat(chunks)):
        np.testing.assert_array_equal(bits(other.returns), bits(full.returns))
        assert other.tags["scenario"].tolist() == list(range(n))
    np.testing.assert_array_equal(bits(Scenarios.concat(ones).returns), bits(full.returns[:25]))
    assert [c.tags["scenario"].iloc[0] for c in chunks] == [0, 1000, 2000]
    assert not np.array_equal(b.sample(5, seed + 1, horizon=h).returns, full.returns[:5])


@pytest.mark.parametrize("kind", ["gaussian", "garch"])
def test_scenario_i_does_not_depend_on_blas_threads(fitted, kind):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    b = fitted[(kind, 2)]
    many = b.sample(1500, 3, chunk_size=700).returns
    with threadpoolctl.threadpool_limits(1):
        one = b.sample(1500, 3, chunk_size=1500).returns
    np.testing.assert_array_equal(bits(one), bits(many))


@pytest.mark.parametrize("kind", KINDS)
def test_shapes_dtype_and_tags(fitted, kind):
    b = fitted[(kind, 2)]
    assert b.name == kind and b.window == 64 and b.n_assets == 2
    assert b.asset_names == ["SP500", "NASDAQ"]
    for horizon, want in ((None, 64), (1, 1), (200, 200)):
        s = b.sample(7, seed=1, horizon=horizon)
        assert isinstance(s, Scenarios)
        assert s.returns.shape == (7, want, 2) and s.returns.dtype == np.float32
        assert s.returns.flags.c_contiguous and np.all(np.isfinite(s.returns))
        assert (s.horizon, s.window, s.seed, s.drift) == (want, 64, 1, "keep")
        assert s.asset_names == ["SP500", "NASDAQ"]
        assert s.tags["scenario"].dtype == np.int64
        assert s.tags["scenario"].tolist() == list(range(7))
        assert isinstance(s.tags["set"].dtype, pd.CategoricalDtype)
        assert list(s.tags["set"].cat.categories) == list(SETS)
        assert (s.tags["set"] == "prior").all()
    empty = b.sample(0, seed=1)
    assert empty.returns.shape == (0, 64, 2) and len(empty.tags) == 0
    assert list(b.iter_chunks(0, seed=1)) == []
    assert kind in repr(b).lower()


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("kind", KINDS)
def test_bad_arguments_raise(fitted, kind):
    b = fitted[(kind, 1)]
    cases = [
        (dict(n=-1, seed=0), "n must be"),
        (dict(n=1.5, seed=0), "n must be an integer"),
        (dict(n=2, seed=-1), "seed must be"),
        (dict(n=2, seed=0, horizon=0), "horizon must be"),
        (dict(n=2, seed=0, chunk_size=0), "chunk_size must be"),
        (dict(n=2, seed=0, drift="zero"), "baselines keep the fitted drift"),
        (dict(n=2, seed=0, drift="historical"), "baselines keep the fitted drift"),
    ]
    for kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            b.sample(**kwargs)
        with pytest.raises(ValueError, match=match):
            b.iter_chunks(**kwargs)  # checked on the call, before iterating
    with pytest.raises(ValueError, match="data must be a WindowData"):
        MAKERS[kind]("prices.csv")


def test_bad_data_and_block_lengths(sp500_data):
    with pytest.raises(ValueError, match="at least 250 training returns"):
        GarchBaseline(_tiny_data(200))
    one_window = _tiny_data(28, window=4, val_fraction=0.85)
    assert len(one_window.train) == 1
    with pytest.raises(ValueError, match="at least 2 training windows"):
        GaussianBaseline(one_window)
    with pytest.raises(ValueError, match="block length"):
        BootstrapBaseline(one_window)
    assert BootstrapBaseline(one_window, block_length=2).sample(3, 0).returns.shape == (3, 4, 1)
    for bad in (0.5, 0, float("nan"), float("inf"), "long", True):
        with pytest.raises(ValueError, match="block_length must be a real number >= 1"):
            BootstrapBaseline(sp500_data, block_length=bad)
    with pytest.raises(ValueError, match="horizon must be"):
        BootstrapBaseline(sp500_data).source_index(3, 0, horizon=0)

"""Realism metrics on data with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from stressvae.realism import (
    acf_pooled,
    comovement,
    correlation_matrix_error,
    discriminative_score,
    joint_crash_frequency,
    kupiec_pof,
    leverage,
    marginal_stats,
    max_drawdown,
    memorization,
    pairwise_correlation,
    portfolio_returns,
    portfolio_risk,
    portfolio_windows,
    regime_masks,
    tail_risk,
    tstr_score,
    window_correlations,
)


def garch_paths(n, t, seed=0, omega=0.02, alpha=0.1, beta=0.85):
    """GARCH(1,1) with normal shocks (percent units) and leverage-free shocks."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, t + 200))
    s2 = np.full(n, omega / (1 - alpha - beta))
    out = np.empty_like(z)
    for i in range(z.shape[1]):
        out[:, i] = np.sqrt(s2) * z[:, i]
        s2 = omega + alpha * out[:, i] ** 2 + beta * s2
    return out[:, 200:] / 100


def test_iid_normal_has_no_autocorrelation_and_no_excess_kurtosis():
    x = np.random.default_rng(1).standard_normal((400, 252)) * 0.01
    assert np.all(np.abs(acf_pooled(x)) < 0.01)
    assert np.all(np.abs(acf_pooled(np.abs(x))) < 0.01)
    m = marginal_stats(x[:, :, None])
    assert abs(m["kurt_1d"]) < 0.05 and abs(m["skew_1d"]) < 0.03
    assert m["std_5d"] == pytest.approx(m["std_1d"] * np.sqrt(5), rel=0.02)
    assert np.all(np.abs(leverage(x)) < 0.01)


def test_garch_has_volatility_clustering_and_fat_tails():
    x = garch_paths(400, 500)
    acf_abs = acf_pooled(np.abs(x))
    assert np.all(acf_abs[:5] > 0.05) and acf_abs[0] > acf_abs[19]
    assert marginal_stats(x[:, :, None])["kurt_1d"] > 0.5


def test_leverage_of_a_series_that_has_it():
    rng = np.random.default_rng(2)
    r = rng.standard_normal((200, 300))
    vol = np.ones_like(r)
    vol[:, 1:] = 1 - 0.4 * np.clip(r[:, :-1], -2, 2) / 2  # falls raise tomorrow's volatility
    x = r * vol
    assert leverage(x)[0] < -0.1


def test_acf_pooled_of_a_known_ar1():
    rng = np.random.default_rng(3)
    e = rng.standard_normal((200, 1000))
    x = np.zeros_like(e)
    for t in range(1, 1000):
        x[:, t] = 0.5 * x[:, t - 1] + e[:, t]
    acf = acf_pooled(x[:, 100:], lags=3)
    np.testing.assert_allclose(acf, [0.5, 0.25, 0.125], atol=0.01)


def test_tail_risk_and_kupiec():
    r = np.random.default_rng(4).standard_normal(200_000)
    t = tail_risk(r)
    assert t["var_99"] == pytest.approx(stats.norm.ppf(0.99), rel=0.02)
    assert t["es_99"] == pytest.approx(stats.norm.pdf(stats.norm.ppf(0.99)) / 0.01, rel=0.03)
    real = np.random.default_rng(5).standard_normal(5000)
    assert kupiec_pof(real, stats.norm.ppf(0.99), 0.99) > 0.05  # right VaR: not rejected
    assert kupiec_pof(real, stats.norm.ppf(0.9), 0.99) < 1e-6  # far too small a VaR: rejected
    assert kupiec_pof(real, 100.0, 0.99) < 1e-6  # no exceedance at all in 5000 days: rejected


def test_memorization_copies_and_new_windows():
    rng = np.random.default_rng(6)
    train = rng.standard_normal((1500, 32, 1)) * 0.01
    holdout = rng.standard_normal((400, 32, 1)) * 0.01
    copies = memorization(train, train[:300], holdout)
    assert copies["ratio"] < 0.01 and copies["near_copies"] == 1.0
    fresh = memorization(train, rng.standard_normal((300, 32, 1)) * 0.03, holdout)
    assert 0.9 < fresh["ratio"] < 1.1 and fresh["near_copies"] < 0.05  # scale does not matter


def test_discriminator_tells_apart_only_what_differs():
    rng = np.random.default_rng(7)
    a = rng.standard_normal((600, 32, 1)) * 0.01
    b = rng.standard_normal((600, 32, 1)) * 0.01
    wild = rng.standard_normal((600, 32, 1)) * 0.02
    assert discriminative_score(a, b, seed=1) < 0.1
    assert discriminative_score(a, wild, seed=1) > 0.35


def test_tstr_learns_volatility_clustering_only_from_data_that_has_it():
    test = garch_paths(2000, 32, seed=8)[:, :, None]
    from_garch = tstr_score(garch_paths(4000, 32, seed=9)[:, :, None], test)
    iid = np.random.default_rng(10).standard_normal((4000, 32, 1)) * test.std()
    from_iid = tstr_score(iid, test)
    assert from_garch < from_iid


def test_evaluate_on_sp500_side_by_side(tmp_path):
    import torch

    import stressvae as sv
    from stressvae.realism import evaluate

    data = sv.WindowData.from_prices(
        sv.load_dataset("sp500"),
        window=32,
        split_date="2013-01-01",
        holdout_every=5,
        holdout_offset=2,
    )
    assert len(data.holdout) > 500
    torch.manual_seed(0)
    model = sv.ScenarioVAE(window=32)
    sv.Trainer(max_epochs=40, seed=0, progress=False).fit(model, data)
    rep = evaluate(
        {"vae": sv.ScenarioGenerator(model, data, device="cpu")},
        data,
        n=3000,
        n_long=300,
        discriminator_epochs=8,
    )
    t = rep.table
    assert list(t.columns) == ["real holdout", "real test", "vae", "gaussian", "bootstrap", "garch"]
    assert {
        "marginal",
        "regimes",
        "tails",
        "dependence",
        "discriminator",
        "usefulness",
        "memorization",
    } == set(t.index.get_level_values(0))
    # the baselines behave as they must
    assert abs(t.loc[("marginal", "kurt_1d"), "gaussian"]) < 0.3
    assert t.loc[("dependence", "acf_abs_mean_1_20"), "gaussian"] < 0.03
    assert t.loc[("dependence", "acf_abs_mean_1_20"), "garch"] > 0.1
    assert t.loc[("memorization", "near_copies"), "bootstrap"] > 0.05  # it copies blocks
    assert (
        t.loc[("memorization", "near_copies"), "vae"]
        < t.loc[("memorization", "near_copies"), "bootstrap"]
    )
    # the VAE gets the tails and the spread of regimes closer than the Gaussian
    real_es = t.loc[("tails", "es_99"), "real holdout"]
    assert abs(t.loc[("tails", "es_99"), "vae"] - real_es) < abs(
        t.loc[("tails", "es_99"), "gaussian"] - real_es
    )
    assert t.loc[("regimes", "vol_ks"), "vae"] < t.loc[("regimes", "vol_ks"), "gaussian"]
    assert any("holdout" in n for n in rep.notes)
    html = rep.to_html(tmp_path / "realism.html").read_text()
    assert html.count("data:image/png;base64,") == 3


def test_training_periods_leave_out_the_holdout_and_its_purge():
    import pandas as pd

    import stressvae as sv

    data = sv.WindowData.from_prices(
        sv.load_dataset("sp500"), window=32, split_date="2013-01-01", holdout_every=5
    )
    train = [(pd.Timestamp(a), pd.Timestamp(b)) for a, b in data.periods("train")]
    hold = [(pd.Timestamp(a), pd.Timestamp(b)) for a, b in data.periods("holdout")]
    assert len(hold) >= 2 and len(train) in (len(hold), len(hold) + 1)
    idx = data.returns.index
    for a, b in hold:
        for c, d in train:
            assert d < a or c > b  # disjoint, with at least one window of purge between
            assert (
                idx.get_loc(a) - idx.get_loc(d) > 32
                if d < a
                else idx.get_loc(c) - idx.get_loc(b) > 32
            )
    assert train[-1][1] < pd.Timestamp(data.periods("val")[0][0])


# ------------------------------------------------------------------ many assets
def equicorrelated(rng, k, days, assets, rho, vol):
    """k windows of Gaussian daily returns, pairwise correlation rho, std vol."""
    common = rng.standard_normal((k, days, 1))
    own = rng.standard_normal((k, days, assets))
    return vol * (np.sqrt(rho) * common + np.sqrt(1 - rho) * own)


def test_window_correlations_are_numpys_and_find_the_known_correlation(rng):
    w = rng.standard_normal((7, 30, 4)).cumsum(axis=2)  # correlated across assets
    c = window_correlations(w)
    for i in range(7):
        np.testing.assert_allclose(c[i], np.corrcoef(w[i].T), rtol=1e-12, atol=1e-12)
    off = ~np.eye(4, dtype=bool)
    np.testing.assert_allclose(pairwise_correlation(w), c[:, off].mean(axis=1), rtol=1e-12)
    x = equicorrelated(rng, 50, 2000, 5, 0.6, 0.01)
    got = pairwise_correlation(x)
    assert got.shape == (50,) and np.all(np.abs(got - 0.6) < 0.05)
    assert abs(got.mean() - 0.6) < 0.01
    assert abs(pairwise_correlation(equicorrelated(rng, 50, 2000, 5, 0.0, 0.01)).mean()) < 0.01
    # an asset that does not move: its pairs are left out, not counted as 0
    x[:, :, 2] = 0.0
    assert abs(pairwise_correlation(x).mean() - 0.6) < 0.01
    assert np.all(np.isnan(window_correlations(x)[:, 2]))


def test_comovement_by_regime_on_built_windows(rng):
    calm = equicorrelated(rng, 500, 64, 6, 0.1, 0.01)
    middle = equicorrelated(rng, 400, 64, 6, 0.3, 0.015)
    crisis = equicorrelated(rng, 100, 64, 6, 0.8, 0.04)
    w = rng.permutation(np.concatenate([calm, middle, crisis]))
    is_calm, is_crisis = regime_masks(w)
    assert is_calm.sum() == 500 and is_crisis.sum() == 100
    np.testing.assert_allclose(pairwise_correlation(w[is_calm]).mean(), 0.1, atol=0.02)
    cm = comovement(w)
    assert cm["avg_corr_calm"] == pytest.approx(pairwise_correlation(calm).mean(), abs=1e-12)
    assert cm["avg_corr_crisis"] == pytest.approx(pairwise_correlation(crisis).mean(), abs=1e-12)
    assert cm["avg_corr_crisis"] == pytest.approx(0.8, abs=0.03)
    assert cm["avg_corr_rise"] == pytest.approx(cm["avg_corr_crisis"] - cm["avg_corr_calm"])
    assert cm["avg_corr"] == pytest.approx((50 * 0.1 + 40 * 0.3 + 10 * 0.8) / 100, abs=0.02)
    off = ~np.eye(6, dtype=bool)
    np.testing.assert_allclose(cm["matrix_crisis"][off], 0.8, atol=0.06)
    np.testing.assert_allclose(np.diag(cm["matrix"]), 1.0)
    # each set by its own quantiles: a set that is all crisis-like still has a calm half
    assert comovement(crisis)["avg_corr_calm"] == pytest.approx(0.8, abs=0.05)


def test_correlation_matrix_error_by_hand(rng):
    a = np.full((4, 4), 0.5)
    np.fill_diagonal(a, 1.0)
    b = np.full((4, 4), 0.3)
    np.fill_diagonal(b, 1.0)
    assert correlation_matrix_error(a, b) == pytest.approx(np.sqrt(12) * 0.2)
    assert correlation_matrix_error(a, b, kind="mae") == pytest.approx(0.2)
    x = equicorrelated(rng, 300, 64, 4, 0.5, 0.01)
    y = equicorrelated(rng, 300, 64, 4, 0.3, 0.01)
    assert correlation_matrix_error(x, y, kind="mae") == pytest.approx(0.2, abs=0.02)
    assert correlation_matrix_error(x, x) == 0.0
    with pytest.raises(ValueError, match="kind must be"):
        correlation_matrix_error(a, b, kind="max")
    with pytest.raises(ValueError, match="assets"):
        correlation_matrix_error(a, np.eye(3))


def test_portfolio_returns_drawdown_and_risk_by_hand():
    # two assets, three days: simple returns (10 %, 10 %), (-10 %, -10 %), (0 %, 20 %)
    simple = np.array([[[0.1, 0.1], [-0.1, -0.1], [0.0, 0.2]]])
    w = np.log1p(simple)
    np.testing.assert_allclose(portfolio_returns(w), [[0.1, -0.1, 0.1]], rtol=1e-12)
    # wealth 1.1, 0.99, 1.089: the drawdown from the peak 1.1 is -10 %
    np.testing.assert_allclose(max_drawdown([[0.1, -0.1, 0.1]]), [-0.1], rtol=1e-12)
    np.testing.assert_allclose(max_drawdown([[-0.05, 0.01]]), [-0.05], rtol=1e-12)  # from 1
    assert max_drawdown([[0.01, 0.02]])[0] == 0.0
    np.testing.assert_allclose(portfolio_windows(w)[0, :, 0], np.log1p([0.1, -0.1, 0.1]), rtol=1e-6)
    # risk quantiles against a per-window loop
    rng = np.random.default_rng(5)
    w = rng.standard_normal((400, 20, 3)) * rng.uniform(0.005, 0.03, (400, 1, 1))
    vols, dds, totals = [], [], []
    for win in w:
        p = [np.mean([np.exp(r) - 1 for r in day]) for day in win]
        vols.append(np.std(p, ddof=1) * np.sqrt(252))
        wealth, peak, dd = 1.0, 1.0, 0.0
        for r in p:
            wealth *= 1 + r
            peak = max(peak, wealth)
            dd = min(dd, wealth / peak - 1)
        dds.append(dd)
        totals.append(wealth - 1)
    risk = portfolio_risk(w)
    assert risk["vol_q50_annual"] == pytest.approx(np.quantile(vols, 0.5), rel=1e-10)
    assert risk["vol_q05_annual"] == pytest.approx(np.quantile(vols, 0.05), rel=1e-10)
    assert risk["vol_q95_annual"] == pytest.approx(np.quantile(vols, 0.95), rel=1e-10)
    assert risk["max_drawdown_q01"] == pytest.approx(np.quantile(dds, 0.01), rel=1e-10)
    assert risk["total_return_q05"] == pytest.approx(np.quantile(totals, 0.05), rel=1e-10)
    # correlated assets: a riskier equal-weight portfolio than independent ones
    rng = np.random.default_rng(6)
    hi = portfolio_risk(equicorrelated(rng, 500, 64, 10, 0.6, 0.01))
    lo = portfolio_risk(equicorrelated(rng, 500, 64, 10, 0.0, 0.01))
    want = np.sqrt(0.6 + 0.4 / 10) / np.sqrt(0.1)  # ratio of the portfolio stds
    assert hi["vol_q50_annual"] / lo["vol_q50_annual"] == pytest.approx(want, rel=0.05)
    assert hi["max_drawdown_q01"] < lo["max_drawdown_q01"]


def test_joint_crash_frequency_on_a_built_example():
    sigma = np.array([1.0, 1.0, 2.0, 1.0, 1.0])
    days = np.array(
        [
            [-3, -3, -5, -3, 0],  # 4 of 5 below -2 sigma (asset 2: -5 < -4): a joint crash
            [-3, -3, -3, -3, -3],  # asset 2 only -1.5 sigma: 4 of 5, a joint crash
            [-3, -3, -3.9, 0, 0],  # 2 of 5
            [-2, -2, -4, -2, -2],  # exactly -2 sigma is not below
            [-9, -9, -9, -9, -9],  # all
            [1, 1, 1, 1, 1],
        ],
        dtype=np.float64,
    )
    w = np.stack([days, days[::-1]])  # two windows of 6 days
    assert joint_crash_frequency(w, sigma) == pytest.approx(3 / 6)
    assert joint_crash_frequency(w, sigma, share=1.0) == pytest.approx(1 / 6)
    assert joint_crash_frequency(w, sigma, share=0.4) == pytest.approx(4 / 6)
    assert joint_crash_frequency(w, sigma, threshold=1.0, share=1.0) == pytest.approx(3 / 6)
    # 20 assets: 16 needed (80 %)
    x = np.zeros((1, 2, 20))
    x[0, 0, :16] = -3
    x[0, 1, :15] = -3
    assert joint_crash_frequency(x, np.ones(20)) == 0.5
    for kwargs, match in (
        (dict(sigma=np.ones(4)), "sigma must have one entry per asset"),
        (dict(sigma=np.r_[np.ones(4), 0.0]), "sigma must be finite and > 0"),
        (dict(sigma=sigma, share=0.0), "share must be"),
    ):
        with pytest.raises(ValueError, match=match):
            joint_crash_frequency(w, **kwargs)


def test_many_asset_metrics_refuse_bad_windows():
    with pytest.raises(ValueError, match="windows must be"):
        window_correlations(np.zeros((10, 3)))
    with pytest.raises(ValueError, match="at least 2 assets"):
        pairwise_correlation(np.zeros((3, 10, 1)))
    with pytest.raises(ValueError, match="windows must be"):
        portfolio_returns(np.zeros(5))
    with pytest.raises(ValueError, match="calm and crisis"):
        regime_masks(np.ones((4, 5, 2)), calm=0.0)


def test_discriminator_on_portfolio_windows_sees_missing_comovement():
    rng = np.random.default_rng(11)
    real = equicorrelated(rng, 300, 16, 8, 0.5, 0.01)
    same = equicorrelated(rng, 300, 16, 8, 0.5, 0.01)
    indep = equicorrelated(rng, 300, 16, 8, 0.0, 0.01)  # same marginals, no co-movement
    told = discriminative_score(portfolio_windows(real), portfolio_windows(indep), epochs=30)
    floor = discriminative_score(portfolio_windows(real), portfolio_windows(same), epochs=30)
    assert told > 0.3 and floor < 0.1


def test_evaluate_adds_many_asset_rows():
    import stressvae as sv
    from stressvae.baselines import BootstrapBaseline, GaussianBaseline
    from stressvae.realism import evaluate

    data = sv.WindowData.from_prices(
        sv.load_dataset("sp500_nasdaq"), window=32, split_date="2013-01-01", holdout_every=5
    )
    gens = {"gaussian": GaussianBaseline(data), "bootstrap": BootstrapBaseline(data)}
    rep = evaluate(gens, data, baselines=False, n=500, n_long=50, discriminator_epochs=1)
    t = rep.table
    assert {"co-movement", "portfolio"} <= set(t.index.get_level_values(0))
    for col in t.columns:
        assert np.isfinite(t.loc[("co-movement", "avg_corr"), col])
        assert np.isfinite(t.loc[("discriminator", "ew_score_vs_holdout"), col])
    assert t.loc[("co-movement", "corr_matrix_error"), "real holdout"] == 0.0
    real = t.loc[("co-movement", "avg_corr"), "real holdout"]
    assert real > 0.8  # the S&P 500 and the NASDAQ move together
    # days kept together: the bootstrap keeps the co-movement; as do the Gaussian's windows
    assert t.loc[("co-movement", "avg_corr"), "bootstrap"] == pytest.approx(real, abs=0.08)
    assert t.loc[("co-movement", "avg_corr_rise"), "real holdout"] > 0
    ret = data.returns.to_numpy()
    want = joint_crash_frequency(data.holdout, np.nanstd(ret, axis=0, ddof=1))
    assert t.loc[("co-movement", "joint_crash_freq"), "real holdout"] == pytest.approx(want)
    assert want > 0  # both indices fall by more than 2 sigma on some days
    assert t.loc[("portfolio", "ew_vol_q50_annual"), "real holdout"] == pytest.approx(
        portfolio_risk(data.holdout)["vol_q50_annual"]
    )
    assert "correlation" in rep.details and rep.details["correlation"]["gaussian"][
        "matrix"
    ].shape == (2, 2)

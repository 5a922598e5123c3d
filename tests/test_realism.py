"""Realism metrics on data with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from stressvae.realism import (
    acf_pooled,
    discriminative_score,
    kupiec_pof,
    leverage,
    marginal_stats,
    memorization,
    tail_risk,
    tstr_score,
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

"""The VaR / ES backtest (stressvae.risk): the tests' statistics against
values worked out by hand, the classical forecasters on a simulated GARCH-t
market, the information each forecast may use, bad input, and the whole
backtest and its command on a small trained model."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2

import stressvae as sv
from stressvae import risk
from stressvae.cli import main as cli_main

# --------------------------------------------------------------------------
# the tests' statistics


def _lr_pof(x: int, t: int, p: float) -> float:
    """Kupiec's LR written out, for 0 < x < t."""
    r = x / t
    return -2 * ((t - x) * math.log(1 - p) + x * math.log(p)) + 2 * (
        (t - x) * math.log(1 - r) + x * math.log(r)
    )


def test_kupiec_matches_the_formula_and_takes_the_edges():
    lr, p = risk.kupiec_pof(7, 250, 0.99)
    assert lr == pytest.approx(_lr_pof(7, 250, 0.01), rel=1e-12)
    assert p == pytest.approx(chi2.sf(lr, 1), rel=1e-12)
    assert 0.01 < p < 0.05  # 7 exceptions in 250 days at 99 %: rejected at 5 %
    assert risk.kupiec_pof(3, 250, 0.99)[1] > 0.5  # 2.5 expected
    # no exception at all, and nothing but exceptions: 0 log 0 = 0
    lr0, p0 = risk.kupiec_pof(0, 250, 0.99)
    assert lr0 == pytest.approx(-2 * 250 * math.log(0.99), rel=1e-12)
    lr_all, p_all = risk.kupiec_pof(20, 20, 0.95)
    assert lr_all == pytest.approx(-2 * 20 * math.log(0.05), rel=1e-12)
    assert np.isfinite([p0, p_all]).all() and p_all < 1e-10
    lo, hi = risk.kupiec_band(250, 0.99)
    assert lo <= 2.5 <= hi
    assert risk.kupiec_pof(hi, 250, 0.99)[1] > 0.05 >= risk.kupiec_pof(hi + 1, 250, 0.99)[1]


def test_christoffersen_matches_the_counts_worked_out_by_hand():
    hits = [0, 0, 1, 1, 0, 0, 0, 1, 0, 0]
    # pairs: 00 01 11 10 00 00 01 10 00 -> n00 = 4, n01 = 2, n10 = 2, n11 = 1
    c = risk.christoffersen(hits, 0.95)
    assert (c["n00"], c["n01"], c["n10"], c["n11"]) == (4, 2, 2, 1)
    pi, pi01, pi11 = 3 / 9, 2 / 6, 1 / 3
    l0 = 6 * math.log(1 - pi) + 3 * math.log(pi)
    l1 = 4 * math.log(1 - pi01) + 2 * math.log(pi01) + 2 * math.log(1 - pi11) + math.log(pi11)
    assert c["lr_ind"] == pytest.approx(max(-2 * (l0 - l1), 0.0), abs=1e-12)
    assert c["lr_cc"] == pytest.approx(c["lr_ind"] + _lr_pof(3, 10, 0.05), rel=1e-12)
    assert c["cc_p"] == pytest.approx(chi2.sf(c["lr_cc"], 2), rel=1e-12)
    # clustered exceptions: independence rejected
    clustered = np.zeros(500, bool)
    clustered[[100, 101, 102, 103, 300, 301, 302, 303]] = True
    assert risk.christoffersen(clustered, 0.99)["ind_p"] < 1e-3
    # no exception, only exceptions, one day: no crash, no NaN
    for seq in (np.zeros(250, bool), np.ones(30, bool), [1], [0]):
        c = risk.christoffersen(seq, 0.99)
        assert c["lr_ind"] == 0.0 and c["ind_p"] == 1.0
        assert np.isfinite([c["lr_cc"], c["cc_p"]]).all()


def test_traffic_light_boundaries_at_99_percent_over_250_days():
    zones = [risk.basel_zone(x, 250, 0.99) for x in range(12)]
    assert zones == ["green"] * 5 + ["yellow"] * 5 + ["red"] * 2
    hits = np.zeros(260, bool)  # 11 rolling windows of 250, the k-th starts at k
    hits[:5] = True  # window 0 holds 5 exceptions, window k holds 5 - k
    assert risk.traffic_light(hits, 0.99) == {"green": 10, "yellow": 1, "red": 0}
    hits[:10] = True  # 10, 9, ..., 0
    assert risk.traffic_light(hits, 0.99) == {"green": 5, "yellow": 5, "red": 1}
    assert risk.traffic_light(hits[:249], 0.99) == {"green": 0, "yellow": 0, "red": 0}


def test_empirical_var_es_is_the_quantile_and_the_tail_mean():
    x = np.arange(1, 101, dtype=np.float64) - 50.0  # -49 .. 50
    var, es = risk.empirical_var_es(x, 0.95)
    assert var == pytest.approx(-np.quantile(x, 0.05))
    assert es == pytest.approx(-np.mean(np.sort(x)[:5]))  # the 5 worst of 100


def _t_forecasts(rng, days: int, m: int, scale: float = 1.0):
    """Each day a Student-t(5) return with its own volatility: the forecast
    (draws, VaR, ES at 97.5 %) and the realized return from the truth."""
    vol = 0.01 * np.exp(rng.normal(0, 0.4, size=days))
    draws = rng.standard_t(5, size=(days, m)) * vol[:, None] * scale
    realized = rng.standard_t(5, size=days) * vol
    var, es = risk.empirical_var_es(draws, 0.975)
    return realized, var, es, draws


def test_z2_accepts_right_forecasts_and_rejects_es_too_small_by_half():
    rng = np.random.default_rng(3)
    right = []
    for seed in range(5):
        x, var, es, draws = _t_forecasts(rng, 500, 1000)
        right.append(risk.acerbi_szekely_z2(x, var, es, 0.975, draws, 1000, seed)[1])
    assert np.mean(right) > 0.2 and min(right) > 0.01, right
    x, var, es, draws = _t_forecasts(rng, 500, 1000, scale=0.5)  # VaR and ES halved
    z2, p = risk.acerbi_szekely_z2(x, var, es, 0.975, draws, 1000, 0)
    assert z2 < -0.5 and p < 0.01
    z2, p = risk.acerbi_szekely_z2(x, var, es, 0.975)  # no draws: no p-value
    assert np.isnan(p)
    # no exception: Z2 = 1 exactly
    assert risk.acerbi_szekely_z2([0.01, 0.02], [0.05, 0.05], [0.06, 0.06], 0.99)[0] == 1.0


# --------------------------------------------------------------------------
# the classical forecasters on a simulated clustered market


def _garch_prices(seed: int, days: int, omega=0.01, alpha=0.15, beta=0.84, nu=6.0):
    """Price levels of a GARCH(1,1)-t market (percent units, strong
    clustering: persistence 0.99), business days from 2000."""
    rng = np.random.default_rng(seed)
    s2, r = omega / (1 - alpha - beta), np.empty(days)
    for t in range(days):
        e = math.sqrt(s2) * rng.standard_t(nu) * math.sqrt((nu - 2) / nu)
        r[t] = 0.03 + e
        s2 = omega + alpha * e * e + beta * s2
    idx = pd.bdate_range("2000-01-03", periods=days + 1, name="date")
    return pd.DataFrame({"X": 100 * np.exp(np.r_[0, np.cumsum(np.log1p(r / 100))])}, index=idx)


@pytest.fixture(scope="module")
def clustered():
    prices = _garch_prices(3, 2500)
    vb = sv.var_backtest(
        None, prices, prices.index[1001], prices.index[-1], models=("hs", "fhs_gjr", "garch_t"),
        levels=(0.95, 0.99), horizons=(1, 10), n=500, simulations=300,
    )  # fmt: skip
    return prices, vb


def test_garch_models_cover_and_pass_independence_where_hs_fails(clustered):
    _, vb = clustered
    t = vb.table.set_index(["model", "horizon", "level"])
    for m in ("fhs_gjr", "garch_t"):
        assert 0.003 <= t.loc[(m, 1, 0.99), "rate"] <= 0.025
        assert 0.03 <= t.loc[(m, 1, 0.95), "rate"] <= 0.07
        assert t.loc[(m, 1, 0.95), "christoffersen_ind_p"] > 0.05
        assert t.loc[(m, 1, 0.95), "cc_p"] > 0.05
    assert 0.003 <= t.loc[("hs", 1, 0.99), "rate"] <= 0.04
    assert t.loc[("hs", 1, 0.95), "christoffersen_ind_p"] < 0.01  # HS reacts too slowly
    assert t.loc[("hs", 1, 0.95), "cc_p"] < 0.01
    # the GARCH VaR follows the volatility day by day and foretells the size of
    # the next move better; HS's steps only when a day enters or leaves its 250
    fc = vb.forecasts
    size = fc["return_1d"].abs()
    for m in ("fhs_gjr", "garch_t"):
        assert fc[f"{m}_var99_1d"].diff().abs().mean() > 5 * fc["hs_var99_1d"].diff().abs().mean()
        assert fc[f"{m}_var99_1d"].corr(size) > fc["hs_var99_1d"].corr(size) + 0.1
    assert (t["mean_es"] >= t["mean_var"]).all()


def test_ten_day_forecasts_sit_on_non_overlapping_blocks(clustered):
    prices, vb = clustered
    fc, t = vb.forecasts, vb.table
    days = len(fc)
    assert days == 1500 and (t[t.horizon == 1]["days"] == days).all()
    assert (t[t.horizon == 10]["days"] == days // 10).all()
    on = fc["return_10d"].notna().to_numpy()
    assert np.flatnonzero(on).tolist() == list(range(0, days, 10))
    # the realized 10-day return is the compounded simple return of the block
    r = prices["X"].pct_change().loc[fc.index]
    assert fc["return_10d"].iloc[10] == pytest.approx(np.prod(1 + r.iloc[10:20]) - 1, rel=1e-10)
    assert fc["return_1d"].to_numpy() == pytest.approx(r.to_numpy(), rel=1e-10)
    for m in vb.models:  # a 10-day VaR exceeds the 1-day one on the same day
        assert (fc[f"{m}_var99_10d"][on] > fc[f"{m}_var99_1d"][on]).all()
    # zones need 250 observations: 150 blocks have none
    assert t[t.horizon == 10]["green"].isna().all()
    assert (t[t.horizon == 1][["green", "yellow", "red"]].sum(axis=1) == days - 249).all()


def test_refit_changes_the_parameters_along_the_period():
    prices = _garch_prices(5, 900)
    vb = sv.var_backtest(
        None, prices, prices.index[601], prices.index[-1], models=("garch_t",),
        levels=(0.99,), horizons=(1,), refit=100, simulations=10,
    )  # fmt: skip
    fits = vb.fits["garch_t"]
    assert len(fits) == 3  # at the start, after 100 and 200 days (300 days in all)
    assert [f["fitted_until"] for f in fits] == [601, 701, 801]
    assert fits[0]["omega"] != fits[2]["omega"]


# --------------------------------------------------------------------------
# the VAE forecaster's information, overlap and bad input (a stand-in
# generator: the last window's returns resampled)


class _Recorder:
    """A generator double: from_today resamples the returns of the prices it
    is given and records their last date."""

    def __init__(self, assets, window=20, trained=()):
        self.model = SimpleNamespace(
            window=window, n_assets=len(assets), trained_periods=list(trained)
        )
        self.asset_names = list(assets)
        self.seen: list[pd.Timestamp] = []

    def from_today(self, horizon, n, seed, prices):
        assert len(prices) == self.model.window + 1
        self.seen.append(prices.index[-1])
        lr = np.diff(np.log(prices[self.asset_names].to_numpy(np.float64)), axis=0)
        k = np.random.default_rng(seed).integers(0, len(lr), size=(n, horizon))
        return SimpleNamespace(returns=lr[k].astype(np.float32))


@pytest.fixture(scope="module")
def two_assets():
    a, b = _garch_prices(1, 800), _garch_prices(2, 800)
    return pd.DataFrame({"A": a["X"], "B": b["X"]})


def test_each_forecast_sees_only_the_days_before(two_assets):
    gen = _Recorder(["A", "B"])
    vb = sv.var_backtest(
        gen, two_assets, "2002-01-01", "2002-06-28", models=("vae", "hs"), levels=(0.99,),
        horizons=(1, 5), n=100, simulations=10,
    )  # fmt: skip
    idx = two_assets.index
    days = vb.forecasts.index
    assert gen.seen == [idx[idx.get_loc(d) - 1] for d in days]  # one call a day
    # equal weights by default; the daily rebalanced simple return
    r = two_assets.pct_change().loc[days]
    assert vb.forecasts["return_1d"].to_numpy() == pytest.approx(r.mean(axis=1).to_numpy())
    assert vb.weights.tolist() == [0.5, 0.5]
    # the same seed, the same draws; a weight dict puts the others at 0
    again = sv.var_backtest(
        _Recorder(["A", "B"]), two_assets, "2002-01-01", "2002-06-28", models=("vae",),
        levels=(0.99,), horizons=(1, 5), n=100, simulations=10,
    )  # fmt: skip
    assert again.forecasts["vae_var99_5d"].equals(vb.forecasts["vae_var99_5d"])
    only_a = sv.var_backtest(
        None, two_assets, "2002-01-01", "2002-06-28", weights={"A": 1.0}, models=("hs",),
        levels=(0.99,), horizons=(1,), simulations=10,
    )  # fmt: skip
    assert only_a.forecasts["return_1d"].to_numpy() == pytest.approx(r["A"].to_numpy())


def test_a_period_the_model_trained_on_is_refused(two_assets):
    gen = _Recorder(
        ["A", "B"], trained=[("2000-01-04", "2001-03-30"), ("2002-03-01", "2002-04-30")]
    )
    with pytest.raises(ValueError, match=r"overlaps the model's training period 2002-03-01"):
        sv.var_backtest(gen, two_assets, "2002-01-01", "2002-06-28", models=("vae",))
    # a period after the training data is fine
    sv.var_backtest(
        gen, two_assets, "2002-05-01", "2002-05-31", models=("vae",), horizons=(1,), n=50,
        simulations=10,
    )  # fmt: skip


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(models=("vae", "monte_carlo")), r"unknown model\(s\) \['monte_carlo'\]"),
        (dict(models=()), "models is empty"),
        (dict(weights=[1.0, 0.0, 0.0]), r"weights must be 2 number\(s\)"),
        (dict(weights={"A": 1.0, "C": 1.0}), r"asset\(s\) \['C'\] not in"),
        (dict(weights=[0.0, 0.0]), "all zero"),
        (dict(levels=(0.99, 1.0)), r"levels must be in \(0, 1\)"),
        (dict(levels=(0.0,)), r"levels must be in \(0, 1\)"),
        (dict(horizons=(0, 10)), "horizons must be an integer >= 1"),
        (dict(start="1999-01-01"), r"is not inside the prices \(2000-01-03"),
        (dict(end="2030-01-01"), "is not inside the prices"),
        (dict(start="2002-03-01", end="2002-02-01"), "is after end"),
        (dict(start="2000-01-20"), r"model 'vae' needs 21 prices before start"),
        (dict(start="2000-06-01", models=("hs",)), r"model 'hs' needs 260 prices"),
        (dict(start="2001-06-01", models=("garch_t",)), r"model 'garch_t' needs 501 prices"),
        (dict(start="2002-03-01", end="2002-03-05"), "fewer than the longest horizon 10"),
        (dict(n=0), "n must be an integer >= 1"),
    ],
)
def test_bad_input_is_a_clear_error(two_assets, change, message):
    kw = dict(start="2002-03-01", end="2002-05-31", n=50, simulations=10)
    kw.update(change)
    with pytest.raises(ValueError, match=message):
        sv.var_backtest(_Recorder(["A", "B"]), two_assets, **kw)


def test_gen_and_prices_must_fit(two_assets):
    with pytest.raises(ValueError, match="gen is None but models include 'vae'"):
        sv.var_backtest(None, two_assets, "2002-03-01", "2002-05-31")
    with pytest.raises(ValueError, match=r"prices lack the model's asset column\(s\) \['C'\]"):
        sv.var_backtest(_Recorder(["A", "C"]), two_assets, "2002-03-01", "2002-05-31")


# --------------------------------------------------------------------------
# a real model, end to end, and the command


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A small ScenarioVAE trained 3 epochs on the S&P 500 until 2005."""
    import torch

    torch.manual_seed(0)
    prices = sv.load_dataset("sp500")
    data = sv.WindowData.from_prices(prices.loc[:"2005-12-31"], window=16)
    model = sv.ScenarioVAE(window=16, hidden_dims=(32,), latent_dim=4)
    sv.Trainer(max_epochs=3, seed=0, progress=False).fit(model, data)
    path = model.save(tmp_path_factory.mktemp("risk") / "tiny.safetensors")
    return model, data, prices, path


def test_var_backtest_of_a_trained_model_end_to_end(tiny_model, tmp_path):
    model, data, prices, _ = tiny_model
    gen = sv.ScenarioGenerator(model, data, device="cpu")
    vb = sv.var_backtest(gen, prices, "2006-01-01", "2006-12-31", n=200, simulations=300)
    t = vb.table
    assert len(t) == 4 * 2 * 2 and set(t.model) == set(risk.MODELS)
    assert (t[t.horizon == 1]["days"] == 251).all() and (t[t.horizon == 10]["days"] == 25).all()
    assert t[["kupiec_p", "cc_p", "z2", "mean_var", "mean_es"]].notna().all().all()
    vae = vb.forecasts.filter(like="vae_")
    assert vae.filter(like="_1d").notna().all().all() and (vae.filter(like="_1d") > 0).all().all()
    # scenarios from each day's state: the VAE's VaR changes from day to day
    assert vb.forecasts["vae_var99_1d"].nunique() > 50
    path = vb.plot(tmp_path / "var.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["var.png"]  # no temporary file left
    with pytest.raises(ValueError, match="trained on"):
        sv.var_backtest(gen, prices, "2004-01-01", "2004-12-31", n=10)


def test_command_writes_the_table_and_figure_or_nothing(tiny_model, tmp_path, capsys):
    *_, model_path = tiny_model
    out, fig = tmp_path / "table.csv", tmp_path / "var.png"
    base = ["var-backtest", "--model", str(model_path), "--data", "sp500", "--n", "100"]
    code = cli_main(
        [*base, "--start", "2006-01-01", "--end", "2006-06-30", "--horizons", "1",
         "--out", str(out), "--figure", str(fig), "--quiet"]
    )  # fmt: skip
    assert code == 0
    table = pd.read_csv(out)
    assert list(table.model) == [m for m in risk.MODELS for _ in (0.95, 0.99)]
    assert fig.read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    bad = tmp_path / "bad"
    code = cli_main(
        [*base, "--start", "2004-01-01", "--end", "2004-12-31", "--out", str(bad / "t.csv"),
         "--figure", str(bad / "v.png"), "--quiet"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "overlaps the model's training period" in err
    assert not bad.exists()
    code = cli_main([*base, "--start", "2006-01-01", "--end", "2006-06-30", "--models", "vae,x"])
    assert code == 2 and "unknown model(s) ['x']" in capsys.readouterr().err

"""What-if scenarios (events, importance sampling) and scenarios from today."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import bits

import stressvae as sv
from stressvae.backtesting import loss_risk
from stressvae.events import Event, statistic


# ------------------------------------------------------------------ events
def _stat_by_hand(r: np.ndarray, stat: str, w: np.ndarray) -> np.ndarray:
    out = []
    for path in r.astype(np.float64):
        simple = np.expm1(path) @ w
        value = np.cumprod(1 + simple)
        if stat == "return":
            out.append(value[-1] - 1)
        elif stat == "worst_day":
            out.append(simple.min())
        elif stat == "best_day":
            out.append(simple.max())
        elif stat == "vol":
            out.append(np.sqrt(252 * np.mean(np.log1p(simple) ** 2)))
        else:
            peak = np.maximum.accumulate(np.r_[1.0, value])
            out.append(min(0.0, (np.r_[1.0, value] / peak - 1).min()))
    return np.array(out)


@pytest.mark.parametrize("stat", ["return", "worst_day", "best_day", "vol", "drawdown"])
def test_statistics_match_a_path_by_path_computation(rng, stat):
    r = (rng.standard_normal((40, 13, 3)) * 0.03).astype(np.float32)
    w = rng.dirichlet(np.ones(3))
    np.testing.assert_allclose(
        statistic(r, stat, w), _stat_by_hand(r, stat, w), rtol=1e-9, atol=1e-12
    )
    one = np.eye(3)[1]
    np.testing.assert_allclose(
        statistic(r, stat, 1), _stat_by_hand(r, stat, one), rtol=1e-9, atol=1e-12
    )


def test_parse_targets_combinations_and_describe():
    names = ["JPM", "BAC", "KO"]
    r = np.zeros((4, 5, 3), np.float32)
    r[0, 2, 0] = np.log(0.6)  # JPM -40 % on day 3
    r[1, :, 1] = np.log(0.9)  # BAC falls every day
    r[2, 0, :] = np.log(0.85)  # all fall 15 % on day 1
    ev = Event.parse("JPM:return<=-20%").bind(names)
    assert ev.occurs(r).tolist() == [True, False, False, False]
    both = Event.parse("JPM:worst_day<=-10% & KO:return<=-10%").bind(names)
    assert both.occurs(r).tolist() == [False, False, True, False]
    either = Event.parse("JPM:return<=-20% | {BAC=1}:drawdown<=-40%").bind(names)
    assert either.occurs(r).tolist() == [True, True, False, False]
    ew = Event.parse("ew:return<=-10%").bind(names)
    assert ew.occurs(r).tolist() == [True, True, True, False]
    same = (sv.events.total_return("JPM") <= -0.2) & (sv.events.drawdown("ew") <= -0.1)
    assert Event.parse(same.describe()).describe() == same.describe()
    assert Event.parse("{0.5,0.5,0}:vol>=40%").bind(names).occurs(r).shape == (4,)


@pytest.mark.parametrize(
    "text, match",
    [
        ("JPM return<=-20%", "cannot read"),
        ("JPM:ret<=-20%", "statistic must be"),
        ("JPM:return<-20%", "must be <= or >="),
        ("JPM:return<=-20% &", "empty condition"),
        ("{JPM=0.5,0.5}:return<=-1%", "all NAME=W or all numbers"),
        ("JPM:drawdown<=5%", "always holds"),
    ],
)
def test_bad_events_are_named(text, match):
    with pytest.raises(ValueError, match=match):
        Event.parse(text)


def test_binding_checks_assets_and_weights():
    with pytest.raises(ValueError, match="unknown asset 'XOM'"):
        Event.parse("XOM:return<=-10%").bind(["JPM", "BAC"])
    with pytest.raises(ValueError, match="one value per asset"):
        Event.parse("{1,2,3}:return<=-10%").bind(["JPM", "BAC"])
    with pytest.raises(ValueError, match="unknown asset 'XOM' in the weights"):
        Event.parse("{XOM=1}:return<=-10%").bind(["JPM", "BAC"])
    with pytest.raises(ValueError, match="bind the event"):
        Event.parse("JPM:return<=-10%").occurs(np.zeros((1, 2, 2), np.float32))


# ------------------------------------------------------------------ models
@pytest.fixture(scope="module")
def tiny_data():
    prices = sv.load_dataset("sp500").loc[:"2012-12-31"]
    return sv.WindowData.from_prices(prices, window=16)


def _tiny(data, decoder):
    torch.manual_seed(0)
    model = sv.ScenarioVAE(
        window=16, latent_dim=4, hidden_dims=(32,), decoder=decoder, rnn_hidden=16
    )
    sv.Trainer(max_epochs=4, seed=0, progress=False).fit(model, data)
    return sv.ScenarioGenerator(model, data, device="cpu")


@pytest.fixture(scope="module")
def mlp_gen(tiny_data):
    return _tiny(tiny_data, "mlp")


@pytest.fixture(scope="module")
def gru_gen(tiny_data):
    return _tiny(tiny_data, "gru")


def _wquantile(x, w, qs):
    o = np.argsort(x)
    c = np.cumsum(w[o]) / w.sum()
    return np.array([x[o][np.searchsorted(c, q)] for q in qs])


@pytest.mark.parametrize("decoder", ["mlp", "gru"])
def test_given_matches_rejection_sampling(request, decoder):
    """The weighted what-if scenarios have the conditional distribution that
    plain sampling and rejection give, and the event's probability."""
    gen = request.getfixturevalue(f"{decoder}_gen")
    ev = Event.parse("SP500:return<=-8%").bind(gen.asset_names)
    plain = gen.sample(150_000, seed=1, horizon=16)
    st = ev.statistics(plain.returns)[:, 0]
    inside = st <= -0.08
    p = inside.mean()
    assert 0.005 < p < 0.2  # a tail event, not a trivial one
    hit = gen.given(ev, n=4000, seed=7, horizon=16)
    assert isinstance(hit, sv.ConditionalScenarios) and len(hit) == 4000
    s2 = ev.statistics(hit.returns)[:, 0]
    assert np.all(s2 <= -0.08)
    assert np.all(hit.weights > 0) and 400 < hit.ess <= 4000
    se = np.sqrt(p * (1 - p) / len(st))
    assert abs(hit.probability - p) < 0.15 * p + 4 * se
    qs = [0.1, 0.5, 0.9]
    np.testing.assert_allclose(
        _wquantile(s2, hit.weights, qs), np.quantile(st[inside], qs), rtol=0.08, atol=0.004
    )
    assert hit.tags["set"].iloc[0] == "given"
    assert hit.tilt == "latent+noise"  # auto: the GRU, and an MLP with a return event


def test_given_is_a_prefix_and_reproducible(mlp_gen, gru_gen):
    for gen in (mlp_gen, gru_gen):
        a = gen.given("SP500:return<=-5%", n=300, seed=3, horizon=12)
        b = gen.given("SP500:return<=-5%", n=120, seed=3, horizon=12)
        np.testing.assert_array_equal(bits(a.returns[:120]), bits(b.returns))
        np.testing.assert_array_equal(a.weights[:120], b.weights)
        c = gen.given("SP500:return<=-5%", n=120, seed=4, horizon=12)
        assert not np.array_equal(c.returns, b.returns)


def test_given_latent_draws_are_the_native_decoders(mlp_gen):
    """With the latent tilted only, what-if paths are the native fused
    decoder's: each equals the plain generator path of its latent draw."""
    hit = mlp_gen.given("SP500:return<=-5%", n=50, seed=5, horizon=16, tilt="latent")
    assert hit.tilt == "latent"
    assert mlp_gen.given("SP500:vol>=30%", n=50, seed=5, horizon=16).tilt == "latent"
    # the same proposal's noise tilted by zero runs the torch decoder on the
    # native noise streams: the same paths within float32 tolerance
    prop = mlp_gen._prior_proposal(16, "latent+noise")
    native_prop = mlp_gen._prior_proposal(16, "latent")
    y_torch = mlp_gen._proposal_draws(prop, 11, 0, 64, 16, "keep")[0]
    y_native = mlp_gen._proposal_draws(native_prop, 11, 0, 64, 16, "keep")[0]
    np.testing.assert_allclose(y_torch, y_native, rtol=1e-5, atol=1e-5 * np.abs(y_native).max())


def test_the_gru_needs_its_noise_tilted(gru_gen):
    """The recurrent decoder's latent carries little: tilting it alone
    barely raises the share of draws inside a tail event; tilting the noise
    streams too does."""
    ev = "SP500:return<=-12%"
    lat = gru_gen.given(ev, n=300, seed=2, horizon=16, tilt="latent")
    both = gru_gen.given(ev, n=300, seed=2, horizon=16, tilt="latent+noise")
    # the share of the final proposal's draws inside the event
    inside_lat, inside_both = lat.search["inside"].iloc[-1], both.search["inside"].iloc[-1]
    assert inside_both > 2.5 * inside_lat
    assert both.ess > 0.2 * len(both)


def test_given_bad_input(mlp_gen):
    with pytest.raises(ValueError, match="never reached"):
        mlp_gen.given("SP500:worst_day<=-100%", n=10, seed=0, horizon=8, max_iterations=6)
    with pytest.raises(ValueError, match="unknown asset 'JPM'"):
        mlp_gen.given("JPM:return<=-10%", n=10, seed=0)
    with pytest.raises(ValueError, match="windows of 16 days"):
        mlp_gen.given("SP500:return<=-10%", n=10, seed=0, horizon=40)
    with pytest.raises(ValueError, match="tilt must be"):
        mlp_gen.given("SP500:return<=-10%", n=10, seed=0, tilt="noise")


# ------------------------------------------------------------------ from today
def _prices_of(data, end):
    r = data.returns.loc[:end]
    return np.exp(np.cumsum(np.r_[np.zeros((1, 1)), r.to_numpy()], axis=0))


@pytest.mark.parametrize("decoder", ["mlp", "gru"])
def test_from_today_follows_the_latest_regime(request, tiny_data, decoder):
    gen = request.getfixturevalue(f"{decoder}_gen")
    calm = _prices_of(tiny_data, "2006-12-29")  # a calm end of year
    crisis = _prices_of(tiny_data, "2008-10-31")  # October 2008
    a = gen.from_today(horizon=5, n=3000, seed=1, prices=calm)
    b = gen.from_today(horizon=5, n=3000, seed=1, prices=crisis)
    assert a.returns.shape == (3000, 5, 1) and a.tags["set"].iloc[0] == "today"
    assert b.returns.std() > 1.2 * a.returns.std()  # (a tiny model: 1.3-1.5x)
    c = gen.from_today(horizon=5, n=3000, seed=1, prices=crisis, chunk_size=700)
    np.testing.assert_array_equal(bits(b.returns), bits(c.returns))
    d = gen.from_today(horizon=5, n=3000, seed=1)  # the generator's data: its last window
    assert d.returns.shape == (3000, 5, 1)


def test_warm_state_continues_the_teacher_forced_path(gru_gen, rng):
    """Warming the GRU on real days then rolling out without noise gives the
    next day the teacher-forced model predicts after those days."""
    model = gru_gen.model
    x = torch.tensor(rng.standard_normal((3, 17, 1)), dtype=torch.float32)
    z = torch.tensor(rng.standard_normal((3, 4)), dtype=torch.float32)
    with torch.no_grad():
        mean, _ = model.decode_scaled(z, torch.cat([x, x[:, :1]], 1)[:, :17])[:2]
        state = model.warm_scaled(z, x[:, :16])
        y = model.rollout_scaled(z, 1, torch.zeros(3, 1, 1), state=state)
    torch.testing.assert_close(y[:, 0], mean[:, 16], rtol=1e-5, atol=1e-6)


def test_from_today_bad_prices(mlp_gen):
    with pytest.raises(ValueError, match="needs the latest 17"):
        mlp_gen.from_today(horizon=5, n=10, seed=0, prices=np.ones(10) * 100)
    with pytest.raises(ValueError, match="finite and > 0"):
        p = np.ones(40) * 100
        p[-3] = np.nan
        mlp_gen.from_today(horizon=5, n=10, seed=0, prices=p)
    with pytest.raises(ValueError, match="no column for"):
        mlp_gen.from_today(n=10, seed=0, prices=pd.DataFrame({"A": np.ones(40), "B": 1.0}))
    bare = sv.ScenarioGenerator(mlp_gen.model, device="cpu")
    with pytest.raises(ValueError, match="needs the recent history"):
        bare.from_today(n=10, seed=0)


# ------------------------------------------------------------------ weighted risk
def test_weighted_risk_equals_repetition(rng):
    r = rng.standard_normal(400) * 0.1
    k = rng.integers(1, 4, size=400)
    rep = loss_risk(np.repeat(r, k))
    wtd = loss_risk(r, weights=k.astype(float))
    assert wtd["paths"] == 400
    for key in ("prob_loss", "var_95", "es_95", "var_99", "es_99"):
        assert wtd[key] == pytest.approx(rep[key], rel=0.05, abs=0.01), key


def test_backtest_of_what_if_scenarios_is_weighted(mlp_gen):
    hit = mlp_gen.given("SP500:return<=-5%", n=600, seed=9, horizon=16)
    res = sv.backtest(hit, sv.strategies.BuyAndHold())
    assert "weight" in res.metrics.columns
    risk = res.risk()
    assert risk["ess"] == pytest.approx(hit.ess)
    w = res.metrics["weight"].to_numpy()
    tr = res.metrics["total_return"].to_numpy()
    assert risk["mean_return"] == pytest.approx(np.sum(w * tr) / np.sum(w))
    assert risk["var_95"] > 0.05  # every path lost at least 5 % before costs


# ------------------------------------------------------------------ CLI and report
def test_whatif_command(mlp_gen, tmp_path, capsys):
    from stressvae.cli import main

    path = mlp_gen.model.save(tmp_path / "m.safetensors")
    out = tmp_path / "hit.npz"
    code = main([
        "whatif", "--model", str(path), "--data", "sp500", "--event", "SP500:return<=-6%",
        "--horizon", "12", "--n", "300", "--out", str(out), "--quiet",
    ])  # fmt: skip
    assert code == 0
    saved = np.load(out)
    assert saved["returns"].shape == (300, 12, 1) and np.all(saved["tag_weight"] > 0)
    assert np.all(np.expm1(saved["returns"].astype(np.float64).sum(axis=(1, 2))) <= -0.06)
    code = main([
        "whatif", "--model", str(path), "--data", "sp500", "--event", "JPM:return<=-6%",
        "--out", str(tmp_path / "no.npz"),
    ])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "unknown asset 'JPM'" in err and err.count("\n") == 1
    assert not (tmp_path / "no.npz").exists()
    code = main(["whatif", "--model", str(path), "--event", "SP500 falls", "--n", "10"])
    assert code == 2 and "cannot read the condition" in capsys.readouterr().err


def test_stress_report_has_the_from_today_fan(gru_gen, tiny_data, tmp_path):
    rep = sv.stress_test(
        gru_gen.model, tiny_data, sv.strategies.BuyAndHold(), n=2000, seed=3, steps=3,
        n_per_step=200, tail_n=200, progress=False, device="cpu",
        given="SP500:return<=-6%", given_n=500,
    )  # fmt: skip
    today = rep.today
    assert today["asof"] == "2012-12-31" and today["paths"] > 0
    q = today["quantiles"]
    assert len(q["0.5"]) == rep.horizon + 1 and q["0.01"][-1] < q["0.5"][-1] < q["0.99"][-1]
    expect = gru_gen.from_today(horizon=rep.horizon, n=today["paths"], seed=rep.seeds["today"])
    total = np.expm1(expect.returns[:, :, 0].astype(np.float64).sum(axis=1))
    assert today["total_return"]["0.05"] == pytest.approx(np.quantile(total, 0.05))
    html = rep.to_html(tmp_path / "r.html").read_text()
    assert "from the last window of the data (to 2012-12-31)" in html
    assert sv.StressReport.load(rep.save(tmp_path / "rep")).today == today
    # the what-if set: its own seed, weighted rows in the tables
    g = rep.metrics[rep.metrics["set"] == "given"]
    assert len(g) == 500 and (g["total_return"] <= -0.06).all()
    assert (rep.metrics.loc[rep.metrics["set"] != "given", "weight"] == 1.0).all()
    hit = gru_gen.given("SP500:return<=-6%", n=500, seed=rep.seeds["given"], horizon=rep.horizon)
    np.testing.assert_allclose(np.sort(g["weight"]), np.sort(hit.weights))
    risk = rep.risk()
    expect = loss_risk(g["total_return"].to_numpy(), weights=g["weight"].to_numpy())
    assert risk.loc["given", "es_99"] == pytest.approx(expect["es_99"])
    assert risk.loc["given", "ess"] == pytest.approx(hit.ess)
    assert rep.given["ess"] == pytest.approx(hit.ess) and "What if" in html
    assert rep.quantiles().loc[("given", "total_return"), "q50"] <= -0.06
    assert sv.StressReport.load(tmp_path / "rep").given == rep.given


def test_dominating_point_on_a_factor_model():
    """Two assets with a common factor, an event on the equal-weight
    portfolio: the computed proposal (components scored, each one's noise
    moved to the event's dominating point) puts a large share of its draws
    inside, and its weighted estimates agree with plain sampling."""
    prices = sv.load_dataset("sp500_nasdaq").loc[:"2012-12-31"]
    data = sv.WindowData.from_prices(prices, window=16)
    torch.manual_seed(0)
    model = sv.ScenarioVAE(window=16, n_assets=2, latent_dim=4, hidden_dims=(32,))
    assert model.factors == 1
    sv.Trainer(max_epochs=4, seed=0, progress=False).fit(model, data)
    gen = sv.ScenarioGenerator(model, data, device="cpu")
    ev = Event.parse("ew:return<=-9%").bind(gen.asset_names)
    plain = gen.sample(200_000, seed=1, horizon=10)
    st = ev.statistics(plain.returns)[:, 0]
    inside = st <= -0.09
    p = inside.mean()
    assert 2e-4 < p < 0.02
    hit = gen.given(ev, n=3000, seed=4, horizon=10)
    assert hit.tilt == "latent+noise"
    assert hit.search["inside"].iloc[-1] > 0.25  # the prior puts p inside
    assert hit.ess > 0.3 * len(hit)
    se = np.sqrt(p * (1 - p) / len(st))
    assert abs(hit.probability - p) < 0.15 * p + 4 * se
    others = np.expm1(hit.returns[:, :, 1].astype(np.float64).sum(axis=1))
    real = np.expm1(plain.returns[inside][:, :, 1].astype(np.float64).sum(axis=1))
    np.testing.assert_allclose(
        _wquantile(others, hit.weights, [0.25, 0.5, 0.75]),
        np.quantile(real, [0.25, 0.5, 0.75]),
        atol=0.01,
    )

"""The stress report of a model of several assets: the real and generated
correlation matrices in calm and crisis windows (checked against numpy on
the data's windows and on the first prior scenarios, regenerated), the
per-asset contributions in the tail, the portfolio's weights, save / load
and the HTML page."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import stressvae as sv
from stressvae import strategies as S
from stressvae.backtesting import backtest
from stressvae.generate import ScenarioGenerator
from stressvae.report import StressReport, stress_test

ASSETS = ["AAPL", "JPM", "XOM"]
N = 3000


@pytest.fixture(scope="module")
def data():
    prices = sv.load_dataset("sp500_stocks")[ASSETS].iloc[-2500:]
    return sv.WindowData.from_prices(prices, window=32)


@pytest.fixture(scope="module")
def model(data):
    import torch

    torch.manual_seed(0)
    m = sv.ScenarioVAE(window=32, n_assets=3, latent_dim=4, hidden_dims=(32,), factors=1)
    sv.Trainer(max_epochs=3, seed=0, progress=False).fit(m, data)
    return m


def _run(model, data, strategy, seed=1):
    return stress_test(
        model, data, strategy, n=N, seed=seed, steps=3, n_per_step=500, tail_n=600,
        fees=0.001, device="cpu", progress=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def report(model, data):
    return _run(model, data, S.EqualWeight())


def _numpy_correlations(windows: np.ndarray) -> dict:
    """Mean per-window np.corrcoef over all / calm / crisis windows, and the
    mean of each window's average off-diagonal entry."""
    w = windows.astype(np.float64)
    corr = np.stack([np.corrcoef(x.T) for x in w])
    vol = w.mean(axis=2).std(axis=1)
    masks = {
        "all": np.ones(len(w), bool),
        "calm": vol <= np.quantile(vol, 0.5),
        "crisis": vol >= np.quantile(vol, 0.9),
    }
    a = w.shape[2]
    pair = (corr.sum(axis=(1, 2)) - a) / (a * (a - 1))
    out = {}
    for k, m in masks.items():
        out[k] = corr[m].mean(axis=0)
        out[f"avg_{k}"] = pair[m].mean()
        out[f"{k}_windows"] = int(m.sum())
    return out


def _check_against(part: dict, ref: dict) -> None:
    for k in ("all", "calm", "crisis"):
        np.testing.assert_allclose(np.asarray(part[k]), ref[k], rtol=1e-10, atol=1e-12)
        assert part[f"avg_{k}"] == pytest.approx(ref[f"avg_{k}"], rel=1e-10, abs=1e-12)
        assert part[f"{k}_windows"] == ref[f"{k}_windows"]


def test_correlation_matrices_are_correlation_matrices(report):
    c = report.correlations
    assert c["assets"] == ASSETS and c["days"] == 32
    assert c["generated"]["windows"] == N
    for src in ("real", "generated"):
        for k in ("all", "calm", "crisis"):
            m = np.asarray(c[src][k])
            assert m.shape == (3, 3)
            np.testing.assert_allclose(m, m.T, atol=1e-12)
            np.testing.assert_allclose(np.diag(m), 1.0, atol=1e-12)
            assert np.all(np.abs(m) <= 1 + 1e-12)
        assert c[src]["calm_windows"] == pytest.approx(c[src]["windows"] / 2, abs=2)
        assert c[src]["crisis_windows"] == pytest.approx(c[src]["windows"] / 10, abs=2)
    # real stocks move together, and more so in crisis windows
    assert 0.1 < c["real"]["avg_calm"] < c["real"]["avg_crisis"]


def test_real_correlations_match_numpy_on_the_data_windows(report, data):
    assert report.correlations["real"]["windows"] == len(data.windows)
    _check_against(report.correlations["real"], _numpy_correlations(data.windows))


def test_generated_correlations_are_those_of_the_first_prior_scenarios(report, model, data):
    gen = ScenarioGenerator(model, data, device="cpu")
    scen = gen.generate(gen.prior_plan(N), report.seeds["prior"], 0, N, report.horizon,
                        report.drift)  # fmt: skip
    _check_against(report.correlations["generated"], _numpy_correlations(scen.returns[:, :32]))


def test_contributions_add_up_to_the_mean_return_of_the_worst_scenarios(report, model, data):
    c = report.contributions
    assert c["assets"] == ASSETS and c["level"] == 0.99
    for name in ("prior", "sweep", "tail"):
        m = report.metrics[report.metrics["set"] == name]
        r = m["total_return"].to_numpy()
        worst = r[r <= np.quantile(r, 0.01)]
        assert len(c[name]) == 3
        assert sum(c[name]) == pytest.approx(worst.mean(), rel=1e-9, abs=1e-12)
        assert sum(c[name]) == pytest.approx(-report.risk().loc[name, "es_99"], rel=1e-9)
    assert c["sweep_alpha"] == pytest.approx([0.0, 0.5, 1.0])
    assert len(c["sweep_steps"]) == 3 and all(len(s) == 3 for s in c["sweep_steps"])
    # the prior's per-asset values: the same as a plain backtest of those scenarios
    gen = ScenarioGenerator(model, data, device="cpu")
    scen = gen.generate(gen.prior_plan(N), report.seeds["prior"], 0, N, report.horizon,
                        report.drift)  # fmt: skip
    res = backtest(scen, S.EqualWeight(), fees=0.001)
    np.testing.assert_allclose(c["prior"], res.contribution_in_tail(0.99).to_numpy(), rtol=1e-12)
    t = report.tail_contributions()
    assert list(t.index) == ASSETS
    assert list(t.columns) == ["prior", "sweep calm", "sweep crisis", "tail"]
    assert t["prior"].tolist() == c["prior"]


def test_portfolio_weights_in_the_report(report):
    assert report.portfolio["assets"] == ASSETS
    assert report.portfolio["weights"] == pytest.approx([1 / 3] * 3)
    line = report.portfolio_summary()
    assert line.startswith("Portfolio of 3 assets, target weights: AAPL 33.3%, JPM 33.3%")


def test_save_and_load_keep_the_new_fields_and_old_reports_load(report, tmp_path):
    folder = report.save(tmp_path / "saved")
    back = StressReport.load(folder)
    assert back.correlations == report.correlations
    assert back.contributions == report.contributions
    assert back.portfolio == report.portfolio
    assert back.tail_contributions().equals(report.tail_contributions())
    # a report saved before these fields existed
    meta = json.loads((folder / "report.json").read_text())
    for k in ("correlations", "contributions", "portfolio"):
        del meta[k]
    (folder / "report.json").write_text(json.dumps(meta))
    old = StressReport.load(folder)
    assert old.correlations is None and old.contributions is None and old.portfolio is None
    assert old.tail_contributions() is None
    assert set(old.figures()) == {"fan", "histograms", "sweep", "latent"}


def test_html_shows_heatmaps_contributions_and_weights(report, tmp_path):
    html = report.to_html(tmp_path / "report.html").read_text()
    imgs = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', html)
    assert len(imgs) == 6
    assert any("correlation heatmaps" in a for a in imgs)
    assert any("contributions" in a for a in imgs)
    for text in ("How the assets move together", "Where the loss in the tail comes from",
                 "target weights: AAPL 33.3%, JPM 33.3%, XOM 33.3%", "crisis - calm",
                 "worst 1 % of paths"):  # fmt: skip
        assert text in html
    real = report.correlations["real"]["avg_crisis"]
    assert f"{real:.3f}" in html


def test_same_seed_same_correlations(model, data, report):
    again = _run(model, data, S.EqualWeight())
    assert again.correlations == report.correlations
    assert again.contributions == report.contributions


def test_a_per_asset_strategy_gets_correlations_but_no_contributions(model, data, tmp_path):
    rep = _run(model, data, S.MACrossover(5, 20))
    assert rep.contributions is None and rep.portfolio is None
    assert rep.portfolio_summary() == ""
    assert rep.tail_contributions() is None
    assert rep.correlations["generated"]["windows"] == N
    html = rep.to_html(tmp_path / "r.html").read_text()
    assert "How the assets move together" in html and "loss in the tail" not in html
    assert "target weights" not in html


def test_inverse_volatility_has_no_fixed_weights(model, data):
    rep = stress_test(model, data, S.InverseVolatility(lookback=10, every=5), n=1000, steps=2,
                      n_per_step=200, tail_n=200, device="cpu", progress=False)  # fmt: skip
    assert rep.portfolio == {"assets": ASSETS, "weights": None}
    assert "AAPL, JPM, XOM" in rep.portfolio_summary()
    assert "weights set by" in rep.portfolio_summary()
    assert sum(rep.contributions["prior"]) == pytest.approx(-rep.risk().loc["prior", "es_99"])


@pytest.mark.slow
def test_on_dask_the_same_correlations_and_contributions(model, data, report):
    from stressvae.distributed import local_client

    with local_client(2) as client:
        dask = stress_test(
            model, data, S.EqualWeight(), n=N, seed=1, steps=3, n_per_step=500, tail_n=600,
            fees=0.001, device="cpu", progress=False, engine="dask", client=client, shards=3,
        )  # fmt: skip
    assert dask.metrics.equals(report.metrics)
    assert dask.correlations == report.correlations
    assert dask.contributions == report.contributions


def test_fixed_weights_by_name_are_shown_in_asset_order(model, data):
    rep = stress_test(model, data, S.FixedWeights({"XOM": 0.6, "AAPL": 0.4}, every=5), n=1000,
                      steps=2, n_per_step=200, tail_n=200, device="cpu", progress=False)  # fmt: skip
    assert rep.portfolio == {"assets": ASSETS, "weights": [0.4, 0.0, 0.6]}
    assert "AAPL 40.0%, JPM 0.0%, XOM 60.0%" in rep.portfolio_summary()

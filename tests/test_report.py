"""stress_test on the trained S&P 500 model: the three sets, the real
windows, the tables, a self-contained HTML file, save / load."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

from stressvae import strategies as S
from stressvae.report import StressReport, default_horizon, stress_test


@pytest.fixture(scope="module")
def report(trained, sp500_data):
    model, history, _ = trained
    return stress_test(
        model, sp500_data, S.MACrossover(10, 40), n=3000, seed=3, steps=5, n_per_step=400,
        tail_n=1500, fees=0.001, device="cpu", history=history, progress=False,
    )  # fmt: skip


def test_sets_and_tags(report, sp500_data):
    m = report.metrics
    assert report.counts["prior"] == 3000 and report.counts["sweep"] == 2000
    assert (m["set"] == "prior").sum() == 3000 and (m["set"] == "sweep").sum() == 2000
    tail = m[m["set"] == "tail"]
    per = 1500 // len(sp500_data.regime("tail"))
    assert len(tail) == per * len(sp500_data.regime("tail")) == report.counts["tail"]
    assert tail["anchor"].max() == len(sp500_data.regime("tail")) - 1
    sweep = m[m["set"] == "sweep"]
    assert sorted(sweep["alpha"].unique()) == pytest.approx(list(np.linspace(0, 1, 5)))
    # MA(10, 40) needs 40 days: the 64-day model's windows are chained to 128
    assert report.horizon == 128 == default_horizon(64, 40)
    assert len(report.historical) == 5030 // 128


def test_the_tail_and_crisis_are_worse_than_calm(report):
    risk = report.risk()
    assert set(risk.index) == {"prior", "sweep", "tail", "historical"}
    assert risk.loc["tail", "prob_loss"] > risk.loc["prior", "prob_loss"]
    assert risk.loc["tail", "es_99"] > risk.loc["prior", "es_95"] > 0
    curves = report.sweep_curves()
    assert (
        curves["max_drawdown_q50"].iloc[-1] < curves["max_drawdown_q50"].iloc[0]
    )  # deeper in crisis
    h = report.headline()
    assert set(h) == {"prob_loss", "es_99", "median_sharpe_calm", "median_sharpe_crisis"}
    assert h["median_sharpe_crisis"] < h["median_sharpe_calm"]
    q = report.quantiles()
    assert q.loc[("prior", "total_return"), "q50"] == pytest.approx(
        report.metrics.loc[report.metrics["set"] == "prior", "total_return"].median()
    )


def test_same_seed_same_report(trained, sp500_data, report):
    model = trained[0]
    again = stress_test(
        model, sp500_data, S.MACrossover(10, 40), n=3000, seed=3, steps=5, n_per_step=400,
        tail_n=1500, fees=0.001, device="cpu", progress=False,
    )  # fmt: skip
    assert again.metrics.equals(report.metrics)


def test_html_is_one_self_contained_file(report, tmp_path):
    path = report.to_html(tmp_path / "r" / "report.html")
    html = path.read_text()
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert len(re.findall(r'<img alt="[^"]+" src="data:image/png;base64,', html)) == 5
    assert not re.search(r'(src|href)="(http|//)', html)  # nothing fetched from outside
    for text in ("Probability of a loss over 128 days", "annualized with 252 trading days",
                 "2 generated windows of 64 days chained", "calm to crisis", "anomalous"):  # fmt: skip
        assert text in html
    assert not list(tmp_path.glob("r/.*.tmp"))


def test_save_and_load(report, tmp_path):
    report.save(tmp_path / "saved")
    back = StressReport.load(tmp_path / "saved")
    assert back.metrics.equals(report.metrics) and back.headline() == report.headline()
    assert back.history is not None and len(back.history) == len(report.history)
    with pytest.raises(ValueError, match="is not a saved stress report"):
        StressReport.load(tmp_path)


def test_horizon_checks(trained, sp500_data):
    model = trained[0]
    with pytest.raises(ValueError, match="paths of 30 days are too short"):
        stress_test(
            model,
            sp500_data,
            S.MACrossover(10, 40),
            n=100,
            horizon=30,
            progress=False,
            device="cpu",
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stress_test(model, sp500_data, S.MACrossover(10, 40), n=1000, n_per_step=100, tail_n=100,
                    horizon=64, progress=False, device="cpu")  # fmt: skip
    assert any("only 24 of 64 days left to trade" in str(w.message) for w in caught)


def test_realism_section_goes_into_the_report_and_survives_save(trained, sp500_data, tmp_path):
    model = trained[0]
    rep = stress_test(
        model, sp500_data, S.BuyAndHold(), n=1000, steps=2, n_per_step=200, tail_n=100,
        device="cpu", progress=False, realism={"n": 800, "n_long": 40, "discriminator_epochs": 2},
    )  # fmt: skip
    assert rep.realism_html is not None and "garch" in rep.realism_html
    html = rep.to_html(tmp_path / "report.html").read_text()
    assert rep.realism_html in html and "real test" in html
    assert rep.realism_html.count("data:image/png;base64,") == 3
    back = StressReport.load(rep.save(tmp_path / "saved"))
    assert back.realism_html == rep.realism_html

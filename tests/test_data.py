"""Prices -> windows: bundled real data, validation errors that name the
problem, the time-ordered split, the scaler, regimes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stressvae import WindowData, load_dataset, load_prices
from stressvae.data import window_stats


@pytest.fixture(scope="module")
def sp500() -> pd.DataFrame:
    return load_dataset("sp500")


@pytest.fixture(scope="module")
def data(sp500) -> WindowData:
    return WindowData.from_prices(sp500, window=64)


def test_bundled_sp500_is_real_daily_data(sp500):
    assert sp500.shape == (5031, 1) and list(sp500.columns) == ["SP500"]
    assert sp500.index[0] == pd.Timestamp("1999-01-04")
    assert sp500.index[-1] == pd.Timestamp("2018-12-31")
    assert sp500.index.is_monotonic_increasing and (sp500.to_numpy() > 0).all()
    # the 2008 crash is in it: 15 Oct 2008, S&P 500 closed at 907.84 from 998.01 (-9.0%)
    assert sp500.loc["2008-10-15", "SP500"] == pytest.approx(907.84, abs=0.01)
    r = np.log(sp500["SP500"]).diff()
    assert r.loc["2008-10-15"] == pytest.approx(np.log(907.84 / 998.01), abs=1e-5)


def test_bundled_two_asset_set():
    both = load_dataset("sp500_nasdaq")
    assert both.shape == (5031, 2) and list(both.columns) == ["SP500", "NASDAQ"]
    assert not both.isna().any().any()
    r = np.log(both).diff().dropna()
    assert 0.7 < r.corr().iloc[0, 1] < 0.95  # two related but distinct indices


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset 'ftse'; available: sp500, sp500_nasdaq"):
        load_dataset("ftse")


def prices(n=300, cols=("A", "B"), seed=0):
    rng = np.random.default_rng(seed)
    idx = pd.bdate_range("2020-01-01", periods=n)
    r = rng.normal(0, 0.01, (n, len(cols)))
    return pd.DataFrame(100 * np.exp(np.cumsum(r, 0)), index=idx, columns=list(cols))


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (
            lambda p: p.assign(A=p["A"].where(p.index != p.index[10])),
            r"1 missing values \(first: column 'A' at 2020-01-15\); pass missing='ffill' or missing='drop'",
        ),
        (
            lambda p: p.assign(B=p["B"].replace(p["B"].iloc[5], np.inf)),
            r"prices contain inf: column 'B' at 2020-01-08",
        ),
        (
            lambda p: p.assign(A=p["A"].replace(p["A"].iloc[7], 0.0)),
            r"prices must be > 0: column 'A' has 0 at 2020-01-10",
        ),
        (lambda p: p.assign(A=-p["A"]), r"prices must be > 0: column 'A'"),
        (
            lambda p: p.iloc[[0, 2, 1, *range(3, len(p))]],
            r"dates are not sorted ascending: 2020-01-02 comes after 2020-01-03",
        ),
        (
            lambda p: pd.concat([p.iloc[:5], p.iloc[4:]]),
            r"duplicate dates: 2020-01-07 appears more than once",
        ),
        (lambda p: p.assign(C="x"), r"column 'C' is not numeric \(dtype"),
        (lambda p: p.set_axis([f"day {i}" for i in range(len(p))]), r"the index must be dates"),
        (lambda p: p.iloc[:1], r"need at least 2 rows of prices, got 1"),
        (lambda p: p.iloc[:, :0], r"prices have no columns"),
    ],
)
def test_bad_prices_name_the_problem(mutate, match):
    with pytest.raises(ValueError, match=match):
        load_prices(mutate(prices()))


def test_missing_values_only_filled_when_asked():
    p = prices()
    p.iloc[10, 0] = np.nan
    p.iloc[0, 1] = np.nan  # a leading gap
    ff = load_prices(p, missing="ffill")
    assert len(ff) == len(p) - 1 and ff.loc[p.index[10], "A"] == p.iloc[9, 0]
    dr = load_prices(p, missing="drop")
    assert len(dr) == len(p) - 2 and p.index[10] not in dr.index
    with pytest.raises(ValueError, match="missing must be one of"):
        load_prices(p, missing="interpolate")


def test_csv_and_parquet_round_trip(tmp_path):
    p = prices()
    p.to_csv(tmp_path / "p.csv")
    got = load_prices(tmp_path / "p.csv")
    pd.testing.assert_frame_equal(got, p.rename_axis("date"), check_freq=False)
    pytest.importorskip("pyarrow")
    p.to_parquet(tmp_path / "p.parquet")
    got = load_prices(str(tmp_path / "p.parquet"))
    np.testing.assert_array_equal(got.to_numpy(), p.to_numpy())
    with pytest.raises(ValueError, match="price file not found"):
        load_prices(tmp_path / "nope.csv")
    (tmp_path / "p.xlsx").write_text("x")
    with pytest.raises(ValueError, match="unknown file type"):
        load_prices(tmp_path / "p.xlsx")


def test_windows_are_log_returns_in_time_order(sp500, data):
    r = np.log(sp500["SP500"].to_numpy())
    r = np.diff(r)
    assert data.windows.shape == (len(r) - 64 + 1, 64, 1) and data.windows.dtype == np.float32
    np.testing.assert_allclose(data.windows[0, :, 0], r[:64], rtol=1e-6)
    np.testing.assert_allclose(data.windows[-1, :, 0], r[-64:], rtol=1e-6)
    assert data.end_dates.is_monotonic_increasing
    np.testing.assert_array_equal(data.latest(), data.windows[-1])
    assert data.latest().shape == (64, 1) and isinstance(data.n_assets, int) and data.n_assets == 1


def test_split_is_time_ordered_with_a_one_window_gap(data):
    tr, va = data.split == "train", data.split == "val"
    last_train_day = data.end_dates[tr].max()
    first_val_day = data.start_dates[va].min()
    assert last_train_day < first_val_day
    days = data.returns.index
    between = days.get_loc(first_val_day) - days.get_loc(last_train_day) - 1
    assert between >= 64  # a full window of returns in no window of either set
    assert abs(va.sum() / (tr.sum() + va.sum()) - 0.2) < 0.05


def test_scaler_is_fitted_on_training_returns_only(sp500, data):
    r = np.diff(np.log(sp500["SP500"].to_numpy()))
    split_pos = data.returns.index.get_loc(data.end_dates[data.split == "train"].max()) + 1
    np.testing.assert_allclose(data.scaler.mean, [r[:split_pos].mean()], rtol=1e-9)
    np.testing.assert_allclose(data.scaler.std, [r[:split_pos].std()], rtol=1e-9)
    z = data.scaled("train")
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    np.testing.assert_allclose(data.scaler.inverse(z), data.train, atol=1e-6)


def test_regimes(data):
    th = data.thresholds
    st = window_stats(data.windows)
    calm, crisis = data.labels == "calm", data.labels == "crisis"
    assert np.all(st["vol"][calm] <= th.calm_vol)
    assert np.all(
        (st["vol"][crisis] >= th.crisis_vol) | (st["drawdown"][crisis] <= th.crisis_drawdown)
    )
    assert np.all(
        (st["ret"][data.tail] <= th.tail_return) | (st["drawdown"][data.tail] <= th.tail_drawdown)
    )
    # thresholds are quantiles of the training windows
    st_tr = window_stats(data.train)
    assert np.mean(st_tr["vol"] <= th.calm_vol) == pytest.approx(0.3, abs=0.01)
    # the autumn of 2008 is crisis, and tail windows are the worst
    end = data.end_dates
    assert np.all(data.labels[(end >= "2008-10-15") & (end <= "2008-12-31")] == "crisis")
    assert data.regime("tail").shape[1:] == (64, 1)
    assert (
        window_stats(data.regime("tail"))["ret"].mean()
        < window_stats(data.windows)["ret"].mean() - 0.05
    )
    assert (
        window_stats(data.regime("crisis"))["vol"].min()
        > window_stats(data.regime("calm"))["vol"].max() * 0.5
    )
    counts = data.regime_counts()
    assert counts["calm"] + counts["normal"] + counts["crisis"] == len(data.windows)
    with pytest.raises(ValueError, match="regime must be one of"):
        data.regime("bubble")


def test_too_few_rows_and_bad_arguments():
    with pytest.raises(
        ValueError, match=r"need at least 639 prices for window=64 and val_fraction=0.2 .*got 150"
    ):
        WindowData.from_prices(prices(150), window=64)
    with pytest.raises(ValueError, match="window must be an integer >= 2"):
        WindowData.from_prices(prices(), window=1)
    with pytest.raises(ValueError, match="window must be an integer"):
        WindowData.from_prices(prices(), window=10.5)
    with pytest.raises(ValueError, match=r"val_fraction must be in \(0, 0.9\)"):
        WindowData.from_prices(prices(), window=10, val_fraction=0)
    with pytest.raises(ValueError, match="calm_quantile must be below crisis_quantile"):
        WindowData.from_prices(prices(), window=10, calm_quantile=0.9, crisis_quantile=0.5)


def test_exactly_enough_rows_work():
    d = WindowData.from_prices(prices(639), window=64)
    assert len(d.train) >= 1 and len(d.val) >= 1
    with pytest.raises(ValueError, match="need at least 639 prices"):
        WindowData.from_prices(prices(638), window=64)


def test_two_assets_and_stride():
    d = WindowData.from_prices(prices(400), window=20, stride=5)
    assert d.n_assets == 2 and d.windows.shape[1:] == (20, 2)
    assert np.all(np.diff(d.start_dates.asi8) > 0)
    assert len(d.windows) == len(range(0, 399 - 20 + 1, 5))


def test_pool_treats_columns_as_separate_series():
    p = prices(400, cols=("F1", "F2", "F3"))
    p.iloc[:150, 1] = np.nan  # F2 starts later
    d = WindowData.from_prices(p, window=20, pool=True)
    assert d.n_assets == 1 and d.asset_names == ["pooled"]
    per = {s: int(np.sum(d.series == s)) for s in ("F1", "F2", "F3")}
    assert per["F1"] == per["F3"] == 399 - 20 + 1 and per["F2"] == 249 - 20 + 1
    f2 = np.diff(np.log(p["F2"].dropna().to_numpy()))
    np.testing.assert_allclose(d.windows[d.series == "F2"][0, :, 0], f2[:20], rtol=1e-6)
    # one split date for all series
    assert d.end_dates[d.split == "train"].max() < d.start_dates[d.split == "val"].min()
    # without pool, the late start is a missing value
    with pytest.raises(ValueError, match="missing values"):
        WindowData.from_prices(p, window=20)


def test_sp500_stocks_ships_with_the_package():
    """The 20-stock set loads from the installed package (no network), with
    its licence beside it."""
    from importlib import resources

    from stressvae.datasets import STOCKS

    prices = load_dataset("sp500_stocks")
    assert tuple(prices.columns) == STOCKS and len(STOCKS) == 20
    assert prices.shape == (8313, 20)
    assert prices.index[0] == pd.Timestamp("1990-01-02")
    assert prices.index[-1] == pd.Timestamp("2022-12-28")
    assert prices.index.is_monotonic_increasing and not prices.isna().any().any()
    assert (prices.to_numpy() > 0).all()
    licence = resources.files("stressvae").joinpath("_data/LICENSE-skfolio").read_text()
    assert "BSD 3-Clause" in licence and "skfolio" in licence

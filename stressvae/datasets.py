"""Real daily price data that ships with the install (nothing is downloaded).

Sources: the ``arch`` package (Kevin Sheppard, https://github.com/bashtage/arch)
bundles daily data for the S&P 500 index (``arch.data.sp500``) and the NASDAQ
Composite (``arch.data.nasdaq``), 1999-01-04 to 2018-12-31, 5,031 trading
days each, originally from Yahoo! Finance. stressvae uses the adjusted close.

``sp500_stocks``: daily adjusted closes of 20 large US stocks, 1990-01-02 to
2022-12-28 (8,313 days), the data set of skfolio
(https://github.com/skfolio/skfolio, ``skfolio.datasets.load_sp500_dataset``),
copied into this package as ``stressvae/_data/sp500_stocks.csv.gz`` under
skfolio's BSD 3-Clause licence (``stressvae/_data/LICENSE-skfolio``).
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

__all__ = ["DATASETS", "load_dataset"]

DATASETS = {
    "sp500": "S&P 500 index, daily adjusted close, 1999-01-04..2018-12-31 (arch.data.sp500)",
    "sp500_nasdaq": (
        "S&P 500 and NASDAQ Composite, daily adjusted closes aligned on common dates, "
        "1999-01-04..2018-12-31, 5,031 rows (arch.data.sp500, arch.data.nasdaq)"
    ),
    "sp500_stocks": (
        "20 large US stocks (AAPL .. XOM), daily adjusted closes, 1990-01-02..2022-12-28, "
        "8,313 rows (skfolio's sp500 data set, BSD 3-Clause, shipped in stressvae/_data)"
    ),
}

STOCKS = (
    "AAPL", "AMD", "BAC", "BBY", "CVX", "GE", "HD", "JNJ", "JPM", "KO",
    "LLY", "MRK", "MSFT", "PEP", "PFE", "PG", "RRC", "UNH", "WMT", "XOM",
)  # fmt: skip


def _stocks() -> pd.DataFrame:
    with resources.files("stressvae").joinpath("_data/sp500_stocks.csv.gz").open("rb") as f:
        frame = pd.read_csv(f, index_col=0, compression="gzip")
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.index)).rename("date")
    frame = frame.astype("float64")
    if tuple(frame.columns) != STOCKS or frame.isna().any().any():  # pragma: no cover
        raise ValueError("stressvae/_data/sp500_stocks.csv.gz is damaged (columns or NaN)")
    return frame


def _arch_close(module: str, column: str) -> pd.Series:
    try:
        if module == "sp500":
            from arch.data import sp500 as mod
        else:
            from arch.data import nasdaq as mod
    except ImportError as err:  # pragma: no cover - arch is a dependency
        raise ImportError(
            "the bundled datasets come from the 'arch' package: pip install arch"
        ) from err
    frame = mod.load()
    s = frame["Adj Close"].astype("float64").rename(column)
    s.index = pd.DatetimeIndex(s.index).rename("date")
    return s


def load_dataset(name: str) -> pd.DataFrame:
    """Real daily prices as a DataFrame (date index, one column per asset).

    ``"sp500"``: one column ``SP500``. ``"sp500_nasdaq"``: columns ``SP500``
    and ``NASDAQ``. ``"sp500_stocks"``: 20 columns, one per stock ticker
    (:data:`STOCKS`). See :data:`DATASETS` and this module's docstring for the
    sources.
    """
    if name == "sp500":
        return _arch_close("sp500", "SP500").to_frame()
    if name == "sp500_nasdaq":
        both = pd.concat(
            [_arch_close("sp500", "SP500"), _arch_close("nasdaq", "NASDAQ")], axis=1, join="inner"
        )
        return both.dropna()
    if name == "sp500_stocks":
        return _stocks()
    raise ValueError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")

"""Real daily price data that ships with the install (nothing is downloaded).

Sources: the ``arch`` package (Kevin Sheppard, https://github.com/bashtage/arch)
bundles daily data for the S&P 500 index (``arch.data.sp500``) and the NASDAQ
Composite (``arch.data.nasdaq``), 1999-01-04 to 2018-12-31, 5,031 trading
days each, originally from Yahoo! Finance. stressvae uses the adjusted close.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["DATASETS", "load_dataset"]

DATASETS = {
    "sp500": "S&P 500 index, daily adjusted close, 1999-01-04..2018-12-31 (arch.data.sp500)",
    "sp500_nasdaq": (
        "S&P 500 and NASDAQ Composite, daily adjusted closes aligned on common dates, "
        "1999-01-04..2018-12-31, 5,031 rows (arch.data.sp500, arch.data.nasdaq)"
    ),
}


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
    and ``NASDAQ``. See :data:`DATASETS` and this module's docstring for the
    sources.
    """
    if name == "sp500":
        return _arch_close("sp500", "SP500").to_frame()
    if name == "sp500_nasdaq":
        both = pd.concat(
            [_arch_close("sp500", "SP500"), _arch_close("nasdaq", "NASDAQ")], axis=1, join="inner"
        )
        return both.dropna()
    raise ValueError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")

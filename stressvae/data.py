"""Prices in, windows of log returns out: loading, validation, the
time-ordered split, the scaler and regime labels.

Units: every array of windows this module hands out is float32
``[n, window, assets]`` of daily log returns, ``log(p_t / p_{t-1})``, the
units every later stage takes. Standardization happens inside the model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._checks import as_int

__all__ = ["PriceJumpWarning", "RegimeThresholds", "Scaler", "WindowData", "load_prices"]

MISSING_POLICIES = ("raise", "ffill", "drop")
REGIMES = ("calm", "normal", "crisis", "tail")
# A daily move beyond x3 or /3 (|log return| > log 3, about 1.1) is taken for a
# data error (an unadjusted split, a price in the wrong unit): the worst real
# index day, 1987-10-19, is a log return of -0.23.
JUMP_LIMIT = math.log(3.0)
# kinds (pandas.api.types.infer_dtype) of an index that are numbers, not dates
_NUMBER_KINDS = ("integer", "floating", "mixed-integer", "mixed-integer-float", "decimal")


class PriceJumpWarning(UserWarning):
    """Prices that are legal but suspicious: a daily move beyond
    :data:`JUMP_LIMIT` (an unadjusted split or a data error?)."""


# ------------------------------------------------------------------ prices
def load_prices(
    source: str | Path | pd.DataFrame | pd.Series,
    *,
    missing: str = "raise",
) -> pd.DataFrame:
    """Daily prices as a validated DataFrame (date index, one float64 column
    per asset).

    ``source`` is a DataFrame or Series with a date index, or the path of a
    CSV (first column the dates) or parquet file (a date index or a first
    date column). Checks, each a ``ValueError`` that names the problem:
    non-numeric columns, NaN, inf, prices <= 0, unparseable, unsorted or
    duplicate dates, fewer than 2 rows. Missing values raise unless
    ``missing="ffill"`` (carry the last price forward; leading gaps are
    dropped) or ``missing="drop"`` (drop dates where any asset is missing)
    is asked for explicitly. Dates must be dates: YYYYMMDD integers are read
    as dates, any other numbers (a default 0..n index, an id column) raise.
    A file that cannot be read raises a ``ValueError`` that names it.

    A daily move beyond x3 or /3 (:data:`JUMP_LIMIT`) gives a
    :class:`PriceJumpWarning` that names the column and the dates.
    """
    if missing not in MISSING_POLICIES:
        raise ValueError(f"missing must be one of {MISSING_POLICIES}, got {missing!r}")
    frame = _read(source)
    with _naming(source):
        frame = _with_date_index(frame, source)
        _check_dates(frame.index)
        frame = _numeric(frame)
        frame = _handle_missing(frame, missing)
        _check_values(frame)
        if len(frame) < 2:
            raise ValueError(f"need at least 2 rows of prices, got {len(frame)}")
    _check_jumps(frame)
    return frame


@contextlib.contextmanager
def _naming(source: Any):
    """A ValueError raised inside names the file first when ``source`` is one
    (same exception, same cause, its message prefixed)."""
    try:
        yield
    except ValueError as err:
        if isinstance(source, (str, Path)) and err.args:
            err.args = (f"{source}: {err.args[0]}", *err.args[1:])
        raise


def _read(source: Any) -> pd.DataFrame:
    if isinstance(source, pd.Series):
        return source.to_frame(name=source.name if source.name is not None else "price")
    if isinstance(source, pd.DataFrame):
        return source.copy()
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise ValueError(f"price file not found: {path}")
        if path.is_dir():
            raise ValueError(f"{path} is a directory; give a .csv or .parquet price file")
        suffix = "".join(path.suffixes[-2:]).lower()
        if suffix.endswith((".parquet", ".pq")):
            try:
                frame = pd.read_parquet(path)
            except ImportError as err:
                raise ValueError(
                    f"reading parquet needs pyarrow or fastparquet ({err}); "
                    "install one, or give a CSV"
                ) from err
            except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
                raise ValueError(f"{path}: not a readable parquet file ({err})") from err
            if not isinstance(frame.index, pd.DatetimeIndex) and len(frame.columns) > 1:
                frame = frame.set_index(frame.columns[0])
            return frame
        if suffix.endswith((".csv", ".csv.gz", ".txt")):
            try:
                frame = pd.read_csv(path)
            except pd.errors.EmptyDataError as err:
                raise ValueError(f"{path}: the file is empty (no header, no prices)") from err
            except (OSError, UnicodeDecodeError, pd.errors.ParserError) as err:
                raise ValueError(f"{path}: not a readable CSV text file ({err})") from err
            if len(frame) == 0:
                raise ValueError(f"{path}: no prices, only a header ({', '.join(frame.columns)})")
            if frame.shape[1] < 2:
                raise ValueError(
                    f"{path}: expected a date column followed by one column per asset, "
                    f"got columns {list(frame.columns)}"
                )
            return frame.set_index(frame.columns[0])
        raise ValueError(f"{path}: unknown file type; give a .csv or .parquet file")
    raise ValueError(
        f"prices must be a DataFrame, Series or a path to a CSV / parquet file, "
        f"got {type(source).__name__}"
    )


def _with_date_index(frame: pd.DataFrame, source: Any = None) -> pd.DataFrame:
    """``frame`` with its index parsed as dates; ``source`` (a path, or the
    frame itself) only names the culprit in errors."""
    idx = frame.index
    if not isinstance(idx, pd.DatetimeIndex):
        idx = _parse_dates(idx, _index_label(idx, source))
    if idx.tz is not None:
        idx = idx.tz_localize(None)
    frame = frame.copy()
    frame.index = idx.rename("date")
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _index_label(idx: pd.Index, source: Any) -> str:
    """How errors name the index: the file and its date column for a file."""
    if isinstance(source, (str, Path)):  # _naming adds the file
        return "the index" if idx.name is None else f"the index (first column {idx.name!r})"
    return "the index" if idx.name is None else f"the index {idx.name!r}"


def _parse_dates(idx: pd.Index, what: str) -> pd.DatetimeIndex:
    """Dates from an index that is not a DatetimeIndex yet. Numbers are never
    taken for nanoseconds after 1970: 8-digit integers are YYYYMMDD dates,
    any other numbers raise."""
    kind = pd.api.types.infer_dtype(idx, skipna=True)
    sample = ", ".join(map(repr, list(idx[:3])))
    if isinstance(idx, pd.RangeIndex) and idx.name is None:
        raise ValueError(
            f"{what} must be dates, got the default 0..{len(idx) - 1} RangeIndex: set the "
            "dates as the index (e.g. frame.set_index('date')), or give a Series or "
            "DataFrame indexed by date"
        )
    if kind == "integer" and len(idx) and idx.min() >= 10**7 and idx.max() < 10**8:
        text = pd.Index([str(v) for v in idx])
        parsed = pd.to_datetime(text, format="%Y%m%d", errors="coerce")
        if parsed.hasnans:
            bad = idx[np.argmax(parsed.isna())]  # printed as a plain number
            raise ValueError(
                f"{what} must be dates; it looks like YYYYMMDD integers, but {bad} is not "
                "a valid date"
            )
        return pd.DatetimeIndex(parsed)
    if kind in _NUMBER_KINDS:
        raise ValueError(
            f"{what} must be dates, got numbers ({sample}, ...) that are not YYYYMMDD dates "
            "(an id or row-number column?): give a date column first, or a date index"
        )
    try:
        return pd.DatetimeIndex(pd.to_datetime(idx, format="mixed"))
    except (ValueError, TypeError) as err:
        raise ValueError(f"{what} must be dates; could not parse ({sample}, ...): {err}") from None


def _check_dates(idx: pd.DatetimeIndex) -> None:
    if idx.hasnans:
        raise ValueError("the date index has missing dates (NaT)")
    dup = idx[idx.duplicated()]
    if len(dup):
        raise ValueError(f"duplicate dates: {dup[0].date()} appears more than once")
    if not idx.is_monotonic_increasing:
        pos = int(np.nonzero(np.diff(idx.asi8) < 0)[0][0])
        raise ValueError(
            f"dates are not sorted ascending: {idx[pos + 1].date()} comes after {idx[pos].date()}"
        )


def _numeric(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.shape[1] == 0:
        raise ValueError("prices have no columns")
    dupes = frame.columns[frame.columns.duplicated()]
    if len(dupes):
        raise ValueError(f"duplicate column name {dupes[0]!r}")
    for col in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[col]) or pd.api.types.is_bool_dtype(frame[col]):
            raise ValueError(f"column {col!r} is not numeric (dtype {frame[col].dtype})")
    return frame.astype(np.float64)


def _handle_missing(frame: pd.DataFrame, missing: str) -> pd.DataFrame:
    values = frame.to_numpy()
    if np.isinf(values).any():
        r, c = np.argwhere(np.isinf(values))[0]
        raise ValueError(
            f"prices contain inf: column {frame.columns[c]!r} at {frame.index[r].date()}"
        )
    nan = np.isnan(values)
    if not nan.any():
        return frame
    if missing == "raise":
        r, c = np.argwhere(nan)[0]
        raise ValueError(
            f"prices contain {int(nan.sum())} missing values (first: column "
            f"{frame.columns[c]!r} at {frame.index[r].date()}); pass missing='ffill' or "
            "missing='drop' to handle them explicitly"
        )
    if missing == "ffill":
        return frame.ffill().dropna(how="any")
    return frame.dropna(how="any")


def _check_values(frame: pd.DataFrame) -> None:
    values = frame.to_numpy()
    bad = values <= 0
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(
            f"prices must be > 0: column {frame.columns[c]!r} has {values[r, c]:g} "
            f"at {frame.index[r].date()}"
        )


def _check_jumps(frame: pd.DataFrame) -> None:
    """Warns, per column, of daily moves beyond x3 or /3 (legal but suspect)."""
    values = frame.to_numpy()
    jump = np.abs(np.diff(np.log(values), axis=0)) > JUMP_LIMIT
    for c in np.flatnonzero(jump.any(axis=0)):
        rows = np.flatnonzero(jump[:, c]) + 1
        shown = ", ".join(
            f"{frame.index[r].date()} (x{values[r, c] / values[r - 1, c]:.4g})" for r in rows[:5]
        )
        more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
        warnings.warn(
            f"prices: column {frame.columns[c]!r} moves beyond x3 or /3 in one day on "
            f"{shown}{more}; an unadjusted split or a data error? These returns are used "
            "as they are (they widen the scaler and the regimes): fix the prices if not real",
            PriceJumpWarning,
            stacklevel=3,
        )


# ------------------------------------------------------------------ scaler
@dataclasses.dataclass(frozen=True)
class Scaler:
    """Per-asset standardization of daily log returns, fitted on training
    returns only: ``z = (r - mean) / std``."""

    mean: np.ndarray  # [assets] float64
    std: np.ndarray  # [assets] float64

    @classmethod
    def fit(cls, returns: np.ndarray) -> Scaler:
        r = np.asarray(returns, dtype=np.float64).reshape(-1, np.shape(returns)[-1])
        std = r.std(axis=0)
        if np.any(std <= 0) or not np.all(np.isfinite(std)):
            raise ValueError("training returns have zero or non-finite variance in some asset")
        return cls(mean=r.mean(axis=0), std=std)

    def transform(self, windows: np.ndarray) -> np.ndarray:
        return ((np.asarray(windows, np.float64) - self.mean) / self.std).astype(np.float32)

    def inverse(self, windows: np.ndarray) -> np.ndarray:
        return (np.asarray(windows, np.float64) * self.std + self.mean).astype(np.float32)


# ------------------------------------------------------------------ regimes
@dataclasses.dataclass(frozen=True)
class RegimeThresholds:
    """Cut-offs for labelling windows, in daily log-return units of the
    equal-weight portfolio of the assets, fitted on training windows.

    calm: realized volatility <= ``calm_vol``; crisis: volatility >=
    ``crisis_vol`` or drawdown <= ``crisis_drawdown``; normal: neither;
    tail (may overlap crisis): total return <= ``tail_return`` or drawdown
    <= ``tail_drawdown``.
    """

    calm_vol: float
    crisis_vol: float
    crisis_drawdown: float
    tail_return: float
    tail_drawdown: float

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in dataclasses.asdict(self).items()}


def window_stats(windows: np.ndarray) -> dict[str, np.ndarray]:
    """Per-window realized volatility (daily std), total log return and
    maximum drawdown (log units, <= 0) of the equal-weight portfolio."""
    w = np.asarray(windows, np.float64)
    port = w.mean(axis=2) if w.ndim == 3 else w
    cum = np.cumsum(port, axis=1)
    peak = np.maximum.accumulate(np.concatenate([np.zeros((len(cum), 1)), cum], axis=1), axis=1)
    drawdown = (cum - peak[:, 1:]).min(axis=1)
    return {"vol": port.std(axis=1), "ret": cum[:, -1], "drawdown": np.minimum(drawdown, 0.0)}


def label_regimes(
    stats: dict[str, np.ndarray], th: RegimeThresholds
) -> tuple[np.ndarray, np.ndarray]:
    """Labels calm / normal / crisis per window, and a tail flag."""
    crisis = (stats["vol"] >= th.crisis_vol) | (stats["drawdown"] <= th.crisis_drawdown)
    calm = (stats["vol"] <= th.calm_vol) & ~crisis
    labels = np.where(crisis, "crisis", np.where(calm, "calm", "normal")).astype(object)
    tail = (stats["ret"] <= th.tail_return) | (stats["drawdown"] <= th.tail_drawdown)
    return labels, tail


# ------------------------------------------------------------------ windows
@dataclasses.dataclass
class WindowData:
    """Windows of daily log returns with a time-ordered train / validation
    split, the scaler fitted on the training part, and regime labels.

    Build it with :meth:`from_prices`. Arrays of windows are float32
    ``[n, window, assets]`` log returns, in time order.
    """

    returns: pd.DataFrame  # daily log returns, the source of every window
    window: int
    stride: int
    val_fraction: float
    pool: bool
    windows: np.ndarray  # all windows, [n, window, assets], time order
    start_dates: pd.DatetimeIndex  # date of each window's first return
    end_dates: pd.DatetimeIndex  # date of each window's last return
    split: np.ndarray  # "train" | "gap" | "val" per window
    series: np.ndarray  # column each window comes from (pool=True), else "all"
    scaler: Scaler
    thresholds: RegimeThresholds
    labels: np.ndarray  # "calm" | "normal" | "crisis" per window
    tail: np.ndarray  # bool per window
    asset_names: list[str]

    @classmethod
    def from_prices(
        cls,
        prices: pd.DataFrame | pd.Series | str | Path,
        window: int = 64,
        stride: int = 1,
        val_fraction: float = 0.2,
        pool: bool = False,
        *,
        calm_quantile: float = 0.3,
        crisis_quantile: float = 0.85,
        crisis_drawdown_quantile: float = 0.1,
        tail_quantile: float = 0.05,
        missing: str = "raise",
        holdout_every: int | None = None,
        holdout_block: int | None = None,
        holdout_offset: int | None = None,
        split_date: Any = None,
    ) -> WindowData:
        """Windows from daily prices.

        The returns are split in time: training windows use the first
        ``1 - val_fraction`` of the returns, validation windows the rest after
        a gap of one window (windows that would straddle the split or touch
        the gap are labelled ``"gap"`` and used for neither), so no return is
        in both. The scaler and the regime thresholds are fitted on training
        windows only. Regime thresholds are quantiles of the training
        windows: calm = the ``calm_quantile`` calmest by realized volatility;
        crisis = the ``1 - crisis_quantile`` most volatile or the
        ``crisis_drawdown_quantile`` deepest drawdowns; tail = the
        ``tail_quantile`` worst by total return or by drawdown.

        ``pool=True`` treats every column as its own one-asset series and
        pools their windows (many short series, e.g. funds); each series keeps
        its own span of dates (leading and trailing gaps allowed) and the same
        split date applies to all.

        ``split_date`` (a date) sets the start of the validation period
        directly instead of ``val_fraction``.

        ``holdout_every=k`` keeps an in-distribution holdout inside the
        training period: the training returns are cut into blocks of
        ``holdout_block`` days (default 252) and every k-th block (the
        ``holdout_offset``-th of each k, default the last) is held out; windows inside
        it are labelled ``"holdout"``, windows within one window of it
        ``"gap"`` (purged), and neither is trained on or fitted to. It is the
        reference for judging how real generated windows look in the same
        period the model learned from. ``holdout_block`` and
        ``holdout_offset`` without ``holdout_every`` raise.
        """
        window = as_int("window", window, 2)
        stride = as_int("stride", stride, 1)
        if not isinstance(val_fraction, (int, float)) or not 0 < val_fraction < 0.9:
            raise ValueError(f"val_fraction must be in (0, 0.9), got {val_fraction!r}")
        for name, q in (
            ("calm_quantile", calm_quantile),
            ("crisis_quantile", crisis_quantile),
            ("crisis_drawdown_quantile", crisis_drawdown_quantile),
            ("tail_quantile", tail_quantile),
        ):
            if not 0 < q < 1:
                raise ValueError(f"{name} must be in (0, 1), got {q!r}")
        if calm_quantile >= crisis_quantile:
            raise ValueError("calm_quantile must be below crisis_quantile")
        if holdout_every is None:
            pairs = (("holdout_block", holdout_block), ("holdout_offset", holdout_offset))
            given = [name for name, value in pairs if value is not None]
            if given:
                raise ValueError(
                    f"{' and '.join(given)} need{'s' if len(given) == 1 else ''} holdout_every "
                    "(which block of how many is held out): pass holdout_every too, or leave "
                    f"{'it' if len(given) == 1 else 'them'} out"
                )
        elif holdout_block is None:
            holdout_block = 252
        if holdout_every is not None:
            holdout_every = as_int("holdout_every", holdout_every, 2)
            holdout_block = as_int("holdout_block", holdout_block, window)
            holdout_offset = holdout_every - 1 if holdout_offset is None else holdout_offset
            holdout_offset = as_int("holdout_offset", holdout_offset, 0)
            if holdout_offset >= holdout_every:
                raise ValueError(f"holdout_offset must be below holdout_every ({holdout_every})")

        frame = _pool_frame(prices, missing) if pool else load_prices(prices, missing=missing)
        logp = np.log(frame)
        returns = logp.diff().iloc[1:]
        series_list = list(returns.columns) if pool else [None]
        n_returns = len(returns)
        cut = round(n_returns * (1 - val_fraction))
        if split_date is not None:
            try:
                when = pd.Timestamp(split_date)
            except (TypeError, ValueError):
                raise ValueError(f"split_date must be a date, got {split_date!r}") from None
            cut = int(returns.index.searchsorted(when))
            if not 0 < cut < n_returns:
                raise ValueError(
                    f"split_date {when.date()} must fall inside the data "
                    f"({returns.index[0].date()}..{returns.index[-1].date()})"
                )
            val_fraction = 1 - cut / n_returns
        if window > n_returns:
            dates = f" ({returns.index[0].date()}..{returns.index[-1].date()})" if n_returns else ""
            raise ValueError(
                f"window={window} is longer than the data: {n_returns + 1} prices give "
                f"{n_returns} daily returns{dates}"
            )
        split_date = returns.index[min(cut, n_returns - 1)]
        need = _min_prices(window, val_fraction)
        if n_returns + 1 < need:
            raise ValueError(
                f"need at least {need} prices for window={window} and val_fraction={val_fraction} "
                f"(one training window, a gap of one window and one validation window); "
                f"got {n_returns + 1}"
            )

        hold_pos, near_pos = _holdout_masks(
            n_returns, cut, window, holdout_every, holdout_block, holdout_offset
        )
        chunks, starts, ends, splits, names = [], [], [], [], []
        for col in series_list:
            r = returns if col is None else returns[[col]].dropna()
            vals = r.to_numpy(np.float32)
            n = len(vals)
            if n < window:
                continue
            first = np.arange(0, n - window + 1, stride)
            idx = first[:, None] + np.arange(window)[None, :]
            w = vals[idx]  # [k, window, assets]
            dates = r.index
            s_dates, e_dates = dates[first], dates[first + window - 1]
            # position of each window's returns relative to the global split
            in_train = e_dates < split_date
            gap_end = returns.index[min(cut + window, n_returns - 1)]
            in_val = s_dates >= gap_end if cut + window < n_returns else np.zeros(len(first), bool)
            lab = np.where(in_train, "train", np.where(in_val, "val", "gap"))
            if holdout_every is not None:
                pos = returns.index.get_indexer(s_dates)  # global position of each start
                inside = _all_in(hold_pos, pos, window)
                near = _any_in(near_pos, pos, window)
                lab = np.where(in_train & inside, "holdout", np.where(in_train & near, "gap", lab))
            chunks.append(w)
            starts.append(s_dates)
            ends.append(e_dates)
            splits.append(lab)
            names.append(np.full(len(first), "all" if col is None else col, dtype=object))
        if not chunks:
            raise ValueError(f"no series has {window} returns for one window")
        windows = np.concatenate(chunks)
        start_dates = pd.DatetimeIndex(np.concatenate([s.to_numpy() for s in starts]))
        end_dates = pd.DatetimeIndex(np.concatenate([e.to_numpy() for e in ends]))
        split = np.concatenate(splits)
        series = np.concatenate(names)
        order = np.lexsort((series.astype(str), end_dates.asi8))  # time order
        windows, split, series = windows[order], split[order], series[order]
        start_dates, end_dates = start_dates[order], end_dates[order]

        train = windows[split == "train"]
        if len(train) == 0 or not np.any(split == "val"):
            raise ValueError(
                f"need at least {need} prices for window={window} and val_fraction={val_fraction}: "
                "no training or no validation window"
            )
        keep = np.arange(n_returns) < cut
        if holdout_every is not None:
            keep &= ~near_pos  # neither the holdout nor its purge zone
        train_returns = returns.to_numpy()[keep]
        if pool:  # one pooled asset: every series' training returns together
            flat = train_returns.ravel()
            train_returns = flat[np.isfinite(flat)][:, None]
        scaler = Scaler.fit(train_returns)
        st = window_stats(train)
        vol_calm, vol_crisis = np.quantile(st["vol"], [calm_quantile, crisis_quantile])
        thresholds = RegimeThresholds(
            calm_vol=float(vol_calm),
            crisis_vol=float(vol_crisis),
            crisis_drawdown=float(np.quantile(st["drawdown"], crisis_drawdown_quantile)),
            tail_return=float(np.quantile(st["ret"], tail_quantile)),
            tail_drawdown=float(np.quantile(st["drawdown"], tail_quantile)),
        )
        labels, tail = label_regimes(window_stats(windows), thresholds)
        return cls(
            returns=returns,
            window=window,
            stride=stride,
            val_fraction=float(val_fraction),
            pool=bool(pool),
            windows=np.ascontiguousarray(windows, dtype=np.float32),
            start_dates=start_dates,
            end_dates=end_dates,
            split=split,
            series=series,
            scaler=scaler,
            thresholds=thresholds,
            labels=labels,
            tail=tail,
            asset_names=["pooled"] if pool else [str(c) for c in returns.columns],
        )

    # ---------------------------------------------------------- accessors
    @property
    def n_assets(self) -> int:
        return int(self.windows.shape[2])

    @property
    def train(self) -> np.ndarray:
        """Training windows, float32 [n_train, window, assets] log returns."""
        return self.windows[self.split == "train"]

    @property
    def holdout(self) -> np.ndarray:
        """The in-distribution holdout windows (``holdout_every``), float32."""
        return self.windows[self.split == "holdout"]

    @property
    def val(self) -> np.ndarray:
        """Validation windows (the later period), float32 log returns."""
        return self.windows[self.split == "val"]

    def periods(self, split: str = "train") -> list[tuple[str, str]]:
        """The return dates the windows of ``split`` cover, as runs of
        consecutive trading days ``[(first, last), ...]`` (ISO dates).
        :meth:`Trainer.fit` stores the training runs in the model, so that a
        later evaluation can check that its real references were never
        trained on."""
        mask = self.mask(split)
        idx = self.returns.index
        covered = np.zeros(len(idx) + 1, dtype=np.int64)
        starts = idx.searchsorted(self.start_dates[mask])
        ends = idx.searchsorted(self.end_dates[mask])
        np.add.at(covered, starts, 1)
        np.add.at(covered, ends + 1, -1)
        on = np.cumsum(covered[:-1]) > 0
        edges = np.flatnonzero(np.diff(np.r_[0, on.astype(np.int8), 0]))
        return [
            (str(idx[a].date()), str(idx[b - 1].date()))
            for a, b in zip(edges[::2], edges[1::2], strict=True)
        ]

    def mask(self, split: str = "all") -> np.ndarray:
        """Which windows belong to ``split`` ("all", "train", "holdout", "val"
        or "gap"): bool [n_windows], for indexing :attr:`windows`."""
        if split == "all":
            return np.ones(len(self.windows), dtype=bool)
        if split in ("train", "val", "gap", "holdout"):
            return self.split == split
        raise ValueError(f"split must be 'all', 'train', 'holdout', 'val' or 'gap', got {split!r}")

    def regime(self, name: str, split: str = "all") -> np.ndarray:
        """Windows of one regime: "calm", "normal", "crisis" or "tail";
        float32 [k, window, assets] log returns in time order."""
        if name not in REGIMES:
            raise ValueError(f"regime must be one of {REGIMES}, got {name!r}")
        mask = self.mask(split) & (self.tail if name == "tail" else self.labels == name)
        return self.windows[mask]

    def regime_counts(self, split: str = "all") -> dict[str, int]:
        m = self.mask(split)
        out = {name: int(np.sum(self.labels[m] == name)) for name in REGIMES[:3]}
        out["tail"] = int(np.sum(self.tail[m]))
        return out

    def latest(self) -> np.ndarray:
        """The most recent window, float32 [window, assets] (for pool=True,
        that of the series with the latest data)."""
        if self.pool:
            last = self.series[-1]
            r = self.returns[[last]].dropna().to_numpy(np.float32)
        else:
            r = self.returns.to_numpy(np.float32)
        return np.ascontiguousarray(r[-self.window :])

    def scaled(self, split: str = "train") -> np.ndarray:
        """Standardized windows (the model's input units), float32."""
        return self.scaler.transform(self.windows[self.mask(split)])

    def frame(self, split: str = "all") -> pd.DataFrame:
        """One row per window: dates, split, series, regime label, tail flag
        and the statistics the labels come from."""
        m = self.mask(split)
        st = window_stats(self.windows[m])
        return pd.DataFrame(
            {
                "start": self.start_dates[m],
                "end": self.end_dates[m],
                "split": self.split[m],
                "series": self.series[m],
                "regime": self.labels[m],
                "tail": self.tail[m],
                "vol_annual": st["vol"] * np.sqrt(252),
                "return": st["ret"],
                "drawdown": st["drawdown"],
            }
        )

    def __repr__(self) -> str:
        counts = self.regime_counts()
        sizes = ", ".join(
            f"{k} {int(np.sum(self.split == k))}" for k in ("train", "holdout", "val", "gap")
        )
        return (
            f"WindowData({len(self.windows)} windows of {self.window} days x {self.n_assets} "
            f"asset(s) {self.asset_names}; {sizes}; "
            f"{self.end_dates[0].date()}..{self.end_dates[-1].date()}; regimes {counts})"
        )


def _holdout_masks(n: int, cut: int, window: int, every, block: int, offset):
    """Per return position: in a holdout block; within one window of one."""
    hold = np.zeros(n, dtype=bool)
    near = np.zeros(n, dtype=bool)
    if every is None:
        return hold, near
    for b in range(offset, cut // block, every):
        lo, hi = b * block, (b + 1) * block
        if hi > cut - window:  # too close to the validation split to purge
            break
        hold[lo:hi] = True
        near[max(0, lo - window) : min(n, hi + window)] = True
    return hold, near


def _all_in(mask: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    c = np.concatenate([[0], np.cumsum(mask)])
    return (c[starts + window] - c[starts]) == window


def _any_in(mask: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    c = np.concatenate([[0], np.cumsum(mask)])
    return (c[starts + window] - c[starts]) > 0


def _min_prices(window: int, val_fraction: float) -> int:
    """Fewest prices that give one training window, a one-window gap and one
    validation window: the first n >= 3 * window + 1 where both hold. Both
    only grow with n, so doubling then bisection finds it in O(log n) steps
    (a Python loop over n took minutes for a huge window)."""

    def enough(n: int) -> bool:
        cut = round((n - 1) * (1 - val_fraction))
        return cut >= window and (n - 1) - (cut + window) >= window

    lo = 3 * window + 1
    if enough(lo):
        return lo
    hi = 2 * lo
    while not enough(hi):  # lo never enough, hi is the next to try
        if hi > 2**62:  # val_fraction so small that no length is enough
            return hi
        lo, hi = hi, 2 * hi
    while hi - lo > 1:  # not enough(lo), enough(hi)
        mid = (lo + hi) // 2
        if enough(mid):
            hi = mid
        else:
            lo = mid
    return hi


def _pool_frame(prices: Any, missing: str) -> pd.DataFrame:
    """Validated prices where each column may start and end at its own date."""
    frame = _read(prices)
    parts = {}
    with _naming(prices):
        frame = _with_date_index(frame, prices)
        _check_dates(frame.index)
        frame = _numeric(frame)
        for col in frame.columns:
            s = frame[col]
            valid = s.notna().to_numpy()
            if not valid.any():
                raise ValueError(f"column {col!r} has no prices")
            first, last = np.argmax(valid), len(valid) - 1 - np.argmax(valid[::-1])
            inner = s.iloc[first : last + 1]
            parts[col] = load_prices(inner, missing=missing).iloc[:, 0]
    return pd.DataFrame(parts)


def as_windows(windows: Any, window: int, n_assets: int, name: str = "windows") -> np.ndarray:
    """Coerces windows of log returns to float32 [k, window, assets]; a single
    window [window, assets] (or [window] for one asset) becomes k = 1."""
    if hasattr(windows, "detach"):
        windows = windows.detach().cpu().numpy()
    arr = np.asarray(windows)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    if arr.ndim == 1 and n_assets == 1:
        arr = arr[None, :, None]
    elif arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1:] != (window, n_assets):
        raise ValueError(
            f"{name} must be [k, {window}, {n_assets}] (or one window [{window}, {n_assets}]), "
            f"got shape {tuple(np.shape(windows))}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contain NaN or inf")
    out = np.ascontiguousarray(arr, dtype=np.float32)
    return out if out.flags.writeable else out.copy()

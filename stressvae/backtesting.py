"""Backtests on every scenario, streamed in chunks: a metrics table.

``backtest(source, strategy)`` turns scenarios into price paths with
``Scenarios.prices`` (float64, the start price first), runs the strategy on
each path, and keeps one row of metrics per path. Two backends:

- ``"vectorbt"``: the strategy's vectorbt Portfolio on each chunk (any
  strategy, user strategies included);
- ``"fast"``: numba kernels (stressvae._backtest_nb) that compute the same
  metrics for the built-in strategies without building a Portfolio, equal to
  vectorbt's within 1e-9 relative, in bounded memory;
- ``"auto"`` (default): fast when the strategy has a kernel, else vectorbt.

Ratios are annualized with 252 trading days (``year_days``); vectorbt's own
default of 365 calendar days is overridden so both backends agree. A path
with no trade has a constant value: its Sharpe, Sortino and Calmar ratios
are NaN (vectorbt would give inf).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from ._checks import as_int
from .data import load_prices
from .distributed import check_engine, map_shards, shard_chunks
from .generate import ScenarioGenerator, Scenarios
from .native import NativeInputError
from .strategies import Strategy

__all__ = [
    "HEADLINE_METRICS",
    "METRICS",
    "BacktestResult",
    "backtest",
    "backtest_plan",
    "check_paths",
    "historical_windows",
    "loss_risk",
    "vectorbt_metrics",
]

METRICS = (
    "total_return",
    "annualized_return",
    "annualized_volatility",
    "sharpe_ratio",
    "sortino_ratio",
    "max_drawdown",
    "calmar_ratio",
    "trade_count",
    "win_rate",
    "worst_day",
)
HEADLINE_METRICS = ("total_return", "sharpe_ratio", "max_drawdown")  # what summaries show first
RATIOS = ("sharpe_ratio", "sortino_ratio", "calmar_ratio")
BACKENDS = ("auto", "fast", "vectorbt")
VECTORBT_CHUNK_CELLS = 4_000_000  # paths x days per vectorbt chunk (~1 GiB of vectorbt state)
FAST_CHUNK_CELLS = 32_000_000


@dataclasses.dataclass(frozen=True)
class BacktestConfig:
    """Costs and conventions of a backtest: fees and slippage as fractions
    of the traded value, starting cash, bar frequency, trading days a year
    and the start price of every path."""

    fees: float = 0.0
    slippage: float = 0.0
    init_cash: float = 100.0
    freq: str = "1D"
    year_days: int = 252
    start_price: float = 100.0

    def __post_init__(self):
        for name in ("fees", "slippage"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 <= v < 1:
                raise ValueError(f"{name} must be a fraction in [0, 1), got {v!r}")
        for name in ("init_cash", "start_price"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"{name} must be finite and > 0, got {v!r}")
        if not isinstance(self.year_days, int) or self.year_days < 1:
            raise ValueError(f"year_days must be an integer >= 1, got {self.year_days!r}")
        if self.freq != "1D":
            raise ValueError("freq must be '1D': scenarios are daily")

    @property
    def ann_factor(self) -> float:
        return float(self.year_days)


def _close_frame(close: np.ndarray, columns=None):
    import pandas as pd

    return pd.DataFrame(close, columns=columns)


def vectorbt_metrics(
    close: np.ndarray,
    strategy: Strategy,
    config: BacktestConfig,
    group_by: Any = None,
    contributions: bool = False,
):
    """The metrics of vectorbt's own Portfolio for each column of ``close``
    (float64 [days + 1, paths]), or each group of columns: float64
    [paths or groups, len(METRICS)]. The reference the fast path is held to.
    ``contributions`` (grouped strategies): also return float64 [groups,
    assets], each column's ``total_profit`` / init_cash (None per asset)."""
    frame = _close_frame(close)
    pf = strategy.portfolio(
        frame,
        fees=config.fees,
        slippage=config.slippage,
        init_cash=config.init_cash,
        freq=config.freq,
        group_by=group_by,
    )
    acc = pf.get_returns_acc(year_freq=f"{config.year_days} days")
    rets = pf.returns()
    cols = [
        pf.total_return(),
        acc.annualized(),
        acc.annualized_volatility(),
        acc.sharpe_ratio(),
        acc.sortino_ratio(),
        acc.max_drawdown(),
        acc.calmar_ratio(),
        pf.trades.count(),
        pf.trades.win_rate(),
        rets.min(),
    ]
    out = np.column_stack([np.asarray(c, dtype=np.float64).reshape(-1) for c in cols])
    out = _ratios_nan_without_trades(out)
    if not contributions:
        return out
    if group_by is None:
        return out, None
    profit = np.asarray(pf.total_profit(group_by=False), dtype=np.float64)
    return out, (profit / config.init_cash).reshape(out.shape[0], -1)


def _ratios_nan_without_trades(out: np.ndarray) -> np.ndarray:
    for name in RATIOS:
        j = METRICS.index(name)
        out[~np.isfinite(out[:, j]), j] = np.nan
    return out


def fast_metrics(
    close: np.ndarray, strategy: Strategy, config: BacktestConfig, n_assets: int = 1,
    contributions: bool = False,
):  # fmt: skip
    """The same metrics from the numba kernels (built-in strategies only);
    for a portfolio strategy ``close`` holds each scenario's ``n_assets``
    columns side by side and one row comes per scenario. ``contributions``:
    also return float64 [scenarios, assets] (None per asset), as
    :func:`vectorbt_metrics`."""
    from . import _backtest_nb

    close = np.ascontiguousarray(close, dtype=np.float64)
    contrib = None
    if strategy.portfolio_kind == "grouped":
        weights = strategy.target_weights(close, n_assets)
        out, contrib = _backtest_nb.portfolio_metrics(
            close, weights, n_assets, config.init_cash, config.fees, config.slippage,
            config.ann_factor,
        )  # fmt: skip
    else:
        out = _backtest_nb.metrics(
            strategy.fast, close, strategy.params(), config.init_cash, config.fees,
            config.slippage, config.ann_factor,
        )  # fmt: skip
    out = _ratios_nan_without_trades(out)
    return (out, contrib) if contributions else out


def _has_fast(strategy: Strategy) -> bool:
    if strategy.fast is None:
        return False
    try:
        from . import _backtest_nb
    except ImportError:  # pragma: no cover - numba missing
        return False
    if strategy.portfolio_kind == "grouped":
        return strategy.fast in _backtest_nb.PORTFOLIO_KINDS
    return strategy.fast in _backtest_nb.SUPPORTED


@dataclasses.dataclass
class BacktestResult:
    """Per-path metrics of a backtest.

    metrics: DataFrame, one row per scenario (per scenario and asset for
        per-asset strategies on several assets), the scenario tags first, then
        :data:`METRICS`. Returns and drawdowns are fractions (-0.2 = -20 %).
    contributions: for portfolio strategies (``portfolio_kind == "grouped"``)
        a DataFrame [scenarios, assets], rows aligned with ``metrics``, one
        column per asset name: the asset's profit over the path (the price
        moves of its holdings, less its fees and slippage) / init_cash; a
        row adds up to the scenario's ``total_return``. None for per-asset
        strategies.
    """

    metrics: Any  # pandas.DataFrame
    strategy: Strategy
    config: BacktestConfig
    backend: str
    horizon: int
    _source: Any = dataclasses.field(default=None, repr=False)
    contributions: Any = dataclasses.field(default=None, repr=False)  # DataFrame or None

    def __len__(self) -> int:
        return len(self.metrics)

    def summary(
        self,
        quantiles: tuple[float, ...] = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99),
        by: str | None = None,
    ):
        """Mean, standard deviation and quantiles of every metric (rows),
        optionally per value of a tag column ``by`` (e.g. "set", "step")."""
        import pandas as pd

        def one(frame):
            m = frame[list(METRICS)]
            if "weight" in frame.columns:  # what-if scenarios: importance weights
                return _weighted_summary(m, frame["weight"].to_numpy(np.float64), quantiles)
            out = pd.DataFrame({"count": m.count(), "mean": m.mean(), "std": m.std()})
            for q in quantiles:
                out[f"q{q * 100:g}"] = m.quantile(q)
            return out

        if by is None:
            return one(self.metrics)
        return pd.concat(
            {k: one(g) for k, g in self.metrics.groupby(by, observed=True)}, names=[by]
        )

    def risk(self, levels: tuple[float, ...] = (0.95, 0.99), by: str | None = None):
        """Probability of loss and value at risk / expected shortfall of the
        total return, as positive losses: VaR_q = -quantile(total_return,
        1 - q); ES_q = -mean of the returns at or below that quantile.
        Scenarios with importance weights (a ``weight`` column: what-if
        scenarios) give weighted quantiles and means, plus ``ess`` and
        ``mean_return``."""
        import pandas as pd

        def one(frame):
            w = frame["weight"].to_numpy(np.float64) if "weight" in frame.columns else None
            return pd.Series(loss_risk(frame["total_return"].to_numpy(), levels, weights=w))

        if by is None:
            return one(self.metrics)
        return pd.DataFrame({k: one(g) for k, g in self.metrics.groupby(by, observed=True)}).T

    def contribution_in_tail(self, level: float = 0.99):
        """The mean contribution of each asset (a Series indexed by asset
        name, fractions of init_cash) over the worst ``1 - level`` of the
        scenarios by total return: those at or below its ``1 - level``
        quantile, the scenarios behind ``risk()``'s expected shortfall, so
        the values add up to ``-risk()["es_<level>"]``."""
        if self.contributions is None:
            raise ValueError(
                f"{self.strategy.describe()} is backtested asset by asset: no contributions "
                "(they come with portfolio strategies: EqualWeight, FixedWeights, ...)"
            )
        if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
            raise ValueError(f"level must be a fraction in (0, 1), got {level!r}")
        r = self.metrics["total_return"].to_numpy()
        ok = np.isfinite(r)
        if not ok.any():
            raise ValueError("no scenario has a finite total return")
        cut = np.quantile(r[ok], 1 - level)
        return self.contributions[ok & (r <= cut)].mean()

    def portfolio(self, i: int):
        """The vectorbt Portfolio of the chunk that holds scenario ``i`` (a
        chunk of up to 1,000 paths around it, rebuilt from the source), for
        deeper looks: trades, orders, plots."""
        if self._source is None:
            raise ValueError("this result keeps no source to rebuild portfolios from")
        returns, names = self._source(i)
        close = _prices(returns, self.config.start_price)
        m, t, a = close.shape
        flat = close.transpose(1, 0, 2).reshape(t, m * a)
        group_by = np.repeat(names, a) if self.strategy.portfolio_kind == "grouped" else None
        return self.strategy.portfolio(
            _close_frame(flat, columns=_column_names(names, a)),
            fees=self.config.fees,
            slippage=self.config.slippage,
            init_cash=self.config.init_cash,
            freq=self.config.freq,
            group_by=group_by,
        )


def weighted_quantile(x: np.ndarray, w: np.ndarray, q: float) -> float:
    """The smallest x whose cumulative weight share reaches q (x, w finite,
    w >= 0); NaN for no values."""
    if len(x) == 0:
        return float("nan")
    order = np.argsort(x, kind="stable")
    cum = np.cumsum(w[order])
    i = int(np.searchsorted(cum, q * cum[-1], side="left"))
    return float(x[order][min(i, len(x) - 1)])


def _weighted_summary(m, w: np.ndarray, quantiles: tuple[float, ...]):
    import pandas as pd

    rows = {}
    for col in m.columns:
        x = m[col].to_numpy(np.float64)
        ok = np.isfinite(x)
        x, wx = x[ok], w[ok]
        mean = float(np.sum(wx * x) / np.sum(wx)) if len(x) else np.nan
        std = float(np.sqrt(np.sum(wx * (x - mean) ** 2) / np.sum(wx))) if len(x) else np.nan
        ess = float(np.sum(wx) ** 2 / np.sum(wx * wx)) if len(x) else 0.0
        row = {"count": int(ok.sum()), "ess": ess, "mean": mean, "std": std}
        for q in quantiles:
            row[f"q{q * 100:g}"] = weighted_quantile(x, wx, q)
        rows[col] = row
    return pd.DataFrame(rows).T


def loss_risk(
    total_return: np.ndarray,
    levels: tuple[float, ...] = (0.95, 0.99),
    weights: np.ndarray | None = None,
) -> dict:
    """Of the finite total returns: ``paths``, ``prob_loss`` and, per level
    q, ``var_<q%>`` = -quantile(r, 1 - q) and ``es_<q%>`` = -mean of the
    returns at or below that quantile (positive numbers are losses; NaN
    when there is no finite return). With importance ``weights`` (>= 0,
    one per return): weighted quantiles and means, plus ``ess`` (Kish's
    effective sample size) and ``mean_return``."""
    r = np.asarray(total_return, dtype=np.float64)
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != r.shape or not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError("weights must be finite, >= 0 and one per total return")
        ok = np.isfinite(r)
        r, w = r[ok], w[ok]
        out = {"paths": len(r)}
        if not len(r) or w.sum() <= 0:
            out.update(prob_loss=np.nan, ess=0.0, mean_return=np.nan)
            for q in levels:
                out[f"var_{q * 100:g}"] = out[f"es_{q * 100:g}"] = np.nan
            return out
        total = w.sum()
        out["prob_loss"] = float(w[r < 0].sum() / total)
        out["ess"] = float(total**2 / np.sum(w * w))
        out["mean_return"] = float(np.sum(w * r) / total)
        for q in levels:
            cut = weighted_quantile(r, w, 1 - q)
            tail = r <= cut
            out[f"var_{q * 100:g}"] = -cut
            out[f"es_{q * 100:g}"] = -float(np.sum(w[tail] * r[tail]) / np.sum(w[tail]))
        return out
    r = r[np.isfinite(r)]
    out = {"paths": len(r), "prob_loss": float(np.mean(r < 0)) if len(r) else np.nan}
    for q in levels:
        cut = np.quantile(r, 1 - q) if len(r) else np.nan
        out[f"var_{q * 100:g}"] = -cut
        out[f"es_{q * 100:g}"] = -float(r[r <= cut].mean()) if len(r) else np.nan
    return out


def _prices(returns: np.ndarray, start: float) -> np.ndarray:
    r = returns.astype(np.float64)
    out = np.empty((r.shape[0], r.shape[1] + 1, r.shape[2]))
    out[:, 0] = 0.0
    np.cumsum(r, axis=1, out=out[:, 1:])
    np.exp(out, out=out)
    out *= start
    return out


def _column_names(names, assets: int) -> list:
    if assets == 1:
        return list(names)
    return [f"{s}:{a}" for s in names for a in range(assets)]


def _chunks_of(
    source: Any, n: int | None, seed: int | None, chunk_size: int | None, gen_kwargs
) -> Iterator:
    if isinstance(source, Scenarios):
        step = chunk_size or len(source) or 1
        for s in range(0, len(source), step):
            sub = dataclasses.replace(
                source, returns=source.returns[s : s + step], tags=source.tags.iloc[s : s + step]
            )
            yield sub
    elif isinstance(source, ScenarioGenerator):
        if n is None or seed is None:
            raise ValueError("backtesting a generator needs n and seed")
        yield from source.iter_chunks(n, seed=seed, chunk_size=chunk_size, **gen_kwargs)
    elif isinstance(source, Iterable):
        for chunk in source:
            if not isinstance(chunk, Scenarios):
                raise ValueError(f"expected Scenarios chunks, got {type(chunk).__name__}")
            yield chunk
    else:
        raise ValueError(
            "source must be Scenarios, a ScenarioGenerator (with n and seed) or an iterable of "
            f"Scenarios chunks, got {type(source).__name__}"
        )


def backtest(
    source: Any,
    strategy: Strategy,
    fees: float = 0.0,
    slippage: float = 0.0,
    init_cash: float = 100.0,
    freq: str = "1D",
    chunk_size: int | None = None,
    *,
    n: int | None = None,
    seed: int | None = None,
    start_price: float = 100.0,
    backend: str = "auto",
    year_days: int = 252,
    progress: Any = None,
    engine: str = "local",
    client: Any = None,
    shards: int | None = None,
    resources: dict | None = None,
    **gen_kwargs: Any,
) -> BacktestResult:
    """Runs ``strategy`` on every scenario path and collects per-path metrics.

    source: ``Scenarios``; a ``ScenarioGenerator`` with ``n`` and ``seed``
        (and its ``drift`` / ``horizon`` as keywords), streamed chunk by
        chunk; or an iterable of ``Scenarios`` chunks.
    fees, slippage: fractions of each trade's value (0.001 = 10 bp).
    init_cash: starting cash of every path; prices start at ``start_price``.
    chunk_size: paths per backtest chunk (default: bounded by memory; the
        metrics do not depend on it).
    backend: "auto", "fast" (built-in strategies) or "vectorbt".
    progress: a callable ``update(paths_done)`` (e.g. a tqdm bar's update).
    engine: "local" (this process) or "dask": a generator's n scenarios are
        split into ``shards`` (default 4 per worker) that Dask workers
        generate and backtest, sending back only metrics; the same metrics
        as "local", exactly. ``client``: a ``dask.distributed.Client``
        (default: a local cluster, one worker per core, closed afterwards);
        ``resources``: Dask resources per shard, e.g. ``{"GPU": 1}``.
    """
    import pandas as pd

    if not isinstance(strategy, Strategy):
        raise ValueError(
            f"strategy must be a stressvae.strategies.Strategy, got {type(strategy).__name__}"
        )
    config = BacktestConfig(fees, slippage, init_cash, freq, year_days, start_price)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    fast_ok = _has_fast(strategy)
    if backend == "fast" and not fast_ok:
        raise ValueError(
            f"backend='fast' has no kernel for {strategy.describe()}; use backend='vectorbt' "
            "(or 'auto', which picks it)"
        )
    use_fast = fast_ok and backend in ("auto", "fast")
    check_engine(engine, client, shards)
    if isinstance(source, (Scenarios, ScenarioGenerator)):
        strategy = strategy.bind(list(source.asset_names))
    if engine == "dask":
        return _backtest_dask(
            source, strategy, config, backend, chunk_size, n, seed, gen_kwargs, client, shards,
            resources, progress,
        )  # fmt: skip
    frames, contribs, horizon = [], [], None
    for chunk in _chunks_of(source, n, seed, chunk_size, gen_kwargs):
        if len(chunk) == 0:
            continue
        if horizon is None:
            horizon = chunk.horizon
            strategy = strategy.bind(list(chunk.asset_names))
            check_paths(strategy, horizon, chunk.n_assets)
        frame, contrib = _run_chunk(chunk, strategy, config, use_fast)
        frames.append(frame)
        contribs.append(contrib)
        if progress is not None:
            progress(len(chunk))
    if not frames:
        raise ValueError("no scenarios to backtest")
    metrics = pd.concat(frames, ignore_index=True)
    src = _rebuilder(source, n, seed, gen_kwargs)
    return BacktestResult(
        metrics, strategy, config, "fast" if use_fast else "vectorbt", horizon, src,
        contributions=_concat_contributions(contribs),
    )  # fmt: skip


def _concat_contributions(parts: list):
    """One DataFrame of the chunks' contributions (None when they are None)."""
    import pandas as pd

    if not parts or parts[0] is None:
        return None
    return pd.concat(parts, ignore_index=True)


def check_paths(strategy: Strategy, horizon: int, n_assets: int | None = None) -> None:
    """Paths long enough for the strategy's warm-up, and assets enough for it
    (``n_assets`` None: not checked)."""
    if strategy.warmup >= horizon:
        raise ValueError(
            f"paths of {horizon} days are too short for {strategy.describe()}, which needs "
            f"{strategy.warmup} days before its first signal: generate longer paths (horizon=...)"
        )
    if n_assets is None:
        return
    if strategy.portfolio_kind == "grouped" and n_assets < 2:
        raise ValueError(f"{strategy.describe()} needs scenarios of two or more assets")


def _backtest_dask(source, strategy, config, backend, chunk_size, n, seed, gen_kwargs, client,
                   shards, resources, progress) -> BacktestResult:  # fmt: skip
    if not isinstance(source, ScenarioGenerator) or n is None or seed is None:
        raise ValueError(
            "engine='dask' backtests a ScenarioGenerator with n and seed (workers generate their "
            "own shards); scenarios already in memory are backtested with engine='local'"
        )
    unknown = set(gen_kwargs) - {"drift", "horizon"}
    if unknown:
        raise ValueError(f"unexpected keyword arguments {sorted(unknown)}")
    n = as_int("n", n, 1, 1 << 40, error=NativeInputError)
    drift = gen_kwargs.get("drift", "keep")
    seed, horizon, cs = source.check_stream_args(seed, drift, gen_kwargs.get("horizon"), chunk_size)
    check_paths(strategy, horizon, source.n_assets)
    metrics, used, _, contributions = backtest_plan(
        source, source.prior_plan(n), seed, horizon, drift, strategy, config, backend, cs,
        client=client, shards=shards, resources=resources, device=source.device,
        progress=progress, contributions=True,
    )  # fmt: skip
    src = _rebuilder(source, n, seed, gen_kwargs)
    return BacktestResult(
        metrics, strategy, config, used, horizon, src, contributions=contributions
    )


def backtest_plan(gen, plan, seed, horizon, drift, strategy, config, backend="auto",
                  chunk_size=None, client=None, shards=None, resources=None, device="auto",
                  progress=None, num_threads=None, contributions=False):  # fmt: skip
    """The metrics of every scenario of ``plan`` (a
    :class:`~stressvae.generate.ScenarioPlan`), generated and backtested in
    shards on Dask workers (see :func:`stressvae.distributed.map_shards`).
    Returns (metrics DataFrame in scenario order, backend used, worker
    pids), and with ``contributions=True`` a fourth item: the per-asset
    contributions (DataFrame in scenario order, as
    ``BacktestResult.contributions``; None for per-asset strategies)."""
    import pandas as pd

    strategy = strategy.bind(list(gen.asset_names))
    out, _ = map_shards(
        gen, plan, seed, horizon, drift, backtest_shard, task=(strategy, config, backend),
        chunk_size=chunk_size, client=client, shards=shards, resources=resources, device=device,
        progress=progress, num_threads=num_threads,
    )  # fmt: skip
    metrics = pd.concat([m for m, _, _, _ in out], ignore_index=True)
    used = "+".join(sorted({b for _, b, _, _ in out}))
    pids = sorted({p for _, _, p, _ in out})
    if not contributions:
        return metrics, used, pids
    return metrics, used, pids, _concat_contributions([c for _, _, _, c in out])


def backtest_shard(gen, job, start: int, count: int):
    """On a Dask worker: scenarios start .. start + count - 1 of the job's
    plan, backtested with the job's (strategy, config, backend); returns
    (metrics, backend used, worker pid, contributions or None)."""
    strategy, c, backend = job.task
    if job.num_threads:
        with contextlib.suppress(ImportError, ValueError):
            import numba

            numba.set_num_threads(min(job.num_threads, numba.config.NUMBA_NUM_THREADS))
    res = backtest(
        shard_chunks(gen, job, start, count), strategy, c.fees, c.slippage, c.init_cash, c.freq,
        start_price=c.start_price, year_days=c.year_days, backend=backend,
    )  # fmt: skip
    return res.metrics, res.backend, os.getpid(), res.contributions


def _run_chunk(chunk, strategy: Strategy, config: BacktestConfig, use_fast: bool):
    """(metrics DataFrame of the chunk, its contributions DataFrame or None)."""
    import pandas as pd

    m, h, a = chunk.returns.shape
    grouped = strategy.portfolio_kind == "grouped"
    cells = VECTORBT_CHUNK_CELLS if not use_fast else FAST_CHUNK_CELLS
    if use_fast and grouped:  # the weights array beside the prices
        cells //= 2
    step = max(1, cells // ((h + 1) * a))
    ids = np.asarray(chunk.tags["scenario"] if "scenario" in chunk.tags else range(m))
    parts, contribs = [], []
    for s in range(0, m, step):
        close = _prices(chunk.returns[s : s + step], config.start_price)  # [k, h+1, a]
        k = close.shape[0]
        flat = np.ascontiguousarray(close.transpose(1, 0, 2).reshape(h + 1, k * a))
        if use_fast:
            try:  # the kernel checks the prices as it goes: no extra pass here
                out, contrib = fast_metrics(flat, strategy, config, a, contributions=True)
            except ValueError:
                check_prices(close, ids[s : s + step], chunk.asset_names)  # names the path
                raise
        else:
            check_prices(close, ids[s : s + step], chunk.asset_names)
            group_by = np.repeat(np.arange(k), a) if grouped else None
            out, contrib = vectorbt_metrics(flat, strategy, config, group_by, contributions=True)
        parts.append(out)
        contribs.append(contrib)
    values = np.concatenate(parts)
    tags = chunk.tags.reset_index(drop=True)
    if a > 1 and not grouped:
        tags = tags.loc[tags.index.repeat(a)].reset_index(drop=True)
        tags["asset"] = np.tile(np.array(chunk.asset_names, dtype=object), m)
    frame = pd.DataFrame(values, columns=list(METRICS))
    frame["trade_count"] = frame["trade_count"].astype(np.int64)
    contributions = None
    if grouped:
        contributions = pd.DataFrame(
            np.concatenate(contribs), columns=pd.Index([str(x) for x in chunk.asset_names])
        )
    return pd.concat([tags, frame], axis=1), contributions


def check_prices(close: np.ndarray, ids: Any, asset_names: list) -> None:
    """Refuses (ValueError) paths whose prices (float64 [paths, days + 1,
    assets]) are not all finite and > 0, e.g. from NaN or inf returns, the
    same for every backend (vectorbt would report a 0.0 return); the message
    names the first such scenario and asset."""
    ok = ((close > 0) & (close < np.inf)).all(axis=1)  # [paths, assets]
    if not ok.all():
        p, a = np.argwhere(~ok)[0]
        raise ValueError(
            f"scenarios must give finite prices > 0 (no NaN or inf returns); "
            f"{int((~ok).sum())} path(s) do not, the first is scenario "
            f"{ids[p]}, asset {asset_names[a]!r}"
        )


def _rebuilder(source, n, seed, gen_kwargs):
    """A function scenario i -> (returns of its chunk of <= 1000 paths, ids)."""
    if isinstance(source, Scenarios):
        ids = source.tags["scenario"].to_numpy()

        def from_scenarios(i):
            pos = int(np.searchsorted(ids, i))
            if pos >= len(ids) or ids[pos] != i:
                raise ValueError(f"scenario {i} is not in these scenarios")
            lo = pos // 1000 * 1000
            return source.returns[lo : lo + 1000], ids[lo : lo + 1000]

        return from_scenarios
    if isinstance(source, ScenarioGenerator) and n is not None:

        def from_generator(i):
            if not 0 <= i < n:
                raise ValueError(f"scenario must be in [0, {n}), got {i}")
            lo = i // 1000 * 1000
            chunk = source.generate(
                source.prior_plan(n), seed, lo, min(1000, n - lo),
                gen_kwargs.get("horizon") or source.window, gen_kwargs.get("drift", "keep"),
            )  # fmt: skip
            return chunk.returns, chunk.tags["scenario"].to_numpy()

        return from_generator
    return None


def historical_windows(
    prices: Any,
    strategy: Strategy,
    horizon: int,
    stride: int | None = None,
    fees: float = 0.0,
    slippage: float = 0.0,
    init_cash: float = 100.0,
    year_days: int = 252,
    backend: str = "auto",
    result: bool = False,
):
    """The strategy on the real history, cut into windows of ``horizon``
    days (every ``stride`` days, default the horizon: no overlap), each
    rebased to start at 100: the real counterpart of the scenario metrics.
    Returns a DataFrame, one row per window (per window and asset for a
    per-asset strategy on several assets), with its start and end dates;
    with ``result=True`` the whole :class:`BacktestResult` (its
    ``contributions`` for a portfolio strategy: the assets' shares of each
    real window's return)."""
    import pandas as pd

    frame = load_prices(prices)
    r = np.log(frame).diff().iloc[1:]
    horizon = as_int("horizon", horizon, 1)
    stride = horizon if stride is None else as_int("stride", stride, 1)
    starts = np.arange(0, len(r) - horizon + 1, stride)
    if len(starts) == 0:
        raise ValueError(
            f"the history ({len(r)} returns) is shorter than one horizon of {horizon} days"
        )
    rv = r.to_numpy(np.float64)
    win = np.stack([rv[s : s + horizon] for s in starts]).astype(np.float32)
    tags = pd.DataFrame(
        {
            "scenario": np.arange(len(starts)),
            "start": r.index[starts],
            "end": r.index[starts + horizon - 1],
        }
    )
    scen = Scenarios(win, tags, 0, horizon, horizon, list(frame.columns), "historical")
    res = backtest(scen, strategy, fees, slippage, init_cash, year_days=year_days, backend=backend)
    return res if result else res.metrics

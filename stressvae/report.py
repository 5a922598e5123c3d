"""The stress test and its report.

``stress_test(model, data, strategy, n)`` generates three sets of scenarios
with the model and backtests the strategy on every path:

- ``prior``: n scenarios from the model's own market;
- ``sweep``: the path from calm to crisis windows in ``steps`` steps
  (``alpha`` 0 = calm, 1 = crisis), ``n_per_step`` each;
- ``tail``: variations around the real tail windows (the worst by return or
  drawdown), shrunk posterior noise;

and the same strategy on the real history, cut into windows of the same
horizon. The result, a :class:`StressReport`, holds one metrics table (a
``set`` column), tables of quantiles, probability of loss and VaR / ES,
figures, and writes one self-contained HTML file.

For a model of several assets the report also holds the average
within-window correlation matrices of the real windows and of the first
prior scenarios, in calm and crisis windows, and, for a portfolio strategy,
each asset's contribution to the loss in the worst 1 % of scenarios.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import io
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from . import _figures
from ._checks import as_int
from ._files import atomic_write
from ._html import portfolio_line, render_html
from ._progress import progress_bar
from .backtesting import (
    HEADLINE_METRICS,
    METRICS,
    BacktestConfig,
    BacktestResult,
    backtest,
    backtest_plan,
    check_paths,
    historical_windows,
    loss_risk,
    weighted_quantile,
)
from .distributed import check_engine, engine_client
from .generate import SETS, ScenarioGenerator, ScenarioPlan
from .model import top_anomalies
from .strategies import PortfolioStrategy, Strategy

__all__ = ["StressReport", "stress_test"]

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
FAN_PATHS = 2000  # prior paths kept for the fan chart
CORRELATION_PATHS = 20_000  # prior paths whose correlation matrices are kept (several assets)
CORRELATION_BLOCK = 2048  # windows per block when computing them (bounds the memory)
TAIL_LEVEL = 0.99  # the contributions to the loss are over the worst 1 - TAIL_LEVEL


def _seeds(seed: int) -> dict[str, int]:
    """Independent 64-bit seeds for the three sets, the from-today fan and
    the what-if set, derived from one seed (SeedSequence children 0..4; the
    three sets' seeds are those of reports made before the others existed)."""
    states = np.random.SeedSequence(seed).spawn(5)
    names = (*SETS[:3], "today", "given")
    return {
        name: int(s.generate_state(1, np.uint64)[0]) for name, s in zip(names, states, strict=True)
    }


def default_horizon(window: int, warmup: int) -> int:
    """The model's window if it leaves the strategy at least as many days to
    trade as its warm-up; otherwise whole windows chained until it does."""
    k = 1
    while k * window < 2 * warmup + 1:
        k += 1
    return k * window


def stress_test(
    model: Any,
    data: Any,
    strategy: Strategy,
    n: int = 1_000_000,
    seed: int = 0,
    steps: int = 11,
    n_per_step: int | None = None,
    tail_n: int | None = None,
    tail_scale: float = 0.5,
    horizon: int | None = None,
    drift: str = "keep",
    fees: float = 0.0,
    slippage: float = 0.0,
    init_cash: float = 100.0,
    device: str = "auto",
    chunk_size: int | None = None,
    backend: str = "auto",
    history: Any = None,
    sweep_from: str = "calm",
    sweep_to: str = "crisis",
    progress: bool = True,
    realism: bool | dict = False,
    engine: str = "local",
    client: Any = None,
    shards: int | None = None,
    resources: dict | None = None,
    regime_halflife: float | None = None,
    given: Any = None,
    given_n: int | None = None,
) -> StressReport:
    """Backtests ``strategy`` on model-generated markets (see the module doc).

    n: scenarios from the prior. n_per_step: per sweep step (default n / 20
    / steps, at least 1,000). tail_n: about this many tail variations in all
    (default n / 10), spread evenly over the tail windows. horizon: days per
    path (default: the model's window, or whole windows chained when the
    strategy's warm-up would leave fewer days to trade than it needs).
    history: the Trainer's History, for the training-curve figure.
    realism: also score the scenarios' realism side by side with the
    classical baselines (stressvae.realism.evaluate; adds a section to the
    report and a minute or two); a dict instead of True passes its
    arguments to evaluate (e.g. ``{"n": 2000, "discriminator_epochs": 10}``).
    engine: "local", or "dask" to generate and backtest the three sets in
    shards on Dask workers (``client``: a dask.distributed.Client, default a
    local cluster closed afterwards; ``shards`` per set, default 4 per
    worker; ``resources``, e.g. {"GPU": 1}): the same report, exactly.
    regime_halflife: recurrent models only: z drifts back to the prior along
    each path with this half-life in days (regimes can change within a path).
    given: an event (:class:`stressvae.Event` or its text, e.g.
    ``"JPM:return<=-20%"``): adds a fourth set, ``"given"``, of ``given_n``
    (default n / 10, between 1,000 and 20,000) what-if scenarios inside it
    (:meth:`ScenarioGenerator.given`), each with its likelihood-ratio weight
    (the ``weight`` column: 1 for the other sets); the report's risk and
    quantile tables are weighted for that set.
    Everything streams in chunks: memory stays bounded for any n.
    """
    check_engine(engine, client, shards)
    if not isinstance(strategy, Strategy):
        raise ValueError(f"strategy must be a Strategy, got {type(strategy).__name__}")
    n, steps, n_per_step, tail_n = _set_sizes(n, steps, n_per_step, tail_n)
    horizon = _horizon(model.window, model.n_assets, strategy, horizon)
    config = BacktestConfig(fees, slippage, init_cash)
    seeds = _seeds(seed)
    gen = ScenarioGenerator(model, data, device=device)
    _, horizon, cs = gen.check_stream_args(0, drift, horizon, chunk_size)
    phi = gen.phi_of(regime_halflife)
    plans = _plans(gen, data, n, steps, n_per_step, tail_n, tail_scale, sweep_from, sweep_to)
    plans = {name: p.with_phi(phi) for name, p in plans.items()}
    run = _SetRunner(gen, seeds, horizon, drift, cs, strategy, config, backend, device, resources)
    if model.n_assets > 1:
        run.correlation = _CorrelationSample(CORRELATION_PATHS, min(model.window, horizon))
    metrics, timings, backends = run.all(plans, progress, engine, client, shards)
    given_info = None
    if given is not None:
        metrics, given_info = _given_set(
            gen, metrics, given, given_n, n, seeds["given"], horizon, drift, strategy, config,
            backend, progress, timings,
        )  # fmt: skip

    t0 = time.perf_counter()
    real_prices = _real_prices(data)
    hist = historical_windows(real_prices, strategy, horizon, fees=fees, slippage=slippage,
                              init_cash=init_cash, backend=backend)  # fmt: skip
    timings["historical"] = time.perf_counter() - t0
    latent = _latent_map(model, data)
    anomalies = top_anomalies(model, data, top=10)
    realism_html = _realism_section(gen, data, seed, realism, timings)
    correlations = None
    if run.correlation is not None:
        real = _CorrelationSample(len(data.windows), run.correlation.days)
        real.add(data.windows)
        correlations = {
            "assets": list(data.asset_names),
            "days": run.correlation.days,
            "real": real.summary(),
            "generated": run.correlation.summary(),
        }
    return StressReport(
        metrics=metrics,
        historical=hist,
        strategy=strategy.describe(),
        config=dataclasses.asdict(config),
        horizon=horizon,
        window=model.window,
        seed=seed,
        seeds=seeds,
        counts={k: int(p.n) for k, p in plans.items()},
        steps=steps,
        sweep=(sweep_from, sweep_to),
        drift=drift,
        backend="+".join(sorted(backends)),
        timings=timings,
        model=dict(model.config),
        data=_describe_data(data),
        fan=_fan(run.fan_paths, config.start_price),
        today=_today(gen, horizon, seeds["today"], config.start_price),
        real_path=_real_path(real_prices, horizon),
        latent=latent,
        anomalies=anomalies,
        history=None if history is None else history.to_frame().reset_index(),
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        realism_html=realism_html,
        correlations=correlations,
        contributions=_contributions(run.tail, data.asset_names),
        portfolio=_portfolio(strategy, data.asset_names),
        given=given_info,
    )


def _given_set(gen, metrics, event, given_n, n, seed, horizon, drift, strategy, config, backend,
               progress, timings):  # fmt: skip
    """The metrics with the what-if set appended (``weight``: 1 elsewhere)
    and what the report says of it."""
    import pandas as pd

    if given_n is None:
        given_n = int(min(20_000, max(1_000, n // 10)))
    t0 = time.perf_counter()
    hit = gen.given(event, n=given_n, seed=seed, horizon=horizon, drift=drift, progress=progress)
    res = backtest(
        hit, strategy, fees=config.fees, slippage=config.slippage, init_cash=config.init_cash,
        backend=backend,
    )  # fmt: skip
    timings["given"] = time.perf_counter() - t0
    metrics = metrics.assign(weight=1.0)
    out = pd.concat([metrics, res.metrics], ignore_index=True)
    out["set"] = pd.Categorical(out["set"].astype(str), categories=list(SETS))
    info = {
        "event": hit.event, "n": len(hit), "probability": hit.probability, "ess": hit.ess,
        "draws": hit.draws, "tilt": hit.tilt,
    }  # fmt: skip
    return out, info


def _portfolio(strategy: Strategy, assets: list) -> dict | None:
    """The assets of a portfolio strategy and its target weights when they
    are fixed (None where the strategy sets them as it goes); None for a
    strategy that trades each asset on its own."""
    if strategy.portfolio_kind != "grouped":
        return None
    weights = None
    if isinstance(strategy, PortfolioStrategy):  # else a user's portfolio: weights unknown
        p = strategy.bind(list(assets)).kernel_params(len(assets))
        base = np.asarray(p["base"], np.float64)
        weights = base.tolist() if len(base) == len(assets) and base.sum() > 0 else None
    return {"assets": [str(a) for a in assets], "weights": weights}


def _contributions(tail: dict, assets: list) -> dict | None:
    """The per-asset contributions to the loss in the worst scenarios of
    each set (see :class:`StressReport`), None when the strategy has none."""
    if not tail:
        return None
    return {"level": TAIL_LEVEL, "assets": [str(a) for a in assets], **tail}


def _tail_contributions(res: BacktestResult, name: str) -> dict:
    """{set: mean contribution per asset over the set's worst 1 - TAIL_LEVEL
    by total return} and, for the sweep, the same per alpha."""
    out = {name: res.contribution_in_tail(TAIL_LEVEL).tolist()}
    if name == "sweep":
        alpha = res.metrics["alpha"].to_numpy()
        steps = []
        for a in np.unique(alpha):
            m = alpha == a
            sub = dataclasses.replace(
                res, metrics=res.metrics[m], contributions=res.contributions[m]
            )
            steps.append(sub.contribution_in_tail(TAIL_LEVEL).tolist())
        out["sweep_alpha"] = np.unique(alpha).tolist()
        out["sweep_steps"] = steps
    return out


def _set_sizes(n: Any, steps: Any, n_per_step: Any, tail_n: Any) -> tuple[int, int, int, int]:
    """n, steps, n_per_step (default n / 20 / steps, at least 1,000), tail_n
    (default n / 10, at least 1,000), checked."""
    n = as_int("n", n, 1)
    steps = as_int("steps", steps, 2)
    n_per_step = (
        max(1000, n // 20 // steps) if n_per_step is None else as_int("n_per_step", n_per_step, 1)
    )
    tail_n = max(1000, n // 10) if tail_n is None else as_int("tail_n", tail_n, 1)
    return n, steps, n_per_step, tail_n


def _horizon(window: int, n_assets: int, strategy: Strategy, horizon: Any) -> int:
    """The horizon asked for (default: :func:`default_horizon`), checked
    against the strategy's warm-up; a warning when it leaves fewer days to
    trade than the warm-up."""
    if horizon is None:
        horizon = default_horizon(window, strategy.warmup)
    horizon = as_int("horizon", horizon, 2)
    check_paths(strategy, horizon, n_assets)
    if horizon - strategy.warmup < strategy.warmup:
        warnings.warn(
            f"{strategy.describe()} has only {horizon - strategy.warmup} of {horizon} days left to "
            "trade after its warm-up: the results say little; consider a longer horizon",
            stacklevel=3,
        )
    return horizon


def _plans(
    gen: ScenarioGenerator, data: Any, n: int, steps: int, n_per_step: int, tail_n: int,
    tail_scale: float, sweep_from: str, sweep_to: str,
) -> dict[str, ScenarioPlan]:  # fmt: skip
    """The plans of the three sets: n from the prior; the calm -> crisis
    sweep; variations around the tail windows. The latent tables (encodings
    of the real windows) are made once here; with engine="dask" they are
    shipped to the workers."""
    start_w, end_w = data.regime(sweep_from), data.regime(sweep_to)
    tail_w = data.regime("tail")
    if len(start_w) == 0 or len(end_w) == 0 or len(tail_w) == 0:
        raise ValueError(f"the data has no {sweep_from}, {sweep_to} or tail windows to work from")
    per_tail = max(1, tail_n // len(tail_w))
    return {
        "prior": gen.prior_plan(n),
        "sweep": gen.interpolate_plan(start_w, end_w, steps, n_per_step, "linear", 1.0, False),
        "tail": gen.augment_plan(tail_w, per_tail, tail_scale),
    }


@dataclasses.dataclass
class _SetRunner:
    """Backtests the scenario sets of a stress test, locally or on Dask,
    keeps the first prior paths for the fan chart and (``correlation``) the
    correlation matrices of the first prior paths, and collects the
    per-asset contributions in the tail of each set (portfolio strategies)."""

    gen: ScenarioGenerator
    seeds: dict[str, int]
    horizon: int
    drift: str
    chunk_size: int | None
    strategy: Strategy
    config: BacktestConfig
    backend: str
    device: str
    resources: dict | None
    fan_paths: np.ndarray | None = None
    correlation: _CorrelationSample | None = None  # of the first prior paths (several assets)
    tail: dict = dataclasses.field(default_factory=dict)  # contributions in the tail, per set

    def all(self, plans: dict[str, ScenarioPlan], progress: bool, engine: str, client: Any,
            shards: int | None):  # fmt: skip
        """(metrics of every set with a ``set`` column, seconds per set,
        backends used)."""
        import pandas as pd

        bar = progress_bar(sum(p.n for p in plans.values()), progress, desc="stress test")
        frames, timings, backends = [], {}, set()
        try:
            with engine_client(engine, client) as (dask_client, threads):
                for name, plan in plans.items():
                    t0 = time.perf_counter()
                    if engine == "dask":
                        metrics, used = self.on_dask(
                            name, plan, bar.update, dask_client, shards, threads
                        )
                    else:
                        metrics, used = self.local(name, plan, bar.update)
                    timings[name] = time.perf_counter() - t0
                    backends.add(used)
                    frames.append(metrics)
        finally:
            bar.close()
        metrics = pd.concat(frames, ignore_index=True)
        metrics["set"] = pd.Categorical(metrics["set"].astype(str), categories=list(SETS))
        return metrics, timings, backends

    def local(self, name: str, plan: ScenarioPlan, progress: Any):
        source = self.gen.stream(plan, self.seeds[name], self.chunk_size, self.horizon, self.drift)
        if name == "prior":
            source = _keep_first(source, FAN_PATHS, self.correlation)
        c = self.config
        res = backtest(
            source, self.strategy, fees=c.fees, slippage=c.slippage, init_cash=c.init_cash,
            backend=self.backend, progress=progress,
        )  # fmt: skip
        if name == "prior":
            self.fan_paths = source.kept
        if res.contributions is not None:
            self.tail.update(_tail_contributions(res, name))
        return res.metrics, res.backend

    def on_dask(self, name: str, plan: ScenarioPlan, progress: Any, client: Any,
                shards: int | None, threads: int | None):  # fmt: skip
        seed, cs = self.seeds[name], self.chunk_size
        metrics, used, _, contributions = backtest_plan(
            self.gen, plan, seed, self.horizon, self.drift, self.strategy, self.config,
            self.backend, cs, client=client, shards=shards, resources=self.resources,
            device=self.device, progress=progress, num_threads=threads, contributions=True,
        )  # fmt: skip
        if name == "prior":
            first = min(plan.n, FAN_PATHS, cs or FAN_PATHS)
            self.fan_paths = self.gen.generate(
                plan, seed, 0, first, self.horizon, self.drift
            ).returns
            if self.correlation is not None:  # the same paths as the local engine's
                self.sample_correlations(plan, seed)
        if contributions is not None:
            res = BacktestResult(
                metrics, self.strategy, self.config, used, self.horizon,
                contributions=contributions,
            )  # fmt: skip
            self.tail.update(_tail_contributions(res, name))
        return metrics, used

    def sample_correlations(self, plan: ScenarioPlan, seed: int) -> None:
        """Generates the plan's first paths here, block by block, into
        ``correlation`` (the Dask engine's prior set, whose paths stay on
        the workers)."""
        block = min(self.chunk_size or CORRELATION_BLOCK, CORRELATION_BLOCK)
        for start in range(0, min(plan.n, self.correlation.k), block):
            count = min(block, self.correlation.k - start, plan.n - start)
            scen = self.gen.generate(plan, seed, start, count, self.horizon, self.drift)
            self.correlation.add(scen.returns)


class _keep_first:
    """Passes chunks through, keeping the returns of the first k paths (and
    feeding every chunk to ``sample``, a :class:`_CorrelationSample`, when given)."""

    def __init__(self, chunks, k: int, sample: _CorrelationSample | None = None):
        self.chunks, self.k, self.kept, self.sample = chunks, k, None, sample

    def __iter__(self):
        for chunk in self.chunks:
            if self.kept is None:
                self.kept = np.array(chunk.returns[: self.k])
            if self.sample is not None:
                self.sample.add(chunk.returns)
            yield chunk


class _CorrelationSample:
    """The correlation matrices of the first ``k`` windows (paths) fed to
    :meth:`add`, each over its first ``days`` days, and their equal-weight
    portfolio's daily log returns: float64 [k, assets, assets] and [k, days]
    at most, computed in blocks of CORRELATION_BLOCK windows."""

    def __init__(self, k: int, days: int):
        self.k, self.days = k, days
        self.corr: list[np.ndarray] = []
        self.ew: list[np.ndarray] = []
        self.n = 0

    def add(self, returns: np.ndarray) -> None:
        from .realism import window_correlations

        take = min(len(returns), self.k - self.n)
        for s in range(0, take, CORRELATION_BLOCK):
            block = np.asarray(returns[s : min(s + CORRELATION_BLOCK, take), : self.days])
            self.corr.append(window_correlations(block))
            self.ew.append(np.asarray(block, np.float64).mean(axis=2))
        self.n += max(take, 0)

    def summary(self) -> dict:
        """The mean correlation matrix over all, the calm and the crisis
        windows (stressvae.realism.regime_masks: the calmer half and the
        10 % most volatile by the equal-weight portfolio's realized
        volatility, among these windows), the mean over the same windows of
        each window's average pairwise correlation, and the window counts."""
        from .realism import regime_masks

        corr, ew = np.concatenate(self.corr), np.concatenate(self.ew)
        calm, crisis = regime_masks(ew[:, :, None])
        off = corr[:, ~np.eye(corr.shape[1], dtype=bool)]
        out: dict[str, Any] = {"windows": len(corr)}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an asset that never moves
            pair = np.nanmean(off, axis=1)
            for label, m in (("all", np.ones(len(corr), bool)), ("calm", calm),
                             ("crisis", crisis)):  # fmt: skip
                out[label] = np.nanmean(corr[m], axis=0).tolist()
                out[f"avg_{label}"] = float(np.nanmean(pair[m]))
                out[f"{label}_windows"] = int(m.sum())
        return out


def _realism_section(gen: ScenarioGenerator, data: Any, seed: int, realism: bool | dict,
                     timings: dict) -> str | None:  # fmt: skip
    """The realism section of the report (stressvae.realism.evaluate of the
    generator beside the classical baselines), or None when not asked for."""
    if not realism:
        return None
    from .realism import evaluate  # scipy and the baselines: only when asked for

    t0 = time.perf_counter()
    opts = dict(n=5000, n_long=1000, seed=seed, discriminator_epochs=40)
    opts.update(realism if isinstance(realism, dict) else {})
    html = evaluate({"vae": gen}, data, **opts).to_html_section()
    timings["realism"] = time.perf_counter() - t0
    return html


def _real_prices(data: Any):
    """Real prices rebuilt from the data's log returns (start 100)."""
    r = data.returns
    return 100.0 * np.exp(r.cumsum().fillna(0.0)).pipe(lambda p: p.where(r.notna()))


def _real_path(prices, horizon: int) -> dict:
    """The last 2 x horizon days of the first asset, rebased to end at 100."""
    s = prices.iloc[:, 0].dropna()
    tail = s.iloc[-2 * horizon :]
    return {
        "days": list(range(-len(tail) + 1, 1)),
        "price": (tail / tail.iloc[-1] * 100.0).round(6).tolist(),
        "end": str(tail.index[-1].date()),
        "asset": str(prices.columns[0]),
    }


def _fan(returns: np.ndarray | None, start: float) -> dict:
    """Quantiles of the prior price paths (first asset) per day, and a few paths."""
    if returns is None or len(returns) == 0:
        return {}
    r = returns[:, :, 0].astype(np.float64)
    paths = start * np.exp(np.concatenate([np.zeros((len(r), 1)), np.cumsum(r, axis=1)], axis=1))
    qs = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
    return {
        "quantiles": {f"{q:g}": np.quantile(paths, q, axis=0).round(6).tolist() for q in qs},
        "samples": paths[:12].round(6).tolist(),
        "paths": len(r),
    }


def _today(gen: ScenarioGenerator, horizon: int, seed: int, start: float) -> dict:
    """The fan of the next ``horizon`` days from the data's last window
    (:meth:`ScenarioGenerator.from_today`), first asset, and the quantiles
    of its total return."""
    scen = gen.from_today(horizon=horizon, n=FAN_PATHS, seed=seed)
    fan = _fan(scen.returns, start)
    total = np.expm1(scen.returns[:, :, 0].astype(np.float64).sum(axis=1))
    fan["total_return"] = {f"{q:g}": float(np.quantile(total, q)) for q in (0.01, 0.05, 0.5)}
    fan["asof"] = str(gen.recent_window()[1].date())
    return fan


def _latent_map(model: Any, data: Any) -> dict:
    """2-D principal components of the training windows' latent means,
    coloured by regime, and today's window."""
    mu = model.extract_features(data.train).astype(np.float64)
    today = model.extract_features(data.latest()).astype(np.float64)
    center = mu.mean(axis=0)
    _, _, vt = np.linalg.svd(mu - center, full_matrices=False)
    comp = vt[:2]
    xy = (mu - center) @ comp.T
    t_xy = (today - center) @ comp.T
    labels = data.labels[data.split == "train"]
    return {
        "x": xy[:, 0].round(5).tolist(),
        "y": xy[:, 1].round(5).tolist(),
        "regime": [str(x) for x in labels],
        "today": t_xy[0].round(5).tolist(),
        "today_regime": str(model.regime_of(data.latest())) if model.fitted else "",
        "today_end": str(data.returns.index[-1].date()),
    }


def _describe_data(data: Any) -> dict:
    return {
        "assets": list(data.asset_names),
        "window": data.window,
        "windows": len(data.windows),
        "first": str(data.returns.index[0].date()),
        "last": str(data.returns.index[-1].date()),
        "regimes": data.regime_counts(),
        "thresholds": data.thresholds.to_dict(),
    }


@dataclasses.dataclass
class StressReport:
    """The outcome of :func:`stress_test`.

    metrics: one row per path: ``set`` ("prior", "sweep", "tail"), the
        scenario tags (``step``, ``alpha`` for the sweep, ``anchor`` for the
        tail) and the metrics of stressvae.backtesting.METRICS.
    historical: the same metrics on the real history, windows of the same
        horizon, with their dates.
    correlations (several assets; else None): ``assets``, ``days`` (each
        window's first days used: the model's window, or the horizon when
        shorter), and for ``real`` (every window of the data) and
        ``generated`` (the first CORRELATION_PATHS prior scenarios): the mean
        within-window correlation matrix of the daily log returns (nested
        lists [assets][assets]) over ``all``, ``calm`` (the calmer half by the
        equal-weight portfolio's realized volatility) and ``crisis`` (its 10 %
        most volatile) windows, each set classified by its own quantiles;
        ``avg_all`` / ``avg_calm`` / ``avg_crisis``: the mean over those
        windows of each window's average pairwise correlation; the counts.
    contributions (portfolio strategies; else None): ``level`` (0.99),
        ``assets``, and per set (``prior``, ``sweep``, ``tail``, and
        ``historical`` for the real windows when the backtest gives them) the
        mean contribution of each asset (its P&L / init_cash) over the worst
        1 % of the set's scenarios by total return (the values add up to
        minus the 99 % expected shortfall); ``sweep_alpha`` / ``sweep_steps``:
        the same per step of the sweep.
    portfolio (portfolio strategies; else None): ``assets`` and the target
        ``weights`` in asset order (None where the strategy sets them as it
        goes, e.g. inverse volatility).
    """

    metrics: Any
    historical: Any
    strategy: str
    config: dict
    horizon: int
    window: int
    seed: int
    seeds: dict
    counts: dict
    steps: int
    sweep: tuple
    drift: str
    backend: str
    timings: dict
    model: dict
    data: dict
    fan: dict
    real_path: dict
    latent: dict
    anomalies: Any
    history: Any
    created: str
    realism_html: str | None = None
    correlations: dict | None = None
    contributions: dict | None = None
    portfolio: dict | None = None
    today: dict | None = None  # the fan of the next days from the data's last window
    given: dict | None = None  # the what-if set's event, probability, ESS (when asked for)

    # ------------------------------------------------------------ tables
    def quantiles(self, quantiles: tuple[float, ...] = QUANTILES):
        """Quantiles of every metric per set (rows: set, metric), and the
        historical windows as a fourth set."""
        import pandas as pd

        frames = {}
        for name, g in self.metrics.groupby("set", observed=True):
            w = _weights_of(name, g)
            if w is None:
                frames[name] = g[list(METRICS)].quantile(list(quantiles)).T
            else:  # the what-if set: weighted
                frames[name] = pd.DataFrame(
                    {q: [_wq(g[m], w, q) for m in METRICS] for q in quantiles}, index=list(METRICS)
                )
        frames["historical"] = self.historical[list(METRICS)].quantile(list(quantiles)).T
        out = pd.concat(frames, names=["set", "metric"])
        out.columns = [f"q{q * 100:g}" for q in quantiles]
        return out

    def risk(self, levels: tuple[float, ...] = (0.95, 0.99)):
        """Probability of loss and VaR / ES of the total return (positive
        numbers are losses) per set, and on the real windows."""
        import pandas as pd

        rows = {}
        groups = [*self.metrics.groupby("set", observed=True), ("historical", self.historical)]
        for name, g in groups:
            w = _weights_of(name, g)
            row = loss_risk(g["total_return"].to_numpy(np.float64), levels, weights=w)
            if w is None:
                row["median_sharpe"] = float(np.nanmedian(g["sharpe_ratio"]))
                row["median_max_drawdown"] = float(np.nanmedian(g["max_drawdown"]))
            else:
                row["median_sharpe"] = _wq(g["sharpe_ratio"], w, 0.5)
                row["median_max_drawdown"] = _wq(g["max_drawdown"], w, 0.5)
            rows[name] = row
        return pd.DataFrame(rows).T

    def sweep_curves(self, metrics: tuple[str, ...] = HEADLINE_METRICS, quantiles=QUANTILES):
        """Quantiles of metrics against alpha along the calm -> crisis sweep."""
        s = self.metrics[self.metrics["set"] == "sweep"]
        out = s.groupby("alpha")[list(metrics)].quantile(list(quantiles)).unstack()
        out.columns = [f"{m}_q{q * 100:g}" for m, q in out.columns]
        return out

    def tail_contributions(self):
        """Each asset's mean contribution (fraction of the initial cash;
        negative: a loss) over the worst 1 % of scenarios by total return, a
        DataFrame (rows: assets; columns: prior, the calm and crisis ends of
        the sweep, tail, and historical when there), or None when the
        strategy trades each asset on its own."""
        import pandas as pd

        c = self.contributions
        if c is None:
            return None
        cols = {"prior": c["prior"]}
        if c.get("sweep_steps"):
            cols[f"sweep {self.sweep[0]}"] = c["sweep_steps"][0]
            cols[f"sweep {self.sweep[1]}"] = c["sweep_steps"][-1]
        for name in ("tail", "historical"):
            if c.get(name) is not None:
                cols[name] = c[name]
        return pd.DataFrame(cols, index=pd.Index(c["assets"], name="asset"))

    def portfolio_summary(self) -> str:
        """One sentence naming a portfolio's assets and its target weights
        (e.g. for a command line's summary); "" when the strategy trades
        each asset on its own."""
        return portfolio_line(self)

    def headline(self) -> dict[str, float]:
        """Three numbers: the prior's probability of a loss, its 99 % expected
        shortfall of the total return, and the median Sharpe ratio at the calm
        and crisis ends of the sweep."""
        risk = self.risk()
        curves = self.sweep_curves(("sharpe_ratio",), (0.5,))
        return {
            "prob_loss": float(risk.loc["prior", "prob_loss"]),
            "es_99": float(risk.loc["prior", "es_99"]),
            "median_sharpe_calm": float(curves.iloc[0, 0]),
            "median_sharpe_crisis": float(curves.iloc[-1, 0]),
        }

    # ------------------------------------------------------------ figures
    def figures(self) -> dict[str, Any]:
        """matplotlib figures: fan, histograms, sweep, latent map, training
        curve (when the History was given)."""
        return _figures.figures(self)

    # ------------------------------------------------------------ output
    def to_html(self, path: str | Path) -> Path:
        """One self-contained HTML file (figures as PNG data URIs), written
        to a temporary file and renamed."""
        import matplotlib.pyplot as plt

        path = Path(path)
        imgs = {}
        for name, fig in self.figures().items():
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=110)
            plt.close(fig)
            imgs[name] = base64.b64encode(buf.getvalue()).decode("ascii")
        atomic_write(path, render_html(self, imgs).encode("utf-8"))
        return path

    def save(self, folder: str | Path) -> Path:
        """metrics.parquet, historical.parquet, anomalies.parquet and
        report.json (everything else) in ``folder``; :meth:`load` reads it."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("metrics", "historical", "anomalies"):
            buf = io.BytesIO()
            getattr(self, name).to_parquet(buf, index=False)
            atomic_write(folder / f"{name}.parquet", buf.getvalue())
        meta = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("metrics", "historical", "anomalies", "history")
        }
        meta["history"] = None if self.history is None else self.history.to_dict(orient="list")
        atomic_write(folder / "report.json", json.dumps(meta, default=_json_default).encode())
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> StressReport:
        import pandas as pd

        folder = Path(folder)
        files = ["metrics.parquet", "historical.parquet", "anomalies.parquet", "report.json"]
        missing = [f for f in files if not (folder / f).exists()]
        if missing:
            raise ValueError(
                f"{folder} is not a saved stress report (missing {', '.join(missing)})"
            )
        try:
            meta = json.loads((folder / "report.json").read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{folder / 'report.json'} is not valid JSON ({err})") from None
        if not isinstance(meta, dict):
            raise ValueError(f"{folder / 'report.json'} is not a JSON object")
        frames = {}
        for n in ("metrics", "historical", "anomalies"):
            try:
                frames[n] = pd.read_parquet(folder / f"{n}.parquet")
            except (OSError, ValueError) as err:
                raise ValueError(
                    f"{folder / f'{n}.parquet'} is not a readable table ({err})"
                ) from None
        if "set" not in frames["metrics"].columns:
            raise ValueError(f"{folder / 'metrics.parquet'} is damaged: no column 'set'")
        if "engine" in meta:  # reports saved before the backend was named so
            meta["backend"] = meta.pop("engine")
        fields = {f.name for f in dataclasses.fields(cls)} - set(frames)
        optional = {"realism_html", "correlations", "contributions", "portfolio", "today", "given"}
        missing = sorted(fields - optional - set(meta))
        unknown = sorted(set(meta) - fields)
        if missing or unknown:
            raise ValueError(
                f"{folder / 'report.json'} is damaged: "
                + "; ".join(
                    f"{what} field(s) {', '.join(names)}"
                    for what, names in (("missing", missing), ("unknown", unknown))
                    if names
                )
            )
        if not isinstance(meta["sweep"], list):
            raise ValueError(f"{folder / 'report.json'} is damaged: 'sweep' is not a list")
        hist = meta.pop("history")
        meta["sweep"] = tuple(meta["sweep"])
        return cls(**frames, **meta, history=None if hist is None else pd.DataFrame(hist))


def _weights_of(name: str, g: Any) -> np.ndarray | None:
    """The what-if set's importance weights (None for the other sets)."""
    if name != "given" or "weight" not in g.columns:
        return None
    return g["weight"].to_numpy(np.float64)


def _wq(x: Any, w: np.ndarray, q: float) -> float:
    x = np.asarray(x, np.float64)
    ok = np.isfinite(x)
    return weighted_quantile(x[ok], w[ok], q)


def _json_default(o: Any):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")

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
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
import io
import json
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .backtesting import METRICS, BacktestConfig, backtest, historical_windows
from .strategies import Strategy

__all__ = ["StressReport", "stress_test"]

SETS = ("prior", "sweep", "tail")
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
HEADLINE_METRICS = ("total_return", "sharpe_ratio", "max_drawdown")


def _seeds(seed: int) -> dict[str, int]:
    """Independent 64-bit seeds for the three sets, derived from one seed."""
    states = np.random.SeedSequence(seed).spawn(3)
    return {
        name: int(s.generate_state(1, np.uint64)[0]) for name, s in zip(SETS, states, strict=True)
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
    Everything streams in chunks: memory stays bounded for any n.
    """
    from .distributed import check_engine

    check_engine(engine, client, shards)
    from .generate import ScenarioGenerator
    from .model import top_anomalies

    if not isinstance(strategy, Strategy):
        raise ValueError(f"strategy must be a Strategy, got {type(strategy).__name__}")
    n = _int("n", n, 1)
    steps = _int("steps", steps, 2)
    n_per_step = (
        max(1000, n // 20 // steps) if n_per_step is None else _int("n_per_step", n_per_step, 1)
    )
    tail_n = max(1000, n // 10) if tail_n is None else _int("tail_n", tail_n, 1)
    window = model.window
    if horizon is None:
        horizon = default_horizon(window, strategy.warmup)
    horizon = _int("horizon", horizon, 2)
    if strategy.warmup >= horizon:
        raise ValueError(
            f"paths of {horizon} days are too short for {strategy.describe()}, which needs "
            f"{strategy.warmup} days before its first signal; pass a longer horizon"
        )
    if horizon - strategy.warmup < strategy.warmup:
        warnings.warn(
            f"{strategy.describe()} has only {horizon - strategy.warmup} of {horizon} days left to "
            "trade after its warm-up: the results say little; consider a longer horizon",
            stacklevel=2,
        )
    config = BacktestConfig(fees, slippage, init_cash)
    seeds = _seeds(seed)
    gen = ScenarioGenerator(model, data, device=device)
    start_w, end_w = data.regime(sweep_from), data.regime(sweep_to)
    tail_w = data.regime("tail")
    if len(start_w) == 0 or len(end_w) == 0 or len(tail_w) == 0:
        raise ValueError(f"the data has no {sweep_from}, {sweep_to} or tail windows to work from")
    per_tail = max(1, tail_n // len(tail_w))
    _, horizon, cs = gen._check_common(0, drift, horizon, chunk_size)
    phi = gen.phi_of(regime_halflife)
    # the latent tables of the three sets (encodings of the real windows),
    # made once here; with engine="dask" they are shipped to the workers
    plans = {
        "prior": gen._prior_plan(n),
        "sweep": gen.interpolate_plan(start_w, end_w, steps, n_per_step, "linear", 1.0, False),
        "tail": gen.augment_plan(tail_w, per_tail, tail_scale),
    }
    for p in plans.values():
        p.phi = phi
    plan = {k: (p.n,) for k, p in plans.items()}
    bar = _bar(sum(p.n for p in plans.values()), progress)
    frames, timings, backends = [], {}, set()
    fan_paths = None
    try:
        with _engine_client(engine, client) as (dask_client, threads):
            for name, p in plans.items():
                t0 = time.perf_counter()
                if engine == "dask":
                    from .distributed import backtest_plan

                    metrics, used, _ = backtest_plan(
                        gen, p, seeds[name], horizon, drift, strategy, config, backend, cs,
                        client=dask_client, shards=shards, resources=resources, device=device,
                        progress=bar.update, num_threads=threads,
                    )  # fmt: skip
                    if name == "prior":
                        first = min(p.n, 2000, cs or 2000)
                        fan_paths = gen._run(p, seeds[name], 0, first, horizon, drift, None).returns
                else:
                    source = gen._chunks(p, seeds[name], cs, horizon, drift)
                    if name == "prior":
                        source = _keep_first(source, 2000)
                    res = backtest(
                        source, strategy, fees=fees, slippage=slippage, init_cash=init_cash,
                        backend=backend, progress=bar.update,
                    )  # fmt: skip
                    if name == "prior":
                        fan_paths = source.kept
                    metrics, used = res.metrics, res.backend
                timings[name] = time.perf_counter() - t0
                backends.add(used)
                frames.append(metrics)
    finally:
        bar.close()
    import pandas as pd

    metrics = pd.concat(frames, ignore_index=True)
    metrics["set"] = pd.Categorical(metrics["set"].astype(str), categories=list(SETS))
    t0 = time.perf_counter()
    real_prices = _real_prices(data)
    hist = historical_windows(
        real_prices, strategy, horizon, fees=fees, slippage=slippage, init_cash=init_cash,
        backend=backend,
    )  # fmt: skip
    timings["historical"] = time.perf_counter() - t0
    latent = _latent_map(model, data)
    anomalies = top_anomalies(model, data, top=10)
    realism_html = None
    if realism:
        from .realism import evaluate

        t0 = time.perf_counter()
        opts = dict(n=5000, n_long=1000, seed=seed, discriminator_epochs=40)
        opts.update(realism if isinstance(realism, dict) else {})
        rep = evaluate({"vae": gen}, data, **opts)
        realism_html = rep.to_html_section()
        timings["realism"] = time.perf_counter() - t0
    return StressReport(
        metrics=metrics,
        historical=hist,
        strategy=strategy.describe(),
        config=dataclasses.asdict(config),
        horizon=horizon,
        window=window,
        seed=seed,
        seeds=seeds,
        counts={k: int(v[0]) for k, v in plan.items()},
        steps=steps,
        sweep=(sweep_from, sweep_to),
        drift=drift,
        backend="+".join(sorted(backends)),
        timings=timings,
        model=dict(model.config),
        data=_describe_data(data),
        fan=_fan(fan_paths, config.start_price),
        real_path=_real_path(real_prices, horizon),
        latent=latent,
        anomalies=anomalies,
        history=None if history is None else history.to_frame().reset_index(),
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        realism_html=realism_html,
    )


def _int(name: str, value: Any, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    return int(value)


@contextlib.contextmanager
def _engine_client(engine: str, client: Any):
    if engine != "dask":
        yield None, None
        return
    from .distributed import _client

    with _client(client) as pair:
        yield pair


class _keep_first:
    """Passes chunks through, keeping the returns of the first k paths."""

    def __init__(self, chunks, k: int):
        self.chunks, self.k, self.kept = chunks, k, None

    def __iter__(self):
        for chunk in self.chunks:
            if self.kept is None:
                self.kept = np.array(chunk.returns[: self.k])
            yield chunk


def _bar(total: int, enabled: bool, unit: str = "path", desc: str = "stress test"):
    """A tqdm bar, or one that does nothing when ``enabled`` is false."""
    if enabled:
        from tqdm.auto import tqdm

        return tqdm(total=total, unit=unit, unit_scale=True, desc=desc, leave=False)

    class _Quiet:
        def update(self, _n):
            pass

        def close(self):
            pass

    return _Quiet()


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

    # ------------------------------------------------------------ tables
    def quantiles(self, quantiles: tuple[float, ...] = QUANTILES):
        """Quantiles of every metric per set (rows: set, metric), and the
        historical windows as a fourth set."""
        import pandas as pd

        frames = {}
        for name, g in self.metrics.groupby("set", observed=True):
            frames[name] = g[list(METRICS)].quantile(list(quantiles)).T
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
            r = g["total_return"].to_numpy(np.float64)
            r = r[np.isfinite(r)]
            row = {"paths": len(r), "prob_loss": float(np.mean(r < 0))}
            for q in levels:
                cut = float(np.quantile(r, 1 - q))
                row[f"var_{q * 100:g}"] = -cut
                row[f"es_{q * 100:g}"] = -float(r[r <= cut].mean())
            row["median_sharpe"] = float(np.nanmedian(g["sharpe_ratio"]))
            row["median_max_drawdown"] = float(np.nanmedian(g["max_drawdown"]))
            rows[name] = row
        return pd.DataFrame(rows).T

    def sweep_curves(self, metrics: tuple[str, ...] = HEADLINE_METRICS, quantiles=QUANTILES):
        """Quantiles of metrics against alpha along the calm -> crisis sweep."""
        s = self.metrics[self.metrics["set"] == "sweep"]
        out = s.groupby("alpha")[list(metrics)].quantile(list(quantiles)).unstack()
        out.columns = [f"{m}_q{q * 100:g}" for m, q in out.columns]
        return out

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
        import matplotlib

        matplotlib.use("Agg", force=False)
        figs = {"fan": self._fig_fan(), "histograms": self._fig_hist(), "sweep": self._fig_sweep()}
        figs["latent"] = self._fig_latent()
        if self.history is not None:
            figs["training"] = self._fig_training()
        return figs

    def _fig_fan(self):
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(9, 4.2))
        real = self.real_path
        ax.plot(
            real["days"],
            real["price"],
            color="black",
            lw=1.2,
            label=f"real {real['asset']} to {real['end']}",
        )
        if self.fan:
            q = {k: np.asarray(v) for k, v in self.fan["quantiles"].items()}
            days = np.arange(len(q["0.5"]))
            ax.fill_between(
                days, q["0.01"], q["0.99"], color="tab:blue", alpha=0.12, label="1-99 %"
            )
            ax.fill_between(days, q["0.05"], q["0.95"], color="tab:blue", alpha=0.2, label="5-95 %")
            ax.fill_between(
                days, q["0.25"], q["0.75"], color="tab:blue", alpha=0.3, label="25-75 %"
            )
            ax.plot(days, q["0.5"], color="tab:blue", lw=1.5, label="median")
            for p in self.fan["samples"][:6]:
                ax.plot(days, p, color="tab:blue", lw=0.5, alpha=0.5)
        ax.axvline(0, color="grey", ls=":")
        ax.set_xlabel("trading days (0 = start of the scenarios)")
        ax.set_ylabel("price (rebased to 100)")
        ax.set_title(
            f"Prior scenarios, {self.fan.get('paths', 0):,} sampled paths, and the real history"
        )
        ax.legend(loc="upper left", fontsize=8, ncol=2)
        fig.tight_layout()
        return fig

    def _fig_hist(self):
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
        prior = self.metrics[self.metrics["set"] == "prior"]
        labels = {
            "total_return": "total return",
            "sharpe_ratio": "Sharpe ratio (252 d)",
            "max_drawdown": "max drawdown",
        }
        for ax, m in zip(axes, HEADLINE_METRICS, strict=True):
            x = prior[m].to_numpy(np.float64)
            x = x[np.isfinite(x)]
            lo, hi = np.quantile(x, [0.005, 0.995]) if len(x) else (0, 1)
            ax.hist(
                np.clip(x, lo, hi),
                bins=80,
                color="tab:blue",
                alpha=0.7,
                density=True,
                label="scenarios",
            )
            h = self.historical[m].to_numpy(np.float64)
            h = h[np.isfinite(h)]
            if len(h):
                ax.hist(
                    np.clip(h, lo, hi),
                    bins=20,
                    histtype="step",
                    color="black",
                    density=True,
                    label="real windows",
                )
                ax.axvline(np.median(h), color="black", ls="--", lw=1, label="real median")
            ax.set_title(labels[m])
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        return fig

    def _fig_sweep(self):
        import matplotlib.pyplot as plt

        curves = self.sweep_curves()
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
        alpha = curves.index.to_numpy()
        for ax, m in zip(axes, HEADLINE_METRICS, strict=True):
            ax.fill_between(
                alpha,
                curves[f"{m}_q5"],
                curves[f"{m}_q95"],
                alpha=0.2,
                color="tab:red",
                label="5-95 %",
            )
            ax.fill_between(
                alpha,
                curves[f"{m}_q25"],
                curves[f"{m}_q75"],
                alpha=0.3,
                color="tab:red",
                label="25-75 %",
            )
            ax.plot(alpha, curves[f"{m}_q50"], color="tab:red", label="median")
            ax.set_xlabel(f"alpha: 0 = {self.sweep[0]}, 1 = {self.sweep[1]}")
            ax.set_title(m.replace("_", " "))
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        return fig

    def _fig_latent(self):
        import matplotlib.pyplot as plt

        lat = self.latent
        fig, ax = plt.subplots(figsize=(6, 4.5))
        x, y, reg = np.asarray(lat["x"]), np.asarray(lat["y"]), np.asarray(lat["regime"])
        for name, color in (("calm", "tab:green"), ("normal", "tab:grey"), ("crisis", "tab:red")):
            m = reg == name
            ax.scatter(x[m], y[m], s=4, alpha=0.5, color=color, label=f"{name} ({m.sum()})")
        ax.scatter(*lat["today"], marker="*", s=250, color="gold", edgecolor="black", zorder=5,
                   label=f"today ({lat['today_end']}: {lat['today_regime']})")  # fmt: skip
        ax.set_xlabel("latent PC 1")
        ax.set_ylabel("latent PC 2")
        ax.set_title("Training windows in latent space")
        ax.legend(fontsize=8, markerscale=1)
        fig.tight_layout()
        return fig

    def _fig_training(self):
        import matplotlib.pyplot as plt

        h = self.history
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(h["epoch"], h["train_loss"], label="train")
        ax.plot(h["epoch"], h["val_loss"], label="validation")
        both = np.concatenate([h["train_loss"], h["val_loss"]])
        lo, hi = np.nanmin(both), np.nanquantile(both, 0.95)
        ax.set_ylim(lo - 0.05 * (hi - lo), hi)  # the first epochs would flatten the rest
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss (nats / window)")
        ax.set_title("Training curve")
        ax.legend()
        fig.tight_layout()
        return fig

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
        html = _render_html(self, imgs)
        _atomic_write(path, html.encode("utf-8"))
        return path

    def save(self, folder: str | Path) -> Path:
        """metrics.parquet, historical.parquet, anomalies.parquet and
        report.json (everything else) in ``folder``; :meth:`load` reads it."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("metrics", "historical", "anomalies"):
            buf = io.BytesIO()
            getattr(self, name).to_parquet(buf, index=False)
            _atomic_write(folder / f"{name}.parquet", buf.getvalue())
        meta = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("metrics", "historical", "anomalies", "history")
        }
        meta["history"] = None if self.history is None else self.history.to_dict(orient="list")
        _atomic_write(folder / "report.json", json.dumps(meta, default=_json_default).encode())
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
        meta = json.loads((folder / "report.json").read_text())
        frames = {
            n: pd.read_parquet(folder / f"{n}.parquet")
            for n in ("metrics", "historical", "anomalies")
        }
        if "engine" in meta:  # reports saved before the backend was named so
            meta["backend"] = meta.pop("engine")
        hist = meta.pop("history")
        meta["sweep"] = tuple(meta["sweep"])
        return cls(**frames, **meta, history=None if hist is None else pd.DataFrame(hist))


def _json_default(o: Any):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fmt_pct(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:+.1%}"


def _render_html(rep: StressReport, imgs: dict[str, str]) -> str:
    import html as h

    head = rep.headline()
    risk = rep.risk()
    q = rep.quantiles()
    cfg = rep.config
    chained = rep.horizon > rep.window
    recurrent = rep.model.get("decoder", "mlp") == "gru"
    if recurrent:
        horizon_note = (
            f"{rep.horizon} trading days per path, rolled out day by day by the recurrent "
            f"decoder (trained on {rep.window}-day windows) from one latent draw per path: "
            "each day's volatility follows from the days before it."
        )
    elif chained:
        horizon_note = (
            f"{rep.horizon} trading days per path: {math.ceil(rep.horizon / rep.window)} "
            f"generated windows of {rep.window} days chained, each drawn around the same latent "
            "point (the regime persists; the days at the seams are independent)."
        )
    else:
        horizon_note = f"{rep.horizon} trading days per path: one generated window of the model."

    def table(df, pct_cols=(), digits=3, int_cols=("paths", "rank")):
        fmt = {c: (lambda v: "" if v != v else f"{v:.1%}") for c in pct_cols}
        fmt.update({c: (lambda v: f"{int(v):,}") for c in int_cols if c in df.columns})
        return df.to_html(
            float_format=lambda v: f"{v:.{digits}f}", formatters=fmt, border=0, classes="t"
        )

    def img(name, alt):
        return (
            f'<img alt="{h.escape(alt)}" src="data:image/png;base64,{imgs[name]}">'
            if name in imgs
            else ""
        )

    anomalies = rep.anomalies.copy()
    for c in ("start", "end"):
        anomalies[c] = anomalies[c].astype(str).str[:10]
    counts = ", ".join(f"{k} {v:,}" for k, v in rep.counts.items())
    timings = ", ".join(f"{k} {v:.1f} s" for k, v in rep.timings.items())
    css = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1180px;
margin:24px auto;padding:0 16px;color:#1d2330}
h1{font-size:1.6em;margin-bottom:0}.sub{color:#5a6372;margin-top:4px}
.cards{display:flex;gap:14px;flex-wrap:wrap;margin:18px 0}
.card{flex:1;min-width:220px;border:1px solid #d9dee7;border-radius:8px;padding:12px 16px;
background:#f7f9fc}
.card b{display:block;font-size:1.7em;margin-top:4px}
img{max-width:100%;border:1px solid #e3e7ee;border-radius:6px;margin:8px 0}
table.t{border-collapse:collapse;font-size:0.86em;margin:8px 0}
table.t th,table.t td{padding:3px 9px;border-bottom:1px solid #e6e9ef;text-align:right}
table.t th{background:#f2f4f8}
.note{color:#4b5361;font-size:0.92em}
"""
    d, mdl = rep.data, rep.model
    sharpe = f"{head['median_sharpe_calm']:.2f} to {head['median_sharpe_crisis']:.2f}"
    training = "<h2>Training</h2>" + img("training", "training curve") if "training" in imgs else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>stressvae report: {h.escape(rep.strategy)}</title><style>{css}</style></head>
<body>
<h1>Stress test: {h.escape(rep.strategy)}</h1>
<p class="sub">{", ".join(d["assets"])} daily prices {d["first"]} .. {d["last"]};
scenarios from a ScenarioVAE ({mdl["window"]}-day windows, latent {mdl["latent_dim"]},
{mdl["likelihood"]} likelihood, {mdl.get("decoder", "mlp")} decoder); created {rep.created}</p>
<div class="cards">
<div class="card">Probability of a loss over {rep.horizon} days
<b>{head["prob_loss"]:.1%}</b></div>
<div class="card">Expected shortfall 99 % (total return)<b>{_fmt_pct(-head["es_99"])}</b></div>
<div class="card">Median Sharpe, calm to crisis<b>{sharpe}</b></div>
</div>
<h2>How this was made</h2>
<p class="note">Paths: {counts} ({rep.backend} backtest backend). {h.escape(horizon_note)}
Prices start at {cfg["start_price"]:g}; fees {cfg["fees"]:.4%} and slippage
{cfg["slippage"]:.4%} of traded value; initial cash {cfg["init_cash"]:g}. Ratios are
annualized with {cfg["year_days"]} trading days a year. Sweep: {rep.steps} steps from the
{rep.sweep[0]} windows (alpha 0) to the {rep.sweep[1]} windows (alpha 1). Tail: variations
around the real tail windows (worst by return or drawdown). Real windows: the strategy on the
real history cut into {rep.horizon}-day windows. Drift: {rep.drift}. Seed {rep.seed}.
Time: {timings}.</p>
<h2>Scenarios and the real history</h2>{img("fan", "fan chart")}
<h2>Outcomes: scenarios vs real windows</h2>{img("histograms", "metric histograms")}
<h3>Risk of the total return (positive VaR / ES are losses)</h3>
{table(risk, pct_cols=("prob_loss", "var_95", "es_95", "var_99", "es_99", "median_max_drawdown"))}
<h2>From calm to crisis</h2>{img("sweep", "calm to crisis curves")}
<h2>Quantiles of every metric</h2>{table(q)}
<h2>Where the market stands</h2>{img("latent", "latent map")}
<p class="note">Today's window (ending {rep.latent["today_end"]}) reads as
<b>{h.escape(rep.latent["today_regime"])}</b>.</p>
<h2>The most anomalous real windows</h2>{table(anomalies, digits=2)}
{rep.realism_html or ""}
{training}
<p class="note">stressvae; metrics: total and annualized return, annualized volatility,
Sharpe, Sortino, max drawdown, Calmar, trade count, win rate, worst day. Paths with no trade
have no Sharpe / Sortino / Calmar (NaN).</p>
</body></html>
"""

"""The figures of a stress report (matplotlib, imported when drawn)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .backtesting import HEADLINE_METRICS


def figures(rep: Any) -> dict[str, Any]:
    """matplotlib figures: fan, histograms, sweep, latent map, training
    curve (when the report holds the training History); for several assets
    the correlation heatmaps and, for a portfolio, the contributions."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    figs = {"fan": fan_figure(rep), "histograms": hist_figure(rep), "sweep": sweep_figure(rep)}
    figs["latent"] = latent_figure(rep)
    if rep.history is not None:
        figs["training"] = training_figure(rep)
    if rep.correlations is not None:
        figs["correlations"] = correlation_figure(rep)
    if rep.contributions is not None:
        figs["contributions"] = contribution_figure(rep)
    return figs


def fan_figure(rep: Any):
    import matplotlib.pyplot as plt

    today = getattr(rep, "today", None)
    if today:
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 4.2), sharey=True)
        _fan_panel(ax2, rep.real_path, today, "tab:red")
        days = len(today["quantiles"]["0.5"]) - 1
        ax2.set_title(f"Next {days} days from today ({today['asof']})")
    else:
        fig, ax = plt.subplots(figsize=(9, 4.2))
    real = rep.real_path
    ax.plot(
        real["days"],
        real["price"],
        color="black",
        lw=1.2,
        label=f"real {real['asset']} to {real['end']}",
    )
    if rep.fan:
        q = {k: np.asarray(v) for k, v in rep.fan["quantiles"].items()}
        days = np.arange(len(q["0.5"]))
        ax.fill_between(days, q["0.01"], q["0.99"], color="tab:blue", alpha=0.12, label="1-99 %")
        ax.fill_between(days, q["0.05"], q["0.95"], color="tab:blue", alpha=0.2, label="5-95 %")
        ax.fill_between(days, q["0.25"], q["0.75"], color="tab:blue", alpha=0.3, label="25-75 %")
        ax.plot(days, q["0.5"], color="tab:blue", lw=1.5, label="median")
        for p in rep.fan["samples"][:6]:
            ax.plot(days, p, color="tab:blue", lw=0.5, alpha=0.5)
    ax.axvline(0, color="grey", ls=":")
    ax.set_xlabel("trading days (0 = start of the scenarios)")
    ax.set_ylabel("price (rebased to 100)")
    ax.set_title(
        f"Prior scenarios, {rep.fan.get('paths', 0):,} sampled paths, and the real history"
    )
    ax.legend(loc="upper left", fontsize=8, ncol=2)
    fig.tight_layout()
    return fig


def _fan_panel(ax: Any, real: dict, fan: dict, color: str) -> None:
    """The real history to today and a fan of paths from today on."""
    ax.plot(real["days"], real["price"], color="black", lw=1.2, label=f"real {real['asset']}")
    q = {k: np.asarray(v) for k, v in fan["quantiles"].items()}
    days = np.arange(len(q["0.5"]))
    ax.fill_between(days, q["0.01"], q["0.99"], color=color, alpha=0.12, label="1-99 %")
    ax.fill_between(days, q["0.05"], q["0.95"], color=color, alpha=0.2, label="5-95 %")
    ax.fill_between(days, q["0.25"], q["0.75"], color=color, alpha=0.3, label="25-75 %")
    ax.plot(days, q["0.5"], color=color, lw=1.5, label="median")
    ax.axvline(0, color="grey", ls=":")
    ax.set_xlabel("trading days (0 = today)")
    ax.legend(loc="upper left", fontsize=8, ncol=2)


def hist_figure(rep: Any):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    prior = rep.metrics[rep.metrics["set"] == "prior"]
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
        h = rep.historical[m].to_numpy(np.float64)
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


def sweep_figure(rep: Any):
    import matplotlib.pyplot as plt

    curves = rep.sweep_curves()
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
        ax.set_xlabel(f"alpha: 0 = {rep.sweep[0]}, 1 = {rep.sweep[1]}")
        ax.set_title(m.replace("_", " "))
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def latent_figure(rep: Any):
    import matplotlib.pyplot as plt

    lat = rep.latent
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


def training_figure(rep: Any):
    import matplotlib.pyplot as plt

    h = rep.history
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


def correlation_figure(rep: Any):
    """Mean within-window correlation matrices, real beside generated, calm
    windows above crisis windows, on one diverging scale -1..1."""
    import matplotlib.pyplot as plt

    c = rep.correlations
    names = c["assets"]
    a = len(names)
    side = min(3.6 + 0.2 * a, 7.5)
    fig, axes = plt.subplots(2, 2, figsize=(2 * side + 1.2, 2 * side + 0.6), squeeze=False,
                             layout="constrained")  # fmt: skip
    font = 9 if a <= 10 else 7
    image = None
    for row, regime in enumerate(("calm", "crisis")):
        for col, source in enumerate(("real", "generated")):
            ax, part = axes[row, col], c[source]
            image = ax.imshow(np.asarray(part[regime], np.float64), cmap="RdBu_r", vmin=-1,
                              vmax=1, interpolation="nearest")  # fmt: skip
            ax.set_xticks(range(a), names, rotation=90, fontsize=font)
            ax.set_yticks(range(a), names, fontsize=font)
            what = "real windows" if source == "real" else "generated (prior)"
            ax.set_title(
                f"{what}, {regime}: avg pairwise {part[f'avg_{regime}']:.2f}\n"
                f"({part[f'{regime}_windows']:,} of {part['windows']:,} windows)",
                fontsize=10,
            )
    fig.colorbar(image, ax=axes, shrink=0.6, label="correlation of daily log returns")
    fig.suptitle(
        f"Mean within-window correlation ({c['days']}-day windows): calm = the calmer half, "
        "crisis = the 10 % most volatile (equal-weight portfolio)",
        fontsize=11,
    )
    return fig


def contribution_figure(rep: Any):
    """Each asset's mean contribution to the return in the worst 1 % of the
    prior scenarios (and of the real windows, when known), as bars."""
    import matplotlib.pyplot as plt

    c = rep.contributions
    names = c["assets"]
    a = len(names)
    bars = [("prior scenarios", c["prior"], "tab:blue")]
    if c.get("historical") is not None:
        bars.append(("real windows", c["historical"], "black"))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * a * len(bars) + 2), 3.8))
    x = np.arange(a)
    width = 0.8 / len(bars)
    for i, (label, values, color) in enumerate(bars):
        v = np.asarray(values, np.float64)
        ax.bar(x + (i - (len(bars) - 1) / 2) * width, v, width, color=color, alpha=0.75,
               label=f"{label} (sum {v.sum():+.1%})")  # fmt: skip
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(x, names, rotation=90 if a > 8 else 0)
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:.1%}")
    ax.set_ylabel("share of initial cash")
    share = (1 - c["level"]) * 100
    ax.set_title(f"Contribution of each asset to the return in the worst {share:g} % of paths")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def var_backtest_figure(vb: Any, level: float = 0.99, horizon: int = 1):
    """A VaR backtest (:class:`stressvae.risk.VarBacktest`): one panel per
    model, the realized portfolio returns of each forecast day (grey) against
    minus the model's VaR at ``level`` and ``horizon`` (the line), the
    exceptions (returns below it) marked in red; the count in each panel's
    title beside the expected one."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    fc = vb.forecasts
    ret = fc[f"return_{horizon}d"]
    models = list(vb.models)
    fig, axes = plt.subplots(
        len(models), 1, figsize=(10, 1.9 * len(models) + 0.8), sharex=True, sharey=True,
        squeeze=False,
    )  # fmt: skip
    pct = f"{100 * level:g}"
    for ax, m in zip(axes[:, 0], models, strict=True):
        var = fc[f"{m}_var{pct}_{horizon}d"]
        on = var.notna() & ret.notna()
        x, v = ret[on], var[on]
        hit = x < -v
        ax.vlines(x.index, 0, x.to_numpy(), color="grey", lw=0.6, alpha=0.7)
        ax.plot(v.index, -v.to_numpy(), color="tab:blue", lw=1.0, label=f"-VaR {pct} %")
        ax.scatter(x.index[hit], x[hit].to_numpy(), color="red", s=12, zorder=3,
                   label="exception")  # fmt: skip
        ax.axhline(0, color="black", lw=0.5)
        expected = len(x) * (1 - level)
        ax.set_title(
            f"{m}: {int(hit.sum())} exceptions in {len(x)} forecasts (expected {expected:.1f})",
            fontsize=9, loc="left",
        )  # fmt: skip
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.legend(loc="lower left", fontsize=7, ncol=2)
    what = "1-day" if horizon == 1 else f"{horizon}-day (non-overlapping)"
    fig.suptitle(
        f"{what} portfolio returns against each model's {pct} % VaR, {vb.start}..{vb.end}",
        fontsize=10,
    )
    fig.tight_layout()
    return fig

"""The figures of a stress report (matplotlib, imported when drawn)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .backtesting import HEADLINE_METRICS


def figures(rep: Any) -> dict[str, Any]:
    """matplotlib figures: fan, histograms, sweep, latent map, training
    curve (when the report holds the training History)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    figs = {"fan": fan_figure(rep), "histograms": hist_figure(rep), "sweep": sweep_figure(rep)}
    figs["latent"] = latent_figure(rep)
    if rep.history is not None:
        figs["training"] = training_figure(rep)
    return figs


def fan_figure(rep: Any):
    import matplotlib.pyplot as plt

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

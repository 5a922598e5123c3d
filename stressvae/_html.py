"""The stress report as one self-contained HTML page."""

from __future__ import annotations

import math
from typing import Any


def fmt_pct(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:+.1%}"


def portfolio_line(rep: Any) -> str:
    """One sentence naming a portfolio's assets and the strategy's target
    weights ("" for a strategy that trades each asset on its own)."""
    p = rep.portfolio
    if p is None:
        return ""
    assets = p["assets"]
    if p["weights"] is None:
        return (
            f"Portfolio of {len(assets)} assets ({', '.join(assets)}), weights set by "
            f"{rep.strategy} as it goes."
        )
    w = ", ".join(f"{a} {x:.1%}" for a, x in zip(assets, p["weights"], strict=True))
    return f"Portfolio of {len(assets)} assets, target weights: {w} ({rep.strategy})."


def correlation_section(rep: Any, img) -> str:
    """The heatmaps of the real and generated correlation matrices, and a
    table of the average pairwise correlations (several assets only)."""
    import html as h

    import pandas as pd

    c = rep.correlations
    if c is None:
        return ""
    table = pd.DataFrame(
        {
            src: {k: c[src][f"avg_{k}"] for k in ("all", "calm", "crisis")}
            for src in ("real", "generated")
        }
    ).T
    table["crisis - calm"] = table["crisis"] - table["calm"]
    gen_n = c["generated"]["windows"]
    return f"""<h2>How the assets move together</h2>
{img("correlations", "correlation heatmaps, real and generated, calm and crisis")}
<h3>Average pairwise correlation within a window</h3>
{table.to_html(float_format=lambda v: f"{v:.3f}", border=0, classes="t")}
<p class="note">The mean over windows of each window's Pearson correlation of the
daily log returns ({c["days"]} days), real: every window of the data
({c["real"]["windows"]:,}); generated: the first {gen_n:,} prior scenarios. Calm: the calmer
half of the windows by the realized volatility of the equal-weight portfolio; crisis: its 10 %
most volatile; each set by its own quantiles. Assets: {h.escape(", ".join(c["assets"]))}.</p>
"""


def given_note(rep: Any) -> str:
    """What the what-if set ("given" in the tables) is."""
    import html as h

    g = getattr(rep, "given", None)
    if not g:
        return ""
    return (
        f'<p class="note">What if: the set "given" holds {g["n"]:,} scenarios in which '
        f"<b>{h.escape(g['event'])}</b> happens, drawn by importance sampling ({g['draws']:,} "
        f"proposal draws, {h.escape(g['tilt'])} tilted) and weighted by their likelihood "
        f"ratios (effective sample size {g['ess']:,.0f}); its rows in the tables are weighted. "
        f"The event's probability under the model: {g['probability']:.3g}.</p>"
    )


def today_note(rep: Any) -> str:
    """The from-today fan's caption: the quantiles of the next days' return."""
    import html as h

    today = getattr(rep, "today", None)
    if not today or "total_return" not in today:
        return ""
    tr, days = today["total_return"], len(today["quantiles"]["0.5"]) - 1
    return (
        f'<p class="note">Right: {today["paths"]:,} paths of the next {days} days from '
        f"the last window of the data (to {h.escape(today['asof'])}): the model's posterior of "
        f"today's regime (a recurrent decoder also reads the last real days). "
        f"{h.escape(rep.real_path['asset'])}'s return over them: median {tr['0.5']:+.1%}, "
        f"5 % quantile {tr['0.05']:+.1%}, 1 % quantile {tr['0.01']:+.1%}.</p>"
    )


def contribution_section(rep: Any, img) -> str:
    """Bars and a table of each asset's contribution to the loss in the
    worst 1 % of the scenarios (portfolio strategies only)."""
    t = rep.tail_contributions()
    if t is None:
        return ""
    t.loc["total"] = t.sum()
    t.index.name = None
    share = (1 - rep.contributions["level"]) * 100
    fmt = {col: (lambda v: "" if v != v else f"{v:+.2%}") for col in t.columns}
    return f"""<h2>Where the loss in the tail comes from</h2>
{img("contributions", "per-asset contributions in the worst scenarios")}
<h3>Mean contribution per asset in the worst {share:g} % of paths (share of initial cash)</h3>
{t.to_html(formatters=fmt, border=0, classes="t")}
<p class="note">Each asset's profit or loss over the path (the price moves of its holdings,
less its fees and slippage) divided by the initial cash, averaged over the paths at or below
the {share:g} % quantile of the set's total return; the total is minus the expected shortfall
at {100 - share:g} %.</p>
"""


def render_html(rep: Any, imgs: dict[str, str]) -> str:
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
{f'<p class="sub">{h.escape(portfolio_line(rep))}</p>' if rep.portfolio else ""}
<div class="cards">
<div class="card">Probability of a loss over {rep.horizon} days
<b>{head["prob_loss"]:.1%}</b></div>
<div class="card">Expected shortfall 99 % (total return)<b>{fmt_pct(-head["es_99"])}</b></div>
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
<h2>Scenarios and the real history</h2>{img("fan", "fan chart")}{today_note(rep)}{given_note(rep)}
<h2>Outcomes: scenarios vs real windows</h2>{img("histograms", "metric histograms")}
<h3>Risk of the total return (positive VaR / ES are losses)</h3>
{table(risk, pct_cols=("prob_loss", "var_95", "es_95", "var_99", "es_99", "median_max_drawdown"))}
{contribution_section(rep, img)}{correlation_section(rep, img)}
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

"""Realism on 20 US stocks: the baselines (and a trained VAE) against real windows.

    python benchmarks/realism_stocks.py                                 # the baselines only
    python benchmarks/realism_stocks.py --model stocks-w64.safetensors  # plus the VAE row
    python benchmarks/realism_stocks.py --no-discriminator              # minutes faster

Data: ``load_dataset("sp500_stocks")`` (AAPL, AMD, BAC, ..., XOM; daily,
1990-2022), window 64, split as in benchmarks/realism_sp500.py: the
validation (out-of-period test) period starts 2013-01-01; inside the years
before, one year in five is held out and purged (``holdout_every=5,
holdout_offset=2``: the in-distribution holdout). ``--model`` loads a
ScenarioVAE trained on that same split (``evaluate`` refuses one whose
training dates overlap the references); its row is named ``vae``. The
Gaussian, stationary-bootstrap and GJR-GARCH-t baselines are fitted to the
same training windows. The many-asset rows (co-movement, equal-weight
portfolio, joint crashes, the discriminator on the portfolio's windows)
come first in the printout, then the whole table.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

MANY = [
    ("co-movement", "avg_corr"),
    ("co-movement", "avg_corr_calm"),
    ("co-movement", "avg_corr_crisis"),
    ("co-movement", "avg_corr_rise"),
    ("co-movement", "corr_matrix_error"),
    ("co-movement", "corr_matrix_mae"),
    ("co-movement", "joint_crash_freq"),
    ("portfolio", "ew_vol_q05_annual"),
    ("portfolio", "ew_vol_q50_annual"),
    ("portfolio", "ew_vol_q95_annual"),
    ("portfolio", "ew_max_drawdown_q01"),
    ("portfolio", "ew_total_return_q05"),
    ("discriminator", "ew_score_vs_holdout"),
    ("discriminator", "score_vs_holdout"),
]


def stock_data(window: int = 64):
    import stressvae as sv

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # RRC's 1990 price jump: reported by load_dataset
        return sv.WindowData.from_prices(
            sv.load_dataset("sp500_stocks"),
            window=window,
            split_date="2013-01-01",
            holdout_every=5,
            holdout_offset=2,
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--window", type=int, default=64)
    p.add_argument("--model", default=None, help="a ScenarioVAE .safetensors trained on this split")
    p.add_argument("--n", type=int, default=10_000, help="windows per generator")
    p.add_argument("--n-long", type=int, default=2_000, help="252-day paths per generator")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-discriminator", action="store_true")
    p.add_argument("--discriminator-epochs", type=int, default=60)
    p.add_argument("--html", default=None, help="also write the report section as a page")
    args = p.parse_args(argv)

    import pandas as pd

    import stressvae as sv
    from stressvae.realism import evaluate

    data = stock_data(args.window)
    print(data, flush=True)
    gens = {}
    if args.model:
        model = sv.ScenarioVAE.load(args.model)
        print(f"vae: {model!r}", flush=True)
        gens["vae"] = sv.ScenarioGenerator(model, data, device="cpu")
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # GARCH fits near the boundary
        rep = evaluate(
            gens or {"gaussian": sv.GaussianBaseline(data)},
            data,
            n=args.n,
            n_long=args.n_long,
            seed=args.seed,
            discriminator=not args.no_discriminator,
            discriminator_epochs=args.discriminator_epochs,
        )
    print(f"evaluated in {time.perf_counter() - t0:.1f} s", flush=True)
    if args.html:
        print(f"wrote {rep.to_html(args.html)}")
    table = rep.table
    with pd.option_context("display.width", 220, "display.max_rows", 200):
        print()
        for note in rep.notes:
            print(f"- {note}")
        print()
        rows = [r for r in MANY if r in table.index]
        fmt = _fmt()
        print(fmt(table.loc[rows]))
        print()
        print(fmt(table))
    return 0


def _fmt():
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return lambda t: t.to_string()
    return lambda t: t.to_markdown(floatfmt=".4g")


if __name__ == "__main__":
    sys.exit(main())

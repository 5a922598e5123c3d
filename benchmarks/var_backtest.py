"""VaR / ES backtest of the model against classical risk models, out of sample.

    python benchmarks/var_backtest.py                          # S&P 500, MLP and GRU
    python benchmarks/var_backtest.py --data sp500_nasdaq       # equal-weight S&P 500 + Nasdaq
    python benchmarks/var_backtest.py --decoders gru --n 500 --models-dir /tmp/svm

The model (``ScenarioVAE(window=64, decoder=...)``, default Trainer, seed 0)
is trained once on ``WindowData.from_prices(prices.loc[:"2012-12-31"],
window=64)`` (saved under ``--models-dir`` and reused when there), then
``stressvae.var_backtest`` forecasts every trading day of 2013-2018 from
the prices up to the day before: the model from the day's state
(``from_today``), historical simulation (250 days), FHS on a
GJR-GARCH(1,1)-t and a GARCH(1,1)-t (both fitted on 1999-2012, parameters
fixed). One table per decoder: exceptions and test p-values at 95 / 99 %,
1 day and 10 days (non-overlapping blocks), then the issue's targets: the
99 % 1-day exception count against Kupiec's 95 % acceptance band, and each
model's mean ES relative to FHS-GJR's.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default="sp500", help="sp500 or sp500_nasdaq (equal weights)")
    p.add_argument("--decoders", default="mlp,gru", help="comma-separated: mlp, gru")
    p.add_argument("--start", default="2013-01-01")
    p.add_argument("--end", default="2018-12-31")
    p.add_argument("--train-end", default="2012-12-31")
    p.add_argument("--n", type=int, default=1000, help="draws per forecast")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--models-dir", default=os.environ.get("TMPDIR", "/tmp") + "/stressvae-var")
    p.add_argument("--figure", default=None, help="write the 99 %% 1-day figure (per decoder)")
    args = p.parse_args(argv)

    import numpy as np
    import pandas as pd
    import torch

    import stressvae as sv
    from stressvae.risk import kupiec_band

    prices = sv.load_dataset(args.data)
    data = sv.WindowData.from_prices(prices.loc[: args.train_end], window=64)
    print(data, flush=True)
    folder = Path(args.models_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for decoder in args.decoders.split(","):
        path = folder / f"{args.data}_{decoder}_to_{args.train_end}.safetensors"
        if path.exists():
            model = sv.ScenarioVAE.load(path)
            print(f"{decoder}: loaded {path}", flush=True)
        else:
            torch.manual_seed(args.seed)
            model = sv.ScenarioVAE(window=64, n_assets=data.n_assets, decoder=decoder)
            t0 = time.perf_counter()
            hist = sv.Trainer(seed=args.seed, progress=False).fit(model, data)
            model.save(path)
            print(
                f"{decoder}: trained in {time.perf_counter() - t0:.1f} s, "
                f"{len(hist.records)} epochs; saved {path}",
                flush=True,
            )
        print(f"{decoder}: trained periods {model.trained_periods}", flush=True)
        gen = sv.ScenarioGenerator(model, data, device="cpu")
        t0 = time.perf_counter()
        vb = sv.var_backtest(gen, prices, args.start, args.end, n=args.n, seed=args.seed)
        dt = time.perf_counter() - t0
        port = ", ".join(f"{a} {w:g}" for a, w in zip(vb.assets, vb.weights, strict=True))
        print(
            f"\n## {args.data} ({port}), "
            f"{vb.start}..{vb.end}, model decoder {decoder}, n = {args.n}: {dt:.0f} s\n"
        )
        with pd.option_context("display.width", 250, "display.max_columns", 30):
            print(vb.table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        t = vb.table.set_index(["model", "horizon", "level"])
        days = int(t.loc[("hs", 1, 0.99), "days"])
        lo, hi = kupiec_band(days, 0.99)
        print(f"\nKupiec 95 % acceptance band at 99 %, {days} days: {lo}..{hi} exceptions")
        fhs = vb.forecasts[[c for c in vb.forecasts if c.startswith("fhs_gjr_es")]]
        for m in vb.models:
            ratios = []
            for h in vb.horizons:
                for lv in vb.levels:
                    pct = f"{100 * lv:g}"
                    es = vb.forecasts[f"{m}_es{pct}_{h}d"]
                    ref = fhs[f"fhs_gjr_es{pct}_{h}d"]
                    ratios.append(f"{h}d {pct}%: {np.nanmean(es) / np.nanmean(ref):.2f}")
            print(f"mean ES / FHS-GJR's  {m:8s} " + "  ".join(ratios))
        if args.figure:
            fig = Path(args.figure)
            out = vb.plot(fig.with_name(f"{fig.stem}_{args.data}_{decoder}{fig.suffix}"))
            print(f"figure {out}")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

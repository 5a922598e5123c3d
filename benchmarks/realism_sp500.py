"""Realism on the S&P 500: train to 2012, judge against held-out real data.

    python benchmarks/realism_sp500.py            # window 32, 10,000 windows per generator
    python benchmarks/realism_sp500.py --html realism.html
    python benchmarks/realism_sp500.py --window 64 --decoders mlp,gru   # both decoders side by side

Data: arch's S&P 500 closes 1999-2018. The validation (out-of-period test)
period starts 2013-01-01; inside 1999-2012 one year in five (2001, 2006,
2011) is held out and purged (the in-distribution holdout). The default
ScenarioVAE (gaussian likelihood; one per decoder in ``--decoders``: the
MLP, the recurrent GRU rolled out day by day) is trained with the default
Trainer on the rest, then ``stressvae.realism.evaluate`` scores it side by side with the
Gaussian, stationary-bootstrap and GARCH(1,1)-t baselines fitted to the same
training data. The table is printed last.
"""

from __future__ import annotations

import argparse
import sys
import time


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--window", type=int, default=32)
    p.add_argument("--n", type=int, default=10_000, help="windows per generator")
    p.add_argument("--n-long", type=int, default=2_000, help="252-day paths per generator")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--decoders", default="mlp", help="comma-separated: mlp, gru")
    p.add_argument("--rnn-hidden", type=int, default=None, help="GRU state width")
    p.add_argument("--html", default=None, help="also write the report section as a page")
    args = p.parse_args(argv)

    import pandas as pd
    import torch

    import stressvae as sv
    from stressvae.realism import evaluate

    data = sv.WindowData.from_prices(
        sv.load_dataset("sp500"),
        window=args.window,
        split_date="2013-01-01",
        holdout_every=5,
        holdout_offset=2,
    )
    print(data, flush=True)
    gens = {}
    for decoder in args.decoders.split(","):
        torch.manual_seed(args.seed)
        extra = {"rnn_hidden": args.rnn_hidden} if args.rnn_hidden and decoder == "gru" else {}
        model = sv.ScenarioVAE(window=args.window, decoder=decoder, **extra)
        t0 = time.perf_counter()
        hist = sv.Trainer(seed=args.seed, progress=False).fit(model, data)
        print(
            f"{decoder}: trained in {time.perf_counter() - t0:.1f} s, {len(hist.records)} epochs, "
            f"{hist.active_dims} active latent dimensions; {model!r}",
            flush=True,
        )
        name = "vae" if args.decoders == "mlp" else f"vae-{decoder}"
        gens[name] = sv.ScenarioGenerator(model, data, device="cpu")
    t0 = time.perf_counter()
    rep = evaluate(gens, data, n=args.n, n_long=args.n_long, seed=args.seed)
    print(f"evaluated in {time.perf_counter() - t0:.1f} s", flush=True)
    if args.html:
        print(f"wrote {rep.to_html(args.html)}")
    with pd.option_context("display.width", 200, "display.max_rows", 200):
        print()
        for note in rep.notes:
            print(f"- {note}")
        print()
        print(rep.table.to_markdown(floatfmt=".4g") if _has_tabulate() else rep.table.to_string())
    return 0


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())

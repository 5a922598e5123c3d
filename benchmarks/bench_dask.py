"""1M scenarios generated and backtested: one process vs Dask local workers.

    python benchmarks/bench_dask.py                 # n = 1,000,000
    python benchmarks/bench_dask.py --n 200000

The default ScenarioVAE architecture (random weights with the S&P 500
scaler: throughput does not depend on training), MACrossover(10, 40) on
128-day paths (two 64-day windows chained), fees 0.001. Cases:
"local" (this process, native and numba threads = all cores), Dask with 1
worker (all cores in it), Dask with 2 workers (one core each). Each Dask
case starts its cluster first (timed apart), warms every worker with a
small run, then times the full run; all metrics are checked equal to the
local run. A table in Markdown is printed last.
"""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--shards-per-worker", type=int, default=4)
    args = p.parse_args()

    import torch

    import stressvae as sv
    from stressvae import strategies as S
    from stressvae.backtesting import backtest_plan
    from stressvae.distributed import local_client

    data = sv.WindowData.from_prices(sv.load_dataset("sp500"), window=64)
    torch.manual_seed(0)
    model = sv.ScenarioVAE(window=64)
    model.set_data_stats(data.scaler, data.thresholds)
    gen = sv.ScenarioGenerator(model, data, device="cpu")
    strat = S.MACrossover(10, 40)
    kw = dict(n=args.n, seed=1, fees=0.001, horizon=128)
    cores = len(os.sched_getaffinity(0))

    sv.backtest(gen, strat, **{**kw, "n": 20_000})  # warm numba and the decoder
    t0 = time.perf_counter()
    ref = sv.backtest(gen, strat, **kw)
    rows = [("local (1 process)", 1, cores, 0.0, time.perf_counter() - t0)]
    print(f"local: {rows[-1][-1]:.2f} s", flush=True)

    for workers in (1, 2):
        t0 = time.perf_counter()
        with local_client(workers) as client:
            start = time.perf_counter() - t0
            threads = max(1, cores // workers)
            # warm every worker (model load, numba compile) on a small run
            backtest_plan(
                gen, gen.prior_plan(4000 * workers), 1, 128, "keep", strat, ref.config,
                client=client, shards=2 * workers, device="cpu", num_threads=threads,
            )  # fmt: skip
            t0 = time.perf_counter()
            metrics, _, _ = backtest_plan(
                gen, gen.prior_plan(args.n), 1, 128, "keep", strat, ref.config,
                client=client, shards=args.shards_per_worker * workers, device="cpu",
                num_threads=threads,
            )  # fmt: skip
            dt = time.perf_counter() - t0
        same = metrics.equals(ref.metrics)
        print(f"dask {workers} worker(s): {dt:.2f} s, equal to local: {same}", flush=True)
        if not same:
            raise SystemExit("dask metrics differ from local")
        rows.append((f"dask, {workers} worker(s)", workers, threads, start, dt))

    base = rows[1][-1]
    print()
    print(f"n = {args.n:,} paths x 128 days, MACrossover(10, 40), {cores} cores")
    print()
    print(
        "| case | workers | threads per worker | cluster start (s) | run (s) | paths/s | "
        "paths/s per worker | speedup vs 1 worker |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, w, t, st, dt in rows:
        print(
            f"| {name} | {w} | {t} | {st:.1f} | {dt:.2f} | {args.n / dt:,.0f} | "
            f"{args.n / dt / w:,.0f} | {base / dt:.2f}x |"
        )


if __name__ == "__main__":
    main()

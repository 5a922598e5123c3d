"""Backtest metrics: the numba fast path vs vectorbt used straight, CPU, in one run.

    python benchmarks/bench_backtest.py                 # 100k paths x 252 steps, 1M streamed
    python benchmarks/bench_backtest.py --quick         # 20k paths, 200k streamed
    python benchmarks/bench_backtest.py --paths 50000
    python benchmarks/bench_backtest.py --portfolio     # only the portfolio case (below)

Peer: what a vectorbt user writes: one Portfolio on the whole [253, paths]
close matrix (``MACrossover(10, 50)``: ``vbt.MA.run`` + ``ma_crossed_above /
below`` + ``Portfolio.from_signals``; ``BuyAndHold``: ``Portfolio.from_holding``;
fees 0.001, slippage 0.0005) and its ten metrics
(``stressvae.backtesting.vectorbt_metrics``). Fast side:
``stressvae.backtesting.fast_metrics``, the same ten numbers from the numba
kernels. Log returns ~ N(3e-4, 0.012), prices from 100.

Before timing, both sides run once (warm-up: imports, JIT / cache loads)
and their metrics are compared: the max relative difference is printed
next to the ratio (the run stops if it exceeds 1e-9). Then the two sides
alternate; medians are reported. Peak memory: each side runs once more in a
fresh process, warmed up on a small matrix, its peak reset (``5`` written
to /proc/self/clear_refs), and the growth of VmHWM over the RSS before the
call is reported (the close matrix itself is not counted). Last, the fast
path alone on 1M paths (10 chunks of 100k, each chunk generated, then
timed; generation not counted) for throughput. The ratio table comes last.

Portfolio case (issue 15): 100,000 scenarios x 20 assets x 64 days, one
cash-sharing portfolio per scenario (``EqualWeight`` rebalanced daily,
``FixedWeights`` monthly with a 5-point band, ``InverseVolatility(20, 5)``,
``MinimumVariance(60, 21)``), returns from one common factor and an own
part per asset (correlation ~0.26, daily volatility 1.2 %). vectorbt runs
``Portfolio.from_orders`` (target percent, cash sharing, call sequence auto)
on a subset (``--vectorbt-scenarios``, default 5,000: a 100k-column
Portfolio, ~1 GB of records at most; all 100k scenarios would be 2M
columns), and its time is scaled linearly to 100,000 (vectorbt's time is
linear in the columns: one column loop); the fast path runs on all of them
in chunks of 25,000 scenarios (as ``backtest`` chunks them; generating a
chunk is not timed) and on the subset (the like-for-like ratio). The
subset's metrics and contributions are compared first (the run stops
unless they are equal bit for bit).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

from stressvae.backtesting import METRICS, BacktestConfig, fast_metrics, vectorbt_metrics
from stressvae.strategies import (
    BuyAndHold,
    EqualWeight,
    FixedWeights,
    InverseVolatility,
    MACrossover,
    MinimumVariance,
)

STEPS = 252
CONFIG = BacktestConfig(fees=0.001, slippage=0.0005)
STRATEGIES = {"MACrossover(10, 50)": MACrossover(10, 50), "BuyAndHold": BuyAndHold()}
SIDES = {"fast": fast_metrics, "vectorbt": vectorbt_metrics}


def make_close(paths: int, seed: int, steps: int = STEPS) -> np.ndarray:
    """float64 [steps + 1, paths]: prices from 100, log returns ~ N(3e-4, 0.012)."""
    rng = np.random.default_rng(seed)
    logs = np.zeros((steps + 1, paths))
    np.cumsum(rng.normal(3e-4, 0.012, (steps, paths)), axis=0, out=logs[1:])
    np.exp(logs, out=logs)
    logs *= 100.0
    return logs


def max_rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Largest |a - b| / |b|, NaN == NaN; inf where a NaN or inf meets another value."""
    with np.errstate(invalid="ignore", divide="ignore"):
        same = (a == b) | (np.isnan(a) & np.isnan(b))
        if (~same & ~(np.isfinite(a) & np.isfinite(b))).any():
            return float("inf")
        d = np.where(same, 0.0, np.abs(a - b) / np.maximum(np.abs(b), 1e-300))
    return float(d.max()) if d.size else 0.0


def proc_status() -> dict[str, int]:
    """VmRSS / VmHWM of this process, KiB."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def child_memory(side: str, name: str, paths: int, seed: int) -> None:
    """In a fresh process: peak RSS growth (MiB) of one call of one side."""
    fn, strategy = SIDES[side], STRATEGIES[name]
    fn(make_close(500, seed + 1), strategy, CONFIG)  # imports, JIT / cache loads
    close = make_close(paths, seed)
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = proc_status()["VmRSS"]
    out = fn(close, strategy, CONFIG)
    peak = proc_status()["VmHWM"]
    print(json.dumps({"growth_mib": (peak - before) / 1024, "rows": len(out)}))


def measure_memory(side: str, name: str, paths: int, seed: int) -> float:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        side,
        name,
        "--paths",
        str(paths),
        "--seed",
        str(seed),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])["growth_mib"]


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def compare(name: str, paths: int, seed: int, repeats: int, memory: bool) -> dict:
    strategy = STRATEGIES[name]
    close = make_close(paths, seed)
    print(f"\n## {name}: {paths:,} paths x {STEPS} steps", flush=True)
    t_warm = {}
    results = {}
    for side, fn in SIDES.items():
        t0 = time.perf_counter()
        results[side] = fn(close, strategy, CONFIG)
        t_warm[side] = time.perf_counter() - t0
        print(f"  warm-up {side}: {t_warm[side]:.2f} s", flush=True)
    diff = max_rel_diff(results["fast"], results["vectorbt"])
    per_metric = {
        m: max_rel_diff(results["fast"][:, j], results["vectorbt"][:, j])
        for j, m in enumerate(METRICS)
    }
    exact = all(
        np.array_equal(results["fast"][:, j], results["vectorbt"][:, j], equal_nan=True)
        for j in range(len(METRICS))
    )
    print(f"  max relative difference: {diff:.3g} (bit for bit: {exact})")
    if not diff <= 1e-9:
        print("  per metric:", json.dumps(per_metric))
        raise SystemExit(f"{name}: the fast path differs from vectorbt by {diff:.3g} > 1e-9")
    del results
    gc.collect()
    times = {side: [] for side in SIDES}
    for r in range(repeats):
        for side, fn in SIDES.items():
            times[side].append(timed(lambda fn=fn: fn(close, strategy, CONFIG)))
            gc.collect()
        print(f"  round {r + 1}: " + ", ".join(f"{s} {t[-1]:.3f} s" for s, t in times.items()))
    med = {side: statistics.median(t) for side, t in times.items()}
    mem = {side: float("nan") for side in SIDES}
    if memory:
        del close
        gc.collect()
        for side in SIDES:
            mem[side] = measure_memory(side, name, paths, seed)
            print(f"  peak RSS growth {side}: {mem[side]:.1f} MiB (fresh process)", flush=True)
    return {
        "case": name,
        "paths": paths,
        "vectorbt_s": med["vectorbt"],
        "fast_s": med["fast"],
        "ratio": med["vectorbt"] / med["fast"],
        "diff": diff,
        "exact": exact,
        "mem_vectorbt": mem["vectorbt"],
        "mem_fast": mem["fast"],
    }


def streamed(total: int, chunk: int, seed: int) -> dict:
    strategy = STRATEGIES["MACrossover(10, 50)"]
    fast_metrics(make_close(500, seed + 1), strategy, CONFIG)
    kernel_s = 0.0
    rows = 0
    for k, start in enumerate(range(0, total, chunk)):
        close = make_close(min(chunk, total - start), seed + 100 + k)
        t0 = time.perf_counter()
        out = fast_metrics(close, strategy, CONFIG)
        kernel_s += time.perf_counter() - t0
        rows += len(out)
        del close, out
    print(
        f"\n## fast path alone, MACrossover(10, 50): {rows:,} paths in chunks of {chunk:,}: "
        f"{kernel_s:.2f} s ({rows / kernel_s:,.0f} paths/s, "
        f"{rows * (STEPS + 1) / kernel_s / 1e6:,.1f} M path-bars/s)"
    )
    return {"paths": rows, "chunk": chunk, "seconds": kernel_s}


PORTFOLIO_ASSETS = 20
PORTFOLIO_DAYS = 64
PORTFOLIOS = {
    "EqualWeight()": EqualWeight(),
    "FixedWeights(every=21, band=0.05)": FixedWeights(
        [1 / PORTFOLIO_ASSETS] * PORTFOLIO_ASSETS, every=21, band=0.05
    ),
    "InverseVolatility(20, 5)": InverseVolatility(20, 5),
    "MinimumVariance(60, 21)": MinimumVariance(60, 21),
}


def make_portfolio_close(scenarios: int, seed: int) -> np.ndarray:
    """float64 [days + 1, scenarios x assets] (each scenario's assets side by
    side): log returns 0.012 (0.5 common + 0.85 own) + 2e-4, prices from 100."""
    rng = np.random.default_rng(seed)
    t, a = PORTFOLIO_DAYS, PORTFOLIO_ASSETS
    r = 0.5 * rng.standard_normal((t, scenarios, 1)) + 0.85 * rng.standard_normal((t, scenarios, a))
    r *= 0.012
    r += 2e-4
    logs = np.zeros((t + 1, scenarios, a))
    np.cumsum(r, axis=0, out=logs[1:])
    np.exp(logs, out=logs)
    logs *= 100.0
    return logs.reshape(t + 1, scenarios * a)


def portfolio_case(name: str, total: int, subset: int, seed: int, repeats: int) -> dict:
    strategy, a = PORTFOLIOS[name], PORTFOLIO_ASSETS
    close = make_portfolio_close(subset, seed)
    group_by = np.repeat(np.arange(subset), a)
    print(f"\n## portfolio {name}: {a} assets x {PORTFOLIO_DAYS} days", flush=True)
    t0 = time.perf_counter()
    fast, fast_c = fast_metrics(close, strategy, CONFIG, a, contributions=True)
    print(f"  warm-up fast ({subset:,} scenarios): {time.perf_counter() - t0:.2f} s", flush=True)
    t0 = time.perf_counter()
    ref, ref_c = vectorbt_metrics(close, strategy, CONFIG, group_by, contributions=True)
    print(f"  warm-up vectorbt ({subset:,} scenarios): {time.perf_counter() - t0:.2f} s")
    exact = np.array_equal(fast, ref, equal_nan=True) and np.array_equal(fast_c, ref_c)
    print(f"  metrics and contributions bit for bit: {exact}")
    if not exact:
        raise SystemExit(f"{name}: the fast path differs from vectorbt (max rel diff "
                         f"{max_rel_diff(fast, ref):.3g})")  # fmt: skip
    del fast, ref, fast_c, ref_c
    gc.collect()
    vbt_s, sub_s, full_s = [], [], []
    chunk = 25_000
    for r in range(repeats):
        vbt_s.append(timed(lambda: vectorbt_metrics(close, strategy, CONFIG, group_by)))
        gc.collect()
        sub_s.append(timed(lambda: fast_metrics(close, strategy, CONFIG, a)))
        seconds = 0.0
        for k, start in enumerate(range(0, total, chunk)):
            part = make_portfolio_close(min(chunk, total - start), seed + 1000 + k)
            seconds += timed(lambda part=part: fast_metrics(part, strategy, CONFIG, a))
            del part
        full_s.append(seconds)
        print(f"  round {r + 1}: vectorbt {subset:,} {vbt_s[-1]:.2f} s, fast {subset:,} "
              f"{sub_s[-1]:.3f} s, fast {total:,} {full_s[-1]:.2f} s", flush=True)  # fmt: skip
    vbt, sub, full = (statistics.median(x) for x in (vbt_s, sub_s, full_s))
    scaled = vbt * total / subset
    return {"case": name, "subset": subset, "total": total, "vectorbt_subset_s": vbt,
            "fast_subset_s": sub, "fast_total_s": full, "vectorbt_scaled_s": scaled,
            "ratio": scaled / full, "ratio_subset": vbt / sub}  # fmt: skip


def portfolio_table(rows: list) -> None:
    n = f"{rows[0]['total']:,}" if rows else "all"
    print(
        "\n| portfolio case (20 assets x 64 days) | vectorbt, subset (median s) | fast, subset "
        f"| ratio, subset | vectorbt scaled to {n} | fast, {n} | ratio, {n} |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['case']} | {r['vectorbt_subset_s']:.2f} ({r['subset']:,}) "
            f"| {r['fast_subset_s']:.3f} | {r['ratio_subset']:.1f}x "
            f"| {r['vectorbt_scaled_s']:.1f} | {r['fast_total_s']:.2f} | {r['ratio']:.1f}x |"
        )


def machine() -> str:
    import numba
    import pandas
    import vectorbt

    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"{cpu}, {os.cpu_count()} CPUs, numba {numba.__version__} ({numba.get_num_threads()} "
        f"threads), vectorbt {vectorbt.__version__}, pandas {pandas.__version__}, "
        f"numpy {np.__version__}, Python {platform.python_version()}"
    )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=None, help="paths per comparison (100000)")
    ap.add_argument("--quick", action="store_true", help="20k paths, 200k streamed")
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds per side")
    ap.add_argument("--stream", type=int, default=None, help="paths of the fast-only run")
    ap.add_argument("--no-memory", dest="memory", action="store_false")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--portfolio", action="store_true", help="only the portfolio case")
    ap.add_argument("--no-portfolio", dest="with_portfolio", action="store_false")
    ap.add_argument("--scenarios", type=int, default=100_000, help="portfolio scenarios")
    ap.add_argument("--vectorbt-scenarios", type=int, default=5_000,
                    help="portfolio scenarios vectorbt runs (its time is scaled)")  # fmt: skip
    ap.add_argument("--child", nargs=2, metavar=("SIDE", "CASE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    paths = args.paths or (20_000 if args.quick else 100_000)
    if args.child:
        child_memory(args.child[0], args.child[1], paths, args.seed)
        return
    stream = args.stream or (200_000 if args.quick else 1_000_000)
    print(f"# machine: {machine()}")
    print(f"# fees {CONFIG.fees}, slippage {CONFIG.slippage}, init_cash {CONFIG.init_cash}")
    portfolios = []
    if args.portfolio or args.with_portfolio:
        total = 20_000 if args.quick and args.scenarios == 100_000 else args.scenarios
        subset = min(args.vectorbt_scenarios, total)
        repeats = 1 if args.quick else min(args.repeats, 2)
        portfolios = [portfolio_case(n, total, subset, args.seed, repeats) for n in PORTFOLIOS]
        if args.portfolio:
            portfolio_table(portfolios)
            return
    rows = [compare(name, paths, args.seed, args.repeats, args.memory) for name in STRATEGIES]
    big = streamed(stream, min(100_000, stream), args.seed)

    print(
        "\n| case | paths | vectorbt (median s) | fast (median s) | speedup | max rel diff "
        "| peak RSS growth vectorbt | peak RSS growth fast |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        diff = "0 (bit for bit)" if r["exact"] else f"{r['diff']:.2g}"
        print(
            f"| {r['case']} | {r['paths']:,} | {r['vectorbt_s']:.3f} | {r['fast_s']:.3f} "
            f"| {r['ratio']:.1f}x | {diff} | {r['mem_vectorbt']:,.0f} MiB "
            f"| {r['mem_fast']:,.1f} MiB |"
        )
    print(
        f"| fast alone, MACrossover(10, 50), chunks of {big['chunk']:,} | {big['paths']:,} | - "
        f"| {big['seconds']:.3f} | {big['paths'] / big['seconds']:,.0f} paths/s | - | - | - |"
    )
    if portfolios:
        portfolio_table(portfolios)


if __name__ == "__main__":
    main()

"""The classical baselines at 20 assets: fit and 100,000 windows of 64 days.

    python benchmarks/bench_baselines.py                  # gaussian, garch, bootstrap
    python benchmarks/bench_baselines.py --before c5c3765 # also the code of that commit

Data: ``load_dataset("sp500_stocks")`` (20 US stocks), window 64, split as
in benchmarks/realism_stocks.py (test period from 2013, one year in five
held out). Each baseline is fitted once, then ``sample(n, seed)`` runs
``--repeats`` times (after one warm-up of 2,000 windows); the best wall
time and the CPU time of that run are printed (the CPU time shows BLAS
threads spinning when the machine is shared). ``--before REV`` loads
stressvae/baselines.py as it was at git revision REV (as a module inside the
installed package) and times its sample the same way on ``--n-before``
windows (default 20,000), scaled linearly to n: the ratio before / now is
printed last, measured in the same run.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_before(rev: str):
    """stressvae/baselines.py at git revision ``rev`` as module stressvae._baselines_before."""
    src = subprocess.run(
        ["git", "show", f"{rev}:stressvae/baselines.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "baselines_before.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("stressvae._baselines_before", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def timed_sample(b, n: int, repeats: int) -> tuple[float, float]:
    b.sample(2000, seed=1)  # warm-up
    best = (float("inf"), 0.0)
    for r in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        s = b.sample(n, seed=r)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        assert s.returns.shape[0] == n
        del s
        best = min(best, (wall, cpu))
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--kinds", default="gaussian,garch,bootstrap")
    p.add_argument("--before", default=None, help="git revision to compare against")
    p.add_argument("--n-before", type=int, default=20_000)
    args = p.parse_args(argv)

    import os

    import stressvae as sv
    from stressvae import baselines

    warnings.simplefilter("ignore")
    data = sv.WindowData.from_prices(
        sv.load_dataset("sp500_stocks"),
        window=64,
        split_date="2013-01-01",
        holdout_every=5,
        holdout_offset=2,
    )
    print(f"{data!r}; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}", flush=True)
    classes = {
        "gaussian": "GaussianBaseline",
        "garch": "GarchBaseline",
        "bootstrap": "BootstrapBaseline",
    }
    kinds = args.kinds.split(",")
    before = load_before(args.before) if args.before else None
    rows = []
    for kind in kinds:
        t0 = time.perf_counter()
        b = getattr(baselines, classes[kind])(data)
        fit = time.perf_counter() - t0
        wall, cpu = timed_sample(b, args.n, args.repeats)
        line = {"kind": kind, "fit_s": fit, "sample_s": wall, "cpu_s": cpu}
        if before is not None:
            old = getattr(before, classes[kind])(data)
            w_old, _ = timed_sample(old, args.n_before, 1)
            line["before_s"] = w_old * args.n / args.n_before
        rows.append(line)
        print(
            f"{kind:10s} fit {fit:6.1f} s   sample {args.n:,} x 64 x 20: {wall:6.2f} s wall, "
            f"{cpu:6.2f} s CPU"
            + (f"   before: {line['before_s']:6.1f} s" if "before_s" in line else ""),
            flush=True,
        )
    print()
    print(f"| baseline | fit (s) | sample {args.n:,} windows (s) | CPU (s) | before (s) | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        old = r.get("before_s")
        then = f"{old:.1f} | {old / r['sample_s']:.1f}x" if old else "- | -"
        print(
            f"| {r['kind']} | {r['fit_s']:.1f} | {r['sample_s']:.2f} | {r['cpu_s']:.2f} | {then} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

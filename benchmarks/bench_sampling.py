"""Native fused sampling vs the torch eager expression, CPU, in one run.

    python benchmarks/bench_sampling.py                # n = 1e5, 1e6, 1e7; d = 16, 64
    python benchmarks/bench_sampling.py --quick        # n = 1e5, 1e6; d = 16

Peer: ``mu + torch.exp(0.5 * lv) * torch.randn(n, d)``, the reparameterization
as a VAE codebase writes it. Two forms of mu / lv: ``prior`` (one row [d],
broadcast to n rows) and ``rows`` (one row per scenario, [n, d]). The two
sides alternate; each is warmed up first (3 calls and 1 s at least). Before timing, the native z is
checked against the torch expression fed the native eps (max relative error
printed). Both sides return fresh memory (the headline ratio: fresh pages of
a large array cost page faults on both sides), and both also run into a
preallocated output (``out=``: native ``out=``; torch ``randn(out=)`` then
in-place ``mul_`` and ``add_``). Peak memory at
n = 1e7, d = 16 is measured in fresh processes (``--memory``, on by default).
Each case runs in a fresh process. The ratio table is printed last.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

from stressvae import native


def parse_sizes(text: str) -> list[int]:
    return [int(float(t)) for t in text.split(",") if t]


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = fn()
        out.append(time.perf_counter() - t0)
        del r
    return out


def case(mode: str, n: int, d: int, repeats: int) -> dict:
    rng = np.random.default_rng(n * 131 + d)
    k = 1 if mode == "prior" else n
    mu = rng.normal(0, 1, (k, d)).astype(np.float32)
    lv = rng.uniform(-4, 1, (k, d)).astype(np.float32)
    if mode == "prior":
        mu, lv = mu[0], lv[0]
    t_mu, t_lv = torch.from_numpy(mu), torch.from_numpy(lv)
    size = (n, d)

    def run_native():
        return native.sample_latent(mu, lv, n if mode == "prior" else None, seed=7)

    out = np.empty(size, np.float32)

    def run_native_out():
        return native.sample_latent(mu, lv, n if mode == "prior" else None, seed=7, out=out)

    def run_torch():
        return t_mu + torch.exp(0.5 * t_lv) * torch.randn(size)

    buf = torch.empty(size)

    def run_torch_out():  # the same with a preallocated output, in place
        torch.randn(size, out=buf)
        return buf.mul_(torch.exp(0.5 * t_lv)).add_(t_mu)

    # Same computation? native z vs the torch expression on the native eps.
    m = min(n, 200_000)
    z = native.sample_latent(mu if mode == "prior" else mu[:m], lv if mode == "prior" else lv[:m],
                             m if mode == "prior" else None, seed=7)  # fmt: skip
    eps = torch.from_numpy(native.normals(m, d, seed=7))
    ref = (t_mu if mode == "prior" else t_mu[:m]) + torch.exp(
        0.5 * (t_lv if mode == "prior" else t_lv[:m])
    ) * eps
    rel = float((torch.from_numpy(z) - ref).abs().max() / ref.abs().max())

    # Warm-up: at least 3 calls and 1 s per side. A fresh process pays for
    # first-touched heap pages at the start (VM), which is not steady state.
    for fn in (run_native, run_native_out, run_torch, run_torch_out):
        t_end, calls = time.perf_counter() + 1.0, 0
        while calls < 3 or time.perf_counter() < t_end:
            timed(fn, 1)
            calls += 1
    t_nat, t_out, t_tor, t_tout = [], [], [], []
    for _ in range(repeats):  # alternate
        t_nat += timed(run_native, 1)
        t_tor += timed(run_torch, 1)
        t_out += timed(run_native_out, 1)
        t_tout += timed(run_torch_out, 1)
    med = statistics.median
    return {
        "mode": mode,
        "n": n,
        "d": d,
        "native_s": med(t_nat),
        "native_spread": (min(t_nat), max(t_nat)),
        "native_out_s": med(t_out),
        "torch_s": med(t_tor),
        "torch_spread": (min(t_tor), max(t_tor)),
        "torch_out_s": med(t_tout),
        "max_rel_err": rel,
    }


MEMORY_SCRIPT = r"""
import json, sys, numpy as np, torch
from stressvae import native

def status(key):  # this process's own counters (ru_maxrss would include the parent's peak)
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1]) * 1024

side, n, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
mu = np.full((n, d), 0.1, np.float32); lv = np.full((n, d), -1.0, np.float32)
t_mu, t_lv = torch.from_numpy(mu), torch.from_numpy(lv)
f = (lambda m: native.sample_latent(mu[:m], lv[:m], seed=1)) if side == "native" else \
    (lambda m: t_mu[:m] + torch.exp(0.5 * t_lv[:m]) * torch.randn(m, d))
f(1000)
with open("/proc/self/clear_refs", "w") as fh:  # reset the high-water mark to now
    fh.write("5")
base = status("VmRSS:")
z = f(n)
peak = status("VmHWM:")
out_bytes = n * d * 4
print(json.dumps({"extra": peak - base - out_bytes, "out": out_bytes}))
"""


def memory(side: str, n: int, d: int) -> dict:
    res = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, side, str(n), str(d)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(res.stdout)


def case_in_fresh_process(mode: str, n: int, d: int, repeats: int) -> dict:
    """One case per process: large allocations of one case must not change the
    page-fault costs of the next."""
    res = subprocess.run(
        [sys.executable, __file__, "--case", f"{mode},{n},{d},{repeats}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", type=parse_sizes, default=[100_000, 1_000_000, 10_000_000])
    p.add_argument("--dims", type=lambda s: [int(x) for x in s.split(",")], default=[16, 64])
    p.add_argument("--modes", type=lambda s: s.split(","), default=["prior", "rows"])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--quick", action="store_true", help="n = 1e5, 1e6; d = 16; 5 repeats")
    p.add_argument("--no-memory", dest="memory", action="store_false")
    p.add_argument("--case", help=argparse.SUPPRESS)  # internal: mode,n,d,repeats
    args = p.parse_args(argv)
    if args.case:
        mode, n, d, reps = args.case.split(",")
        print(json.dumps(case(mode, int(n), int(d), int(reps))))
        return 0
    if args.quick:
        args.sizes, args.dims, args.repeats = [100_000, 1_000_000], [16], 5

    info = native.native_info()
    print(
        f"# CPU: {os.cpu_count()} cores, native isa {info['core']['isa']}, "
        f"native threads {info['core']['threads']}, torch {torch.__version__} "
        f"threads {torch.get_num_threads()}",
        flush=True,
    )
    rows = []
    for mode in args.modes:
        for d in args.dims:
            for n in args.sizes:
                reps = args.repeats if n * d <= 16_000_000 else max(3, args.repeats // 2)
                r = case_in_fresh_process(mode, n, d, reps)
                rows.append(r)
                print(
                    f"  {mode:5s} n={n:>10,} d={d:3d}: native {r['native_s'] * 1e3:9.2f} ms, "
                    f"torch {r['torch_s'] * 1e3:9.2f} ms, err {r['max_rel_err']:.1e}",
                    flush=True,
                )
    mem = []
    if args.memory:
        for side in ("native", "torch"):
            m = memory(side, 10_000_000, 16)
            mem.append((side, m))

    print()
    print("## Sampling, CPU: native fused vs torch eager (median of alternating runs)")
    print()
    print(
        "| mu/lv | n | d | native ms | torch ms | native ns/normal | torch ns/normal "
        "| **ratio** | native out= ms | torch out= ms | ratio out= | max rel err |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        nn = r["n"] * r["d"]
        print(
            f"| {r['mode']} | {r['n']:.0e} | {r['d']} | {r['native_s'] * 1e3:.2f} "
            f"({r['native_spread'][0] * 1e3:.2f}-{r['native_spread'][1] * 1e3:.2f}) "
            f"| {r['torch_s'] * 1e3:.2f} ({r['torch_spread'][0] * 1e3:.2f}-"
            f"{r['torch_spread'][1] * 1e3:.2f}) "
            f"| {r['native_s'] / nn * 1e9:.2f} | {r['torch_s'] / nn * 1e9:.2f} "
            f"| **{r['torch_s'] / r['native_s']:.1f}x** "
            f"| {r['native_out_s'] * 1e3:.2f} | {r['torch_out_s'] * 1e3:.2f} "
            f"| {r['torch_out_s'] / r['native_out_s']:.1f}x | {r['max_rel_err']:.1e} |"
        )
    if mem:
        print()
        print(
            "Peak memory beyond the output itself, n = 1e7, d = 16, mu/lv per row (fresh process):"
        )
        print()
        print("| side | output MiB | extra MiB | extra / output |")
        print("|---|---:|---:|---:|")
        for side, m in mem:
            print(
                f"| {side} | {m['out'] / 2**20:.0f} | {m['extra'] / 2**20:.1f} "
                f"| {m['extra'] / m['out']:.2%} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The recurrent decoder's rollout, CPU: native fused rollout vs torch, in one run.

    python benchmarks/bench_rollout.py              # n = 1e5 and 1e6, horizon 252
    python benchmarks/bench_rollout.py --quick      # n = 1e5, fewer repeats
    python benchmarks/bench_rollout.py --hidden 64  # a smaller GRU state

Model: ``ScenarioVAE(window=64, decoder="gru")`` (rnn_hidden 128), latent 16,
one asset, fresh random weights (speed does not depend on training).
Every side makes the same thing: n scenarios of ``horizon`` daily log
returns from the prior, z_0 ~ N(0, I), noise drawn day by day, unscaled.

- native: ``NativeRollout.sample`` (z, the GRU steps, the head, the noise and
  the unscaling in one call; the output buffer reused).
- torch eager: the same rollout as a Python loop over days (GRU cell, head,
  ``torch.randn`` noise, the draw fed back), the ``model.rollout_scaled``
  loop with the noise made inside; on all n at once and in chunks of 25,000.
- torch.compile: the day step compiled (``torch.compile`` of one step,
  called ``horizon`` times; compile time excluded), in chunks of 25,000.

Before timing, the native output is checked against ``model.rollout_scaled``
fed the native noise (max error over days, relative to the largest value).
Warm-up, then alternating repeats; median (min-max). Each n runs in a fresh
process. The table is printed last.
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

LATENT, WINDOW = 16, 64
HIDDEN = int(os.environ.get("BENCH_ROLLOUT_HIDDEN", "128"))


def build():
    import torch

    from stressvae import ScenarioVAE
    from stressvae.data import Scaler
    from stressvae.native import NativeRollout

    torch.manual_seed(0)
    m = ScenarioVAE(window=WINDOW, latent_dim=LATENT, decoder="gru", rnn_hidden=HIDDEN)
    m.set_data_stats(Scaler(np.array([3e-4]), np.array([0.012])), None)
    m.eval()
    return m, NativeRollout(m.export_decoder())


def torch_step(model):
    """One day of the rollout in plain torch ops (what eager runs and what
    torch.compile compiles)."""
    import torch

    dec = model.decoder
    w_ih, w_hh, b_ih, b_hh = (t.detach() for t in dec.cell_weights())
    w_o, b_o = dec.head.weight.detach(), dec.head.bias.detach()
    std, mean = model.scaler_std, model.scaler_mean

    def step(h, x_prev, z, eps):
        inp = torch.cat([x_prev, x_prev.abs(), z], dim=-1)
        h = torch.gru_cell(inp, h, w_ih, w_hh, b_ih, b_hh)
        mu, raw = torch.nn.functional.linear(h, w_o, b_o).chunk(2, dim=-1)
        x = mu + torch.exp(raw.clamp(-7.0, 4.0)) * eps
        return h, x, x * std + mean

    return step


def torch_rollout(model, n: int, horizon: int, chunk: int | None, step=None):
    import torch

    step = step or torch_step(model)
    out = torch.empty(n, horizon, 1)
    cs = chunk or n

    def run():
        with torch.no_grad():
            for s in range(0, n, cs):
                m = min(cs, n - s)
                z = torch.randn(m, LATENT)
                h = torch.tanh(model.decoder.init(z))
                x = torch.zeros(m, 1)
                for t in range(horizon):
                    h, x, y = step(h, x, z, torch.randn(m, 1))
                    out[s : s + m, t] = y
        return out

    return run


def parity(model, nat, horizon: int) -> float:
    import torch

    from stressvae import native

    n = 2000
    z = np.random.default_rng(1).standard_normal((n, LATENT)).astype(np.float32)
    y = nat.rollout(z, horizon, seed=3)
    eps, _ = native.rollout_noise(n, horizon, 1, LATENT, seed=3)
    with torch.no_grad():
        x = model.rollout_scaled(torch.from_numpy(z), horizon, torch.from_numpy(eps))
        ref = (x.double() * model.scaler_std.double() + model.scaler_mean.double()).numpy()
    return float(np.abs(y - ref).max() / np.abs(ref).max())


def sides_for(model, nat, n: int, horizon: int, cstep) -> dict:
    zero = np.zeros(LATENT, np.float32)
    buf = np.empty((n, horizon, 1), np.float32)
    sides = {
        "native": lambda: nat.sample(zero, zero, n, horizon=horizon, seed=7, out=buf),
        "torch eager": torch_rollout(model, n, horizon, None),
        "torch eager 25k": torch_rollout(model, n, horizon, min(n, 25_000)),
    }
    if cstep is not None:
        sides["torch.compile 25k"] = torch_rollout(model, n, horizon, min(n, 25_000), step=cstep)
    return sides


def case(n: int, horizon: int, repeats: int, with_compile: bool) -> dict:
    import torch

    model, nat = build()
    err = parity(model, nat, horizon)
    cstep = None
    if with_compile:
        try:
            cstep = torch.compile(torch_step(model), dynamic=False)
            torch_rollout(model, 25_000, 4, 25_000, step=cstep)()
        except Exception as err_c:  # a peer that does not compile is skipped
            print(f"torch.compile skipped: {type(err_c).__name__}: {err_c}", file=sys.stderr)
            cstep = None
    # warm-up on a smaller n (same chunk shapes: compiled graphs, allocator)
    for fn in sides_for(model, nat, 25_000, 32, cstep).values():
        fn()
    sides = sides_for(model, nat, n, horizon, cstep)
    times = {k: [] for k in sides}
    for _ in range(repeats):
        for k, fn in sides.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    hp = HIDDEN
    flops = 2 * n * horizon * (3 * hp * hp + 3 * hp * 2 + 2 * hp)
    return {
        "n": n,
        "horizon": horizon,
        "err": err,
        "flops": flops,
        "isa": nat.isa,
        "threads": torch.get_num_threads(),
        "times": {k: (statistics.median(v), min(v), max(v)) for k, v in times.items()},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="100000,1000000")
    p.add_argument("--horizon", type=int, default=252)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-compile", dest="compile", action="store_false")
    p.add_argument("--hidden", type=int, default=HIDDEN, help="GRU state width (default 128)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--case", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.case:
        n, h, r, c = args.case.split(",")
        print(json.dumps(case(int(n), int(h), int(r), c == "1")))
        return 0
    if args.quick:
        args.sizes, args.repeats = "100000", 2
    os.environ["BENCH_ROLLOUT_HIDDEN"] = str(args.hidden)  # for the case processes
    import torch

    print(f"# CPU {os.cpu_count()} cores, torch {torch.__version__}", flush=True)
    rows = []
    for n in [int(float(x)) for x in args.sizes.split(",")]:
        reps = args.repeats if n <= 200_000 else max(1, args.repeats - 2)
        cmd = [sys.executable, __file__, "--case", f"{n},{args.horizon},{reps},{int(args.compile)}"]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(r)
        print(
            f"  n={n:.0e}: " + ", ".join(f"{k} {v[0]:.2f} s" for k, v in r["times"].items()),
            flush=True,
        )
    print()
    print(f"## GRU rollout, CPU, horizon {args.horizon}, hidden {args.hidden}, latent {LATENT}")
    print()
    print(
        "| n | native s | torch eager s | torch eager 25k s | torch.compile 25k s "
        "| **eager / native** | best torch / native | native GFLOP/s | M paths/s | max rel err |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        t = r["times"]

        def fmt(k, t=t):
            return f"{t[k][0]:.2f} ({t[k][1]:.2f}-{t[k][2]:.2f})" if k in t else "-"

        nat = t["native"][0]
        best_t = min(v[0] for k, v in t.items() if k.startswith("torch"))
        print(
            f"| {r['n']:.0e} | {fmt('native')} | {fmt('torch eager')} | {fmt('torch eager 25k')} "
            f"| {fmt('torch.compile 25k')} | **{t['torch eager'][0] / nat:.1f}x** "
            f"| {best_t / nat:.1f}x | {r['flops'] / nat / 1e9:.0f} | {r['n'] / nat / 1e6:.3f} "
            f"| {r['err']:.1e} |"
        )
    print(f"\nnative ISA {rows[0]['isa']}; torch threads {rows[0]['threads']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

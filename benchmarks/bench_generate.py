"""Scenario generation, CPU: the public ScenarioGenerator (native fused
sample + decode) vs the torch model path, in one run.

    python benchmarks/bench_generate.py            # windows 64, 252; n = 1e5, 1e6
    python benchmarks/bench_generate.py --quick    # window 64; n = 1e5

Peer (torch eager): ``z = mu + exp(0.5 * lv) * randn(n, latent)``;
``mean, scale = model.decode(z)``; ``x = mean + scale * randn_like(mean)``
(decode unscales), on all n at once and in chunks of 25,000 (less memory
traffic, torch's best setting here); also ``torch.compile`` of the same
function where it compiles (compile time excluded). The headline ratio is
the best torch variant over the best native one (sample or stream).

Model: the default architecture, latent 16, hidden (256, 256), gaussian
likelihood, random weights (speed does not depend on training). Native
sides: ``gen.sample(n)`` (fused: z drawn inside the kernel),
``gen.iter_chunks(n)`` consumed chunk by chunk, and the decoder fed a
precomputed z (not fused). Before timing, the native output is checked
against the torch decoder fed the same z and noise (max relative error).
Each case runs in a fresh process: warm-up, then alternating runs, median
(min-max). Peak RSS growth per side is measured in its own process. The
table is printed last.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import numpy as np

LATENT, HIDDEN = 16, (256, 256)


def build(window: int):
    import torch

    from stressvae import ScenarioGenerator, ScenarioVAE
    from stressvae.data import Scaler

    torch.manual_seed(0)
    m = ScenarioVAE(window=window, latent_dim=LATENT, hidden_dims=HIDDEN)
    m.set_data_stats(Scaler(np.array([3e-4]), np.array([0.012])), None)
    return m.eval(), ScenarioGenerator(m, device="cpu")


def torch_path(model, n: int):
    import torch

    mu = torch.zeros(n, LATENT)
    lv = torch.zeros(n, LATENT)

    def run():
        with torch.no_grad():
            z = mu + torch.exp(0.5 * lv) * torch.randn(n, LATENT)
            mean, scale = model.decode(z)
            return mean + scale * torch.randn_like(mean)

    return run


def torch_chunked(model, n: int, chunk: int):
    """The torch path in chunks (less memory traffic: its best setting here)."""
    run = torch_path(model, chunk)

    def go():
        for _ in range(n // chunk):
            run()
        if n % chunk:
            torch_path(model, n % chunk)()

    return go


def compiled_path(model, n: int):
    import torch

    std, mean_r = model.scaler_std, model.scaler_mean

    def f(mu, lv):
        z = mu + torch.exp(0.5 * lv) * torch.randn(mu.shape)
        m, log_scale = model.decoder(z)  # [n, window, 1] each, log_scale clamped
        x = m + torch.exp(log_scale) * torch.randn(m.shape)
        return x * std + mean_r

    cf = torch.compile(f)
    mu, lv = torch.zeros(n, LATENT), torch.zeros(n, LATENT)

    def run():
        with torch.no_grad():
            return cf(mu, lv)

    return run


def parity(model, gen, window: int) -> float:
    """Native decode vs the torch decoder on the same z and noise."""
    import torch

    from stressvae import native

    n = 2000
    z = native.sample_latent(np.zeros(LATENT, np.float32), np.zeros(LATENT, np.float32), n, seed=1)
    got = gen.decoder.decode(z, seed=1)
    with torch.no_grad():
        mean, scale = model.decode(torch.from_numpy(z))
    eps = native.normals(n, window, seed=1, tag=native.TAG_OBSERVATION).reshape(n, window, 1)
    ref = mean.double().numpy() + scale.double().numpy() * eps
    return float(np.abs(got - ref).max() / np.abs(ref).max())


def case(window: int, n: int, repeats: int, with_compile: bool) -> dict:
    model, gen = build(window)
    err = parity(model, gen, window)
    z = np.random.default_rng(0).normal(size=(n, LATENT)).astype(np.float32)
    sides = {
        "native sample": lambda: gen.sample(n, seed=7),
        "native stream": lambda: sum(len(c) for c in gen.iter_chunks(n, seed=7)),
        "native z given": lambda: gen.decoder.decode(z, seed=7),
        "torch eager": torch_path(model, n),
        "torch eager 25k": torch_chunked(model, n, 25_000),
    }
    if with_compile:
        try:
            fn = compiled_path(model, n)
            fn()
            sides["torch.compile"] = fn
        except Exception as err_c:  # a peer that does not compile is skipped
            print(f"torch.compile skipped: {type(err_c).__name__}: {err_c}", file=sys.stderr)
    for fn in sides.values():  # warm-up: 2 calls and 1 s each
        t_end, calls = time.perf_counter() + 1.0, 0
        while calls < 2 or time.perf_counter() < t_end:
            fn()
            calls += 1
    times = {k: [] for k in sides}
    for _ in range(repeats):
        for k, fn in sides.items():
            t0 = time.perf_counter()
            r = fn()
            times[k].append(time.perf_counter() - t0)
            del r
    flops = 2 * (LATENT * HIDDEN[0] + HIDDEN[0] * HIDDEN[1] + HIDDEN[1] * 2 * window) * n
    return {
        "window": window,
        "n": n,
        "err": err,
        "flops": flops,
        "isa": gen.decoder.isa,
        "times": {k: (statistics.median(v), min(v), max(v)) for k, v in times.items()},
    }


MEMORY = r"""
import json, sys, numpy as np
sys.path.insert(0, sys.argv[4])
import bench_generate as b
side, window, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
model, gen = b.build(window)
def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
run = {"native sample": lambda: gen.sample(n, seed=7),
       "native stream": lambda: sum(len(c) for c in gen.iter_chunks(n, seed=7)),
       "torch eager": b.torch_path(model, n)}[side]
gen.sample(1000, seed=1); b.torch_path(model, 1000)()
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
base = status("VmRSS:")
r = run()
print(json.dumps({"growth": status("VmHWM:") - base, "out": n * window * 4}))
"""


def in_process(args_list: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, *args_list], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--windows", default="64,252")
    p.add_argument("--sizes", default="100000,1000000")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-compile", dest="compile", action="store_false")
    p.add_argument("--no-memory", dest="memory", action="store_false")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--case", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.case:
        w, n, r, c = args.case.split(",")
        print(json.dumps(case(int(w), int(n), int(r), c == "1")))
        return 0
    if args.quick:
        args.windows, args.sizes, args.repeats = "64", "100000", 3
    import os

    import torch

    print(
        f"# CPU {os.cpu_count()} cores, torch {torch.__version__} threads {torch.get_num_threads()}"
    )
    rows = []
    for w in [int(x) for x in args.windows.split(",")]:
        for n in [int(float(x)) for x in args.sizes.split(",")]:
            r = in_process(["--case", f"{w},{n},{args.repeats},{int(args.compile)}"])
            rows.append(r)
            t = r["times"]
            print(
                f"  window {w} n={n:.0e}: "
                + ", ".join(f"{k} {v[0] * 1e3:.0f} ms" for k, v in t.items())
                + f"; err {r['err']:.1e}",
                flush=True,
            )
    mem = []
    if args.memory:
        here = os.path.dirname(os.path.abspath(__file__))
        for side in ("native sample", "native stream", "torch eager"):
            res = subprocess.run(
                [sys.executable, "-c", MEMORY, side, "252", "1000000", here],
                capture_output=True,
                text=True,
                check=True,
            )
            mem.append((side, json.loads(res.stdout.strip().splitlines()[-1])))

    print()
    print("## Generation, CPU: native fused sample + decode vs the torch model path")
    print()
    print(
        "| window | n | native sample | native stream | native z given | torch eager "
        "| torch eager 25k chunks | torch.compile | **best torch / native** | eager / native "
        "| native GFLOP/s | M scenarios/s | max rel err |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        t = r["times"]
        nat = t["native sample"][0]

        def fmt(k, t=t):
            return (
                f"{t[k][0] * 1e3:.0f} ({t[k][1] * 1e3:.0f}-{t[k][2] * 1e3:.0f})" if k in t else "-"
            )

        best_t = min(v[0] for k, v in t.items() if k.startswith("torch"))
        best_n = min(t["native sample"][0], t["native stream"][0])
        print(
            f"| {r['window']} | {r['n']:.0e} | {fmt('native sample')} | {fmt('native stream')} "
            f"| {fmt('native z given')} | {fmt('torch eager')} | {fmt('torch eager 25k')} "
            f"| {fmt('torch.compile')} | **{best_t / best_n:.1f}x** "
            f"| {t['torch eager'][0] / nat:.1f}x | {r['flops'] / best_n / 1e9:.0f} "
            f"| {r['n'] / best_n / 1e6:.2f} | {r['err']:.1e} |"
        )
    if mem:
        print()
        print("Peak RSS growth, window 252, n = 1e6 (output 961 MiB), fresh process per side:")
        print()
        print("| side | peak growth MiB | / output |")
        print("|---|---:|---:|")
        for side, m in mem:
            print(f"| {side} | {m['growth'] / 2**20:.0f} | {m['growth'] / m['out']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

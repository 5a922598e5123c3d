"""The factor model's generation, CPU: the native fused decode (latent draw,
MLP, factor draw and epilogue in one kernel) vs the torch model path, in one
run, and the streamed generation's memory.

    python benchmarks/bench_factor.py               # 20 assets x 64 days, k = 4, n = 1e6
    python benchmarks/bench_factor.py --n 100000    # a quicker run

Model: ScenarioVAE(window=64, n_assets=20, factors=4), latent 16, hidden
(256, 256), random weights (speed does not depend on training): the last
layer gives (2 + 4) x 1280 = 7680 numbers per scenario. n scenarios are
generated in chunks of ``--chunk`` (16,384) into one reused output buffer,
so every side streams and none holds n scenarios (n = 1e6 would be 5 GB).

Sides, each on the same chunks:

- native: ``NativeDecoder.sample`` (z drawn in-kernel from the prior) into
  the reused buffer;
- native generator: ``ScenarioGenerator.iter_chunks`` (the public path:
  the same kernel plus the generator's bookkeeping, a new array per chunk);
- torch eager: ``z = randn``; ``mean, log_scale, loadings =
  model.decoder(z)``; ``eps = randn(n, T, A + k)``;
  ``x = model.decoder.obs.draw(...)``; unscale;
- torch.compile of that function (compile time excluded; skipped with the
  reason when it does not compile).

Before timing, the native output is checked against the torch model fed
the same z and noise (max error relative to max |ref|). Timing: one warm-up
chunk per side, then ``--repeats`` alternating passes over all n, median
(min-max). The headline is best torch / native. Memory: peak RSS growth of
streaming n scenarios through ``iter_chunks`` in a fresh process, for n and
n / 4 (bounded: the same growth, set by the chunk, not by n).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import numpy as np

WINDOW, ASSETS, FACTORS, LATENT, HIDDEN = 64, 20, 4, 16, (256, 256)


def build():
    import torch

    from stressvae import ScenarioVAE
    from stressvae.data import Scaler

    torch.manual_seed(0)
    m = ScenarioVAE(
        window=WINDOW, n_assets=ASSETS, latent_dim=LATENT, hidden_dims=HIDDEN, factors=FACTORS
    )
    rng = np.random.default_rng(0)
    m.set_data_stats(Scaler(rng.normal(3e-4, 1e-4, ASSETS), rng.uniform(0.01, 0.02, ASSETS)), None)
    return m.eval()


def torch_fn(model):
    import torch

    std, mean_r = model.scaler_std, model.scaler_mean
    dec = model.decoder

    def f(z):
        mean, log_scale, loadings = dec(z)
        eps = torch.randn(z.shape[0], WINDOW, ASSETS + FACTORS)
        return dec.obs.draw(mean, log_scale, eps, loadings) * std + mean_r

    return f


def chunks(n: int, chunk: int):
    return [(s, min(chunk, n - s)) for s in range(0, n, chunk)]


def parity(model, dec) -> float:
    import torch

    from stressvae import native

    n = 1000
    z = np.random.default_rng(1).normal(size=(n, LATENT)).astype(np.float32)
    got = dec.decode(z, seed=1)
    eps = native.decode_noise(n, WINDOW, ASSETS, seed=1, factors=FACTORS)
    with torch.no_grad():
        mean, ls, b = (p.double() for p in model.decoder(torch.from_numpy(z)))
        x = model.decoder.obs.draw(mean, ls, torch.from_numpy(eps).double(), b)
        ref = (x * model.scaler_std.double() + model.scaler_mean.double()).numpy()
    return float(np.abs(got - ref).max() / np.abs(ref).max())


def case(n: int, chunk: int, repeats: int, with_compile: bool) -> dict:
    import torch

    from stressvae import ScenarioGenerator, native

    model = build()
    weights = model.export_decoder()
    dec = native.NativeDecoder(weights)
    err = parity(model, dec)
    zero = np.zeros(LATENT, np.float32)
    buf = np.empty((chunk, WINDOW, ASSETS), np.float32)
    parts = chunks(n, chunk)

    def native_side(parts=parts):
        for s, m in parts:
            dec.sample(zero, zero, m, seed=7, offset=s, out=buf[:m], check_finite=False)

    gen = ScenarioGenerator(model, device="cpu")

    def gen_side():
        return sum(len(c) for c in gen.iter_chunks(n, seed=7, chunk_size=chunk))

    eager = torch_fn(model)

    def torch_side(fn):
        def go(parts=parts):
            with torch.no_grad():
                for _, m in parts:
                    fn(torch.randn(m, LATENT))

        return go

    sides = {"native": native_side, "native generator": gen_side, "torch eager": torch_side(eager)}
    if with_compile:
        try:
            cf = torch.compile(eager)
            with torch.no_grad():
                for m in {m for _, m in parts}:  # compile every chunk shape up front
                    cf(torch.randn(m, LATENT))
            sides["torch.compile"] = torch_side(cf)
        except Exception as e:  # a peer that does not compile is skipped
            print(f"torch.compile skipped: {type(e).__name__}: {e}", file=sys.stderr)
    warm = parts[:1]
    for k, fn in sides.items():  # warm-up: one chunk
        if k == "native generator":
            sum(len(c) for c in gen.iter_chunks(chunk, seed=7, chunk_size=chunk))
        else:
            fn(warm)
    times = {k: [] for k in sides}
    for _ in range(repeats):
        for k, fn in sides.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    flops = 2 * (LATENT * HIDDEN[0] + HIDDEN[0] * HIDDEN[1] + HIDDEN[1] * 6 * WINDOW * ASSETS) * n
    return {
        "n": n,
        "chunk": chunk,
        "err": err,
        "flops": flops,
        "isa": dec.isa,
        "threads": dec.num_threads,
        "torch_threads": torch.get_num_threads(),
        "times": {k: (statistics.median(v), min(v), max(v)) for k, v in times.items()},
    }


MEMORY = r"""
import json, sys
sys.path.insert(0, sys.argv[3])
import bench_factor as b
from stressvae import ScenarioGenerator
n, chunk = int(sys.argv[1]), int(sys.argv[2])
gen = ScenarioGenerator(b.build(), device="cpu")
for c in gen.iter_chunks(chunk, seed=1, chunk_size=chunk):
    pass
def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
base = status("VmRSS:")
rows = sum(len(c) for c in gen.iter_chunks(n, seed=7, chunk_size=chunk))
print(json.dumps({"growth": status("VmHWM:") - base, "rows": rows,
                  "chunk_bytes": chunk * b.WINDOW * b.ASSETS * 4,
                  "total_bytes": n * b.WINDOW * b.ASSETS * 4}))
"""


def memory(n: int, chunk: int) -> dict:
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    res = subprocess.run(
        [sys.executable, "-c", MEMORY, str(n), str(chunk), here],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=float, default=1e6)
    p.add_argument("--chunk", type=int, default=16384)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-compile", dest="compile", action="store_false")
    p.add_argument("--no-memory", dest="memory", action="store_false")
    p.add_argument("--case", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    n = int(args.n)
    if args.case:
        print(json.dumps(case(n, args.chunk, args.repeats, args.case == "1")))
        return 0
    import os

    print(f"# CPU {os.cpu_count()} cores; {ASSETS} assets x {WINDOW} days, {FACTORS} factors")
    out = subprocess.run(
        [sys.executable, __file__, "--case", str(int(args.compile)), "--n", str(n),
         "--chunk", str(args.chunk), "--repeats", str(args.repeats)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    sys.stderr.write(out.stderr)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    t = r["times"]
    best_t = min(v[0] for k, v in t.items() if k.startswith("torch"))
    best_n = min(v[0] for k, v in t.items() if k.startswith("native"))

    def fmt(k):
        return f"{t[k][0]:.2f} ({t[k][1]:.2f}-{t[k][2]:.2f})" if k in t else "-"

    print()
    print(
        f"## Factor model generation, CPU ({r['isa']}, native {r['threads']} threads, torch "
        f"{r['torch_threads']}): n = {n:.0e}, chunks of {r['chunk']}, seconds, median (min-max)"
    )
    print()
    print(
        "| native | native generator | torch eager | torch.compile | **best torch / native** "
        "| native GFLOP/s | M scenarios/s | max rel err |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {fmt('native')} | {fmt('native generator')} | {fmt('torch eager')} "
        f"| {fmt('torch.compile')} | **{best_t / best_n:.1f}x** "
        f"| {r['flops'] / best_n / 1e9:.0f} | {n / best_n / 1e6:.3f} | {r['err']:.1e} |"
    )
    if args.memory:
        print()
        print(f"Streamed generation (iter_chunks, chunks of {args.chunk}), peak RSS growth:")
        print()
        print("| n | streamed output MiB | one chunk MiB | peak growth MiB |")
        print("|---:|---:|---:|---:|")
        for m in (max(args.chunk, n // 4), n):
            res = memory(m, args.chunk)
            assert res["rows"] == m
            print(
                f"| {m:.0e} | {res['total_bytes'] / 2**20:.0f} | {res['chunk_bytes'] / 2**20:.0f} "
                f"| {res['growth'] / 2**20:.0f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

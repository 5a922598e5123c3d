"""GPU suite: build, check and time the CUDA sampler in one command.

On a GPU machine (its own Python and torch, no network), from the repo root:

    python benchmarks/gpu_suite.py            # build + CUDA tests + timing table
    python benchmarks/gpu_suite.py --no-build # reuse the built module

Steps: (1) ``STRESSVAE_CUDA=force pip install --no-build-isolation --no-deps
-e .`` (needs only setuptools and pybind11 there: no vectorbt, arch or dask);
(2) pytest on the CUDA tests and the CPU sampling tests; (3) native CUDA
sampling vs the torch eager expression ``mu + torch.exp(0.5 * lv) *
torch.randn(n, d, device="cuda")``, timed with CUDA events (median of
alternating runs after warm-up), bit-identity with the CPU checked first, and
the fraction of the memory-bandwidth floor reached: bytes the kernel must move
(z written; mu / logvar read in per-row mode) over the device-to-device copy
bandwidth measured in the same run. (4) The fused GRU rollout
(``CudaRollout``, the recurrent decoder, every day of a path in one kernel) vs
torch eager (``model.rollout_scaled`` on the GPU fed the same native noise from
``native.rollout_noise(..., device="cuda")``, z from the native sampler) and,
when it runs, ``torch.compile`` of one GRU step looped over the days: n = 1e5
and 1e6 paths of 252 days, parity with the CPU rollout checked first; then
10M paths x 252 days in 1M-path calls into one reused output. (5) The factor
model's fused decode (``CudaDecoder``, 20 assets x 64 days, 4 factors) vs torch
eager on the GPU fed the same native noise (``native.decode_noise``), CPU
parity first. The tables are printed last.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sh(cmd: list[str], env: dict | None = None) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True, env={**os.environ, **(env or {})})


def build() -> None:
    sh(
        [sys.executable, "-m", "pip", "install", "--no-build-isolation", "--no-deps", "-e", "."],
        env={"STRESSVAE_CUDA": "force"},
    )


def run_tests() -> None:
    sh([sys.executable, "-m", "pytest", "-q", "-x", "tests/test_cuda.py", "tests/test_sampling.py"])


def events_ms(fn, repeats: int) -> list[float]:
    import torch

    out = []
    for _ in range(repeats):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        out.append(start.elapsed_time(stop))
    return out


def copy_bandwidth() -> float:
    """Device-to-device copy, bytes read + written per second."""
    import torch

    a = torch.empty(2**28, dtype=torch.float32, device="cuda")  # 1 GiB
    b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    ms = statistics.median(events_ms(lambda: b.copy_(a), 10))
    return 2 * a.numel() * 4 / (ms * 1e-3)


def timing(sizes: list[int], dims: list[int], repeats: int) -> list[dict]:
    import numpy as np
    import torch

    from stressvae import native

    bw = copy_bandwidth()
    print(f"# {torch.cuda.get_device_name()} copy bandwidth {bw / 1e12:.2f} TB/s", flush=True)
    rows = []
    for mode in ("prior", "rows"):
        for d in dims:
            for n in sizes:
                # inputs + native out + torch's temporaries (randn, exp, product, sum)
                need = n * d * 4 * ((1 if mode == "prior" else 3) + 4)
                free, _total = torch.cuda.mem_get_info()
                if need > 0.8 * free:
                    print(f"skip {mode} n={n:.0e} d={d}: needs {need / 2**30:.0f} GiB", flush=True)
                    continue
                rng = np.random.default_rng(n + d)
                k = 1 if mode == "prior" else n
                mu_np = rng.normal(0, 1, (k, d)).astype(np.float32)
                lv_np = rng.uniform(-4, 1, (k, d)).astype(np.float32)
                if mode == "prior":
                    mu_np, lv_np = mu_np[0], lv_np[0]
                mu, lv = torch.from_numpy(mu_np).cuda(), torch.from_numpy(lv_np).cuda()
                nn = n if mode == "prior" else None
                out = torch.empty((n, d), device="cuda")

                def nat(mu=mu, lv=lv, nn=nn, out=out):
                    native.sample_latent(mu, lv, nn, seed=7, out=out, check_finite=False)

                def tor(mu=mu, lv=lv, n=n, d=d):
                    return mu + torch.exp(0.5 * lv) * torch.randn(n, d, device="cuda")

                # bit-identity with the CPU on the first 10^5 rows
                m = min(n, 100_000)
                cpu = native.sample_latent(
                    mu_np if mode == "prior" else mu_np[:m],
                    lv_np if mode == "prior" else lv_np[:m],
                    m if mode == "prior" else None,
                    seed=7,
                )
                nat()
                torch.cuda.synchronize()
                same = bool(
                    np.array_equal(out[:m].cpu().numpy().view(np.uint32), cpu.view(np.uint32))
                )
                for _ in range(3):
                    nat()
                    tor()
                t_nat, t_tor = [], []
                for _ in range(repeats):
                    t_nat += events_ms(nat, 1)
                    t_tor += events_ms(tor, 1)
                bytes_moved = n * d * 4 * (1 if mode == "prior" else 3)
                med_n, med_t = statistics.median(t_nat), statistics.median(t_tor)
                rows.append(
                    {
                        "mode": mode, "n": n, "d": d, "native_ms": med_n, "torch_ms": med_t,
                        "bitwise": same, "bw_frac": bytes_moved / (med_n * 1e-3) / bw,
                        "spread": (min(t_nat), max(t_nat)),
                    }
                )  # fmt: skip
                print(rows[-1], flush=True)
                del mu, lv, out
                torch.cuda.empty_cache()
    return rows


def gru_model(hidden: int, latent: int, assets: int):
    """A recurrent-decoder model with random weights (timings do not need training)."""
    import numpy as np
    import torch

    from stressvae import ScenarioVAE
    from stressvae.data import Scaler

    torch.manual_seed(0)
    m = ScenarioVAE(window=64, n_assets=assets, latent_dim=latent, decoder="gru", rnn_hidden=hidden)
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for p in m.decoder.parameters():
            p.copy_(torch.as_tensor(rng.normal(0, 1 / np.sqrt(p.shape[-1]), p.shape)))
    m.set_data_stats(Scaler(rng.normal(0, 1e-3, assets), rng.uniform(0.005, 0.03, assets)), None)
    return m.eval()


def compiled_step(model):
    """torch.compile of one GRU day (gates, head, noise), or None when it does not run."""
    import torch

    from stressvae.model import LOG_SCALE_MAX, LOG_SCALE_MIN

    dec = model.decoder
    w_ih, w_hh, b_ih, b_hh = (t.detach() for t in dec.cell_weights())
    w_o, b_o = dec.head.weight.detach(), dec.head.bias.detach()

    def step(x_prev, z, h, eps_t):
        inp = torch.cat([x_prev, x_prev.abs(), z], dim=-1)
        gi = inp @ w_ih.T + b_ih
        gh = h @ w_hh.T + b_hh
        i_r, i_u, i_n = gi.chunk(3, -1)
        h_r, h_u, h_n = gh.chunk(3, -1)
        r, u = torch.sigmoid(i_r + h_r), torch.sigmoid(i_u + h_u)
        n = torch.tanh(i_n + r * h_n)
        h = n + u * (h - n)
        mean, raw = (h @ w_o.T + b_o).chunk(2, -1)
        x = mean + torch.exp(raw.clamp(LOG_SCALE_MIN, LOG_SCALE_MAX)) * eps_t
        return x, h

    try:
        fn = torch.compile(step)
        with torch.no_grad():
            z = torch.zeros(8, model.latent_dim, device="cuda")
            h = torch.zeros(8, dec.hidden, device="cuda")
            x = torch.zeros(8, model.n_assets, device="cuda")
            fn(x, z, h, torch.zeros_like(x))
        return fn
    except Exception as err:  # no triton / no compiler on the machine
        print(f"torch.compile of the GRU step does not run here: {err!r}"[:300], flush=True)
        return None


def rollout_timing(sizes: list[int], total: int, chunk: int, hidden: int, latent: int) -> dict:
    """CudaRollout vs torch eager vs torch.compile, 252 days, prior draws."""
    import numpy as np
    import torch

    from stressvae import native

    horizon, assets, seed = 252, 1, 5
    model = gru_model(hidden, latent, assets).cuda()
    ex = model.export_decoder()
    gpu = native.CudaRollout(ex)
    mu = torch.zeros(latent, device="cuda")
    lv = torch.zeros(latent, device="cuda")
    std, mean = model.scaler_std, model.scaler_mean

    # parity with the CPU rollout first (2000 paths, latent drift on)
    m = 2000
    cpu = native.NativeRollout(ex).sample(
        mu.cpu().numpy(), lv.cpu().numpy(), m, horizon=horizon, seed=seed, phi=0.97
    )
    got = gpu.sample(mu, lv, m, horizon=horizon, seed=seed, phi=0.97).cpu().numpy()
    err = np.abs(got.astype(np.float64) - cpu)
    parity = bool(np.all(err <= 1e-5 * np.abs(cpu) + 1e-5 * np.abs(cpu).max()))
    bitwise = bool(np.array_equal(got.view(np.uint32), cpu.view(np.uint32)))
    print(f"# rollout parity with the CPU: {parity} (bitwise {bitwise})", flush=True)

    def torch_inputs(n):
        z = native.sample_latent(mu, lv, n, seed=seed)
        eps, _ = native.rollout_noise(n, horizon, assets, latent, seed=seed, device="cuda")
        return z, eps

    def eager(n):
        with torch.no_grad():
            z, eps = torch_inputs(n)
            return model.rollout_scaled(z, horizon, eps) * std + mean

    step = compiled_step(model)

    def compiled(n):
        with torch.no_grad():
            z, eps = torch_inputs(n)
            h = torch.tanh(model.decoder.init(z))
            x = z.new_zeros(n, assets)
            xs = []
            for t in range(horizon):
                x, h = step(x, z, h, eps[:, t])
                xs.append(x)
            return torch.stack(xs, 1) * std + mean

    rows = []
    for n in sizes:
        out = torch.empty((n, horizon, assets), device="cuda")

        def nat(n=n, out=out, phi=1.0):
            gpu.sample(mu, lv, n, horizon=horizon, seed=seed, out=out, phi=phi, check_finite=False)

        reps = 5 if n <= 100_000 else 3
        nat()
        t_nat = statistics.median(events_ms(nat, reps))
        t_drift = statistics.median(events_ms(lambda nat=nat: nat(phi=0.97), reps))
        eager(n)
        t_eager = statistics.median(events_ms(lambda n=n: eager(n), reps))
        t_comp = None
        if step is not None:
            try:
                compiled(n)
                t_comp = statistics.median(events_ms(lambda n=n: compiled(n), reps))
            except Exception as err:
                print(f"torch.compile step failed at n={n}: {err!r}"[:300], flush=True)
        rows.append({"n": n, "native_ms": t_nat, "drift_ms": t_drift, "eager_ms": t_eager,
                     "compiled_ms": t_comp})  # fmt: skip
        print(rows[-1], flush=True)
        del out
        torch.cuda.empty_cache()

    # 10M paths: 1M per call into one reused output
    out = torch.empty((chunk, horizon, assets), device="cuda")

    def big():
        for s in range(0, total, chunk):
            gpu.sample(mu, lv, chunk, horizon=horizon, seed=seed, offset=s, out=out,
                       check_finite=False)  # fmt: skip

    big()
    t_big = statistics.median(events_ms(big, 2))
    return {"rows": rows, "total": total, "chunk": chunk, "total_ms": t_big, "parity": parity,
            "bitwise": bitwise, "hidden": hidden, "latent": latent, "horizon": horizon}  # fmt: skip


def print_rollout(r: dict) -> None:
    import torch

    h, L, T = r["hidden"], r["latent"], r["horizon"]
    fma = 3 * h * (h + L + 2) + 2 * h  # model fmas per path-day: gates (h, z, x) and head
    print()
    print(
        f"## GRU rollout, {torch.cuda.get_device_name()}: hidden {h}, latent {L}, 1 asset, "
        f"{T} days (CPU parity: {'yes' if r['parity'] else 'NO'}, bitwise "
        f"{'yes' if r['bitwise'] else 'no'})"
    )
    print()
    print(
        "| n | CudaRollout ms | with drift (phi .97) ms | torch eager ms | torch.compile ms "
        "| eager / native | compile / native | native model GFLOP/s |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in r["rows"]:
        c, nat = row["compiled_ms"], row["native_ms"]
        gflops = 2 * fma * row["n"] * T / (nat * 1e-3) / 1e9
        comp = "n/a" if c is None else f"{c:.1f}"
        comp_ratio = "n/a" if c is None else f"{c / nat:.1f}x"
        print(
            f"| {row['n']:.0e} | {nat:.1f} | {row['drift_ms']:.1f} | {row['eager_ms']:.1f} "
            f"| {comp} | **{row['eager_ms'] / nat:.1f}x** | {comp_ratio} | {gflops:.0f} |"
        )
    secs = r["total_ms"] / 1e3
    print()
    print(
        f"{r['total']:.0e} paths x {T} days ({r['chunk']:.0e} per call, one reused output): "
        f"{secs:.2f} s, {r['total'] / secs / 1e6:.2f} M paths/s"
    )


def factor_timing(sizes: list[int], chunk: int) -> dict:
    """CudaDecoder vs torch eager, the factor model: 20 assets x 64 days, 4
    factors, latent 16, hidden 256-256, prior draws in chunks into one reused
    output; CPU parity first."""
    import numpy as np
    import torch

    from stressvae import ScenarioVAE, native
    from stressvae.data import Scaler

    window, assets, k, latent, seed = 64, 20, 4, 16, 5
    torch.manual_seed(0)
    model = ScenarioVAE(
        window=window, n_assets=assets, latent_dim=latent, hidden_dims=(256, 256), factors=k
    )
    rng = np.random.default_rng(0)
    model.set_data_stats(Scaler(rng.normal(0, 1e-3, assets), rng.uniform(0.01, 0.02, assets)), None)
    model = model.eval().cuda()
    ex = model.export_decoder()
    gpu = native.CudaDecoder(ex)
    mu = torch.zeros(latent, device="cuda")
    lv = torch.zeros(latent, device="cuda")
    m = 4000
    cpu = native.NativeDecoder(ex).sample(mu.cpu().numpy(), lv.cpu().numpy(), m, seed=seed)
    got = gpu.sample(mu, lv, m, seed=seed).cpu().numpy()
    err = np.abs(got.astype(np.float64) - cpu)
    parity = bool(np.all(err <= 1e-5 * np.abs(cpu) + 1e-5 * np.abs(cpu).max()))
    print(f"# factor decode parity with the CPU: {parity}", flush=True)
    std, mean, dec = model.scaler_std, model.scaler_mean, model.decoder

    def eager(n, offset):
        with torch.no_grad():
            z = native.sample_latent(mu, lv, n, seed=seed, offset=offset)
            eps = native.decode_noise(
                n, window, assets, seed=seed, offset=offset, factors=k, device="cuda"
            )
            mean_, ls, b = dec(z)
            return dec.obs.draw(mean_, ls, eps, b) * std + mean

    out = torch.empty((chunk, window, assets), device="cuda")
    rows = []
    for n in sizes:

        def nat(n=n):
            for s in range(0, n, chunk):
                gpu.sample(mu, lv, min(chunk, n - s), seed=seed, offset=s,
                           out=out[: min(chunk, n - s)], check_finite=False)  # fmt: skip

        def tor(n=n):
            for s in range(0, n, chunk):
                eager(min(chunk, n - s), s)

        nat()
        tor()
        rows.append({"n": n, "native_ms": statistics.median(events_ms(nat, 3)),
                     "eager_ms": statistics.median(events_ms(tor, 3))})  # fmt: skip
        print(rows[-1], flush=True)
    return {"rows": rows, "parity": parity, "chunk": chunk}


def print_factor(r: dict) -> None:
    import torch

    print()
    print(
        f"## Factor model decode, {torch.cuda.get_device_name()}: 20 assets x 64 days, 4 "
        f"factors, hidden 256-256, chunks of {r['chunk']} (CPU parity: "
        f"{'yes' if r['parity'] else 'NO'})"
    )
    print()
    print("| n | CudaDecoder ms | torch eager ms | eager / native | native M scenarios/s |")
    print("|---:|---:|---:|---:|---:|")
    for row in r["rows"]:
        nat = row["native_ms"]
        print(
            f"| {row['n']:.0e} | {nat:.1f} | {row['eager_ms']:.1f} "
            f"| **{row['eager_ms'] / nat:.1f}x** | {row['n'] / (nat * 1e-3) / 1e6:.2f} |"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--no-build", dest="build", action="store_false")
    p.add_argument("--no-tests", dest="tests", action="store_false")
    p.add_argument("--sizes", default="100000,1000000,10000000,100000000")
    p.add_argument("--dims", default="16,64")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--no-sampling", dest="sampling", action="store_false")
    p.add_argument("--no-rollout", dest="rollout", action="store_false")
    p.add_argument("--rollout-sizes", default="100000,1000000")
    p.add_argument("--rollout-total", default="10000000")
    p.add_argument("--rollout-chunk", default="1000000")
    p.add_argument("--rnn-hidden", default="64,128")
    p.add_argument("--latent", type=int, default=16)
    p.add_argument("--no-factor", dest="factor", action="store_false")
    p.add_argument("--factor-sizes", default="100000,1000000")
    p.add_argument("--factor-chunk", default="100000")
    args = p.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("gpu_suite: no CUDA device visible to torch; nothing to do", file=sys.stderr)
        return 2
    if args.build:
        build()
    if args.tests:
        run_tests()
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    dims = [int(s) for s in args.dims.split(",")]
    rows = timing(sizes, dims, args.repeats) if args.sampling else []
    rolls = []
    if args.rollout:
        for hidden in (int(h) for h in args.rnn_hidden.split(",")):
            rolls.append(
                rollout_timing(
                    [int(float(s)) for s in args.rollout_sizes.split(",")],
                    int(float(args.rollout_total)),
                    int(float(args.rollout_chunk)),
                    hidden,
                    args.latent,
                )
            )

    factor = None
    if args.factor:
        factor = factor_timing(
            [int(float(s)) for s in args.factor_sizes.split(",")], int(float(args.factor_chunk))
        )

    print()
    print(f"## Sampling, {torch.cuda.get_device_name()}: native CUDA vs torch eager")
    print()
    print(
        "| mu/lv | n | d | native ms | torch ms | ratio | native GB/s | of copy bw "
        "| bit-identical to CPU |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        gbs = (
            r["n"] * r["d"] * 4 * (1 if r["mode"] == "prior" else 3) / (r["native_ms"] * 1e-3) / 1e9
        )
        print(
            f"| {r['mode']} | {r['n']:.0e} | {r['d']} | {r['native_ms']:.3f} | {r['torch_ms']:.3f} "
            f"| **{r['torch_ms'] / r['native_ms']:.1f}x** | {gbs:.0f} | {r['bw_frac']:.0%} "
            f"| {'yes' if r['bitwise'] else 'NO'} |"
        )
    for roll in rolls:
        print_rollout(roll)
    if factor is not None:
        print_factor(factor)
    ok = all(r["bitwise"] for r in rows) and all(roll["parity"] for roll in rolls)
    ok = ok and (factor is None or factor["parity"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

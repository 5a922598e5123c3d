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
bandwidth measured in the same run. The table is printed last.
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--no-build", dest="build", action="store_false")
    p.add_argument("--no-tests", dest="tests", action="store_false")
    p.add_argument("--sizes", default="100000,1000000,10000000,100000000")
    p.add_argument("--dims", default="16,64")
    p.add_argument("--repeats", type=int, default=20)
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
    rows = timing(sizes, dims, args.repeats)

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
    return 0 if all(r["bitwise"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

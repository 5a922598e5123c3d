"""The ``stressvae`` command.

For now it has ``demo`` (draws latent scenarios through the native core and
says what it did) and ``info`` (what was built). Later stages add train,
generate, stress, evaluate, anomalies, report and bench.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from . import native
from ._version import __version__


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


def _positive_int(text: str) -> int:
    try:
        value = int(float(text)) if "e" in text.lower() else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _device_inputs(device: str, arrays: list[np.ndarray]):
    """numpy arrays for the CPU, torch tensors on the GPU for cuda."""
    if device == "cpu":
        return arrays
    import torch

    return [torch.from_numpy(a).to(device) for a in arrays]


def _resolve_device(device: str) -> str:
    info = native.native_info()
    if device == "auto":
        return "cuda" if info["cuda"]["usable"] else "cpu"
    if device.startswith("cuda") and not info["cuda"]["usable"]:
        raise CliError(f"--device {device}: no usable CUDA device ({info['cuda']['reason']})")
    return device


def _to_numpy(x) -> np.ndarray:
    return x if isinstance(x, np.ndarray) else x.cpu().numpy()


def cmd_demo(args: argparse.Namespace) -> int:
    n, d, seed = args.n, args.latent_dim, args.seed
    device = _resolve_device(args.device)
    rng = np.random.default_rng(seed)
    say = (lambda *a: None) if args.quiet else print

    say(f"stressvae {__version__} demo: {n:,} latent scenarios, latent dimension {d}, seed {seed}")
    say(
        f"device: {device}"
        + (f" ({native.native_info()['core']['isa']})" if device == "cpu" else "")
    )

    # 1. The prior N(0, I): the starting point of every generated market.
    mu0, lv0 = _device_inputs(device, [np.zeros(d, np.float32), np.zeros(d, np.float32)])
    native.sample_latent(mu0, lv0, 1024, seed=seed)  # warm up (CUDA self-check, pages)
    t0 = time.perf_counter()
    z = native.sample_latent(mu0, lv0, n, seed=seed)
    if device != "cpu":
        import torch

        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    zn = _to_numpy(z)
    mean, std = float(zn.mean()), float(zn.std())
    say(
        f"prior      z ~ N(0, I): {dt * 1e3:8.1f} ms  {n / dt / 1e6:7.2f} M scenarios/s  "
        f"{dt / (n * d) * 1e9:5.2f} ns/normal  mean {mean:+.4f}  std {std:.4f}"
    )

    # 2. Around a few anchors (what augmentation of tail windows does).
    k = 8
    mu_k = rng.normal(0, 1, (k, d)).astype(np.float32)
    lv_k = rng.uniform(-3, 0, (k, d)).astype(np.float32)
    index = np.arange(n, dtype=np.int64) % k
    mu_k_d, lv_k_d, index_d = _device_inputs(device, [mu_k, lv_k, index])
    t0 = time.perf_counter()
    zt = native.sample_latent(mu_k_d, lv_k_d, seed=seed, index=index_d, scale=0.5)
    if device != "cpu":
        import torch

        torch.cuda.synchronize()
    dt_t = time.perf_counter() - t0
    ztn = _to_numpy(zt)
    want_std = 0.5 * np.exp(0.5 * lv_k)
    got_std = np.stack([ztn[index == j].std(axis=0) for j in range(k)])
    worst = float(np.max(np.abs(got_std / want_std - 1)))
    say(
        f"anchors    {k} anchors, scale 0.5: {dt_t * 1e3:8.1f} ms  "
        f"{n / dt_t / 1e6:7.2f} M scenarios/s  std off by at most {worst:.1%}"
    )

    # 3. Reproducibility: a chunk drawn alone equals the same rows of the full draw.
    start = n // 3
    stop = min(n, start + 1000)
    chunk = _to_numpy(native.sample_latent(mu0, lv0, stop - start, seed=seed, offset=start))
    same = np.array_equal(chunk.view(np.uint32), zn[start:stop].view(np.uint32))
    say(
        f"reproduce  scenarios {start:,}..{stop - 1:,} drawn alone "
        f"{'equal' if same else 'DIFFER FROM'} the full draw, bit for bit"
    )

    counts = native.native_info()["counts"]
    key = "sample_cuda_calls" if device != "cpu" else "sample_cpu_calls"
    say(f"native     {counts[key]} calls of the {device.split(':')[0]} sampler in this process")
    say("next       the VAE, decoder and backtests build on these draws (see README)")
    if not same:
        raise CliError("reproducibility check failed: chunked draw differs from the full draw")
    if abs(mean) > 0.01 or abs(std - 1) > 0.01 or worst > 0.05:
        raise CliError(f"sample moments are off: mean {mean}, std {std}, anchor std error {worst}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    print(json.dumps(native.native_info(), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stressvae",
        description="Stress-test trading strategies on synthetic markets learned by a VAE.",
    )
    parser.add_argument("--version", action="version", version=f"stressvae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo",
        help="draw latent market scenarios through the native core and report",
        description=(
            "Draws N latent scenarios (the random inputs of generated markets) from the "
            "prior and around a few anchors through the native sampler, and reports speed, "
            "moments and bit-for-bit reproducibility."
        ),
    )
    demo.add_argument("--n", type=_positive_int, default=1_000_000, help="scenarios (default 1e6)")
    demo.add_argument("--latent-dim", type=_positive_int, default=16, help="latent dimension")
    demo.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    demo.add_argument(
        "--device", default="auto", help="cpu, cuda, cuda:N or auto (GPU when there is one)"
    )
    demo.add_argument("--quiet", action="store_true", help="print nothing on success")
    demo.set_defaults(func=cmd_demo)

    info = sub.add_parser("info", help="what was built and which devices are usable (JSON)")
    info.set_defaults(func=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (CliError, native.NativeInputError, RuntimeError) as err:
        print(f"stressvae: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

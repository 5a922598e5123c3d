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


def _stream(device, buf, mu, lv, n, seed, index=None, scale=1.0, keep=None):
    """Draws n scenarios in chunks into one reused buffer, the way generation
    streams them; returns the seconds spent in the sampler, running moments
    per column and the rows in `keep` (a range) for the reproducibility check."""
    d = int(mu.shape[-1])
    chunk = int(buf.shape[0])
    s1 = np.zeros(d)
    s2 = np.zeros(d)
    kept = []
    sync = (lambda: None) if device == "cpu" else __import__("torch").cuda.synchronize
    dt = 0.0
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        idx = None if index is None else index[start : start + m]
        t0 = time.perf_counter()
        z = native.sample_latent(
            mu, lv, None if index is not None else m, seed=seed, offset=start,
            index=idx, scale=scale, out=buf[:m], check_finite=False,
        )  # fmt: skip
        sync()
        dt += time.perf_counter() - t0
        zn = _to_numpy(z)
        s1 += zn.sum(0, dtype=np.float64)
        s2 += np.square(zn, dtype=np.float64).sum(0)
        if keep is not None and start <= keep.start < start + m:
            kept.append(zn[keep.start - start : keep.stop - start].copy())
    mean = s1 / n
    return dt, mean, np.sqrt(s2 / n - mean**2), (kept[0] if kept else None)


def cmd_demo(args: argparse.Namespace) -> int:
    n, d, seed, chunk = args.n, args.latent_dim, args.seed, args.chunk
    device = _resolve_device(args.device)
    rng = np.random.default_rng(seed)
    say = (lambda *a: None) if args.quiet else print

    say(f"stressvae {__version__} demo: {n:,} latent scenarios, latent dimension {d}, seed {seed}")
    where = native.native_info()["core"]["isa"] if device == "cpu" else device
    say(f"device: {device} ({where}), streamed in chunks of {chunk:,}")

    # 1. The prior N(0, I): the starting point of every generated market.
    mu0, lv0 = _device_inputs(device, [np.zeros(d, np.float32), np.zeros(d, np.float32)])
    chunk = min(chunk, n)
    buf = _device_inputs(device, [np.empty((chunk, d), np.float32)])[0]  # reused by every chunk
    _stream(device, buf, mu0, lv0, chunk, seed)  # warm-up: pages, threads, CUDA self-check
    start = n // 3
    keep = range(start, min(n, start + 1000))
    dt, mean, std, kept = _stream(device, buf, mu0, lv0, n, seed, keep=keep)
    say(
        f"prior      z ~ N(0, I): {dt * 1e3:8.1f} ms  {n / dt / 1e6:7.2f} M scenarios/s  "
        f"{dt / (n * d) * 1e9:5.2f} ns/normal  |mean| <= {np.max(np.abs(mean)):.4f}  "
        f"|std - 1| <= {np.max(np.abs(std - 1)):.4f}"
    )

    # 2. Around a few anchors (what augmentation of tail windows does).
    k = 8
    mu_k = rng.normal(0, 1, (k, d)).astype(np.float32)
    lv_k = rng.uniform(-3, 0, (k, d)).astype(np.float32)
    anchor = np.repeat(np.arange(k, dtype=np.int64), -(-n // k))[:n]  # contiguous blocks
    mu_kd, lv_kd, anchor_d = _device_inputs(device, [mu_k, lv_k, anchor])
    worst, dt_t = 0.0, 0.0
    for j in range(k):
        lo, hi = np.searchsorted(anchor, [j, j + 1])
        if hi == lo:
            continue
        t, _m, sd, _ = _stream(
            device, buf, mu_kd, lv_kd, int(hi - lo), seed + j, index=anchor_d[lo:hi], scale=0.5
        )
        dt_t += t
        worst = max(worst, float(np.max(np.abs(sd / (0.5 * np.exp(0.5 * lv_k[j])) - 1))))
    say(
        f"anchors    {k} anchors, scale 0.5: {dt_t * 1e3:8.1f} ms  "
        f"{n / dt_t / 1e6:7.2f} M scenarios/s  std off by at most {worst:.1%}"
    )

    # 3. Reproducibility: rows drawn alone equal the same rows of the stream.
    alone = _to_numpy(native.sample_latent(mu0, lv0, len(keep), seed=seed, offset=keep.start))
    same = kept is not None and np.array_equal(alone.view(np.uint32), kept.view(np.uint32))
    say(
        f"reproduce  scenarios {keep.start:,}..{keep.stop - 1:,} drawn alone "
        f"{'equal' if same else 'DIFFER FROM'} the same rows of the stream, bit for bit"
    )

    counts = native.native_info()["counts"]
    key = "sample_cuda_calls" if device != "cpu" else "sample_cpu_calls"
    say(f"native     {counts[key]} calls of the {device.split(':')[0]} sampler in this process")
    say("next       the VAE, decoder and backtests build on these draws (see README)")
    if not same:
        raise CliError("reproducibility check failed: rows drawn alone differ from the stream")
    tol = 6 / np.sqrt(n)  # per column, 6 standard errors
    if np.max(np.abs(mean)) > tol or np.max(np.abs(std - 1)) > tol or worst > 0.05:
        raise CliError(
            f"sample moments are off: max |mean| {np.max(np.abs(mean)):.4g}, "
            f"max |std - 1| {np.max(np.abs(std - 1)):.4g}, anchor std error {worst:.3g}"
        )
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
    demo.add_argument(
        "--chunk", type=_positive_int, default=262_144, help="scenarios per chunk (default 262144)"
    )
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

"""The ``stressvae`` command: demo, train, anomalies, info.

Errors are one line on stderr and exit code 2. Later stages add generate,
stress, evaluate, report and bench.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

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


def _load_data(spec: str, window: int, val_fraction: float, missing: str, pool: bool):
    from .data import WindowData
    from .datasets import DATASETS, load_dataset

    prices = load_dataset(spec) if spec in DATASETS else spec
    return WindowData.from_prices(
        prices, window=window, val_fraction=val_fraction, missing=missing, pool=pool
    )


def _describe(data, spec: str) -> str:
    n_tr, n_va = int(np.sum(data.split == "train")), int(np.sum(data.split == "val"))
    assets = ", ".join(data.asset_names)
    return (
        f"{spec}: {len(data.windows):,} windows of {data.window} days x {data.n_assets} "
        f"asset(s) ({assets}), {data.end_dates[0].date()}..{data.end_dates[-1].date()}; "
        f"train {n_tr:,}, validation {n_va:,}"
    )


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from .model import ScenarioVAE
    from .train import ACTIVE_KL, Trainer

    say = (lambda *a: None) if args.quiet else print
    data = _load_data(args.data, args.window, args.val_fraction, args.missing, args.pool)
    say(f"data      {_describe(data, args.data)}")
    torch.manual_seed(args.seed)
    model = ScenarioVAE(
        window=args.window,
        n_assets=data.n_assets,
        latent_dim=args.latent_dim,
        hidden_dims=args.hidden,
        activation=args.activation,
        beta=args.beta,
        likelihood=args.likelihood,
    )
    say(f"model     {model!r}")
    trainer = Trainer(
        max_epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        patience=args.patience,
        seed=args.seed,
        device=args.device,
        progress=not args.quiet,
    )
    model.set_data_stats(data.scaler, data.thresholds)
    before = trainer._evaluate(
        model.to(trainer.device).eval(), torch.as_tensor(data.scaled("val"), device=trainer.device)
    )[0]
    history = trainer.fit(model, data)
    best = history.to_frame()["val_loss"].min()
    how = "early stop" if history.stopped_early else "epoch limit"
    say(
        f"trained   {len(history.records)} epochs in {history.seconds:.1f} s (best epoch "
        f"{history.best_epoch}, {how}); validation loss {before:.2f} -> {best:.2f} nats/window"
    )
    say(
        f"latent    {history.active_dims} of {model.latent_dim} dimensions active "
        f"(KL > {ACTIVE_KL} nats)"
    )
    today = model.regime_of(data.latest())
    say(f"today     the latest window (ending {data.returns.index[-1].date()}) looks {today}")
    path = model.save(args.out)
    say(f"saved     {path}")
    return 0


def cmd_anomalies(args: argparse.Namespace) -> int:
    from .model import ScenarioVAE, top_anomalies

    model = ScenarioVAE.load(args.model)
    data = _load_data(args.data, model.window, 0.2, args.missing, args.pool)
    if data.n_assets != model.n_assets:
        raise CliError(
            f"the model was trained on {model.n_assets} asset(s), {args.data} has {data.n_assets}"
        )
    top = top_anomalies(model, data, top=args.top, kl_weight=args.kl_weight, split=args.split)
    if args.quiet:
        return 0
    print(
        f"The {len(top)} most anomalous {model.window}-day windows of {args.data} "
        f"(non-overlapping; score = residual + {args.kl_weight:g} x KL, higher is stranger):"
    )
    print()
    print(
        f"{'rank':>4}  {'start':10}  {'end':10}  {'score':>7}  {'resid':>6}  {'KL':>6}  "
        f"{'regime':7}  {'return':>7}  {'drawdown':>8}  split"
    )
    for r in top.to_dict("records"):
        print(
            f"{r['rank']:>4}  {r['start'].date()}  {r['end'].date()}  {r['score']:7.2f}  "
            f"{r['residual']:6.2f}  {r['kl']:6.2f}  {r['regime']:7}  "
            f"{np.expm1(r['return']):+7.1%}  {np.expm1(r['drawdown']):+8.1%}  {r['split']}"
        )
    return 0


def _write_stream(path: Path, chunks, n: int, horizon: int, n_assets: int, names, progress):
    """Streams Scenarios chunks into .npy (memory-mapped) or .parquet (row
    groups) through a temporary file renamed at the end."""
    import os

    suffix = path.suffix.lower()
    if suffix not in (".npy", ".parquet"):
        raise CliError(f"--out must end in .npy or .parquet, got {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    writer = None
    try:
        if suffix == ".npy":
            arr = np.lib.format.open_memmap(
                tmp, mode="w+", dtype=np.float32, shape=(n, horizon, n_assets)
            )
            pos = 0
            for chunk in chunks:
                arr[pos : pos + len(chunk)] = chunk.returns
                pos += len(chunk)
                progress.update(len(chunk))
            arr.flush()
            del arr
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            for chunk in chunks:
                table = pa.Table.from_pandas(chunk.to_frame(), preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
                progress.update(len(chunk))
            if writer is not None:
                writer.close()
                writer = None
        os.replace(tmp, path)
    except BaseException:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
        raise


def cmd_generate(args: argparse.Namespace) -> int:
    from .generate import ScenarioGenerator
    from .model import ScenarioVAE

    say = (lambda *a: None) if args.quiet else print
    model = ScenarioVAE.load(args.model)
    data = None
    if args.mode != "prior" or args.data_given:
        data = _load_data(args.data, model.window, 0.2, args.missing, args.pool)
        if data.n_assets != model.n_assets:
            raise CliError(
                f"the model was trained on {model.n_assets} asset(s), "
                f"{args.data} has {data.n_assets}"
            )
    gen = ScenarioGenerator(model, data, device=args.device)
    horizon = args.horizon or model.window
    common = dict(seed=args.seed, chunk_size=args.chunk_size, drift=args.drift, horizon=horizon)
    if args.mode == "prior":
        n = args.n
        chunks = gen.iter_chunks(n, **common)
        what = f"{n:,} scenarios from the prior"
    elif args.mode == "sweep":
        plan = gen.interpolate_plan(
            data.regime(args.sweep_from), data.regime(args.sweep_to), args.steps,
            max(1, args.n // args.steps), "linear", 1.0, False,
        )  # fmt: skip
        n = plan.n
        chunks = gen._chunks(plan, common["seed"], args.chunk_size, horizon, args.drift)
        what = f"{n:,} scenarios from {args.sweep_from} to {args.sweep_to} in {args.steps} steps"
    else:
        tail = data.regime("tail")
        per = max(1, args.n // max(len(tail), 1))
        plan = gen.augment_plan(tail, per, args.scale)
        n = plan.n
        chunks = gen._chunks(plan, common["seed"], args.chunk_size, horizon, args.drift)
        what = f"{n:,} variations of the {len(tail)} tail windows ({per} each, scale {args.scale})"
    say(
        f"generate  {what}, {horizon} days x {model.n_assets} asset(s), seed {args.seed}, "
        f"drift {args.drift}"
    )
    progress = _bar(n, not args.quiet)
    t0 = time.perf_counter()
    try:
        _write_stream(Path(args.out), chunks, n, horizon, model.n_assets, gen.asset_names, progress)
    finally:
        progress.close()
    dt = time.perf_counter() - t0
    size = Path(args.out).stat().st_size
    say(f"wrote     {args.out} ({size / 2**20:,.1f} MiB) in {dt:.1f} s, {n / dt:,.0f} scenarios/s")
    return 0


def _bar(total: int, enabled: bool):
    if enabled:
        from tqdm.auto import tqdm

        return tqdm(total=total, unit="scen", unit_scale=True, desc="generating", leave=False)

    class _Quiet:
        def update(self, _n):
            pass

        def close(self):
            pass

    return _Quiet()


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

    def data_args(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--data",
            default="sp500",
            help="bundled dataset (sp500, sp500_nasdaq) or a CSV / parquet file of daily "
            "prices: a date column, then one column per asset (default sp500)",
        )
        p.add_argument(
            "--missing",
            default="raise",
            choices=["raise", "ffill", "drop"],
            help="what to do with missing prices: stop with an error (default), carry the "
            "last price forward, or drop the dates",
        )
        p.add_argument(
            "--pool", action="store_true", help="treat each column as its own series and pool them"
        )
        p.add_argument("--quiet", action="store_true", help="print nothing on success")

    train = sub.add_parser(
        "train",
        help="learn the distribution of market windows from real prices",
        description=(
            "Trains a ScenarioVAE on windows of daily log returns (the later 20%% of the "
            "history is held out to stop training at the best point) and saves it."
        ),
    )
    data_args(train)
    train.add_argument(
        "--window", type=_positive_int, default=64, help="days per window (default 64)"
    )
    train.add_argument(
        "--val-fraction", type=float, default=0.2, help="held-out later part (default 0.2)"
    )
    train.add_argument(
        "--latent-dim", type=_positive_int, default=16, help="latent dimension (default 16)"
    )
    train.add_argument(
        "--hidden",
        type=lambda t: tuple(_positive_int(x) for x in t.split(",")),
        default=(256, 256),
        help="hidden widths, e.g. 256,256 (default)",
    )
    train.add_argument("--activation", default="silu", choices=["silu", "relu", "tanh", "gelu"])
    train.add_argument(
        "--likelihood",
        default="gaussian",
        choices=["gaussian", "mse"],
        help="gaussian: a volatility per day (default); mse: mean only (too smooth)",
    )
    train.add_argument("--beta", type=float, default=1.0, help="KL weight (default 1)")
    train.add_argument(
        "--epochs", type=_positive_int, default=200, help="at most this many (default 200)"
    )
    train.add_argument("--batch-size", type=_positive_int, default=256)
    train.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 1e-3)")
    train.add_argument(
        "--patience",
        type=_positive_int,
        default=20,
        help="epochs without improvement before stopping",
    )
    train.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    train.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    train.add_argument(
        "--out", default="stressvae-model.safetensors", help="where to save the model"
    )
    train.set_defaults(func=cmd_train)

    anomalies = sub.add_parser(
        "anomalies",
        help="list the strangest real windows, with dates",
        description=(
            "Scores every window of the data with a trained model and lists the most anomalous "
            "ones that do not overlap: jumps, crashes, stale prices and unusual regimes."
        ),
    )
    anomalies.add_argument("--model", required=True, help="a model saved by `stressvae train`")
    data_args(anomalies)
    anomalies.add_argument("--top", type=_positive_int, default=10, help="how many (default 10)")
    anomalies.add_argument("--kl-weight", type=float, default=1.0, help="weight of the regime term")
    anomalies.add_argument("--split", default="all", choices=["all", "train", "val"])
    anomalies.set_defaults(func=cmd_anomalies)

    generate = sub.add_parser(
        "generate",
        help="write synthetic market scenarios from a saved model",
        description=(
            "Generates scenarios of daily log returns with a model saved by `stressvae train` and "
            "streams them to a .npy array [n, days, assets] or a .parquet table (scenario, day, "
            "asset, log_return). Modes: prior (the model's own market), sweep (from one regime "
            "to another, e.g. calm to crisis), tail (variations of the worst real windows)."
        ),
    )
    generate.add_argument("--model", required=True, help="a model saved by `stressvae train`")
    data_args(generate)
    generate.add_argument(
        "--n", type=_positive_int, default=100_000, help="scenarios (default 1e5)"
    )
    generate.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    generate.add_argument(
        "--out", default="scenarios.npy", help=".npy or .parquet (default scenarios.npy)"
    )
    generate.add_argument("--mode", default="prior", choices=["prior", "sweep", "tail"])
    generate.add_argument(
        "--from", dest="sweep_from", default="calm", choices=["calm", "normal", "crisis", "tail"]
    )
    generate.add_argument(
        "--to", dest="sweep_to", default="crisis", choices=["calm", "normal", "crisis", "tail"]
    )
    generate.add_argument(
        "--steps", type=_positive_int, default=11, help="sweep steps (default 11)"
    )
    generate.add_argument(
        "--scale", type=float, default=0.5, help="tail: shrink of the posterior noise"
    )
    generate.add_argument(
        "--horizon",
        type=_positive_int,
        default=None,
        help="days per path (default: the model's window)",
    )
    generate.add_argument(
        "--drift",
        default="keep",
        choices=["keep", "zero", "historical"],
        help="mean daily return: the model's, none, or the training mean",
    )
    generate.add_argument(
        "--chunk-size", type=_positive_int, default=None, help="scenarios per chunk"
    )
    generate.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    generate.set_defaults(func=cmd_generate)

    info = sub.add_parser("info", help="what was built and which devices are usable (JSON)")
    info.set_defaults(func=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "command", None) == "generate":
        args.data_given = any(
            a == "--data" or a.startswith("--data=") for a in (argv or sys.argv[1:])
        )
    try:
        return args.func(args)
    except (CliError, ValueError, RuntimeError, FloatingPointError) as err:
        print(f"stressvae: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The ``stressvae`` command: demo, train, generate, stress, whatif, var-backtest, report,
anomalies, bench, info.

Errors in what the user gives (arguments, files, folders) are one line on
stderr and exit code 2; Ctrl-C exits 130 and SIGTERM 143, also with one line,
after the partial output files are removed. Any other exception is a bug in
stressvae and keeps its traceback (exit 1). Long work shows progress bars on
stderr (``--quiet`` turns them and the summary off).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from . import native
from ._checks import as_float, as_int
from ._files import atomic_path, atomic_write, check_free_space
from ._progress import progress_bar
from ._version import __version__
from .datasets import DATASETS

# ScenarioVAE's default decoder (stressvae.model.DEFAULT_DECODER; a test
# checks they agree), here without importing torch for --help.
DEFAULT_DECODER = "mlp"


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C so that every clean-up
    of a partial output (``except BaseException`` in the atomic writers)
    runs; the command exits 143."""


EXIT_ERROR, EXIT_INTERRUPTED, EXIT_TERMINATED = 2, 130, 143
EPILOG = (
    "Exit codes: 0 done; 2 an error in the arguments, files or folders given (one line on "
    "stderr); 130 Ctrl-C, 143 SIGTERM (one line; partial output files are removed). Any other "
    "failure is a bug in stressvae: it prints a traceback and exits 1."
)


def _check_out(path: str | Path, *, folder: bool = False) -> Path:
    """Refuses an ``--out`` that cannot be written, before any work: an
    existing folder where a file is wanted (or a file where a folder is), a
    file in the way of its folders, a folder where no file can be created."""
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise CliError(f"--out {path} is a file; give a folder")
    if not folder and path.is_dir():
        raise CliError(f"--out {path} is a folder; give a file name")
    for parent in [path] if folder and path.is_dir() else path.parents:
        if not parent.exists():
            continue
        if not parent.is_dir():
            raise CliError(f"--out {path}: {parent} is a file, not a folder")
        try:  # a probe: permissions, read-only mounts, /proc
            tempfile.TemporaryFile(dir=parent).close()
        except OSError as err:
            raise CliError(f"--out {path}: cannot write in {parent} ({err.strerror})") from None
        break
    return path


def _positive_int(text: str) -> int:
    try:
        value = int(float(text)) if "e" in text.lower() else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _load_data(spec: str, window: int, val_fraction: float, missing: str, pool: bool, args=None):
    from .data import WindowData
    from .datasets import DATASETS, load_dataset

    prices = load_dataset(spec) if spec in DATASETS else spec
    until = getattr(args, "until", None)
    if until is not None:  # the prices up to a date only (train to 2012, judge after)
        import pandas as pd

        from .data import load_prices

        try:
            stamp = pd.Timestamp(until)
        except (TypeError, ValueError):
            raise CliError(f"--until {until!r} is not a date (YYYY-MM-DD)") from None
        frame = load_prices(prices, missing=missing)
        prices = frame.loc[:stamp]
        if len(prices) < 2:
            raise CliError(f"--until {until}: {spec} has no prices up to that date")
    extra = {}
    if args is not None:
        extra = dict(
            split_date=getattr(args, "split_date", None),
            holdout_every=getattr(args, "holdout_every", None),
            holdout_offset=getattr(args, "holdout_offset", None),
        )
    return WindowData.from_prices(
        prices, window=window, val_fraction=val_fraction, missing=missing, pool=pool, **extra
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
    _check_out(args.out)
    data = _load_data(args.data, args.window, args.val_fraction, args.missing, args.pool, args)
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
        decoder=args.decoder,
        rnn_hidden=args.rnn_hidden,
        factors=args.factors,
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
    before = trainer.validation_loss(model, data)
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

    as_float("--kl-weight", args.kl_weight, 0, error=CliError)
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
    suffix = path.suffix.lower()
    with atomic_path(path) as tmp:
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

            writer = None
            try:
                for chunk in chunks:
                    table = pa.Table.from_pandas(chunk.to_frame(), preserve_index=False)
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, table.schema)
                    writer.write_table(table)
                    progress.update(len(chunk))
            finally:
                if writer is not None:
                    writer.close()


def cmd_generate(args: argparse.Namespace) -> int:
    from .generate import ScenarioGenerator
    from .model import ScenarioVAE

    say = (lambda *a: None) if args.quiet else print
    _check_dask_flags(args)
    _check_out(args.out, folder=args.engine == "dask")
    if args.engine != "dask" and Path(args.out).suffix.lower() not in (".npy", ".parquet"):
        raise CliError(f"--out must end in .npy or .parquet, got {Path(args.out).name}")
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
    try:
        phi = gen.phi_of(args.regime_halflife)
    except ValueError as err:
        raise CliError(f"--regime-halflife: {err}") from None
    if args.mode == "prior":
        plan = gen.prior_plan(args.n)
        what = f"{plan.n:,} scenarios from the prior"
    elif args.mode == "sweep":
        plan = gen.interpolate_plan(
            data.regime(args.sweep_from), data.regime(args.sweep_to), args.steps,
            max(1, args.n // args.steps), "linear", 1.0, False,
        )  # fmt: skip
        what = (
            f"{plan.n:,} scenarios from {args.sweep_from} to {args.sweep_to} in {args.steps} steps"
        )
    else:
        tail = data.regime("tail")
        per = max(1, args.n // max(len(tail), 1))
        plan = gen.augment_plan(tail, per, args.scale)
        what = (
            f"{plan.n:,} variations of the {len(tail)} tail windows ({per} each, "
            f"scale {args.scale})"
        )
    plan = plan.with_phi(phi)
    n = plan.n
    chunks = gen.stream(plan, args.seed, args.chunk_size, horizon, args.drift)  # checks the flags
    how = "rolled out day by day" if gen.recurrent else "chained windows"
    if gen.recurrent and horizon <= model.window:
        how = "recurrent decoder"
    say(
        f"generate  {what}, {horizon} days x {model.n_assets} asset(s) ({how}), seed {args.seed}, "
        f"drift {args.drift}"
        + (f", regime half-life {args.regime_halflife:g} days" if args.regime_halflife else "")
    )
    out = Path(args.out)
    if args.engine != "dask":  # float32 values alone: a .npy holds these, a parquet table more
        check_free_space(
            out, n * horizon * model.n_assets * 4,
            f"--out {out} ({n:,} scenarios x {horizon} days x {model.n_assets} asset(s), float32)",
        )  # fmt: skip
    progress = progress_bar(n, not args.quiet, unit="scen", desc="generating")
    t0 = time.perf_counter()
    try:
        if args.engine == "dask":
            from .distributed import write_shards

            if out.suffix or (out.exists() and not out.is_dir()):
                raise CliError(f"--engine dask writes a folder of shards: --out {out} is not one")
            with _dask_client(args) as client:
                say(f"engine    dask, {len(client.scheduler_info()['workers'])} worker(s)")
                write_shards(
                    gen, plan, args.seed, out, horizon, args.drift, args.chunk_size, client,
                    args.shards, None, progress.update,
                )  # fmt: skip
        else:
            _write_stream(out, chunks, n, horizon, model.n_assets, gen.asset_names, progress)
    finally:
        progress.close()
    dt = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in out.iterdir()) if out.is_dir() else out.stat().st_size
    say(f"wrote     {args.out} ({size / 2**20:,.1f} MiB) in {dt:.1f} s, {n / dt:,.0f} scenarios/s")
    return 0


def _headline_lines(rep) -> list[str]:
    h = rep.headline()
    return [
        f"loss      P(total return < 0) over {rep.horizon} days: {h['prob_loss']:.1%}",
        f"tail      expected shortfall 99%: {-h['es_99']:+.1%} of the total return",
        f"regimes   median Sharpe {h['median_sharpe_calm']:.2f} in calm markets, "
        f"{h['median_sharpe_crisis']:.2f} in crisis",
        *_today_lines(rep),
        *_given_lines(rep),
    ]


def _given_lines(rep) -> list[str]:
    g = getattr(rep, "given", None)
    if not g:
        return []
    r = rep.risk().loc["given"]
    return [
        f"what if   {g['event']} (P = {g['probability']:.3g} under the model; {g['n']:,} "
        f"weighted scenarios, ESS {g['ess']:,.0f}): P(loss) {r['prob_loss']:.1%}, "
        f"ES 99% {-r['es_99']:+.1%}"
    ]


def _today_lines(rep) -> list[str]:
    today = getattr(rep, "today", None)
    if not today or "total_return" not in today:
        return []
    tr, days = today["total_return"], len(today["quantiles"]["0.5"]) - 1
    return [
        f"today     next {days} days from {today['asof']}: {rep.real_path['asset']} median "
        f"{tr['0.5']:+.1%}, 5 % quantile {tr['0.05']:+.1%}, 1 % quantile {tr['0.01']:+.1%}"
    ]


def _write_report(rep, out: Path, say) -> Path:
    rep.save(out)
    path = rep.to_html(out / "report.html")
    say(f"report    {path.resolve()}")
    say(f"metrics   {(out / 'metrics.parquet').resolve()} ({len(rep.metrics):,} paths)")
    for line in _headline_lines(rep):
        say(line)
    lines = _portfolio_lines(rep)
    for line in lines:
        say(line)
    return path


def _portfolio_lines(rep) -> list[str]:
    """For several assets: the portfolio, the worst 1 %'s largest per-asset
    losses, and the real and generated average correlations, calm / crisis."""
    summary = rep.portfolio_summary()
    lines = [f"portfolio {summary}"] if summary else []
    tail = rep.tail_contributions()
    if tail is not None and len(tail):
        worst = tail["prior"].drop(labels=["total"], errors="ignore").sort_values().head(3)
        parts = ", ".join(f"{k} {v:+.1%}" for k, v in worst.items())
        lines.append(f"worst 1%  largest losses by asset: {parts}")
    corr = getattr(rep, "correlations", None)
    if corr:
        real, gen = corr["real"], corr["generated"]
        lines.append(
            f"together  average correlation calm / crisis: real {real['avg_calm']:.2f} / "
            f"{real['avg_crisis']:.2f}, generated {gen['avg_calm']:.2f} / {gen['avg_crisis']:.2f}"
        )
    return lines


def cmd_demo(args: argparse.Namespace) -> int:
    import pandas as pd
    import torch

    from . import strategies
    from .data import WindowData
    from .datasets import load_dataset
    from .model import ScenarioVAE
    from .report import stress_test
    from .train import History, Trainer

    say = (lambda *a: None) if args.quiet else print
    t_start = time.perf_counter()
    out = _check_out(args.out, folder=True)
    prices = load_dataset(args.data)
    several = prices.shape[1] > 1
    spec = args.strategy or ("equal_weight" if several else "ma:10,40")
    strategy = strategies.parse(spec)
    strategy = strategy.bind(list(prices.columns))  # weights by name or count: checked now
    window = args.window or (64 if several else 128)
    data = WindowData.from_prices(prices, window=window)
    say(f"data      {args.data}: {len(data.windows):,} windows of {window} days x "
        f"{data.n_assets} asset(s), "
        f"{data.returns.index[0].date()}..{data.returns.index[-1].date()}")  # fmt: skip
    model_path, meta_path = out / "model.safetensors", out / "model.json"
    want = {
        "data": args.data, "window": window, "seed": args.seed, "decoder": args.decoder,
        "factors": args.factors, "epochs": args.epochs, "version": __version__,
    }  # fmt: skip
    history = None
    cached = (
        not args.retrain
        and model_path.exists()
        and meta_path.exists()
        and json.loads(meta_path.read_text()) == want
    )
    if cached:
        model = ScenarioVAE.load(model_path)
        hist_path = out / "history.csv"
        if hist_path.exists():
            frame = pd.read_csv(hist_path)
            history = History(frame.to_dict("records"), 0, False, 0.0, np.zeros(0), 0)
        say(f"model     reusing {model_path} (--retrain to train again)")
    else:
        torch.manual_seed(args.seed)
        model = ScenarioVAE(
            window=window, n_assets=data.n_assets, decoder=args.decoder, factors=args.factors
        )
        trainer = Trainer(max_epochs=args.epochs, seed=args.seed, progress=not args.quiet)
        history = trainer.fit(model, data)
        out.mkdir(parents=True, exist_ok=True)
        model.save(model_path)
        csv = history.to_frame().reset_index().to_csv(index=False)
        atomic_write(out / "history.csv", csv.encode())
        atomic_write(meta_path, json.dumps(want).encode())  # last: marks the cache complete
        say(f"model     trained in {history.seconds:.1f} s ({len(history.records)} epochs), "
            f"saved to {model_path}")  # fmt: skip
    say(f"stress    {strategy.describe()} on {args.n:,} scenarios (+ calm->crisis sweep and "
        f"tail variations), fees {args.fees:g}")  # fmt: skip
    rep = stress_test(
        model, data, strategy, n=args.n, seed=args.seed, fees=args.fees, device=args.device,
        backend=args.backend, history=history, progress=not args.quiet, realism=args.realism,
        horizon=args.horizon,
    )  # fmt: skip
    _write_report(rep, out, say)
    say(f"done      in {time.perf_counter() - t_start:.0f} s")
    return 0


def dask_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--engine", default="local", choices=["local", "dask"],
        help="dask: shards on Dask workers, the same result (default local)",
    )  # fmt: skip
    p.add_argument("--scheduler", default=None, help="Dask scheduler address (tcp://host:8786)")
    p.add_argument(
        "--workers", type=_positive_int, default=None,
        help="without --scheduler: local Dask workers (default one per core)",
    )  # fmt: skip
    p.add_argument("--shards", type=_positive_int, default=None, help="default 4 per worker")


def _check_dask_flags(args: argparse.Namespace) -> None:
    if args.engine != "dask" and (args.scheduler or args.workers or args.shards):
        raise CliError("--scheduler, --workers and --shards need --engine dask")
    if args.scheduler and args.workers:
        raise CliError("--workers starts a local cluster; with --scheduler the cluster has its own")


@contextlib.contextmanager
def _dask_client(args: argparse.Namespace):
    """The Dask client the command's flags ask for (None for engine=local);
    the flags were checked by :func:`_check_dask_flags` before any work."""
    if args.engine != "dask":
        yield None
        return
    try:
        from dask.distributed import Client
    except ImportError:
        raise CliError(
            '--engine dask needs dask.distributed: pip install "stressvae[dask]"'
        ) from None
    from .distributed import local_client

    if args.scheduler:
        try:
            client = Client(args.scheduler, timeout="20s")
        except OSError as err:
            raise CliError(f"cannot reach the Dask scheduler {args.scheduler}: {err}") from None
        try:
            yield client
        finally:
            client.close()
        return
    with local_client(args.workers) as client:
        yield client


def cmd_stress(args: argparse.Namespace) -> int:
    from . import strategies
    from .model import ScenarioVAE
    from .report import stress_test

    say = (lambda *a: None) if args.quiet else print
    _check_dask_flags(args)
    _check_out(args.out, folder=True)
    model = ScenarioVAE.load(args.model)
    data = _load_data(args.data, model.window, 0.2, args.missing, args.pool)
    if data.n_assets != model.n_assets:
        raise CliError(
            f"the model was trained on {model.n_assets} asset(s), {args.data} has {data.n_assets}"
        )
    strategy = strategies.parse(args.strategy).bind(list(data.asset_names))
    if args.given is not None:
        from .events import Event

        Event.parse(args.given).bind(list(data.asset_names))  # named before any work
    say(f"stress    {strategy.describe()} on {args.n:,} scenarios of {args.data}")
    with _dask_client(args) as client:
        if client is not None:
            say(f"engine    dask, {len(client.scheduler_info()['workers'])} worker(s)")
        rep = stress_test(
            model, data, strategy, n=args.n, seed=args.seed, steps=args.steps,
            horizon=args.horizon, drift=args.drift, fees=args.fees, slippage=args.slippage,
            device=args.device, backend=args.backend, progress=not args.quiet,
            realism=args.realism, engine=args.engine, client=client, shards=args.shards,
            regime_halflife=args.regime_halflife, given=args.given, given_n=args.given_n,
        )  # fmt: skip
    _write_report(rep, Path(args.out), say)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import StressReport

    out = _check_out(args.out if args.out else Path(args.source) / "report.html")
    rep = StressReport.load(args.source)
    try:
        path = rep.to_html(out)
    except (KeyError, TypeError, AttributeError, IndexError) as err:
        raise CliError(
            f"{args.source} is a damaged stress report ({type(err).__name__}: {err})"
        ) from None
    if not args.quiet:
        print(f"report    {path.resolve()}")
        for line in _headline_lines(rep):
            print(line)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import subprocess

    root = Path(__file__).resolve().parent.parent / "benchmarks"
    if not root.is_dir():
        raise CliError(
            "stressvae bench runs the scripts in benchmarks/ of a source checkout; "
            f"none beside the package ({root})"
        )
    quick = ["--quick"] if args.quick else []
    runs = [
        ("bench_sampling.py", [*quick, "--no-memory"]),
        ("bench_generate.py", [*quick, "--no-compile", "--no-memory"]),
        ("bench_backtest.py", quick),
    ]
    tables = []
    for script, extra in runs:
        if not (root / script).exists():
            continue
        print(f"running {script} {' '.join(extra)}", flush=True)
        res = subprocess.run(
            [sys.executable, str(root / script), *extra], capture_output=True, text=True
        )
        if res.returncode != 0:
            raise CliError(f"{script} failed: {res.stderr.strip().splitlines()[-1:]}")
        text = res.stdout
        tables.append(text[text.find("\n## ") + 1 :] if "\n## " in text else text)
    print()
    print("\n".join(tables))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import pandas as pd

    from .generate import ScenarioGenerator
    from .model import ScenarioVAE
    from .realism import evaluate

    _check_out(args.out)
    model = ScenarioVAE.load(args.model)
    data = _load_data(args.data, model.window, 0.2, args.missing, args.pool, args)
    if data.n_assets != model.n_assets:
        raise CliError(
            f"the model was trained on {model.n_assets} asset(s), {args.data} has {data.n_assets}"
        )
    gen = ScenarioGenerator(model, data, device=args.device)
    rep = evaluate(
        {"vae": gen}, data, baselines=not args.no_baselines, n=args.n, n_long=args.n_long,
        seed=args.seed, discriminator_epochs=args.discriminator_epochs,
    )  # fmt: skip
    path = rep.to_html(args.out)
    if not args.quiet:
        for note in rep.notes:
            print(f"note      {note}")
        with pd.option_context("display.width", 160, "display.max_rows", 200):
            print(rep.table.to_string(float_format=lambda v: f"{v:.4g}"))
        print(f"report    {path.resolve()}")
    return 0


def _csv_list(text: str, kind, what: str) -> tuple:
    """``1,10`` -> (1, 10) for a --flag of comma-separated ``what``."""
    try:
        out = tuple(kind(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}") from None
    if not out:
        raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}")
    return out


def _weights_arg(text: str):
    """--weights: ``0.6,0.4`` (one per asset, in the data's column order) or
    ``SPY=0.6,QQQ=0.4`` (by name, the others 0)."""
    parts = [x.strip() for x in text.split(",") if x.strip()]
    try:
        if parts and all("=" in x for x in parts):
            return {k.strip(): float(v) for k, v in (x.split("=", 1) for x in parts)}
        return [float(x) for x in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected W1,W2,.. or NAME=W,.., got {text!r}") from None


def cmd_var_backtest(args: argparse.Namespace) -> int:
    import pandas as pd

    from .data import load_prices
    from .datasets import load_dataset
    from .risk import var_backtest

    say = (lambda *a: None) if args.quiet else print
    out = _check_out(args.out) if args.out else None
    figure = _check_out(args.figure) if args.figure else None
    if figure is not None and figure.suffix.lower() != ".png":
        raise CliError(f"--figure must end in .png, got {figure.name}")
    if out is not None and out.suffix.lower() != ".csv":
        raise CliError(f"--out must end in .csv, got {out.name}")
    if "vae" in args.models and not args.model:
        raise CliError("--model is needed for the 'vae' forecaster (or leave vae out of --models)")
    prices = load_prices(
        load_dataset(args.data) if args.data in DATASETS else args.data, missing=args.missing
    )
    gen = None
    if args.model:
        from .generate import ScenarioGenerator
        from .model import ScenarioVAE

        model = ScenarioVAE.load(args.model)
        if prices.shape[1] != model.n_assets:
            raise CliError(
                f"the model was trained on {model.n_assets} asset(s), {args.data} has "
                f"{prices.shape[1]}"
            )
        gen = ScenarioGenerator(model, None, device=args.device)
    vb = var_backtest(
        gen, prices, args.start, args.end, weights=args.weights, levels=args.levels,
        horizons=args.horizons, n=args.n, seed=args.seed, models=args.models, refit=args.refit,
        progress=not args.quiet,
    )  # fmt: skip
    if out is not None:
        with atomic_path(out) as tmp:
            vb.table.to_csv(tmp, index=False)
    if figure is not None:
        level = 0.99 if 0.99 in vb.levels else vb.levels[-1]
        vb.plot(figure, level=level, horizon=vb.horizons[0])
    weights = ", ".join(f"{a} {w:g}" for a, w in zip(vb.assets, vb.weights, strict=True))
    say(f"backtest  {vb.start}..{vb.end}, portfolio {weights}, {vb.n:,} draws a forecast")
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        say(vb.table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    for path in (out, figure):
        if path is not None:
            say(f"wrote     {path}")
    return 0


def cmd_whatif(args: argparse.Namespace) -> int:
    import pandas as pd

    from . import strategies
    from .backtesting import backtest, loss_risk
    from .events import Event
    from .generate import ScenarioGenerator
    from .model import ScenarioVAE

    say = (lambda *a: None) if args.quiet else print
    out = _check_out(args.out) if args.out else None
    if out is not None and out.suffix.lower() not in (".npz", ".parquet"):
        raise CliError(f"--out must end in .npz or .parquet (returns and weights), got {out.name}")
    event = Event.parse(args.event)
    model = ScenarioVAE.load(args.model)
    data = _load_data(args.data, model.window, 0.2, args.missing, args.pool, args)
    if data.n_assets != model.n_assets:
        raise CliError(
            f"the model was trained on {model.n_assets} asset(s), {args.data} has {data.n_assets}"
        )
    names = list(data.asset_names)
    event.bind(names)  # unknown assets are named before any work
    several = len(names) > 1
    strategy = strategies.parse(args.strategy or ("equal_weight" if several else "buy_and_hold"))
    strategy = strategy.bind(names)
    gen = ScenarioGenerator(model, data, device=args.device)
    horizon = args.horizon or min(21, model.window)
    say(f"what-if   {event.describe()} over {horizon} days, {args.n:,} scenarios, seed {args.seed}")
    t0 = time.perf_counter()
    hit = gen.given(
        event, n=args.n, seed=args.seed, horizon=horizon, tilt=args.tilt, progress=not args.quiet
    )
    dt = time.perf_counter() - t0
    base = gen.sample(args.n, seed=args.seed, horizon=horizon)
    say(
        f"found     {len(hit):,} scenarios in {hit.draws:,} proposal draws ({hit.tilt} tilted) "
        f"in {dt:.1f} s; ESS {hit.ess:,.0f}; P(event) under the model {hit.probability:.3g}"
    )
    w = hit.weights

    def wq(x, q):
        from .backtesting import weighted_quantile

        return weighted_quantile(x, w, q)

    tot_hit = np.expm1(hit.returns.astype(np.float64).sum(axis=1))  # [n, assets]
    tot_base = np.expm1(base.returns.astype(np.float64).sum(axis=1))
    rows = []
    for a, name in enumerate(names):
        rows.append(
            {
                "asset": name,
                "given median": wq(tot_hit[:, a], 0.5),
                "given q05": wq(tot_hit[:, a], 0.05),
                "unconditional median": float(np.median(tot_base[:, a])),
                "unconditional q05": float(np.quantile(tot_base[:, a], 0.05)),
            }
        )
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_rows", 60):
        say(f"total return over {horizon} days by asset (weighted):")
        say(table.to_string(index=False, float_format=lambda v: f"{v:+.1%}"))
    res_hit = backtest(hit, strategy, fees=args.fees)
    res_base = backtest(base, strategy, fees=args.fees)
    r_hit, r_base = res_hit.risk(), res_base.risk()
    r_plain = loss_risk(res_hit.metrics["total_return"].to_numpy())
    say(
        f"strategy  {strategy.describe()}: given the event, mean {r_hit['mean_return']:+.1%}, "
        f"VaR 95 {r_hit['var_95']:.1%}, ES 99 {r_hit['es_99']:.1%}; unconditional VaR 95 "
        f"{r_base['var_95']:.1%}, ES 99 {r_base['es_99']:.1%} (unweighted given: ES 99 "
        f"{r_plain['es_99']:.1%})"
    )
    if out is not None:
        hit.save(out)
        say(f"wrote     {out} ({len(hit):,} scenarios with tag_weight)")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    print(json.dumps(native.native_info(), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stressvae",
        description="Stress-test trading strategies on synthetic markets learned by a VAE.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"stressvae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo",
        help="the whole stress test on real market data, with an HTML report",
        description=(
            "Trains a ScenarioVAE on bundled real closes (the S&P 500 by default, or 20 US "
            "stocks with --data sp500_stocks; or reuses the model cached in the output folder), "
            "stress-tests a strategy (a moving-average crossover on one asset, an equal-weight "
            "portfolio on several) on a million generated markets plus a calm-to-crisis sweep "
            "and variations of the worst real windows, and writes an HTML report."
        ),
    )
    demo.add_argument(
        "--n", type=_positive_int, default=1_000_000, help="prior scenarios (default 1e6)"
    )
    demo.add_argument(
        "--data", default="sp500", choices=sorted(DATASETS),
        help="bundled dataset: sp500 (default), sp500_nasdaq, sp500_stocks (20 US stocks)",
    )  # fmt: skip
    demo.add_argument(
        "--strategy", default=None,
        help="strategy spec (default ma:10,40 for one asset, equal_weight for several)",
    )  # fmt: skip
    demo.add_argument(
        "--window", type=_positive_int, default=None,
        help="days per window (default 128 for one asset, 64 for several)",
    )  # fmt: skip
    demo.add_argument(
        "--factors", type=int, default=None,
        help="common factors of the model (default 0 for one asset, min(4, assets - 1))",
    )  # fmt: skip
    demo.add_argument(
        "--fees", type=float, default=0.001, help="fees per trade, fraction (default 0.001)"
    )
    demo.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    demo.add_argument(
        "--out", default="stressvae-report", help="output folder (default ./stressvae-report)"
    )
    demo.add_argument("--device", default="auto", help="cpu, cuda or auto")
    demo.add_argument(
        "--backend", default="auto", choices=["auto", "fast", "vectorbt"], help="backtest backend"
    )
    demo.add_argument(
        "--decoder", default=DEFAULT_DECODER, choices=["mlp", "gru"],
        help=f"gru: recurrent, day by day; mlp: whole windows (default {DEFAULT_DECODER})",
    )  # fmt: skip
    demo.add_argument(
        "--horizon", type=_positive_int, default=None,
        help="days per path (default: the window, at least the strategy's warm-up x 2)",
    )  # fmt: skip
    demo.add_argument(
        "--epochs", type=_positive_int, default=200, help="training epochs at most (default 200)"
    )
    demo.add_argument("--retrain", action="store_true", help="train even if a cached model fits")
    demo.add_argument(
        "--realism", action="store_true", help="add the realism section (baselines; ~2 min more)"
    )
    demo.add_argument("--quiet", action="store_true", help="print nothing on success")
    demo.set_defaults(func=cmd_demo)

    def data_args(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--data",
            default="sp500",
            help="bundled dataset (sp500, sp500_nasdaq, sp500_stocks) or a CSV / parquet file "
            "of daily prices: a date column, then one column per asset (default sp500)",
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
        p.add_argument("--split-date", default=None, help="first date of the held-out later period")
        p.add_argument(
            "--until", default=None,
            help="use the prices up to this date only (e.g. train to 2012-12-31, then judge the "
            "model after it with var-backtest)",
        )  # fmt: skip
        p.add_argument(
            "--holdout-every",
            type=int,
            default=None,
            help="hold out one year in this many of the training period (never trained on)",
        )
        p.add_argument(
            "--holdout-offset", type=int, default=None, help="which year of each group is held out"
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
    train.add_argument(
        "--decoder", default=DEFAULT_DECODER, choices=["mlp", "gru"],
        help="gru: recurrent decoder, day by day, any horizon (volatility clustering, leverage); "
        f"mlp: the whole window from z (default {DEFAULT_DECODER})",
    )  # fmt: skip
    train.add_argument(
        "--rnn-hidden", type=_positive_int, default=128, help="GRU state width (default 128)"
    )
    train.add_argument(
        "--factors", type=int, default=None,
        help="common factors, how assets move together (0..assets; default 0 for one asset, "
        "min(4, assets - 1) otherwise)",
    )  # fmt: skip
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
    generate.add_argument(
        "--regime-halflife", type=float, default=None,
        help="recurrent models: days over which the latent regime's pull halves (z drifts "
        "back to the prior along the path); default: the regime holds for the whole path",
    )  # fmt: skip
    dask_args(generate)
    generate.set_defaults(func=cmd_generate)

    strategy_help = (
        "buy_and_hold, ma:FAST,SLOW, momentum:LOOKBACK, rsi:WINDOW,LOWER,UPPER, "
        "vol_target:TARGET,LOOKBACK; several assets: equal_weight, weights:W1,W2,..[@EVERY] or "
        "weights:NAME=W,..[@EVERY][,band=B], inverse_vol:LOOKBACK, min_variance:LOOKBACK"
    )
    stress = sub.add_parser(
        "stress",
        help="stress-test a strategy on scenarios from a saved model",
        description=(
            "Backtests a strategy on scenarios from the model's prior, a sweep from calm to "
            "crisis windows, and variations of the worst real windows; writes metrics and an "
            "HTML report."
        ),
    )
    stress.add_argument("--model", required=True, help="a model saved by `stressvae train`")
    data_args(stress)
    stress.add_argument("--strategy", default="ma:10,40", help=strategy_help)
    stress.add_argument(
        "--n", type=_positive_int, default=100_000, help="prior scenarios (default 1e5)"
    )
    stress.add_argument("--steps", type=_positive_int, default=11, help="sweep steps (default 11)")
    stress.add_argument("--horizon", type=_positive_int, default=None, help="days per path")
    stress.add_argument("--fees", type=float, default=0.0, help="fees per trade, fraction")
    stress.add_argument("--slippage", type=float, default=0.0, help="slippage per trade, fraction")
    stress.add_argument("--drift", default="keep", choices=["keep", "zero", "historical"])
    stress.add_argument(
        "--regime-halflife", type=float, default=None,
        help="recurrent models: days over which the latent regime's pull halves (z drifts "
        "back to the prior along the path); default: the regime holds for the whole path",
    )  # fmt: skip
    stress.add_argument(
        "--given", default=None,
        help="also a what-if set: scenarios inside this event, weighted (e.g. "
        "'JPM:return<=-20%%'; see `stressvae whatif --help`)",
    )  # fmt: skip
    stress.add_argument(
        "--given-n", type=_positive_int, default=None,
        help="what-if scenarios (default n / 10, 1,000..20,000)",
    )  # fmt: skip
    stress.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    stress.add_argument("--out", default="stressvae-report", help="output folder")
    stress.add_argument("--device", default="auto", help="cpu, cuda or auto")
    stress.add_argument("--backend", default="auto", choices=["auto", "fast", "vectorbt"])
    stress.add_argument(
        "--realism", action="store_true", help="add the realism section (baselines; ~2 min more)"
    )
    dask_args(stress)
    stress.set_defaults(func=cmd_stress)

    whatif = sub.add_parser(
        "whatif",
        help="scenarios in which a stated event happens (what if JPM falls 20 %%?)",
        description=(
            "Draws scenarios inside an event (e.g. 'JPM:return<=-20%%' over 21 days) by importance "
            "sampling from a saved model, with likelihood-ratio weights; prints each asset's "
            "weighted total returns beside the unconditional ones and the strategy's loss."
        ),
    )
    whatif.add_argument("--model", required=True, help="a model saved by `stressvae train`")
    data_args(whatif)
    whatif.add_argument(
        "--event", required=True,
        help="TARGET:STAT<=VALUE[%%] joined by & / |; TARGET an asset, ew or {NAME=W,..}; STAT "
        "return, worst_day, best_day, drawdown or vol, e.g. 'JPM:return<=-20%%'",
    )  # fmt: skip
    whatif.add_argument(
        "--horizon", type=_positive_int, default=None, help="days per path (default 21)"
    )
    whatif.add_argument(
        "--n", type=_positive_int, default=10_000, help="scenarios inside the event (default 1e4)"
    )
    whatif.add_argument(
        "--tilt", default="auto", choices=["auto", "latent", "latent+noise"],
        help="what the proposal moves (default: latent for mlp, latent+noise for gru)",
    )  # fmt: skip
    whatif.add_argument(
        "--strategy", default=None, help=f"{strategy_help} (default buy_and_hold / equal_weight)"
    )
    whatif.add_argument("--fees", type=float, default=0.0, help="fees per trade, fraction")
    whatif.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    whatif.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    whatif.add_argument("--out", default=None, help="save the scenarios (.npz or .parquet)")
    whatif.set_defaults(func=cmd_whatif)

    report = sub.add_parser("report", help="write the HTML report of a saved stress test again")
    report.add_argument("source", help="folder written by `stressvae stress` or `stressvae demo`")
    report.add_argument("--out", default=None, help="HTML path (default SOURCE/report.html)")
    report.add_argument("--quiet", action="store_true")
    report.set_defaults(func=cmd_report)

    bench = sub.add_parser(
        "bench",
        help="run the benchmarks and print the ratio tables",
        description=(
            "Runs benchmarks/ (source checkout): native sampling and decode vs torch, the fast "
            "backtest path vs vectorbt; prints each table."
        ),
    )
    bench.add_argument("--quick", action="store_true", help="small sizes (about a minute)")
    bench.set_defaults(func=cmd_bench)

    evaluate = sub.add_parser(
        "evaluate",
        help="how real are the scenarios? side by side with classical baselines",
        description=(
            "Scores a saved model's scenarios against real held-out windows (stylized facts, "
            "volatility clustering, tails, a discriminator, train-on-synthetic usefulness, "
            "memorization) next to Gaussian, block-bootstrap and GARCH-t baselines. Pass the "
            "same --split-date / --holdout-every as in training, so the references were never "
            "trained on."
        ),
    )
    evaluate.add_argument("--model", required=True, help="a model saved by `stressvae train`")
    data_args(evaluate)
    evaluate.add_argument("--n", type=_positive_int, default=10_000, help="windows per generator")
    evaluate.add_argument(
        "--n-long", type=_positive_int, default=2_000, help="252-day paths per generator"
    )
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--no-baselines", action="store_true", help="only the model")
    evaluate.add_argument(
        "--discriminator-epochs", type=_positive_int, default=60, help="fewer: faster, weaker"
    )
    evaluate.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    evaluate.add_argument("--out", default="realism.html", help="HTML page (default realism.html)")
    evaluate.set_defaults(func=cmd_evaluate)

    var_bt = sub.add_parser(
        "var-backtest",
        help="out-of-sample VaR / ES backtest of the model beside classical risk models",
        description=(
            "Forecasts, every day of a period the model never trained on and from the prices up "
            "to the day before, the 1- and 10-day return of an asset or portfolio with the model "
            "(from the day's state), historical simulation (250 days), filtered historical "
            "simulation on a GJR-GARCH(1,1)-t and a GARCH(1,1)-t; counts the VaR exceptions and "
            "prints Kupiec, Christoffersen, Basel traffic-light and Acerbi-Szekely Z2 results."
        ),
    )
    var_bt.add_argument("--model", default=None, help="a model saved by `stressvae train`")
    var_bt.add_argument(
        "--data", default="sp500",
        help="bundled dataset (sp500, sp500_nasdaq, sp500_stocks) or a CSV / parquet file of "
        "daily prices with the model's assets (default sp500)",
    )  # fmt: skip
    var_bt.add_argument("--missing", default="raise", choices=["raise", "ffill", "drop"])
    var_bt.add_argument("--start", required=True, help="first day of the period (YYYY-MM-DD)")
    var_bt.add_argument("--end", required=True, help="last day of the period (YYYY-MM-DD)")
    var_bt.add_argument(
        "--weights", type=_weights_arg, default=None,
        help="portfolio: W1,W2,.. or NAME=W,.. (default the asset, or equal weights)",
    )  # fmt: skip
    var_bt.add_argument(
        "--levels", type=lambda t: _csv_list(t, float, "levels"), default=(0.95, 0.99),
        help="VaR / ES levels (default 0.95,0.99)",
    )  # fmt: skip
    var_bt.add_argument(
        "--horizons", type=lambda t: _csv_list(t, int, "whole numbers"), default=(1, 10),
        help="days ahead (default 1,10; h > 1 on non-overlapping blocks)",
    )  # fmt: skip
    var_bt.add_argument(
        "--models", type=lambda t: _csv_list(t, str.strip, "names"),
        default=("vae", "hs", "fhs_gjr", "garch_t"),
        help="forecasters: vae,hs,fhs_gjr,garch_t (default all)",
    )  # fmt: skip
    var_bt.add_argument(
        "--n", type=_positive_int, default=1000, help="draws per forecast (default 1000)"
    )
    var_bt.add_argument(
        "--refit", type=_positive_int, default=None,
        help="refit the GARCH models every this many days (default: fitted once)",
    )  # fmt: skip
    var_bt.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    var_bt.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    var_bt.add_argument("--out", default=None, help="write the table to this .csv")
    var_bt.add_argument(
        "--figure", default=None, help="write returns against each model's 99 %% VaR to this .png"
    )
    var_bt.add_argument("--quiet", action="store_true", help="print nothing on success")
    var_bt.set_defaults(func=cmd_var_backtest)

    info = sub.add_parser("info", help="what was built and which devices are usable (JSON)")
    info.set_defaults(func=cmd_info)
    return parser


def _os_message(err: OSError) -> str:
    if err.filename is None:
        return err.strerror or str(err)
    names = " -> ".join(str(f) for f in (err.filename, err.filename2) if f is not None)
    return f"{err.strerror or err}: {names}"


def _fail(message: str, code: int = EXIT_ERROR) -> int:
    print(f"stressvae: {message}", file=sys.stderr)
    return code


def _raise_terminated(signum, frame):
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    """Runs one command. Returns the exit code: 0, 2 for a user error, 130
    for Ctrl-C, 143 for SIGTERM (see EPILOG); other exceptions propagate."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "command", None) == "generate":
        args.data_given = any(
            a == "--data" or a.startswith("--data=") for a in (argv or sys.argv[1:])
        )
    previous = None
    with contextlib.suppress(ValueError):  # only the main thread can set a handler
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        if hasattr(args, "seed"):
            as_int("--seed", args.seed, 0, 2**64 - 1, error=CliError)
        return args.func(args)
    except Terminated:
        return _fail("terminated (SIGTERM)", EXIT_TERMINATED)
    except KeyboardInterrupt:
        return _fail("interrupted (Ctrl-C)", EXIT_INTERRUPTED)
    except (CliError, ValueError, RuntimeError, FloatingPointError) as err:
        return _fail(f"error: {err}")
    except MemoryError as err:
        return _fail(f"error: out of memory{f': {err}' if str(err) else ''}")
    except OSError as err:
        return _fail(f"error: {_os_message(err)}")
    except ImportError as err:
        return _fail(f"error: a dependency is missing: {err}")
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

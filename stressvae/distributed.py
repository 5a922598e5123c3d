"""Sharded generation and backtests on Dask (dask.distributed).

The scenario index range [0, n) of a plan (the prior, a calm-to-crisis sweep,
augmentation around tail windows) is split into contiguous shards. The
client ships, once per worker, everything a shard needs: the model in its
saved form (safetensors + JSON bytes), the plan (its latent table: the
encodings of the sweep and tail windows, computed here on the client so
that no worker recomputes them with other thread counts), the drift shift,
the strategy and the backtest settings. Each worker generates its index
range with the same seed and backtests it, and sends back only metrics,
never paths. A scenario's random stream depends only on (seed, index), so
the union of the shards equals the single-process result exactly.

Faults are the engine's business: when a worker process dies, its nanny
starts a new one and the scheduler runs the lost shard again; every
scenario is in the result exactly once because shards are gathered by
position, not as they arrive.

Workers with GPUs: start them with a resource, e.g.
``dask worker tcp://scheduler:8786 --nworkers 1 --resources "GPU=1"``, and
pass ``device="cuda", resources={"GPU": 1}``: each shard then runs on a
worker that holds a GPU, one at a time per GPU.

``dask[distributed]`` is an optional extra: ``pip install "stressvae[dask]"``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ._checks import as_int
from ._files import atomic_path, atomic_write, check_free_space
from .generate import ScenarioGenerator, ScenarioPlan, Scenarios
from .native import NativeInputError

ENGINES = ("local", "dask")
SHARDS_FORMAT = "stressvae-shards/1"  # the manifest's "format"
# Fault injection for tests only: when this names a file that does not exist
# yet, the first shard to start creates it and kills its own worker process.
FAULT_ENV = "STRESSVAE_FAULT_ONCE"


def check_engine(engine: str, client: Any, shards: Any) -> None:
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if engine == "local" and (client is not None or shards is not None):
        raise ValueError("client and shards are for engine='dask'")
    bad = isinstance(shards, bool) or not isinstance(shards, int) or shards < 1
    if shards is not None and bad:
        raise ValueError(f"shards must be a positive int, got {shards!r}")


def shard_ranges(n: int, shards: int) -> list[tuple[int, int]]:
    """``shards`` contiguous (start, count) ranges covering [0, n), sizes
    differing by at most one; empty ranges are dropped."""
    if n < 0 or shards < 1:
        raise ValueError(f"need n >= 0 and shards >= 1, got n={n}, shards={shards}")
    edges = np.linspace(0, n, shards + 1).round().astype(np.int64)
    return [(int(a), int(b - a)) for a, b in itertools.pairwise(edges) if b > a]


def local_client(workers: int | None = None):
    """A ``dask.distributed.Client`` on a local cluster of ``workers``
    processes (default: one per core this process may use), one task
    thread each. The client owns the cluster: closing the client (or
    leaving its ``with`` block) shuts the workers down."""
    try:
        from dask.distributed import Client
    except ImportError:  # pragma: no cover - the extra is part of the test install
        raise ImportError(
            'engine="dask" needs dask.distributed: pip install "stressvae[dask]"'
        ) from None
    workers = workers or len(os.sched_getaffinity(0))
    return Client(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")


@contextlib.contextmanager
def dask_client(client: Any) -> Iterator[tuple[Any, int | None]]:
    """The user's client, or a local cluster made for this call and closed
    after it. Also: native threads per worker (None: all the worker has)."""
    if client is not None:
        yield client, None
        return
    with local_client() as c:
        n = len(c.scheduler_info()["workers"]) or 1
        yield c, max(1, len(os.sched_getaffinity(0)) // n)


@contextlib.contextmanager
def engine_client(engine: str, client: Any) -> Iterator[tuple[Any, int | None]]:
    """:func:`dask_client` for engine="dask"; (None, None) for "local"."""
    if engine != "dask":
        yield None, None
        return
    with dask_client(client) as pair:
        yield pair


@dataclasses.dataclass
class Job:
    """What every shard of one plan shares; shipped once per worker.

    task: what the shard function needs besides the scenarios (e.g. the
    strategy and the backtest settings), opaque to the engine."""

    model_bytes: bytes
    asset_names: list
    plan: Any  # generate.ScenarioPlan
    seed: int
    horizon: int
    drift: str
    drift_shift: Any  # float32 [assets] or None
    task: Any
    chunk_size: int | None
    device: str
    num_threads: int | None

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.model_bytes).hexdigest()[:16]


def model_bytes(model: Any) -> bytes:
    """The model in its saved form (what :meth:`ScenarioVAE.save` writes)."""
    with tempfile.TemporaryDirectory() as d:
        path = model.save(Path(d) / "model.safetensors")
        return path.read_bytes()


_WORKER_GENERATORS: dict[tuple, Any] = {}


def _worker_generator(job: Job) -> ScenarioGenerator:
    """The worker's generator for this model, loaded from its bytes once."""
    key = (job.digest, job.device, job.num_threads)
    gen = _WORKER_GENERATORS.get(key)
    if gen is None:
        from .model import ScenarioVAE  # torch: loaded on workers, not at import

        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "model.safetensors"
            path.write_bytes(job.model_bytes)
            model = ScenarioVAE.load(path)
        gen = ScenarioGenerator(model, None, device=job.device, num_threads=job.num_threads)
        _WORKER_GENERATORS.clear()  # one model at a time per worker
        _WORKER_GENERATORS[key] = gen
    gen.asset_names = list(job.asset_names)
    gen.use_drift_shift(job.drift_shift)
    return gen


def _maybe_fail() -> None:
    marker = os.environ.get(FAULT_ENV)
    if not marker:
        return
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    os._exit(1)  # the worker process dies mid-task


def shard_chunks(gen: ScenarioGenerator, job: Job, start: int, count: int) -> Iterator[Scenarios]:
    """The scenarios start .. start + count - 1 of the job's plan, in chunks
    (the job's chunk size, default sized from memory)."""
    cs = job.chunk_size or gen.default_chunk(job.horizon)
    for s in range(start, start + count, cs):
        m = min(cs, start + count - s)
        yield gen.generate(job.plan, job.seed, s, m, job.horizon, job.drift)


def run_shard(job: Job, start: int, count: int, fn: Callable, *extra: Any) -> Any:
    """On a worker: ``fn(gen, job, start, count, *extra)`` with the worker's
    generator for the job's model."""
    _maybe_fail()
    return fn(_worker_generator(job), job, start, count, *extra)


def make_job(gen, plan, seed, horizon, drift, task=None, chunk_size=None, device="auto",
             num_threads=None) -> Job:  # fmt: skip
    return Job(
        model_bytes(gen.model), list(gen.asset_names), plan, seed, horizon, drift,
        gen.drift_shift(drift), task, chunk_size, device, num_threads,
    )  # fmt: skip


def _submit_all(client, fn, job: Job, ranges, extra, resources, progress):
    from dask.distributed import as_completed

    shipped = client.scatter(job, broadcast=True, hash=False)
    futures = [
        client.submit(run_shard, shipped, s, c, fn, *x, pure=False, resources=resources)
        for (s, c), x in zip(ranges, extra, strict=True)
    ]
    counts = {f.key: c for f, (_, c) in zip(futures, ranges, strict=True)}
    try:
        for fut in as_completed(futures):
            fut.result()  # raises the shard's error here
            if progress is not None:
                progress(counts[fut.key])
        return client.gather(futures)  # in shard order, whatever order they ran in
    finally:
        client.cancel(futures)


def map_shards(
    gen: ScenarioGenerator, plan: ScenarioPlan, seed: int, horizon: int, drift: str,
    fn: Callable, *, task: Any = None, per_shard: Callable[[int], tuple] | None = None,
    chunk_size: int | None = None, client: Any = None, shards: int | None = None,
    resources: dict | None = None, device: str = "auto", progress: Any = None,
    num_threads: int | None = None,
) -> tuple[list, list[tuple[int, int]]]:  # fmt: skip
    """Splits the scenarios of ``plan`` into ``shards`` index ranges (default
    4 per worker) and runs ``fn(gen, job, start, count, *per_shard(i))`` for
    shard i on the Dask workers, where ``gen`` is the worker's generator of
    the same model and ``job`` carries the plan, seed, horizon, drift (and
    its shift measured here), chunk size and ``task``. ``fn`` must be a
    module-level function (it is pickled by name). Returns the results in
    shard order and the (start, count) ranges."""
    with dask_client(client) as (c, threads):
        n_workers = max(1, len(c.scheduler_info()["workers"]))
        ranges = shard_ranges(plan.n, shards or 4 * n_workers)
        job = make_job(gen, plan, seed, horizon, drift, task, chunk_size, device,
                       threads or num_threads)  # fmt: skip
        extra = [per_shard(i) if per_shard else () for i in range(len(ranges))]
        out = _submit_all(c, fn, job, ranges, extra, resources, progress)
    return out, ranges


def write_shard(gen: ScenarioGenerator, job: Job, start: int, count: int, path: str) -> str:
    """On a worker: scenarios start .. start + count - 1 written to ``path``
    (.npy, float32 [count, horizon, assets] log returns), atomically."""
    from numpy.lib.format import open_memmap

    with atomic_path(path) as tmp:
        shape = (count, job.horizon, gen.n_assets)
        out = open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
        for chunk in shard_chunks(gen, job, start, count):
            s = int(chunk.tags["scenario"].iloc[0]) - start
            out[s : s + len(chunk)] = chunk.returns
        out.flush()
        del out
    return str(path)


def write_shards(
    gen, plan, seed: int, folder, horizon: int, drift: str = "keep", chunk_size=None,
    client=None, shards=None, resources=None, progress=None,
) -> Path:  # fmt: skip
    """Writes every scenario of ``plan`` as shard files ``folder/shard-NNNNN.npy``
    (each [count, horizon, assets] float32 log returns, in index order) from
    Dask workers that see ``folder`` (a shared filesystem on a real cluster),
    then ``folder/manifest.json`` (last, atomically: a folder without it is
    not a finished run). Returns the manifest's path."""
    folder = Path(folder)
    check_free_space(folder, 4 * plan.n * horizon * gen.n_assets, f"{plan.n} scenarios in shards")
    folder.mkdir(parents=True, exist_ok=True)
    written, ranges = map_shards(
        gen, plan, seed, horizon, drift, write_shard,
        per_shard=lambda i: (str(folder.resolve() / f"shard-{i:05d}.npy"),),
        chunk_size=chunk_size, client=client, shards=shards, resources=resources,
        device=gen.device, progress=progress,
    )  # fmt: skip
    manifest = {
        "format": SHARDS_FORMAT,
        "n": plan.n,
        "set": plan.label,
        "seed": seed,
        "horizon": horizon,
        "drift": drift,
        "assets": list(gen.asset_names),
        "units": "daily log returns, float32 [count, horizon, assets] per shard",
        "shards": [
            {"path": Path(p).name, "start": s, "count": n}
            for p, (s, n) in zip(written, ranges, strict=True)
        ],
    }
    return atomic_write(folder / "manifest.json", json.dumps(manifest, indent=1).encode())


def generate(
    gen, n: int, seed: int, folder, horizon: int | None = None, drift: str = "keep",
    chunk_size: int | None = None, client=None, shards: int | None = None, resources=None,
) -> Path:  # fmt: skip
    """``gen.sample(n, seed, horizon=..., drift=...)`` generated by Dask
    workers straight into shard files in ``folder`` (shared by the workers),
    never through this process. Returns the manifest; :func:`load_shards`
    reads the scenarios back."""
    n = as_int("n", n, 1, 1 << 40, error=NativeInputError)
    seed, h, cs = gen.check_stream_args(seed, drift, horizon, chunk_size)
    return write_shards(gen, gen.prior_plan(n), seed, folder, h, drift, cs, client, shards,
                        resources)  # fmt: skip


def _bad(mpath: Path, what: str) -> ValueError:
    return ValueError(f"{mpath}: {what}")


def _field(manifest: dict, key: str, kind: type | tuple, mpath: Path) -> Any:
    if key not in manifest:
        raise _bad(mpath, f"missing field {key!r}")
    v = manifest[key]
    if isinstance(v, bool) or not isinstance(v, kind):
        raise _bad(mpath, f"field {key!r} has the wrong type ({type(v).__name__})")
    return v


def read_manifest(folder: str | Path) -> dict:
    """The manifest of a finished shard folder, checked as untrusted input:
    its schema (every field's type), ``format``, and a shard list whose
    entries are plain file names inside the folder, each listed once, with
    counts >= 1 whose starts follow each other from 0 and add up to ``n``.
    Raises ValueError naming the manifest and the field."""
    folder = Path(folder)
    mpath = folder / "manifest.json"
    if not mpath.is_file():
        raise ValueError(f"{folder} holds no finished shard run (no manifest.json)")
    try:
        manifest = json.loads(mpath.read_bytes())
    except (ValueError, UnicodeDecodeError) as e:
        raise _bad(mpath, f"not valid JSON ({e})") from None
    if not isinstance(manifest, dict):
        raise _bad(mpath, "not a JSON object")
    fmt = _field(manifest, "format", str, mpath)
    if fmt != SHARDS_FORMAT:
        raise _bad(mpath, f"format is {fmt!r}, expected {SHARDS_FORMAT!r}")
    n = _field(manifest, "n", int, mpath)
    horizon = _field(manifest, "horizon", int, mpath)
    assets = _field(manifest, "assets", list, mpath)
    if n < 0 or horizon < 1 or not assets or not all(isinstance(a, str) for a in assets):
        raise _bad(mpath, f"need n >= 0, horizon >= 1 and asset names, got n={n}, "
                          f"horizon={horizon}, {len(assets)} assets")  # fmt: skip
    _field(manifest, "seed", int, mpath)
    for key in ("set", "drift", "units"):
        _field(manifest, key, str, mpath)
    shards = _field(manifest, "shards", list, mpath)
    names: set[str] = set()
    start = 0
    for i, sh in enumerate(shards):
        if not isinstance(sh, dict):
            raise _bad(mpath, f"shards[{i}] is not an object")
        name = _field(sh, "path", str, mpath)
        plain = name not in ("", ".", "..") and "/" not in name and "\\" not in name
        if not plain or "\0" in name or Path(name).is_absolute():
            raise _bad(mpath, f"shards[{i}] path {name!r} is not a plain file name in {folder}")
        if name in names or name == "manifest.json":
            raise _bad(mpath, f"shard {name!r} is listed twice")
        names.add(name)
        s, c = _field(sh, "start", int, mpath), _field(sh, "count", int, mpath)
        if c < 1:
            raise _bad(mpath, f"shard {name!r} has count {c}, expected >= 1")
        if s != start:
            raise _bad(mpath, f"shard {name!r} has start {s}, expected {start}")
        start += c
    if start != n:
        raise _bad(mpath, f"the shards hold {start} scenarios, n says {n}")
    return manifest


def _open_shard(folder: Path, sh: dict, horizon: int, n_assets: int) -> np.memmap:
    """The shard ``sh`` of ``folder`` mapped read-only, after checking that
    it resolves inside the folder (no symlink out), is a float32 C-order
    .npy of shape [count, horizon, assets] and holds all its bytes."""
    from numpy.lib import format as npy

    name = sh["path"]
    where = f"shard {name} in {folder}"
    root = folder.resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root) or path == root:
        raise ValueError(f"{where} resolves outside the folder ({path})")
    if not path.is_file():
        raise ValueError(f"{where} is missing (or not a file)")
    want = (sh["count"], horizon, n_assets)
    with open(path, "rb") as fh:
        try:
            version = npy.read_magic(fh)
            read_header = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}
            if version not in read_header:
                raise ValueError(f"unsupported .npy version {version}")
            shape, fortran, dtype = read_header[version](fh)
        except (ValueError, OSError, SyntaxError) as e:
            raise ValueError(f"{where} is not a readable .npy file ({e})") from None
        if dtype != np.dtype(np.float32) or fortran or shape != want:
            raise ValueError(
                f"{where} holds {dtype}{' (Fortran order)' if fortran else ''} {shape}, "
                f"the manifest says float32 {want}"
            )
        offset = fh.tell()
        size, expected = os.fstat(fh.fileno()).st_size, offset + 4 * math.prod(want)
        if size != expected:
            raise ValueError(f"{where} is truncated or padded: {size} bytes, expected {expected}")
        return np.memmap(fh, dtype=np.float32, mode="r", offset=offset, shape=want)


def load_shards(folder) -> np.ndarray:
    """The scenarios of a shard folder, in index order, float32
    [n, horizon, assets] (read through memory maps, then joined). The
    manifest is untrusted input (see :func:`read_manifest`); every shard is
    checked against it before it is read, and none outside ``folder``."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    horizon, n_assets = manifest["horizon"], len(manifest["assets"])
    parts = [_open_shard(folder, sh, horizon, n_assets) for sh in manifest["shards"]]
    return np.concatenate(parts) if parts else np.empty((0, horizon, n_assets), np.float32)

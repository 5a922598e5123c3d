"""ScenarioGenerator: millions of market scenarios from a trained model.

Every scenario is one latent draw decoded into a window of daily log
returns (plus observation noise for the gaussian likelihood), made by the
native fused sample-and-decode on the CPU. Scenario ``i`` of a call depends
only on (model, seed, i): any chunk size, thread count or n gives the same
scenario i, bit for bit on one machine.

- ``sample(n, seed)``: from the prior N(0, I), the model's own market.
- ``interpolate(start, end, steps, n_per_step, seed)``: from one regime to
  another (e.g. calm -> crisis), along a latent path, step by step.
- ``augment(windows, n_per_window, seed)``: many variations around given
  (tail) windows.
- ``iter_chunks(...)``: the same streams in chunks; nothing of size
  n x horizon x assets is held unless asked for.

Each of these is a :class:`ScenarioPlan` (``prior_plan``,
``interpolate_plan``, ``augment_plan``: where the latent draw of scenario i
comes from) run by one path: ``stream(plan, seed)`` yields its scenarios in
chunks, ``generate(plan, seed, start, count)`` makes an index range of it (a
shard). A plan is a small picklable value: the Dask engine ships it to
workers that generate their own index ranges.

Paths longer than the model's window (``horizon=``): a recurrent
(``decoder="gru"``) model rolls each scenario out day by day from one latent
draw, to any horizon, in one native call per chunk (``regime_halflife=``
lets z drift back towards the prior along the path, so regimes can change
within it). An MLP model chains ``ceil(horizon / window)`` windows per
scenario, each from its own latent draw around the same point (the regime
persists; the days at the seams are independent).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from . import _importance, native
from ._checks import as_float, as_int
from ._files import atomic_path
from .data import as_windows

__all__ = ["DRIFTS", "SETS", "ScenarioGenerator", "ScenarioPlan", "Scenarios"]

DRIFTS = ("keep", "zero", "historical")
# what the scenarios of a stream are, in tags["set"] (new sets go at the end)
SETS = ("prior", "sweep", "tail", "given", "today")
PATHS = ("linear", "spherical")
_CALIBRATION = (65_536, 0x5EED_CA1B)  # n, seed of the draw that measures the model's drift


@dataclasses.dataclass
class Scenarios:
    """Generated scenarios.

    returns: float32 ``[n, horizon, assets]`` daily log returns (numpy).
    tags: one row per scenario: ``scenario`` (its global index in the stream)
        and what the generator knows of it (``set``; ``step`` and ``alpha``
        for a sweep; ``anchor`` for augmentation).
    """

    returns: np.ndarray
    tags: Any  # pandas.DataFrame
    seed: int
    horizon: int
    window: int
    asset_names: list[str]
    drift: str = "keep"

    def __len__(self) -> int:
        return int(self.returns.shape[0])

    @property
    def n_assets(self) -> int:
        return int(self.returns.shape[2])

    @property
    def weights(self) -> np.ndarray | None:
        """Importance weights (float64 [n], likelihood ratios; what-if
        scenarios of :meth:`ScenarioGenerator.given`), or None: every
        scenario counts the same."""
        if "weight" not in self.tags.columns:
            return None
        return self.tags["weight"].to_numpy(np.float64)

    @property
    def ess(self) -> float:
        """Effective sample size, (sum w)^2 / sum w^2 (n without weights)."""
        w = self.weights
        return float(len(self)) if w is None else _importance.ess(w)

    def prices(self, start: float | np.ndarray = 1.0) -> np.ndarray:
        """Price paths, float64 ``[n, horizon + 1, assets]``: ``start *
        exp(cumsum(returns))`` in float64, with ``start`` as the first row.
        ``start`` is a number or one per asset. The backtests use exactly
        this function."""
        s = np.asarray(start, dtype=np.float64)
        if s.ndim > 1 or (s.ndim == 1 and s.shape[0] != self.n_assets):
            raise ValueError(f"start must be a number or {self.n_assets} numbers (one per asset)")
        if not np.all(np.isfinite(s)) or np.any(s <= 0):
            raise ValueError("start prices must be finite and > 0")
        r = self.returns.astype(np.float64)
        out = np.empty((len(self), self.horizon + 1, self.n_assets), dtype=np.float64)
        out[:, 0, :] = 0.0
        np.cumsum(r, axis=1, out=out[:, 1:, :])
        np.exp(out, out=out)
        out *= s
        return out

    def to_frame(self):
        """Long DataFrame: scenario, day (1..horizon), asset, log_return, plus
        the tags of each scenario."""
        import pandas as pd

        n, h, a = self.returns.shape
        frame = pd.DataFrame(
            {
                "scenario": np.repeat(self.tags["scenario"].to_numpy(), h * a),
                "day": np.tile(np.repeat(np.arange(1, h + 1), a), n),
                "asset": np.tile(np.array(self.asset_names, dtype=object), n * h),
                "log_return": self.returns.reshape(-1),
            }
        )
        extra = self.tags.drop(columns=["scenario"])
        for col in extra.columns:
            frame[col] = np.repeat(extra[col].to_numpy(), h * a)
        return frame

    def save(self, path: str | Path) -> Path:
        """``.npy``: the returns array; ``.npz``: returns and tag columns;
        ``.parquet``: the long frame of :meth:`to_frame`. Written to a
        temporary file in the same folder and renamed, so a reader never sees
        half a file."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".npy", ".npz", ".parquet"):
            raise ValueError(f"save to .npy, .npz or .parquet, got {path.name!r}")
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            if suffix == ".npy":
                np.save(fh, self.returns)
            elif suffix == ".npz":
                cols = {f"tag_{c}": self.tags[c].to_numpy() for c in self.tags.columns}
                np.savez(fh, returns=self.returns, **cols)
            else:
                self.to_frame().to_parquet(fh, index=False)
        return path

    @staticmethod
    def concat(parts: list[Scenarios]) -> Scenarios:
        import pandas as pd

        if not parts:
            raise ValueError("nothing to concatenate")
        first = parts[0]
        return dataclasses.replace(
            first,
            returns=np.concatenate([p.returns for p in parts]),
            tags=pd.concat([p.tags for p in parts], ignore_index=True),
        )


@dataclasses.dataclass
class ConditionalScenarios(Scenarios):
    """Scenarios inside an event (:meth:`ScenarioGenerator.given`), drawn
    from a tilted proposal: ``tags["weight"]`` is each one's likelihood
    ratio (model / proposal), the weight of every weighted statistic.

    event: the event, as text. probability: its probability under the model,
    estimated from every proposal draw made (sum of the weights of the draws
    inside it / draws). draws: proposal draws made for the n scenarios.
    tilt: what the proposal moved ("latent" or "latent+noise"). search: one
    row per cross-entropy iteration (level reached, share of draws inside
    the event, ESS of the elite).
    """

    event: str = ""
    probability: float = float("nan")
    draws: int = 0
    tilt: str = "latent"
    search: Any = None  # pandas.DataFrame

    def __repr__(self) -> str:
        return (
            f"ConditionalScenarios(event={self.event!r}, n={len(self)}, horizon={self.horizon}, "
            f"ess={self.ess:.0f}, probability={self.probability:.3g}, draws={self.draws}, "
            f"tilt={self.tilt!r})"
        )


@dataclasses.dataclass(frozen=True, eq=False)
class ScenarioPlan:
    """What a stream of ``n`` scenarios is, before any is made: where the
    latent draw of each comes from (the prior, or a table of K points (mu,
    logvar) with the point of scenario i given by ``index_of``), and what is
    known of it (``tags_of``, ``label``: one of :data:`SETS`). Made by
    :meth:`ScenarioGenerator.prior_plan`, ``interpolate_plan`` and
    ``augment_plan``; immutable and picklable (the Dask engine ships it to
    its workers).

    phi: recurrent decoders: the AR(1) coefficient of z per day (1: z fixed
        along the path); :meth:`with_phi` gives a copy with another one.
    """

    n: int
    mu: np.ndarray  # [K, latent] float32
    logvar: np.ndarray  # [K, latent]
    scale: float
    index_of: Any  # callable(global ids int64 [m]) -> int64 [m], or None (prior)
    tags_of: Any  # callable(global ids) -> dict of columns
    label: str
    phi: float = 1.0

    def with_phi(self, phi: float) -> ScenarioPlan:
        """This plan with the latent AR(1) coefficient ``phi`` (see
        :meth:`ScenarioGenerator.phi_of`)."""
        return dataclasses.replace(self, phi=phi)


def available_memory() -> int | None:
    """MemAvailable of /proc/meminfo in bytes (None where it cannot be read)."""
    try:
        with open("/proc/meminfo") as fh:
            return next(int(ln.split()[1]) * 1024 for ln in fh if ln.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None


def memory_budget(cap: int) -> int:
    """Bytes a chunk may use: ``cap``, or a twentieth of the available
    memory when that is less (never below 4 MiB)."""
    avail = available_memory()
    if avail is None:
        return cap
    return min(cap, max(avail // 20, 4 << 20))


def check_memory(n: int, horizon: int, n_assets: int) -> None:
    """Raises MemoryError, before anything is allocated, when the returns of
    n scenarios (n x horizon x assets float32) need more than the available
    memory; the message gives both sizes and points to streaming."""
    need = 4 * n * horizon * n_assets
    avail = available_memory()
    if avail is not None and need > avail:
        raise MemoryError(
            f"n={n} scenarios of {horizon} days x {n_assets} assets need "
            f"{need / 2**30:.1f} GiB of memory, {avail / 2**30:.1f} GiB is available: "
            "stream them in chunks with gen.iter_chunks(n, seed, ...) or write them "
            "to a file with `stressvae generate --out`"
        )


# The maps from a scenario's global index to its latent point and its tags are
# small classes, not closures: a plan pickles, so that stressvae.distributed
# ships it once to workers that generate their own index ranges.
# They take (global ids, seed): only the mixture prior's depends on the seed.
@dataclasses.dataclass(frozen=True)
class _DivIndex:
    per: int

    def __call__(self, ids: np.ndarray, seed: int = 0) -> np.ndarray:
        return ids // self.per


@dataclasses.dataclass(frozen=True)
class _PairedIndex:
    n_per_step: int
    pairs: int

    def __call__(self, ids: np.ndarray, seed: int = 0) -> np.ndarray:
        step, j = ids // self.n_per_step, ids % self.n_per_step
        return step * self.pairs + (j % self.pairs)


_M64 = (1 << 64) - 1


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer over uint64 (wrapping arithmetic)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@dataclasses.dataclass(frozen=True)
class _MixtureIndex:
    """The mixture prior's component of each scenario: uniform over the K
    components, a hash of (seed, scenario id), so it is the same for any
    chunking, sharding or engine."""

    k: int

    def __call__(self, ids: np.ndarray, seed: int = 0) -> np.ndarray:
        key = _splitmix64(np.array([seed & _M64], dtype=np.uint64) ^ np.uint64(0x6A09E667F3BCC909))
        x = _splitmix64(ids.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + key)
        return ((x >> np.uint64(11)) % np.uint64(self.k)).astype(np.int64)


class _NoTags:
    def __call__(self, ids: np.ndarray) -> dict:
        return {}


@dataclasses.dataclass(frozen=True)
class _SweepTags:
    n_per_step: int
    alphas: np.ndarray

    def __call__(self, ids: np.ndarray) -> dict:
        step = ids // self.n_per_step
        return {"step": step, "alpha": self.alphas[step]}


@dataclasses.dataclass(frozen=True)
class _AnchorTags:
    per: int

    def __call__(self, ids: np.ndarray) -> dict:
        return {"anchor": ids // self.per}


class ScenarioGenerator:
    """Generates scenarios from a trained :class:`stressvae.ScenarioVAE`.

    model: a trained ScenarioVAE (its scaler turns outputs into log returns).
    data: the WindowData it was trained on (asset names; optional).
    device: "cpu", "cuda" or "auto" (a GPU when one is usable). On a GPU the
        fused CUDA kernel runs (checked against the CPU decoder on first
        use); a model it cannot take (widths over 256) falls back to the torch
        decoder with native latent draws and noise, with a warning.
    num_threads: CPU threads (default: all this process may use).
    """

    def __init__(
        self,
        model: Any,
        data: Any = None,
        device: str = "auto",
        num_threads: int | None = None,
        isa: str = "auto",
    ) -> None:
        from .model import ScenarioVAE

        if not isinstance(model, ScenarioVAE):
            raise ValueError(f"model must be a ScenarioVAE, got {type(model).__name__}")
        if data is not None and (data.window, data.n_assets) != (model.window, model.n_assets):
            raise ValueError(
                f"data has windows of {data.window} days x {data.n_assets} assets, the model "
                f"{model.window} x {model.n_assets}"
            )
        self.model = model.eval()
        self.window, self.n_assets, self.latent_dim = model.window, model.n_assets, model.latent_dim
        self.asset_names = (
            list(data.asset_names)
            if data is not None
            else [f"asset{i}" for i in range(self.n_assets)]
        )
        self.device = self._resolve_device(device)
        self.weights = model.export_decoder()
        self.recurrent = model.decoder.recurrent
        if self.recurrent:
            self.decoder = native.NativeRollout(self.weights, isa=isa, num_threads=num_threads)
        else:
            self.decoder = native.NativeDecoder(self.weights, isa=isa, num_threads=num_threads)
        self.cuda_decoder = None
        if self.device != "cpu":
            kind = native.CudaRollout if self.recurrent else native.CudaDecoder
            try:
                self.cuda_decoder = kind(self.weights, self.device)
            except native.NativeInputError as err:
                what = "GRU cell" if self.recurrent else "decoder MLP"
                warnings.warn(
                    f"ScenarioGenerator on {self.device}: the fused CUDA kernel cannot take this "
                    f"model ({err}); latent draws and noise run natively on the GPU and the "
                    f"{what} in torch (slower; the same scenarios within float32 tolerance).",
                    stacklevel=2,
                )
            self.model.to(self.device)
        self._today = None if data is None else (data.latest(), data.returns.index[-1])
        self._drift_shift: np.ndarray | None = None
        self._tables: tuple[ScenarioPlan, Any] | None = None  # a plan's tables on the GPU

    @staticmethod
    def _resolve_device(device: str) -> str:
        if device not in ("auto", "cpu") and not str(device).startswith("cuda"):
            raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {device!r}")
        info = native.native_info()["cuda"]
        if device == "auto":
            return "cuda" if info["usable"] else "cpu"
        if str(device).startswith("cuda") and not info["usable"]:
            raise ValueError(f"device={device!r} but no usable CUDA device: {info['reason']}")
        return device

    # ---------------------------------------------------------------- plans
    def prior_plan(self, n: int) -> ScenarioPlan:
        """The plan of ``sample(n, seed)``: n draws from the model's prior,
        N(0, I), or the mixture of training posteriors the Trainer stores
        (:meth:`ScenarioVAE.set_prior`): scenario i takes component
        hash(seed, i) and draws z around it."""
        n = as_int("n", n, 0, 1 << 40, error=native.NativeInputError)
        tables = self.model.prior_tables()
        if tables is not None:
            mu, lv = tables
            return ScenarioPlan(n, mu, lv, 1.0, _MixtureIndex(len(mu)), _NoTags(), "prior")
        z = np.zeros((1, self.latent_dim), np.float32)
        return ScenarioPlan(n, z, z, 1.0, None, _NoTags(), "prior")

    def check_stream_args(
        self, seed: Any, drift: str, horizon: Any, chunk_size: Any
    ) -> tuple[int, int, int | None]:
        """The checked (seed, horizon, chunk_size) of a stream; horizon None
        is the model's window, chunk_size None stays None (sized from memory)."""
        seed = as_int("seed", seed, 0, (1 << 64) - 1, error=native.NativeInputError)
        if drift not in DRIFTS:
            raise ValueError(f"drift must be one of {DRIFTS}, got {drift!r}")
        h = (
            self.window
            if horizon is None
            else as_int("horizon", horizon, 1, 1 << 24, error=native.NativeInputError)
        )
        cs = (
            None
            if chunk_size is None
            else as_int("chunk_size", chunk_size, 1, 1 << 40, error=native.NativeInputError)
        )
        return seed, h, cs

    def phi_of(self, regime_halflife: Any) -> float:
        """The latent AR(1) coefficient per day for a regime half-life in days
        (``None``: z fixed along the path, phi = 1): phi = 2^(-1 / half-life),
        so z_t's pull to its start halves every ``regime_halflife`` days."""
        if regime_halflife is None:
            return 1.0
        if not self.recurrent:
            raise ValueError(
                "regime_halflife needs a recurrent model (ScenarioVAE(decoder='gru')): an MLP "
                "decoder makes whole windows and cannot change regime within a path"
            )
        if isinstance(regime_halflife, bool):
            raise ValueError("regime_halflife must be a number of days, got a bool")
        try:
            hl = float(regime_halflife)
        except (TypeError, ValueError):
            raise ValueError(
                f"regime_halflife must be a number of days, got {regime_halflife!r}"
            ) from None
        if not (np.isfinite(hl) and hl > 0):
            raise ValueError(f"regime_halflife must be a positive number of days, got {hl}")
        return float(np.float32(2.0 ** (-1.0 / hl)))

    def drift_shift(self, drift: str) -> np.ndarray | None:
        """The per-asset shift (float32 [assets]) added to every return for
        ``drift``: None unless drift="historical", where it moves the model's
        mean daily return (measured once on a fixed calibration draw from the
        prior) to the training mean."""
        if drift != "historical":
            return None
        if self._drift_shift is None:
            n, seed = _CALIBRATION
            zero = np.zeros(self.latent_dim, np.float32)
            if self.recurrent:
                n //= 4  # a quarter as many paths, each rolled out over one window
                x = self.decoder.sample(zero, zero, n, seed=seed, horizon=self.window)
            else:
                x = self.decoder.sample(zero, zero, n, seed=seed)
            gen_mean = x.astype(np.float64).mean(axis=(0, 1))
            hist_mean = self.weights.scaler_mean.astype(np.float64)
            self._drift_shift = (hist_mean - gen_mean).astype(np.float32)
        return self._drift_shift

    def use_drift_shift(self, shift: np.ndarray | None) -> None:
        """Uses ``shift`` (what :meth:`drift_shift` gave on another machine,
        e.g. the client that ships a Dask job) for drift="historical" instead
        of measuring it here; None measures it again on first use."""
        self._drift_shift = None if shift is None else np.asarray(shift, np.float32)

    def default_chunk(self, horizon: int) -> int:
        """Scenarios per chunk: about 32 MiB of returns, less when memory is short."""
        per = horizon * self.n_assets * 4
        return max(1024, memory_budget(32 << 20) // per)

    # ---------------------------------------------------------------- streams
    def stream(
        self,
        plan: ScenarioPlan,
        seed: int,
        chunk_size: int | None = None,
        horizon: int | None = None,
        drift: str = "keep",
    ) -> Iterator[Scenarios]:
        """The scenarios of ``plan`` in index order, ``chunk_size`` at a time
        (default: ~32 MiB of returns per chunk). Arguments are checked here,
        before the first chunk is asked for."""
        seed, h, cs = self.check_stream_args(seed, drift, horizon, chunk_size)
        return self._chunks(plan, seed, cs, h, drift)

    def generate(
        self,
        plan: ScenarioPlan,
        seed: int,
        start: int,
        count: int,
        horizon: int | None = None,
        drift: str = "keep",
    ) -> Scenarios:
        """Scenarios ``start .. start + count - 1`` of ``plan`` (a shard):
        equal to those rows of the whole stream, whatever the chunking."""
        seed, h, _ = self.check_stream_args(seed, drift, horizon, None)
        start = as_int("start", start, 0, plan.n, error=native.NativeInputError)
        count = as_int("count", count, 0, plan.n - start, error=native.NativeInputError)
        return self._run(plan, seed, start, count, h, drift, None)

    def _run(
        self,
        plan: ScenarioPlan,
        seed: int,
        start: int,
        m: int,
        horizon: int,
        drift: str,
        out: np.ndarray | None,
    ) -> Scenarios:
        """Scenarios start .. start + m - 1 of a plan."""
        if self.recurrent:
            returns = self._rollout(plan, seed, start, m, horizon, drift, out)
            return self._scenarios(plan, seed, start, m, horizon, drift, returns)
        k = -(-horizon // self.window)  # windows per scenario
        ids = np.arange(start, start + m, dtype=np.int64)
        rows = m * k
        buf = np.empty((rows, self.window, self.n_assets), np.float32) if out is None else out
        kwargs = dict(
            seed=seed, offset=start * k, scale=plan.scale, demean=(drift == "zero"),
            shift=self.drift_shift(drift), check_finite=False,
        )  # fmt: skip
        idx = None
        if plan.index_of is not None:
            idx = np.repeat(plan.index_of(ids, seed).astype(np.int64), k)
        if self.cuda_decoder is not None:
            buf[...] = self._cuda_run(plan, idx, rows, **kwargs)
        elif self.device != "cpu":
            buf[...] = self._torch_decode(plan, idx, rows, **kwargs)
        elif idx is None:
            self.decoder.sample(plan.mu[0], plan.logvar[0], rows, out=buf, **kwargs)
        else:
            self.decoder.sample(plan.mu, plan.logvar, index=idx, out=buf, **kwargs)
        returns = buf.reshape(m, k * self.window, self.n_assets)
        if k * self.window != horizon:
            returns = np.ascontiguousarray(returns[:, :horizon])
        return self._scenarios(plan, seed, start, m, horizon, drift, returns)

    def _scenarios(self, plan, seed, start, m, horizon, drift, returns) -> Scenarios:
        import pandas as pd

        ids = np.arange(start, start + m, dtype=np.int64)
        cols = plan.tags_of(ids)
        codes = np.full(m, SETS.index(plan.label), dtype=np.int8)
        tags = pd.DataFrame(
            {"scenario": ids, "set": pd.Categorical.from_codes(codes, categories=SETS), **cols}
        )
        return Scenarios(returns, tags, seed, horizon, self.window, self.asset_names, drift)

    def _rollout(self, plan, seed, start, m, horizon, drift, out) -> np.ndarray:
        """The recurrent decoder: scenarios start .. start + m - 1, one latent
        draw each (scenario index = Philox offset), every day in one call."""
        ids = np.arange(start, start + m, dtype=np.int64)
        idx = None if plan.index_of is None else plan.index_of(ids, seed).astype(np.int64)
        buf = np.empty((m, horizon, self.n_assets), np.float32) if out is None else out
        kw = dict(
            seed=seed, offset=start, scale=plan.scale, demean=(drift == "zero"),
            shift=self.drift_shift(drift), horizon=horizon, phi=plan.phi,
        )  # fmt: skip
        if m == 0:
            return buf
        if self.device != "cpu":
            buf[...] = self._device_rollout(plan, idx, m, **kw)
        elif idx is None:
            self.decoder.sample(plan.mu[0], plan.logvar[0], m, out=buf, check_finite=False, **kw)
        else:
            self.decoder.sample(plan.mu, plan.logvar, index=idx, out=buf, check_finite=False, **kw)
        return buf

    def _device_rollout(self, plan, idx, m, *, seed, offset, scale, demean, shift, horizon, phi):
        """On a GPU: the fused CUDA rollout, or (a model it cannot take) the
        torch rollout fed the native noise; copied to the host."""
        import torch

        dev = torch.device(self.device)
        mu, lv = self._device_tables(plan, dev)
        index = None if idx is None else torch.from_numpy(idx).to(dev)
        kw = dict(seed=seed, offset=offset, scale=scale)
        if self.cuda_decoder is not None:
            args = (mu[0], lv[0], m) if index is None else (mu, lv)
            y = self.cuda_decoder.sample(
                *args, index=index, horizon=horizon, phi=phi, demean=demean, shift=shift,
                check_finite=False, **kw,
            )  # fmt: skip
            return y.cpu().numpy()
        if index is None:
            z = native.sample_latent(mu[0], lv[0], m, **kw)
        else:
            z = native.sample_latent(mu, lv, index=index, **kw)
        eps, eta = native.rollout_noise(
            m, horizon, self.n_assets, self.latent_dim, seed=seed, offset=offset,
            drift=phi < 1.0, device=str(dev), factors=self.model.factors,
        )  # fmt: skip
        with torch.no_grad():
            x = self.model.rollout_scaled(z, horizon, eps, phi=phi, eta=eta)
            y = self._unscale(x, shift, demean)
        return y.cpu().numpy()

    def _unscale(self, x: Any, shift: np.ndarray | None, demean: bool) -> Any:
        """The native epilogue in torch, for the torch decoder paths:
        standardized x -> data units, plus the drift shift, demeaned per
        path when asked."""
        import torch

        y = x * self.model.scaler_std + self.model.scaler_mean
        if shift is not None:
            y = y + torch.from_numpy(shift).to(y.device)
        if demean:
            y = y - y.double().mean(dim=1, keepdim=True).float()
        return y

    def _device_tables(self, plan: ScenarioPlan, dev: Any) -> tuple[Any, Any]:
        """The plan's (mu, logvar) tables on the GPU, copied once per plan."""
        import torch

        if self._tables is None or self._tables[0] is not plan:
            tables = (torch.from_numpy(plan.mu).to(dev), torch.from_numpy(plan.logvar).to(dev))
            self._tables = (plan, tables)
        return self._tables[1]

    def _cuda_run(self, plan, idx, rows, *, seed, offset, scale, demean, shift, check_finite):
        """The fused CUDA kernel for one chunk; copied to the host."""
        import torch

        mu, lv = self._device_tables(plan, self.cuda_decoder.device)
        kw = dict(seed=seed, offset=offset, scale=scale, demean=demean, shift=shift)
        if idx is None:
            y = self.cuda_decoder.sample(mu[0], lv[0], rows, check_finite=False, **kw)
        else:
            index = torch.from_numpy(idx).to(self.cuda_decoder.device)
            y = self.cuda_decoder.sample(mu, lv, index=index, check_finite=False, **kw)
        return y.cpu().numpy()

    def _torch_decode(self, plan, idx, rows, *, seed, offset, scale, demean, shift, check_finite):
        """The GPU fallback: native latent draws and noise on the device, the
        decoder MLP in torch, the same arithmetic as the native epilogue."""
        import torch

        dev = torch.device(self.device)
        mu = torch.from_numpy(plan.mu).to(dev)
        lv = torch.from_numpy(plan.logvar).to(dev)
        if idx is None:
            z = native.sample_latent(mu[0], lv[0], rows, seed=seed, offset=offset, scale=scale)
        else:
            z = native.sample_latent(
                mu, lv, seed=seed, offset=offset, scale=scale, index=torch.from_numpy(idx).to(dev)
            )
        with torch.no_grad():
            mean, log_scale, *extra = self.model.decode_scaled(z)
            x = mean.reshape(rows, -1)
            if extra:  # common factors: f of day t, factor j at element t * k + j
                k = extra[0].shape[-1]
                f = native.normals(
                    rows,
                    self.window * k,
                    seed=seed,
                    offset=offset,
                    tag=native.TAG_FACTOR,
                    device=str(dev),
                ).reshape(rows, self.window, 1, k)
                x = x + (extra[0] * f).sum(-1).reshape(rows, -1)
            if log_scale is not None:
                eps = native.normals(
                    rows, x.shape[1], seed=seed, offset=offset, tag=native.TAG_OBSERVATION,
                    device=str(dev),
                )  # fmt: skip
                x = x + torch.exp(log_scale.reshape(rows, -1)) * eps
            x = x.reshape(rows, self.window, self.n_assets)
            y = self._unscale(x, shift, demean)
        return y.cpu().numpy()

    def _chunks(
        self, plan: ScenarioPlan, seed: int, chunk_size: int | None, horizon: int, drift: str
    ) -> Iterator[Scenarios]:
        cs = chunk_size or self.default_chunk(horizon)
        for start in range(0, plan.n, cs):
            yield self._run(plan, seed, start, min(cs, plan.n - start), horizon, drift, None)

    def _collect(self, plan, seed, chunk_size, horizon, drift) -> Scenarios:
        check_memory(plan.n, horizon, self.n_assets)
        parts = list(self._chunks(plan, seed, chunk_size or plan.n or 1, horizon, drift))
        if not parts:
            return self._run(plan, seed, 0, 0, horizon, drift, None)
        return parts[0] if len(parts) == 1 else Scenarios.concat(parts)

    # ---------------------------------------------------------------- public
    def sample(
        self,
        n: int,
        seed: int,
        chunk_size: int | None = None,
        drift: str = "keep",
        horizon: int | None = None,
        regime_halflife: float | None = None,
    ) -> Scenarios:
        """n scenarios from the prior: the model's own market.

        drift: "keep" (the model's mean), "zero" (each scenario demeaned per
        asset: no drift at all), "historical" (shifted so that the mean daily
        return equals the training mean).
        horizon: days per path (default: the model's window).
        regime_halflife: recurrent models only: days over which z's pull to
            its draw halves, z following an AR(1) towards the prior so the
            regime can change along a long path (None: z fixed).
        """
        plan = self.prior_plan(n)
        seed, h, cs = self.check_stream_args(seed, drift, horizon, chunk_size)
        return self._collect(plan.with_phi(self.phi_of(regime_halflife)), seed, cs, h, drift)

    def iter_chunks(
        self,
        n: int,
        seed: int,
        chunk_size: int | None = None,
        drift: str = "keep",
        horizon: int | None = None,
        regime_halflife: float | None = None,
    ) -> Iterator[Scenarios]:
        """The scenarios of ``sample(n, seed)`` in order, ``chunk_size`` at a
        time (default: ~32 MiB of returns per chunk)."""
        plan = self.prior_plan(n)
        seed, h, cs = self.check_stream_args(seed, drift, horizon, chunk_size)
        return self._chunks(plan.with_phi(self.phi_of(regime_halflife)), seed, cs, h, drift)

    def _encode(self, windows: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
        w = as_windows(windows, self.window, self.n_assets, name)
        if len(w) == 0:
            raise ValueError(f"{name} is empty")
        mu, lv = self.model.encode(w)
        return mu.cpu().numpy().astype(np.float64), lv.cpu().numpy().astype(np.float64)

    @staticmethod
    def _regime_gaussian(mu: np.ndarray, lv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Moment-matched Gaussian of a set of posteriors (the aggregate
        posterior of a regime): mean of mu; variance = variance of mu + mean
        of the posterior variances."""
        center = mu.mean(axis=0)
        var = mu.var(axis=0) + np.exp(lv).mean(axis=0)
        return center, np.log(var)

    def interpolate_plan(
        self,
        start_windows: Any,
        end_windows: Any,
        steps: int = 11,
        n_per_step: int = 1000,
        path: str = "linear",
        spread: float = 1.0,
        paired: bool = False,
    ) -> ScenarioPlan:
        """The plan of :meth:`interpolate` (the windows are encoded here, once)."""
        steps = as_int("steps", steps, 2, 100_000, error=native.NativeInputError)
        n_per_step = as_int("n_per_step", n_per_step, 1, 1 << 36, error=native.NativeInputError)
        if path not in PATHS:
            raise ValueError(f"path must be one of {PATHS}, got {path!r}")
        spread = as_float("spread", spread, 0.0, error=native.NativeInputError)
        mu_s, lv_s = self._encode(start_windows, "start_windows")
        mu_e, lv_e = self._encode(end_windows, "end_windows")
        alphas = np.linspace(0.0, 1.0, steps)
        if paired:
            if len(mu_s) != len(mu_e):
                raise ValueError(
                    "paired=True needs as many start as end windows, got "
                    f"{len(mu_s)} and {len(mu_e)}"
                )
            pairs = len(mu_s)
            mus = np.stack([_walk(mu_s, mu_e, a, path) for a in alphas])  # [steps, pairs, L]
            lvs = np.stack([(1 - a) * lv_s + a * lv_e for a in alphas])
            mu_t, lv_t = mus.reshape(-1, self.latent_dim), lvs.reshape(-1, self.latent_dim)

            index_of = _PairedIndex(n_per_step, pairs)
        else:
            c_s, v_s = self._regime_gaussian(mu_s, lv_s)
            c_e, v_e = self._regime_gaussian(mu_e, lv_e)
            mu_t = np.stack([_walk(c_s[None], c_e[None], a, path)[0] for a in alphas])
            lv_t = np.stack([(1 - a) * v_s + a * v_e for a in alphas])

            index_of = _DivIndex(n_per_step)

        return ScenarioPlan(
            steps * n_per_step, mu_t.astype(np.float32), lv_t.astype(np.float32), spread,
            index_of, _SweepTags(n_per_step, alphas), "sweep",
        )  # fmt: skip

    def interpolate(
        self,
        start_windows: Any,
        end_windows: Any,
        steps: int = 11,
        n_per_step: int = 1000,
        seed: int = 0,
        path: str = "linear",
        spread: float = 1.0,
        paired: bool = False,
        chunk_size: int | None = None,
        drift: str = "keep",
        horizon: int | None = None,
        regime_halflife: float | None = None,
    ) -> Scenarios:
        """Scenarios along a latent path from one set of windows to another
        (e.g. ``data.regime("calm")`` to ``data.regime("crisis")``).

        Each set is encoded; by default the path runs between the sets'
        regimes, each summarized as a Gaussian (the mean of the posterior
        means; variance = their spread plus the mean posterior variance). At
        ``steps`` points alpha = 0 .. 1 along the path (``"linear"``, or
        ``"spherical"`` interpolation of the centers), ``n_per_step`` draws are
        made around the point with the interpolated variance times
        ``spread``^2. ``paired=True`` walks each start window to the end window
        of the same position instead. Scenarios come out step by step (all of
        step 0, then step 1, ...); ``tags`` has each one's ``step`` and ``alpha``.
        """
        seed, h, cs = self.check_stream_args(seed, drift, horizon, chunk_size)
        plan = self.interpolate_plan(
            start_windows, end_windows, steps, n_per_step, path, spread, paired
        )
        return self._collect(plan.with_phi(self.phi_of(regime_halflife)), seed, cs, h, drift)

    def iter_interpolate(
        self,
        start_windows: Any,
        end_windows: Any,
        steps: int = 11,
        n_per_step: int = 1000,
        seed: int = 0,
        path: str = "linear",
        spread: float = 1.0,
        paired: bool = False,
        chunk_size: int | None = None,
        drift: str = "keep",
        horizon: int | None = None,
        regime_halflife: float | None = None,
    ) -> Iterator[Scenarios]:
        """The scenarios of :meth:`interpolate`, in chunks."""
        seed, h, cs = self.check_stream_args(seed, drift, horizon, chunk_size)
        plan = self.interpolate_plan(
            start_windows, end_windows, steps, n_per_step, path, spread, paired
        )
        return self._chunks(plan.with_phi(self.phi_of(regime_halflife)), seed, cs, h, drift)

    def iter_augment(
        self,
        windows: Any,
        n_per_window: int,
        scale: float = 0.5,
        seed: int = 0,
        chunk_size: int | None = None,
        drift: str = "keep",
        horizon: int | None = None,
        regime_halflife: float | None = None,
    ) -> Iterator[Scenarios]:
        """The scenarios of :meth:`augment`, in chunks."""
        seed, h, cs = self.check_stream_args(seed, drift, horizon, chunk_size)
        plan = self.augment_plan(windows, n_per_window, scale)
        return self._chunks(plan.with_phi(self.phi_of(regime_halflife)), seed, cs, h, drift)

    def augment_plan(self, windows: Any, n_per_window: int, scale: float = 0.5) -> ScenarioPlan:
        """The plan of :meth:`augment` (the windows are encoded here, once)."""
        n_per_window = as_int(
            "n_per_window", n_per_window, 1, 1 << 36, error=native.NativeInputError
        )
        scale = as_float("scale", scale, 0.0, error=native.NativeInputError)
        mu, lv = self._encode(windows, "windows")
        k = len(mu)

        return ScenarioPlan(
            k * n_per_window, mu.astype(np.float32), lv.astype(np.float32), scale,
            _DivIndex(n_per_window), _AnchorTags(n_per_window), "tail",
        )  # fmt: skip

    def augment(
        self,
        windows: Any,
        n_per_window: int,
        scale: float = 0.5,
        seed: int = 0,
        chunk_size: int | None = None,
        drift: str = "keep",
        horizon: int | None = None,
        regime_halflife: float | None = None,
    ) -> Scenarios:
        """``n_per_window`` variations of each given window (e.g.
        ``data.regime("tail")``): draws around its posterior with the posterior
        standard deviation shrunk by ``scale``. ``tags["anchor"]`` is the
        position of the window each scenario comes from."""
        seed, h, cs = self.check_stream_args(seed, drift, horizon, chunk_size)
        plan = self.augment_plan(windows, n_per_window, scale)
        return self._collect(plan.with_phi(self.phi_of(regime_halflife)), seed, cs, h, drift)

    # ---------------------------------------------------------------- from today
    def recent_window(self, prices: Any = None) -> tuple[np.ndarray, Any]:
        """The latest window of daily log returns, float32 [window, assets],
        and its last date (None when unknown): from ``prices`` (price
        levels: a DataFrame with the model's asset columns, a Series for one
        asset, or an array [days, assets]; the last window + 1 rows are
        used), or else the generator's data (its most recent window)."""
        import pandas as pd

        if prices is None:
            if self._today is None:
                raise ValueError(
                    "from_today needs the recent history: pass prices= (the latest "
                    f"{self.window + 1} days of prices) or build the generator with its data"
                )
            return self._today
        last = None
        if isinstance(prices, pd.Series):
            prices = prices.to_frame()
        if isinstance(prices, pd.DataFrame):
            missing = [a for a in self.asset_names if a not in prices.columns]
            if missing and prices.shape[1] == self.n_assets:
                frame = prices
            elif missing:
                raise ValueError(
                    f"prices has no column for {missing}: the model's assets are {self.asset_names}"
                )
            else:
                frame = prices[self.asset_names]
            last = frame.index[-1] if len(frame) else None
            arr = frame.to_numpy(np.float64)
        else:
            arr = np.asarray(prices, np.float64)
            if arr.ndim == 1:
                arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[1] != self.n_assets:
            raise ValueError(
                f"prices must be [days, {self.n_assets}] (one column per asset), got {arr.shape}"
            )
        if len(arr) < self.window + 1:
            raise ValueError(
                f"prices has {len(arr)} days: from_today needs the latest {self.window + 1} "
                f"(one window of {self.window} returns)"
            )
        tail = arr[-(self.window + 1) :]
        if not np.all(np.isfinite(tail)) or np.any(tail <= 0):
            raise ValueError(
                "the latest prices must be finite and > 0 (no gaps in the last window)"
            )
        return np.diff(np.log(tail), axis=0).astype(np.float32), last

    def today_plan(self, n: int, prices: Any = None) -> ScenarioPlan:
        """The plan of :meth:`from_today`: n draws around the posterior of the
        latest window (encoded here, once)."""
        n = as_int("n", n, 0, 1 << 40, error=native.NativeInputError)
        window, _ = self.recent_window(prices)
        mu, lv = self._encode(window[None], "prices")
        return ScenarioPlan(
            n, mu.astype(np.float32), lv.astype(np.float32), 1.0, None, _NoTags(), "today"
        )

    def from_today(
        self,
        horizon: int | None = None,
        n: int = 10_000,
        seed: int = 0,
        prices: Any = None,
        chunk_size: int | None = None,
        drift: str = "keep",
    ) -> Scenarios:
        """n paths of the next ``horizon`` days from where the market is now.

        The regime is the posterior of the latest window (of ``prices``, or
        of the generator's data): every scenario draws its z from it. An MLP
        decoder then makes a new window of that regime (the first
        ``horizon`` days; chained windows past the model's window). A
        recurrent decoder first reads the real days of the latest window
        with that z (teacher forcing, as in training) and rolls out from the
        state it reaches, the last real day fed as the previous day: the
        path continues today's. Scenario i depends only on (model, prices,
        seed, i); ``tags["set"]`` is "today".
        """
        seed, h, cs = self.check_stream_args(seed, drift, horizon, chunk_size)
        plan = self.today_plan(n, prices)
        if not self.recurrent:
            return self._collect(plan, seed, cs, h, drift)
        window, _ = self.recent_window(prices)
        check_memory(plan.n, h, self.n_assets)
        returns = self._warm_rollout(plan, window, seed, 0, plan.n, h, drift)
        return self._scenarios(plan, seed, 0, plan.n, h, drift, returns)

    _BLOCK = 1024  # torch paths run in blocks aligned to this many scenario ids

    def _aligned(self, start: int, m: int, fn) -> np.ndarray:
        """Rows start .. start + m - 1 of fn(block_start, block_len) computed
        over whole aligned blocks, so a row's arithmetic never depends on the
        chunking it was asked in."""
        b = self._BLOCK
        parts = []
        first, stop = (start // b) * b, start + m
        for s0 in range(first, stop, b):
            rows = fn(s0, b)
            parts.append(rows[max(start - s0, 0) : min(stop - s0, b)])
        return np.concatenate(parts) if parts else None

    def _warm_rollout(self, plan, window, seed, start, m, horizon, drift) -> np.ndarray:
        """Recurrent decoder: rows start .. start + m - 1 of a from-today plan
        (z from the native sampler, the GRU warmed on the real window in
        torch, then the torch rollout fed the native noise streams)."""
        import torch

        model = self.model
        dev = model.device
        x_real = (torch.tensor(window[None], device=dev) - model.scaler_mean) / model.scaler_std
        shift = self.drift_shift(drift)

        def block(s0: int, b: int) -> np.ndarray:
            z = native.sample_latent(plan.mu[0], plan.logvar[0], b, seed=seed, offset=s0)
            eps, _ = native.rollout_noise(
                b, horizon, self.n_assets, self.latent_dim, seed=seed, offset=s0,
                factors=model.factors,
            )  # fmt: skip
            with torch.no_grad():
                zt = torch.from_numpy(z).to(dev)
                state = model.warm_scaled(zt, x_real.expand(b, -1, -1))
                x = model.rollout_scaled(zt, horizon, torch.from_numpy(eps).to(dev), state=state)
                y = self._unscale(x, shift, drift == "zero")
            return y.cpu().numpy()

        if m == 0:
            return np.empty((0, horizon, self.n_assets), np.float32)
        return np.ascontiguousarray(self._aligned(start, m, block))

    # ---------------------------------------------------------------- what-if
    def given(
        self,
        event: Any,
        n: int = 10_000,
        seed: int = 0,
        horizon: int | None = None,
        tilt: str = "auto",
        search: int = 4096,
        rho: float = 0.1,
        max_iterations: int = 20,
        max_draws: int | None = None,
        drift: str = "keep",
        progress: bool = False,
    ) -> ConditionalScenarios:
        """n scenarios in which ``event`` happens, with their likelihood-ratio
        weights (what-if scenarios: "JPM falls 20 % this month").

        event: a :class:`stressvae.Event` or its text (``"JPM:return<=-20%"``,
            ``"ew:drawdown<=-15%"``, ...; :meth:`Event.parse`).
        horizon: days per path (default the window; an MLP decoder's what-if
            paths fit in one window).
        tilt: what the importance-sampling proposal moves: ``"latent"`` (the
            prior's components and the latent draw; the paths come from the
            native fused decoder), ``"latent+noise"`` (also the mean of the
            noise streams: assets' own and common factors; the decoder then
            runs in torch on the native noise streams, shifted), ``"auto"``:
            latent+noise for a recurrent decoder (its latent carries little:
            its paths are driven by the noise) and for an MLP decoder when
            the event is one total return or drawdown (each component's
            noise moves to the event's dominating point, computed, not
            searched), latent otherwise.
        search: proposal draws per cross-entropy iteration; rho: the elite
            share; max_iterations: iterations before giving up.
        max_draws: proposal draws allowed for the n scenarios (default 200 n);
            fewer scenarios come back, with a warning, past it.

        The proposal is found by the cross-entropy method (see
        stressvae/_importance.py) from seeds derived from ``seed``; then
        proposal draw i (a function of (seed, i) alone) is kept when it is
        inside the event, and the first n kept are returned, so ``given(n=100)``
        is the first 100 of ``given(n=1000)``. Raises ValueError when no draw
        of the search reaches the event (it names the closest value reached).
        """
        from .events import Event

        if isinstance(event, str):
            event = Event.parse(event)
        if not isinstance(event, Event):
            raise ValueError(f"event must be a stressvae.Event or its text, got {event!r}")
        bound = event.bind(self.asset_names)
        n = as_int("n", n, 1, 1 << 32, error=native.NativeInputError)
        seed, h, _ = self.check_stream_args(seed, drift, horizon, None)
        if not self.recurrent and h > self.window:
            raise ValueError(
                f"horizon={h}: an MLP decoder makes windows of {self.window} days and a what-if "
                "path must come from one latent draw; use horizon <= window or a recurrent model "
                "(ScenarioVAE(decoder='gru'))"
            )
        if tilt == "auto":
            tilt = self._auto_tilt(bound)
        if tilt not in ("latent", "latent+noise"):
            raise ValueError(f"tilt must be 'auto', 'latent' or 'latent+noise', got {tilt!r}")
        if tilt == "latent+noise" and self.model.likelihood != "gaussian":
            raise ValueError("tilt='latent+noise' needs likelihood='gaussian' (a model with noise)")
        search = as_int("search", search, 256, 1 << 24, error=native.NativeInputError)
        rho = as_float("rho", rho, 0.001, error=native.NativeInputError)
        if rho >= 0.5:
            raise ValueError(f"rho must be below 0.5, got {rho}")
        max_iterations = as_int("max_iterations", max_iterations, 1, 1000)
        max_draws = 200 * n if max_draws is None else as_int("max_draws", max_draws, 1, 1 << 40)

        prop, scales, rows = self._search(bound, seed, h, tilt, search, rho, max_iterations, drift)
        return self._given_draws(
            bound, event, prop, scales, rows, seed, n, h, tilt, max_draws, drift, progress
        )

    def _auto_tilt(self, event: Any) -> str:
        """latent+noise for a recurrent decoder (its latent carries little)
        and for an MLP with noise when the event is one total return or
        drawdown (the noise goes to the event's dominating point); else latent."""
        if self.model.likelihood != "gaussian":
            return "latent"
        if self.recurrent:
            return "latent+noise"
        conds = event.conditions()
        one = len(conds) == 1 and conds[0].stat in ("return", "drawdown")
        if one and not (conds[0].stat == "drawdown" and conds[0].op == ">="):
            return "latent+noise"
        return "latent"

    def _prior_proposal(
        self, horizon: int, tilt: str, event: Any = None, drift: str = "keep"
    ) -> _importance.Proposal:
        """The search's start: the prior itself, or (an MLP model with a
        mixture prior, given the event) components chosen ∝ prior x an
        approximate P(event | component)."""
        tables = self.model.prior_tables()
        if tables is None:
            z = np.zeros((1, self.latent_dim), np.float32)
            tables = (z, z)
        mu, lv = (np.ascontiguousarray(t, np.float32) for t in tables)
        k = len(mu)
        log_prior = np.full(k, -np.log(k))
        noise = None
        if tilt == "latent+noise":
            noise = np.zeros(self.n_assets + self.model.factors)
        log_q, scored, table = log_prior.copy(), False, None
        gaussian = self.model.likelihood == "gaussian"
        if event is not None and not self.recurrent and gaussian and (k > 1 or noise is not None):
            score, table = self._component_scores(
                event, mu, horizon, drift, shifts=noise is not None
            )
            if k > 1:
                log_q, scored = _importance.scored_components(log_prior, score), True
            if table is not None:
                noise = None  # the per-component dominating point instead
        return _importance.Proposal(
            mu, lv, log_prior, log_q, np.zeros(self.latent_dim), noise, scored, table
        )

    def _component_scores(self, event, mu, horizon, drift, shifts=False):
        """(log P(event | z = mu_k) per component, approximately: the MLP's
        daily means and covariances at each component's mean give the
        target's daily log-return mean and variance (a portfolio's to first
        order), then :func:`_importance.condition_log_probability`; and with
        ``shifts``, for an event on one total return or drawdown, each
        component's noise shift to the event's dominating point [K,
        horizon, streams] float32, else None)."""
        import torch

        model = self.model
        std = model.scaler_std.detach().cpu().double().numpy()
        center = model.scaler_mean.detach().cpu().double().numpy()
        shift = self.drift_shift(drift)
        if shift is not None:
            center = center + shift
        conds = event.conditions()
        targets = []
        for c in conds:
            w = np.zeros(self.n_assets)
            if isinstance(c.resolved, (int, np.integer)):
                w[int(c.resolved)] = 1.0
            else:
                w = np.asarray(c.resolved, np.float64)
            targets.append(w)
        out = np.empty((len(mu), len(conds)))
        linear = shifts and len(conds) == 1 and conds[0].stat in ("return", "drawdown")
        table = None
        if linear:
            table = np.zeros((len(mu), horizon, self.n_assets + model.factors), np.float32)
            c0 = conds[0]
            level = np.log1p(max(c0.threshold, -1 + 1e-12))
            sign = 1.0 if c0.op == "<=" else -1.0
            if c0.stat == "drawdown" and c0.op == ">=":
                table = None  # "a drawdown no deeper than": no dominating point to move to
        step = 1024
        for s0 in range(0, len(mu), step):
            with torch.no_grad():
                z = torch.from_numpy(mu[s0 : s0 + step]).to(model.device)
                mean, log_scale, *extra = model.decode_scaled(z)
            mean = mean[:, :horizon].double().cpu().numpy() * std + center
            var_own = np.exp(2.0 * log_scale[:, :horizon].double().cpu().numpy()) * std**2
            load = extra[0][:, :horizon].double().cpu().numpy() if extra else None
            for j, (c, w) in enumerate(zip(conds, targets, strict=True)):
                m = mean @ w
                v = var_own @ (w * w)
                if load is not None:
                    v = v + np.square(np.einsum("btak,a->btk", load, w * std)).sum(-1)
                out[s0 : s0 + step, j] = _importance.condition_log_probability(
                    c.stat, c.op, c.threshold, m, v
                )
            if table is not None:  # coefficients of the target's sum on each noise element
                w = targets[0]
                coef_e = np.sqrt(var_own) * w  # [b, h, assets]: exp(ls) * std * w
                parts = [coef_e]
                if load is not None:
                    parts.append(np.einsum("btak,a->btk", load, w * std))
                coef = np.concatenate(parts, axis=2)
                total_m = (mean @ w).sum(axis=1)
                total_v = np.square(coef).sum(axis=(1, 2))
                gap = sign * (level - total_m)  # < 0: the mean is not yet inside
                theta = np.where(gap < 0, (level - total_m) / np.maximum(total_v, 1e-30), 0.0)
                table[s0 : s0 + step] = (coef * theta[:, None, None]).astype(np.float32)
        return event.combine_probabilities(out), table

    def _proposal_draws(self, prop, seed, start, m, horizon, drift):
        """Draws start .. start + m - 1 of a proposal: (returns [m, horizon,
        assets], log weights [m], u [m, latent], k [m], shifted noise or None)."""
        ids = np.arange(start, start + m, dtype=np.int64)
        k = prop.index(ids, seed)
        z = native.sample_latent(prop.mu, prop.logvar, index=k, seed=seed, offset=start)
        u = prop.standard(z, k)
        if prop.noise is None and prop.noise_table is None:
            plan = ScenarioPlan(1 << 40, prop.mu, prop.logvar, 1.0, prop.index, _NoTags(), "given")
            y = self._run(plan, seed, start, m, horizon, drift, None).returns
            return y, prop.log_weight(u, k, None), u, k, None
        y, e = self._tilted_noise_paths(prop, z, seed, start, m, horizon, drift)
        return y, prop.log_weight(u, k, e), u, k, e

    def _tilted_noise_paths(self, prop, z, seed, start, m, horizon, drift):
        """The decoder in torch on the native noise streams moved by the
        proposal's shift: (returns [m, horizon, assets], shifted noise
        [m, horizon, streams] float64)."""
        import torch

        model = self.model
        dev = model.device
        shift = self.drift_shift(drift)

        def block(s0: int, b: int) -> np.ndarray:
            ids = np.arange(s0, s0 + b, dtype=np.int64)
            kb = prop.index(ids, seed)
            s = prop.noise_shift(kb)
            if self.recurrent:
                eps, _ = native.rollout_noise(
                    b, horizon, self.n_assets, self.latent_dim, seed=seed, offset=s0,
                    factors=model.factors,
                )  # fmt: skip
                eps = eps + s
            else:
                eps = native.decode_noise(
                    b, self.window, self.n_assets, seed=seed, offset=s0, factors=model.factors
                )
                eps[:, :horizon] += s
            zb = zs(s0, b, kb)
            with torch.no_grad():
                zt = torch.from_numpy(zb).to(dev)
                et = torch.from_numpy(eps).to(dev)
                if self.recurrent:
                    x = model.rollout_scaled(zt, horizon, et)
                else:
                    mean, log_scale, *extra = model.decode_scaled(zt)
                    x = model.observation.draw(mean, log_scale, et, *extra)[:, :horizon]
                y = self._unscale(x, shift, drift == "zero")
            out = np.empty((b, horizon, self.n_assets + eps.shape[2]), np.float32)
            out[:, :, : self.n_assets] = y.cpu().numpy()
            out[:, :, self.n_assets :] = eps[:, :horizon]
            return out

        def zs(s0: int, b: int, kb: np.ndarray) -> np.ndarray:
            if start <= s0 and s0 + b <= start + m:
                return z[s0 - start : s0 - start + b]
            return native.sample_latent(prop.mu, prop.logvar, index=kb, seed=seed, offset=s0)

        both = self._aligned(start, m, block)
        y = np.ascontiguousarray(both[:, :, : self.n_assets])
        return y, both[:, :, self.n_assets :].astype(np.float64)

    def _search(self, event, seed, horizon, tilt, m, rho, max_iterations, drift):
        """The cross-entropy search for a proposal: (proposal, the conditions'
        scales, one row per iteration)."""
        prop = self._prior_proposal(horizon, tilt, event, drift)
        scales, rows, best, reached = None, [], np.inf, 0
        for it in range(max_iterations):
            s_it = _importance.derive_seed(seed, it + 1)
            y, lw, u, k, e = self._proposal_draws(prop, s_it, 0, m, horizon, drift)
            stats = event.statistics(y)
            if scales is None:  # each condition's spread under the prior
                q75, q25 = np.nanpercentile(stats, [75, 25], axis=0)
                scales = np.maximum((q75 - q25) / 1.349, 1e-8)
            mg = event.margins(stats, scales)
            mg = np.where(np.isfinite(mg), mg, np.inf)
            level = max(0.0, float(np.quantile(mg, rho)))
            elite = mg <= level
            best = min(best, float(mg.min()))
            w = np.exp(lw[elite] - lw[elite].max())
            rows.append(
                {
                    "iteration": it, "level": level, "inside": float(np.mean(mg <= 0)),
                    "elite_ess": _importance.ess(w),
                }
            )  # fmt: skip
            if not np.isfinite(level) or not elite.any():
                break
            prop = prop.update(u[elite], k[elite], None if e is None else e[elite], w)
            reached += level == 0.0
            if reached == 2:  # the level reached, then one refinement on the draws inside
                return prop, scales, rows
            if reached == 0 and it >= 4 and level >= rows[it - 4]["level"] * (1 - 1e-3):
                # no progress over four iterations: the proposal cannot move further towards
                # the event; it is used if its draws reach the event at all
                if best <= 0:
                    return prop, scales, rows
                break
        if best <= 0:
            return prop, scales, rows
        closest = self._closest(event, scales, best)
        raise ValueError(
            f"the event {event.describe()!r} was never reached: {len(rows)} search iterations "
            f"of {m} draws ({tilt} tilted); the closest path was {closest} outside it. It may be "
            "impossible under this model (e.g. beyond the clamp of its scales), or try "
            "tilt='latent+noise', a larger search= or max_iterations="
        )

    @staticmethod
    def _closest(event, scales, best: float) -> str:
        if not np.isfinite(best) or scales is None:
            return "no finite path"
        conds = event.conditions()
        if len(conds) == 1:
            return f"{best * scales[0] * 100:.3g} percentage points"
        return f"{best:.3g} spreads (the conditions' standard deviations under the model)"

    def _given_draws(
        self, bound, event, prop, scales, rows, seed, n, h, tilt, max_draws, drift, progress
    ):
        import pandas as pd

        from ._progress import progress_bar

        block = 4 * self._BLOCK
        got_y, got_ids, got_lw = [], [], []
        hits, drawn, mass = 0, 0, 0.0
        bar = progress_bar(n, progress, unit="scenario", desc="what-if")
        try:
            while hits < n and drawn < max_draws:
                m = min(block, max_draws - drawn)
                y, lw, _, _, _ = self._proposal_draws(prop, seed, drawn, m, h, drift)
                inside = bound.margins(bound.statistics(y), scales) <= 0
                mass += float(np.exp(lw[inside]).sum())
                keep = np.flatnonzero(inside)[: n - hits]
                got_y.append(y[keep])
                got_ids.append(keep + drawn)
                got_lw.append(lw[keep])
                hits += len(keep)
                drawn += m
                bar.update(len(keep))
        finally:
            bar.close()
        if hits == 0:
            raise ValueError(
                f"the event {bound.describe()!r} was reached in the search but in none of "
                f"{drawn} proposal draws: raise max_draws or search"
            )
        if hits < n:
            warnings.warn(
                f"given: {hits} of {n} scenarios inside {bound.describe()!r} within "
                f"max_draws={max_draws} proposal draws (hit rate {hits / drawn:.2%})",
                stacklevel=3,
            )
        ids = np.concatenate(got_ids)
        weight = np.exp(np.concatenate(got_lw))
        codes = np.full(hits, SETS.index("given"), dtype=np.int8)
        tags = pd.DataFrame(
            {
                "scenario": ids,
                "set": pd.Categorical.from_codes(codes, categories=SETS),
                "weight": weight,
            }
        )
        return ConditionalScenarios(
            np.ascontiguousarray(np.concatenate(got_y)), tags, seed, h, self.window,
            self.asset_names, drift, event=event.describe(), probability=mass / drawn,
            draws=drawn, tilt=tilt, search=pd.DataFrame(rows),
        )  # fmt: skip

    def __repr__(self) -> str:
        return (
            f"ScenarioGenerator(window={self.window}, assets={self.asset_names}, "
            f"latent_dim={self.latent_dim}, decoder={self.model.decoder_kind!r}, "
            f"device={self.device!r}, isa={self.decoder.isa!r})"
        )


def _walk(a: np.ndarray, b: np.ndarray, alpha: float, path: str) -> np.ndarray:
    """Point alpha of the way from a to b (rows): straight, or spherical
    (slerp of the vectors, which also interpolates their lengths)."""
    if path == "linear":
        return (1 - alpha) * a + alpha * b
    na, nb = np.linalg.norm(a, axis=-1, keepdims=True), np.linalg.norm(b, axis=-1, keepdims=True)
    cos = np.sum(a * b, axis=-1, keepdims=True) / np.maximum(na * nb, 1e-12)
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    so = np.sin(omega)
    lin = (1 - alpha) * a + alpha * b
    with np.errstate(invalid="ignore", divide="ignore"):
        sl = (np.sin((1 - alpha) * omega) * a + np.sin(alpha * omega) * b) / so
    return np.where(so > 1e-6, sl, lin)

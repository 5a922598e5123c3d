"""Classical scenario generators to compare the VAE against.

Each baseline is fitted to the training part of a :class:`WindowData` and
has the :class:`~stressvae.generate.ScenarioGenerator` sampling interface:
``sample(n, seed, chunk_size=None, drift="keep", horizon=None)`` and
``iter_chunks(...)`` return :class:`~stressvae.generate.Scenarios` whose
``returns`` are float32 ``[n, horizon, assets]`` daily log returns, with
``tags`` ``scenario`` (global index) and ``set`` = ``"prior"``.

- :class:`GaussianBaseline`: one multivariate normal over whole windows
  (mean and full covariance of the training windows).
- :class:`BootstrapBaseline`: the stationary block bootstrap (Politis and
  Romano 1994) of the training return series, all assets' rows jointly.
- :class:`GarchBaseline`: a GJR-GARCH(1,1) with Student-t errors per
  asset (a leverage effect), joined by a Gaussian copula with constant
  correlation.

Randomness comes from :func:`stressvae.native.normals` (one stream per
baseline, tags :data:`TAG_GAUSSIAN`, :data:`TAG_BOOTSTRAP`,
:data:`TAG_GARCH`), one row per scenario (per window of a scenario for the
Gaussian). Every step after the draw is elementwise or a matrix product run
on aligned blocks of fixed shape (BLAS picks its kernel by shape and
position, so a plain product could give a row other bits in another chunk),
so scenario ``i`` depends only on (fitted baseline, seed, i, horizon): the
same bits whatever ``n`` or chunk size (and, measured with OpenBLAS, the
same with 1 or 2 BLAS threads).

The training part of the return series is the set of returns that the
training windows cover (:func:`training_returns`): with a holdout
(``WindowData(holdout_every=k)``) it has gaps, and the bootstrap and the
GARCH fit treat the covered rows as one series in time order (a few seams,
like the bootstrap's own wrap-around).
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from . import native
from ._checks import as_int
from .generate import SETS, Scenarios, memory_budget

__all__ = [
    "BURN_IN",
    "START_PATHS",
    "TAG_BOOTSTRAP",
    "TAG_GARCH",
    "TAG_GARCH_START",
    "TAG_GAUSSIAN",
    "BootstrapBaseline",
    "GarchBaseline",
    "GaussianBaseline",
    "training_returns",
]

TAG_GAUSSIAN = 16  # native.normals stream of GaussianBaseline
TAG_BOOTSTRAP = 17  # ... of BootstrapBaseline
TAG_GARCH = 18  # ... of GarchBaseline
TAG_GARCH_START = 19  # ... of GarchBaseline's start states (seed 0, at fit time)
BURN_IN = 500  # days each of GarchBaseline's start paths runs
MAX_PERSISTENCE = 0.999  # GARCH burn-ins start at the sample variance from here on
START_PATHS = 8192  # GarchBaseline's start states (a sample of the stationary variances)
MIN_GARCH_ROWS = 250  # fewest training returns a GARCH(1,1)-t fit is attempted on
GARCH_SCALE = 100.0  # the GARCH is fitted to and simulated in percent log returns
_MAX_HORIZON = 1 << 24
_GAUSSIAN_BLOCK = 4096  # stream rows per BLAS product of GaussianBaseline
_JITTERS = (0.0, 1e-12, 1e-10, 1e-8, 1e-6, 1e-4)  # x mean variance, tried in turn


# ------------------------------------------------------------------ data
def _check_data(data: Any) -> None:
    from .data import WindowData

    if not isinstance(data, WindowData):
        raise ValueError(
            f"data must be a WindowData (WindowData.from_prices(...)), got {type(data).__name__}"
        )


def _covered(n_rows: int, starts: np.ndarray, window: int) -> np.ndarray:
    """Bool [n_rows]: rows inside at least one window starting at ``starts``."""
    if np.any(starts < 0) or np.any(starts + window > n_rows):
        raise ValueError("training windows do not line up with data.returns")
    count = np.zeros(n_rows + 1, dtype=np.int64)
    np.add.at(count, starts, 1)
    np.add.at(count, starts + window, -1)
    return np.cumsum(count[:-1]) > 0


def training_returns(data: Any) -> np.ndarray | list[np.ndarray]:
    """The returns the training windows cover, float64, in time order.

    ``pool=False``: one array ``[T, assets]`` of daily log returns (rows of
    ``data.returns``; with a holdout, the covered stretches one after the
    other). ``pool=True``: a list with one ``[T_s, 1]`` array per series that
    has training windows, in the column order of ``data.returns``.
    Training windows are ``data.windows[data.split == "train"]``; each
    covers ``data.window`` consecutive returns of its series.
    """
    _check_data(data)
    train = data.split == "train"
    if not np.any(train):
        raise ValueError("data has no training windows")
    if not data.pool:
        starts = data.returns.index.get_indexer(data.start_dates[train])
        mask = _covered(len(data.returns), starts, data.window)
        return np.ascontiguousarray(data.returns.to_numpy(np.float64)[mask])
    out = []
    for col in data.returns.columns:
        sel = train & (data.series == col)
        if not np.any(sel):
            continue
        s = data.returns[col].dropna()
        starts = s.index.get_indexer(data.start_dates[sel])
        mask = _covered(len(s), starts, data.window)
        out.append(np.ascontiguousarray(s.to_numpy(np.float64)[mask])[:, None])
    return out


def _training_rows(data: Any) -> tuple[np.ndarray, list[np.ndarray]]:
    """All training returns as one float64 [T, assets] array (pool=True: the
    series one after the other) and the per-series parts."""
    tr = training_returns(data)
    parts = tr if isinstance(tr, list) else [tr]
    return np.ascontiguousarray(np.concatenate(parts)), parts


# ------------------------------------------------------------------ common
class _Baseline:
    """The sampling interface shared by the baselines. Subclasses set
    ``name`` and implement ``_generate`` and ``_bytes_per_scenario``."""

    name = "baseline"
    _chunk_budget = 64 << 20  # bytes of working memory per chunk, by default

    def __init__(self, data: Any) -> None:
        _check_data(data)
        self.window = int(data.window)
        self.n_assets = int(data.n_assets)
        self.asset_names = list(data.asset_names)

    # subclasses ---------------------------------------------------------
    def _generate(
        self, seed: int, start: int, m: int, horizon: int, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Scenarios start .. start + m - 1: float32 [m, horizon, assets]
        (written into ``out`` when given, a C-contiguous array of that shape)."""
        raise NotImplementedError

    def _bytes_per_scenario(self, horizon: int) -> int:
        """Working memory of one scenario, for the default chunk size."""
        return 16 * horizon * self.n_assets

    # checks -------------------------------------------------------------
    def _check(
        self, n: Any, seed: Any, chunk_size: Any, drift: Any, horizon: Any
    ) -> tuple[int, int, int | None, int]:
        n = as_int("n", n, 0, 1 << 40, error=native.NativeInputError)
        seed = as_int("seed", seed, 0, (1 << 64) - 1, error=native.NativeInputError)
        cs = (
            None
            if chunk_size is None
            else as_int("chunk_size", chunk_size, 1, 1 << 40, error=native.NativeInputError)
        )
        if drift != "keep":
            raise ValueError(
                f"drift={drift!r}: baselines keep the fitted drift (only drift='keep'); "
                "demean or shift the returns yourself if needed"
            )
        h = (
            self.window
            if horizon is None
            else as_int("horizon", horizon, 1, _MAX_HORIZON, error=native.NativeInputError)
        )
        return n, seed, cs, h

    def _align(self, horizon: int) -> int:
        """Scenarios per aligned block of the baseline's matrix products:
        default chunks are whole blocks (no padding work)."""
        return 1

    def _default_chunk(self, horizon: int) -> int:
        """Scenarios per chunk: about ``_chunk_budget`` bytes of working
        memory (less when memory is short), at least 256, rounded down to
        whole aligned blocks (at least one)."""
        budget = memory_budget(self._chunk_budget)
        cs = max(256, budget // max(1, self._bytes_per_scenario(horizon)))
        align = self._align(horizon)
        return max(align, cs - cs % align)

    def _scenarios(self, returns: np.ndarray, start: int, seed: int, horizon: int) -> Scenarios:
        import pandas as pd

        m = len(returns)
        codes = np.full(m, SETS.index("prior"), dtype=np.int8)
        tags = pd.DataFrame(
            {
                "scenario": np.arange(start, start + m, dtype=np.int64),
                "set": pd.Categorical.from_codes(codes, categories=SETS),
            }
        )
        return Scenarios(returns, tags, seed, horizon, self.window, self.asset_names, "keep")

    # public -------------------------------------------------------------
    def sample(
        self,
        n: int,
        seed: int,
        chunk_size: int | None = None,
        drift: str = "keep",
        horizon: int | None = None,
    ) -> Scenarios:
        """``n`` scenarios: float32 ``[n, horizon, assets]`` daily log returns
        (``horizon`` defaults to the data's window). Made ``chunk_size`` at a
        time into one preallocated array (default: by working memory, a few
        thousand to ~100k scenarios); the result does not depend on
        ``chunk_size``. Only ``drift="keep"``."""
        n, seed, cs, h = self._check(n, seed, chunk_size, drift, horizon)
        cs = cs or self._default_chunk(h)
        out = np.empty((n, h, self.n_assets), dtype=np.float32)
        for start in range(0, n, cs):
            m = min(cs, n - start)
            self._generate(seed, start, m, h, out=out[start : start + m])
        return self._scenarios(out, 0, seed, h)

    def iter_chunks(
        self,
        n: int,
        seed: int,
        chunk_size: int | None = None,
        drift: str = "keep",
        horizon: int | None = None,
    ) -> Iterator[Scenarios]:
        """The scenarios of ``sample(n, seed, horizon=horizon)`` in order,
        ``chunk_size`` at a time (default: as in :meth:`sample`).
        Arguments are checked when called, not when first iterated."""
        n, seed, cs, h = self._check(n, seed, chunk_size, drift, horizon)
        cs = cs or self._default_chunk(h)

        def chunks() -> Iterator[Scenarios]:
            for start in range(0, n, cs):
                m = min(cs, n - start)
                yield self._scenarios(self._generate(seed, start, m, h), start, seed, h)

        return chunks()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(window={self.window}, assets={self.asset_names})"


# ------------------------------------------------------------------ gaussian
def _aligned_matmul(
    x: np.ndarray,
    mt: np.ndarray,
    first_row: int,
    block: int,
    out: np.ndarray | None = None,
    blas: bool = True,
) -> np.ndarray:
    """``x @ mt`` (float32) where row r of ``x`` is global row ``first_row + r``.

    BLAS picks kernels (and summation orders) by the shape of a product and
    a row's position in it (one row alone goes through a matrix-vector
    kernel, for one), so a plain product could give a row other bits in
    another chunk. Here the global rows are cut into aligned blocks of
    ``block`` rows, ``[k * block, (k + 1) * block)``, and each block is one
    product of shape ``[block, d_in] @ [d_in, d_out]`` (zero rows fill the
    parts of a block outside ``x``): every row's bits then depend only on
    its global row, whatever the chunking. ``blas=False``: numpy's einsum
    loops instead of BLAS (faster for small matrices, e.g. 20 x 20, and
    single-threaded: for callers that run in threads themselves)."""

    def product(a: np.ndarray, dst: np.ndarray) -> None:
        if blas:  # float64 BLAS, rounded once: the float32 bits do not depend on how many
            # threads split the product (sgemm's did on an AVX2 EPYC: 1 vs 2 threads differed)
            dst[...] = np.matmul(a.astype(np.float64), mt.astype(np.float64))
        else:
            np.einsum("ij,jk->ik", a, mt, out=dst, optimize=False)

    rows, d_in = x.shape
    if out is None:
        out = np.empty((rows, mt.shape[1]), dtype=np.float32)
    if rows == 0:
        return out
    pad = np.zeros((block, d_in), dtype=np.float32)
    g0 = first_row - first_row % block
    for g in range(g0, first_row + rows, block):
        lo, hi = max(g, first_row), min(g + block, first_row + rows)  # global rows in x
        if lo == g and hi == g + block:
            product(x[lo - first_row : hi - first_row], out[lo - first_row : hi - first_row])
            continue
        pad[...] = 0.0
        pad[lo - g : hi - g] = x[lo - first_row : hi - first_row]
        res = np.empty((block, mt.shape[1]), dtype=np.float32)
        product(pad, res)
        out[lo - first_row : hi - first_row] = res[lo - g : hi - g]
    return out


class GaussianBaseline(_Baseline):
    """A multivariate normal over whole windows.

    Fitted to the training windows flattened to ``[k, window * assets]``
    (day-major: day 0's assets, then day 1's, ...): mean vector and full
    covariance (``np.cov``, ddof 1) of daily log returns, float64. Sampling
    draws ``mean + L z`` with ``L`` the Cholesky factor of the covariance (a
    jitter of ``jitter`` times the mean variance on the diagonal when the
    covariance is not positive definite, e.g. fewer windows than
    dimensions), in float32, one BLAS product per aligned block of
    ``_GAUSSIAN_BLOCK`` stream rows (:func:`_aligned_matmul`: the same bits
    for a row whatever the chunking). Horizons longer than the window chain ``ceil(horizon /
    window)`` independent windows: window j of scenario i is draw
    ``i * k + j`` of the stream, as in the ScenarioGenerator.

    Attributes: ``mean`` float64 [window * assets], ``cov`` float64
    [window * assets, window * assets], ``jitter`` (0.0 when none was needed).
    """

    name = "gaussian"

    def __init__(self, data: Any) -> None:
        super().__init__(data)
        train = np.asarray(data.train, dtype=np.float64)
        k = len(train)
        if k < 2:
            raise ValueError(
                f"GaussianBaseline needs at least 2 training windows to fit a covariance, got {k}"
            )
        x = train.reshape(k, -1)
        if not np.all(np.isfinite(x)):
            raise ValueError("training windows contain NaN or inf")
        self.mean = x.mean(axis=0)
        self.cov = np.atleast_2d(np.cov(x, rowvar=False))
        self.dim = x.shape[1]
        scale = float(np.mean(np.diag(self.cov)))
        if not scale > 0:
            raise ValueError("training windows have zero variance")
        for jitter in _JITTERS:
            try:
                chol = np.linalg.cholesky(self.cov + jitter * scale * np.eye(self.dim))
            except np.linalg.LinAlgError:
                continue
            if np.all(np.isfinite(chol)):
                break
        else:
            raise ValueError(
                "the covariance of the training windows is not positive definite even with a "
                f"jitter of {_JITTERS[-1]:g} x the mean variance"
            )
        self.jitter = float(jitter)
        self._upper = np.ascontiguousarray(chol.T, dtype=np.float32)  # z @ L^T = (L z)^T
        self._mean32 = self.mean.astype(np.float32)

    def _bytes_per_scenario(self, horizon: int) -> int:
        k = -(-horizon // self.window)
        return 12 * k * self.dim

    def _align(self, horizon: int) -> int:
        k = -(-horizon // self.window)
        return max(1, _GAUSSIAN_BLOCK // math.gcd(_GAUSSIAN_BLOCK, k))

    def _generate(
        self, seed: int, start: int, m: int, horizon: int, out: np.ndarray | None = None
    ) -> np.ndarray:
        k = -(-horizon // self.window)
        z = native.normals(m * k, self.dim, seed=seed, offset=start * k, tag=TAG_GAUSSIAN)
        whole = k * self.window == horizon
        x = _aligned_matmul(
            z,
            self._upper,
            start * k,
            _GAUSSIAN_BLOCK,
            out=out.reshape(m * k, -1) if (whole and out is not None) else None,
        )
        del z
        x += self._mean32
        x = x.reshape(m, k * self.window, self.n_assets)
        if whole:
            return x
        if out is None:
            return np.ascontiguousarray(x[:, :horizon])
        out[...] = x[:, :horizon]
        return out


# ------------------------------------------------------------------ bootstrap
class BootstrapBaseline(_Baseline):
    """The stationary block bootstrap (Politis and Romano 1994) of the
    training return series, every asset's row of a day kept together.

    Each scenario is one path of ``horizon`` days (any horizon): day 0 is a
    uniformly drawn training row; each later day is, with probability
    ``1 / block_length``, a new uniformly drawn row, otherwise the row after
    the previous day's, wrapping from the last row to the first: the
    algorithm of ``arch.bootstrap.StationaryBootstrap``, vectorized over
    paths, on the rows of :func:`training_returns` (pool=True: the series
    one after the other). Block lengths are geometric with mean
    ``block_length`` days. Every value of a scenario is a training return
    (as float32).

    block_length: mean block length in days (a real number >= 1); default
    the mean over assets of the "stationary" column of
    ``arch.bootstrap.optimal_block_length`` (Politis and White 2004, with
    Patton, Politis and White 2009) on the training returns (pool=True: per
    series, weighted by length).

    Attributes: ``block_length``, ``returns`` float64 [T, assets] (the rows
    that :meth:`source_index` indexes).
    """

    name = "bootstrap"
    _chunk_budget = 8 << 20  # the gathers run faster on chunks that stay in cache

    def __init__(self, data: Any, block_length: float | None = None) -> None:
        super().__init__(data)
        rows, parts = _training_rows(data)
        if len(rows) < 2:
            raise ValueError(
                f"BootstrapBaseline needs at least 2 training returns, got {len(rows)}"
            )
        if not np.all(np.isfinite(rows)):
            raise ValueError("training returns contain NaN or inf")
        self.returns = rows
        self._rows32 = rows.astype(np.float32)
        self.block_length = (
            self._optimal_block_length(parts)
            if block_length is None
            else self._check_block_length(block_length)
        )
        # day t starts a new block iff z_jump < ndtri(1 / L), i.e. ndtr(z_jump) < 1 / L
        from scipy.special import ndtri

        self._jump_z = float(ndtri(1.0 / self.block_length)) if self.block_length > 1 else np.inf

    @staticmethod
    def _check_block_length(value: Any) -> float:
        if isinstance(value, bool):
            raise ValueError("block_length must be a real number >= 1, got a bool")
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ValueError(
                f"block_length must be a real number >= 1, got {type(value).__name__}"
            ) from None
        if not math.isfinite(v) or v < 1:
            raise ValueError(f"block_length must be a real number >= 1, got {v}")
        return v

    @staticmethod
    def _optimal_block_length(parts: list[np.ndarray]) -> float:
        from arch.bootstrap import optimal_block_length

        lengths, weights = [], []
        for p in parts:
            if len(p) < 16:  # too short to estimate autocorrelations
                continue
            obl = optimal_block_length(p)["stationary"].to_numpy(np.float64)
            lengths.append(float(np.mean(obl)))
            weights.append(len(p))
        if not lengths:
            raise ValueError(
                "too few training returns (< 16 in every series) to estimate a block length; "
                "pass block_length="
            )
        value = float(np.average(lengths, weights=weights))
        if not math.isfinite(value):
            raise ValueError("the optimal block length is not finite; pass block_length=")
        return max(1.0, value)

    def _bytes_per_scenario(self, horizon: int) -> int:
        return horizon * (8 + 8 + 8 + 8 + 4 * self.n_assets)

    def _index(self, seed: int, start: int, m: int, horizon: int) -> np.ndarray:
        """Row indices into ``returns`` of scenarios start .. start + m - 1,
        int64 [m, horizon]. Stream row i: columns 0..h-1 decide the jumps
        (column 0 unused: day 0 always starts a block), columns h..2h-1 are
        the new starts (row floor(ndtr(z) * T))."""
        from scipy.special import ndtr

        t_rows = len(self.returns)
        z = native.normals(m, 2 * horizon, seed=seed, offset=start, tag=TAG_BOOTSTRAP)
        jump = z[:, :horizon] < self._jump_z
        jump[:, 0] = True
        days = np.arange(horizon, dtype=np.int64)
        # day on which each day's block began, and the row that block began at
        first = np.maximum.accumulate(np.where(jump, days, 0), axis=1)
        u = ndtr(z[:, horizon:][jump].astype(np.float64))
        begin = np.zeros((m, horizon), dtype=np.int64)
        begin[jump] = np.minimum((u * t_rows).astype(np.int64), t_rows - 1)
        row = np.take_along_axis(begin, first, axis=1)
        row += days - first
        row %= t_rows
        return row

    def source_index(self, n: int, seed: int, horizon: int | None = None) -> np.ndarray:
        """The training rows behind ``sample(n, seed, horizon=horizon)``:
        int64 ``[n, horizon]`` indices into ``self.returns`` (so
        ``sample(...).returns == self.returns[idx].astype(float32)``)."""
        n, seed, _, h = self._check(n, seed, None, "keep", horizon)
        return self._index(seed, 0, n, h)

    def _generate(
        self, seed: int, start: int, m: int, horizon: int, out: np.ndarray | None = None
    ) -> np.ndarray:
        idx = self._index(seed, start, m, horizon)
        if out is None:
            return self._rows32[idx]
        np.take(self._rows32, idx, axis=0, out=out)
        return out

    def __repr__(self) -> str:
        return (
            f"BootstrapBaseline(window={self.window}, assets={self.asset_names}, "
            f"rows={len(self.returns)}, block_length={self.block_length:.3g})"
        )


# ------------------------------------------------------------------ garch
_T_STEP = 1.0 / 1024  # grid step of the Student-t quantile tables (in normal units)
_T_ZMAX = 10.0  # tables cover |z| < this; larger |z| (practically never) are computed exactly
_T_NODES = int(_T_ZMAX / _T_STEP) + 2  # table entries per asset
_T_BLOCK = 1 << 16  # values per block of the table lookup (stays in cache)
_THREADS = 2  # GarchBaseline runs the parts of a chunk in this many threads
_COPULA_ROWS = 1 << 16  # about this many (scenario, day) rows per BLAS product of the copula


def _t_quantile_exact(nu: float, z: np.ndarray) -> np.ndarray:
    """Unit-variance Student-t quantile of ndtr(z), float64, computed on the
    lower tail (ndtr(-|z|)) so that large |z| do not round to 1."""
    from scipy.special import ndtr, stdtrit

    z = np.asarray(z, dtype=np.float64)
    q = -stdtrit(nu, ndtr(-np.abs(z)))
    return np.copysign(q, z) * math.sqrt((nu - 2.0) / nu)


class _TQuantiles:
    """x [..., assets] -> unit-variance Student-t(nu_a) quantile of ndtr(x)
    for every asset a (the last axis), for float32 normals: linear
    interpolation in a table of the exact values (step 1/1024 on |x| < 10;
    the map is odd and smooth there, the relative error is below 1e-6),
    exact beyond, value by value. One table per asset, stacked, so that the
    lookup runs on the interleaved layout without a transpose. scipy's
    stdtrit costs ~0.2 us a value."""

    def __init__(self, nus: np.ndarray) -> None:
        self.nus = np.asarray(nus, dtype=np.float64).reshape(-1)
        grid = np.arange(_T_NODES, dtype=np.float64) * _T_STEP
        tab = np.stack([_t_quantile_exact(nu, grid) for nu in self.nus])  # [assets, nodes]
        slope = np.zeros_like(tab)
        slope[:, :-1] = np.diff(tab, axis=1)
        self.table = tab.astype(np.float32).reshape(-1)
        self.slope = slope.astype(np.float32).reshape(-1)
        self.inv_step = np.float32(1.0 / _T_STEP)

    def __call__(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """float32 normals ``[..., assets]`` -> float32 t innovations, same
        shape; computed in cache-sized blocks of the flattened array."""
        a = len(self.nus)
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.shape[-1] != a:
            raise ValueError(f"x must end in {a} assets, got shape {x.shape}")
        res = np.empty_like(x) if out is None else out
        xf, rf = x.reshape(-1), res.reshape(-1)
        block = _T_BLOCK - _T_BLOCK % a  # whole days: asset = position % a
        base = (np.arange(block, dtype=np.int32) % a) * _T_NODES
        for s in range(0, xf.size, block):
            xb = xf[s : s + block].copy()  # out may be x itself
            qb = rf[s : s + block]
            pos = np.abs(xb)
            big = pos.max(initial=0.0) >= _T_ZMAX
            if big:
                pos = np.minimum(pos, _T_ZMAX, out=pos)  # fixed below, exactly
            pos *= self.inv_step  # exact: a power of two
            i = pos.astype(np.int32)
            pos -= i  # the weight of the upper node
            i += base[: len(xb)]
            np.take(self.table, i, out=qb)
            step = np.take(self.slope, i)
            step *= pos
            qb += step
            np.copysign(qb, xb, out=qb)
            if big:  # (practically never) |x| beyond the table: exact, element by element
                for j in np.nonzero(np.abs(xb) >= _T_ZMAX)[0]:
                    qb[j] = _t_quantile_exact(self.nus[j % a], xb[j])
        return res


class GarchBaseline(_Baseline):
    """Per asset a GJR-GARCH(1,1) (Glosten, Jagannathan and Runkle 1993)
    with Student-t errors and a constant mean, joined across assets by a
    Gaussian copula with constant correlation.

    Fit: ``arch.arch_model(100 * r, mean="Constant", vol="GARCH", p=1,
    o=1, q=1, dist="t")`` on each asset's training returns
    (:func:`training_returns`), so the parameters are in percent: ``r_t =
    mu + e_t``, ``e_t = sigma_t eta_t``, ``sigma2_t = omega + (alpha +
    gamma 1[e_{t-1} < 0]) e_{t-1}^2 + beta sigma2_{t-1}``, ``eta_t`` a
    unit-variance Student-t with ``nu`` degrees of freedom. ``gamma > 0``
    is the leverage effect: losses raise tomorrow's variance more than
    gains. Persistence ``alpha + gamma / 2 + beta``.

    Cross-asset dependence: ``eta`` of all assets come from correlated
    normals ``x = C z`` (``C`` the Cholesky factor of ``correlation``),
    each mapped to its own t marginal, ``eta = t_nu^{-1}(ndtr(x)) *
    sqrt((nu - 2) / nu)``. That is a Gaussian copula: every asset keeps
    exactly its fitted t marginal. ``correlation`` is the copula's: the
    correlation of the normal scores ``ndtri(F_t(eta_hat))`` of the fitted
    standardized residuals (what a Gaussian copula estimator uses); the
    Pearson correlation of the raw residuals is ``residual_correlation``.

    Start states: at fit time ``START_PATHS`` = 8192 paths start at the
    unconditional variance ``omega / (1 - persistence)`` (the sample
    variance of the training returns if persistence >= ``MAX_PERSISTENCE``
    = 0.999, integrated or nearly, where that ratio is meaningless; with a
    warning) and run ``BURN_IN`` = 500
    days (stream :data:`TAG_GARCH_START`, seed 0; row ``day * 8192 +
    path``); their last conditional variances, all assets of a path
    together, are ``start_variance`` [8192, assets]: a sample of the
    stationary joint distribution of the variances. A scenario starts from
    one of them (drawn uniformly) and runs ``horizon`` days, divided by 100
    back to daily log returns (float32). Scenario i's normals are stream row
    i of :data:`TAG_GARCH`: column 0 picks the start state
    (``floor(ndtr(u) * 8192)``), then ``horizon * assets`` day-major, so a
    shorter horizon gives the first days of a longer one. The burn-in is
    paid once, not per scenario (it was 89 % of the work at window 64).
    With a holdout or pool=True the fit runs on the covered training rows
    one after the other.

    Attributes: ``params`` DataFrame (index asset names; columns mu, omega,
    alpha, gamma, beta, nu, in percent units), ``correlation``,
    ``residual_correlation`` float64 [assets, assets], ``start_variance``
    float64 [8192, assets] (percent squared), ``burn_in_start`` float64
    [assets] (where the burn-in started), ``persistence``, ``results`` (arch's fit result
    per asset).
    """

    name = "garch"
    _chunk_budget = 128 << 20  # two threads share a chunk: bigger parts, fewer steps

    def __init__(self, data: Any) -> None:
        super().__init__(data)
        import pandas as pd
        from arch import arch_model
        from scipy.special import ndtri, stdtr

        rows, _ = _training_rows(data)
        if len(rows) < MIN_GARCH_ROWS:
            raise ValueError(
                f"GarchBaseline needs at least {MIN_GARCH_ROWS} training returns for a "
                f"GJR-GARCH(1,1)-t fit, got {len(rows)}"
            )
        if not np.all(np.isfinite(rows)):
            raise ValueError("training returns contain NaN or inf")
        y = GARCH_SCALE * rows
        self.results, fitted, resid = [], [], []
        for a, asset in enumerate(self.asset_names):
            if not np.std(y[:, a]) > 0:
                raise ValueError(f"asset {asset!r} has zero variance in the training returns")
            model = arch_model(y[:, a], mean="Constant", vol="GARCH", p=1, o=1, q=1, dist="t")
            res = model.fit(disp="off", show_warning=False)
            if res.convergence_flag != 0:
                warnings.warn(
                    f"GarchBaseline: the GJR-GARCH(1,1)-t fit of {asset!r} did not converge "
                    f"(flag {res.convergence_flag}); using its last parameters",
                    RuntimeWarning,
                    stacklevel=2,
                )
            p = res.params
            fitted.append(
                [p["mu"], p["omega"], p["alpha[1]"], p["gamma[1]"], p["beta[1]"], p["nu"]]
            )
            self.results.append(res)
            resid.append(np.asarray(res.std_resid, dtype=np.float64))
        self.params = pd.DataFrame(
            fitted,
            index=pd.Index(self.asset_names, name="asset"),
            columns=["mu", "omega", "alpha", "gamma", "beta", "nu"],
            dtype=np.float64,
        )
        p = self.params
        self._mu, self._omega = p["mu"].to_numpy(), p["omega"].to_numpy()
        self._alpha, self._gamma = p["alpha"].to_numpy(), p["gamma"].to_numpy()
        self._beta, self._nu = p["beta"].to_numpy(), p["nu"].to_numpy()
        self.persistence = self._alpha + 0.5 * self._gamma + self._beta
        with np.errstate(divide="ignore"):
            uncond = self._omega / np.maximum(1.0 - self.persistence, 0.0)
        bad = self.persistence >= MAX_PERSISTENCE
        if np.any(bad):
            names = [self.asset_names[i] for i in np.nonzero(bad)[0]]
            warnings.warn(
                f"GarchBaseline: alpha + gamma / 2 + beta >= {MAX_PERSISTENCE} for {names} "
                "(integrated or nearly: no usable unconditional variance); their burn-in starts "
                "at the sample variance of the training returns",
                RuntimeWarning,
                stacklevel=2,
            )
            uncond = np.where(bad, y.var(axis=0), uncond)
        flat = self._omega <= 1e-6 * y.var(axis=0)
        if np.any(flat):
            names = [self.asset_names[i] for i in np.nonzero(flat)[0]]
            warnings.warn(
                f"GarchBaseline: omega ~ 0 for {names} (a degenerate fit, often a data error such "
                "as an unadjusted split): their simulated variance may collapse",
                RuntimeWarning,
                stacklevel=2,
            )
        self.burn_in_start = uncond

        eta = np.column_stack(resid)
        self.residual_correlation = np.atleast_2d(np.corrcoef(eta, rowvar=False))
        scores = np.empty_like(eta)
        for a in range(self.n_assets):
            nu = self._nu[a]
            x = -np.abs(eta[:, a]) * math.sqrt(nu / (nu - 2.0))
            scores[:, a] = -np.copysign(ndtri(stdtr(nu, x)), eta[:, a])
        self.correlation = np.atleast_2d(np.corrcoef(scores, rowvar=False))
        if self.n_assets > 1:
            chol = np.linalg.cholesky(self.correlation + 1e-12 * np.eye(self.n_assets))
        else:
            chol = np.ones((1, 1))
        self._chol = chol
        self._chol_t = np.ascontiguousarray(chol.T, dtype=np.float32)
        self._quantiles = _TQuantiles(self._nu)
        self._prm64 = (self._omega, self._alpha, self._gamma, self._beta)
        self._prm32 = tuple(v.astype(np.float32) for v in self._prm64)
        self._mu32 = self._mu.astype(np.float32)
        self.start_variance = self._burn_in()
        self._start32 = self.start_variance.astype(np.float32)

    # the model ----------------------------------------------------------
    def innovations(
        self, z: np.ndarray, first_row: int = 0, block: int = _COPULA_ROWS
    ) -> np.ndarray:
        """Unit-variance t innovations from standard normals: float32
        ``[rows, assets]`` normals -> correlated (copula, ``z @ C^T`` in
        aligned products of ``block`` rows: row r is global row ``first_row +
        r``), t-mapped, same shape."""
        z = np.ascontiguousarray(z, dtype=np.float32).reshape(-1, self.n_assets)
        if self.n_assets == 1:
            return self._quantiles(z)
        x = _aligned_matmul(z, self._chol_t, first_row, block, blas=False)
        return self._quantiles(x, out=x)

    def _step(self, var: np.ndarray, eta: np.ndarray, eps: np.ndarray, tmp: np.ndarray) -> None:
        """One day of every path, in place: ``eps = sqrt(var) * eta`` (the
        shock, percent), then ``var`` becomes the next day's variance.
        [paths, assets], float64 (the burn-in) or float32 (the scenarios)."""
        omega, alpha, gamma, beta = self._prm64 if var.dtype == np.float64 else self._prm32
        np.sqrt(var, out=eps)
        eps *= eta
        # alpha eps^2 + gamma 1[eps < 0] eps^2 = alpha eps^2 + gamma min(eps, 0)^2
        var *= beta
        var += omega
        np.multiply(eps, eps, out=tmp)
        tmp *= alpha
        var += tmp
        np.minimum(eps, 0.0, out=tmp)
        tmp *= tmp
        tmp *= gamma
        var += tmp

    def _burn_in(self) -> np.ndarray:
        """The start states: START_PATHS paths run BURN_IN days from the
        unconditional variance; float64 [START_PATHS, assets]."""
        p, a = START_PATHS, self.n_assets
        var = np.empty((p, a), dtype=np.float64)
        var[...] = self.burn_in_start
        eps, tmp = np.empty_like(var), np.empty_like(var)
        for day in range(BURN_IN):
            z = native.normals(p, a, seed=0, offset=day * p, tag=TAG_GARCH_START)
            self._step(var, self.innovations(z), eps, tmp)
        return var

    # sampling -----------------------------------------------------------
    def _bytes_per_scenario(self, horizon: int) -> int:
        return horizon * self.n_assets * 40

    def _align(self, horizon: int) -> int:
        # the copula's products: blocks of whole scenarios, max(1, 2**16 // horizon) of them
        return 1 if self.n_assets == 1 else max(1, _COPULA_ROWS // horizon)

    def _generate(
        self, seed: int, start: int, m: int, horizon: int, out: np.ndarray | None = None
    ) -> np.ndarray:
        if out is None:
            out = np.empty((m, horizon, self.n_assets), dtype=np.float32)
        # numpy releases the GIL in its loops: parts of the chunk in threads, each
        # scenario computed alone (the copula's products aligned), so the split changes nothing
        threads = min(_THREADS, m // 256)
        if threads <= 1:
            self._generate_part(seed, start, m, horizon, out)
            return out
        from concurrent.futures import ThreadPoolExecutor

        align = self._align(horizon)
        cuts = [start + (m * k // threads) for k in range(threads + 1)]
        cuts[1:-1] = [max(start, c - c % align) for c in cuts[1:-1]]
        with ThreadPoolExecutor(threads) as pool:
            jobs = [
                pool.submit(
                    self._generate_part, seed, a, b - a, horizon, out[a - start : b - start]
                )
                for a, b in itertools.pairwise(cuts)
                if b > a
            ]
            for job in jobs:
                job.result()
        return out

    def _generate_part(self, seed: int, start: int, m: int, horizon: int, out: np.ndarray) -> None:
        from scipy.special import ndtr

        a = self.n_assets
        # stream row i: the start pick, then scenario i's normals day-major ([horizon, assets])
        z = native.normals(
            m, 1 + horizon * a, seed=seed, offset=start, tag=TAG_GARCH, num_threads=1
        )
        pick = (ndtr(z[:, 0].astype(np.float64)) * START_PATHS).astype(np.int64)
        var = self._start32[np.minimum(pick, START_PATHS - 1)]  # [m, a]
        rows = np.ascontiguousarray(z[:, 1:]).reshape(m * horizon, a)
        del z
        s = self._align(horizon)  # scenarios per aligned block of the copula's products
        eta = self.innovations(rows, start * horizon, s * horizon).reshape(m, horizon, a)
        del rows
        eps, tmp = np.empty_like(var), np.empty_like(var)
        for t in range(horizon):
            self._step(var, eta[:, t], eps, tmp)
            eps += self._mu32
            eps /= np.float32(GARCH_SCALE)
            out[:, t] = eps

    def __repr__(self) -> str:
        pers = ", ".join(f"{v:.4f}" for v in self.persistence)
        return (
            f"GarchBaseline(GJR-GARCH(1,1)-t, window={self.window}, assets={self.asset_names}, "
            f"persistence=[{pers}], nu=[{', '.join(f'{v:.2f}' for v in self.params['nu'])}])"
        )

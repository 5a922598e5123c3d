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
- :class:`GarchBaseline`: a GARCH(1,1) with Student-t errors per asset,
  joined by a Gaussian copula with constant correlation.

Randomness comes from :func:`stressvae.native.normals` (one stream per
baseline, tags :data:`TAG_GAUSSIAN`, :data:`TAG_BOOTSTRAP`,
:data:`TAG_GARCH`), one row per scenario (per window of a scenario for the
Gaussian), and every step after the draw is elementwise, so scenario ``i``
depends only on (fitted baseline, seed, i, horizon): the same bits whatever
``n``, chunk size or thread count.

The training part of the return series is the set of returns that the
training windows cover (:func:`training_returns`): with a holdout
(``WindowData(holdout_every=k)``) it has gaps, and the bootstrap and the
GARCH fit treat the covered rows as one series in time order (a few seams,
like the bootstrap's own wrap-around).
"""

from __future__ import annotations

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
    "TAG_BOOTSTRAP",
    "TAG_GARCH",
    "TAG_GAUSSIAN",
    "BootstrapBaseline",
    "GarchBaseline",
    "GaussianBaseline",
    "training_returns",
]

TAG_GAUSSIAN = 16  # native.normals stream of GaussianBaseline
TAG_BOOTSTRAP = 17  # ... of BootstrapBaseline
TAG_GARCH = 18  # ... of GarchBaseline
BURN_IN = 500  # days simulated and dropped before a GARCH path is kept
MIN_GARCH_ROWS = 250  # fewest training returns a GARCH(1,1)-t fit is attempted on
GARCH_SCALE = 100.0  # the GARCH is fitted to and simulated in percent log returns
_MAX_HORIZON = 1 << 24
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
    def _generate(self, seed: int, start: int, m: int, horizon: int) -> np.ndarray:
        """Scenarios start .. start + m - 1: float32 [m, horizon, assets]."""
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

    def _default_chunk(self, horizon: int) -> int:
        """Scenarios per chunk: about ``_chunk_budget`` bytes of working
        memory (less when memory is short), at least 256."""
        budget = memory_budget(self._chunk_budget)
        return max(256, budget // max(1, self._bytes_per_scenario(horizon)))

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
            out[start : start + m] = self._generate(seed, start, m, h)
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
def _affine_rows(z: np.ndarray, mean: np.ndarray, lower: np.ndarray, block: int = 2048):
    """``mean + lower @ z[r]`` for every row r of z: float32 [rows, d].

    Elementwise numpy operations in a fixed order (for each j, column j of
    ``lower`` times z[:, j] added to the running sums of outputs j..d-1), so
    every row's result is the same bits whatever the number of rows; a BLAS
    matrix product may pick other kernels (and summation orders) for other
    row counts. Works on transposed blocks of rows: long inner loops."""
    rows, d = z.shape
    out = np.empty((rows, d), dtype=np.float32)
    tmp = np.empty((d, min(block, rows)), dtype=np.float32)
    acc = np.empty((d, min(block, rows)), dtype=np.float32)
    col = mean.astype(np.float32)[:, None]
    for r0 in range(0, rows, block):
        zt = np.ascontiguousarray(z[r0 : r0 + block].T)  # [d, b]
        b = zt.shape[1]
        ot = acc[:, :b]
        ot[...] = col
        for j in range(d):
            t = tmp[: d - j, :b]
            np.multiply(lower[j:, j, None], zt[j], out=t)
            ot[j:] += t
        out[r0 : r0 + b] = ot.T
    return out


class GaussianBaseline(_Baseline):
    """A multivariate normal over whole windows.

    Fitted to the training windows flattened to ``[k, window * assets]``
    (day-major: day 0's assets, then day 1's, ...): mean vector and full
    covariance (``np.cov``, ddof 1) of daily log returns, float64. Sampling
    draws ``mean + L z`` with ``L`` the Cholesky factor of the covariance (a
    jitter of ``jitter`` times the mean variance on the diagonal when the
    covariance is not positive definite, e.g. fewer windows than
    dimensions). Horizons longer than the window chain ``ceil(horizon /
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
        self._lower = np.ascontiguousarray(chol, dtype=np.float32)
        self._mean32 = self.mean.astype(np.float32)

    def _bytes_per_scenario(self, horizon: int) -> int:
        k = -(-horizon // self.window)
        return 12 * k * self.dim

    def _generate(self, seed: int, start: int, m: int, horizon: int) -> np.ndarray:
        k = -(-horizon // self.window)
        z = native.normals(m * k, self.dim, seed=seed, offset=start * k, tag=TAG_GAUSSIAN)
        x = _affine_rows(z, self._mean32, self._lower)
        x = x.reshape(m, k * self.window, self.n_assets)
        return x if k * self.window == horizon else np.ascontiguousarray(x[:, :horizon])


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

    def _generate(self, seed: int, start: int, m: int, horizon: int) -> np.ndarray:
        return self._rows32[self._index(seed, start, m, horizon)]

    def __repr__(self) -> str:
        return (
            f"BootstrapBaseline(window={self.window}, assets={self.asset_names}, "
            f"rows={len(self.returns)}, block_length={self.block_length:.3g})"
        )


# ------------------------------------------------------------------ garch
_T_STEP = 1.0 / 1024  # grid step of the Student-t quantile tables (in normal units)
_T_ZMAX = 10.0  # tables cover |z| < this; larger |z| (practically never) are computed exactly
_T_BLOCK = 1 << 16  # values per block of the table lookup (stays in cache)


def _t_quantile_exact(nu: float, z: np.ndarray) -> np.ndarray:
    """Unit-variance Student-t quantile of ndtr(z), float64, computed on the
    lower tail (ndtr(-|z|)) so that large |z| do not round to 1."""
    from scipy.special import ndtr, stdtrit

    z = np.asarray(z, dtype=np.float64)
    q = -stdtrit(nu, ndtr(-np.abs(z)))
    return np.copysign(q, z) * math.sqrt((nu - 2.0) / nu)


class _TQuantile:
    """z -> unit-variance Student-t(nu) quantile of ndtr(z), for float32
    normals: linear interpolation in a table of the exact values (step
    1/1024 on |z| < 10; the map is odd and smooth there, the relative
    error is below 1e-6), exact beyond, value by value. scipy's stdtrit
    costs ~0.2 us a value; a GARCH path of 64 days needs 564 draws per
    asset."""

    def __init__(self, nu: float) -> None:
        self.nu = float(nu)
        grid = np.arange(0, int(_T_ZMAX / _T_STEP) + 2, dtype=np.float64) * _T_STEP
        tab = _t_quantile_exact(self.nu, grid)
        self.table = tab.astype(np.float32)
        self.slope = np.diff(tab).astype(np.float32)
        self.inv_step = np.float32(1.0 / _T_STEP)

    def __call__(self, z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """float32 normals (any shape) -> float32 t innovations, same shape;
        computed in cache-sized blocks of the flattened array."""
        z = np.ascontiguousarray(z, dtype=np.float32)
        res = np.empty_like(z) if out is None else out
        zf, rf = z.reshape(-1), res.reshape(-1)
        for s in range(0, zf.size, _T_BLOCK):
            zb, qb = zf[s : s + _T_BLOCK], rf[s : s + _T_BLOCK]
            pos = np.abs(zb)
            big = pos.max(initial=0.0) >= _T_ZMAX
            pos *= self.inv_step  # exact: a power of two
            i = pos.astype(np.int32)
            pos -= i  # the weight of the upper node
            np.take(self.table, i, out=qb, mode="clip")
            step = np.take(self.slope, i, mode="clip")
            step *= pos
            qb += step
            np.copysign(qb, zb, out=qb)
            if big:  # (practically never) |z| beyond the table: exact, element by element
                far = np.abs(zb) >= _T_ZMAX
                qb[far] = _t_quantile_exact(self.nu, zb[far])
        return res


class GarchBaseline(_Baseline):
    """Per asset a GARCH(1,1) with Student-t errors and a constant mean,
    joined across assets by a Gaussian copula with constant correlation.

    Fit: ``arch.arch_model(100 * r, mean="Constant", vol="GARCH", p=1, q=1,
    dist="t")`` on each asset's training returns (:func:`training_returns`),
    so the parameters are in percent: ``r_t = mu + e_t``, ``e_t = sigma_t
    eta_t``, ``sigma2_t = omega + alpha e_{t-1}^2 + beta sigma2_{t-1}``,
    ``eta_t`` a unit-variance Student-t with ``nu`` degrees of freedom.

    Cross-asset dependence: ``eta`` of all assets come from correlated
    normals ``x = C z`` (``C`` the Cholesky factor of ``correlation``),
    each mapped to its own t marginal, ``eta = t_nu^{-1}(ndtr(x)) *
    sqrt((nu - 2) / nu)``. That is a Gaussian copula: every asset keeps
    exactly its fitted t marginal. ``correlation`` is the copula's: the
    correlation of the normal scores ``ndtri(F_t(eta_hat))`` of the fitted
    standardized residuals (what a Gaussian copula estimator uses); the
    Pearson correlation of the raw residuals is ``residual_correlation``.
    The simulated Pearson correlation of the innovations is then close to
    that of the residuals when the copula fits, a little below the copula
    value with heavy tails.

    Simulation, vectorized over paths with a loop over days: each path
    starts at the unconditional variance ``omega / (1 - alpha - beta)``
    (the sample variance if alpha + beta >= 1, with a warning), runs
    ``BURN_IN`` = 500 days that are dropped, then ``horizon`` days that are
    kept, divided by 100 back to daily log returns (float32). Scenario i's
    normals are stream row i, ``(500 + horizon) * assets`` of them, day-major
    (so a scenario depends on the horizon asked for). With a holdout or
    pool=True the fit runs on the covered training rows one after the other.

    Attributes: ``params`` DataFrame (index asset names; columns mu, omega,
    alpha, beta, nu, in percent units), ``correlation``,
    ``residual_correlation`` float64 [assets, assets], ``results`` (arch's
    fit result per asset).
    """

    name = "garch"

    def __init__(self, data: Any) -> None:
        super().__init__(data)
        import pandas as pd
        from arch import arch_model
        from scipy.special import ndtri, stdtr

        rows, _ = _training_rows(data)
        if len(rows) < MIN_GARCH_ROWS:
            raise ValueError(
                f"GarchBaseline needs at least {MIN_GARCH_ROWS} training returns for a "
                f"GARCH(1,1)-t fit, got {len(rows)}"
            )
        if not np.all(np.isfinite(rows)):
            raise ValueError("training returns contain NaN or inf")
        y = GARCH_SCALE * rows
        self.results, fitted, resid = [], [], []
        for a, asset in enumerate(self.asset_names):
            if not np.std(y[:, a]) > 0:
                raise ValueError(f"asset {asset!r} has zero variance in the training returns")
            model = arch_model(y[:, a], mean="Constant", vol="GARCH", p=1, q=1, dist="t")
            res = model.fit(disp="off", show_warning=False)
            if res.convergence_flag != 0:
                warnings.warn(
                    f"GarchBaseline: the GARCH(1,1)-t fit of {asset!r} did not converge "
                    f"(flag {res.convergence_flag}); using its last parameters",
                    RuntimeWarning,
                    stacklevel=2,
                )
            p = res.params
            fitted.append([p["mu"], p["omega"], p["alpha[1]"], p["beta[1]"], p["nu"]])
            self.results.append(res)
            resid.append(np.asarray(res.std_resid, dtype=np.float64))
        self.params = pd.DataFrame(
            fitted,
            index=pd.Index(self.asset_names, name="asset"),
            columns=["mu", "omega", "alpha", "beta", "nu"],
            dtype=np.float64,
        )
        p = self.params
        self._mu, self._omega = p["mu"].to_numpy(), p["omega"].to_numpy()
        self._alpha, self._beta, self._nu = (p[c].to_numpy() for c in ("alpha", "beta", "nu"))
        persistence = self._alpha + self._beta
        with np.errstate(divide="ignore"):
            uncond = self._omega / (1.0 - persistence)
        bad = persistence >= 1
        if np.any(bad):
            names = [self.asset_names[i] for i in np.nonzero(bad)[0]]
            warnings.warn(
                f"GarchBaseline: alpha + beta >= 1 for {names} (no unconditional variance); "
                "their paths start at the sample variance",
                RuntimeWarning,
                stacklevel=2,
            )
            uncond = np.where(bad, y.var(axis=0), uncond)
        self._start_var = uncond

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
        self._chol = chol.astype(np.float32)
        self._quantiles = [_TQuantile(nu) for nu in self._nu]

    def _bytes_per_scenario(self, horizon: int) -> int:
        return (BURN_IN + horizon) * self.n_assets * 16 + horizon * self.n_assets * 4

    def innovations(self, z: np.ndarray) -> np.ndarray:
        """Unit-variance t innovations from standard normals: float32
        ``[..., assets]`` normals -> correlated (copula), t-mapped, same shape."""
        z = np.asarray(z, dtype=np.float32)
        return np.moveaxis(self._innovations(z), 0, -1)

    def _innovations(self, z: np.ndarray) -> np.ndarray:
        """float32 ``[..., assets]`` normals -> innovations ``[assets, ...]``."""
        if self.n_assets == 1:
            return self._quantiles[0](z[..., 0])[None]
        out = np.empty((self.n_assets, *z.shape[:-1]), dtype=np.float32)
        for i in range(self.n_assets):
            x = z[..., 0] * self._chol[i, 0]  # row i of C z, summed in a fixed order
            for j in range(1, i + 1):
                x += z[..., j] * self._chol[i, j]
            self._quantiles[i](x, out=out[i])
        return out

    def _generate(self, seed: int, start: int, m: int, horizon: int) -> np.ndarray:
        a, days = self.n_assets, BURN_IN + horizon
        # stream row i: scenario i's normals, day-major ([days, assets])
        z = native.normals(m, days * a, seed=seed, offset=start, tag=TAG_GARCH)
        eta = self._innovations(z.reshape(m, days, a))  # [a, m, days]
        del z
        # the day loop works on [assets, m] slices (long inner loops)
        col = (slice(None), None)
        mu, omega = self._mu[col], self._omega[col]
        alpha, beta = self._alpha[col], self._beta[col]
        out = np.empty((a, m, horizon), dtype=np.float32)
        var = np.empty((a, m), dtype=np.float64)
        var[...] = self._start_var[col]
        eps = np.empty((a, m), dtype=np.float64)
        tmp = np.empty((a, m), dtype=np.float64)
        for t in range(days):
            np.sqrt(var, out=eps)
            eps *= eta[:, :, t]
            if t >= BURN_IN:
                np.add(eps, mu, out=tmp)
                tmp /= GARCH_SCALE
                out[:, :, t - BURN_IN] = tmp
            # var <- omega + alpha * eps^2 + beta * var
            var *= beta
            np.multiply(eps, eps, out=tmp)
            tmp *= alpha
            var += tmp
            var += omega
        return np.ascontiguousarray(out.transpose(1, 2, 0))

    def __repr__(self) -> str:
        p = self.params
        pers = ", ".join(f"{v:.4f}" for v in (p["alpha"] + p["beta"]))
        return (
            f"GarchBaseline(window={self.window}, assets={self.asset_names}, "
            f"persistence=[{pers}], nu=[{', '.join(f'{v:.2f}' for v in p['nu'])}])"
        )

"""Importance sampling of scenarios inside an event (what-if scenarios).

A scenario is a deterministic function of its random inputs: the prior's
component k (uniform over the K training posteriors of the mixture prior,
K = 1 for N(0, I)), the latent draw z = mu_k + sigma_k * u with u ~ N(0, I),
and the observation noise streams e (each day's asset noise and common
factors, N(0, 1)). The proposal tilts all three:

- components: q(k) ∝ pi_k exp(c . mu_k) (an exponential tilt of the prior
  over the components' means: smooth, every component keeps mass), mixed
  with the prior (a tenth) so no likelihood ratio exceeds 10 from this part;
- latent: u ~ N(a, I), a mean shift in each component's own standard units;
- noise (optional): e_{t,j} ~ N(s_j, 1), a mean shift per noise stream j
  (each asset's own noise, each common factor), the same on every day of
  the path: for an event on a sum over days (a total return) a constant
  shift is the efficient exponential tilt, and its few parameters (assets +
  factors) are estimated from the elite without the noise that one shift
  per day and stream (hundreds of parameters) brings into the weights.

For an MLP model with a mixture prior and an event on one total return
(or drawdown), the proposal is not searched but computed: components ∝
prior x the approximate P(event | component) (each component's decoded
daily means and covariances), and in each component the noise shifted to
the event's *dominating point*: the target's sum over days is linear in
the standard normal noise (coefficients c from the loadings and scales),
so the most likely way to reach the threshold L from the mean M is the
shift c (L - M) / |c|^2 (none when M is already past L): about half of
the draws land inside, with nearly equal weights.

The likelihood ratio of a draw is exact: ``log w = log pi_k - log q(k) - a.u
+ |a|^2 / 2 - s . sum_t e_t + h |s|^2 / 2`` (u, e the shifted draws, h days). The cross-entropy
method picks (c, a, s): draw from the current proposal, keep the elite
(paths whose margin to the event is at or below its rho-quantile, or inside
the event once that is reached), and move the proposal to the elite's
weighted moments (for c: the tilt whose mean of mu_k matches the elite's,
by Newton's method on the convex log-partition).

Everything here is numpy; the draws themselves come from the native core
(generate.py).
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = [
    "Proposal",
    "condition_log_probability",
    "derive_seed",
    "ess",
    "exponential_tilt",
    "scored_components",
    "uniform_of",
]

DEFENSIVE = 0.1  # share of the prior kept in the component proposal
_M64 = (1 << 64) - 1


def _mix64(x: np.ndarray) -> np.ndarray:
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def derive_seed(seed: int, stream: int) -> int:
    """A seed for stream ``stream`` (a search iteration) derived from ``seed``."""
    x = np.array([(seed * 0x9E3779B97F4A7C15 + stream * 0xD1B54A32D192ED03 + 1) & _M64], np.uint64)
    return int(_mix64(x)[0])


def uniform_of(ids: np.ndarray, seed: int, salt: int) -> np.ndarray:
    """A uniform in (0, 1) per scenario id, a hash of (seed, salt, id):
    the same for any chunking."""
    key = _mix64(np.array([(seed ^ salt) & _M64], np.uint64))
    x = _mix64(ids.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + key)
    return ((x >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


def ess(weights: np.ndarray) -> float:
    """Kish's effective sample size (sum w)^2 / sum w^2."""
    w = np.asarray(weights, np.float64)
    s2 = float(np.sum(w * w))
    return float(np.sum(w) ** 2 / s2) if s2 > 0 else 0.0


def exponential_tilt(
    means: np.ndarray, log_prior: np.ndarray, target: np.ndarray, ridge: float = 1e-3
) -> np.ndarray:
    """Log-probabilities [K] of q(k) ∝ pi_k exp(c . m_k) with c chosen so
    that the q-mean of the m_k (rows of ``means`` [K, L]) is ``target`` (as
    near as a small ridge on c allows): Newton's method on the convex
    ``log sum_k pi_k exp(c . m_k) - c . target + ridge |c|^2 / 2``, in
    standardized coordinates."""
    m = np.asarray(means, np.float64)
    center, scale = m.mean(axis=0), m.std(axis=0) + 1e-12
    x = (m - center) / scale
    t = (np.asarray(target, np.float64) - center) / scale
    c = np.zeros(x.shape[1])

    def objective(c):
        s = log_prior + x @ c
        top = s.max()
        return top + np.log(np.exp(s - top).sum()) - c @ t + 0.5 * ridge * c @ c, s

    f, s = objective(c)
    for _ in range(50):
        p = np.exp(s - s.max())
        p /= p.sum()
        mean = p @ x
        g = mean - t + ridge * c
        if np.max(np.abs(g)) < 1e-9:
            break
        cov = (x * p[:, None]).T @ x - np.outer(mean, mean) + ridge * np.eye(len(c))
        step = np.linalg.solve(cov, g)
        lam = 1.0
        while lam > 1e-6:
            f_new, s_new = objective(c - lam * step)
            if f_new <= f - 1e-4 * lam * (g @ step):
                break
            lam *= 0.5
        c, f, s = c - lam * step, f_new, s_new
    return s - (s.max() + np.log(np.exp(s - s.max()).sum()))


@dataclasses.dataclass(frozen=True, eq=False)
class Proposal:
    """A tilted proposal (see the module docstring). ``mu``/``logvar`` is
    the table the native sampler draws z from (each component's mean moved
    by ``a`` of its standard deviations); :meth:`index` gives each
    scenario's component; :meth:`log_weight` the likelihood ratio."""

    base_mu: np.ndarray  # [K, L] float32, the prior's components
    base_logvar: np.ndarray  # [K, L] float32
    log_prior: np.ndarray  # [K] float64
    log_q: np.ndarray  # [K] float64
    a: np.ndarray  # [L] float64
    noise: np.ndarray | None  # [streams] float64 (every day), or None (noise untilted)
    scored: bool = False  # components from scored_components: kept, not re-tilted
    noise_table: np.ndarray | None = None  # [K, horizon, streams] float32: per component

    @property
    def mu(self) -> np.ndarray:
        std = np.exp(0.5 * self.base_logvar.astype(np.float64))
        return (self.base_mu + std * self.a).astype(np.float32)

    @property
    def logvar(self) -> np.ndarray:
        return self.base_logvar

    def index(self, ids: np.ndarray, seed: int = 0) -> np.ndarray:
        """Each scenario's component (int64), from a hash of (seed, id)."""
        if len(self.log_q) == 1:
            return np.zeros(len(ids), np.int64)
        cdf = np.cumsum(np.exp(self.log_q))
        u = uniform_of(np.asarray(ids), seed, 0x243F6A8885A308D3) * cdf[-1]
        return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1).astype(np.int64)

    def standard(self, z: np.ndarray, k: np.ndarray) -> np.ndarray:
        """u = (z - mu_k) / sigma_k of the prior's component (float64 [m, L])."""
        mu = self.base_mu[k].astype(np.float64)
        std = np.exp(0.5 * self.base_logvar[k].astype(np.float64))
        return (z.astype(np.float64) - mu) / std

    def log_weight(self, u: np.ndarray, k: np.ndarray, e: np.ndarray | None) -> np.ndarray:
        """log p / q of draws: u [m, L] (shifted latent), k [m], e [m, horizon,
        streams] (shifted noise, when the noise is tilted)."""
        lw = self.log_prior[k] - self.log_q[k] - u @ self.a + 0.5 * self.a @ self.a
        if self.noise is not None:
            s = self.noise
            lw = lw - e.sum(axis=1) @ s + 0.5 * e.shape[1] * float(s @ s)
        if self.noise_table is not None:
            sh = self.noise_table[k].astype(np.float64)
            lw = lw - np.einsum("mts,mts->m", e, sh) + 0.5 * np.einsum("mts,mts->m", sh, sh)
        return lw

    def noise_shift(self, k: np.ndarray) -> np.ndarray | float:
        """The mean shift of the noise of scenarios in components k:
        [m, horizon, streams] (per component), [streams] or 0."""
        if self.noise_table is not None:
            return self.noise_table[k]
        return 0.0 if self.noise is None else self.noise.astype(np.float32)

    def update(
        self,
        u: np.ndarray,
        k: np.ndarray,
        e: np.ndarray | None,
        w: np.ndarray,
        smooth: float = 0.7,
        max_shift: float = 4.0,
    ) -> Proposal:
        """The proposal moved to the weighted moments of elite draws (u, k, e
        and their likelihood-ratio weights w), smoothed with this one."""
        w = np.asarray(w, np.float64) / np.sum(w)
        a = np.clip(smooth * (w @ u) + (1 - smooth) * self.a, -max_shift, max_shift)
        log_q = self.log_q
        if len(self.log_q) > 1 and not self.scored:
            target = w @ self.base_mu[k].astype(np.float64)
            tilt = exponential_tilt(self.base_mu, self.log_prior, target)
            q = smooth * np.exp(tilt) + (1 - smooth) * np.exp(self.log_q)
            log_q = np.log((1 - DEFENSIVE) * q + DEFENSIVE * np.exp(self.log_prior))
        noise = self.noise
        if noise is not None:
            est = w @ e.mean(axis=1)
            noise = np.clip(smooth * est + (1 - smooth) * noise, -max_shift, max_shift)
        return dataclasses.replace(self, a=a, log_q=log_q, noise=noise)


def _log_ndtr(x: np.ndarray) -> np.ndarray:
    import torch

    return torch.special.log_ndtr(torch.from_numpy(np.asarray(x, np.float64))).numpy()


def condition_log_probability(
    stat: str, op: str, threshold: float, m: np.ndarray, v: np.ndarray, year_days: int = 252
) -> np.ndarray:
    """A Gaussian approximation of log P(condition) per row, from the
    target's daily log-return means ``m`` and variances ``v`` [rows, days]
    (independent days): the sum for ``return``, each day for ``worst_day`` /
    ``best_day``, the reflection principle for ``drawdown``, the mean and
    variance of the sum of squares for ``vol``. For choosing proposal
    components only: the weights stay exact whatever it gets wrong."""
    m, v = np.asarray(m, np.float64), np.maximum(np.asarray(v, np.float64), 1e-30)
    below = op == "<="
    if stat in ("return", "drawdown"):
        level = np.log1p(max(threshold, -1 + 1e-12))
        z = (level - m.sum(axis=1)) / np.sqrt(v.sum(axis=1))
        if stat == "drawdown":  # P(min of the partial sums <= level) ~ 2 P(sum <= level)
            lp = np.minimum(_log_ndtr(z) + np.log(2.0), -1e-12)
            return lp if below else np.log(-np.expm1(lp))
        return _log_ndtr(z if below else -z)
    if stat in ("worst_day", "best_day"):
        level = np.log1p(max(threshold, -1 + 1e-12))
        z = (level - m) / np.sqrt(v)  # per day: P(day <= level) = Phi(z)
        if stat == "worst_day":
            none = _log_ndtr(-z).sum(axis=1)  # log P(no day at or below)
            return np.log(-np.expm1(np.minimum(none, -1e-300))) if below else none
        none = _log_ndtr(z).sum(axis=1)  # log P(no day at or above)
        return none if below else np.log(-np.expm1(np.minimum(none, -1e-300)))
    # vol: sum of squares against n * thr^2 / year_days
    n = m.shape[1]
    mean = (m * m + v).sum(axis=1)
    var = (2 * v * v + 4 * m * m * v).sum(axis=1)
    z = (mean - n * threshold**2 / year_days) / np.sqrt(var)
    return _log_ndtr(z if not below else -z)


def scored_components(log_prior: np.ndarray, log_score: np.ndarray) -> np.ndarray:
    """Log-probabilities of the proposal over components ∝ pi_k P(event | k)
    (``log_score``, an approximation), with a share of the prior kept."""
    s = log_prior + np.maximum(log_score, -700.0)
    s = s - (s.max() + np.log(np.exp(s - s.max()).sum()))
    return np.log((1 - DEFENSIVE) * np.exp(s) + DEFENSIVE * np.exp(log_prior))

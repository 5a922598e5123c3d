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
- noise (optional): e_{t,j} ~ N(s_{t,j}, 1), a mean shift per day and stream.

The likelihood ratio of a draw is exact: ``log w = log pi_k - log q(k) - a.u
+ |a|^2 / 2 - s.e + |s|^2 / 2`` (u, e the shifted draws). The cross-entropy
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

__all__ = ["Proposal", "derive_seed", "ess", "exponential_tilt", "uniform_of"]

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
    noise: np.ndarray | None  # [horizon, streams] float64, or None (noise untilted)

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
            lw = lw - np.einsum("mts,ts->m", e, s) + 0.5 * float(np.sum(s * s))
        return lw

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
        if len(self.log_q) > 1:
            target = w @ self.base_mu[k].astype(np.float64)
            tilt = exponential_tilt(self.base_mu, self.log_prior, target)
            q = smooth * np.exp(tilt) + (1 - smooth) * np.exp(self.log_q)
            log_q = np.log((1 - DEFENSIVE) * q + DEFENSIVE * np.exp(self.log_prior))
        noise = self.noise
        if noise is not None:
            est = np.einsum("m,mts->ts", w, e)
            noise = np.clip(smooth * est + (1 - smooth) * noise, -max_shift, max_shift)
        return dataclasses.replace(self, a=a, log_q=log_q, noise=noise)

"""numpy twin of the native random core (csrc/philox.h), for tests.

Every function repeats the native operations one for one, in the same order,
in float32, so that its results equal the native ones to the bit: Philox4x32-10
on uint32 words, uniforms ``((u >> 8) | 1) * 2**-24``, the project's own log,
exp and sincos polynomials, Box-Muller, and ``z = fmaf(sigma, eps, mu)``.
numpy has no single-precision fused multiply-add, so :func:`fmaf` emulates a
correctly rounded one in float64 (exact product, TwoSum, and a nudge where
rounding twice would differ from rounding once).

Slow, simple and exact: this is the oracle, not a fallback.
"""

from __future__ import annotations

import numpy as np

F32 = np.float32
U32 = np.uint32

PHILOX_M0 = 0xD2511F53
PHILOX_M1 = 0xCD9E8D57
PHILOX_W0 = 0x9E3779B9
PHILOX_W1 = 0xBB67AE85
MASK32 = 0xFFFFFFFF

TAG_LATENT = 0
TAG_OBSERVATION = 1

_ROUND_MAGIC = F32(12582912.0)  # 1.5 * 2**23


def philox4x32_10(c0, c1, c2, c3, k0: int, k1: int):
    """Philox4x32-10 on arrays of counter words; returns four uint32 arrays."""
    x0, x1, x2, x3 = (np.asarray(c, dtype=U32) for c in (c0, c1, c2, c3))
    k0, k1 = int(k0) & MASK32, int(k1) & MASK32
    m0, m1 = np.uint64(PHILOX_M0), np.uint64(PHILOX_M1)
    for rnd in range(10):
        if rnd:
            k0 = (k0 + PHILOX_W0) & MASK32
            k1 = (k1 + PHILOX_W1) & MASK32
        p0 = m0 * x0.astype(np.uint64)
        p1 = m1 * x2.astype(np.uint64)
        x0, x1, x2, x3 = (
            (p1 >> np.uint64(32)).astype(U32) ^ x1 ^ U32(k0),
            p1.astype(U32),
            (p0 >> np.uint64(32)).astype(U32) ^ x3 ^ U32(k1),
            p0.astype(U32),
        )
    return x0, x1, x2, x3


def uniform_open(u) -> np.ndarray:
    """uint32 words -> float32 uniforms in (0, 1), never 0 or 1."""
    u = np.asarray(u, dtype=U32)
    return ((u >> U32(8)) | U32(1)).astype(F32) * F32(2.0**-24)


def fmaf(a, b, c) -> np.ndarray:
    """Correctly rounded float32 a * b + c (what C's fmaf returns)."""
    a, b, c = (np.asarray(v, dtype=F32).astype(np.float64) for v in (a, b, c))
    p = a * b  # exact: 24 + 24 bits fit in 53
    s = p + c
    bb = s - p
    err = (p - (s - bb)) + (c - bb)  # TwoSum: s + err == p + c exactly
    # Rounding s to float32 equals rounding p + c unless s sits exactly on a
    # float32 midpoint while the exact value does not: then step off it
    # towards the exact value.
    low = s.view(np.uint64) & np.uint64((1 << 29) - 1)
    tie = (low == np.uint64(1 << 28)) & (err != 0)
    if np.any(tie):
        s = np.where(tie, np.nextafter(s, np.where(err > 0, np.inf, -np.inf)), s)
    return s.astype(F32)


def log_poly(u) -> np.ndarray:
    """The sampler's log(u) for positive normal float32 u."""
    u = np.asarray(u, dtype=F32)
    bits = u.view(U32)
    e = (bits >> U32(23)).astype(np.int32) - 127
    m = ((bits & U32(0x007FFFFF)) | U32(0x3F800000)).view(F32)
    big = m > F32(1.41421356)
    m = np.where(big, m * F32(0.5), m)
    e = np.where(big, e + 1, e)
    x = m - F32(1.0)
    fe = e.astype(F32)
    z = x * x
    p = np.full_like(x, F32(7.0376836292e-2))
    for coef in (
        -1.1514610310e-1,
        1.1676998740e-1,
        -1.2420140846e-1,
        1.4249322787e-1,
        -1.6668057665e-1,
        2.0000714765e-1,
        -2.4999993993e-1,
        3.3333331174e-1,
    ):
        p = fmaf(p, x, F32(coef))
    y = (p * x) * z
    y = fmaf(fe, F32(-2.12194440e-4), y)
    y = fmaf(F32(-0.5), z, y)
    r = x + y
    return fmaf(fe, F32(0.693359375), r)


def exp_poly(x) -> np.ndarray:
    """The sampler's exp(x), x clamped to [-86, 88]."""
    x = np.asarray(x, dtype=F32)
    x = np.where(x < F32(-86.0), F32(-86.0), x)
    x = np.where(x > F32(88.0), F32(88.0), x)
    kf = fmaf(x, F32(1.44269504088896341), _ROUND_MAGIC) - _ROUND_MAGIC
    r = fmaf(kf, F32(-0.693359375), x)
    r = fmaf(kf, F32(2.12194440e-4), r)
    r2 = r * r
    p = np.full_like(r, F32(1.9875691500e-4))
    for coef in (1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1):
        p = fmaf(p, r, F32(coef))
    p = fmaf(p, r, F32(5.0000001201e-1))
    p = fmaf(p, r2, r)
    p = p + F32(1.0)
    k = kf.astype(np.int32)
    return p * ((k + 127).astype(U32) << U32(23)).view(F32)


_SIN = (
    1.6044118478735982e-4,
    -4.6817541353186881e-3,
    7.9692626246167045e-2,
    -6.4596409750624625e-1,
    1.5707963267948966,
)
_COS = (
    -2.5202042373060605e-5,
    9.1926027483942659e-4,
    -2.0863480763352961e-2,
    2.5366950790104802e-1,
    -1.2337005501361697,
)


def sincos_2pi_poly(u):
    """The sampler's (cos(2 pi u), sin(2 pi u)) for u in [0, 1]."""
    u = np.asarray(u, dtype=F32)
    t = u * F32(4.0)
    kf = (t + _ROUND_MAGIC) - _ROUND_MAGIC
    f = t - kf
    k = kf.astype(np.int32) & 3
    f2 = f * f
    ps = np.full_like(f, F32(_SIN[0]))
    for coef in _SIN[1:]:
        ps = fmaf(ps, f2, F32(coef))
    s = ps * f
    pc = np.full_like(f, F32(_COS[0]))
    for coef in _COS[1:]:
        pc = fmaf(pc, f2, F32(coef))
    c = fmaf(pc, f2, F32(1.0))
    odd = (k & 1).astype(bool)
    cc = np.where(odd, s, c)
    ss = np.where(odd, c, s)
    cos = np.where(((k + 1) & 2).astype(bool), -cc, cc)
    sin = np.where((k & 2).astype(bool), -ss, ss)
    return cos, sin


def box_muller(a, b):
    """Two uint32 word arrays -> two arrays of standard normals."""
    u1 = uniform_open(a)
    u2 = uniform_open(b)
    r = np.sqrt(F32(-2.0) * log_poly(u1))
    c, s = sincos_2pi_poly(u2)
    return r * c, r * s


def normals(n: int, d: int, seed: int, tag: int = TAG_LATENT, offset: int = 0) -> np.ndarray:
    """eps[i, j] of scenarios offset .. offset + n - 1, elements 0 .. d - 1."""
    nblk = (d + 3) // 4
    scen = np.uint64(offset) + np.arange(n, dtype=np.uint64)
    c0 = np.tile(np.arange(nblk, dtype=U32), n)
    c2 = np.repeat((scen & np.uint64(MASK32)).astype(U32), nblk)
    c3 = np.repeat((scen >> np.uint64(32)).astype(U32), nblk)
    c1 = np.full(n * nblk, tag, dtype=U32)
    w0, w1, w2, w3 = philox4x32_10(c0, c1, c2, c3, seed & MASK32, seed >> 32)
    n0, n1 = box_muller(w0, w1)
    n2, n3 = box_muller(w2, w3)
    eps = np.stack([n0, n1, n2, n3], axis=1).reshape(n, nblk * 4)
    return np.ascontiguousarray(eps[:, :d])


def sample(
    mu,
    logvar,
    n: int | None = None,
    *,
    seed: int,
    index=None,
    offset: int = 0,
    scale: float = 1.0,
    tag: int = TAG_LATENT,
) -> np.ndarray:
    """z = mu + exp(logvar / 2) * scale * eps, bit-exact twin of the native sampler."""
    mu = np.atleast_2d(np.asarray(mu, dtype=F32))
    logvar = np.atleast_2d(np.asarray(logvar, dtype=F32))
    if index is not None:
        rows = np.asarray(index, dtype=np.int64)
    elif n is not None and mu.shape[0] == 1:
        rows = np.zeros(n, dtype=np.int64)
    else:
        rows = np.arange(mu.shape[0])
    d = mu.shape[1]
    eps = normals(len(rows), d, seed, tag, offset)
    sigma = exp_poly(F32(0.5) * logvar[rows]) * F32(scale)
    return fmaf(sigma, eps, mu[rows])

"""Philox4x32-10, uniforms and the sampler's own math: known answers, the
numpy twin to the bit, and accuracy against float64 libm."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from stressvae import _core
from stressvae import _reference as ref

# Random123's published known answers (kat_vectors, philox4x32 10 rounds).
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    (
        (0xFFFFFFFF,) * 4,
        (0xFFFFFFFF,) * 2,
        (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD),
    ),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


@pytest.mark.parametrize(("ctr", "key", "want"), KAT)
def test_philox_known_answers_native(ctr, key, want):
    assert tuple(_core.philox4x32_10(list(ctr), list(key))) == want


@pytest.mark.parametrize(("ctr", "key", "want"), KAT)
def test_philox_known_answers_numpy_twin(ctr, key, want):
    out = ref.philox4x32_10(*([c] for c in ctr), *key)
    assert tuple(int(w[0]) for w in out) == want


def test_philox_native_equals_twin_on_random_counters(rng):
    words = rng.integers(0, 2**32, size=(200, 6), dtype=np.uint64).astype(np.uint32)
    twin = ref.philox4x32_10(
        words[:, 0], words[:, 1], words[:, 2], words[:, 3], 0x89ABCDEF, 0x01234567
    )
    for i in range(len(words)):
        got = _core.philox4x32_10([int(w) for w in words[i, :4]], [0x89ABCDEF, 0x01234567])
        assert tuple(got) == tuple(int(t[i]) for t in twin)


def test_uniform_open_interval_edges():
    u = np.array([0, 0xFF, 0x100, 0x1FF, 0x7FFFFFFF, 0xFFFFFF00, 0xFFFFFFFF], dtype=np.uint32)
    got = _core.uniform(u)
    assert got.dtype == np.float32
    # ((u >> 8) | 1) * 2^-24: never 0, never 1
    assert got[0] == np.float32(2.0**-24) == got[1]
    assert got[2] == np.float32(2.0**-24)  # (1 | 1) * 2^-24
    assert got[3] == np.float32(2.0**-24)
    assert got[-1] == np.float32(1 - 2.0**-24) == got[-2]
    assert np.array_equal(got, ref.uniform_open(u))


def test_uniform_all_in_open_interval(rng):
    u = rng.integers(0, 2**32, size=1_000_000, dtype=np.uint64).astype(np.uint32)
    got = _core.uniform(u)
    assert got.min() > 0 and got.max() < 1
    assert np.array_equal(got, ref.uniform_open(u))


# Every uniform the sampler can produce: odd multiples of 2^-24 in (0, 1).
ALL_UNIFORMS = np.arange(1, 2**24, 2, dtype=np.int64).astype(np.float32) * np.float32(2.0**-24)


def test_log_poly_exhaustive_over_sampler_domain():
    got = _core.math_poly("log", ALL_UNIFORMS).astype(np.float64)
    want = np.log(ALL_UNIFORMS.astype(np.float64))
    err = np.abs(got - want)
    # within 2 ulp of the true value everywhere the sampler evaluates it
    ulp = np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
    assert np.max(err / ulp) <= 2.0, np.max(err / ulp)


def test_sincos_poly_exhaustive_over_sampler_domain():
    cos = _core.math_poly("cos2pi", ALL_UNIFORMS).astype(np.float64)
    sin = _core.math_poly("sin2pi", ALL_UNIFORMS).astype(np.float64)
    theta = 2 * np.pi * ALL_UNIFORMS.astype(np.float64)
    assert np.max(np.abs(cos - np.cos(theta))) < 2.5e-7
    assert np.max(np.abs(sin - np.sin(theta))) < 2.5e-7
    assert np.max(np.abs(cos * cos + sin * sin - 1)) < 1e-6


def test_exp_poly_accuracy_and_clamp(rng):
    x = np.concatenate(
        [rng.uniform(-80, 80, 200_000), rng.uniform(-1, 1, 200_000), [0.0, -86.0, 88.0]]
    ).astype(np.float32)
    got = _core.math_poly("exp", x).astype(np.float64)
    want = np.exp(x.astype(np.float64))
    rel = np.abs(got / want - 1)
    assert np.max(rel) < 4 * 2.0**-24, np.max(rel)
    assert _core.math_poly("exp", np.array([0.0], np.float32))[0] == 1.0
    # clamped to [-86, 88]: finite and normal for any finite input
    ext = _core.math_poly("exp", np.array([-1e30, -500, 500, 1e30], np.float32))
    assert np.all(np.isfinite(ext)) and ext[0] == ext[1] > np.finfo(np.float32).tiny
    assert ext[2] == ext[3] == _core.math_poly("exp", np.array([88.0], np.float32))[0]


@pytest.mark.parametrize("fn", ["log", "exp", "cos2pi", "sin2pi"])
def test_math_polys_equal_twin_bitwise(fn, rng):
    if fn == "log":
        x = np.concatenate([ALL_UNIFORMS[::7], rng.uniform(1e-30, 1e30, 10_000)]).astype(np.float32)
        twin = ref.log_poly(x)
    elif fn == "exp":
        x = rng.uniform(-100, 100, 300_000).astype(np.float32)
        twin = ref.exp_poly(x)
    else:
        x = np.ascontiguousarray(ALL_UNIFORMS[::3])
        c, s = ref.sincos_2pi_poly(x)
        twin = c if fn == "cos2pi" else s
    got = _core.math_poly(fn, x)
    assert np.array_equal(got.view(np.uint32), twin.view(np.uint32))


def test_fmaf_twin_is_correctly_rounded():
    # (1 + 2^-12)^2 = 1 + 2^-11 + 2^-24 is exactly halfway between two float32.
    # Adding +-2^-60 decides the rounding; float64 loses it (61 bits), so a
    # naive float64 a*b+c rounds to even (down) both times.
    a = np.float32(1 + 2.0**-12)
    up, down = np.float32(2.0**-60), np.float32(-(2.0**-60))
    assert ref.fmaf(a, a, up) == np.float32(1 + 2.0**-11 + 2.0**-23)
    assert ref.fmaf(a, a, down) == np.float32(1 + 2.0**-11)
    naive = (np.float64(a) * np.float64(a) + np.float64(up)).astype(np.float32)
    assert naive == np.float32(1 + 2.0**-11)  # what the correction is for
    # ordinary values agree with float64 evaluation
    x = np.float32([0.5, -3.25, 7.0])
    assert np.array_equal(ref.fmaf(x, x, x), (x.astype(np.float64) ** 2 + x).astype(np.float32))


def test_stream_tags_never_overlap(rng):
    """Every tag of docs/native.md, fixed forever: the per-day families
    (base + day, day < MAX_HORIZON) do not reach each other or the fixed
    tags, and the factor streams are the documented numbers of the twin."""
    from stressvae import native

    fixed = [native.TAG_LATENT, native.TAG_OBSERVATION, native.TAG_FACTOR]
    assert fixed == [0, 1, 2]
    bases = [native.TAG_STEP, native.TAG_DRIFT, native.TAG_FACTOR_STEP]
    assert bases == [0x01000000, 0x02000000, 0x03000000]
    spans = [(t, t) for t in fixed] + [(b, b + native.MAX_HORIZON - 1) for b in bases]
    spans.sort()
    for (_, hi), (lo, _) in itertools.pairwise(spans):
        assert hi < lo
    # the normals of a factor stream: the twin's, element for element
    seed, offset = int(rng.integers(1 << 62)), int(rng.integers(1 << 40))
    for tag in (native.TAG_FACTOR, native.TAG_FACTOR_STEP + 251):
        got = native.normals(5, 7, seed=seed, offset=offset, tag=tag)
        want = ref.normals(5, 7, seed=seed, offset=offset, tag=tag)
        assert np.array_equal(got.view(np.uint32), np.asarray(want, np.float32).view(np.uint32))

"""Fused reparameterized sampling on the CPU: the numpy twin to the bit, the
torch expression within float32 rounding, invariance to chunking, threads,
offsets, ISA level and n, and the statistics of eps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import bits
from scipy import stats

from stressvae import _core, native
from stressvae import _reference as ref

ISAS = [
    i
    for i in ("baseline", "avx2", "avx512")
    if native.ISA_LEVELS.index(i) <= native.ISA_LEVELS.index(_core.best_isa())
]


def random_posterior(rng, k, d):
    mu = rng.normal(0, 1.5, (k, d)).astype(np.float32)
    lv = rng.uniform(-8, 3, (k, d)).astype(np.float32)
    return mu, lv


@pytest.mark.parametrize("d", [1, 3, 4, 16, 17, 64, 255, 300])
def test_prior_mode_equals_twin_bitwise(d, rng):
    mu, lv = random_posterior(rng, 1, d)
    seed = int(rng.integers(0, 2**63))
    offset = 2**32 - 37  # scenario indices cross into the high counter word
    z = native.sample_latent(mu[0], lv[0], 101, seed=seed, offset=offset, scale=0.8)
    want = ref.sample(mu, lv, 101, seed=seed, offset=offset, scale=0.8)
    assert z.shape == (101, d) and z.dtype == np.float32
    assert np.array_equal(bits(z), bits(want))
    # [1, d] is the same as [d]
    z2 = native.sample_latent(mu, lv, 101, seed=seed, offset=offset, scale=0.8)
    assert np.array_equal(bits(z), bits(z2))


@pytest.mark.parametrize("d", [2, 16, 33, 260])
def test_per_row_mode_equals_twin_bitwise(d, rng):
    mu, lv = random_posterior(rng, 257, d)
    z = native.sample_latent(mu, lv, seed=11, offset=5)
    assert np.array_equal(bits(z), bits(ref.sample(mu, lv, seed=11, offset=5)))


@pytest.mark.parametrize("d", [5, 16, 64])
def test_table_mode_equals_twin_bitwise(d, rng):
    mu, lv = random_posterior(rng, 9, d)
    index = rng.integers(0, 9, 1000).astype(np.int64)
    z = native.sample_latent(mu, lv, seed=3, index=index, scale=0.5)
    want = ref.sample(mu, lv, seed=3, index=index, scale=0.5)
    assert np.array_equal(bits(z), bits(want))


def test_matches_torch_reparameterization_expression(rng):
    """z equals torch's mu + exp(0.5 * lv) * scale * eps for the same eps,
    within float32 rounding (the sampler's exp is its own polynomial)."""
    n, d = 5000, 16
    mu, lv = random_posterior(rng, n, d)
    z = native.sample_latent(mu, lv, seed=42, scale=0.7)
    eps = native.normals(n, d, seed=42)
    want = torch.from_numpy(mu) + torch.exp(0.5 * torch.from_numpy(lv)) * 0.7 * torch.from_numpy(
        eps
    )
    torch.testing.assert_close(torch.from_numpy(z), want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("isa", ISAS)
def test_every_isa_level_gives_the_same_bits(isa, rng):
    mu, lv = random_posterior(rng, 3000, 19)
    index = rng.integers(0, 3000, 3000).astype(np.int64)
    best = native.sample_latent(mu, lv, seed=8, index=index)
    got = native.sample_latent(mu, lv, seed=8, index=index, isa=isa)
    assert np.array_equal(bits(got), bits(best))


def test_unsupported_isa_is_a_clear_error():
    if _core.best_isa() == "avx512":
        pytest.skip("every level is supported on this CPU")
    with pytest.raises(ValueError, match="does not support"):
        native.sample_latent(
            np.zeros(4, np.float32), np.zeros(4, np.float32), 10, seed=0, isa="avx512"
        )


@pytest.mark.parametrize("chunk", [1, 1000, 65536])
def test_chunked_draws_equal_the_full_draw(chunk, rng):
    n, d = 131_073 if chunk > 1 else 3000, 16
    mu, lv = random_posterior(rng, 1, d)
    full = native.sample_latent(mu, lv, n, seed=99)
    parts = [
        native.sample_latent(mu, lv, min(chunk, n - s), seed=99, offset=s)
        for s in range(0, n, chunk)
    ]
    assert np.array_equal(bits(np.concatenate(parts)), bits(full))


def test_chunked_table_draws_equal_the_full_draw(rng):
    mu, lv = random_posterior(rng, 4, 16)
    index = rng.integers(0, 4, 70_001).astype(np.int64)
    full = native.sample_latent(mu, lv, seed=5, index=index)
    parts = [
        native.sample_latent(mu, lv, seed=5, index=index[s : s + 1000], offset=s)
        for s in range(0, len(index), 1000)
    ]
    assert np.array_equal(bits(np.concatenate(parts)), bits(full))


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
def test_thread_count_does_not_change_results(threads, rng):
    mu, lv = random_posterior(rng, 200_000, 16)
    one = native.sample_latent(mu, lv, seed=17, num_threads=1)
    many = native.sample_latent(mu, lv, seed=17, num_threads=threads)
    assert np.array_equal(bits(one), bits(many))


def test_split_offsets_compose(rng):
    mu, lv = random_posterior(rng, 1, 24)
    n, cut = 100_000, 12_345
    full = native.sample_latent(mu, lv, n, seed=2**64 - 1, offset=2**40)
    a = native.sample_latent(mu, lv, cut, seed=2**64 - 1, offset=2**40)
    b = native.sample_latent(mu, lv, n - cut, seed=2**64 - 1, offset=2**40 + cut)
    assert np.array_equal(bits(np.concatenate([a, b])), bits(full))


def test_scenario_i_does_not_depend_on_n(rng):
    mu, lv = random_posterior(rng, 1, 16)
    small = native.sample_latent(mu, lv, 10, seed=1)
    large = native.sample_latent(mu, lv, 100_000, seed=1)
    assert np.array_equal(bits(small), bits(large[:10]))


def test_eps_of_an_element_does_not_depend_on_width():
    narrow = native.normals(50, 5, seed=4)
    wide = native.normals(50, 64, seed=4)
    assert np.array_equal(bits(narrow), bits(wide[:, :5]))


def test_seeds_and_tags_give_different_streams():
    a = native.normals(10_000, 16, seed=1).ravel()
    b = native.normals(10_000, 16, seed=2).ravel()
    c = native.normals(10_000, 16, seed=1, tag=native.TAG_OBSERVATION).ravel()
    for x, y in ((a, b), (a, c), (b, c)):
        assert not np.any(x == y) or np.mean(x == y) < 1e-3
        assert abs(np.corrcoef(x, y)[0, 1]) < 4 / np.sqrt(a.size)


def test_scale_zero_returns_mu_exactly(rng):
    mu, lv = random_posterior(rng, 100, 8)
    z = native.sample_latent(mu, lv, seed=0, scale=0.0)
    assert np.array_equal(z, mu)


def test_extreme_logvar_is_clamped_so_sigma_stays_finite():
    # std = exp(clamp(lv / 2, -86, 88)): never 0, inf or NaN, whatever lv is
    mu = np.zeros(2, np.float32)
    lv = np.array([1e4, -1e4], np.float32)
    z = native.sample_latent(mu, lv, 1000, seed=0, scale=1e-30)
    assert np.all(np.isfinite(z))
    eps = native.normals(1000, 2, seed=0)
    # sigma = exp(-86) > 0 (column 0 at scale 1 would overflow float32: refused)
    tiny = native.sample_latent(mu, np.array([0, -1e4], np.float32), 1000, seed=0)[:, 1]
    assert np.all(tiny != 0) and np.all(np.abs(tiny) < 1e-36)
    sigma_hi = np.float32(np.exp(np.float64(88))) * np.float32(1e-30)
    np.testing.assert_allclose(z[:, 0], sigma_hi * eps[:, 0], rtol=1e-5)


@pytest.fixture(scope="module")
def eps():
    """10^6 draws of eps (16 columns x 62,500 scenarios)."""
    return native.normals(62_500, 16, seed=20261121).astype(np.float64)


class TestEpsStatistics:
    """Moments, KS, tails and correlations of 10^6 normals."""

    def test_moments(self, eps):
        x = eps.ravel()
        n = x.size
        assert abs(x.mean()) < 5 / np.sqrt(n)
        assert abs(x.var() - 1) < 5 * np.sqrt(2 / n)
        assert abs(stats.skew(x)) < 5 * np.sqrt(6 / n)
        assert abs(stats.kurtosis(x)) < 5 * np.sqrt(24 / n)

    def test_kolmogorov_smirnov_normal(self, eps):
        res = stats.kstest(eps.ravel(), "norm")
        assert res.pvalue > 1e-3, res

    def test_tails_are_normal_up_to_the_24_bit_bound(self, eps):
        x = np.abs(eps.ravel())
        assert x.max() <= 5.77
        for t in (2.0, 3.0, 4.0):
            p = 2 * stats.norm.sf(t)
            got = np.mean(x > t)
            assert abs(got - p) < 5 * np.sqrt(p / x.size) + 1e-6, (t, got, p)

    def test_no_correlation_between_neighbouring_rows(self, eps):
        lim = 5 / np.sqrt(eps[:-1].size)
        assert abs(np.corrcoef(eps[:-1].ravel(), eps[1:].ravel())[0, 1]) < lim

    def test_no_correlation_between_columns(self, eps):
        c = np.corrcoef(eps.T)
        off = c[~np.eye(16, dtype=bool)]
        assert np.max(np.abs(off)) < 5 / np.sqrt(eps.shape[0])

    def test_columns_are_each_standard_normal(self, eps):
        # includes the two Box-Muller outputs (cos and sin) separately
        assert np.all(np.abs(eps.mean(axis=0)) < 5 / np.sqrt(eps.shape[0]))
        assert np.all(np.abs(eps.std(axis=0) - 1) < 5 / np.sqrt(2 * eps.shape[0]))


def test_samples_have_the_posterior_moments(rng):
    mu, lv = random_posterior(rng, 1, 8)
    lv = np.clip(lv, -4, 2)
    z = native.sample_latent(mu, lv, 400_000, seed=6, scale=0.5).astype(np.float64)
    sd = 0.5 * np.exp(0.5 * lv[0])
    assert np.all(np.abs(z.mean(0) - mu[0]) < 5 * sd / np.sqrt(len(z)))
    assert np.all(np.abs(z.std(0) / sd - 1) < 5 / np.sqrt(2 * len(z)))


def test_torch_cpu_tensors_in_give_a_tensor_out(rng):
    mu, lv = random_posterior(rng, 64, 16)
    z = native.sample_latent(torch.from_numpy(mu), torch.from_numpy(lv), seed=1)
    assert isinstance(z, torch.Tensor) and z.dtype == torch.float32 and z.device.type == "cpu"
    assert np.array_equal(bits(z), bits(native.sample_latent(mu, lv, seed=1)))


def test_out_is_filled_in_place(rng):
    mu, lv = random_posterior(rng, 1, 16)
    out = np.full((500, 16), np.nan, np.float32)
    got = native.sample_latent(mu, lv, 500, seed=1, out=out)
    assert got is out and np.all(np.isfinite(out))
    assert np.array_equal(bits(out), bits(native.sample_latent(mu, lv, 500, seed=1)))


def test_zero_rows():
    z = native.sample_latent(np.zeros(3, np.float32), np.zeros(3, np.float32), 0, seed=1)
    assert z.shape == (0, 3)


def test_native_info_counts_prove_the_native_path_ran():
    before = native.native_info()["counts"]
    native.sample_latent(np.zeros(16, np.float32), np.zeros(16, np.float32), 1234, seed=0)
    native.normals(10, 4, seed=0)
    after = native.native_info()["counts"]
    assert after["sample_cpu_calls"] == before["sample_cpu_calls"] + 1
    assert after["sample_cpu_rows"] == before["sample_cpu_rows"] + 1234
    assert after["normals_cpu_calls"] == before["normals_cpu_calls"] + 1

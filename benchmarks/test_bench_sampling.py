"""pytest-benchmark suite: native sampling vs torch eager (not part of the
test run). Run: pytest benchmarks/ --benchmark-only --benchmark-group-by=param:n"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stressvae import native

D = 16


@pytest.fixture(scope="module", params=[100_000, 1_000_000], ids=lambda n: f"n={n:.0e}")
def inputs(request):
    n = request.param
    rng = np.random.default_rng(n)
    mu = rng.normal(0, 1, (n, D)).astype(np.float32)
    lv = rng.uniform(-4, 1, (n, D)).astype(np.float32)
    return n, mu, lv


def test_native_rows(benchmark, inputs):
    n, mu, lv = inputs
    z = benchmark(native.sample_latent, mu, lv, seed=7)
    assert z.shape == (n, D)


def test_torch_eager_rows(benchmark, inputs):
    n, mu, lv = inputs
    t_mu, t_lv = torch.from_numpy(mu), torch.from_numpy(lv)
    z = benchmark(lambda: t_mu + torch.exp(0.5 * t_lv) * torch.randn(n, D))
    assert z.shape == (n, D)


def test_native_prior(benchmark, inputs):
    n, mu, lv = inputs
    z = benchmark(native.sample_latent, mu[0], lv[0], n, seed=7)
    assert z.shape == (n, D)


def test_torch_eager_prior(benchmark, inputs):
    n, mu, lv = inputs
    t_mu, t_lv = torch.from_numpy(mu[0]), torch.from_numpy(lv[0])
    z = benchmark(lambda: t_mu + torch.exp(0.5 * t_lv) * torch.randn(n, D))
    assert z.shape == (n, D)

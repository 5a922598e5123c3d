"""The CUDA sampler: bit-identical to the CPU sampler, on the caller's
stream. Marked `cuda`: skipped with the reason when no GPU is usable."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from conftest import bits

from stressvae import NativeInputError, native

pytestmark = pytest.mark.cuda


def posterior(rng, k, d):
    return rng.normal(0, 1.5, (k, d)).astype(np.float32), rng.uniform(-8, 3, (k, d)).astype(
        np.float32
    )


def cuda(*arrays):
    return [torch.from_numpy(a).cuda() for a in arrays]


@pytest.mark.parametrize("d", [1, 3, 16, 17, 64, 300])
def test_all_modes_bit_identical_to_cpu(d, rng):
    mu, lv = posterior(rng, 11, d)
    index = rng.integers(0, 11, 5000).astype(np.int64)
    off = 2**32 - 1000
    cases = [
        ((mu[:1], lv[:1], 5000), {}),
        ((np.repeat(mu, 50, 0), np.repeat(lv, 50, 0)), {}),
        ((mu, lv), {"index": index}),
    ]
    for args, kw in cases:
        cpu = native.sample_latent(*args, seed=77, offset=off, scale=0.6, **kw)
        g_args = [*cuda(*args[:2]), *args[2:]]
        g_kw = {"index": cuda(kw["index"])[0]} if kw else {}
        gpu = native.sample_latent(*g_args, seed=77, offset=off, scale=0.6, **g_kw)
        assert gpu.is_cuda
        assert np.array_equal(bits(gpu), bits(cpu))


def test_runs_on_the_callers_stream(rng):
    mu, lv = posterior(rng, 1, 16)
    cpu = native.sample_latent(mu, lv, 1_000_000, seed=3)
    g_mu, g_lv = cuda(mu, lv)
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        z = native.sample_latent(g_mu, g_lv, 1_000_000, seed=3)
        z.mul_(1.0)  # queued behind the sampler on the same stream
    stream.synchronize()
    assert np.array_equal(bits(z), bits(cpu))


def test_chunking_on_gpu_equals_full_cpu_draw(rng):
    mu, lv = posterior(rng, 1, 16)
    n = 300_000
    cpu = native.sample_latent(mu, lv, n, seed=12)
    g_mu, g_lv = cuda(mu, lv)
    parts = [
        native.sample_latent(g_mu, g_lv, min(65536, n - s), seed=12, offset=s)
        for s in range(0, n, 65536)
    ]
    assert np.array_equal(bits(torch.cat(parts)), bits(cpu))


def test_self_check_ran_and_counts_moved(rng):
    before = native.native_info()["counts"]["sample_cuda_calls"]
    mu, lv = cuda(*posterior(rng, 1, 8))
    native.sample_latent(mu, lv, 10, seed=0)
    info = native.native_info()
    assert info["cuda"]["self_checked"]
    # the self-check is one extra call the first time
    assert info["counts"]["sample_cuda_calls"] >= before + 1


def test_cuda_normals_equal_cpu_normals():
    from stressvae import _cuda

    n, d = 4097, 19
    out = torch.empty((n, d), device="cuda")
    _cuda.normals(
        out.data_ptr(),
        n,
        d,
        5,
        native.TAG_OBSERVATION,
        2**33,
        torch.cuda.current_stream().cuda_stream,
    )
    torch.cuda.synchronize()
    cpu = native.normals(n, d, seed=5, tag=native.TAG_OBSERVATION, offset=2**33)
    assert np.array_equal(bits(out), bits(cpu))


def test_device_mismatch_is_refused(rng):
    mu, lv = cuda(*posterior(rng, 3, 4))
    with pytest.raises(NativeInputError, match="index is on cpu but mu is on cuda"):
        native.sample_latent(mu, lv, seed=0, index=torch.zeros(5, dtype=torch.int64))
    with pytest.raises(NativeInputError, match="device='cpu' was asked but mu is on cuda"):
        native.sample_latent(mu, lv, seed=0, device="cpu")


def test_zero_rows_on_gpu():
    mu, lv = cuda(np.zeros(4, np.float32), np.zeros(4, np.float32))
    assert native.sample_latent(mu, lv, 0, seed=0).shape == (0, 4)


# ------------------------------------------------------------------ decoder
def decoder_model(
    window, assets, latent, hidden, activation="silu", likelihood="gaussian", seed=0, factors=None
):
    """test_decode's model; factors None: the default (0 for one asset, else
    min(4, assets - 1), so the multi-asset cases run the factor model)."""
    from test_decode import model

    return model(window, assets, latent, hidden, activation, likelihood, seed, factors)


def parity(got, want):
    err = np.abs(got.astype(np.float64) - want)
    assert np.all(err <= 1e-5 * np.abs(want) + 1e-5 * np.abs(want).max()), err.max()


@pytest.mark.parametrize("activation", ["silu", "relu", "tanh", "gelu"])
@pytest.mark.parametrize("likelihood", ["gaussian", "mse"])
@pytest.mark.parametrize(
    ("window", "assets", "latent", "hidden"),
    [(64, 1, 16, (256, 256)), (5, 3, 3, (8,)), (252, 1, 16, (24, 40)), (17, 2, 33, (256,))],
)
def test_cuda_decoder_matches_the_cpu_decoder(
    activation, likelihood, window, assets, latent, hidden, rng
):
    m = decoder_model(window, assets, latent, hidden, activation, likelihood)
    ex = m.export_decoder()
    cpu = native.NativeDecoder(ex)
    gpu = native.CudaDecoder(ex)
    z = rng.normal(size=(1000, latent)).astype(np.float32)
    got = gpu.decode(torch.from_numpy(z).cuda(), seed=3, offset=2**32 - 7)
    parity(got.cpu().numpy(), cpu.decode(z, seed=3, offset=2**32 - 7))


def test_cuda_fused_sampling_is_the_same_z(rng):
    m = decoder_model(64, 1, 16, (128, 128))
    gpu = native.CudaDecoder(m.export_decoder())
    mu = rng.normal(size=(4, 16)).astype(np.float32)
    lv = rng.uniform(-2, 0, (4, 16)).astype(np.float32)
    idx = rng.integers(0, 4, 3000).astype(np.int64)
    g_mu, g_lv, g_idx = (torch.from_numpy(a).cuda() for a in (mu, lv, idx))
    fused = gpu.sample(g_mu, g_lv, seed=9, index=g_idx, offset=5, scale=0.5)
    z = native.sample_latent(g_mu, g_lv, seed=9, index=g_idx, offset=5, scale=0.5)
    assert np.array_equal(bits(fused), bits(gpu.decode(z, seed=9, offset=5)))


def test_cuda_generator_matches_cpu_and_counts(rng):
    import warnings

    from stressvae import ScenarioGenerator

    m = decoder_model(64, 1, 16, (256, 256))
    before = native.native_info()["counts"]["decode_cuda_rows"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the fused kernel takes this model: no fallback warning
        g_gpu = ScenarioGenerator(m, device="cuda")
    g_cpu = ScenarioGenerator(m, device="cpu")
    a = g_gpu.sample(20_000, seed=4, chunk_size=7000)
    b = g_cpu.sample(20_000, seed=4)
    parity(a.returns, b.returns.astype(np.float64))
    assert native.native_info()["counts"]["decode_cuda_rows"] - before >= 20_000
    chunks = np.concatenate([c.returns for c in g_gpu.iter_chunks(20_000, seed=4, chunk_size=999)])
    assert np.array_equal(bits(chunks), bits(a.returns))


def test_wide_models_fall_back_to_torch_with_a_warning():
    from stressvae import ScenarioGenerator

    m = decoder_model(16, 1, 8, (300,))
    with pytest.raises(NativeInputError, match="takes latent and hidden widths up to 256"):
        native.CudaDecoder(m.export_decoder())
    with pytest.warns(UserWarning, match="cannot take this model"):
        g = ScenarioGenerator(m, device="cuda")
    parity(
        g.sample(500, seed=1).returns,
        ScenarioGenerator(m, device="cpu").sample(500, seed=1).returns.astype(np.float64),
    )


# ------------------------------------------------------------------ rollout
def gru_model(assets, latent, hidden, seed=0, factors=None):
    """A recurrent-decoder model with fresh random weights (std 1 / sqrt(fan-in));
    factors None: the model's default."""
    from stressvae import ScenarioVAE
    from stressvae.data import Scaler

    torch.manual_seed(seed)
    m = ScenarioVAE(
        window=16, n_assets=assets, latent_dim=latent, decoder="gru", rnn_hidden=hidden,
        factors=factors,
    )  # fmt: skip
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for p in m.decoder.parameters():
            p.copy_(
                torch.as_tensor(
                    rng.normal(0, 1 / np.sqrt(p.shape[-1]), p.shape), dtype=torch.float32
                )
            )
    m.set_data_stats(Scaler(rng.normal(0, 1e-3, assets), rng.uniform(0.005, 0.03, assets)), None)
    return m.eval()


def latent_args(rng, source, n, latent):
    """(args, kwargs) of a latent draw for NativeRollout.sample, numpy."""
    if source == "prior":
        return (rng.normal(0, 0.3, latent).astype(np.float32), np.zeros(latent, np.float32), n), {}
    if source == "rows":
        mu = rng.normal(size=(n, latent)).astype(np.float32)
        return (mu, rng.uniform(-2, 0.5, (n, latent)).astype(np.float32)), {}
    mu = rng.normal(size=(5, latent)).astype(np.float32)
    lv = rng.uniform(-2, 0.5, (5, latent)).astype(np.float32)
    return (mu, lv), {"index": rng.integers(0, 5, n).astype(np.int64)}


def on_gpu(args, kw):
    g_args = [torch.from_numpy(a).cuda() if isinstance(a, np.ndarray) else a for a in args]
    return g_args, {k: torch.from_numpy(v).cuda() for k, v in kw.items()}


EPILOGUES = [
    {},
    {"demean": True},
    {"cumulative": True},
    {"shift": "rand"},
    {"demean": True, "cumulative": True, "shift": "rand"},
]


@pytest.mark.parametrize("source", ["prior", "table", "rows"])
@pytest.mark.parametrize("phi", [1.0, 0.97])
@pytest.mark.parametrize("assets", [1, 2])
@pytest.mark.parametrize("hidden", [50, 64])
def test_cuda_rollout_matches_the_cpu_rollout(hidden, assets, phi, source, rng):
    m = gru_model(assets, 7, hidden, seed=hidden + assets)
    ex = m.export_decoder()
    cpu, gpu = native.NativeRollout(ex), native.CudaRollout(ex)
    n, horizon, off = 1500, 252, 2**32 - 700  # scenario indices cross a 32-bit word
    args, kw = latent_args(rng, source, n, 7)
    g_args, g_kw = on_gpu(args, kw)
    for epi in EPILOGUES:
        epi = dict(epi)
        if "shift" in epi:
            epi["shift"] = rng.normal(0, 1e-3, assets).astype(np.float32)
        common = dict(horizon=horizon, seed=21, offset=off, scale=0.8, phi=phi, **epi)
        want = cpu.sample(*args, **kw, **common)
        got = gpu.sample(*g_args, **g_kw, **common)
        assert got.is_cuda and got.shape == (n, horizon, assets)
        parity(got.cpu().numpy(), want)


@pytest.mark.parametrize("noise", [True, False])
@pytest.mark.parametrize("hidden", [50, 64, 128])
def test_cuda_rollout_of_given_z_matches_cpu(hidden, noise, rng):
    ex = gru_model(2, 7, hidden, seed=hidden).export_decoder()
    try:
        gpu = native.CudaRollout(ex)
    except NativeInputError as err:  # hidden 128 needs ~205 KiB: H100 yes, A100 no
        if "shared memory" not in str(err):
            raise
        pytest.skip(str(err))
    cpu = native.NativeRollout(ex)
    z = rng.normal(size=(999, 7)).astype(np.float32)
    for phi in (1.0, 0.97):
        want = cpu.rollout(z, 100, seed=4, offset=17, noise=noise, phi=phi)
        got = gpu.rollout(torch.from_numpy(z).cuda(), 100, seed=4, offset=17, noise=noise, phi=phi)
        parity(got.cpu().numpy(), want)


@pytest.mark.parametrize("phi", [1.0, 0.97])
def test_cuda_rollout_path_depends_only_on_seed_and_index(phi, rng):
    """Any chunking, any offset: path i is the same numbers (bitwise)."""
    ex = gru_model(2, 7, 64).export_decoder()
    gpu = native.CudaRollout(ex)
    n, horizon = 6000, 60
    (mu, lv), kw = latent_args(rng, "table", n, 7)
    g_mu, g_lv = (torch.from_numpy(a).cuda() for a in (mu, lv))
    index = torch.from_numpy(kw["index"]).cuda()
    common = dict(horizon=horizon, seed=8, phi=phi, scale=0.9)
    full = gpu.sample(g_mu, g_lv, index=index, **common)
    cuts = [0, 1, 33, 1000, 1017, 4096, n]
    parts = [
        gpu.sample(g_mu, g_lv, index=index[a:b].contiguous(), offset=a, **common)
        for a, b in itertools.pairwise(cuts)
    ]
    assert np.array_equal(bits(torch.cat(parts)), bits(full))
    # into a reused output buffer, prior draws, and a longer horizon extends a shorter one
    out = torch.empty((1000, horizon, 2), device="cuda")
    prior = gpu.sample(g_mu[0], g_lv[0], n, **common)
    for s in range(0, n, 1000):
        gpu.sample(g_mu[0], g_lv[0], 1000, offset=s, out=out, **common)
        assert np.array_equal(bits(out), bits(prior[s : s + 1000]))
    longer = gpu.sample(g_mu[0], g_lv[0], n, **{**common, "horizon": 2 * horizon})
    assert np.array_equal(bits(longer[:, :horizon]), bits(prior))
    # the same paths from the CPU for a slice far from the start
    cpu = native.NativeRollout(ex)
    want = cpu.sample(mu[0], lv[0], 500, offset=4000, **common)
    parity(prior[4000:4500].cpu().numpy(), want)


def test_cuda_rollout_runs_on_the_callers_stream(rng):
    ex = gru_model(1, 7, 64).export_decoder()
    gpu = native.CudaRollout(ex)
    z = torch.from_numpy(rng.normal(size=(20_000, 7)).astype(np.float32)).cuda()
    ref = gpu.rollout(z, 64, seed=2)
    torch.cuda.synchronize()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        y = gpu.rollout(z, 64, seed=2)
        y.mul_(1.0)  # queued behind the rollout on the same stream
    stream.synchronize()
    assert np.array_equal(bits(y), bits(ref))


def test_cuda_rollout_self_check_and_counts(rng):
    ex = gru_model(1, 7, 50).export_decoder()
    before = native.native_info()["counts"]["rollout_cuda_rows"]
    gpu = native.CudaRollout(ex)
    z = torch.from_numpy(rng.normal(size=(10, 7)).astype(np.float32)).cuda()
    gpu.rollout(z, 5, seed=0)
    assert ("rollout", gpu.index, 7, 50, 1, 0) in native.selfcheck.passed()
    assert native.native_info()["counts"]["rollout_cuda_rows"] - before >= 10


def test_cuda_rollout_refuses_what_it_cannot_take(rng):
    with pytest.raises(NativeInputError, match="hidden <= 128"):
        native.CudaRollout(gru_model(1, 7, 129).export_decoder())
    gpu = native.CudaRollout(gru_model(1, 7, 64).export_decoder())
    z = rng.normal(size=(4, 7)).astype(np.float32)
    with pytest.raises(NativeInputError, match="must be a tensor on cuda"):
        gpu.rollout(z, 5, seed=0)
    with pytest.raises(NativeInputError, match="phi must be in"):
        gpu.rollout(torch.from_numpy(z).cuda(), 5, seed=0, phi=1.5)
    with pytest.raises(NativeInputError, match="out must be a float32 tensor"):
        gpu.rollout(
            torch.from_numpy(z).cuda(), 5, seed=0, out=torch.empty((4, 6, 1), device="cuda")
        )
    assert gpu.rollout(torch.zeros((0, 7), device="cuda"), 5, seed=0).shape == (0, 5, 1)


def test_cuda_generator_rollout_matches_cpu_and_counts():
    import warnings

    from stressvae import ScenarioGenerator

    m = gru_model(2, 7, 64, seed=3)
    before = native.native_info()["counts"]["rollout_cuda_rows"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the fused kernel takes this model: no fallback warning
        g_gpu = ScenarioGenerator(m, device="cuda")
    assert isinstance(g_gpu.cuda_decoder, native.CudaRollout)
    g_cpu = ScenarioGenerator(m, device="cpu")
    for kw in ({}, {"regime_halflife": 20.0, "drift": "zero"}, {"drift": "historical"}):
        a = g_gpu.sample(5000, seed=4, chunk_size=1700, horizon=120, **kw)
        b = g_cpu.sample(5000, seed=4, horizon=120, **kw)
        parity(a.returns, b.returns.astype(np.float64))
    assert native.native_info()["counts"]["rollout_cuda_rows"] - before >= 15_000


# ------------------------------------------------------------------ the factor model
@pytest.mark.parametrize(("assets", "k"), [(2, 1), (5, 1), (5, 3), (2, 2)])
@pytest.mark.parametrize("noise", [True, False])
def test_cuda_factor_decoder_matches_the_cpu(assets, k, noise, rng):
    """ScenarioVAE(factors=k): the CUDA decode (f drawn into shared memory,
    stream TAG_FACTOR) against the CPU decode, given and drawn z, epilogues."""
    m = decoder_model(64, assets, 16, (128, 96), "gelu", seed=k, factors=k)
    ex = m.export_decoder()
    cpu, gpu = native.NativeDecoder(ex), native.CudaDecoder(ex)
    assert gpu.factors == k
    z = rng.normal(size=(1000, 16)).astype(np.float32)
    off = 2**32 - 7
    got = gpu.decode(torch.from_numpy(z).cuda(), seed=3, offset=off, noise=noise)
    parity(got.cpu().numpy(), cpu.decode(z, seed=3, offset=off, noise=noise))
    mu = rng.normal(size=(4, 16)).astype(np.float32)
    lv = rng.uniform(-2, 0, (4, 16)).astype(np.float32)
    idx = rng.integers(0, 4, 777).astype(np.int64)
    epi = dict(seed=5, offset=11, scale=0.7, noise=noise, demean=True, cumulative=True)
    g_mu, g_lv, g_idx = (torch.from_numpy(a).cuda() for a in (mu, lv, idx))
    got = gpu.sample(g_mu, g_lv, index=g_idx, **epi)
    parity(got.cpu().numpy(), cpu.sample(mu, lv, index=idx, **epi))
    assert ("decode", gpu.index, True) in native.selfcheck.passed()


def test_cuda_factor_decoder_chunks_and_limits(rng):
    m = decoder_model(32, 5, 8, (64,), factors=4)
    gpu = native.CudaDecoder(m.export_decoder())
    z = torch.from_numpy(rng.normal(size=(3000, 8)).astype(np.float32)).cuda()
    full = gpu.decode(z, seed=1)
    parts = [
        gpu.decode(z[a:b], seed=1, offset=a) for a, b in itertools.pairwise([0, 1, 63, 65, 3000])
    ]
    assert np.array_equal(bits(torch.cat(parts)), bits(full))
    # f of 64 scenarios x 252 days x 4 factors does not fit next to 2 x 256-wide buffers
    big = decoder_model(252, 5, 8, (256,), factors=4)
    with pytest.raises(NativeInputError, match="shared memory"):
        native.CudaDecoder(big.export_decoder())


@pytest.mark.parametrize(("assets", "k", "phi"), [(2, 1, 1.0), (5, 3, 0.97), (5, 1, 1.0)])
def test_cuda_factor_rollout_matches_the_cpu(assets, k, phi, rng):
    m = gru_model(assets, 7, 64, seed=k, factors=k)
    ex = m.export_decoder()
    cpu, gpu = native.NativeRollout(ex), native.CudaRollout(ex)
    assert gpu.factors == k
    n, horizon, off = 1500, 120, 2**32 - 700
    args, kw = latent_args(rng, "table", n, 7)
    g_args, g_kw = on_gpu(args, kw)
    for epi in ({}, {"demean": True, "cumulative": True}, {"noise": False}):
        common = dict(horizon=horizon, seed=21, offset=off, scale=0.8, phi=phi, **epi)
        parity(
            gpu.sample(*g_args, **g_kw, **common).cpu().numpy(), cpu.sample(*args, **kw, **common)
        )
    full = gpu.sample(*g_args, **g_kw, horizon=horizon, seed=2, phi=phi)
    part = gpu.sample(
        g_args[0], g_args[1], index=g_kw["index"][700:].contiguous(), horizon=horizon, seed=2,
        phi=phi, offset=700,
    )  # fmt: skip
    assert np.array_equal(bits(part), bits(full[700:]))
    assert ("rollout", gpu.index, 7, 64, assets, k) in native.selfcheck.passed()

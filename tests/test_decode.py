"""The native fused decoder against its torch twin (the model's own decoder
fed the native noise) on fresh random weights: every activation, both
likelihoods, a range of widths, every ISA level; and bit-stability across
chunks and threads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import bits

from stressvae import NativeInputError, ScenarioVAE, _core, native
from stressvae.data import Scaler
from stressvae.model import ACTIVATIONS

ISAS = [
    i
    for i in ("baseline", "avx2", "avx512")
    if native.ISA_LEVELS.index(i) <= native.ISA_LEVELS.index(_core.best_isa())
]


def model(
    window, assets, latent, hidden, activation="silu", likelihood="gaussian", seed=0, factors=None
):
    """Fresh random weights; ``factors`` None: the model's default (0 for one
    asset, min(4, assets - 1) otherwise)."""
    torch.manual_seed(seed)
    m = ScenarioVAE(
        window=window,
        n_assets=assets,
        latent_dim=latent,
        hidden_dims=hidden,
        activation=activation,
        likelihood=likelihood,
        factors=factors,
    )
    rng = np.random.default_rng(seed)
    with torch.no_grad():  # fresh random weights, larger than the init so activations bend
        for p in m.decoder.parameters():
            p.copy_(
                torch.as_tensor(
                    rng.normal(0, 1.5 / np.sqrt(p.shape[-1]), p.shape), dtype=torch.float32
                )
            )
    m.set_data_stats(Scaler(rng.normal(0, 1e-3, assets), rng.uniform(0.005, 0.03, assets)), None)
    return m.eval()


def torch_twin(
    m: ScenarioVAE, z: np.ndarray, seed: int, offset: int, noise: bool = True
) -> np.ndarray:
    """The torch decoder, the native noise (e and, for a factor model, f:
    native.decode_noise, [n, window, assets + factors]) drawn by the model's
    own observation model in float64, the same unscaling."""
    with torch.no_grad():
        mean, ls, *loadings = m.decode_scaled(torch.from_numpy(z))
    x = mean.double()
    if ls is not None and noise:
        eps = native.decode_noise(
            len(z), m.window, m.n_assets, seed=seed, offset=offset, factors=m.factors
        )
        x = m.decoder.obs.draw(
            x, ls.double(), torch.from_numpy(eps).double(), *(b.double() for b in loadings)
        )
    return (x * m.scaler_std.double() + m.scaler_mean.double()).numpy()


def assert_parity(got: np.ndarray, ref: np.ndarray) -> None:
    """float32 native vs the torch reference: rtol 1e-5 + atol 1e-5 * max|ref|."""
    atol = 1e-5 * np.abs(ref).max()
    err = np.abs(got - ref)
    bad = err > 1e-5 * np.abs(ref) + atol
    assert not bad.any(), (
        f"{bad.sum()} of {bad.size} off; max err {err.max():.3g} (atol {atol:.3g})"
    )


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("likelihood", ["gaussian", "mse"])
def test_parity_every_activation(activation, likelihood, rng):
    m = model(64, 2, 16, (256, 256), activation, likelihood)
    dec = native.NativeDecoder(m.export_decoder())
    z = rng.normal(size=(777, 16)).astype(np.float32)
    got = dec.decode(z, seed=11, offset=2**32 - 100)
    assert got.shape == (777, 64, 2) and got.dtype == np.float32
    assert_parity(got, torch_twin(m, z, 11, 2**32 - 100))


@pytest.mark.parametrize(
    ("window", "assets", "latent", "hidden"),
    [
        (5, 1, 1, (8,)),
        (64, 1, 3, (24, 40)),
        (252, 1, 16, (256, 256)),
        (17, 3, 33, (300,)),
        (30, 2, 7, (5, 130, 17)),
    ],
)
@pytest.mark.parametrize("isa", ISAS)
def test_parity_across_widths_and_isa_levels(window, assets, latent, hidden, isa, rng):
    m = model(window, assets, latent, hidden, "gelu" if latent % 2 else "tanh", seed=latent)
    dec = native.NativeDecoder(m.export_decoder(), isa=isa)
    assert dec.isa == isa
    z = rng.normal(size=(101, latent)).astype(np.float32)
    assert_parity(dec.decode(z, seed=3), torch_twin(m, z, 3, 0))


def test_noise_off_and_mse_give_the_mean(rng):
    m = model(32, 1, 8, (64,))
    dec = native.NativeDecoder(m.export_decoder())
    z = rng.normal(size=(50, 8)).astype(np.float32)
    assert_parity(dec.decode(z, seed=1, noise=False), torch_twin(m, z, 1, 0, noise=False))
    m2 = model(32, 1, 8, (64,), likelihood="mse")
    d2 = native.NativeDecoder(m2.export_decoder())
    assert np.array_equal(d2.decode(z, seed=1), d2.decode(z, seed=2))  # no noise to change


def test_results_do_not_depend_on_chunks_or_threads(rng):
    m = model(64, 1, 16, (256, 256))
    dec1 = native.NativeDecoder(m.export_decoder(), num_threads=1)
    dec2 = native.NativeDecoder(m.export_decoder(), num_threads=2)
    z = rng.normal(size=(5000, 16)).astype(np.float32)
    full = dec2.decode(z, seed=5)
    assert np.array_equal(bits(full), bits(dec1.decode(z, seed=5)))
    for chunk in (1, 7, 1000):
        parts = [
            dec2.decode(z[s : min(s + chunk, 2000)], seed=5, offset=s)
            for s in range(0, 2000, chunk)
        ]
        assert np.array_equal(bits(np.concatenate(parts)), bits(full[:2000])), chunk


def test_fused_sampling_equals_sample_then_decode(rng):
    """z drawn inside the kernel is the z sample_latent gives: same bits out."""
    m = model(64, 1, 16, (128, 128))
    dec = native.NativeDecoder(m.export_decoder())
    mu = rng.normal(size=(5, 16)).astype(np.float32)
    lv = rng.uniform(-3, 0, (5, 16)).astype(np.float32)
    idx = rng.integers(0, 5, 3000).astype(np.int64)
    fused = dec.sample(mu, lv, seed=9, index=idx, offset=77, scale=0.6)
    z = native.sample_latent(mu, lv, seed=9, index=idx, offset=77, scale=0.6)
    assert np.array_equal(bits(fused), bits(dec.decode(z, seed=9, offset=77)))
    prior = dec.sample(np.zeros(16, np.float32), np.zeros(16, np.float32), 1000, seed=4)
    z0 = native.sample_latent(np.zeros(16, np.float32), np.zeros(16, np.float32), 1000, seed=4)
    assert np.array_equal(bits(prior), bits(dec.decode(z0, seed=4)))


def test_epilogue_options(rng):
    m = model(40, 2, 8, (64,))
    dec = native.NativeDecoder(m.export_decoder())
    z = rng.normal(size=(300, 8)).astype(np.float32)
    base = dec.decode(z, seed=2)
    shifted = dec.decode(z, seed=2, shift=np.array([0.01, -0.02], np.float32))
    np.testing.assert_allclose(
        shifted - base, np.broadcast_to([0.01, -0.02], base.shape), atol=1e-6
    )
    zero = dec.decode(z, seed=2, demean=True)
    assert np.abs(zero.astype(np.float64).mean(axis=1)).max() < 1e-7 * np.abs(base).max()
    np.testing.assert_allclose(
        zero, base - base.astype(np.float64).mean(axis=1, keepdims=True), atol=1e-7
    )
    cum = dec.decode(z, seed=2, cumulative=True)
    want = np.cumsum(base.astype(np.float64), axis=1).astype(np.float32)
    assert np.array_equal(cum, want)  # accumulated in float64, in order


def test_native_path_counts(rng):
    m = model(16, 1, 4, (16,))
    dec = native.NativeDecoder(m.export_decoder())
    before = native.native_info()["counts"]
    dec.decode(rng.normal(size=(10, 4)).astype(np.float32), seed=0)
    dec.sample(np.zeros(4, np.float32), np.zeros(4, np.float32), 25, seed=0)
    after = native.native_info()["counts"]
    assert after["decode_cpu_calls"] == before["decode_cpu_calls"] + 1
    assert after["sample_decode_cpu_rows"] == before["sample_decode_cpu_rows"] + 25


def test_bad_weights_and_inputs_are_refused(rng):
    m = model(16, 1, 4, (16,))
    ex = m.export_decoder()
    w0, b0, a0 = ex.layers[0]
    cases = [
        ([(w0.astype(np.float64), b0, a0), ex.layers[1]], "layer 0 W must have dtype float32"),
        ([(np.asfortranarray(w0), b0, a0), ex.layers[1]], "layer 0 W must be C-contiguous"),
        ([(w0[:3], b0, a0), ex.layers[1]], r"layer 0 W must be \[4, n\]"),
        ([(w0, b0[:5], a0), ex.layers[1]], r"layer 0 b must be \[16\]"),
        ([(w0, b0, "swish"), ex.layers[1]], "layer 0 activation must be one of"),
        (
            [(w0, b0, a0), (ex.layers[1][0], ex.layers[1][1], "relu")],
            "the last layer must be linear",
        ),
        (
            [(np.where(w0 > 0, np.nan, w0).astype(np.float32), b0, a0), ex.layers[1]],
            "layer 0 has NaN or inf",
        ),
        ([(w0, b0, None)], "the last layer must give 32 outputs"),
    ]
    import dataclasses

    for layers, match in cases:
        with pytest.raises(NativeInputError, match=match):
            native.NativeDecoder(dataclasses.replace(ex, layers=layers))
    dec = native.NativeDecoder(ex)
    with pytest.raises(NativeInputError, match=r"z must be \[n, 4\]"):
        dec.decode(np.zeros((3, 5), np.float32), seed=0)
    with pytest.raises(NativeInputError, match="z contains NaN or inf"):
        dec.decode(np.full((3, 4), np.nan, np.float32), seed=0)
    with pytest.raises(NativeInputError, match=r"out must have shape \(3, 16, 1\)"):
        dec.decode(np.zeros((3, 4), np.float32), seed=0, out=np.zeros((3, 16, 2), np.float32))
    with pytest.raises(NativeInputError, match="mu must have 4 columns"):
        dec.sample(np.zeros(5, np.float32), np.zeros(5, np.float32), 3, seed=0)
    with pytest.raises(NativeInputError, match="shift must be 1 finite numbers"):
        dec.decode(np.zeros((3, 4), np.float32), seed=0, shift=[np.inf])


# ------------------------------------------------------------ the factor model
def factor_weights(rng, window, assets, k, latent=6, hidden=(48,), loading_bias=0.0):
    """DecoderWeights-like float32 arrays of a factor model (k > 0): the last
    layer gives (2 + k) blocks of window * assets (means, raw log-scales,
    loadings 1..k). ``loading_bias`` pushes loadings past the clamp."""
    import types

    sizes = [latent, *hidden, (2 + k) * window * assets]
    layers = []
    for i in range(len(sizes) - 1):
        w = rng.normal(0, 1.5 / np.sqrt(sizes[i]), (sizes[i], sizes[i + 1])).astype(np.float32)
        b = rng.normal(0, 0.3, sizes[i + 1]).astype(np.float32)
        layers.append((w, b, "silu" if i < len(sizes) - 2 else None))
    layers[-1][1][2 * window * assets :] += np.float32(loading_bias)
    return types.SimpleNamespace(
        layers=layers, likelihood="gaussian", latent_dim=latent, window=window, n_assets=assets,
        scaler_mean=rng.normal(0, 1e-3, assets).astype(np.float32),
        scaler_std=rng.uniform(0.005, 0.03, assets).astype(np.float32),
        log_scale_min=-7.0, log_scale_max=4.0, factors=k,
    )  # fmt: skip


def factor_twin(w, z, seed, offset, noise=True, factors_on=True):
    """The factor model in float64 torch from the same weights, fed the
    native e and f (native.decode_noise, the torch reference's [n, T, A + k]
    layout): x = mean + sum_j B_j f_j + exp(ls) e, unscaled."""
    n, T, A, k = len(z), w.window, w.n_assets, w.factors
    h = torch.from_numpy(z).double()
    for wi, bi, act in w.layers:
        h = h @ torch.from_numpy(wi).double() + torch.from_numpy(bi).double()
        if act is not None:
            h = torch.nn.functional.silu(h)
    o = h.reshape(n, 2 + k, T, A)
    mean, ls = o[:, 0], o[:, 1].clamp(w.log_scale_min, w.log_scale_max)
    loadings = o[:, 2:].clamp(-native.LOADING_MAX, native.LOADING_MAX).permute(0, 2, 3, 1)
    x = mean
    if noise:
        eps = torch.from_numpy(native.decode_noise(n, T, A, seed=seed, offset=offset, factors=k))
        e, f = eps[..., :A].double(), eps[..., A:].double()
        x = mean + torch.einsum("ntak,ntk->nta", loadings, f) * factors_on + ls.exp() * e
    return (x * torch.from_numpy(w.scaler_std).double() + torch.from_numpy(w.scaler_mean)).numpy()


FMA_ISAS = [i for i in ISAS if i != "baseline"]


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize(("assets", "k"), [(2, 1), (5, 1), (5, 3), (3, 3)])
def test_factor_model_matches_torch(assets, k, isa, rng):
    w = factor_weights(rng, 21, assets, k)
    dec = native.NativeDecoder(w, isa=isa)
    assert dec.factors == k and dec.isa == isa
    z = rng.normal(size=(203, w.latent_dim)).astype(np.float32)
    offset = int(rng.integers(0, 2**40))
    got = dec.decode(z, seed=17, offset=offset)
    ref = factor_twin(w, z, 17, offset)
    assert_parity(got, ref)
    # the factors matter: without them the paths differ far beyond tolerance
    plain = factor_twin(w, z, 17, offset, factors_on=False)
    assert np.abs(got - plain).mean() > 1e-3 * np.abs(ref).max()
    assert_parity(
        dec.decode(z, seed=17, offset=offset, noise=False), factor_twin(w, z, 0, 0, False)
    )


def test_factor_draw_is_common_across_assets(rng):
    """One factor with equal loadings, no idiosyncratic noise: every asset of
    a day moves by the same B * f, f the native TAG_FACTOR normal t*k + j."""
    T, A = 9, 4
    w = factor_weights(rng, T, A, 1)
    wl, bl, _ = w.layers[-1]
    wl[:] = 0.0
    bl[:] = 0.0
    bl[T * A : 2 * T * A] = -7.0  # log-scale at its floor: e barely counts
    bl[2 * T * A :] = 2.0  # loading 2 everywhere
    w.scaler_std[:] = 1.0
    w.scaler_mean[:] = 0.0
    y = native.NativeDecoder(w).decode(np.zeros((50, w.latent_dim), np.float32), seed=5, offset=9)
    f = native.normals(50, T, seed=5, offset=9, tag=native.TAG_FACTOR)
    e = native.normals(50, T * A, seed=5, offset=9, tag=native.TAG_OBSERVATION)
    want = 2.0 * f[:, :, None] + np.exp(np.float32(-7.0)) * e.reshape(50, T, A)
    np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-6)


def test_factor_loadings_are_clamped(rng):
    w = factor_weights(rng, 8, 3, 2, loading_bias=40.0)  # raw loadings far past +-10
    dec = native.NativeDecoder(w)
    z = rng.normal(size=(64, w.latent_dim)).astype(np.float32)
    ref = factor_twin(w, z, 2, 0)
    assert_parity(dec.decode(z, seed=2), ref)
    assert np.abs(ref).max() < 0.03 * (2 * 10 * 5.77 + 60)  # the clamp held the scale down


def test_factor_results_are_bit_stable(rng):
    """Chunks, offsets, threads and the FMA ISA levels give the same bits."""
    w = factor_weights(rng, 32, 5, 3, hidden=(64, 40))
    dec2 = native.NativeDecoder(w, num_threads=2)
    z = rng.normal(size=(900, w.latent_dim)).astype(np.float32)
    full = dec2.decode(z, seed=8, offset=1000)
    assert np.array_equal(
        bits(full), bits(native.NativeDecoder(w, num_threads=1).decode(z, seed=8, offset=1000))
    )
    for chunk in (1, 7, 333):
        parts = [
            dec2.decode(z[s : s + chunk], seed=8, offset=1000 + s) for s in range(0, 900, chunk)
        ]
        assert np.array_equal(bits(np.concatenate(parts)), bits(full)), chunk
    for isa in FMA_ISAS:
        got = native.NativeDecoder(w, isa=isa).decode(z, seed=8, offset=1000)
        assert np.array_equal(bits(got), bits(full)), isa
    # fused sampling draws sample_latent's z
    mu = rng.normal(size=(3, w.latent_dim)).astype(np.float32)
    lv = rng.uniform(-2, 0, (3, w.latent_dim)).astype(np.float32)
    idx = rng.integers(0, 3, 500).astype(np.int64)
    fused = dec2.sample(mu, lv, seed=4, index=idx, offset=3, scale=0.8)
    zz = native.sample_latent(mu, lv, seed=4, index=idx, offset=3, scale=0.8)
    assert np.array_equal(bits(fused), bits(dec2.decode(zz, seed=4, offset=3)))


@pytest.mark.parametrize(("assets", "k"), [(2, 1), (5, 1), (5, 3), (2, 2)])
def test_factor_model_matches_the_torch_model(assets, k, rng):
    """ScenarioVAE(factors=k): the native decode against model.decoder(z)
    drawn by FactorGaussian.draw with the native e and f."""
    m = model(20, assets, 8, (64, 48), "gelu", seed=assets * 10 + k, factors=k)
    ex = m.export_decoder()
    assert ex.factors == k
    dec = native.NativeDecoder(ex)
    z = rng.normal(size=(150, 8)).astype(np.float32)
    assert_parity(dec.decode(z, seed=6, offset=77), torch_twin(m, z, 6, 77))
    assert_parity(dec.decode(z, seed=6, noise=False), torch_twin(m, z, 6, 0, noise=False))


def test_factors_zero_is_the_diagonal_model(rng):
    """A weights object without the factor fields (saved before them) and one
    with factors=0 give the same bits."""
    import types

    m = model(16, 3, 4, (32,), factors=0)
    ex = m.export_decoder()
    old = types.SimpleNamespace(
        **{k: v for k, v in vars(ex).items() if k not in ("factors", "loading_max")}
    )
    z = rng.normal(size=(70, 4)).astype(np.float32)
    a = native.NativeDecoder(ex).decode(z, seed=1)
    assert np.array_equal(bits(a), bits(native.NativeDecoder(old).decode(z, seed=1)))
    assert_parity(a, torch_twin(m, z, 1, 0))


def test_factor_weights_are_checked(rng):
    import types

    w = factor_weights(rng, 8, 3, 2)
    for change, match in [
        (dict(factors=4), r"weights.factors must be .*\[0, 3\]"),
        (dict(factors=-1), "weights.factors"),
        (dict(factors=1), "the last layer must give 72 outputs .*1 factors"),
        (dict(likelihood="mse"), "needs likelihood 'gaussian'"),
        (dict(loading_max=float("nan")), "loading_max"),
    ]:
        with pytest.raises(NativeInputError, match=match):
            native.NativeDecoder(types.SimpleNamespace(**{**vars(w), **change}))

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


def model(window, assets, latent, hidden, activation="silu", likelihood="gaussian", seed=0):
    torch.manual_seed(seed)
    m = ScenarioVAE(
        window=window,
        n_assets=assets,
        latent_dim=latent,
        hidden_dims=hidden,
        activation=activation,
        likelihood=likelihood,
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
    """The torch decoder, the native observation noise, the same unscaling."""
    with torch.no_grad():
        mean, ls = m.decode_scaled(torch.from_numpy(z))
    n = len(z)
    x = mean.reshape(n, -1).double().numpy()
    if ls is not None and noise:
        eps = native.normals(n, x.shape[1], seed=seed, offset=offset, tag=native.TAG_OBSERVATION)
        x = x + np.exp(ls.reshape(n, -1).double().numpy()) * eps
    x = x.reshape(n, m.window, m.n_assets)
    return x * m.scaler_std.double().numpy() + m.scaler_mean.double().numpy()


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
    assert np.abs(zero.astype(np.float64).mean(axis=1)).max() < 1e-8
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

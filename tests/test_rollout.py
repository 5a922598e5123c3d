"""The recurrent (GRU) decoder: the torch model, its native fused rollout
(against the torch reference fed the same noise), and its generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import bits

from stressvae import ScenarioGenerator, ScenarioVAE, _core, native
from stressvae.data import Scaler


def gru_model(rng, latent=7, hidden=50, assets=1, window=16, gain=2.0, factors=None) -> ScenarioVAE:
    """Fresh random weights, scaled up so the gates and the feedback matter;
    ``factors`` None: the model's default (0 for one asset, else min(4, assets - 1))."""
    torch.manual_seed(int(rng.integers(1 << 31)))
    m = ScenarioVAE(
        window=window, n_assets=assets, latent_dim=latent, decoder="gru", rnn_hidden=hidden,
        factors=factors,
    ).eval()  # fmt: skip
    with torch.no_grad():
        for p in m.decoder.parameters():
            p.mul_(gain)
    scaler = Scaler(rng.normal(3e-4, 2e-4, assets), rng.uniform(0.005, 0.03, assets))
    m.set_data_stats(scaler, None)
    return m


def reference(model, z, horizon, seed, offset=0, phi=1.0):
    """model.rollout_scaled fed the native noise (e, and f of a factor model:
    [n, horizon, assets + factors]), unscaled in float64."""
    a, lat = model.n_assets, model.latent_dim
    eps, eta = native.rollout_noise(
        len(z), horizon, a, lat, seed=seed, offset=offset, drift=phi < 1, factors=model.factors
    )
    with torch.no_grad():
        x = model.rollout_scaled(
            torch.from_numpy(z), horizon, torch.from_numpy(eps), phi=phi,
            eta=None if eta is None else torch.from_numpy(eta),
        )  # fmt: skip
    return (x.double() * model.scaler_std.double() + model.scaler_mean.double()).numpy()


def assert_close(y, ref):
    """DESIGN's float32 contract: rtol 1e-5 plus atol 1e-5 * max|ref|."""
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


_LEVELS = ("baseline", "avx2", "avx512")
ISAS = list(_LEVELS[: _LEVELS.index(_core.best_isa()) + 1])


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize(
    "latent,hidden,assets,phi",
    [(7, 50, 1, 1.0), (16, 64, 1, 1.0), (3, 100, 3, 0.95), (16, 64, 2, 0.99)],
)
def test_native_rollout_matches_torch_over_252_days(rng, isa, latent, hidden, assets, phi):
    m = gru_model(rng, latent, hidden, assets)
    nat = native.NativeRollout(m.export_decoder(), isa=isa)
    n, horizon = 150, 252
    z = rng.standard_normal((n, latent)).astype(np.float32)
    seed = int(rng.integers(1 << 62))
    y = nat.rollout(z, horizon, seed=seed, offset=5, phi=phi)
    ref = reference(m, z, horizon, seed, offset=5, phi=phi)
    assert y.shape == (n, horizon, assets) and y.dtype == np.float32
    assert np.abs(ref).std() > 1e-3  # a live path, not a constant
    assert_close(y, ref)
    # the recurrence amplifies rounding only mildly: the error of the last
    # days stays within 10x the first days' (measured: about 1-2x)
    err = np.abs(y - ref).max(axis=(0, 2))
    assert err[-20:].max() <= 10 * max(err[:20].max(), 1e-9)


def test_fused_sampling_draws_the_samplers_z(rng):
    m = gru_model(rng)
    nat = native.NativeRollout(m.export_decoder())
    mu = rng.standard_normal((4, 7)).astype(np.float32)
    lv = rng.uniform(-2, 0.5, (4, 7)).astype(np.float32)
    idx = rng.integers(0, 4, 300).astype(np.int64)
    kw = dict(seed=11, offset=40, scale=0.7)
    y = nat.sample(mu, lv, index=idx, horizon=30, **kw)
    z = native.sample_latent(mu, lv, index=idx, **kw)
    assert np.array_equal(bits(y), bits(nat.rollout(z, 30, seed=11, offset=40)))
    assert_close(y, reference(m, z, 30, 11, 40))


def test_path_depends_only_on_seed_and_index(rng):
    m = gru_model(rng, hidden=64)
    w = m.export_decoder()
    one, two = native.NativeRollout(w, num_threads=1), native.NativeRollout(w, num_threads=2)
    zero = np.zeros(7, np.float32)
    full = two.sample(zero, zero, 1000, horizon=60, seed=5)
    assert np.array_equal(bits(full), bits(one.sample(zero, zero, 1000, horizon=60, seed=5)))
    # any split into chunks (offset = first scenario index) gives the same paths
    part = one.sample(zero, zero, 77, horizon=60, seed=5, offset=500)
    assert np.array_equal(bits(part), bits(full[500:577]))
    # a longer horizon extends a shorter one day for day
    longer = two.sample(zero, zero, 1000, horizon=200, seed=5)
    assert np.array_equal(bits(longer[:, :60]), bits(full))
    # another seed, other paths
    assert not np.allclose(two.sample(zero, zero, 1000, horizon=60, seed=6), full)


def test_epilogue_options(rng):
    m = gru_model(rng, assets=2)
    nat = native.NativeRollout(m.export_decoder())
    z = rng.standard_normal((64, 7)).astype(np.float32)
    base = nat.rollout(z, 40, seed=3).astype(np.float64)
    shift = np.array([1e-3, -2e-3], np.float32)
    np.testing.assert_allclose(nat.rollout(z, 40, seed=3, shift=shift), base + shift, atol=1e-7)
    np.testing.assert_allclose(
        nat.rollout(z, 40, seed=3, cumulative=True), np.cumsum(base, axis=1), atol=2e-6
    )
    dm = nat.rollout(z, 40, seed=3, demean=True)
    np.testing.assert_allclose(dm, base - base.mean(axis=1, keepdims=True), atol=1e-7)
    np.testing.assert_allclose(dm.astype(np.float64).mean(axis=1), 0.0, atol=1e-7)
    quiet = nat.rollout(z, 40, seed=3, noise=False)
    assert_close(quiet, reference_quiet(m, z, 40))


def reference_quiet(model, z, horizon):
    eps = torch.zeros(len(z), horizon, model.n_assets + model.factors)
    with torch.no_grad():
        x = model.rollout_scaled(torch.from_numpy(z), horizon, eps)
    return (x.double() * model.scaler_std.double() + model.scaler_mean.double()).numpy()


def test_latent_drift_moves_z_to_the_prior(rng):
    """phi < 1: paths that start from an extreme z forget it; phi = 1 keeps it."""
    m = gru_model(rng, latent=4, hidden=32, gain=1.0)
    with torch.no_grad():  # make z's first dimension set the volatility
        m.decoder.head.bias.zero_()
        m.decoder.head.weight.zero_()
        m.decoder.head.weight[1, :].fill_(0.0)
        m.decoder.init.weight.zero_()
        m.decoder.gru.weight_ih_l0.zero_()
        m.decoder.gru.weight_hh_l0.zero_()
        m.decoder.gru.bias_ih_l0.zero_()
        m.decoder.gru.bias_hh_l0.zero_()
        hid = m.rnn_hidden
        m.decoder.gru.weight_ih_l0[2 * hid, 2 + 0] = 1.0  # candidate of unit 0 <- z_0
        m.decoder.gru.bias_ih_l0[hid : 2 * hid] = -20.0  # update gate shut: h = n
        m.decoder.head.weight[1, 0] = 2.0  # log-scale = 2 tanh(z_0)
    nat = native.NativeRollout(m.export_decoder())
    z = np.zeros((4000, 4), np.float32)
    z[:, 0] = 2.5
    fixed = nat.rollout(z, 400, seed=1)
    drift = nat.rollout(z, 400, seed=1, phi=float(2 ** (-1 / 20)))
    sd = lambda y, a, b: float(y[:, a:b].std())  # noqa: E731
    assert sd(fixed, 350, 400) == pytest.approx(sd(fixed, 0, 20), rel=0.1)
    assert sd(drift, 350, 400) < 0.6 * sd(drift, 0, 20)
    assert_close(drift[:300], reference(m, z[:300], 400, 1, phi=float(2 ** (-1 / 20))))


def test_teacher_forcing_equals_the_rollout_given_the_same_days(rng):
    m = gru_model(rng, assets=3)  # two factors by default
    z = torch.from_numpy(rng.standard_normal((9, 7)).astype(np.float32))
    eps = torch.from_numpy(rng.standard_normal((9, 16, 3 + m.factors)).astype(np.float32))
    with torch.no_grad():
        x, *params = m.rollout_scaled(z, 16, eps, return_params=True)
        forced = m.decode_scaled(z, x)
    assert len(params) == len(forced) == 3  # mean, log-scale, loadings
    for got, want in zip(forced, params, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    # the loss trains on one-step-ahead predictions and has gradients
    loss = m.loss(x)["loss"]
    loss.backward()
    assert m.decoder.gru.weight_hh_l0.grad.abs().sum() > 0


def test_save_load_round_trip(rng, tmp_path):
    m = gru_model(rng, hidden=24)
    path = m.save(tmp_path / "gru.safetensors")
    back = ScenarioVAE.load(path)
    assert back.decoder_kind == "gru" and back.rnn_hidden == 24
    z = rng.standard_normal((20, 7)).astype(np.float32)
    a = native.NativeRollout(m.export_decoder()).rollout(z, 30, seed=2)
    b = native.NativeRollout(back.export_decoder()).rollout(z, 30, seed=2)
    assert np.array_equal(bits(a), bits(b))


def test_generator_rolls_out_any_horizon(rng):
    m = gru_model(rng, window=16)
    gen = ScenarioGenerator(m, device="cpu")
    s = gen.sample(500, seed=4, horizon=252)
    assert s.returns.shape == (500, 252, 1) and s.horizon == 252
    # the generator's scenario i is the fused rollout of scenario i
    zero = np.zeros(7, np.float32)
    assert np.array_equal(
        bits(s.returns), bits(gen.decoder.sample(zero, zero, 500, horizon=252, seed=4))
    )
    chunks = np.concatenate(
        [c.returns for c in gen.iter_chunks(500, seed=4, horizon=252, chunk_size=123)]
    )
    assert np.array_equal(bits(chunks), bits(s.returns))
    assert gen.sample(10, seed=4).returns.shape == (10, 16, 1)
    hl = gen.sample(500, seed=4, horizon=252, regime_halflife=30)
    assert np.array_equal(bits(hl.returns[:, 0]), bits(s.returns[:, 0]))  # day 0 uses z_0
    assert not np.array_equal(hl.returns, s.returns)
    z = gen.sample(50, seed=4, horizon=40, drift="zero").returns
    np.testing.assert_allclose(z.astype(np.float64).mean(axis=1), 0.0, atol=1e-7)


def test_bad_input_is_named(rng):
    m = gru_model(rng)
    w = m.export_decoder()
    nat = native.NativeRollout(w)
    z = rng.standard_normal((5, 7)).astype(np.float32)
    with pytest.raises(native.NativeInputError, match="horizon"):
        nat.rollout(z, 0, seed=1)
    with pytest.raises(native.NativeInputError, match="phi"):
        nat.rollout(z, 5, seed=1, phi=1.5)
    with pytest.raises(native.NativeInputError, match="z must be"):
        nat.rollout(z[:, :3].copy(), 5, seed=1)
    bad = z.copy()
    bad[1, 2] = np.nan
    with pytest.raises(native.NativeInputError, match="z"):
        nat.rollout(bad, 5, seed=1)
    with pytest.raises(native.NativeInputError, match="out must have shape"):
        nat.rollout(z, 5, seed=1, out=np.empty((5, 4, 1), np.float32))
    import dataclasses

    with pytest.raises(native.NativeInputError, match="w_h"):
        native.NativeRollout(dataclasses.replace(w, w_h=w.w_h[:, :-1].copy()))
    with pytest.raises(native.NativeInputError, match="NaN"):
        w_nan = w.b_o.copy()
        w_nan[0] = np.inf
        native.NativeRollout(dataclasses.replace(w, b_o=w_nan))
    with pytest.raises(ValueError, match="gaussian"):
        ScenarioVAE(window=8, decoder="gru", likelihood="mse")
    with pytest.raises(ValueError, match="decoder must be"):
        ScenarioVAE(window=8, decoder="lstm")
    gen = ScenarioGenerator(m, device="cpu")
    with pytest.raises(ValueError, match="regime_halflife"):
        gen.sample(5, seed=1, regime_halflife=0)
    mlp = ScenarioVAE(window=8, latent_dim=4, hidden_dims=(8,))
    with pytest.raises(ValueError, match="recurrent"):
        ScenarioGenerator(mlp, device="cpu").sample(5, seed=1, regime_halflife=20)


# ------------------------------------------------------------ the factor model
FMA_ISAS = [i for i in ISAS if i != "baseline"]


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize(
    "assets,k,phi", [(2, 1, 1.0), (5, 1, 0.95), (5, 3, 1.0), (2, 2, 0.9), (5, 3, 0.97)]
)
def test_factor_rollout_matches_torch(rng, isa, assets, k, phi):
    """ScenarioVAE(decoder="gru", factors=k): the native rollout against
    model.rollout_scaled fed the native e, f (TAG_STEP + t, TAG_FACTOR_STEP
    + t) and eta, over 120 days, with and without the latent drift."""
    m = gru_model(rng, 6, 40, assets, factors=k, gain=1.5)
    ex = m.export_decoder()
    assert ex.factors == k and ex.w_o.shape == (40, (2 + k) * assets)
    nat = native.NativeRollout(ex, isa=isa)
    assert nat.factors == k
    n, horizon = 100, 120
    z = rng.standard_normal((n, 6)).astype(np.float32)
    seed = int(rng.integers(1 << 62))
    y = nat.rollout(z, horizon, seed=seed, offset=11, phi=phi)
    ref = reference(m, z, horizon, seed, offset=11, phi=phi)
    assert np.abs(ref).std() > 1e-3
    assert_close(y, ref)
    assert_close(nat.rollout(z, horizon, seed=seed, noise=False), reference_quiet(m, z, horizon))
    # the factors are drawn: zeroing them (e only) moves the paths far past tolerance
    eps, _ = native.rollout_noise(n, horizon, assets, 6, seed=seed, offset=11, factors=k)
    eps[..., assets:] = 0.0
    with torch.no_grad():
        x = m.rollout_scaled(torch.from_numpy(z), 1, torch.from_numpy(eps[:, :1]))
    no_f = (x.double() * m.scaler_std.double() + m.scaler_mean.double()).numpy()
    assert np.abs(y[:, :1] - no_f).mean() > 1e-3 * np.abs(ref[:, :1]).max()


def test_factor_rollout_is_bit_stable(rng):
    """Threads, chunks (offsets), a longer horizon and the FMA ISA levels
    give the same bits; f of day t is TAG_FACTOR_STEP + t, element j."""
    m = gru_model(rng, 5, 48, 4, factors=3)
    w = m.export_decoder()
    one, two = native.NativeRollout(w, num_threads=1), native.NativeRollout(w, num_threads=2)
    mu = rng.standard_normal((3, 5)).astype(np.float32)
    lv = rng.uniform(-2, 0, (3, 5)).astype(np.float32)
    idx = rng.integers(0, 3, 600).astype(np.int64)
    kw = dict(seed=21, index=idx, offset=9, scale=0.8, phi=0.95)
    full = two.sample(mu, lv, horizon=50, **kw)
    assert np.array_equal(bits(full), bits(one.sample(mu, lv, horizon=50, **kw)))
    z = native.sample_latent(mu, lv, seed=21, index=idx, offset=9, scale=0.8)
    assert np.array_equal(bits(full), bits(two.rollout(z, 50, seed=21, offset=9, phi=0.95)))
    for s0, s1 in ((0, 1), (1, 78), (78, 600)):
        part = one.rollout(z[s0:s1], 50, seed=21, offset=9 + s0, phi=0.95)
        assert np.array_equal(bits(part), bits(full[s0:s1])), (s0, s1)
    longer = two.rollout(z, 80, seed=21, offset=9, phi=0.95)
    assert np.array_equal(bits(longer[:, :50]), bits(full))
    for isa in FMA_ISAS:
        got = native.NativeRollout(w, isa=isa).rollout(z, 50, seed=21, offset=9, phi=0.95)
        assert np.array_equal(bits(got), bits(full)), isa


def test_factor_rollout_weights_are_checked(rng):
    import dataclasses

    w = gru_model(rng, 4, 16, 3, factors=2).export_decoder()
    with pytest.raises(native.NativeInputError, match=r"weights.w_o must be \(16, 12\)"):
        native.NativeRollout(dataclasses.replace(w, factors=2, w_o=w.w_o[:, :8].copy()))
    with pytest.raises(native.NativeInputError, match=r"weights.w_o must be \(16, 9\)"):
        native.NativeRollout(dataclasses.replace(w, factors=1))
    with pytest.raises(native.NativeInputError, match=r"weights\.factors"):
        native.NativeRollout(dataclasses.replace(w, factors=4))

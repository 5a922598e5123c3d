"""ScenarioVAE without training: shapes, units, the loss against
torch.distributions, the exported decoder, the residual scan, save / load."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from stressvae import ScenarioVAE
from stressvae.data import RegimeThresholds, Scaler
from stressvae.model import ACTIVATIONS, residual_scan_surprise


def make(window=16, n_assets=2, factors=0, **kw):
    torch.manual_seed(0)
    m = ScenarioVAE(
        window=window, n_assets=n_assets, latent_dim=4, hidden_dims=(32, 24), factors=factors, **kw
    )
    m.set_data_stats(
        Scaler(mean=np.array([1e-4, -2e-4][:n_assets]), std=np.array([0.01, 0.02][:n_assets])),
        RegimeThresholds(0.005, 0.015, -0.2, -0.1, -0.25),
    )
    return m.eval()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"window": 1}, "window must be an integer >= 2"),
        ({"n_assets": 0}, "n_assets must be an integer >= 1"),
        ({"latent_dim": 2.5}, "latent_dim must be an integer"),
        ({"hidden_dims": ()}, "hidden_dims must be one or more positive widths"),
        ({"hidden_dims": (64, -1)}, "hidden_dims must be one or more positive widths"),
        ({"activation": "swish"}, "activation must be one of"),
        ({"likelihood": "poisson"}, "likelihood must be one of"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"beta": -1}, "beta must be finite and >= 0"),
    ],
)
def test_bad_config(kwargs, match):
    args = {"window": 16, **kwargs}
    with pytest.raises(ValueError, match=match):
        ScenarioVAE(**args)


def test_shapes_and_units(rng):
    m = make()
    w = rng.normal(0, 0.01, (5, 16, 2)).astype(np.float32)
    mu, lv = m.encode(w)
    assert mu.shape == lv.shape == (5, 4)
    mean, scale = m.decode(mu)
    assert mean.shape == scale.shape == (5, 16, 2) and torch.all(scale > 0)
    # data units: the decoder's standardized output times the scaler
    m_s, ls = m.decode_scaled(mu)
    torch.testing.assert_close(mean, m_s * m.scaler_std + m.scaler_mean)
    torch.testing.assert_close(scale, ls.exp() * m.scaler_std)
    assert m.sample(7, seed=1).shape == (7, 16, 2)
    torch.testing.assert_close(m.sample(7, seed=1), m.sample(7, seed=1))
    assert m.reconstruct(w).shape == (5, 16, 2)
    assert m.extract_features(w).shape == (5, 4)
    # one window in is k = 1
    assert m.encode(w[0])[0].shape == (1, 4)
    with pytest.raises(ValueError, match=r"windows must be \[k, 16, 2\]"):
        m.encode(w[:, :10])
    with pytest.raises(ValueError, match="contain NaN or inf"):
        m.encode(np.full((1, 16, 2), np.nan))
    with pytest.raises(ValueError, match=r"z must be \[k, 4\]"):
        m.decode(torch.zeros(3, 5))


def test_mse_likelihood_has_no_scale(rng):
    m = make(likelihood="mse")
    mean, scale = m.decode(torch.zeros(2, 4))
    assert scale is None and mean.shape == (2, 16, 2)
    x = torch.as_tensor(rng.normal(size=(3, 16, 2)), dtype=torch.float32)
    out = m(x, sample=False)
    torch.testing.assert_close(
        m.recon_nll(x, out.mean, None), (x - out.mean).pow(2).flatten(1).sum(1)
    )


def test_loss_parts_match_torch_distributions(rng):
    m = make()
    x = torch.as_tensor(rng.normal(size=(6, 16, 2)), dtype=torch.float32)
    out = m(x, sample=False)
    d = torch.distributions
    nll = -d.Normal(out.mean, out.log_scale.exp()).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(m.recon_nll(x, out.mean, out.log_scale), nll, rtol=1e-5, atol=1e-4)
    q = d.Normal(out.mu, (0.5 * out.logvar).exp())
    kl = d.kl_divergence(q, d.Normal(torch.zeros_like(out.mu), 1.0))
    torch.testing.assert_close(m.kl_per_dim(out.mu, out.logvar), kl, rtol=1e-5, atol=1e-6)


def test_free_bits_floor_the_kl_term(rng):
    m = make()
    x = torch.as_tensor(rng.normal(size=(8, 16, 2)), dtype=torch.float32)
    torch.manual_seed(1)
    plain = m.loss(x, beta=1.0)
    torch.manual_seed(1)
    floored = m.loss(x, beta=1.0, free_bits=5.0)  # far above any dimension's KL here
    assert floored["loss"].item() == pytest.approx(plain["recon"].item() + 5.0 * 4, rel=1e-5)
    assert floored["kl"].item() == pytest.approx(plain["kl"].item())


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("likelihood", ["gaussian", "mse"])
def test_exported_decoder_reproduces_the_torch_decoder(activation, likelihood, rng):
    """The layout the native decode takes: h = act(h @ W + b), [in, out]."""
    m = make(activation=activation, likelihood=likelihood)
    ex = m.export_decoder()
    assert ex.likelihood == likelihood and (ex.window, ex.n_assets, ex.latent_dim) == (16, 2, 4)
    acts = {
        "silu": lambda v: v / (1 + np.exp(-v)),
        "relu": lambda v: np.maximum(v, 0),
        "tanh": np.tanh,
        "gelu": lambda v: 0.5 * v * (1 + np.vectorize(math.erf)(v / math.sqrt(2))),
    }
    z = rng.normal(size=(9, 4)).astype(np.float32)
    h = z.astype(np.float64)
    for w, b, act in ex.layers:
        assert w.dtype == np.float32 and w.flags.c_contiguous and b.shape == (w.shape[1],)
        h = h @ w + b
        if act is not None:
            h = acts[act](h)
    assert ex.layers[-1][2] is None
    with torch.no_grad():
        mean_s, ls = m.decode_scaled(torch.as_tensor(z))
    d = 16 * 2
    np.testing.assert_allclose(h[:, :d].reshape(9, 16, 2), mean_s.numpy(), rtol=1e-4, atol=1e-5)
    if likelihood == "gaussian":
        raw = np.clip(h[:, d:], ex.log_scale_min, ex.log_scale_max)
        np.testing.assert_allclose(raw.reshape(9, 16, 2), ls.numpy(), rtol=1e-4, atol=1e-5)
    else:
        assert h.shape[1] == d
    np.testing.assert_allclose(ex.scaler_std, [0.01, 0.02])


def test_residual_scan_on_known_inputs():
    torch.manual_seed(0)
    null = residual_scan_surprise(torch.randn(4000, 64, 1))
    # each block length is Bonferroni-corrected, so under the null
    # P(surprise > t) <= (number of lengths) * exp(-t): the union bound
    for t in (math.log(20), math.log(100)):
        assert np.mean(null.numpy() > t) <= 5 * math.exp(-t)
    u = torch.randn(3, 64, 1)
    u[0, 20:30] = 0.0  # stale
    u[1, 40] = 8.0  # jump
    u[2, 5:8] = torch.tensor([-6.0, 3.0, 3.0])[:, None]  # crash and recovery
    got = residual_scan_surprise(u).numpy()
    assert np.all(got > np.quantile(null.numpy(), 0.999)), (got, np.quantile(null.numpy(), 0.999))
    # one day, one block: the two-sided chi-square(1) test of u^2 = 4,
    # p = 2 * P(chi2 >= 4) = 2 * P(|u| >= 2) = 4 * sf(2)
    one = residual_scan_surprise(torch.full((1, 1, 1), 2.0), blocks=(1,)).item()
    assert one == pytest.approx(-math.log(4 * stats.norm.sf(2.0)), rel=1e-9)


def test_anomaly_score_arguments(rng):
    m = make()
    w = rng.normal(0, 0.01, (4, 16, 2)).astype(np.float32)
    parts = m.anomaly_parts(w)
    np.testing.assert_allclose(
        m.anomaly_score(w, kl_weight=0.5), parts["residual"] + 0.5 * parts["kl"]
    )
    with pytest.raises(ValueError, match="kl_weight must be finite and >= 0"):
        m.anomaly_score(w, kl_weight=-1)
    with pytest.raises(ValueError, match=r"percentile must be in \(0, 100\)"):
        m.anomaly_threshold(w, percentile=100)
    assert m.anomaly_threshold(w, 50) == pytest.approx(np.median(m.anomaly_score(w)))
    with pytest.raises(RuntimeError, match="regime_of needs a trained model"):
        m.regime_of(w)


def test_save_load_gives_identical_outputs(tmp_path, rng):
    m = make()
    m.fit_regimes(rng.normal(0, 0.01, (60, 16, 2)), np.array(["calm", "normal", "crisis"] * 20))
    path = m.save(tmp_path / "sub" / "model.safetensors")
    assert path.exists() and not list(path.parent.glob("*.tmp"))
    back = ScenarioVAE.load(path)
    w = rng.normal(0, 0.01, (5, 16, 2)).astype(np.float32)
    for a, b in zip(m.encode(w), back.encode(w), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(m.decode(torch.ones(2, 4))[0], back.decode(torch.ones(2, 4))[0])
    assert torch.equal(m.sample(3, seed=2), back.sample(3, seed=2))
    assert np.array_equal(m.anomaly_score(w), back.anomaly_score(w))
    assert list(m.regime_of(w)) == list(back.regime_of(w))
    assert back.thresholds == m.thresholds and back.config == m.config


def test_load_refuses_pickles_and_broken_files(tmp_path):
    pickled = tmp_path / "model.pt"
    torch.save(make().state_dict(), pickled)  # a zip of pickles
    with pytest.raises(ValueError, match="is not a stressvae model file"):
        ScenarioVAE.load(pickled)
    good = make().save(tmp_path / "m.safetensors")
    data = good.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="is not a stressvae model file"):
        ScenarioVAE.load(tmp_path / "cut.safetensors")
    with pytest.raises(ValueError, match="model file not found"):
        ScenarioVAE.load(tmp_path / "none.safetensors")


def test_load_refuses_mismatched_or_foreign_safetensors(tmp_path):
    from safetensors.torch import save_file

    m = make()
    tensors = {k: v.contiguous() for k, v in m.state_dict().items()}
    meta = {
        "format": "stressvae.ScenarioVAE/1",
        "config": '{"window": 16, "n_assets": 2, "latent_dim": 5, "hidden_dims": [32, 24]}',
    }
    save_file(tensors, tmp_path / "mismatch.safetensors", metadata=meta)
    with pytest.raises(
        ValueError, match=r"tensor '\w+\.\d\.weight' has shape \(\d+, \d+\), the config needs "
    ):
        ScenarioVAE.load(tmp_path / "mismatch.safetensors")
    save_file(tensors, tmp_path / "foreign.safetensors")
    with pytest.raises(ValueError, match="format None"):
        ScenarioVAE.load(tmp_path / "foreign.safetensors")
    bad = dict(tensors)
    bad["decoder.0.bias"] = torch.full_like(bad["decoder.0.bias"], float("nan"))
    m.save(tmp_path / "ok.safetensors")
    meta_ok = {"format": "stressvae.ScenarioVAE/1", "config": __import__("json").dumps(m.config)}
    save_file(bad, tmp_path / "nan.safetensors", metadata=meta_ok)
    with pytest.raises(ValueError, match=r"'decoder\.0\.bias' has NaN or inf"):
        ScenarioVAE.load(tmp_path / "nan.safetensors")


def test_save_is_atomic_when_writing_fails(tmp_path, monkeypatch):
    m = make()
    path = m.save(tmp_path / "m.safetensors")
    before = path.read_bytes()
    import safetensors.torch

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", boom)
    with pytest.raises(OSError, match="disk full"):
        m.save(path)
    assert path.read_bytes() == before  # the old file is untouched
    assert not list(tmp_path.glob("*.tmp"))


# ------------------------------------------------------------ factor observation model
@pytest.mark.parametrize("decoder", ["mlp", "gru"])
def test_factor_nll_is_the_exact_low_rank_gaussian(decoder):
    """The factor model's reconstruction term is the full multivariate normal
    log-likelihood with cov = B B^T + diag(scale^2), day by day."""
    torch.manual_seed(3)
    m = ScenarioVAE(window=12, n_assets=5, latent_dim=3, hidden_dims=(16,), decoder=decoder,
                    rnn_hidden=16, factors=2)  # fmt: skip
    x = torch.randn(6, 12, 5)
    out = m(x)
    assert out.loadings.shape == (6, 12, 5, 2)
    cov = out.loadings @ out.loadings.transpose(-1, -2) + torch.diag_embed(
        torch.exp(2 * out.log_scale)
    )
    want = (
        -torch.distributions.MultivariateNormal(out.mean.double(), cov.double())
        .log_prob(x.double())
        .sum(1)
    )
    torch.testing.assert_close(m.recon_nll(x, *out.params).double(), want, rtol=1e-5, atol=1e-3)
    # its residual is whitened: u^T u equals the Mahalanobis distance
    u = m.observation.residual(x, *out.params)
    maha = torch.linalg.solve(cov.double(), (x - out.mean).double().unsqueeze(-1))
    maha = ((x - out.mean).double().unsqueeze(-2) @ maha).squeeze(-1).squeeze(-1)
    torch.testing.assert_close(u.double().pow(2).sum(-1), maha, rtol=1e-4, atol=1e-4)


def test_factor_draws_have_the_model_covariance():
    """Windows drawn at one z have, day by day, the covariance B B^T +
    diag(scale^2) the decoder says (data units), and the common factor makes
    the assets correlated."""
    m = make(n_assets=2, factors=1)
    with torch.no_grad():  # a strong common factor: loadings well above the own scale
        last = list(m.decoder.children())[-1]
        d = 16 * 2
        last.bias[2 * d :] = 1.5
        last.bias[d : 2 * d] = -1.0
    z = torch.zeros(1, 4)
    cov = m.covariance(z)[0]  # [16, 2, 2]
    g = torch.Generator().manual_seed(0)
    n = 40000
    with torch.no_grad():
        x = m.decoder.sample(z.expand(n, 4), 16, g, True, m.scaler_mean, m.scaler_std)
    dev = x - x.mean(0)
    emp = torch.einsum("nta,ntb->tab", dev, dev) / (n - 1)
    torch.testing.assert_close(emp, cov, rtol=0.05, atol=1e-7)
    corr = cov[:, 0, 1] / torch.sqrt(cov[:, 0, 0] * cov[:, 1, 1])
    assert float(corr.min()) > 0.5
    _, scale = m.decode(z)
    torch.testing.assert_close(scale[0] ** 2, torch.diagonal(cov, dim1=-2, dim2=-1))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_assets": 3, "factors": 4}, r"factors must be <= n_assets \(3\)"),
        ({"n_assets": 3, "factors": -1}, "factors must be"),
        ({"n_assets": 3, "factors": 1.5}, "factors must be"),
        ({"n_assets": 3, "factors": 2, "likelihood": "mse"}, "factors > 0 needs likelihood"),
    ],
)
def test_bad_factors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ScenarioVAE(window=8, **kwargs)


def test_factor_defaults_and_save_load(tmp_path):
    assert ScenarioVAE(window=8).factors == 0  # one asset: as before
    assert ScenarioVAE(window=8, n_assets=2).factors == 1
    assert ScenarioVAE(window=8, n_assets=20).factors == 4
    assert ScenarioVAE(window=8, n_assets=3, likelihood="mse").factors == 0
    m = make(n_assets=2, factors=2)
    p = m.save(tmp_path / "f.safetensors")
    back = ScenarioVAE.load(p)
    assert back.factors == 2 and back.config == m.config
    z = torch.randn(3, 4)
    for a, b in zip(m.decoder(z), back.decoder(z), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_multi_asset_model_saved_before_factors_loads_without_them(tmp_path):
    """A model file whose config has no "factors" (written before they
    existed) loads as it was: no factors, the same decoder."""
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    m = make(n_assets=2, factors=0)
    p = m.save(tmp_path / "old.safetensors")
    with safe_open(str(p), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    config = json.loads(meta["config"])
    del config["factors"]
    meta["config"] = json.dumps(config)
    save_file(tensors, str(p), metadata=meta)
    back = ScenarioVAE.load(p)
    assert back.factors == 0
    z = torch.randn(3, 4)
    torch.testing.assert_close(back.decode(z)[0], m.decode(z)[0], rtol=0, atol=0)

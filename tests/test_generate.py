"""ScenarioGenerator on the trained S&P 500 model: reproducible streams,
the native path doing the work, parity with the torch model path, sweeps,
augmentation, drift, horizons, Scenarios."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import bits

from stressvae import ScenarioGenerator, Scenarios, native
from stressvae.data import window_stats


@pytest.fixture(scope="module")
def gen(trained, sp500_data):
    return ScenarioGenerator(trained[0], sp500_data, device="cpu")


def test_sample_shape_units_and_realism(gen, sp500_data):
    s = gen.sample(50_000, seed=7)
    assert isinstance(s, Scenarios) and len(s) == 50_000
    assert s.returns.shape == (50_000, 64, 1) and s.returns.dtype == np.float32
    assert list(s.tags["scenario"]) == list(range(50_000)) and set(s.tags["set"]) == {"prior"}
    real = sp500_data.train
    # daily volatility and fat tails of the real returns come through
    assert abs(s.returns.std() / real.std() - 1) < 0.15
    r = s.returns.ravel().astype(np.float64)
    assert ((r - r.mean()) ** 4).mean() / r.var() ** 2 - 3 > 2.0
    # the spread of calm vs crisis windows: realized vol quantiles within 30 %
    q_gen = np.quantile(window_stats(s.returns)["vol"], [0.1, 0.5, 0.9])
    q_real = np.quantile(window_stats(real)["vol"], [0.1, 0.5, 0.9])
    assert np.all(np.abs(q_gen / q_real - 1) < 0.3), (q_gen, q_real)


@pytest.mark.parametrize("chunk", [1, 1000, 65536])
def test_same_seed_same_scenarios_for_any_chunk_size(gen, chunk):
    n = 3000 if chunk == 1 else 100_000
    full = gen.sample(n, seed=11)
    parts = list(gen.iter_chunks(n, seed=11, chunk_size=chunk))
    assert len(parts) == -(-n // chunk)
    assert np.array_equal(bits(np.concatenate([p.returns for p in parts])), bits(full.returns))
    assert list(parts[-1].tags["scenario"]) == list(range((len(parts) - 1) * chunk, n))


def test_scenario_i_does_not_depend_on_n_or_threads(trained, sp500_data, gen):
    small = gen.sample(10, seed=3)
    large = gen.sample(20_000, seed=3)
    assert np.array_equal(bits(small.returns), bits(large.returns[:10]))
    one = ScenarioGenerator(trained[0], sp500_data, device="cpu", num_threads=1).sample(
        20_000, seed=3
    )
    assert np.array_equal(bits(one.returns), bits(large.returns))
    other = gen.sample(10, seed=4)
    assert not np.array_equal(other.returns, small.returns)


def test_native_decode_did_the_work(gen):
    before = native.native_info()["counts"]
    gen.sample(1234, seed=0)
    after = native.native_info()["counts"]
    assert after["sample_decode_cpu_rows"] - before["sample_decode_cpu_rows"] == 1234


def test_matches_the_torch_model_path(gen, trained):
    """Scenario = model.decode(z) + scale * eps, unscaled, with the native z
    (around the prior component of each scenario) and eps."""
    model = trained[0]
    n = 2000
    s = gen.sample(n, seed=21)
    plan = gen.prior_plan(n)
    index = plan.index_of(np.arange(n), 21)
    assert len(np.unique(index)) > n // 2  # components spread over the training windows
    z = native.sample_latent(plan.mu, plan.logvar, seed=21, index=index)
    mean, scale = model.decode(z)
    eps = native.normals(n, 64, seed=21, tag=native.TAG_OBSERVATION).reshape(n, 64, 1)
    ref = mean.double().numpy() + scale.double().numpy() * eps
    err = np.abs(s.returns - ref)
    assert err.max() <= 1e-5 * np.abs(ref).max() + 1e-5 * np.abs(ref).min(), err.max()
    np.testing.assert_allclose(s.returns, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def test_interpolate_calm_to_crisis(gen, sp500_data):
    sweep = gen.interpolate(
        sp500_data.regime("calm"), sp500_data.regime("crisis"), steps=6, n_per_step=4000, seed=5
    )
    assert len(sweep) == 24_000
    assert list(sweep.tags["step"]) == list(np.repeat(np.arange(6), 4000))  # step by step
    np.testing.assert_allclose(sweep.tags["alpha"].unique(), np.linspace(0, 1, 6))
    vol = [
        window_stats(sweep.returns[sweep.tags["step"].to_numpy() == k])["vol"].mean()
        for k in range(6)
    ]
    assert all(a < b for a, b in itertools.pairwise(vol)), vol  # calmer to wilder
    calm_vol = window_stats(sp500_data.regime("calm"))["vol"].mean()
    crisis_vol = window_stats(sp500_data.regime("crisis"))["vol"].mean()
    assert abs(vol[0] / calm_vol - 1) < 0.35 and abs(vol[-1] / crisis_vol - 1) < 0.35, (
        vol,
        calm_vol,
        crisis_vol,
    )
    # reproducible and chunk-invariant like sample
    again = gen.interpolate(
        sp500_data.regime("calm"),
        sp500_data.regime("crisis"),
        steps=6,
        n_per_step=4000,
        seed=5,
        chunk_size=777,
    )
    assert np.array_equal(bits(again.returns), bits(sweep.returns))


def test_interpolate_paths_and_pairs(gen, sp500_data):
    calm, crisis = sp500_data.regime("calm")[:20], sp500_data.regime("crisis")[:20]
    lin = gen.interpolate(calm, crisis, steps=3, n_per_step=500, seed=1)
    sph = gen.interpolate(calm, crisis, steps=3, n_per_step=500, seed=1, path="spherical")
    step = lin.tags["step"].to_numpy()
    assert np.array_equal(lin.returns[step == 0], sph.returns[step == 0])  # same endpoints
    assert np.array_equal(lin.returns[step == 2], sph.returns[step == 2])
    assert not np.array_equal(lin.returns[step == 1], sph.returns[step == 1])
    paired = gen.interpolate(calm, crisis, steps=3, n_per_step=40, seed=1, paired=True)
    assert len(paired) == 120
    with pytest.raises(
        ValueError, match="paired=True needs as many start as end windows, got 20 and 5"
    ):
        gen.interpolate(calm, crisis[:5], steps=3, n_per_step=4, seed=1, paired=True)
    with pytest.raises(ValueError, match="path must be one of"):
        gen.interpolate(calm, crisis, steps=3, n_per_step=4, seed=1, path="geodesic")
    with pytest.raises(ValueError, match=r"steps must be in \[2"):
        gen.interpolate(calm, crisis, steps=1, n_per_step=4, seed=1)


def test_augment_draws_near_the_tail_windows(gen, sp500_data, trained):
    tail = sp500_data.regime("tail")[::10]
    aug = gen.augment(tail, n_per_window=200, scale=0.5, seed=2)
    assert len(aug) == 200 * len(tail) and list(aug.tags["anchor"][:3]) == [0, 0, 0]
    assert aug.tags["anchor"].max() == len(tail) - 1
    prior = gen.sample(len(aug), seed=2)
    ret = lambda w: w.astype(np.float64).sum(axis=1).mean()  # noqa: E731
    assert ret(aug.returns) < ret(prior.returns) - 0.03  # tail windows lose money
    # encodings of the variations stay near their anchor
    mu_a = trained[0].extract_features(tail)
    mu_g = trained[0].extract_features(aug.returns[::50])
    d_anchor = np.linalg.norm(mu_g - mu_a[aug.tags["anchor"].to_numpy()[::50]], axis=1).mean()
    d_prior = np.linalg.norm(
        trained[0].extract_features(prior.returns[::50])
        - mu_a[aug.tags["anchor"].to_numpy()[::50]],
        axis=1,
    ).mean()
    assert d_anchor < 0.6 * d_prior


def test_drift_options(gen, trained):
    keep = gen.sample(30_000, seed=8)
    zero = gen.sample(30_000, seed=8, drift="zero")
    hist = gen.sample(30_000, seed=8, drift="historical")
    assert np.abs(zero.returns.astype(np.float64).mean(axis=1)).max() < 1e-8
    train_mean = float(trained[0].scaler_mean)
    assert abs(hist.returns.mean() - train_mean) < 0.1 * abs(train_mean) + 2e-5
    np.testing.assert_allclose(
        hist.returns - keep.returns, float(hist.returns[0, 0, 0] - keep.returns[0, 0, 0]), atol=1e-6
    )
    with pytest.raises(ValueError, match="drift must be one of"):
        gen.sample(10, seed=0, drift="up")


def test_long_horizons_chain_windows(gen, trained, sp500_data):
    import copy

    h = gen.sample(100, seed=6, horizon=200)
    assert h.returns.shape == (100, 200, 1) and h.horizon == 200
    rows = gen.sample(400, seed=6)
    short = gen.sample(5, seed=6, horizon=10)
    assert np.array_equal(short.returns, rows.returns[:5, :10])
    # window j of scenario i is stream row i * k + j (k = 4 windows of 64),
    # drawn around scenario i's prior point (for N(0, I): the same for all)
    normal = copy.deepcopy(trained[0])
    normal.set_prior(None)
    plain = ScenarioGenerator(normal, sp500_data, device="cpu")
    h = plain.sample(100, seed=6, horizon=200)
    rows = plain.sample(400, seed=6)  # rows 0..399 of the same stream
    assert np.array_equal(h.returns[1, :64], rows.returns[4])
    assert np.array_equal(h.returns[1, 64:128], rows.returns[5])


def test_prices_are_float64_paths(gen):
    s = gen.sample(1000, seed=1)
    p = s.prices(100.0)
    assert p.shape == (1000, 65, 1) and p.dtype == np.float64
    assert np.all(p[:, 0] == 100.0)
    np.testing.assert_allclose(
        p[:, 1:], 100 * np.exp(np.cumsum(s.returns.astype(np.float64), axis=1)), rtol=1e-12
    )
    np.testing.assert_allclose(
        p[:, -1, 0] / 100, np.exp(s.returns.astype(np.float64).sum(axis=(1, 2))), rtol=1e-12
    )
    with pytest.raises(ValueError, match="start prices must be finite and > 0"):
        s.prices(0.0)
    with pytest.raises(ValueError, match="start must be a number or 1 numbers"):
        s.prices([1.0, 2.0])


def test_frames_and_files(gen, tmp_path):
    s = gen.interpolate(gen_windows(gen), gen_windows(gen, 9), steps=2, n_per_step=3, seed=1)
    f = s.to_frame()
    assert len(f) == 6 * 64 and list(f.columns[:4]) == ["scenario", "day", "asset", "log_return"]
    assert set(f["step"]) == {0, 1} and f["asset"].iloc[0] == "SP500"
    np.testing.assert_array_equal(np.load(s.save(tmp_path / "s.npy")), s.returns)
    z = np.load(s.save(tmp_path / "s.npz"), allow_pickle=True)
    np.testing.assert_array_equal(z["returns"], s.returns)
    np.testing.assert_array_equal(z["tag_step"], s.tags["step"])
    import pandas as pd

    back = pd.read_parquet(s.save(tmp_path / "s.parquet"))
    np.testing.assert_array_equal(back["log_return"].to_numpy(), s.returns.ravel())
    with pytest.raises(ValueError, match=r"save to .npy, .npz or .parquet"):
        s.save(tmp_path / "s.csv")
    assert not list(tmp_path.glob(".*.tmp"))


def gen_windows(gen, seed=1):
    return gen.sample(4, seed=seed).returns


def test_bad_arguments(gen, trained):
    from stressvae import WindowData, load_dataset

    with pytest.raises(ValueError, match="model must be a ScenarioVAE"):
        ScenarioGenerator("model")
    d2 = WindowData.from_prices(load_dataset("sp500_nasdaq"), window=64)
    with pytest.raises(
        ValueError, match="data has windows of 64 days x 2 assets, the model 64 x 1"
    ):
        ScenarioGenerator(trained[0], d2)
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda'"):
        ScenarioGenerator(trained[0], device="tpu")
    with pytest.raises(ValueError, match=r"seed must be in \[0"):
        gen.sample(10, seed=-1)
    with pytest.raises(ValueError, match=r"windows must be \[k, 64, 1\]"):
        gen.augment(np.zeros((3, 32, 1)), n_per_window=2)


STREAM = r"""
import json, sys, numpy as np, torch
from stressvae import ScenarioGenerator, ScenarioVAE
from stressvae.data import Scaler
def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
n = int(sys.argv[1])
torch.manual_seed(0)
m = ScenarioVAE(window=64)  # the default architecture (speed and memory do not depend on training)
m.set_data_stats(Scaler(np.array([3e-4]), np.array([0.012])), None)
g = ScenarioGenerator(m, device="cpu")
next(g.iter_chunks(1000, seed=1))
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
base = status("VmRSS:")
total, sq = 0.0, 0.0
for chunk in g.iter_chunks(n, seed=1):
    total += float(chunk.returns.sum(dtype=np.float64))
print(json.dumps({"n": n, "growth": status("VmHWM:") - base, "mean": total / (n * 64)}))
"""


def test_two_million_scenarios_stream_in_bounded_memory():
    """2e6 scenarios x 64 days (512 MB of returns) through iter_chunks: peak
    RSS grows by less than 150 MB between n = 1e5 and n = 2e6 (fresh
    processes)."""
    runs = {}
    for n in (100_000, 2_000_000):
        out = subprocess.run(
            [sys.executable, "-c", STREAM, str(n)], capture_output=True, text=True, check=True
        )
        runs[n] = json.loads(out.stdout)
    diff = runs[2_000_000]["growth"] - runs[100_000]["growth"]
    print(
        f"peak RSS growth: n=1e5 {runs[100_000]['growth'] / 2**20:.1f} MiB, n=2e6 {runs[2_000_000]['growth'] / 2**20:.1f} MiB"
    )
    assert diff < 150 * 2**20
    assert np.isfinite(runs[2_000_000]["mean"])


# ------------------------------------------------------------ the mixture prior
def test_trainer_stores_the_aggregate_posterior_as_the_prior(trained, sp500_data, tmp_path):
    """The default Trainer leaves the training windows' posteriors on the
    model as its prior; saved and loaded with it."""
    import torch

    from stressvae import ScenarioVAE, Trainer

    model = trained[0]
    assert model.prior_size == len(sp500_data.train) == model.config["prior_size"]
    mu, lv = model.encode(sp500_data.train)
    torch.testing.assert_close(model.prior_mu, mu, rtol=0, atol=0)
    torch.testing.assert_close(model.prior_logvar, lv, rtol=0, atol=0)
    back = ScenarioVAE.load(model.save(tmp_path / "m.safetensors"))
    assert back.prior_size == model.prior_size
    assert np.array_equal(back.prior_tables()[0], model.prior_tables()[0])
    with pytest.raises(ValueError, match="prior must be one of"):
        Trainer(prior="uniform")


def test_mixture_prior_draws_each_component_evenly_for_any_chunking(trained, sp500_data):
    """With two far-apart components (the calmest and the wildest training
    window), about half the scenarios come from each, the same for any chunk
    size, another set for another seed; the torch path (model.sample) draws
    from the same mixture."""
    import copy

    from stressvae.data import window_stats

    model = copy.deepcopy(trained[0])
    vol = window_stats(sp500_data.train)["vol"]
    calm, wild = sp500_data.train[[int(np.argmin(vol)), int(np.argmax(vol))]]
    model.set_prior(np.stack([calm, wild]))
    assert model.prior_size == 2
    gen = ScenarioGenerator(model, sp500_data, device="cpu")
    n = 4000
    s = gen.sample(n, seed=5)
    v = window_stats(s.returns)["vol"]
    cut = np.sqrt(window_stats(calm[None])["vol"][0] * window_stats(wild[None])["vol"][0])
    wild_share = float(np.mean(v > cut))
    assert abs(wild_share - 0.5) < 0.04, wild_share  # binomial sd 0.008
    parts = list(gen.iter_chunks(n, seed=5, chunk_size=333))
    assert np.array_equal(bits(np.concatenate([p.returns for p in parts])), bits(s.returns))
    other = window_stats(gen.sample(n, seed=6).returns)["vol"] > cut
    assert not np.array_equal(other, v > cut)  # the components are drawn per seed
    torch_share = float(np.mean(window_stats(model.sample(n, seed=5).numpy())["vol"] > cut))
    assert abs(torch_share - 0.5) < 0.04, torch_share
    model.set_prior(None)  # back to N(0, I)
    assert model.prior_size == 0 and model.prior_tables() is None

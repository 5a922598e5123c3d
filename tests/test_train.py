"""Training on real data: the loss falls, dimensions stay active, early
stopping keeps the best weights, runs are reproducible, fine-tuning
continues, and the anomaly score beats a volatility filter."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.stats import rankdata

from stressvae import ScenarioVAE, Trainer, WindowData, top_anomalies
from stressvae.data import window_stats


def test_validation_loss_falls_well_below_the_untrained_model(trained):
    _model, history, untrained = trained
    df = history.to_frame()
    best = df["val_loss"].min()
    print(f"val loss untrained {untrained:.2f} -> best {best:.2f} nats/window")
    assert best < untrained - 10  # nats per 64-day window
    assert list(df.columns[:6]) == [
        "train_loss",
        "val_loss",
        "train_recon",
        "val_recon",
        "train_kl",
        "val_kl",
    ]
    assert len(df) == len(history.records) and df.index[0] == 1
    # validation is always at the full beta: loss = recon + beta * kl
    np.testing.assert_allclose(df["val_loss"], df["val_recon"] + df["val_kl"], rtol=1e-9)
    # warm-up: the training KL weight rises from beta / 10 to beta
    assert df["beta"].iloc[0] == pytest.approx(0.1) and df["beta"].iloc[-1] == 1.0


def test_latent_dimensions_are_active(trained):
    _, history, _ = trained
    kl = history.kl_per_dim
    print(f"KL per latent dimension (nats): {np.round(kl, 2)}; active {history.active_dims}")
    assert history.active_dims >= 3
    assert np.sum(kl > 0.1) == history.active_dims  # active = clearly above the free-bits floor
    assert kl.sum() > 1.0


def test_early_stopping_restores_the_best_weights(trained, sp500_data):
    model, history, _ = trained
    df = history.to_frame()
    assert history.best_epoch == int(df["val_loss"].idxmin())
    again = Trainer(seed=0, progress=False)._evaluate(
        model, torch.as_tensor(sp500_data.scaled("val"))
    )[0]
    assert again == pytest.approx(df.loc[history.best_epoch, "val_loss"], rel=1e-6)


def small_data():
    from stressvae import load_dataset

    return WindowData.from_prices(load_dataset("sp500").iloc[:1500], window=32)


def test_training_is_deterministic_for_a_seed():
    data = small_data()
    runs = []
    for _ in range(2):
        torch.manual_seed(3)
        m = ScenarioVAE(window=32, latent_dim=4, hidden_dims=(32,))
        h = Trainer(max_epochs=4, seed=7, progress=False).fit(m, data)
        runs.append((h.to_frame(), m.state_dict()))
    assert runs[0][0].equals(runs[1][0])
    for k, v in runs[0][1].items():
        assert torch.equal(v, runs[1][1][k]), k


def test_fine_tuning_continues_from_loaded_weights(trained, tmp_path, sp500_data):
    model, history, untrained = trained
    path = model.save(tmp_path / "m.safetensors")
    loaded = ScenarioVAE.load(path)
    h = Trainer(max_epochs=1, kl_warmup_epochs=0, seed=1, progress=False).fit(loaded, sp500_data)
    first = h.records[0]["val_loss"]
    best = history.to_frame()["val_loss"].min()
    assert first < best + 2 and first < untrained - 10  # started from the trained weights


def test_bad_trainer_arguments():
    for kwargs, match in [
        ({"max_epochs": 0}, "max_epochs must be an integer >= 1"),
        ({"lr": 0}, "lr must be > 0"),
        ({"batch_size": 2.5}, "batch_size must be an integer"),
        ({"free_bits": -0.1}, "free_bits must be a number >= 0"),
        ({"device": "tpu"}, "device must be 'cpu', 'cuda'"),
    ]:
        with pytest.raises(ValueError, match=match):
            Trainer(**kwargs)
    data = small_data()
    with pytest.raises(
        ValueError, match="model expects windows of 64 days x 1 assets, data has 32 x 1"
    ):
        Trainer(progress=False).fit(ScenarioVAE(window=64), data)


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    r = rankdata(np.concatenate([pos, neg]))
    return float((r[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def plant(windows: np.ndarray, kind: str, sd: float, rng: np.random.Generator) -> np.ndarray:
    out = windows.copy()
    for w in out:
        if kind == "jump":  # an 8-sd one-day jump that reverts the next day
            t = rng.integers(1, 62)
            w[t, 0] += 8 * sd
            w[t + 1, 0] -= 8 * sd
        elif kind == "flash_crash":  # an 8-sd fall recovered within 3 days
            t = rng.integers(1, 61)
            w[t : t + 3, 0] += np.array([-8, 4, 4]) * sd
        else:  # 10 days of stale, unchanged prices
            t = rng.integers(0, 54)
            w[t : t + 10, 0] = 0.0
    return out


def test_anomaly_score_beats_a_volatility_filter(trained, sp500_data):
    model, _, _ = trained
    rng = np.random.default_rng(11)
    clean = sp500_data.val[::4]  # held out, thinned (neighbours overlap)
    sd = float(sp500_data.scaler.std[0])
    planted = {k: plant(clean, k, sd, rng) for k in ("jump", "flash_crash", "stale")}
    s_clean = model.anomaly_score(clean)
    v_clean = window_stats(clean)["vol"]
    lines = []
    for kind, w in planted.items():
        a_vae = auc(model.anomaly_score(w), s_clean)
        a_vol = auc(window_stats(w)["vol"], v_clean)
        lines.append(f"{kind}: VAE {a_vae:.3f} vol {a_vol:.3f}")
    every = np.concatenate(list(planted.values()))
    a_vae = auc(model.anomaly_score(every), s_clean)
    a_vol = auc(window_stats(every)["vol"], v_clean)
    print("ROC AUC " + "; ".join(lines) + f"; all: VAE {a_vae:.3f} vol {a_vol:.3f}")
    assert a_vae >= 0.9
    assert a_vae > a_vol
    assert (
        auc(model.anomaly_score(planted["stale"]), s_clean) >= 0.85
    )  # the case vol gets backwards


def test_threshold_flags_planted_anomalies(trained, sp500_data):
    model, _, _ = trained
    thr = model.anomaly_threshold(sp500_data.train, percentile=99)
    rng = np.random.default_rng(5)
    jumps = plant(sp500_data.val[::8], "jump", float(sp500_data.scaler.std[0]), rng)
    assert np.mean(model.anomaly_score(jumps) > thr) > 0.8
    assert np.mean(model.anomaly_score(sp500_data.val[::8]) > thr) < 0.1


def test_top_anomalies_are_real_dated_non_overlapping_windows(trained, sp500_data):
    model, _, _ = trained
    top = top_anomalies(model, sp500_data, top=10)
    assert list(top["rank"]) == list(range(1, 11))
    assert top["score"].is_monotonic_decreasing
    spans = sorted(zip(top["start"], top["end"], strict=True))
    assert all(e1 < s2 for (_, e1), (s2, _) in itertools.pairwise(spans))
    all_scores = model.anomaly_score(sp500_data.windows)
    assert top["score"].iloc[0] == pytest.approx(all_scores.max())


def test_regime_of_agrees_with_the_data_labels(trained, sp500_data):
    model, _, _ = trained
    val = sp500_data.split == "val"
    pred = model.regime_of(sp500_data.windows[val])
    agree = np.mean(pred == sp500_data.labels[val])
    print(f"regime_of agrees with the volatility labels on {agree:.1%} of validation windows")
    assert agree > 0.8
    calm = sp500_data.regime("calm", split="val")
    assert np.mean(model.regime_of(calm) == "calm") > 0.8
    crisis = sp500_data.regime("crisis", split="train")
    assert np.mean(model.regime_of(crisis) == "crisis") > 0.6
    today = model.regime_of(sp500_data.latest())
    assert today in ("calm", "normal", "crisis")


def test_history_plot(trained):
    import matplotlib

    matplotlib.use("Agg")
    ax = trained[1].plot()
    assert len(ax.lines) == 3 and ax.get_xlabel() == "epoch"

"""Bad inputs (issue 14): each is refused with an error of the expected type
whose message names the culprit (file, column, date or argument), or, where
the input is legal but suspicious, gives a warning. Inputs are built in
tmp_path; nothing here trains for long or touches the network."""

from __future__ import annotations

import os
import re
import warnings

import numpy as np
import pandas as pd
import pytest

import stressvae as sv
from stressvae.data import JUMP_LIMIT, PriceJumpWarning, WindowData, load_prices


def prices(n: int = 300, cols: str = "A", seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idx = pd.bdate_range("2020-01-01", periods=n, name="date")
    r = rng.normal(0.0, 0.01, (n, len(cols)))
    return pd.DataFrame(100 * np.exp(np.cumsum(r, 0)), index=idx, columns=list(cols))


def write_csv(path, first_name: str, first, frame: pd.DataFrame):
    out = frame.reset_index(drop=True)
    out.insert(0, first_name, first)
    out.to_csv(path, index=False)
    return path


# ------------------------------------------------------------ integer dates
def test_yyyymmdd_integers_are_dates(tmp_path):
    p = prices()
    ymd = p.index.strftime("%Y%m%d").astype(np.int64)
    got = load_prices(write_csv(tmp_path / "ymd.csv", "date", ymd, p))
    ref = load_prices(write_csv(tmp_path / "iso.csv", "date", p.index.strftime("%Y-%m-%d"), p))
    pd.testing.assert_frame_equal(got, ref)
    assert got.index[0] == pd.Timestamp("2020-01-01")
    series = pd.Series(p["A"].to_numpy(), index=ymd)  # an integer index in memory too
    pd.testing.assert_frame_equal(load_prices(series).set_axis(["A"], axis=1), ref)


def test_yyyymmdd_windows_keep_their_dates(tmp_path):
    p = prices()
    path = write_csv(tmp_path / "ymd.csv", "day", p.index.strftime("%Y%m%d").astype(int), p)
    d = WindowData.from_prices(path, window=20)
    assert d.end_dates[-1] == p.index[-1]
    assert d.start_dates.year.min() == 2020


def test_cli_train_on_yyyymmdd_reports_real_dates(tmp_path, capsys):
    from stressvae.cli import main

    p = prices(400)
    path = write_csv(tmp_path / "ymd.csv", "date", p.index.strftime("%Y%m%d").astype(int), p)
    out = tmp_path / "m.safetensors"
    args = ["--window", "16", "--epochs", "1", "--hidden", "16", "--latent-dim", "2"]
    rc = main(["train", "--data", str(path), *args, "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    assert "1970" not in text
    assert str(p.index[-1].date()) in text


def test_invalid_yyyymmdd_names_the_value_and_file(tmp_path):
    p = prices(5)
    ymd = [20200130, 20200131, 20200132, 20200201, 20200202]
    path = write_csv(tmp_path / "ymd.csv", "date", ymd, p)
    with pytest.raises(ValueError, match=r"ymd\.csv: .*'date'.*YYYYMMDD.*20200132 is not a valid"):
        load_prices(path)


@pytest.mark.parametrize(
    "first",
    [np.arange(300), np.arange(1, 301), np.arange(300) * 7 + 1000, -np.arange(300)],
    ids=["0..n", "1..n", "sparse ids", "negative"],
)
def test_csv_with_an_id_column_is_refused(tmp_path, first):
    path = write_csv(tmp_path / "ids.csv", "id", first, prices())
    with pytest.raises(
        ValueError, match=r"ids\.csv: the index \(first column 'id'\) must be dates"
    ):
        load_prices(path)
    with pytest.raises(ValueError, match=r"ids\.csv"):
        WindowData.from_prices(path, window=20)


def test_csv_with_float_first_column_is_refused(tmp_path):
    path = write_csv(tmp_path / "f.csv", "t", np.arange(300) * 0.5, prices())
    with pytest.raises(ValueError, match=r"f\.csv: .*'t'.* must be dates, got numbers \(0\.0"):
        load_prices(path)


def test_default_range_index_is_refused():
    frame = prices().reset_index(drop=True)
    with pytest.raises(
        ValueError, match=r"the index must be dates, got the default 0\.\.299 Range"
    ):
        load_prices(frame)
    with pytest.raises(ValueError, match=r"set the\s+dates as the index"):
        WindowData.from_prices(frame, window=20)
    with pytest.raises(ValueError, match=r"RangeIndex"):
        WindowData.from_prices(frame, window=20, pool=True)


@pytest.mark.parametrize(
    "index",
    [
        pd.Index(np.arange(300) * 1.5),
        pd.Index(np.arange(300) + 0.25, name="when"),
        pd.Index(np.arange(300, dtype=np.uint32) + 5, name="row"),
        pd.Index([*range(299), "x"], dtype=object),
    ],
    ids=["float", "named float", "uint", "ints and text"],
)
def test_numeric_index_is_refused_never_1970(index):
    frame = prices().set_axis(index)
    name = f" {index.name!r}" if index.name else ""
    with pytest.raises(ValueError, match=rf"the index{name} must be dates, got numbers"):
        load_prices(frame)


def test_float_index_no_longer_says_duplicate_1970():
    frame = prices().set_axis(np.linspace(0.0, 1e-7, 300))
    with pytest.raises(ValueError) as err:
        load_prices(frame)
    assert "1970" not in str(err.value)
    assert "must be dates" in str(err.value)


# ------------------------------------------------------------ unreadable files
def test_empty_csv_names_the_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.csv: the file is empty") as err:
        load_prices(path)
    assert isinstance(err.value.__cause__, pd.errors.EmptyDataError)


def test_header_only_csv_names_the_file(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("date,A\n")
    with pytest.raises(ValueError, match=r"header\.csv: no prices, only a header \(date, A\)"):
        load_prices(path)


def test_random_bytes_csv_names_the_file(tmp_path):
    path = tmp_path / "noise.csv"
    path.write_bytes(b"\xff\xfe\x00" + np.random.default_rng(1).bytes(4000))
    with pytest.raises(ValueError, match=r"noise\.csv: not a readable CSV text file") as err:
        load_prices(path)
    assert isinstance(err.value.__cause__, UnicodeDecodeError)
    with pytest.raises(ValueError, match=r"noise\.csv"):
        WindowData.from_prices(path, window=20)


def test_random_bytes_parquet_names_the_file(tmp_path):
    path = tmp_path / "noise.parquet"
    path.write_bytes(np.random.default_rng(2).bytes(4000))
    with pytest.raises(ValueError, match=r"noise\.parquet: not a readable parquet file") as err:
        load_prices(path)
    assert err.value.__cause__ is not None


def test_gzip_that_is_not_gzip_names_the_file(tmp_path):
    path = tmp_path / "p.csv.gz"
    path.write_text("date,A\n2020-01-01,1\n")
    with pytest.raises(ValueError, match=r"p\.csv\.gz: not a readable CSV"):
        load_prices(path)


def test_directory_is_refused(tmp_path):
    folder = tmp_path / "prices.csv"
    folder.mkdir()
    with pytest.raises(ValueError, match=r"prices\.csv is a directory"):
        load_prices(folder)


def test_cli_bad_file_is_one_line_exit_2(tmp_path, capsys):
    from stressvae.cli import main

    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    assert main(["train", "--data", str(path), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "empty.csv: the file is empty" in err
    assert "Traceback" not in err


# ------------------------------------------------------------ window sizes
def test_huge_window_is_refused_at_once():
    # used to run a Python loop for ~30 minutes before the size check
    p = prices()
    with pytest.raises(ValueError, match=r"window=1000000000 is longer than the data: 300 prices"):
        WindowData.from_prices(p, window=10**9)
    with pytest.raises(ValueError, match=r"window=1000000000 is longer .* 299 daily returns"):
        WindowData.from_prices(p, window=10**9, pool=True)
    with pytest.raises(ValueError, match=r"window=300 is longer than the data"):
        WindowData.from_prices(p, window=300)


def test_window_that_fits_but_leaves_no_validation():
    with pytest.raises(ValueError, match=r"need at least 1999 prices for window=200"):
        WindowData.from_prices(prices(), window=200)


def test_min_prices_is_the_first_length_that_fits():
    from stressvae.data import _min_prices

    def linear(window, val_fraction):  # the old scan, the definition
        n = 3 * window + 1
        while True:
            cut = round((n - 1) * (1 - val_fraction))
            if cut >= window and (n - 1) - (cut + window) >= window:
                return n
            n += 1

    for window in (2, 3, 7, 16, 32, 64, 101):
        for vf in (0.01, 0.05, 0.1, 0.2, 0.25, 1 / 3, 0.5, 0.75, 0.89):
            assert _min_prices(window, vf) == linear(window, vf), (window, vf)
    assert _min_prices(10**12, 0.2) >= 5 * 10**12  # instant, no scan
    assert _min_prices(64, 1e-300) > 2**62  # no length is enough: stops, still says "need"


# ------------------------------------------------------------ holdout arguments
@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"holdout_offset": 1}, "holdout_offset needs holdout_every"),
        ({"holdout_block": 100}, "holdout_block needs holdout_every"),
        ({"holdout_block": 252}, "holdout_block needs holdout_every"),
        ({"holdout_block": 60, "holdout_offset": 0}, "holdout_block and holdout_offset need"),
    ],
)
def test_holdout_details_without_holdout_every(kwargs, names):
    with pytest.raises(ValueError, match=names):
        WindowData.from_prices(prices(), window=20, **kwargs)


def test_holdout_block_default_is_252():
    p = prices(2000)
    a = WindowData.from_prices(p, window=20, holdout_every=3)
    b = WindowData.from_prices(p, window=20, holdout_every=3, holdout_block=252)
    assert np.array_equal(a.split, b.split)
    assert np.sum(a.split == "holdout") > 0


def test_cli_holdout_offset_alone_is_one_line(capsys):
    from stressvae.cli import main

    assert main(["train", "--holdout-offset", "1", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "holdout_offset needs holdout_every" in err


# ------------------------------------------------------------ suspicious prices
def test_unadjusted_split_warns_with_column_and_date():
    p = prices(300, "AB")
    p.iloc[150:, 1] *= 1000  # B: an unadjusted 1000:1 split
    with pytest.warns(PriceJumpWarning, match=r"column 'B' .*2020-07-29 \(x\d{3,4}\)") as rec:
        load_prices(p)
    assert len(rec) == 1  # A is fine
    with pytest.warns(PriceJumpWarning, match="'B'"):
        WindowData.from_prices(p, window=20)
    with pytest.warns(PriceJumpWarning, match="'B'"):
        WindowData.from_prices(p, window=20, pool=True)


def test_reverse_split_and_many_jumps_list_the_dates():
    p = prices(300)
    p.iloc[100:, 0] /= 10
    p.iloc[200:, 0] *= 5
    with pytest.warns(PriceJumpWarning, match=r"'A' .*2020-05-20 \(x0\.\d+\), 2020-10-07 \(x4\.9"):
        load_prices(p)
    q = prices(300)
    q.iloc[1::2, 0] *= 4  # every other day: list the first five, count the rest
    with pytest.warns(PriceJumpWarning, match=r"and 294 more"):
        load_prices(q)


def test_warning_is_a_user_warning_from_the_caller(tmp_path):
    assert issubclass(PriceJumpWarning, UserWarning)
    p = prices()
    p.iloc[10:, 0] *= 50
    path = tmp_path / "split.csv"
    p.to_csv(path)
    with pytest.warns(UserWarning, match="split.csv|'A'") as rec:
        load_prices(path)
    assert rec[0].filename == __file__


def test_crash_sized_moves_do_not_warn():
    p = prices(300)
    p.iloc[100:, 0] *= 1 - 0.2047  # 1987-10-19
    p.iloc[200:, 0] *= 1.6  # a very good day
    assert abs(np.log(0.7953)) < JUMP_LIMIT
    with warnings.catch_warnings():
        warnings.simplefilter("error", PriceJumpWarning)
        load_prices(p)


@pytest.mark.parametrize("name", ["sp500", "sp500_nasdaq"])
def test_bundled_data_gives_no_warning(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error", PriceJumpWarning)
        frame = sv.load_dataset(name)
        load_prices(frame)
        WindowData.from_prices(frame, window=64)
    worst = np.abs(np.diff(np.log(frame.to_numpy()), axis=0)).max()
    assert worst < JUMP_LIMIT / 5


def test_messages_never_mention_1970(tmp_path):
    bad = []
    for first in (np.arange(300), np.arange(300) * 0.5):
        path = write_csv(tmp_path / "x.csv", "id", first, prices())
        try:
            load_prices(path)
        except ValueError as err:
            bad.append(str(err))
    assert len(bad) == 2
    assert not any(re.search("1970", m) for m in bad)


# ------------------------------------------------------------ model files and arguments
def small_model(**kw):
    from stressvae.model import ScenarioVAE

    return ScenarioVAE(window=8, n_assets=2, latent_dim=3, hidden_dims=(8,), **kw)


def rewrite_model(path, src, config=None, thresholds=None, **tensors):
    """A copy of the model file ``src`` with its config, thresholds or some tensors replaced."""
    import json

    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(src), framework="pt") as f:
        meta = f.metadata()
        data = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no iteration
    if config is not None:
        meta["config"] = json.dumps({**json.loads(meta["config"]), **config})
    if thresholds is not None:
        meta["thresholds"] = json.dumps(thresholds)
    data.update({k: torch.as_tensor(v, dtype=torch.float32) for k, v in tensors.items()})
    save_file(data, str(path), metadata=meta)
    return path


@pytest.fixture
def model_file(tmp_path):
    return small_model().save(tmp_path / "good.safetensors")


def test_model_file_huge_config_refused_before_building(tmp_path, model_file):
    from stressvae.model import ScenarioVAE

    bad = rewrite_model(tmp_path / "huge.safetensors", model_file, config={"latent_dim": 3_000_000})
    with pytest.raises(ValueError, match=r"huge\.safetensors: tensor '[\w.]+' has shape"):
        ScenarioVAE.load(bad)
    bad = rewrite_model(tmp_path / "big.safetensors", model_file, config={"window": 10**30})
    with pytest.raises(ValueError, match=r"big\.safetensors"):
        ScenarioVAE.load(bad)


def test_model_file_shape_mismatch_names_tensor(tmp_path, model_file):
    from stressvae.model import ScenarioVAE

    bad = rewrite_model(tmp_path / "m.safetensors", model_file, config={"latent_dim": 4})
    with pytest.raises(ValueError, match=r"m\.safetensors: tensor '[\w.]+' has shape .* needs"):
        ScenarioVAE.load(bad)


@pytest.mark.parametrize("std", [0.0, -1.0, float("nan"), float("inf")])
def test_model_file_bad_scaler_std(tmp_path, model_file, std):
    from stressvae.model import ScenarioVAE

    bad = rewrite_model(tmp_path / "s.safetensors", model_file, scaler_std=[1.0, std])
    with pytest.raises(ValueError, match=r"s\.safetensors: tensor 'scaler_std'"):
        ScenarioVAE.load(bad)


def test_model_file_nan_thresholds(tmp_path, model_file):
    from stressvae.model import ScenarioVAE

    th = dict(calm_vol=0.01, crisis_vol=0.03, crisis_drawdown=-0.1, tail_return=-0.1)
    ok = rewrite_model(
        tmp_path / "ok.safetensors", model_file, thresholds={**th, "tail_drawdown": -0.2}
    )
    assert ScenarioVAE.load(ok).thresholds.tail_drawdown == -0.2
    bad = rewrite_model(
        tmp_path / "t.safetensors", model_file, thresholds={**th, "tail_drawdown": float("nan")}
    )
    with pytest.raises(
        ValueError, match=r"t\.safetensors.*thresholds tail_drawdown must be finite"
    ):
        ScenarioVAE.load(bad)
    bad = rewrite_model(tmp_path / "u.safetensors", model_file, thresholds={**th, "x": 1.0})
    with pytest.raises(ValueError, match=r"u\.safetensors.*bad model config"):
        ScenarioVAE.load(bad)


def test_anomaly_score_nan_kl_weight():
    w = np.zeros((2, 8, 2), np.float32)
    with pytest.raises(ValueError, match="kl_weight must be finite"):
        small_model().anomaly_score(w, kl_weight=float("nan"))


def test_model_arguments():
    with pytest.raises(ValueError, match=r"hidden_dims must be .* got 256"):
        sv.ScenarioVAE(window=8, hidden_dims=256)
    with pytest.raises(ValueError, match="n must be an integer >= 0, got -3"):
        small_model().sample(-3)
    gru = small_model(decoder="gru", rnn_hidden=8)
    with pytest.raises(ValueError, match="horizon must be an integer >= 1, got -3"):
        gru.sample(2, seed=1, horizon=-3)
    with pytest.raises(ValueError, match=r"seed must be in \[-9223372036854775808, "):
        gru.sample(2, seed=2**70)


# ------------------------------------------------------------ native sampler
def native_entry_points():
    import stressvae.native as nat

    mlp, gru = small_model(), small_model(decoder="gru", rnn_hidden=8)
    dec, ro = nat.NativeDecoder(mlp.export_decoder()), nat.NativeRollout(gru.export_decoder())
    mu, lv, z = np.zeros(3, np.float32), np.zeros(3, np.float32), np.zeros((4, 3), np.float32)
    return {
        "sample_latent": lambda **k: nat.sample_latent(mu, lv, 4, **k),
        "normals": lambda **k: nat.normals(4, 3, **k),
        "rollout_noise": lambda **k: nat.rollout_noise(4, 5, 2, 3, **k),
        "decoder.decode": lambda **k: dec.decode(z, **k),
        "decoder.sample": lambda **k: dec.sample(mu, lv, 4, **k),
        "rollout.rollout": lambda **k: ro.rollout(z, 5, **k),
        "rollout.sample": lambda **k: ro.sample(mu, lv, 4, horizon=5, **k),
    }


@pytest.fixture(scope="module")
def entry_points():
    return native_entry_points()


@pytest.mark.parametrize(
    "name",
    ["sample_latent", "normals", "rollout_noise", "decoder.decode", "decoder.sample",
     "rollout.rollout", "rollout.sample"],
)  # fmt: skip
@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"seed": -1}, r"seed must be in \[0, 18446744073709551615\], got -1"),
        ({"seed": 2**64}, r"seed must be in \[0, 18446744073709551615\]"),
        ({"seed": 1.5}, "seed must be an integer"),
        ({"seed": 1, "offset": -1}, r"offset must be in \[0, 18446744073709551615\]"),
        ({"seed": 1, "offset": 2**64 - 2}, r"offset \+ n must be <= 2\*\*64"),
    ],
)
def test_native_seed_and_offset(entry_points, name, kw, match):
    from stressvae.native import NativeInputError

    with pytest.raises(NativeInputError, match=match):
        entry_points[name](**kw)


def test_generator_seed_range():
    from stressvae.native import NativeInputError

    gen = sv.ScenarioGenerator(small_model(), device="cpu")
    with pytest.raises(NativeInputError, match=r"seed must be in \[0, 18446744073709551615\]"):
        gen.sample(4, seed=-1)


def test_sampler_overflow_refused():
    import stressvae.native as nat

    mu, huge = np.zeros(8, np.float32), np.full(8, 1e30, np.float32)
    with pytest.raises(nat.NativeInputError, match="logvar and scale too large"):
        nat.sample_latent(mu, huge, 100, seed=1)
    # the clamp's top (176: std 1.65e38) still fits with a small enough scale
    z = nat.sample_latent(mu, np.full(8, 176, np.float32), 1000, seed=1, scale=0.3)
    assert np.isfinite(z).all()
    with pytest.raises(nat.NativeInputError, match="logvar and scale too large"):
        nat.sample_latent(mu, np.zeros(8, np.float32), 100, seed=1, scale=1e38)
    rows = np.zeros((3, 8), np.float32)
    rows[2, 5] = 200.0
    with pytest.raises(nat.NativeInputError, match=r"logvar=200.*position \(2, 5\)"):
        nat.sample_latent(rows.copy() * 0, rows, seed=1)


def test_fused_decoder_and_rollout_overflow_refused():
    import stressvae.native as nat

    dec = nat.NativeDecoder(small_model().export_decoder())
    ro = nat.NativeRollout(small_model(decoder="gru", rnn_hidden=8).export_decoder())
    mu, huge = np.zeros(3, np.float32), np.full(3, 1e30, np.float32)
    with pytest.raises(nat.NativeInputError, match="logvar and scale too large"):
        dec.sample(mu, huge, 4, seed=1)
    with pytest.raises(nat.NativeInputError, match="logvar and scale too large"):
        ro.sample(mu, huge, 4, horizon=5, seed=1)


# ------------------------------------------------------------ shard folders (untrusted manifests)
def shard_folder(path, counts=(3, 2), horizon=4, assets=2, edit=None):
    """A valid shard folder as distributed.write_shards leaves it, the
    manifest passed through ``edit`` first."""
    import json

    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    entries, parts, start = [], [], 0
    for i, c in enumerate(counts):
        arr = rng.normal(size=(c, horizon, assets)).astype(np.float32)
        np.save(path / f"shard-{i:05d}.npy", arr)
        entries.append({"path": f"shard-{i:05d}.npy", "start": start, "count": c})
        parts.append(arr)
        start += c
    manifest = {
        "format": "stressvae-shards/1", "n": start, "set": "prior", "seed": 1,
        "horizon": horizon, "drift": "keep", "assets": [f"a{j}" for j in range(assets)],
        "units": "daily log returns", "shards": entries,
    }  # fmt: skip
    if edit is not None:
        edit(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path, np.concatenate(parts)


def test_valid_shard_folder_reads_back(tmp_path):
    from stressvae.distributed import load_shards

    folder, want = shard_folder(tmp_path / "run")
    got = load_shards(folder)
    assert got.dtype == np.float32 and np.array_equal(got, want)


def _outside(tmp_path):
    (tmp_path / "outside").mkdir(exist_ok=True)
    np.save(tmp_path / "outside" / "x.npy", np.ones((3, 4, 2), np.float32))
    return str(tmp_path / "outside" / "x.npy")


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda m, o: m["shards"][0].update(path="../outside/x.npy"),
         r"manifest\.json.*'\.\./outside/x\.npy' is not a plain file name"),
        (lambda m, o: m["shards"][0].update(path=o), r"manifest\.json.*x\.npy' is not a plain"),
        (lambda m, o: m["shards"][0].update(path=".."), r"'\.\.' is not a plain file name"),
        (lambda m, o: m["shards"][0].update(path="sub\\x.npy"), "is not a plain file name"),
        (lambda m, o: m.update(format="stressvae-shards/9"), r"format is 'stressvae-shards/9'"),
        (lambda m, o: m.update(n=99), "the shards hold 5 scenarios, n says 99"),
        (lambda m, o: m["shards"].__setitem__(1, dict(m["shards"][0], start=3)),
         "shard 'shard-00000.npy' is listed twice"),
        (lambda m, o: m["shards"][1].update(start=7),
         "shard 'shard-00001.npy' has start 7, expected 3"),
        (lambda m, o: m["shards"][1].update(count=0), "has count 0, expected >= 1"),
        (lambda m, o: m["shards"][1].update(count="2"), "field 'count' has the wrong type"),
        (lambda m, o: m.update(n=True), "field 'n' has the wrong type"),
        (lambda m, o: m.pop("horizon"), "missing field 'horizon'"),
        (lambda m, o: m.update(assets="a0"), "field 'assets' has the wrong type"),
        (lambda m, o: m.update(shards={"path": "x"}), "field 'shards' has the wrong type"),
        (lambda m, o: m["shards"].append(5), r"shards\[2\] is not an object"),
    ],
)  # fmt: skip
def test_bad_manifest_names_the_manifest_and_field(tmp_path, edit, match):
    from stressvae.distributed import load_shards

    outside = _outside(tmp_path)
    folder, _ = shard_folder(tmp_path / "run", edit=lambda m: edit(m, outside))
    with pytest.raises(ValueError, match=match):
        load_shards(folder)


def test_manifest_that_is_not_json(tmp_path):
    from stressvae.distributed import load_shards

    folder, _ = shard_folder(tmp_path / "run")
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"run/manifest\.json: not valid JSON"):
        load_shards(folder)
    (folder / "manifest.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"manifest\.json: not a JSON object"):
        load_shards(folder)


def test_shard_symlink_out_of_the_folder_is_refused(tmp_path):
    import os

    from stressvae.distributed import load_shards

    outside = _outside(tmp_path)
    folder, _ = shard_folder(tmp_path / "run", counts=(3,))
    os.remove(folder / "shard-00000.npy")
    os.symlink(outside, folder / "shard-00000.npy")
    with pytest.raises(ValueError, match=r"shard shard-00000\.npy in .*run resolves outside"):
        load_shards(folder)


def test_missing_truncated_or_wrong_shard_names_file_and_folder(tmp_path):
    from stressvae.distributed import load_shards

    folder, _ = shard_folder(tmp_path / "miss")
    (folder / "shard-00001.npy").unlink()
    with pytest.raises(ValueError, match=r"shard shard-00001\.npy in .*miss is missing"):
        load_shards(folder)
    folder, _ = shard_folder(tmp_path / "cut")
    shard = folder / "shard-00001.npy"
    shard.write_bytes(shard.read_bytes()[:-7])
    with pytest.raises(ValueError, match=r"shard-00001\.npy in .*cut is truncated"):
        load_shards(folder)
    folder, _ = shard_folder(tmp_path / "f64")
    np.save(folder / "shard-00000.npy", np.zeros((5, 99, 3)))
    with pytest.raises(ValueError, match=r"shard-00000\.npy in .*f64 holds float64 \(5, 99, 3\), "
                                         r"the manifest says float32 \(3, 4, 2\)"):  # fmt: skip
        load_shards(folder)
    folder, _ = shard_folder(tmp_path / "junk")
    (folder / "shard-00000.npy").write_bytes(b"not an npy file at all")
    with pytest.raises(ValueError, match=r"shard-00000\.npy in .*junk is not a readable \.npy"):
        load_shards(folder)


# ------------------------------------------------------------ memory and disk space
def test_check_free_space_names_folder_and_sizes(tmp_path):
    from stressvae._files import check_free_space

    check_free_space(tmp_path / "new" / "x.npy", 1, "a test file")  # fits; folder not made
    with pytest.raises(OSError, match=r"a test file needs .* GiB .* but .* has only .* GiB"):
        check_free_space(tmp_path / "new" / "x.npy", 1 << 62, "a test file")


def test_write_shards_checks_free_space_before_starting(tmp_path):
    from stressvae.distributed import write_shards

    gen = sv.ScenarioGenerator(small_model(), device="cpu")
    with pytest.raises(OSError, match=r"1000000000000 scenarios in shards needs .* GiB"):
        write_shards(gen, gen.prior_plan(10**12), 1, tmp_path / "run", 1000)
    assert not (tmp_path / "run").exists()


def test_sample_refuses_more_than_memory_before_allocating(monkeypatch):
    import stressvae.generate as G

    gen = sv.ScenarioGenerator(small_model(), device="cpu")
    with pytest.raises(MemoryError, match=r"n=1000000000000 .* GiB .* available.*iter_chunks"):
        gen.sample(10**12, seed=1)
    monkeypatch.setattr(G, "available_memory", lambda: 1 << 20)
    with pytest.raises(MemoryError, match=r"need 0\.0 GiB of memory, 0\.0 GiB is available"):
        gen.sample(100_000, seed=1)
    assert len(gen.sample(1000, seed=1)) == 1000  # 64 KB fits


# ------------------------------------------------------------ strategies and backtests
def scenarios_with(returns):
    from stressvae.generate import Scenarios

    m, h, a = returns.shape
    tags = pd.DataFrame({"scenario": np.arange(m) + 100})
    return Scenarios(returns.astype(np.float32), tags, 0, h, h, list("AB")[:a], "keep")


@pytest.mark.parametrize(
    ("func", "match"),
    [
        (lambda c: c * np.nan, r"'broken': sizes hold NaN .*first on day 0"),
        (lambda c: (c * np.nan, c > 0), r"'broken': entries hold NaN"),
        (lambda c: (c > 0, c.shift(-4) * 0), r"'broken': exits hold NaN \(12 NaN or missing; .*day 5 "),
        (lambda c: (c.astype(str), c > 0), r"'broken': entries must be booleans or numbers, got dtype object holding str"),
        (lambda c: (c > 0, c.to_numpy().astype("U8")), r"'broken': exits must be booleans or numbers, got dtype <U8"),
    ],
)  # fmt: skip
def test_custom_strategy_nan_or_strings_refused(func, match):
    from stressvae.strategies import Custom

    r = np.random.default_rng(0).normal(0, 0.01, (3, 8, 1))
    with pytest.raises(ValueError, match=match):
        sv.backtest(scenarios_with(r), Custom(func, name="broken"))


@pytest.mark.parametrize("backend", ["fast", "vectorbt"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_scenarios_refused_by_both_backends(backend, bad):
    from stressvae.strategies import BuyAndHold

    r = np.zeros((3, 8, 2))
    r[1, 4, 1] = bad
    match = r"finite prices > 0.*1 path\(s\).*scenario 101, asset 'B'"
    with pytest.raises(ValueError, match=match):
        sv.backtest(scenarios_with(r), BuyAndHold(), backend=backend)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"horizon": 20, "stride": 0}, r"stride must be an integer >= 1, got 0"),
        ({"horizon": 20, "stride": 2.5}, r"stride must be an integer, got 2\.5"),
        ({"horizon": -5}, r"horizon must be an integer >= 1, got -5"),
        ({"horizon": 64.5}, r"horizon must be an integer, got 64\.5"),
    ],
)
def test_historical_windows_arguments(kw, match):
    from stressvae.strategies import BuyAndHold

    with pytest.raises(ValueError, match=match):
        sv.historical_windows(prices(), BuyAndHold(), **kw)


# ------------------------------------------------------------ realism
def test_evaluate_arguments():
    from stressvae.realism import evaluate

    gen = sv.ScenarioGenerator(small_model(), device="cpu")
    with pytest.raises(ValueError, match="data must be a WindowData, got str"):
        evaluate({"vae": gen}, "prices.csv")
    data = WindowData.from_prices(prices(300, "AB"), window=8)
    for kw, match in [
        ({"n": 0}, "n must be an integer >= 1, got 0"),
        ({"n_long": -1}, "n_long must be an integer >= 1, got -1"),
        ({"long_horizon": 2.5}, r"long_horizon must be an integer, got 2\.5"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
        ({"discriminator_epochs": 0}, "discriminator_epochs must be an integer >= 1, got 0"),
    ]:
        with pytest.raises(ValueError, match=match):
            evaluate({"vae": gen}, data, baselines=False, **kw)


# ------------------------------------------------------------ the command line (one line, exit 2)
def run_cli(capsys, *args):
    """stressvae.cli.main in this process: (exit code, stderr lines)."""
    from stressvae.cli import main

    capsys.readouterr()
    rc = main([*args])
    return rc, capsys.readouterr().err.strip().splitlines()


def assert_one_line(rc, err, *names):
    assert rc == 2, err
    assert len(err) == 1 and err[0].startswith("stressvae: error: "), err
    for name in names:
        assert str(name) in err[0], (name, err)


@pytest.fixture
def cli_model(tmp_path):
    return small_model().save(tmp_path / "cli.safetensors")


@pytest.mark.parametrize("cmd", ["generate", "train", "report", "evaluate"])
def test_cli_out_under_a_file_or_a_folder(tmp_path, capsys, cli_model, cmd):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir.npy").mkdir()
    src = ["--model", str(cli_model)] if cmd in ("generate", "evaluate") else []
    if cmd == "report":
        src = [str(tmp_path)]
    for out, culprit in [
        (tmp_path / "afile" / "x.npy", "afile is a file, not a folder"),
        (tmp_path / "adir.npy", "is a folder; give a file name"),
    ]:
        rc, err = run_cli(capsys, cmd, *src, "--out", str(out))
        assert_one_line(rc, err, f"--out {out}", culprit)


@pytest.mark.parametrize("cmd", ["stress", "demo"])
def test_cli_out_folder_that_is_a_file(tmp_path, capsys, cli_model, cmd):
    (tmp_path / "afile").write_text("x")
    src = ["--model", str(cli_model)] if cmd == "stress" else []
    rc, err = run_cli(capsys, cmd, *src, "--out", str(tmp_path / "afile"))
    assert_one_line(rc, err, f"--out {tmp_path / 'afile'} is a file; give a folder")
    rc, err = run_cli(capsys, cmd, *src, "--out", str(tmp_path / "afile" / "sub"))
    assert_one_line(rc, err, "afile is a file, not a folder")


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_cli_out_in_proc(capsys, cli_model):
    rc, err = run_cli(capsys, "generate", "--model", str(cli_model), "--out", "/proc/x.npy")
    assert_one_line(rc, err, "--out /proc/x.npy: cannot write in /proc")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_cli_out_in_a_read_only_folder(tmp_path, capsys, cli_model):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        rc, err = run_cli(capsys, "generate", "--model", str(cli_model), "--out", str(ro / "x.npy"))
        assert_one_line(rc, err, f"cannot write in {ro}")
    finally:
        ro.chmod(0o755)


def test_cli_generate_more_than_the_disk_holds(tmp_path, capsys, cli_model):
    out = tmp_path / "big.npy"
    rc, err = run_cli(
        capsys, "generate", "--model", str(cli_model), "--n", "1e12", "--out", str(out)
    )
    assert_one_line(rc, err, f"--out {out}", "1,000,000,000,000 scenarios", "GiB", "free")
    assert not list(tmp_path.glob("*.npy")) and not list(tmp_path.glob(".*.tmp"))


def test_cli_train_data_is_a_folder(tmp_path, capsys):
    rc, err = run_cli(capsys, "train", "--data", str(tmp_path), "--out", str(tmp_path / "m.st"))
    assert_one_line(rc, err, str(tmp_path), "is a directory")


@pytest.mark.parametrize(
    ("cmd", "seed"),
    [("train", "-1"), ("generate", "-1"), ("stress", str(2**64)), ("evaluate", "-5")],
)
def test_cli_seed_out_of_range(tmp_path, capsys, cli_model, cmd, seed):
    src = [] if cmd == "train" else ["--model", str(cli_model)]
    rc, err = run_cli(capsys, cmd, *src, "--seed", seed, "--out", str(tmp_path / "o.npy"))
    assert_one_line(rc, err, f"--seed must be in [0, 18446744073709551615], got {seed}")


@pytest.mark.parametrize("weight", ["nan", "inf", "-1"])
def test_cli_anomalies_kl_weight(capsys, cli_model, weight):
    rc, err = run_cli(capsys, "anomalies", "--model", str(cli_model), "--kl-weight", weight)
    assert_one_line(rc, err, "--kl-weight must be")


def test_cli_model_with_nan_thresholds(tmp_path, capsys, cli_model):
    th = dict(calm_vol=0.01, crisis_vol=0.03, crisis_drawdown=-0.1, tail_return=-0.1)
    bad = rewrite_model(
        tmp_path / "t.safetensors", cli_model, thresholds={**th, "tail_drawdown": float("nan")}
    )
    for cmd, out in [("generate", ["--out", str(tmp_path / "o.npy")]),
                     ("stress", ["--out", str(tmp_path / "o")]), ("anomalies", [])]:  # fmt: skip
        rc, err = run_cli(capsys, cmd, "--model", str(bad), *out)
        assert_one_line(rc, err, bad, "tail_drawdown must be finite")


def report_folder(path, edit=None, metrics=None):
    """A folder StressReport.load reads (every field None, sweep a list)."""
    import dataclasses
    import json

    from stressvae.report import StressReport

    path.mkdir()
    for name in ("metrics", "historical", "anomalies"):
        frame = pd.DataFrame({"set": ["prior"], "total_return": [0.1]})
        (metrics if name == "metrics" and metrics is not None else frame).to_parquet(
            path / f"{name}.parquet"
        )
    meta = {f.name: None for f in dataclasses.fields(StressReport)}
    for name in ("metrics", "historical", "anomalies"):
        del meta[name]
    meta["sweep"] = ["calm", "crisis"]
    if edit is not None:
        edit(meta)
    (path / "report.json").write_text(json.dumps(meta))
    return path


@pytest.mark.parametrize(
    ("edit", "metrics", "culprit"),
    [
        (lambda m: m.pop("sweep"), None, "report.json is damaged: missing field(s) sweep"),
        (lambda m: m.pop("history"), None, "report.json is damaged: missing field(s) history"),
        (lambda m: m.update(bogus=1), None, "report.json is damaged: unknown field(s) bogus"),
        (lambda m: m.update(sweep=3), None, "report.json is damaged: 'sweep' is not a list"),
        (None, pd.DataFrame({"x": [1.0]}), "metrics.parquet is damaged: no column 'set'"),
        (None, None, "is a damaged stress report (TypeError"),  # loads, cannot render
    ],
)  # fmt: skip
def test_cli_report_on_a_damaged_folder(tmp_path, capsys, edit, metrics, culprit):
    folder = report_folder(tmp_path / "run", edit, metrics)
    rc, err = run_cli(capsys, "report", str(folder))
    assert_one_line(rc, err, folder, culprit)
    assert not (folder / "report.html").exists()


def test_report_load_names_the_damaged_file(tmp_path):
    from stressvae.report import StressReport

    folder = report_folder(tmp_path / "a")
    (folder / "report.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"a/report\.json is not valid JSON"):
        StressReport.load(folder)
    (folder / "report.json").write_text("[1]")
    with pytest.raises(ValueError, match=r"a/report\.json is not a JSON object"):
        StressReport.load(folder)
    folder = report_folder(tmp_path / "b")
    (folder / "historical.parquet").write_bytes(b"junk")
    with pytest.raises(ValueError, match=r"b/historical\.parquet is not a readable table"):
        StressReport.load(folder)

"""`stressvae train` and `stressvae anomalies` as a user runs them."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from stressvae import ScenarioVAE


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stressvae", *args], capture_output=True, text=True
    )


def test_train_then_list_anomalies(tmp_path):
    out = tmp_path / "m.safetensors"
    res = cli(
        "train",
        "--window",
        "32",
        "--epochs",
        "3",
        "--hidden",
        "64",
        "--latent-dim",
        "4",
        "--out",
        str(out),
        "--quiet",
    )
    assert res.returncode == 0, res.stderr
    model = ScenarioVAE.load(out)
    assert (model.window, model.latent_dim, model.hidden_dims) == (32, 4, (64,))
    assert model.fitted and model.thresholds is not None

    res = cli("anomalies", "--model", str(out), "--top", "5")
    assert res.returncode == 0, res.stderr
    rows = [ln for ln in res.stdout.splitlines() if re.match(r"\s+\d+\s+\d{4}-\d\d-\d\d", ln)]
    assert len(rows) == 5
    spans = [tuple(pd.Timestamp(x) for x in re.findall(r"\d{4}-\d\d-\d\d", ln)[:2]) for ln in rows]
    assert all((e - s).days > 30 for s, e in spans)  # 32 trading days each
    scores = [float(ln.split()[3]) for ln in rows]
    assert scores == sorted(scores, reverse=True)


def test_train_reports_what_it_did(tmp_path):
    res = cli(
        "train",
        "--window",
        "32",
        "--epochs",
        "2",
        "--hidden",
        "32",
        "--latent-dim",
        "2",
        "--out",
        str(tmp_path / "m.safetensors"),
    )
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "sp500: 4,999 windows of 32 days x 1 asset(s) (SP500)" in out
    assert re.search(
        r"trained\s+2 epochs in [\d.]+ s .*validation loss [\d.]+ -> [\d.]+ nats/window", out
    )
    assert re.search(
        r"today\s+the latest window \(ending 2018-12-31\) looks (calm|normal|crisis)", out
    )


def test_train_on_a_csv_of_two_assets(tmp_path):
    rng = np.random.default_rng(0)
    idx = pd.bdate_range("2010-01-01", periods=700)
    prices = pd.DataFrame(
        100 * np.exp(np.cumsum(rng.normal(0, 0.01, (700, 2)), 0)), index=idx, columns=["X", "Y"]
    )
    prices.to_csv(tmp_path / "p.csv")
    res = cli(
        "train",
        "--data",
        str(tmp_path / "p.csv"),
        "--window",
        "20",
        "--epochs",
        "2",
        "--out",
        str(tmp_path / "m.safetensors"),
        "--quiet",
    )
    assert res.returncode == 0, res.stderr
    assert ScenarioVAE.load(tmp_path / "m.safetensors").n_assets == 2


def test_errors_are_one_line(tmp_path):
    bad = tmp_path / "p.csv"
    pd.DataFrame({"date": ["2020-01-01", "2020-01-02"], "X": [1.0, -1.0]}).to_csv(bad, index=False)
    for args, msg in [
        (
            ("train", "--data", str(bad), "--epochs", "1"),
            "prices must be > 0: column 'X' has -1 at 2020-01-02",
        ),
        (("train", "--data", "nope.csv"), "price file not found: nope.csv"),
        (("anomalies", "--model", str(tmp_path / "none.safetensors")), "model file not found"),
    ]:
        res = cli(*args)
        assert res.returncode == 2
        assert res.stderr.startswith("stressvae: error: ") and msg in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1


def test_generate_streams_to_npy_and_parquet(tmp_path, trained_model_file):
    out = tmp_path / "s.npy"
    res = cli(
        "generate",
        "--model",
        str(trained_model_file),
        "--n",
        "5000",
        "--seed",
        "3",
        "--out",
        str(out),
        "--chunk-size",
        "1500",
        "--quiet",
    )
    assert res.returncode == 0, res.stderr
    arr = np.load(out)
    assert arr.shape == (5000, 32, 1) and arr.dtype == np.float32
    # the file holds exactly what the generator makes
    from stressvae import ScenarioGenerator

    want = (
        ScenarioGenerator(ScenarioVAE.load(trained_model_file), device="cpu")
        .sample(5000, seed=3)
        .returns
    )
    assert np.array_equal(arr, want)
    res = cli(
        "generate",
        "--model",
        str(trained_model_file),
        "--n",
        "110",
        "--mode",
        "sweep",
        "--steps",
        "11",
        "--horizon",
        "40",
        "--out",
        str(tmp_path / "w.parquet"),
    )
    assert res.returncode == 0, res.stderr
    assert "110 scenarios from calm to crisis in 11 steps, 40 days x 1 asset(s)" in res.stdout
    frame = pd.read_parquet(tmp_path / "w.parquet")
    assert len(frame) == 110 * 40 and sorted(frame["step"].unique()) == list(range(11))
    res = cli(
        "generate",
        "--model",
        str(trained_model_file),
        "--n",
        "10",
        "--out",
        str(tmp_path / "x.csv"),
    )
    assert res.returncode == 2 and "--out must end in .npy or .parquet" in res.stderr
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.fixture(scope="module")
def trained_model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "m.safetensors"
    res = cli(
        "train",
        "--window",
        "32",
        "--epochs",
        "3",
        "--hidden",
        "64",
        "--latent-dim",
        "4",
        "--out",
        str(path),
        "--quiet",
    )
    assert res.returncode == 0, res.stderr
    return path


def test_stress_then_report_again(tmp_path, trained_model_file):
    out = tmp_path / "rep"
    res = cli(
        "stress",
        "--model",
        str(trained_model_file),
        "--strategy",
        "ma:5,20",
        "--n",
        "2000",
        "--steps",
        "3",
        "--fees",
        "0.001",
        "--out",
        str(out),
        "--device",
        "cpu",
    )
    assert res.returncode == 0, res.stderr
    assert re.search(r"loss\s+P\(total return < 0\) over \d+ days: \d+\.\d%", res.stdout)
    assert (out / "report.html").exists() and (out / "metrics.parquet").exists()
    frame = pd.read_parquet(out / "metrics.parquet")
    assert (frame["set"] == "prior").sum() == 2000 and set(frame["set"]) == {
        "prior",
        "sweep",
        "tail",
    }
    (out / "report.html").unlink()
    res = cli("report", str(out), "--quiet")
    assert res.returncode == 0, res.stderr and (out / "report.html").exists()
    res = cli("report", str(tmp_path))
    assert res.returncode == 2 and "is not a saved stress report" in res.stderr


@pytest.mark.slow
def test_demo_runs_the_whole_stress_test_and_reuses_its_model(tmp_path):
    out = tmp_path / "demo"
    res = cli("demo", "--n", "3000", "--out", str(out), "--device", "cpu", "--quiet")
    assert res.returncode == 0, res.stderr
    html = (out / "report.html").read_text()
    assert "Stress test: MACrossover(fast_window=10, slow_window=40)" in html
    model_time = (out / "model.safetensors").stat().st_mtime
    res = cli("demo", "--n", "2000", "--out", str(out), "--device", "cpu")
    assert res.returncode == 0, res.stderr
    assert "reusing" in res.stdout and (out / "model.safetensors").stat().st_mtime == model_time
    assert re.search(
        r"regimes\s+median Sharpe -?\d+\.\d\d in calm markets, -?\d+\.\d\d in crisis", res.stdout
    )


def test_evaluate_side_by_side_and_refuses_references_it_trained_on(tmp_path):
    model = tmp_path / "m.safetensors"
    split = ["--split-date", "2013-01-01", "--holdout-every", "5", "--holdout-offset", "2"]
    res = cli(
        "train", "--window", "32", "--epochs", "3", "--hidden", "32", *split,
        "--out", str(model), "--quiet",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    page = tmp_path / "realism.html"
    args = ["evaluate", "--model", str(model), "--n", "600", "--n-long", "40"]
    args += ["--discriminator-epochs", "2", "--out", str(page)]
    res = cli(*args, *split)
    assert res.returncode == 0, res.stderr
    head = res.stdout.splitlines()
    assert any("real holdout" in ln and "garch" in ln for ln in head)
    es = next(ln for ln in head if re.search(r"\bes_99\b", ln)).split()
    assert all(0.005 < float(v) < 0.2 for v in es[-6:])  # six columns of daily ES99
    assert "data:image/png;base64," in page.read_text()
    # another holdout year would be windows it was trained on
    res = cli(*args, *split[:-1], "0")
    assert res.returncode == 2
    assert "was trained on" in res.stderr and "split_date" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_recurrent_decoder_from_the_command_line(tmp_path):
    """--decoder gru: train, then long paths rolled out day by day (with and
    without the regime half-life) and a stress test on them."""
    model_path = tmp_path / "gru.safetensors"
    res = cli(
        "train", "--window", "32", "--epochs", "3", "--hidden", "32", "--latent-dim", "4",
        "--decoder", "gru", "--rnn-hidden", "24", "--out", str(model_path), "--quiet",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    model = ScenarioVAE.load(model_path)
    assert (model.decoder_kind, model.rnn_hidden, model.window) == ("gru", 24, 32)

    out = tmp_path / "paths.npy"
    res = cli(
        "generate", "--model", str(model_path), "--n", "300", "--horizon", "252",
        "--out", str(out), "--seed", "3",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "rolled out day by day" in res.stdout
    paths = np.load(out)
    from stressvae import ScenarioGenerator

    direct = ScenarioGenerator(model, device="cpu").sample(300, seed=3, horizon=252).returns
    assert paths.shape == (300, 252, 1) and np.array_equal(paths, direct)

    res = cli(
        "generate", "--model", str(model_path), "--n", "300", "--horizon", "252",
        "--out", str(tmp_path / "hl.npy"), "--seed", "3", "--regime-halflife", "40", "--quiet",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    hl = np.load(tmp_path / "hl.npy")
    assert np.array_equal(hl[:, 0], paths[:, 0]) and not np.array_equal(hl, paths)

    res = cli(
        "stress", "--model", str(model_path), "--n", "2000", "--horizon", "100",
        "--strategy", "ma:5,20", "--out", str(tmp_path / "run"), "--regime-halflife", "60",
        "--device", "cpu", "--quiet",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    html = (tmp_path / "run" / "report.html").read_text()
    assert "gru decoder" in html and "rolled out day by day" in html

    res = cli(
        "generate", "--model", str(tmp_path / "gru.safetensors"), "--n", "10",
        "--regime-halflife", "-3", "--out", str(tmp_path / "bad.npy"),
    )  # fmt: skip
    assert res.returncode != 0 and "regime-halflife" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad.npy").exists()


def test_cli_default_decoder_is_the_models():
    from stressvae import cli as cli_mod
    from stressvae import model as model_mod

    assert cli_mod.DEFAULT_DECODER == model_mod.DEFAULT_DECODER


# ------------------------------------------------------------ interruptions and bugs (issue 14)
@pytest.mark.parametrize(("sig", "code", "line"), [
    (signal.SIGTERM, 143, "stressvae: terminated (SIGTERM)"),
    (signal.SIGINT, 130, "stressvae: interrupted (Ctrl-C)"),
])  # fmt: skip
def test_signal_during_generate_leaves_no_temp_file(tmp_path, trained_model_file, sig, code, line):
    """SIGTERM takes Ctrl-C's clean-up path: exit 143 (130 for Ctrl-C), one
    line, neither the output nor its temporary file left behind."""
    out = tmp_path / "s.npy"
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "stressvae", "generate", "--model", str(trained_model_file),
         "--n", "2e7", "--out", str(out), "--quiet"],
        stderr=subprocess.PIPE, text=True,
        # as from a terminal: a test run before this one (a Dask cluster) can
        # leave SIGINT ignored in pytest's process, and a child inherits that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:  # 2.6 GB: the temporary file appears, then the signal comes mid-write
        while not list(tmp_path.glob(".s.npy.*.tmp")) and time.monotonic() - t0 < 20:
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.02)
        time.sleep(0.05)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert err.strip().splitlines() == [line]
    assert list(tmp_path.iterdir()) == []
    assert time.monotonic() - t0 < 30


def test_user_errors_are_one_line_through_the_command(tmp_path):
    (tmp_path / "afile").write_text("x")
    res = cli("train", "--out", str(tmp_path / "afile" / "m.safetensors"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip() == (
        f"stressvae: error: --out {tmp_path / 'afile' / 'm.safetensors'}: "
        f"{tmp_path / 'afile'} is a file, not a folder"
    )


def test_a_bug_keeps_its_traceback_and_help_says_so(monkeypatch, capsys):
    from stressvae import cli as cli_mod

    def broken(args):
        raise KeyError("a bug in stressvae")

    monkeypatch.setattr(cli_mod, "cmd_info", broken)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyError, match="a bug in stressvae"):
        cli_mod.main(["info"])
    assert signal.getsignal(signal.SIGTERM) == before  # main's SIGTERM handler is restored

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_mod, "cmd_info", interrupted)
    assert cli_mod.main(["info"]) == 130
    assert capsys.readouterr().err == "stressvae: interrupted (Ctrl-C)\n"
    help_text = " ".join(cli_mod.build_parser().format_help().split())
    assert "130 Ctrl-C, 143 SIGTERM" in help_text and "prints a traceback and exits 1" in help_text


@pytest.mark.slow
def test_demo_on_several_assets_stress_tests_a_portfolio(tmp_path):
    """--data sp500_nasdaq: a factor model on both indices, an equal-weight
    portfolio by default, then fixed weights by name on the cached model."""
    out = tmp_path / "demo"
    common = ["--data", "sp500_nasdaq", "--window", "32", "--epochs", "3", "--out", str(out)]
    res = cli("demo", *common, "--n", "2000", "--device", "cpu", "--quiet")
    assert res.returncode == 0, res.stderr
    assert "Stress test: EqualWeight" in (out / "report.html").read_text()
    model = json.loads((out / "model.json").read_text())
    assert model["data"] == "sp500_nasdaq" and model["window"] == 32
    res = cli("demo", *common, "--n", "2000", "--device", "cpu",
              "--strategy", "weights:SP500=0.7,NASDAQ=0.3")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "reusing" in res.stdout and "FixedWeights" in res.stdout
    # weights that do not fit the data: one line, exit 2, before any training
    for spec, what in (("weights:0.5,0.3,0.2", "weights"), ("weights:SPX=1", "SPX")):
        res = cli("demo", *common, "--strategy", spec, "--out", str(tmp_path / "bad"))
        assert res.returncode == 2, res.stderr
        assert what in res.stderr and len(res.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "bad").exists()

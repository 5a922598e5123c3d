"""Sharded runs on a local Dask cluster of 2 worker processes: the union of
the shards equals the single-process result exactly, also when a worker
dies mid-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import stressvae as sv
from stressvae import strategies as S
from stressvae.backtesting import backtest_plan
from stressvae.distributed import (
    FAULT_ENV,
    generate,
    load_shards,
    local_client,
    shard_ranges,
)


@pytest.fixture(autouse=True)
def bounded_time():
    """Each test here ends within 4 minutes: a hung cluster fails, never stalls CI."""

    def fail(*_):
        raise TimeoutError("a Dask test ran over 240 s")

    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(240)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module")
def client():
    with local_client(2) as c:
        yield c


@pytest.fixture(scope="module")
def gen(trained, sp500_data):
    return sv.ScenarioGenerator(trained[0], sp500_data, device="cpu")


@pytest.mark.parametrize("n,k", [(10, 3), (1, 4), (1000, 7), (5, 5), (0, 2)])
def test_shard_ranges_cover_every_index_once(n, k):
    ranges = shard_ranges(n, k)
    ids = np.concatenate([np.arange(s, s + c) for s, c in ranges]) if ranges else np.array([])
    assert np.array_equal(ids, np.arange(n))
    sizes = [c for _, c in ranges]
    assert not sizes or max(sizes) - min(sizes) <= 1


@pytest.mark.slow
def test_backtest_on_dask_equals_local_and_uses_both_workers(client, gen):
    kw = dict(n=9_001, seed=11, fees=0.001, slippage=0.0005, horizon=150, drift="historical")
    local = sv.backtest(gen, S.MACrossover(10, 40), **kw)
    dask = sv.backtest(gen, S.MACrossover(10, 40), engine="dask", client=client, shards=7, **kw)
    assert dask.metrics.equals(local.metrics)  # bit for bit, tags included
    assert dask.backend == local.backend == "fast"
    # every shard ran on a worker process, and both workers took some
    _, _, pids = backtest_plan(
        gen, gen.prior_plan(2000), 3, 64, "keep", S.BuyAndHold(), local.config,
        client=client, shards=8,
    )  # fmt: skip
    assert len(pids) == 2 and os.getpid() not in pids


@pytest.mark.slow
def test_stress_test_on_dask_is_the_same_report(client, trained, sp500_data):
    model = trained[0]
    kw = dict(n=4000, seed=5, steps=3, n_per_step=500, tail_n=700, fees=0.001, device="cpu")
    kw.update(progress=False)
    local = sv.stress_test(model, sp500_data, S.MACrossover(10, 40), **kw)
    dask = sv.stress_test(
        model, sp500_data, S.MACrossover(10, 40), engine="dask", client=client, shards=3, **kw
    )
    assert dask.metrics.equals(local.metrics)
    assert dask.fan == local.fan and dask.headline() == local.headline()
    assert set(dask.metrics["set"]) == {"prior", "sweep", "tail"}


@pytest.mark.slow
def test_a_worker_that_dies_is_replaced_and_its_shard_rerun(tmp_path, monkeypatch, gen):
    marker = tmp_path / "killed"
    monkeypatch.setenv(FAULT_ENV, str(marker))  # the workers inherit it
    kw = dict(n=6000, seed=2, fees=0.001)
    with local_client(2) as c:
        res = sv.backtest(gen, S.BuyAndHold(), engine="dask", client=c, shards=6, **kw)
        workers_after = len(c.scheduler_info()["workers"])
    assert marker.exists()  # a shard did kill its worker on its first attempt
    dead = int(marker.read_text())
    assert dead != os.getpid() and workers_after == 2  # the nanny started a new one
    monkeypatch.delenv(FAULT_ENV)
    local = sv.backtest(gen, S.BuyAndHold(), **kw)
    assert res.metrics.equals(local.metrics)  # every scenario exactly once
    assert res.metrics["scenario"].is_unique and len(res.metrics) == 6000


@pytest.mark.slow
def test_generate_writes_shards_that_equal_sample(client, gen, tmp_path):
    manifest = generate(gen, 5003, 9, tmp_path / "run", horizon=100, client=client, shards=4)
    assert manifest.exists() and len(list((tmp_path / "run").glob("shard-*.npy"))) == 4
    assert not list((tmp_path / "run").glob(".*.tmp"))
    got = load_shards(tmp_path / "run")
    assert np.array_equal(got, gen.sample(5003, 9, horizon=100).returns)
    with pytest.raises(ValueError, match=r"no manifest\.json"):
        load_shards(tmp_path)


def test_engine_arguments_are_checked(gen, sp500_data):
    with pytest.raises(ValueError, match="engine must be one of"):
        sv.backtest(gen, S.BuyAndHold(), n=10, seed=0, engine="ray")
    with pytest.raises(ValueError, match="client and shards are for engine='dask'"):
        sv.backtest(gen, S.BuyAndHold(), n=10, seed=0, shards=2)
    with pytest.raises(ValueError, match="shards must be a positive int"):
        sv.backtest(gen, S.BuyAndHold(), n=10, seed=0, engine="dask", shards=0)
    scen = gen.sample(20, seed=0)
    with pytest.raises(ValueError, match="backtests a ScenarioGenerator with n and seed"):
        sv.backtest(scen, S.BuyAndHold(), engine="dask")


@pytest.mark.slow
def test_cli_generate_on_dask_equals_local(tmp_path, trained):
    model_file = trained[0].save(tmp_path / "m.safetensors")

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "stressvae", *args], capture_output=True, text=True
        )

    base = ["generate", "--model", str(model_file), "--n", "3000", "--quiet"]
    res = cli(*base, "--engine", "dask", "--workers", "2", "--out", str(tmp_path / "shards"))
    assert res.returncode == 0, res.stderr
    res = cli(*base, "--out", str(tmp_path / "all.npy"))
    assert res.returncode == 0, res.stderr
    assert np.array_equal(load_shards(tmp_path / "shards"), np.load(tmp_path / "all.npy"))
    res = cli(*base, "--shards", "3", "--out", str(tmp_path / "x.npy"))
    assert res.returncode == 2 and "need --engine dask" in res.stderr
    res = cli(*base, "--engine", "dask", "--out", str(tmp_path / "x.npy"))
    assert res.returncode == 2 and "writes a folder of shards" in res.stderr
    assert not Path(tmp_path / "x.npy").exists()

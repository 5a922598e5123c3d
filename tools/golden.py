"""Golden outputs: hashes of what stressvae computes for fixed seeds, so that a
refactoring can show it changed nothing, to the bit.

    python tools/golden.py --record     # write tools/golden.json (before a change)
    python tools/golden.py              # recompute and compare (after); exit 1 on a difference

Covered: training (the trained weights and the loss history of a small MLP and
a small GRU model), save/load, encodings and anomaly scores, generated
scenarios (prior, sweep, tail; MLP and GRU; several chunk sizes; drifts;
horizons; the regime half-life), backtest metrics (fast and vectorbt
backends, historical windows) and a stress report's metrics. Optional:
``--dask`` adds the Dask engine's stress report (a local cluster; recorded
with it, compared only when asked).
The models trained here are also saved to tools/golden_models/ on --record,
and loading them must give the same scenarios later (saved models keep
working).

The hashes depend on the CPU as well as the code (torch picks its kernels by
the CPU, and training and the decoder's forward pass differ in the last bits
between machines). Compare on the machine the hashes were recorded on; on
another machine, record from the unchanged commit first (without --record,
which would retrain tools/golden_models/: write compute()'s output to
golden.json), then compare the change against that.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden.json"
MODELS = HERE / "golden_models"


def h(x) -> str:
    """sha256 of an array, a DataFrame or a torch state dict (bit patterns)."""
    import pandas as pd
    import torch

    d = hashlib.sha256()
    if isinstance(x, dict):
        for k in sorted(x):
            d.update(k.encode())
            d.update(h(x[k]).encode())
    elif isinstance(x, torch.Tensor):
        d.update(np.ascontiguousarray(x.detach().cpu().numpy()).tobytes())
    elif isinstance(x, pd.DataFrame):
        d.update(",".join(map(str, x.columns)).encode())
        for c in x.columns:
            col = x[c]
            if not (
                pd.api.types.is_numeric_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype)
            ):
                d.update("|".join(map(str, col)).encode())
            else:
                d.update(np.ascontiguousarray(col.to_numpy()).tobytes())
    else:
        a = np.ascontiguousarray(np.asarray(x))
        d.update(str(a.dtype).encode() + str(a.shape).encode())
        d.update(a.tobytes())
    return d.hexdigest()[:20]


def scen_hash(s) -> str:
    return h(s.returns) + ":" + h(s.tags)


def compute(dask: bool) -> dict[str, str]:
    import torch

    import stressvae as sv
    from stressvae.strategies import BuyAndHold, MACrossover

    torch.set_num_threads(2)
    out: dict[str, str] = {}
    data = sv.WindowData.from_prices(sv.load_dataset("sp500"), window=32)
    models = {}
    for kind in ("mlp", "gru"):
        torch.manual_seed(0)
        kw = dict(decoder="gru", rnn_hidden=32) if kind == "gru" else {}
        model = sv.ScenarioVAE(window=32, n_assets=1, latent_dim=8, hidden_dims=(64, 64), **kw)
        hist = sv.Trainer(max_epochs=3, seed=0, progress=False).fit(model, data)
        out[f"train/{kind}/weights"] = h(model.state_dict())
        out[f"train/{kind}/history"] = h(hist.to_frame().reset_index())
        models[kind] = model
        with tempfile.TemporaryDirectory() as tmp:
            p = model.save(Path(tmp) / "m.safetensors")
            loaded = sv.ScenarioVAE.load(p)
        out[f"load/{kind}/weights"] = h(loaded.state_dict())
    # the committed models (trained by the code before the change)
    for kind in ("mlp", "gru"):
        path = MODELS / f"{kind}.safetensors"
        if path.exists():
            models[f"saved_{kind}"] = sv.ScenarioVAE.load(path)
    for kind, model in models.items():
        mu, lv = model.encode(data.windows[:200])
        out[f"encode/{kind}"] = h(mu) + ":" + h(lv)
        out[f"anomaly/{kind}"] = h(model.anomaly_score(data.windows[:200]))
        out[f"top_anomalies/{kind}"] = h(sv.top_anomalies(model, data, top=5))
        gen = sv.ScenarioGenerator(model, data, device="cpu")
        rec = kind.endswith("gru")
        for cs in (None, 1000, 777):
            out[f"prior/{kind}/cs={cs}"] = scen_hash(gen.sample(3000, seed=7, chunk_size=cs))
        parts = list(gen.iter_chunks(3000, seed=7, chunk_size=555))
        out[f"prior/{kind}/iter"] = h(np.concatenate([p.returns for p in parts]))
        for drift in ("zero", "historical"):
            out[f"prior/{kind}/{drift}"] = scen_hash(gen.sample(1000, seed=3, drift=drift))
        out[f"prior/{kind}/h=100"] = scen_hash(gen.sample(500, seed=11, horizon=100))
        if rec:
            out[f"prior/{kind}/halflife"] = scen_hash(
                gen.sample(500, seed=11, horizon=100, regime_halflife=20)
            )
        calm, crisis, tail = data.regime("calm"), data.regime("crisis"), data.regime("tail")
        for path in ("linear", "spherical"):
            for cs in (None, 400):
                s = gen.interpolate(
                    calm, crisis, steps=5, n_per_step=300, seed=5, path=path, chunk_size=cs
                )
                out[f"sweep/{kind}/{path}/cs={cs}"] = scen_hash(s)
        m = min(len(calm), len(crisis), 20)
        s = gen.interpolate(calm[:m], crisis[:m], steps=3, n_per_step=100, seed=5, paired=True,
                            spread=0.5)  # fmt: skip
        out[f"sweep/{kind}/paired"] = scen_hash(s)
        parts = list(gen.iter_interpolate(calm, crisis, steps=4, n_per_step=250, seed=9,
                                          chunk_size=333))  # fmt: skip
        out[f"sweep/{kind}/iter"] = h(np.concatenate([p.returns for p in parts]))
        for cs in (None, 250):
            s = gen.augment(tail, n_per_window=20, scale=0.5, seed=13, chunk_size=cs)
            out[f"tail/{kind}/cs={cs}"] = scen_hash(s)
        parts = list(gen.iter_augment(tail, n_per_window=10, seed=13, chunk_size=100))
        out[f"tail/{kind}/iter"] = h(np.concatenate([p.returns for p in parts]))
        # backtests
        scen = gen.sample(2000, seed=21, horizon=64)
        ma = MACrossover(5, 20)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for backend in ("fast", "vectorbt"):
                res = sv.backtest(scen, ma, fees=0.001, backend=backend)
                out[f"backtest/{kind}/{backend}"] = h(res.metrics)
            res = sv.backtest(gen, BuyAndHold(), n=1500, seed=4, chunk_size=400, horizon=64)
            out[f"backtest/{kind}/gen"] = h(res.metrics)
            out[f"backtest/{kind}/risk"] = h(res.risk().reset_index())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prices = sv.load_dataset("sp500")
        hist = sv.historical_windows(prices, MACrossover(5, 20), 64, fees=0.001)
        out["historical"] = h(hist)
        for kind in ("mlp", "gru"):
            rep = sv.stress_test(models[kind], data, MACrossover(5, 20), n=3000, seed=7,
                                 progress=False, fees=0.001)  # fmt: skip
            out[f"stress/{kind}/metrics"] = h(rep.metrics)
            out[f"stress/{kind}/risk"] = h(rep.risk().reset_index())
            out[f"stress/{kind}/fan"] = hashlib.sha256(
                json.dumps(rep.fan, sort_keys=True).encode()
            ).hexdigest()[:20]
            if dask:
                rep = sv.stress_test(models[kind], data, MACrossover(5, 20), n=3000, seed=7,
                                     progress=False, fees=0.001, engine="dask",
                                     shards=3)  # fmt: skip
                out[f"dask/stress/{kind}/metrics"] = h(rep.metrics)
    return out, models


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--record", action="store_true", help="write tools/golden.json")
    ap.add_argument("--dask", action="store_true", help="also the Dask engine")
    args = ap.parse_args()
    out, models = compute(args.dask)
    if args.record:
        MODELS.mkdir(exist_ok=True)
        for kind in ("mlp", "gru"):
            models[kind].save(MODELS / f"{kind}.safetensors")
        # the saved models' own outputs, now that they exist
        out, _ = compute(args.dask)
        GOLDEN.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
        print(f"recorded {len(out)} hashes to {GOLDEN}")
        return 0
    want = json.loads(GOLDEN.read_text())
    if not args.dask:
        want = {k: v for k, v in want.items() if not k.startswith("dask/")}
    bad = [k for k in sorted(set(want) | set(out)) if want.get(k) != out.get(k)]
    for k in bad:
        print(f"DIFFERS {k}: golden {want.get(k)} now {out.get(k)}")
    print(f"{len(want) - len(bad)} of {len(want)} golden outputs identical; {len(bad)} differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

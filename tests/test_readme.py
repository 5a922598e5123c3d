"""The README's Python examples run as written (with smaller sizes and a
short training run, in a temporary folder)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SMALLER = [
    ("10_000_000", "30_000"),
    ("1_000_000", "20_000"),
    ("sv.Trainer(seed=0)", "sv.Trainer(seed=0, max_epochs=3, progress=False)"),
    (
        "sv.ScenarioGenerator(model, data)}, data)",
        "sv.ScenarioGenerator(model, data)}, data, n=600, n_long=40, discriminator_epochs=2)",
    ),
]


def python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_python_examples_run(tmp_path, monkeypatch):
    blocks = python_blocks()
    assert len(blocks) >= 3
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        if block.startswith("# on a running Dask cluster"):
            continue  # needs a scheduler to connect to
        code = block
        for old, new in SMALLER:
            code = code.replace(old, new)
        exec(compile(code, "README.md", "exec"), namespace)  # the README is ours
    # what the examples promise
    w = namespace["gen"].window
    assert namespace["scen"].returns.shape == (20_000, w, 1)
    assert namespace["paths"].shape == (20_000, w + 1, 1)
    assert (tmp_path / "stress-run" / "metrics.parquet").exists()
    assert namespace["long"].returns.shape == (10_000, 252, 1)
    assert (tmp_path / "sp500.safetensors").exists()
    assert namespace["rep"].table.shape[1] == 6 and (tmp_path / "realism.html").exists()
    assert set(namespace["sharded"].metrics["set"]) == {"prior", "sweep", "tail"}
    assert namespace["year"].returns.shape == (10_000, 252, 1)
    assert namespace["two_years"].returns.shape == (10_000, 504, 1)
    assert set(namespace["crisis_year"].tags["step"]) == set(range(5))

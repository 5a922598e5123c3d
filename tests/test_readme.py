"""The Python examples of the README and of docs/*.md run as written (with
smaller sizes and a short training run, in a temporary folder).

The README's blocks run first, in order, in one namespace; each docs page
continues from a copy of that namespace (its examples say so), its own
blocks in order. A block whose first line starts with one of NOT_RUN is
shown to readers but not run (it needs something a test machine lacks)."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))

NOT_RUN = ("# on a running Dask cluster",)  # needs a scheduler to connect to

SMALLER = [
    ("10_000_000", "30_000"),
    ("1_000_000", "20_000"),
    ("sv.Trainer(seed=0)", "sv.Trainer(seed=0, max_epochs=3, progress=False)"),
    (
        "sv.ScenarioGenerator(model, data)}, data)",
        "sv.ScenarioGenerator(model, data)}, data, n=600, n_long=40, discriminator_epochs=2)",
    ),
]
# and per page, after SMALLER: the GRU trains and rolls out day by day
PAGE_SMALLER = {
    "var_backtest.md": [('end="2018-12-31")', 'end="2013-04-30", n=200)')],
    "recurrent.md": [
        ("max_epochs=3", "max_epochs=1"),
        ("10_000", "1_000"),
        ("n_per_step=2_000", "n_per_step=200"),
    ],
}


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def run_blocks(path: Path, namespace: dict) -> None:
    for block in python_blocks(path):
        if block.startswith(NOT_RUN):
            continue
        code = block
        for old, new in [*SMALLER, *PAGE_SMALLER.get(path.name, [])]:
            code = code.replace(old, new)
        name = str(path.relative_to(ROOT))
        exec(compile(code, name, "exec"), namespace)  # the docs are ours


@pytest.fixture(scope="module")
def readme(tmp_path_factory):
    folder = tmp_path_factory.mktemp("readme")
    namespace: dict = {}
    with contextlib.chdir(folder):
        run_blocks(ROOT / "README.md", namespace)
    return namespace, folder


def test_readme_python_examples_run(readme):
    namespace, folder = readme
    assert len(python_blocks(ROOT / "README.md")) >= 1
    # what the example promises
    assert set(namespace["report"].metrics["set"]) == {"prior", "sweep", "tail"}
    assert (folder / "report.html").exists()
    assert (folder / "stress-run" / "metrics.parquet").exists()


def _generation(ns: dict, folder: Path) -> None:
    w = ns["gen"].window
    assert ns["scen"].returns.shape == (20_000, w, 1)
    assert ns["paths"].shape == (20_000, w + 1, 1)
    assert set(ns["sweep"].tags["step"]) == set(range(11))
    assert ns["long"].returns.shape == (10_000, 252, 1)


def _recurrent(ns: dict, folder: Path) -> None:
    assert ns["year"].returns.shape == (1_000, 252, 1)
    assert ns["two_years"].returns.shape == (1_000, 504, 1)
    assert set(ns["crisis_year"].tags["step"]) == set(range(5))


def _realism(ns: dict, folder: Path) -> None:
    assert ns["rep"].table.shape[1] == 6 and (folder / "realism.html").exists()


def _dask(ns: dict, folder: Path) -> None:
    assert set(ns["sharded"].metrics["set"]) == {"prior", "sweep", "tail"}


def _model(ns: dict, folder: Path) -> None:
    assert (folder / "sp500.safetensors").exists()
    assert ns["model"].window == 64


def _backtesting(ns: dict, folder: Path) -> None:
    assert len(ns["res"].metrics) == 20_000
    assert len(ns["real"]) > 0


def _portfolios(ns: dict, folder: Path) -> None:
    assert ns["model"].n_assets == 20 and ns["model"].factors == 4
    assert ns["model"].prior_size == len(ns["data"].train)
    tail = ns["stress"].tail_contributions()
    assert list(tail.index) == list(ns["prices"].columns)
    assert set(tail["prior"][tail["prior"] != 0].index) <= {"JPM", "BAC", "KO"}
    assert (folder / "portfolio.html").exists()


def _whatif(ns: dict, folder: Path) -> None:
    crash = ns["crash"]
    assert len(crash) == 10_000 and crash.returns.shape[1] == 21
    assert np.all(np.expm1(crash.returns.astype(np.float64).sum(axis=(1, 2))) <= -0.15)
    assert ns["res"].risk()["ess"] == pytest.approx(crash.ess)
    assert ns["nxt"].returns.shape == (100_000, 21, 1)


def _var_backtest(ns: dict, folder: Path) -> None:
    vb = ns["vb"]
    assert set(vb.table["model"]) == {"vae", "hs", "fhs_gjr", "garch_t"}
    assert str(vb.forecasts.index[0].date()) == "2013-01-02" and len(vb.forecasts) > 70
    assert (folder / "var.png").exists()


def _native(ns: dict, folder: Path) -> None:
    assert ns["z"].shape == (50_000, 16)


# what each page's examples promise; a page with Python examples needs one
EXPECT = {
    "generation.md": _generation,
    "recurrent.md": _recurrent,
    "realism.md": _realism,
    "dask.md": _dask,
    "model.md": _model,
    "backtesting.md": _backtesting,
    "native.md": _native,
    "portfolios.md": _portfolios,
    "whatif.md": _whatif,
    "var_backtest.md": _var_backtest,
}


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_docs_python_examples_run(page, readme, tmp_path, monkeypatch):
    if not python_blocks(page):
        pytest.skip("no Python examples")
    assert page.name in EXPECT, f"say in EXPECT what {page.name}'s examples promise"
    namespace = dict(readme[0])  # the page continues the README's example
    monkeypatch.chdir(tmp_path)
    run_blocks(page, namespace)
    EXPECT[page.name](namespace, tmp_path)


def test_docs_are_linked_and_links_resolve():
    readme = (ROOT / "README.md").read_text()
    assert DOCS, "docs/ has no pages"
    for page in DOCS:
        assert f"(docs/{page.name})" in readme, f"README does not link docs/{page.name}"
    for path in [ROOT / "README.md", *DOCS]:
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
            if re.match(r"[a-z]+://", target):
                continue
            target = target.split("#")[0]
            assert (path.parent / target).exists(), f"{path.name} links to missing {target}"

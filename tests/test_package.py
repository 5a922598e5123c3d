"""The package as a user meets it: light import, a machine without the CUDA
module, the CLI, the README's commands, lint."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import stressvae
from stressvae import native

ROOT = Path(__file__).resolve().parents[1]


def run_py(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout


def test_import_stays_light():
    out = run_py(
        "import sys, stressvae; "
        "print([m for m in ('torch', 'vectorbt', 'arch', 'pandas', 'matplotlib', 'numba') "
        "if m in sys.modules])"
    )
    assert out.strip() == "[]"


def test_submodules_are_reachable_from_the_package_and_loaded_on_first_use():
    out = run_py(
        "import sys, stressvae as sv\n"
        "before = 'stressvae.strategies' in sys.modules or 'stressvae.realism' in sys.modules\n"
        "s = sv.strategies.MACrossover(10, 40)\n"
        "print(before, s.fast_window, callable(sv.realism.evaluate), "
        "callable(sv.distributed.local_client), sv.backtesting.backtest is sv.backtest)"
    )
    assert out.split() == ["False", "10", "True", "True", "True"]
    assert set(stressvae.SUBMODULES) <= set(dir(stressvae))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        stressvae.nothing  # noqa: B018


def test_import_and_cpu_sampling_work_without_the_cuda_module():
    out = run_py(
        "import sys, json; sys.modules['stressvae._cuda'] = None\n"
        "import numpy as np, stressvae\n"
        "info = stressvae.native_info()\n"
        "z = stressvae.sample_latent(np.zeros(4, np.float32), np.zeros(4, np.float32), 7, seed=1)\n"
        "print(json.dumps({'built': info['cuda']['built'], 'reason': info['cuda']['reason'], "
        "'shape': list(z.shape)}))"
    )
    got = json.loads(out)
    assert got["built"] is False and got["reason"].startswith("not built")
    assert got["shape"] == [7, 4]


def test_native_info_reports_build_and_devices():
    info = native.native_info()
    assert info["core"]["built"] is True
    assert info["core"]["isa"] in native.ISA_LEVELS[1:]
    assert info["core"]["threads"] >= 1
    assert set(info["cuda"]) >= {"built", "usable", "devices", "reason"}
    if info["cuda"]["built"]:
        assert info["cuda"]["archs"]  # e.g. "80;90"
        assert info["cuda"]["usable"] == (len(info["cuda"]["devices"]) > 0)
    for key in ("sample_cpu_calls", "sample_cuda_calls", "normals_cpu_calls"):
        assert key in info["counts"]


def test_public_api_surface():
    assert set(stressvae.__all__) >= {"native_info", "sample_latent", "NativeInputError"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", stressvae.__version__)


def stressvae_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stressvae", *args], capture_output=True, text=True
    )


def test_cli_bad_arguments_are_one_line_errors():
    res = stressvae_cli("demo", "--n", "0")
    assert res.returncode == 2 and "expected a number >= 1" in res.stderr
    res = stressvae_cli("demo", "--n", "10", "--strategy", "macd")
    assert res.returncode == 2
    assert res.stderr.startswith("stressvae: error: unknown strategy 'macd'")
    assert len(res.stderr.strip().splitlines()) == 1


def test_cli_info_is_json():
    res = stressvae_cli("info")
    assert res.returncode == 0
    assert json.loads(res.stdout)["core"]["built"] is True


def test_readme_quick_start_matches_ci():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    test_cmd = re.search(r"^(pip install .*&& pytest.*)$", ci, re.M).group(1)
    assert test_cmd in readme, "README's test command must be the one CI runs"
    assert re.search(r"^pip install -c constraints.txt -e \. && stressvae demo$", readme, re.M)


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is installed by the [test] extra")
def test_ruff_lint_and_format():
    env = {**os.environ, "NO_COLOR": "1"}
    check = subprocess.run(
        ["ruff", "check", "."], cwd=ROOT, capture_output=True, text=True, env=env
    )
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = subprocess.run(
        ["ruff", "format", "--check", "."], cwd=ROOT, capture_output=True, text=True, env=env
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_sample_rows_are_float32_numpy_by_default():
    z = stressvae.sample_latent(np.zeros(3, np.float32), np.zeros(3, np.float32), 4, seed=0)
    assert isinstance(z, np.ndarray) and z.dtype == np.float32


def test_public_backtest_stays_the_function_after_its_module_is_imported():
    import stressvae as sv
    import stressvae.backtesting  # a submodule import must not shadow the name

    assert callable(sv.backtest) and sv.backtest.__name__ == "backtest"

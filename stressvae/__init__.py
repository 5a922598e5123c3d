"""stressvae: stress-test trading strategies on synthetic markets.

The public API lives here and nowhere else. Names are loaded on first use,
so ``import stressvae`` stays light: torch, pandas, arch, vectorbt and
matplotlib are imported by the parts that need them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._version import __version__
from .native import NativeInputError, native_info, sample_latent

_LAZY = {
    "load_dataset": "datasets",
    "DATASETS": "datasets",
    "load_prices": "data",
    "WindowData": "data",
    "Scaler": "data",
    "RegimeThresholds": "data",
    "ScenarioVAE": "model",
    "DecoderWeights": "model",
    "top_anomalies": "model",
    "ScenarioGenerator": "generate",
    "Scenarios": "generate",
    "ConditionalScenarios": "generate",
    "Event": "events",
    "ScenarioPlan": "generate",
    "Trainer": "train",
    "GaussianBaseline": "baselines",
    "BootstrapBaseline": "baselines",
    "GarchBaseline": "baselines",
    "evaluate": "realism",
    "RealismReport": "realism",
    "var_backtest": "risk",
    "VarBacktest": "risk",
    "backtest": "backtesting",
    "historical_windows": "backtesting",
    "BacktestResult": "backtesting",
    "stress_test": "report",
    "StressReport": "report",
    "History": "train",
}

# the public submodules, reachable as attributes (``sv.strategies.MACrossover``),
# imported on first use like the names above
SUBMODULES = (
    "backtesting",
    "baselines",
    "data",
    "datasets",
    "distributed",
    "events",
    "generate",
    "model",
    "native",
    "realism",
    "report",
    "risk",
    "strategies",
    "train",
)

__all__ = ["NativeInputError", "__version__", "native_info", "sample_latent", *sorted(_LAZY)]


def __getattr__(name: str):
    if name in SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'stressvae' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(SUBMODULES))


if TYPE_CHECKING:  # pragma: no cover - names for type checkers and editors
    from .backtesting import BacktestResult as BacktestResult
    from .backtesting import backtest as backtest
    from .backtesting import historical_windows as historical_windows
    from .baselines import BootstrapBaseline as BootstrapBaseline
    from .baselines import GarchBaseline as GarchBaseline
    from .baselines import GaussianBaseline as GaussianBaseline
    from .data import RegimeThresholds as RegimeThresholds
    from .data import Scaler as Scaler
    from .data import WindowData as WindowData
    from .data import load_prices as load_prices
    from .datasets import DATASETS as DATASETS
    from .datasets import load_dataset as load_dataset
    from .events import Event as Event
    from .generate import ConditionalScenarios as ConditionalScenarios
    from .generate import ScenarioGenerator as ScenarioGenerator
    from .generate import ScenarioPlan as ScenarioPlan
    from .generate import Scenarios as Scenarios
    from .model import DecoderWeights as DecoderWeights
    from .model import ScenarioVAE as ScenarioVAE
    from .model import top_anomalies as top_anomalies
    from .realism import RealismReport as RealismReport
    from .realism import evaluate as evaluate
    from .report import StressReport as StressReport
    from .report import stress_test as stress_test
    from .risk import VarBacktest as VarBacktest
    from .risk import var_backtest as var_backtest
    from .train import History as History
    from .train import Trainer as Trainer

"""Shared fixtures. CUDA tests are marked `cuda` and skip with the reason
when no usable GPU (or no _cuda module) is present."""

from __future__ import annotations

import numpy as np
import pytest

from stressvae import native


def _cuda_state() -> tuple[bool, str]:
    info = native.native_info()["cuda"]
    if not info["built"]:
        return False, f"stressvae._cuda not built: {info['reason']}"
    if not info["usable"]:
        return False, f"no usable CUDA device: {info['reason']}"
    try:
        import torch
    except ImportError:  # pragma: no cover
        return False, "torch not importable"
    if not torch.cuda.is_available():
        return False, "torch sees no CUDA device"
    return True, ""


CUDA_OK, CUDA_WHY = _cuda_state()


def pytest_collection_modifyitems(config, items):
    if CUDA_OK:
        return
    skip = pytest.mark.skip(reason=CUDA_WHY)
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng(request) -> np.random.Generator:
    """Fresh random inputs per test, reproducible from the test's name."""
    seed = abs(hash(request.node.nodeid)) % (2**32)
    return np.random.default_rng(seed)


def bits(x) -> np.ndarray:
    """The float32 bit patterns of an array or tensor, for exact comparison."""
    if not isinstance(x, np.ndarray):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)


@pytest.fixture(scope="session")
def sp500_data():
    from stressvae import WindowData, load_dataset

    return WindowData.from_prices(load_dataset("sp500"), window=64)


@pytest.fixture(scope="session")
def trained(sp500_data):
    """The default ScenarioVAE trained with the default Trainer on the bundled
    S&P 500 (once per test session), with its history and the validation
    loss of the same model before training."""
    import time

    import torch

    from stressvae import ScenarioVAE, Trainer

    torch.manual_seed(0)
    model = ScenarioVAE(window=64, n_assets=1)
    trainer = Trainer(seed=0, progress=False)
    model.set_data_stats(sp500_data.scaler, sp500_data.thresholds)
    untrained = trainer._evaluate(model.eval(), torch.as_tensor(sp500_data.scaled("val")))[0]
    t0 = time.perf_counter()
    history = trainer.fit(model, sp500_data)
    print(
        f"\ndefault model trained on S&P 500 in {time.perf_counter() - t0:.1f} s, "
        f"{len(history.records)} epochs, best {history.best_epoch}"
    )
    return model, history, untrained

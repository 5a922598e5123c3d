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

"""The self-checks of the CUDA kernels against their CPU twins: one registry
of the checks that passed in this process, and the float32 tolerance they
are judged by.

A check is known by one key scheme, ``(op, device_index, *shape)``:
``("sample", i)`` (the sampler, bit for bit, once per device),
``("decode", i, factor_model)`` (the fused decoder, once per device for the
diagonal and once for the factor observation model, whose output layer is
its own code) and ``("rollout", i, latent, hidden, assets, factors)`` (the
GRU rollout, once per device and model shape). :func:`run_once` runs a
check the first time its key is asked for and records it when it passes; a
failing check raises and is tried again on the next use.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

_PASSED: set[tuple] = set()
_RUNNING: set[tuple] = set()  # keys whose check is running in the thread holding _LOCK
_LOCK = threading.RLock()


def run_once(key: tuple, check: Callable[[], None]) -> None:
    """Run ``check`` unless ``key`` has passed. While it runs, the kernel
    calls the check makes itself (on the same thread) go straight through;
    other threads wait for the verdict."""
    if key in _PASSED:
        return
    with _LOCK:
        if key in _PASSED or key in _RUNNING:
            return
        _RUNNING.add(key)
        try:
            check()
        finally:
            _RUNNING.discard(key)
        _PASSED.add(key)


def passed() -> frozenset[tuple]:
    """The keys of the checks that passed in this process."""
    return frozenset(_PASSED)


def devices_passed(op: str) -> list[int]:
    """The device indices on which the check of ``op`` passed, sorted."""
    return sorted({key[1] for key in _PASSED if key[0] == op})


def assert_close_float32(what: str, device_index: int, name: str, got, want) -> None:
    """A CUDA result against the CPU's: within rtol 1e-5 + atol 1e-5 *
    max|ref| (float32), else a RuntimeError that says how far off it is."""
    err = np.abs(got.astype(np.float64) - want)
    tol = 1e-5 * np.abs(want) + 1e-5 * np.abs(want).max()
    if not np.all(err <= tol):
        raise RuntimeError(
            f"stressvae CUDA {what} self-check failed on cuda:{device_index} ({name}): "
            f"{int(np.sum(~(err <= tol)))} of {err.size} values differ from the CPU "
            f"{what} beyond float32 tolerance (max abs diff {np.nanmax(err):.3g}); "
            "not using it"
        )

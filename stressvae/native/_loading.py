"""The compiled extensions: stressvae._core (always built) and stressvae._cuda
(built where nvcc was found at install time), their constants, the default
thread count, and :func:`native_info`."""

from __future__ import annotations

import os
from typing import Any

from . import selfcheck

try:
    from .. import _core as core
except ImportError as err:  # pragma: no cover - only in an unbuilt checkout
    raise ImportError(
        "stressvae's native core (stressvae._core) is not built. Install the package "
        "with `pip install -e .` (see README.md), which compiles it."
    ) from err

try:
    from .. import _cuda as cuda

    CUDA_IMPORT_ERROR: str | None = None
except ImportError as err:  # not built (no nvcc at install time) or unloadable
    cuda = None
    CUDA_IMPORT_ERROR = str(err)

TAG_LATENT: int = int(core.TAG_LATENT)
TAG_OBSERVATION: int = int(core.TAG_OBSERVATION)
TAG_STEP: int = int(core.TAG_STEP)  # + day t: the rollout's observation noise of day t
TAG_DRIFT: int = int(core.TAG_DRIFT)  # + day t: the latent AR(1) innovation after day t
TAG_FACTOR: int = int(core.TAG_FACTOR)  # the MLP decoder's common factors f (element t*k + j)
TAG_FACTOR_STEP: int = int(core.TAG_FACTOR_STEP)  # + day t: the rollout's factors f of day t
LOADING_MAX: float = float(core.LOADING_MAX)  # the factor loadings' clamp (standardized units)
MAX_HORIZON: int = int(core.MAX_HORIZON)


def default_threads() -> int:
    """Threads the CPU kernels use by default: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def require_cuda():
    """The CUDA extension module, or a RuntimeError that says how to build it."""
    if cuda is None:
        raise RuntimeError(
            "the CUDA module stressvae._cuda is not built (" + (CUDA_IMPORT_ERROR or "") + "); "
            "reinstall on a machine with nvcc, e.g. STRESSVAE_CUDA=force pip install -e ."
        )
    return cuda


def native_info() -> dict[str, Any]:
    """What was built, which devices are usable, and how often each native
    path has run in this process (tests use the counts to prove that the
    native path, not a fallback, did the work)."""
    info: dict[str, Any] = {"built": cuda is not None}
    counts = dict(core.counters())
    if cuda is None:
        info.update(usable=False, devices=[], reason=f"not built: {CUDA_IMPORT_ERROR}")
        counts.update(
            sample_cuda_calls=0, sample_cuda_rows=0, normals_cuda_calls=0, normals_cuda_rows=0
        )
    else:
        count, why = cuda.device_count()
        devices = [cuda.device_name(i) for i in range(count)]
        info.update(
            usable=count > 0,
            devices=devices,
            reason=why if count == 0 else "",
            archs=str(cuda.ARCHS),
            runtime_version=cuda.runtime_version(),
            driver_version=cuda.driver_version(),
            self_checked=selfcheck.devices_passed("sample"),
        )
        counts.update(cuda.counters())
    return {
        "core": {
            "built": True,
            "isa": core.best_isa(),
            "threads": default_threads(),
        },
        "cuda": info,
        "counts": counts,
    }

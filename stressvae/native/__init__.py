"""The native core: loading, input validation, dispatch to CPU or CUDA.

Every input is checked here before a pointer leaves Python: type (numpy array
or torch tensor), dtype float32 (int64 for indices), C-contiguity, shapes,
one device, finite values, integer ranges. Errors name the argument and say
what was expected. Nothing is copied, cast or moved between host and device
behind the caller's back: numpy in gives numpy out on the CPU; torch CPU
tensors give a torch CPU tensor; torch CUDA tensors run on their GPU, on the
caller's current stream, and give a CUDA tensor.

Modules, each importing only those above it:

- ``selfcheck``: the one registry of the CUDA self-checks, their tolerance;
- ``_loading``: the compiled ``_core`` and ``_cuda``, constants, :func:`native_info`;
- ``checks``: the argument checks (arrays, devices, outputs, numbers);
- ``latent``: :func:`sample_latent`, :func:`normals`, :func:`rollout_noise`,
  :func:`decode_noise`;
- ``decoder``: :class:`NativeDecoder` and :class:`CudaDecoder`;
- ``rollout``: :class:`NativeRollout` and :class:`CudaRollout`.
"""

from __future__ import annotations

from ._loading import (
    LOADING_MAX,
    MAX_HORIZON,
    TAG_DRIFT,
    TAG_FACTOR,
    TAG_FACTOR_STEP,
    TAG_LATENT,
    TAG_OBSERVATION,
    TAG_STEP,
    default_threads,
    native_info,
)
from .checks import ISA_LEVELS, NativeInputError, check_phi
from .decoder import CudaDecoder, NativeDecoder
from .latent import decode_noise, normals, rollout_noise, sample_latent
from .rollout import CudaRollout, NativeRollout

__all__ = [
    "ISA_LEVELS",
    "LOADING_MAX",
    "MAX_HORIZON",
    "TAG_DRIFT",
    "TAG_FACTOR",
    "TAG_FACTOR_STEP",
    "TAG_LATENT",
    "TAG_OBSERVATION",
    "TAG_STEP",
    "CudaDecoder",
    "CudaRollout",
    "NativeDecoder",
    "NativeInputError",
    "NativeRollout",
    "check_phi",
    "decode_noise",
    "default_threads",
    "native_info",
    "normals",
    "rollout_noise",
    "sample_latent",
]

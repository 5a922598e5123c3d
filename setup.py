"""Build of stressvae's native core (metadata lives in pyproject.toml).

``stressvae._core`` (C++17, CPU) is always built. ``stressvae._cuda`` is built
when nvcc is found. Environment switches:

``STRESSVAE_CUDA``
    ``auto`` (default): build the CUDA module when nvcc is found; if that
    build fails, warn and install without it. ``off``: never build it.
    ``force``: build it or fail.
``STRESSVAE_CUDA_ARCHS``
    Compute capabilities, ``;`` or ``,`` separated (default ``80;90``). Real
    code (SASS) is built for each one the installed nvcc supports, plus PTX
    for the newest so that later GPUs can JIT it.
``CUDA_HOME`` / ``CUDA_PATH``
    The toolkit; otherwise found from ``nvcc`` on PATH.

The CUDA runtime is linked statically: the module needs only the driver, and
importing stressvae on a machine without one never fails because of it.
Sampling code is built without fast math and without implicit contraction
(host ``-ffp-contract=off``, device ``--fmad=false``) so that CPU and GPU
random streams agree to the bit. Never ``-march=native``: the CPU kernels pick
their instruction set at run time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

ROOT = Path(__file__).resolve().parent
CSRC = "csrc"

HOST_FLAGS = ["-O3", "-ffp-contract=off", "-fno-math-errno", "-Wall", "-Wextra", "-Wno-psabi"]
NVCC_FLAGS = [
    "-O3",
    "-std=c++17",
    "--fmad=false",
    "-Xcompiler",
    "-fPIC",
    "-Xcompiler",
    "-ffp-contract=off",
    "-Xcompiler",
    "-fvisibility=hidden",
]


def _log(msg: str) -> None:
    print(f"stressvae build: {msg}", file=sys.stderr, flush=True)


def cuda_mode() -> str:
    mode = os.environ.get("STRESSVAE_CUDA", "auto").strip().lower()
    if mode not in {"auto", "off", "force"}:
        raise SystemExit(f"STRESSVAE_CUDA must be auto, off or force; got {mode!r}")
    return mode


def find_cuda_home() -> Path | None:
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            return Path(os.environ[var])
    candidates = [Path("/usr/local/cuda")]
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.insert(0, Path(nvcc).resolve().parent.parent)
    for c in candidates:
        if (c / "include" / "cuda_runtime_api.h").exists() and (c / "bin" / "nvcc").exists():
            return c
    return None


def requested_archs() -> list[str]:
    raw = os.environ.get("STRESSVAE_CUDA_ARCHS", "80;90")
    archs = [a.strip().replace(".", "") for a in raw.replace(",", ";").split(";") if a.strip()]
    if not archs or not all(a.isdigit() for a in archs):
        raise SystemExit(f"STRESSVAE_CUDA_ARCHS must look like '80;90'; got {raw!r}")
    return sorted(set(archs), key=int)


def gencode_flags(nvcc: Path) -> tuple[list[str], list[str]]:
    """-gencode flags for the requested archs the installed nvcc supports."""
    try:
        out = subprocess.run(
            [str(nvcc), "--list-gpu-arch"], capture_output=True, text=True, check=True
        ).stdout
        supported = {tok.split("_")[1] for tok in out.split() if tok.startswith("compute_")}
    except (OSError, subprocess.CalledProcessError):
        supported = None  # old nvcc: try them all
    archs = [a for a in requested_archs() if supported is None or a in supported]
    skipped = [a for a in requested_archs() if a not in archs]
    if skipped:
        _log(f"nvcc does not support sm_{', sm_'.join(skipped)}; skipped")
    if not archs:
        raise RuntimeError("none of STRESSVAE_CUDA_ARCHS is supported by this nvcc")
    flags = []
    for a in archs:
        flags += ["-gencode", f"arch=compute_{a},code=sm_{a}"]
    flags += ["-gencode", f"arch=compute_{archs[-1]},code=compute_{archs[-1]}"]
    return flags, archs


class BuildExt(build_ext):
    """build_ext that compiles the .cu sources of _cuda with nvcc first."""

    def build_extension(self, ext):
        if ext.name != "stressvae._cuda":
            return super().build_extension(ext)
        try:
            self._build_cuda(ext)
        except Exception as err:  # a failed optional build must not stop the install
            if cuda_mode() == "force":
                raise
            _log(f"CUDA module not built ({err}); stressvae will run on the CPU only")

    def _build_cuda(self, ext):
        cuda_home = find_cuda_home()
        if cuda_home is None:
            raise RuntimeError("CUDA toolkit not found (set CUDA_HOME)")
        nvcc = cuda_home / "bin" / "nvcc"
        gencode, archs = gencode_flags(nvcc)
        tmp = Path(self.build_temp) / "cuda"
        tmp.mkdir(parents=True, exist_ok=True)
        objects = []
        for src in ext.cuda_sources:
            obj = tmp / (Path(src).stem + ".o")
            cmd = [str(nvcc), "-c", str(ROOT / src), "-o", str(obj), f"-I{ROOT / CSRC}"]
            cmd += NVCC_FLAGS + gencode
            _log(" ".join(cmd))
            subprocess.run(cmd, check=True)
            objects.append(str(obj))
        ext.extra_objects = objects
        ext.library_dirs = [str(cuda_home / "lib64"), str(cuda_home / "lib")]
        ext.libraries = ["cudart_static", "dl", "rt", "pthread"]
        ext.define_macros = [*ext.define_macros, ("SVAE_CUDA_ARCHS", f'"{";".join(archs)}"')]
        super().build_extension(ext)


def extensions() -> list[Pybind11Extension]:
    exts = [
        Pybind11Extension(
            "stressvae._core",
            sources=[
                f"{CSRC}/bindings.cpp",
                f"{CSRC}/sample.cpp",
                f"{CSRC}/decode.cpp",
                f"{CSRC}/rollout.cpp",
                f"{CSRC}/kernels_avx512.cpp",
                f"{CSRC}/kernels_avx2.cpp",
                f"{CSRC}/kernels_sse2.cpp",
            ],
            include_dirs=[CSRC],
            cxx_std=17,
            extra_compile_args=HOST_FLAGS,
            extra_link_args=["-pthread"],
        )
    ]
    mode = cuda_mode()
    have_nvcc = find_cuda_home() is not None
    if mode == "force" and not have_nvcc:
        raise SystemExit("STRESSVAE_CUDA=force but no CUDA toolkit (nvcc) was found")
    if mode != "off" and have_nvcc:
        cuda = Pybind11Extension(
            "stressvae._cuda",
            sources=[f"{CSRC}/bindings_cuda.cpp", f"{CSRC}/cuda/pack.cpp"],
            include_dirs=[CSRC],
            cxx_std=17,
            extra_compile_args=HOST_FLAGS,
        )
        cuda.cuda_sources = [
            f"{CSRC}/cuda/sample.cu",
            f"{CSRC}/cuda/decode.cu",
            f"{CSRC}/cuda/rollout.cu",
            f"{CSRC}/cuda/epilogue.cu",
        ]
        exts.append(cuda)
    elif mode != "off":
        _log("nvcc not found: building the CPU core only")
    return exts


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})

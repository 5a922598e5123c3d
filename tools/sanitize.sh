#!/usr/bin/env bash
# The native core (stressvae._core) under AddressSanitizer and
# UndefinedBehaviorSanitizer.
#
#   tools/sanitize.sh [WORKDIR] [-- PYTEST_ARGS...]
#
# What it does:
#   1. copies stressvae/ (sources only: no .so, no __pycache__), tests/ and
#      pyproject.toml into WORKDIR (default: a fresh mktemp -d; a stressvae/
#      or tests/ already there is deleted first), so that the
#      installed package and its stressvae/_core*.so are never touched;
#   2. compiles the sources setup.py lists for stressvae._core (objects in
#      WORKDIR/build are reused while no file in csrc/ is newer) with
#      -fsanitize=address,undefined -fno-omit-frame-pointer -g -O1 and the
#      build's own numeric flags (-ffp-contract=off -fno-math-errno) into
#      WORKDIR/stressvae/_core<EXT_SUFFIX>; stressvae._cuda is left out (a
#      CUDA module cannot be checked here), so the CUDA tests skip;
#   3. runs pytest on the native tests (sampling, decode, rollout,
#      validation, philox) from WORKDIR, with the copy first on sys.path and
#      the sanitizer runtimes preloaded (python itself is not instrumented).
#      A pytest plugin (WORKDIR/sanitize_check.py) fails the run at once if
#      stressvae or stressvae._core is imported from anywhere else, and
#      prints both paths in the report header; it also checks that the ASan
#      runtime is mapped into the process.
#
# Any sanitizer report stops the run (halt_on_error=1) with a non-zero exit
# status and a stack trace (file:line) on stderr. Leak detection is off:
# CPython and torch keep memory until exit by design.
#
# Environment:
#   CXX          compiler (default g++; the runtimes are found through it)
#   JOBS         parallel compile jobs (default 2)
#   SANITIZE     sanitizers (default address,undefined)
#
# Examples:
#   tools/sanitize.sh                         # build in a temp dir, run the tests
#   tools/sanitize.sh /tmp/svae-asan -- -k rollout -x
#
# Not part of CI: the build takes a few minutes (three ISA kernel files at
# -O1 with instrumentation) and the tests run about 2-3x slower than usual.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CXX=${CXX:-g++}
JOBS=${JOBS:-2}
SANITIZE=${SANITIZE:-address,undefined}

WORK=""
if [[ $# -gt 0 && $1 != "--" ]]; then
  WORK=$1
  shift
fi
if [[ $# -gt 0 && $1 == "--" ]]; then
  shift
fi
WORK=${WORK:-$(mktemp -d -t stressvae-sanitize.XXXXXX)}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
if [[ $WORK == "$ROOT" || $WORK == "$ROOT"/stressvae* ]]; then
  echo "sanitize.sh: WORKDIR must not be the checkout or its package" >&2
  exit 2
fi

# 1. A separate copy of the package and the tests.
rm -rf "$WORK/stressvae" "$WORK/tests"
mkdir -p "$WORK/build"
(cd "$ROOT" && tar --exclude='__pycache__' --exclude='*.so' -cf - stressvae tests pyproject.toml) |
  (cd "$WORK" && tar -xf -)

# 2. The sanitized build, from setup.py's list of sources for stressvae._core.
mapfile -t SOURCES < <(
  sed -n '/"stressvae._core"/,/^ *\],/p' "$ROOT/setup.py" | grep -o '{CSRC}/[A-Za-z0-9_/]*\.cpp' |
    sed 's|{CSRC}|csrc|'
)
if [[ ${#SOURCES[@]} -eq 0 ]]; then
  echo "sanitize.sh: found no sources of stressvae._core in setup.py" >&2
  exit 2
fi
read -r PYINC PBINC EXT < <(python - <<'EOF'
import sysconfig

import pybind11

print(sysconfig.get_paths()["include"], pybind11.get_include(), sysconfig.get_config_var("EXT_SUFFIX"))
EOF
)
CXXFLAGS=(
  -std=c++17 -fPIC -fvisibility=hidden -pthread
  -O1 -g -fno-omit-frame-pointer "-fsanitize=$SANITIZE"
  -ffp-contract=off -fno-math-errno -Wall -Wextra -Wno-psabi
  -I"$ROOT/csrc" -I"$PBINC" -I"$PYINC"
)
echo "sanitize.sh: compiling ${SOURCES[*]} with ${CXXFLAGS[*]:0:11}" >&2
OBJECTS=()
pids=()
for src in "${SOURCES[@]}"; do
  obj="$WORK/build/$(basename "${src%.cpp}").o"
  OBJECTS+=("$obj")
  # an object is kept from an earlier run only while no csrc file is newer
  if [[ -f $obj && -z $(find "$ROOT/csrc" -newer "$obj" -print -quit) ]]; then
    continue
  fi
  "$CXX" "${CXXFLAGS[@]}" -c "$ROOT/$src" -o "$obj" &
  pids+=($!)
  if [[ ${#pids[@]} -ge $JOBS ]]; then
    wait "${pids[0]}"
    pids=("${pids[@]:1}")
  fi
done
for pid in "${pids[@]}"; do
  wait "$pid"
done
SO="$WORK/stressvae/_core$EXT"
"$CXX" -shared -pthread "-fsanitize=$SANITIZE" "${OBJECTS[@]}" -o "$SO"
echo "sanitize.sh: built $SO" >&2

# 3. The native tests against the copy, runtimes preloaded.
PRELOAD=""
for lib in libasan libubsan; do
  path=$(ldd "$SO" | awk -v l="$lib" 'index($1, l) == 1 { print $3 }')
  if [[ -n $path ]]; then
    PRELOAD="${PRELOAD:+$PRELOAD:}$path"
  fi
done

cat >"$WORK/sanitize_check.py" <<EOF
"""pytest plugin of tools/sanitize.sh: the run must use the sanitized copy."""

import os

import stressvae
from stressvae import _core

WORK = "$WORK"
for _mod in (stressvae, _core):
    if not os.path.realpath(_mod.__file__).startswith(WORK + os.sep):
        raise SystemExit(f"sanitize.sh: {_mod.__name__} imported from {_mod.__file__}, not {WORK}")
with open("/proc/self/maps") as _maps:
    if "libasan" not in _maps.read():
        raise SystemExit("sanitize.sh: the ASan runtime is not loaded")


def pytest_report_header(config):
    return [f"sanitized copy: stressvae={stressvae.__file__}", f"  _core={_core.__file__}"]
EOF

TESTS=(tests/test_sampling.py tests/test_decode.py tests/test_rollout.py tests/test_validation.py
  tests/test_philox.py)
echo "sanitize.sh: LD_PRELOAD=$PRELOAD" >&2
cd "$WORK"
env PYTHONPATH="$WORK" LD_PRELOAD="$PRELOAD" \
  ASAN_OPTIONS="detect_leaks=0:allow_user_segv_handler=1:use_sigaltstack=0:abort_on_error=0:halt_on_error=1" \
  UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
  python -m pytest -p sanitize_check -p no:cacheprovider -q "${TESTS[@]}" "$@"

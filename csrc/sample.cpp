// Fused reparameterized sampling on the CPU (see sample.h): the Philox
// tiles of tile.h, then z = fmaf(sigma, eps, mu) row by row. Nothing of size
// n x d but z is written.
//
// The same source is compiled three times, for baseline x86-64, AVX2+FMA and
// AVX-512 (target attributes, chosen at run time, never -march=native). All
// float work is explicit single IEEE operations, so all three give the same
// bits; tests/test_sampling.py checks that.
#include "sample.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "parallel.h"
#include "tile.h"

namespace svae {
namespace {

using namespace tile;

template <int kIsa>
SVAE_HD void sample_dispatch(const SampleArgs& a, int64_t r0, int64_t r1) {
  const LaneMap map(a.d);
  sample_dispatch_into<kIsa>(a, map, r0, r1, a.z + r0 * a.d, a.d);
}

struct NormalsArgs {
  float* out;
  int64_t d;
  uint64_t seed;
  uint32_t tag;
  uint64_t offset;
};

template <int kIsa>
SVAE_HD void normals_dispatch(const NormalsArgs& a, int64_t r0, int64_t r1) {
  const LaneMap map(a.d);
  normals_into<kIsa>(map, a.d, a.seed, a.tag, a.offset, r0, r1, a.out + r0 * a.d, a.d);
}

// One entry point per ISA level; the always-inline bodies above are compiled
// anew inside each.
void sample_baseline(const SampleArgs& a, int64_t r0, int64_t r1) {
  sample_dispatch<kBaseline>(a, r0, r1);
}
void normals_baseline(const NormalsArgs& a, int64_t r0, int64_t r1) {
  normals_dispatch<kBaseline>(a, r0, r1);
}
#if defined(__x86_64__)
SVAE_AVX2 void sample_avx2(const SampleArgs& a, int64_t r0, int64_t r1) {
  sample_dispatch<kAvx2>(a, r0, r1);
}
SVAE_AVX2 void normals_avx2(const NormalsArgs& a, int64_t r0, int64_t r1) {
  normals_dispatch<kAvx2>(a, r0, r1);
}
SVAE_AVX512 void sample_avx512(const SampleArgs& a, int64_t r0, int64_t r1) {
  sample_dispatch<kAvx512>(a, r0, r1);
}
SVAE_AVX512 void normals_avx512(const NormalsArgs& a, int64_t r0, int64_t r1) {
  normals_dispatch<kAvx512>(a, r0, r1);
}
#endif

// Rows per thread below which a call stays single-threaded (about 64K
// elements: starting a thread costs more than the work below that).
int64_t min_rows_per_thread(int64_t d) {
  return std::max<int64_t>(1, 65536 / std::max<int64_t>(d, 1));
}

}  // namespace

Isa best_isa() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw"))
    return Isa::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::Avx2;
#endif
  return Isa::Baseline;
}

Isa resolve_isa(Isa requested) {
  const Isa best = best_isa();
  if (requested == Isa::Auto) return best;
  if (static_cast<int>(requested) > static_cast<int>(best))
    throw std::invalid_argument(std::string("isa: this CPU does not support ") +
                                isa_name(requested) + " (best available: " + isa_name(best) +
                                ")");
  return requested;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Auto:
      return "auto";
    case Isa::Baseline:
      return "baseline";
    case Isa::Avx2:
      return "avx2";
    case Isa::Avx512:
      return "avx512";
  }
  return "unknown";
}

void validate_sample_args(const SampleArgs& a) {
  if (a.n < 0 || a.d <= 0 || a.k <= 0)
    throw std::invalid_argument("sample_cpu: n >= 0, d > 0, k > 0");
  if (!a.mu || !a.logvar) throw std::invalid_argument("sample_cpu: null buffer");
  if (a.mode == RowMode::Broadcast && a.k != 1)
    throw std::invalid_argument("sample_cpu: broadcast mode takes one row of mu / logvar");
  if (a.mode == RowMode::PerRow && a.k != a.n)
    throw std::invalid_argument("sample_cpu: per-row mode takes n rows of mu / logvar");
  if (a.mode == RowMode::Table) {
    if (!a.index) throw std::invalid_argument("sample_cpu: table mode needs an index");
    for (int64_t i = 0; i < a.n; ++i)
      if (a.index[i] < 0 || a.index[i] >= a.k)
        throw std::invalid_argument("index: value " + std::to_string(a.index[i]) +
                                    " at position " + std::to_string(i) + " is outside [0, " +
                                    std::to_string(a.k) + ")");
  }
}

void sample_cpu(const SampleArgs& a, int num_threads, Isa isa) {
  if (a.n < 0 || a.d <= 0 || a.k <= 0)
    throw std::invalid_argument("sample_cpu: n >= 0, d > 0, k > 0");
  if (a.n == 0) return;
  if (!a.z) throw std::invalid_argument("sample_cpu: null buffer");
  validate_sample_args(a);
  const Isa level = resolve_isa(isa);
  const auto rows = for_isa(level, &sample_avx512, &sample_avx2, &sample_baseline);
  parallel_rows(a.n, num_threads, min_rows_per_thread(a.d),
                [&](int64_t r0, int64_t r1) { rows(a, r0, r1); });
}

void normals_cpu(float* out, int64_t n, int64_t d, uint64_t seed, uint32_t tag, uint64_t offset,
                 int num_threads, Isa isa) {
  if (n < 0 || d <= 0) throw std::invalid_argument("normals_cpu: n >= 0, d > 0");
  if (n == 0) return;
  if (!out) throw std::invalid_argument("normals_cpu: null buffer");
  const Isa level = resolve_isa(isa);
  const NormalsArgs a{out, d, seed, tag, offset};
  const auto rows = for_isa(level, &normals_avx512, &normals_avx2, &normals_baseline);
  parallel_rows(n, num_threads, min_rows_per_thread(d), [&](int64_t r0, int64_t r1) { rows(a, r0, r1); });
}

}  // namespace svae

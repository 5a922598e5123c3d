// Fused reparameterized sampling on the CPU (see sample.h).
//
// Work goes in tiles of kLanes Philox blocks (a block = 4 elements of one
// row). A tile holds whole rows (kLanes / ceil(d/4) of them) or, for d > 256,
// a run of blocks of one row. Per tile:
//   1. counters (block, tag, scenario) for every lane, from lane maps made
//      once per call (vector adds, no division, no branch);
//   2. Philox4x32-10 with the four state words kept in vector registers for
//      all ten rounds (AVX-512 / AVX2 intrinsics, or the shared scalar
//      round of philox.h on other CPUs);
//   3. Box-Muller into a 1 KiB buffer that stays in L1 (auto-vectorized);
//   4. z = fmaf(sigma, eps, mu) row by row.
// Nothing of size n x d but z is written.
//
// The same source is compiled three times, for baseline x86-64, AVX2+FMA and
// AVX-512 (target attributes, chosen at run time, never -march=native). All
// float work is explicit single IEEE operations, so all three give the same
// bits; tests/test_sampling.py checks that.
#include "sample.h"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "parallel.h"
#include "philox.h"

namespace svae {
namespace {

constexpr int kLanes = 64;  // Philox blocks per tile: 256 normals, 1 KiB

enum IsaLevel : int { kBaseline = 1, kAvx2 = 2, kAvx512 = 3 };

struct alignas(64) Tile {
  uint32_t x0[kLanes], x1[kLanes], x2[kLanes], x3[kLanes];  // Philox state
  float eps[4 * kLanes];                                      // normals
};

// Which (row within the tile, block) each lane computes; fixed for a call.
struct LaneMap {
  int64_t nblk = 0;           // Philox blocks per row: ceil(d / 4)
  int64_t rows_per_tile = 0;  // whole rows per tile, or 0 when d > 4 * kLanes
  alignas(64) uint64_t row[kLanes] = {};
  alignas(64) uint32_t block[kLanes] = {};

  explicit LaneMap(int64_t d) : nblk((d + 3) / 4) {
    rows_per_tile = nblk <= kLanes ? kLanes / nblk : 0;
    for (int l = 0; l < kLanes; ++l) {
      row[l] = rows_per_tile ? static_cast<uint64_t>(l / nblk) : 0;
      block[l] = static_cast<uint32_t>(rows_per_tile ? l % nblk : l);
    }
  }
};

// ----------------------------------------------------------------- Philox
SVAE_HD void philox_tile_generic(Tile& t, uint64_t seed) {
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += kPhiloxW0;
      k1 += kPhiloxW1;
    }
    for (int l = 0; l < kLanes; ++l) {
      const U32x4 c = philox_round(U32x4{t.x0[l], t.x1[l], t.x2[l], t.x3[l]}, k0, k1);
      t.x0[l] = c.v0;
      t.x1[l] = c.v1;
      t.x2[l] = c.v2;
      t.x3[l] = c.v3;
    }
  }
}

#if defined(__x86_64__)
// GCC's AVX-512 shift intrinsics use a self-initialized "undefined" vector
// that -Wuninitialized flags; it is not a real read of uninitialized data.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define SVAE_AVX2 __attribute__((target("avx2,fma")))
#define SVAE_AVX512 \
  __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma,prefer-vector-width=512")))

// 32 x 32 -> 64-bit products of all lanes, split into high and low words:
// even lanes from one vpmuludq, odd lanes from a second one on the shifted
// input, put back in place by blends (no cross-lane shuffles).
SVAE_AVX512 SVAE_HD void mulhilo16(__m512i a, __m512i m, __m512i& hi, __m512i& lo) {
  const __m512i even = _mm512_mul_epu32(a, m);
  const __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);
  hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
  lo = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
}

SVAE_AVX512 void philox_tile_avx512(Tile& t, uint64_t seed) {
  const __m512i m0 = _mm512_set1_epi32(static_cast<int>(kPhiloxM0));
  const __m512i m1 = _mm512_set1_epi32(static_cast<int>(kPhiloxM1));
  for (int l = 0; l < kLanes; l += 16) {
    __m512i x0 = _mm512_load_si512(t.x0 + l), x1 = _mm512_load_si512(t.x1 + l);
    __m512i x2 = _mm512_load_si512(t.x2 + l), x3 = _mm512_load_si512(t.x3 + l);
    uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
    for (int round = 0; round < 10; ++round) {
      if (round > 0) {
        k0 += kPhiloxW0;
        k1 += kPhiloxW1;
      }
      __m512i hi0, lo0, hi1, lo1;
      mulhilo16(x0, m0, hi0, lo0);
      mulhilo16(x2, m1, hi1, lo1);
      x0 = _mm512_xor_si512(_mm512_xor_si512(hi1, x1), _mm512_set1_epi32(static_cast<int>(k0)));
      x1 = lo1;
      x2 = _mm512_xor_si512(_mm512_xor_si512(hi0, x3), _mm512_set1_epi32(static_cast<int>(k1)));
      x3 = lo0;
    }
    _mm512_store_si512(t.x0 + l, x0);
    _mm512_store_si512(t.x1 + l, x1);
    _mm512_store_si512(t.x2 + l, x2);
    _mm512_store_si512(t.x3 + l, x3);
  }
}

SVAE_AVX2 SVAE_HD void mulhilo8(__m256i a, __m256i m, __m256i& hi, __m256i& lo) {
  const __m256i even = _mm256_mul_epu32(a, m);
  const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);
  hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
  lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
}

SVAE_AVX2 void philox_tile_avx2(Tile& t, uint64_t seed) {
  const __m256i m0 = _mm256_set1_epi32(static_cast<int>(kPhiloxM0));
  const __m256i m1 = _mm256_set1_epi32(static_cast<int>(kPhiloxM1));
  __m256i* v0 = reinterpret_cast<__m256i*>(t.x0);
  __m256i* v1 = reinterpret_cast<__m256i*>(t.x1);
  __m256i* v2 = reinterpret_cast<__m256i*>(t.x2);
  __m256i* v3 = reinterpret_cast<__m256i*>(t.x3);
  for (int v = 0; v < kLanes / 8; ++v) {
    __m256i x0 = _mm256_load_si256(v0 + v), x1 = _mm256_load_si256(v1 + v);
    __m256i x2 = _mm256_load_si256(v2 + v), x3 = _mm256_load_si256(v3 + v);
    uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
    for (int round = 0; round < 10; ++round) {
      if (round > 0) {
        k0 += kPhiloxW0;
        k1 += kPhiloxW1;
      }
      __m256i hi0, lo0, hi1, lo1;
      mulhilo8(x0, m0, hi0, lo0);
      mulhilo8(x2, m1, hi1, lo1);
      x0 = _mm256_xor_si256(_mm256_xor_si256(hi1, x1), _mm256_set1_epi32(static_cast<int>(k0)));
      x1 = lo1;
      x2 = _mm256_xor_si256(_mm256_xor_si256(hi0, x3), _mm256_set1_epi32(static_cast<int>(k1)));
      x3 = lo0;
    }
    _mm256_store_si256(v0 + v, x0);
    _mm256_store_si256(v1 + v, x1);
    _mm256_store_si256(v2 + v, x2);
    _mm256_store_si256(v3 + v, x3);
  }
}
#pragma GCC diagnostic pop
#endif

template <int kIsa>
SVAE_HD void philox_tile(Tile& t, uint64_t seed) {
#if defined(__x86_64__)
  if constexpr (kIsa == kAvx512) {
    philox_tile_avx512(t, seed);
    return;
  } else if constexpr (kIsa == kAvx2) {
    philox_tile_avx2(t, seed);
    return;
  }
#endif
  philox_tile_generic(t, seed);
}

// Box-Muller over every lane: t.eps[4 * l + q] is element q of lane l.
SVAE_HD void normals_tile(Tile& t) {
  for (int l = 0; l < kLanes; ++l) {
    float n0, n1, n2, n3;
    box_muller(t.x0[l], t.x1[l], &n0, &n1);
    box_muller(t.x2[l], t.x3[l], &n2, &n3);
    t.eps[4 * l + 0] = n0;
    t.eps[4 * l + 1] = n1;
    t.eps[4 * l + 2] = n2;
    t.eps[4 * l + 3] = n3;
  }
}

// Walks rows [r0, r1) in tiles and calls emit(row, j0, j1, eps) for each run
// of elements j0 .. j1-1 of `row` whose normals are eps[0 .. j1-j0-1].
template <int kIsa, class Emit>
SVAE_HD void for_each_tile(const LaneMap& map, int64_t r0, int64_t r1, int64_t d, uint64_t seed,
                           uint32_t tag, uint64_t offset, Emit&& emit) {
  Tile t;
  const int64_t dpad = 4 * map.nblk;
  if (map.rows_per_tile > 0) {
    for (int64_t row = r0; row < r1; row += map.rows_per_tile) {
      const uint64_t base = offset + static_cast<uint64_t>(row);
      for (int l = 0; l < kLanes; ++l) {
        const uint64_t scenario = base + map.row[l];
        t.x0[l] = map.block[l];
        t.x1[l] = tag;
        t.x2[l] = static_cast<uint32_t>(scenario);
        t.x3[l] = static_cast<uint32_t>(scenario >> 32);
      }
      philox_tile<kIsa>(t, seed);
      normals_tile(t);
      const int64_t rows = std::min<int64_t>(map.rows_per_tile, r1 - row);
      for (int64_t r = 0; r < rows; ++r) emit(row + r, int64_t{0}, d, t.eps + r * dpad);
    }
    return;
  }
  // Rows wider than a tile: runs of kLanes blocks of one row.
  for (int64_t row = r0; row < r1; ++row) {
    const uint64_t scenario = offset + static_cast<uint64_t>(row);
    for (int64_t b0 = 0; b0 < map.nblk; b0 += kLanes) {
      for (int l = 0; l < kLanes; ++l) {
        t.x0[l] = static_cast<uint32_t>(b0) + map.block[l];
        t.x1[l] = tag;
        t.x2[l] = static_cast<uint32_t>(scenario);
        t.x3[l] = static_cast<uint32_t>(scenario >> 32);
      }
      philox_tile<kIsa>(t, seed);
      normals_tile(t);
      emit(row, 4 * b0, std::min<int64_t>(d, 4 * (b0 + kLanes)), t.eps);
    }
  }
}

// Lambdas passed to the always-inline bodies are inlined too, so that they
// are compiled for the ISA of the entry point that includes them.
#define SVAE_LAMBDA_INLINE __attribute__((always_inline))

template <int kIsa, RowMode M>
SVAE_HD void sample_range(const SampleArgs& a, const LaneMap& map, int64_t r0, int64_t r1) {
  const int64_t d = a.d;
  const float scale = a.scale;
  std::vector<float> prior_sigma;
  if (M == RowMode::Broadcast) {
    prior_sigma.resize(static_cast<size_t>(d));
    for (int64_t j = 0; j < d; ++j) prior_sigma[j] = sigma_of(a.logvar[j], scale);
  }
  const float* __restrict psig = prior_sigma.data();
  for_each_tile<kIsa>(map, r0, r1, d, a.seed, a.tag, a.offset,
                      [&](int64_t row, int64_t j0, int64_t j1,
                          const float* __restrict eps) SVAE_LAMBDA_INLINE {
                        float* __restrict zr = a.z + row * d;
                        if (M == RowMode::Broadcast) {
                          const float* __restrict m = a.mu;
                          for (int64_t j = j0; j < j1; ++j)
                            zr[j] = reparam(m[j], psig[j], eps[j - j0]);
                        } else {
                          const int64_t src = (M == RowMode::PerRow) ? row : a.index[row];
                          const float* __restrict m = a.mu + src * d;
                          const float* __restrict lv = a.logvar + src * d;
                          for (int64_t j = j0; j < j1; ++j)
                            zr[j] = reparam(m[j], sigma_of(lv[j], scale), eps[j - j0]);
                        }
                      });
}

template <int kIsa>
SVAE_HD void sample_dispatch(const SampleArgs& a, int64_t r0, int64_t r1) {
  const LaneMap map(a.d);
  switch (a.mode) {
    case RowMode::Broadcast:
      sample_range<kIsa, RowMode::Broadcast>(a, map, r0, r1);
      break;
    case RowMode::PerRow:
      sample_range<kIsa, RowMode::PerRow>(a, map, r0, r1);
      break;
    case RowMode::Table:
      sample_range<kIsa, RowMode::Table>(a, map, r0, r1);
      break;
  }
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
  for_each_tile<kIsa>(map, r0, r1, a.d, a.seed, a.tag, a.offset,
                      [&](int64_t row, int64_t j0, int64_t j1,
                          const float* __restrict eps) SVAE_LAMBDA_INLINE {
                        float* __restrict o = a.out + row * a.d;
                        for (int64_t j = j0; j < j1; ++j) o[j] = eps[j - j0];
                      });
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

void sample_cpu(const SampleArgs& a, int num_threads, Isa isa) {
  if (a.n < 0 || a.d <= 0 || a.k <= 0)
    throw std::invalid_argument("sample_cpu: n >= 0, d > 0, k > 0");
  if (a.n == 0) return;
  if (!a.z || !a.mu || !a.logvar) throw std::invalid_argument("sample_cpu: null buffer");
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
  const Isa level = resolve_isa(isa);
  parallel_rows(a.n, num_threads, min_rows_per_thread(a.d), [&](int64_t r0, int64_t r1) {
    switch (level) {
#if defined(__x86_64__)
      case Isa::Avx512:
        sample_avx512(a, r0, r1);
        return;
      case Isa::Avx2:
        sample_avx2(a, r0, r1);
        return;
#endif
      default:
        sample_baseline(a, r0, r1);
    }
  });
}

void normals_cpu(float* out, int64_t n, int64_t d, uint64_t seed, uint32_t tag, uint64_t offset,
                 int num_threads, Isa isa) {
  if (n < 0 || d <= 0) throw std::invalid_argument("normals_cpu: n >= 0, d > 0");
  if (n == 0) return;
  if (!out) throw std::invalid_argument("normals_cpu: null buffer");
  const Isa level = resolve_isa(isa);
  const NormalsArgs a{out, d, seed, tag, offset};
  parallel_rows(n, num_threads, min_rows_per_thread(d), [&](int64_t r0, int64_t r1) {
    switch (level) {
#if defined(__x86_64__)
      case Isa::Avx512:
        normals_avx512(a, r0, r1);
        return;
      case Isa::Avx2:
        normals_avx2(a, r0, r1);
        return;
#endif
      default:
        normals_baseline(a, r0, r1);
    }
  });
}

}  // namespace svae

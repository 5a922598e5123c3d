// The Philox tile machinery shared by the CPU sampler (sample.cpp) and the
// decoder's fused sampling and observation noise (kernels_<isa>.cpp).
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
//   4. the caller's emit(row, j0, j1, eps) consumes it.
// Every function is always-inline (or carries its own target attribute), so
// it compiles into the instruction set of the entry point that calls it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "philox.h"
#include "sample.h"

namespace svae {
namespace tile {

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

  SVAE_HD explicit LaneMap(int64_t d) : nblk((d + 3) / 4) {
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

inline SVAE_AVX512 void philox_tile_avx512(Tile& t, uint64_t seed) {
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

inline SVAE_AVX2 void philox_tile_avx2(Tile& t, uint64_t seed) {
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

// z = mu + sigma * eps for rows [r0, r1) of a sampling call, written to
// dst + (row - r0) * ld (so the decoder can draw straight into its buffer).
template <int kIsa, RowMode M>
SVAE_HD void sample_into(const SampleArgs& a, const LaneMap& map, int64_t r0, int64_t r1,
                         float* dst, int64_t ld) {
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
                        float* __restrict zr = dst + (row - r0) * ld;
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
SVAE_HD void sample_dispatch_into(const SampleArgs& a, const LaneMap& map, int64_t r0, int64_t r1,
                                  float* dst, int64_t ld) {
  switch (a.mode) {
    case RowMode::Broadcast:
      sample_into<kIsa, RowMode::Broadcast>(a, map, r0, r1, dst, ld);
      break;
    case RowMode::PerRow:
      sample_into<kIsa, RowMode::PerRow>(a, map, r0, r1, dst, ld);
      break;
    case RowMode::Table:
      sample_into<kIsa, RowMode::Table>(a, map, r0, r1, dst, ld);
      break;
  }
}

// Standard normals eps[row, 0 .. d) of scenarios offset + row, rows
// [r0, r1), written to dst + (row - r0) * ld.
template <int kIsa>
SVAE_HD void normals_into(const LaneMap& map, int64_t d, uint64_t seed, uint32_t tag,
                          uint64_t offset, int64_t r0, int64_t r1, float* dst, int64_t ld) {
  for_each_tile<kIsa>(map, r0, r1, d, seed, tag, offset,
                      [&](int64_t row, int64_t j0, int64_t j1,
                          const float* __restrict eps) SVAE_LAMBDA_INLINE {
                        float* __restrict o = dst + (row - r0) * ld;
                        for (int64_t j = j0; j < j1; ++j) o[j] = eps[j - j0];
                      });
}

}  // namespace tile
}  // namespace svae

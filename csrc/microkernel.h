// The register-tiled micro-kernel of the CPU decode and rollout, written once
// over SIMD traits S (simd.h). Include after simd.h, in kernels_<isa>.cpp.
#pragma once

#include <cstdint>

namespace svae {
namespace simd {

// acc[r][v] = sum_k A[r, k] * P[k, v*W .. v*W + W), k in order (one fma per k).
template <class S, int MR, int NV>
SVAE_INLINE void micro(const float* __restrict A, int64_t lda, const float* __restrict P,
                       int64_t K, typename S::V (&acc)[MR][NV]) {
  constexpr int W = S::W;
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[r][v] = S::zero();
  for (int64_t k = 0; k < K; ++k) {
    typename S::V b[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) b[v] = S::load(P + k * (NV * W) + v * W);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const typename S::V av = S::set1(A[r * lda + k]);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[r][v] = S::fma(av, b[v], acc[r][v]);
    }
  }
}

}  // namespace simd
}  // namespace svae

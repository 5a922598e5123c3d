// Device side of DeviceLatent, shared by the decode and rollout kernels:
// the four latent values 4b .. 4b+3 of row i (zeros past n or past L), from
// the given z or drawn by the fused sampler (stream kTagLatent, scenario
// offset + i: the CPU's numbers). A table index out of range gives NaN, which
// the caller's finiteness check reports. Include from .cu files only.
#pragma once

#include "../philox.h"
#include "latent.h"

namespace svae {
namespace cuda {

__device__ __forceinline__ void latent_block(const DeviceLatent& lat, int64_t i, int64_t n, int L,
                                             int b, uint64_t seed, uint64_t offset,
                                             float z4[4]) {
#pragma unroll
  for (int q = 0; q < 4; ++q) z4[q] = 0.0f;
  if (i >= n) return;
  if (lat.z) {
#pragma unroll
    for (int q = 0; q < 4; ++q)
      if (4 * b + q < L) z4[q] = lat.z[i * L + 4 * b + q];
    return;
  }
  float eps[4];
  normal4(seed, kTagLatent, offset + static_cast<uint64_t>(i), static_cast<uint32_t>(b), eps);
  const int64_t src = lat.mode == 0 ? 0 : (lat.mode == 1 ? i : lat.index[i]);
  const bool ok = src >= 0 && src < lat.k;
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    const int j = 4 * b + q;
    if (j < L)
      z4[q] = ok ? reparam(lat.mu[src * L + j], sigma_of(lat.logvar[src * L + j], lat.scale),
                           eps[q])
                 : __int_as_float(0x7fc00000);
  }
}

}  // namespace cuda
}  // namespace svae

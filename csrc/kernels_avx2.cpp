// The decode worker compiled for avx2 (see decode_kernels.h). Standard
// headers and tile.h come before the target pragma so that only this file's
// own templates are built for avx2.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "decode.h"
#include "rollout.h"
#include "tile.h"

#if defined(__x86_64__)
#pragma GCC target("avx2,fma")
#define SVAE_SIMD_AVX2
#include "simd.h"
#include "decode_kernels.h"
#include "rollout_kernels.h"

namespace svae {

void decode_rows_avx2(const PackedNet& net, const DecodeArgs& a, int64_t r0, int64_t r1) {
  decode_impl::decode_rows<simd::Avx2, 6, 2, tile::kAvx2>(net, a, r0, r1);
}

// The GRU rollout: 4 rows x 3 gate vectors per register tile.
void rollout_rows_avx2(const PackedGru& net, const RolloutArgs& a, int64_t r0, int64_t r1) {
  rollout_impl::rollout_rows<simd::Avx2, 4, tile::kAvx2>(net, a, r0, r1);
}

}  // namespace svae
#endif

// The per-ISA workers of the decode and the rollout, compiled for avx512
// (decode_kernels.h, rollout_kernels.h). The standard headers come before
// the target pragma: their inline functions must not be built for avx512, since
// the linker keeps one copy of each for the whole module. The project headers
// come after it; every function they define is always-inline or a template
// over this ISA's traits, so nothing built here is shared with other levels.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "decode.h"
#include "rollout.h"

#if defined(__x86_64__)
#include <immintrin.h>

// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own
// "undefined" vectors; not a real uninitialized read.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma,prefer-vector-width=512")
#define SVAE_SIMD_AVX512
#include "simd.h"
#include "decode_kernels.h"
#include "rollout_kernels.h"

namespace svae {

// The decode: 6 rows x 4 vectors per register tile.
void decode_rows_avx512(const PackedNet& net, const DecodeArgs& a, int64_t r0, int64_t r1) {
  decode_impl::decode_rows<simd::Avx512, 6, 4, tile::kAvx512>(net, a, r0, r1);
}

// The GRU rollout: 8 rows x 3 gate vectors per register tile.
void rollout_rows_avx512(const PackedGru& net, const RolloutArgs& a, int64_t r0, int64_t r1) {
  rollout_impl::rollout_rows<simd::Avx512, 8, tile::kAvx512>(net, a, r0, r1);
}

}  // namespace svae
#endif

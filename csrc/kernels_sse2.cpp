// The per-ISA workers of the decode and the rollout, compiled for sse2
// (decode_kernels.h, rollout_kernels.h). The standard headers come before
// the target pragma: their inline functions must not be built for sse2, since
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

// baseline x86-64: no target change
#define SVAE_SIMD_SSE2
#include "simd.h"
#include "decode_kernels.h"
#include "rollout_kernels.h"

namespace svae {

// The decode: 4 rows x 2 vectors per register tile.
void decode_rows_sse2(const PackedNet& net, const DecodeArgs& a, int64_t r0, int64_t r1) {
  decode_impl::decode_rows<simd::Sse2, 4, 2, tile::kBaseline>(net, a, r0, r1);
}

// The GRU rollout: 4 rows x 3 gate vectors per register tile.
void rollout_rows_sse2(const PackedGru& net, const RolloutArgs& a, int64_t r0, int64_t r1) {
  rollout_impl::rollout_rows<simd::Sse2, 4, tile::kBaseline>(net, a, r0, r1);
}

}  // namespace svae
#endif

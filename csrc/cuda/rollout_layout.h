// The layout of the CUDA rollout's packed weights (rollout_cuda.h), for the
// kernel (rollout.cu) and the host packing (pack.cpp) alike: offsets, in
// floats, of the shared-memory image and of the per-warp state that follows
// it. Host and device; no CUDA types.
#pragma once

#include "../host_device.h"

namespace svae {
namespace cuda {

// Offsets (floats) of the packed image and of the per-warp state in shared memory.
struct Layout {
  int L, A, hp, hk, lp, a2, a2p, hs;  // hs: row stride of h (hp + 4: banks differ per path)
  int F, ca, cap, fp;  // factors, head outputs (2 + F) A (padded to 4), f row (F padded to 4)
  int wh, wx, bi, bhn, wo, bo, image;
  int scaler, warp0, per_warp;  // per warp: h [G][hs], z [G][lp], x [G][a2p], f [G][fp]
};

SVAE_HD Layout make_layout(int L, int H, int A, int G, int F = 0) {
  Layout s;
  s.L = L;
  s.A = A;
  s.F = F;
  s.ca = (2 + F) * A;
  s.cap = round_up<int>(s.ca, 4);
  s.fp = round_up<int>(F, 4);
  s.hp = round_up<int>(H, 32);
  s.hk = round_up<int>(H, 4);
  s.lp = round_up<int>(L, 4);
  s.a2 = 2 * A;
  s.a2p = round_up<int>(2 * A, 4);
  s.hs = s.hp + 4;
  s.wh = 0;
  s.wx = s.wh + s.hk * 3 * s.hp;
  s.bi = s.wx + s.a2 * 3 * s.hp;
  s.bhn = s.bi + 3 * s.hp;
  s.wo = s.bhn + s.hp;
  s.bo = s.wo + s.hk * s.ca;  // hk is a multiple of 4
  s.image = s.bo + s.cap;
  s.scaler = s.image;
  s.warp0 = s.scaler + s.a2p;
  s.per_warp = G * (s.hs + s.lp + s.a2p + s.fp);
  return s;
}

}  // namespace cuda
}  // namespace svae

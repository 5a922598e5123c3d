// Fused rollout of the recurrent (GRU) decoder on CUDA: the contract of
// ../rollout.h (the math, the noise streams) with raw device pointers and the
// caller's stream. No CUDA or torch types here, so bindings_cuda.cpp builds
// with the host compiler alone.
//
// Units are padded to hp = round_up(hidden, 32) (lane l of a warp owns units
// l, l + 32, ...: hp / 32 <= 4 of them) and the recurrent sum runs over
// hk = round_up(hidden, 4) rows; padding is zero. The weights the kernel
// reads every day are packed on the host into one "image" that each CTA
// copies into shared memory as is (floats, in this order):
//
//   wh  [hk][3][hp]   w_h: row k, gate (r, u, n), unit
//   wx  [2A][3][hp]   w_x: input k (x_0.., |x|_0..), gate, unit
//   bi  [3][hp]       b_i, plus b_h for the r and u gates
//   bhn [hp]          b_h of the n gate (inside r * (...))
//   wo  [hk][(2+F)A]  head: means, raw log-scales, then loadings of factor 1..F
//   bo  [(2+F)A], padded to a multiple of 4
//
// and, read from global memory (only at z updates): w0 [L][hp], b0 [hp],
// wz [L][3][hp]. `scaler` [2A] on the device: mean (+ shift), then std.
#pragma once

#include <cstddef>
#include <cstdint>

#include "latent.h"

namespace svae {
namespace cuda {

constexpr int kRolloutMaxHidden = 128;

struct RolloutNet {
  const float* image;   // the packed image above (device, 16-byte aligned)
  const float* w0;      // [L][hp]
  const float* b0;      // [hp]
  const float* wz;      // [L][3][hp]
  const float* scaler;  // [2A]: mean_a (mean + shift), std
  int latent;
  int hidden;
  int assets;
  float ls_min, ls_max;
  int factors = 0;             // F common factors (the head gives (2 + F) A outputs)
  float loading_max = 10.0f;   // loadings clamped to +-loading_max
};

// Sizes of the packed image for (hidden, assets): hp, hk and its length in floats.
struct RolloutShape {
  int hp, hk;
  int64_t image_floats;
};
RolloutShape rollout_shape(int hidden, int assets, int factors = 0);

// What the kernel needs on `device`: warps per CTA (0: it does not fit),
// scenarios per warp, dynamic shared memory per CTA at the smallest CTA
// (one warp) and the device's opt-in limit, in bytes.
struct RolloutPlan {
  int warps;
  int group;
  size_t smem_min;
  size_t smem_limit;
};
RolloutPlan rollout_plan(int latent, int hidden, int assets, int device, int factors = 0);

// out [n, horizon, A] on the device. z_0 from `latent` (given, or drawn with
// tag kTagLatent, scenario offset + i); the noise of day t is element a of
// scenario offset + i in stream kTagStep + t, the latent innovation after
// day t element j in stream kTagDrift + t (phi < 1 only), factor j of day t
// element j in stream kTagFactorStep + t (factors > 0). Then demean and /
// or cumulative per (path, asset), in double. Throws std::invalid_argument
// on bad sizes and std::runtime_error on a CUDA error, naming the call.
void rollout(const RolloutNet& net, const DeviceLatent& latent, float* out, int64_t n,
             int64_t horizon, uint64_t seed, uint64_t offset, bool noise, float phi, bool demean,
             bool cumulative, void* stream);

}  // namespace cuda
}  // namespace svae

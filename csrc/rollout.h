// Fused rollout of the recurrent (GRU) decoder on the CPU: for a block of
// scenarios, all `horizon` days in one call, the state kept in cache.
//
//   z_0        latent draw (the fused sampler of sample.h) or given
//   h_0        = tanh(z_0 @ W0 + b0)
//   day t:     gi = [x_{t-1}, |x_{t-1}|] @ Wx + z_t @ Wz + b_i   (x_{-1} = 0)
//              gh = h @ Wh + b_h                 (one matrix product per day)
//              r = sigmoid(gi_r + gh_r), u = sigmoid(gi_u + gh_u)
//              n = tanh(gi_n + r * gh_n),  h = n + u * (h - n)
//              mean, ls = h @ Wo + b_o;  ls clamped to [ls_min, ls_max]
//              x_t = mean + exp(ls) * eps_t                 (standardized)
//              factors k > 0: head [mean | ls | B_1 .. B_k] (blocks of A), B
//              clamped to +-loading_max; acc = mean; acc = fma(B_j, f_j, acc)
//              for j = 0..k-1; x_t = fma(exp(ls), eps_t, acc)
//              y_t = x_t * std + mean_data (+ shift)        (log return)
//              z_{t+1} = phi z_t + sqrt(1 - phi^2) eta_t    (phi < 1 only)
//
// Noise: eps_t of asset a is element a of scenario offset + i in Philox stream
// tag kTagStep + t; eta_t of latent j is element j in stream kTagDrift + t;
// factor f_t of factor j is element j in stream kTagFactorStep + t.
// A path therefore depends on (weights, seed, offset + i) only, and a longer
// horizon extends a shorter one day for day.
#pragma once

#include <cstdint>
#include <vector>

#include "sample.h"

namespace svae {

constexpr uint32_t kTagStep = 0x01000000u;   // + day: observation noise of day t
constexpr uint32_t kTagDrift = 0x02000000u;  // + day: latent AR(1) innovation of day t
constexpr uint32_t kTagFactorStep = 0x03000000u;  // + day: common factors f of day t
constexpr int64_t kMaxHorizon = int64_t{1} << 24;

struct GruWeights {  // plain row-major [in, out] float32, as RecurrentWeights
  const float *w0, *b0, *w_x, *w_z, *b_i, *w_h, *b_h, *w_o, *b_o;
  int64_t latent = 0, hidden = 0, assets = 1;
  int64_t factors = 0;  // k: w_o [hidden, (2 + k) A] = means, log-scales, loadings 1..k
};

// Weights packed for one ISA. Units are padded to hp (a multiple of the
// vector width W); a gate panel p holds the columns [r | u | n] of units
// p*W .. p*W+W-1 (3 vectors), k-major inside the panel.
struct PackedGru {
  Isa isa = Isa::Baseline;
  int w = 4;  // vector width
  int64_t latent = 0, hidden = 0, hp = 0, panels = 0, assets = 1, op = 0;
  int64_t factors = 0;  // k common factors (0: the diagonal gaussian)
  float ls_min = -7.0f, ls_max = 4.0f;
  float loading_max = 10.0f;
  std::vector<float> w0;    // [hp/W panels][latent][W]
  std::vector<float> b0;    // [hp]
  std::vector<float> wz;    // [panels][latent][3W]
  std::vector<float> wh;    // [panels][hp][3W]
  std::vector<float> wx;    // [2A][panels * 3W]
  std::vector<float> bi;    // [panels * 3W]: b_i, plus b_h of r and u
  std::vector<float> bhn;   // [hp]: b_h of n (inside r * (...))
  std::vector<float> wo;    // [op/W panels][hp][W], op = (2 + k) A padded to W
  std::vector<float> bo;    // [op]
  std::vector<float> mean, std;  // [A] scaler
};

struct RolloutArgs {
  float* out = nullptr;      // [n, horizon, A]
  int64_t n = 0, horizon = 0;
  const float* z = nullptr;  // [n, latent] z_0, or null: drawn by `sampler`
  SampleArgs sampler;
  uint64_t seed = 0, offset = 0;
  bool noise = true, demean = false, cumulative = false;
  const float* shift = nullptr;  // [A] or null
  float phi = 1.0f;              // 1: z constant over the path
};

PackedGru pack_gru(const GruWeights& w, const float* scaler_mean, const float* scaler_std,
                   float ls_min, float ls_max, Isa isa, float loading_max = 10.0f);
void rollout_cpu(const PackedGru& net, const RolloutArgs& args, int num_threads);

void rollout_rows_sse2(const PackedGru& net, const RolloutArgs& a, int64_t r0, int64_t r1);
void rollout_rows_avx2(const PackedGru& net, const RolloutArgs& a, int64_t r0, int64_t r1);
void rollout_rows_avx512(const PackedGru& net, const RolloutArgs& a, int64_t r0, int64_t r1);

}  // namespace svae

// Packing of the recurrent decoder and the threaded dispatch (see rollout.h).
#include "rollout.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "decode.h"  // blocking_for
#include "host_device.h"
#include "parallel.h"

namespace svae {

namespace {

// Rows of the micro-kernel per ISA (x 3 gate vectors): see kernels_<isa>.cpp.
int rows_for(Isa isa) { return isa == Isa::Avx512 ? 8 : 4; }

// Interleaved gate column of (gate g, unit i): panel i / W, then [r | u | n].
int64_t gate_col(int64_t g, int64_t i, int w) { return (i / w) * 3 * w + g * w + (i % w); }

}  // namespace

PackedGru pack_gru(const GruWeights& g, const float* scaler_mean, const float* scaler_std,
                   float ls_min, float ls_max, Isa isa, float loading_max) {
  if (g.latent < 1 || g.hidden < 1 || g.assets < 1)
    throw std::invalid_argument("pack_gru: latent, hidden and assets must be >= 1");
  if (g.factors < 0 || g.factors > g.assets)
    throw std::invalid_argument("pack_gru: factors must be in [0, assets]");
  if (!(loading_max > 0.0f) || !std::isfinite(loading_max))
    throw std::invalid_argument("pack_gru: loading_max must be finite and > 0");
  PackedGru P;
  P.isa = resolve_isa(isa);
  P.w = blocking_for(P.isa).w;
  const int W = P.w;
  const int64_t L = g.latent, H = g.hidden, A = g.assets;
  P.latent = L;
  P.hidden = H;
  P.assets = A;
  P.hp = round_up<int64_t>(H, W);
  P.panels = P.hp / W;
  const int64_t C = (2 + g.factors) * A;  // head outputs
  P.factors = g.factors;
  P.op = round_up<int64_t>(C, W);
  P.ls_min = ls_min;
  P.ls_max = ls_max;
  P.loading_max = loading_max;
  const int64_t G = P.panels * 3 * W;  // interleaved gate columns
  P.w0.assign(static_cast<size_t>(P.hp * L), 0.0f);
  P.b0.assign(static_cast<size_t>(P.hp), 0.0f);
  for (int64_t i = 0; i < H; ++i) {
    const int64_t p = i / W, c = i % W;
    for (int64_t k = 0; k < L; ++k) P.w0[(p * L + k) * W + c] = g.w0[k * H + i];
    P.b0[i] = g.b0[i];
  }
  P.wz.assign(static_cast<size_t>(G * L), 0.0f);
  P.wh.assign(static_cast<size_t>(G * P.hp), 0.0f);
  P.wx.assign(static_cast<size_t>(2 * A * G), 0.0f);
  P.bi.assign(static_cast<size_t>(G), 0.0f);
  P.bhn.assign(static_cast<size_t>(P.hp), 0.0f);
  for (int64_t gate = 0; gate < 3; ++gate) {
    for (int64_t i = 0; i < H; ++i) {
      const int64_t src = gate * H + i;
      const int64_t col = gate_col(gate, i, W);
      const int64_t p = col / (3 * W), c = col % (3 * W);
      for (int64_t k = 0; k < L; ++k) P.wz[(p * L + k) * 3 * W + c] = g.w_z[k * 3 * H + src];
      for (int64_t k = 0; k < H; ++k) P.wh[(p * P.hp + k) * 3 * W + c] = g.w_h[k * 3 * H + src];
      for (int64_t k = 0; k < 2 * A; ++k) P.wx[k * G + col] = g.w_x[k * 3 * H + src];
      P.bi[col] = gate < 2 ? g.b_i[src] + g.b_h[src] : g.b_i[src];
      if (gate == 2) P.bhn[i] = g.b_h[src];
    }
  }
  P.wo.assign(static_cast<size_t>(P.op * P.hp), 0.0f);
  P.bo.assign(static_cast<size_t>(P.op), 0.0f);
  for (int64_t j = 0; j < C; ++j) {
    const int64_t p = j / W, c = j % W;
    for (int64_t k = 0; k < H; ++k) P.wo[(p * P.hp + k) * W + c] = g.w_o[k * C + j];
    P.bo[j] = g.b_o[j];
  }
  P.mean.assign(scaler_mean, scaler_mean + A);
  P.std.assign(scaler_std, scaler_std + A);
  return P;
}

void rollout_cpu(const PackedGru& net, const RolloutArgs& a, int num_threads) {
  if (a.n < 0 || a.horizon < 0 || a.horizon > kMaxHorizon)
    throw std::invalid_argument("rollout: n >= 0 and 0 <= horizon <= 2^24");
  if (a.n == 0 || a.horizon == 0) return;
  if (!a.out) throw std::invalid_argument("rollout: null output");
  if (!(a.phi > 0.0f && a.phi <= 1.0f)) throw std::invalid_argument("rollout: phi in (0, 1]");
  if (!a.z) {
    if (a.sampler.d != net.latent || a.sampler.n != a.n)
      throw std::invalid_argument("rollout: the sampler's shape differs from (n, latent)");
    validate_sample_args(a.sampler);
  }
  const int64_t min_rows = 8 * rows_for(net.isa);
  const auto rows =
      for_isa(net.isa, &rollout_rows_avx512, &rollout_rows_avx2, &rollout_rows_sse2);
  parallel_rows(a.n, num_threads, min_rows, [&](int64_t r0, int64_t r1) { rows(net, a, r0, r1); });
}

}  // namespace svae

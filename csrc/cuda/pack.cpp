// Host packing of the CUDA decoder and rollout weights (see pack.h).
#include "pack.h"

#include <stdexcept>
#include <string>

#include "../host_device.h"
#include "rollout_layout.h"
#include "rollout_cuda.h"

namespace svae {
namespace cuda {

std::vector<HostLayer> pack_decoder(const std::vector<LayerWeights>& layers, bool gaussian,
                                    int64_t out_dim, int64_t factors) {
  check_layers(layers, gaussian, out_dim, "cuda decoder", factors);
  std::vector<HostLayer> out(layers.size());
  for (size_t l = 0; l + 1 < layers.size(); ++l) {
    const LayerWeights& L = layers[l];
    HostLayer& P = out[l];
    P.k = L.k;
    P.n_pad = round_up<int64_t>(L.n, 4);
    P.activation = L.activation;
    P.w.assign(static_cast<size_t>(P.k * P.n_pad), 0.0f);
    P.b.assign(static_cast<size_t>(P.n_pad), 0.0f);
    for (int64_t k = 0; k < L.k; ++k)
      for (int64_t c = 0; c < L.n; ++c) P.w[k * P.n_pad + c] = L.w[k * L.n + c];
    for (int64_t c = 0; c < L.n; ++c) P.b[c] = L.b[c];
  }
  const LayerWeights& L = layers.back();
  HostLayer& P = out.back();
  const int64_t D = out_dim, G = (D + 3) / 4, C = gaussian ? 2 + factors : 1, per = 4 * C;
  P.k = L.k;
  P.n_pad = per * G;
  P.activation = kIdentity;
  P.w.assign(static_cast<size_t>(P.k * P.n_pad), 0.0f);
  P.b.assign(static_cast<size_t>(P.n_pad), 0.0f);
  for (int64_t j = 0; j < D; ++j) {
    const int64_t g = j / 4, q = j % 4;
    for (int64_t c = 0; c < C; ++c) {  // channel c of output j: source column c D + j
      for (int64_t k = 0; k < L.k; ++k)
        P.w[k * P.n_pad + g * per + 4 * c + q] = L.w[k * L.n + c * D + j];
      P.b[g * per + 4 * c + q] = L.b[c * D + j];
    }
  }
  return out;
}

namespace {

// dst[k][gate][unit] (row stride 3 hp) = w[k, gate * H + unit] for k < rows of w.
void gates(const float* w, int64_t rows, int64_t H, int64_t hp, float* dst) {
  for (int64_t k = 0; k < rows; ++k)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t i = 0; i < H; ++i) dst[(k * 3 + c) * hp + i] = w[k * 3 * H + c * H + i];
}

}  // namespace

HostRollout pack_rollout(const GruWeights& g) {
  if (g.latent < 1 || g.hidden < 1 || g.assets < 1 || g.hidden > kRolloutMaxHidden ||
      g.latent > (1 << 16) || g.assets > (1 << 12))
    throw std::invalid_argument("cuda rollout: latent in [1, 65536], hidden in [1, " +
                                std::to_string(kRolloutMaxHidden) + "], assets in [1, 4096]");
  if (g.factors < 0 || g.factors > g.assets)
    throw std::invalid_argument("cuda rollout: factors in [0, assets]");
  const int L = static_cast<int>(g.latent), H = static_cast<int>(g.hidden);
  const int A = static_cast<int>(g.assets), F = static_cast<int>(g.factors);
  const Layout s = make_layout(L, H, A, 1, F);
  HostRollout P;
  P.latent = L;
  P.hp = s.hp;
  P.hk = s.hk;
  P.image.assign(static_cast<size_t>(s.image), 0.0f);
  float* im = P.image.data();
  gates(g.w_h, H, H, s.hp, im + s.wh);
  gates(g.w_x, s.a2, H, s.hp, im + s.wx);
  for (int i = 0; i < H; ++i) {
    for (int c = 0; c < 2; ++c) im[s.bi + c * s.hp + i] = g.b_i[c * H + i] + g.b_h[c * H + i];
    im[s.bi + 2 * s.hp + i] = g.b_i[2 * H + i];
    im[s.bhn + i] = g.b_h[2 * H + i];
  }
  for (int k = 0; k < H; ++k)
    for (int j = 0; j < s.ca; ++j) im[s.wo + k * s.ca + j] = g.w_o[k * s.ca + j];
  for (int j = 0; j < s.ca; ++j) im[s.bo + j] = g.b_o[j];
  P.w0.assign(static_cast<size_t>(L * s.hp), 0.0f);
  for (int k = 0; k < L; ++k)
    for (int i = 0; i < H; ++i) P.w0[k * s.hp + i] = g.w0[k * H + i];
  P.b0.assign(static_cast<size_t>(s.hp), 0.0f);
  for (int i = 0; i < H; ++i) P.b0[i] = g.b0[i];
  P.wz.assign(static_cast<size_t>(L * 3 * s.hp), 0.0f);
  gates(g.w_z, L, H, s.hp, P.wz.data());
  return P;
}

}  // namespace cuda
}  // namespace svae

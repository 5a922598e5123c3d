// Packing of the decoder weights and the threaded dispatch (see decode.h).
#include "decode.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "host_device.h"
#include "parallel.h"

namespace svae {

Blocking blocking_for(Isa isa) {
  switch (isa) {
    case Isa::Avx512:
      return {6, 4, 16};  // 6 rows x 64 columns: 24 zmm accumulators
    case Isa::Avx2:
      return {6, 2, 8};  // 6 rows x 16 columns: 12 ymm accumulators
    default:
      return {4, 2, 4};  // 4 rows x 8 columns: 8 xmm accumulators
  }
}

namespace {

// Column c of panel p comes from source column src(p, c) (or is zero when
// src < 0). Plain layers: p * panel + c. Gaussian output layer: the first
// half of a panel holds means of outputs j = p * panel/2 + c, the second half
// the raw log-scales of the same outputs (source column D + j).
PackedLayer pack_layer(const LayerWeights& L, int panel, bool interleave, int64_t out_dim) {
  PackedLayer P;
  P.k = L.k;
  P.n = L.n;
  P.activation = L.activation;
  const int half = panel / 2;
  P.panels = interleave ? (out_dim + half - 1) / half : (L.n + panel - 1) / panel;
  P.w.assign(static_cast<size_t>(P.panels * L.k * panel), 0.0f);
  P.bias.assign(static_cast<size_t>(P.panels * panel), 0.0f);
  for (int64_t p = 0; p < P.panels; ++p) {
    for (int c = 0; c < panel; ++c) {
      int64_t src;
      if (interleave) {
        const int64_t j = p * half + (c < half ? c : c - half);
        src = j >= out_dim ? -1 : (c < half ? j : out_dim + j);
      } else {
        src = p * panel + c;
        if (src >= L.n) src = -1;
      }
      if (src < 0) continue;
      for (int64_t k = 0; k < L.k; ++k) P.w[(p * L.k + k) * panel + c] = L.w[k * L.n + src];
      P.bias[p * panel + c] = L.b[src];
    }
  }
  return P;
}

}  // namespace

PackedNet pack_net(const std::vector<LayerWeights>& layers, bool gaussian, int64_t out_dim,
                   int64_t assets, const float* scaler_mean, const float* scaler_std, float ls_min,
                   float ls_max, Isa isa, int64_t factors, float loading_max) {
  if (out_dim <= 0 || assets <= 0 || out_dim % assets != 0)
    throw std::invalid_argument("decoder: out_dim must be a positive multiple of assets");
  check_layers(layers, gaussian, out_dim, "decoder", factors);
  if (!(loading_max > 0.0f) || !std::isfinite(loading_max))
    throw std::invalid_argument("decoder: loading_max must be finite and > 0");
  PackedNet net;
  net.isa = resolve_isa(isa);
  const Blocking b = blocking_for(net.isa);
  net.panel = b.panel();
  net.latent = layers.front().k;
  net.out_dim = out_dim;
  net.assets = assets;
  net.gaussian = gaussian;
  net.ls_min = ls_min;
  net.ls_max = ls_max;
  net.factors = factors;
  net.loading_max = loading_max;
  net.width = round_up<int64_t>(net.latent, 16);
  for (size_t l = 0; l < layers.size(); ++l) {
    const bool last = l + 1 == layers.size();
    // factors > 0: the last layer packed like a plain one, (2 + k) D columns
    // in the channel-block order, for the factor epilogue
    net.layers.push_back(
        pack_layer(layers[l], net.panel, last && gaussian && factors == 0, out_dim));
    if (!last) net.width = std::max(net.width, net.layers.back().panels * net.panel);
  }
  if (factors > 0) net.out_ld = net.layers.back().panels * net.panel;
  const int64_t dpad = round_up<int64_t>(out_dim, 16) + 16;
  net.std_j.assign(static_cast<size_t>(dpad), 0.0f);
  net.mean_j.assign(static_cast<size_t>(dpad), 0.0f);
  for (int64_t j = 0; j < out_dim; ++j) {
    net.std_j[j] = scaler_std[j % assets];
    net.mean_j[j] = scaler_mean[j % assets];
  }
  return net;
}

void decode_cpu(const PackedNet& net, const DecodeArgs& a, int num_threads) {
  if (a.n < 0) throw std::invalid_argument("decode: n >= 0");
  if (a.n == 0) return;
  if (!a.out) throw std::invalid_argument("decode: null output");
  if (!a.z) {
    if (a.sampler.d != net.latent || a.sampler.n != a.n)
      throw std::invalid_argument("decode: the sampler's shape differs from (n, latent)");
    validate_sample_args(a.sampler);
  }
  const Blocking b = blocking_for(net.isa);
  const int64_t min_rows = 8 * b.mr;  // one block of rows per thread at least
  const auto rows = for_isa(net.isa, &decode_rows_avx512, &decode_rows_avx2, &decode_rows_sse2);
  parallel_rows(a.n, num_threads, min_rows, [&](int64_t r0, int64_t r1) { rows(net, a, r0, r1); });
}

}  // namespace svae

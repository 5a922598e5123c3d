// Fused MLP decode on the CPU: latent z -> window of daily log returns.
//
//   h_0 = z                                      [n, latent]
//   h_l = act_l(h_{l-1} @ W_l + b_l)             hidden layers
//   o   = h_{L-1} @ W_L + b_L                    [n, D] means (+ [n, D] raw log-scales)
//   x   = mean + exp(clamp(log_scale)) * eps     observation noise (gaussian)
//   x   = mean + sum_c B_c f_c + exp(ls) * eps   factor model (factors k > 0):
//         o = [mean | ls | B_1 | .. | B_k] (blocks of D), B clamped to
//         +-loading_max, f of day t element t*k + c in stream kTagFactor;
//         acc = mean; acc = fma(B_c, f_c, acc) for c = 0..k-1;
//         x = fma(exp(ls), eps, acc)
//   y   = x * std[a] + shift[a]                  unscaling (+ drift), a = j % assets
//   y  -= mean over days of y (per asset)        drift "zero" (optional)
//   y   = cumulative sum over days (per asset)   log prices (optional)
//
// eps comes from the same Philox as the sampler, stream tag kTagObservation,
// element j of scenario offset + i: the output row i depends on (weights,
// z_i or its sampler, seed, offset + i) only. Work goes in blocks of rows
// whose activations stay in cache; weights are packed once into column
// panels for a register-blocked micro-kernel (BLIS-style) with bias,
// activation and the epilogue applied in registers.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "sample.h"

namespace svae {

enum Activation : int { kIdentity = 0, kSilu = 1, kRelu = 2, kTanh = 3, kGelu = 4 };

struct LayerWeights {
  const float* w = nullptr;  // [k, n] row-major: h_out = act(h_in @ w + b)
  const float* b = nullptr;  // [n]
  int64_t k = 0, n = 0;
  int activation = kIdentity;  // hidden layers; the last layer is linear
};

// One layer, packed for one ISA: panels of `panel` columns, k-major inside a
// panel (panel p holds rows 0..k-1 of its columns, contiguous), zero-padded.
struct PackedLayer {
  int64_t k = 0, n = 0, panels = 0;
  int activation = kIdentity;
  std::vector<float> w;     // [panels][k][panel]
  std::vector<float> bias;  // [panels * panel]
};

struct PackedNet {
  Isa isa = Isa::Baseline;
  int panel = 0;            // columns per panel (ISA-dependent)
  int64_t latent = 0;       // input width
  int64_t out_dim = 0;      // D = window * assets
  int64_t assets = 1;
  bool gaussian = true;     // last layer: means and log-scales interleaved per panel
  int64_t factors = 0;      // k > 0: the last layer packed plain, (2 + k) D outputs
  int64_t out_ld = 0;       // k > 0: row stride of the last layer's output buffer
  float ls_min = -7.0f, ls_max = 4.0f;
  float loading_max = 10.0f;
  std::vector<PackedLayer> layers;  // the last one is the output layer
  std::vector<float> std_j;         // [D padded] scaler std of element j
  std::vector<float> mean_j;        // [D padded] scaler mean of element j
  int64_t width = 0;                // widest activation (padded), row stride of buffers
};

struct DecodeArgs {
  float* out = nullptr;  // [n, D]
  int64_t n = 0;
  const float* z = nullptr;  // [n, latent]; null: draw z with `sampler`
  SampleArgs sampler;        // z via the fused sampler (its z field unused)
  uint64_t seed = 0;         // observation noise key (tag kTagObservation)
  uint64_t offset = 0;       // scenario index of row 0 (noise)
  bool noise = true;         // gaussian: add the observation noise
  bool demean = false;       // drift "zero"
  bool cumulative = false;   // write log prices instead of returns
  const float* shift = nullptr;  // [assets] added after unscaling (drift), or null
};

constexpr float kLoadingMax = 10.0f;  // the default clamp of the factor loadings

// Checks that the layers chain (each takes the previous one's outputs) and
// that the last gives D (mse), 2 D (gaussian) or (2 + k) D (gaussian with k
// factors) outputs; throws std::invalid_argument naming `who`. Shared with
// the CUDA packing.
inline void check_layers(const std::vector<LayerWeights>& layers, bool gaussian,
                         int64_t out_dim, const std::string& who, int64_t factors = 0) {
  if (factors < 0 || (factors > 0 && !gaussian))
    throw std::invalid_argument(who + ": factors must be >= 0, and > 0 only for gaussian");
  if (layers.empty()) throw std::invalid_argument(who + ": at least one layer");
  for (size_t l = 0; l < layers.size(); ++l) {
    const auto& L = layers[l];
    if (!L.w || !L.b || L.k <= 0 || L.n <= 0)
      throw std::invalid_argument(who + ": layer " + std::to_string(l) + " is empty");
    if (l > 0 && L.k != layers[l - 1].n)
      throw std::invalid_argument(who + ": layer " + std::to_string(l) + " takes " +
                                  std::to_string(L.k) + " inputs but layer " +
                                  std::to_string(l - 1) + " gives " +
                                  std::to_string(layers[l - 1].n));
  }
  const int64_t channels = gaussian ? 2 + factors : 1;
  if (out_dim <= 0 || layers.back().n != channels * out_dim)
    throw std::invalid_argument(who + ": the last layer must give " +
                                std::to_string(channels * out_dim) + " outputs");
}

// Packs weights for `isa` (Auto: the best the CPU supports). Throws
// std::invalid_argument on inconsistent shapes. factors > 0: the factor
// observation model (gaussian only), loadings clamped to +-loading_max.
PackedNet pack_net(const std::vector<LayerWeights>& layers, bool gaussian, int64_t out_dim,
                   int64_t assets, const float* scaler_mean, const float* scaler_std, float ls_min,
                   float ls_max, Isa isa, int64_t factors = 0, float loading_max = kLoadingMax);

// Runs the decode over all rows with `num_threads` threads over row blocks.
void decode_cpu(const PackedNet& net, const DecodeArgs& args, int num_threads);

// Per-ISA row-range workers (kernels_<isa>.cpp).
void decode_rows_sse2(const PackedNet& net, const DecodeArgs& a, int64_t r0, int64_t r1);
void decode_rows_avx2(const PackedNet& net, const DecodeArgs& a, int64_t r0, int64_t r1);
void decode_rows_avx512(const PackedNet& net, const DecodeArgs& a, int64_t r0, int64_t r1);

// Register blocking per ISA: rows x vectors of the micro-kernel, vector width.
struct Blocking {
  int mr, nv, w;
  int panel() const { return nv * w; }
};
Blocking blocking_for(Isa isa);

}  // namespace svae

// Fused MLP decode on CUDA: the contract of ../decode.h with raw device
// pointers and the caller's stream. No CUDA or torch types here, so
// bindings_cuda.cpp builds with the host compiler alone.
#pragma once

#include <cstddef>
#include <cstdint>

#include "latent.h"

namespace svae {
namespace cuda {

constexpr int kMaxLayers = 8;
constexpr int kMaxWidth = 256;  // widest hidden layer (and latent) the fused kernel takes

// One layer on the device. Hidden layers: w [k, n_pad] row-major with n_pad
// a multiple of 4 (zero columns), b [n_pad]. The output layer, gaussian:
// w [k, 8 * G] where group g holds the means of outputs 4g..4g+3 then their
// raw log-scales (zero where 4g + q >= D); mse: w [k, 4 * G], means only;
// the factor model (k factors): w [k, 4 (2 + k) G], group g holds the 4
// means, the 4 raw log-scales, then the 4 loadings of factor 1, .., k.
struct DeviceLayer {
  const float* w;
  const float* b;
  int k;
  int n_pad;
  int activation;  // svae::Activation codes (0 identity, 1 silu, 2 relu, 3 tanh, 4 gelu)
};

struct DeviceNet {
  DeviceLayer layers[kMaxLayers];
  int n_layers;
  int latent;
  int out_dim;  // D = window * assets
  int assets;
  int gaussian;
  const float* std_j;   // [D] scaler std of element j (device)
  const float* mean_j;  // [D] scaler mean of element j, drift shift folded in (device)
  float ls_min, ls_max;
  int width;  // widest hidden layer / latent (padded), <= kMaxWidth
  int factors;        // k > 0: the factor model (gaussian); the output layer's groups
                      // then hold 4 means, 4 raw log-scales, 4 loadings of each factor
  float loading_max;  // loadings clamped to +-loading_max
};

// Dynamic shared memory (bytes) of the decode kernel for `width` and, with
// factors, T * k factor normals per scenario (T = window).
size_t decode_smem_bytes(int width, int64_t tk);

// The device's opt-in shared memory per block, in bytes.
size_t shared_memory_limit(int device);

// out [n, D] on the device; noise with key `seed`, tag kTagObservation,
// scenario offset + i (factors: f element t * k + j in stream kTagFactor);
// demean / cumulative per asset after the decode.
void decode(const DeviceNet& net, const DeviceLatent& latent, float* out, int64_t n,
            uint64_t seed, uint64_t offset, bool noise, bool demean, bool cumulative,
            void* stream);

}  // namespace cuda
}  // namespace svae

// Packing of the CUDA decoder's and rollout's weights, on the host: the same
// float32 weights the CPU packers take (decode.h, rollout.h) in, the host
// buffers the kernels read out (the caller copies them to the device). No
// CUDA types: built by the host compiler into stressvae._cuda.
#pragma once

#include <cstdint>
#include <vector>

#include "../decode.h"
#include "../rollout.h"

namespace svae {
namespace cuda {

// One decoder layer as DeviceLayer (decode_cuda.h) reads it. Hidden layers:
// w [k, n_pad] with n_pad = n rounded up to 4, b [n_pad], zero-padded. The
// output layer: group g of outputs 4g .. 4g+3 holds their means, then (gaussian)
// their raw log-scales: w [k, per * G], b [per * G], per = 8 (gaussian) or 4,
// G = ceil(D / 4); activation 0.
struct HostLayer {
  std::vector<float> w, b;
  int64_t k = 0, n_pad = 0;
  int activation = kIdentity;
};

// Throws std::invalid_argument on inconsistent shapes.
// factors k > 0: the output layer's group g holds 4 (2 + k) columns: the 4
// means, 4 raw log-scales, then 4 loadings of each factor.
std::vector<HostLayer> pack_decoder(const std::vector<LayerWeights>& layers, bool gaussian,
                                    int64_t out_dim, int64_t factors = 0);

// The rollout's weights in the layout of rollout_cuda.h: the shared-memory
// image [image_floats], w0 [latent][hp], b0 [hp], wz [latent][3][hp].
struct HostRollout {
  std::vector<float> image, w0, b0, wz;
  int64_t latent = 0, hp = 0, hk = 0;
};

HostRollout pack_rollout(const GruWeights& g);

}  // namespace cuda
}  // namespace svae

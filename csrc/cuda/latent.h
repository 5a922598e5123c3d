// The latent source of the CUDA decode and rollout: z [n, latent] on the
// device, or the fused sampler (mode 0 prior, 1 per row, 2 table) with mu /
// logvar [k, latent] and index [n]. No CUDA types: bindings_cuda.cpp builds
// with the host compiler alone. The device side is latent_device.cuh.
#pragma once

#include <cstdint>

namespace svae {
namespace cuda {

struct DeviceLatent {
  const float* z;
  const float* mu;
  const float* logvar;
  const int64_t* index;
  int64_t k;
  int mode;
  float scale;
};

}  // namespace cuda
}  // namespace svae

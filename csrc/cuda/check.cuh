// The one check of a CUDA runtime call or launch: a std::runtime_error that
// names the call and the CUDA error. Include from .cu files only.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace svae {
namespace cuda {

inline void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("stressvae CUDA: ") + what + " failed: " +
                             cudaGetErrorName(err) + ": " + cudaGetErrorString(err));
}

}  // namespace cuda
}  // namespace svae

// The epilogue of ../epilogue.h on CUDA, shared by the decode and the
// rollout: for out [n, T, A] on the device, every (path, asset) column loses
// its mean over days (demean) and / or becomes its cumulative sum, in
// double, on `stream` (a cudaStream_t). No CUDA types here.
#pragma once

#include <cstdint>

namespace svae {
namespace cuda {

void demean_cumsum(float* out, int64_t n, int64_t T, int A, bool demean, bool cumulative,
                   void* stream);

}  // namespace cuda
}  // namespace svae

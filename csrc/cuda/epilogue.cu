// The shared decode / rollout epilogue on CUDA (see epilogue_cuda.h): one
// thread per (path, asset), the CPU's arithmetic (../epilogue.h).
#include <cuda_runtime.h>

#include <stdexcept>

#include "../epilogue.h"
#include "check.cuh"
#include "epilogue_cuda.h"

namespace svae {
namespace cuda {
namespace {

__global__ void epilogue_kernel(float* __restrict__ out, int64_t n, int64_t T, int A, int demean,
                                int cumulative) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= n * A) return;
  const int64_t i = t / A;
  const int a = static_cast<int>(t % A);
  svae::demean_cumsum(out + i * T * A + a, T, A, demean != 0, cumulative != 0);
}

}  // namespace

void demean_cumsum(float* out, int64_t n, int64_t T, int A, bool demean, bool cumulative,
                   void* stream) {
  if (n < 0 || T < 0 || A < 1) throw std::invalid_argument("cuda epilogue: n, T >= 0, A >= 1");
  if (!(demean || cumulative) || n == 0 || T == 0) return;
  const int64_t items = n * A;
  const int64_t grid = (items + 255) / 256;
  if (grid > 0x7fffffffLL) throw std::invalid_argument("cuda epilogue: n too large for one call");
  epilogue_kernel<<<static_cast<unsigned>(grid), 256, 0, static_cast<cudaStream_t>(stream)>>>(
      out, n, T, A, demean ? 1 : 0, cumulative ? 1 : 0);
  check(cudaGetLastError(), "epilogue_kernel launch");
}

}  // namespace cuda
}  // namespace svae

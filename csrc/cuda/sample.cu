// Fused reparameterized sampling on CUDA (see sample_cuda.h).
//
// One thread per Philox block (4 elements of one row): the counter is
// (block, tag, scenario), so a thread's numbers do not depend on the grid.
// eps lives in registers only; z is written once. The float math is the
// shared code of ../philox.h, whose device path uses _rn intrinsics that are
// never contracted; this file is also built with --fmad=false.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "../philox.h"
#include "check.cuh"
#include "sample_cuda.h"

namespace svae {
namespace cuda {
namespace {

constexpr int kThreads = 256;

// mode: 0 broadcast (row 0), 1 per row (row i), 2 table (row index[i]).
// Index is uint32_t when n * ceil(d / 4) < 2^32 (a 32-bit division per
// thread instead of a ~100-instruction 64-bit one), else uint64_t.
template <int Mode, class Index>
__global__ void __launch_bounds__(kThreads)
    sample_kernel(float* __restrict__ z, const float* __restrict__ mu,
                  const float* __restrict__ logvar, const int64_t* __restrict__ index, int64_t n,
                  int64_t d, int64_t k, uint64_t seed, uint64_t offset, float scale, uint32_t tag) {
  const Index nblk = static_cast<Index>((d + 3) / 4);
  const Index total = static_cast<Index>(n) * nblk;
  const Index stride = static_cast<Index>(gridDim.x) * blockDim.x;
  for (Index g = static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x; g < total;
       g += stride) {
    const Index i = g / nblk;
    const uint32_t b = static_cast<uint32_t>(g - i * nblk);
    const int64_t src = Mode == 0 ? 0 : (Mode == 1 ? static_cast<int64_t>(i) : index[i]);
    float eps[4];
    normal4(seed, tag, offset + static_cast<uint64_t>(i), b, eps);
    const bool bad = src < 0 || src >= k;  // checked in Python; never read out of bounds
    const int64_t row = static_cast<int64_t>(i) * d;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int64_t j = 4 * static_cast<int64_t>(b) + q;
      if (j < d) {
        z[row + j] = bad ? __int_as_float(0x7fc00000)
                         : reparam(mu[src * d + j], sigma_of(logvar[src * d + j], scale), eps[q]);
      }
    }
  }
}

template <class Index>
__global__ void __launch_bounds__(kThreads)
    normals_kernel(float* __restrict__ out, int64_t n, int64_t d, uint64_t seed, uint32_t tag,
                   uint64_t offset) {
  const Index nblk = static_cast<Index>((d + 3) / 4);
  const Index total = static_cast<Index>(n) * nblk;
  const Index stride = static_cast<Index>(gridDim.x) * blockDim.x;
  for (Index g = static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x; g < total;
       g += stride) {
    const Index i = g / nblk;
    const uint32_t b = static_cast<uint32_t>(g - i * nblk);
    float eps[4];
    normal4(seed, tag, offset + static_cast<uint64_t>(i), b, eps);
    const int64_t row = static_cast<int64_t>(i) * d;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int64_t j = 4 * static_cast<int64_t>(b) + q;
      if (j < d) out[row + j] = eps[q];
    }
  }
}

// Work items fit 32-bit indexing, with room for the grid-stride overshoot.
bool fits32(int64_t total) { return total < (int64_t{1} << 32) - (int64_t{1} << 26); }

unsigned grid_for(int64_t total) {
  int dev = 0, sms = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev), "cudaDeviceGetAttribute");
  const int64_t want = (total + kThreads - 1) / kThreads;
  const int64_t cap = static_cast<int64_t>(sms) * 32;  // grid-stride beyond this
  return static_cast<unsigned>(want < cap ? want : cap);
}

}  // namespace

void sample(float* z, const float* mu, const float* logvar, const int64_t* index, int64_t n,
            int64_t d, int64_t k, int mode, uint64_t seed, uint64_t offset, float scale,
            uint32_t tag, void* stream) {
  if (n < 0 || d <= 0 || k <= 0) throw std::invalid_argument("cuda sample: n >= 0, d > 0, k > 0");
  if (mode < 0 || mode > 2) throw std::invalid_argument("cuda sample: mode must be 0, 1 or 2");
  if (mode == 2 && index == nullptr) throw std::invalid_argument("cuda sample: table mode needs an index");
  if (n == 0) return;
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int64_t total = n * ((d + 3) / 4);
  const unsigned grid = grid_for(total);
  const bool narrow = fits32(total);
#define SVAE_LAUNCH(MODE)                                                                      \
  if (narrow)                                                                                  \
    sample_kernel<MODE, uint32_t><<<grid, kThreads, 0, s>>>(z, mu, logvar, index, n, d, k,     \
                                                            seed, offset, scale, tag);         \
  else                                                                                         \
    sample_kernel<MODE, uint64_t><<<grid, kThreads, 0, s>>>(z, mu, logvar, index, n, d, k,     \
                                                            seed, offset, scale, tag);
  switch (mode) {
    case 0:
      SVAE_LAUNCH(0);
      break;
    case 1:
      SVAE_LAUNCH(1);
      break;
    default:
      SVAE_LAUNCH(2);
  }
#undef SVAE_LAUNCH
  check(cudaGetLastError(), "sample_kernel launch");
}

void normals(float* out, int64_t n, int64_t d, uint64_t seed, uint32_t tag, uint64_t offset,
             void* stream) {
  if (n < 0 || d <= 0) throw std::invalid_argument("cuda normals: n >= 0, d > 0");
  if (n == 0) return;
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int64_t total = n * ((d + 3) / 4);
  const unsigned grid = grid_for(total);
  if (fits32(total))
    normals_kernel<uint32_t><<<grid, kThreads, 0, s>>>(out, n, d, seed, tag, offset);
  else
    normals_kernel<uint64_t><<<grid, kThreads, 0, s>>>(out, n, d, seed, tag, offset);
  check(cudaGetLastError(), "normals_kernel launch");
}

int device_count(std::string* why) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    if (why) *why = std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err);
    cudaGetLastError();  // clear the sticky-free error state
    return 0;
  }
  if (count == 0 && why) *why = "no CUDA device";
  return count;
}

std::string device_name(int device) {
  cudaDeviceProp prop;
  check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  return std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ")";
}

int runtime_version() {
  int v = 0;
  check(cudaRuntimeGetVersion(&v), "cudaRuntimeGetVersion");
  return v;
}

int driver_version() {
  int v = 0;
  if (cudaDriverGetVersion(&v) != cudaSuccess) return 0;
  return v;
}

void synchronize(void* stream) {
  check(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)), "cudaStreamSynchronize");
}

}  // namespace cuda
}  // namespace svae

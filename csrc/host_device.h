// The host/device function macro and the integer helpers that host and
// device code share. Empty of CUDA outside nvcc, so one header serves the
// host compiler and nvcc alike.
#pragma once

#if defined(__CUDACC__)
#define SVAE_HD __host__ __device__ __forceinline__
#else
#define SVAE_HD inline __attribute__((always_inline))
#endif

namespace svae {

// x rounded up to a multiple of m (x >= 0, m > 0).
template <class T>
SVAE_HD constexpr T round_up(T x, T m) {
  return (x + m - 1) / m * m;
}

}  // namespace svae

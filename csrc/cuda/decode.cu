// Fused MLP decode on CUDA (see decode_cuda.h), exact float32.
//
// One CTA decodes kRows scenarios through every layer. Activations live in
// shared memory (two [kRows, width] buffers); weights are read from global
// memory (L2-resident, float4 per thread). Each thread owns tiles of 8 rows
// x 4 columns (32 accumulators); a warp shares its rows and spans 32 column
// groups, so its shared-memory reads are broadcasts and its weight reads one
// coalesced 512-byte line per k. The latent z is drawn into shared memory by
// the same Philox code as the CPU (bit-identical z, never written out); the
// output layer's thread tile holds 4 means and their 4 log-scales, so one
// Philox block per (row, 4 outputs) gives the observation noise, the same
// numbers as the CPU. Activations use CUDA's exact expf / tanhf / erff: the
// output agrees with the CPU within float32 parity tolerance, not bitwise.
// The factor model (factors K > 0) draws the CTA's f into shared memory after
// the activations and runs its output layer one channel at a time
// (factor_output).
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "../philox.h"
#include "check.cuh"
#include "decode_cuda.h"
#include "epilogue_cuda.h"
#include "latent_device.cuh"

namespace svae {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kRows = 64;  // scenarios per CTA
constexpr int kRT = 8;     // rows per thread tile
constexpr int kCT = 4;     // columns per thread tile

__device__ __forceinline__ float act(float x, int a) {
  switch (a) {
    case 1:
      return x / (1.0f + expf(-x));
    case 2:
      return fmaxf(x, 0.0f);
    case 3:
      return tanhf(x);
    case 4:
      return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    default:
      return x;
  }
}

// out[r, c] = act(in[r, :k] . w[:k, c] + b[c]) for the CTA's rows, c < n_pad.
__device__ void hidden_layer(const DeviceLayer& L, const float* __restrict__ in,
                             float* __restrict__ out, int ld) {
  const int groups = L.n_pad / kCT;
  const int items = groups * (kRows / kRT);
  for (int item = threadIdx.x; item < items; item += blockDim.x) {
    const int cg = item % groups;
    const int rg = item / groups;
    const int c0 = cg * kCT, r0 = rg * kRT;
    float acc[kRT][kCT];
#pragma unroll
    for (int r = 0; r < kRT; ++r)
#pragma unroll
      for (int c = 0; c < kCT; ++c) acc[r][c] = 0.0f;
    const float4* wp = reinterpret_cast<const float4*>(L.w + c0);
    const int wstride = L.n_pad / 4;
    for (int k = 0; k < L.k; ++k) {
      const float4 w = __ldg(wp + k * wstride);
#pragma unroll
      for (int r = 0; r < kRT; ++r) {
        const float a = in[(r0 + r) * ld + k];
        acc[r][0] = fmaf(a, w.x, acc[r][0]);
        acc[r][1] = fmaf(a, w.y, acc[r][1]);
        acc[r][2] = fmaf(a, w.z, acc[r][2]);
        acc[r][3] = fmaf(a, w.w, acc[r][3]);
      }
    }
    const float4 b = __ldg(reinterpret_cast<const float4*>(L.b + c0));
#pragma unroll
    for (int r = 0; r < kRT; ++r) {
      float* o = out + (r0 + r) * ld + c0;
      o[0] = act(acc[r][0] + b.x, L.activation);
      o[1] = act(acc[r][1] + b.y, L.activation);
      o[2] = act(acc[r][2] + b.z, L.activation);
      o[3] = act(acc[r][3] + b.w, L.activation);
    }
  }
}

// out[r, 4g .. 4g+3] of one channel c (0 mean, 1 log-scale, 2 + j loading
// j) for the thread tile's kRT rows: a chain of fmas in k order, then the bias.
__device__ __forceinline__ void channel_tile(const DeviceLayer& O, const float* __restrict__ in,
                                             int ld, int r0, int g, int per, int c,
                                             float (&acc)[kRT][kCT]) {
#pragma unroll
  for (int r = 0; r < kRT; ++r)
#pragma unroll
    for (int q = 0; q < kCT; ++q) acc[r][q] = 0.0f;
  const float* wg = O.w + g * per + 4 * c;
  for (int k = 0; k < O.k; ++k) {
    const float4 w = __ldg(reinterpret_cast<const float4*>(wg + k * O.n_pad));
#pragma unroll
    for (int r = 0; r < kRT; ++r) {
      const float a = in[(r0 + r) * ld + k];
      acc[r][0] = fmaf(a, w.x, acc[r][0]);
      acc[r][1] = fmaf(a, w.y, acc[r][1]);
      acc[r][2] = fmaf(a, w.z, acc[r][2]);
      acc[r][3] = fmaf(a, w.w, acc[r][3]);
    }
  }
  const float4 b = __ldg(reinterpret_cast<const float4*>(O.b + g * per + 4 * c));
#pragma unroll
  for (int r = 0; r < kRT; ++r) {
    acc[r][0] += b.x;
    acc[r][1] += b.y;
    acc[r][2] += b.z;
    acc[r][3] += b.w;
  }
}

// The factor model's output layer (net.factors = K > 0): f [kRows][tkp] of
// the CTA's rows drawn into shared memory (stream kTagFactor, element t K + j),
// then per thread tile: x = mean; x = fma(B_j, f_j, x) for j = 0..K-1 (B
// clamped to +-loading_max); x = fma(exp(ls), eps, x); unscaled. The CPU's
// order (decode_kernels.h, factor_row).
__device__ void factor_output(const DeviceNet& net, const DeviceLayer& O,
                              const float* __restrict__ in, int ld, float* fsm, int64_t row0,
                              float* __restrict__ out, int64_t n, uint64_t seed, uint64_t offset,
                              int noise) {
  const int D = net.out_dim, A = net.assets, K = net.factors;
  const int TK = (D / A) * K, tkp = (TK + 3) / 4 * 4;
  if (noise) {
    const int nb = tkp / 4;
    for (int item = threadIdx.x; item < kRows * nb; item += blockDim.x) {
      const int r = item / nb, b = item % nb;
      const int64_t i = row0 + r;
      float f4[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      if (i < n) normal4(seed, kTagFactor, offset + static_cast<uint64_t>(i), static_cast<uint32_t>(b), f4);
#pragma unroll
      for (int q = 0; q < 4; ++q) fsm[r * tkp + 4 * b + q] = f4[q];
    }
    __syncthreads();
  }
  const int G = (D + 3) / 4;
  const int per = 4 * (2 + K);
  const int items = G * (kRows / kRT);
  for (int item = threadIdx.x; item < items; item += blockDim.x) {
    const int g = item % G;
    const int r0 = (item / G) * kRT;
    float x[kRT][kCT], acc[kRT][kCT];
    channel_tile(O, in, ld, r0, g, per, 0, x);
    if (noise) {
      for (int j = 0; j < K; ++j) {
        channel_tile(O, in, ld, r0, g, per, 2 + j, acc);
#pragma unroll
        for (int r = 0; r < kRT; ++r)
#pragma unroll
          for (int q = 0; q < kCT; ++q) {
            const int t = min(4 * g + q, D - 1) / A;
            const float b = fminf(fmaxf(acc[r][q], -net.loading_max), net.loading_max);
            x[r][q] = fmaf(b, fsm[(r0 + r) * tkp + t * K + j], x[r][q]);
          }
      }
      channel_tile(O, in, ld, r0, g, per, 1, acc);
    }
#pragma unroll
    for (int r = 0; r < kRT; ++r) {
      const int64_t i = row0 + r0 + r;
      if (i >= n) break;
      float eps[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      if (noise)
        normal4(seed, kTagObservation, offset + static_cast<uint64_t>(i), static_cast<uint32_t>(g), eps);
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const int j = 4 * g + q;
        if (j >= D) break;
        float v = x[r][q];
        if (noise) {
          const float ls = fminf(fmaxf(acc[r][q], net.ls_min), net.ls_max);
          v = fmaf(expf(ls), eps[q], v);
        }
        out[i * D + j] = fmaf(v, net.std_j[j], net.mean_j[j]);
      }
    }
  }
}

__global__ void __launch_bounds__(kThreads)
    decode_kernel(DeviceNet net, DeviceLatent lat, float* __restrict__ out, int64_t n,
                  uint64_t seed, uint64_t offset, int noise) {
  extern __shared__ float smem[];
  const int ld = net.width;
  float* buf_a = smem;
  float* buf_b = smem + kRows * ld;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kRows;
  const int L = net.latent;

  // 1. z for the CTA's rows into buf_a (zeros past n).
  const int lblk = (L + 3) / 4;
  for (int item = threadIdx.x; item < kRows * lblk; item += blockDim.x) {
    const int r = item / lblk, b = item % lblk;
    const int64_t i = row0 + r;
    float z4[4];
    latent_block(lat, i, n, L, b, seed, offset, z4);
#pragma unroll
    for (int q = 0; q < 4; ++q)
      if (4 * b + q < ld) buf_a[r * ld + 4 * b + q] = z4[q];
  }
  __syncthreads();

  // 2. hidden layers, ping-pong in shared memory.
  float* in = buf_a;
  float* nxt = buf_b;
  for (int l = 0; l + 1 < net.n_layers; ++l) {
    hidden_layer(net.layers[l], in, nxt, ld);
    __syncthreads();
    float* t = in;
    in = nxt;
    nxt = t;
  }

  // 3. output layer with the fused epilogue.
  const DeviceLayer& O = net.layers[net.n_layers - 1];
  const int D = net.out_dim;
  if (net.factors > 0) {
    factor_output(net, O, in, ld, smem + 2 * kRows * ld, row0, out, n, seed, offset, noise);
    return;
  }
  const int G = (D + 3) / 4;
  const int per = net.gaussian ? 8 : 4;  // packed columns per group
  const int items = G * (kRows / kRT);
  for (int item = threadIdx.x; item < items; item += blockDim.x) {
    const int g = item % G;
    const int rg = item / G;
    const int r0 = rg * kRT;
    float acc[kRT][8];
#pragma unroll
    for (int r = 0; r < kRT; ++r)
#pragma unroll
      for (int c = 0; c < 8; ++c) acc[r][c] = 0.0f;
    const float* wg = O.w + g * per;
    for (int k = 0; k < O.k; ++k) {
      const float4 wm = __ldg(reinterpret_cast<const float4*>(wg + k * O.n_pad));
      float4 ws = make_float4(0.f, 0.f, 0.f, 0.f);
      if (per == 8) ws = __ldg(reinterpret_cast<const float4*>(wg + k * O.n_pad + 4));
#pragma unroll
      for (int r = 0; r < kRT; ++r) {
        const float a = in[(r0 + r) * ld + k];
        acc[r][0] = fmaf(a, wm.x, acc[r][0]);
        acc[r][1] = fmaf(a, wm.y, acc[r][1]);
        acc[r][2] = fmaf(a, wm.z, acc[r][2]);
        acc[r][3] = fmaf(a, wm.w, acc[r][3]);
        acc[r][4] = fmaf(a, ws.x, acc[r][4]);
        acc[r][5] = fmaf(a, ws.y, acc[r][5]);
        acc[r][6] = fmaf(a, ws.z, acc[r][6]);
        acc[r][7] = fmaf(a, ws.w, acc[r][7]);
      }
    }
    float bias[8];
#pragma unroll
    for (int c = 0; c < 8; ++c) bias[c] = c < per ? O.b[g * per + c] : 0.0f;
#pragma unroll
    for (int r = 0; r < kRT; ++r) {
      const int64_t i = row0 + r0 + r;
      if (i >= n) break;
      float eps[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      if (net.gaussian && noise)
        normal4(seed, kTagObservation, offset + static_cast<uint64_t>(i), static_cast<uint32_t>(g), eps);
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const int j = 4 * g + q;
        if (j >= D) break;
        float x = acc[r][q] + bias[q];
        if (net.gaussian && noise) {
          const float ls = fminf(fmaxf(acc[r][4 + q] + bias[4 + q], net.ls_min), net.ls_max);
          x = fmaf(expf(ls), eps[q], x);
        }
        out[i * D + j] = fmaf(x, net.std_j[j], net.mean_j[j]);
      }
    }
  }
}

}  // namespace

size_t decode_smem_bytes(int width, int64_t tk) {
  return static_cast<size_t>(2 * kRows * static_cast<int64_t>(width) +
                             kRows * ((tk + 3) / 4 * 4)) *
         sizeof(float);
}

void decode(const DeviceNet& net, const DeviceLatent& latent, float* out, int64_t n,
            uint64_t seed, uint64_t offset, bool noise, bool demean, bool cumulative,
            void* stream) {
  if (n < 0) throw std::invalid_argument("cuda decode: n >= 0");
  if (net.n_layers < 1 || net.n_layers > kMaxLayers)
    throw std::invalid_argument("cuda decode: 1 to 8 layers");
  if (net.width <= 0 || net.width > kMaxWidth || net.width % 4 != 0 || net.latent > net.width)
    throw std::invalid_argument("cuda decode: widths must be <= 256 (padded to 4)");
  if (net.assets < 1 || net.out_dim < 1 || net.out_dim % net.assets != 0)
    throw std::invalid_argument("cuda decode: out_dim must be a positive multiple of assets");
  if (!latent.z && (latent.mode < 0 || latent.mode > 2 || latent.k <= 0))
    throw std::invalid_argument("cuda decode: bad latent source");
  if (net.factors < 0 || net.factors > net.assets || (net.factors > 0 && !net.gaussian) ||
      !(net.loading_max > 0.0f))
    throw std::invalid_argument("cuda decode: factors in [0, assets], gaussian only");
  if (n == 0) return;
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int64_t tk = net.factors > 0 && noise
                         ? static_cast<int64_t>(net.out_dim / net.assets) * net.factors
                         : 0;
  const size_t smem = decode_smem_bytes(net.width, tk);
  int device = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  if (smem > shared_memory_limit(device))
    throw std::invalid_argument("cuda decode: needs " + std::to_string(smem) +
                                " bytes of shared memory per block, the device allows " +
                                std::to_string(shared_memory_limit(device)));
  check(cudaFuncSetAttribute(decode_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(smem)),
        "cudaFuncSetAttribute(decode_kernel shared memory)");
  const int64_t blocks = (n + kRows - 1) / kRows;
  if (blocks > 0x7fffffffLL) throw std::invalid_argument("cuda decode: n too large for one call");
  decode_kernel<<<static_cast<unsigned>(blocks), kThreads, smem, s>>>(net, latent, out, n, seed,
                                                                      offset, noise ? 1 : 0);
  check(cudaGetLastError(), "decode_kernel launch");
  demean_cumsum(out, n, net.out_dim / net.assets, net.assets, demean, cumulative, stream);
}

}  // namespace cuda
}  // namespace svae

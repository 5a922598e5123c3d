// Fused rollout of the recurrent (GRU) decoder on CUDA (see rollout_cuda.h):
// every day of a path in one kernel, the state on chip.
//
// A warp rolls out G = 16 / Q scenarios, Q = hp / 32 <= 4 units per lane:
// lane l owns units l, l + 32, .. of all G scenarios. Per day the lane forms
// its 3 Q gate columns for the G scenarios: h [G][hp] of the warp sits in
// shared memory and is read as float4 broadcasts, the recurrent weights (in
// shared memory, one copy per CTA) as one conflict-free word per lane, so
// each weight read feeds G fused multiply-adds. The gates are applied in
// registers, the new h goes back to shared memory, then lanes take (path,
// asset) items for the head, the noise and the store (a factor model draws
// the day's F factors of the warp's paths into shared memory first, stream
// kTagFactorStep + t, and adds sum_j B_j f_j before the asset's own noise,
// in the CPU's order). z_t @ Wz + b (the
// input part of the gates) stays in registers, recomputed only after a
// latent drift step.
//
// Arithmetic follows the CPU rollout (rollout_kernels.h) operation for
// operation: every dot product is a chain of fmas in k order from zero, then
// the bias added; sigmoid and tanh are poly.h's, the CPU kernels' source
// over the scalar traits (single IEEE operations: _rn intrinsics, and this
// file is built with --fmad=false), so the paths match the CPU's FMA levels
// (AVX2, AVX-512) up to the sign of a zero. The noise is the shared Philox code of
// ../philox.h: the CPU's numbers to the bit.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "../philox.h"
#include "../poly.h"
#include "../rollout.h"
#include "check.cuh"
#include "decode_cuda.h"  // shared_memory_limit
#include "epilogue_cuda.h"
#include "latent_device.cuh"
#include "rollout_cuda.h"
#include "rollout_layout.h"

namespace svae {
namespace cuda {
namespace {

constexpr int kMaxWarps = 8;  // warps per CTA, fewer when shared memory is short
constexpr int kUnitsPerLaneTimesGroup = 16;

__host__ __device__ constexpr int group_of(int q) { return kUnitsPerLaneTimesGroup / q; }

__device__ __forceinline__ float pick4(const float e[4], int q) {
  return q == 0 ? e[0] : (q == 1 ? e[1] : (q == 2 ? e[2] : e[3]));
}

// gz[g][q][gate] = z_g @ Wz[:, gate, unit] + bi[gate, unit] for the lane's units.
template <int Q, int G>
__device__ __forceinline__ void input_gates(const float* __restrict__ wz,
                                            const float* __restrict__ bi, const float* zs,
                                            const Layout& s, int lane, float (&gz)[G][Q][3]) {
#pragma unroll
  for (int g = 0; g < G; ++g)
#pragma unroll
    for (int q = 0; q < Q; ++q)
#pragma unroll
      for (int c = 0; c < 3; ++c) gz[g][q][c] = 0.0f;
  for (int k = 0; k < s.L; ++k) {
    float w[Q][3];
#pragma unroll
    for (int q = 0; q < Q; ++q)
#pragma unroll
      for (int c = 0; c < 3; ++c) w[q][c] = __ldg(wz + (k * 3 + c) * s.hp + q * 32 + lane);
#pragma unroll
    for (int g = 0; g < G; ++g) {
      const float zk = zs[g * s.lp + k];
#pragma unroll
      for (int q = 0; q < Q; ++q)
#pragma unroll
        for (int c = 0; c < 3; ++c) gz[g][q][c] = fma_rn(zk, w[q][c], gz[g][q][c]);
    }
  }
#pragma unroll
  for (int q = 0; q < Q; ++q)
#pragma unroll
    for (int c = 0; c < 3; ++c) {
      const float b = bi[c * s.hp + q * 32 + lane];
#pragma unroll
      for (int g = 0; g < G; ++g) gz[g][q][c] = add_rn(gz[g][q][c], b);
    }
}

template <int Q>
__global__ void __launch_bounds__(kMaxWarps * 32)
    rollout_kernel(RolloutNet net, DeviceLatent lat, float* __restrict__ out, int64_t n,
                   int64_t T, uint64_t seed, uint64_t offset, int noise, float phi, float c) {
  constexpr int G = group_of(Q);
  extern __shared__ __align__(16) float smem[];
  const Layout s = make_layout(net.latent, net.hidden, net.assets, G, net.factors);
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;

  // 1. The CTA's copy of the weights and the scaler.
  {
    const float4* src = reinterpret_cast<const float4*>(net.image);
    float4* dst = reinterpret_cast<float4*>(smem);
    for (int i = threadIdx.x; i < s.image / 4; i += blockDim.x) dst[i] = __ldg(src + i);
    for (int i = threadIdx.x; i < s.a2; i += blockDim.x) smem[s.scaler + i] = net.scaler[i];
  }
  __syncthreads();
  const int64_t base = (static_cast<int64_t>(blockIdx.x) * (blockDim.x >> 5) + warp) * G;
  if (base >= n) return;  // whole warps only; no CTA barrier follows

  const float* wh = smem + s.wh;
  const float* wx = smem + s.wx;
  const float* bi = smem + s.bi;
  const float* bhn = smem + s.bhn;
  const float* wo = smem + s.wo;
  const float* bo = smem + s.bo;
  const float* mean_a = smem + s.scaler;
  const float* std_a = mean_a + s.A;
  float* hs = smem + s.warp0 + warp * s.per_warp;  // [G][hs]
  float* zs = hs + G * s.hs;                       // [G][lp]
  float* xs = zs + G * s.lp;                       // [G][a2p]: x then |x| of the last day
  float* fs = xs + G * s.a2p;                      // [G][fp]: the factors of the day
  const int L = s.L, A = s.A, F = s.F;

  // 2. z_0 of the warp's paths (zeros past n), x_{-1} = 0.
  const int nb = (L + 3) / 4;
  for (int item = lane; item < G * nb; item += 32) {
    const int g = item / nb, b = item % nb;
    const int64_t i = base + g;
    float z4[4];
    latent_block(lat, i, n, L, b, seed, offset, z4);
#pragma unroll
    for (int q = 0; q < 4; ++q) zs[g * s.lp + 4 * b + q] = z4[q];
  }
  for (int item = lane; item < G * s.a2p; item += 32) xs[item] = 0.0f;
  __syncwarp();

  // 3. h_0 = tanh(z W0 + b0) and the input gates, in registers.
  float h[G][Q];
#pragma unroll
  for (int g = 0; g < G; ++g)
#pragma unroll
    for (int q = 0; q < Q; ++q) h[g][q] = 0.0f;
  for (int k = 0; k < L; ++k) {
    float w[Q];
#pragma unroll
    for (int q = 0; q < Q; ++q) w[q] = __ldg(net.w0 + k * s.hp + q * 32 + lane);
#pragma unroll
    for (int g = 0; g < G; ++g) {
      const float zk = zs[g * s.lp + k];
#pragma unroll
      for (int q = 0; q < Q; ++q) h[g][q] = fma_rn(zk, w[q], h[g][q]);
    }
  }
#pragma unroll
  for (int q = 0; q < Q; ++q) {
    const float b = __ldg(net.b0 + q * 32 + lane);
#pragma unroll
    for (int g = 0; g < G; ++g) {
      h[g][q] = poly::tanh<Scalar>(add_rn(h[g][q], b));
      hs[g * s.hs + q * 32 + lane] = h[g][q];
    }
  }
  float gz[G][Q][3];
  input_gates<Q, G>(net.wz, bi, zs, s, lane, gz);
  __syncwarp();

  const bool drift = phi < 1.0f;
  for (int64_t t = 0; t < T; ++t) {
    // 4. gh = h @ Wh for the lane's units, k in order.
    float acc[G][Q][3];
#pragma unroll
    for (int g = 0; g < G; ++g)
#pragma unroll
      for (int q = 0; q < Q; ++q)
#pragma unroll
        for (int cc = 0; cc < 3; ++cc) acc[g][q][cc] = 0.0f;
    for (int k = 0; k < s.hk; k += 4) {
      float w[4][Q][3];
#pragma unroll
      for (int kk = 0; kk < 4; ++kk)
#pragma unroll
        for (int q = 0; q < Q; ++q)
#pragma unroll
          for (int cc = 0; cc < 3; ++cc) w[kk][q][cc] = wh[((k + kk) * 3 + cc) * s.hp + q * 32 + lane];
#pragma unroll
      for (int g = 0; g < G; ++g) {
        const float4 hv = *reinterpret_cast<const float4*>(hs + g * s.hs + k);
        const float hk4[4] = {hv.x, hv.y, hv.z, hv.w};
#pragma unroll
        for (int kk = 0; kk < 4; ++kk)
#pragma unroll
          for (int q = 0; q < Q; ++q)
#pragma unroll
            for (int cc = 0; cc < 3; ++cc)
              acc[g][q][cc] = fma_rn(hk4[kk], w[kk][q][cc], acc[g][q][cc]);
      }
    }
    // 5. the gates: inputs (x, |x|) of the last day on top of z Wz + b.
#pragma unroll
    for (int g = 0; g < G; ++g)
#pragma unroll
      for (int q = 0; q < Q; ++q) {
        const int j = q * 32 + lane;
        float ir = gz[g][q][0], iu = gz[g][q][1], in = gz[g][q][2];
        for (int k = 0; k < s.a2; ++k) {
          const float xv = xs[g * s.a2p + k];
          const float* w = wx + k * 3 * s.hp + j;
          ir = fma_rn(xv, w[0], ir);
          iu = fma_rn(xv, w[s.hp], iu);
          in = fma_rn(xv, w[2 * s.hp], in);
        }
        const float rg = poly::sigmoid<Scalar>(add_rn(ir, acc[g][q][0]));
        const float ug = poly::sigmoid<Scalar>(add_rn(iu, acc[g][q][1]));
        const float ng = poly::tanh<Scalar>(fma_rn(rg, add_rn(acc[g][q][2], bhn[j]), in));
        h[g][q] = fma_rn(ug, sub_rn(h[g][q], ng), ng);
      }
    __syncwarp();  // every lane has read the old h and x
#pragma unroll
    for (int g = 0; g < G; ++g)
#pragma unroll
      for (int q = 0; q < Q; ++q) hs[g * s.hs + q * 32 + lane] = h[g][q];
    __syncwarp();

    // 6a. the factors of the day (F > 0): f_j of path g is element j of
    // stream kTagFactorStep + t.
    if (F > 0 && noise) {
      const int fb = s.fp / 4;
      for (int item = lane; item < G * fb; item += 32) {
        const int g = item / fb, b = item % fb;
        float e[4];
        normal4(seed, kTagFactorStep + static_cast<uint32_t>(t),
                offset + static_cast<uint64_t>(base + g), static_cast<uint32_t>(b), e);
#pragma unroll
        for (int q = 0; q < 4; ++q) fs[g * s.fp + 4 * b + q] = e[q];
      }
      __syncwarp();
    }

    // 6. head, noise, output: one (path, asset) per lane.
    for (int item = lane; item < G * A; item += 32) {
      const int g = item / A, a = item % A;
      const int64_t i = base + g;
      const float* hr = hs + g * s.hs;
      float m = 0.0f, r = 0.0f;
      for (int k = 0; k < s.hk; ++k) {
        const float hv = hr[k];
        m = fma_rn(hv, wo[k * s.ca + a], m);
        r = fma_rn(hv, wo[k * s.ca + A + a], r);
      }
      m = add_rn(m, bo[a]);
      r = add_rn(r, bo[A + a]);
      float x = m;
      if (noise) {
        // the factor part, as the CPU: acc = mean; acc = fma(B_j, f_j, acc)
        for (int j = 0; j < F; ++j) {
          const int col = (2 + j) * A + a;
          float bj = 0.0f;
          for (int k = 0; k < s.hk; ++k) bj = fma_rn(hr[k], wo[k * s.ca + col], bj);
          bj = fminf(fmaxf(add_rn(bj, bo[col]), -net.loading_max), net.loading_max);
          x = fma_rn(bj, fs[g * s.fp + j], x);
        }
        const float ls = fminf(fmaxf(r, net.ls_min), net.ls_max);
        float e[4];
        normal4(seed, kTagStep + static_cast<uint32_t>(t), offset + static_cast<uint64_t>(i),
                static_cast<uint32_t>(a >> 2), e);
        x = fma_rn(exp_poly(ls), pick4(e, a & 3), x);
      }
      xs[g * s.a2p + a] = x;
      xs[g * s.a2p + A + a] = fabsf(x);
      if (i < n) out[(i * T + t) * A + a] = fma_rn(x, std_a[a], mean_a[a]);
    }
    __syncwarp();  // every lane has read x and f of the day

    // 7. latent drift: z_{t+1} = phi z_t + c eta_t, then the input gates again.
    if (drift && t + 1 < T) {
      for (int item = lane; item < G * nb; item += 32) {
        const int g = item / nb, b = item % nb;
        float e[4];
        normal4(seed, kTagDrift + static_cast<uint32_t>(t),
                offset + static_cast<uint64_t>(base + g), static_cast<uint32_t>(b), e);
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          float* zj = zs + g * s.lp + 4 * b + q;
          if (4 * b + q < L) *zj = fma_rn(c, e[q], mul_rn(phi, *zj));
        }
      }
      __syncwarp();
      input_gates<Q, G>(net.wz, bi, zs, s, lane, gz);
      __syncwarp();  // every lane has read z before the next drift step writes it
    }
  }
}

int units_per_lane(int hidden) { return (hidden + 31) / 32; }

size_t smem_bytes(int latent, int hidden, int assets, int warps, int factors) {
  const Layout s =
      make_layout(latent, hidden, assets, group_of(units_per_lane(hidden)), factors);
  return static_cast<size_t>(s.warp0 + static_cast<int64_t>(warps) * s.per_warp) * sizeof(float);
}

void check_sizes(int latent, int hidden, int assets, int factors) {
  if (hidden < 1 || hidden > kRolloutMaxHidden)
    throw std::invalid_argument("cuda rollout: hidden must be in [1, " +
                                std::to_string(kRolloutMaxHidden) + "]");
  if (latent < 1 || assets < 1 || latent > (1 << 16) || assets > (1 << 12))
    throw std::invalid_argument("cuda rollout: latent in [1, 65536], assets in [1, 4096]");
  if (factors < 0 || factors > assets)
    throw std::invalid_argument("cuda rollout: factors in [0, assets]");
}

size_t smem_limit(int device) { return shared_memory_limit(device); }

int warps_that_fit(int latent, int hidden, int assets, int factors, size_t limit) {
  for (int w = kMaxWarps; w >= 1; w /= 2)
    if (smem_bytes(latent, hidden, assets, w, factors) <= limit) return w;
  return 0;
}

template <int Q>
void launch(const RolloutNet& net, const DeviceLatent& lat, float* out, int64_t n, int64_t T,
            uint64_t seed, uint64_t offset, bool noise, float phi, float c, int warps,
            cudaStream_t s) {
  constexpr int G = group_of(Q);
  const size_t smem = smem_bytes(net.latent, net.hidden, net.assets, warps, net.factors);
  check(cudaFuncSetAttribute(rollout_kernel<Q>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(smem)),
        "cudaFuncSetAttribute(rollout_kernel shared memory)");
  const int64_t per_cta = static_cast<int64_t>(G) * warps;
  const int64_t blocks = (n + per_cta - 1) / per_cta;
  if (blocks > 0x7fffffffLL) throw std::invalid_argument("cuda rollout: n too large for one call");
  rollout_kernel<Q><<<static_cast<unsigned>(blocks), warps * 32, smem, s>>>(
      net, lat, out, n, T, seed, offset, noise ? 1 : 0, phi, c);
  check(cudaGetLastError(), "rollout_kernel launch");
}

}  // namespace

size_t shared_memory_limit(int device) {
  int optin = 0;
  check(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device),
        "cudaDeviceGetAttribute(max shared memory per block, opt-in)");
  return static_cast<size_t>(optin);
}

RolloutShape rollout_shape(int hidden, int assets, int factors) {
  if (hidden < 1 || assets < 1 || factors < 0 || factors > assets)
    throw std::invalid_argument("cuda rollout: hidden, assets >= 1, factors in [0, assets]");
  const Layout s = make_layout(1, hidden, assets, 1, factors);
  return RolloutShape{s.hp, s.hk, static_cast<int64_t>(s.image)};
}

RolloutPlan rollout_plan(int latent, int hidden, int assets, int device, int factors) {
  check_sizes(latent, hidden, assets, factors);
  const size_t limit = smem_limit(device);
  return RolloutPlan{warps_that_fit(latent, hidden, assets, factors, limit),
                     group_of(units_per_lane(hidden)),
                     smem_bytes(latent, hidden, assets, 1, factors), limit};
}

void rollout(const RolloutNet& net, const DeviceLatent& latent, float* out, int64_t n,
             int64_t horizon, uint64_t seed, uint64_t offset, bool noise, float phi, bool demean,
             bool cumulative, void* stream) {
  check_sizes(net.latent, net.hidden, net.assets, net.factors);
  if (!(net.loading_max > 0.0f)) throw std::invalid_argument("cuda rollout: loading_max > 0");
  if (n < 0 || horizon < 0 || horizon > kMaxHorizon)
    throw std::invalid_argument("cuda rollout: n >= 0 and 0 <= horizon <= 2^24");
  if (!(phi > 0.0f && phi <= 1.0f)) throw std::invalid_argument("cuda rollout: phi in (0, 1]");
  if (!latent.z && (latent.mode < 0 || latent.mode > 2 || latent.k <= 0))
    throw std::invalid_argument("cuda rollout: bad latent source");
  if (!latent.z && latent.mode == 2 && latent.index == nullptr)
    throw std::invalid_argument("cuda rollout: table mode needs an index");
  if (n == 0 || horizon == 0) return;
  if (!out || !net.image || !net.w0 || !net.b0 || !net.wz || !net.scaler)
    throw std::invalid_argument("cuda rollout: null pointer");
  int device = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  const size_t limit = smem_limit(device);
  const int warps = warps_that_fit(net.latent, net.hidden, net.assets, net.factors, limit);
  if (warps == 0)
    throw std::invalid_argument(
        "cuda rollout: needs " +
        std::to_string(smem_bytes(net.latent, net.hidden, net.assets, 1, net.factors)) +
        " bytes of shared memory per block, the device allows " + std::to_string(limit));
  // As the CPU: c = sqrt(1 - phi^2) in double, rounded once to float.
  const float c = static_cast<float>(std::sqrt(std::max(0.0, 1.0 - double(phi) * double(phi))));
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  switch (units_per_lane(net.hidden)) {
    case 1:
      launch<1>(net, latent, out, n, horizon, seed, offset, noise, phi, c, warps, s);
      break;
    case 2:
      launch<2>(net, latent, out, n, horizon, seed, offset, noise, phi, c, warps, s);
      break;
    case 3:
      launch<3>(net, latent, out, n, horizon, seed, offset, noise, phi, c, warps, s);
      break;
    default:
      launch<4>(net, latent, out, n, horizon, seed, offset, noise, phi, c, warps, s);
  }
  demean_cumsum(out, n, horizon, net.assets, demean, cumulative, stream);
}

}  // namespace cuda
}  // namespace svae

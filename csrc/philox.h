// Philox4x32-10 and the normal transform, one header for host and device.
//
// Everything here is bit-for-bit reproducible across CPU (any ISA level) and
// CUDA: integer arithmetic only in the generator; the float part uses only
// correctly rounded single operations (add, mul, fmaf, sqrt, int<->float) in
// a fixed order. Build rules that keep it so:
//   host:   -ffp-contract=off, no -ffast-math (a*b+c is never fused behind
//           our back; every fused multiply-add below is an explicit fmaf)
//   device: --fmad=false, no --use_fast_math; sqrt is __fsqrt_rn
// The numpy twin in stressvae/_reference.py repeats every operation below in
// the same order and is tested to agree to the bit.
//
// Random123 (Salmon et al., SC'11) defines Philox4x32-10; known answers are
// checked in tests/test_philox.py.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define SVAE_HD __host__ __device__ __forceinline__
#else
#define SVAE_HD inline __attribute__((always_inline))
#endif

namespace svae {

// ---------------------------------------------------------------- Philox
constexpr uint32_t kPhiloxM0 = 0xD2511F53u;
constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;
constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;

// Stream tags (counter word 1). A new use of randomness gets a new tag so
// that streams never overlap; existing tags never change meaning.
constexpr uint32_t kTagLatent = 0u;       // eps of z = mu + sigma * eps
constexpr uint32_t kTagObservation = 1u;  // observation noise of the decoder

struct U32x4 {
  uint32_t v0, v1, v2, v3;
};

SVAE_HD uint32_t mulhi32(uint32_t a, uint32_t b) {
  return static_cast<uint32_t>((static_cast<uint64_t>(a) * b) >> 32);
}

SVAE_HD U32x4 philox_round(U32x4 c, uint32_t k0, uint32_t k1) {
  const uint64_t p0 = static_cast<uint64_t>(kPhiloxM0) * c.v0;
  const uint64_t p1 = static_cast<uint64_t>(kPhiloxM1) * c.v2;
  U32x4 r;
  r.v0 = static_cast<uint32_t>(p1 >> 32) ^ c.v1 ^ k0;
  r.v1 = static_cast<uint32_t>(p1);
  r.v2 = static_cast<uint32_t>(p0 >> 32) ^ c.v3 ^ k1;
  r.v3 = static_cast<uint32_t>(p0);
  return r;
}

// Philox4x32 with 10 rounds: counter c, key (k0, k1).
SVAE_HD U32x4 philox4x32_10(U32x4 c, uint32_t k0, uint32_t k1) {
#if defined(__CUDACC__)
#pragma unroll
#endif
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += kPhiloxW0;
      k1 += kPhiloxW1;
    }
    c = philox_round(c, k0, k1);
  }
  return c;
}

// The counter of element block `block` (elements 4*block .. 4*block+3) of
// scenario `scenario` in stream `tag`; the key is the 64-bit seed.
SVAE_HD U32x4 philox_counter(uint32_t block, uint32_t tag, uint64_t scenario) {
  U32x4 c;
  c.v0 = block;
  c.v1 = tag;
  c.v2 = static_cast<uint32_t>(scenario);
  c.v3 = static_cast<uint32_t>(scenario >> 32);
  return c;
}

// ---------------------------------------------------------- float helpers
SVAE_HD float bits_to_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

SVAE_HD uint32_t float_to_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

// Explicit, never-contracted single operations. On the host -ffp-contract=off
// already guarantees this; on the device the _rn intrinsics are never fused
// into an FMA, whatever --fmad says.
SVAE_HD float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
SVAE_HD float add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
SVAE_HD float sub_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
SVAE_HD float fma_rn(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, b, c);
#else
  return std::fmaf(a, b, c);
#endif
}
SVAE_HD float sqrt_rn(float a) {
#if defined(__CUDA_ARCH__)
  return __fsqrt_rn(a);
#else
  return std::sqrt(a);
#endif
}

// Uniform in (0, 1), never 0 or 1: ((u >> 8) | 1) * 2^-24. Exact.
SVAE_HD float uniform_open(uint32_t u) {
  // The value is below 2^24: converting it as signed is exact and avoids an
  // unsigned conversion that AVX2 lacks.
  return mul_rn(static_cast<float>(static_cast<int32_t>((u >> 8) | 1u)), 5.9604644775390625e-08f);
}

// Round to nearest even integer for |x| < 2^22, exactly, with IEEE ops only.
constexpr float kRoundMagic = 12582912.0f;  // 1.5 * 2^23

// log(u) for u a positive normal float (Cephes logf, explicit fmaf).
// Max error measured against float64: see tests/test_philox.py.
SVAE_HD float log_poly(float u) {
  // u = m * 2^e with m in [sqrt(1/2), sqrt(2)). Selects are on integer bits
  // only (no conditional float operation), so every path vectorizes the same.
  const uint32_t bits = float_to_bits(u);
  const uint32_t mant = bits & 0x007FFFFFu;
  const uint32_t big = mant > 0x003504F3u ? 1u : 0u;  // 1.mant > sqrt(2)
  const int e = static_cast<int>(bits >> 23) - 127 + static_cast<int>(big);
  const float m = bits_to_float(mant | (0x3F800000u - (big << 23)));
  const float x = sub_rn(m, 1.0f);
  const float fe = static_cast<float>(e);
  const float z = mul_rn(x, x);
  float p = 7.0376836292e-2f;
  p = fma_rn(p, x, -1.1514610310e-1f);
  p = fma_rn(p, x, 1.1676998740e-1f);
  p = fma_rn(p, x, -1.2420140846e-1f);
  p = fma_rn(p, x, 1.4249322787e-1f);
  p = fma_rn(p, x, -1.6668057665e-1f);
  p = fma_rn(p, x, 2.0000714765e-1f);
  p = fma_rn(p, x, -2.4999993993e-1f);
  p = fma_rn(p, x, 3.3333331174e-1f);
  float y = mul_rn(mul_rn(p, x), z);
  y = fma_rn(fe, -2.12194440e-4f, y);
  y = fma_rn(-0.5f, z, y);
  float r = add_rn(x, y);
  r = fma_rn(fe, 0.693359375f, r);
  return r;
}

// exp(x), x clamped to [-86, 88] so that the result is a normal float
// (exp(-86) = 4.5e-38, exp(88) = 1.7e38). Cephes expf, explicit fmaf.
SVAE_HD float exp_poly(float x) {
  x = x < -86.0f ? -86.0f : x;
  x = x > 88.0f ? 88.0f : x;
  const float kf = sub_rn(fma_rn(x, 1.44269504088896341f, kRoundMagic), kRoundMagic);
  float r = fma_rn(kf, -0.693359375f, x);
  r = fma_rn(kf, 2.12194440e-4f, r);
  const float r2 = mul_rn(r, r);
  float p = 1.9875691500e-4f;
  p = fma_rn(p, r, 1.3981999507e-3f);
  p = fma_rn(p, r, 8.3334519073e-3f);
  p = fma_rn(p, r, 4.1665795894e-2f);
  p = fma_rn(p, r, 1.6666665459e-1f);
  p = fma_rn(p, r, 5.0000001201e-1f);
  p = fma_rn(p, r2, r);
  p = add_rn(p, 1.0f);
  const int k = static_cast<int>(kf);
  return mul_rn(p, bits_to_float(static_cast<uint32_t>(k + 127) << 23));
}

// cos(2 pi u) and sin(2 pi u) for u in [0, 1]. The angle is reduced in turns
// (exact: u * 4 and its nearest integer are exact), then polynomials in the
// remainder f in [-1/2, 1/2] for sin(pi f / 2) and cos(pi f / 2) (Taylor to
// degree 9 and 10: truncation error below 2e-9), then a quarter-turn rotation.
SVAE_HD void sincos_2pi_poly(float u, float* c_out, float* s_out) {
  const float t = mul_rn(u, 4.0f);
  const float kf = sub_rn(add_rn(t, kRoundMagic), kRoundMagic);
  const float f = sub_rn(t, kf);
  const int k = static_cast<int>(kf) & 3;
  const float f2 = mul_rn(f, f);
  float ps = 1.6044118478735982e-4f;         // (pi/2)^9 / 9!
  ps = fma_rn(ps, f2, -4.6817541353186881e-3f);  // -(pi/2)^7 / 7!
  ps = fma_rn(ps, f2, 7.9692626246167045e-2f);   // (pi/2)^5 / 5!
  ps = fma_rn(ps, f2, -6.4596409750624625e-1f);  // -(pi/2)^3 / 3!
  ps = fma_rn(ps, f2, 1.5707963267948966f);      // pi/2
  const float s = mul_rn(ps, f);
  float pc = -2.5202042373060605e-5f;          // -(pi/2)^10 / 10!
  pc = fma_rn(pc, f2, 9.1926027483942659e-4f);   // (pi/2)^8 / 8!
  pc = fma_rn(pc, f2, -2.0863480763352961e-2f);  // -(pi/2)^6 / 6!
  pc = fma_rn(pc, f2, 2.5366950790104802e-1f);   // (pi/2)^4 / 4!
  pc = fma_rn(pc, f2, -1.2337005501361697f);     // -(pi/2)^2 / 2!
  const float c = fma_rn(pc, f2, 1.0f);
  // Quarter-turn rotation by k: swap for odd k, sign flips by bit.
  const uint32_t cb = float_to_bits(c), sb = float_to_bits(s);
  const uint32_t swap = (k & 1) ? 0xFFFFFFFFu : 0u;
  const uint32_t cc = (cb & ~swap) | (sb & swap);
  const uint32_t ss = (sb & ~swap) | (cb & swap);
  *c_out = bits_to_float(cc ^ (static_cast<uint32_t>((k + 1) & 2) << 30));
  *s_out = bits_to_float(ss ^ (static_cast<uint32_t>(k & 2) << 30));
}

// Box-Muller on one uniform pair: r = sqrt(-2 log u1), theta = 2 pi u2.
SVAE_HD void box_muller(uint32_t a, uint32_t b, float* n0, float* n1) {
  const float u1 = uniform_open(a);
  const float u2 = uniform_open(b);
  const float r = sqrt_rn(mul_rn(-2.0f, log_poly(u1)));
  float c, s;
  sincos_2pi_poly(u2, &c, &s);
  *n0 = mul_rn(r, c);
  *n1 = mul_rn(r, s);
}

// Four standard normals from one Philox block: eps of elements 4*block ..
// 4*block+3 of `scenario` in stream `tag`. |eps| <= 5.77 (24-bit uniforms).
SVAE_HD void normal4(uint64_t seed, uint32_t tag, uint64_t scenario, uint32_t block,
                     float out[4]) {
  const U32x4 r = philox4x32_10(philox_counter(block, tag, scenario),
                                static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  box_muller(r.v0, r.v1, &out[0], &out[1]);
  box_muller(r.v2, r.v3, &out[2], &out[3]);
}

// The reparameterized draw of one element: mu + exp(lv / 2) * scale * eps.
SVAE_HD float sigma_of(float logvar, float scale) {
  return mul_rn(exp_poly(mul_rn(0.5f, logvar)), scale);
}
SVAE_HD float reparam(float mu, float sigma, float eps) { return fma_rn(sigma, eps, mu); }

}  // namespace svae

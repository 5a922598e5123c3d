// The project's scalar math, written once for the host and the device:
// correctly rounded single operations (add, mul, div, fmaf, sqrt) and the
// polynomials built from them (exp, log, sincos, sigmoid, tanh, erf).
//
// The polynomials take a traits type S with a value type V and static
// functions (set1, zero, add, sub, mul, div, fma, min, max, abs, copysign,
// select_lt, round, pow2i): Scalar below (float, host and CUDA device) or
// the host SIMD types of simd.h (SSE2, AVX2, AVX-512). A kernel that calls
// poly::tanh<S> computes the same operations in the same order on every
// target, so the bits agree wherever the traits' operations do (every S::fma
// is one fused multiply-add except SSE2's, which has no such instruction).
// Build rules that keep it so:
//   host:   -ffp-contract=off, no -ffast-math (a*b+c is never fused behind
//           our back; every fused multiply-add here is an explicit fma)
//   device: --fmad=false, no --use_fast_math; the _rn intrinsics below are
//           never contracted, whatever --fmad says.
// The numpy twin in stressvae/_reference.py repeats the sampler's functions
// (exp_poly, log_poly, sincos_2pi_poly) in the same order, tested to the bit.
//
// Host SIMD code includes this header after its `#pragma GCC target` (see
// kernels_avx512.cpp), so that the templates are built for that ISA.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "host_device.h"

namespace svae {

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
SVAE_HD float div_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
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

// Round to nearest even integer for |x| < 2^22, exactly, with IEEE ops only.
constexpr float kRoundMagic = 12582912.0f;  // 1.5 * 2^23

// The scalar traits: one float, host or device.
struct Scalar {
  using V = float;
  static SVAE_HD V zero() { return 0.0f; }
  static SVAE_HD V set1(float x) { return x; }
  static SVAE_HD V fma(V a, V b, V c) { return fma_rn(a, b, c); }
  static SVAE_HD V add(V a, V b) { return add_rn(a, b); }
  static SVAE_HD V sub(V a, V b) { return sub_rn(a, b); }
  static SVAE_HD V mul(V a, V b) { return mul_rn(a, b); }
  static SVAE_HD V div(V a, V b) { return div_rn(a, b); }
  static SVAE_HD V max(V a, V b) { return fmaxf(a, b); }
  static SVAE_HD V min(V a, V b) { return fminf(a, b); }
  static SVAE_HD V abs(V a) { return fabsf(a); }
  static SVAE_HD V copysign(V m, V s) { return copysignf(m, s); }
  static SVAE_HD V select_lt(V a, V b, V x, V y) { return a < b ? x : y; }
  static SVAE_HD V round(V x) { return rintf(x); }
  static SVAE_HD V pow2i(V k) {  // 2^k for integral k in [-126, 127]
    return bits_to_float(static_cast<uint32_t>(static_cast<int>(k) + 127) << 23);
  }
};

namespace poly {

// exp(x) = 2^k * e^r, r = x - k ln 2 (Cody-Waite, two steps), e^r by the
// Cephes expf polynomial; k integral. The tail both exps share.
template <class S>
SVAE_HD typename S::V exp_reduced(typename S::V x, typename S::V k) {
  using V = typename S::V;
  V r = S::fma(k, S::set1(-0.693359375f), x);
  r = S::fma(k, S::set1(2.12194440e-4f), r);
  const V r2 = S::mul(r, r);
  V p = S::set1(1.9875691500e-4f);
  p = S::fma(p, r, S::set1(1.3981999507e-3f));
  p = S::fma(p, r, S::set1(8.3334519073e-3f));
  p = S::fma(p, r, S::set1(4.1665795894e-2f));
  p = S::fma(p, r, S::set1(1.6666665459e-1f));
  p = S::fma(p, r, S::set1(5.0000001201e-1f));
  p = S::fma(p, r2, r);
  p = S::add(p, S::set1(1.0f));
  return S::mul(p, S::pow2i(k));
}

// exp(x) of the activations, x clamped to [-87, 88]: k = round(x log2 e).
// ~1 ulp.
template <class S>
SVAE_HD typename S::V exp(typename S::V x) {
  x = S::min(S::max(x, S::set1(-87.0f)), S::set1(88.0f));
  return exp_reduced<S>(x, S::round(S::mul(x, S::set1(1.44269504088896341f))));
}

// exp(x) of the sampler and the observation noise, x clamped to [-86, 88]
// so that the result is a normal float (exp(-86) = 4.5e-38, exp(88) =
// 1.7e38); k rounded inside one fma with the 1.5 * 2^23 trick.
template <class S>
SVAE_HD typename S::V exp_noise(typename S::V x) {
  const typename S::V lo = S::set1(-86.0f), hi = S::set1(88.0f);
  x = S::select_lt(x, lo, lo, x);
  x = S::select_lt(hi, x, hi, x);
  const typename S::V magic = S::set1(kRoundMagic);
  const typename S::V k = S::sub(S::fma(x, S::set1(1.44269504088896341f), magic), magic);
  return exp_reduced<S>(x, k);
}

// 1 / (1 + exp(-x))
template <class S>
SVAE_HD typename S::V sigmoid(typename S::V x) {
  return S::div(S::set1(1.0f), S::add(S::set1(1.0f), exp<S>(S::sub(S::zero(), x))));
}

// tanh: an odd polynomial near 0 (Cephes tanhf, |x| < 0.625), else
// 1 - 2 / (exp(2|x|) + 1) with the sign of x.
template <class S>
SVAE_HD typename S::V tanh(typename S::V x) {
  using V = typename S::V;
  const V ax = S::abs(x);
  const V x2 = S::mul(x, x);
  V p = S::set1(-5.70498872745e-3f);
  p = S::fma(p, x2, S::set1(2.06390887954e-2f));
  p = S::fma(p, x2, S::set1(-5.37397155531e-2f));
  p = S::fma(p, x2, S::set1(1.33314422036e-1f));
  p = S::fma(p, x2, S::set1(-3.33332819422e-1f));
  const V small = S::fma(S::mul(p, x2), x, x);
  const V e = exp<S>(S::mul(S::set1(2.0f), S::min(ax, S::set1(40.0f))));
  const V big = S::sub(S::set1(1.0f), S::div(S::set1(2.0f), S::add(e, S::set1(1.0f))));
  return S::select_lt(ax, S::set1(0.625f), small, S::copysign(big, x));
}

// erf(x): Abramowitz & Stegun 7.1.26 (absolute error <= 1.5e-7).
template <class S>
SVAE_HD typename S::V erf(typename S::V x) {
  using V = typename S::V;
  const V ax = S::abs(x);
  const V t = S::div(S::set1(1.0f), S::fma(S::set1(0.3275911f), ax, S::set1(1.0f)));
  V p = S::set1(1.061405429f);
  p = S::fma(p, t, S::set1(-1.453152027f));
  p = S::fma(p, t, S::set1(1.421413741f));
  p = S::fma(p, t, S::set1(-0.284496736f));
  p = S::fma(p, t, S::set1(0.254829592f));
  p = S::mul(p, t);
  const V y = S::sub(S::set1(1.0f), S::mul(p, exp<S>(S::sub(S::zero(), S::mul(ax, ax)))));
  return S::copysign(y, x);
}

}  // namespace poly

// ------------------------------------------------- the sampler's functions
// Scalar code, host and device; the host compiler vectorizes the loops that
// call them. Their integer steps work on the bits of one float.

// exp of the sampler (sigma = exp(logvar / 2)) and of the observation noise.
SVAE_HD float exp_poly(float x) { return poly::exp_noise<Scalar>(x); }

// log(u) for u a positive normal float (Cephes logf, explicit fmaf).
// Max error measured against float64: see tests/test_philox.py.
SVAE_HD float log_poly(float u) {
  using S = Scalar;
  // u = m * 2^e with m in [sqrt(1/2), sqrt(2)). Selects are on integer bits
  // only (no conditional float operation), so every path vectorizes the same.
  const uint32_t bits = float_to_bits(u);
  const uint32_t mant = bits & 0x007FFFFFu;
  const uint32_t big = mant > 0x003504F3u ? 1u : 0u;  // 1.mant > sqrt(2)
  const int e = static_cast<int>(bits >> 23) - 127 + static_cast<int>(big);
  const float m = bits_to_float(mant | (0x3F800000u - (big << 23)));
  const float x = S::sub(m, 1.0f);
  const float fe = static_cast<float>(e);
  const float z = S::mul(x, x);
  float p = 7.0376836292e-2f;
  p = S::fma(p, x, -1.1514610310e-1f);
  p = S::fma(p, x, 1.1676998740e-1f);
  p = S::fma(p, x, -1.2420140846e-1f);
  p = S::fma(p, x, 1.4249322787e-1f);
  p = S::fma(p, x, -1.6668057665e-1f);
  p = S::fma(p, x, 2.0000714765e-1f);
  p = S::fma(p, x, -2.4999993993e-1f);
  p = S::fma(p, x, 3.3333331174e-1f);
  float y = S::mul(S::mul(p, x), z);
  y = S::fma(fe, -2.12194440e-4f, y);
  y = S::fma(-0.5f, z, y);
  float r = S::add(x, y);
  r = S::fma(fe, 0.693359375f, r);
  return r;
}

// cos(2 pi u) and sin(2 pi u) for u in [0, 1]. The angle is reduced in turns
// (exact: u * 4 and its nearest integer are exact), then polynomials in the
// remainder f in [-1/2, 1/2] for sin(pi f / 2) and cos(pi f / 2) (Taylor to
// degree 9 and 10: truncation error below 2e-9), then a quarter-turn rotation.
SVAE_HD void sincos_2pi_poly(float u, float* c_out, float* s_out) {
  using S = Scalar;
  const float t = S::mul(u, 4.0f);
  const float kf = S::sub(S::add(t, kRoundMagic), kRoundMagic);
  const float f = S::sub(t, kf);
  const int k = static_cast<int>(kf) & 3;
  const float f2 = S::mul(f, f);
  float ps = 1.6044118478735982e-4f;                // (pi/2)^9 / 9!
  ps = S::fma(ps, f2, -4.6817541353186881e-3f);     // -(pi/2)^7 / 7!
  ps = S::fma(ps, f2, 7.9692626246167045e-2f);      // (pi/2)^5 / 5!
  ps = S::fma(ps, f2, -6.4596409750624625e-1f);     // -(pi/2)^3 / 3!
  ps = S::fma(ps, f2, 1.5707963267948966f);         // pi/2
  const float s = S::mul(ps, f);
  float pc = -2.5202042373060605e-5f;               // -(pi/2)^10 / 10!
  pc = S::fma(pc, f2, 9.1926027483942659e-4f);      // (pi/2)^8 / 8!
  pc = S::fma(pc, f2, -2.0863480763352961e-2f);     // -(pi/2)^6 / 6!
  pc = S::fma(pc, f2, 2.5366950790104802e-1f);      // (pi/2)^4 / 4!
  pc = S::fma(pc, f2, -1.2337005501361697f);        // -(pi/2)^2 / 2!
  const float c = S::fma(pc, f2, 1.0f);
  // Quarter-turn rotation by k: swap for odd k, sign flips by bit.
  const uint32_t cb = float_to_bits(c), sb = float_to_bits(s);
  const uint32_t swap = (k & 1) ? 0xFFFFFFFFu : 0u;
  const uint32_t cc = (cb & ~swap) | (sb & swap);
  const uint32_t ss = (sb & ~swap) | (cb & swap);
  *c_out = bits_to_float(cc ^ (static_cast<uint32_t>((k + 1) & 2) << 30));
  *s_out = bits_to_float(ss ^ (static_cast<uint32_t>(k & 2) << 30));
}

}  // namespace svae

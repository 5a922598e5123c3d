// Philox4x32-10 and the normal transform, one header for host and device.
//
// Everything here is bit-for-bit reproducible across CPU (any ISA level) and
// CUDA: integer arithmetic only in the generator; the float part uses only
// correctly rounded single operations and the polynomials of poly.h (the
// build rules that keep them exact are stated there), in a fixed order.
// The numpy twin in stressvae/_reference.py repeats every operation below in
// the same order and is tested to agree to the bit.
//
// Random123 (Salmon et al., SC'11) defines Philox4x32-10; known answers are
// checked in tests/test_philox.py.
#pragma once

#include <cstdint>

#include "poly.h"

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
constexpr uint32_t kTagFactor = 2u;       // common factors f of the MLP decoder (element t*k+j)

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

// ---------------------------------------------------------- normals
// Uniform in (0, 1), never 0 or 1: ((u >> 8) | 1) * 2^-24. Exact.
SVAE_HD float uniform_open(uint32_t u) {
  // The value is below 2^24: converting it as signed is exact and avoids an
  // unsigned conversion that AVX2 lacks.
  return mul_rn(static_cast<float>(static_cast<int32_t>((u >> 8) | 1u)), 5.9604644775390625e-08f);
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

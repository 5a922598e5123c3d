// Host SIMD traits: one struct per instruction set (AVX-512, AVX2+FMA, SSE2
// baseline) with the same small set of static functions, so that a kernel
// written once as a template compiles for each level. The math over them
// (exp, sigmoid, tanh, erf) is poly.h's, shared with the device.
//
// Each ISA is compiled in its own translation unit (kernels_<isa>.cpp): it
// includes the standard headers first, then sets `#pragma GCC target(...)`,
// defines SVAE_SIMD_<ISA> and includes this file and the kernels, so every
// function defined from there on is built for that ISA and only that ISA's
// traits are visible. Host only.
#pragma once

#if !defined(__x86_64__)
#error "simd.h is for x86-64 hosts"
#endif

#include <immintrin.h>

#define SVAE_INLINE inline __attribute__((always_inline))

namespace svae {
namespace simd {

#if defined(SVAE_SIMD_AVX512)
// ------------------------------------------------------------------ AVX-512
struct Avx512 {
  using V = __m512;
  static constexpr int W = 16;
  static SVAE_INLINE V zero() { return _mm512_setzero_ps(); }
  static SVAE_INLINE V set1(float x) { return _mm512_set1_ps(x); }
  static SVAE_INLINE V load(const float* p) { return _mm512_loadu_ps(p); }
  static SVAE_INLINE void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  // first n (0 < n <= W) lanes only
  static SVAE_INLINE void store_n(float* p, V v, int n) {
    _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << n) - 1u), v);
  }
  static SVAE_INLINE V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static SVAE_INLINE V add(V a, V b) { return _mm512_add_ps(a, b); }
  static SVAE_INLINE V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static SVAE_INLINE V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static SVAE_INLINE V div(V a, V b) { return _mm512_div_ps(a, b); }
  static SVAE_INLINE V max(V a, V b) { return _mm512_max_ps(a, b); }
  static SVAE_INLINE V min(V a, V b) { return _mm512_min_ps(a, b); }
  static SVAE_INLINE V abs(V a) { return _mm512_abs_ps(a); }
  // copy the sign of s onto the magnitude m (m >= 0)
  static SVAE_INLINE V copysign(V m, V s) {
    const __m512i sign = _mm512_set1_epi32(static_cast<int>(0x80000000u));
    return _mm512_castsi512_ps(_mm512_or_si512(
        _mm512_castps_si512(m), _mm512_and_si512(_mm512_castps_si512(s), sign)));
  }
  static SVAE_INLINE V select_lt(V a, V b, V x, V y) {  // a < b ? x : y
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_LT_OQ), y, x);
  }
  static SVAE_INLINE V round(V x) {
    return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  static SVAE_INLINE V pow2i(V k) {  // 2^k for integral k in [-126, 127]
    const __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(k), _mm512_set1_epi32(127));
    return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
  }
};
#endif

#if defined(SVAE_SIMD_AVX2)
// ------------------------------------------------------------------ AVX2
struct Avx2 {
  using V = __m256;
  static constexpr int W = 8;
  static SVAE_INLINE V zero() { return _mm256_setzero_ps(); }
  static SVAE_INLINE V set1(float x) { return _mm256_set1_ps(x); }
  static SVAE_INLINE V load(const float* p) { return _mm256_loadu_ps(p); }
  static SVAE_INLINE void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static SVAE_INLINE void store_n(float* p, V v, int n) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
    _mm256_maskstore_ps(p, mask, v);
  }
  static SVAE_INLINE V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static SVAE_INLINE V add(V a, V b) { return _mm256_add_ps(a, b); }
  static SVAE_INLINE V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static SVAE_INLINE V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static SVAE_INLINE V div(V a, V b) { return _mm256_div_ps(a, b); }
  static SVAE_INLINE V max(V a, V b) { return _mm256_max_ps(a, b); }
  static SVAE_INLINE V min(V a, V b) { return _mm256_min_ps(a, b); }
  static SVAE_INLINE V abs(V a) {
    return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a);
  }
  static SVAE_INLINE V copysign(V m, V s) {
    return _mm256_or_ps(m, _mm256_and_ps(s, _mm256_set1_ps(-0.0f)));
  }
  static SVAE_INLINE V select_lt(V a, V b, V x, V y) {
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_LT_OQ));
  }
  static SVAE_INLINE V round(V x) {
    return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  static SVAE_INLINE V pow2i(V k) {
    const __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127));
    return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
  }
};
#endif

#if defined(SVAE_SIMD_SSE2)
// ------------------------------------------------------------------ SSE2 (baseline x86-64)
// No FMA instruction here: fma is a multiply then an add (rounded twice).
// Results differ from the FMA levels in the last bits, within the parity
// tolerance; on one machine the level is fixed, so results stay bit-stable.
struct Sse2 {
  using V = __m128;
  static constexpr int W = 4;
  static SVAE_INLINE V zero() { return _mm_setzero_ps(); }
  static SVAE_INLINE V set1(float x) { return _mm_set1_ps(x); }
  static SVAE_INLINE V load(const float* p) { return _mm_loadu_ps(p); }
  static SVAE_INLINE void store(float* p, V v) { _mm_storeu_ps(p, v); }
  static SVAE_INLINE void store_n(float* p, V v, int n) {
    alignas(16) float t[4];
    _mm_store_ps(t, v);
    for (int i = 0; i < n; ++i) p[i] = t[i];
  }
  static SVAE_INLINE V fma(V a, V b, V c) { return _mm_add_ps(_mm_mul_ps(a, b), c); }
  static SVAE_INLINE V add(V a, V b) { return _mm_add_ps(a, b); }
  static SVAE_INLINE V sub(V a, V b) { return _mm_sub_ps(a, b); }
  static SVAE_INLINE V mul(V a, V b) { return _mm_mul_ps(a, b); }
  static SVAE_INLINE V div(V a, V b) { return _mm_div_ps(a, b); }
  static SVAE_INLINE V max(V a, V b) { return _mm_max_ps(a, b); }
  static SVAE_INLINE V min(V a, V b) { return _mm_min_ps(a, b); }
  static SVAE_INLINE V abs(V a) { return _mm_andnot_ps(_mm_set1_ps(-0.0f), a); }
  static SVAE_INLINE V copysign(V m, V s) {
    return _mm_or_ps(m, _mm_and_ps(s, _mm_set1_ps(-0.0f)));
  }
  static SVAE_INLINE V select_lt(V a, V b, V x, V y) {
    const V m = _mm_cmplt_ps(a, b);
    return _mm_or_ps(_mm_and_ps(m, x), _mm_andnot_ps(m, y));
  }
  static SVAE_INLINE V round(V x) {  // |x| < 2^22
    const V magic = _mm_set1_ps(12582912.0f);
    return _mm_sub_ps(_mm_add_ps(x, magic), magic);
  }
  static SVAE_INLINE V pow2i(V k) {
    const __m128i e = _mm_add_epi32(_mm_cvtps_epi32(k), _mm_set1_epi32(127));
    return _mm_castsi128_ps(_mm_slli_epi32(e, 23));
  }
};
#endif

}  // namespace simd
}  // namespace svae

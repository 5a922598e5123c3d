// The decode worker, written once over SIMD traits S (simd.h) and compiled
// per ISA in kernels_<isa>.cpp after its `#pragma GCC target`. Include only
// from those files, after simd.h.
//
// Per block of MB rows (activations kept in cache):
//   z      -> buffer A (copied, or drawn by the fused sampler of tile.h)
//   eps    -> a [MB, D] buffer (Philox tag kTagObservation), gaussian only
//   hidden layers: micro-kernel tiles of MR rows x NV vectors, bias and
//                  activation in registers, A -> B -> A ...
//   output layer:  the same tiles, then noise, unscaling and the store of
//                  the finished values, in registers
//   factor model (k > 0): the output layer into a [MB, (2+k) D] buffer
//                  (plain packing), f [MB, T k] (tag kTagFactor), then a
//                  SIMD epilogue per row (factor_row)
//   rows:  demean / cumulative sum per asset, in double
// Every row goes through the same instructions whatever its position in a
// block (the last partial tile is padded, never handled by other code), so
// results do not depend on chunk sizes or thread counts.

#include "decode.h"
#include "epilogue.h"
#include "microkernel.h"
#include "poly.h"
#include "tile.h"

namespace svae {
namespace decode_impl {

using simd::micro;

// The hidden layers' activation (codes of decode.h), over S.
template <class S>
SVAE_INLINE typename S::V activate(typename S::V x, int act) {
  switch (act) {
    case kSilu:
      return S::mul(x, poly::sigmoid<S>(x));
    case kRelu:
      return S::max(x, S::zero());
    case kTanh:
      return poly::tanh<S>(x);
    case kGelu:  // exact (erf) GELU, as torch.nn.GELU() by default
      return S::mul(S::mul(S::set1(0.5f), x),
                    S::add(S::set1(1.0f), poly::erf<S>(S::mul(x, S::set1(0.70710678118654752f)))));
    default:
      return x;
  }
}

template <class S, int MR, int NV, int ACT>
SVAE_INLINE void hidden_layer(const PackedLayer& L, const float* in, float* out, int64_t ld,
                              int64_t rows_pad) {
  constexpr int W = S::W, NP = NV * W;
  for (int64_t p = 0; p < L.panels; ++p) {
    const float* P = L.w.data() + p * L.k * NP;
    typename S::V bias[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) bias[v] = S::load(L.bias.data() + p * NP + v * W);
    for (int64_t r0 = 0; r0 < rows_pad; r0 += MR) {
      typename S::V acc[MR][NV];
      micro<S, MR, NV>(in + r0 * ld, ld, P, L.k, acc);
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v)
          S::store(out + (r0 + r) * ld + p * NP + v * W, activate<S>(S::add(acc[r][v], bias[v]), ACT));
    }
  }
}

template <class S, int MR, int NV>
SVAE_INLINE void hidden_dispatch(const PackedLayer& L, const float* in, float* out, int64_t ld,
                                 int64_t rows_pad) {
  switch (L.activation) {
    case kSilu:
      hidden_layer<S, MR, NV, kSilu>(L, in, out, ld, rows_pad);
      break;
    case kRelu:
      hidden_layer<S, MR, NV, kRelu>(L, in, out, ld, rows_pad);
      break;
    case kTanh:
      hidden_layer<S, MR, NV, kTanh>(L, in, out, ld, rows_pad);
      break;
    case kGelu:
      hidden_layer<S, MR, NV, kGelu>(L, in, out, ld, rows_pad);
      break;
    default:
      hidden_layer<S, MR, NV, kIdentity>(L, in, out, ld, rows_pad);
  }
}

// Output layer with the fused epilogue. `out` points at row 0 of the block in
// the caller's [n, D] array; only rows < rows and columns < D are written.
template <class S, int MR, int NV, bool GAUSS, bool NOISE>
SVAE_INLINE void output_layer(const PackedNet& net, const PackedLayer& L, const float* in,
                              int64_t ld, int64_t rows, int64_t rows_pad, const float* eps,
                              int64_t eps_ld, const float* mean_j, float* out) {
  constexpr int W = S::W, NP = NV * W;
  constexpr int NM = GAUSS ? NV / 2 : NV;  // vectors of means per panel
  const int64_t D = net.out_dim;
  const typename S::V lo = S::set1(net.ls_min), hi = S::set1(net.ls_max);
  for (int64_t p = 0; p < L.panels; ++p) {
    const float* P = L.w.data() + p * L.k * NP;
    typename S::V bias[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) bias[v] = S::load(L.bias.data() + p * NP + v * W);
    for (int64_t r0 = 0; r0 < rows_pad; r0 += MR) {
      typename S::V acc[MR][NV];
      micro<S, MR, NV>(in + r0 * ld, ld, P, L.k, acc);
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {
        const int64_t row = r0 + r;
        if (row >= rows) break;
#pragma GCC unroll 8
        for (int v = 0; v < NM; ++v) {
          const int64_t j0 = p * (NM * W) + v * W;
          if (j0 >= D) break;
          typename S::V x = S::add(acc[r][v], bias[v]);
          if (GAUSS && NOISE) {
            typename S::V ls = S::add(acc[r][v + NM], bias[v + NM]);
            ls = S::min(S::max(ls, lo), hi);
            x = S::fma(poly::exp<S>(ls), S::load(eps + row * eps_ld + j0), x);
          }
          const typename S::V y = S::fma(x, S::load(net.std_j.data() + j0), S::load(mean_j + j0));
          if (j0 + W <= D)
            S::store(out + row * D + j0, y);
          else
            S::store_n(out + row * D + j0, y, static_cast<int>(D - j0));
        }
      }
    }
  }
}

// The factor model's last layer: out[r, :] = in[r, :] @ W + b, packed plain
// (channel blocks [mean | ls | B_1 .. B_k] of D columns each), into a buffer
// of row stride ld_out.
template <class S, int MR, int NV>
SVAE_INLINE void plain_layer(const PackedLayer& L, const float* in, int64_t ld_in, float* out,
                             int64_t ld_out, int64_t rows_pad) {
  constexpr int W = S::W, NP = NV * W;
  for (int64_t p = 0; p < L.panels; ++p) {
    const float* P = L.w.data() + p * L.k * NP;
    typename S::V bias[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) bias[v] = S::load(L.bias.data() + p * NP + v * W);
    for (int64_t r0 = 0; r0 < rows_pad; r0 += MR) {
      typename S::V acc[MR][NV];
      micro<S, MR, NV>(in + r0 * ld_in, ld_in, P, L.k, acc);
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v)
          S::store(out + (r0 + r) * ld_out + p * NP + v * W, S::add(acc[r][v], bias[v]));
    }
  }
}

// The factor epilogue of one row: o = the row's last-layer outputs, e its
// eps [D] (noise only), fx the factors spread over elements, [k][dp] (fx[c *
// dp + t * A + a] = f[t * k + c]). acc = mean; acc = fma(B_c, f_c, acc) for
// c = 0..k-1; x = fma(exp(ls), eps, acc); then unscaled and stored.
template <class S>
SVAE_INLINE void factor_row(const PackedNet& net, const float* o, const float* e, const float* fx,
                            int64_t dp, const float* mean_j, bool noise, float* y) {
  constexpr int W = S::W;
  const int64_t D = net.out_dim, K = net.factors;
  const typename S::V lo = S::set1(net.ls_min), hi = S::set1(net.ls_max);
  const typename S::V blo = S::set1(-net.loading_max), bhi = S::set1(net.loading_max);
  for (int64_t j0 = 0; j0 < D; j0 += W) {
    typename S::V x = S::load(o + j0);
    if (noise) {
      for (int64_t c = 0; c < K; ++c) {
        const typename S::V b = S::min(S::max(S::load(o + (2 + c) * D + j0), blo), bhi);
        x = S::fma(b, S::load(fx + c * dp + j0), x);
      }
      const typename S::V ls = S::min(S::max(S::load(o + D + j0), lo), hi);
      x = S::fma(poly::exp<S>(ls), S::load(e + j0), x);
    }
    const typename S::V v = S::fma(x, S::load(net.std_j.data() + j0), S::load(mean_j + j0));
    if (j0 + W <= D)
      S::store(y + j0, v);
    else
      S::store_n(y + j0, v, static_cast<int>(D - j0));
  }
}

template <class S, int MR, int NV, int kIsa>
void decode_rows(const PackedNet& net, const DecodeArgs& a, int64_t r0, int64_t r1) {
  constexpr int W = S::W;
  constexpr int64_t MB = 8 * MR;  // rows per block
  const int64_t ld = net.width;
  const int64_t D = net.out_dim;
  const int64_t eps_ld = round_up<int64_t>(D, W);
  const bool gauss = net.gaussian;
  const bool noise = gauss && a.noise;
  std::vector<float> buf_a(static_cast<size_t>(MB * ld), 0.0f);
  std::vector<float> buf_b(static_cast<size_t>(MB * ld), 0.0f);
  std::vector<float> eps(noise ? static_cast<size_t>(MB * eps_ld) : 0, 0.0f);
  // unscaling mean per element, with the drift shift folded in
  std::vector<float> mean_j(net.mean_j);
  if (a.shift)
    for (int64_t j = 0; j < D; ++j) mean_j[j] += a.shift[j % net.assets];
  const tile::LaneMap zmap(net.latent), emap(D);
  // the factor model (K > 0): the last layer's outputs, f [MB, T K], f spread
  // over the elements [K][eps_ld]
  const int64_t K = net.factors, A = net.assets, T = D / A, TK = T * K;
  std::vector<float> obuf(K > 0 ? static_cast<size_t>(MB * net.out_ld + W) : 0, 0.0f);
  std::vector<float> fbuf(K > 0 && noise ? static_cast<size_t>(MB * TK) : 0, 0.0f);
  std::vector<float> fx(K > 0 && noise ? static_cast<size_t>(K * eps_ld) : 0, 0.0f);
  const tile::LaneMap fmap(K > 0 ? TK : 1);
  for (int64_t blk = r0; blk < r1; blk += MB) {
    const int64_t rows = std::min<int64_t>(MB, r1 - blk);
    const int64_t rows_pad = round_up<int64_t>(rows, MR);
    float* in = buf_a.data();
    float* nxt = buf_b.data();
    if (a.z) {
      for (int64_t r = 0; r < rows; ++r)
        std::copy(a.z + (blk + r) * net.latent, a.z + (blk + r + 1) * net.latent, in + r * ld);
    } else {
      tile::sample_dispatch_into<kIsa>(a.sampler, zmap, blk, blk + rows, in, ld);
    }
    if (noise) tile::normals_into<kIsa>(emap, D, a.seed, kTagObservation, a.offset, blk, blk + rows,
                                        eps.data(), eps_ld);
    const size_t n_layers = net.layers.size();
    for (size_t l = 0; l + 1 < n_layers; ++l) {
      hidden_dispatch<S, MR, NV>(net.layers[l], in, nxt, ld, rows_pad);
      std::swap(in, nxt);
    }
    float* out = a.out + blk * D;
    const PackedLayer& last = net.layers.back();
    if (K > 0) {
      plain_layer<S, MR, NV>(last, in, ld, obuf.data(), net.out_ld, rows_pad);
      if (noise)
        tile::normals_into<kIsa>(fmap, TK, a.seed, kTagFactor, a.offset, blk, blk + rows,
                                 fbuf.data(), TK);
      for (int64_t r = 0; r < rows; ++r) {
        if (noise) {
          const float* f = fbuf.data() + r * TK;
          for (int64_t c = 0; c < K; ++c)
            for (int64_t t = 0; t < T; ++t) {
              const float v = f[t * K + c];
              float* dst = fx.data() + c * eps_ld + t * A;
              for (int64_t s = 0; s < A; ++s) dst[s] = v;
            }
        }
        factor_row<S>(net, obuf.data() + r * net.out_ld, noise ? eps.data() + r * eps_ld : nullptr,
                      fx.data(), eps_ld, mean_j.data(), noise, out + r * D);
      }
    } else if (gauss && noise)
      output_layer<S, MR, NV, true, true>(net, last, in, ld, rows, rows_pad, eps.data(), eps_ld,
                                          mean_j.data(), out);
    else if (gauss)
      output_layer<S, MR, NV, true, false>(net, last, in, ld, rows, rows_pad, nullptr, 0,
                                           mean_j.data(), out);
    else
      output_layer<S, MR, NV, false, false>(net, last, in, ld, rows, rows_pad, nullptr, 0,
                                            mean_j.data(), out);
    if (a.demean || a.cumulative) {
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t s = 0; s < A; ++s)
          demean_cumsum(out + r * D + s, T, A, a.demean, a.cumulative);
    }
  }
}

}  // namespace decode_impl
}  // namespace svae

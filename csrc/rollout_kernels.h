// The rollout worker, written once over SIMD traits S (simd.h) and compiled
// per ISA in kernels_<isa>.cpp after its `#pragma GCC target`, like the
// decode worker. Include only from those files, after simd.h.
//
// Per block of MB rows, everything in cache: z [MB, L], gz = z @ Wz + b
// [MB, 3hp], h and the next h [MB, hp], the inputs (x, |x|) [MB, 2A], the
// head outputs [MB, op]. Per day: the recurrent product h @ Wh in register
// tiles of MR rows x the three gate vectors of W units, the gates applied in
// registers as the tile finishes; then the head, the noise and the output
// of the day. Every row goes through the same instructions wherever it sits
// in a block, so results do not depend on chunk sizes or thread counts.

#include "epilogue.h"
#include "microkernel.h"
#include "poly.h"
#include "rollout.h"
#include "tile.h"

namespace svae {
namespace rollout_impl {

using simd::micro;

// out[r, p*NP + v*W ..] = (act)(in[r, :] @ P_p + bias) over all panels.
template <class S, int MR, int NV, bool TANH>
SVAE_INLINE void dense(const float* in, int64_t ld_in, int64_t K, const float* P, const float* bias,
                       int64_t panels, float* out, int64_t ld_out, int64_t rows_pad) {
  constexpr int W = S::W, NP = NV * W;
  for (int64_t p = 0; p < panels; ++p) {
    for (int64_t r0 = 0; r0 < rows_pad; r0 += MR) {
      typename S::V acc[MR][NV];
      micro<S, MR, NV>(in + r0 * ld_in, ld_in, P + p * K * NP, K, acc);
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) {
          typename S::V y = S::add(acc[r][v], S::load(bias + p * NP + v * W));
          if (TANH) y = poly::tanh<S>(y);
          S::store(out + (r0 + r) * ld_out + p * NP + v * W, y);
        }
    }
  }
}

template <class S, int MR, int kIsa>
void rollout_rows(const PackedGru& net, const RolloutArgs& a, int64_t r0, int64_t r1) {
  constexpr int W = S::W;
  using V = typename S::V;
  constexpr int64_t MB = 8 * MR;
  const int64_t L = net.latent, HP = net.hp, A = net.assets, G = net.panels * 3 * W;
  const int64_t T = a.horizon, OP = net.op;
  std::vector<float> zb(MB * L, 0.0f), gz(MB * G, 0.0f), h(MB * HP, 0.0f), hn(MB * HP, 0.0f);
  std::vector<float> xin(MB * 2 * A, 0.0f), ob(MB * OP, 0.0f), eps(MB * A, 0.0f),
      eta(MB * L, 0.0f);
  std::vector<double> cum(MB * A, 0.0);
  std::vector<float> mean_a(net.mean);
  if (a.shift)
    for (int64_t s = 0; s < A; ++s) mean_a[s] += a.shift[s];
  const bool drift = a.phi < 1.0f;
  const float phi = a.phi;
  const float c = static_cast<float>(std::sqrt(std::max(0.0, 1.0 - double(phi) * double(phi))));
  const bool cum_inline = a.cumulative && !a.demean;
  const int64_t K = net.factors;  // k > 0: the factor model
  std::vector<float> fb(K > 0 ? MB * K : 0, 0.0f);
  const float bmax = net.loading_max;
  const tile::LaneMap zmap(L), amap(A), fmap(K > 0 ? K : 1);
  for (int64_t blk = r0; blk < r1; blk += MB) {
    const int64_t rows = std::min<int64_t>(MB, r1 - blk);
    const int64_t rows_pad = round_up<int64_t>(rows, MR);
    if (a.z) {
      for (int64_t r = 0; r < rows; ++r)
        std::copy(a.z + (blk + r) * L, a.z + (blk + r + 1) * L, zb.data() + r * L);
    } else {
      tile::sample_dispatch_into<kIsa>(a.sampler, zmap, blk, blk + rows, zb.data(), L);
    }
    // h_0 = tanh(z W0 + b0); gz = z Wz + b
    dense<S, MR, 1, true>(zb.data(), L, L, net.w0.data(), net.b0.data(), net.panels, h.data(), HP,
                          rows_pad);
    dense<S, MR, 3, false>(zb.data(), L, L, net.wz.data(), net.bi.data(), net.panels, gz.data(), G,
                           rows_pad);
    std::fill(xin.begin(), xin.end(), 0.0f);
    std::fill(cum.begin(), cum.end(), 0.0);
    for (int64_t t = 0; t < T; ++t) {
      if (a.noise)
        tile::normals_into<kIsa>(amap, A, a.seed, kTagStep + static_cast<uint32_t>(t), a.offset,
                                 blk, blk + rows, eps.data(), A);
      // the recurrent product and the gates, panel by panel
      for (int64_t p = 0; p < net.panels; ++p) {
        const float* P = net.wh.data() + p * HP * 3 * W;
        const V bhn = S::load(net.bhn.data() + p * W);
        for (int64_t q0 = 0; q0 < rows_pad; q0 += MR) {
          V acc[MR][3];
          micro<S, MR, 3>(h.data() + q0 * HP, HP, P, HP, acc);
#pragma GCC unroll 16
          for (int r = 0; r < MR; ++r) {
            const int64_t row = q0 + r;
            const float* g = gz.data() + row * G + p * 3 * W;
            V ir = S::load(g), iu = S::load(g + W), in = S::load(g + 2 * W);
            const float* xr = xin.data() + row * 2 * A;
            for (int64_t k = 0; k < 2 * A; ++k) {
              const V xv = S::set1(xr[k]);
              const float* wx = net.wx.data() + k * G + p * 3 * W;
              ir = S::fma(xv, S::load(wx), ir);
              iu = S::fma(xv, S::load(wx + W), iu);
              in = S::fma(xv, S::load(wx + 2 * W), in);
            }
            const V rg = poly::sigmoid<S>(S::add(ir, acc[r][0]));
            const V ug = poly::sigmoid<S>(S::add(iu, acc[r][1]));
            const V ng = poly::tanh<S>(S::fma(rg, S::add(acc[r][2], bhn), in));
            const V hold = S::load(h.data() + row * HP + p * W);
            S::store(hn.data() + row * HP + p * W, S::fma(ug, S::sub(hold, ng), ng));
          }
        }
      }
      std::swap(h, hn);
      // head: means and raw log-scales
      dense<S, MR, 1, false>(h.data(), HP, HP, net.wo.data(), net.bo.data(), OP / W, ob.data(), OP,
                             rows_pad);
      if (K > 0 && a.noise)
        tile::normals_into<kIsa>(fmap, K, a.seed, kTagFactorStep + static_cast<uint32_t>(t),
                                 a.offset, blk, blk + rows, fb.data(), K);
      for (int64_t r = 0; r < rows; ++r) {
        const float* o = ob.data() + r * OP;
        float* xr = xin.data() + r * 2 * A;
        float* y = a.out + ((blk + r) * T + t) * A;
        for (int64_t s = 0; s < A; ++s) {
          float ls = std::min(std::max(o[A + s], net.ls_min), net.ls_max);
          float x = o[s];
          if (a.noise) {
            for (int64_t j = 0; j < K; ++j) {
              const float b = std::min(std::max(o[(2 + j) * A + s], -bmax), bmax);
              x = fma_rn(b, fb[r * K + j], x);
            }
            x = fma_rn(exp_poly(ls), eps[r * A + s], x);
          }
          xr[s] = x;
          xr[A + s] = std::fabs(x);
          const float v = fma_rn(x, net.std[s], mean_a[s]);
          if (cum_inline) {
            cum[r * A + s] += v;
            y[s] = static_cast<float>(cum[r * A + s]);
          } else {
            y[s] = v;
          }
        }
      }
      if (drift && t + 1 < T) {
        tile::normals_into<kIsa>(zmap, L, a.seed, kTagDrift + static_cast<uint32_t>(t), a.offset,
                                 blk, blk + rows, eta.data(), L);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t j = 0; j < L; ++j)
            zb[r * L + j] = fma_rn(c, eta[r * L + j], mul_rn(phi, zb[r * L + j]));
        dense<S, MR, 3, false>(zb.data(), L, L, net.wz.data(), net.bi.data(), net.panels,
                               gz.data(), G, rows_pad);
      }
    }
    if (a.demean)  // else the cumulative sum is made inline, day by day
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t s = 0; s < A; ++s)
          demean_cumsum(a.out + (blk + r) * T * A + s, T, A, true, a.cumulative);
  }
}

}  // namespace rollout_impl
}  // namespace svae

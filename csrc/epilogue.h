// The epilogue over days that the decode and the rollout share, on the CPU
// and on CUDA: one (path, asset) column y[0], y[A], .., y[(T - 1) A] of a
// finished path loses its mean over days (the drift "zero") and / or becomes
// its cumulative sum (log prices), both summed in double.
#pragma once

#include <cstdint>

#include "poly.h"

namespace svae {

SVAE_HD void demean_cumsum(float* y, int64_t T, int64_t A, bool demean, bool cumulative) {
  if (demean) {
    double m = 0.0;
    for (int64_t t = 0; t < T; ++t) m += y[t * A];
    const float mf = static_cast<float>(m / static_cast<double>(T));
    for (int64_t t = 0; t < T; ++t) y[t * A] = sub_rn(y[t * A], mf);
  }
  if (cumulative) {
    double c = 0.0;
    for (int64_t t = 0; t < T; ++t) {
      c += y[t * A];
      y[t * A] = static_cast<float>(c);
    }
  }
}

}  // namespace svae

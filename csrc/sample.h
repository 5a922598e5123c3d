// Fused reparameterized sampling, CPU:
//   z[i, :] = mu[r(i)] + exp(0.5 * logvar[r(i)]) * scale * eps(seed, tag, offset + i)
// where r(i) = 0 (broadcast: the prior), i (one row per output row) or
// index[i] (a table of K anchors). eps is made in registers / L1 and never
// written out; the stream of scenario i depends on (seed, tag, offset + i) only.
#pragma once

#include <cstdint>

namespace svae {

enum class RowMode : int { Broadcast = 0, PerRow = 1, Table = 2 };

// Instruction-set level of the CPU kernels. Every level gives bit-identical
// results (all float ops are explicit single IEEE operations); they differ in
// speed only. Auto picks the best the CPU supports.
enum class Isa : int { Auto = 0, Baseline = 1, Avx2 = 2, Avx512 = 3 };

struct SampleArgs {
  float* z;               // [n, d] out
  const float* mu;        // [1, d] | [n, d] | [k, d]
  const float* logvar;    // same shape as mu
  const int64_t* index;   // [n] rows of the table (Table mode), else nullptr
  int64_t n = 0;          // output rows
  int64_t d = 0;          // latent width
  int64_t k = 0;          // rows of mu / logvar
  RowMode mode = RowMode::Broadcast;
  uint64_t seed = 0;
  uint64_t offset = 0;    // scenario index of output row 0
  float scale = 1.0f;     // multiplies the posterior std
  uint32_t tag = 0;       // Philox stream tag
};

// Checks sizes, modes and index values; throws std::invalid_argument. The
// z buffer is not checked (the decoder draws into its own buffers).
void validate_sample_args(const SampleArgs& args);

// Checks sizes and index values (throws std::invalid_argument), then fills z
// with `num_threads` threads over row blocks (<= 0: all hardware threads).
void sample_cpu(const SampleArgs& args, int num_threads, Isa isa);

// Standard normals only: eps[i, j] for scenarios offset .. offset + n - 1,
// elements 0 .. d - 1 (the numbers the sampler uses, for tests and for the
// decoder's observation noise).
void normals_cpu(float* out, int64_t n, int64_t d, uint64_t seed, uint32_t tag, uint64_t offset,
                 int num_threads, Isa isa);

Isa best_isa();
Isa resolve_isa(Isa requested);  // throws if the CPU lacks the requested level
const char* isa_name(Isa isa);

// The entry point of level `isa` among an op's per-ISA entry points: the one
// switch over levels (a resolved level: Auto is not expected here).
template <class Fn>
Fn for_isa(Isa isa, Fn avx512, Fn avx2, Fn baseline) {
  switch (isa) {
    case Isa::Avx512:
      return avx512;
    case Isa::Avx2:
      return avx2;
    default:
      return baseline;
  }
}

}  // namespace svae

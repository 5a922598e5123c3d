// Fused reparameterized sampling on CUDA: the contract of ../sample.h with
// raw device pointers and the caller's stream. This header has no CUDA or
// torch types so that bindings_cuda.cpp builds with the host compiler alone.
#pragma once

#include <cstdint>
#include <string>

namespace svae {
namespace cuda {

// z [n, d], mu / logvar [k, d], index [n] (mode 2) or null: device pointers.
// stream is a cudaStream_t (0 = legacy default). Throws std::runtime_error
// on any CUDA error, naming the call.
void sample(float* z, const float* mu, const float* logvar, const int64_t* index, int64_t n,
            int64_t d, int64_t k, int mode, uint64_t seed, uint64_t offset, float scale,
            uint32_t tag, void* stream);

// Standard normals of scenarios offset .. offset + n - 1 into out [n, d].
void normals(float* out, int64_t n, int64_t d, uint64_t seed, uint32_t tag, uint64_t offset,
             void* stream);

// Devices usable by this module's CUDA runtime; 0 (and a reason in `why`)
// when there is no driver or no device. Never throws.
int device_count(std::string* why);
std::string device_name(int device);
int runtime_version();
int driver_version();
void synchronize(void* stream);

}  // namespace cuda
}  // namespace svae

// stressvae._core: the CPU native core. numpy buffers in, nothing converted
// or copied behind the caller's back (noconvert), the GIL released during
// work. stressvae/native.py validates every input before it calls here; the
// checks below are a second line so that C++ never reads past a buffer.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <stdexcept>
#include <string>

#include "parallel.h"
#include "philox.h"
#include "sample.h"

namespace py = pybind11;

namespace {

using FArray = py::array_t<float, py::array::c_style>;
using I64Array = py::array_t<int64_t, py::array::c_style>;
using U32Array = py::array_t<uint32_t, py::array::c_style>;

std::atomic<uint64_t> g_sample_calls{0}, g_sample_rows{0}, g_normals_calls{0}, g_normals_rows{0};

void require(bool ok, const std::string& msg) {
  if (!ok) throw std::invalid_argument(msg);
}

svae::Isa isa_from(const std::string& name) {
  if (name == "auto") return svae::Isa::Auto;
  if (name == "baseline") return svae::Isa::Baseline;
  if (name == "avx2") return svae::Isa::Avx2;
  if (name == "avx512") return svae::Isa::Avx512;
  throw std::invalid_argument("isa must be one of auto, baseline, avx2, avx512; got '" + name + "'");
}

void sample(FArray z, FArray mu, FArray logvar, I64Array index, int mode, uint64_t seed,
            uint64_t offset, float scale, uint32_t tag, int num_threads, const std::string& isa) {
  require(z.ndim() == 2, "z must be 2-D");
  require(mu.ndim() == 2 && logvar.ndim() == 2, "mu and logvar must be 2-D");
  require(z.writeable(), "z must be writeable");
  svae::SampleArgs a;
  a.n = z.shape(0);
  a.d = z.shape(1);
  a.k = mu.shape(0);
  require(mu.shape(1) == a.d, "mu must have as many columns as z");
  require(logvar.shape(0) == a.k && logvar.shape(1) == a.d, "logvar must have mu's shape");
  require(mode >= 0 && mode <= 2, "mode must be 0 (broadcast), 1 (per row) or 2 (table)");
  a.mode = static_cast<svae::RowMode>(mode);
  if (a.mode == svae::RowMode::Table) {
    require(index.ndim() == 1 && index.shape(0) == a.n, "index must be 1-D with one entry per row of z");
    a.index = index.data();
  }
  a.z = z.mutable_data();
  a.mu = mu.data();
  a.logvar = logvar.data();
  a.seed = seed;
  a.offset = offset;
  a.scale = scale;
  a.tag = tag;
  const svae::Isa level = isa_from(isa);
  {
    py::gil_scoped_release release;
    svae::sample_cpu(a, num_threads, level);
  }
  g_sample_calls.fetch_add(1);
  g_sample_rows.fetch_add(static_cast<uint64_t>(a.n));
}

void normals(FArray out, uint64_t seed, uint32_t tag, uint64_t offset, int num_threads,
             const std::string& isa) {
  require(out.ndim() == 2, "out must be 2-D");
  require(out.writeable(), "out must be writeable");
  const int64_t n = out.shape(0), d = out.shape(1);
  require(d > 0, "out must have at least one column");
  const svae::Isa level = isa_from(isa);
  float* p = out.mutable_data();
  {
    py::gil_scoped_release release;
    svae::normals_cpu(p, n, d, seed, tag, offset, num_threads, level);
  }
  g_normals_calls.fetch_add(1);
  g_normals_rows.fetch_add(static_cast<uint64_t>(n));
}

// True when no element is NaN or inf: a threaded, vectorized scan of the
// exponent bits (validation helper for stressvae/native.py).
bool all_finite(FArray x, int num_threads) {
  const uint32_t* bits = reinterpret_cast<const uint32_t*>(x.data());
  const int64_t n = x.size();
  constexpr int64_t kChunk = 1 << 16;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::atomic<bool> bad{false};
  {
    py::gil_scoped_release release;
    svae::parallel_rows(chunks, num_threads, 16, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1 && !bad.load(std::memory_order_relaxed); ++c) {
        const int64_t lo = c * kChunk, hi = std::min(n, lo + kChunk);
        uint32_t any = 0;
        for (int64_t i = lo; i < hi; ++i) any |= ((bits[i] & 0x7F800000u) == 0x7F800000u);
        if (any) bad.store(true, std::memory_order_relaxed);
      }
    });
  }
  return !bad.load();
}

// Test hooks: the building blocks, element-wise, so that tests can hold them
// against known answers and against the numpy twin.
std::array<uint32_t, 4> philox(std::array<uint32_t, 4> ctr, std::array<uint32_t, 2> key) {
  const svae::U32x4 r = svae::philox4x32_10(svae::U32x4{ctr[0], ctr[1], ctr[2], ctr[3]}, key[0], key[1]);
  return {r.v0, r.v1, r.v2, r.v3};
}

FArray uniform_of(U32Array bits) {
  FArray out(bits.request().shape);
  const uint32_t* b = bits.data();
  float* o = out.mutable_data();
  for (py::ssize_t i = 0; i < bits.size(); ++i) o[i] = svae::uniform_open(b[i]);
  return out;
}

FArray math_poly(const std::string& fn, FArray x) {
  FArray out(x.request().shape);
  const float* xi = x.data();
  float* o = out.mutable_data();
  const py::ssize_t n = x.size();
  if (fn == "log") {
    for (py::ssize_t i = 0; i < n; ++i) {
      require(xi[i] > 1.17549435e-38f && xi[i] < 3.4e38f, "log: x must be a positive normal float");
      o[i] = svae::log_poly(xi[i]);
    }
  } else if (fn == "exp") {
    for (py::ssize_t i = 0; i < n; ++i) o[i] = svae::exp_poly(xi[i]);
  } else if (fn == "cos2pi" || fn == "sin2pi") {
    const bool want_cos = fn == "cos2pi";
    for (py::ssize_t i = 0; i < n; ++i) {
      require(xi[i] >= 0.0f && xi[i] <= 1.0f, "sincos: x must be in [0, 1]");
      float c, s;
      svae::sincos_2pi_poly(xi[i], &c, &s);
      o[i] = want_cos ? c : s;
    }
  } else {
    throw std::invalid_argument("fn must be log, exp, cos2pi or sin2pi");
  }
  return out;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "stressvae native CPU core: Philox4x32-10 and fused reparameterized sampling";

  m.def("sample", &sample, py::arg("z").noconvert(), py::arg("mu").noconvert(),
        py::arg("logvar").noconvert(), py::arg("index").noconvert(), py::arg("mode"),
        py::arg("seed"), py::arg("offset"), py::arg("scale"), py::arg("tag"),
        py::arg("num_threads"), py::arg("isa"),
        "z[i] = mu[r(i)] + exp(logvar[r(i)] / 2) * scale * eps(seed, tag, offset + i); "
        "r(i) = 0, i or index[i] for mode 0, 1, 2. Fills z [n, d] in place.");
  m.def("normals", &normals, py::arg("out").noconvert(), py::arg("seed"), py::arg("tag"),
        py::arg("offset"), py::arg("num_threads"), py::arg("isa"),
        "Fills out [n, d] with the standard normals of scenarios offset .. offset + n - 1.");
  m.def("all_finite", &all_finite, py::arg("x").noconvert(), py::arg("num_threads"),
        "True when x has no NaN or inf (threaded scan).");
  m.def("philox4x32_10", &philox, py::arg("counter"), py::arg("key"),
        "One Philox4x32-10 block: 4 counter words, 2 key words -> 4 words.");
  m.def("uniform", &uniform_of, py::arg("bits").noconvert(),
        "uint32 words -> uniforms in (0, 1): ((u >> 8) | 1) * 2^-24.");
  m.def("math_poly", &math_poly, py::arg("fn"), py::arg("x").noconvert(),
        "The sampler's own log / exp / cos2pi / sin2pi, element-wise (for tests).");
  m.def("best_isa", [] { return std::string(svae::isa_name(svae::best_isa())); });
  m.def("hardware_threads", &svae::hardware_threads);
  m.def("counters", [] {
    py::dict d;
    d["sample_cpu_calls"] = g_sample_calls.load();
    d["sample_cpu_rows"] = g_sample_rows.load();
    d["normals_cpu_calls"] = g_normals_calls.load();
    d["normals_cpu_rows"] = g_normals_rows.load();
    return d;
  });
  m.attr("TAG_LATENT") = svae::kTagLatent;
  m.attr("TAG_OBSERVATION") = svae::kTagObservation;
}

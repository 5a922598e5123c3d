// stressvae._core: the CPU native core. numpy buffers in, nothing converted
// or copied behind the caller's back (noconvert), the GIL released during
// work. stressvae/native.py validates every input before it calls here; the
// checks below are a second line so that C++ never reads past a buffer.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <memory>
#include <vector>
#include <atomic>
#include <stdexcept>
#include <string>

#include "decode.h"
#include "parallel.h"
#include "philox.h"
#include "py_weights.h"
#include "rollout.h"
#include "sample.h"

namespace py = pybind11;

namespace {

using svae::py_weights::FArray;
using svae::py_weights::require;
using I64Array = py::array_t<int64_t, py::array::c_style>;
using U32Array = py::array_t<uint32_t, py::array::c_style>;

std::atomic<uint64_t> g_sample_calls{0}, g_sample_rows{0}, g_normals_calls{0}, g_normals_rows{0};
std::atomic<uint64_t> g_decode_calls{0}, g_decode_rows{0}, g_fused_calls{0}, g_fused_rows{0};
std::atomic<uint64_t> g_rollout_calls{0}, g_rollout_rows{0};

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


// ------------------------------------------------------------------ decoder
struct Decoder {
  svae::PackedNet net;
};

std::unique_ptr<Decoder> make_decoder(const py::list& layers, bool gaussian, int64_t out_dim,
                                      int64_t assets, FArray scaler_mean, FArray scaler_std,
                                      float ls_min, float ls_max, const std::string& isa,
                                      int64_t factors, float loading_max) {
  std::vector<FArray> keep;  // hold references while packing
  const std::vector<svae::LayerWeights> ws = svae::py_weights::mlp_layers(layers, keep);
  require(scaler_mean.ndim() == 1 && scaler_mean.shape(0) == assets &&
              scaler_std.ndim() == 1 && scaler_std.shape(0) == assets,
          "scaler mean and std must be [assets]");
  auto d = std::make_unique<Decoder>();
  d->net = svae::pack_net(ws, gaussian, out_dim, assets, scaler_mean.data(), scaler_std.data(),
                          ls_min, ls_max, isa_from(isa), factors, loading_max);
  return d;
}

void check_out(const FArray& out, int64_t n, int64_t D) {
  require(out.writeable(), "out must be writeable");
  require(out.ndim() == 2 && out.shape(0) == n && out.shape(1) == D, "out must be [n, window * assets]");
}

const float* shift_ptr(const py::object& shift, int64_t assets, FArray& keep) {
  if (shift.is_none()) return nullptr;
  keep = shift.cast<FArray>();
  require(keep.ndim() == 1 && keep.shape(0) == assets, "shift must be [assets]");
  return keep.data();
}

// The fused latent draw of a decode or rollout call (tag kTagLatent): z of
// row i from mu / logvar row 0, i or index[i] (mode 0, 1, 2).
svae::SampleArgs latent_sampler(const FArray& mu, const FArray& logvar, const I64Array& index,
                                int mode, int64_t n, int64_t latent, uint64_t seed,
                                uint64_t offset, float scale) {
  require(mu.ndim() == 2 && logvar.ndim() == 2 && mu.shape(1) == latent &&
              logvar.shape(0) == mu.shape(0) && logvar.shape(1) == latent,
          "mu and logvar must be [k, latent]");
  require(mode >= 0 && mode <= 2, "mode must be 0, 1 or 2");
  svae::SampleArgs s;
  s.n = n;
  s.d = latent;
  s.k = mu.shape(0);
  s.mode = static_cast<svae::RowMode>(mode);
  s.mu = mu.data();
  s.logvar = logvar.data();
  if (mode == 2) {
    require(index.ndim() == 1 && index.shape(0) == n, "index must be [n]");
    s.index = index.data();
  }
  s.seed = seed;
  s.offset = offset;
  s.scale = scale;
  s.tag = svae::kTagLatent;
  return s;
}

// Runs the decode of `a` (its latent source set) into out [n, D], GIL released.
void run_decode(Decoder& d, svae::DecodeArgs a, FArray& out, int64_t n, uint64_t seed,
                uint64_t offset, bool noise, bool demean, bool cumulative,
                const py::object& shift, int num_threads) {
  check_out(out, n, d.net.out_dim);
  FArray shift_keep;
  a.out = out.mutable_data();
  a.n = n;
  a.seed = seed;
  a.offset = offset;
  a.noise = noise;
  a.demean = demean;
  a.cumulative = cumulative;
  a.shift = shift_ptr(shift, d.net.assets, shift_keep);
  py::gil_scoped_release release;
  svae::decode_cpu(d.net, a, num_threads);
}

void decoder_decode(Decoder& d, FArray out, FArray z, uint64_t seed, uint64_t offset, bool noise,
                    bool demean, bool cumulative, const py::object& shift, int num_threads) {
  require(z.ndim() == 2 && z.shape(1) == d.net.latent, "z must be [n, latent]");
  const int64_t n = z.shape(0);
  svae::DecodeArgs a;
  a.z = z.data();
  run_decode(d, a, out, n, seed, offset, noise, demean, cumulative, shift, num_threads);
  g_decode_calls.fetch_add(1);
  g_decode_rows.fetch_add(static_cast<uint64_t>(n));
}

void decoder_sample(Decoder& d, FArray out, FArray mu, FArray logvar, I64Array index, int mode,
                    int64_t n, uint64_t seed, uint64_t offset, float scale, bool noise, bool demean,
                    bool cumulative, const py::object& shift, int num_threads) {
  svae::DecodeArgs a;
  a.sampler = latent_sampler(mu, logvar, index, mode, n, d.net.latent, seed, offset, scale);
  run_decode(d, a, out, n, seed, offset, noise, demean, cumulative, shift, num_threads);
  g_fused_calls.fetch_add(1);
  g_fused_rows.fetch_add(static_cast<uint64_t>(n));
}

// ------------------------------------------------------------------ rollout
struct Rollout {
  svae::PackedGru net;
};

std::unique_ptr<Rollout> make_rollout(FArray w0, FArray b0, FArray w_x, FArray w_z, FArray b_i,
                                      FArray w_h, FArray b_h, FArray w_o, FArray b_o,
                                      FArray scaler_mean, FArray scaler_std, float ls_min,
                                      float ls_max, const std::string& isa, int64_t factors,
                                      float loading_max) {
  const svae::GruWeights g =
      svae::py_weights::gru_weights(w0, b0, w_x, w_z, b_i, w_h, b_h, w_o, b_o, factors);
  const int64_t A = g.assets;
  require(scaler_mean.ndim() == 1 && scaler_mean.shape(0) == A && scaler_std.ndim() == 1 &&
              scaler_std.shape(0) == A,
          "scaler mean and std must be [assets]");
  auto r = std::make_unique<Rollout>();
  r->net = svae::pack_gru(g, scaler_mean.data(), scaler_std.data(), ls_min, ls_max, isa_from(isa),
                          loading_max);
  return r;
}

void rollout_run(Rollout& d, FArray out, const py::object& z, FArray mu, FArray logvar,
                 I64Array index, int mode, int64_t n, int64_t horizon, uint64_t seed,
                 uint64_t offset, float scale, bool noise, bool demean, bool cumulative,
                 const py::object& shift, float phi, int num_threads) {
  const int64_t A = d.net.assets, L = d.net.latent;
  require(out.writeable(), "out must be writeable");
  require(out.ndim() == 3 && out.shape(0) == n && out.shape(1) == horizon && out.shape(2) == A,
          "out must be [n, horizon, assets]");
  svae::RolloutArgs a;
  FArray shift_keep, z_keep;
  a.out = out.mutable_data();
  a.n = n;
  a.horizon = horizon;
  if (!z.is_none()) {
    z_keep = z.cast<FArray>();
    require(z_keep.ndim() == 2 && z_keep.shape(0) == n && z_keep.shape(1) == L, "z must be [n, latent]");
    a.z = z_keep.data();
  } else {
    a.sampler = latent_sampler(mu, logvar, index, mode, n, L, seed, offset, scale);
  }
  a.seed = seed;
  a.offset = offset;
  a.noise = noise;
  a.demean = demean;
  a.cumulative = cumulative;
  a.phi = phi;
  a.shift = shift_ptr(shift, A, shift_keep);
  {
    py::gil_scoped_release release;
    svae::rollout_cpu(d.net, a, num_threads);
  }
  g_rollout_calls.fetch_add(1);
  g_rollout_rows.fetch_add(static_cast<uint64_t>(n));
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
  py::class_<Decoder>(m, "Decoder",
                      "The decoder MLP packed for the CPU micro-kernels (weights copied).")
      .def(py::init(&make_decoder), py::arg("layers"), py::arg("gaussian"), py::arg("out_dim"),
           py::arg("assets"), py::arg("scaler_mean").noconvert(), py::arg("scaler_std").noconvert(),
           py::arg("ls_min"), py::arg("ls_max"), py::arg("isa"), py::arg("factors") = 0,
           py::arg("loading_max") = svae::kLoadingMax)
      .def("decode", &decoder_decode, py::arg("out").noconvert(), py::arg("z").noconvert(),
           py::arg("seed"), py::arg("offset"), py::arg("noise"), py::arg("demean"),
           py::arg("cumulative"), py::arg("shift"), py::arg("num_threads"),
           "z [n, latent] -> out [n, D]: decode, noise, unscale (and drift / cumsum).")
      .def("sample", &decoder_sample, py::arg("out").noconvert(), py::arg("mu").noconvert(),
           py::arg("logvar").noconvert(), py::arg("index").noconvert(), py::arg("mode"),
           py::arg("n"), py::arg("seed"), py::arg("offset"), py::arg("scale"), py::arg("noise"),
           py::arg("demean"), py::arg("cumulative"), py::arg("shift"), py::arg("num_threads"),
           "Fused: z drawn in-block by the sampler (never written out), then decode.")
      .def_property_readonly("isa", [](const Decoder& d) { return std::string(svae::isa_name(d.net.isa)); })
      .def_property_readonly("panel", [](const Decoder& d) { return d.net.panel; })
      .def_property_readonly("latent", [](const Decoder& d) { return d.net.latent; })
      .def_property_readonly("out_dim", [](const Decoder& d) { return d.net.out_dim; })
      .def_property_readonly("factors", [](const Decoder& d) { return d.net.factors; });
  py::class_<Rollout>(m, "Rollout",
                      "The recurrent (GRU) decoder packed for the CPU rollout (weights copied).")
      .def(py::init(&make_rollout), py::arg("w0").noconvert(), py::arg("b0").noconvert(),
           py::arg("w_x").noconvert(), py::arg("w_z").noconvert(), py::arg("b_i").noconvert(),
           py::arg("w_h").noconvert(), py::arg("b_h").noconvert(), py::arg("w_o").noconvert(),
           py::arg("b_o").noconvert(), py::arg("scaler_mean").noconvert(),
           py::arg("scaler_std").noconvert(), py::arg("ls_min"), py::arg("ls_max"),
           py::arg("isa"), py::arg("factors") = 0, py::arg("loading_max") = svae::kLoadingMax)
      .def("run", &rollout_run, py::arg("out").noconvert(), py::arg("z"),
           py::arg("mu").noconvert(), py::arg("logvar").noconvert(), py::arg("index").noconvert(),
           py::arg("mode"), py::arg("n"), py::arg("horizon"), py::arg("seed"), py::arg("offset"),
           py::arg("scale"), py::arg("noise"), py::arg("demean"), py::arg("cumulative"),
           py::arg("shift"), py::arg("phi"), py::arg("num_threads"),
           "All days of n paths: z given or drawn in-block, GRU steps, head, noise, unscale.")
      .def_property_readonly("isa", [](const Rollout& d) { return std::string(svae::isa_name(d.net.isa)); })
      .def_property_readonly("hidden_padded", [](const Rollout& d) { return d.net.hp; })
      .def_property_readonly("factors", [](const Rollout& d) { return d.net.factors; });
  m.def("best_isa", [] { return std::string(svae::isa_name(svae::best_isa())); });
  m.def("hardware_threads", &svae::hardware_threads);
  m.def("counters", [] {
    py::dict d;
    d["sample_cpu_calls"] = g_sample_calls.load();
    d["sample_cpu_rows"] = g_sample_rows.load();
    d["normals_cpu_calls"] = g_normals_calls.load();
    d["normals_cpu_rows"] = g_normals_rows.load();
    d["decode_cpu_calls"] = g_decode_calls.load();
    d["decode_cpu_rows"] = g_decode_rows.load();
    d["sample_decode_cpu_calls"] = g_fused_calls.load();
    d["sample_decode_cpu_rows"] = g_fused_rows.load();
    d["rollout_cpu_calls"] = g_rollout_calls.load();
    d["rollout_cpu_rows"] = g_rollout_rows.load();
    return d;
  });
  m.attr("TAG_LATENT") = svae::kTagLatent;
  m.attr("TAG_OBSERVATION") = svae::kTagObservation;
  m.attr("TAG_STEP") = svae::kTagStep;
  m.attr("TAG_DRIFT") = svae::kTagDrift;
  m.attr("TAG_FACTOR") = svae::kTagFactor;
  m.attr("TAG_FACTOR_STEP") = svae::kTagFactorStep;
  m.attr("LOADING_MAX") = svae::kLoadingMax;
  m.attr("MAX_HORIZON") = svae::kMaxHorizon;
}

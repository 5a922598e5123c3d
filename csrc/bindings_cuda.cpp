// stressvae._cuda: the CUDA native core. Takes raw device pointers and the
// caller's stream as integers (stressvae.native takes them from torch
// tensors after validating them); no torch or CUDA header is included here.
// The weight packers run on the host (numpy in, numpy out) and work without
// a GPU.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "cuda/decode_cuda.h"
#include "cuda/pack.h"
#include "cuda/rollout_cuda.h"
#include "cuda/sample_cuda.h"
#include "py_weights.h"

namespace py = pybind11;

namespace {

std::atomic<uint64_t> g_sample_calls{0}, g_sample_rows{0}, g_normals_calls{0}, g_normals_rows{0};
std::atomic<uint64_t> g_decode_calls{0}, g_decode_rows{0};
std::atomic<uint64_t> g_rollout_calls{0}, g_rollout_rows{0};

template <class T>
T* ptr(uintptr_t p) {
  return reinterpret_cast<T*>(p);
}

using svae::py_weights::FArray;

// A packed host buffer as a new float32 numpy array of `shape`.
FArray to_numpy(const std::vector<float>& v, std::vector<py::ssize_t> shape) {
  FArray a(shape);
  std::copy(v.begin(), v.end(), a.mutable_data());
  return a;
}

py::list pack_decoder(const py::list& layers, bool gaussian, int64_t out_dim, int64_t factors) {
  std::vector<FArray> keep;
  const auto ws = svae::py_weights::mlp_layers(layers, keep);
  const auto packed = svae::cuda::pack_decoder(ws, gaussian, out_dim, factors);
  py::list out;
  for (const auto& P : packed)
    out.append(py::make_tuple(to_numpy(P.w, {P.k, P.n_pad}), to_numpy(P.b, {P.n_pad}),
                              P.activation));
  return out;
}

py::tuple pack_rollout(const FArray& w0, const FArray& b0, const FArray& w_x, const FArray& w_z,
                       const FArray& b_i, const FArray& w_h, const FArray& b_h, const FArray& w_o,
                       const FArray& b_o, int64_t factors) {
  const svae::GruWeights g =
      svae::py_weights::gru_weights(w0, b0, w_x, w_z, b_i, w_h, b_h, w_o, b_o, factors);
  const svae::cuda::HostRollout P = svae::cuda::pack_rollout(g);
  const auto L = static_cast<py::ssize_t>(P.latent), hp = static_cast<py::ssize_t>(P.hp);
  return py::make_tuple(to_numpy(P.image, {static_cast<py::ssize_t>(P.image.size())}),
                        to_numpy(P.w0, {L, hp}), to_numpy(P.b0, {hp}),
                        to_numpy(P.wz, {L, py::ssize_t{3}, hp}));
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "stressvae native CUDA core: fused sampling, decode and GRU rollout on the GPU";

  m.def(
      "sample",
      [](uintptr_t z, uintptr_t mu, uintptr_t logvar, uintptr_t index, int64_t n, int64_t d,
         int64_t k, int mode, uint64_t seed, uint64_t offset, float scale, uint32_t tag,
         uintptr_t stream) {
        {
          py::gil_scoped_release release;
          svae::cuda::sample(ptr<float>(z), ptr<const float>(mu), ptr<const float>(logvar),
                             ptr<const int64_t>(index), n, d, k, mode, seed, offset, scale, tag,
                             ptr<void>(stream));
        }
        g_sample_calls.fetch_add(1);
        g_sample_rows.fetch_add(static_cast<uint64_t>(n));
      },
      py::arg("z"), py::arg("mu"), py::arg("logvar"), py::arg("index"), py::arg("n"), py::arg("d"),
      py::arg("k"), py::arg("mode"), py::arg("seed"), py::arg("offset"), py::arg("scale"),
      py::arg("tag"), py::arg("stream"),
      "Device pointers in; enqueues the fused sampler on `stream`.");
  m.def(
      "normals",
      [](uintptr_t out, int64_t n, int64_t d, uint64_t seed, uint32_t tag, uint64_t offset,
         uintptr_t stream) {
        {
          py::gil_scoped_release release;
          svae::cuda::normals(ptr<float>(out), n, d, seed, tag, offset, ptr<void>(stream));
        }
        g_normals_calls.fetch_add(1);
        g_normals_rows.fetch_add(static_cast<uint64_t>(n));
      },
      py::arg("out"), py::arg("n"), py::arg("d"), py::arg("seed"), py::arg("tag"),
      py::arg("offset"), py::arg("stream"));
  m.def(
      "decode",
      [](const std::vector<std::tuple<uintptr_t, uintptr_t, int, int, int>>& layers, int latent,
         int out_dim, int assets, bool gaussian, uintptr_t std_j, uintptr_t mean_j, float ls_min,
         float ls_max, int width, uintptr_t z, uintptr_t mu, uintptr_t logvar, uintptr_t index,
         int64_t k, int mode, float scale, uintptr_t out, int64_t n, uint64_t seed,
         uint64_t offset, bool noise, bool demean, bool cumulative, uintptr_t stream,
         int factors, float loading_max) {
        if (layers.empty() || layers.size() > static_cast<size_t>(svae::cuda::kMaxLayers))
          throw std::invalid_argument("cuda decode: 1 to 8 layers");
        svae::cuda::DeviceNet net{};
        for (size_t l = 0; l < layers.size(); ++l) {
          const auto& t = layers[l];
          net.layers[l] = {ptr<const float>(std::get<0>(t)), ptr<const float>(std::get<1>(t)),
                           std::get<2>(t), std::get<3>(t), std::get<4>(t)};
        }
        net.n_layers = static_cast<int>(layers.size());
        net.latent = latent;
        net.out_dim = out_dim;
        net.assets = assets;
        net.gaussian = gaussian ? 1 : 0;
        net.std_j = ptr<const float>(std_j);
        net.mean_j = ptr<const float>(mean_j);
        net.ls_min = ls_min;
        net.ls_max = ls_max;
        net.width = width;
        net.factors = factors;
        net.loading_max = loading_max;
        svae::cuda::DeviceLatent lat{ptr<const float>(z), ptr<const float>(mu),
                                     ptr<const float>(logvar), ptr<const int64_t>(index), k, mode,
                                     scale};
        {
          py::gil_scoped_release release;
          svae::cuda::decode(net, lat, ptr<float>(out), n, seed, offset, noise, demean,
                             cumulative, ptr<void>(stream));
        }
        g_decode_calls.fetch_add(1);
        g_decode_rows.fetch_add(static_cast<uint64_t>(n));
      },
      py::arg("layers"), py::arg("latent"), py::arg("out_dim"), py::arg("assets"),
      py::arg("gaussian"), py::arg("std_j"), py::arg("mean_j"), py::arg("ls_min"),
      py::arg("ls_max"), py::arg("width"), py::arg("z"), py::arg("mu"), py::arg("logvar"),
      py::arg("index"), py::arg("k"), py::arg("mode"), py::arg("scale"), py::arg("out"),
      py::arg("n"), py::arg("seed"), py::arg("offset"), py::arg("noise"), py::arg("demean"),
      py::arg("cumulative"), py::arg("stream"), py::arg("factors") = 0,
      py::arg("loading_max") = svae::kLoadingMax,
      "Fused decode on the device: raw pointers in, out [n, D] on `stream`.");
  m.def(
      "rollout",
      [](uintptr_t image, uintptr_t w0, uintptr_t b0, uintptr_t wz, uintptr_t scaler, int latent,
         int hidden, int assets, float ls_min, float ls_max, uintptr_t z, uintptr_t mu,
         uintptr_t logvar, uintptr_t index, int64_t k, int mode, float scale, uintptr_t out,
         int64_t n, int64_t horizon, uint64_t seed, uint64_t offset, bool noise, float phi,
         bool demean, bool cumulative, uintptr_t stream, int factors, float loading_max) {
        const svae::cuda::RolloutNet net{ptr<const float>(image), ptr<const float>(w0),
                                         ptr<const float>(b0),    ptr<const float>(wz),
                                         ptr<const float>(scaler), latent, hidden, assets, ls_min,
                                         ls_max, factors, loading_max};
        const svae::cuda::DeviceLatent lat{ptr<const float>(z), ptr<const float>(mu),
                                           ptr<const float>(logvar), ptr<const int64_t>(index),
                                           k, mode, scale};
        {
          py::gil_scoped_release release;
          svae::cuda::rollout(net, lat, ptr<float>(out), n, horizon, seed, offset, noise, phi,
                              demean, cumulative, ptr<void>(stream));
        }
        g_rollout_calls.fetch_add(1);
        g_rollout_rows.fetch_add(static_cast<uint64_t>(n));
      },
      py::arg("image"), py::arg("w0"), py::arg("b0"), py::arg("wz"), py::arg("scaler"),
      py::arg("latent"), py::arg("hidden"), py::arg("assets"), py::arg("ls_min"),
      py::arg("ls_max"), py::arg("z"), py::arg("mu"), py::arg("logvar"), py::arg("index"),
      py::arg("k"), py::arg("mode"), py::arg("scale"), py::arg("out"), py::arg("n"),
      py::arg("horizon"), py::arg("seed"), py::arg("offset"), py::arg("noise"), py::arg("phi"),
      py::arg("demean"), py::arg("cumulative"), py::arg("stream"), py::arg("factors") = 0,
      py::arg("loading_max") = svae::kLoadingMax,
      "Fused GRU rollout on the device: packed weights (see rollout_cuda.h), z given or "
      "drawn, out [n, horizon, assets] on `stream`.");
  m.def("pack_decoder", &pack_decoder, py::arg("layers"), py::arg("gaussian"),
        py::arg("out_dim"), py::arg("factors") = 0,
        "Host packing of the decoder for decode(): layers [(w [k, n], b [n], activation)] "
        "(float32, as the CPU Decoder takes them) -> [(w [k, n_pad], b [n_pad], activation "
        "code)], the output layer in groups of 4 means (+ 4 log-scales, + 4 loadings of each "
        "factor).");
  m.def("pack_rollout", &pack_rollout, py::arg("w0").noconvert(), py::arg("b0").noconvert(),
        py::arg("w_x").noconvert(), py::arg("w_z").noconvert(), py::arg("b_i").noconvert(),
        py::arg("w_h").noconvert(), py::arg("b_h").noconvert(), py::arg("w_o").noconvert(),
        py::arg("b_o").noconvert(), py::arg("factors") = 0,
        "Host packing of the GRU decoder for rollout() (layout: rollout_cuda.h): the CPU "
        "Rollout's arrays -> (image [image_floats], w0 [latent, hp], b0 [hp], "
        "wz [latent, 3, hp]).");
  m.def(
      "rollout_shape",
      [](int hidden, int assets, int factors) {
        const svae::cuda::RolloutShape s = svae::cuda::rollout_shape(hidden, assets, factors);
        return py::make_tuple(s.hp, s.hk, s.image_floats);
      },
      py::arg("hidden"), py::arg("assets"), py::arg("factors") = 0,
      "(hp, hk, image_floats): the padded sizes of the packed rollout weights.");
  m.def(
      "rollout_plan",
      [](int latent, int hidden, int assets, int device, int factors) {
        const svae::cuda::RolloutPlan p =
            svae::cuda::rollout_plan(latent, hidden, assets, device, factors);
        py::dict d;
        d["warps"] = p.warps;
        d["group"] = p.group;
        d["smem_min"] = p.smem_min;
        d["smem_limit"] = p.smem_limit;
        return d;
      },
      py::arg("latent"), py::arg("hidden"), py::arg("assets"), py::arg("device"),
      py::arg("factors") = 0,
      "Warps per CTA the rollout kernel gets on `device` (0: its shared memory does not fit).");
  m.def(
      "decode_plan",
      [](int width, int64_t tk, int device) {
        py::dict d;
        d["smem"] = svae::cuda::decode_smem_bytes(width, tk);
        d["smem_limit"] = svae::cuda::shared_memory_limit(device);
        return d;
      },
      py::arg("width"), py::arg("tk"), py::arg("device"),
      "Shared memory (bytes) the decode kernel needs for `width` and tk = window * factors "
      "factor normals per scenario, and what `device` allows.");
  m.attr("ROLLOUT_MAX_HIDDEN") = svae::cuda::kRolloutMaxHidden;
  m.attr("MAX_WIDTH") = svae::cuda::kMaxWidth;
  m.attr("MAX_LAYERS") = svae::cuda::kMaxLayers;
  m.def("device_count", [] {
    std::string why;
    const int n = svae::cuda::device_count(&why);
    return py::make_tuple(n, why);
  });
  m.def("device_name", &svae::cuda::device_name, py::arg("device"));
  m.def("runtime_version", &svae::cuda::runtime_version);
  m.def("driver_version", &svae::cuda::driver_version);
  m.def(
      "synchronize",
      [](uintptr_t stream) {
        py::gil_scoped_release release;
        svae::cuda::synchronize(ptr<void>(stream));
      },
      py::arg("stream"));
  m.def("counters", [] {
    py::dict d;
    d["sample_cuda_calls"] = g_sample_calls.load();
    d["sample_cuda_rows"] = g_sample_rows.load();
    d["normals_cuda_calls"] = g_normals_calls.load();
    d["normals_cuda_rows"] = g_normals_rows.load();
    d["decode_cuda_calls"] = g_decode_calls.load();
    d["decode_cuda_rows"] = g_decode_rows.load();
    d["rollout_cuda_calls"] = g_rollout_calls.load();
    d["rollout_cuda_rows"] = g_rollout_rows.load();
    return d;
  });
#ifdef SVAE_CUDA_ARCHS
  m.attr("ARCHS") = SVAE_CUDA_ARCHS;
#else
  m.attr("ARCHS") = "";
#endif
}

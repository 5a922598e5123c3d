// The decoder weights as the Python side passes them, read and checked for
// the pybind11 bindings of both modules (bindings.cpp: the CPU packers,
// bindings_cuda.cpp: the CUDA packers). stressvae.native validates first;
// these checks are the second line, so that C++ never reads past a buffer.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "decode.h"
#include "rollout.h"

namespace svae {
namespace py_weights {

namespace py = pybind11;

using FArray = py::array_t<float, py::array::c_style>;

inline void require(bool ok, const std::string& msg) {
  if (!ok) throw std::invalid_argument(msg);
}

inline int activation_code(const std::string& name) {
  if (name == "identity" || name.empty()) return kIdentity;
  if (name == "silu") return kSilu;
  if (name == "relu") return kRelu;
  if (name == "tanh") return kTanh;
  if (name == "gelu") return kGelu;
  throw std::invalid_argument("activation must be silu, relu, tanh, gelu or identity; got '" +
                              name + "'");
}

// [(w [k, n], b [n], activation name or None), ...] -> LayerWeights; `keep`
// holds the arrays while the pointers are used.
inline std::vector<LayerWeights> mlp_layers(const py::list& layers, std::vector<FArray>& keep) {
  std::vector<LayerWeights> ws;
  for (const auto& item : layers) {
    auto t = item.cast<py::tuple>();
    require(t.size() == 3, "each layer is (w [k, n], b [n], activation)");
    FArray w = t[0].cast<FArray>();
    FArray b = t[1].cast<FArray>();
    require(w.ndim() == 2 && b.ndim() == 1 && b.shape(0) == w.shape(1),
            "layer weights must be w [k, n] and b [n]");
    LayerWeights L;
    L.w = w.data();
    L.b = b.data();
    L.k = w.shape(0);
    L.n = w.shape(1);
    L.activation = activation_code(t[2].is_none() ? "" : t[2].cast<std::string>());
    ws.push_back(L);
    keep.push_back(w);
    keep.push_back(b);
  }
  return ws;
}

// The arrays of a GRU decoder (rollout.h), shapes checked against each
// other; `factors` k: the head gives (2 + k) A outputs.
inline GruWeights gru_weights(const FArray& w0, const FArray& b0, const FArray& w_x,
                              const FArray& w_z, const FArray& b_i, const FArray& w_h,
                              const FArray& b_h, const FArray& w_o, const FArray& b_o,
                              int64_t factors = 0) {
  require(w0.ndim() == 2, "w0 must be [latent, hidden]");
  require(factors >= 0 && factors <= (1 << 12), "factors must be in [0, 4096]");
  const int64_t L = w0.shape(0), H = w0.shape(1), C = 2 + factors;
  require(w_o.ndim() == 2 && w_o.shape(0) == H && w_o.shape(1) % C == 0 && w_o.shape(1) > 0,
          "w_o must be [hidden, (2 + factors) A]");
  const int64_t A = w_o.shape(1) / C;
  require(factors <= A, "factors must be <= assets");
  require(b0.ndim() == 1 && b0.shape(0) == H, "b0 must be [hidden]");
  require(w_x.ndim() == 2 && w_x.shape(0) == 2 * A && w_x.shape(1) == 3 * H, "w_x must be [2A, 3H]");
  require(w_z.ndim() == 2 && w_z.shape(0) == L && w_z.shape(1) == 3 * H, "w_z must be [latent, 3H]");
  require(w_h.ndim() == 2 && w_h.shape(0) == H && w_h.shape(1) == 3 * H, "w_h must be [H, 3H]");
  require(b_i.ndim() == 1 && b_i.shape(0) == 3 * H && b_h.ndim() == 1 && b_h.shape(0) == 3 * H,
          "b_i and b_h must be [3H]");
  require(b_o.ndim() == 1 && b_o.shape(0) == C * A, "b_o must be [(2 + factors) A]");
  return GruWeights{w0.data(),  b0.data(),  w_x.data(), w_z.data(), b_i.data(),
                    w_h.data(), b_h.data(), w_o.data(), b_o.data(), L, H, A, factors};
}

}  // namespace py_weights
}  // namespace svae

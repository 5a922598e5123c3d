"""The CUDA kernels' weight layouts, packed on the host from checked float32
arrays: :func:`pack_cuda_decoder` (csrc/cuda/decode*) and
:func:`pack_cuda_rollout` (csrc/cuda/rollout_cuda.h). The CPU kernels pack
their weights in C++ (``_core.Decoder`` / ``_core.Rollout``); these two are
the Python side of the same job for the GPU, one function per kernel, so
that a C++ packer can replace each in one place."""

from __future__ import annotations

import numpy as np

ACTIVATION_CODES = {None: 0, "silu": 1, "relu": 2, "tanh": 3, "gelu": 4}


def round4(x: int) -> int:
    """x rounded up to a multiple of 4 (the kernels' float4 groups)."""
    return (int(x) + 3) // 4 * 4


def pack_cuda_decoder(
    layers: list[tuple[np.ndarray, np.ndarray, str | None]], out_dim: int, gaussian: bool
) -> tuple[list[tuple[np.ndarray, np.ndarray, int]], int]:
    """The fused CUDA decoder's layers: ``[(W [in, out_pad], b [out_pad],
    activation code)]`` and the shared-memory width (the widest input,
    rounded up to 4).

    Hidden layers are zero-padded to a multiple of 4 outputs. The last
    layer's outputs are regrouped by 4 output elements: for element group g
    its 4 means, then (gaussian) its 4 log-scales, adjacent, so that the
    thread of a group reads both with float4 loads."""
    widths = [int(layers[0][0].shape[0])] + [int(w.shape[1]) for w, _, _ in layers[:-1]]
    packed = []
    for w, b, act in layers[:-1]:
        n_pad = round4(w.shape[1])
        wp = np.zeros((w.shape[0], n_pad), np.float32)
        wp[:, : w.shape[1]] = w
        bp = np.zeros(n_pad, np.float32)
        bp[: b.shape[0]] = b
        packed.append((wp, bp, ACTIVATION_CODES[act]))
    w, b, _ = layers[-1]
    d, groups = out_dim, (out_dim + 3) // 4
    per = 8 if gaussian else 4
    wp = np.zeros((w.shape[0], per * groups), np.float32)
    bp = np.zeros(per * groups, np.float32)
    for j in range(d):
        g, q = divmod(j, 4)
        wp[:, g * per + q], bp[g * per + q] = w[:, j], b[j]
        if gaussian:
            wp[:, g * per + 4 + q], bp[g * per + 4 + q] = w[:, d + j], b[d + j]
    packed.append((wp, bp, 0))
    return packed, round4(max(widths))


def pack_cuda_rollout(
    arrays: dict[str, np.ndarray], L: int, H: int, A: int, hp: int, hk: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The fused CUDA rollout's weights (csrc/cuda/rollout_cuda.h): the
    shared-memory image (wh, wx, bi, bhn, wo, bo), then w0, b0 and wz; zero
    padding. ``arrays`` are the checked GRU arrays (latent L, hidden H, A
    assets); ``hp`` and ``hk`` the padded widths ``_cuda.rollout_shape`` gives."""
    f32 = np.float32

    def gates(w: np.ndarray, rows: int) -> np.ndarray:  # [k, 3H] -> [rows, 3, hp]
        out = np.zeros((rows, 3, hp), f32)
        out[: w.shape[0], :, :H] = w.reshape(w.shape[0], 3, H)
        return out

    b_i, b_h = arrays["b_i"].reshape(3, H), arrays["b_h"].reshape(3, H)
    bi = np.zeros((3, hp), f32)
    bi[:2, :H] = b_i[:2] + b_h[:2]  # float32 sums, as the CPU packing
    bi[2, :H] = b_i[2]
    bhn = np.zeros(hp, f32)
    bhn[:H] = b_h[2]
    wo = np.zeros((hk, 2 * A), f32)
    wo[:H] = arrays["w_o"]
    bo = np.zeros(round4(2 * A), f32)
    bo[: 2 * A] = arrays["b_o"]
    parts = (gates(arrays["w_h"], hk), gates(arrays["w_x"], 2 * A), bi, bhn, wo, bo)
    image = np.concatenate([p.ravel() for p in parts])
    w0 = np.zeros((L, hp), f32)
    w0[:, :H] = arrays["w0"]
    b0 = np.zeros(hp, f32)
    b0[:H] = arrays["b0"]
    return image, w0, b0, gates(arrays["w_z"], L)

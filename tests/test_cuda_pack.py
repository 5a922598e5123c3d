"""The CUDA decoder's and rollout's weight packing in C++ (stressvae._cuda
pack_decoder / pack_rollout) against the Python packing it replaces, bit for
bit, on fresh random weights. Host code only: runs without a GPU, skipped
when the CUDA module is not built."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

_cuda = pytest.importorskip("stressvae._cuda", reason="stressvae._cuda is not built")
if not hasattr(_cuda, "pack_decoder"):
    pytest.skip("the installed stressvae._cuda predates the C++ packing", allow_module_level=True)

f32 = np.float32
CODES = {"silu": 1, "relu": 2, "tanh": 3, "gelu": 4, None: 0}


def _round4(x: int) -> int:
    return (int(x) + 3) // 4 * 4


def python_pack_decoder(layers, gaussian, out_dim, factors=0):
    """The Python packing of CudaDecoder (stressvae/native.py before the C++
    one); with factors k > 0 group g holds 4 (2 + k) columns: 4 means, 4 raw
    log-scales, then 4 loadings of each factor (source column c D + j)."""
    packed = []
    for w, b, act in layers[:-1]:
        n_pad = _round4(w.shape[1])
        wp = np.zeros((w.shape[0], n_pad), f32)
        wp[:, : w.shape[1]] = w
        bp = np.zeros(n_pad, f32)
        bp[: b.shape[0]] = b
        packed.append((wp, bp, CODES[act]))
    w, b, _ = layers[-1]
    d, groups = out_dim, (out_dim + 3) // 4
    per = 8 if gaussian else 4
    per += 4 * factors
    wp = np.zeros((w.shape[0], per * groups), f32)
    bp = np.zeros(per * groups, f32)
    for j in range(d):
        g, q = divmod(j, 4)
        wp[:, g * per + q], bp[g * per + q] = w[:, j], b[j]
        if gaussian:
            wp[:, g * per + 4 + q], bp[g * per + 4 + q] = w[:, d + j], b[d + j]
        for c in range(2, 2 + factors):
            wp[:, g * per + 4 * c + q], bp[g * per + 4 * c + q] = w[:, c * d + j], b[c * d + j]
    packed.append((wp, bp, 0))
    return packed


def python_pack_rollout(arrays, L, H, A, hp, hk, factors=0):
    """CudaRollout._pack (stressvae/native.py before the C++ one); the head
    gives (2 + factors) A outputs."""
    C = (2 + factors) * A

    def gates(w, rows):  # [k, 3H] -> [rows, 3, hp]
        out = np.zeros((rows, 3, hp), f32)
        out[: w.shape[0], :, :H] = w.reshape(w.shape[0], 3, H)
        return out

    b_i, b_h = arrays["b_i"].reshape(3, H), arrays["b_h"].reshape(3, H)
    bi = np.zeros((3, hp), f32)
    bi[:2, :H] = b_i[:2] + b_h[:2]
    bi[2, :H] = b_i[2]
    bhn = np.zeros(hp, f32)
    bhn[:H] = b_h[2]
    wo = np.zeros((hk, C), f32)
    wo[:H] = arrays["w_o"]
    bo = np.zeros(_round4(C), f32)
    bo[:C] = arrays["b_o"]
    parts = (gates(arrays["w_h"], hk), gates(arrays["w_x"], 2 * A), bi, bhn, wo, bo)
    image = np.concatenate([p.ravel() for p in parts])
    w0 = np.zeros((L, hp), f32)
    w0[:, :H] = arrays["w0"]
    b0 = np.zeros(hp, f32)
    b0[:H] = arrays["b0"]
    return image, w0, b0, gates(arrays["w_z"], L)


def assert_bits(got, want):
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("gaussian", [True, False])
@pytest.mark.parametrize(
    "latent,hidden,window,assets,act",
    [(16, (64, 64), 64, 1, "silu"), (5, (33,), 21, 3, "gelu"), (7, (10, 250, 3), 13, 2, "tanh"),
     (3, (), 9, 1, None), (12, (40, 17), 5, 4, "relu")],
)  # fmt: skip
def test_pack_decoder_matches_python(latent, hidden, window, assets, act, gaussian):
    rng = np.random.default_rng(latent * 1000 + len(hidden) + gaussian)
    out_dim = window * assets
    widths = [latent, *hidden, (2 if gaussian else 1) * out_dim]
    layers = []
    for i, (k, n) in enumerate(itertools.pairwise(widths)):
        last = i == len(widths) - 2
        w = rng.normal(size=(k, n)).astype(f32)
        b = rng.normal(size=n).astype(f32)
        layers.append((w, b, None if last else act))
    got = _cuda.pack_decoder(layers, gaussian, out_dim)
    want = python_pack_decoder(layers, gaussian, out_dim)
    assert len(got) == len(want)
    for (gw, gb, ga), (ww, wb, wa) in zip(got, want, strict=True):
        assert_bits(gw, ww)
        assert_bits(gb, wb)
        assert ga == wa


@pytest.mark.parametrize(("window", "assets", "k"), [(8, 2, 1), (5, 5, 3), (13, 3, 3)])
def test_pack_factor_decoder_matches_python(window, assets, k):
    rng = np.random.default_rng(window * 100 + assets * 10 + k)
    out_dim = window * assets
    layers = [
        (rng.normal(size=(6, 20)).astype(f32), rng.normal(size=20).astype(f32), "silu"),
        (rng.normal(size=(20, (2 + k) * out_dim)).astype(f32),
         rng.normal(size=(2 + k) * out_dim).astype(f32), None),
    ]  # fmt: skip
    got = _cuda.pack_decoder(layers, True, out_dim, k)
    want = python_pack_decoder(layers, True, out_dim, k)
    for (gw, gb, _), (ww, wb, _) in zip(got, want, strict=True):
        assert_bits(gw, ww)
        assert_bits(gb, wb)
    with pytest.raises(ValueError, match="outputs"):
        _cuda.pack_decoder(layers, True, out_dim, k - 1)


@pytest.mark.parametrize(
    "latent,hidden,assets,k",
    [(16, 64, 1, 0), (5, 33, 3, 0), (8, 128, 2, 0), (1, 1, 1, 0), (5, 33, 3, 2), (7, 64, 5, 3),
     (2, 8, 2, 1)],
)  # fmt: skip
def test_pack_rollout_matches_python(latent, hidden, assets, k):
    rng = np.random.default_rng(latent * 7919 + hidden * 31 + assets)
    L, H, A, C = latent, hidden, assets, (2 + k) * assets
    shapes = {
        "w0": (L, H), "b0": (H,), "w_x": (2 * A, 3 * H), "w_z": (L, 3 * H), "b_i": (3 * H,),
        "w_h": (H, 3 * H), "b_h": (3 * H,), "w_o": (H, C), "b_o": (C,),
    }  # fmt: skip
    arrays = {name: rng.normal(size=s).astype(f32) for name, s in shapes.items()}
    hp, hk, image_floats = _cuda.rollout_shape(H, A, k)
    got = _cuda.pack_rollout(*(arrays[name] for name in shapes), k)
    want = python_pack_rollout(arrays, L, H, A, hp, hk, k)
    assert got[0].size == image_floats
    for g, w in zip(got, want, strict=True):
        assert_bits(g, w)


def test_pack_checks_shapes():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 6)).astype(f32)
    b = rng.normal(size=6).astype(f32)
    with pytest.raises(ValueError, match="outputs"):
        _cuda.pack_decoder([(w, b, None)], True, 4)  # gaussian wants 8 outputs
    with pytest.raises(ValueError, match="w_o"):
        z = np.zeros((2, 3), f32)
        _cuda.pack_rollout(*([np.zeros((2, 4), f32)] + [z] * 8))

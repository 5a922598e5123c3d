"""Bad input to the native entry points raises an error that names the
argument; it never crashes the process or reads past a buffer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import bits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from stressvae import NativeInputError, native
from stressvae import _reference as ref

F = np.float32


def ok_args(n=10, d=4):
    return np.zeros(d, F), np.zeros(d, F), n


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mu": np.zeros(4, np.float64)}, "mu must have dtype float32"),
        ({"logvar": np.zeros(4, np.float16)}, "logvar must have dtype float32"),
        ({"mu": [0.0, 0.0, 0.0, 0.0]}, "mu must be a numpy array or torch tensor"),
        (
            {"mu": np.zeros((2, 8), F)[:, ::2], "logvar": np.zeros((2, 4), F), "n": None},
            "mu must be C-contiguous",
        ),
        ({"mu": np.zeros((2, 2, 4), F)}, "mu must be 1-D or 2-D"),
        ({"logvar": np.zeros(5, F)}, r"logvar must have mu's shape \(4\)"),
        ({"mu": np.zeros(0, F), "logvar": np.zeros(0, F)}, "at least one column"),
        ({"mu": np.array([0, np.nan, 0, 0], F)}, "mu contains NaN or inf"),
        ({"logvar": np.array([0, 0, np.inf, 0], F)}, "logvar contains NaN or inf"),
        ({"n": -1}, r"n must be in \[0"),
        ({"n": 2.5}, "n must be an integer"),
        ({"n": None}, "n is required"),
        ({"seed": -1}, r"seed must be in \[0, 18446744073709551615\]"),
        ({"seed": 2**64}, "seed must be in"),
        ({"seed": 1.0}, "seed must be an integer"),
        ({"offset": 2**64 - 5}, r"offset \+ n must be <= 2\*\*64"),
        ({"scale": -0.1}, "scale must be >= 0"),
        ({"scale": float("nan")}, "scale must be finite"),
        ({"scale": "big"}, "scale must be a number"),
        ({"isa": "sse9"}, "isa must be one of"),
        ({"num_threads": 0}, r"num_threads must be in \[1"),
        ({"device": "tpu"}, "device must be 'cpu', 'cuda'"),
        ({"device": "cuda"}, "device='cuda' was asked but mu is on cpu"),
    ],
)
def test_bad_prior_inputs_name_the_problem(kwargs, match):
    mu, lv, n = ok_args()
    args = {"mu": mu, "logvar": lv, "n": n, "seed": 1, **kwargs}
    with pytest.raises(NativeInputError, match=match):
        native.sample_latent(**args)


def test_errors_are_value_errors():
    assert issubclass(NativeInputError, ValueError)


def test_rows_count_mismatch():
    with pytest.raises(NativeInputError, match="n=5 but mu has 3 rows"):
        native.sample_latent(np.zeros((3, 4), F), np.zeros((3, 4), F), 5, seed=0)


@pytest.mark.parametrize(
    ("index", "match"),
    [
        (np.array([0, 1, 3], np.int64), r"index values must be in \[0, 3\)"),
        (np.array([0, -1], np.int64), r"index values must be in \[0, 3\)"),
        (np.array([0, 1], np.int32), "index must have dtype int64"),
        (np.zeros((2, 2), np.int64), "index must be 1-D"),
        (np.zeros(8, dtype=np.int64)[::2], "index must be C-contiguous"),
    ],
)
def test_bad_index(index, match):
    with pytest.raises(NativeInputError, match=match):
        native.sample_latent(np.zeros((3, 4), F), np.zeros((3, 4), F), seed=0, index=index)


def test_index_needs_2d_table_and_matching_n():
    idx = np.zeros(4, np.int64)
    with pytest.raises(NativeInputError, match="with index, mu must be 2-D"):
        native.sample_latent(np.zeros(4, F), np.zeros(4, F), seed=0, index=idx)
    with pytest.raises(NativeInputError, match="n=5 but index has 4 entries"):
        native.sample_latent(np.zeros((2, 4), F), np.zeros((2, 4), F), 5, seed=0, index=idx)


@pytest.mark.parametrize(
    ("out", "match"),
    [
        (np.zeros((10, 5), F), r"out must have shape \(10, 4\)"),
        (np.zeros((10, 4), np.float64), "out must have dtype float32"),
        (np.zeros((4, 10), F).T, "out must be C-contiguous"),
    ],
)
def test_bad_out(out, match):
    mu, lv, n = ok_args()
    with pytest.raises(NativeInputError, match=match):
        native.sample_latent(mu, lv, n, seed=0, out=out)


def test_read_only_out_is_refused():
    mu, lv, n = ok_args()
    out = np.zeros((n, 4), F)
    out.flags.writeable = False
    with pytest.raises(NativeInputError, match="out must be writeable"):
        native.sample_latent(mu, lv, n, seed=0, out=out)


def test_out_overlapping_an_input_is_refused():
    buf = np.zeros((10, 4), F)
    with pytest.raises(NativeInputError, match="out must not overlap mu"):
        native.sample_latent(buf, np.zeros((10, 4), F), seed=0, out=buf)


def test_mixed_numpy_and_torch_is_refused():
    with pytest.raises(NativeInputError, match="must both be numpy arrays or both torch tensors"):
        native.sample_latent(np.zeros(4, F), torch.zeros(4), 3, seed=0)


def test_tensor_requiring_grad_is_refused():
    mu = torch.zeros(4, requires_grad=True)
    with pytest.raises(NativeInputError, match=r"requires grad; pass mu.detach\(\)"):
        native.sample_latent(mu, torch.zeros(4), 3, seed=0)


def test_normals_validation():
    with pytest.raises(NativeInputError, match=r"d must be in \[1"):
        native.normals(3, 0, seed=0)
    with pytest.raises(NativeInputError, match="out must have shape"):
        native.normals(3, 2, seed=0, out=np.zeros((2, 3), F))


def test_core_rejects_wrong_buffers_even_without_python_checks():
    """The C++ side is a second line: wrong shapes or dtypes never get read."""
    from stressvae import _core

    z = np.zeros((5, 4), F)
    with pytest.raises(TypeError):  # float64 is not converted behind our back
        _core.sample(
            z,
            np.zeros((1, 4)),
            np.zeros((1, 4), F),
            np.zeros(0, np.int64),
            0,
            1,
            0,
            1.0,
            0,
            1,
            "auto",
        )
    with pytest.raises(ValueError, match="mu must have as many columns as z"):
        _core.sample(
            z,
            np.zeros((1, 3), F),
            np.zeros((1, 3), F),
            np.zeros(0, np.int64),
            0,
            1,
            0,
            1.0,
            0,
            1,
            "auto",
        )
    with pytest.raises(ValueError, match="per-row mode takes n rows"):
        _core.sample(
            z,
            np.zeros((4, 4), F),
            np.zeros((4, 4), F),
            np.zeros(0, np.int64),
            1,
            1,
            0,
            1.0,
            0,
            1,
            "auto",
        )
    with pytest.raises(ValueError, match="outside"):
        _core.sample(
            z,
            np.zeros((2, 4), F),
            np.zeros((2, 4), F),
            np.array([0, 1, 2, 1, 0], np.int64),
            2,
            1,
            0,
            1.0,
            0,
            1,
            "auto",
        )


# ------------------------------------------------------------ hypothesis
DTYPES = st.sampled_from([np.float32, np.float64, np.float16, np.int64, np.int32, np.uint8])


@st.composite
def any_array(draw, max_dims=3):
    dtype = draw(DTYPES)
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=6))
    if np.issubdtype(dtype, np.floating):
        elements = st.floats(
            allow_nan=True, allow_infinity=True, width=np.dtype(dtype).itemsize * 8
        )
    else:
        elements = None
    arr = draw(hnp.arrays(dtype, shape, elements=elements))
    if arr.ndim >= 1 and arr.shape[-1] > 1 and draw(st.booleans()):
        arr = arr[..., ::2]  # a strided view
    return arr


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mu=any_array(),
    logvar=any_array(),
    n=st.one_of(st.none(), st.integers(-3, 40)),
    index=st.one_of(st.none(), any_array(max_dims=2)),
    seed=st.integers(-(2**65), 2**65),
    offset=st.integers(-5, 2**64 + 5),
    scale=st.floats(allow_nan=True, allow_infinity=True),
)
def test_random_inputs_give_a_result_or_a_named_error(mu, logvar, n, index, seed, offset, scale):
    try:
        z = native.sample_latent(
            mu, logvar, n, seed=seed, index=index, offset=offset, scale=scale, num_threads=2
        )
    except NativeInputError as err:
        assert str(err)  # a message, never an empty error
        return
    # Whatever got through must be a valid call, and the result must be right.
    assert mu.dtype == np.float32 and mu.flags.c_contiguous and np.all(np.isfinite(mu))
    want = ref.sample(mu, logvar, n, seed=seed, index=index, offset=offset, scale=scale)
    assert np.array_equal(bits(z), bits(want))


@settings(max_examples=200, deadline=None)
@given(
    k=st.integers(1, 5),
    d=st.integers(1, 70),
    n=st.integers(0, 300),
    seed=st.integers(0, 2**64 - 1),
    offset=st.integers(0, 2**63),
    data=st.data(),
)
def test_random_valid_table_calls_equal_twin(k, d, n, seed, offset, data):
    rng = np.random.default_rng(seed % 2**32)
    mu = rng.normal(0, 1, (k, d)).astype(F)
    lv = rng.uniform(-5, 2, (k, d)).astype(F)
    index = np.asarray(data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)), np.int64)
    z = native.sample_latent(mu, lv, seed=seed, index=index, offset=offset)
    assert np.array_equal(bits(z), bits(ref.sample(mu, lv, seed=seed, index=index, offset=offset)))

"""tile.stdlib.gemm's fused epilogues on the VM against numpy: every activation, bias, residual,
alpha and result type (the kernels gemm_epilogue, _f16, _f32 of stdlib/core/gemm.tile), shapes
with tails and dimensions of 1, and the errors of bad options. The reference is float64 from the
exact bf16 inputs; PyTorch's definitions of gelu (erf, and approximate='tanh') and silu."""
import math

import numpy as np
import pytest

import tile
from tile import stdlib

rng = np.random.default_rng(11)
_erf = np.vectorize(math.erf)


def bf16(*shape):
    return tile.pack(rng.uniform(-1, 1, shape), tile.bf16)


def values(x):
    return tile.unpack(x) if isinstance(x, tile.Packed) or getattr(x, "dtype", None) is None or \
        x.dtype.name == "bfloat16" else np.asarray(x, np.float64)


def of_type(v, dt):
    """v rounded to dt, as an array gemm accepts (numpy for f16/f32, packed for bf16)."""
    if dt == "f32":
        return np.asarray(v, np.float32)
    if dt == "f16":
        return np.asarray(v, np.float16)
    return tile.pack(v, tile.bf16)


ACTS = {
    None: lambda y: y,
    "relu": lambda y: np.maximum(y, 0),
    "gelu": lambda y: 0.5 * y * (1 + _erf(y / math.sqrt(2))),
    "gelu_tanh": lambda y: 0.5 * y * (1 + np.tanh(math.sqrt(2 / math.pi) * (y + 0.044715 * y ** 3))),
    "silu": lambda y: y / (1 + np.exp(-y)),
}
RTOL = {"bf16": 2 ** -8, "f16": 2 ** -10, "f32": 1e-5}


def reference(a, b, bias, residual, alpha, activation):
    p = alpha * (values(a) @ values(b))
    if bias is not None:
        p = p + values(bias)
    if activation == "swiglu":
        n = p.shape[1] // 2
        y = ACTS["silu"](p[:, :n]) * p[:, n:]
    else:
        y = ACTS[activation](p)
    if residual is not None:
        y = y + values(residual)
    return y


@pytest.mark.parametrize("out_dtype", ["bf16", "f16", "f32"])
@pytest.mark.parametrize("activation", [None, "relu", "gelu", "gelu_tanh", "silu", "swiglu"])
def test_every_epilogue(activation, out_dtype):
    m, n, k = 37, 45, 29
    cols = 2 * n if activation == "swiglu" else n
    a, b = bf16(m, k), bf16(k, cols)
    bias = of_type(rng.uniform(-1, 1, cols), out_dtype)
    residual = of_type(rng.uniform(-2, 2, (m, n)), out_dtype)
    c = stdlib.gemm(a, b, bias=bias, residual=residual, alpha=0.75, activation=activation, out_dtype=out_dtype,
                    BM=32, BN=16, BK=16)
    assert tuple(c.shape) == (m, n) and str(tile.dtype(getattr(c, "dtype", None))) == out_dtype
    want = reference(a, b, bias, residual, 0.75, activation)
    np.testing.assert_allclose(values(c), want, rtol=RTOL[out_dtype], atol=1e-4)


@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 40, 33), (40, 1, 33), (40, 33, 1), (130, 129, 70)])
def test_shapes_each_option_alone(shape):
    m, n, k = shape
    a, b = bf16(m, k), bf16(k, n)
    bias = np.asarray(rng.uniform(-1, 1, n), np.float32)
    residual = np.asarray(rng.uniform(-1, 1, (m, n)), np.float32)
    tiles = {} if m > 100 else dict(BM=32, BN=16, BK=16)
    for kw in [dict(bias=bias), dict(residual=residual), dict(alpha=-1.5), dict(activation="gelu")]:
        c = stdlib.gemm(a, b, out_dtype="f32", **kw, **tiles)
        want = reference(a, b, kw.get("bias"), kw.get("residual"), kw.get("alpha", 1.0), kw.get("activation"))
        np.testing.assert_allclose(c, want, rtol=1e-5, atol=1e-5, err_msg=str(sorted(kw)))


def test_out_decides_the_result_type_and_plain_gemm_is_unchanged():
    a, b = bf16(20, 30), bf16(30, 24)
    out = np.full((20, 24), np.nan, np.float32)
    assert stdlib.gemm(a, b, out=out, activation="relu", BM=16, BN=16, BK=16) is out
    np.testing.assert_allclose(out, np.maximum(values(a) @ values(b), 0), rtol=1e-5, atol=1e-6)
    c = stdlib.gemm(a, b, BM=16, BN=16, BK=16)             # no option: the kernel `gemm`, bf16
    np.testing.assert_allclose(values(c), values(a) @ values(b), rtol=2 ** -7, atol=1e-6)


def test_gelu_flavours_differ():
    # near y = 2.7 the two gelus differ by 4.7e-4, far above the f32 tolerance
    a = tile.pack(np.full((1, 1), 2.7), tile.bf16)
    b = tile.pack(np.ones((1, 1)), tile.bf16)
    y = values(a)[0, 0]
    erf_c = stdlib.gemm(a, b, activation="gelu", out_dtype="f32")[0, 0]
    tanh_c = stdlib.gemm(a, b, activation="gelu_tanh", out_dtype="f32")[0, 0]
    assert abs(erf_c - ACTS["gelu"](y)) < 1e-6 and abs(tanh_c - ACTS["gelu_tanh"](y)) < 1e-6
    assert abs(erf_c - tanh_c) > 4e-4


def test_bad_options():
    a, b = bf16(8, 8), bf16(8, 7)
    with pytest.raises(ValueError, match="activation 'tanh' is not one of"):
        stdlib.gemm(a, b, activation="tanh")
    with pytest.raises(ValueError, match="even number of columns"):
        stdlib.gemm(a, b, activation="swiglu")
    with pytest.raises(ValueError, match="bf16, f16 or f32, not f64"):
        stdlib.gemm(a, b, out_dtype="f64", activation="relu")
    with pytest.raises(tile.LaunchError, match="bias must have one element per column"):
        stdlib.gemm(a, b, bias=np.zeros(5, np.float32), out_dtype="f32")
    with pytest.raises(tile.LaunchError, match="residual must be"):
        stdlib.gemm(a, b, residual=np.zeros((8, 6), np.float32), out_dtype="f32")

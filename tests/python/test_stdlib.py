"""tile.stdlib on the VM: every standard-library function against numpy, outputs made like
the inputs (or written into out=), and every stdlib kernel reachable by name."""
import numpy as np
import pytest

import tile
from tile import stdlib

rng = np.random.default_rng(7)


def f32(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def test_every_stdlib_kernel_is_reachable():
    names = stdlib.kernel_names()
    assert {"vector_add", "softmax", "layernorm", "gemm", "sum_rows", "cumsum_rows", "sum_all",
            "gather_rows", "flash_fwd"} <= set(names)
    for name in names:
        obj = getattr(stdlib, name)
        assert callable(obj), name
    k = stdlib.kernel("vector_add", "vm", BLOCK=32)
    assert isinstance(k, tile.Kernel) and k.constants == {"BLOCK": 32}
    with pytest.raises(AttributeError, match="no kernel 'nope'"):
        stdlib.kernel("nope")


def test_vector_add():
    a, b = f32(1000), f32(1000)
    c = stdlib.vector_add(a, b)
    assert c.dtype == np.float32 and c.shape == (1000,)
    np.testing.assert_array_equal(c, a + b)
    out = np.zeros(1000, np.float32)
    assert stdlib.vector_add(a, b, out=out, BLOCK=128) is out
    np.testing.assert_array_equal(out, a + b)


def test_functions_take_the_kernel_for_their_constants():
    # the functions keep the kernels they launch: the one stdlib.kernel() gives, per constants
    a = f32(10)
    assert stdlib._on(a, "vector_add", {"BLOCK": 64}) is stdlib.kernel("vector_add", "vm", BLOCK=64)
    assert stdlib._on(a, "vector_add", {}) is stdlib.kernel("vector_add", "vm")
    assert stdlib._on(a, "vector_add", {"BLOCK": 64}) is not stdlib._on(a, "vector_add", {"BLOCK": 128})
    # equal in Python, different constants: an int and a bool
    assert stdlib.kernel("vector_add", "vm", BLOCK=1) is not stdlib.kernel("vector_add", "vm", BLOCK=True)
    for block in (32, 64, 32):
        np.testing.assert_array_equal(stdlib.vector_add(a, a, BLOCK=block), a + a)


@pytest.mark.parametrize("n", [100, 1024, 2500])   # one pass, exactly one tile, two passes
def test_softmax(n):
    x = f32(9, n) * 4
    e = np.exp(x.astype(np.float64) - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(stdlib.softmax(x), e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-7)


def test_layernorm():
    x, w, b = f32(7, 300) * 3 + 1, f32(300), f32(300)
    x64 = x.astype(np.float64)
    ref = (x64 - x64.mean(1, keepdims=True)) / np.sqrt(x64.var(1, keepdims=True) + 1e-3) * w + b
    np.testing.assert_allclose(stdlib.layernorm(x, w, b, eps=1e-3), ref, rtol=1e-4, atol=1e-5)


def test_gemm_bf16():
    a, b = tile.pack(f32(70, 50), tile.bf16), tile.pack(f32(50, 40), tile.bf16)
    c = stdlib.gemm(a, b, BM=32, BN=32, BK=16)
    # a tile.Packed, or numpy's own bfloat16 array where numpy has one (ml_dtypes installed)
    packed = isinstance(c, tile.Packed) and c.dtype == tile.bf16
    native = isinstance(c, np.ndarray) and c.dtype.name == "bfloat16"
    assert (packed or native) and tuple(c.shape) == (70, 40)
    exact = tile.unpack(a) @ tile.unpack(b)          # f64 of the bf16 inputs
    # f32 accumulation, then one rounding to bf16: within one bf16 ulp (2^-7 relative)
    np.testing.assert_allclose(tile.unpack(c), exact, rtol=2 ** -7, atol=1e-6)
    with pytest.raises(tile.LaunchError, match="element type f32 but the kernel expects bf16"):
        stdlib.gemm(f32(4, 4), f32(4, 4))


def test_reductions():
    x = f32(6, 3000)
    np.testing.assert_allclose(stdlib.sum_rows(x), x.astype(np.float64).sum(1), rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(stdlib.cumsum_rows(x), np.cumsum(x.astype(np.float64), 1), rtol=1e-4, atol=1e-3)
    v = f32(10000)
    s = stdlib.sum_all(v)
    assert s.shape == (1,)
    np.testing.assert_allclose(s[0], v.astype(np.float64).sum(), rtol=1e-5, atol=1e-3)
    out = np.array([100.0], np.float32)                  # sum_all adds into out
    stdlib.sum_all(v, out=out)
    np.testing.assert_allclose(out[0], 100 + v.astype(np.float64).sum(), rtol=1e-5, atol=1e-3)


def test_gather_rows():
    table = f32(20, 64)
    idx = np.array([3, 0, 19, 7, 7, 20, -1], np.int32)
    out = stdlib.gather_rows(table, idx, BR=4)
    assert out.shape == (7, 64)
    np.testing.assert_array_equal(out[:5], table[[3, 0, 19, 7, 7]])
    assert (out[5:] == 0).all()     # indices outside the table read zeros


@pytest.mark.parametrize("causal", [False, True])
def test_flash_fwd_bf16(causal):
    # B=1, HQ=4, HKV=2 (grouped-query), S=45 (a tail on both tiles), D=64, small tiles for the VM
    q, k, v = (tile.pack(f32(1, h, 45, 64), tile.bf16) for h in (4, 2, 2))
    o = stdlib.flash_fwd(q, k, v, causal=causal, BM=32, BN=16)
    # bf16 travels as tile.Packed, or as numpy's bfloat16 where ml_dtypes is installed
    assert o.shape == (1, 4, 45, 64)
    assert (isinstance(o, tile.Packed) and o.dtype == tile.bf16) or str(o.dtype) == "bfloat16"
    qd, kd, vd = (np.repeat(tile.unpack(t), r, axis=1) for t, r in ((q, 1), (k, 2), (v, 2)))
    s = qd @ kd.transpose(0, 1, 3, 2) / 8.0
    if causal:
        s = np.where(np.tril(np.ones((45, 45), bool)), s, -np.inf)
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    ref = (p / p.sum(axis=-1, keepdims=True)) @ vd
    # P rounded to bf16 before P @ V, and a bf16 output
    np.testing.assert_allclose(tile.unpack(o), ref, rtol=2e-2, atol=2e-2)

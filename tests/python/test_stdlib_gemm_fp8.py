"""tile.stdlib.gemm_fp8 on the VM against numpy: per-tensor and block scales, bf16 and f32 results,
f8e4m3 and f8e5m2 inputs, shapes with tails. The reference is float64 from the exact f8 inputs and
f32 scales."""
import numpy as np
import pytest

import tile
from tile import stdlib

rng = np.random.default_rng(5)


def e4m3(*shape, dtype=tile.f8e4m3):
    return tile.pack(rng.uniform(-4, 4, shape), dtype)


@pytest.mark.parametrize("out_dtype,dtype", [("bf16", tile.f8e4m3), ("f32", tile.f8e4m3), ("bf16", tile.f8e5m2)])
@pytest.mark.parametrize("block", [False, True])
def test_gemm_fp8(out_dtype, dtype, block):
    m, n, k = 37, 70, 200
    a, b = e4m3(m, k, dtype=dtype), e4m3(n, k, dtype=dtype)
    kb, nb = -(-k // 128), -(-n // 128)
    if block:
        sa = rng.uniform(0.1, 1, (m, kb)).astype(np.float32)
        sb = rng.uniform(0.1, 1, (nb, kb)).astype(np.float32)
        full_a = np.repeat(sa, 128, axis=1)[:, :k].astype(np.float64)
        full_b = np.repeat(np.repeat(sb, 128, axis=0)[:n], 128, axis=1)[:, :k].astype(np.float64)
        consts = dict(BM=32, BN=32)
    else:
        sa, sb = np.array(0.75, np.float32), np.array([1.5], np.float32)
        full_a, full_b = np.float64(0.75), np.float64(1.5)
        consts = dict(BM=32, BN=32, BK=32)
    c = stdlib.gemm_fp8(a, b, sa, sb, out_dtype=out_dtype, **consts)
    want = (tile.unpack(a) * full_a) @ (tile.unpack(b) * full_b).T
    got = tile.unpack(c) if out_dtype == "bf16" else np.asarray(c, np.float64)
    assert got.shape == (m, n)
    mag = np.abs(tile.unpack(a) * full_a) @ np.abs(tile.unpack(b) * full_b).T
    tol = (2 ** -8 if out_dtype == "bf16" else 1e-6) * np.abs(want) + 4 * (k + 256) * 2 ** -24 * mag
    assert np.all(np.abs(got - want) <= tol + 1e-30)


def test_gemm_fp8_result_type():
    a, b = e4m3(4, 32), e4m3(8, 32)
    with pytest.raises(ValueError, match="bf16 or f32"):
        stdlib.gemm_fp8(a, b, np.array(1, np.float32), np.array(1, np.float32), out_dtype="f16")
    with pytest.raises(ValueError, match="f8e5m2 inputs give a bf16 result"):
        stdlib.gemm_fp8(e4m3(4, 32, dtype=tile.f8e5m2), e4m3(8, 32, dtype=tile.f8e5m2), np.array(1, np.float32),
                        np.array(1, np.float32), out_dtype="f32")

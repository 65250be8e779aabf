"""tile with PyTorch: dtype mapping and cpu tensors on the VM (need torch), then launches on
cuda tensors, PyTorch's current stream, bf16 gemm and CuPy arrays (need a GPU). Every test
skips cleanly without torch (pytest.importorskip) or without a GPU. Run on a GPU machine:
  PYTHONPATH=python python3 -m pytest -q tests/python/test_torch.py"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
import tile  # noqa: E402
from tile import stdlib  # noqa: E402

gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU for torch")

ADD = """
kernel add<BLOCK = 256>(x: tensor<f32>[N], y: tensor<f32>[N], out: tensor<f32>[N])
  grid(cdiv(N, BLOCK))
{
  let i = block_id(0) * BLOCK;
  out[i :+ BLOCK] = x[i :+ BLOCK] + y[i :+ BLOCK];
}
"""


def test_torch_dtypes_both_ways():
    pairs = {torch.bool: "bool", torch.int8: "i8", torch.int16: "i16", torch.int32: "i32", torch.int64: "i64",
             torch.uint8: "u8", torch.float16: "f16", torch.bfloat16: "bf16", torch.float32: "f32",
             torch.float64: "f64"}
    for attr, name in (("float8_e4m3fn", "f8e4m3"), ("float8_e5m2", "f8e5m2")):
        if hasattr(torch, attr):
            pairs[getattr(torch, attr)] = name
    for td, name in pairs.items():
        assert tile.dtype(td) == tile.dtype(name), td
        assert tile.to_torch_dtype(name) == td
        assert tile.describe(torch.zeros(4, dtype=td))[1] == tile.dtype(name).code
    with pytest.raises(TypeError):
        tile.dtype(torch.complex64)


def test_float4_x2_counts_elements():
    if not hasattr(torch, "float4_e2m1fn_x2"):
        pytest.skip("this torch has no float4_e2m1fn_x2")
    storage = torch.zeros((3, 8), dtype=torch.uint8).view(torch.float4_e2m1fn_x2)
    dev, code, ptr, shape, strides = tile.describe(storage)
    assert code == tile.f4e2m1.code and shape == (3, 16) and strides == (16, 1)


def test_cpu_tensors_run_on_the_vm_in_place():
    prog = tile.program(ADD, "add.tile", "vm")
    x, y = torch.arange(1000, dtype=torch.float32), torch.ones(1000)
    out = torch.zeros(1000)
    prog.add(x, y, out)
    assert torch.equal(out, x + 1)
    c = stdlib.vector_add(x, y)
    assert isinstance(c, torch.Tensor) and torch.equal(c, x + 1)


@gpu
def test_cuda_tensors_and_the_current_stream():
    prog = tile.program(ADD, "add.tile", "cuda")
    n = 1 << 22
    x = torch.randn(n, device="cuda")
    out = torch.empty_like(x)
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        # queued on s: y exists only once s has run this; the launch must follow it on s
        torch.cuda._sleep(10_000_000)
        y = x * 2
        prog.add(x, y, out)
        z = out * 1   # reads out on s after the launch
    s.synchronize()
    torch.testing.assert_close(z, x * 3)
    assert prog.context.name.startswith("cuda:")


@gpu
def test_explicit_streams():
    prog = tile.program(ADD, "add.tile", "cuda")
    x = torch.randn(4096, device="cuda")
    out = torch.empty_like(x)
    s = torch.cuda.Stream()
    prog.add(x, x, out, stream=s)
    s.synchronize()
    torch.testing.assert_close(out, 2 * x)
    ts = tile.Stream(prog.context)
    prog.add(x, out, out, stream=ts)
    ts.synchronize()
    torch.testing.assert_close(out, 3 * x)
    with pytest.raises(ValueError, match="the stream belongs to"):
        prog.add(x, x, out, stream=tile.Stream("vm"))


@gpu
def test_stdlib_on_cuda():
    a = torch.randn(300, 200, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(200, 100, device="cuda", dtype=torch.bfloat16)
    c = stdlib.gemm(a, b)
    assert c.dtype == torch.bfloat16 and c.device == a.device
    torch.testing.assert_close(c.float(), a.float() @ b.float(), rtol=2e-2, atol=2e-2)
    x = torch.randn(64, 1000, device="cuda")
    torch.testing.assert_close(stdlib.softmax(x), torch.softmax(x, dim=1), rtol=1e-4, atol=1e-6)
    w, bias = torch.randn(1000, device="cuda"), torch.randn(1000, device="cuda")
    torch.testing.assert_close(stdlib.layernorm(x, w, bias),
                               torch.nn.functional.layer_norm(x, (1000,), w, bias), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(stdlib.sum_rows(x), x.sum(1), rtol=1e-4, atol=1e-3)
    table, idx = torch.randn(50, 128, device="cuda"), torch.tensor([4, 0, 49], device="cuda", dtype=torch.int32)
    torch.testing.assert_close(stdlib.gather_rows(table, idx), table[idx.long()])


@gpu
def test_cuda_errors():
    prog = tile.program(ADD, "add.tile", "cuda")
    x = torch.zeros(10, device="cuda")
    with pytest.raises(tile.LaunchError, match="element type f64"):
        prog.add(x, x.double(), x)
    with pytest.raises(ValueError, match="is on the host"):
        prog.add(x, torch.zeros(10), x)
    with pytest.raises(ValueError, match="but an earlier one is on"):
        prog.add(x, np.zeros(10, np.float32), x)


@gpu
def test_cupy_arrays():
    cupy = pytest.importorskip("cupy")
    prog = tile.program(ADD, "add.tile", "cuda")
    x = cupy.arange(1000, dtype=cupy.float32)
    out = cupy.zeros(1000, dtype=cupy.float32)
    prog.add(x, x, out)
    cupy.cuda.runtime.deviceSynchronize()
    assert (out.get() == 2 * np.arange(1000)).all()

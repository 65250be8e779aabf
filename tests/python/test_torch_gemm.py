"""tile.stdlib.gemm's fused epilogues on torch tensors against PyTorch's own functions
(F.relu, F.gelu with approximate='none' and 'tanh', F.silu, swiglu as silu(gate) * up of
torch.chunk): cpu tensors on the VM (need torch), cuda tensors on the GPU (need a GPU), including
transposed operands as torch strided views (.t()); without options at the decode shapes M = 1, 16,
128 with N = K = 8192, split-K or gemm.tile as the rule says, against torch's matmul. Skips
cleanly without torch or a GPU. Run on
a GPU machine: PYTHONPATH=python python3 -m pytest -q tests/python/test_torch_gemm.py"""
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

import tile  # noqa: E402
from tile import stdlib  # noqa: E402

gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU for torch")

TORCH_ACT = {
    None: lambda p: p,
    "relu": F.relu,
    "gelu": lambda p: F.gelu(p, approximate="none"),
    "gelu_tanh": lambda p: F.gelu(p, approximate="tanh"),
    "silu": F.silu,
    "swiglu": lambda p: F.silu(torch.chunk(p, 2, -1)[0]) * torch.chunk(p, 2, -1)[1],
}
DTYPES = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}
RTOL = {"bf16": 2 ** -7, "f16": 2 ** -9, "f32": 1e-4}


def check(device, m, n, k, activation, out_dtype, transposed=False):
    g = torch.Generator(device="cpu").manual_seed(m * 7919 + n * 31 + k)
    cols = 2 * n if activation == "swiglu" else n
    if transposed:   # a and b as transposed views of row-major [K, M] and [N, K] storage
        a = (torch.rand(k, m, generator=g) * 2 - 1).to(device, torch.bfloat16).t()
        b = (torch.rand(cols, k, generator=g) * 2 - 1).to(device, torch.bfloat16).t()
    else:
        a = (torch.rand(m, k, generator=g) * 2 - 1).to(device, torch.bfloat16)
        b = (torch.rand(k, cols, generator=g) * 2 - 1).to(device, torch.bfloat16)
    dt = DTYPES[out_dtype]
    bias = (torch.rand(cols, generator=g) * 2 - 1).to(device, dt)
    residual = (torch.rand(m, n, generator=g) * 2 - 1).to(device, dt)
    c = stdlib.gemm(a, b, bias=bias, residual=residual, alpha=0.5, activation=activation, out_dtype=out_dtype)
    assert c.dtype == dt and tuple(c.shape) == (m, n) and c.device == a.device
    p = 0.5 * (a.double() @ b.double()) + bias.double()
    want = TORCH_ACT[activation](p) + residual.double()
    torch.testing.assert_close(c.double(), want, rtol=RTOL[out_dtype], atol=2e-3)


@pytest.mark.parametrize("activation", list(TORCH_ACT))
def test_cpu_tensors_on_the_vm(activation):
    check("cpu", 37, 45, 29, activation, "f32")


@gpu
@pytest.mark.parametrize("out_dtype", list(DTYPES))
@pytest.mark.parametrize("activation", list(TORCH_ACT))
def test_cuda_every_epilogue(activation, out_dtype):
    check("cuda", 300, 260, 200, activation, out_dtype)


@gpu
@pytest.mark.parametrize("activation", [None, "gelu", "swiglu"])
def test_cuda_transposed_and_decode_shapes(activation):
    check("cuda", 256, 192, 320, activation, "bf16", transposed=True)
    check("cuda", 1, 1024, 512, activation, "f32")
    check("cuda", 16, 512, 1024, activation, "f16")


@gpu
@pytest.mark.parametrize("shape", [(300, 260, 520), (256, 512, 1024)])
@pytest.mark.parametrize("out_dtype", ["bf16", "f32"])
def test_gemm_fp8_against_scaled_mm(out_dtype, shape):
    """tile.stdlib.gemm_fp8 on cuda tensors against float32 and (where its shape rules allow)
    torch._scaled_mm with per-tensor scales, b given [N, K] as torch._scaled_mm's column-major B
    transposed, at a shape with tails and an aligned one."""
    g = torch.Generator(device="cpu").manual_seed(3)
    m, n, k = shape
    a = (torch.rand(m, k, generator=g) * 2 - 1).to(torch.float8_e4m3fn).cuda()
    b = (torch.rand(n, k, generator=g) * 2 - 1).to(torch.float8_e4m3fn).cuda()
    sa, sb = torch.tensor(0.75, device="cuda"), torch.tensor(1.5, device="cuda")
    dt = DTYPES[out_dtype]
    c = stdlib.gemm_fp8(a, b, sa, sb, out_dtype=out_dtype)
    assert c.dtype == dt and tuple(c.shape) == (m, n)
    ref = (a.float() @ b.float().t()) * 1.125
    # The per-tensor kernel chains the whole K through the tensor cores' f8 accumulator, which
    # keeps about 14 bits (lang/SPEC.md, section 11; cuBLAS's fast accumulation): a rounding of
    # 2^-13 of the running sum per k32 step, bounded by the sum of the products' magnitudes.
    mag = (a.float().abs() @ b.float().abs().t()) * 1.125
    fast = (k // 32 + 1) * 2.0 ** -13 * mag

    def close(got, want):
        err = (got - want).abs()
        bound = RTOL[out_dtype] * want.abs() + 1e-3 * k ** 0.5 + fast
        assert bool((err <= bound).all()), f"largest error {float(err.max()):.4g} (bound there {float(bound.flatten()[err.argmax()]):.4g})"

    close(c.float(), ref)
    if k % 16 == 0 and m % 16 == 0 and n % 16 == 0:
        theirs = torch._scaled_mm(a, b.t(), scale_a=sa, scale_b=sb, out_dtype=dt)
        close(c.float(), theirs.float())


@gpu
@pytest.mark.parametrize("m", [1, 16, 128])
def test_cuda_decode_shapes_against_matmul(m, monkeypatch):
    """tile.stdlib.gemm_splitk at the decode shapes M x 8192 x 8192 against torch's matmul and
    float64 (the split-K pair at the rule's S, 4 on an H200, at M = 1 and 16; S = 1 at 128), and
    tile.stdlib.gemm (the kernel gemm) at the same shapes; which ran is recorded by wrapping
    tile.stdlib.kernel (with the functions' kernel cache emptied for the test, so each is asked)."""
    ran = []
    real = stdlib.kernel
    monkeypatch.setattr(stdlib, "_kernels", {})
    monkeypatch.setattr(stdlib, "kernel", lambda name, *a, **kw: ran.append((name, kw)) or real(name, *a, **kw))
    g = torch.Generator(device="cpu").manual_seed(m)
    a = (torch.rand(m, 8192, generator=g) * 2 - 1).to("cuda", torch.bfloat16)
    b = (torch.rand(8192, 8192, generator=g) * 2 - 1).to("cuda", torch.bfloat16)
    sms = tile.context(a.device).num_sms
    splits, bm = stdlib._gemm_splits(m, 8192, 8192, sms)
    if sms >= 64:                        # 64 tiles of 16 x 128: two per SM needs 64 SMs or more
        assert (splits > 1) == (m <= 64), (sms, splits)
    for c in (stdlib.gemm_splitk(a, b), stdlib.gemm(a, b)):
        assert c.dtype == torch.bfloat16 and tuple(c.shape) == (m, 8192) and c.device == a.device
        torch.testing.assert_close(c.double(), a.double() @ b.double(), rtol=2 ** -7, atol=1e-2)
        torch.testing.assert_close(c.float(), (a @ b).float(), rtol=2 ** -6, atol=2e-2)
    assert [name for name, _ in ran] == ["gemm_splitk_partial", "gemm_splitk_reduce", "gemm"]
    assert ran[0][1] == dict(BM=bm, BN=128, BK=64, W=4)

"""tile.stdlib.gemm_splitk on the VM with numpy: the split-K pair gemm_splitk_partial +
gemm_splitk_reduce over an f32 workspace [S, M, N], S from the rule atop
stdlib/core/gemm_splitk.tile for the device's SM count (Context.num_sms) unless splits= says;
tile.stdlib.gemm stays the kernel gemm (its docstring says why). Which kernels ran is seen by
wrapping tile.stdlib.kernel (every stdlib function gets its kernels there; the fixture empties
the functions' kernel cache, so each is asked) to record each launch's kernel, constants and
argument shapes. Results are checked against float64 from the exact bf16 inputs, and the split-K
result against a direct launch of the two kernels at the rule's S, bit for bit. Context.num_sms
is what num_sms() gives a kernel on the VM, and the device's count on the fake CUDA driver
(tests/fake_cuda)."""
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import STDLIB
import tile
from tile import stdlib

rng = np.random.default_rng(5)

NUM_SMS_SOURCE = """
kernel count(x: tensor<i32>[N]) grid(min(num_sms(), N)) {
  x[block_id(0)] = num_blocks(0);
}
"""


def bf16(*shape):
    return tile.pack(rng.uniform(-1, 1, shape), tile.bf16)


@pytest.fixture
def launches(monkeypatch):
    """The launches of stdlib kernels during a test: (name, constants, argument shapes) each."""
    seen = []
    real = stdlib.kernel

    def kernel(name, device=None, **constants):
        k = real(name, device, **constants)

        def launch(*args, **kwargs):
            seen.append((name, constants, [tuple(getattr(x, "shape", ())) for x in args]))
            return k(*args, **kwargs)
        return launch

    monkeypatch.setattr(stdlib, "kernel", kernel)
    monkeypatch.setattr(stdlib, "_kernels", {})   # the functions' cache would bypass the wrapper
    return seen


@pytest.fixture
def vm_sms(monkeypatch):
    """The VM's SM count starts at its default (4) in each test; set("n") changes it."""
    monkeypatch.delenv("TILE_VM_NUM_SMS", raising=False)
    return lambda n: monkeypatch.setenv("TILE_VM_NUM_SMS", n)


def check_product(a, b, c):
    # f32 accumulation (in split order or not), one rounding to bf16: within one bf16 ulp
    np.testing.assert_allclose(tile.unpack(c), tile.unpack(a) @ tile.unpack(b), rtol=2 ** -7, atol=1e-4)


def test_context_num_sms_is_what_a_kernel_gets(vm_sms):
    vm = tile.context("vm")
    count = tile.program(NUM_SMS_SOURCE, "count.tile", vm).kernel("count")
    for env, want in [(None, 4), ("12", 12), ("1", 1), ("0", 4), ("abc", 4)]:
        if env is not None:
            vm_sms(env)
        assert vm.num_sms == want, env
        x = np.full(64, -1, np.int32)
        count(x)
        assert x[0] == want and (x[want:] == -1).all(), env


def test_cuda_num_sms_on_the_fake_driver():
    # tests/fake_cuda (built beside libtile as fake_cuda/libcuda.so.1) reports 132 multiprocessors
    fake = os.path.join(os.path.dirname(os.path.abspath(tile.library_path)), "fake_cuda")
    if not os.path.exists(os.path.join(fake, "libcuda.so.1")):
        pytest.skip("no fake_cuda/libcuda.so.1 beside libtile (the build's tests/fake_cuda)")
    env = dict(os.environ, LD_LIBRARY_PATH=fake, TILE_LIBRARY=os.path.abspath(tile.library_path),
               TILE_VM_NUM_SMS="7", PYTHONPATH=os.path.dirname(os.path.dirname(tile.__file__)))
    r = subprocess.run([sys.executable, "-c", "import tile; c = tile.context('cuda'); print(c.name, c.num_sms)"],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0 and "fake GPU" in r.stdout and r.stdout.split()[-1] == "132", r.stderr


@pytest.mark.parametrize("m, n, k, sms, want", [
    (1, 8192, 8192, 132, (4, 16)),     # the H200's decode shapes: 64 tiles, two blocks per SM
    (16, 8192, 8192, 132, (4, 16)),
    (64, 8192, 8192, 132, (4, 64)),
    (65, 8192, 8192, 132, (1, 64)),    # more than 64 rows: gemm.tile
    (128, 8192, 8192, 132, (1, 64)),
    (1, 64, 2048, 4, (8, 16)),         # at most k_tiles / 4
    (1, 64, 100000, 4, (8, 16)),       # at most 2 * num_sms / tiles
    (1, 64, 100000, 132, (16, 16)),    # at most 16
    (5, 70, 300, 4, (1, 16)),          # 5 slices of K: too short to split
    (5, 70, 700, 4, (2, 16)),
    (37, 130, 1000, 4, (4, 64)),
    (1, 256, 1024, 1, (1, 16)),        # 2 tiles on one SM
    (0, 64, 2048, 4, (1, 16)),         # nothing to compute
    (1, 0, 2048, 4, (1, 16)),
    (1, 64, 0, 4, (1, 16)),
])
def test_the_rule(m, n, k, sms, want):
    assert stdlib._gemm_splits(m, n, k, sms) == want


@pytest.mark.parametrize("m, bm", [(1, 16), (16, 16)])
def test_decode_shapes_run_split_k(launches, vm_sms, m, bm):
    n, k, s = 64, 2048, 8                # one tile, 32 slices of K on 4 SMs: S = min(8, 8)
    a, b = bf16(m, k), bf16(k, n)
    # out= as packed storage: an allocated bf16 result is a numpy array where numpy has bfloat16
    c = stdlib.gemm_splitk(a, b, out=tile.Packed(np.zeros(m * n * 2, np.uint8), tile.bf16, (m, n)))
    assert launches == [("gemm_splitk_partial", dict(BM=bm, BN=128, BK=64, W=4), [(m, k), (k, n), (s, m, n)]),
                        ("gemm_splitk_reduce", {}, [(s, m, n), (m, n)])]
    assert isinstance(c, tile.Packed) and c.dtype == tile.bf16 and tuple(c.shape) == (m, n)
    check_product(a, b, c)
    # the same bits as the two kernels launched by hand at the rule's S
    w = np.empty((s, m, n), np.float32)
    direct = tile.Packed(np.empty(m * n * 2, np.uint8), tile.bf16, (m, n))
    prog = tile.load(os.path.join(STDLIB, "gemm_splitk.tile"), "vm")
    prog.kernel("gemm_splitk_partial", BM=bm, BN=128, BK=64, W=4)(a, b, w)
    prog.gemm_splitk_reduce(w, direct)
    assert (c.storage == direct.storage).all()


@pytest.mark.parametrize("m, n, k, splits", [
    (5, 70, 300, 1),        # 5 slices of K: too short to split
    (5, 70, 700, 2),
    (37, 130, 1000, 4),     # BM = 64, two tiles of N
])
def test_ragged_shapes(launches, vm_sms, m, n, k, splits):
    a, b = bf16(m, k), bf16(k, n)
    c = stdlib.gemm_splitk(a, b)
    assert [(name, shapes[-1]) for name, _, shapes in launches] == [
        ("gemm_splitk_partial", (splits, m, n)), ("gemm_splitk_reduce", (m, n))]
    check_product(a, b, c)


def test_splits_given_and_bad(launches, vm_sms):
    a, b = bf16(3, 900), bf16(900, 40)
    check_product(a, b, stdlib.gemm_splitk(a, b, splits=3))
    assert launches[0][2][-1] == (3, 3, 40)
    with pytest.raises(ValueError, match="splits is at least 1"):
        stdlib.gemm_splitk(a, b, splits=0)


def test_gemm_stays_the_gemm_kernel(launches, vm_sms):
    a, b = bf16(1, 2048), bf16(2048, 64)   # a decode shape: gemm_splitk's rule would split (S = 8)
    check_product(a, b, stdlib.gemm(a, b))
    check_product(a, b, stdlib.gemm(a, b, BM=16, BN=32, BK=32))
    assert launches == [("gemm", {}, [(1, 2048), (2048, 64), (1, 64)]),
                        ("gemm", dict(BM=16, BN=32, BK=32), [(1, 2048), (2048, 64), (1, 64)])]
    del launches[:]
    # an epilogue option: its kernel, with the empty bias and residual the package makes (numpy
    # reports stride 0 for an empty array: still contiguous storage)
    c = stdlib.gemm(a, b, alpha=2.0)
    assert [name for name, _, shapes in launches] == ["gemm_epilogue"]
    assert launches[0][2][3:5] == [(0,), (0, 0)]
    np.testing.assert_allclose(tile.unpack(c), 2 * (tile.unpack(a) @ tile.unpack(b)), rtol=2 ** -7, atol=1e-4)


def test_the_splits_follow_the_devices_sm_count(launches, vm_sms):
    a, b = bf16(1, 1024), bf16(1024, 256)   # two tiles: S = 4 on 4 SMs, 1 on one
    out = tile.Packed(np.zeros(256 * 2, np.uint8), tile.bf16, (1, 256))
    assert stdlib.gemm_splitk(a, b, out=out) is out
    check_product(a, b, out)
    vm_sms("1")
    check_product(a, b, stdlib.gemm_splitk(a, b))
    assert [shapes[-1] for name, _, shapes in launches if name == "gemm_splitk_partial"] == [(4, 1, 256), (1, 1, 256)]

"""The tile package on the VM with numpy: finding libtile, contexts, programs, kernels,
launches in place on numpy arrays (strided views included), every way an argument reaches a
launch (numpy, tile.Packed, __dlpack__, __array_interface__), and the errors: compile errors
with file:line:col, launch errors naming the parameter, bad Python arguments."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, STDLIB
import tile

AXPY = """
kernel axpy<BLOCK = 64>(x: tensor<f32>[N], y: tensor<f32>[N], alpha: f32)
  grid(cdiv(N, BLOCK))
{
  let i = block_id(0) * BLOCK;
  y[i :+ BLOCK] = alpha * x[i :+ BLOCK] + y[i :+ BLOCK];
}
kernel scale2d(x: tensor<f32>[M, N], y: tensor<f32>[M, N], k: i32) grid(M)
{
  let m = block_id(0);
  y[m, 0 :+ 64] = x[m, 0 :+ 64] * cast<f32>(k);
}
"""


@pytest.fixture(scope="module")
def vm():
    return tile.context("vm")


@pytest.fixture(scope="module")
def axpy_prog(vm):
    return tile.program(AXPY, "axpy.tile", vm)


def run_python(code, env_extra, cwd=REPO):
    env = dict(os.environ, **env_extra)
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True)


# ---- finding libtile ----------------------------------------------------------------------------
def test_import_finds_the_build_library():
    # from the repository root after scripts/run.sh (which builds in build/)
    built = os.path.join(REPO, "build", "libtile.so")
    if not os.path.exists(built):
        pytest.skip("no build/libtile.so (built elsewhere)")
    r = run_python("import tile; print(tile.library_path)", {"PYTHONPATH": "python", "TILE_LIBRARY": ""})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == built


def test_tile_library_overrides_and_bad_path_is_an_import_error():
    lib = os.path.abspath(tile.library_path)
    r = run_python("import tile; print(tile.library_path)", {"PYTHONPATH": "python", "TILE_LIBRARY": lib})
    assert r.returncode == 0 and r.stdout.strip() == lib, r.stderr
    r = run_python("import tile", {"PYTHONPATH": "python", "TILE_LIBRARY": "/nonexistent/libtile.so"})
    assert r.returncode != 0
    assert "TILE_LIBRARY=/nonexistent/libtile.so" in r.stderr and "ImportError" in r.stderr


def test_installed_layout_is_found(tmp_path):
    # <prefix>/lib/python3/dist-packages/tile next to <prefix>/lib/libtile.so.0
    site = tmp_path / "lib" / "python3" / "dist-packages"
    shutil.copytree(os.path.join(REPO, "python", "tile"), site / "tile",
                    ignore=shutil.ignore_patterns("__pycache__"))
    os.symlink(os.path.abspath(tile.library_path), tmp_path / "lib" / "libtile.so.0")   # 57 MB: link, not copy
    r = run_python("import tile; print(tile.library_path)", {"PYTHONPATH": str(site), "TILE_LIBRARY": ""},
                   cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(tmp_path / "lib" / "libtile.so.0")


def test_version_and_contexts(vm):
    assert tile.__version__.count(".") == 2
    assert vm.kind == "vm" and vm.name == "vm (CPU interpreter)"
    assert tile.context("vm") is vm
    with pytest.raises(ValueError, match="expected 'vm', 'cuda' or 'cuda:N'"):
        tile.context("tpu")
    with pytest.raises(tile.NotFoundError, match="vm:1"):
        tile.Context(("vm", 1))


# ---- dtypes --------------------------------------------------------------------------------------
def test_dtype_codes_match_tile_h():
    # TILE_FLOAT(8, 23) = 3 << 24 | 32 << 16 | 8 << 8 | 23, and so on
    assert tile.f32.code == 3 << 24 | 32 << 16 | 8 << 8 | 23
    assert tile.bf16.code == 3 << 24 | 16 << 16 | 8 << 8 | 7
    assert tile.i32.code == 1 << 24 | 32 << 16
    assert tile.u8.code == 2 << 24 | 8 << 16
    assert tile.bool_.code == 1 << 16
    assert tile.f8e4m3.code == 3 << 24 | 8 << 16 | 4 << 8 | 3


@pytest.mark.parametrize("name", ["bool", "i1", "i7", "i64", "u4", "u64", "f16", "bf16", "f32", "f64",
                                  "f8e4m3", "f8e5m2", "f4e2m1", "f6e3m2"])
def test_dtype_names_round_trip(name):
    d = tile.dtype(name)
    assert str(d) == name and tile.dtype(d.code) == d and d == name


@pytest.mark.parametrize("name", ["f8", "i0", "i65", "f9e4m3", "float", "f16e5m10x", ""])
def test_bad_dtype_names(name):
    with pytest.raises(ValueError):
        tile.dtype(name)


def test_numpy_dtypes_both_ways():
    pairs = [(np.bool_, "bool"), (np.int8, "i8"), (np.int16, "i16"), (np.int32, "i32"), (np.int64, "i64"),
             (np.uint8, "u8"), (np.uint16, "u16"), (np.uint32, "u32"), (np.uint64, "u64"),
             (np.float16, "f16"), (np.float32, "f32"), (np.float64, "f64")]
    for nd, name in pairs:
        assert tile.dtype(nd) == tile.dtype(np.dtype(nd)) == tile.dtype(name)
        assert tile.from_numpy_dtype(np.dtype(nd)) == tile.dtype(name)
        assert tile.to_numpy_dtype(name) == np.dtype(nd)
        assert tile.describe(np.zeros(3, nd))[1] == tile.dtype(name).code
    assert tile.to_numpy_dtype("u4") is None
    with pytest.raises(TypeError, match="complex64"):
        tile.dtype(np.complex64)


def test_pack_and_unpack():
    x = tile.pack([1.0, 1.00390625, -3.0, 1e9], tile.bf16)
    assert x.storage.dtype == np.uint8 and x.storage.nbytes == 8 and x.shape == (4,)
    # 1 + 2^-8 is a tie between bf16 1.0 and 1 + 2^-7: nearest even is 1.0; 1e9 rounds to 238 * 2^22
    assert list(tile.unpack(x)) == [1.0, 1.0, -3.0, 238 * 2.0**22]
    e4 = tile.pack([448.0, 1000.0, 0.1], tile.f8e4m3)   # saturates at 448, as the VM does
    assert list(tile.unpack(e4)) == [448.0, 448.0, 0.1015625]
    u3 = tile.pack(np.arange(8).reshape(2, 4), "u3")
    assert u3.storage.nbytes == 3 and u3.shape == (2, 4)
    assert (tile.unpack(u3) == np.arange(8).reshape(2, 4)).all()


# ---- programs and kernels ------------------------------------------------------------------------
def test_program_kernels_and_params(axpy_prog):
    assert axpy_prog.kernel_names == ["axpy", "scale2d"]
    k = axpy_prog.kernel("axpy")
    assert [repr(p) for p in k.params] == ["x: tensor<f32>[N]", "y: tensor<f32>[N]", "alpha: f32"]
    assert k.params[0].kind == "tensor" and k.params[2].kind == "float"
    assert [p.written for p in k.params] == [False, True, False]
    assert axpy_prog.axpy is k
    assert axpy_prog.kernel("axpy", BLOCK=32) is axpy_prog.kernel("axpy", BLOCK=32)
    assert axpy_prog.kernel("axpy", BLOCK=32) is not k
    with pytest.raises(AttributeError, match="no kernel 'nope'"):
        axpy_prog.nope
    assert "axpy" in axpy_prog.emit("axpy", "ir", BLOCK=32)


def test_launch_writes_numpy_in_place(axpy_prog):
    x = np.arange(1000, dtype=np.float32)
    y = np.ones(1000, dtype=np.float32)
    before = y.ctypes.data
    axpy_prog.kernel("axpy", BLOCK=128)(x, y, 2.0)
    assert y.ctypes.data == before
    np.testing.assert_array_equal(y, 2 * np.arange(1000, dtype=np.float32) + 1)
    # by name, an int for a float parameter, a numpy scalar
    axpy_prog.axpy(x=x, y=y, alpha=np.float32(-1))
    axpy_prog.axpy(x, y=y, alpha=1)
    np.testing.assert_array_equal(y, 2 * np.arange(1000, dtype=np.float32) + 1)


def test_strided_views(axpy_prog):
    base = np.arange(30 * 128, dtype=np.float32).reshape(30, 128)
    out = np.zeros((30, 256), dtype=np.float32)
    axpy_prog.scale2d(base[:, ::2], out[:, 1::4], 3)     # element strides (128, 2) and (256, 4)
    np.testing.assert_array_equal(out[:, 1::4], 3 * base[:, ::2])
    assert (out[:, 0::4] == 0).all() and (out[:, 2::4] == 0).all()
    # a transposed view reads through its strides
    t = np.arange(64 * 8, dtype=np.float32).reshape(64, 8).T
    y = np.zeros((8, 64), dtype=np.float32)
    axpy_prog.scale2d(t, y, 1)
    np.testing.assert_array_equal(y, t)


def test_sub_byte_and_small_float_tensors(vm):
    prog = tile.program("""
kernel inc<BLOCK = 64>(x: tensor<u4>[N], y: tensor<u4>[N], k: u4) grid(cdiv(N, BLOCK))
{
  let i = block_id(0) * BLOCK;
  y[i :+ BLOCK] = x[i :+ BLOCK] + k;
}
kernel widen(x: tensor<f8e4m3>[N], y: tensor<f32>[N]) grid(cdiv(N, 64))
{
  let i = block_id(0) * 64;
  y[i :+ 64] = cast<f32>(x[i :+ 64]);
}
""", "packed.tile", vm)
    x = tile.pack(np.arange(100) % 16, tile.u4)
    y = tile.Packed(np.zeros(50, np.uint8), "u4", (100,))
    prog.inc(x, y, 3)
    np.testing.assert_array_equal(tile.unpack(y), (np.arange(100) + 3) % 16)
    f8 = tile.pack(np.linspace(-4, 4, 100), tile.f8e4m3)
    out = np.zeros(100, np.float32)
    prog.widen(f8, out)
    np.testing.assert_array_equal(out, tile.unpack(f8))
    with pytest.raises(ValueError, match="need 50 bytes; the storage has 49"):
        tile.Packed(np.zeros(49, np.uint8), "u4", (100,))
    with pytest.raises(ValueError, match="contiguous"):
        tile.Packed(np.zeros(100, np.uint8)[::2], "u4", (100,))


class DLPackOnly:
    """An array that offers only __dlpack__ (as many libraries do)."""

    def __init__(self, a):
        self._a = a

    def __dlpack__(self, **kwargs):
        return self._a.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()


class ArrayInterfaceOnly:
    def __init__(self, a):
        self.__array_interface__ = a.__array_interface__
        self._a = a


def test_dlpack_and_array_interface_producers(axpy_prog):
    x = np.arange(100, dtype=np.float32)
    y = np.zeros(100, dtype=np.float32)
    axpy_prog.axpy(DLPackOnly(x), DLPackOnly(y), 1.0)
    np.testing.assert_array_equal(y, x)
    axpy_prog.axpy(ArrayInterfaceOnly(x), ArrayInterfaceOnly(y), 1.0)
    np.testing.assert_array_equal(y, 2 * x)
    dev, code, ptr, shape, strides = tile.describe(DLPackOnly(np.zeros((3, 5), np.int16)[:, ::2]))
    assert dev == ("vm", 0) and code == tile.i16.code and shape == (3, 3) and strides == (5, 2)


# ---- errors ---------------------------------------------------------------------------------------
def test_syntax_error_is_located(vm):
    with pytest.raises(tile.CompileError) as e:
        tile.program("kernel f(x: tensor<f32>[N] grid(1) { }\n", "bad.tile", vm)
    assert e.value.status == "TILE_ERROR_COMPILE"
    (d,) = e.value.diagnostics
    assert (d.file, d.line, d.col, d.severity) == ("bad.tile", 1, 28, "error")
    assert str(e.value).startswith("bad.tile:1:28: error: ")
    assert "^" in e.value.message   # the source line and a caret come along


def test_type_error_is_located_at_kernel(vm):
    prog = tile.program("kernel f(x: tensor<f32>[N]) grid(1)\n{\n  x[0] = y;\n}\n", "undef.tile", vm)
    with pytest.raises(tile.CompileError) as e:
        prog.kernel("f")
    assert [(d.file, d.line, d.col) for d in e.value.diagnostics] == [("undef.tile", 3, 10)]
    assert "unknown name 'y'" in e.value.diagnostics[0].message


def test_file_errors(vm, tmp_path):
    with pytest.raises(tile.NotFoundError, match="nonexistent.tile"):
        tile.load(str(tmp_path / "nonexistent.tile"), vm)
    bad = tmp_path / "two.tile"
    bad.write_text("kernel k(x: tensor<f32>[N]) grid(1) {\n  x[0] = 1.0 +;\n}\n")
    with pytest.raises(tile.CompileError) as e:
        tile.load(str(bad), vm)
    assert e.value.diagnostics[0].file == str(bad) and e.value.diagnostics[0].line == 2
    prog = tile.load(os.path.join(STDLIB, "vector_add.tile"), vm)
    with pytest.raises(tile.NotFoundError, match="no kernel named 'nope'"):
        prog.kernel("nope")


def test_constant_errors(axpy_prog):
    with pytest.raises(TypeError, match="BLOCK='big'"):
        axpy_prog.kernel("axpy", BLOCK="big")
    with pytest.raises(tile.CompileError, match="NOPE"):
        axpy_prog.kernel("axpy", NOPE=3)


def test_launch_errors_name_the_parameter(axpy_prog):
    k = axpy_prog.axpy
    x = np.zeros(100, np.float32)
    with pytest.raises(tile.LaunchError, match="takes 3 arguments but 2 were given"):
        k(x, x)
    with pytest.raises(tile.LaunchError, match="tensor 'y' has element type f64 but the kernel expects f32") as e:
        k(x, np.zeros(100), 1.0)
    assert e.value.status == "TILE_ERROR_INVALID_ARGUMENT"
    with pytest.raises(tile.LaunchError, match=r"tensor 'y' dimension 0 \(N\) is 99 but 'x' bound N = 100"):
        k(x, np.zeros(99, np.float32), 1.0)
    with pytest.raises(tile.LaunchError, match="'y' has rank 2"):
        k(x, np.zeros((100, 1), np.float32), 1.0)
    with pytest.raises(tile.LaunchError, match="argument 'alpha' must be a float"):
        k(x, x, x)
    with pytest.raises(tile.LaunchError, match="argument 'k' must be an integer"):
        axpy_prog.scale2d(np.zeros((2, 64), np.float32), np.zeros((2, 64), np.float32), 1.5)
    with pytest.raises(tile.LaunchError, match="negative stride"):
        k(x[::-1], x, 1.0)


def test_bad_python_arguments(axpy_prog):
    k = axpy_prog.axpy
    x = np.zeros(10, np.float32)
    with pytest.raises(TypeError, match="argument 'y' is a list"):
        k(x, [0.0] * 10, 1.0)
    with pytest.raises(TypeError, match="argument 'x' is a str"):
        k("x", x, 1.0)
    with pytest.raises(TypeError, match="no parameter 'z'"):
        k(x, x, z=1.0)
    with pytest.raises(TypeError, match="missing 'alpha'"):
        k(x, y=x)
    with pytest.raises(TypeError, match="got parameter 'x' twice"):
        k(x, x, 1.0, x=x)
    with pytest.raises(TypeError, match="complex64"):
        k(x, np.zeros(10, np.complex64), 1.0)
    with pytest.raises(ValueError, match="rank 7"):
        k(np.zeros((1,) * 7, np.float32), x, 1.0)


WIDE = """
kernel wide(y: tensor<u64>[N], v: u64, w: i64) grid(1)
{
  y[0 :+ 1] = full<u64>[1](v);
  y[1 :+ 1] = full<u64>[1](cast<u64>(w));
}
"""


def test_64_bit_scalars(vm):
    k = tile.program(WIDE, "wide.tile", vm).wide
    y = np.zeros(2, np.uint64)
    k(y, 2**64 - 1, -5)
    assert y[0] == 2**64 - 1 and y[1] == np.uint64(2**64 - 5)
    k(y, 2**63, -2**63)
    assert y[0] == 2**63 and y[1] == 2**63
    for v, w, what in ((2**64, 0, "'v' = 18446744073709551616 does not fit in u64"),
                       (-1, 0, "'v' = -1 does not fit in u64"),
                       (0, 2**63, "'w' = 9223372036854775808 does not fit in i64"),
                       (0, -2**63 - 1, "does not fit in i64"), (0, 2**80, "does not fit in i64")):
        with pytest.raises(OverflowError, match=what):
            k(y, v, w)


class ReadOnlyHostArray:
    """A host array whose __array_interface__ says its memory is read-only."""
    def __init__(self, a):
        self.a = a
        self.__array_interface__ = dict(a.__array_interface__, data=(a.ctypes.data, True))


def test_read_only_memory_is_refused_where_the_kernel_writes(axpy_prog, tmp_path):
    k = axpy_prog.axpy
    x = np.arange(100, dtype=np.float32)
    frozen = np.frombuffer(np.ones(100, np.float32).tobytes(), np.float32)   # over immutable bytes
    assert not frozen.flags.writeable
    with pytest.raises(ValueError, match="argument 'y' is read-only, and the kernel writes it"):
        k(x, frozen, 2.0)
    assert (frozen == 1).all()
    np.save(tmp_path / "y.npy", np.ones(100, np.float32))
    mapped = np.load(tmp_path / "y.npy", mmap_mode="r")   # a write would fault
    with pytest.raises(ValueError, match="argument 'y' is read-only"):
        k(x, mapped, 2.0)
    with pytest.raises(ValueError, match="argument 'y' is read-only"):
        k(x, tile.Packed(frozen.view(np.uint8), "f32"), 2.0)
    with pytest.raises(ValueError, match="argument 'y' is read-only"):
        k(x, ReadOnlyHostArray(np.ones(100, np.float32)), 2.0)
    frozen_gpu = FakeGpuArray()   # refused before any GPU is asked for
    frozen_gpu.__cuda_array_interface__ = dict(FakeGpuArray.__cuda_array_interface__, data=(0xdead0000, True))
    with pytest.raises(ValueError, match="argument 'y' is read-only"):
        k(FakeGpuArray(), frozen_gpu, 2.0)
    # read-only memory is fine where the kernel only reads
    y = np.ones(100, np.float32)
    k(frozen, y, 2.0)
    k(mapped, y, 1.0)
    k(ReadOnlyHostArray(np.ones(100, np.float32)), y, 1.0)
    np.testing.assert_array_equal(y, np.full(100, 5, np.float32))


class FakeGpuArray:
    """A CUDA array interface with a made-up pointer: on a machine without a GPU the launch
    must fail cleanly while making the cuda context, never touch the pointer."""
    __cuda_array_interface__ = {"shape": (10,), "typestr": "<f4", "data": (0xdead0000, False), "version": 3,
                                "strides": None}


def test_gpu_arrays_without_a_gpu(axpy_prog):
    if tile.Context().kind == "cuda":
        pytest.skip("this machine has a GPU")
    with pytest.raises(tile.TileError, match="cuda"):
        axpy_prog.axpy(FakeGpuArray(), FakeGpuArray(), 1.0)
    with pytest.raises(ValueError, match=r"is on a GPU \(cuda\) but an earlier one is on the host"):
        axpy_prog.axpy(np.zeros(10, np.float32), FakeGpuArray(), 1.0)


def test_default_context_follows_tile_device():
    r = run_python("import tile; c = tile.context(); print(c.kind, c.name)",
                   {"PYTHONPATH": "python", "TILE_DEVICE": "vm"})
    assert r.returncode == 0 and r.stdout.strip() == "vm vm (CPU interpreter)", r.stderr
    r = run_python("import tile; tile.context()", {"PYTHONPATH": "python", "TILE_DEVICE": "tpu"})
    assert r.returncode != 0 and "TILE_DEVICE=tpu: expected vm or cuda" in r.stderr


def test_streams_on_the_vm(axpy_prog, vm):
    x, y = np.ones(64, np.float32), np.zeros(64, np.float32)
    s = tile.Stream(vm)
    axpy_prog.axpy(x, y, 1.0, stream=s)     # the VM runs launches before they return
    s.synchronize()
    w = tile.Stream.wrap(vm, 0x1234)        # any value: the VM ignores it
    axpy_prog.axpy(x, y, 1.0, stream=w)
    w.synchronize()
    np.testing.assert_array_equal(y, 2 * x)
    s.close()
    w.close()


def test_launches_from_threads(axpy_prog):
    import threading
    k = axpy_prog.kernel("axpy", BLOCK=32)
    outs = [np.zeros(500, np.float32) for _ in range(4)]
    x = np.arange(500, dtype=np.float32)
    errors = []

    def work(i):
        try:
            for _ in range(5):
                k(x, outs[i], float(i + 1))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i, o in enumerate(outs):
        np.testing.assert_array_equal(o, 5 * (i + 1) * x)


def test_private_context_and_program_lifetimes():
    ctx = tile.Context("vm")
    prog = tile.program(AXPY, "axpy.tile", ctx)
    k = prog.kernel("axpy")
    y = np.zeros(10, np.float32)
    k(np.ones(10, np.float32), y, 3.0)
    assert (y == 3).all()
    del prog   # the kernel keeps its program alive
    k(np.ones(10, np.float32), y, 3.0)
    assert (y == 6).all()
    ctx.close()
    ctx.close()   # twice is harmless


def test_emit_gpu_code_without_a_gpu(axpy_prog):
    try:
        ptx = axpy_prog.emit("axpy", "ptx", arch="sm_80", BLOCK=128)
    except tile.UnsupportedError as e:
        pytest.skip(f"no GPU backend: {e}")
    assert ".visible .entry axpy(" in ptx and ".target sm_80" in ptx
    try:
        cubin = axpy_prog.emit("axpy", "cubin", arch="sm_90a")
    except tile.UnsupportedError as e:
        pytest.skip(f"no assembler: {e}")
    assert isinstance(cubin, bytes) and cubin[:4] == b"\x7fELF"
    with pytest.raises(ValueError, match="emit kind 'sass'"):
        axpy_prog.emit("axpy", "sass")
    with pytest.raises(tile.TileError, match="sm_12"):
        axpy_prog.emit("axpy", "ptx", arch="sm_12")

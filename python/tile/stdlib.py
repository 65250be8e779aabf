"""The standard library's kernels (stdlib/core/*.tile, stdlib/attention/*.tile) as functions on arrays.

Each function takes arrays (numpy arrays run on the VM, torch tensors on their device), makes
the outputs it is not given (out=) like its first input, launches the kernel on the device of
its inputs and returns the outputs. Keyword constants (BLOCK=, BM=, ...) specialize the kernel
as prog.kernel() does. Element types are the kernels' (f32, bf16 for gemm and flash_fwd): pass arrays of
those types (numpy has no bf16: use tile.pack(values, tile.bf16), read with tile.unpack).

The sources are found in $TILE_STDLIB, the source tree this package sits in (stdlib/), or an
installed prefix (share/tile/stdlib, share/tile). A kernel without a function here is still
reachable: tile.stdlib.<kernel> is its Kernel (launch it with every argument, outputs
included), and tile.stdlib.kernel(name, **constants) specializes it.
"""
import glob
import math
import os
import re
import sys

from . import _arrays, _core
from ._core import Program, context as _context
from ._dtypes import DType

__all__ = ["GEMM_ACTIVATIONS", "cumsum_rows", "flash_fwd", "gather_rows", "gemm", "gemm_fp8", "gemm_splitk", "kernel", "kernel_names", "layernorm", "path", "softmax",
           "sum_all", "sum_rows", "vector_add"]


def _find_root():
    env = os.environ.get("TILE_STDLIB")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [os.path.join(os.path.dirname(os.path.dirname(here)), "stdlib")]
    up = here
    for _ in range(6):
        up = os.path.dirname(up)
        candidates += [os.path.join(up, "share", "tile", "stdlib"), os.path.join(up, "share", "tile")]
    candidates += ["/usr/local/share/tile/stdlib", "/usr/local/share/tile", "/usr/share/tile/stdlib", "/usr/share/tile"]
    for c in candidates:
        if glob.glob(os.path.join(c, "core", "*.tile")) or glob.glob(os.path.join(c, "*.tile")):
            return c
    return None


path = _find_root()
_KERNEL = re.compile(rb"^\s*kernel\s+([A-Za-z_][A-Za-z0-9_]*)", re.M)


def _files():
    if path is None:
        raise FileNotFoundError("tile.stdlib: cannot find the stdlib sources; set TILE_STDLIB to their folder")
    return sorted(glob.glob(os.path.join(path, "core", "*.tile")) + glob.glob(os.path.join(path, "attention", "*.tile"))
                  + glob.glob(os.path.join(path, "*.tile")))


_index = None


def _kernel_files():
    """kernel name -> the file that defines it, scanned once."""
    global _index
    if _index is None:
        _index = {}
        for f in _files():
            with open(f, "rb") as fh:
                for m in _KERNEL.finditer(fh.read()):
                    _index.setdefault(m.group(1).decode(), f)
    return _index


def kernel_names():
    """Every kernel of the standard library, sorted."""
    return sorted(_kernel_files())


_programs = {}


def _program(file, device):
    key = (file, device)
    p = _programs.get(key)
    if p is None:
        p = _programs[key] = Program.from_file(file, _context(device))
    return p


def kernel(name, device=None, **constants):
    """The standard-library Kernel `name` specialized by constants, compiled on device (None:
    the default device); it launches wherever its arrays are."""
    f = _kernel_files().get(name)
    if f is None:
        raise AttributeError(f"tile.stdlib has no kernel '{name}' (kernels: {', '.join(kernel_names())})")
    return _program(f, _context(device).device).kernel(name, **constants)


def _device(ref):
    """ref's device (GPU arrays that do not name their GPU: cuda:0); for a numpy array or a
    torch tensor without describing all of it."""
    if _arrays.np is not None and type(ref) is _arrays.np.ndarray:
        return _arrays.VM
    torch = sys.modules.get("torch")
    if torch is not None and type(ref) is torch.Tensor and ref.is_cuda:
        return ("cuda", ref.get_device())
    device = _arrays.describe(ref)[0]
    return ("cuda", 0) if device[1] is None else device


_kernels = {}   # (name, device, constants) -> Kernel: what kernel() gives, without its lookups


def _on(ref, name, constants):
    """The kernel for arrays on ref's device."""
    device = _device(ref)
    try:
        key = (name, device, _core._constants_key(constants)) if constants else (name, device)
        k = _kernels.get(key)
    except TypeError:   # a constant that cannot be a key: kernel() says what is wrong with it
        return kernel(name, device, **constants)
    if k is None:
        k = _kernels[key] = kernel(name, device, **constants)
    return k


def _shape_dtype(a):
    d = _arrays.describe(a)
    return tuple(d[3]), DType(d[1])


def vector_add(a, b, out=None, **constants):
    """out = a + b (f32 vectors)."""
    shape, dt = _shape_dtype(a)
    if out is None:
        out = _arrays.empty_like(a, dt, shape)
    _on(a, "vector_add", constants)(a, b, out)
    return out


def softmax(x, out=None, **constants):
    """Softmax along each row of x [M, N] (f32)."""
    shape, dt = _shape_dtype(x)
    if out is None:
        out = _arrays.empty_like(x, dt, shape)
    _on(x, "softmax", constants)(x, out)
    return out


def layernorm(x, weight, bias, eps=1e-5, out=None, **constants):
    """(x - mean) / sqrt(var + eps) * weight + bias along each row of x [M, N] (f32)."""
    shape, dt = _shape_dtype(x)
    if out is None:
        out = _arrays.empty_like(x, dt, shape)
    _on(x, "layernorm", constants)(x, weight, bias, out, float(eps))
    return out


def _gemm_splits(m, n, k, num_sms):
    """The number of K splits S for a bf16 C[m, n] = A[m, k] @ B[k, n] on a device of num_sms
    SMs, and the split-K kernel's BM: S > 1 means gemm_splitk.tile (BM, BN = 128, BK = 64, W = 4),
    S = 1 gemm.tile. The rule is the one at the top of stdlib/core/gemm_splitk.tile, for at most
    64 rows: S = max(1, min(2 * num_sms / tiles, k_tiles / 4, 16)) with tiles = cdiv(m, BM) *
    cdiv(n, 128), k_tiles = cdiv(k, 64), BM = 16 for m <= 16, else 64. bench/bench_gemm.c has
    the same rule in C (splitk_rule, bench_library): change both together."""
    bm = 16 if m <= 16 else 64
    if m > 64 or m == 0 or n == 0:
        return 1, bm
    tiles = -(-m // bm) * -(-n // 128)
    return max(1, min(2 * num_sms // tiles, -(-k // 64) // 4, 16)), bm


def gemm_splitk(a, b, out=None, splits=None):
    """a @ b for bf16 a [M, K] and b [K, N], a bf16 result, by split-K (stdlib/core/gemm_splitk.tile:
    gemm_splitk_partial over an f32 workspace [S, M, N] made like a, then gemm_splitk_reduce).
    S is splits, or the rule atop that file for this shape and the device's SM count
    (_gemm_splits, Context.num_sms; at least 1). It is the faster kernel for few output tiles
    against a long K (decode: M <= 64), where the GPU runs it in less time than gemm
    (bench_gemm: 1.055 / 1.029 of cuBLAS at M = 1 / 16, N = K = 8192, on the H200). `gemm` does not
    choose it by itself: from Python its two launches cost host time (a launch through the
    package takes about 17 µs, bench/results/python-h200.json), and whether it wins back to back
    depends on the host: on the H200 at M = 1, 37.6 µs a call against gemm's 51.9 and torch's
    35.5 in one run, 75 µs in a run on a slower host. Under a CUDA graph, or from C, that cost
    is gone."""
    (m, k), _ = _shape_dtype(a)
    (_, n), _ = _shape_dtype(b)
    device = _device(a)
    rule, bm = _gemm_splits(m, n, k, _context(device).num_sms)
    splits = max(1, rule) if splits is None else int(splits)
    if splits < 1:
        raise ValueError(f"tile.stdlib.gemm_splitk: splits is at least 1, not {splits}")
    if out is None:
        out = _arrays.empty_like(a, "bf16", (m, n))
    w = _arrays.empty_like(a, "f32", (splits, m, n))
    kernel("gemm_splitk_partial", device, BM=bm, BN=128, BK=64, W=4)(a, b, w)
    kernel("gemm_splitk_reduce", device)(w, out)
    return out


# activation= of gemm -> the ACT constant of stdlib/core/gemm.tile's epilogue kernels
GEMM_ACTIVATIONS = {None: 0, "none": 0, "relu": 1, "gelu": 2, "gelu_tanh": 3, "silu": 4, "swiglu": 5}
# the result type -> the epilogue kernel that writes it
_GEMM_EPILOGUE_KERNELS = {"bf16": "gemm_epilogue", "f16": "gemm_epilogue_f16", "f32": "gemm_epilogue_f32"}


def gemm(a, b, out=None, bias=None, residual=None, alpha=1.0, activation=None, out_dtype=None, **constants):
    """act(alpha * (a @ b) + bias) + residual for bf16 a [M, K] and b [K, N], f32 accumulation, the
    epilogue in f32 and one rounding to the result type (bf16 unless out= or out_dtype= says f16
    or f32; bias [N] and residual [M, N] have that type). activation is None, "relu", "gelu"
    (erf: torch's F.gelu), "gelu_tanh" (F.gelu(approximate="tanh")), "silu" or "swiglu": b is
    then [K, 2 N] and out[:, j] = silu(p[:, j]) * p[:, N + j] of p = alpha * (a @ b) + bias
    (bias [2 N]). Without options this is the kernel `gemm` (gemm_splitk is the split-K GEMM for
    decode shapes); with any, `gemm_epilogue` (or its _f16/_f32 twin) specialized by HAS_BIAS,
    HAS_RESIDUAL and ACT."""
    from ._dtypes import dtype as _dtype
    (m, _), dt = _shape_dtype(a)
    (_, cols), _ = _shape_dtype(b)
    if activation not in GEMM_ACTIVATIONS:
        raise ValueError(f"tile.stdlib.gemm: activation {activation!r} is not one of "
                         f"{', '.join(repr(k) for k in GEMM_ACTIVATIONS)}")
    act = GEMM_ACTIVATIONS[activation]
    if act == GEMM_ACTIVATIONS["swiglu"] and cols % 2:
        raise ValueError(f"tile.stdlib.gemm: swiglu needs b with an even number of columns, not {cols}")
    n = cols // 2 if act == GEMM_ACTIVATIONS["swiglu"] else cols
    if out_dtype is not None:
        out_dtype = _dtype(out_dtype)
    elif out is not None:
        out_dtype = _shape_dtype(out)[1]
    else:
        out_dtype = dt
    if out is None:
        out = _arrays.empty_like(a, out_dtype, (m, n))
    if bias is None and residual is None and alpha == 1.0 and act == 0 and str(out_dtype) == "bf16":
        _on(a, "gemm", constants)(a, b, out)
        return out
    name = _GEMM_EPILOGUE_KERNELS.get(str(out_dtype))
    if name is None:
        raise ValueError(f"tile.stdlib.gemm: the result type is bf16, f16 or f32, not {out_dtype}")
    constants.update(HAS_BIAS=int(bias is not None), HAS_RESIDUAL=int(residual is not None), ACT=act)
    if bias is None:
        bias = _arrays.empty_like(a, out_dtype, (0,))
    if residual is None:
        residual = _arrays.empty_like(a, out_dtype, (0, 0))
    _on(a, name, constants)(a, b, out, bias, residual, float(alpha))
    return out


def gemm_fp8(a, b, scale_a, scale_b, out=None, out_dtype=None, **constants):
    """scale_a * scale_b * (a @ b.T) for f8e4m3 (or f8e5m2) a [M, K] and b [N, K] (B given k-major, as
    torch._scaled_mm's column-major B is b.T), f32 accumulation, a bf16 (default) or f32 result
    (out= or out_dtype=). Per-tensor scales are one f32 each (a 0-d or one-element f32 array);
    block scales (DeepSeek's) are 2-d: scale_a [M, cdiv(K, 128)] (one per row per 128 of K) and
    scale_b [cdiv(N, 128), cdiv(K, 128)] (one per 128 x 128 block of b). The kernels gemm_fp8,
    gemm_fp8_block and their _f32 twins of stdlib/core/gemm_fp8.tile; f8e5m2 inputs (both the
    same type) take gemm_fp8_e5m2 and gemm_fp8_block_e5m2, bf16 result only."""
    from ._dtypes import dtype as _dtype
    (m, _), _ = _shape_dtype(a)
    (n, _), _ = _shape_dtype(b)
    if out_dtype is not None:
        out_dtype = _dtype(out_dtype)
    elif out is not None:
        out_dtype = _shape_dtype(out)[1]
    else:
        out_dtype = _dtype("bf16")
    if str(out_dtype) not in ("bf16", "f32"):
        raise ValueError(f"tile.stdlib.gemm_fp8: the result type is bf16 or f32, not {out_dtype}")
    block = len(_shape_dtype(scale_a)[0]) == 2
    e5m2 = str(_shape_dtype(a)[1]) == "f8e5m2"
    if e5m2 and str(out_dtype) != "bf16":
        raise ValueError(f"tile.stdlib.gemm_fp8: f8e5m2 inputs give a bf16 result, not {out_dtype}")
    if not block:
        scale_a, scale_b = scale_a.reshape(1), scale_b.reshape(1)
    if out is None:
        out = _arrays.empty_like(a, out_dtype, (m, n))
    name = ("gemm_fp8_block" if block else "gemm_fp8") + ("_e5m2" if e5m2 else "_f32" if str(out_dtype) == "f32" else "")
    _on(a, name, constants)(a, b, out, scale_a, scale_b)
    return out


def sum_rows(x, out=None, **constants):
    """The sum of each row of x [M, N] (f32), shape [M]."""
    (m, _), dt = _shape_dtype(x)
    if out is None:
        out = _arrays.empty_like(x, dt, (m,))
    _on(x, "sum_rows", constants)(x, out)
    return out


def cumsum_rows(x, out=None, **constants):
    """The inclusive prefix sum along each row of x [M, N] (f32)."""
    shape, dt = _shape_dtype(x)
    if out is None:
        out = _arrays.empty_like(x, dt, shape)
    _on(x, "cumsum_rows", constants)(x, out)
    return out


def sum_all(x, out=None, **constants):
    """The sum of a vector x [N] (f32), shape [1]. The kernel adds into out atomically: a given
    out= must hold 0 (or the value to add to)."""
    _, dt = _shape_dtype(x)
    if out is None:
        out = _arrays.empty_like(x, dt, (1,), zero=True)
    _on(x, "sum_all", constants)(x, out)
    return out


def gather_rows(table, idx, out=None, **constants):
    """out[r, :] = table[idx[r], :] for table [V, D] (f32) and idx [R] (i32); an index outside
    the table gives a row of zeros. D becomes the kernel's constant D."""
    (_, d), dt = _shape_dtype(table)
    (r,), _ = _shape_dtype(idx)
    constants.setdefault("D", d)
    if out is None:
        out = _arrays.empty_like(table, dt, (r, d))
    _on(table, "gather_rows", constants)(table, idx, out)
    return out


def flash_fwd(q, k, v, out=None, scale=None, causal=False, **constants):
    """Attention O = softmax(q k^T * scale [causal mask]) v for bf16 q [B, HQ, S, D] and k, v
    [B, HKV, S, D] (HQ a multiple of HKV: grouped-query attention), f32 accumulation, a bf16
    O [B, HQ, S, D]. scale defaults to 1/sqrt(D); causal masks the keys after each query. D
    becomes the kernel's constant D, causal its CAUSAL; BM=, BN=, W=, STAGES= pick the tiles."""
    shape, dt = _shape_dtype(q)
    d = shape[-1]
    constants.setdefault("D", d)
    constants.setdefault("CAUSAL", 1 if causal else 0)
    if scale is None:
        scale = 1.0 / math.sqrt(d)
    if out is None:
        out = _arrays.empty_like(q, dt, shape)
    _on(q, "flash_fwd", constants)(q, k, v, out, float(scale))
    return out


def __getattr__(name):
    # a stdlib kernel that has no function above yet: its Kernel (pass every argument)
    if not name.startswith("_") and name in _kernel_files():
        return kernel(name)
    raise AttributeError(f"module 'tile.stdlib' has no attribute '{name}'")

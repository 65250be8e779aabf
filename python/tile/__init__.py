"""tile from Python: compile .tile kernels and launch them on numpy arrays (the CPU virtual
machine) or torch tensors and other GPU arrays (CUDA), without copies and without a compiled
extension (ctypes over libtile).

    import numpy as np, tile
    prog = tile.Program.from_file("scale.tile")
    axpy = prog.kernel("axpy", BLOCK=256)        # specialized by constants, cached
    x, y = np.ones(1000, np.float32), np.zeros(1000, np.float32)
    axpy(x, y, 2.0)                              # y = 2 * x + y, in place

docs/PYTHON.md describes the package; tile.stdlib has a function per standard kernel.
"""
from . import _lib
from ._arrays import Packed, describe, empty_like, pack, unpack
from ._core import (CompileError, Context, Diagnostic, Kernel, LaunchError, NotFoundError, Param, Program,
                    Stream, TileError, UnsupportedError, context, parse_diagnostics)
from ._dtypes import (DType, bf16, bool_, dtype, f4e2m1, f8e4m3, f8e5m2, f16, f32, f64, from_numpy_dtype, i8,
                      i4, i16, i32, i64, to_numpy_dtype, to_torch_dtype, u4, u8, u16, u32, u64)

__version__ = _lib.lib.tile_version().decode()
library_path = _lib.path


def program(source, name="<string>", context=None):
    """A Program from source text (str or bytes)."""
    return Program(source, name, context)


def load(path, context=None):
    """A Program from a .tile file."""
    return Program.from_file(path, context)


def __getattr__(name):
    if name == "stdlib":  # imported on first use: it looks for the stdlib sources
        import importlib
        return importlib.import_module(".stdlib", __name__)
    raise AttributeError(f"module 'tile' has no attribute '{name}'")


__all__ = ["CompileError", "Context", "DType", "Diagnostic", "Kernel", "LaunchError", "NotFoundError", "Packed",
           "Param", "Program", "Stream", "TileError", "UnsupportedError", "bf16", "bool_", "context", "describe",
           "dtype", "empty_like", "f16", "f32", "f4e2m1", "f64", "f8e4m3", "f8e5m2", "from_numpy_dtype", "i16",
           "i32", "i4", "i64", "i8", "load", "pack", "parse_diagnostics", "program", "to_numpy_dtype", "to_torch_dtype",
           "u16", "u32", "u4", "u64", "u8", "unpack", "library_path"]

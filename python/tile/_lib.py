"""Finding and loading libtile, and the ctypes declarations of its C API (include/tile/tile.h).

The library is searched in this order: $TILE_LIBRARY (a path; an error if it does not load),
the build folder of the source tree this package sits in (python/../build/libtile.so), an
installed layout next to the package (<prefix>/lib/libtile.so* above .../site-packages/tile),
ctypes.util.find_library("tile") and the dynamic loader's own search (LD_LIBRARY_PATH,
ldconfig), then the usual library folders. The structures mirror tile.h field by field; the
launch path packs tile_arg with struct (see _core.py), checked against these at import.
"""
import ctypes
import ctypes.util
import glob
import os

from ctypes import (POINTER, Structure, c_char_p, c_double, c_int, c_int64, c_size_t, c_uint32,
                    c_void_p)

MAX_RANK = 6

# tile_status
OK = 0
ERROR_INVALID_ARGUMENT = 1
ERROR_COMPILE = 2
ERROR_NOT_FOUND = 3
ERROR_DEVICE = 4
ERROR_OUT_OF_MEMORY = 5
ERROR_UNSUPPORTED = 6

# tile_device_kind
DEVICE_DEFAULT = 0
DEVICE_VM = 1
DEVICE_CUDA = 2

# tile_arg_kind
ARG_TENSOR = 0
ARG_INT = 1
ARG_FLOAT = 2


class Tensor(Structure):
    _fields_ = [("dtype", c_uint32), ("data", c_void_p), ("rank", c_int),
                ("shape", c_int64 * MAX_RANK), ("strides", c_int64 * MAX_RANK)]


class Arg(Structure):
    _fields_ = [("kind", c_int), ("tensor", Tensor), ("i", c_int64), ("f", c_double)]


class Constant(Structure):
    _fields_ = [("name", c_char_p), ("is_float", c_int), ("i", c_int64), ("f", c_double)]


class ParamInfo(Structure):
    _fields_ = [("name", c_char_p), ("kind", c_int), ("dtype", c_uint32), ("rank", c_int),
                ("dim_symbols", c_char_p * MAX_RANK), ("dim_sizes", c_int64 * MAX_RANK),
                ("written", c_int)]


class EmitOptions(Structure):
    _fields_ = [("dump_after", c_char_p), ("arch", c_char_p), ("num_warps", c_int)]


def _candidates():
    here = os.path.dirname(os.path.abspath(__file__))
    # the source tree: python/tile -> <repo>/build
    repo = os.path.dirname(os.path.dirname(here))
    yield os.path.join(repo, "build", "libtile.so")
    # an install prefix: <prefix>/lib/python3.X/site-packages/tile or <prefix>/lib/python3/dist-packages/tile
    up = here
    for _ in range(5):
        up = os.path.dirname(up)
        for sub in ("lib", "lib64", os.path.join("lib", "x86_64-linux-gnu"), os.path.join("lib", "aarch64-linux-gnu")):
            yield os.path.join(up, sub, "libtile.so")
            yield from sorted(glob.glob(os.path.join(up, sub, "libtile.so.*")), reverse=True)
    found = ctypes.util.find_library("tile")
    if found:
        yield found
    yield "libtile.so"
    for d in ("/usr/local/lib", "/usr/local/lib64", "/usr/lib", "/usr/lib64", "/usr/lib/x86_64-linux-gnu",
              "/usr/lib/aarch64-linux-gnu"):
        yield os.path.join(d, "libtile.so")
        yield from sorted(glob.glob(os.path.join(d, "libtile.so.*")), reverse=True)


def _load():
    explicit = os.environ.get("TILE_LIBRARY")
    if explicit:
        try:
            return ctypes.CDLL(explicit), explicit
        except OSError as e:
            raise ImportError(f"TILE_LIBRARY={explicit}: cannot load it: {e}") from None
    tried = []
    for path in _candidates():
        if os.path.isabs(path) and not os.path.exists(path):
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            tried.append(f"{path} ({e})")
            continue
        if hasattr(lib, "tile_version"):
            return lib, path
        tried.append(f"{path} (not libtile: no tile_version)")
    raise ImportError("cannot find libtile: build it (scripts/run.sh makes build/libtile.so), install it, "
                      "or set TILE_LIBRARY to its path" + ("; tried " + ", ".join(tried) if tried else ""))


lib, path = _load()


def _declare(name, restype, *argtypes):
    fn = getattr(lib, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


_declare("tile_version", c_char_p)
_declare("tile_status_name", c_char_p, c_int)
_declare("tile_context_create", c_int, c_int, c_int, POINTER(c_void_p))
_declare("tile_context_destroy", None, c_void_p)
_declare("tile_context_device", c_int, c_void_p)
_declare("tile_context_device_name", c_char_p, c_void_p)
_declare("tile_context_message", c_char_p, c_void_p)
_declare("tile_synchronize", c_int, c_void_p)
_declare("tile_stream_create", c_int, c_void_p, POINTER(c_void_p))
_declare("tile_stream_synchronize", c_int, c_void_p)
_declare("tile_stream_destroy", None, c_void_p)
_declare("tile_program_from_string", c_int, c_void_p, c_char_p, c_char_p, c_size_t, POINTER(c_void_p))
_declare("tile_program_destroy", None, c_void_p)
_declare("tile_program_get_kernel", c_int, c_void_p, c_char_p, POINTER(Constant), c_size_t, POINTER(c_void_p))
_declare("tile_program_num_kernels", c_int, c_void_p)
_declare("tile_program_kernel_name", c_char_p, c_void_p, c_int)
_declare("tile_program_emit", c_int, c_void_p, c_char_p, POINTER(Constant), c_size_t, c_int, c_void_p,
         POINTER(c_void_p), POINTER(c_size_t))
_declare("tile_string_free", None, c_void_p)
_declare("tile_kernel_num_params", c_int, c_void_p)
_declare("tile_kernel_param", c_int, c_void_p, c_int, POINTER(ParamInfo))
# args as a bytes object packed by _core.py (const tile_arg *: libtile only reads it)
_declare("tile_kernel_launch", c_int, c_void_p, c_char_p, c_size_t, c_void_p)
_declare("tile_dtype_bytes", c_size_t, c_uint32, c_int64)
_declare("tile_pack", c_int, c_uint32, c_void_p, c_int64, c_void_p)
_declare("tile_unpack", c_int, c_uint32, c_void_p, c_int64, c_void_p)

# tile_stream_wrap is newer than the first libtile releases: without it launches use the
# default stream (see _core.py).
HAVE_STREAM_WRAP = hasattr(lib, "tile_stream_wrap")
if HAVE_STREAM_WRAP:
    _declare("tile_stream_wrap", c_int, c_void_p, c_void_p, POINTER(c_void_p))
# tile_context_num_sms too: without it Context.num_sms raises and tile.stdlib.gemm always runs
# gemm.tile (see stdlib.py).
HAVE_NUM_SMS = hasattr(lib, "tile_context_num_sms")
if HAVE_NUM_SMS:
    _declare("tile_context_num_sms", c_int, c_void_p)


def status_name(status):
    return lib.tile_status_name(status).decode()

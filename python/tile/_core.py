"""Contexts, streams, programs and kernels over libtile, and the launch path.

A Context is one device (the VM or a GPU); tile.context(device) hands out one shared Context
per device. A Program is the source of a .tile file or string; it is parsed on its home
context when made (syntax errors raise CompileError there) and again, lazily, on any other
device a launch needs. program.kernel(name, **constants) gives a Kernel specialized by those
constants, compiled on the home context when made (so compile errors raise early) and cached
by (name, constants) in the program.

A launch, kernel(*args, stream=None), runs where its tensors are: numpy arrays and cpu torch
tensors on the VM (their memory is host memory, used in place), cuda torch tensors on their
GPU, on PyTorch's current stream for that GPU unless stream= says otherwise. Arguments are
packed into the C tile_arg array with struct (a few hundred nanoseconds per argument, much
less than filling ctypes fields), and libtile checks them before anything runs; a failure
raises LaunchError with the runtime's message.
"""
import ctypes
import os
import re
import struct
import sys
import threading

from . import _arrays
from ._dtypes import DType
from . import _lib
from ._lib import lib, MAX_RANK

# ---- errors ------------------------------------------------------------------------------------------
_LOCATED = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<severity>error|warning|note): (?P<message>.*)$")


class Diagnostic(tuple):
    """One located diagnostic: (file, line, col, severity, message)."""
    __slots__ = ()

    def __new__(cls, file, line, col, severity, message):
        return tuple.__new__(cls, (file, line, col, severity, message))

    file = property(lambda self: self[0])
    line = property(lambda self: self[1])
    col = property(lambda self: self[2])
    severity = property(lambda self: self[3])
    message = property(lambda self: self[4])

    def __str__(self):
        return f"{self.file}:{self.line}:{self.col}: {self.severity}: {self.message}"


def parse_diagnostics(text):
    """The located diagnostics (file:line:col: severity: message) of a message, in order."""
    out = []
    for line in text.splitlines():
        m = _LOCATED.match(line)
        if m:
            out.append(Diagnostic(m["file"], int(m["line"]), int(m["col"]), m["severity"], m["message"]))
    return out


class TileError(RuntimeError):
    """A libtile call failed. status: the tile_status name ("TILE_ERROR_COMPILE"); message: the
    runtime's text (tile_context_message), compiler diagnostics with their source lines and
    carets included; diagnostics: its located lines, parsed."""

    def __init__(self, status, message, what=None):
        self.status = _lib.status_name(status) if isinstance(status, int) else status
        self.message = message
        self.diagnostics = parse_diagnostics(message)
        text = message.rstrip("\n") or self.status
        super().__init__(f"{what}: {text}" if what else text)


class CompileError(TileError):
    """The source has errors (TILE_ERROR_COMPILE); .diagnostics has them, located."""


class LaunchError(TileError):
    """A launch was refused (bad arguments) or failed on the device."""


class NotFoundError(TileError, LookupError):
    """No such kernel, file or device (TILE_ERROR_NOT_FOUND)."""


class UnsupportedError(TileError):
    """Valid, but not supported on this device yet (TILE_ERROR_UNSUPPORTED)."""


def _raise(status, handle, what=None, cls=None):
    message = (lib.tile_context_message(handle) or b"").decode(errors="replace")
    if cls is None:
        cls = {_lib.ERROR_COMPILE: CompileError, _lib.ERROR_NOT_FOUND: NotFoundError,
               _lib.ERROR_UNSUPPORTED: UnsupportedError}.get(status, TileError)
    raise cls(status, message, what)


# ---- contexts -----------------------------------------------------------------------------------------
def _parse_device(device):
    """("vm", 0), ("cuda", n) or ("default", 0) from "vm", "cuda", "cuda:1", ("cuda", 1), None,
    a torch.device."""
    if device is None or device == "default":
        return ("default", 0)
    if isinstance(device, tuple) and len(device) == 2 and device[0] in ("vm", "cuda", "default"):
        kind, ordinal = device
        return (kind, 0 if ordinal is None else int(ordinal))
    if not isinstance(device, str):
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(device, torch.device):
            if device.type == "cpu":
                return ("vm", 0)
            if device.type != "cuda":
                raise ValueError(f"device {device}: tile runs on the CPU (vm) and CUDA GPUs")
            return ("cuda", device.index if device.index is not None else torch.cuda.current_device())
        raise TypeError(f"device {device!r}: expected 'vm', 'cuda', 'cuda:N' or None")
    kind, _, ordinal = device.partition(":")
    if kind not in ("vm", "cuda") or (ordinal and not ordinal.isdigit()):
        raise ValueError(f"device '{device}': expected 'vm', 'cuda' or 'cuda:N'")
    return (kind, int(ordinal) if ordinal else 0)


class Context:
    """One device: Context("vm"), Context("cuda:1"), Context() for $TILE_DEVICE or the GPU when
    there is one, else the VM. A cuda context uses the GPU's primary context, the one PyTorch
    uses. Most code wants tile.context(device), which shares one per device."""

    def __init__(self, device=None):
        kind, ordinal = _parse_device(device)
        code = {"default": _lib.DEVICE_DEFAULT, "vm": _lib.DEVICE_VM, "cuda": _lib.DEVICE_CUDA}[kind]
        handle = ctypes.c_void_p()
        st = lib.tile_context_create(code, ordinal, ctypes.byref(handle))
        if st != _lib.OK:
            _raise(st, None, f"tile.Context({device!r})")
        self._handle = handle.value
        self.kind = "cuda" if lib.tile_context_device(self._handle) == _lib.DEVICE_CUDA else "vm"
        self.ordinal = ordinal if self.kind == "cuda" else 0
        self.device = (self.kind, self.ordinal)
        self.name = lib.tile_context_device_name(self._handle).decode()
        self._streams = {}

    @property
    def num_sms(self):
        """What num_sms() gives a kernel launched here: the GPU's multiprocessor count, or the
        VM's stand-in ($TILE_VM_NUM_SMS, default 4; read at each call). tile_context_num_sms."""
        if not _lib.HAVE_NUM_SMS:
            raise UnsupportedError("TILE_ERROR_UNSUPPORTED", f"{_lib.path} has no tile_context_num_sms: update libtile")
        return lib.tile_context_num_sms(self._handle)

    def synchronize(self):
        st = lib.tile_synchronize(self._handle)
        if st != _lib.OK:
            _raise(st, self._handle, "synchronize", LaunchError)

    def close(self):
        """Destroys the context now (its programs and kernels must not be used after)."""
        h = getattr(self, "_handle", None)
        if h and lib is not None:
            for s in self._streams.values():
                s.close()
            self._streams = {}
            self._handle = None
            lib.tile_context_destroy(h)

    __del__ = close

    def _wrapped_stream(self, raw):
        """The Stream over CUstream `raw` (an int), made once per stream value (a wrapper owns
        nothing, so one whose CUstream has gone is harmless until the value is reused)."""
        s = self._streams.get(raw)
        if s is None:
            s = self._streams[raw] = Stream.wrap(self, raw)
        return s

    def __repr__(self):
        return f"tile.Context({self.name!r})"


_contexts = {}
_contexts_lock = threading.Lock()


def _constants_key(constants):
    """A dict key for keyword constants: names, values and their types (BM=1 and BM=1.0, or
    True and 1, are different constants, though equal in Python)."""
    return tuple(sorted((k, type(v), v) for k, v in constants.items()))


def context(device=None):
    """The shared Context of a device ("vm", "cuda", "cuda:N", None for the default: see
    Context); made on first use, kept for the life of the process."""
    key = _parse_device(device)
    ctx = _contexts.get(key)
    if ctx is None:
        with _contexts_lock:
            ctx = _contexts.get(key)
            if ctx is None:
                ctx = Context(device)
                _contexts[key] = ctx
                _contexts.setdefault(ctx.device, ctx)
    return ctx


_shared_context = context   # for the classes whose parameter is named context


class Stream:
    """A stream of a context. Stream(ctx) makes a new CUstream (libtile owns it);
    Stream.wrap(ctx, custream) wraps one that another library owns (an int address, a
    torch.cuda.Stream, anything with .cuda_stream or .ptr)."""

    def __init__(self, ctx=None, _handle=None):
        self.context = ctx if isinstance(ctx, Context) else context(ctx)
        if _handle is None:
            h = ctypes.c_void_p()
            st = lib.tile_stream_create(self.context._handle, ctypes.byref(h))
            if st != _lib.OK:
                _raise(st, self.context._handle, "tile.Stream")
            _handle = h.value
        self._handle = _handle

    @classmethod
    def wrap(cls, ctx, custream):
        ctx = ctx if isinstance(ctx, Context) else context(ctx)
        raw = getattr(custream, "cuda_stream", None)
        if raw is None:
            raw = getattr(custream, "ptr", custream)
        if not _lib.HAVE_STREAM_WRAP:
            raise UnsupportedError("TILE_ERROR_UNSUPPORTED", f"{_lib.path} has no tile_stream_wrap: update libtile")
        h = ctypes.c_void_p()
        st = lib.tile_stream_wrap(ctx._handle, ctypes.c_void_p(int(raw or 0)), ctypes.byref(h))
        if st != _lib.OK:
            _raise(st, ctx._handle, "tile.Stream.wrap")
        return cls(ctx, h.value)

    def synchronize(self):
        st = lib.tile_stream_synchronize(self._handle)
        if st != _lib.OK:
            _raise(st, self.context._handle, "stream synchronize", LaunchError)

    def close(self):
        h, self._handle = getattr(self, "_handle", None), None
        if h and lib is not None and self.context._handle:
            lib.tile_stream_destroy(h)

    __del__ = close


# ---- programs ----------------------------------------------------------------------------------------
class Program:
    """The kernels of one .tile source. Program(source, name="<string>", context=None) or
    Program.from_file(path); context is the home device (default: tile.context())."""

    def __init__(self, source, name="<string>", context=None):
        if isinstance(source, str):
            source = source.encode()
        self.source, self.name = bytes(source), name
        self.context = context if isinstance(context, Context) else _shared_context(context)
        self._handles = {}
        self._kernels = {}
        self._lock = threading.Lock()
        self._handle_for(self.context)   # syntax errors raise now

    @classmethod
    def from_file(cls, path, context=None):
        try:
            with open(path, "rb") as f:
                source = f.read()
        except OSError as e:
            raise NotFoundError("TILE_ERROR_NOT_FOUND", f"{path}: {e.strerror}") from None
        return cls(source, os.fspath(path), context)

    def _handle_for(self, ctx):
        h = self._handles.get(ctx)
        if h is None:
            with self._lock:
                h = self._handles.get(ctx)
                if h is None:
                    out = ctypes.c_void_p()
                    st = lib.tile_program_from_string(ctx._handle, self.name.encode(), self.source,
                                                      len(self.source), ctypes.byref(out))
                    if st != _lib.OK:
                        _raise(st, ctx._handle)
                    h = self._handles[ctx] = out.value
        return h

    @property
    def kernel_names(self):
        h = self._handle_for(self.context)
        return [lib.tile_program_kernel_name(h, i).decode() for i in range(lib.tile_program_num_kernels(h))]

    def kernel(self, name, **constants):
        """The kernel `name` specialized by constants (the others keep their defaults), compiled
        on the home context; the same object for the same name and constants."""
        key = (name, _constants_key(constants))
        k = self._kernels.get(key)
        if k is None:
            k = Kernel(self, name, constants)
            self._kernels[key] = k
        return k

    def __getattr__(self, name):
        # prog.vector_add is prog.kernel("vector_add")
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self.kernel_names:
            return self.kernel(name)
        raise AttributeError(f"{self.name} has no kernel '{name}' (kernels: {', '.join(self.kernel_names)})")

    def emit(self, kernel, kind="ir", arch=None, num_warps=0, **constants):
        """The kernel compiled without running it: kind "ir", "llvm", "ptx" (str) or "cubin"
        (bytes), as tilec build --emit does."""
        kinds = {"ir": 0, "llvm": 1, "ptx": 2, "cubin": 3}
        if kind not in kinds:
            raise ValueError(f"emit kind '{kind}': expected one of {', '.join(kinds)}")
        opts = _lib.EmitOptions(None, arch.encode() if arch else None, num_warps)
        consts, n, _names = _constants(constants)
        out, size = ctypes.c_void_p(), ctypes.c_size_t()
        h = self._handle_for(self.context)
        st = lib.tile_program_emit(h, kernel.encode(), consts, n, kinds[kind], ctypes.byref(opts),
                                   ctypes.byref(out), ctypes.byref(size))
        if st != _lib.OK:
            _raise(st, self.context._handle)
        data = ctypes.string_at(out.value, size.value)
        lib.tile_string_free(out.value)
        return data if kind == "cubin" else data.decode()

    def close(self):
        handles, self._handles = getattr(self, "_handles", {}), {}
        if lib is not None:
            for ctx, h in handles.items():
                if ctx._handle:
                    lib.tile_program_destroy(h)

    __del__ = close

    def __repr__(self):
        return f"tile.Program({self.name!r})"


def _constants(constants):
    """A ctypes array of tile_constant, its length, and the encoded names it points into (keep
    them alive as long as the array)."""
    n = len(constants)
    arr = (_lib.Constant * max(n, 1))()
    names = []
    for i, (name, v) in enumerate(sorted(constants.items())):
        names.append(name.encode())
        c = arr[i]
        c.name = names[-1]   # points into the bytes object, which `names` keeps alive
        if isinstance(v, bool) or (hasattr(v, "__index__") and not isinstance(v, float)):
            c.is_float, c.i = 0, int(v)
        elif isinstance(v, float) or hasattr(v, "__float__"):
            c.is_float, c.f = 1, float(v)
        else:
            raise TypeError(f"constant {name}={v!r}: expected an int, bool or float")
    return arr, n, names


# ---- kernels and the launch path ----------------------------------------------------------------------
# tile_arg, field by field: kind, pad, dtype, pad, data, rank, pad, shape[6], strides[6], i, f.
_ARG = struct.Struct("=i4xI4xQi4x6q6qqd")


def _check_layout():
    a = _lib.Arg
    t = _lib.Tensor
    want = (a.kind.offset, a.tensor.offset + t.dtype.offset, a.tensor.offset + t.data.offset,
            a.tensor.offset + t.rank.offset, a.tensor.offset + t.shape.offset, a.tensor.offset + t.strides.offset,
            a.i.offset, a.f.offset, ctypes.sizeof(a))
    if want != (0, 8, 16, 24, 32, 80, 128, 136, _ARG.size):
        raise ImportError(f"tile: unexpected tile_arg layout {want}")


_check_layout()

# the same layout per tensor rank r, unused shape and stride slots as pad bytes (zeros)
_TENSOR_ARG = tuple(struct.Struct(f"=i4xI4xQi4x{r}q{8 * (MAX_RANK - r)}x{r}q{8 * (MAX_RANK - r)}xqd")
                    for r in range(MAX_RANK + 1))
_SCALAR_ARG = struct.Struct("=i124xqd")   # kind, then i and f after the tensor
if any(t.size != _ARG.size for t in _TENSOR_ARG) or _SCALAR_ARG.size != _ARG.size:
    raise ImportError("tile: the packed tile_arg layouts disagree")
_launch = lib.tile_kernel_launch


class Param:
    """One parameter of a kernel: name, kind ("tensor", "int", "float"), dtype, rank, dims
    (a symbol such as "M", or a fixed size, per dimension) and written (a tensor the kernel may
    write: a launch refuses read-only memory for it)."""
    __slots__ = ("name", "kind", "dtype", "rank", "dims", "written")

    def __init__(self, info):
        self.name = info.name.decode()
        self.kind = {_lib.ARG_TENSOR: "tensor", _lib.ARG_INT: "int", _lib.ARG_FLOAT: "float"}[info.kind]
        self.dtype = DType(info.dtype)
        self.rank = info.rank
        self.dims = tuple(info.dim_symbols[i].decode() if info.dim_symbols[i] else info.dim_sizes[i]
                          for i in range(info.rank))
        self.written = bool(info.written)

    def __repr__(self):
        if self.kind == "tensor":
            return f"{self.name}: tensor<{self.dtype}>[{', '.join(map(str, self.dims))}]"
        return f"{self.name}: {self.dtype}"


class Kernel:
    """A kernel specialized by constants. Call it with its arguments in order (or by name):
    arrays for tensor parameters, Python or numpy numbers for scalars. stream= (a tile.Stream,
    a torch.cuda.Stream, an int CUstream) overrides PyTorch's current stream on the GPU."""

    def __init__(self, program, name, constants):
        self.program, self.name, self.constants = program, name, dict(constants)
        self._consts = _constants(self.constants)
        self._handles = {}
        self._home = self._handle_for(program.context)
        n = lib.tile_kernel_num_params(self._home)
        self.params = []
        for i in range(n):
            info = _lib.ParamInfo()
            lib.tile_kernel_param(self._home, i, ctypes.byref(info))
            self.params.append(Param(info))
        self._float = tuple(p.kind == "float" for p in self.params)
        self._written = tuple(p.written for p in self.params)
        self._targets = {}
        self._names = tuple(p.name for p in self.params)

    def _handle_for(self, ctx):
        h = self._handles.get(ctx)
        if h is None:
            out = ctypes.c_void_p()
            arr, n, _names = self._consts
            st = lib.tile_program_get_kernel(self.program._handle_for(ctx), self.name.encode(), arr, n, ctypes.byref(out))
            if st != _lib.OK:
                _raise(st, ctx._handle)
            h = self._handles[ctx] = out.value
        return h

    def _context_for(self, device):
        if device is None:
            return self.program.context
        kind, ordinal = device
        if ordinal is None:  # a GPU array that does not say which GPU: the home GPU, else cuda:0
            home = self.program.context
            return home if home.kind == "cuda" else context(("cuda", 0))
        home = self.program.context
        if home.device == device:
            return home
        return context(device)

    def _bind(self, args, kwargs):
        if len(args) > len(self._names):
            raise TypeError(f"{self.name}() takes {len(self._names)} arguments but {len(args)} were given")
        bound = list(args) + [_MISSING] * (len(self._names) - len(args))
        for key, v in kwargs.items():
            if key not in self._names:
                raise TypeError(f"{self.name}() has no parameter '{key}' (parameters: {', '.join(self._names)})")
            i = self._names.index(key)
            if bound[i] is not _MISSING:
                raise TypeError(f"{self.name}() got parameter '{key}' twice")
            bound[i] = v
        missing = [self._names[i] for i, v in enumerate(bound) if v is _MISSING]
        if missing:
            raise TypeError(f"{self.name}() is missing {', '.join(repr(m) for m in missing)}")
        return bound

    def __call__(self, *args, stream=None, **kwargs):
        # The hot path: one dict lookup per argument's type, struct.pack per argument, one
        # ctypes call. Everything else (binding by name, errors, first launch on a device)
        # leaves it.
        if kwargs:
            args = self._bind(args, kwargs)
        parts = []
        device = None
        tensor_arg = _TENSOR_ARG
        converters = _arrays._converters
        written, read_only, from_torch = self._written, _arrays.read_only, _arrays._from_torch
        nwritten = len(written)
        for i, a in enumerate(args):
            fn = converters.get(type(a))
            if fn is None:
                if isinstance(a, _SCALAR_TYPES):
                    parts.append(self._scalar(i, a))
                    continue
                fn = _arrays.converter(a)
                if fn is None:
                    raise TypeError(f"{self.name}(): argument '{self._param_name(i)}' is a {type(a).__name__}, "
                                    "not an array or a number")
            dev, code, ptr, shape, strides = fn(a)
            if i < nwritten and written[i] and fn is not from_torch and read_only(a):   # torch has no such flag
                raise ValueError(f"{self.name}(): argument '{self._param_name(i)}' is read-only, "
                                 "and the kernel writes it")
            rank = len(shape)
            if rank > MAX_RANK:
                raise ValueError(f"{self.name}(): argument '{self._param_name(i)}' has rank {rank}; tile allows {MAX_RANK}")
            if dev is not device and dev != device:
                device = dev if device is None else self._merge_devices(i, device, dev)
            parts.append(tensor_arg[rank].pack(0, code, ptr, rank, *shape, *strides, 0, 0.0))
        target = self._targets.get(device)
        if target is None:
            target = self._target(device)
        ctx, handle, on_gpu = target
        s = self._stream_for(ctx, stream) if on_gpu else None
        st = _launch(handle, b"".join(parts), len(parts), s)
        if st:
            _raise(st, ctx._handle, None, LaunchError)

    def _scalar(self, i, a):
        """The packed tile_arg of a scalar: a float where the parameter is a float (ints too),
        else an int (a float given for an int parameter stays a float: libtile names it)."""
        if (i < len(self._float) and self._float[i]) or isinstance(a, _FLOAT_TYPES):
            return _SCALAR_ARG.pack(_lib.ARG_FLOAT, 0, float(a))
        v = int(a)
        if not 0 <= v <= _I64_MAX:
            v = self._signed_or_wide_int(i, v)
        return _SCALAR_ARG.pack(_lib.ARG_INT, v, 0.0)

    def _signed_or_wide_int(self, i, v):
        """tile_arg.i of an int that is negative or beyond int64: a u64 parameter takes 0 to
        2**64 - 1, its upper half as its bit pattern; others take what fits in int64 (libtile
        then checks the parameter's own range)."""
        p = self.params[i] if i < len(self.params) else None
        u64 = p is not None and p.kind == "int" and str(p.dtype) == "u64"
        if u64 and _I64_MAX < v < (1 << 64):
            return v - (1 << 64)
        if not u64 and _I64_MIN <= v <= _I64_MAX:
            return v
        what = f"{p.dtype}" if p is not None and p.kind == "int" else "64 bits"
        raise OverflowError(f"{self.name}(): argument '{self._param_name(i)}' = {v} does not fit in {what}")

    def _merge_devices(self, i, device, dev):
        if dev[0] == device[0] == "cuda" and (dev[1] is None or device[1] is None):
            return device if dev[1] is None else dev   # the one that names its GPU
        raise ValueError(f"{self.name}(): argument '{self._param_name(i)}' is on {_device_text(dev)} "
                         f"but an earlier one is on {_device_text(device)}")

    def _target(self, device):
        """(context, kernel handle, on a GPU) of launches whose tensors are on device (None:
        no tensor, the home context); compiles the kernel there on first use."""
        ctx = self._context_for(device)
        target = (ctx, self._handle_for(ctx), ctx.kind == "cuda")
        if device is None or device[1] is not None:   # ("cuda", None) follows the home context
            self._targets[device] = target
        return target

    def _param_name(self, i):
        return self._names[i] if i < len(self._names) else f"#{i}"

    def _stream_for(self, ctx, stream):
        """The tile_stream handle of a launch on a GPU: stream= when given, else PyTorch's
        current stream of that GPU when torch is loaded, else the default stream (NULL)."""
        if stream is None:
            current = _torch_current_stream or _find_torch_current_stream()
            if current is None:
                return None
            raw = current(ctx.ordinal)
            return (ctx._streams.get(raw) or ctx._wrapped_stream(raw))._handle if raw else None
        if isinstance(stream, Stream):
            if stream.context is not ctx:
                raise ValueError(f"the stream belongs to {stream.context.name}, the launch runs on {ctx.name}")
            return stream._handle
        raw = getattr(stream, "cuda_stream", None)
        if raw is None:
            raw = getattr(stream, "ptr", stream)
        return ctx._wrapped_stream(int(raw))._handle if raw else None

    def __repr__(self):
        consts = "".join(f", {k}={v}" for k, v in sorted(self.constants.items()))
        return f"tile.Kernel({self.program.name}:{self.name}{consts})"


_torch_current_stream = None   # ordinal -> PyTorch's current CUstream there (an int), once torch is loaded


def _find_torch_current_stream():
    """The function that reads PyTorch's current stream, when torch is imported (tile never
    imports it) and libtile can wrap streams; else None."""
    global _torch_current_stream
    torch = sys.modules.get("torch")
    if torch is None or not _lib.HAVE_STREAM_WRAP:
        return None
    raw = getattr(torch._C, "_cuda_getCurrentRawStream", None)
    _torch_current_stream = raw or (lambda ordinal: torch.cuda.current_stream(ordinal).cuda_stream)
    return _torch_current_stream


def _device_text(device):
    if device[0] == "vm":
        return "the host (vm)"
    return "a GPU (cuda)" if device[1] is None else f"cuda:{device[1]}"


class _Missing:
    def __repr__(self):
        return "<missing>"


_MISSING = _Missing()
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1

try:
    import numpy as _np
    _SCALAR_TYPES = (int, float, _np.generic)
    _FLOAT_TYPES = (float, _np.floating)
except ImportError:
    _SCALAR_TYPES = (int, float)
    _FLOAT_TYPES = (float,)

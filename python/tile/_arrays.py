"""Arrays from other libraries seen as tile tensors, without copies.

describe(a) returns what a launch needs of a tensor argument: the device it lives on (VM for
host memory, ("cuda", ordinal) for GPU memory, ("cuda", None) when the producer does not say
which GPU), the tile dtype code, the data pointer, and the shape and strides in elements.
It understands, fastest first:
  numpy.ndarray                    host memory, so a VM launch reads and writes it in place
  torch.Tensor                     cpu tensors on the VM, cuda tensors on that GPU
  Packed                           byte storage (any of these) plus a tile dtype
  __cuda_array_interface__         CuPy, Numba, ...: GPU memory
  __dlpack__                       any DLPack producer (CPU or CUDA)
  __array_interface__              other host arrays, through numpy.asarray (a view)
Strides of numpy and the array interfaces are in bytes; they must be multiples of the element
size. Sub-byte and small-float types that a library cannot hold travel as Packed.
"""
import ctypes
import sys

from . import _dtypes
from ._dtypes import dtype as _dtype
from ._lib import MAX_RANK, lib

VM = ("vm", 0)
_CUDA = tuple(("cuda", i) for i in range(16))   # shared tuples: the launch compares devices by identity first

try:
    import numpy as np
except ImportError:
    np = None


class Packed:
    """A tensor of any tile dtype held in byte storage: `storage` is a contiguous numpy array,
    torch tensor or other array of any element type whose memory holds the elements packed as
    tile.h describes (sub-byte elements least significant bit first); `shape` counts tile
    elements (default: as many as fit, one dimension). The tensor is contiguous."""
    __slots__ = ("storage", "dtype", "shape", "strides", "_device", "_ptr", "_nbytes")

    def __init__(self, storage, dtype, shape=None):
        self.dtype = _dtype(dtype)
        device, code, ptr, sshape, sstrides = describe(storage)
        if not _is_contiguous(sshape, sstrides):
            raise ValueError("tile.Packed: the storage must be contiguous")
        nbytes = lib.tile_dtype_bytes(code, _numel(sshape))
        if shape is None:
            shape = (nbytes * 8 // self.dtype.storage_bits,)
        shape = tuple(int(s) for s in (shape if isinstance(shape, (tuple, list)) else (shape,)))
        if len(shape) > MAX_RANK or any(s < 0 for s in shape):
            raise ValueError(f"tile.Packed: bad shape {shape}")
        need = lib.tile_dtype_bytes(self.dtype.code, _numel(shape))
        if need > nbytes:
            raise ValueError(f"tile.Packed: {shape} elements of {self.dtype} need {need} bytes; the storage has {nbytes}")
        self.storage, self.shape, self.strides = storage, shape, contiguous_strides(shape)
        self._device, self._ptr, self._nbytes = device, ptr, nbytes

    @property
    def nbytes(self):
        return lib.tile_dtype_bytes(self.dtype.code, _numel(self.shape))

    def __repr__(self):
        return f"tile.Packed({self.dtype}, shape={self.shape}, storage={type(self.storage).__name__})"


def _numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def contiguous_strides(shape):
    strides, step = [], 1
    for s in reversed(shape):
        strides.append(step)
        step *= s
    return tuple(reversed(strides))


def _is_contiguous(shape, strides):
    if 0 in shape:   # no elements (numpy gives an empty array stride 0)
        return True
    step = 1
    for s, st in zip(reversed(shape), reversed(strides)):
        if s != 1 and st != step:
            return False
        step *= s
    return True


def _byte_strides(strides, item, what):
    out = []
    for s in strides:
        if s % item:
            raise ValueError(f"{what}: a stride of {s} bytes is not a multiple of the element size ({item})")
        out.append(s // item)
    return tuple(out)


# ---- one converter per kind of array ----------------------------------------------------------
def _from_numpy(a):
    d = _dtypes._NUMPY_TO_TILE.get(a.dtype)
    if d is None:
        raise TypeError(f"numpy dtype {a.dtype} has no tile element type; wrap packed data with tile.Packed")
    item = a.itemsize
    st = a.strides
    strides = tuple(s // item for s in st)
    if any(s % item for s in st):
        strides = _byte_strides(st, item, "numpy array")
    return VM, d.code, a.__array_interface__["data"][0], a.shape, strides


def _from_torch(t):
    entry = _dtypes._torch_tables()[0].get(t.dtype)
    if entry is None:
        raise TypeError(f"torch dtype {t.dtype} has no tile element type; view the bytes as uint8 in tile.Packed")
    if t.is_cuda:
        index = t.get_device()
        device = _CUDA[index] if index < len(_CUDA) else ("cuda", index)
    elif t.is_cpu:
        device = VM
    else:
        raise TypeError(f"a torch tensor on {t.device} is on neither the CPU nor a CUDA GPU")
    shape, strides = t.shape, t.stride()   # torch.Size is a tuple
    d, per_storage = entry
    if per_storage != 1:  # float4_e2m1fn_x2: two elements per storage byte
        if not shape or strides[-1] != 1:
            raise ValueError(f"a {t.dtype} tensor must have a contiguous last dimension")
        shape = tuple(shape[:-1]) + (shape[-1] * per_storage,)
        strides = tuple(s * per_storage for s in strides[:-1]) + (1,)
    return device, d.code, t.data_ptr(), shape, strides


def _from_packed(p):
    return p._device, p.dtype.code, p._ptr, p.shape, p.strides


def _from_cuda_array_interface(obj):
    cai = obj.__cuda_array_interface__
    if np is None:
        raise TypeError("__cuda_array_interface__ arrays need numpy (to read their typestr)")
    nd = np.dtype(cai["typestr"])
    d = _dtypes._NUMPY_TO_TILE.get(nd)
    if d is None:
        raise TypeError(f"__cuda_array_interface__ typestr {cai['typestr']} has no tile element type")
    shape = tuple(cai["shape"])
    strides = cai.get("strides")
    strides = contiguous_strides(shape) if strides is None else _byte_strides(strides, nd.itemsize, "CUDA array")
    return ("cuda", None), d.code, cai["data"][0] or 0, shape, strides


class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int), ("device_id", ctypes.c_int)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _DLDevice), ("ndim", ctypes.c_int),
                ("dtype", _DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype = ctypes.c_void_p
_capsule_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]

# DLPack type codes: kDLInt 0, kDLUInt 1, kDLFloat 2, kDLBfloat 4, kDLBool 6, and (DLPack 1.1)
# kDLFloat8_e4m3fn 10, kDLFloat8_e5m2 12.
_DL_CUDA_DEVICES = (2, 13)       # kDLCUDA, kDLCUDAManaged
_DL_HOST_DEVICES = (1, 3)        # kDLCPU, kDLCUDAHost


def _dl_dtype(code, bits):
    if code == 0 and bits in (8, 16, 32, 64):
        return _dtype(f"i{bits}")
    if code == 1 and bits in (8, 16, 32, 64):
        return _dtype(f"u{bits}")
    if code == 2 and bits in (16, 32, 64):
        return _dtype(f"f{bits}")
    if code == 4 and bits == 16:
        return _dtypes.bf16
    if code == 6 and bits == 8:
        return _dtypes.bool_
    if code == 10 and bits == 8:
        return _dtypes.f8e4m3
    if code == 12 and bits == 8:
        return _dtypes.f8e5m2
    return None


def _from_dlpack(obj):
    """The DLTensor of obj.__dlpack__() (a legacy "dltensor" capsule, the one producers give a
    consumer that asks for no version). The capsule keeps the producer's memory alive; the
    caller holds the object anyway, so it is dropped after reading."""
    capsule = obj.__dlpack__()
    ptr = _capsule_pointer(capsule, b"dltensor")
    t = _DLTensor.from_address(ptr)  # DLManagedTensor starts with its DLTensor
    if t.dtype.lanes != 1:
        raise TypeError("DLPack tensors with vector lanes are not supported")
    d = _dl_dtype(t.dtype.code, t.dtype.bits)
    if d is None:
        raise TypeError(f"DLPack dtype (code {t.dtype.code}, {t.dtype.bits} bits) has no tile element type")
    if t.device.device_type in _DL_CUDA_DEVICES:
        device = ("cuda", t.device.device_id)
    elif t.device.device_type in _DL_HOST_DEVICES:
        device = VM
    else:
        raise TypeError(f"DLPack device type {t.device.device_type} is neither host memory nor CUDA")
    n = t.ndim
    shape = tuple(t.shape[i] for i in range(n))
    strides = tuple(t.strides[i] for i in range(n)) if t.strides else contiguous_strides(shape)
    return device, d.code, (t.data or 0) + t.byte_offset, shape, strides


def _from_array_interface(obj):
    return _from_numpy(np.asarray(obj))


_converters = {}
if np is not None:
    _converters[np.ndarray] = _from_numpy
_converters[Packed] = _from_packed


def converter(a):
    """The function that describes arrays of a's type, or None when a is not an array."""
    t = type(a)
    fn = _converters.get(t)
    if fn is not None:
        return fn
    torch = sys.modules.get("torch")
    if np is not None and isinstance(a, np.ndarray):
        fn = _from_numpy
    elif torch is not None and isinstance(a, torch.Tensor):
        fn = _from_torch
    elif isinstance(a, Packed):
        fn = _from_packed
    elif hasattr(a, "__cuda_array_interface__"):
        fn = _from_cuda_array_interface
    elif hasattr(a, "__dlpack__"):
        fn = _from_dlpack
    elif np is not None and hasattr(a, "__array_interface__"):
        fn = _from_array_interface
    else:
        return None
    _converters[t] = fn
    return fn


def read_only(a):
    """Whether a's memory may not be written: a numpy array whose writeable flag is off (a
    buffer of bytes, a read-only memory map), a __cuda_array_interface__ or __array_interface__
    that says so, a Packed over such storage. Others (torch tensors, DLPack) have no such flag."""
    t = type(a)
    if np is not None and t is np.ndarray:
        return not a.flags.writeable
    if t is Packed:
        return read_only(a.storage)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(a, torch.Tensor):
        return False
    if np is not None and isinstance(a, np.ndarray):
        return not a.flags.writeable
    for name in ("__cuda_array_interface__", "__array_interface__"):
        interface = getattr(a, name, None)
        if isinstance(interface, dict):
            data = interface.get("data")
            return isinstance(data, tuple) and len(data) > 1 and bool(data[1])
    return False


def describe(a):
    """(device, dtype code, data pointer, shape, strides in elements) of an array; TypeError if
    a is not one."""
    fn = converter(a)
    if fn is None:
        raise TypeError(f"{type(a).__name__} is not an array tile understands (numpy, torch, tile.Packed, "
                        "__cuda_array_interface__, __dlpack__)")
    return fn(a)


# ---- making arrays like others ------------------------------------------------------------------
def empty_like(ref, dtype, shape, zero=False):
    """A new array of tile dtype and shape on ref's device, of ref's library: numpy for numpy
    (and host memory), torch for torch; a Packed (over uint8 storage) when that library has no
    such dtype."""
    dtype = _dtype(dtype)
    shape = tuple(int(s) for s in shape)
    base = ref.storage if isinstance(ref, Packed) else ref
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(base, torch.Tensor):
        tdt = _dtypes.to_torch_dtype(dtype)
        make = torch.zeros if zero else torch.empty
        if tdt is not None:
            return make(shape, dtype=tdt, device=base.device)
        storage = make((lib.tile_dtype_bytes(dtype.code, _numel(shape)),), dtype=torch.uint8, device=base.device)
        return Packed(storage, dtype, shape)
    if np is None:
        raise TypeError(f"cannot make an array like a {type(ref).__name__} without numpy")
    device = describe(ref)[0]
    if device != VM:
        raise TypeError(f"cannot allocate GPU memory like a {type(base).__name__}: pass out=")
    make = np.zeros if zero else np.empty
    nd = _dtypes.to_numpy_dtype(dtype)
    if nd is not None:
        return make(shape, dtype=nd)
    return Packed(make(lib.tile_dtype_bytes(dtype.code, _numel(shape)), dtype=np.uint8), dtype, shape)


# ---- host-side conversion -----------------------------------------------------------------------
def pack(values, dtype, like=None):
    """A Packed tensor of dtype holding values (anything numpy.asarray takes), rounded to
    nearest even and saturated as the VM does (tile_pack). Host memory; like=a torch tensor
    puts the storage on that tensor's device."""
    d = _dtype(dtype)
    v = np.ascontiguousarray(np.asarray(values, dtype=np.float64))
    out = np.zeros(lib.tile_dtype_bytes(d.code, v.size), dtype=np.uint8)
    st = lib.tile_pack(d.code, v.ctypes.data, v.size, out.ctypes.data)
    if st != 0:
        raise ValueError(f"tile.pack: {d} is not a dtype tile_pack accepts")
    storage = out
    torch = sys.modules.get("torch")
    if like is not None and torch is not None and isinstance(like, torch.Tensor):
        storage = torch.from_numpy(out).to(like.device)
    return Packed(storage, d, v.shape)


def unpack(a):
    """The elements of a (a Packed, or any array tile understands) as a float64 numpy array
    (tile_unpack); GPU data is copied to the host first."""
    if isinstance(a, Packed):
        d, shape, storage = a.dtype, a.shape, a.storage
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(storage, torch.Tensor):
            storage = storage.detach().cpu().contiguous().view(torch.uint8).numpy()
        host = np.ascontiguousarray(storage).view(np.uint8)
    else:
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(a, torch.Tensor):
            return a.detach().cpu().double().numpy()
        return np.asarray(a, dtype=np.float64)
    n = _numel(shape)
    out = np.empty(n, dtype=np.float64)
    if lib.tile_unpack(d.code, host.ctypes.data, n, out.ctypes.data) != 0:
        raise ValueError(f"tile.unpack: {d} is not a dtype tile_unpack accepts")
    return out.reshape(shape)

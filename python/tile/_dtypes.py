"""Element types: tile's dtypes as Python objects, and their mapping to numpy and torch.

A DType wraps the 32-bit code of tile.h (kind << 24 | bits << 16 | exp << 8 | man) and prints
as the language spells it (f32, bf16, f8e4m3, u4, bool). dtype("...") parses those names.

Mapping, both ways:
  numpy  bool int8..int64 uint8..uint64 float16 float32 float64, and the ml_dtypes types when
         that package is installed (bfloat16, float8_e4m3fn, float8_e5m2)
  torch  the same, plus bfloat16, float8_e4m3fn, float8_e5m2 and float4_e2m1fn_x2 (two f4e2m1
         elements per byte: the last dimension counts elements, twice the storage's)
Every other tile type (u4, i3, f6e3m2, bf16 without ml_dtypes in numpy) travels as packed
byte storage plus the tile dtype: see Packed in _arrays.py.
"""
import re

_BOOL, _INT, _UINT, _FLOAT = 0, 1, 2, 3


class DType:
    """A tile element type. Compare with ==; hashable; str() is its name in the language."""
    __slots__ = ("code", "name")

    def __init__(self, code):
        self.code = code
        self.name = _name_of(code)

    @property
    def kind(self):
        return ("bool", "int", "uint", "float")[self.code >> 24]

    @property
    def bits(self):
        return (self.code >> 16) & 0xFF

    @property
    def exp(self):
        return (self.code >> 8) & 0xFF

    @property
    def man(self):
        return self.code & 0xFF

    @property
    def storage_bits(self):
        """Bits one element takes in memory (bool takes a byte)."""
        return 8 if self.code >> 24 == _BOOL else self.bits

    @property
    def is_float(self):
        return self.code >> 24 == _FLOAT

    def __eq__(self, other):
        if isinstance(other, str):
            try:
                other = dtype(other)
            except (TypeError, ValueError):
                return False
        return isinstance(other, DType) and other.code == self.code

    def __hash__(self):
        return hash(self.code)

    def __repr__(self):
        return f"tile.{self.name}"

    def __str__(self):
        return self.name


def _code(kind, bits, exp=0, man=0):
    return kind << 24 | bits << 16 | exp << 8 | man


def _name_of(code):
    kind, bits, exp, man = code >> 24, (code >> 16) & 0xFF, (code >> 8) & 0xFF, code & 0xFF
    if kind == _BOOL:
        return "bool"
    if kind == _INT:
        return f"i{bits}"
    if kind == _UINT:
        return f"u{bits}"
    if kind != _FLOAT:
        return f"dtype(0x{code:08x})"
    if bits == 16 and exp == 8:
        return "bf16"
    if (bits, exp) in ((16, 5), (32, 8), (64, 11)):
        return f"f{bits}"
    return f"f{bits}e{exp}m{man}"


_NAME = re.compile(r"^(?:(bool)|(bf16)|([iu])([1-9][0-9]{0,2})|f(16|32|64)|f([1-9][0-9]?)e([1-9][0-9]?)m(0|[1-9][0-9]?))$")


def dtype(x):
    """The DType named by x: a DType, a name in the language ("f32", "bf16", "f8e4m3", "u4",
    "bool"; numpy's names such as "f8" or "float32" are not: "f8" would be ambiguous), a code of
    tile.h, a numpy dtype or scalar type (np.dtype("float32"), np.float32), or a torch dtype."""
    if isinstance(x, DType):
        return x
    if isinstance(x, int) and not isinstance(x, bool):
        d = DType(x)
        if not _valid(x):
            raise ValueError(f"{x:#010x} is not a valid tile dtype code")
        return d
    if isinstance(x, str):
        m = _NAME.match(x)
        if not m:
            raise ValueError(f"'{x}' is not a tile element type (f32, bf16, f8e4m3, i8, u4, bool, ...)")
        if m.group(1):
            return bool_
        if m.group(2):
            return bf16
        if m.group(3):
            bits = int(m.group(4))
            if bits > 64:
                raise ValueError(f"'{x}': integers have 1 to 64 bits")
            return DType(_code(_INT if m.group(3) == "i" else _UINT, bits))
        if m.group(5):
            return {"16": f16, "32": f32, "64": f64}[m.group(5)]
        bits, exp, man = int(m.group(6)), int(m.group(7)), int(m.group(8))
        if 1 + exp + man != bits or exp > 11 or man > 52 or bits > 64:
            raise ValueError(f"'{x}': f<bits>e<exp>m<man> needs bits = 1 + exp + man, exp <= 11, man <= 52")
        if bits == 16 and exp == 5:
            return f16
        return DType(_code(_FLOAT, bits, exp, man))
    torch_dtype = _from_torch(x)
    if torch_dtype is not None:
        return torch_dtype
    try:
        import numpy as np
        nd = np.dtype(x)
    except (ImportError, TypeError):
        raise TypeError(f"{x!r} is not a dtype tile knows") from None
    d = _NUMPY_TO_TILE.get(nd)
    if d is None:
        raise TypeError(f"numpy dtype {nd} has no tile element type; wrap packed data with tile.Packed")
    return d


def _valid(code):
    kind, bits, exp, man = code >> 24, (code >> 16) & 0xFF, (code >> 8) & 0xFF, code & 0xFF
    if kind == _BOOL:
        return bits == 1 and exp == 0 and man == 0
    if kind in (_INT, _UINT):
        return 1 <= bits <= 64 and exp == 0 and man == 0
    return kind == _FLOAT and 1 <= exp <= 11 and man <= 52 and 1 + exp + man == bits


bool_ = DType(_code(_BOOL, 1))
i8, i16, i32, i64 = (DType(_code(_INT, b)) for b in (8, 16, 32, 64))
u8, u16, u32, u64 = (DType(_code(_UINT, b)) for b in (8, 16, 32, 64))
f16 = DType(_code(_FLOAT, 16, 5, 10))
bf16 = DType(_code(_FLOAT, 16, 8, 7))
f32 = DType(_code(_FLOAT, 32, 8, 23))
f64 = DType(_code(_FLOAT, 64, 11, 52))
f8e4m3 = DType(_code(_FLOAT, 8, 4, 3))
f8e5m2 = DType(_code(_FLOAT, 8, 5, 2))
f4e2m1 = DType(_code(_FLOAT, 4, 2, 1))
i4, u4 = DType(_code(_INT, 4)), DType(_code(_UINT, 4))

# ---- numpy ----------------------------------------------------------------------------------
try:
    import numpy as _np
except ImportError:  # numpy is optional: torch tensors work without it
    _np = None

_NUMPY_TO_TILE = {}
_TILE_TO_NUMPY = {}
if _np is not None:
    for _nd, _td in ((_np.bool_, bool_), (_np.int8, i8), (_np.int16, i16), (_np.int32, i32), (_np.int64, i64),
                     (_np.uint8, u8), (_np.uint16, u16), (_np.uint32, u32), (_np.uint64, u64),
                     (_np.float16, f16), (_np.float32, f32), (_np.float64, f64)):
        _NUMPY_TO_TILE[_np.dtype(_nd)] = _td
        _TILE_TO_NUMPY[_td] = _np.dtype(_nd)
    try:  # bfloat16 and float8 for numpy, when installed (only types with a byte or more per element)
        import ml_dtypes as _ml
        for _attr, _td in (("bfloat16", bf16), ("float8_e4m3fn", f8e4m3), ("float8_e5m2", f8e5m2)):
            if hasattr(_ml, _attr):
                _NUMPY_TO_TILE[_np.dtype(getattr(_ml, _attr))] = _td
                _TILE_TO_NUMPY[_td] = _np.dtype(getattr(_ml, _attr))
    except ImportError:
        pass


def from_numpy_dtype(nd):
    """The DType of a numpy dtype, or None."""
    return _NUMPY_TO_TILE.get(nd)


def to_numpy_dtype(d):
    """The numpy dtype of a DType, or None when numpy has none (use packed storage)."""
    return _TILE_TO_NUMPY.get(dtype(d))


# ---- torch (imported only when the caller already uses it) -----------------------------------
_torch_maps = None


def _torch_tables():
    """(torch dtype -> (DType, elements per storage element), DType -> torch dtype), built once."""
    global _torch_maps
    if _torch_maps is None:
        import torch
        to_tile, from_tile = {}, {}
        for attr, td in (("bool", bool_), ("int8", i8), ("int16", i16), ("int32", i32), ("int64", i64),
                         ("uint8", u8), ("uint16", u16), ("uint32", u32), ("uint64", u64),
                         ("float16", f16), ("bfloat16", bf16), ("float32", f32), ("float64", f64),
                         ("float8_e4m3fn", f8e4m3), ("float8_e5m2", f8e5m2)):
            t = getattr(torch, attr, None)
            if t is not None:
                to_tile[t] = (td, 1)
                from_tile[td] = t
        t = getattr(torch, "float4_e2m1fn_x2", None)
        if t is not None:
            to_tile[t] = (f4e2m1, 2)
        _torch_maps = (to_tile, from_tile)
    return _torch_maps


def _from_torch(x):
    import sys
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(x, torch.dtype):
        return None
    entry = _torch_tables()[0].get(x)
    if entry is None:
        raise TypeError(f"{x} has no tile element type")
    return entry[0]


def to_torch_dtype(d):
    """The torch dtype of a DType, or None when torch has none (use packed uint8 storage)."""
    return _torch_tables()[1].get(dtype(d))

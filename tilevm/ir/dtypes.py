"""Data types of any bit width, and the one table that maps them to ml_dtypes, PTX and torch.

A type is an integer (signed two's complement or unsigned, 1–32 bits, plus 64) or a float given by
(exponent bits, mantissa bits, bias, specials). ``specials`` is one of

- ``"allfinite"``: every code is a number (the sub-byte floats; ``fn`` types of fewer than 8 bits
  behave the same way: no inf, no NaN);
- ``"fn"``: finite, no inf; an 8-bit ``fn`` type keeps its all-ones magnitude code as NaN
  (S.1111.111 for e4m3, 0xFF for the unsigned e8m0);
- ``"fnuz"``: finite, no inf, no negative zero: the code 1000…0 is the NaN;
- ``"ieee"``: the all-ones exponent holds inf (mantissa 0) and NaN.

Encoding into a type (:meth:`DType.encode`) rounds to nearest, ties to the even code. Where the
behaviour differs from ``ml_dtypes`` it is on purpose, to match PTX's ``cvt`` instructions, and the
tests state each difference:

- ``saturate=True`` (the default for every type of 8 bits or fewer and for integers) clamps finite
  overflow *and* ±inf to ±max, like PTX ``.satfinite``; ml_dtypes overflows the 8-bit types to
  NaN or inf (``saturate=False`` does the same here);
- NaN becomes the type's one canonical NaN code, always positive (0x7F for e4m3, 0x7E for e5m2,
  0x80 for fnuz, 0xFF for e8m0): ml_dtypes keeps the sign of a NaN for e4m3fn;
- the types without NaN (fp4, fp6, the ``allfinite`` types) encode NaN as +max, as PTX's
  ``cvt.satfinite`` to e2m1/e2m3/e3m2 does; ml_dtypes makes it −0 (or +0);
- ``f8e8m0fnu`` (no sign, no zero, no mantissa) rounds ties to the even code, i.e. to the even
  exponent, where ml_dtypes rounds them up; between 2**-127 and 2**-126 (float32's subnormals)
  tilevm rounds to the nearest (ml_dtypes before 0.7 rounded every value up); zero, negative
  values and NaN encode as NaN (0xFF), as in ml_dtypes;
- integers: NaN encodes as 0; ``saturate=False`` wraps modulo 2**nbits.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tilevm.ir.packing import pack, storage_dtype_for, unpack

__all__ = [
    "DType",
    "all_dtypes",
    "dtype",
    "from_numpy_dtype",
    "pack",
    "unpack",
]

_SPECIALS = ("allfinite", "fn", "fnuz", "ieee")


@dataclass(frozen=True, eq=False)
class DType:
    """One tilevm data type. Instances are unique per name: compare them with ``is`` or ``==``.

    Attributes:
        name: canonical name (``u4``, ``i8``, ``f6e3m2fn``, ``bf16``…).
        nbits: width in bits.
        kind: ``"int"``, ``"uint"`` or ``"float"``.
        exponent_bits, mantissa_bits, bias, specials: the float format (``None`` for integers).
        float_signed: whether the float format has a sign bit (all but ``f8e8m0fnu``).
        ml_dtypes_name, ptx, torch_name: counterparts, or ``None`` where none exists.
    """

    name: str
    nbits: int
    kind: str
    exponent_bits: int | None = None
    mantissa_bits: int | None = None
    bias: int | None = None
    specials: str | None = None
    float_signed: bool = True
    ml_dtypes_name: str | None = None
    ptx: str | None = None
    torch_name: str | None = None
    aliases: tuple[str, ...] = field(default=())

    # -- classification -------------------------------------------------------------------------

    @property
    def is_float(self) -> bool:
        return self.kind == "float"

    @property
    def is_integer(self) -> bool:
        return self.kind != "float"

    @property
    def is_signed(self) -> bool:
        """True for signed integers and for floats that have a sign bit."""
        return self.kind == "int" or (self.kind == "float" and self.float_signed)

    @property
    def has_inf(self) -> bool:
        return self.specials == "ieee"

    @property
    def has_nan(self) -> bool:
        return self.specials in ("ieee", "fnuz") or (self.specials == "fn" and self.nbits >= 8)

    @property
    def has_negative_zero(self) -> bool:
        return self.is_float and self.float_signed and self.specials != "fnuz"

    @property
    def is_subbyte(self) -> bool:
        return self.nbits < 8

    @property
    def storage_dtype(self) -> np.dtype:
        """The smallest unsigned numpy type that holds one bit pattern of this type."""
        return storage_dtype_for(self.nbits)

    # -- range ----------------------------------------------------------------------------------

    @property
    def max(self) -> float | int:
        """The largest finite value."""
        if self.kind == "uint":
            return (1 << self.nbits) - 1
        if self.kind == "int":
            return (1 << (self.nbits - 1)) - 1
        if self.nbits > 16:
            return float(np.finfo(_WIDE_FLOATS[self.nbits]).max)
        return float(_float_tables(self).max_value)

    @property
    def min(self) -> float | int:
        """The most negative finite value (the smallest positive one for unsigned floats)."""
        if self.kind == "uint":
            return 0
        if self.kind == "int":
            return -(1 << (self.nbits - 1))
        if not self.float_signed:
            return float(_float_tables(self).positive_values[0])
        return -self.max

    @property
    def smallest_subnormal(self) -> float:
        """The smallest positive value of a float type."""
        self._require_float("smallest_subnormal")
        if self.nbits > 16:
            return float(np.finfo(_WIDE_FLOATS[self.nbits]).smallest_subnormal)
        values = _float_tables(self).positive_values
        return float(values[values > 0][0])

    @property
    def unit_roundoff(self) -> float:
        """2**-(mantissa_bits + 1): the relative error bound of rounding to nearest."""
        self._require_float("unit_roundoff")
        return 2.0 ** -(self.mantissa_bits + 1)

    # -- conversion -----------------------------------------------------------------------------

    def encode(self, values: Any, saturate: bool | None = None) -> np.ndarray:
        """Round ``values`` to this type and return their bit patterns.

        Args:
            values: anything ``np.asarray`` accepts; floats, integers or booleans.
            saturate: clamp out-of-range values (and ±inf for floats) to the type's range. ``None``
                means the type's default: ``True`` for integers and floats of 8 bits or fewer,
                ``False`` for f16, bf16, f32 and f64 (IEEE overflow to inf).

        Returns:
            An array of ``values``' shape and dtype :attr:`storage_dtype` holding the bit patterns.
            Rounding is to nearest with ties to the even code; the module docstring lists the
            treatment of NaN, inf and overflow, and where it differs from ml_dtypes.
        """
        if saturate is None:
            saturate = self.is_integer or self.nbits <= 8
        if self.is_integer:
            return _encode_int(self, values, saturate)
        return _encode_float(self, values, saturate)

    def decode(self, bits: Any) -> np.ndarray:
        """The values of bit patterns: float64 for floats, int64 for integers (uint64 for u64).

        Raises ``ValueError`` naming the offending pattern when one does not fit in ``nbits``.
        """
        raw = np.asarray(bits)
        if raw.dtype.kind not in "iub":
            raise TypeError(f"{self.name}.decode: bits must be integers, got dtype {raw.dtype}")
        patterns = _check_patterns(self, raw)
        if self.is_integer:
            return _decode_int(self, patterns)
        if self.nbits <= 16:
            return _float_tables(self).code_values[patterns.astype(np.int64)]
        if self.nbits == 32:
            return patterns.astype(np.uint32).view(np.float32).astype(np.float64)
        return patterns.astype(np.uint64).view(np.float64).copy()

    # -- counterparts ---------------------------------------------------------------------------

    @property
    def ml_dtype(self) -> np.dtype | None:
        """The numpy dtype (from numpy or ml_dtypes) with the same encoding, if one exists."""
        if self.ml_dtypes_name is None:
            return None
        if hasattr(np, self.ml_dtypes_name):
            return np.dtype(getattr(np, self.ml_dtypes_name))
        import ml_dtypes

        found = getattr(ml_dtypes, self.ml_dtypes_name, None)
        return None if found is None else np.dtype(found)

    @property
    def torch_dtype(self) -> Any:
        """The torch dtype holding this type one element per storage unit, if torch has one.

        ``f4e2m1fn`` maps to ``torch.float4_e2m1fn_x2``, which holds two elements per byte.
        """
        if self.torch_name is None:
            return None
        import torch

        return getattr(torch, self.torch_name, None)

    def _require_float(self, what: str) -> None:
        if not self.is_float:
            raise TypeError(f"{what} is defined for float types only, not {self.name}")

    def __repr__(self) -> str:
        return f"tilevm.{self.name}"

    def __str__(self) -> str:
        return self.name

    def __reduce__(self) -> tuple:
        return (dtype, (self.name,))


# -- the registry ---------------------------------------------------------------------------------

_BY_NAME: dict[str, DType] = {}
_CANONICAL: list[DType] = []

# ml_dtypes (or numpy) and torch names of the integer types that have them.
_INT_COUNTERPARTS = {
    "u1": ("uint1", "uint1"), "u2": ("uint2", "uint2"), "u3": (None, "uint3"),
    "u4": ("uint4", "uint4"), "u5": (None, "uint5"), "u6": (None, "uint6"), "u7": (None, "uint7"),
    "u8": ("uint8", "uint8"), "u16": ("uint16", "uint16"), "u32": ("uint32", "uint32"),
    "u64": ("uint64", "uint64"),
    "i1": ("int1", "int1"), "i2": ("int2", "int2"), "i3": (None, "int3"),
    "i4": ("int4", "int4"), "i5": (None, "int5"), "i6": (None, "int6"), "i7": (None, "int7"),
    "i8": ("int8", "int8"), "i16": ("int16", "int16"), "i32": ("int32", "int32"),
    "i64": ("int64", "int64"),
}  # fmt: skip
_INT_PTX = {"u1": ".b1", "u4": ".u4", "i4": ".s4", "u8": ".u8", "i8": ".s8", "u16": ".u16",
            "i16": ".s16", "u32": ".u32", "i32": ".s32", "u64": ".u64", "i64": ".s64"}  # fmt: skip


def _register(dt: DType) -> DType:
    for name in (dt.name, *dt.aliases):
        if name in _BY_NAME:
            raise AssertionError(f"dtype name {name} registered twice")
        _BY_NAME[name] = dt
    _CANONICAL.append(dt)
    return dt


def _register_builtin_types() -> None:
    for signed in (False, True):
        for nbits in (*range(1, 33), 64):
            name = ("i" if signed else "u") + str(nbits)
            ml_name, torch_name = _INT_COUNTERPARTS.get(name, (None, None))
            _register(DType(name, nbits, "int" if signed else "uint", ml_dtypes_name=ml_name,
                            ptx=_INT_PTX.get(name), torch_name=torch_name))

    def flt(name, e, m, bias, specials, *, signed=True, ml=None, ptx=None, torch=None, aliases=()):
        nbits = e + m + (1 if signed else 0)
        _register(DType(name, nbits, "float", e, m, bias, specials, signed, ml, ptx, torch,
                        tuple(aliases)))

    # The named formats of OCP, IEEE and ml_dtypes.
    flt("f4e2m1fn", 2, 1, 1, "fn", ml="float4_e2m1fn", ptx=".e2m1", torch="float4_e2m1fn_x2",
        aliases=("f4e2m1",))
    flt("f6e2m3fn", 2, 3, 1, "fn", ml="float6_e2m3fn", ptx=".e2m3", aliases=("f6e2m3",))
    flt("f6e3m2fn", 3, 2, 3, "fn", ml="float6_e3m2fn", ptx=".e3m2", aliases=("f6e3m2",))
    flt("f8e4m3fn", 4, 3, 7, "fn", ml="float8_e4m3fn", ptx=".e4m3", torch="float8_e4m3fn",
        aliases=("f8e4m3", "e4m3"))
    flt("f8e5m2", 5, 2, 15, "ieee", ml="float8_e5m2", ptx=".e5m2", torch="float8_e5m2",
        aliases=("e5m2",))
    flt("f8e4m3fnuz", 4, 3, 8, "fnuz", ml="float8_e4m3fnuz", torch="float8_e4m3fnuz")
    flt("f8e5m2fnuz", 5, 2, 16, "fnuz", ml="float8_e5m2fnuz", torch="float8_e5m2fnuz")
    flt("f8e8m0fnu", 8, 0, 127, "fn", signed=False, ml="float8_e8m0fnu", ptx=".ue8m0",
        torch="float8_e8m0fnu", aliases=("e8m0",))
    flt("f16", 5, 10, 15, "ieee", ml="float16", ptx=".f16", torch="float16")
    flt("bf16", 8, 7, 127, "ieee", ml="bfloat16", ptx=".bf16", torch="bfloat16")
    flt("f32", 8, 23, 127, "ieee", ml="float32", ptx=".f32", torch="float32")
    flt("f64", 11, 52, 1023, "ieee", ml="float64", ptx=".f64", torch="float64")
    # Every other sign-exponent-mantissa split of 3 to 7 bits is an `allfinite` type whose name
    # is its generic f{n}e{e}m{m} form.
    for nbits in range(3, 8):
        for e in range(1, nbits - 1):
            m = nbits - 1 - e
            name = f"f{nbits}e{e}m{m}"
            if name in _BY_NAME:
                continue
            flt(name, e, m, (1 << (e - 1)) - 1, "allfinite")


_register_builtin_types()
_GENERIC_FLOAT = re.compile(r"f(\d+)e(\d+)m(\d+)")


def dtype(name: str | DType) -> DType:
    """The type of a name (``"u4"``, ``"f6e3m2"``, ``"bf16"``…), aliases included.

    Also accepts a :class:`DType` (returned as is) and numpy or ml_dtypes dtypes. Raises
    ``ValueError`` listing the known names when there is no such type.
    """
    if isinstance(name, DType):
        return name
    if isinstance(name, str) and name in _BY_NAME:
        return _BY_NAME[name]
    if not isinstance(name, str):
        try:
            return from_numpy_dtype(np.dtype(name))
        except TypeError:
            pass
    hint = ""
    match = _GENERIC_FLOAT.fullmatch(str(name))
    if match:
        n, e, m = map(int, match.groups())
        if n != 1 + e + m:
            hint = f" ({n} bits cannot hold a sign, {e} exponent and {m} mantissa bits)"
        else:
            hint = " (generic f{n}e{e}m{m} types exist for 3 to 7 bits with e, m >= 1)"
    known = ", ".join(dt.name for dt in _CANONICAL if not dt.name.startswith(("u", "i")))
    raise ValueError(f"unknown dtype {name!r}{hint}; integers are u1..u32, i1..i32, u64, i64; "
                     f"floats are {known}")


def all_dtypes() -> tuple[DType, ...]:
    """Every canonical type (aliases not repeated), integers first."""
    return tuple(_CANONICAL)


@functools.cache
def _numpy_to_tilevm() -> dict[np.dtype, DType]:
    table: dict[np.dtype, DType] = {}
    for dt in _CANONICAL:
        nd = dt.ml_dtype
        if nd is not None and nd not in table:
            table[nd] = dt
    table[np.dtype(np.bool_)] = _BY_NAME["u1"]
    return table


def from_numpy_dtype(nd: np.dtype) -> DType:
    """The tilevm type encoded like a numpy or ml_dtypes dtype; ``TypeError`` if there is none."""
    found = _numpy_to_tilevm().get(np.dtype(nd))
    if found is None:
        raise TypeError(f"numpy dtype {np.dtype(nd)} has no tilevm counterpart")
    return found


# -- integers ---------------------------------------------------------------------------------


def _as_numbers(values: Any) -> np.ndarray:
    """``values`` as a numpy array numpy can compute with: ml_dtypes arrays (dtype kind 'V')
    become float64, or int64 for ml_dtypes' integers."""
    arr = np.asarray(values)
    if arr.dtype.kind == "V":
        try:
            integer = np.issubdtype(arr.dtype, np.integer)
            arr = arr.astype(np.int64 if integer else np.float64)
        except (TypeError, ValueError):
            pass  # not a numeric dtype: the caller reports it
    return arr


def _encode_int(dt: DType, values: Any, saturate: bool) -> np.ndarray:
    arr = _as_numbers(values)
    if arr.dtype.kind == "O" and dt.nbits != 64:  # Python ints beyond int64
        arr = arr.astype(np.float64)
    if arr.dtype.kind not in "fiubO":
        raise TypeError(f"{dt.name}.encode: cannot encode values of dtype {arr.dtype}")
    if dt.nbits == 64:
        return _encode_int64(dt, arr, saturate)
    # Beyond +-2**62 every narrower type has saturated or wrapped out of meaning; clipping there
    # keeps int64 arithmetic exact.
    if arr.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            rounded = np.rint(np.where(np.isnan(arr), 0.0, arr.astype(np.float64)))
        ints = np.clip(rounded, -(2.0**62), 2.0**62).astype(np.int64)
    elif arr.dtype == np.uint64:
        ints = np.minimum(arr, np.uint64(2**62)).astype(np.int64)
    else:
        ints = arr.astype(np.int64)
    if saturate:
        ints = np.clip(ints, dt.min, dt.max)
    return (ints & ((1 << dt.nbits) - 1)).astype(dt.storage_dtype)


def _encode_int64(dt: DType, arr: np.ndarray, saturate: bool) -> np.ndarray:
    """The 64-bit integers, through Python ints: float64 cannot hold their bounds exactly."""
    lo, hi = int(dt.min), int(dt.max)

    def one(v: float | int) -> int:
        if isinstance(v, float):
            if v != v:
                return 0
            if v in (float("inf"), float("-inf")):
                return hi if v > 0 else lo
            v = round(v)  # ties to even
        if saturate:
            return min(max(v, lo), hi)
        return v % (1 << 64)

    patterns = [one(v) % (1 << 64) for v in arr.ravel().tolist()]
    return np.array(patterns, dtype=np.uint64).reshape(arr.shape)


def _decode_int(dt: DType, patterns: np.ndarray) -> np.ndarray:
    if dt.nbits == 64:
        as_u64 = patterns.astype(np.uint64)
        return as_u64 if dt.kind == "uint" else as_u64.view(np.int64)
    values = patterns.astype(np.int64)
    if dt.kind == "int":
        values = values - ((values >> (dt.nbits - 1)) & 1) * (1 << dt.nbits)
    return values


def _check_patterns(dt: DType, raw: np.ndarray) -> np.ndarray:
    if dt.nbits == 64:
        return raw
    if raw.size:
        if raw.dtype.kind == "i" and raw.min() < 0:
            bad = raw[raw < 0].flat[0]
            raise ValueError(f"{dt.name}.decode: bit pattern {bad} is negative")
        if raw.max() >> dt.nbits:
            bad = raw[(raw >> dt.nbits) != 0].flat[0]
            raise ValueError(f"{dt.name}.decode: bit pattern {int(bad):#x} does not fit in "
                             f"{dt.nbits} bits")
    return raw


# -- floats -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FloatTables:
    """Everything the encoder and decoder of a float type of at most 16 bits need."""

    code_values: np.ndarray  # float64 value of every code (NaN for NaN codes)
    positive_codes: np.ndarray  # the finite codes without the sign bit, by increasing value
    positive_values: np.ndarray  # their values
    midpoints: np.ndarray  # midpoints between consecutive positive values
    max_value: float
    max_code: int
    overflow_threshold: float  # halfway between max and the value one code above it
    tie_overflows: bool  # whether a value exactly at the threshold overflows (ties to even)
    nan_code: int | None
    inf_code: int | None


def _format_value(dt: DType, magnitude_code: int) -> float:
    """The value of a magnitude code by the format's formula, ignoring specials."""
    m, bias = dt.mantissa_bits, dt.bias
    exponent = magnitude_code >> m
    mantissa = magnitude_code & ((1 << m) - 1)
    if m == 0:  # e8m0: no subnormals, every code is a power of two
        return 2.0 ** (exponent - bias)
    if exponent == 0:
        return mantissa * 2.0 ** (1 - bias - m)
    return (1.0 + mantissa / 2.0**m) * 2.0 ** (exponent - bias)


def _is_special(dt: DType, code: int) -> str | None:
    """'nan' or 'inf' for the codes the format reserves, else None."""
    sign_bit = 1 << (dt.nbits - 1) if dt.float_signed else 0
    magnitude = code & ~sign_bit
    all_ones = (1 << (dt.nbits - (1 if dt.float_signed else 0))) - 1
    exponent_ones = ((1 << dt.exponent_bits) - 1) << dt.mantissa_bits
    if dt.specials == "ieee" and magnitude & exponent_ones == exponent_ones:
        return "inf" if magnitude == exponent_ones else "nan"
    if dt.specials == "fn" and dt.nbits >= 8 and magnitude == all_ones:
        return "nan"
    if dt.specials == "fnuz" and code == sign_bit:
        return "nan"
    return None


_WIDE_FLOATS = {32: np.float32, 64: np.float64}  # encoded and decoded by numpy itself


@functools.cache
def _float_tables(dt: DType) -> _FloatTables:
    n_codes = 1 << dt.nbits
    sign_bit = 1 << (dt.nbits - 1) if dt.float_signed else 0
    values = np.empty(n_codes, dtype=np.float64)
    for code in range(n_codes):
        special = _is_special(dt, code)
        negative = bool(code & sign_bit)
        if special == "nan":
            values[code] = np.nan
        elif special == "inf":
            values[code] = -np.inf if negative else np.inf
        else:
            v = _format_value(dt, code & ~sign_bit)
            values[code] = -v if negative else v
    magnitude_codes = np.arange(sign_bit if sign_bit else n_codes)
    finite = np.isfinite(values[magnitude_codes])
    positive_codes = magnitude_codes[finite]
    order = np.argsort(values[positive_codes], kind="stable")
    positive_codes = positive_codes[order]
    positive_values = values[positive_codes]
    max_code = int(positive_codes[-1])
    max_value = float(positive_values[-1])
    exponent = max_code >> dt.mantissa_bits
    ulp = 2.0 ** (max(exponent, 1) - dt.bias - dt.mantissa_bits)
    nan_codes = [c for c in range(n_codes) if _is_special(dt, c) == "nan"]
    if dt.specials == "ieee":  # the quiet NaN with only the mantissa's top bit set
        nan_code = (((1 << dt.exponent_bits) - 1) << dt.mantissa_bits) | (
            1 << (dt.mantissa_bits - 1))
    else:
        nan_code = min(nan_codes) if nan_codes else None
    inf_code = (((1 << dt.exponent_bits) - 1) << dt.mantissa_bits) if dt.has_inf else None
    return _FloatTables(
        code_values=values,
        positive_codes=positive_codes,
        positive_values=positive_values,
        midpoints=(positive_values[:-1] + positive_values[1:]) / 2,
        max_value=max_value,
        max_code=max_code,
        overflow_threshold=max_value + ulp / 2,
        tie_overflows=(max_code + 1) % 2 == 0,
        nan_code=nan_code,
        inf_code=inf_code,
    )


def _encode_float(dt: DType, values: Any, saturate: bool) -> np.ndarray:
    arr = _as_numbers(values)
    if arr.dtype.kind not in "fiubO":
        raise TypeError(f"{dt.name}.encode: cannot encode values of dtype {arr.dtype}")
    x = arr.astype(np.float64)
    if dt.nbits > 16:
        return _encode_wide_float(dt, x, saturate)
    t = _float_tables(dt)
    sign_bit = 1 << (dt.nbits - 1) if dt.float_signed else 0
    a = np.abs(x)
    negative = np.signbit(x)
    # Nearest positive code: between consecutive values v[i] < a < v[i+1], the midpoint decides
    # and a tie goes to the even code. Midpoints are exact in float64 for formats this narrow.
    index = np.searchsorted(t.midpoints, a, side="left")
    index = np.minimum(index, len(t.positive_codes) - 1)
    at_midpoint = (index < len(t.midpoints)) & (
        a == t.midpoints[np.minimum(index, len(t.midpoints) - 1)])
    low_code = t.positive_codes[index]
    high_code = t.positive_codes[np.minimum(index + 1, len(t.positive_codes) - 1)]
    code = np.where(at_midpoint & (low_code % 2 == 1), high_code, low_code).astype(np.int64)

    overflow = (a > t.overflow_threshold) | ((a == t.overflow_threshold) & t.tie_overflows)
    is_nan = np.isnan(x)
    if saturate or (t.inf_code is None and t.nan_code is None):
        overflow_code = t.max_code
    elif t.inf_code is not None:
        overflow_code = t.inf_code
    else:
        overflow_code = t.nan_code
    code = np.where(overflow, overflow_code, code)
    if sign_bit:
        is_zero_code = code == t.positive_codes[0]
        keep_sign = negative & ~(is_zero_code & (dt.specials == "fnuz"))
        code = np.where(keep_sign, code | sign_bit, code)
    else:  # unsigned: no zero, no negatives
        code = np.where(negative | (a == 0), t.nan_code, code)
    nan_result = t.max_code if t.nan_code is None else t.nan_code
    # NaN, and overflow into a NaN (no inf, no saturation), give the unsigned canonical NaN.
    code = np.where(is_nan | (overflow & (overflow_code == t.nan_code)), nan_result, code)
    return code.astype(dt.storage_dtype)


def _encode_wide_float(dt: DType, x: np.ndarray, saturate: bool) -> np.ndarray:
    np_type = _WIDE_FLOATS[dt.nbits]
    with np.errstate(over="ignore"):
        y = x.astype(np_type)
    if saturate:
        big = np.finfo(np_type).max
        y = np.where(np.isnan(y), y, np.clip(y, -big, big)).astype(np_type)
    bits = y.view(np.uint32 if dt.nbits == 32 else np.uint64)
    # Canonical quiet NaN, positive, as for the narrow types.
    canonical = np.array(np.nan, dtype=np_type).view(bits.dtype)
    return np.where(np.isnan(y), canonical, bits).astype(dt.storage_dtype)


# Every name that is an identifier (all but none today) becomes a module attribute: dtypes.u4.
globals().update({name: dt for name, dt in _BY_NAME.items() if name.isidentifier()})

"""How each tilevm type lives in Thread IR registers: its storage and its compute type.

*Storage* is what a register holds between operations, and it keeps every bit pattern exactly
(a load followed by a store changes nothing, NaN payloads included):

- every type of 1 to 16 bits (``u1``…``u8``, ``i1``…``i8``, ``f4e2m1fn``, ``f8e4m3fn``,
  ``f8e8m0fnu``…, ``i16``, ``u16``, ``f16``, ``bf16``) is *packed*: the thread's elements dense
  and LSB-first in ``b32`` words (DESIGN §3), an element possibly straddling two words (3, 5, 6
  and 7 bits). Four bytes or two halves share a word, so a thread's 8- and 16-bit elements are
  exactly the register fragments ``mma.sync`` and ``ldmatrix`` take (an f16 tile is f16x2 words,
  element ``2i`` in the low half), and loads, stores and ``view`` move whole words;
- wider integers of up to 32 bits: one ``u32``/``s32`` register per element holding the value
  zero- or sign-extended from its width (*normalized*); 64-bit integers: ``u64``/``s64``;
- ``f32``, ``f64``: one register of that type.

A block-uniform scalar is never packed (:func:`scalar_register_type`): an integer of at most 16
bits is its normalized value, f16/bf16 one register of that type, a narrow float its code in a
``u32``. One element taken out of a packed tile has the same form.

The *compute* type is where arithmetic happens: the storage type for integers and the four wide
floats (an f16/bf16 element as an ``f16``/``bf16`` register, two of them as ``f16x2``/``bf16x2``
where both halves of a word go through the same operation), ``f32`` for every narrower float
(decoded exactly, rounded once when stored back).
"""

from __future__ import annotations

from tilevm.ir.dtypes import DType, dtype
from tilevm.ir.thread.types import (
    B32,
    BF16,
    F16,
    F32,
    F64,
    S32,
    S64,
    U32,
    U64,
    ScalarType,
)

__all__ = ["I32", "compute_type", "is_half_float", "is_narrow_float", "is_packed",
           "raw_bits_type", "scalar_register_type", "storage_type"]

I32 = dtype("i32")  # the type of sizes, offsets and indices in Tile IR

_NATIVE_FLOATS = {"f16": F16, "bf16": BF16, "f32": F32, "f64": F64}


def is_packed(dt: DType) -> bool:
    """Whether a thread's elements of ``dt`` are packed into ``b32`` words (1 to 16 bits)."""
    return dt.nbits <= 16


def is_half_float(dt: DType) -> bool:
    """``f16`` or ``bf16``: packed two to a word, computed as ``f16``/``bf16`` registers."""
    return dt.name in ("f16", "bf16")


def is_narrow_float(dt: DType) -> bool:
    """A float computed in f32 and stored as its code (every float but f16/bf16/f32/f64)."""
    return dt.is_float and dt.name not in _NATIVE_FLOATS


def storage_type(dt: DType) -> ScalarType:
    """The register type of one stored element (``b32`` words for packed types)."""
    # Every float narrower than 32 bits is packed: its elements are codes in words.
    return B32 if is_packed(dt) else compute_type(dt)


def scalar_register_type(dt: DType) -> ScalarType:
    """The register type of a block-uniform scalar of ``dt``: its storage type, but a value of a
    packed type stands alone: a narrow float as its code (``u32``), an integer as its normalized
    value (its compute type)."""
    if is_narrow_float(dt):
        return U32
    return compute_type(dt) if is_packed(dt) else storage_type(dt)


def compute_type(dt: DType) -> ScalarType:
    """The register type arithmetic on ``dt`` uses."""
    if dt.is_float:
        return _NATIVE_FLOATS.get(dt.name, F32)
    if dt.nbits == 64:
        return S64 if dt.kind == "int" else U64
    return S32 if dt.kind == "int" else U32


def raw_bits_type(dt: DType) -> ScalarType:
    """The unsigned type holding one element's bit pattern: ``u64`` for 64-bit types, else
    ``u32``."""
    return U64 if dt.nbits == 64 else U32

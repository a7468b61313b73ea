"""How Thread IR register types and constants are spelled in the generated CUDA C++.

Every value is a plain C++ scalar that inline PTX can bind with a register constraint:
16-bit values (``f16``, ``bf16``, ``u16``…) are ``unsigned short`` bit patterns (``"h"``), and
so are 8-bit ones, since PTX lets ``ld``/``st``/``cvt`` of 8-bit types use 16-bit registers and
inline asm has no 8-bit constraint; ``f16x2``/``bf16x2`` are ``unsigned`` words (``"r"``). A
predicate is an ``unsigned`` holding 0 or 1 (inline asm cannot bind a PTX predicate): the printer
converts it with ``setp``/``selp`` inside the asm block. Vectors are C arrays of their element.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from tilevm.ir.thread.types import Type, VectorType
from tilevm.ir.thread.values import Const, bits_to_float

__all__ = ["CType", "c_bitcast", "c_literal", "c_string", "c_type"]


@dataclass(frozen=True)
class CType:
    """A C++ spelling: ``name`` (``"unsigned short"``) and the inline-asm ``constraint`` letter."""

    name: str
    constraint: str
    bits: int


_UNSIGNED = {8: CType("unsigned short", "h", 16), 16: CType("unsigned short", "h", 16),
             32: CType("unsigned", "r", 32), 64: CType("unsigned long long", "l", 64)}
_SIGNED = {8: CType("short", "h", 16), 16: CType("short", "h", 16), 32: CType("int", "r", 32),
           64: CType("long long", "l", 64)}
_FLOAT = {32: CType("float", "f", 32), 64: CType("double", "d", 64)}


def c_type(t: Type) -> CType:
    """The C++ type of a Thread IR scalar (of a vector's element for a vector type).

    Raises ValueError for ``token``, which has no runtime value.
    """
    if isinstance(t, VectorType):
        t = t.elem
    if t.kind == "token":
        raise ValueError("a token register has no C++ value")
    if t.kind == "pred":
        return _UNSIGNED[32]
    if t.kind == "int":
        return _SIGNED[t.bits]
    if t.kind == "float" and t.bits in _FLOAT:
        return _FLOAT[t.bits]
    return _UNSIGNED[t.bits]  # bits, uint, packed, and the 16-bit floats as bit patterns


def _float_literal(value: float, suffix: str) -> str | None:
    """A decimal literal when it is exactly the value (``1.5f``), else a hex float
    (``0x1.99999ap-4f``); None for inf and NaN, which have no literal."""
    if math.isnan(value) or math.isinf(value):
        return None
    text = repr(value)
    if Fraction(text) == Fraction(value) and len(text) <= 12:
        return text + suffix
    mantissa, exponent = value.hex().split("p")
    return f"{mantissa.rstrip('0').rstrip('.')}p{exponent}{suffix}"


def c_literal(const: Const) -> str:
    """A C++ expression of ``const``'s C type whose bits are exactly ``const.bits``."""
    t = const.type
    ct = c_type(t)
    if t.kind == "pred":
        return "1u" if const.bits else "0u"
    if t.kind == "float" and t.bits in (32, 64):
        value = bits_to_float(const.bits, t.name)
        if t.bits == 32:
            return _float_literal(value, "f") or f"__uint_as_float(0x{const.bits:08x}u)"
        return _float_literal(value, "") or f"__longlong_as_double(0x{const.bits:016x}ll)"
    if t.kind == "int":
        value = const.value
        if ct.bits == 64:
            return f"{value}ll" if value > -(1 << 63) else "(-9223372036854775807ll - 1)"
        if ct.bits == 32:
            return str(value) if value > -(1 << 31) else "(-2147483647 - 1)"
        return f"(short){value}"
    # Bit patterns (b, packed, f16, bf16) and masks read best in hex, small counts in decimal.
    text = str(const.bits) if t.kind == "uint" and const.bits < 1 << 16 else f"0x{const.bits:x}"
    if ct.bits == 64:
        return f"{text}ull"
    if ct.bits == 32:
        return f"{text}u"
    return f"(unsigned short){text}u"


_BITCASTS = {
    ("float", "unsigned"): "__float_as_uint({})",
    ("float", "int"): "__float_as_int({})",
    ("unsigned", "float"): "__uint_as_float({})",
    ("int", "float"): "__int_as_float({})",
    ("double", "long long"): "__double_as_longlong({})",
    ("double", "unsigned long long"): "(unsigned long long)__double_as_longlong({})",
    ("long long", "double"): "__longlong_as_double({})",
    ("unsigned long long", "double"): "__longlong_as_double((long long){})",
}


def c_bitcast(expr: str, source: CType, dest: CType) -> str:
    """``expr`` (of C type ``source``) reinterpreted as ``dest`` (same width), bits unchanged."""
    if source == dest:
        return expr
    if source.bits != dest.bits:
        raise ValueError(f"cannot reinterpret {source.name} as {dest.name}: widths differ")
    template = _BITCASTS.get((source.name, dest.name))
    # Integer to integer of one width: the conversion is modulo 2**bits, i.e. the same bits.
    return template.format(expr) if template else f"({dest.name}){expr}"



_C_ESCAPES = {ord("\\"): "\\\\", ord('"'): '\\"', ord("\n"): "\\n", ord("\t"): "\\t"}


def c_string(text: str) -> str:
    """``text`` as a C++ string literal of its UTF-8 bytes: backslash, quote, newline and tab
    escaped by name, every other byte outside printable ASCII as a three-digit octal escape
    (octal stops after three digits, so a following digit cannot extend it, as in hex), and
    ``?`` escaped so that no ``??x`` trigraph forms under older dialects."""
    out = []
    for byte in text.encode("utf-8"):
        if byte in _C_ESCAPES:
            out.append(_C_ESCAPES[byte])
        elif byte == ord("?"):
            out.append("\\?")
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'

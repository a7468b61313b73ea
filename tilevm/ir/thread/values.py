"""Operands of Thread IR: registers, constants, register arrays and their index expressions.

A :class:`Reg` is a thread-private variable that statements may assign more than once (like a
local variable of CUDA C++; a backend puts it in SSA). A :class:`RegArray` is a fixed-length array
of registers; an :class:`Elem` names one element by an :class:`Index` expression that must be a
constant once the enclosing ``unroll`` loops are unrolled (the verifier checks this), so that the
CUDA printer's arrays stay in registers.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from tilevm.ir.thread.types import ScalarType, Type, VectorType

__all__ = ["Const", "Dest", "Elem", "Index", "IndexOp", "Operand", "Reg", "RegArray", "as_index"]


class _IndexArith:
    """Integer arithmetic that builds :class:`Index` trees (for register-array subscripts)."""

    def _op(self, op: str, other: object, swap: bool = False) -> IndexOp:
        a, b = as_index(self), as_index(other)
        return IndexOp(op, b, a) if swap else IndexOp(op, a, b)

    def __add__(self, o: object) -> IndexOp:
        return self._op("+", o)

    def __radd__(self, o: object) -> IndexOp:
        return self._op("+", o, True)

    def __sub__(self, o: object) -> IndexOp:
        return self._op("-", o)

    def __rsub__(self, o: object) -> IndexOp:
        return self._op("-", o, True)

    def __mul__(self, o: object) -> IndexOp:
        return self._op("*", o)

    def __rmul__(self, o: object) -> IndexOp:
        return self._op("*", o, True)

    def __floordiv__(self, o: object) -> IndexOp:
        return self._op("//", o)

    def __mod__(self, o: object) -> IndexOp:
        return self._op("%", o)


@dataclass(eq=False)
class Reg(_IndexArith):
    """A register of one thread. Identity matters: two ``Reg`` objects are two registers.

    Attributes:
        name: unique within its kernel (the builder makes it so), printed as ``%name``.
        type: its :class:`ScalarType` or :class:`VectorType`.
    """

    name: str
    type: Type

    def __str__(self) -> str:
        return f"%{self.name}"

    def __repr__(self) -> str:
        return f"Reg(%{self.name}: {self.type})"

    def __hash__(self) -> int:
        return id(self)


@dataclass(frozen=True)
class Const:
    """An immediate of a scalar type, held as its bit pattern (exact for every float type).

    Build float constants with :meth:`Const.of`, which rounds a Python float to nearest even.
    """

    bits: int
    type: ScalarType

    def __post_init__(self) -> None:
        if not isinstance(self.type, ScalarType) or self.type.kind == "token":
            raise TypeError(f"Const needs a scalar type, got {self.type}")
        mask = (1 << max(self.type.bits, 1)) - 1
        object.__setattr__(self, "bits", int(self.bits) & mask)

    @staticmethod
    def of(value: int | float | bool, type: ScalarType) -> Const:
        """The constant ``value`` of ``type``: integers wrap modulo 2**bits, floats round to
        nearest even (f16/bf16/f32/f64)."""
        if type.kind == "pred":
            return Const(1 if value else 0, type)
        if type.kind == "float":
            return Const(float_bits(float(value), type.name), type)
        if type.kind == "packed":
            h = float_bits(float(value), type.half_type.name)
            return Const(h | (h << 16), type)
        return Const(int(value), type)

    @property
    def value(self) -> int | float:
        """The number this constant stands for (signed for ``s`` types)."""
        t = self.type
        if t.kind == "float":
            return bits_to_float(self.bits, t.name)
        if t.kind == "int" and self.bits >> (t.bits - 1):
            return self.bits - (1 << t.bits)
        return self.bits

    def __str__(self) -> str:
        t = self.type
        if t.kind == "float":
            return f"0x{self.bits:0{t.bits // 4}x}:{t.name}"
        if t.kind in ("bits", "packed"):
            return f"0x{self.bits:x}:{t.name}"
        return f"{self.value}:{t.name}"


def float_bits(value: float, name: str) -> int:
    """The bit pattern of ``value`` rounded to nearest even in the float type ``name``."""
    import numpy as np

    if name == "f64":
        return struct.unpack("<Q", struct.pack("<d", value))[0]
    if name == "f32":
        return int(np.array(value, np.float32).view(np.uint32))
    if name == "f16":
        return int(np.array(value, np.float16).view(np.uint16))
    if name == "bf16":
        from tilevm.ir.dtypes import dtype

        return int(dtype("bf16").encode(np.array([value]), saturate=False)[0])
    raise ValueError(f"{name} is not a float type")


def bits_to_float(bits: int, name: str) -> float:
    """The value of the bit pattern ``bits`` of the float type ``name``."""
    import numpy as np

    if name == "f64":
        return struct.unpack("<d", struct.pack("<Q", bits))[0]
    if name == "f32":
        return float(np.array(bits, np.uint32).view(np.float32))
    if name == "f16":
        return float(np.array(bits, np.uint16).view(np.float16))
    if name == "bf16":
        return float(np.array(bits << 16, np.uint32).view(np.float32))
    raise ValueError(f"{name} is not a float type")


@dataclass(eq=False)
class RegArray:
    """A fixed-length array of registers of one type (scalar or vector), e.g. an accumulator."""

    name: str
    type: Type
    length: int

    def __post_init__(self) -> None:
        if self.length < 1:
            raise ValueError(f"register array {self.name} needs length >= 1, got {self.length}")

    def __getitem__(self, index: object) -> Elem:
        return Elem(self, as_index(index))

    def __str__(self) -> str:
        return f"%{self.name}"

    def __hash__(self) -> int:
        return id(self)


@dataclass(frozen=True, eq=False)
class IndexOp(_IndexArith):
    """``a op b`` over integers, ``op`` one of ``+ - * // %``."""

    op: str
    a: Index
    b: Index

    def __str__(self) -> str:
        return f"({self.a} {self.op} {self.b})"


Index = int | Reg | IndexOp


def as_index(x: object) -> Index:
    """``x`` as an index expression: an int, a register (an ``unroll`` loop variable) or a tree."""
    if isinstance(x, bool):
        raise TypeError("a register-array index cannot be a bool")
    if isinstance(x, int | Reg | IndexOp):
        return x
    raise TypeError(f"a register-array index must be an int, a loop variable or an expression of "
                    f"them, got {x!r}")


@dataclass(frozen=True, eq=False)
class Elem:
    """Element ``index`` of a register array, usable wherever a register is."""

    array: RegArray
    index: Index

    @property
    def type(self) -> Type:
        return self.array.type

    def __str__(self) -> str:
        return f"%{self.array.name}[{self.index}]"


Operand = Reg | Const | Elem
Dest = Reg | Elem

_ = VectorType  # re-exported through types

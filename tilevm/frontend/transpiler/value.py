"""What the transpiler computes with: a run-time :class:`Value`, and how values are named in
diagnostics.

Compile-time values are plain Python objects (numbers, tuples, dtypes, layouts, functions); a
:class:`Value` is one that exists only when the kernel runs, an operand of Tile IR.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tilevm.ir.dtypes import DType, dtype
from tilevm.ir.tile.program import Operand
from tilevm.ir.tile.types import ScalarType, TensorType, Type

__all__ = ["F32", "I32", "U1", "Value", "describe", "same_type"]

# The dtypes of Python numbers when nothing else decides: ints, floats, bools (and conditions).
I32 = dtype("i32")
F32 = dtype("f32")
U1 = dtype("u1")


@dataclass
class Value:
    """A run-time value in the transpiler: an IR operand and the name the user knows it by."""

    operand: Operand
    name: str | None = None

    @property
    def type(self) -> Type:
        return self.operand.type

    @property
    def dtype(self) -> DType:
        return self.operand.type.dtype

    @property
    def is_tensor(self) -> bool:
        return isinstance(self.type, TensorType)

    def describe(self) -> str:
        what = "scalar" if not self.is_tensor else (
            "tile" if self.type.scope == "reg" else "tensor")
        return f"{what} '{self.name}' ({self.type})" if self.name else f"a {self.type}"


def same_type(a: Type, b: Type) -> bool:
    """Whether a variable of type ``a`` can be assigned a value of type ``b`` (layouts aside)."""
    if isinstance(a, ScalarType) or isinstance(b, ScalarType):
        return a == b
    return (a.dtype, a.shape, a.scope) == (b.dtype, b.shape, b.scope)


def describe(v: Any) -> str:
    """``v`` as a diagnostic names it: a value by its name and type, anything else by its kind."""
    if isinstance(v, Value):
        return v.describe()
    if isinstance(v, DType):
        return f"the dtype {v.name}"
    return f"{type(v).__name__} {v!r}"

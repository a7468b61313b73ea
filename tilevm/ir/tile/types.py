"""The types of Tile IR values: block-uniform scalars, and tensors in registers, shared or global
memory.

A :class:`ScalarType` is one value shared by the whole block (an index, a loop bound, a run-time
argument). A :class:`TensorType` is a tile: a dtype, a shape, a memory scope and an optional layout
(a register layout for ``"reg"`` tiles, a shared layout for ``"shared"`` buffers, none for global
tensors). Global shapes may name run-time dimensions (``"m"``); register and shared shapes are
compile-time integers. Layouts are compared with ``==`` and printed with ``repr``; they are left
``None`` until layout inference fills them in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tilevm.ir.dtypes import DType, dtype

__all__ = ["SCOPES", "ScalarType", "TensorType", "Type", "bool_", "i32"]

SCOPES = ("reg", "shared", "global")


@dataclass(frozen=True)
class ScalarType:
    """A block-uniform scalar of one dtype (``u1`` is the boolean)."""

    dtype: DType

    def __str__(self) -> str:
        return self.dtype.name


@dataclass(frozen=True)
class TensorType:
    """A tensor: ``dtype``, ``shape`` (ints; global tensors may use dimension names), ``scope``
    (``"reg"``, ``"shared"`` or ``"global"``) and an optional ``layout``."""

    dtype: DType
    shape: tuple[int | str, ...]
    scope: str = "reg"
    layout: Any = None

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ValueError(f"TensorType: scope must be one of {SCOPES}, got {self.scope!r}")
        if self.scope != "global" and not all(isinstance(n, int) for n in self.shape):
            raise ValueError(f"TensorType: a {self.scope} shape must be integers, got {self.shape}")

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def numel(self) -> int:
        """The number of elements of a tile with a static shape."""
        count = 1
        for n in self.shape:
            if not isinstance(n, int):
                raise TypeError(f"numel: shape {self.shape} is not static")
            count *= n
        return count

    def with_(self, **changes: Any) -> TensorType:
        """A copy with some fields replaced (the layout is dropped unless given)."""
        fields = {"dtype": self.dtype, "shape": self.shape, "scope": self.scope, "layout": None}
        fields.update(changes)
        return TensorType(**fields)

    def __str__(self) -> str:
        dims = ", ".join(str(n) for n in self.shape)
        kind = {"reg": "tile", "shared": "shared", "global": "global"}[self.scope]
        layout = "" if self.layout is None else f", layout({_quote(repr(self.layout))})"
        return f"{kind}<{self.dtype.name}[{dims}]{layout}>"


Type = ScalarType | TensorType


def _quote(text: str) -> str:
    import json

    return json.dumps(text)


def i32() -> ScalarType:
    """The type of block indices, sizes and loop counters: a scalar i32."""
    return ScalarType(dtype("i32"))


def bool_() -> ScalarType:
    """The type of conditions and comparisons: a scalar u1."""
    return ScalarType(dtype("u1"))

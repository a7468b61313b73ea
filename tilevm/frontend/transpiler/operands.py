"""Operands and instructions: run-time values and Python numbers made IR operands, instructions
emitted with their typing errors placed at the user's operand, and the checks of builtins'
arguments (a shape, a dtype, offsets, a mask…) that name the argument in the user's terms.
"""

from __future__ import annotations

import ast
import math
from typing import Any

from tilevm.frontend.transpiler.base import TranspilerBase
from tilevm.frontend.transpiler.value import F32, I32, U1, Value, describe
from tilevm.ir.dtypes import DType, dtype
from tilevm.ir.tile.ops import TileTypeError
from tilevm.ir.tile.program import Const, Operand
from tilevm.ir.tile.types import ScalarType

__all__ = ["Operands"]


class Operands(TranspilerBase):
    """Making operands, emitting instructions, checking builtins' arguments."""

    def operand(self, v: Any, node: ast.AST | None, like: DType | None = None) -> Operand:
        """An IR operand for a run-time value or a Python number (typed like ``like``)."""
        if isinstance(v, Value):
            return v.operand
        if isinstance(v, bool):
            dt = like if like is not None and like == U1 else U1
            return Const(int(v), dt)
        if isinstance(v, int):
            dt = like or I32
            if dt.is_float:
                return Const(self._float_constant(float(v), dt, node), dt)
            if not dt.min <= v <= dt.max:
                raise self.error(node, f"constant {v} does not fit in {dt.name}")
            return Const(v, dt)
        if isinstance(v, float):
            dt = like or F32
            if not dt.is_float:
                raise self.error(node, f"float constant {v} used with a {dt.name} value; cast "
                                       "one of them")
            return Const(self._float_constant(v, dt, node), dt)
        if hasattr(v, "item") and callable(v.item) and getattr(v, "shape", None) == ():
            return self.operand(v.item(), node, like)  # numpy scalars (not arrays)
        raise self.error(node, f"expected a tile, a scalar or a number, got {describe(v)}")

    def _sizes_as_floats(self, node: ast.AST, args: list[tuple[Any, ast.AST]]
                         ) -> list[tuple[Any, ast.AST]]:
        """In float arithmetic, an integer scalar (a size, a block-uniform count) converts to
        the float operand's type; integer tiles do not (mixed tile types stay an error)."""
        floats = [v.dtype for v, _ in args if isinstance(v, Value) and v.dtype.is_float]
        if not floats:
            return args
        return [(self.emit(n, "cast", [(v, n)], dtype=floats[0]), n)
                if isinstance(v, Value) and not v.is_tensor and v.dtype.is_integer else (v, n)
                for v, n in args]

    def _float_constant(self, v: float, dt: DType, node: ast.AST | None) -> float:
        """``v`` rounded into the float type ``dt`` of the value it meets; a finite number
        beyond ``dt``'s range (it would become inf, or saturate) is a diagnostic."""
        # below dt.max plus half its ulp a number rounds to dt.max; from there on to inf
        half_ulp = 2.0 ** (math.floor(math.log2(dt.max)) - dt.mantissa_bits - 1)
        if math.isfinite(v) and abs(v) >= dt.max + half_ulp:
            raise self.error(node, f"constant {v:g} does not fit in {dt.name} (largest finite "
                                   f"value {dt.max:g}): cast the value to a wider type first, "
                                   f"e.g. tv.cast(x, f32)")
        return _round_to(v, dt)

    def emit(self, node: ast.AST, op: str, args: list[tuple[Any, ast.AST]], /,
             **attrs: Any) -> Value:
        """Emit ``op`` on (value, node) pairs; Python numbers take the dtype of the run-time
        operands. A typing error becomes a diagnostic at the offending operand."""
        if op in _FLOAT_ARITHMETIC:
            args = self._sizes_as_floats(node, args)
        like = next((v.dtype for v, _ in args if isinstance(v, Value) and not
                     (op == "where" and v is args[0][0])), None)
        operands = []
        for i, (v, n) in enumerate(args):
            want = U1 if (op == "where" and i == 0 and not isinstance(v, Value)) else like
            operands.append(self.operand(v, n, want))
        try:
            result = self.builder.emit(op, operands, self.loc(node), **attrs)
        except TileTypeError as e:
            at = args[e.operand][1] if e.operand is not None and e.operand < len(args) else node
            raise self.error(at, str(e)) from None
        return None if result is None else Value(result)

    def emit_raw(self, node: ast.AST, op: str, operands: list[Operand], nodes: list[ast.AST], /,
                 **attrs: Any) -> Value | None:
        """Emit ``op`` on ready operands, ``nodes[i]`` the user's node of operand i (a typing error
        about operand i points there, else at ``node``); the result, ``None`` for an operation
        without one."""
        try:
            result = self.builder.emit(op, operands, self.loc(node), **attrs)
        except TileTypeError as e:
            at = nodes[e.operand] if e.operand is not None and e.operand < len(nodes) else node
            raise self.error(at, str(e)) from None
        return None if result is None else Value(result)

    def emit_access(self, node: ast.AST, op: str, head: list[tuple[Operand, ast.AST]],
                    offsets: list[Operand], offsets_node: ast.AST, mask: list[Operand],
                    mask_node: ast.AST, /, **attrs: Any) -> Value | None:
        """Emit the memory operation ``op(*head, *offsets, *mask) {attrs}`` (see
        :mod:`tilevm.ir.tile.ops`): ``head`` pairs each leading operand with its node, the
        offsets' and the mask's typing errors point at their arguments' nodes."""
        operands = [o for o, _ in head] + offsets + mask
        nodes = [n for _, n in head] + [offsets_node] * len(offsets) + [mask_node] * len(mask)
        return self.emit_raw(node, op, operands, nodes, **attrs)

    def value(self, v: Any, node: ast.AST, what: str) -> Value:
        """``v``, which must be a run-time value (a diagnostic at ``node`` naming ``what``)."""
        if not isinstance(v, Value):
            raise self.error(node, f"{what} must be a tile or a run-time value, got "
                                   f"{describe(v)}")
        return v

    def const(self, v: Any, node: ast.AST, what: str, kinds: tuple = (int,)) -> Any:
        """``v``, which must be a compile-time instance of one of ``kinds`` (``bool`` only if
        listed)."""
        if isinstance(v, Value):
            raise self.error(node, f"{what} must be a compile-time constant, not the run-time "
                                   f"{v.describe()}")
        if not isinstance(v, kinds) or (isinstance(v, bool) and bool not in kinds):
            raise self.error(node, f"{what} must be {' or '.join(k.__name__ for k in kinds)}, "
                                   f"got {describe(v)}")
        return v

    def shape(self, v: Any, node: ast.AST, what: str) -> tuple[int, ...]:
        """``v`` as a shape: compile-time positive integers (one int is a 1-D shape)."""
        if isinstance(v, int) and not isinstance(v, bool):
            v = (v,)
        if isinstance(v, Value):
            raise self.error(node, f"{what}: a shape must be compile-time integers, not the "
                                   f"run-time {v.describe()}")
        if not isinstance(v, (tuple, list)):
            raise self.error(node, f"{what}: a shape is a tuple of integers, got {describe(v)}")
        for x in v:
            if isinstance(x, Value):
                raise self.error(node, f"{what}: shape entries must be compile-time constants, "
                                       f"not the run-time {x.describe()} (use a tv.Const "
                                       "parameter)")
            if not isinstance(x, int) or isinstance(x, bool) or x <= 0:
                raise self.error(node, f"{what}: shape entries must be positive integers, got "
                                       f"{x!r}")
        return tuple(v)

    def dtype_arg(self, v: Any, node: ast.AST, what: str) -> DType:
        """``v`` (a :class:`DType` or its name) as a dtype."""
        if isinstance(v, Value):
            raise self.error(node, f"{what}: expected a dtype, got the run-time {v.describe()}")
        try:
            return dtype(v)
        except (ValueError, TypeError) as e:
            raise self.error(node, f"{what}: {e}") from None

    def offsets(self, v: Any, node: ast.AST, tensor: Value, what: str) -> list[Operand]:
        """``v`` (one offset or a sequence) as one integer scalar operand per dimension of
        ``tensor``."""
        items = list(v) if isinstance(v, (tuple, list)) else [v]
        rank = tensor.type.rank
        if len(items) != rank:
            raise self.error(node, f"{what}: {len(items)} offset{'s' if len(items) != 1 else ''} "
                                   f"for {tensor.describe()} of rank {rank}")
        out = []
        for x in items:
            op = self.operand(x, node, I32)
            if not isinstance(op.type, ScalarType) or not op.type.dtype.is_integer:
                raise self.error(node, f"{what}: offsets must be integer scalars, got {op.type}")
            out.append(op)
        return out

    def memory_tensor(self, v: Any, node: ast.AST, what: str, scopes: tuple[str, ...]) -> Value:
        """``v``, which must be a tensor in one of ``scopes`` (``"global"``, ``"shared"``)."""
        if not isinstance(v, Value) or not v.is_tensor or v.type.scope not in scopes:
            shown = v.describe() if isinstance(v, Value) else describe(v)
            raise self.error(node, f"{what}: expected a {' or '.join(scopes)} tensor, got {shown}")
        return v

    def mask(self, v: Any, node: ast.AST, what: str) -> tuple[str, list[Operand]]:
        """A ``mask=`` argument as the memory operations' ``mask`` attribute and the operands it
        adds: ``None`` → ``"bounds"``, ``False`` → ``"none"``, a tile → ``"tile"`` and the tile."""
        if v is None:
            return "bounds", []
        if v is False:
            return "none", []
        if isinstance(v, Value):
            return "tile", [v.operand]
        raise self.error(node, f"{what}: mask is None (the tensor's bounds), False (unchecked) or "
                               f"a u1 tile, got {describe(v)}")

    def register_layout(self, layout: Any, node: ast.AST, what: str) -> Any:
        """``layout`` checked to be a register layout over exactly the block's threads (a
        layout of one warp in a 4-warp kernel would leave three warps without elements)."""
        layout = self.const(layout, node, f"{what}: layout", (object,))
        if not hasattr(layout, "num_threads"):
            raise self.error(node, f"{what}: {describe(layout)} is not a register layout")
        if self.launch is not None:
            threads = 32 * self.launch[1]
            if layout.num_threads != threads:
                raise self.error(node, f"{what}: the layout {layout!r} spreads over "
                                       f"{layout.num_threads} threads, but the kernel has "
                                       f"{self.launch[1]} warps = {threads} threads; a register "
                                       f"layout covers every thread of the block (replicate with "
                                       f"replicated(n) where fewer threads hold distinct elements, "
                                       f"or launch fewer warps)")
        return layout

    def with_layout(self, value: Value, layout: Any, node: ast.AST, what: str) -> Value:
        """Fix the register layout of a just-built tile (the ``layout=`` option)."""
        if layout is None:
            return value
        layout = self.const(layout, node, f"{what}: layout", (object,))
        if tuple(getattr(layout, "shape", ())) != value.type.shape:
            raise self.error(node, f"{what}: layout {layout!r} is not a register layout of shape "
                                   f"{list(value.type.shape)}")
        layout = self.register_layout(layout, node, what)
        value.operand = self.builder.set_layout(value.operand, layout)
        return value


# The operations in which an integer scalar meeting a float value converts to its type.
_FLOAT_ARITHMETIC = frozenset({"add", "sub", "mul", "div", "min", "max"})


def _round_to(v: float, dt: DType) -> float:
    """``v`` rounded to the nearest value of the float type ``dt``, as a Python float."""
    if dt.name == "f64":
        return float(v)
    import numpy as np

    return float(dt.decode(dt.encode(np.float64(v)))[()])


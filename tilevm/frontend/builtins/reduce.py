"""Reductions along an axis: ``tv.reduce`` and its forms with the operation fixed, ``tv.sum``,
``tv.max``, ``tv.min`` (:data:`FORMS`)."""

from __future__ import annotations

import ast
import functools
from typing import TYPE_CHECKING, Any

from tilevm.frontend.builtins.registry import Args, Nodes, builtin, translates
from tilevm.ir.dtypes import DType, dtype

if TYPE_CHECKING:
    from tilevm.frontend.transpiler.core import Transpiler
    from tilevm.frontend.transpiler.value import Value

# tv.<op>(x, axis, keepdims=False, dtype=None) is tv.reduce(x, op, axis, keepdims, dtype).
FORMS = ("sum", "max", "min")


@builtin
def reduce(x: Any, op: str, axis: int, keepdims: bool = False, dtype: DType | None = None) -> Any:
    """Reduce along ``axis`` with ``"sum"``, ``"max"`` or ``"min"``, in ``dtype``."""


@translates(reduce)
def _reduce(tr: Transpiler, node: ast.Call, a: Args, n: Nodes) -> Value:
    return _along(tr, node, a, n, tr.const(a["op"], n["op"], "tv.reduce: op", (str,)))


def accumulation_dtype(source: DType, op: str, requested: DType | None) -> DType:
    """The dtype a reduction ``op`` of ``source`` elements combines and returns in.

    ``requested`` (the user's ``dtype=``) wins; otherwise an integer ``sum`` of fewer than 32
    bits accumulates in ``i32`` (``u32`` for unsigned types), as Triton does, so that a sum of
    narrow integers does not wrap in their own width; every other reduction keeps ``source``."""
    if requested is not None:
        return requested
    if op == "sum" and source.is_integer and source.nbits < 32:
        return dtype("i32" if source.is_signed else "u32")
    return source


def _along(tr: Transpiler, node: ast.Call, a: Args, n: Nodes, op: str) -> Value:
    """``reduce {op, axis, keepdims}`` of ``a["x"]`` converted to its accumulation dtype
    (:func:`accumulation_dtype`), the axis checked against its rank.

    Diagnostics name ``tv.<op>`` (``tv.sum`` for ``tv.reduce(x, "sum", …)`` too)."""
    x = tr.value(a["x"], n["x"], f"tv.{op}")
    axis = tr.const(a["axis"], n["axis"], f"tv.{op}: axis")
    rank = x.type.rank if x.is_tensor else 0
    if not -rank <= axis < rank:
        raise tr.error(n["axis"], f"tv.{op}: axis {axis} of a tile of rank {rank}")
    requested = (None if a["dtype"] is None
                 else tr.dtype_arg(a["dtype"], n["dtype"], f"tv.{op}: dtype"))
    wanted = accumulation_dtype(x.dtype, op, requested)
    if wanted != x.dtype:
        x = tr.emit(node, "cast", [(x, n["x"])], dtype=wanted)
    return tr.emit(node, "reduce", [(x, n["x"])], op=op, axis=axis % rank,
                   keepdims=bool(a["keepdims"]))


def _form(x: Any, axis: int, keepdims: bool = False, dtype: DType | None = None) -> Any:
    """The signature of each of :data:`FORMS` (defined from the table: named ``sum``, ``max`` and
    ``min`` here, they would hide Python's in this module)."""


for _op in FORMS:
    translates(builtin(_form, name=_op, doc=f'``reduce(x, "{_op}", axis)``.'))(
        functools.partial(_along, op=_op))
del _op

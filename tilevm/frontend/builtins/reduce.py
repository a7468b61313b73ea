"""Reductions along an axis: ``tv.reduce`` and its forms with the operation fixed, ``tv.sum``,
``tv.max``, ``tv.min`` (:data:`FORMS`)."""

from __future__ import annotations

import ast
import functools
from typing import TYPE_CHECKING, Any

from tilevm.frontend.builtins.registry import Args, Nodes, builtin, translates

if TYPE_CHECKING:
    from tilevm.frontend.transpiler.core import Transpiler
    from tilevm.frontend.transpiler.value import Value

# tv.<op>(x, axis, keepdims=False) is tv.reduce(x, op, axis, keepdims).
FORMS = ("sum", "max", "min")


@builtin
def reduce(x: Any, op: str, axis: int, keepdims: bool = False) -> Any:
    """Reduce along ``axis`` with ``"sum"``, ``"max"`` or ``"min"``."""


@translates(reduce)
def _reduce(tr: Transpiler, node: ast.Call, a: Args, n: Nodes) -> Value:
    return _along(tr, node, a, n, tr.const(a["op"], n["op"], "tv.reduce: op", (str,)))


def _along(tr: Transpiler, node: ast.Call, a: Args, n: Nodes, op: str) -> Value:
    """``reduce {op, axis, keepdims}`` of ``a["x"]``, the axis checked against its rank.

    Diagnostics name ``tv.<op>`` (``tv.sum`` for ``tv.reduce(x, "sum", …)`` too)."""
    x = tr.value(a["x"], n["x"], f"tv.{op}")
    axis = tr.const(a["axis"], n["axis"], f"tv.{op}: axis")
    rank = x.type.rank if x.is_tensor else 0
    if not -rank <= axis < rank:
        raise tr.error(n["axis"], f"tv.{op}: axis {axis} of a tile of rank {rank}")
    return tr.emit(node, "reduce", [(x, n["x"])], op=op, axis=axis % rank,
                   keepdims=bool(a["keepdims"]))


def _form(x: Any, axis: int, keepdims: bool = False) -> Any:
    """The signature of each of :data:`FORMS` (defined from the table: named ``sum``, ``max`` and
    ``min`` here, they would hide Python's in this module)."""


for _op in FORMS:
    translates(builtin(_form, name=_op, doc=f'``reduce(x, "{_op}", axis)``.'))(
        functools.partial(_along, op=_op))
del _op

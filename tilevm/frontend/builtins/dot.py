"""Matrix multiply-accumulate: ``tv.dot`` (and the ``@`` operator on tiles)."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

from tilevm.frontend.builtins.registry import Args, Nodes, builtin, translates
from tilevm.frontend.transpiler.value import F32
from tilevm.ir.dtypes import dtype
from tilevm.ir.tile.ops import DOT_RULES
from tilevm.ir.tile.program import Const

if TYPE_CHECKING:
    from tilevm.frontend.transpiler.core import Transpiler
    from tilevm.frontend.transpiler.value import Value


@builtin
def dot(a: Any, b: Any, acc: Any = None) -> Any:
    """``a @ b + acc`` under the numeric contract (docs/numeric-contract.md). Without ``acc``,
    ``a @ b`` summed from zero in f32 (i32 for integer operands)."""


@translates(dot)
def _dot(tr: Transpiler, node: ast.AST, a: Args, n: Nodes) -> Value:
    # ``node`` is the call, or the ``x @ y`` expression (which passes no accumulator).
    x, y = (tr.value(a[k], n[k], f"tv.dot: {k}") for k in ("a", "b"))
    acc = a["acc"]
    if acc is None:  # a fresh accumulator of zeros, in the instruction's widest type
        rule = DOT_RULES.get(x.dtype.name)
        dt = dtype(rule[0][0]) if rule else F32
        shape = (x.type.shape[0] if x.is_tensor and x.type.rank == 2 else 1,
                 y.type.shape[-1] if y.is_tensor and y.type.rank >= 1 else 1)
        zero = Const(0.0 if dt.is_float else 0, dt)
        acc = tr.emit_raw(node, "full", [zero], [node], shape=shape, dtype=dt)
    args = [(x, n["a"]), (y, n["b"]), (tr.value(acc, n["acc"], "tv.dot: acc"), n["acc"])]
    return tr.emit(node, "dot", args)

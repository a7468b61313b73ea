"""Matrix multiply-accumulate: ``tv.dot`` (and the ``@`` operator on tiles)."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

from tilevm.frontend.builtins.registry import Args, Nodes, builtin, translates
from tilevm.frontend.transpiler.value import F32
from tilevm.ir.dtypes import dtype
from tilevm.ir.tile.ops import dot_rule
from tilevm.ir.tile.program import Const

if TYPE_CHECKING:
    from tilevm.frontend.transpiler.core import Transpiler
    from tilevm.frontend.transpiler.value import Value


@builtin
def dot(a: Any, b: Any, acc: Any = None, *, precision: str = "ieee") -> Any:
    """``a @ b + acc`` under the numeric contract (docs/numeric-contract.md). Without ``acc``,
    ``a @ b`` summed from zero in the pair's default accumulator (f32; i32 for integer operands).
    ``precision`` matters for f32 operands only: ``"ieee"`` is a chain of exact ``fma``s in
    increasing k, ``"tf32"`` rounds the operands to tf32 for the tensor cores."""


@translates(dot)
def _dot(tr: Transpiler, node: ast.AST, a: Args, n: Nodes) -> Value:
    # ``node`` is the call, or the ``x @ y`` expression (which passes only a, b and acc=None).
    x, y = (tr.value(a[k], n[k], f"tv.dot: {k}") for k in ("a", "b"))
    precision_node = n.get("precision", node)
    precision = tr.const(a.get("precision", "ieee"), precision_node, "tv.dot: precision", (str,))
    try:
        accumulator = dtype(dot_rule(x.dtype, y.dtype, precision).accumulators[0])
    except ValueError as e:
        if precision != "ieee":  # an unknown precision, or "tf32" on operands other than f32
            raise tr.error(precision_node, f"tv.dot: {e}") from None
        accumulator = F32  # the dot below reports the pair at its operand
    acc = a["acc"]
    if acc is None:  # a fresh accumulator of zeros, in the rule's default type
        shape = (x.type.shape[0] if x.is_tensor and x.type.rank == 2 else 1,
                 y.type.shape[-1] if y.is_tensor and y.type.rank >= 1 else 1)
        zero = Const(0.0 if accumulator.is_float else 0, accumulator)
        acc = tr.emit_raw(node, "full", [zero], [node], shape=shape, dtype=accumulator)
    args = [(x, n["a"]), (y, n["b"]), (tr.value(acc, n["acc"], "tv.dot: acc"), n["acc"])]
    return tr.emit(node, "dot", args, precision=precision)

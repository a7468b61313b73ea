"""Elementwise functions of tiles and scalars: ``tv.where``, ``tv.maximum``, ``tv.minimum``,
``tv.fma``, ``tv.cdiv``, ``tv.rint`` and the one-operand functions of :data:`UNARY` (``tv.exp``,
``tv.sqrt``…). The operators (``+``, ``<``, ``&``…) are in
:mod:`tilevm.frontend.transpiler.expressions`."""

from __future__ import annotations

import ast
import functools
from typing import TYPE_CHECKING, Any

from tilevm.frontend.builtins.registry import Args, Nodes, builtin, translates
from tilevm.frontend.transpiler.value import Value

if TYPE_CHECKING:
    from tilevm.frontend.transpiler.core import Transpiler

# tv.<name>(x) is the Tile IR instruction <name> on x, rounded once (DESIGN §3).
UNARY = ("exp", "exp2", "log", "log2", "sqrt", "rsqrt", "sin", "cos", "tanh", "abs", "floor",
         "ceil")


@builtin
def cdiv(a: Any, b: Any) -> Any:
    """Ceiling division of non-negative integers (compile-time when both are)."""


@translates(cdiv)
def _cdiv(tr: Transpiler, node: ast.Call, a: Args, n: Nodes) -> Any:
    x, y = a["a"], a["b"]
    if not isinstance(x, Value) and not isinstance(y, Value):
        tr.const(x, n["a"], "tv.cdiv")
        tr.const(y, n["b"], "tv.cdiv")
        if y == 0:
            raise tr.error(n["b"], "tv.cdiv: division by zero")
        return -(-x // y)
    return tr.emit(node, "cdiv", [(x, n["a"]), (y, n["b"])])


@builtin
def where(cond: Any, x: Any, y: Any) -> Any:
    """Elementwise ``x if cond else y`` with broadcasting."""


@translates(where)
def _where(tr: Transpiler, node: ast.Call, a: Args, n: Nodes) -> Value:
    return tr.emit(node, "where", [(a["cond"], n["cond"]), (a["x"], n["x"]), (a["y"], n["y"])])


@builtin
def maximum(x: Any, y: Any) -> Any:
    """Elementwise maximum."""


@translates(maximum)
def _maximum(tr: Transpiler, node: ast.Call, a: Args, n: Nodes) -> Value:
    return tr.emit(node, "max", [(a["x"], n["x"]), (a["y"], n["y"])])


@builtin
def minimum(x: Any, y: Any) -> Any:
    """Elementwise minimum."""


@translates(minimum)
def _minimum(tr: Transpiler, node: ast.Call, a: Args, n: Nodes) -> Value:
    return tr.emit(node, "min", [(a["x"], n["x"]), (a["y"], n["y"])])


@builtin
def fma(a: Any, b: Any, c: Any) -> Any:
    """``a * b + c`` rounded once."""


@translates(fma)
def _fma(tr: Transpiler, node: ast.Call, a: Args, n: Nodes) -> Value:
    return tr.emit(node, "fma", [(a[k], n[k]) for k in ("a", "b", "c")])


def _unary(x: Any) -> Any:
    """The signature of each function of :data:`UNARY`."""


def _apply(name: str, tr: Transpiler, node: ast.Call, a: Args, n: Nodes) -> Value:
    """The translation of ``tv.<name>(x)``: the instruction ``name`` on the run-time value x."""
    x = tr.value(a["x"], n["x"], f"tv.{name}")
    return tr.emit(node, name, [(x, n["x"])])


for _name in UNARY:
    translates(builtin(_unary, name=_name, doc=f"Elementwise {_name}, rounded once to the "
                       "operand's dtype."))(functools.partial(_apply, _name))
del _name


@builtin
def rint(x: Any) -> Any:
    """Elementwise rounding to the nearest integral value, ties to even (PTX ``cvt.rni``), in the
    operand's float type; ``tv.cast(tv.rint(x), i8)`` is round-to-nearest-even quantization
    (``tv.cast`` alone truncates toward zero, as C does). Python's ``round(x)`` means the same."""


translates(rint)(functools.partial(_apply, "rint"))

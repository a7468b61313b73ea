"""Register tiles made from nothing: ``tv.zeros``, ``tv.full``, ``tv.arange``."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

from tilevm.frontend.builtins.registry import Args, Nodes, builtin, translates
from tilevm.ir.dtypes import DType
from tilevm.ir.tile.program import Const

if TYPE_CHECKING:
    from tilevm.frontend.transpiler.core import Transpiler
    from tilevm.frontend.transpiler.value import Value


@builtin
def zeros(shape: tuple[int, ...], dtype: DType, layout: Any = None) -> Any:
    """A register tile of zeros (with a register ``layout`` if given)."""


@translates(zeros)
def _zeros(tr: Transpiler, node: ast.Call, a: Args, n: Nodes) -> Value:
    shape = tr.shape(a["shape"], n["shape"], "tv.zeros")
    dt = tr.dtype_arg(a["dtype"], n["dtype"], "tv.zeros")
    zero = Const(0.0 if dt.is_float else 0, dt)
    value = tr.emit_raw(node, "full", [zero], [node], shape=shape, dtype=dt)
    return tr.with_layout(value, a["layout"], n["layout"], "tv.zeros")


@builtin
def full(shape: tuple[int, ...], value: Any, dtype: DType, layout: Any = None) -> Any:
    """A register tile filled with a compile-time or block-uniform scalar."""


@translates(full)
def _full(tr: Transpiler, node: ast.Call, a: Args, n: Nodes) -> Value:
    shape = tr.shape(a["shape"], n["shape"], "tv.full")
    dt = tr.dtype_arg(a["dtype"], n["dtype"], "tv.full")
    value = tr.operand(a["value"], n["value"], dt)
    result = tr.emit_raw(node, "full", [value], [n["value"]], shape=shape, dtype=dt)
    return tr.with_layout(result, a["layout"], n["layout"], "tv.full")


@builtin
def arange(start: int, stop: int | None = None) -> Any:
    """An i32 tile ``[start, stop)`` (``[0, start)`` with one argument)."""


@translates(arange)
def _arange(tr: Transpiler, node: ast.Call, a: Args, n: Nodes) -> Value:
    start = tr.const(a["start"], n["start"], "tv.arange: start")
    stop = a["stop"]
    if stop is None:
        start, stop = 0, start
    stop = tr.const(stop, n["stop"], "tv.arange: stop")
    if stop <= start:
        raise tr.error(node, f"tv.arange: empty range [{start}, {stop})")
    return tr.emit(node, "arange", [], start=start, stop=stop)

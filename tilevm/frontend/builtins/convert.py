"""Values and bits under another type or layout: ``tv.cast``, ``tv.bitcast``, ``tv.view``,
``tv.convert_layout`` (DESIGN §3)."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

from tilevm.frontend.builtins.registry import Args, Nodes, builtin, translates
from tilevm.frontend.transpiler.value import Value
from tilevm.ir.dtypes import DType

if TYPE_CHECKING:
    from tilevm.frontend.transpiler.core import Transpiler


@builtin
def cast(x: Any, dtype: DType) -> Any:
    """Convert values to ``dtype``. Into a float type: round to nearest even (saturating into
    narrow types as the type's own encoding says). Float into an integer type: **truncate**
    toward zero, as C and PTX ``cvt.rzi`` do, saturating at the type's range, NaN to 0 (use
    ``tv.rint``/``tv.floor`` first for another rounding). Integer into integer: wrap modulo
    2**bits."""


@translates(cast)
def _cast(tr: Transpiler, node: ast.Call, a: Args, n: Nodes) -> Value:
    dt = tr.dtype_arg(a["dtype"], n["dtype"], "tv.cast")
    x = a["x"]
    if not isinstance(x, Value):
        return Value(tr.operand(x, n["x"], dt))
    if x.dtype == dt:
        return x
    return tr.emit(node, "cast", [(x, n["x"])], dtype=dt)


@builtin
def bitcast(x: Any, dtype: DType) -> Any:
    """Reinterpret bits along the last dimension."""


@translates(bitcast)
def _bitcast(tr: Transpiler, node: ast.Call, a: Args, n: Nodes) -> Value:
    dt = tr.dtype_arg(a["dtype"], n["dtype"], "tv.bitcast")
    return tr.emit(node, "bitcast", [(tr.value(a["x"], n["x"], "tv.bitcast"), n["x"])],
                   dtype=dt)


@builtin
def view(x: Any, dtype: DType, layout: Any) -> Any:
    """Reinterpret the bits each thread holds under another register layout."""


@translates(view)
def _view(tr: Transpiler, node: ast.Call, a: Args, n: Nodes) -> Value:
    dt = tr.dtype_arg(a["dtype"], n["dtype"], "tv.view")
    layout = tr.register_layout(a["layout"], n["layout"], "tv.view")
    return tr.emit(node, "view", [(tr.value(a["x"], n["x"], "tv.view"), n["x"])],
                   dtype=dt, layout=layout)


@builtin
def convert_layout(x: Any, layout: Any) -> Any:
    """The same values under another register layout."""


@translates(convert_layout)
def _convert_layout(tr: Transpiler, node: ast.Call, a: Args, n: Nodes) -> Value:
    layout = tr.register_layout(a["layout"], n["layout"], "tv.convert_layout")
    x = tr.value(a["x"], n["x"], "tv.convert_layout")
    return tr.emit(node, "convert_layout", [(x, n["x"])], layout=layout)

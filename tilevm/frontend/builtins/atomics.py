"""Atomic read-modify-writes of global and shared memory: ``tv.atomic`` and its forms with the
operation fixed, ``tv.atomic_add``, ``tv.atomic_max``, ``tv.atomic_min``, ``tv.atomic_exch``
(:data:`FORMS`)."""

from __future__ import annotations

import ast
import functools
from typing import TYPE_CHECKING, Any

from tilevm.frontend.builtins.memory import access_offsets, scatter_value
from tilevm.frontend.builtins.registry import Args, Nodes, builtin, translates
from tilevm.frontend.transpiler.value import Value

if TYPE_CHECKING:
    from tilevm.frontend.transpiler.core import Transpiler

# tv.atomic_<op>(tensor, value, offsets, mask=None) is tv.atomic(tensor, value, offsets, op, mask).
FORMS = {
    "add": "Atomic add (f32, f16, bf16, f64, i32, u32, u64); returns the old values.",
    "max": "Atomic max on integers; returns the old values.",
    "min": "Atomic min on integers; returns the old values.",
    "exch": "Atomic exchange; returns the old values.",
}


@builtin
def atomic(tensor: Any, value: Any, offsets: tuple, op: str, mask: Any = None) -> Any:
    """Atomic read-modify-write (``op`` one of add, max, min, exch, and, or, xor); returns the
    old values. An offset may be an i32 tile of absolute indices (a scatter)."""


@translates(atomic)
def _atomic(tr: Transpiler, node: ast.Call, a: Args, n: Nodes) -> Value:
    return _rmw(tr, node, a, n, tr.const(a["op"], n["op"], "tv.atomic: op", (str,)))


def _rmw(tr: Transpiler, node: ast.Call, a: Args, n: Nodes, op: str) -> Value:
    """``atomic {op}``: a number as the value is one element of the tensor's dtype.

    Diagnostics name ``tv.atomic_<op>`` (for ``tv.atomic(…, op)`` too)."""
    t = tr.memory_tensor(a["tensor"], n["tensor"], f"tv.atomic_{op}", ("global", "shared"))
    v_op = tr.operand(a["value"], n["value"], t.type.dtype)
    offs = access_offsets(tr, a["offsets"], n["offsets"], t, f"tv.atomic_{op}")
    v_op = scatter_value(tr, Value(v_op), offs, n["value"], t).operand
    mode, mask = tr.mask(a["mask"], n["mask"], f"tv.atomic_{op}")
    return tr.emit_access(node, "atomic", [(t.operand, n["tensor"]), (v_op, n["value"])], offs,
                          n["offsets"], mask, n["mask"], op=op, mask=mode)


def _form(tensor: Any, value: Any, offsets: tuple, mask: Any = None) -> Any:
    """The signature of each of :data:`FORMS`."""


for _op, _doc in FORMS.items():
    translates(builtin(_form, name=f"atomic_{_op}", doc=_doc))(functools.partial(_rmw, op=_op))
del _op, _doc

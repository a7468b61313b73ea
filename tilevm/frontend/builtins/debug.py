"""Printing from a kernel: ``tv.debug_print``."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

from tilevm.frontend.builtins.registry import Args, Nodes, builtin, translates

if TYPE_CHECKING:
    from tilevm.frontend.transpiler.core import Transpiler


@builtin
def debug_print(prefix: str, *values: Any) -> None:
    """Print ``prefix`` and values, with the block index (the interpreter prints every block)."""


@translates(debug_print)
def _debug_print(tr: Transpiler, node: ast.Call, a: Args, n: Nodes) -> None:
    prefix = tr.const(a["prefix"], n["prefix"], "tv.debug_print: prefix", (str,))
    values = [(tr.value(v, node, "tv.debug_print: a value"), node) for v in a["values"]]
    tr.emit(node, "print", values, prefix=prefix)

"""The same elements in another shape or order: ``tv.transpose``, ``tv.reshape``,
``tv.broadcast`` (indexing a tile with ``None`` and ``.T`` are in
:mod:`tilevm.frontend.transpiler.expressions`)."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

from tilevm.frontend.builtins.registry import Args, Nodes, builtin, translates

if TYPE_CHECKING:
    from tilevm.frontend.transpiler.core import Transpiler
    from tilevm.frontend.transpiler.value import Value


@builtin
def transpose(x: Any, perm: tuple[int, ...] | None = None) -> Any:
    """Permute the dimensions (reversed by default)."""


@translates(transpose)
def _transpose(tr: Transpiler, node: ast.Call, a: Args, n: Nodes) -> Value:
    perm = a["perm"]
    if perm is not None:
        perm = tuple(tr.const(p, n["perm"], "tv.transpose: perm") for p in perm)
    return tr.emit(node, "transpose", [(a["x"], n["x"])], perm=perm)


@builtin
def reshape(x: Any, shape: tuple[int, ...]) -> Any:
    """The same elements, row-major, in another shape."""


@translates(reshape)
def _reshape(tr: Transpiler, node: ast.Call, a: Args, n: Nodes) -> Value:
    shape = tr.shape(a["shape"], n["shape"], "tv.reshape")
    return tr.emit(node, "reshape", [(tr.value(a["x"], n["x"], "tv.reshape"), n["x"])],
                   shape=shape)


@builtin
def broadcast(x: Any, shape: tuple[int, ...]) -> Any:
    """Broadcast to ``shape`` (numpy rules)."""


@translates(broadcast)
def _broadcast(tr: Transpiler, node: ast.Call, a: Args, n: Nodes) -> Value:
    shape = tr.shape(a["shape"], n["shape"], "tv.broadcast")
    return tr.emit(node, "broadcast", [(a["x"], n["x"])], shape=shape)

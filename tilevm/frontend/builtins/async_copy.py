"""Asynchronous copies from global into shared memory, in groups: ``tv.copy_async``,
``tv.commit``, ``tv.wait``."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

from tilevm.frontend.builtins.registry import Args, Nodes, builtin, translates

if TYPE_CHECKING:
    from tilevm.frontend.transpiler.core import Transpiler


@builtin
def copy_async(dst: Any, src: Any, offsets: tuple, mask: Any = None) -> None:
    """Start copying the tile of ``dst``'s shape at ``offsets`` of global ``src`` into shared
    ``dst``; it joins the open group, :func:`commit` closes it, :func:`wait` completes it."""


@translates(copy_async)
def _copy_async(tr: Transpiler, node: ast.Call, a: Args, n: Nodes) -> None:
    dst = tr.memory_tensor(a["dst"], n["dst"], "tv.copy_async", ("shared",))
    src = tr.memory_tensor(a["src"], n["src"], "tv.copy_async", ("global",))
    offs = tr.offsets(a["offsets"], n["offsets"], src, "tv.copy_async")
    if dst.type.rank != src.type.rank:
        raise tr.error(n["dst"], f"tv.copy_async: a shared tile of rank {dst.type.rank} "
                                 f"from {src.describe()} of rank {src.type.rank}")
    mode, mask = tr.mask(a["mask"], n["mask"], "tv.copy_async")
    tr.emit_access(node, "copy_async", [(dst.operand, n["dst"]), (src.operand, n["src"])], offs,
                   n["offsets"], mask, n["mask"], mask=mode)


@builtin
def commit() -> None:
    """Close the open group of :func:`copy_async` copies."""


@translates(commit)
def _commit(tr: Transpiler, node: ast.Call, a: Args, n: Nodes) -> None:
    tr.emit(node, "commit", [])


@builtin
def wait(n: int = 0) -> None:
    """Complete every committed group but the ``n`` newest."""


@translates(wait)
def _wait(tr: Transpiler, node: ast.Call, a: Args, n: Nodes) -> None:
    tr.emit(node, "wait", [], n=tr.const(a["n"], n["n"], "tv.wait: n"))

"""Ordering within and across blocks: ``tv.sync``, ``tv.fence``."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from tilevm.frontend.builtins.registry import Args, Nodes, builtin, translates

if TYPE_CHECKING:
    from tilevm.frontend.transpiler.core import Transpiler


@builtin
def sync() -> None:
    """A block barrier."""


@translates(sync)
def _sync(tr: Transpiler, node: ast.Call, a: Args, n: Nodes) -> None:
    tr.emit(node, "sync", [])


@builtin
def fence(scope: str = "gpu") -> None:
    """Order this block's memory accesses: those before the fence are seen by other blocks
    (``scope="gpu"``; ``"sys"`` includes the host, ``"block"`` only this block) before those after
    it. Put one between writing data and publishing it with an atomic, and one between seeing an
    atomic's result and reading what other blocks published (PTX ``fence.acq_rel``)."""


@translates(fence)
def _fence(tr: Transpiler, node: ast.Call, a: Args, n: Nodes) -> None:
    scope = tr.const(a["scope"], n["scope"], "tv.fence: scope", (str,))
    tr.emit_raw(node, "fence", [], [], scope=scope)

"""Printing from a kernel and checking in it: ``tv.debug_print``, ``tv.device_assert``."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

from tilevm.frontend.builtins.registry import Args, Nodes, builtin, translates
from tilevm.frontend.transpiler.value import U1, Value

if TYPE_CHECKING:
    from tilevm.frontend.transpiler.core import Transpiler


@builtin
def debug_print(prefix: str, *values: Any, block: int | tuple[int, ...] | None = None) -> None:
    """Print ``prefix`` and ``values`` from one block: ``block`` (an int, or a tuple with one
    index per grid axis; by default block 0, ``(0, 0)`` or ``(0, 0, 0)``). Other blocks print
    nothing; a chosen block outside the launched grid prints nothing.

    The first line is ``[block (b,)] prefix`` followed by each value: a scalar as its value
    (``%g`` for floats, decimal for integers), a tile as ``tileK`` (its place among the values).
    Each tile then prints its dtype and shape and a grid of its values, row by row (a tile of
    rank 3 or more prints one grid per leading index). On the CPU backend and the GPU the tile
    also shows its register layout: the layout expression and a second grid of the same shape
    whose cells are ``thread:local``, the thread of the block and the register slot that hold
    the element (the first holder where the layout replicates elements). The interpreter has no
    layout and says so. The lines are printed once per execution of the statement, after the
    chosen block's threads have reached it (on the GPU by thread 0 of that block, through
    ``vprintf``)."""


@translates(debug_print)
def _debug_print(tr: Transpiler, node: ast.Call, a: Args, n: Nodes) -> None:
    prefix = tr.const(a["prefix"], n["prefix"], "tv.debug_print: prefix", (str,))
    if tr.launch is None:
        raise tr.error(node, "tv.debug_print needs the grid: call tv.launch first")
    block = _chosen_block(tr, a["block"], n["block"])
    values = [(tr.value(v, node, "tv.debug_print: a value"), node) for v in a["values"]]
    tr.emit(node, "print", values, prefix=prefix, block=block)


def _chosen_block(tr: Transpiler, block: Any, node: ast.AST) -> tuple[int, ...]:
    """``block`` as a tuple of one non-negative compile-time index per grid axis."""
    rank = tr.grid_rank
    if block is None:
        return (0,) * rank
    items = block if isinstance(block, (tuple, list)) else (block,)
    for x in items:
        tr.const(x, node, "tv.debug_print: block")
        if x < 0:
            raise tr.error(node, f"tv.debug_print: block indices must be non-negative, got "
                                 f"{tuple(items)}")
    if len(items) != rank:
        raise tr.error(node, f"tv.debug_print: block {tuple(items)} has {len(items)} "
                             f"ind{'ex' if len(items) == 1 else 'ices'} for a {rank}-D grid")
    return tuple(items)


@builtin
def device_assert(cond: Any, msg: str = "device_assert failed") -> None:
    """Stop the run unless ``cond`` holds: ``cond`` is a ``u1`` tile (every element must be
    true) or a block-uniform ``u1`` scalar (a comparison gives one); ``msg`` a compile-time
    string.

    Where an element is false, the interpreter and the CPU backend stop the launch with
    :class:`tilevm.KernelExecutionError`, whose message holds ``msg``, the user's file and line,
    the block and the index of a false element (the first in row-major order on the
    interpreter). On the GPU each thread holding a false element prints that line (the first
    holder of a replicated element) and executes ``trap``, which aborts the kernel; the host
    sees a launch failure. The check costs a comparison per element; remove it from hot loops
    once a kernel is trusted. A compile-time condition is checked while the kernel is built."""


@translates(device_assert)
def _device_assert(tr: Transpiler, node: ast.Call, a: Args, n: Nodes) -> None:
    msg = tr.const(a["msg"], n["msg"], "tv.device_assert: msg", (str,))
    cond = a["cond"]
    if not isinstance(cond, Value):
        if not cond:
            raise tr.error(node, f"tv.device_assert: the compile-time condition is false: {msg}")
        return
    if cond.dtype != U1:
        raise tr.error(n["cond"], f"tv.device_assert: the condition must be u1 (a comparison), "
                                  f"got {cond.describe()}; compare it, e.g. x != 0")
    tr.emit(node, "device_assert", [(cond, n["cond"])], msg=msg)

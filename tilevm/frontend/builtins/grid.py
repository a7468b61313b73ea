"""The launch and the grid: ``tv.launch``, ``tv.block_idx``, ``tv.grid_dim``."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

from tilevm.frontend.builtins.registry import Args, Nodes, builtin, translates
from tilevm.frontend.transpiler.value import I32
from tilevm.ir.tile.types import ScalarType

if TYPE_CHECKING:
    from tilevm.frontend.transpiler.core import Transpiler


@builtin
def launch(grid: Any, warps: int = 4) -> None:
    """Declare the launch: ``grid`` (1 to 3 block-uniform integers of parameters and constants)
    and ``warps`` (a compile-time power of two). Must come before any run-time computation."""


@translates(launch, bind=False)
def _launch(tr: Transpiler, node: ast.Call) -> None:
    if tr.launch is not None:
        raise tr.error(node, "tv.launch is called twice")
    if tr.depth or len(tr.frames) != 1:
        raise tr.error(node, "tv.launch must be called at the top level of the kernel")
    if tr.builder.blocks[0]:
        raise tr.error(node, "tv.launch must come before any run-time computation")
    # The grid's arguments are computed on the host before the launch: what they emit goes into
    # the launch block, so they are bound here, inside it.
    with tr.builder.block() as launch_body:
        a, n = tr.bind_args(node, launch)
        grid = a["grid"]
        items = list(grid) if isinstance(grid, (tuple, list)) else [grid]
        if not 1 <= len(items) <= 3:
            raise tr.error(n["grid"], f"tv.launch: the grid has {len(items)} axes; "
                                      "1 to 3 are allowed")
        ops = []
        for x in items:
            op = tr.operand(x, n["grid"], I32)
            if not isinstance(op.type, ScalarType) or not op.type.dtype.is_integer:
                raise tr.error(n["grid"], f"tv.launch: grid sizes must be integers, got "
                                          f"{op.type}")
            ops.append(op)
    warps = tr.const(a["warps"], n["warps"], "tv.launch: warps")
    if warps not in (1, 2, 4, 8, 16, 32):
        raise tr.error(n["warps"], f"tv.launch: warps must be a power of two from 1 to 32, "
                                   f"got {warps}")
    tr.launch = (tuple(ops), warps, launch_body)
    tr.grid_rank = len(ops)


@builtin
def block_idx(axis: int | None = None) -> Any:
    """This block's index: a scalar for a 1-D grid, a tuple for 2-D and 3-D grids, or one axis."""


@builtin
def grid_dim(axis: int | None = None) -> Any:
    """The number of blocks along each axis (like :func:`block_idx`)."""


@translates(block_idx)
def _block_idx(tr: Transpiler, node: ast.Call, a: Args, n: Nodes) -> Any:
    return _axes(tr, node, a, n, "block_idx")


@translates(grid_dim)
def _grid_dim(tr: Transpiler, node: ast.Call, a: Args, n: Nodes) -> Any:
    return _axes(tr, node, a, n, "grid_dim")


def _axes(tr: Transpiler, node: ast.Call, a: Args, n: Nodes, op: str) -> Any:
    """One instruction ``op {axis}`` for the axis asked, or for each axis of the grid."""
    if tr.launch is None:
        raise tr.error(node, f"tv.{op} needs the grid: call tv.launch first")
    axis = a["axis"]
    if axis is not None:
        axis = tr.const(axis, n["axis"], f"tv.{op}: axis")
        if not 0 <= axis < tr.grid_rank:
            raise tr.error(n["axis"], f"tv.{op}: axis {axis} of a {tr.grid_rank}-D grid")
        return tr.emit(node, op, [], axis=axis)
    values = tuple(tr.emit(node, op, [], axis=i) for i in range(tr.grid_rank))
    return values[0] if tr.grid_rank == 1 else values

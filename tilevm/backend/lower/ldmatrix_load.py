"""Loads of 16-bit tiles from shared memory by ``ldmatrix`` (DESIGN §4: the quotient of the
register layout by the instruction's fragment is the loop over instructions).

A register layout ``L`` that divides by ``ldmatrix_fragment(num, trans)`` (``F``) is loaded by one
``ldmatrix.x{num}{.trans}`` per local element of the quotient ``Q = L / F``: lane ``l`` gives the
address of row ``l % 8`` of matrix ``l // 8``. Those row starts are themselves a layout: ``Q * R``,
where ``R`` puts lane ``l`` at the first element of the row it addresses (matrices in the
fragment's arrangement, 8 lanes down each matrix's rows, 8 local elements along the row), so the
address of lane ``l``'s row for instruction ``q`` is the address of local element ``8q`` of
``Q * R`` — ordinary index arithmetic, swizzle included. Register ``j`` of instruction ``q``
holds local elements ``q · 2num + 2j`` (low half) and ``+1`` (high half) of ``L``.

Rows must be 16 contiguous, 16-byte aligned bytes: the tile's last dimension has stride 1, the
row stride and the column offset are multiples of 8 elements, the buffer starts on 16 bytes.
"""

from __future__ import annotations

from tilevm.backend.lower import values as vals
from tilevm.backend.lower.context import LoweringContext
from tilevm.backend.lower.memory_access import Addressing, index_divisor_of
from tilevm.ir.layout.algebra import (
    LayoutDivisionError,
    column_local,
    column_spatial,
    divide,
    local,
    replicated,
)
from tilevm.ir.layout.algebra import spatial as spatial_layout
from tilevm.ir.layout.fragments import ldmatrix_fragment
from tilevm.ir.layout.register import RegisterLayout
from tilevm.ir.thread.types import B32, S32
from tilevm.ir.thread.values import Const, Operand
from tilevm.ir.tile.program import Const as TileConst
from tilevm.ir.tile.program import Instr

__all__ = ["ldmatrix_loop", "ldmatrix_plan", "load_by_ldmatrix"]

# The arrangements of ldmatrix_fragment tried, each with its lane layout (matrix j = lane // 8):
# the mma-A order (down the rows first), and row-major (along the rows first: a dot's B
# fragments read from a transposed buffer).
_ARRANGEMENTS = {
    1: [(local(1, 1), spatial_layout(1, 1))],
    2: [(local(2, 1), spatial_layout(2, 1)), (local(1, 2), spatial_layout(1, 2))],
    4: [(column_local(2, 2), column_spatial(2, 2)), (local(2, 2), spatial_layout(2, 2))],
}
LdmatrixPlan = tuple[int, bool, RegisterLayout, RegisterLayout]


def ldmatrix_plan(layout: RegisterLayout, acc: Addressing, ctx: LoweringContext,
                  offsets: list[object]) -> LdmatrixPlan | None:
    """``(num, trans, quotient, lanes)`` of the widest ``ldmatrix`` that loads a tile in
    ``layout`` at ``offsets`` of the shared tensor ``acc`` (``lanes``: which matrix each group of
    8 lanes addresses), or ``None`` when none can."""
    sh = acc.shared
    if sh is None or acc.dtype.nbits != 16 or layout.rank != 2:
        return None
    strides = sh.layout.strides[len(sh.prefix):]
    if strides[-1] != 1 or strides[-2] % 8 or acc.base_bits % 128:
        return None
    if index_divisor_of(ctx, offsets[1]) % 8:
        return None
    for num in (4, 2, 1):
        for trans in (False, True):
            for arrangement, lanes in _ARRANGEMENTS[num]:
                try:
                    q = divide(layout, ldmatrix_fragment(num, trans, arrangement))
                except (LayoutDivisionError, ValueError):
                    continue
                return num, trans, q, lanes
    return None


def _in_bounds(ctx: LoweringContext, acc: Addressing, offsets: list[object],
               shape: tuple[int, ...]) -> Operand | None:
    """A block-uniform predicate: the whole tile lies inside the tensor (``None``: it always
    does)."""
    kb = ctx.kb
    pred = None
    for o, n, size in zip(offsets, shape, acc.sizes, strict=True):
        if isinstance(o, TileConst) and isinstance(size, Const) and 0 <= o.value <= size.value - n:
            continue
        start = ctx.index_scalar(o)
        ok = kb.setp("le", kb.add(start, n, type=S32), size, type=S32)
        ok = kb.and_(ok, kb.setp("ge", start, 0, type=S32), type="pred")
        pred = ok if pred is None else kb.and_(pred, ok, type="pred")
    return pred


def load_by_ldmatrix(ctx: LoweringContext, s: Instr, acc: Addressing, offsets: list[object],
                     tile: vals.TileValue, plan: LdmatrixPlan, fallback: object) -> None:
    """Fill ``tile`` by ``ldmatrix`` (see the module docstring). Where the tile may reach past the
    tensor (``mask`` "bounds" with offsets not known to be inside), a block-uniform test chooses
    between this and ``fallback()``, the element-wise load."""
    kb = ctx.kb
    pred = _in_bounds(ctx, acc, offsets, tuple(s.result.type.shape)) \
        if s.attr("mask") == "bounds" else None
    if pred is None:
        ldmatrix_loop(ctx, acc, offsets, tile, plan)
        return
    with kb.if_(pred, uniform=True):
        ldmatrix_loop(ctx, acc, offsets, tile, plan)
    with kb.else_():
        fallback()  # type: ignore[operator]


def ldmatrix_loop(ctx: LoweringContext, acc: Addressing, offsets: list[object],
                  tile: vals.TileValue, plan: LdmatrixPlan) -> None:
    """Fill ``tile`` from the tile at ``offsets`` of ``acc`` (every row inside it) by the
    ``ldmatrix`` instructions of ``plan`` (:func:`ldmatrix_plan`)."""
    kb = ctx.kb
    num, trans, q, lanes = plan
    rows = q * (replicated(4 // num) * lanes * spatial_layout(8, 1) * local(1, 8))
    starts = [ctx.index_scalar(o) for o in offsets]
    with vals.locals_loop(kb, q.local_size, "m", q) as m:
        index = [kb.add(o, e, type=S32) for o, e in
                 zip(starts, ctx.element_index(rows, vals.scale(m, 8)), strict=True)]
        addr, _ = acc.address(ctx, index)
        loaded = kb.ldmatrix(addr, num, trans=trans)
        words = [loaded] if num == 1 else kb.unpack(loaded)
        first = vals.scale(m, 2 * num)
        for j, word in enumerate(words):  # a 16-bit tile's words: no bit moves
            kb.mov(word, B32, out=tile.array[vals.plus(vals.quotient(first, 2), j)])

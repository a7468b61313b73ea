"""``reduce`` with ``op`` ``"argmax"`` or ``"argmin"``: the index of the largest (smallest)
element along the reduced axes, in the same order as :mod:`~tilevm.backend.lower.reduction`
(each thread's elements, ``shfl`` butterflies, warps through shared memory).

Each partial result is a pair (value, index). A pair ``b`` replaces the pair ``a`` when ``b``'s
value is NaN and ``a``'s is not (NaN counts as the extreme, as numpy's ``argmax``/``argmin``), or
``b``'s value is strictly beyond ``a``'s, or the two values tie (equal, −0 = +0, or both NaN) and
``b``'s index is smaller. That is a total order on pairs, so the result — the first index of the
extreme — is exact whatever the combining order. The index of an element is its row-major
position among the reduced axes (a flat index when every axis is reduced, as numpy's
``argmax(x)``)."""

from __future__ import annotations

from tilevm.backend.lower import values as vals
from tilevm.backend.lower.context import LoweringContext
from tilevm.backend.lower.reduction import (
    accumulator_type,
    accumulators_result,
    axis_digits,
    flat_position,
    warp_coordinate,
    widen,
    writer_predicate,
)
from tilevm.backend.lower.rules_elementwise import operand_local
from tilevm.backend.lower.warp_shuffle import shuffle
from tilevm.ir.dtypes import DType
from tilevm.ir.layout import algebra
from tilevm.ir.layout.register import RegisterLayout
from tilevm.ir.thread.types import PRED, S32, U32, ScalarType
from tilevm.ir.thread.values import Const, Operand
from tilevm.ir.tile.ops import reduce_axes
from tilevm.ir.tile.program import Instr

__all__ = ["lower_arg_reduce"]

# The index of "no element yet": every real element ties with or beats the starting value, and
# its index is smaller.
_NO_INDEX = 0x7FFFFFFF


def _start(dt: DType, op: str, t: ScalarType) -> Const:
    """The starting value: the end of the order opposite to ``op`` (−inf/+inf, or the type's
    integer minimum/maximum), which every element ties with or beats."""
    if dt.is_float:
        return Const.of(float("-inf") if op == "argmax" else float("inf"), t)
    return Const.of(int(dt.min) if op == "argmax" else int(dt.max), t)


def _replaces(ctx: LoweringContext, op: str, b: Operand, ib: Operand, a: Operand, ia: Operand,
              t: ScalarType, is_float: bool) -> Operand:
    """The predicate "pair (b, ib) replaces pair (a, ia)" (see the module docstring)."""
    kb = ctx.kb
    beyond = kb.setp("gt" if op == "argmax" else "lt", b, a, type=t)
    earlier = kb.setp("lt", ib, ia, type=S32)
    if not is_float:
        tie = kb.setp("eq", b, a, type=t)
        return kb.or_(beyond, kb.and_(tie, earlier, type=PRED), type=PRED)
    b_nan = kb.setp("nan", b, b, type=t)
    a_num = kb.setp("num", a, a, type=t)
    # equ: equal or unordered; with "b NaN, a a number" handled first, a tie is equal or both NaN
    tie = kb.setp("equ", b, a, type=t)
    both_nan = kb.and_(b_nan, kb.setp("nan", a, a, type=t), type=PRED)
    tie = kb.or_(kb.and_(tie, a_num, type=PRED), both_nan, type=PRED)
    first = kb.or_(kb.and_(b_nan, a_num, type=PRED), beyond, type=PRED)
    return kb.or_(first, kb.and_(tie, earlier, type=PRED), type=PRED)


def _take(ctx: LoweringContext, op: str, value: Operand, index: Operand, acc: object,
          acc_index: object, j: object, t: ScalarType, is_float: bool) -> None:
    """``acc[j], acc_index[j] = (value, index)`` where that pair replaces theirs."""
    kb = ctx.kb
    p = _replaces(ctx, op, value, index, acc[j], acc_index[j], t, is_float)
    kb.mov(kb.selp(value, acc[j], p, type=t), t, out=acc[j])
    kb.mov(kb.selp(index, acc_index[j], p, type=S32), S32, out=acc_index[j])


def _reduced_position(ctx: LoweringContext, layout: RegisterLayout, axes: tuple[int, ...],
                      i: object) -> Operand:
    """The row-major position (s32) of this thread's element ``i`` among the reduced axes."""
    kb = ctx.kb
    index = ctx.element_index(layout, i)
    position: Operand | None = None
    for d in axes:
        position = index[d] if position is None else kb.add(
            kb.mul(position, layout.shape[d], type=S32), index[d], type=S32)
    assert position is not None
    return position


def lower_arg_reduce(ctx: LoweringContext,
                     s: Instr) -> tuple[vals.TileValue | None, Operand | None]:
    """Lower ``reduce {op: argmax|argmin}``; returns the i32 result tile, or for a reduction to
    rank 0 the scalar."""
    kb = ctx.kb
    x = ctx.tile(s.args[0])
    op, axes = s.attr("op"), reduce_axes(s.attr("axis"))
    dt, layout = x.dtype, x.layout
    out_layout = algebra.reduce(layout, axes, keepdims=bool(s.attr("keepdims")))
    t = accumulator_type(dt, "max")
    count = out_layout.local_size
    acc = kb.array(t, count, name="acc")
    acc_index = kb.array(S32, count, name="acc_index")
    with vals.locals_loop(kb, count, "j") as j:
        kb.mov(_start(dt, op, t), t, out=acc[j])
        kb.mov(Const.of(_NO_INDEX, S32), S32, out=acc_index[j])
    # 1. this thread's elements
    keep_shape = tuple(1 if d in axes else n for d, n in enumerate(layout.shape))
    with vals.locals_loop(kb, x.count) as i:
        j = operand_local(layout, keep_shape, i)
        value = widen(ctx, vals.read(kb, x, i), dt, t)
        _take(ctx, op, value, _reduced_position(ctx, layout, axes, i), acc, acc_index, j, t,
              dt.is_float)
    distances, warps = axis_digits(layout, axes)
    # 2. butterflies across the lanes holding one output
    for distance in distances:
        with vals.locals_loop(kb, count, "j") as j:
            other = shuffle(kb, acc[j], "bfly", distance)
            other_index = shuffle(kb, acc_index[j], "bfly", distance)
            _take(ctx, op, other, other_index, acc, acc_index, j, t, dt.is_float)
    # 3. across warps, through shared memory: the values, then the indices
    if warps:
        nwarps = 1
        for _, size in warps:
            nwarps *= size
        nbytes = t.bits // 8
        total = 1
        for n in out_layout.shape:
            total *= n
        values_bytes = total * nwarps * nbytes
        base = kb.add(ctx.smem, ctx.scratch(values_bytes + total * nwarps * 4), type=U32)
        index_base = kb.add(base, (values_bytes + 3) // 4 * 4, type=U32)
        coordinate = warp_coordinate(ctx, layout, warps)
        writer = writer_predicate(ctx, layout, axes)
        ctx.barrier()
        with vals.locals_loop(kb, count, "j", out_layout) as j:
            slot = kb.add(kb.mul(flat_position(ctx, out_layout, j), nwarps, type=U32),
                          coordinate, type=U32)
            kb.st("shared", kb.add(base, kb.mul(slot, nbytes, type=U32), type=U32), acc[j],
                  guard=writer)
            kb.st("shared", kb.add(index_base, kb.mul(slot, 4, type=U32), type=U32),
                  acc_index[j], guard=writer)
        ctx.barrier()
        with vals.locals_loop(kb, count, "j", out_layout) as j:
            first = kb.mul(flat_position(ctx, out_layout, j), nwarps, type=U32)
            kb.mov(_start(dt, op, t), t, out=acc[j])
            kb.mov(Const.of(_NO_INDEX, S32), S32, out=acc_index[j])
            with kb.for_(0, nwarps, unroll=True, name="w") as w:
                slot = kb.add(first, w, type=U32)
                part = kb.ld("shared", kb.add(base, kb.mul(slot, nbytes, type=U32), type=U32), t)
                part_index = kb.ld("shared", kb.add(index_base, kb.mul(slot, 4, type=U32),
                                                    type=U32), S32)
                _take(ctx, op, part, part_index, acc, acc_index, j, t, dt.is_float)
    return accumulators_result(ctx, s, acc_index, out_layout)

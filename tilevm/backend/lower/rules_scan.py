"""Lowering of ``scan`` (``tv.cumsum``, ``tv.cumprod``, ``tv.cummax``, ``tv.cummin``).

The operand moves (:func:`~tilevm.backend.lower.exchange.relayout`) into a layout that gives
each thread whole lines along the axis (:func:`scan_layout`); each thread then scans its lines
left to right in registers, in the accumulator type of ``reduce`` (f32 for narrow floats, f64
for f64; integers in their compute type, wrapping when stored), and the result moves into the
layout inference chose for it. Integer, ``max`` and ``min`` scans are exact; a float ``sum`` or
``prod`` rounds at each step, so prefix ``k`` (of ``k`` elements) is within ``(k − 1)·u·Σ|x|``
(sum) or a relative ``(k − 1)·u`` (product, u of f32) of the interpreter's, which rounds once —
the bounded class of DESIGN §3; f64 scans are left to right in both, so exact. A combine
function (``op = "custom"``, inclusive) runs from each line's first element, left to right in the
reduction's dtype, as the interpreter does: exact.

This costs two layout conversions and keeps a whole line in one thread's registers: lines of a
few hundred elements would spill (the tests keep them at 64). A scan along lanes and warps
(shuffles, then shared memory, as ``reduce``) is the next step for long lines.
"""

from __future__ import annotations

from tilevm.backend.lower import values as vals
from tilevm.backend.lower.context import LoweringContext, rule
from tilevm.backend.lower.default_layouts import blocked_layout
from tilevm.backend.lower.dtype_map import scalar_register_type
from tilevm.backend.lower.exchange import plan, relayout
from tilevm.backend.lower.reduction import (
    accumulator_type,
    combine_from_first,
    element_value,
    rounded,
    widen,
)
from tilevm.backend.lower.rules_elementwise import operand_local
from tilevm.ir.dtypes import DType
from tilevm.ir.layout import algebra
from tilevm.ir.layout.register import RegisterLayout
from tilevm.ir.thread.types import ScalarType
from tilevm.ir.thread.values import Const, Operand
from tilevm.ir.tile.ops import CUSTOM_REDUCE
from tilevm.ir.tile.program import Instr

__all__ = ["lower_scan", "scan_layout"]


def scan_layout(shape: tuple[int, ...], axis: int, nbits: int, warps: int) -> RegisterLayout:
    """A layout of ``shape`` over ``warps`` warps in which every thread holds whole lines along
    ``axis``, in increasing local index: the blocked layout of the other dimensions times a
    local mode of the axis."""
    lines = tuple(1 if d == axis else n for d, n in enumerate(shape))
    along = tuple(n if d == axis else 1 for d, n in enumerate(shape))
    return algebra.compose(blocked_layout(lines, nbits, warps), algebra.local(*along))


def _start(op: str, dt: DType, t: ScalarType, for_output: bool) -> Const:
    """The accumulator's identity (−0.0 for a float sum, NaN for a float max/min, which PTX
    ignores) or, ``for_output``, the empty prefix of an exclusive scan (as the interpreter's
    ``scan_start``: −0.0, 1, −inf/+inf or the integer type's limits)."""
    if op == "sum":
        return Const.of(-0.0 if dt.is_float else 0, t)
    if op == "prod":
        return Const.of(1.0 if dt.is_float else 1, t)
    if dt.is_float:
        if not for_output:
            return Const.of(float("nan"), t)
        return Const.of(float("-inf") if op == "max" else float("inf"), t)
    return Const.of(int(dt.min) if op == "max" else int(dt.max), t)


def _combine(ctx: LoweringContext, op: str, a: Operand, b: Operand, t: ScalarType) -> Operand:
    kb = ctx.kb
    if op == "sum":
        return kb.add(a, b, type=t)
    if op == "prod":
        return kb.mul(a, b, type=t)
    return (kb.max if op == "max" else kb.min)(a, b, type=t)


@rule("scan")
def lower_scan(ctx: LoweringContext, s: Instr) -> None:
    """Lower ``scan {op, axis, exclusive}`` (see the module docstring)."""
    x = ctx.tile(s.args[0])
    op, axis = s.attr("op"), s.attr("axis")
    dt = x.dtype
    r = s.result
    lines = scan_layout(tuple(x.layout.shape), axis, dt.nbits,
                        max(1, x.layout.num_threads // 32))
    if x.layout != lines:
        ctx.report.conversions.append((s.loc, s.args[0].name, repr(x.layout), repr(lines),
                                       "scan along lines held by one thread", _how(x.layout,
                                                                                    lines)))
        x = relayout(ctx, s, x, lines, f"{r.name}_lines")
    keep_shape = tuple(1 if d == axis else n for d, n in enumerate(lines.shape))
    count = algebra.reduce(lines, [axis], keepdims=True).local_size
    if op == CUSTOM_REDUCE:
        out = _custom_lines(ctx, s, x, lines, keep_shape, count)
    else:
        out = _lines(ctx, s, x, lines, keep_shape, count)
    target = r.type.layout
    if target == lines:
        ctx.bind(r, out)
        return
    ctx.report.conversions.append((s.loc, r.name, repr(lines), repr(target),
                                   "scan result", _how(lines, target)))
    ctx.bind(r, relayout(ctx, s, out, target, r.name))


def _custom_lines(ctx: LoweringContext, s: Instr, x: vals.TileValue, lines: RegisterLayout,
                  keep_shape: tuple[int, ...], count: int) -> vals.TileValue:
    """Each line scanned with the ``combine`` function, left to right from its first element
    (no identity), in the scalar register form of the dtype: the interpreter's order."""
    kb = ctx.kb
    t = scalar_register_type(x.dtype)
    acc = kb.array(t, count, name="acc")
    with vals.locals_loop(kb, count, "j") as j:
        kb.mov(Const.of(0, t), t, out=acc[j])  # overwritten by the first element: never read
    out = vals.new_tile(kb, x.dtype, lines, f"{s.result.name}_scanned")
    with vals.locals_loop(kb, x.count) as i:
        j = operand_local(lines, keep_shape, i)
        value = element_value(kb, x, i)
        kb.mov(combine_from_first(ctx, s.attr("combine"), lines, (s.attr("axis"),), i, acc[j],
                                  value), t, out=acc[j])
        vals.write(kb, out, i, acc[j])
    return out


def _lines(ctx: LoweringContext, s: Instr, x: vals.TileValue, lines: RegisterLayout,
           keep_shape: tuple[int, ...], count: int) -> vals.TileValue:
    """Each line scanned with ``op`` in its accumulator type, left to right."""
    kb = ctx.kb
    op, exclusive, dt = s.attr("op"), bool(s.attr("exclusive")), x.dtype
    r = s.result
    # prod and sum of f16 accumulate in f32 (reduce's f16 max/min stay in f16)
    t = accumulator_type(dt, "sum" if op == "prod" else op)
    acc = kb.array(t, count, name="acc")
    last = kb.array(t, count, name="last") if exclusive else None
    with vals.locals_loop(kb, count, "j") as j:
        kb.mov(_start(op, dt, t, False), t, out=acc[j])
        if last is not None:
            kb.mov(_start(op, dt, t, True), t, out=last[j])
    out = vals.new_tile(kb, dt, lines, f"{r.name}_scanned")

    # each line in increasing local index, which is increasing position along the axis
    with vals.locals_loop(kb, x.count) as i:
        j = operand_local(lines, keep_shape, i)
        value = widen(ctx, vals.read(kb, x, i), dt, t)
        if last is not None:
            vals.write(kb, out, i, rounded(kb, last[j], dt, t))
        kb.mov(_combine(ctx, op, acc[j], value, t), t, out=acc[j])
        if last is not None:
            kb.mov(acc[j], t, out=last[j])
        else:
            vals.write(kb, out, i, rounded(kb, acc[j], dt, t))
    return out


def _how(source: RegisterLayout, target: RegisterLayout) -> str:
    how = plan(source, target)
    return "through shared memory" if how == "shared memory" else f"by {how}"

"""Lowering of the operations that move or reinterpret a tile's elements: ``reduce``,
``transpose``, ``reshape``, ``broadcast``, ``bitcast``, ``view`` and ``convert_layout``.

``transpose`` and a ``reshape`` that the layout algebra can follow keep every element in its
register: the result shares the operand's registers (or copies them, when either is reassigned
later). Other conversions move elements by register moves, warp shuffles or shared memory
(:mod:`~tilevm.backend.lower.exchange`).
"""

from __future__ import annotations

from tilevm.backend.lower import values as vals
from tilevm.backend.lower.context import LoweringContext, rule
from tilevm.backend.lower.dtype_map import is_packed
from tilevm.backend.lower.exchange import plan, relayout
from tilevm.backend.lower.reduction import lower_reduce
from tilevm.backend.lower.repack import repack
from tilevm.backend.lower.rules_elementwise import operand_local
from tilevm.ir.layout import algebra
from tilevm.ir.layout.register import RegisterLayout
from tilevm.ir.thread.types import B32
from tilevm.ir.tile.program import Instr
from tilevm.ir.tile.types import TensorType


@rule("reduce")
def lower_reduce_rule(ctx: LoweringContext, s: Instr) -> None:
    tile, scalar = lower_reduce(ctx, s)
    if tile is not None:
        ctx.bind(s.result, tile)
    else:
        ctx.bind(s.result, vals.ScalarValue(s.result.type.dtype, scalar))


def _same_registers(ctx: LoweringContext, s: Instr, source: vals.TileValue) -> None:
    """The result holds the operand's registers in the same order, in its own layout."""
    r = s.result
    layout = r.type.layout
    if ctx.can_alias(r.name, s.args[0].name):
        ctx.bind(r, vals.TileValue(source.dtype, layout, source.array))
        return
    tile = ctx.new_tile(r)
    kb = ctx.kb
    if is_packed(source.dtype):
        with vals.locals_loop(kb, source.array.length, "w") as w:
            kb.mov(source.array[w], B32, out=tile.array[w])
    else:
        with vals.locals_loop(kb, source.count) as i:
            vals.write(kb, tile, i, source.array[i])
    ctx.bind(r, tile)


@rule("transpose")
def lower_transpose(ctx: LoweringContext, s: Instr) -> None:
    _same_registers(ctx, s, ctx.tile(s.args[0]))


@rule("reshape")
def lower_reshape(ctx: LoweringContext, s: Instr) -> None:
    source = ctx.tile(s.args[0])
    r = s.result
    try:
        follows = algebra.reshape(source.layout, tuple(r.type.shape)) == r.type.layout
    except ValueError:
        follows = False
    if follows:
        _same_registers(ctx, s, source)
        return
    ctx.report.conversions.append((s.loc, r.name, repr(source.layout), repr(r.type.layout),
                                   "reshape the layout cannot follow",
                                   _how(source.layout, r.type.layout)))
    ctx.bind(r, relayout(ctx, s, source, r.type.layout, r.name))


@rule("convert_layout")
def lower_convert_layout(ctx: LoweringContext, s: Instr) -> None:
    source = ctx.tile(s.args[0])
    r = s.result
    target = r.type.layout
    if source.layout == target:
        _same_registers(ctx, s, source)
        return
    why = ctx.conversion_reasons.get(r.name, "given by the program")
    ctx.report.conversions.append((s.loc, r.name, repr(source.layout), repr(target), why,
                                   _how(source.layout, target)))
    ctx.bind(r, relayout(ctx, s, source, target, r.name))


def _how(source: RegisterLayout, target: RegisterLayout) -> str:
    how = plan(source, target)
    return "through shared memory" if how == "shared memory" else f"by {how}"


@rule("broadcast")
def lower_broadcast(ctx: LoweringContext, s: Instr) -> None:
    kb = ctx.kb
    r = s.result
    value = ctx.value(s.args[0])
    tile = ctx.new_tile(r)
    if isinstance(value, vals.ScalarValue):
        once = vals.read_storage(kb, value)
        with vals.locals_loop(kb, tile.count) as i:
            vals.write(kb, tile, i, once)
    else:
        shape = tuple(s.args[0].type.shape)
        with vals.locals_loop(kb, tile.count) as i:
            vals.write(kb, tile, i, vals.read_storage(kb, value, operand_local(
                r.type.layout, shape, i)))
    ctx.bind(r, tile)


@rule("bitcast", "view")
def lower_reinterpret(ctx: LoweringContext, s: Instr) -> None:
    kb = ctx.kb
    r = s.result
    value = ctx.value(s.args[0])
    if not isinstance(r.type, TensorType):
        raw = vals.read_raw(kb, value)
        stored = vals.from_raw(kb, raw, r.type.dtype)
        ctx.bind(r, vals.ScalarValue(r.type.dtype, kb.mov(stored, stored.type)))
        return
    tile = ctx.new_tile(r)
    repack(ctx, value, tile)
    ctx.bind(r, tile)

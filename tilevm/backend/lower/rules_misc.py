"""Lowering of tile creation (``full``, ``arange``), the block's coordinates and ``cdiv``."""

from __future__ import annotations

from tilevm.backend.lower import scalar_math as sm
from tilevm.backend.lower import values as vals
from tilevm.backend.lower.context import LoweringContext, rule
from tilevm.ir.thread.types import S32
from tilevm.ir.tile.program import Instr

_AXES = "xyz"


@rule("full")
def lower_full(ctx: LoweringContext, s: Instr) -> None:
    kb = ctx.kb
    tile = ctx.new_tile(s.result)
    value = vals.read_storage(kb, ctx.value(s.args[0]))
    with vals.locals_loop(kb, tile.count) as i:
        vals.write(kb, tile, i, value)
    ctx.bind(s.result, tile)


@rule("arange")
def lower_arange(ctx: LoweringContext, s: Instr) -> None:
    kb = ctx.kb
    tile = ctx.new_tile(s.result)
    start = s.attr("start")
    with vals.locals_loop(kb, tile.count, layout=tile.layout) as i:
        (index,) = ctx.element_index(tile.layout, i)
        vals.write(kb, tile, i, kb.add(index, start, type=S32) if start else index)
    ctx.bind(s.result, tile)


@rule("block_idx", "grid_dim")
def lower_block_coordinate(ctx: LoweringContext, s: Instr) -> None:
    name = ("ctaid." if s.op == "block_idx" else "nctaid.") + _AXES[s.attr("axis")]
    reg = ctx.kb.mov(ctx.kb.sreg(name), S32)
    ctx.bind(s.result, vals.ScalarValue(s.result.type.dtype, reg))


@rule("cdiv")
def lower_cdiv(ctx: LoweringContext, s: Instr) -> None:
    kb = ctx.kb
    dt = s.result.type.dtype
    a, b = ctx.scalar(s.args[0]), ctx.scalar(s.args[1])
    t = a.type
    # The interpreter stops on a zero divisor; so does the GPU (trap), not with a wrong size.
    kb.emit("trap", (), guard=kb.setp("eq", b, 0, type=t))
    negated = sm.unary(kb, "neg", a, dt)
    quotient = sm.binary(kb, "floordiv", negated, b, dt)
    ctx.bind(s.result, vals.ScalarValue(dt, sm.unary(kb, "neg", quotient, dt)))


"""Lowering of ``print`` (``tv.debug_print``): every block prints one line, as the interpreter
does — ``[block (x,)] prefix`` followed by each value, a tile's elements in row-major order.

The block's threads first put each tile into the scratch area of shared memory (its first holders
write each element), and after a barrier thread 0 prints with ``vprintf``: floats as ``%g`` of
their value, integers as ``%lld``/``%llu``. Lines of different blocks may interleave on the GPU;
on the CPU backend blocks running in parallel print in the order they finish.
"""

from __future__ import annotations

from tilevm.backend.lower import memory_access as ma
from tilevm.backend.lower import values as vals
from tilevm.backend.lower.context import LoweringContext, rule
from tilevm.backend.lower.dtype_map import compute_type
from tilevm.backend.lower.exchange import scratch_addressing
from tilevm.ir.dtypes import DType
from tilevm.ir.layout.shared import SharedLayout
from tilevm.ir.thread.types import F32, F64, S32, S64, U32, U64
from tilevm.ir.thread.values import Const, Operand
from tilevm.ir.tile.program import Instr

_AXES = "xyz"


def _printable(ctx: LoweringContext, value: Operand, dt: DType) -> tuple[str, Operand]:
    """A printf conversion and its operand for one compute value."""
    kb = ctx.kb
    t = compute_type(dt)
    if dt.is_float:
        if t != F64:
            value = kb.cvt(value if t == F32 else kb.cvt(value, F32, src=t), F64, src=F32)
        return "%g", value
    if t in (S64, U64):
        return ("%lld" if t == S64 else "%llu"), value
    return ("%lld", kb.cvt(value, S64, src=S32)) if t == S32 else ("%llu", kb.cvt(value, U64,
                                                                                src=U32))


def _escape(text: str) -> str:
    return text.replace("%", "%%")


@rule("print")
def lower_print(ctx: LoweringContext, s: Instr) -> None:
    kb = ctx.kb
    # Every tile to its own part of the scratch area, written by its first holders.
    offset = 0
    staged: list[tuple[object, int]] = []
    ctx.barrier()
    for a in s.args:
        value = ctx.value(a)
        if isinstance(value, vals.TileValue):
            shape = tuple(value.layout.shape)
            layout = SharedLayout.row_major(*shape)
            tensor = vals.SharedTensor(value.dtype, ctx.scratch(0) + offset, layout,
                                       name="print")
            ma.store_tile(ctx, s, scratch_addressing(value.dtype, tensor),
                          ma.zero_offsets(len(shape)), value, "none",
                          None)
            staged.append((value, offset))
            offset += (layout.size_bytes(value.dtype.nbits) + 15) // 16 * 16
        else:
            staged.append((value, -1))
    ctx.scratch(offset)
    ctx.barrier()
    grid = len(ctx.kernel.grid)
    coords = [kb.sreg(f"ctaid.{_AXES[d]}") for d in range(grid)]
    block = ", ".join(["%u"] * grid) + ("," if grid == 1 else "")
    with kb.if_(kb.setp("eq", ctx.tid, 0, type=U32)):
        kb.vprintf(f"[block ({block})] {_escape(s.attr('prefix'))}", *coords)
        for value, at in staged:
            if at < 0:
                fmt, arg = _printable(ctx, vals.read(kb, value), value.dtype)
                kb.vprintf(f" {fmt}", arg)
                continue
            _print_tile(ctx, s, value, ctx.scratch(0) + at)
        kb.vprintf("\n")
    ctx.barrier()


def _print_tile(ctx: LoweringContext, s: Instr, tile: vals.TileValue, base: int) -> None:
    """`` [e0 e1 …]`` of a tile staged row-major at ``base`` in shared memory."""
    kb = ctx.kb
    dt = tile.dtype
    count = tile.layout.size
    flat = vals.SharedTensor(dt, base, SharedLayout.row_major(count), name="print")
    acc = scratch_addressing(dt, flat)
    kb.vprintf(" [")
    with kb.for_(0, count, name="e") as e:
        raw = ma.load_element(ctx, acc, [e], None, Const(0, U32))
        shown = vals.ScalarValue(dt, vals.from_raw(kb, raw, dt))
        fmt, arg = _printable(ctx, vals.read(kb, shown), dt)
        kb.vprintf(fmt, arg)
        with kb.if_(kb.setp("lt", e, count - 1, type=S32)):
            kb.vprintf(" ")
    kb.vprintf("]")


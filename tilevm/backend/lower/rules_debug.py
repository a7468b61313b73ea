"""Lowering of ``print`` (``tv.debug_print``): the chosen block prints its values and, for each
tile, the register layout — which thread and register slot hold each element.

Only the block named by the ``block`` attribute (block 0 when it is empty) runs the print: its
threads put each tile into the scratch area of shared memory (the first holders write each
element, row-major), and after a barrier thread 0 prints with ``vprintf``. The text is
(``docs/dsl.md``, ``tv.debug_print``)::

    [block (0,)] x= tile1 9
      tile1: f32[4] in layout spatial(4) * replicated(16)
        values:
                0     1.5       3     4.5
        thread:local (each element held by 16 threads; the first shown):
              0:0     1:0     2:0     3:0

Floats print as ``%g`` of their value, integers in decimal; a tile's cells are right-aligned to
one width, that of the widest value of the dtype (7 for floats) or of an ownership cell. The
ownership grid is computed in the kernel, element by element, from the digits of the layout the
lowering gave the tile: the same static mapping every other rule of the lowering uses. Tiles of
rank 3 or more print one grid per leading index, each headed ``[i, j, :, :]``. Since one block
prints, its lines are not interleaved with other blocks' (on the GPU the host prints a kernel's
``vprintf`` output after the kernel; the CPU backend writes each block's lines after the launch,
in block order).
"""

from __future__ import annotations

from tilevm.backend.lower import memory_access as ma
from tilevm.backend.lower import values as vals
from tilevm.backend.lower.context import LoweringContext, rule
from tilevm.backend.lower.dtype_map import compute_type
from tilevm.backend.lower.errors import lowering_error
from tilevm.backend.lower.exchange import scratch_addressing
from tilevm.ir.dtypes import DType
from tilevm.ir.layout.digits import layout_digits
from tilevm.ir.layout.register import RegisterLayout
from tilevm.ir.layout.shared import SharedLayout
from tilevm.ir.thread.types import F32, F64, PRED, S32, S64, U32, U64
from tilevm.ir.thread.values import Const, Operand
from tilevm.ir.tile.program import Instr

_AXES = "xyz"
FLOAT_CELL_WIDTH = 7
"""The width a float cell is right-aligned to (``%7g``; wider values push the row)."""
INDENT = "    "
"""The indentation of a tile's grid rows."""


def value_width(dt: DType) -> int:
    """The cell width of a ``dt`` value: its widest decimal for integers, 7 for floats."""
    if dt.is_float:
        return FLOAT_CELL_WIDTH
    return max(len(str(dt.min)), len(str(dt.max)))


def tile_title(dt: DType, shape: tuple[int, ...]) -> str:
    """``f32[4, 8]``: a tile's dtype and shape as the print shows them."""
    return f"{dt.name}[{', '.join(map(str, shape))}]"


def _printable(ctx: LoweringContext, value: Operand, dt: DType, width: int = 0
               ) -> tuple[str, Operand]:
    """A printf conversion (right-aligned to ``width``, 0: none) and its operand for one compute
    value."""
    kb = ctx.kb
    t = compute_type(dt)
    w = str(width) if width else ""
    if dt.is_float:
        if t != F64:
            value = kb.cvt(value if t == F32 else kb.cvt(value, F32, src=t), F64, src=F32)
        return f"%{w}g", value
    if t in (S64, U64):
        return (f"%{w}lld" if t == S64 else f"%{w}llu"), value
    if t == S32:
        return f"%{w}lld", kb.cvt(value, S64, src=S32)
    return f"%{w}llu", kb.cvt(value, U64, src=U32)


def _escape(text: str) -> str:
    return text.replace("%", "%%")


def _chosen_block(ctx: LoweringContext, s: Instr) -> tuple[int, ...]:
    grid = len(ctx.kernel.grid)
    block = tuple(s.attr("block")) or (0,) * grid
    if len(block) != grid:
        raise lowering_error(f"print: block {block} has {len(block)} indices for a {grid}-D grid",
                             s.loc)
    return block


@rule("print")
def lower_print(ctx: LoweringContext, s: Instr) -> None:
    kb = ctx.kb
    block = _chosen_block(ctx, s)
    # The block index is uniform across the block, so the whole print (barriers included) runs in
    # the chosen block only.
    chosen: Operand | None = None
    for d, b in enumerate(block):
        here = kb.setp("eq", kb.sreg(f"ctaid.{_AXES[d]}"), b, type=U32)
        chosen = here if chosen is None else kb.and_(chosen, here, type=PRED)
    assert chosen is not None
    with kb.if_(chosen, uniform=True):
        _print_in_block(ctx, s, block)


def _print_in_block(ctx: LoweringContext, s: Instr, block: tuple[int, ...]) -> None:
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
    with kb.if_(kb.setp("eq", ctx.tid, 0, type=U32)):
        # The first line: the prefix, scalars by value, tiles by name.
        kb.vprintf(f"[block {block}] {_escape(s.attr('prefix'))}")
        tiles: list[tuple[str, vals.TileValue, int]] = []
        for value, at in staged:
            if at < 0:
                fmt, arg = _printable(ctx, vals.read(kb, value), value.dtype)
                kb.vprintf(f" {fmt}", arg)
            elif value.layout.rank == 0:
                _print_element(ctx, value.dtype, ctx.scratch(0) + at, 1, Const(0, S32), " ", 0)
            else:
                name = f"tile{len(tiles) + 1}"
                kb.vprintf(f" {name}")
                tiles.append((name, value, at))
        kb.vprintf("\n")
        for name, value, at in tiles:
            _print_tile(ctx, name, value, ctx.scratch(0) + at)
    ctx.barrier()


def _owner_widths(layout: RegisterLayout) -> tuple[int, int]:
    """The widths of the thread and of the local number in an ownership cell."""
    return len(str(layout.num_threads - 1)), len(str(layout.local_size - 1))


def _print_tile(ctx: LoweringContext, name: str, tile: vals.TileValue, base: int) -> None:
    """A tile staged row-major at ``base`` in shared memory: its title, the values grid, the
    ownership grid."""
    kb = ctx.kb
    layout = tile.layout
    thread_w, local_w = _owner_widths(layout)
    width = max(value_width(tile.dtype), thread_w + 1 + local_w)
    kb.vprintf(_escape(f"  {name}: {tile_title(tile.dtype, layout.shape)} in layout {layout!r}")
               + "\n")
    kb.vprintf(f"  {INDENT[2:]}values:\n")

    def value_cell(index: list[Operand], flat: Operand) -> None:
        _print_element(ctx, tile.dtype, base, layout.size, flat, " ", width)

    _grid(ctx, layout.shape, value_cell)
    replicas = layout.replication
    held = (f" (each element held by {replicas} threads; the first shown)" if replicas > 1
            else "")
    kb.vprintf(f"  {INDENT[2:]}thread:local{held}:\n")
    digits = layout_digits(layout)
    pad = " " * (width - (thread_w + 1 + local_w) + 1)

    def owner_cell(index: list[Operand], flat: Operand) -> None:
        # The first holder of the element: each thread or local digit of the layout is the
        # element's index along its dimension, divided by the digit's weight, modulo its size.
        owner: dict[str, Operand] = {"thread": Const(0, S32), "local": Const(0, S32)}
        for g in digits:
            if g.kind == "replica":
                continue
            digit = kb.rem(kb.div(index[g.dim], g.weight, type=S32), g.size, type=S32)
            owner[g.kind] = kb.add(owner[g.kind], kb.mul(digit, g.stride, type=S32), type=S32)
        kb.vprintf(f"{pad}%{thread_w}d:%-{local_w}d", kb.mov(owner["thread"], S32),
                   kb.mov(owner["local"], S32))

    _grid(ctx, layout.shape, owner_cell)


def _grid(ctx: LoweringContext, shape: tuple[int, ...], cell) -> None:
    """Row by row, ``cell(index, flat)`` of every element (the index per dimension and the
    row-major flat index, s32), each row indented and ended; rank 3 and more: one grid per
    leading index, headed ``[i, j, :, :]``."""
    kb = ctx.kb
    lead = shape[:-2]
    planes = 1
    for n in lead:
        planes *= n
    rows = shape[-2] if len(shape) >= 2 else 1
    cols = shape[-1]
    with kb.for_(0, planes, name="plane") as p:
        lead_index: list[Operand] = []
        inner = planes
        for n in lead:
            inner //= n
            lead_index.append(kb.rem(kb.div(p, inner, type=S32), n, type=S32))
        if lead:
            kb.vprintf(INDENT + "[" + ", ".join(["%d"] * len(lead)) + ", :, :]\n", *lead_index)
        with kb.for_(0, rows, name="row") as r:
            kb.vprintf(INDENT[1:])
            with kb.for_(0, cols, name="col") as c:
                row = kb.mad(p, rows, r, type=S32)
                flat = kb.mad(row, cols, c, type=S32)
                index = [*lead_index, r, c] if len(shape) >= 2 else [c]
                cell(index, flat)
            kb.vprintf("\n")


def _print_element(ctx: LoweringContext, dt: DType, base: int, count: int, e: Operand,
                   sep: str, width: int) -> None:
    """``sep`` and element ``e`` of the ``count`` elements of a ``dt`` tile staged row-major at
    ``base`` in shared memory."""
    kb = ctx.kb
    flat = vals.SharedTensor(dt, base, SharedLayout.row_major(count), name="print")
    acc = scratch_addressing(dt, flat)
    raw = ma.load_element(ctx, acc, [e], None, Const(0, U32))
    shown = vals.ScalarValue(dt, vals.from_raw(kb, raw, dt))
    fmt, arg = _printable(ctx, vals.read(kb, shown), dt, width)
    kb.vprintf(f"{sep}{fmt}", arg)

"""Moving a tile between threads: register moves, warp shuffles, or shared memory.

Element ``k`` (in row-major order) of the target tile is element ``k`` of the source, so the same
code serves ``convert_layout`` (one shape) and ``reshape``. :func:`plan` looks, for every target
register slot ``(thread, local)``, at where that element is held in the source: by the thread
itself, by another lane of its warp, or only in other warps. :func:`relayout` performs it:

- *register moves* / *warp shuffles*, when every thread finds its element in its own warp and the
  source slot depends on the target slot alone (not on the thread): one loop over the target's
  slots, each a register read, plus one ``shfl.sync.idx`` when the element is in another lane —
  the register array is still indexed by constants once the loop is unrolled;
- *shared memory* otherwise: the source's first holders write each element at its row-major
  position in the scratch area, a barrier, every target holder reads it (vectorized by
  :mod:`~tilevm.backend.lower.memory_access`).
"""

from __future__ import annotations

import numpy as np

from tilevm.backend.lower import values as vals
from tilevm.backend.lower.context import LoweringContext
from tilevm.backend.lower.ldmatrix_load import ldmatrix_loop, ldmatrix_plan
from tilevm.backend.lower.memory_access import Addressing, load_tile, store_tile, zero_offsets
from tilevm.backend.lower.warp_shuffle import shuffle
from tilevm.ir.dtypes import DType, dtype
from tilevm.ir.layout.algebra import permute
from tilevm.ir.layout.digits import layout_digits, local_digits, thread_digits
from tilevm.ir.layout.register import RegisterLayout
from tilevm.ir.layout.shared import SharedLayout
from tilevm.ir.thread.types import B32, S32
from tilevm.ir.thread.values import Const, Index, Operand
from tilevm.ir.tile.program import Instr

__all__ = ["plan", "relayout", "scratch_addressing", "scratch_tensor"]


def _replica_bits(layout: RegisterLayout) -> int:
    """The bits of the thread number that only choose among replicas."""
    bits = 0
    for g in layout_digits(layout):
        if g.kind == "replica":
            bits |= (g.size - 1) * g.stride
    return bits


def _source_slots(source: RegisterLayout, target: RegisterLayout) -> tuple[np.ndarray, ...]:
    """For every target slot ``(thread, local)``: the source's first holder (thread, local) of
    the same row-major element."""
    cells = target.thread_local_to_index()
    full = (target.num_threads, target.local_size)
    flat = (np.ravel_multi_index(cells, target.shape) if cells
            else np.zeros(full, np.int64))
    where = np.unravel_index(flat, source.shape) if source.shape else ()
    first_thread, first_local = source.index_to_thread_local()
    return (np.broadcast_to(first_thread[where], full),
            np.broadcast_to(first_local[where], full))


def plan(source: RegisterLayout, target: RegisterLayout) -> str:
    """How :func:`relayout` moves a tile from ``source`` to ``target`` (row-major order):
    ``"register moves"``, ``"warp shuffles"`` or ``"shared memory"`` (see the module
    docstring)."""
    if source.num_threads != target.num_threads:
        return "shared memory"
    thread, local = _source_slots(source, target)
    free = _replica_bits(source)
    me = np.arange(target.num_threads)[:, None]
    holder = (thread & ~free) | (me & free)  # a replica in the reader's own lane or warp
    if np.any(holder >> 5 != me >> 5) or np.any(local != local[:1]):
        return "shared memory"
    return "register moves" if np.all(holder == me) else "warp shuffles"


def _row_major(index: list[Index], shape: tuple[int, ...]) -> Index:
    flat: Index = 0
    for i, n in zip(index, shape, strict=True):
        flat = vals.plus(vals.scale(flat, n), i)
    return flat


def _in_source(index: list[Index], target_shape: tuple[int, ...],
               source_shape: tuple[int, ...]) -> list[Index]:
    """The source index of the element at target ``index`` (the same row-major position)."""
    if target_shape == source_shape:
        return index
    flat = _row_major(index, target_shape)
    out, stride = [], 1
    for n in reversed(source_shape):
        out.append(vals.digit(flat, stride, n))
        stride *= n
    return out[::-1]


def _source_local(source: RegisterLayout, target: RegisterLayout, j: Index) -> Index:
    """The source slot of target slot ``j`` (the same in every thread, as :func:`plan`
    checked, hence the one of thread 0, whose index is the local part alone)."""
    index = _in_source(LoweringContext.local_part(target, j), target.shape, source.shape)
    slot: Index = 0
    for g in local_digits(source):
        slot = vals.plus(slot, vals.scale(vals.digit(index[g.dim], g.weight, g.size), g.stride))
    return slot


def _source_lane(ctx: LoweringContext, source: RegisterLayout, target: RegisterLayout,
                 j: Index) -> Operand:
    """The lane (u32) that holds, in the source, the element of this thread's target slot
    ``j``: the source's lane digits of the element, the reader's own lane replica bits."""
    kb = ctx.kb
    # Constants (a dimension no thread digit indexes, at local 0) fold as ints.
    index: list[Index] = [x.bits if isinstance(x, Const) else x
                          for x in ctx.element_index(target, j)]
    index = _in_source(index, target.shape, source.shape)
    lane: Index = 0
    for g in thread_digits(source):
        if g.kind == "thread" and g.in_lanes:
            lane = vals.plus(lane, vals.scale(vals.digit(index[g.dim], g.weight, g.size),
                                              g.stride))
    reg = vals.index_reg(kb, lane)
    free = _replica_bits(source) & 31
    if free:
        reg = kb.or_(reg, kb.and_(ctx.tid, free, type=B32), type=B32)
    return reg


def _exchange_in_warp(ctx: LoweringContext, source: vals.TileValue, target: RegisterLayout,
                      name: str, shuffles: bool) -> vals.TileValue:
    kb = ctx.kb
    out = vals.new_tile(kb, source.dtype, target, name)
    with vals.locals_loop(kb, out.count, "j", target) as j:
        raw = vals.read_raw(kb, source, _source_local(source.layout, target, j))
        if shuffles:
            raw = shuffle(kb, raw, "idx", _source_lane(ctx, source.layout, target, j))
        vals.write_raw(kb, out, j, raw)
    return out


def scratch_tensor(ctx: LoweringContext, dt: DType, shape: tuple[int, ...]) -> vals.SharedTensor:
    """The scratch area seen as a row-major shared tensor of ``shape``."""
    layout = SharedLayout.row_major(*shape)
    size = layout.size_bytes(dt.nbits)
    return vals.SharedTensor(dt, ctx.scratch(size), layout, name="scratch")


def scratch_addressing(dt: DType, sh: vals.SharedTensor) -> Addressing:
    """How to address a row-major shared tensor in the scratch area (its start is aligned)."""
    sizes = [Const.of(n, S32) for n in sh.layout.shape]
    bits = [dt.nbits * s for s in sh.layout.strides]
    return Addressing(dt, "shared", sizes, "scratch", True, 1024, bits, shared=sh)


def _carrier(dt: DType) -> DType:
    """The type a tile of ``dt`` travels through the scratch area as: itself if its elements are
    whole bytes, else the unsigned integer of the next byte width (no element shares a byte, so
    no atomics are needed)."""
    if dt.nbits in (8, 16, 32, 64):
        return dt
    return dtype(f"u{8 if dt.nbits < 8 else 16 if dt.nbits <= 16 else 32}")


def _as_carrier(ctx: LoweringContext, tile: vals.TileValue, carrier: DType) -> vals.TileValue:
    """``tile``'s bit patterns as a tile of ``carrier`` (one element each)."""
    if carrier == tile.dtype:
        return tile
    out = vals.new_tile(ctx.kb, carrier, tile.layout, "carried")
    with vals.locals_loop(ctx.kb, tile.count) as i:
        vals.write_raw(ctx.kb, out, i, vals.read_raw(ctx.kb, tile, i))
    return out


def relayout(ctx: LoweringContext, s: Instr, source: vals.TileValue, target: RegisterLayout,
             name: str) -> vals.TileValue:
    """``source`` (a tile of any shape with the same number of elements) as a tile in
    ``target`` (of its shape), element ``k`` of both in row-major order being the same element,
    moved as :func:`plan` says."""
    how = plan(source.layout, target)
    if how != "shared memory":
        return _exchange_in_warp(ctx, source, target, name, how == "warp shuffles")
    if _down_columns(source.layout) and _down_columns(target) and source.layout.shape == \
            target.shape:
        # Both run down the columns (a transposed tile into a dot's B fragments): through the
        # scratch area transposed, where each thread's runs are rows (whole words, 16-byte
        # stores, ldmatrix without .trans). Permuting a layout keeps every register.
        view = vals.TileValue(source.dtype, permute(source.layout, (1, 0)), source.array)
        moved = _through_scratch(ctx, s, view, permute(target, (1, 0)), name)
        return vals.TileValue(moved.dtype, target, moved.array)
    return _through_scratch(ctx, s, source, target, name)


def _down_columns(layout: RegisterLayout) -> bool:
    """A rank-2 layout whose consecutive local elements run along dimension 0."""
    digits = local_digits(layout)
    if layout.rank != 2 or not digits:
        return False
    inner = min(digits, key=lambda g: g.stride)
    return inner.stride == 1 and inner.dim == 0 and inner.size > 1


def _through_scratch(ctx: LoweringContext, s: Instr, source: vals.TileValue,
                     target: RegisterLayout, name: str) -> vals.TileValue:
    """:func:`relayout` through the scratch area, row-major in the source's shape."""
    kb = ctx.kb
    shape = tuple(target.shape)
    carrier = _carrier(source.dtype)
    ctx.barrier()  # the scratch area's last readers are done
    src_tensor = scratch_tensor(ctx, carrier, tuple(source.layout.shape))
    zeros = zero_offsets(source.layout.rank)
    store_tile(ctx, s, scratch_addressing(carrier, src_tensor), zeros,
               _as_carrier(ctx, source, carrier), "none", None)
    ctx.barrier()
    dst_tensor = scratch_tensor(ctx, carrier, shape)
    zeros = zero_offsets(len(shape))
    arrived = vals.new_tile(kb, carrier, target, name)
    dst = scratch_addressing(carrier, dst_tensor)
    by_ldmatrix = ldmatrix_plan(target, dst, ctx, zeros)  # e.g. into a dot's fragments
    if by_ldmatrix is not None:
        ldmatrix_loop(ctx, dst, zeros, arrived, by_ldmatrix)
    else:
        load_tile(ctx, s, dst, zeros, arrived, "none", None, 0)
    if carrier == source.dtype:
        return arrived
    out = vals.new_tile(kb, source.dtype, target, name)
    with vals.locals_loop(kb, out.count) as i:
        vals.write_raw(kb, out, i, vals.read_raw(kb, arrived, i))
    return out


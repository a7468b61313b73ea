"""Moving a tile between threads: register moves, warp shuffles, or shared memory.

:func:`classify` says which a conversion between two layouts of one tile needs, by looking at
where each element of the target is held in the source (its holders in the same thread, else in
the same warp, else anywhere), using the layouts' digits. :func:`relayout` performs it: equal
layouts share their registers; everything else goes through the scratch area of shared memory,
with the vectorized shared stores and loads of :mod:`~tilevm.backend.lower.memory_access` — the
source's first holders write each element at its row-major position, a barrier, every target
holder reads it. A reshape goes through the same row-major positions, so it is the same trip.
"""

from __future__ import annotations

import numpy as np

from tilevm.backend.lower import values as vals
from tilevm.backend.lower.context import LoweringContext
from tilevm.backend.lower.memory_access import Addressing, load_tile, store_tile
from tilevm.ir.dtypes import DType
from tilevm.ir.layout.digits import layout_digits
from tilevm.ir.layout.register import RegisterLayout
from tilevm.ir.layout.shared import SharedLayout
from tilevm.ir.thread.types import S32
from tilevm.ir.thread.values import Const
from tilevm.ir.tile.program import Const as TileConst
from tilevm.ir.tile.program import Instr

__all__ = ["classify", "relayout", "scratch_addressing", "scratch_tensor"]


def _replica_bits(layout: RegisterLayout) -> int:
    """The bits of the thread number that only choose among replicas."""
    bits = 0
    for g in layout_digits(layout):
        if g.kind == "replica":
            bits |= (g.size - 1) * g.stride
    return bits


def classify(source: RegisterLayout, target: RegisterLayout) -> str:
    """``"registers"`` (every thread already holds what it needs), ``"shuffles"`` (some element
    is held only in other lanes of the same warp) or ``"shared memory"`` (only in other warps)."""
    if source == target:
        return "registers"
    first = source.index_to_thread_local()[0]  # the holder whose replica digits are 0
    cells = target.thread_local_to_index()
    wanted = first[cells] if cells else np.broadcast_to(first, (target.num_threads, 1))
    me = np.arange(target.num_threads)[:, None]
    free = _replica_bits(source)
    if np.all((me & ~free) == (wanted & ~free)):
        return "registers"
    warp_free = free >> 5
    if np.all(((me >> 5) & ~warp_free) == ((wanted >> 5) & ~warp_free)):
        return "shuffles"
    return "shared memory"


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
    from tilevm.ir.dtypes import dtype

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
             shape: tuple[int, ...], name: str) -> vals.TileValue:
    """``source`` (a tile of any shape with the same number of elements) as a tile of ``shape``
    in ``target``, element ``k`` of both in row-major order being the same element."""
    kb = ctx.kb
    carrier = _carrier(source.dtype)
    ctx.barrier()  # the scratch area's last readers are done
    src_tensor = scratch_tensor(ctx, carrier, tuple(source.layout.shape))
    zeros = [TileConst(0, _i32()) for _ in source.layout.shape]
    store_tile(ctx, s, scratch_addressing(carrier, src_tensor), zeros,
               _as_carrier(ctx, source, carrier), "none", None)
    ctx.barrier()
    dst_tensor = scratch_tensor(ctx, carrier, shape)
    zeros = [TileConst(0, _i32()) for _ in shape]
    arrived = vals.new_tile(kb, carrier, target, name)
    load_tile(ctx, s, scratch_addressing(carrier, dst_tensor), zeros, arrived, "none", None, 0)
    if carrier == source.dtype:
        return arrived
    out = vals.new_tile(kb, source.dtype, target, name)
    with vals.locals_loop(kb, out.count) as i:
        vals.write_raw(kb, out, i, vals.read_raw(kb, arrived, i))
    return out


def _i32() -> DType:
    from tilevm.ir.dtypes import dtype

    return dtype("i32")

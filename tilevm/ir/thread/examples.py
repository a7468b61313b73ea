"""Hand-written Thread IR programs, shared by the CPU and CUDA backend tests.

- :func:`tiled_copy`: each block copies tiles of ``16 * threads`` bytes through shared memory
  with ``cp.async.cg`` in a block-uniform loop with barriers, and writes each tile back with
  its 16-byte chunks in reverse order (so that a thread stores what another thread copied).
- :func:`warp_reduce`: every warp sums 32 f32 values with a ``shfl.sync.bfly`` butterfly; lane 0
  stores the sum.
- :func:`mma_tile`: one warp computes ``D = A·B + C`` for a 16x16 (f16/bf16) A, a 16x8 B and a
  16x8 f32 C, staging A and B in shared memory and loading fragments with ``ldmatrix``
  (x4 for A, x2 ``.trans`` for B), then one ``mma.sync.m16n8k16``.
"""

from __future__ import annotations

from tilevm.ir.thread.builder import KernelBuilder
from tilevm.ir.thread.stmts import Kernel
from tilevm.ir.thread.types import B32, F32, S32, U32, U64, vector

__all__ = ["mma_tile", "tiled_copy", "warp_reduce"]


def tiled_copy(threads: int = 128) -> Kernel:
    """``tiled_copy(src, dst, tiles)``: block ``b`` handles bytes ``[b·tiles·T, (b+1)·tiles·T)``
    with ``T = 16·threads``; for each tile, chunk ``c`` (16 bytes) of the output is chunk
    ``threads-1-c`` of the input. ``src``/``dst`` must be 16-byte aligned."""
    tile = 16 * threads
    kb = KernelBuilder("tiled_copy", block_threads=threads, shared_bytes=tile)
    src = kb.param("src", U64, pointer=True)
    dst = kb.param("dst", U64, pointer=True)
    tiles = kb.param("tiles", S32)
    tid = kb.sreg("tid.x")
    cta = kb.sreg("ctaid.x")
    smem = kb.shared_base()
    mine = kb.add(smem, kb.mul(tid, 16))                       # my chunk in shared memory
    theirs = kb.add(smem, kb.mul(kb.sub(threads - 1, tid, type=U32), 16))
    first = kb.mul(cta, tiles, type=U32)                        # the block's first tile
    with kb.for_(0, tiles, uniform=True, name="t") as t:
        tile_index = kb.add(first, kb.mov(t, U32))
        base = kb.mul(tile_index, tile, mode="wide")            # u64 byte offset of the tile
        off = kb.add(base, kb.mul(tid, 16, mode="wide"))
        kb.cp_async(mine, kb.add(src, off), 16, cache="cg")
        token = kb.commit_group()
        kb.wait_group(0, token)
        kb.bar_sync()
        chunk = kb.ld("shared", theirs, vector(B32, 4))
        kb.st("global", kb.add(dst, off), chunk)
        kb.bar_sync()                                           # before the next tile's copies
    return kb.finish()


def warp_reduce(threads: int = 128) -> Kernel:
    """``warp_reduce(x, out)``: ``out[w] = sum of x[32w : 32w+32]`` (f32, butterfly order: at
    step ``k`` = 16, 8, 4, 2, 1 each lane adds lane ``i ^ k``'s value) for every warp ``w`` of
    the grid."""
    kb = KernelBuilder("warp_reduce", block_threads=threads)
    x = kb.param("x", U64, pointer=True)
    out = kb.param("out", U64, pointer=True)
    tid = kb.sreg("tid.x")
    cta = kb.sreg("ctaid.x")
    lane = kb.sreg("laneid")
    g = kb.mad(cta, threads, tid)
    v = kb.ld("global", kb.add(x, kb.mul(g, 4, mode="wide")), F32)
    acc = kb.reg(F32, "acc")
    kb.mov(v, F32, out=acc)
    for k in (16, 8, 4, 2, 1):
        other = kb.shfl("bfly", kb.mov(acc, B32), k, 31)
        kb.add(acc, kb.mov(other, F32), out=acc)
    with kb.if_(kb.setp("eq", lane, 0)):
        w = kb.div(g, 32)
        kb.st("global", kb.add(out, kb.mul(w, 4, mode="wide")), acc)
    return kb.finish()


def mma_tile(atype: str = "f16") -> Kernel:
    """``mma_tile(a, b, c, d)`` with one warp: ``d = a·b + c`` where ``a`` is 16x16 row-major
    ``atype`` (f16 or bf16), ``b`` 16x8 row-major (K x N), ``c`` and ``d`` 16x8 row-major f32."""
    kb = KernelBuilder(f"mma_tile_{atype}", block_threads=32, shared_bytes=768)
    a = kb.param("a", U64, pointer=True)
    b = kb.param("b", U64, pointer=True)
    c = kb.param("c", U64, pointer=True)
    d = kb.param("d", U64, pointer=True)
    lane = kb.sreg("laneid")
    smem = kb.shared_base()
    sa, sb = smem, kb.add(smem, 512)
    # stage A (512 bytes: 16 per lane) and B (256 bytes: lanes 0..15) in shared memory
    off16 = kb.mul(lane, 16)
    kb.st("shared", kb.add(sa, off16),
          kb.ld("global", kb.add(a, kb.cvt(off16, U64)), vector(B32, 4)))
    with kb.if_(kb.setp("lt", lane, 16)):
        kb.st("shared", kb.add(sb, off16),
              kb.ld("global", kb.add(b, kb.cvt(off16, U64)), vector(B32, 4)))
    kb.bar_sync()
    # ldmatrix.x4: lanes 8q..8q+7 address the rows of matrix q = (rows 8(q%2).., cols 8(q//2)..)
    q = kb.shr(lane, 3)
    r = kb.and_(lane, 7, type=B32)
    row = kb.add(kb.mul(kb.and_(q, 1, type=B32), 8, type=U32), r, type=U32)
    col_bytes = kb.mul(kb.shr(q, 1), 16, type=U32)
    afrag = kb.ldmatrix(kb.add(sa, kb.add(kb.mul(row, 32, type=U32), col_bytes)), 4)
    # ldmatrix.x2.trans on row-major B: lanes 0..15 address rows k = 0..15
    brow = kb.and_(lane, 15, type=B32)
    bfrag = kb.ldmatrix(kb.add(sb, kb.mul(brow, 16, type=U32)), 2, trans=True)
    # C/D fragment: c0,c1 at (g, 2t..2t+1), c2,c3 at (g+8, 2t..2t+1)
    g = kb.shr(lane, 2)
    t = kb.and_(lane, 3, type=B32)
    top = kb.mul(kb.add(kb.mul(g, 8, type=U32), kb.mul(t, 2, type=U32)), 4, type=U32)
    bottom = kb.add(top, 8 * 8 * 4, type=U32)
    c_top = kb.ld("global", kb.add(c, kb.cvt(top, U64)), vector(F32, 2))
    c_bot = kb.ld("global", kb.add(c, kb.cvt(bottom, U64)), vector(F32, 2))
    cfrag = kb.pack([*kb.unpack(c_top), *kb.unpack(c_bot)])
    dfrag = kb.mma("m16n8k16", atype, afrag, bfrag, cfrag)
    d0, d1, d2, d3 = kb.unpack(dfrag)
    kb.st("global", kb.add(d, kb.cvt(top, U64)), kb.pack([d0, d1]))
    kb.st("global", kb.add(d, kb.cvt(bottom, U64)), kb.pack([d2, d3]))
    return kb.finish()

"""Reinterpreting the bits a thread holds: ``view``, and ``bitcast`` along the last dimension.

Both read a thread's elements, in local order, as one string of bits (element ``i`` of ``a`` bits
at bits ``[i·a, (i+1)·a)``, LSB-first, DESIGN §3) and cut it into elements of ``b`` bits. For
``view`` that is the definition. For ``bitcast`` the layouts are related so that it is too: the
result's innermost local digit runs along the last dimension, each group of ``a/b`` (or ``b/a``)
registers covering the same bits (:func:`~tilevm.backend.lower.layout_inference`). Packed tiles are
already that string of bits; other tiles are packed into a word array first. On the GPU, once the
loops are unrolled, the bit moves between whole registers fold away.
"""

from __future__ import annotations

from tilevm.backend.lower import values as vals
from tilevm.backend.lower.context import LoweringContext
from tilevm.backend.lower.dtype_map import is_packed
from tilevm.ir.thread.types import B32, U32, U64
from tilevm.ir.thread.values import Const, Index, RegArray

__all__ = ["repack"]


def _half(index: Index, k: int) -> Index:
    return vals.plus(vals.scale(index, 2), k)


def _to_words(ctx: LoweringContext, tile: vals.TileValue, words: int) -> RegArray:
    """The thread's elements of ``tile`` as a dense LSB-first array of ``words`` b32 words."""
    kb = ctx.kb
    dt = tile.dtype
    if is_packed(dt) and tile.array.length >= words:
        return tile.array
    out = kb.array(B32, words, name="bits")
    with vals.locals_loop(kb, words, "w") as w:
        kb.mov(Const.of(0, B32), B32, out=out[w])
    a = dt.nbits
    with vals.locals_loop(kb, tile.count) as i:
        raw = vals.read_raw(kb, tile, i)
        if a == 64:
            kb.cvt(raw, U32, src=U64, out=out[_half(i, 0)])
            kb.cvt(kb.shr(raw, 32, type=U64), U32, src=U64, out=out[_half(i, 1)])
        elif a == 32:
            kb.mov(raw, B32, out=out[i])
        else:
            vals.insert_bits(kb, out, i, a, raw)
    return out


def repack(ctx: LoweringContext, source: vals.TileValue, target: vals.TileValue) -> None:
    """Fill ``target`` with the bits of ``source``: each thread's elements reinterpreted (see
    the module docstring). Both hold the same number of bits per thread."""
    kb = ctx.kb
    a, b = source.dtype.nbits, target.dtype.nbits
    total = source.count * a
    assert total == target.count * b, (source, target)
    words = (total + 31) // 32
    if 32 % a or 32 % b:
        words += 1  # a spare word: accesses of a straddling element stay in range
    if a == b and is_packed(source.dtype) == is_packed(target.dtype):
        if is_packed(source.dtype):
            with vals.locals_loop(kb, source.array.length, "w") as w:
                kb.mov(source.array[w], B32, out=target.array[w])
            return
        with vals.locals_loop(kb, source.count) as i:
            vals.write_raw(kb, target, i, vals.read_raw(kb, source, i))
        return
    bits = _to_words(ctx, source, words)
    if is_packed(target.dtype):
        with vals.locals_loop(kb, min(target.array.length, bits.length), "w") as w:
            kb.mov(bits[w], B32, out=target.array[w])
        return
    with vals.locals_loop(kb, target.count) as j:
        if b == 64:
            lo = bits[_half(j, 0)]
            hi = bits[_half(j, 1)]
            wide = kb.or_(kb.cvt(lo, U64, src=U32), kb.shl(kb.cvt(hi, U64, src=U32), 32,
                                                          type="b64"), type="b64")
            vals.write_raw(kb, target, j, kb.mov(wide, U64))
        elif b == 32:
            vals.write_raw(kb, target, j, kb.mov(bits[j], U32))
        else:
            vals.write_raw(kb, target, j, vals.extract_bits(kb, bits, j, b))


"""``shfl.sync`` of a register of any width: the instruction moves 32 bits, so a 16-bit value
travels zero-extended and a 64-bit value as two halves."""

from __future__ import annotations

from tilevm.ir.thread.builder import KernelBuilder
from tilevm.ir.thread.types import B32, U16, U32, U64
from tilevm.ir.thread.values import Operand


def shuffle(kb: KernelBuilder, x: Operand, mode: str, lane: Operand | int) -> Operand:
    """``x`` of another lane of the warp, of the same type: ``mode`` ``"bfly"`` reads lane
    ``laneid ^ lane``, ``"idx"`` reads lane ``lane`` (each lane may give its own). Every lane of
    the warp must execute it."""
    t = x.type
    if t.bits == 64:
        raw = kb.mov(x, U64)
        lo = kb.shfl(mode, kb.cvt(raw, U32, src=U64), lane, 31)
        hi = kb.shfl(mode, kb.cvt(kb.shr(raw, 32, type=U64), U32, src=U64), lane, 31)
        wide = kb.or_(kb.cvt(lo, U64, src=U32), kb.shl(kb.cvt(hi, U64, src=U32), 32, type="b64"),
                      type="b64")
        return kb.mov(wide, t)
    if t.bits == 16:
        raw = kb.cvt(kb.mov(x, U16), U32, src=U16)
        got = kb.shfl(mode, raw, lane, 31)
        return kb.mov(kb.cvt(got, U16, src=U32), t)
    if t.bits != 32:
        raise AssertionError(f"shuffle of a {t} register")
    got = kb.shfl(mode, kb.mov(x, B32), lane, 31)
    return got if t == B32 else kb.mov(got, t)

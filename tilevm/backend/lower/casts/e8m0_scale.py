"""``x * cast(s, half)`` for an e8m0 scale ``s`` (MX formats): the code is an exponent, so the
factor is built by putting the code into an exponent field — no decoding of the narrow float —
and one multiply rounds once.

The value is the interpreter's: ``y = RN_half(2^(code − 127))`` (the cast: beyond f16's range
+inf, below it a subnormal or 0; NaN for 0xFF), then ``RN_half(x · y)``. An integer add into
``x``'s exponent gives the same value only while ``x`` and the result are normal and ``y`` is
exact; zeros, subnormals, overflow to inf and NaN need the multiply's rounding, and fixing them up
after an integer add costs more than the multiply itself. So:

- bf16: ``y = code << 7`` is ``2^(code − 127)`` exactly (bf16 has e8m0's exponent range); the
  code 0 is the subnormal ``0x0040`` and 0xFF the NaN ``0x7FC0`` (bit 6 set for both). Then
  ``mul.rn.bf16`` (sm_90) or ``fma.rn.bf16`` with −0 (sm_80–89: ``x·y + (−0)`` is ``RN(x·y)``,
  signed zeros included).
- f16: the f32 ``code << 23`` is ``2^(code − 127)`` (0 for the code 0, whose value rounds to 0 in
  f16 anyway); ``cvt.rn.f16.f32`` rounds it into f16 exactly as the cast does (+inf from 2^16 on,
  subnormals, 0 from 2^-25 down); 0xFF (+inf so far) is selected to a NaN; then ``mul.rn.f16``.
"""

from __future__ import annotations

from tilevm.ir.dtypes import DType
from tilevm.ir.thread.builder import KernelBuilder
from tilevm.ir.thread.types import B32, BF16, F16, F32, U32
from tilevm.ir.thread.values import Const, Operand

__all__ = ["multiply_by_e8m0"]


def multiply_by_e8m0(kb: KernelBuilder, x: Operand, code: Operand, dst: DType,
                     target: int) -> Operand:
    """``x · cast(code, dst)`` for a compute value ``x`` of ``dst`` (f16 or bf16) and the code of
    an ``f8e8m0fnu`` (a u32 holding it in its low 8 bits), rounded once as the interpreter does
    (see the module docstring)."""
    if dst.name == "bf16":
        # Codes 0 and 0xFF are the ones whose code + 1 has bits 1–7 clear.
        special = kb.setp("eq", kb.and_(kb.add(code, 1, type=U32), 0xFE, type=B32), 0, type=U32)
        bits = kb.or_(kb.shl(code, 7, type=B32), kb.selp(0x40, 0, special, type=U32), type=B32)
        y = kb.mov(kb.cvt(bits, "u16", src=U32), BF16)
        if target >= 90:
            return kb.mul(x, y, type=BF16)
        return kb.fma(x, y, Const(0x8000, BF16), type=BF16)
    if dst.name != "f16":
        raise ValueError(f"multiply_by_e8m0: into f16 or bf16, not {dst}")
    power = kb.cvt(kb.mov(kb.shl(code, 23, type=B32), F32), F16, src=F32, rnd="rn")
    y = kb.selp(Const(0x7E00, F16), power, kb.setp("eq", code, 0xFF, type=U32), type=F16)
    return kb.mul(x, y, type=F16)

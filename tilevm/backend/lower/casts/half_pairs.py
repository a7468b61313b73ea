"""f16x2 / bf16x2 pairs: constants and the one exact ``fma`` that finishes every integer sequence.

``fma.rn.f16x2`` exists from sm_53 and ``fma.rn.bf16x2`` from sm_80, while ``add``/``mul`` of
``bf16x2`` need sm_90 (:mod:`tilevm.ir.thread.intrinsics.arith`): the sequences use ``fma`` on
every target (``x·1 + c`` where they only add), which costs the same instruction as an add.
"""

from __future__ import annotations

import numpy as np

from tilevm.ir.thread.builder import KernelBuilder
from tilevm.ir.thread.types import B32, BF16X2, F16X2, ScalarType
from tilevm.ir.thread.values import Const, Operand, Reg

__all__ = ["fma_each", "half_bits", "pair_const", "pair_fma", "pair_type"]


def pair_type(dst: str) -> ScalarType:
    """The packed pair type of the half type ``dst`` ("f16" or "bf16")."""
    return F16X2 if dst == "f16" else BF16X2


def half_bits(value: float, dst: str) -> int:
    """The bit pattern of ``value`` in ``dst``; it must be exact there (these are constants)."""
    if dst == "f16":
        bits = int(np.array(value, np.float16).view(np.uint16))
        back = float(np.array(bits, np.uint16).view(np.float16))
    else:
        f32 = int(np.array(value, np.float32).view(np.uint32))
        bits = f32 >> 16
        back = float(np.array(bits << 16, np.uint32).view(np.float32))
    assert back == value, (value, dst)
    return bits


def pair_const(lo: float, hi: float, dst: str) -> Const:
    """The pair (``lo`` in the low half, ``hi`` in the high half) as a constant."""
    return Const(half_bits(lo, dst) | half_bits(hi, dst) << 16, pair_type(dst))


def pair_fma(kb: KernelBuilder, x: Operand, scale: Const, bias: Const, dst: str) -> Reg:
    """``x·scale + bias`` on both halves, rounded once (exact in every use here)."""
    return kb.fma(x, scale, bias, type=pair_type(dst))


def fma_each(kb: KernelBuilder, xs: list[Operand], scales: list[Const], biases: list[Operand],
             dst: str) -> list[Operand]:
    """``xs[k]·scales[k] + biases[k]`` for every ``k``, as one ``fma`` in a rolled loop over
    register arrays (unrolled by the CUDA printer, where the constants fold back in): the CPU
    backend compiles one pair ``fma`` however long the sequence."""
    if len(xs) == 1:
        return [pair_fma(kb, xs[0], scales[0], biases[0], dst)]
    t = pair_type(dst)
    x = kb.array(B32, len(xs), name="magic")
    out = kb.array(t, len(xs), name="pair")
    for k, v in enumerate(xs):
        kb.mov(v, B32, out=x[k])
    one_scale = len(set(scales)) == 1
    one_bias = all(isinstance(b, Const) for b in biases) and len(set(biases)) == 1
    scale = scales[0] if one_scale else _filled(kb, scales, t, "scale")
    bias = biases[0] if one_bias else _filled(kb, biases, t, "bias")
    with kb.for_(0, len(xs), unroll=True, name="k") as k:
        kb.fma(x[k], scale if one_scale else scale[k], bias if one_bias else bias[k], type=t,
               out=out[k])
    return [out[k] for k in range(len(xs))]


def _filled(kb: KernelBuilder, values: list[Operand], t: ScalarType, name: str) -> object:
    array = kb.array(t, len(values), name=name)
    for k, v in enumerate(values):
        kb.mov(v, t, out=array[k])
    return array

"""f16x2 / bf16x2 pairs: constants and the one exact add (or ``fma``) that finishes every integer
sequence.

``add.rn.f16x2`` exists from sm_53, ``fma.rn.bf16x2`` from sm_80, while ``add``/``mul`` of
``bf16x2`` need sm_90 (:mod:`tilevm.ir.thread.intrinsics.arith`): a bf16 add before sm_90 is
``x·1 + c``, the same one instruction.
"""

from __future__ import annotations

import numpy as np

from tilevm.ir.thread.builder import KernelBuilder
from tilevm.ir.thread.types import B32, BF16X2, F16X2, ScalarType
from tilevm.ir.thread.values import Const, Operand, Reg

__all__ = ["add_each", "exact_pair_const", "fma_each", "half_bits", "pair_add", "pair_const",
           "pair_type"]


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


def exact_pair_const(lo: float, hi: float, dst: str) -> Const:
    """:func:`pair_const`, or ``NotImplementedError`` where ``lo`` or ``hi`` is not exact in
    ``dst`` (a constant a caller folded in that the half cannot hold)."""
    t = np.float16 if dst == "f16" else None
    for v in (lo, hi):
        if t is not None:
            exact = float(np.array(v, t)) == v
        else:
            f32 = int(np.array(v, np.float32).view(np.uint32))
            exact = float(np.array(f32 & 0xFFFF0000, np.uint32).view(np.float32)) == v
        if not exact:
            raise NotImplementedError(f"{v} is not exact in {dst}")
    return pair_const(lo, hi, dst)


def pair_const(lo: float, hi: float, dst: str) -> Const:
    """The pair (``lo`` in the low half, ``hi`` in the high half) as a constant."""
    return Const(half_bits(lo, dst) | half_bits(hi, dst) << 16, pair_type(dst))


def pair_add(kb: KernelBuilder, x: Operand, y: Operand, dst: str, target: int) -> Reg:
    """``x + y`` on both halves, rounded once (exact in every use here)."""
    t = pair_type(dst)
    if dst == "bf16" and target < 90:
        return kb.fma(x, pair_const(1.0, 1.0, dst), y, type=t)
    return kb.add(x, y, type=t)


def add_each(kb: KernelBuilder, xs: list[Operand], ys: list[Operand], dst: str,
             target: int) -> list[Operand]:
    """``xs[k] + ys[k]`` for every ``k``, as one add in a rolled loop over register arrays
    (unrolled by the CUDA printer, where the constants fold back in): the CPU backend compiles
    one pair add however long the sequence."""
    if len(xs) == 1:
        return [pair_add(kb, xs[0], ys[0], dst, target)]
    t = pair_type(dst)
    x = kb.array(B32, len(xs), name="magic")
    out = kb.array(t, len(xs), name="pair")
    for k, v in enumerate(xs):
        kb.mov(v, B32, out=x[k])
    same = all(isinstance(y, Const) for y in ys) and len(set(ys)) == 1
    if not same:
        y = kb.array(t, len(ys), name="bias")
        for k, v in enumerate(ys):
            kb.mov(v, t, out=y[k])
    with kb.for_(0, len(xs), unroll=True, name="k") as k:
        kb.mov(pair_add(kb, x[k], ys[0] if same else y[k], dst, target), t, out=out[k])
    return [out[k] for k in range(len(xs))]


def fma_each(kb: KernelBuilder, xs: list[Operand], scales: list[Const], biases: list[Const],
             dst: str) -> list[Operand]:
    """``xs[k]·scales[k] + biases[k]`` for every ``k`` (exact in every use here), as one ``fma``
    in a rolled loop over register arrays, like :func:`add_each`."""
    t = pair_type(dst)
    if len(xs) == 1:
        return [kb.fma(xs[0], scales[0], biases[0], type=t)]
    arrays = []
    for values, name, at in ((xs, "magic", B32), (scales, "scale", t), (biases, "bias", t)):
        array = kb.array(at, len(values), name=name)
        for k, v in enumerate(values):
            kb.mov(v, at, out=array[k])
        arrays.append(array)
    out = kb.array(t, len(xs), name="pair")
    x, scale, bias = arrays
    with kb.for_(0, len(xs), unroll=True, name="k") as k:
        kb.fma(x[k], scale[k], bias[k], type=t, out=out[k])
    return [out[k] for k in range(len(xs))]

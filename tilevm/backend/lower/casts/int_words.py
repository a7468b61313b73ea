"""Vectorized casts of packed integers (``u1``…``u8``, ``i1``…``i8``) to f16 and bf16 pairs.

Every sequence works on whole words and gives exactly the integer's value (every such integer
is exact in f16 and bf16); none converts one element at a time:

- widths 1 to 7 (and 8 bits to f16 never take this path): the magic exponent of
  :mod:`~tilevm.backend.lower.casts.field_plan` — ``lop3`` puts one field under the exponent of
  1024 (f16) or 128 (bf16) in each half, flipping the sign bit of signed fields, and one
  ``fma`` per word subtracts the magic and the offset (scaling by ``2^−p`` a field that sits
  ``p`` places up);
- ``u8``/``i8`` to f16: ``prmt`` slides two bytes under a ``0x64`` high byte (1024 + byte), one
  ``fma`` subtracts 1024 (1152 for ``i8``, whose word is xored with ``0x80808080`` first);
- ``u8``/``i8`` to bf16, whose mantissa holds 7 bits: the low 7 bits of each byte under ``0x43``
  (128 + low) and its top bit under ``0x43`` (``0x4380`` = 256 or ``0x4300`` = 128), then two
  exact adds: ``(top − 256) + (128 + low)``, or ``− 384`` for ``i8`` (the top bit flipped).

In natural order output word ``j`` holds elements ``2j`` (low half) and ``2j + 1``; in free order
the sequence chooses the pairs (returned as the permutation), which saves the instructions that
put neighbours side by side.
"""

from __future__ import annotations

from collections.abc import Sequence

from tilevm.backend.lower.casts.field_plan import (
    MAGIC,
    FieldPlan,
    free_plan,
    magic_and_signs,
    mantissa_bits,
    natural_plan,
)
from tilevm.backend.lower.casts.half_pairs import fma_each, pair_const
from tilevm.ir.dtypes import DType
from tilevm.ir.thread.builder import KernelBuilder
from tilevm.ir.thread.types import B32, U32
from tilevm.ir.thread.values import Const, Operand

__all__ = ["int_words_to_half", "int_words_to_half_free"]

_LUT_AND_XOR = 0x6A  # (a & b) ^ c
_LUT_ANDNOT = 0x0C  # ~a & b
_MAGIC_VALUE = {"f16": 1024.0, "bf16": 128.0}


def _check(src: DType, dst: DType) -> None:
    if not (src.is_integer and src.nbits <= 8 and dst.name in ("f16", "bf16")):
        raise ValueError(f"int_words: no sequence from {src} to {dst}")


def int_words_to_half(kb: KernelBuilder, words: Sequence[Operand], src: DType, dst: DType,
                      target: int) -> list[Operand]:
    """Convert one group of packed ``src`` integers (``words``: b32 registers holding
    :func:`~tilevm.backend.lower.casts.group_size` elements dense and LSB-first) to ``dst``
    (f16 or bf16) pairs in natural order: result word ``j`` holds elements ``2j`` (low half) and
    ``2j + 1``. Exact for every code."""
    _check(src, dst)
    if src.nbits == 8:
        return _bytes(kb, words[0], src, dst.name, [(0, 1), (2, 3)])
    natural = natural_plan(src.nbits, dst.name)
    free = free_plan(src.nbits, dst.name)
    if free.instruction_count + len(free.outputs) < natural.instruction_count:
        pairs = emit_plan(kb, free, words, src.kind == "int")
        return _natural_from(kb, pairs, free.permutation)
    return emit_plan(kb, natural, words, src.kind == "int")


def int_words_to_half_free(kb: KernelBuilder, words: Sequence[Operand], src: DType, dst: DType,
                           target: int) -> tuple[list[Operand], tuple[int, ...]]:
    """As :func:`int_words_to_half`, with the elements in the order the cheapest sequence makes
    them: returns the pairs and the permutation (output slot ``s``, half ``s % 2`` of word
    ``s // 2``, holds group element ``perm[s]``)."""
    _check(src, dst)
    if src.nbits == 8:
        return _bytes(kb, words[0], src, dst.name, [(0, 1), (2, 3)]), (0, 1, 2, 3)
    plan = free_plan(src.nbits, dst.name)
    return emit_plan(kb, plan, words, src.kind == "int"), plan.permutation


# -- fields 1 to 7 bits ------------------------------------------------------------------------


def _window(kb: KernelBuilder, words: Sequence[Operand], offset: int) -> Operand:
    """Bits ``[offset, offset + 32)`` of the group's bit string (zeros outside it)."""
    w, t = divmod(offset, 32)
    if offset < 0:
        return kb.shl(words[0], -offset, type=B32)
    if w + 1 < len(words):
        return kb.shf(words[w], words[w + 1], t, dir="r", mode="clamp")
    return kb.shr(words[w], t, type=U32)


def emit_plan(kb: KernelBuilder, plan: FieldPlan, words: Sequence[Operand],
              signed: bool) -> list[Operand]:
    """The Thread IR of ``plan`` on ``words``: its output words in the plan's order."""
    made: dict[int, Operand] = {}

    def source(k: int) -> Operand:
        if k not in made:
            s = plan.sources[k]
            if s.op == "word":
                made[k] = words[s.args[0]]
            elif s.op == "window":
                made[k] = _window(kb, words, s.args[0])
            elif s.op == "prmt":
                made[k] = kb.prmt(source(s.args[0]), source(s.args[1]), Const(s.args[2], B32))
            elif s.op == "shr":
                made[k] = kb.shr(source(s.args[0]), s.args[1], type=U32)
            else:
                made[k] = kb.shl(source(s.args[0]), s.args[1], type=B32)
        return made[k]

    n, dst = plan.nbits, plan.dst
    magic = _MAGIC_VALUE[dst]
    offset = float(1 << (n - 1)) if signed else 0.0
    fields: list[Operand] = []
    scales: list[Const] = []
    biases: list[Operand] = []
    for o in plan.outputs:
        value: Operand = Const(magic_and_signs(n, signed, dst, o.positions), B32)
        for k, mask in o.steps:
            value = kb.lop3(source(k), Const(mask, B32), value, _LUT_AND_XOR)
        fields.append(value)
        plo, phi = o.positions
        scales.append(pair_const(2.0 ** -plo, 2.0 ** -phi, dst))
        biases.append(pair_const(-(magic * 2.0 ** -plo + offset), -(magic * 2.0 ** -phi + offset),
                                 dst))
    return fma_each(kb, fields, scales, biases, dst)


def _natural_from(kb: KernelBuilder, pairs: list[Operand], perm: tuple[int, ...]) -> list[Operand]:
    """Natural-order words from pairs in the order ``perm``: one ``prmt`` per word (none where a
    word already holds its two elements)."""
    slot = {e: s for s, e in enumerate(perm)}
    out: list[Operand] = []
    for j in range(len(pairs)):
        a, b = slot[2 * j], slot[2 * j + 1]
        wa, ha, wb, hb = a // 2, a % 2, b // 2, b % 2
        if wa == wb and (ha, hb) == (0, 1):
            out.append(pairs[wa])
            continue
        hi = 2 * hb if wa == wb else 4 + 2 * hb
        selector = 2 * ha | (2 * ha + 1) << 4 | hi << 8 | (hi + 1) << 12
        out.append(kb.prmt(pairs[wa], pairs[wb], Const(selector, B32)))
    return out


# -- bytes -------------------------------------------------------------------------------------


def _byte_selector(lo: int, hi: int, filler: int = 4) -> Const:
    """``prmt`` selector of ``[byte lo, filler, byte hi, filler]`` (``filler`` 4: the second
    operand's byte 0)."""
    return Const(lo | filler << 4 | hi << 8 | filler << 12, B32)


def _bytes(kb: KernelBuilder, word: Operand, src: DType, dst: str,
           pairs: list[tuple[int, int]]) -> list[Operand]:
    """The byte pairs ``pairs`` of ``word`` (4 elements of 8 bits) as ``dst`` pairs."""
    signed = src.kind == "int"
    if dst == "f16":
        if signed:  # i + 128 in every byte
            word = kb.xor(word, 0x80808080, type=B32)
        one = pair_const(1.0, 1.0, dst)
        bias = -(1024.0 + (128.0 if signed else 0.0))
        magic = Const(0x64646464, B32)
        placed = [kb.prmt(word, magic, _byte_selector(lo, hi)) for lo, hi in pairs]
        return fma_each(kb, placed, [one] * len(pairs), [pair_const(bias, bias, dst)] * len(pairs),
                        dst)
    assert mantissa_bits(dst) == 7 and MAGIC[dst] == 0x4300
    low7 = kb.and_(word, 0x7F7F7F7F, type=B32)
    # The top bit of each byte (flipped for i8: i + 128 then has it).
    top = (kb.lop3(word, Const(0x80808080, B32), Const(0, B32), _LUT_ANDNOT) if signed
           else kb.and_(word, 0x80808080, type=B32))
    magic = Const(0x43434343, B32)
    one = pair_const(1.0, 1.0, dst)
    shift = -(384.0 if signed else 256.0)
    # 0x4300 | low = 128 + low;  0x4300 | top = 128 or 256 (the top bit is the exponent's last)
    lows = [kb.prmt(low7, magic, _byte_selector(lo, hi)) for lo, hi in pairs]
    tops = [kb.prmt(top, magic, _byte_selector(lo, hi)) for lo, hi in pairs]
    ones = [one] * len(pairs)
    highs = fma_each(kb, tops, ones, [pair_const(shift, shift, dst)] * len(pairs), dst)
    return fma_each(kb, lows, ones, highs, dst)

"""Vectorized casts of packed integers (``u1``…``u8``, ``i1``…``i8``) to f16 and bf16 pairs.

Every sequence works on whole words and gives exactly the integer's value (every such integer
is exact in f16 and bf16); none converts one element at a time:

- widths 1 to 7: the magic exponent of :mod:`~tilevm.backend.lower.casts.field_plan` — signed
  fields get their sign bit flipped (one ``xor`` per word), ``lop3`` puts one field under an
  exponent in each half (the field's value plus a power of two), and one add per word subtracts
  the power of two and the offset;
- ``u8``/``i8`` to f16: ``prmt`` slides two bytes under a ``0x64`` high byte (1024 + byte), one
  add subtracts 1024 (1152 for ``i8``, whose word is xored with ``0x80808080`` first);
- ``u8``/``i8`` to bf16, whose mantissa holds 7 bits: the low 7 bits of each byte under ``0x43``
  (``prmt``: 128 + low), and the top bit, replicated over the half by ``prmt``'s sign mode,
  chooses the addend with one ``lop3``: ``u8`` adds 0 or −128, ``i8`` −256 or −128; one exact
  add per pair.

In natural order output word ``j`` holds elements ``2j`` (low half) and ``2j + 1``; in free order
the sequence chooses the pairs (returned as the permutation), which saves the instructions that
put neighbours side by side.
"""

from __future__ import annotations

from collections.abc import Sequence

from tilevm.backend.lower.casts.field_plan import (
    FieldPlan,
    exponent_region,
    free_plan,
    magic_exponents,
    mantissa_bits,
    natural_plan,
)
from tilevm.backend.lower.casts.half_pairs import add_each, exact_pair_const, fma_each, pair_const
from tilevm.ir.dtypes import DType
from tilevm.ir.thread.builder import KernelBuilder
from tilevm.ir.thread.types import B32, U32
from tilevm.ir.thread.values import Const, Operand

__all__ = ["int_words_to_half", "int_words_to_half_free"]

_LUT_FIELD = 0xC8  # b & (a | c): the mask's bits of a, and b's bits where c is set
_LUT_MERGE = 0xEA  # (a & b) | c
_LUT_ANDNOT = 0x0C  # ~a & b
_SIGN = 8  # a prmt selector nibble's bit that replicates the chosen byte's sign


def _check(src: DType, dst: DType) -> None:
    if not (src.is_integer and src.nbits <= 8 and dst.name in ("f16", "bf16")):
        raise ValueError(f"int_words: no sequence from {src} to {dst}")


def int_words_to_half(kb: KernelBuilder, words: Sequence[Operand], src: DType, dst: DType,
                      target: int, minus: float = 0.0) -> list[Operand]:
    """Convert one group of packed ``src`` integers (``words``: b32 registers holding
    :func:`~tilevm.backend.lower.casts.group_size` elements dense and LSB-first) to ``dst``
    (f16 or bf16) pairs in natural order: result word ``j`` holds elements ``2j`` (low half) and
    ``2j + 1``. Exact for every code. With ``minus``, each element is ``code − minus`` rounded
    once (the constant joins the sequence's last subtraction; ``NotImplementedError`` where the
    joint constant is not exact in ``dst``)."""
    _check(src, dst)
    if src.nbits == 8:
        return _bytes(kb, words[0], src, dst.name, [(0, 1), (2, 3)], target, minus)
    natural = natural_plan(src.nbits, dst.name)
    free = free_plan(src.nbits, dst.name)
    if free.instruction_count + len(free.outputs) < natural.instruction_count:
        pairs = emit_plan(kb, free, words, src.kind == "int", target, minus)
        return _natural_from(kb, pairs, free.permutation)
    return emit_plan(kb, natural, words, src.kind == "int", target, minus)


def int_words_to_half_free(kb: KernelBuilder, words: Sequence[Operand], src: DType, dst: DType,
                           target: int, minus: float = 0.0
                           ) -> tuple[list[Operand], tuple[int, ...]]:
    """As :func:`int_words_to_half`, with the elements in the order the cheapest sequence makes
    them: returns the pairs and the permutation (output slot ``s``, half ``s % 2`` of word
    ``s // 2``, holds group element ``perm[s]``)."""
    _check(src, dst)
    if src.nbits == 8:
        return _bytes(kb, words[0], src, dst.name, [(0, 1), (2, 3)], target, minus), (0, 1, 2, 3)
    plan = free_plan(src.nbits, dst.name)
    return emit_plan(kb, plan, words, src.kind == "int", target, minus), plan.permutation


# -- fields 1 to 7 bits ------------------------------------------------------------------------


def _window(kb: KernelBuilder, words: Sequence[Operand], offset: int) -> Operand:
    """Bits ``[offset, offset + 32)`` of the group's bit string (zeros outside it)."""
    w, t = divmod(offset, 32)
    if offset < 0:
        return kb.shl(words[0], -offset, type=B32)
    if w + 1 < len(words):
        return kb.shf(words[w], words[w + 1], t, dir="r", mode="clamp")
    return kb.shr(words[w], t, type=U32)


def _sign_bits(nbits: int, word: int) -> int:
    """The sign bits of the group's elements that lie in word ``word``."""
    bits = 0
    for e in range(32 * (word + 1) // nbits + 1):
        at = e * nbits + nbits - 1 - 32 * word
        if 0 <= at < 32:
            bits |= 1 << at
    return bits


def emit_plan(kb: KernelBuilder, plan: FieldPlan, words: Sequence[Operand], signed: bool,
              target: int, minus: float = 0.0) -> list[Operand]:
    """The Thread IR of ``plan`` on ``words``: its output words in the plan's order (each
    element less ``minus``, see :func:`int_words_to_half`)."""
    n, dst = plan.nbits, plan.dst
    if signed:  # every field's sign bit flipped: the field is its value plus 2^(n-1)
        words = [kb.xor(w, _sign_bits(n, k), type=B32) for k, w in enumerate(words)]
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

    m = mantissa_bits(dst)
    offset = (float(1 << (n - 1)) if signed else 0.0) + minus
    bias = exact_pair_const if minus else pair_const
    region = Const(exponent_region(dst), B32)
    # bf16 before sm_90 has no add: its fma by 1 makes ptxas rematerialize the 1 at every use,
    # while an fma by 2^-p (one exponent for every position) keeps its constants.
    scaled = dst == "bf16" and target < 90
    fields: list[Operand] = []
    scales: list[Const] = []
    biases: list[Const] = []
    for o in plan.outputs:
        (first, mask), *rest = o.steps
        exponents = magic_exponents(dst, (0, 0) if scaled else o.positions)
        value = kb.lop3(source(first), Const(mask | exponents, B32), region, _LUT_FIELD)
        for k, mask in rest:
            value = kb.lop3(source(k), Const(mask, B32), value, _LUT_MERGE)
        fields.append(value)
        lo, hi = (2.0 ** -p for p in o.positions)
        if scaled:  # (2^M + u·2^p)·2^-p − (2^M·2^-p + offset)
            scales.append(pair_const(lo, hi, dst))
            biases.append(bias(-(2.0 ** m * lo + offset), -(2.0 ** m * hi + offset), dst))
        else:  # (2^(M−p) + u) − (2^(M−p) + offset)
            biases.append(bias(-(2.0 ** m * lo + offset), -(2.0 ** m * hi + offset), dst))
    if scaled:
        return fma_each(kb, fields, scales, biases, dst)
    return add_each(kb, fields, biases, dst, target)


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
           pairs: list[tuple[int, int]], target: int, minus: float = 0.0) -> list[Operand]:
    """The byte pairs ``pairs`` of ``word`` (4 elements of 8 bits) as ``dst`` pairs (each less
    ``minus``, see :func:`int_words_to_half`)."""
    signed = src.kind == "int"
    if dst == "f16":
        if signed:  # i + 128 in every byte
            word = kb.xor(word, 0x80808080, type=B32)
        bias = -(1024.0 + (128.0 if signed else 0.0) + minus)
        magic = Const(0x64646464, B32)
        placed = [kb.prmt(word, magic, _byte_selector(lo, hi)) for lo, hi in pairs]
        return add_each(kb, placed, [exact_pair_const(bias, bias, dst)] * len(pairs), dst,
                        target)
    if minus:
        raise NotImplementedError("u8/i8 to bf16 adds computed addends: no constant to join")
    assert mantissa_bits(dst) == 7
    # 0x43 over the low 7 bits: 128 + low. The top bit, replicated over the half by prmt, picks
    # the addend: u8: 0 (top set: 128 + low) or −128 (0xC300); i8: −256 (0xC380) or −128.
    low7 = kb.and_(word, 0x7F7F7F7F, type=B32)
    magic = Const(0x43434343, B32)
    lows, addends = [], []
    for lo, hi in pairs:
        lows.append(kb.prmt(low7, magic, _byte_selector(lo, hi)))
        spread = kb.prmt(word, word, Const(_SIGN | lo | (_SIGN | lo) << 4 | (_SIGN | hi) << 8
                                           | (_SIGN | hi) << 12, B32))
        if signed:
            addends.append(kb.lop3(spread, Const(0x00800080, B32), Const(0xC300C300, B32),
                                   _LUT_MERGE))
        else:
            addends.append(kb.lop3(spread, Const(0xC300C300, B32), Const(0, B32), _LUT_ANDNOT))
    return add_each(kb, lows, addends, dst, target)

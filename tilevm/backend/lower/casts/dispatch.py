"""The entry the lowering calls: one group of packed words of a type of at most 8 bits to f16/bf16
pairs, dispatched by the source's kind.

*The group* of an ``n``-bit type is the fewest elements that fill whole words:
``group_size = 32 / gcd(n, 32)`` elements in ``group_words = n / gcd(n, 32)`` words — 32 elements
in ``n`` words for odd ``n``, 16 in 1 word (2 bits) or 3 words (6 bits), 8 in 1 word (4 bits), 4
in 1 word (8 bits). A thread's packed tile (DESIGN §3) is a run of groups: group ``g`` is words
``g·group_words …`` of its register array, so the lowering hands each group's words over as they
are.

Integer sources go to :mod:`~tilevm.backend.lower.casts.int_words`, float sources to
``casts.float_words.float_words_to_half`` (same contract); :func:`has_word_cast` says whether a
sequence exists (a float type whose sequence raises ``NotImplementedError`` has none yet, and the
lowering keeps its per-element cast).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

from tilevm.backend.lower.casts import float_words
from tilevm.backend.lower.casts.int_words import int_words_to_half, int_words_to_half_free
from tilevm.ir.dtypes import DType
from tilevm.ir.thread.builder import KernelBuilder
from tilevm.ir.thread.types import B32
from tilevm.ir.thread.values import Operand, Reg

__all__ = ["cast_words", "cast_words_free", "group_size", "group_words", "has_word_cast"]

HALF_TYPES = ("f16", "bf16")


def group_size(src: DType) -> int:
    """Elements of ``src`` (at most 8 bits) one call converts: ``32 / gcd(nbits, 32)``."""
    return 32 // math.gcd(src.nbits, 32)


def group_words(src: DType) -> int:
    """Words one group of ``src`` fills: ``nbits / gcd(nbits, 32)``."""
    return src.nbits // math.gcd(src.nbits, 32)


def _check(words: Sequence[Operand], src: DType, dst: DType) -> None:
    if src.nbits > 8 or dst.name not in HALF_TYPES:
        raise ValueError(f"cast_words: {src} to {dst} is not a packed cast to f16/bf16")
    if len(words) != group_words(src):
        raise ValueError(f"cast_words: a group of {src} is {group_words(src)} words, got "
                         f"{len(words)}")


def cast_words(kb: KernelBuilder, words: Sequence[Operand], src: DType, dst: DType,
               target: int, minus: float = 0.0) -> list[Operand]:
    """Convert one group of ``src`` elements to ``dst`` (f16 or bf16), exactly as ``cast`` does
    element by element.

    ``words``: the :func:`group_words` b32 registers holding :func:`group_size` elements dense and
    LSB-first (element ``e`` at bits ``[e·n, e·n + n)`` of the words taken low word first).
    Returns ``group_size / 2`` 32-bit registers (f16x2/bf16x2; a ``mov`` reads them as b32):
    word ``j`` holds element ``2j`` in its low half and ``2j + 1`` in its high half. ``target``
    is the SM version (sequences use only what it has). ``minus``: each element is ``x − minus``
    rounded once instead (integer sources: the constant joins the sequence's own subtraction).
    Raises ``NotImplementedError`` where no sequence exists (:func:`has_word_cast`)."""
    _check(words, src, dst)
    if src.is_integer:
        return int_words_to_half(kb, words, src, dst, target, minus)
    if minus:
        raise NotImplementedError(f"cast_words: no subtraction joins the {src} sequence")
    return float_words.float_words_to_half(kb, words, src, dst, target)


def cast_words_free(kb: KernelBuilder, words: Sequence[Operand], src: DType, dst: DType,
                    target: int, minus: float = 0.0) -> tuple[list[Operand], tuple[int, ...]]:
    """As :func:`cast_words`, for callers to whom the order of a thread's elements is free
    (weights laid out offline): the cheapest sequence's pairs and its permutation ``perm``
    (output slot ``s`` — half ``s % 2`` of word ``s // 2`` — holds group element ``perm[s]``)."""
    _check(words, src, dst)
    if src.is_integer:
        return int_words_to_half_free(kb, words, src, dst, target, minus)
    if minus:
        raise NotImplementedError(f"cast_words: no subtraction joins the {src} sequence")
    return float_words.float_words_to_half_free(kb, words, src, dst, target)


@functools.cache
def _probe(src: DType, dst: DType, target: int, free: bool, minus: float = 0.0) -> bool:
    kb = KernelBuilder("probe", block_threads=32)
    words = [Reg(f"w{k}", B32) for k in range(group_words(src))]
    try:
        if free:
            out, perm = cast_words_free(kb, words, src, dst, target, minus)
            ok = sorted(perm) == list(range(group_size(src)))
        else:
            out = cast_words(kb, words, src, dst, target, minus)
            ok = True
    except NotImplementedError:
        return False
    if not ok or len(out) != group_size(src) // 2:
        raise AssertionError(f"cast_words from {src} to {dst}: {len(out)} words for a group of "
                             f"{group_size(src)} elements")
    return True


def has_word_cast(src: DType, dst: DType, target: int, free: bool = False,
                  minus: float = 0.0) -> bool:
    """Whether :func:`cast_words` (``free``: :func:`cast_words_free`) has a sequence from
    ``src`` to ``dst`` for ``target`` (with ``minus`` joined in)."""
    if src.nbits > 8 or dst.name not in HALF_TYPES:
        return False
    return (src.is_integer and not minus) or _probe(src, dst, target, free, minus)

"""The element order a fast cast wants, as a layout: where prepared weights can be ``view``\\ ed so
that the cheapest (free-order) cast sequence emits its values in the result's order.

A free-order sequence (:func:`~tilevm.backend.lower.casts.dispatch.cast_words_free`) emits group
element ``perm[s]`` in output slot ``s``. When ``perm`` permutes the bits of the index, a cast
whose operand is in ``permute_local_bits(L, perm)`` and whose result is in ``L`` is exactly that
sequence over each group (:func:`~tilevm.ir.layout.thread_words.permute_local_bits`). Layout
inference gives a cast of a ``view``\\ ed operand this result layout, and the cast rule uses the
free-order sequence when it sees the pair. The permutation must be the same for every target
(layout inference does not know the target); where it is not, or is not a bit permutation, the
cast keeps the natural order.
"""

from __future__ import annotations

from functools import cache

from tilevm.backend.lower.casts.dispatch import cast_words_free, group_words, has_word_cast
from tilevm.ir.dtypes import DType, dtype
from tilevm.ir.layout.register import RegisterLayout
from tilevm.ir.layout.thread_words import bit_permutation, permute_local_bits
from tilevm.ir.thread.builder import KernelBuilder
from tilevm.ir.thread.types import B32

__all__ = ["fast_cast_layout", "free_cast_operand_layout", "free_cast_permutation",
           "free_cast_result_layout"]

_TARGETS = (80, 89, 90)


@cache
def free_cast_permutation(src: DType, dst: DType) -> tuple[int, ...] | None:
    """The free-order permutation of the word cast ``src`` → ``dst`` (f16/bf16) when it is a bit
    permutation, the same on every target and not the identity; else ``None``."""
    if dst.name not in ("f16", "bf16") or src.nbits > 8:
        return None
    perms = set()
    for target in _TARGETS:
        if not has_word_cast(src, dst, target, free=True):
            return None
        kb = KernelBuilder("probe", block_threads=32)
        words = [kb.param(f"w{i}", B32) for i in range(group_words(src))]
        perms.add(tuple(cast_words_free(kb, words, src, dst, target)[1]))
    if len(perms) != 1:
        return None
    (perm,) = perms
    if perm == tuple(range(len(perm))) or bit_permutation(perm) is None:
        return None
    return perm


def _inverse(perm: tuple[int, ...]) -> tuple[int, ...]:
    out = [0] * len(perm)
    for s, e in enumerate(perm):
        out[e] = s
    return tuple(out)


def free_cast_operand_layout(result: RegisterLayout, src: DType, dst: DType
                             ) -> RegisterLayout | None:
    """The operand layout whose free-order cast gives ``result``'s order, or ``None``."""
    perm = free_cast_permutation(src, dst)
    return None if perm is None else permute_local_bits(result, perm)


def free_cast_result_layout(operand: RegisterLayout, src: DType, dst: DType
                            ) -> RegisterLayout | None:
    """The result layout of a free-order cast of an operand in ``operand``, or ``None``."""
    perm = free_cast_permutation(src, dst)
    if perm is None:
        return None
    result = permute_local_bits(operand, _inverse(perm))
    if result is None or permute_local_bits(result, perm) != operand:
        return None
    return result


def fast_cast_layout(layout: RegisterLayout, src: DType | str, dst: DType | str) -> RegisterLayout:
    """The layout in which to hold the operand of a cast ``src`` → ``dst`` whose result is wanted
    in ``layout``: the free-order layout where the fastest cast sequence emits its values in
    another order than it reads them (weights prepared offline in this layout and ``view``\\ ed
    in it are cast by that sequence straight into ``layout``), else ``layout`` itself."""
    return free_cast_operand_layout(layout, dtype(src), dtype(dst)) or layout

"""Vectorized casts of packed float words (every float type of at most 8 bits) to f16x2 / bf16x2.

Work in progress: every type raises NotImplementedError until its sequence lands.
"""

from __future__ import annotations

from collections.abc import Sequence

from tilevm.ir.dtypes import DType
from tilevm.ir.thread.builder import KernelBuilder
from tilevm.ir.thread.values import Operand


def float_group_size(src: DType) -> int:
    """Elements of ``src`` one call of float_words_to_half converts."""
    raise NotImplementedError(f"float_words: no cast from {src} yet")


def float_words_to_half(kb: KernelBuilder, words: Sequence[Operand], src: DType, dst: DType,
                        target: int) -> list[Operand]:
    """Convert one group of packed ``src`` floats to ``dst`` (f16 or bf16) pairs, natural order."""
    raise NotImplementedError(f"float_words: no cast from {src} to {dst} yet")


def float_words_to_half_free(kb: KernelBuilder, words: Sequence[Operand], src: DType, dst: DType,
                             target: int) -> tuple[list[Operand], tuple[int, ...]]:
    """As float_words_to_half, in any element order; returns the pairs and the order used."""
    raise NotImplementedError(f"float_words: no cast from {src} to {dst} yet")

"""Vectorized casts of packed registers (Thread IR sequences): a group of words of a type of at
most 8 bits to f16/bf16 pairs (:mod:`~tilevm.backend.lower.casts.dispatch`), integer sequences in
:mod:`~tilevm.backend.lower.casts.int_words`, float ones in
:mod:`~tilevm.backend.lower.casts.float_words`, and the multiply by an e8m0 scale
(:mod:`~tilevm.backend.lower.casts.e8m0_scale`)."""

from tilevm.backend.lower.casts.dispatch import (
    cast_words,
    cast_words_free,
    group_size,
    group_words,
    has_word_cast,
)

__all__ = ["cast_words", "cast_words_free", "group_size", "group_words", "has_word_cast"]

"""Where each thread of the prepared-weight GEMMs holds its weights, scales and partial sums: the
register layouts shared by weight preparation (:mod:`tilevm.kernels.prepared_weights`) and the
kernels that read prepared weights (:mod:`tilevm.kernels.prepared_linear`).

The unit of the prepared format is a **chunk**: ``CHUNK_N`` rows of the weight matrix by ``bk``
columns, the part of a step's weight tile one warp multiplies. In a chunk, lane ``l`` holds the
elements of the ``m16n8k16`` B fragments (transposed: W is n × k) that the lane feeds the tensor
cores, in the order of :func:`chunk_layout` — permuted where a cheaper cast wants another order
(:func:`tilevm.fast_cast_layout`) — and the prepared tensor stores them as one run of 32-bit
words per lane. A kernel with ``warps`` warps side by side along N reads ``warps`` consecutive
chunks per step, each lane one run of ``CHUNK_N · bk · bits / 1024`` bytes (16-byte vectors
where that is a multiple of 16). Nothing in the format depends on the kernel's M tile, its
warps or its pipeline: the decode and the prefill kernels read the same prepared weights.

Scales (and zero points, prepared as values of the activation type) follow the same pattern: per
chunk and quantization group, the four values of the rows a lane's fragments touch
(rows ``g``, ``g + 8``, ``g + 16``, ``g + 24`` for lane group ``g = l // 4``), one run per group
of four lanes that share them.

Only the public API is used (DESIGN §2: kernels sit on top).
"""

from __future__ import annotations

import tilevm as tv

__all__ = ["CHUNK_N", "accumulator_layout", "chunk_layout", "chunk_words", "packed_layout",
           "packed_value_layout", "value_layout", "value_words", "weight_layout"]

CHUNK_N = 32
"""Rows of W per chunk: one warp's columns of y (four ``n8`` atoms)."""


def accumulator_layout(bm: int, bn: int, warps: int) -> tv.RegisterLayout:
    """The (bm, bn) f32 accumulator with the warps side by side along N (warp ``w`` holds
    columns ``[w · bn / warps, (w + 1) · bn / warps)``), each warp's rows in m16 atoms and its
    columns in n8 atoms of the ``mma`` C fragment."""
    return (tv.local(bm // 16, 1) * tv.spatial(1, warps) * tv.local(1, bn // warps // 8)
            * tv.mma_fragment("m16n8k16", "f16", "c"))


def chunk_layout(bk: int, rows: int = CHUNK_N) -> tv.RegisterLayout:
    """One warp's (rows, bk) weight tile as the transposed B operand of its ``m16n8k16`` atoms:
    lane ``l`` holds rows ``l // 4 + 8a`` and columns ``8s + 2(l % 4) + {0, 1}``, local order
    (row atom ``a``, K step ``s``, pair element)."""
    return tv.local(rows // 8, bk // 8) * tv.spatial(8, 4) * tv.local(1, 2)


def weight_layout(bn: int, bk: int, warps: int) -> tv.RegisterLayout:
    """A step's (bn, bk) weight tile: warp ``w`` holds chunk ``w`` (rows ``w · bn / warps``…) in
    :func:`chunk_layout` — the transposed B operand of a ``dot`` whose accumulator is in
    :func:`accumulator_layout`."""
    return tv.spatial(warps, 1) * chunk_layout(bk, bn // warps)


def value_layout(bn: int, warps: int) -> tv.RegisterLayout:
    """A step's (bn, 1) column of scales (or zero points): each lane holds the rows of its
    :func:`weight_layout` elements; the four lanes of a lane group hold the same values."""
    return (tv.spatial(warps, 1) * tv.local(bn // warps // 8, 1) * tv.spatial(8, 1)
            * tv.replicated(4))


def chunk_words(bk: int, nbits: int) -> int:
    """32-bit words per lane of a chunk of ``nbits``-bit codes (ValueError when the lane's bits
    are not whole words)."""
    bits = CHUNK_N * bk * nbits // 32
    if bits % 32:
        raise ValueError(f"a chunk of {CHUNK_N} × {bk} codes of {nbits} bits gives each lane "
                         f"{bits} bits, not whole 32-bit words")
    return bits // 32


def value_words(nbits: int) -> int:
    """32-bit words per lane group of a chunk's scales (or zero points) of ``nbits`` bits."""
    bits = CHUNK_N // 8 * nbits
    if bits % 32:
        raise ValueError(f"{CHUNK_N // 8} values of {nbits} bits are not whole 32-bit words")
    return bits // 32


def packed_layout(warps: int, words: int) -> tv.RegisterLayout:
    """A step's (warps, 1, 32 · words) tile of prepared code words: lane ``l`` of warp ``w``
    holds words ``[l · words, (l + 1) · words)`` of chunk ``w``."""
    return tv.spatial(warps, 1, 32) * tv.local(1, 1, words)


def packed_value_layout(warps: int, words: int) -> tv.RegisterLayout:
    """A step's (warps, 1, 8 · words) tile of prepared scale words: lane group ``g`` of warp
    ``w`` holds words ``[g · words, (g + 1) · words)`` of chunk ``w``."""
    return tv.spatial(warps, 1, 8) * tv.replicated(4) * tv.local(1, 1, words)

"""Weight preparation, the numpy reference: low-bit weight codes re-laid out so that each thread
of a kernel loads its weights as contiguous words (DESIGN §3, ``view``).

The layout is the one the kernel consumes a weight tile in (a tile of shape ``(bn, bk)`` of the
weight matrix ``W`` of shape ``(N, K)``): typically the transpose of a ``dot``'s B operand
layout, possibly with its local order permuted for a fast cast
(:func:`tilevm.ir.layout.thread_words.permute_local_bits`). For every tile, in row-major tile
order, and every distinct thread of the layout, the thread's codes in local order are packed
LSB-first into 32-bit words: one row of the result. A kernel loads the rows of its tile in
:func:`~tilevm.ir.layout.thread_words.thread_words_layout` and ``view``\\ s them in the layout.

The DSL preparation the layer uses (:mod:`tilevm.kernels.prepared_weights`) produces these
bytes exactly (tested byte for byte against this reference).
"""

from __future__ import annotations

import numpy as np

from tilevm.ir.dtypes import DType, dtype
from tilevm.ir.layout.register import RegisterLayout
from tilevm.ir.layout.thread_words import thread_words_layout
from tilevm.ir.packing import pack

__all__ = ["prepare_weights", "prepared_tile_rows"]


def prepared_tile_rows(layout: RegisterLayout, nbits: int) -> int:
    """The rows (distinct threads) of one prepared tile."""
    return thread_words_layout(layout, nbits).shape[0]


def prepare_weights(codes: np.ndarray, dtype_: DType | str, layout: RegisterLayout
                    ) -> np.ndarray:
    """The prepared form of the weight codes ``codes`` (integer bit patterns of ``dtype_``, shape
    ``(N, K)``, both multiples of the tile ``layout.shape``): a ``uint32`` array of shape
    ``(N/bn · K/bk · rows, words)``, the rows of tile ``(jb, kb)`` starting at row
    ``(jb · K/bk + kb) · rows`` (see the module docstring)."""
    dt = dtype(dtype_)
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"prepare_weights: codes must be a matrix (N, K), got shape {codes.shape}")
    bn, bk = layout.shape
    n, k = codes.shape
    if n % bn or k % bk:
        raise ValueError(f"prepare_weights: the weights' shape {codes.shape} is not a whole "
                         f"number of ({bn}, {bk}) tiles; pad K (and N) first")
    words = thread_words_layout(layout, dt.nbits)
    per_row = words.shape[1]
    # The first holder of each distinct row: a thread whose replica digits are all 0.
    first = words.index_to_thread_local()[0][:, 0]
    r, c = layout.thread_local_to_index()
    r, c = r[first], c[first]  # (rows, locals)
    tiles = codes.reshape(n // bn, bn, k // bk, bk).transpose(0, 2, 1, 3)
    per_thread = tiles[:, :, r, c]  # (N/bn, K/bk, rows, locals)
    packed = pack(per_thread.astype(np.uint64), dt.nbits)
    return packed.view(np.uint32).reshape(-1, per_row).copy()

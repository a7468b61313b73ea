"""Layouts (DESIGN §4): register layouts and their algebra, shared layouts with swizzles and the
bank-conflict model, global layouts, and the PTX fragment layouts.

A short tour::

    c = local(2, 1) * spatial(8, 4) * local(1, 2)    # the m16n8k16 accumulator fragment
    c.shape, c.num_threads, c.local_size              # (16, 8), 32, 4
    c.coords(5, 3)                                    # (9, 3): thread 5, register 3
    c.holders((9, 3))                                 # [(5, 3)]
    tile[c.thread_local_to_index()]                   # (32, 4) registers of a numpy tile
    (local(2, 4) * c) / c                             # local(2, 4): the loop over mma tiles
    reduce(c, [1])                                    # rows, each held by 4 threads
    parse_layout(repr(c)) == c                        # repr is an expression of the algebra
    mma_fragment("m16n8k16", "f16", "a") == ldmatrix_fragment(4)

    s = SharedLayout.row_major(64, 64, swizzle=Swizzle.mode(128))
    s.byte_offset((1, 8), nbits=16)                   # 128: chunk 1 of row 1 moved to chunk 0
    bank_conflicts([s.byte_offset((r, 0), 16) for r in range(8)], width=16)   # 0
"""

from tilevm.ir.layout.algebra import (
    LayoutDivisionError,
    column_local,
    column_spatial,
    compose,
    concat,
    divide,
    left_divide,
    local,
    permute,
    reduce,
    replicated,
    reshape,
    spatial,
)
from tilevm.ir.layout.banks import bank_conflicts, ldmatrix_bank_conflicts
from tilevm.ir.layout.fragments import (
    ldmatrix_fragment,
    ldmatrix_row_starts,
    mma_fragment,
    mma_min_sm,
)
from tilevm.ir.layout.global_layout import GlobalLayout, parse_global_layout
from tilevm.ir.layout.register import RegisterLayout
from tilevm.ir.layout.shared import SharedLayout, Swizzle
from tilevm.ir.layout.shared_access import (
    bit_offsets,
    coefficients,
    ldmatrix_form,
    shared_bank_conflicts,
    shared_vector_bits,
)
from tilevm.ir.layout.text import LayoutSyntaxError, parse_layout, parse_shared_layout

__all__ = [
    "GlobalLayout",
    "LayoutDivisionError",
    "LayoutSyntaxError",
    "RegisterLayout",
    "SharedLayout",
    "Swizzle",
    "bank_conflicts",
    "bit_offsets",
    "coefficients",
    "column_local",
    "column_spatial",
    "compose",
    "concat",
    "divide",
    "ldmatrix_bank_conflicts",
    "ldmatrix_form",
    "ldmatrix_fragment",
    "ldmatrix_row_starts",
    "left_divide",
    "local",
    "mma_fragment",
    "mma_min_sm",
    "parse_global_layout",
    "parse_layout",
    "parse_shared_layout",
    "permute",
    "reduce",
    "replicated",
    "reshape",
    "shared_bank_conflicts",
    "shared_vector_bits",
    "spatial",
]

"""Layouts: register layouts and their algebra, shared layouts with swizzles and the bank-conflict
model, global layouts, and the PTX fragment layouts (DESIGN §4)."""

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
from tilevm.ir.layout.text import LayoutSyntaxError, parse_layout, parse_shared_layout

__all__ = [
    "GlobalLayout",
    "LayoutDivisionError",
    "LayoutSyntaxError",
    "RegisterLayout",
    "SharedLayout",
    "Swizzle",
    "bank_conflicts",
    "column_local",
    "column_spatial",
    "compose",
    "concat",
    "divide",
    "ldmatrix_bank_conflicts",
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
    "spatial",
]

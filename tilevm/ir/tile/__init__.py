"""Tile IR: block-level programs on typed tiles (DESIGN §1), their printer and verifier."""

from tilevm.ir.tile.ops import OPS, TileTypeError, infer_type
from tilevm.ir.tile.printer import print_kernel, print_stmt
from tilevm.ir.tile.program import (
    Assign,
    Const,
    For,
    If,
    Instr,
    Kernel,
    Loc,
    Operand,
    Stmt,
    Var,
    While,
    walk,
)
from tilevm.ir.tile.rewrite import map_block, map_kernel, substitute
from tilevm.ir.tile.types import ScalarType, TensorType, Type
from tilevm.ir.tile.verifier import VerifyError, types_match, verify

__all__ = [
    "OPS",
    "Assign",
    "Const",
    "For",
    "If",
    "Instr",
    "Kernel",
    "Loc",
    "Operand",
    "ScalarType",
    "Stmt",
    "TensorType",
    "TileTypeError",
    "Type",
    "Var",
    "VerifyError",
    "While",
    "infer_type",
    "map_block",
    "map_kernel",
    "print_kernel",
    "print_stmt",
    "substitute",
    "types_match",
    "verify",
    "walk",
]

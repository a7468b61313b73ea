"""Thread IR: what one thread executes — typed registers, structured control flow and intrinsics
that each mirror one PTX instruction. Both backends (CUDA C++ and the CPU) consume exactly this IR.

- :mod:`~tilevm.ir.thread.types`: register types (``U32``, ``F16X2``, ``vector(B32, 4)``…)
- :mod:`~tilevm.ir.thread.values`: ``Reg``, ``Const``, ``RegArray``/``Elem`` and index expressions
- :mod:`~tilevm.ir.thread.stmts`: ``Instr``, ``If``, ``For``, ``While``, ``Kernel``
- :mod:`~tilevm.ir.thread.intrinsics`: the intrinsics, registered in ``INTRINSICS``
- :mod:`~tilevm.ir.thread.builder`: ``KernelBuilder``, for writing programs by hand
- :mod:`~tilevm.ir.thread.printer`: ``dump``, the text form
- :mod:`~tilevm.ir.thread.verify`: ``verify``, including the architecture check
"""

from tilevm.ir.thread.builder import KernelBuilder
from tilevm.ir.thread.errors import ThreadIRError
from tilevm.ir.thread.intrinsics import INTRINSICS, Intrinsic
from tilevm.ir.thread.printer import dump, format_stmt
from tilevm.ir.thread.stmts import For, If, Instr, Kernel, Param, Stmt, While, walk
from tilevm.ir.thread.types import (
    B8,
    B16,
    B32,
    B64,
    BF16,
    BF16X2,
    F16,
    F16X2,
    F32,
    F64,
    PRED,
    S8,
    S16,
    S32,
    S64,
    TOKEN,
    U8,
    U16,
    U32,
    U64,
    ScalarType,
    Type,
    VectorType,
    scalar_type,
    vector,
)
from tilevm.ir.thread.values import Const, Elem, Index, IndexOp, Reg, RegArray
from tilevm.ir.thread.verify import parse_arch, verify

__all__ = [
    "B8", "B16", "B32", "B64", "BF16", "BF16X2", "F16", "F16X2", "F32", "F64", "INTRINSICS",
    "PRED", "S8", "S16", "S32", "S64", "TOKEN", "U8", "U16", "U32", "U64", "Const", "Elem", "For",
    "If", "Index", "IndexOp", "Instr", "Intrinsic", "Kernel", "KernelBuilder", "Param", "Reg",
    "RegArray", "ScalarType", "Stmt", "ThreadIRError", "Type", "VectorType", "While", "dump",
    "format_stmt", "parse_arch", "scalar_type", "vector", "verify", "walk",
]

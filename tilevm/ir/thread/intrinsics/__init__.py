"""Every Thread IR intrinsic, registered by name in :data:`INTRINSICS`.

Backends dispatch on ``instr.op.name``; see each class's docstring for its PTX semantics, scope,
minimum architecture and PTX ISA version.
"""

from tilevm.ir.thread.intrinsics import arith, convert, debug, memory, warp
from tilevm.ir.thread.intrinsics.base import INTRINSICS, SCOPES, Intrinsic, compatible

__all__ = ["INTRINSICS", "SCOPES", "Intrinsic", "arith", "compatible", "convert", "debug", "memory",
           "warp"]

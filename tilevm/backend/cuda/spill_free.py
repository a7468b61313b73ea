"""A kernel's cubin without register spills where ptxas can give one.

tilevm bounds only the block size (``__launch_bounds__(threads)``). Within that bound ptxas picks a
register budget by its own heuristics, and they sometimes spill a few bytes: the dense u3 linear
kernel with a 32 × 32 tile over 8 warps gets 32 registers and 4 bytes of spill stores on sm_80
(NVRTC 13.0), and none when the register limit is given explicitly (32 registers for 16 rows of y,
73 for 256). A spill is a local-memory round trip the kernel's author never sees in the source,
so a kernel that spills is compiled once more with the limit set to the ISA's, and the build that
spills less is kept.
"""

from __future__ import annotations

from tilevm.backend.cuda.nvrtc_compile import CudaBinary, compile_cuda
from tilevm.backend.cuda.targets import CudaTarget, cuda_target

__all__ = ["LIFTED_REGISTER_BUDGET", "compile_cuda_without_spills", "spilled_bytes"]

LIFTED_REGISTER_BUDGET = "--maxrregcount=255"
"""The NVRTC option of the second compile: the per-thread register limit of the ISA. A kernel's
``__launch_bounds__`` still caps it lower for large blocks (ptxas honours the smaller)."""


def spilled_bytes(binary: CudaBinary) -> int:
    """Spill stores and loads per thread, over every kernel of ``binary``."""
    return sum(r.spill_store_bytes + r.spill_load_bytes for r in binary.resources.values())


def compile_cuda_without_spills(source: str, arch: str | int | CudaTarget) -> CudaBinary:
    """:func:`~tilevm.backend.cuda.compile_cuda` with the base options; where ptxas spilled,
    compiled again with :data:`LIFTED_REGISTER_BUDGET`, and the build that spills fewer bytes is
    returned (the first on a tie). Its ``options`` say which it is. Raises as ``compile_cuda``."""
    target = cuda_target(arch)
    binary = compile_cuda(source, target)
    if spilled_bytes(binary) == 0:
        return binary
    lifted = compile_cuda(source, target, options=(LIFTED_REGISTER_BUDGET,))
    return lifted if spilled_bytes(lifted) < spilled_bytes(binary) else binary

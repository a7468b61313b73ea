"""A kernel's cubin without register spills where ptxas can give one.

tilevm bounds only the block size (``__launch_bounds__(threads)``). Within that bound ptxas picks a
register budget by its own occupancy heuristics, and they sometimes spill a few bytes: the dense
u3 prefill kernel with a 128 × 128 tile over 8 warps spilled on sm_80 (NVRTC 13.0), and a
128-thread reduction got 64 registers and 16 bytes of spill on sm_90, with ``--maxrregcount=255``
too (launch bounds override that option). A spill is a local-memory round trip the kernel's
author never sees in the source, so a kernel that spills is compiled once more with a minimum of
one block per SM (``-DTILEVM_ONE_BLOCK_PER_SM``: ``__launch_bounds__(threads, 1)``, see
:mod:`~tilevm.backend.cuda.emit_cuda`), under which ptxas may use up to the ISA's 255 registers,
and the build that spills less is kept.
"""

from __future__ import annotations

from tilevm.backend.cuda.emit_cuda import ONE_BLOCK_PER_SM_DEFINE
from tilevm.backend.cuda.nvrtc_compile import CudaBinary, compile_cuda
from tilevm.backend.cuda.targets import CudaTarget, cuda_target

__all__ = ["LIFTED_REGISTER_BUDGET", "compile_cuda_without_spills", "spilled_bytes"]

LIFTED_REGISTER_BUDGET = f"-D{ONE_BLOCK_PER_SM_DEFINE}"
"""The NVRTC option of the second compile: a minimum of one block per SM in every kernel's launch
bounds, so that ptxas may give a thread the ISA's 255 registers (fewer for blocks of more than
256 threads, which the register file caps)."""


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

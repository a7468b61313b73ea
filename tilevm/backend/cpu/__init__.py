"""The CPU backend: Thread IR → LLVM IR (llvmlite) → JIT, executed in warp-vector lockstep
(DESIGN §6). llvmlite is imported only when a kernel is compiled.

>>> from tilevm.backend.cpu import compile_kernel
>>> run = compile_kernel(kernel)          # doctest: +SKIP
>>> run(grid, x_array, n)                 # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tilevm.backend.cpu.launch import CpuKernel, CpuKernelError

__all__ = ["CpuKernel", "CpuKernelError", "compile_kernel"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tilevm.backend.cpu import launch

        return getattr(launch, name)
    raise AttributeError(name)

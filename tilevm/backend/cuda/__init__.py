"""tilevm.backend.cuda: Thread IR → CUDA C++ (:func:`emit_cuda`) → NVRTC (:func:`compile_cuda`)
→ PTX and cubin, with the ptxas resource report.

Importing this package needs no CUDA library; NVRTC (through cuda-bindings) is loaded when
:func:`compile_cuda` first runs.
"""

from tilevm.backend.cuda.compile_errors import CudaCompileError
from tilevm.backend.cuda.emit_cuda import emit_cuda
from tilevm.backend.cuda.nvrtc_compile import BASE_OPTIONS, CudaBinary, compile_cuda
from tilevm.backend.cuda.resources import KernelResources, parse_ptxas_report
from tilevm.backend.cuda.spill_free import compile_cuda_without_spills
from tilevm.backend.cuda.targets import (
    SUPPORTED_ARCHS,
    CudaTarget,
    UnsupportedArchError,
    cuda_target,
)

__all__ = [
    "BASE_OPTIONS",
    "SUPPORTED_ARCHS",
    "CudaBinary",
    "CudaCompileError",
    "CudaTarget",
    "KernelResources",
    "UnsupportedArchError",
    "compile_cuda",
    "compile_cuda_without_spills",
    "cuda_target",
    "emit_cuda",
    "parse_ptxas_report",
]

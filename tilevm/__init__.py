"""tilevm: a compiler and virtual machine for GPU kernels on data of any bit width.

The public API; everything here is re-exported from the subpackages. Importing tilevm needs only
numpy.
"""

import tilevm.runtime.cpu_device  # registers device="cpu"
import tilevm.runtime.cuda_device  # registers device="cuda"
import tilevm.runtime.interp_device  # registers device="interp"  # noqa: F401
from tilevm.backend.lower.cast_order import fast_cast_layout
from tilevm.frontend import dsl as _dsl
from tilevm.frontend.device_tensors import packed
from tilevm.frontend.diagnostics import CompileError, InternalCompilerError
from tilevm.frontend.dsl import Const, Dtype, Global, Scalar
from tilevm.frontend.kernel import kernel
from tilevm.ir import dtypes as _dtypes
from tilevm.ir.dtypes import DType, all_dtypes, dtype
from tilevm.ir.errors import KernelExecutionError
from tilevm.ir.host_tensor import HostTensor
from tilevm.ir.layout import (
    GlobalLayout,
    RegisterLayout,
    SharedLayout,
    Swizzle,
    column_local,
    column_spatial,
    ldmatrix_fragment,
    local,
    mma_fragment,
    replicated,
    spatial,
)
from tilevm.ir.layout.thread_words import thread_words_layout
from tilevm.runtime.artifact import KernelArtifact
from tilevm.runtime.autotune import autotune
from tilevm.runtime.compile import CompiledKernel
from tilevm.runtime.compile import compile_kernel as compile  # noqa: F401 - tilevm.compile
from tilevm.runtime.cuda_driver import NoCudaDevice, gpu_available
from tilevm.runtime.device_array import DeviceArray
from tilevm.runtime.tuning_db import export_tuning, load_tuning

__version__ = "0.1.0"

# Every type by name, e.g. tilevm.u4, tilevm.f6e3m2, tilevm.bf16.
_TYPES = {name: dt for name, dt in vars(_dtypes).items() if isinstance(dt, DType)}
globals().update(_TYPES)
# The DSL's instructions (DESIGN §5): tv.load, tv.dot, tv.range…
globals().update(_dsl.BUILTINS)

__all__ = [
    "CompileError", "CompiledKernel", "Const", "DType", "DeviceArray", "Dtype", "Global",
    "GlobalLayout", "HostTensor", "InternalCompilerError", "KernelArtifact", "KernelExecutionError",
    "NoCudaDevice", "RegisterLayout", "Scalar", "SharedLayout", "Swizzle", "__version__",
    "all_dtypes", "autotune", "column_local", "column_spatial", "dtype", "export_tuning",
    "fast_cast_layout",
    "gpu_available", "kernel", "load_tuning",
    "ldmatrix_fragment", "local", "mma_fragment", "packed", "replicated", "spatial",
    "thread_words_layout",
    *sorted(_TYPES),
    # Names that would shadow Python builtins under `from tilevm import *` stay out (compile too).
    *(name for name in _dsl.BUILTINS if name not in ("range", "max", "min", "sum", "abs")),
]  # fmt: skip

"""tilevm: a compiler and virtual machine for GPU kernels on data of any bit width.

The public API; everything here is re-exported from the subpackages. Importing tilevm needs only
numpy.
"""

from tilevm.ir import dtypes as _dtypes
from tilevm.ir.dtypes import DType, all_dtypes, dtype
from tilevm.ir.host_tensor import HostTensor

__version__ = "0.1.0"

# Every type by name, e.g. tilevm.u4, tilevm.f6e3m2, tilevm.bf16.
globals().update({name: dt for name, dt in vars(_dtypes).items() if isinstance(dt, DType)})

_TYPE_NAMES = sorted(name for name, dt in vars(_dtypes).items() if isinstance(dt, DType))
__all__ = ["DType", "HostTensor", "__version__", "all_dtypes", "dtype", *_TYPE_NAMES]

# The DSL (DESIGN §5): tv.kernel, tv.Global, tv.load, tv.dot…
from tilevm.frontend import dsl as _dsl  # noqa: E402
from tilevm.frontend.diagnostics import CompileError, InternalCompilerError  # noqa: E402
from tilevm.frontend.dsl import Const, Global, Scalar  # noqa: E402
from tilevm.frontend.kernel import kernel  # noqa: E402

globals().update(_dsl.BUILTINS)
# Names that would shadow Python builtins under `from tilevm import *` stay out of __all__.
__all__ += ["CompileError", "Const", "Global", "InternalCompilerError", "Scalar", "kernel", *(
    name for name in _dsl.BUILTINS if name not in ("range", "max", "min", "sum", "abs"))]

# Layout constructors (DESIGN §4): tv.spatial(8, 4) * tv.local(1, 2), tv.SharedLayout… The algebra's
# operations (reduce, reshape, permute…) stay in tilevm.ir.layout: their names are DSL instructions.
from tilevm.ir.layout import (  # noqa: E402
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

__all__ += ["GlobalLayout", "RegisterLayout", "SharedLayout", "Swizzle", "column_local",
            "column_spatial", "ldmatrix_fragment", "local", "mma_fragment", "replicated", "spatial"]

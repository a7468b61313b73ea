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

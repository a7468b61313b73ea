"""Random arguments for a kernel, from its declared parameter types: what ``tilevm run`` and
``tilevm bench`` call a kernel with when the user gives only its sizes."""

from __future__ import annotations

from typing import Any

import numpy as np

from tilevm.ir.dtypes import DType
from tilevm.ir.host_tensor import HostTensor
from tilevm.ir.tile.program import Kernel
from tilevm.ir.tile.types import ScalarType, TensorType

__all__ = ["random_arguments", "random_tensor"]

# Wide integers draw from a small range: kernels use them as counts, lengths and indices.
_WIDE_INT_RANGE = (0, 64)
_NUMPY = {"f16": np.float16, "f32": np.float32, "f64": np.float64, "i8": np.int8,
          "i16": np.int16, "i32": np.int32, "i64": np.int64, "u8": np.uint8, "u16": np.uint16,
          "u32": np.uint32, "u64": np.uint64}


def random_tensor(dt: DType, shape: tuple[int, ...], rng: np.random.Generator) -> Any:
    """A tensor of ``dt`` and ``shape``: floats standard normal, rounded to ``dt`` (saturating);
    integers of 8 bits or fewer uniform over the type, wider ones uniform over [0, 64). A numpy
    array where numpy has the type, else a :class:`HostTensor`."""
    if dt.is_float:
        values = rng.standard_normal(shape)
    elif dt.nbits <= 8:
        values = rng.integers(int(dt.min), int(dt.max) + 1, shape)
    else:
        values = rng.integers(*_WIDE_INT_RANGE, shape)
    if dt.name in _NUMPY:
        return values.astype(_NUMPY[dt.name])
    return HostTensor.from_numpy(values, dt, saturate=True if dt.is_float else None)


def _random_scalar(dt: DType, rng: np.random.Generator) -> int | float:
    if dt.is_float:
        return float(rng.uniform(0.5, 2.0))
    return int(rng.integers(1, 9))


def random_arguments(kernel: Kernel, sizes: dict[str, int], scalars: dict[str, Any],
                     seed: int = 0) -> list[Any]:
    """One argument per parameter of ``kernel`` (Tile IR): tensors of the declared types whose
    named dimensions take ``sizes`` (every name must be given), scalars from ``scalars`` or
    random (integers in [1, 8], floats in [0.5, 2)).

    Raises ``ValueError`` naming the sizes missing, a size that is not a non-negative integer
    or a scalar name the kernel does not have."""
    names = {p.name for p in kernel.params if isinstance(p.type, ScalarType)}
    unknown = sorted(set(scalars) - names)
    if unknown:
        raise ValueError(f"kernel {kernel.name} has no scalar parameter {', '.join(unknown)} "
                         f"(its scalars: {', '.join(sorted(names)) or 'none'})")
    needed = sorted({d for p in kernel.params if isinstance(p.type, TensorType)
                     for d in p.type.shape if isinstance(d, str)})
    missing = [d for d in needed if d not in sizes]
    if missing:
        raise ValueError(f"kernel {kernel.name} needs the sizes {', '.join(needed)}; missing "
                         f"{', '.join(missing)}")
    for name, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"size {name}={value!r} is not a non-negative integer")
    rng = np.random.default_rng(seed)
    args: list[Any] = []
    for p in kernel.params:
        if isinstance(p.type, TensorType):
            shape = tuple(sizes[d] if isinstance(d, str) else d for d in p.type.shape)
            args.append(random_tensor(p.type.dtype, shape, rng))
        else:
            assert isinstance(p.type, ScalarType)
            value = scalars.get(p.name)
            args.append(_random_scalar(p.type.dtype, rng) if value is None else value)
    return args

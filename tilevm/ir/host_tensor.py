"""Host tensors of any bit width: a byte buffer, a dtype, a shape and element strides.

Sub-byte data cannot live in a numpy array of its own type, so tilevm keeps it packed (DESIGN §3):
element ``idx`` of a :class:`HostTensor` occupies bits ``[b, b + nbits)`` of the buffer, with
``b = (offset + Σ idx[d]·strides[d]) · nbits``, counted LSB-first from byte 0. Offsets are 64-bit,
so rows need not start on a byte boundary.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from tilevm.ir.dtypes import DType, dtype, from_numpy_dtype
from tilevm.ir.packing import read_patterns, write_patterns

__all__ = ["HostTensor", "contiguous_strides"]


class HostTensor:
    """Packed values of one tilevm type with a shape and element strides.

    The buffer is shared, not copied, by views (:meth:`transpose`, :meth:`__getitem__` with slices):
    a kernel that writes a view writes the tensor it was taken from.
    """

    def __init__(self, data: np.ndarray, dtype_: DType | str, shape: Sequence[int],
                 strides: Sequence[int] | None = None, offset: int = 0) -> None:
        """Wrap ``data`` (a 1-D uint8 buffer) as a tensor.

        ``strides`` are in elements and default to C order; ``offset`` is in elements. Raises
        ``ValueError`` when an element would lie outside the buffer.
        """
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 1:
            raise TypeError("HostTensor: data must be a 1-D numpy uint8 buffer")
        self.data = data
        self.dtype = dtype(dtype_)
        self.shape = tuple(int(s) for s in shape)
        if any(s < 0 for s in self.shape):
            raise ValueError(f"HostTensor: negative size in shape {self.shape}")
        self.strides = contiguous_strides(self.shape) if strides is None else tuple(
            int(s) for s in strides)
        if len(self.strides) != len(self.shape):
            raise ValueError(f"HostTensor: {len(self.strides)} strides for shape {self.shape}")
        self.offset = int(offset)
        if self.size:
            lo = self.offset + sum(st * (n - 1) for st, n in zip(self.strides, self.shape)
                                   if st < 0)
            hi = self.offset + sum(st * (n - 1) for st, n in zip(self.strides, self.shape)
                                   if st > 0)
            if lo < 0 or (hi + 1) * self.dtype.nbits > data.size * 8:
                raise ValueError(f"HostTensor: shape {self.shape}, strides {self.strides} and "
                                 f"offset {self.offset} reach outside a {data.size}-byte buffer")

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def empty(cls, shape: Sequence[int], dtype_: DType | str) -> HostTensor:
        """A contiguous tensor whose bits are all zero."""
        dt = dtype(dtype_)
        count = int(np.prod(shape, dtype=np.int64))
        return cls(np.zeros((count * dt.nbits + 7) // 8, dtype=np.uint8), dt, shape)

    zeros = empty

    @classmethod
    def from_bits(cls, bits: np.ndarray, dtype_: DType | str) -> HostTensor:
        """A contiguous tensor holding the given bit patterns (an integer array of any shape)."""
        patterns = np.asarray(bits)
        out = cls.empty(patterns.shape, dtype_)
        out.set_bits(patterns)
        return out

    @classmethod
    def from_numpy(cls, values: Any, dtype_: DType | str | None = None,
                   saturate: bool | None = None) -> HostTensor:
        """Encode ``values`` into ``dtype_`` (default: the counterpart of their numpy dtype).

        Values are rounded as :meth:`DType.encode` does; a numpy array already of the matching
        ml_dtypes type keeps its bits exactly.
        """
        arr = np.asarray(values)
        dt = from_numpy_dtype(arr.dtype) if dtype_ is None else dtype(dtype_)
        if dt.ml_dtype is not None and arr.dtype == dt.ml_dtype:
            # ml_dtypes keeps a sub-byte element in the low bits of a byte (integers
            # sign-extended), so its bits are the byte's low nbits.
            patterns = arr.view(dt.storage_dtype)
            if dt.nbits < 8:
                patterns = patterns & ((1 << dt.nbits) - 1)
            return cls.from_bits(patterns, dt)
        return cls.from_bits(dt.encode(arr, saturate=saturate), dt)

    @classmethod
    def from_torch(cls, tensor: Any) -> HostTensor:
        """Copy a CPU torch tensor's bits, keeping its type (``float4_e2m1fn_x2`` unpacks to
        f4e2m1fn along its last dimension, low nibble first; ``uint1…7``/``int1…7`` hold one
        element per byte in torch)."""
        import torch

        t = tensor.detach().contiguous().cpu()
        if t.dtype == torch.float4_e2m1fn_x2:
            raw = t.view(torch.uint8).numpy()
            pairs = np.stack([raw & 0xF, raw >> 4], axis=-1)
            return cls.from_bits(pairs.reshape(*raw.shape[:-1], raw.shape[-1] * 2), "f4e2m1fn")
        dt = _dtype_of_torch(t.dtype)
        if dt.nbits < 8:
            return cls.from_bits(t.view(torch.uint8).numpy() & ((1 << dt.nbits) - 1), dt)
        int_view = {8: torch.uint8, 16: torch.int16, 32: torch.int32, 64: torch.int64}[dt.nbits]
        raw = t.view(int_view).numpy()
        return cls.from_bits(raw.view(dt.storage_dtype), dt)

    # -- reading --------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def bit_offsets(self) -> np.ndarray:
        """The starting bit of every element, an int64 array of the tensor's shape."""
        elems = np.full(self.shape, self.offset, dtype=np.int64)
        for axis, (n, st) in enumerate(zip(self.shape, self.strides)):
            index_shape = [1] * self.ndim
            index_shape[axis] = n
            elems = elems + (np.arange(n, dtype=np.int64) * st).reshape(index_shape)
        return elems * self.dtype.nbits

    def bits(self) -> np.ndarray:
        """The bit patterns, in an array of the tensor's shape and the type's storage dtype."""
        return read_patterns(self.data, self.bit_offsets(), self.dtype.nbits)

    def to_numpy(self) -> np.ndarray:
        """The decoded values: float64 for floats, int64 for integers (uint64 for u64)."""
        return self.dtype.decode(self.bits())

    def to_torch(self) -> Any:
        """A new contiguous CPU torch tensor of the type's torch counterpart.

        Raises ``TypeError`` for types torch lacks (e.g. f6e3m2fn, u12); f4e2m1fn needs an even
        last dimension (torch packs it in pairs).
        """
        import torch

        dt = self.dtype
        patterns = self.bits()
        if dt.name == "f4e2m1fn":
            if not self.shape or self.shape[-1] % 2:
                raise TypeError("to_torch: f4e2m1fn needs an even last dimension to become "
                                "torch.float4_e2m1fn_x2")
            pairs = patterns.reshape(*self.shape[:-1], self.shape[-1] // 2, 2)
            packed = (pairs[..., 0] | (pairs[..., 1] << 4)).astype(np.uint8)
            return torch.from_numpy(packed).view(torch.float4_e2m1fn_x2)
        target = dt.torch_dtype
        if target is None:
            raise TypeError(f"to_torch: torch has no dtype for {dt.name}")
        if dt.nbits < 8:
            return torch.from_numpy(patterns.astype(np.uint8)).view(target)
        int_view = {8: np.uint8, 16: np.int16, 32: np.int32, 64: np.int64}[dt.nbits]
        return torch.from_numpy(np.ascontiguousarray(patterns).view(int_view)).view(target)

    # -- writing and views ----------------------------------------------------------------------

    def set_bits(self, bits: np.ndarray) -> None:
        """Overwrite every element with ``bits`` (broadcast to the shape), in place."""
        patterns = np.broadcast_to(np.asarray(bits), self.shape)
        write_patterns(self.data, self.bit_offsets(), patterns, self.dtype.nbits)

    def copy_(self, values: Any, saturate: bool | None = None) -> None:
        """Encode ``values`` (broadcast to the shape) and write them in place."""
        self.set_bits(self.dtype.encode(np.broadcast_to(np.asarray(values), self.shape),
                                        saturate=saturate))

    def transpose(self, *axes: int) -> HostTensor:
        """A view with permuted axes (reversed when none are given)."""
        order = axes or tuple(reversed(range(self.ndim)))
        if sorted(order) != list(range(self.ndim)):
            raise ValueError(f"transpose: {order} is not a permutation of {self.ndim} axes")
        return HostTensor(self.data, self.dtype, [self.shape[a] for a in order],
                          [self.strides[a] for a in order], self.offset)

    @property
    def T(self) -> HostTensor:
        return self.transpose()

    def __getitem__(self, key: Any) -> HostTensor:
        """A view selected by integers and slices (no fancy indexing)."""
        key = key if isinstance(key, tuple) else (key,)
        if len(key) > self.ndim:
            raise IndexError(f"{len(key)} indices for a tensor of rank {self.ndim}")
        offset, shape, strides = self.offset, [], []
        for axis, n in enumerate(self.shape):
            k = key[axis] if axis < len(key) else slice(None)
            if isinstance(k, (int, np.integer)):
                if not -n <= k < n:
                    raise IndexError(f"index {k} out of range for axis {axis} of size {n}")
                offset += (int(k) % n) * self.strides[axis]
            elif isinstance(k, slice):
                start, stop, step = k.indices(n)
                offset += start * self.strides[axis]
                shape.append(len(range(start, stop, step)))
                strides.append(self.strides[axis] * step)
            else:
                raise TypeError(f"HostTensor indices are integers and slices, not {type(k)}")
        return HostTensor(self.data, self.dtype, shape, strides, offset)

    def __repr__(self) -> str:
        return (f"HostTensor({self.dtype.name}, shape={self.shape}, strides={self.strides}, "
                f"offset={self.offset})")


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Element strides of a dense row-major (C order) tensor of ``shape``."""
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    return tuple(reversed(strides))


def _dtype_of_torch(torch_dtype: Any) -> DType:
    found = _torch_names().get(str(torch_dtype).removeprefix("torch."))
    if found is None:
        raise TypeError(f"torch dtype {torch_dtype} has no tilevm counterpart")
    return found


@functools.cache
def _torch_names() -> dict[str, DType]:
    """Each torch dtype name to its tilevm type, the first listed winning (built once: every
    call with a torch argument looks its types up here)."""
    from tilevm.ir.dtypes import all_dtypes

    table = {"bool": dtype("u1")}
    for dt in all_dtypes():
        if dt.torch_name is not None:
            table.setdefault(dt.torch_name, dt)
    return table

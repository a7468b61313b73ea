"""``DeviceArray``: GPU memory for programs without a GPU framework (numpy only). It exposes
``__cuda_array_interface__``, so a kernel call with DeviceArray arguments runs on their GPU, and so
CuPy or Numba can read it too. Sub-byte data keep their tilevm dtype
(:meth:`DeviceArray.from_host_tensor`); a call sees them as packed tensors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from tilevm.frontend.device_tensors import DeviceTensor
from tilevm.ir.dtypes import DType, dtype, from_numpy_dtype
from tilevm.ir.host_tensor import HostTensor, contiguous_strides
from tilevm.runtime import cuda_driver
from tilevm.runtime.cuda_driver import CudaDevice

__all__ = ["DeviceArray"]


class DeviceArray:
    """A dense row-major array in one GPU's memory, freed when the object is."""

    def __init__(self, device: CudaDevice, shape: Sequence[int], dtype_: DType | str,
                 nbytes: int) -> None:
        self.device = device
        self.shape = tuple(int(s) for s in shape)
        self.dtype = dtype(dtype_)
        self.nbytes = int(nbytes)
        self.address = device.allocate(self.nbytes)

    @property
    def device_index(self) -> int:
        return self.device.index

    @staticmethod
    def empty(shape: Sequence[int], dtype_: Any, device: int = 0) -> DeviceArray:
        """Uninitialized memory for ``shape`` elements of ``dtype_`` (a tilevm dtype or name,
        or a numpy dtype)."""
        dt = _as_dtype(dtype_)
        count = int(np.prod(shape, dtype=np.int64)) if len(shape) else 1
        return DeviceArray(cuda_driver.cuda_device(device), shape, dt, -(-count * dt.nbits // 8))

    @staticmethod
    def from_numpy(array: np.ndarray, device: int = 0) -> DeviceArray:
        """A copy of ``array`` (any layout; ml_dtypes dtypes included) on GPU ``device``."""
        host = np.ascontiguousarray(array)
        out = DeviceArray(cuda_driver.cuda_device(device), host.shape, from_numpy_dtype(host.dtype),
                          host.nbytes)
        out.device.copy_to_device(out.address, host)
        return out

    @staticmethod
    def from_host_tensor(tensor: HostTensor, device: int = 0) -> DeviceArray:
        """The packed bytes of a dense row-major :class:`HostTensor` on GPU ``device``."""
        if tensor.offset or tensor.strides != contiguous_strides(tensor.shape):
            tensor = HostTensor.from_numpy(tensor.to_numpy(), tensor.dtype)
        out = DeviceArray(cuda_driver.cuda_device(device), tensor.shape, tensor.dtype,
                          tensor.data.nbytes)
        out.device.copy_to_device(out.address, tensor.data)
        return out

    def to_numpy(self) -> np.ndarray:
        """A host copy (synchronizes the device first); sub-byte types decode to their numpy
        counterparts as :meth:`HostTensor.to_numpy` does."""
        if self.dtype.nbits < 8:
            return self.to_host_tensor().to_numpy()
        out = np.empty(self.shape, self.dtype.storage_dtype)
        self.device.synchronize()
        self.device.copy_to_host(out, self.address)
        return out.view(self.dtype.ml_dtype) if self.dtype.ml_dtype is not None else out

    def to_host_tensor(self) -> HostTensor:
        """A host copy as a packed :class:`HostTensor` (synchronizes the device first)."""
        data = np.empty(self.nbytes, np.uint8)
        self.device.synchronize()
        self.device.copy_to_host(data, self.address)
        return HostTensor(data, self.dtype, self.shape)

    def as_device_tensor(self) -> DeviceTensor:
        """What a kernel call binds: this array as a dense tensor of its dtype."""
        return DeviceTensor(self.address, self.dtype, self.shape, contiguous_strides(self.shape),
                            self.device.index, 0, self)

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        if self.dtype.nbits < 8:
            raise TypeError(f"a DeviceArray of {self.dtype.name} has no numpy type; pass it to a "
                            "kernel as is")
        native = self.dtype.ml_dtype
        # numpy's own types keep their name (f16 is "<f2"); ml_dtypes' types travel as their bits
        typestr = (np.dtype(native).str if native is not None and np.dtype(native).kind in "biuf"
                   else np.dtype(self.dtype.storage_dtype).str)
        return {"shape": self.shape, "typestr": typestr,
                "data": (self.address, False), "strides": None, "version": 3}

    def __del__(self) -> None:
        address, self.address = getattr(self, "address", 0), 0
        if address:
            with contextlib.suppress(Exception):  # at interpreter exit the driver may be gone
                self.device.free(address)

    def __repr__(self) -> str:
        return (f"DeviceArray(shape={self.shape}, dtype={self.dtype.name}, "
                f"device=cuda:{self.device.index})")


def _as_dtype(value: Any) -> DType:
    if isinstance(value, DType):
        return value
    if isinstance(value, str):
        try:
            return dtype(value)
        except (KeyError, ValueError, TypeError):
            pass
    return from_numpy_dtype(np.dtype(value))

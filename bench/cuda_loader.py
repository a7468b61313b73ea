"""A minimal, self-contained CUDA driver loader for ``bench/gpu_check.py``: load cubins, move
bytes, launch kernels. It needs numpy and ``cuda.bindings`` (the ``cuda-bindings`` package) and
nothing of tilevm, so that it runs under a GPU machine's own Python (no NVRTC, lark or llvmlite).

Every driver call goes through :meth:`Driver.call`, which raises :class:`CudaError` naming the
call and the driver's error name. Kernel parameters are packed as ``cuLaunchKernel`` takes them
(:func:`pack_params`): an array of ``void*``, entry ``i`` the address of parameter ``i``'s bytes.

Example::

    device = Device()                                   # device 0, its primary context
    function = device.load_module(cubin).function("vector_add")
    x = device.upload(np.arange(4, dtype=np.float32))
    device.launch(function, (1, 1, 1), (128, 1, 1), 0, [Pointer(x), Value(4, 4)])
    device.synchronize()
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["CudaError", "Device", "Driver", "Function", "Module", "PackedParams", "Pointer",
           "Value", "pack_params"]

# Kernels may use up to 48 KiB of dynamic shared memory without opting in (CUDA C++ Programming
# Guide, "Shared Memory": above it, cudaFuncAttributeMaxDynamicSharedMemorySize must be set).
DEFAULT_SHARED_LIMIT = 48 * 1024


class CudaError(RuntimeError):
    """A CUDA driver call failed; the message names the call and the driver's error."""


@dataclass(frozen=True)
class Pointer:
    """A device address parameter (8 bytes)."""

    address: int


@dataclass(frozen=True)
class Value:
    """A by-value parameter: the unsigned bit pattern ``bits`` in ``nbytes`` bytes (1, 2, 4, 8),
    little-endian as the GPU reads it (a float is passed as its bits)."""

    bits: int
    nbytes: int


_CTYPES = {1: ctypes.c_uint8, 2: ctypes.c_uint16, 4: ctypes.c_uint32, 8: ctypes.c_uint64}


@dataclass
class PackedParams:
    """Parameters as ``cuLaunchKernel``'s ``kernelParams``: :attr:`address` is the address of an
    array of ``void*``; :attr:`storage` keeps the values alive as long as this object."""

    array: Any
    storage: list[Any]

    @property
    def address(self) -> int:
        return ctypes.addressof(self.array)

    def __len__(self) -> int:
        return len(self.storage)


def pack_params(params: Sequence[Pointer | Value]) -> PackedParams:
    """Each parameter's bytes in a ctypes object of its size, and the ``void*`` array of their
    addresses (raises ``ValueError`` for a size other than 1, 2, 4, 8 or a value that does not
    fit)."""
    storage: list[Any] = []
    for p in params:
        if isinstance(p, Pointer):
            storage.append(ctypes.c_uint64(p.address))
            continue
        if p.nbytes not in _CTYPES:
            raise ValueError(f"a parameter of {p.nbytes} bytes: only 1, 2, 4 or 8")
        if not 0 <= p.bits < 1 << (8 * p.nbytes):
            raise ValueError(f"bits 0x{p.bits:x} do not fit in {p.nbytes} bytes")
        storage.append(_CTYPES[p.nbytes](p.bits))
    array = (ctypes.c_void_p * max(len(storage), 1))(*[ctypes.addressof(s) for s in storage])
    return PackedParams(array, storage)


class Driver:
    """The driver API module (``cuda.bindings.driver`` unless another object with its functions
    is given, as the tests do) with checked calls."""

    def __init__(self, api: Any = None) -> None:
        if api is None:
            from cuda.bindings import driver as api
        self.api = api

    def call(self, name: str, *args: Any) -> Any:
        """``api.name(*args)``; raises :class:`CudaError` unless it returns ``CUDA_SUCCESS``.
        Returns the call's one result, a tuple of several, or None."""
        result = getattr(self.api, name)(*args)
        status, values = result[0], result[1:]
        if status != self.api.CUresult.CUDA_SUCCESS:
            raise CudaError(f"{name} failed: {self.error_name(status)}")
        return values[0] if len(values) == 1 else (values or None)

    def error_name(self, status: Any) -> str:
        try:
            err, text = self.api.cuGetErrorName(status)
            if err == self.api.CUresult.CUDA_SUCCESS:
                return text.decode() if isinstance(text, bytes) else str(text)
        except Exception:  # the name is only for the message
            pass
        return str(status)


@dataclass
class Function:
    """A kernel of a loaded module."""

    handle: Any
    name: str


class Module:
    """A loaded cubin (kept alive with its image)."""

    def __init__(self, device: Device, handle: Any, image: np.ndarray) -> None:
        self.device, self.handle, self._image = device, handle, image

    def function(self, name: str, dynamic_shared_bytes: int = 0) -> Function:
        """The kernel ``name``; above 48 KiB of dynamic shared memory the function's limit is
        raised to ``dynamic_shared_bytes`` first."""
        drv = self.device.driver
        handle = drv.call("cuModuleGetFunction", self.handle, name.encode())
        if dynamic_shared_bytes > DEFAULT_SHARED_LIMIT:
            attribute = drv.api.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
            drv.call("cuFuncSetAttribute", handle, attribute, dynamic_shared_bytes)
        return Function(handle, name)


class Device:
    """Device ``ordinal`` through its primary context (the one PyTorch uses), made current."""

    def __init__(self, ordinal: int = 0, api: Any = None) -> None:
        self.driver = Driver(api)
        drv = self.driver
        drv.call("cuInit", 0)
        self.handle = drv.call("cuDeviceGet", ordinal)
        self.context = drv.call("cuDevicePrimaryCtxRetain", self.handle)
        drv.call("cuCtxSetCurrent", self.context)
        self.allocations: list[int] = []

    @property
    def name(self) -> str:
        raw = self.driver.call("cuDeviceGetName", 256, self.handle)
        return raw.split(b"\0", 1)[0].decode() if isinstance(raw, bytes) else str(raw)

    @property
    def driver_version(self) -> int:
        """The driver's CUDA version as 1000·major + 10·minor (13000 for 13.0)."""
        return int(self.driver.call("cuDriverGetVersion"))

    def load_module(self, cubin: bytes) -> Module:
        """Load a cubin into the context."""
        image = np.frombuffer(cubin, np.uint8).copy()
        return Module(self, self.driver.call("cuModuleLoadData", image.ctypes.data), image)

    def alloc(self, nbytes: int) -> int:
        """``nbytes`` of device memory (at least 1), freed by :meth:`free_all`."""
        address = int(self.driver.call("cuMemAlloc", max(int(nbytes), 1)))
        self.allocations.append(address)
        return address

    def upload(self, array: np.ndarray) -> int:
        """A new device buffer holding ``array``'s bytes; returns its address."""
        data = np.ascontiguousarray(array)
        address = self.alloc(data.nbytes)
        if data.nbytes:
            self.driver.call("cuMemcpyHtoD", address, data.ctypes.data, data.nbytes)
        return address

    def download(self, address: int, nbytes: int) -> np.ndarray:
        """``nbytes`` bytes at ``address`` as a new uint8 array (after the work before it)."""
        out = np.empty(nbytes, np.uint8)
        if nbytes:
            self.driver.call("cuMemcpyDtoH", out.ctypes.data, address, nbytes)
        return out

    def launch(self, function: Function, grid: Sequence[int], block: Sequence[int],
               shared_bytes: int, params: Sequence[Pointer | Value], stream: int = 0) -> None:
        """Launch ``function`` on ``stream`` (0: the default stream) without waiting."""
        packed = pack_params(params)
        gx, gy, gz = [*grid, 1, 1][:3]
        bx, by, bz = [*block, 1, 1][:3]
        self.driver.call("cuLaunchKernel", function.handle, gx, gy, gz, bx, by, bz,
                         int(shared_bytes), stream, packed.address, 0)

    def synchronize(self) -> None:
        """Wait for every launch; a kernel's fault surfaces here as a :class:`CudaError`."""
        self.driver.call("cuCtxSynchronize")

    def free_all(self) -> None:
        """Free every buffer :meth:`alloc` made."""
        while self.allocations:
            self.driver.call("cuMemFree", self.allocations.pop())

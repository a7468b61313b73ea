"""The CUDA driver API as tilevm uses it, through ``cuda-bindings`` (not through torch, so
numpy-only programs and other frameworks launch too): devices and their primary contexts (the
ones torch uses), modules loaded from cubins (never PTX), kernel launches on a stream, device
memory.

Without a driver or a GPU, every entry point raises :class:`NoCudaDevice` with one message saying
what is missing; :func:`gpu_available` answers without raising. Driver errors raise
:class:`CudaError` naming the call and the driver's error.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["CudaDevice", "CudaError", "CudaFunction", "CudaModule", "NoCudaDevice",
           "cuda_device", "gpu_available", "gpu_count"]

# Dynamic shared memory above this needs the function's attribute raised first.
DEFAULT_DYNAMIC_SHARED_LIMIT = 48 * 1024


class NoCudaDevice(RuntimeError):
    """There is no usable GPU: no driver, no device, or cuda-bindings missing."""


class CudaError(RuntimeError):
    """A CUDA driver call failed."""


@functools.cache
def _driver() -> Any:
    """``cuda.bindings.driver``, initialized; :class:`NoCudaDevice` when that is impossible."""
    try:
        from cuda.bindings import driver
    except ImportError as e:
        raise NoCudaDevice(f"no CUDA device: cuda-bindings is not installed ({e})") from None
    try:
        (err,) = driver.cuInit(0)
    except RuntimeError as e:  # libcuda.so.1 absent
        raise NoCudaDevice(f"no CUDA device: no CUDA driver on this machine ({e})") from None
    if err != driver.CUresult.CUDA_SUCCESS:
        raise NoCudaDevice(f"no CUDA device: cuInit failed ({err.name})")
    return driver


def _check(result: Any, call: str) -> Any:
    """The values of a cuda-bindings call's result tuple; :class:`CudaError` on failure."""
    driver = _driver()
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != driver.CUresult.CUDA_SUCCESS:
        _, name = driver.cuGetErrorName(err)
        _, text = driver.cuGetErrorString(err)
        raise CudaError(f"{call} failed: {_text(name)} ({_text(text)})")
    return values[0] if len(values) == 1 else tuple(values)


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def gpu_count() -> int:
    """The number of visible GPUs; 0 without a driver (never raises)."""
    try:
        driver = _driver()
        err, count = driver.cuDeviceGetCount()
    except NoCudaDevice:
        return 0
    return int(count) if err == driver.CUresult.CUDA_SUCCESS else 0


def gpu_available() -> bool:
    """Whether a GPU can run kernels here (never raises)."""
    return gpu_count() > 0


_devices: dict[int, CudaDevice] = {}
_devices_lock = threading.Lock()


def cuda_device(index: int = 0) -> CudaDevice:
    """GPU number ``index`` with its primary context retained; :class:`NoCudaDevice` when there
    is none."""
    with _devices_lock:
        if index not in _devices:
            count = gpu_count()
            if count == 0:
                _driver()  # raises the reason there is no device, when there is one
                raise NoCudaDevice("no CUDA device: the driver sees no GPU")
            if not 0 <= index < count:
                raise NoCudaDevice(f"no CUDA device {index}: this machine has {count}")
            _devices[index] = CudaDevice(index)
        return _devices[index]


def pointer_device(address: int) -> int:
    """The ordinal of the GPU that holds device address ``address``."""
    driver = _driver()
    attribute = driver.CUpointer_attribute.CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL
    return int(_check(driver.cuPointerGetAttribute(attribute, address),
                      "cuPointerGetAttribute(DEVICE_ORDINAL)"))


@dataclass
class CudaDevice:
    """One GPU and its primary context."""

    index: int
    name: str = field(init=False)
    compute_capability: tuple[int, int] = field(init=False)

    def __post_init__(self) -> None:
        driver = _driver()
        self.handle = _check(driver.cuDeviceGet(self.index), "cuDeviceGet")
        raw = _check(driver.cuDeviceGetName(64, self.handle), "cuDeviceGetName")
        self.name = raw.split(b"\0", 1)[0].decode(errors="replace")
        attr = driver.CUdevice_attribute
        major = _check(driver.cuDeviceGetAttribute(
            attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, self.handle), "cuDeviceGetAttribute")
        minor = _check(driver.cuDeviceGetAttribute(
            attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, self.handle), "cuDeviceGetAttribute")
        self.compute_capability = (int(major), int(minor))
        self.max_shared_optin = int(_check(driver.cuDeviceGetAttribute(
            attr.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, self.handle),
            "cuDeviceGetAttribute"))
        self.context = _check(driver.cuDevicePrimaryCtxRetain(self.handle),
                              "cuDevicePrimaryCtxRetain")

    @property
    def arch(self) -> str:
        """The target name: ``sm_90`` for compute capability 9.0."""
        return f"sm_{self.compute_capability[0]}{self.compute_capability[1]}"

    def activate(self) -> None:
        """Make this device's primary context current in the calling thread (cheap when it is)."""
        driver = _driver()
        current = _check(driver.cuCtxGetCurrent(), "cuCtxGetCurrent")
        if int(current) != int(self.context):
            _check(driver.cuCtxSetCurrent(self.context), "cuCtxSetCurrent")

    def load_module(self, cubin: bytes) -> CudaModule:
        """Load a cubin (never PTX: a module is built for this device's architecture ahead of
        time)."""
        if not isinstance(cubin, (bytes, bytearray)) or cubin[:4] != b"\x7fELF":
            raise CudaError("load_module: expected a cubin (an ELF image), not PTX or text")
        self.activate()
        image = np.frombuffer(bytes(cubin), dtype=np.uint8)
        handle = _check(_driver().cuModuleLoadData(image.ctypes.data), "cuModuleLoadData")
        return CudaModule(self, handle)

    def allocate(self, nbytes: int) -> int:
        """``nbytes`` of device memory (at least 1); free with :meth:`free`."""
        self.activate()
        return int(_check(_driver().cuMemAlloc(max(int(nbytes), 1)), "cuMemAlloc"))

    def free(self, address: int) -> None:
        self.activate()
        _check(_driver().cuMemFree(address), "cuMemFree")

    def copy_to_device(self, address: int, host: np.ndarray) -> None:
        """Copy the bytes of contiguous ``host`` to ``address`` (synchronously)."""
        host = np.ascontiguousarray(host)
        self.activate()
        _check(_driver().cuMemcpyHtoD(address, host.ctypes.data, host.nbytes), "cuMemcpyHtoD")

    def copy_to_host(self, host: np.ndarray, address: int) -> None:
        """Fill contiguous ``host`` with its size in bytes from ``address`` (synchronously)."""
        if not host.flags.c_contiguous:
            raise ValueError("copy_to_host: the host array must be contiguous")
        self.activate()
        _check(_driver().cuMemcpyDtoH(host.ctypes.data, address, host.nbytes), "cuMemcpyDtoH")

    def memset_async(self, address: int, nbytes: int, stream: int = 0) -> None:
        """Zero ``nbytes`` at ``address`` in stream order (no host synchronization)."""
        driver = _driver()
        _check(driver.cuMemsetD8Async(address, 0, nbytes, driver.CUstream(stream)),
               "cuMemsetD8Async")

    def synchronize(self) -> None:
        """Wait for everything queued on this device."""
        self.activate()
        _check(_driver().cuCtxSynchronize(), "cuCtxSynchronize")

    def copy_on_device_async(self, dst: int, src: int, nbytes: int, stream: int = 0) -> None:
        """Copy ``nbytes`` from ``src`` to ``dst`` on this device, in stream order."""
        driver = _driver()
        self.activate()
        _check(driver.cuMemcpyDtoDAsync(dst, src, nbytes, driver.CUstream(stream)),
               "cuMemcpyDtoDAsync")

    @property
    def l2_bytes(self) -> int:
        """The size of the device's L2 cache in bytes."""
        driver = _driver()
        attr = driver.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE
        return int(_check(driver.cuDeviceGetAttribute(attr, self.handle),
                          "cuDeviceGetAttribute(L2_CACHE_SIZE)"))

    def event(self) -> CudaEvent:
        """A new event on this device (for timing, :meth:`CudaEvent.elapsed_ms`)."""
        self.activate()
        return CudaEvent(_check(_driver().cuEventCreate(0), "cuEventCreate"))


class CudaEvent:
    """A CUDA event: recorded in stream order, timed against another."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def record(self, stream: int = 0) -> None:
        driver = _driver()
        _check(driver.cuEventRecord(self.handle, driver.CUstream(stream)), "cuEventRecord")

    def elapsed_ms(self, end: CudaEvent) -> float:
        """Milliseconds from this event to ``end``, once ``end`` has happened (waits for it)."""
        driver = _driver()
        _check(driver.cuEventSynchronize(end.handle), "cuEventSynchronize")
        return float(_check(driver.cuEventElapsedTime(self.handle, end.handle),
                            "cuEventElapsedTime"))

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter exit the driver may be gone
            _driver().cuEventDestroy(self.handle)


@dataclass
class CudaModule:
    """A loaded cubin."""

    device: CudaDevice
    handle: Any

    def function(self, name: str) -> CudaFunction:
        """The kernel ``name`` (its ``extern "C"`` symbol)."""
        handle = _check(_driver().cuModuleGetFunction(self.handle, name.encode()),
                        f"cuModuleGetFunction({name!r})")
        return CudaFunction(self, name, handle)


@dataclass
class CudaFunction:
    """A kernel of a loaded module."""

    module: CudaModule
    name: str
    handle: Any
    _shared_limit: int = DEFAULT_DYNAMIC_SHARED_LIMIT

    def allow_dynamic_shared(self, nbytes: int) -> None:
        """Raise the kernel's dynamic shared memory limit to ``nbytes`` (needed above 48 KB; done
        once, when the kernel is loaded)."""
        if nbytes <= self._shared_limit:
            return
        device = self.module.device
        if nbytes > device.max_shared_optin:
            raise CudaError(f"kernel {self.name} needs {nbytes} bytes of shared memory; "
                            f"{device.name} allows {device.max_shared_optin} per block")
        driver = _driver()
        attr = driver.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
        _check(driver.cuFuncSetAttribute(self.handle, attr, nbytes), "cuFuncSetAttribute")
        self._shared_limit = nbytes

    def launch(self, grid: Sequence[int], block: Sequence[int], args: Sequence[Any],
               shared_bytes: int = 0, stream: int = 0) -> None:
        """Queue the kernel on ``stream`` (a ``CUstream`` address; 0 the legacy default stream):
        ``grid`` and ``block`` of 1 to 3 extents, ``args`` the parameters as ctypes values in the
        kernel's order. Returns without waiting."""
        grid3 = (*map(int, grid), 1, 1)[:3]
        block3 = (*map(int, block), 1, 1)[:3]
        pointers = (ctypes.c_void_p * max(len(args), 1))(*map(ctypes.addressof, args))
        driver = _driver()
        self.module.device.activate()
        _check(driver.cuLaunchKernel(self.handle, *grid3, *block3, int(shared_bytes),
                                     driver.CUstream(stream), ctypes.addressof(pointers), 0),
               f"cuLaunchKernel({self.name})")

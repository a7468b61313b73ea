"""Kernel arguments that live on a GPU, seen without a GPU library: CUDA torch tensors, objects with
``__cuda_array_interface__`` (CuPy, Numba, tilevm's ``DeviceArray``) or DLPack
(``__dlpack__``/``__dlpack_device__``: JAX, CuPy, torch), and ``tv.packed`` byte tensors of a
sub-byte type. Each becomes a :class:`DeviceTensor`: address, dtype, shape and element strides,
what a launch passes. Nothing here calls the driver; where an interface does not say which GPU holds
a pointer (``__cuda_array_interface__``), :data:`pointer_device` asks the runtime.

:func:`argument_device` tells where any argument lives, so that a call runs where its data are
(DESIGN §5).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tilevm.ir.dtypes import DType, dtype, from_numpy_dtype
from tilevm.ir.host_tensor import contiguous_strides

__all__ = ["DeviceTensor", "PackedTensor", "argument_device", "argument_dtype", "device_tensor",
           "packed",
           "pointer_device", "set_pointer_device"]


@dataclass(frozen=True)
class DeviceTensor:
    """A tensor in GPU memory: element ``(i, j, …)`` lies at bit
    ``8·data_ptr + (offset + Σ index·stride)·nbits``. Strides and offset are in elements.
    ``owner`` keeps the memory (or a DLPack capsule) alive while the tensor is in use."""

    data_ptr: int
    dtype: DType
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    device: int
    offset: int = 0
    owner: Any = None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1


@dataclass(frozen=True)
class PackedTensor:
    """``tv.packed``: a byte tensor of any device holding packed elements of ``dtype``."""

    data: Any
    dtype: DType
    shape: tuple[int, ...]
    strides: tuple[int, ...] | None
    offset: int


def packed(data: Any, dtype_: DType | str, shape: Sequence[int],
           strides: Sequence[int] | None = None, offset: int = 0) -> Any:
    """Wrap a 1-D ``uint8`` tensor ``data`` (numpy, torch on any device, or anything with
    ``__cuda_array_interface__``/DLPack) as a tensor of ``dtype`` (usually a sub-byte type) with
    ``shape``, element ``strides`` (C order by default) and element ``offset``; bits are packed
    LSB first. Host data give a :class:`~tilevm.HostTensor` sharing the bytes; device data a
    tensor a kernel call on that device accepts. Raises ``TypeError``/``ValueError`` for data
    that are not contiguous bytes or too small for the shape."""
    dt = dtype(dtype_)
    shape_t = tuple(int(s) for s in shape)
    strides_t = None if strides is None else tuple(int(s) for s in strides)
    if argument_device(data) == "host":
        from tilevm.ir.host_tensor import HostTensor

        return HostTensor(_host_bytes(data), dt, shape_t, strides_t, int(offset))
    result = PackedTensor(data, dt, shape_t, strides_t, int(offset))
    device_tensor("data", result)  # checks the bytes and the extent now, not at the call
    return result


def _host_bytes(data: Any) -> np.ndarray:
    if type(data).__module__.startswith("torch"):
        data = data.detach().numpy()
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 1:
        raise TypeError("tv.packed: data must be a 1-D uint8 tensor")
    if not data.flags.c_contiguous:
        raise TypeError("tv.packed: data must be contiguous bytes")
    return data


def _default_pointer_device(address: int) -> int:
    raise RuntimeError("no CUDA device: cannot tell which GPU holds this pointer")


# Which GPU holds a device address: the runtime installs the driver's answer
# (tilevm/runtime/cuda_driver.py); tests install a fake.
pointer_device: Callable[[int], int] = _default_pointer_device


def set_pointer_device(fn: Callable[[int], int]) -> None:
    """Install the function that maps a device address to its GPU's ordinal."""
    global pointer_device
    pointer_device = fn


_DLPACK_CPU, _DLPACK_CUDA, _DLPACK_CUDA_HOST, _DLPACK_CUDA_MANAGED = 1, 2, 3, 13


def argument_device(arg: Any) -> str | None:
    """Where ``arg`` lives: ``"host"``, ``"cuda:N"``, or ``None`` for a non-tensor (a Python
    scalar). Never raises, never calls the driver."""
    if isinstance(arg, PackedTensor):
        return argument_device(arg.data)
    if isinstance(arg, DeviceTensor):
        return f"cuda:{arg.device}"
    if hasattr(type(arg), "as_device_tensor"):  # tilevm's DeviceArray
        return f"cuda:{arg.device_index}"
    if isinstance(arg, np.ndarray) or type(arg).__name__ == "HostTensor":
        return "host"
    if type(arg).__module__.startswith("torch") and hasattr(arg, "device"):
        device = arg.device
        return f"cuda:{device.index or 0}" if device.type == "cuda" else "host"
    if hasattr(arg, "__cuda_array_interface__"):
        return f"cuda:{_cai_device(arg)}"
    if hasattr(arg, "__dlpack_device__"):
        try:
            kind, index = arg.__dlpack_device__()
        except Exception:  # an object that cannot say is not a device tensor
            return None
        if int(kind) in (_DLPACK_CUDA, _DLPACK_CUDA_MANAGED):
            return f"cuda:{int(index)}"
        return "host" if int(kind) in (_DLPACK_CPU, _DLPACK_CUDA_HOST) else None
    return None


def _cai_device(arg: Any) -> int:
    address = int(arg.__cuda_array_interface__["data"][0])
    try:
        return pointer_device(address) if address else 0
    except Exception:  # no driver: reported when the call binds the argument
        return 0


def argument_dtype(arg: Any) -> DType | None:
    """The tilevm dtype of a tensor argument of any kind, read without the driver; ``None`` for
    a Python number or an object whose dtype has no tilevm counterpart."""
    if isinstance(arg, (DeviceTensor, PackedTensor)) or type(arg).__name__ in (
            "HostTensor", "DeviceArray"):
        return arg.dtype
    try:
        if isinstance(arg, np.ndarray):
            return from_numpy_dtype(arg.dtype)
        if type(arg).__module__.startswith("torch") and hasattr(arg, "dtype"):
            from tilevm.ir.host_tensor import _dtype_of_torch

            return _dtype_of_torch(arg.dtype)
        if hasattr(arg, "__cuda_array_interface__"):
            return from_numpy_dtype(np.dtype(arg.__cuda_array_interface__["typestr"]))
    except (TypeError, KeyError):
        return None
    return None


def device_tensor(name: str, arg: Any) -> DeviceTensor:
    """``arg`` (a GPU tensor of a kind this module lists) as a :class:`DeviceTensor`; errors
    name the argument."""
    if isinstance(arg, DeviceTensor):
        return arg
    if hasattr(type(arg), "as_device_tensor"):
        return arg.as_device_tensor()
    if isinstance(arg, PackedTensor):
        return _packed(name, arg)
    if type(arg).__module__.startswith("torch") and hasattr(arg, "data_ptr"):
        return _torch(name, arg)
    if hasattr(arg, "__cuda_array_interface__"):
        return _cai(name, arg)
    if hasattr(arg, "__dlpack__"):
        return _dlpack(name, arg)
    raise TypeError(f"argument '{name}': expected a GPU tensor (a CUDA torch tensor, an object "
                    f"with __cuda_array_interface__ or DLPack, or tv.packed), got "
                    f"{type(arg).__name__}")


def _torch(name: str, t: Any) -> DeviceTensor:
    from tilevm.ir.host_tensor import _dtype_of_torch

    if t.device.type != "cuda":
        raise TypeError(f"argument '{name}': a {t.device.type} tensor where a CUDA one is needed")
    try:
        dt = _dtype_of_torch(t.dtype)
    except TypeError as e:
        raise TypeError(f"argument '{name}': {e}") from None
    return DeviceTensor(int(t.data_ptr()), dt, tuple(t.shape), tuple(t.stride()),
                        t.device.index or 0, 0, t)


def _cai(name: str, arg: Any) -> DeviceTensor:
    cai = arg.__cuda_array_interface__
    try:
        np_dtype = np.dtype(cai["typestr"])
        dt = from_numpy_dtype(np_dtype)
    except (TypeError, KeyError) as e:
        raise TypeError(f"argument '{name}': __cuda_array_interface__ type "
                        f"{cai.get('typestr')!r} has no tilevm counterpart ({e})") from None
    shape = tuple(int(s) for s in cai["shape"])
    item = np_dtype.itemsize
    if cai.get("strides") is None:
        strides = contiguous_strides(shape)
    else:
        byte_strides = tuple(int(s) for s in cai["strides"])
        if any(s % item for s in byte_strides):
            raise ValueError(f"argument '{name}': byte strides {byte_strides} are not multiples "
                             f"of the element size {item}")
        strides = tuple(s // item for s in byte_strides)
    if cai.get("mask") is not None:
        raise TypeError(f"argument '{name}': masked __cuda_array_interface__ arrays are not "
                        "supported")
    address = int(cai["data"][0])
    device = pointer_device(address) if address else 0  # without a driver: NoCudaDevice
    return DeviceTensor(address, dt, shape, strides, device, 0, arg)


# DLPack's type codes (dlpack.h): int, uint, float, bfloat, bool
_DLPACK_TYPES = {(0, 8): "i8", (0, 16): "i16", (0, 32): "i32", (0, 64): "i64",
                 (1, 8): "u8", (1, 16): "u16", (1, 32): "u32", (1, 64): "u64",
                 (2, 16): "f16", (2, 32): "f32", (2, 64): "f64", (4, 16): "bf16", (6, 8): "u8"}


class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _DLDevice), ("ndim", ctypes.c_int32),
                ("dtype", _DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


def _dlpack(name: str, arg: Any) -> DeviceTensor:
    """Read a DLPack capsule's ``DLTensor`` (the first member of ``DLManagedTensor``). The
    capsule is not consumed: it stays named ``dltensor``, so its destructor releases the tensor
    when the :class:`DeviceTensor` (its owner) is dropped, as the DLPack protocol asks."""
    try:
        capsule = arg.__dlpack__(stream=None)
    except TypeError:
        capsule = arg.__dlpack__()
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    try:
        address = get(capsule, b"dltensor")
    except ValueError:
        raise TypeError(f"argument '{name}': its __dlpack__ gave no DLPack tensor") from None
    t = _DLTensor.from_address(address)
    if t.device.device_type not in (_DLPACK_CUDA, _DLPACK_CUDA_MANAGED):
        raise TypeError(f"argument '{name}': a DLPack tensor on device type "
                        f"{t.device.device_type}, not CUDA")
    key = (t.dtype.code, t.dtype.bits)
    if t.dtype.lanes != 1 or key not in _DLPACK_TYPES:
        raise TypeError(f"argument '{name}': DLPack type code {t.dtype.code}, {t.dtype.bits} "
                        f"bits, {t.dtype.lanes} lanes has no tilevm counterpart")
    dt = dtype(_DLPACK_TYPES[key])
    shape = tuple(int(t.shape[i]) for i in range(t.ndim))
    strides = (contiguous_strides(shape) if not t.strides
               else tuple(int(t.strides[i]) for i in range(t.ndim)))
    data = int(t.data or 0) + int(t.byte_offset)
    return DeviceTensor(data, dt, shape, strides, int(t.device.device_id), 0, (arg, capsule))


def _packed(name: str, p: PackedTensor) -> DeviceTensor:
    base = device_tensor(name, p.data)
    if base.dtype.name not in ("u8", "i8") or len(base.shape) != 1 or base.strides[0] != 1:
        raise TypeError(f"argument '{name}': tv.packed needs 1-D contiguous uint8 bytes, got "
                        f"{base.dtype.name} of shape {base.shape}")
    strides = contiguous_strides(p.shape) if p.strides is None else p.strides
    if len(strides) != len(p.shape):
        raise ValueError(f"argument '{name}': {len(strides)} strides for shape {p.shape}")
    if all(n > 0 for n in p.shape):
        lo = p.offset + sum(s * (n - 1) for s, n in zip(strides, p.shape) if s < 0)
        hi = p.offset + sum(s * (n - 1) for s, n in zip(strides, p.shape) if s > 0)
        if lo < 0 or (hi + 1) * p.dtype.nbits > base.shape[0] * 8:
            raise ValueError(f"argument '{name}': shape {p.shape}, strides {tuple(strides)} and "
                             f"offset {p.offset} reach outside {base.shape[0]} bytes")
    return DeviceTensor(base.data_ptr, p.dtype, p.shape, tuple(strides), base.device, p.offset,
                        base.owner)

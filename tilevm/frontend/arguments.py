"""Bind a kernel call's arguments: tensors to packed tensors, named dimensions to sizes.

On the host (``device="cpu"``/``"interp"``): numpy arrays (ml_dtypes dtypes included), CPU torch
tensors and :class:`tilevm.HostTensor`. On a GPU (``"cuda"``): CUDA torch tensors, objects with
``__cuda_array_interface__`` or DLPack, and ``tv.packed`` bytes (``device_tensors.py``), all on one
GPU, each aligned to its element size. Either way the dtype must be the parameter's and the rank
its number of dimension names; a dimension name used twice must get the same size. Errors name
the argument. :func:`call_device` picks the device from where the arguments live.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tilevm.frontend.device_tensors import DeviceTensor, argument_device, device_tensor
from tilevm.ir.dtypes import from_numpy_dtype
from tilevm.ir.host_tensor import HostTensor
from tilevm.ir.tile.program import Kernel
from tilevm.ir.tile.types import ScalarType, TensorType

__all__ = ["BoundArguments", "bind_arguments", "call_device"]


@dataclass
class BoundArguments:
    """What a backend needs: packed tensors (:class:`HostTensor` sharing the callers' memory where
    possible, or :class:`DeviceTensor`), scalar values, dimension sizes, and write-backs to run
    after the kernel (for copied host arguments)."""

    tensors: dict[str, Any]
    scalars: dict[str, int | float]
    dims: dict[str, int]
    write_back: list[Callable[[], None]] = field(default_factory=list)

    def finish(self) -> None:
        """Copy results back into arguments that had to be copied (non-contiguous arrays)."""
        for fn in self.write_back:
            fn()


def call_device(kernel: Kernel, args: tuple[Any, ...], default: str) -> str:
    """The device a call runs on when it names none: ``"cuda"`` when its tensors are on a GPU,
    ``default`` when they are on the host (or there are none). Tensors on two devices (the host
    and a GPU, or two GPUs) are a ``TypeError`` naming both arguments."""
    first: tuple[str, str] | None = None
    for param, arg in zip(kernel.params, args):
        where = argument_device(arg)
        if where is None or isinstance(param.type, ScalarType):
            continue
        if first is None:
            first = (param.name, where)
        elif where != first[1]:
            raise TypeError(f"argument '{param.name}' is on {where} but argument '{first[0]}' is "
                            f"on {first[1]}: the tensors of one call must be on one device")
    return "cuda" if first is not None and first[1].startswith("cuda") else default


def bind_arguments(kernel: Kernel, args: tuple[Any, ...], device: str = "host"
                   ) -> BoundArguments:
    """Check and convert ``args`` (one per parameter, in order) for ``kernel``: host tensors,
    or with ``device="cuda"`` GPU tensors (:class:`DeviceTensor`)."""
    if len(args) != len(kernel.params):
        names = ", ".join(p.name for p in kernel.params)
        raise TypeError(f"kernel {kernel.name} takes {len(kernel.params)} arguments ({names}), "
                        f"got {len(args)}")
    out = BoundArguments({}, {}, {})
    first_seen: dict[str, str] = {}
    written = _written_params(kernel)
    for param, arg in zip(kernel.params, args):
        ty = param.type
        if isinstance(ty, ScalarType):
            out.scalars[param.name] = _scalar(param.name, ty, arg)
            continue
        assert isinstance(ty, TensorType)
        tensor = (_device_tensor(param.name, ty, arg, out) if device == "cuda"
                  else _tensor(param.name, ty, arg, out))
        if param.name in written and not _writeable(arg, tensor):
            raise ValueError(f"argument '{param.name}': the kernel writes it, but the array is "
                             "read-only (pass a writeable copy, e.g. np.array(a))")
        if len(tensor.shape) != len(ty.shape):
            raise ValueError(f"argument '{param.name}': expected {len(ty.shape)} dimensions "
                             f"({', '.join(map(str, ty.shape))}), got shape {tensor.shape}")
        for name, size in zip(ty.shape, tensor.shape):
            if isinstance(name, int):
                if size != name:
                    raise ValueError(f"argument '{param.name}': shape {tensor.shape} does not "
                                     f"match [{', '.join(map(str, ty.shape))}] (a dimension "
                                     f"fixed to {name} is {size})")
                continue
            if name in out.dims and out.dims[name] != size:
                raise ValueError(f"argument '{param.name}': dimension '{name}' is {size} here but "
                                 f"{out.dims[name]} from argument '{first_seen[name]}'")
            if size >= 2**31:
                raise ValueError(f"argument '{param.name}': dimension '{name}' = {size} does not "
                                 "fit in i32")
            out.dims[name] = size
            first_seen.setdefault(name, param.name)
        out.tensors[param.name] = tensor
    return out


def _written_params(kernel: Kernel) -> set[str]:
    """The global tensor parameters the kernel stores to or updates atomically."""
    from tilevm.ir.tile.program import Instr, Var, walk

    body = getattr(kernel, "body", ())
    return {s.args[0].name for s in walk(body) if isinstance(s, Instr)
            and s.op in ("store", "atomic") and s.args and isinstance(s.args[0], Var)}


def _writeable(arg: Any, tensor: Any) -> bool:
    """Whether the caller's memory behind ``arg`` may be written (GPU memory always is)."""
    if isinstance(arg, np.ndarray):  # the caller's array, not a contiguous copy of it
        return bool(arg.flags.writeable)
    data = getattr(tensor, "data", None)  # a HostTensor's bytes
    return not isinstance(data, np.ndarray) or bool(data.flags.writeable)


def _scalar(name: str, ty: ScalarType, arg: Any) -> int | float:
    if hasattr(arg, "item") and getattr(arg, "ndim", 0) == 0:
        arg = arg.item()
    dt = ty.dtype
    if dt.is_float:
        if isinstance(arg, bool) or not isinstance(arg, (int, float)):
            raise TypeError(f"argument '{name}': expected a {dt.name} number, got "
                            f"{type(arg).__name__}")
        return float(arg)
    if isinstance(arg, bool) or not isinstance(arg, int):
        raise TypeError(f"argument '{name}': expected an integer for {dt.name}, got "
                        f"{type(arg).__name__}")
    if not dt.min <= arg <= dt.max:
        raise ValueError(f"argument '{name}': {arg} does not fit in {dt.name}")
    return arg


def _device_tensor(name: str, ty: TensorType, arg: Any, out: BoundArguments) -> DeviceTensor:
    where = argument_device(arg)
    if where is not None and not where.startswith("cuda"):
        raise TypeError(f"argument '{name}': a {where} tensor, but the call runs on a GPU "
                        "(device='cuda'); copy it to the GPU first")
    tensor = device_tensor(name, arg)
    if tensor.dtype != ty.dtype:
        hint = " (pass sub-byte data as tv.packed(bytes, dtype, shape))" if ty.dtype.nbits < 8 \
            else ""
        raise TypeError(f"argument '{name}': expected {ty.dtype.name} data, got "
                        f"{tensor.dtype.name}{hint}")
    unit = ty.dtype.nbits // 8
    if unit > 1 and tensor.data_ptr % unit:
        raise ValueError(f"argument '{name}': address {tensor.data_ptr:#x} is not aligned to "
                         f"its {unit}-byte elements")
    others = {t.device for t in out.tensors.values()}
    if others and tensor.device not in others:
        raise TypeError(f"argument '{name}' is on cuda:{tensor.device}, the other tensors on "
                        f"cuda:{others.pop()}: the tensors of one call must be on one GPU")
    return tensor


def _tensor(name: str, ty: TensorType, arg: Any, out: BoundArguments) -> HostTensor:
    if isinstance(arg, HostTensor):
        if arg.dtype != ty.dtype:
            raise TypeError(f"argument '{name}': expected {ty.dtype.name} data, got a "
                            f"HostTensor of {arg.dtype.name}")
        return arg
    where = argument_device(arg)
    if where is not None and where.startswith("cuda"):
        raise TypeError(f"argument '{name}': a {where} tensor; device='interp' and "
                        "device='cpu' run on host memory (a call with GPU tensors and no "
                        "device runs on the GPU)")
    if type(arg).__module__.startswith("torch"):
        arg = _torch_to_numpy(name, arg)
    if not isinstance(arg, np.ndarray):
        raise TypeError(f"argument '{name}': expected a numpy array, torch tensor or "
                        f"tilevm.HostTensor of {ty.dtype.name}, got {type(arg).__name__}")
    try:
        got = from_numpy_dtype(arg.dtype)
    except TypeError:
        got = None
    if got != ty.dtype:
        hint = (" (sub-byte data is passed as a tilevm.HostTensor)" if ty.dtype.nbits < 8 else "")
        raise TypeError(f"argument '{name}': expected {ty.dtype.name} data, got numpy dtype "
                        f"{arg.dtype}{hint}")
    if ty.dtype.nbits < 8:
        raise TypeError(f"argument '{name}': {ty.dtype.name} data must be a tilevm.HostTensor "
                        "(numpy holds one element per byte)")
    storage = ty.dtype.storage_dtype
    if arg.flags.c_contiguous:
        buf = arg.reshape(-1).view(storage).view(np.uint8)
        return HostTensor(buf, ty.dtype, arg.shape)
    copy = np.ascontiguousarray(arg)
    tensor = HostTensor(copy.reshape(-1).view(storage).view(np.uint8), ty.dtype, arg.shape)

    def write_back() -> None:
        arg[...] = copy

    out.write_back.append(write_back)
    return tensor


def _torch_to_numpy(name: str, t: Any) -> np.ndarray:
    if t.device.type != "cpu":
        raise TypeError(f"argument '{name}': a {t.device.type} tensor; device='interp' and "
                        "device='cpu' run on host memory")
    import torch

    from tilevm.ir.host_tensor import _dtype_of_torch

    dt = _dtype_of_torch(t.dtype)
    if dt.ml_dtype is None or dt.nbits < 8:
        raise TypeError(f"argument '{name}': torch dtype {t.dtype} is passed as a HostTensor")
    ints = {8: torch.uint8, 16: torch.int16, 32: torch.int32, 64: torch.int64}[dt.nbits]
    return t.detach().view(ints).numpy().view(dt.ml_dtype)

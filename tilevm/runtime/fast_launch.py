"""The fast path of a repeated GPU call (issue 13, item 4): after a call has run through the full
path (binding, checks, specialization, cache, launch), a later call with arguments of the same
kinds is a few guards, a dictionary lookup and the launch.

A :class:`Launcher` belongs to one kernel (Tile IR) and remembers, from calls that ran, the exact
type and dtype of each tensor argument (CUDA torch tensors or ``__cuda_array_interface__``
objects) and, per GPU and per specialization facts, the loaded function and how to pack its
parameters. A call is launched here only when every check of the full path is known to pass:
each tensor of the remembered type and dtype, on one GPU, of the parameter's rank, aligned to its
element size, its dimensions agreeing with the other tensors' and fitting in i32; each scalar a
Python number in range. The facts of the call (16-byte alignment, stride facts, element offsets
within i32, sizes that are multiples of 16, as
:meth:`~tilevm.backend.lower.Specialization.of_arguments` computes them) are computed per call,
since they are facts of this call's data, and select the binary (what a shape and strides
tell, once per argument position, shape and strides; the address's alignment, per call).
Anything else (another argument kind, a new specialization, a DLPack or packed argument)
returns False and the call takes the full path, which reports errors. A kernel's workspaces
are placed (and, those it does not restore, cleared) as the full path does
(:mod:`tilevm.runtime.gpu_workspaces`).
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

from tilevm.backend.lower.specialization import (
    Specialization,
    TensorFacts,
    offsets_fit_i32,
    stride_fact,
)
from tilevm.frontend import device_tensors
from tilevm.ir.host_tensor import contiguous_strides
from tilevm.ir.tile.types import ScalarType, TensorType

__all__ = ["Launcher", "make_launcher"]

_I32_LIMIT = 2**31
# Entries each memo of the fast path keeps (sizes and shapes seen by one kernel): past it, a
# new one is computed per call.
_REMEMBERED = 4096
_CTYPE = {("int", 32): ctypes.c_int32, ("int", 64): ctypes.c_int64,
          ("uint", 32): ctypes.c_uint32, ("uint", 64): ctypes.c_uint64}


def _torch_view(arg: Any, torch_dtype: Any) -> tuple | None:
    if arg.dtype is not torch_dtype:
        return None
    device = arg.device
    if device.type != "cuda":
        return None
    return arg.data_ptr(), arg.shape, arg.stride(), device.index or 0


def _cai_view(arg: Any, typestr: str) -> tuple | None:
    cai = arg.__cuda_array_interface__
    if cai.get("typestr") != typestr or cai.get("mask") is not None:
        return None
    shape = tuple(cai["shape"])  # hashed as a key below; a producer may give a list
    byte_strides = cai.get("strides")
    itemsize = int(typestr[2:])
    if byte_strides is None:
        strides = contiguous_strides(shape)
    else:
        if any(s % itemsize for s in byte_strides):
            return None
        strides = tuple(s // itemsize for s in byte_strides)
    address = cai["data"][0]
    device = device_tensors.pointer_device(address) if address else 0
    return address, shape, strides, device


def _describe(shape: tuple, strides: tuple, names: tuple, nbits: int) -> tuple | bool:
    """What a tensor's shape and strides tell the fast path, computed once per shape and
    strides: ``(named sizes, facts)`` — its ``(dimension name, size)`` pairs and its stride and
    32-bit-offset facts — or False when the full path must see the call (another rank, a fixed
    dimension of another size, a size outside i32)."""
    if len(shape) != len(names):
        return False
    named = []
    for name, size in zip(names, shape):
        if type(name) is int:
            if size != name:
                return False
        elif size >= _I32_LIMIT:
            return False
        else:
            named.append((name, size))
    facts = (*(stride_fact(s, nbits) for s in strides), offsets_fit_i32(0, shape, strides))
    return tuple(named), facts


class _Plan:
    """One binary on one GPU: the loaded function and what a launch passes."""

    def __init__(self, artifact: Any, device: Any, function: Any,
                 arguments: list[tuple]) -> None:
        self.artifact = artifact
        self.device = device
        self.function = function
        self.arguments = arguments  # (kind, index, dim, ctype) per ABI parameter
        self.block = (artifact.description["block_threads"],)
        self.shared = artifact.description["shared_bytes"]
        self.grids: dict[tuple, tuple[int, ...]] = {}  # sizes -> grid, for grids of sizes alone
        self.workspaces = artifact.description["workspaces"]
        self.layouts: dict[tuple, Any] = {}  # sizes -> WorkspaceLayout

    def workspace_addresses(self, dims: dict[str, int], torch_device: Any,
                            stream: int) -> dict[str, int]:
        """This launch's workspaces, placed (and cleared) as the full path places them."""
        from tilevm.runtime.gpu_workspaces import place_workspaces, workspace_layout

        shape = tuple(dims.values())
        layout = self.layouts.get(shape)
        if layout is None:
            layout = workspace_layout(self.workspaces, dims)
            if len(self.layouts) < _REMEMBERED:
                self.layouts[shape] = layout
        return place_workspaces(layout, self.device, self.artifact.name, torch_device, stream)


class Launcher:
    """The fast path of one kernel's GPU calls (see the module docstring)."""

    def __init__(self, kernel: Any, args: tuple, bound: Any) -> None:
        self.kernel = kernel
        self.nargs = len(kernel.params)
        self.tensors: list[tuple] = []  # (position, type, view, key, unit, nbits, names)
        self.scalars: list[tuple] = []  # (position, name, dtype)
        self.torch = False
        for position, (param, arg) in enumerate(zip(kernel.params, args)):
            if isinstance(param.type, TensorType):
                dt = param.type.dtype
                if type(arg).__module__.startswith("torch"):
                    view, key = _torch_view, arg.dtype
                    self.torch = True
                elif hasattr(arg, "__cuda_array_interface__") and not hasattr(
                        type(arg), "as_device_tensor"):
                    view, key = _cai_view, arg.__cuda_array_interface__["typestr"]
                else:
                    raise _NotFast
                self.tensors.append((position, type(arg), view, key, max(dt.nbits // 8, 1),
                                     dt.nbits, param.type.shape))
            else:
                assert isinstance(param.type, ScalarType)
                self.scalars.append((position, param.name, param.type.dtype))
        if self.torch and len({t[1] for t in self.tensors}) != 1:
            raise _NotFast
        self.names = [p.name for p in kernel.params if isinstance(p.type, TensorType)]
        self.plans: dict[tuple, _Plan] = {}
        # (position, shape, strides) -> what _describe says of them
        self._described: dict[tuple, tuple | bool] = {}
        self._lock = threading.Lock()

    def _views(self, args: tuple) -> tuple | None:
        """``(device, dims, views, facts)`` of ``args`` when every full-path check passes."""
        dims: dict[str, int] = {}
        views = []
        facts: list[Any] = []
        device = -1
        for position, cls, view, key, unit, nbits, names in self.tensors:
            arg = args[position]
            if type(arg) is not cls:
                return None
            seen = view(arg, key)
            if seen is None:
                return None
            address, shape, strides, index = seen
            if address % unit:
                return None
            if device != index:
                if device >= 0:
                    return None
                device = index
            described = self._described.get((position, shape, strides))
            if described is None:
                described = _describe(shape, strides, names, nbits)
                if len(self._described) < _REMEMBERED:
                    self._described[(position, shape, strides)] = described
            if described is False:
                return None
            named, tensor_facts = described
            for name, size in named:
                known = dims.get(name)
                if known is None:
                    dims[name] = size
                elif known != size:
                    return None
            views.append((address, strides))
            facts.append(address % 16 == 0)
            facts.extend(tensor_facts)
        for n in dims.values():
            facts.append(n % 16 == 0)
        return device, dims, views, tuple(facts)

    def _scalar_values(self, args: tuple) -> dict[str, Any] | None:
        values = {}
        for position, name, dt in self.scalars:
            value = args[position]
            kind = type(value)
            if dt.is_float:
                if kind is not float and kind is not int:
                    return None
                value = float(value)
            elif kind is not int or not dt.min <= value <= dt.max:
                return None
            values[name] = value
        return values

    def __call__(self, args: tuple) -> bool:
        """Launch ``args`` and return True, or return False having done nothing."""
        if len(args) != self.nargs:
            return False
        seen = self._views(args)
        if seen is None:
            return False
        device, dims, views, facts = seen
        plan = self.plans.get((device, facts))
        if plan is None:
            return False
        scalars = self._scalar_values(args) if self.scalars else {}
        if scalars is None:
            return False
        if self.scalars:
            grid = plan.artifact.grid(dims, scalars)
        else:  # a grid of the sizes alone: computed once per shape
            shape = tuple(dims.values())
            grid = plan.grids.get(shape)
            if grid is None:
                grid = plan.artifact.grid(dims, scalars)
                if len(plan.grids) < _REMEMBERED:
                    plan.grids[shape] = grid
        if 0 in grid:
            return True
        stream = 0
        if self.torch:
            import torch

            stream = torch.cuda.current_stream(device).cuda_stream
        workspaces = None
        if plan.workspaces:
            workspaces = plan.workspace_addresses(dims, f"cuda:{device}" if self.torch else None,
                                                  stream)
        values = []
        for kind, source, dim, ctype, convert in plan.arguments:
            if kind == 0:
                values.append(ctype(views[source][0]))
            elif kind == 1:
                values.append(ctype(views[source][1][dim]))
            elif kind == 2:
                values.append(ctype(dims[source]))
            elif kind == 3:
                values.append(convert(scalars[source]))
            elif kind == 5:
                values.append(ctype(workspaces[source]))
            else:
                values.append(ctype(0))  # element offset: 0 for torch and CAI tensors
        plan.function.launch(grid, plan.block, values, plan.shared, stream)
        return True

    def add_plan(self, args: tuple, bound: Any, artifact: Any, spec: Any) -> None:
        """Remember the binary ``artifact`` (compiled for ``spec``, the facts of ``args``) for
        later calls with the same facts on the same GPU."""
        from tilevm.runtime import cuda_driver

        seen = self._views(args)
        if seen is None:
            return
        index, dims, _, facts = seen
        if _spec_of(self, facts, dims) != spec:
            return  # the facts here and the specialization disagree: never guess
        device = cuda_driver.cuda_device(index)
        function = artifact._function(device)
        names = {name: k for k, name in enumerate(self.names)}
        arguments: list[tuple] = []
        for a, t in zip(artifact.description["abi"], artifact._abi_types, strict=True):
            kind, source = a["kind"], a["source"]
            ctype = _CTYPE.get((t.kind, t.bits))
            if kind == "scalar":
                arguments.append((3, source, None, None, _scalar_packer(artifact, source, t)))
                continue
            if ctype is None:
                return
            if kind == "pointer":
                arguments.append((0, names[source], None, ctype, None))
            elif kind == "stride":
                arguments.append((1, names[source], a["dim"], ctype, None))
            elif kind == "size":
                arguments.append((2, source, None, ctype, None))
            elif kind == "offset":
                arguments.append((4, source, None, ctype, None))
            elif kind == "workspace":
                arguments.append((5, source, None, ctype, None))
            else:
                return
        with self._lock:
            self.plans[(index, facts)] = _Plan(artifact, device, function, arguments)


def _spec_of(launcher: Launcher, facts: tuple, dims: dict[str, int]) -> Specialization:
    """The :class:`Specialization` that the facts tuple of :meth:`Launcher._views` stands for."""
    tensors = []
    k = 0
    for name, (_, _, _, _, _, _, names) in zip(launcher.names, launcher.tensors):
        aligned = facts[k]
        strides = tuple(facts[k + 1:k + 1 + len(names)])
        k += 1 + len(names)
        tensors.append((name, TensorFacts(aligned, strides, facts[k])))
        k += 1
    dims16 = frozenset(d for d, f in zip(dims, facts[k:]) if f)
    return Specialization(tuple(tensors), dims16)


def _scalar_packer(artifact: Any, name: str, t: Any) -> Any:
    """A scalar parameter as the full path packs it (:meth:`KernelArtifact.pack`)."""
    from tilevm.ir.dtypes import dtype
    from tilevm.ir.thread.values import Const
    from tilevm.runtime.artifact import _CTYPES
    from tilevm.runtime.cpu_device import scalar_argument

    dt = dtype(next(p["dtype"] for p in artifact.description["params"] if p["name"] == name))
    ctype = _CTYPES[32 if t.kind == "pred" else t.bits]
    return lambda value: ctype(Const.of(scalar_argument(dt, value), t).bits)


class _NotFast(Exception):
    """Arguments of a kind the fast path does not take."""


def make_launcher(kernel: Any, args: tuple, bound: Any, existing: Launcher | None) -> Any:
    """The fast-path factory of the ``"cuda"`` device
    (:func:`tilevm.frontend.devices.register_fast_path`): ``existing`` (or a new launcher for
    ``kernel``) with the binary of this call, which has just run, added; None when the call's
    arguments are of a kind the fast path does not take."""
    from tilevm.runtime import cuda_driver
    from tilevm.runtime.cuda_device import compiled_for_cuda

    launcher = existing
    if launcher is None or launcher.kernel is not kernel:
        try:
            launcher = Launcher(kernel, args, bound)
        except _NotFast:
            return existing
    index = next((t.device for t in bound.tensors.values()), 0)
    spec = Specialization.of_arguments(kernel, bound.tensors, bound.dims)
    artifact = compiled_for_cuda(kernel, spec, cuda_driver.cuda_device(index).arch)
    launcher.add_plan(args, bound, artifact, spec)
    return launcher

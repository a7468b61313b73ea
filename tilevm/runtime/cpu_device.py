"""The CPU backend as a device: ``kernel(..., device="cpu")``.

A call computes the specialization of its arguments (DESIGN §7), lowers the kernel for it (once
per kernel, constants and specialization in this process; the JIT keeps its objects on disk),
evaluates the grid, allocates the workspaces, and runs the lowered Thread IR on the CPU backend
with the arguments packed as the kernel's ABI lists them.
"""

from __future__ import annotations

import threading
from typing import Any

from tilevm.frontend.devices import register_device
from tilevm.ir.dtypes import DType
from tilevm.ir.host_tensor import HostTensor
from tilevm.ir.tile.ops import dot_rule_of
from tilevm.ir.tile.program import Instr, walk

__all__ = ["compiled_for_cpu", "run_on_cpu", "scalar_argument"]

_memo: dict[tuple[int, Any], tuple[Any, Any, Any]] = {}
_lock = threading.Lock()
# The lowering targets the most conservative GPU that has every instruction the kernel uses: the
# CPU runs the same Thread IR that GPU runs (sm_89 for the fp8 tensor-core dot).
CPU_TARGET = 80


def cpu_target(kernel: Any) -> int:
    """The SM version the CPU backend lowers ``kernel`` (Tile IR) for: :data:`CPU_TARGET`, or the
    lowest one that has each of its ``dot`` instructions."""
    target = CPU_TARGET
    for s in walk(kernel.body):
        if isinstance(s, Instr) and s.op == "dot":
            target = max(target, dot_rule_of(s).min_sm)
    return target


def compiled_for_cpu(kernel: Any, spec: Any, target: int | None = None) -> tuple[Any, Any]:
    """The lowered kernel and its CPU executable for ``kernel`` (Tile IR) under ``spec``, lowered
    for ``target`` (default :func:`cpu_target`), memoized for the life of the process (a call that
    hits the memo does not look at the kernel again)."""
    key = (id(kernel), spec, target)
    with _lock:
        hit = _memo.get(key)
    if hit is not None and hit[0] is kernel:
        return hit[1], hit[2]
    from tilevm.backend.cpu import compile_kernel
    from tilevm.backend.lower import lower

    lowered = lower(kernel, target or cpu_target(kernel), spec)
    executable = compile_kernel(lowered.thread)
    with _lock:
        _memo[key] = (kernel, lowered, executable)  # the kernel is kept: its id stays unique
    return lowered, executable


def scalar_argument(dt: DType, value: int | float) -> int | float:
    """A run-time scalar in the storage form the lowered kernel takes: rounded into ``dt`` as
    the interpreter rounds it (a narrow float as its code, an integer wrapped to its width)."""
    if dt.is_integer:
        return int(dt.decode(dt.encode(value, saturate=False))[()])
    if dt.name in ("f16", "bf16", "f32", "f64"):
        return float(value)
    return int(dt.encode(value))


def _workspace(shape: tuple, dims: dict[str, int], dt: DType, zeroed: bool) -> HostTensor:
    sizes = [dims[n] if isinstance(n, str) else n for n in shape]
    tensor = HostTensor.empty(sizes, dt)
    if not zeroed:
        tensor.data[:] = 0xFF  # unspecified bytes: the same garbage as the interpreter's
    return tensor


def run_on_cpu(kernel: Any, bound: Any, constants: dict[str, Any], target: int | None = None
               ) -> Any:
    """Run a Tile IR kernel on bound host arguments with the CPU backend, lowered for ``target``
    (default :func:`cpu_target`: the GPU the CPU stands in for; another SM version runs that
    GPU's lowering, e.g. sm_90's instruction choices); returns the lowered kernel."""
    from tilevm.backend.interp import launch_grid
    from tilevm.backend.lower.specialization import Specialization

    spec = Specialization.of_arguments(kernel, bound.tensors, bound.dims)
    lowered, executable = compiled_for_cpu(kernel, spec, target)
    grid = launch_grid(kernel, bound.scalars, bound.dims)
    if any(g == 0 for g in grid):
        return lowered
    workspaces = {w.name: _workspace(w.shape, bound.dims, w.dtype, w.zeroed)
                  for w in lowered.workspaces}
    scalars = {p.name: p.type.dtype for p in kernel.params if not hasattr(p.type, "scope")}
    args: list[Any] = []
    for a in lowered.abi:
        if a.kind == "pointer":
            args.append(bound.tensors[a.source].data)
        elif a.kind == "offset":
            args.append(bound.tensors[a.source].offset)
        elif a.kind == "stride":
            args.append(bound.tensors[a.source].strides[a.dim])
        elif a.kind == "scalar":
            args.append(scalar_argument(scalars[a.source], bound.scalars[a.source]))
        elif a.kind == "size":
            args.append(bound.dims[a.source])
        else:
            args.append(workspaces[a.source].data)
    executable(grid if len(grid) > 1 else grid[0], *args)
    return lowered


register_device("cpu", run_on_cpu)

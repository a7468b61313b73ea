"""The CPU backend as a device: ``kernel(..., device="cpu")``.

A call computes the specialization of its arguments (DESIGN §7), lowers the kernel for it (once
per kernel, constants and specialization in this process; the JIT keeps its objects on disk),
evaluates the grid, allocates the workspaces, and runs the lowered Thread IR on the CPU backend
with the arguments packed as the kernel's ABI lists them.

``sanitize=True`` (or ``$TILEVM_SANITIZE=1`` for every CPU call; ``"continue"`` to collect every
report) runs the sanitizer's checked build of the kernel instead
(:mod:`tilevm.backend.cpu.sanitizer` states what it checks and reports).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from tilevm.frontend.devices import register_device
from tilevm.ir.dtypes import DType
from tilevm.ir.errors import check_restored_workspace
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


def compiled_for_cpu(kernel: Any, spec: Any, target: int | None = None, sanitize: bool = False
                     ) -> tuple[Any, Any]:
    """The lowered kernel and its CPU executable for ``kernel`` (Tile IR) under ``spec``, lowered
    for ``target`` (default :func:`cpu_target`), memoized for the life of the process (a call that
    hits the memo does not look at the kernel again); ``sanitize`` gives the sanitizer's checked
    build (compiled only when asked for)."""
    key = (id(kernel), spec, target, sanitize)
    with _lock:
        hit = _memo.get(key)
    if hit is not None and hit[0] is kernel:
        return hit[1], hit[2]
    from tilevm.backend.cpu import compile_kernel
    from tilevm.backend.lower import lower

    lowered = lower(kernel, target or cpu_target(kernel), spec)
    executable = compile_kernel(lowered.thread, sanitize)
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


def run_on_cpu(kernel: Any, bound: Any, constants: dict[str, Any], target: int | None = None,
               sanitize: bool | str | None = None) -> Any:
    """Run a Tile IR kernel on bound host arguments with the CPU backend, lowered for ``target``
    (default :func:`cpu_target`: the GPU the CPU stands in for; another SM version runs that
    GPU's lowering, e.g. sm_90's instruction choices); returns the lowered kernel.

    ``sanitize``: ``True`` or ``"continue"`` runs under the sanitizer (``SanitizerError`` with
    its reports); ``None`` takes ``$TILEVM_SANITIZE``; ``False`` runs normally."""
    from tilevm.backend.cpu.sanitizer import sanitize_mode
    from tilevm.backend.interp import launch_grid
    from tilevm.backend.lower.specialization import Specialization

    try:
        mode = sanitize_mode(os.environ.get("TILEVM_SANITIZE") if sanitize is None else sanitize)
    except ValueError as e:
        where = "$TILEVM_SANITIZE" if sanitize is None else "sanitize="
        raise ValueError(f"{where}: {e}") from None
    spec = Specialization.of_arguments(kernel, bound.tensors, bound.dims)
    lowered, executable = compiled_for_cpu(kernel, spec, target, bool(mode))
    grid = launch_grid(kernel, bound.scalars, bound.dims)
    if any(g == 0 for g in grid):
        return lowered
    workspaces = {w.name: _workspace(w.shape, bound.dims, w.dtype, w.zeroed)
                  for w in lowered.workspaces}
    scalars = {p.name: p.type.dtype for p in kernel.params if not hasattr(p.type, "scope")}
    args: list[Any] = []
    names: list[str] = []
    for a in lowered.abi:
        names.append(a.source if a.kind in ("pointer", "workspace") else f"{a.source} ({a.kind})")
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
    if mode:
        _run_sanitized(kernel, lowered, executable, grid, args, names, bound, mode)
    else:
        executable(grid if len(grid) > 1 else grid[0], *args)
    for w in lowered.workspaces:
        if w.restored:
            check_restored_workspace(kernel.name, w.name, workspaces[w.name])
    return lowered


def _run_sanitized(kernel: Any, lowered: Any, executable: Any, grid: tuple, args: list[Any],
                   names: list[str], bound: Any, mode: bool | str) -> None:
    """The sanitized launch (``sanitizer.run_sanitized``) with reports naming the Tile IR
    instruction each Thread IR statement was lowered from and the user's line."""
    from tilevm.backend.cpu.launch import grid_dims
    from tilevm.backend.cpu.sanitizer import run_sanitized
    from tilevm.ir.tile.printer import print_stmt

    tile_instrs = [s for s in walk(lowered.tile.body) if isinstance(s, Instr)]

    def describe(stmt: Any) -> tuple[str | None, str | None]:
        origin = getattr(stmt, "origin", None)
        tile = tile_instrs[origin] if origin is not None and origin < len(tile_instrs) else None
        text = print_stmt(tile, 0).strip() if tile is not None else None
        loc = getattr(stmt, "loc", None) or (str(tile.loc) if tile is not None and tile.loc
                                             else None)
        return text, loc

    float_atomics = {}
    for s in walk(kernel.body):
        if isinstance(s, Instr) and s.op == "atomic" and s.args:
            t = getattr(s.args[0], "type", None)
            target = getattr(s.args[0], "name", None)
            dt = getattr(t, "dtype", None)
            if target in bound.tensors and dt is not None and dt.is_float:
                float_atomics[target] = float(dt.unit_roundoff)
    run_sanitized(executable, grid_dims(tuple(grid)), args, names=names, mode=mode,
                  tensors=dict(bound.tensors), float_atomics=float_atomics, describe=describe,
                  kernel_name=kernel.name)


register_device("cpu", run_on_cpu)

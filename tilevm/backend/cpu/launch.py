"""Running a Thread IR kernel on the CPU: argument packing, parallel blocks, error reports."""

from __future__ import annotations

import ctypes
import os
import threading
from typing import Any

import numpy as np

from tilevm.backend.cpu import debug_ops
from tilevm.backend.cpu.codegen import ERRORS
from tilevm.backend.cpu.debug_ops import TRAP_ERROR
from tilevm.backend.cpu.jit import JitResult, jit
from tilevm.ir.errors import KernelExecutionError
from tilevm.ir.thread.printer import format_stmt
from tilevm.ir.thread.stmts import For, If, Instr, Kernel, While, walk
from tilevm.ir.thread.types import ScalarType
from tilevm.ir.thread.values import Const

__all__ = ["CpuKernel", "CpuKernelError", "compile_kernel", "grid_dims", "worker_count"]

_ENTRY = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32,
                          ctypes.c_int32, ctypes.c_int32, ctypes.c_int32, ctypes.c_void_p,
                          ctypes.c_int32, ctypes.c_void_p)

# CUDA's grid limits: x up to 2**31 - 1, y and z up to 65535 (the CPU also needs the block count
# to fit an i32, as it numbers blocks linearly)
_GRID_LIMITS = (2**31 - 1, 65535, 65535)


def grid_dims(grid: int | tuple[int, ...]) -> tuple[int, int, int]:
    """``grid`` (an int, or a tuple of 1 to 3 ints: x, y, z) as ``(x, y, z)``; raises
    ``ValueError`` naming a bad extent."""
    dims = (grid,) if isinstance(grid, int) else tuple(grid) if isinstance(grid, tuple) else None
    if dims is None or not 1 <= len(dims) <= 3 or not all(
            isinstance(d, int) and not isinstance(d, bool) for d in dims):
        raise ValueError(f"grid must be an int or a tuple of 1 to 3 ints (x, y, z), got {grid!r}")
    dims = dims + (1,) * (3 - len(dims))
    for axis, d, limit in zip("xyz", dims, _GRID_LIMITS, strict=True):
        if not 0 <= d <= limit:
            raise ValueError(f"grid {axis} extent must be in [0, {limit}], got {d}")
    if dims[0] * dims[1] * dims[2] > 2**31 - 1:
        raise ValueError(f"grid {dims} has more than 2**31 - 1 blocks")
    return dims  # type: ignore[return-value]


class CpuKernelError(KernelExecutionError):
    """A kernel misbehaved on the CPU backend; the message names the instruction, block and warp."""


def worker_count(blocks: int) -> int:
    """``min(cores, $TILEVM_CPU_THREADS, blocks)`` host threads run blocks in parallel."""
    cores = os.cpu_count() or 1
    env = os.environ.get("TILEVM_CPU_THREADS")
    limit = int(env) if env else cores
    return max(1, min(cores, limit, blocks))


def _pack_scalar(value: Any, t: ScalarType, name: str) -> int:
    if isinstance(value, np.ndarray) or hasattr(value, "ctypes"):
        raise TypeError(f"argument {name}: expected a {t} scalar, got an array")
    try:
        return Const.of(value, t).bits
    except (TypeError, ValueError) as e:
        raise TypeError(f"argument {name}: cannot pass {value!r} as {t}: {e}") from None


def _pointer(value: Any, name: str) -> tuple[int, Any]:
    if isinstance(value, int):
        return value, None
    if isinstance(value, np.ndarray):
        if not value.flags.c_contiguous and not value.flags.f_contiguous:
            raise TypeError(f"argument {name}: the array must be contiguous")
        return value.ctypes.data, value
    data = getattr(value, "data", None)
    if isinstance(data, np.ndarray):  # a HostTensor: the start of its byte buffer (its element
        return data.ctypes.data, value  # offset and strides are the kernel's to apply)
    raise TypeError(f"argument {name}: expected a numpy array, HostTensor or address, got "
                    f"{type(value).__name__}")


class CpuKernel:
    """A kernel compiled for the CPU. Call it with the grid size and the arguments."""

    def __init__(self, kernel: Kernel, compiled: JitResult) -> None:
        self.kernel = kernel
        self.compiled = compiled
        self._entry = _ENTRY(compiled.address)
        self._stmts = list(walk(kernel.body))

    def __call__(self, grid: int | tuple[int, ...], *args: Any, threads: int | None = None,
                 reverse_warps: bool = False) -> None:
        """Run a grid of blocks: ``grid`` is the number of blocks, or a tuple ``(x[, y[, z]])``
        of extents (``ctaid``/``nctaid`` ``.x/.y/.z`` give CUDA's values; blocks run in the
        linear order x fastest). Pointer parameters take numpy arrays (written in place),
        ``HostTensor`` (the address of its byte buffer) or integer addresses; scalar parameters
        take numbers. ``threads`` overrides the number of host threads (1 runs blocks serially,
        in order); ``reverse_warps`` runs the warps of each phase in reverse order (a correct
        kernel cannot tell)."""
        k = self.kernel
        if len(args) != len(k.params):
            raise TypeError(f"kernel {k.name} takes {len(k.params)} arguments "
                            f"({', '.join(p.name for p in k.params)}), got {len(args)}")
        nx, ny, nz = dims = grid_dims(grid)
        blocks = nx * ny * nz
        slots = np.zeros(max(len(args), 1), np.uint64)
        keep = []
        for i, (p, a) in enumerate(zip(k.params, args, strict=True)):
            if p.pointer:
                addr, ref = _pointer(a, p.name)
                slots[i] = addr
                keep.append(ref)
            else:
                assert isinstance(p.type, ScalarType)
                slots[i] = _pack_scalar(a, p.type, p.name)
        if blocks == 0:
            return
        workers = threads if threads is not None else worker_count(blocks)
        workers = max(1, min(workers, blocks))
        layout = self.compiled.layout
        spaces = [np.zeros(layout.total + 64, np.uint8) for _ in range(workers)]
        errors = [np.zeros(8, np.int32) for _ in range(workers)]
        chunk = max(1, blocks // (workers * 4))
        state = {"next": 0}
        lock = threading.Lock()
        failures: list[int] = []

        def work(w: int) -> None:
            ws = spaces[w].ctypes.data
            ws += (-ws) % 64
            while True:
                with lock:
                    b0 = state["next"]
                    if b0 >= blocks or failures:
                        return
                    state["next"] = min(blocks, b0 + chunk)
                rc = self._entry(slots.ctypes.data, nx, ny, nz, b0, min(blocks, b0 + chunk), ws,
                                 int(reverse_warps), errors[w].ctypes.data)
                if rc != 0:
                    with lock:
                        failures.append(w)
                    return

        # tv.debug_print's text comes out after the launch, block by block in block order
        with debug_ops.prints_in_block_order(self.compiled, dims) as printed:
            if workers == 1:
                work(0)
            else:
                pool = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
                for t in pool:
                    t.start()
                for t in pool:
                    t.join()
        del keep
        if failures:
            raise CpuKernelError(self._describe(errors[failures[0]], dims, printed))

    def _describe(self, err: np.ndarray, dims: tuple[int, int, int] = (0, 1, 1),
                  printed: dict[int, bytes] | None = None) -> str:
        code, sid, block, warp, mask, detail = (int(x) for x in err[:6])
        what = ERRORS.get(code, f"error {code}")
        if sid >= 0:
            s = self._stmts[sid]
            if isinstance(s, Instr):
                where = f"{s.mnemonic} {what}: `{format_stmt(s)}`"
            elif isinstance(s, If):
                where = f"if {s.cond}: {what}"
            elif isinstance(s, While):
                where = f"while {s.cond}: {what}"
            else:
                assert isinstance(s, For)
                where = f"for {s.var}: {what}"
            loc = getattr(s, "loc", None)
            if loc:
                where += f" ({loc})"
        else:
            where = what + f" (warp {warp} returned {detail})"
        extra = {2: f", membermask 0x{detail & 0xFFFFFFFF:08x}",
                 TRAP_ERROR: f", trapping lanes 0x{detail & 0xFFFFFFFF:08x}"}.get(code, "")
        nx, ny, _ = dims
        block_text = f"block {block}"
        if dims[1:] != (1, 1) and block >= 0:
            block_text += f" (x={block % nx}, y={block // nx % ny}, z={block // (nx * ny)})"
        text = (f"kernel {self.kernel.name}: {where} — {block_text}, warp {warp}, active mask "
                f"0x{mask & 0xFFFFFFFF:08x}{extra}")
        lines = (printed or {}).get(block, b"").decode("utf-8", errors="replace").splitlines()
        if code == TRAP_ERROR and lines:
            # what the block printed last says why (tv.device_assert prints, then traps)
            text = f"{lines[-1]}\n{text}"
        return text


def compile_kernel(kernel: Kernel, sanitize: bool = False) -> CpuKernel:
    """Verify ``kernel``, JIT it (or load it from the disk cache) and return a callable; with
    ``sanitize``, the sanitizer's checked variant, run by :func:`sanitizer.run_sanitized`."""
    from tilevm.ir.thread.verify import verify

    verify(kernel)
    return CpuKernel(kernel, jit(kernel, sanitize))

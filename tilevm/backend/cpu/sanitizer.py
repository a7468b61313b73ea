"""The kernel sanitizer of the CPU backend: ``kernel(*args, device="cpu", sanitize=True)``.

Contract of a sanitized launch (:func:`run_sanitized`):

* **Placement.** Every buffer argument (tensor arguments and workspaces) is copied into one
  *arena*, each with a red zone of :data:`RED_ZONE` bytes on both sides and at the same address
  modulo 256 as the caller's (the specialization's alignment facts still hold), so that an
  off-by-one lands in a red zone, never in a neighbouring tensor. The copy is also the snapshot
  of the inputs. After the run the arena's bytes are written back to the caller's arrays (also
  when a report is raised: what the kernel wrote before it stopped).
* **Checks** (in :mod:`sanitizer_ir`): blocks run serially in index order, warps in the normal
  order. Each active lane's global access of ``ld``/``st``/``atom``/``red``/``cp.async`` source
  (with source size 0 none) must lie in one buffer. Shared memory keeps per byte the last writer
  thread, the barrier epoch of that write, the last reader(s), whether it was ever written and
  whether a ``cp.async`` to it is pending: between two barriers, a read of a byte another thread
  wrote (write/read), a write over another thread's write (write/write) and a write of a byte
  another thread read (read/write) are races (atomics do not race with atomics); a read of a
  byte never written in this block, and a read of a ``cp.async`` destination before the wait
  that performs the copy are reported. A global byte written non-atomically by two blocks is
  reported (the sub-byte edge case: a correct kernel writes shared edge bytes atomically).
* **Block order** (part 3): after the checked run, the grid runs again from the snapshot, one
  block at a time in a shuffled order (``numpy.random.default_rng(seed).permutation``), and each
  tensor argument is compared with the first run's result: bit for bit, except a tensor that the
  kernel updates with float atomics, compared under :func:`atomic_bound` (the checked run sums
  the magnitudes and counts the terms of the float atomic adds into each element). The first
  differing element is reported with both values.
* **Reports** (:class:`SanitizerReport`) name the kernel, the Tile IR instruction, the user's
  ``file:line``, the block ``(x, y, z)``, the thread(s) and the address (the buffer and offset).
  ``mode=True`` stops at the first report and raises :class:`SanitizerError`;
  ``mode="continue"`` runs to the end (one report per kind and instruction) and raises one
  :class:`SanitizerError` holding them all.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tilevm.backend.cpu import debug_ops
from tilevm.backend.cpu import sanitizer_ir as sir
from tilevm.backend.cpu.launch import CpuKernel, CpuKernelError, _pack_scalar
from tilevm.ir.thread.printer import format_stmt
from tilevm.ir.thread.stmts import Instr
from tilevm.ir.thread.types import ScalarType

__all__ = ["RED_ZONE", "SanitizerError", "SanitizerReport", "atomic_bound", "run_sanitized",
           "sanitize_mode"]

RED_ZONE = 256
RECORD_CAPACITY = 256
ARENA_ALIGN = 4096


def sanitize_mode(value: Any) -> bool | str:
    """``False``, ``True`` (stop at the first report) or ``"continue"``, from a ``sanitize=``
    keyword or ``$TILEVM_SANITIZE`` (``"1"``/``"true"``, ``"continue"``, ``"0"``/empty);
    ``ValueError`` for anything else."""
    if value is None or value is False or value in ("", "0", "false", "False"):
        return False
    if value is True or value in ("1", "true", "True"):
        return True
    if value == "continue":
        return "continue"
    raise ValueError(f"sanitize must be True, False or 'continue', got {value!r}")


@dataclass
class SanitizerReport:
    """One finding: ``what`` it is, where (Tile IR ``instruction``, the user's ``loc``, the
    Thread IR ``thread_instruction``), the ``block`` (x, y, z), the ``threads`` involved and the
    ``address`` described."""

    kernel: str
    what: str
    instruction: str | None = None
    loc: str | None = None
    thread_instruction: str | None = None
    block: tuple[int, int, int] | None = None
    threads: str = ""
    address: str = ""

    def __str__(self) -> str:
        parts = [f"kernel {self.kernel}: {self.what}"]
        if self.loc:
            parts.append(f"at {self.loc}")
        if self.instruction:
            parts.append(f"in `{self.instruction}`")
        if self.thread_instruction:
            parts.append(f"(Thread IR `{self.thread_instruction}`)")
        text = " ".join(parts)
        where = [x for x in (f"block {self.block}" if self.block else "", self.threads,
                             self.address) if x]
        return text + (" — " + ", ".join(where) if where else "")


class SanitizerError(CpuKernelError):
    """The sanitizer found a bug: ``reports`` lists what it found (the message shows them)."""

    def __init__(self, reports: Sequence[SanitizerReport]) -> None:
        self.reports = list(reports)
        head = str(self.reports[0]) if len(self.reports) == 1 else (
            f"{len(self.reports)} sanitizer reports:\n" + "\n".join(f"  {r}" for r in
                                                                  self.reports))
        super().__init__(head)


def atomic_bound(a: np.ndarray, b: np.ndarray, magnitudes: np.ndarray, terms: np.ndarray,
                 unit_roundoff: float) -> np.ndarray:
    """Where two results of float atomic adds taken in different orders may legitimately
    differ: each is a sum of ``terms`` numbers (the initial value and the adds) whose magnitudes
    sum to ``magnitudes``, so each lies within ``γ(terms - 1) · magnitudes`` of the exact sum,
    ``γ(k) = k u / (1 - k u)`` (Higham, Accuracy and Stability of Numerical Algorithms, §4.2),
    and they differ by at most twice that, plus ``terms`` times the smallest normal f32 for the
    subnormal results ``atom.global.add.f32`` flushes to zero. Elementwise; NaN agrees with NaN."""
    k = np.maximum(terms - 1, 0) * unit_roundoff
    gamma = k / np.maximum(1 - k, 1e-300)
    ok = np.abs(a - b) <= 2 * gamma * magnitudes + terms * 2.0**-126
    return ok | (np.isnan(a) & np.isnan(b)) | (a == b)


@dataclass
class _Region:
    """A run of caller memory holding one or more buffers, and its place in the arena."""

    address: int
    nbytes: int
    names: list[str] = field(default_factory=list)
    arrays: list[np.ndarray] = field(default_factory=list)
    at: int = 0  # offset in the arena


def _regions(buffers: list[tuple[str, np.ndarray]]) -> list[_Region]:
    """Overlapping buffers (views of one array) merged into one region each."""
    spans = sorted(((a.ctypes.data, a.nbytes, n, a) for n, a in buffers), key=lambda t: t[0])
    out: list[_Region] = []
    for addr, nbytes, name, arr in spans:
        if out and addr < out[-1].address + out[-1].nbytes:
            r = out[-1]
            r.nbytes = max(r.nbytes, addr + nbytes - r.address)
        else:
            out.append(_Region(addr, nbytes))
        out[-1].names.append(name)
        out[-1].arrays.append(arr)
    return out


class _Arena:
    """The buffers' copies with red zones, aligned like the originals modulo 256."""

    def __init__(self, regions: list[_Region]) -> None:
        offset = 0
        for r in regions:
            offset += RED_ZONE
            offset += (r.address - offset) % 256
            r.at = offset
            offset += r.nbytes
        self.size = offset + RED_ZONE
        self.regions = regions
        self.raw = np.zeros(self.size + ARENA_ALIGN, np.uint8)
        self.base = self.raw.ctypes.data + (-self.raw.ctypes.data) % ARENA_ALIGN
        start = self.base - self.raw.ctypes.data
        self.bytes = self.raw[start:start + self.size]
        self.bytes[:] = 0xFD  # red zones: a recognisable filler

    def load(self, source: np.ndarray | None = None) -> None:
        """Fill the regions from the caller's arrays, or from an earlier arena's bytes."""
        if source is not None:
            self.bytes[:] = source
            return
        for r in self.regions:
            view = np.ctypeslib.as_array(
                (ctypes.c_uint8 * r.nbytes).from_address(r.address)) if r.nbytes else None
            if view is not None:
                self.bytes[r.at:r.at + r.nbytes] = view

    def write_back(self) -> None:
        for r in self.regions:
            if r.nbytes:
                view = np.ctypeslib.as_array((ctypes.c_uint8 * r.nbytes).from_address(r.address))
                view[:] = self.bytes[r.at:r.at + r.nbytes]

    def address_of(self, array: np.ndarray) -> int:
        addr = array.ctypes.data
        for r in self.regions:
            if r.address <= addr < r.address + max(r.nbytes, 1):
                return self.base + r.at + (addr - r.address)
        raise AssertionError("array not in the arena")

    def view_of(self, array: np.ndarray) -> np.ndarray:
        start = self.address_of(array) - self.base
        return self.bytes[start:start + array.nbytes]

    def describe(self, address: int) -> str:
        """``address`` as a place: a byte of a buffer, or how far outside the nearest one."""
        best = None
        for r in self.regions:
            lo, hi = self.base + r.at, self.base + r.at + r.nbytes
            name = "/".join(f"'{n}'" for n in r.names)
            if lo <= address < hi:
                return f"address 0x{address:x}: byte {address - lo} of {name} ({r.nbytes} bytes)"
            gap = address - hi if address >= hi else lo - address
            text = (f"byte {address - hi} past the end of {name}" if address >= hi else
                    f"{lo - address} bytes before the start of {name}")
            if best is None or gap < best[0]:
                best = (gap, f"address 0x{address:x}: {text} ({r.nbytes} bytes)")
        return best[1] if best else f"address 0x{address:x}: not in any buffer"


def _thread(tid: int) -> str:
    if tid == sir.SEVERAL:
        return "several threads"
    return f"thread {tid} (warp {tid // 32}, lane {tid % 32})"


class _Run:
    """The context of one sanitized pass: the buffers, the shadows, the records."""

    def __init__(self, arena: _Arena, shared_bytes: int, stop: bool,
                 summed: frozenset[str] = frozenset()) -> None:
        self.ctx = np.zeros(sir.CTX_BYTES, np.uint8)
        self.table = np.zeros((max(len(arena.regions), 1), sir.TABLE_ENTRY_BYTES // 8),
                              np.uint64)
        self.shadows = [np.zeros(max(r.nbytes, 1), np.int32) for r in arena.regions]
        # per 4-byte word: the magnitudes of the float atomic adds into it, and their number
        self.sums = [np.zeros(2 * (r.nbytes // 4 + 1), np.float64) if summed & set(r.names)
                     else None for r in arena.regions]
        for i, r in enumerate(arena.regions):
            sums = self.sums[i]
            self.table[i] = (arena.base + r.at, arena.base + r.at + r.nbytes,
                             self.shadows[i].ctypes.data, 0 if sums is None else sums.ctypes.data)
        self.shared_shadow = np.zeros(max(shared_bytes, 16) * sir.SHADOW_BYTES, np.uint8)
        self.records = np.zeros((RECORD_CAPACITY, sir.RECORD_WORDS), np.int64)
        self.err = np.zeros(16, np.int32)
        c = self.ctx
        c[sir.CTX_STOP:sir.CTX_STOP + 4].view(np.int32)[0] = int(stop)
        c[sir.CTX_NBUF:sir.CTX_NBUF + 4].view(np.int32)[0] = len(arena.regions)
        c[sir.CTX_SHADOW:sir.CTX_SHADOW + 8].view(np.uint64)[0] = self.shared_shadow.ctypes.data
        c[sir.CTX_BUFFERS:sir.CTX_BUFFERS + 8].view(np.uint64)[0] = self.table.ctypes.data
        c[sir.CTX_SHARED_BYTES:sir.CTX_SHARED_BYTES + 8].view(np.uint64)[0] = max(shared_bytes,
                                                                                   16)
        c[sir.CTX_CAP:sir.CTX_CAP + 4].view(np.int32)[0] = RECORD_CAPACITY
        c[sir.CTX_RECORDS:sir.CTX_RECORDS + 8].view(np.uint64)[0] = self.records.ctypes.data
        self.err[sir.ERR_CTX_OFFSET // 4:sir.ERR_CTX_OFFSET // 4 + 2].view(np.uint64)[0] = \
            self.ctx.ctypes.data

    def final_scan(self) -> None:
        """The last interval of the last block: its reads of never-written shared bytes (the
        driver's hooks report those of every earlier interval)."""
        entries = self.shared_shadow.reshape(-1, sir.SHADOW_BYTES)
        unread = np.flatnonzero(entries[:, 14] & sir.UNREAD)
        if not len(unread):
            return
        n = int(self.ctx[sir.CTX_NREC:sir.CTX_NREC + 4].view(np.int32)[0])
        block = int(self.ctx[sir.CTX_BLOCK:sir.CTX_BLOCK + 4].view(np.int32)[0])
        seen = {(int(r[0]), int(r[1])) for r in self.records[:n]}
        for i in unread:
            sid = int(entries[i, 20:24].view(np.int32)[0])
            reader = int(entries[i, 10:12].view(np.uint16)[0])
            if (sir.UNWRITTEN_READ, sid) in seen or n >= RECORD_CAPACITY:
                continue
            seen.add((sir.UNWRITTEN_READ, sid))
            self.records[n] = (sir.UNWRITTEN_READ, sid, block, reader, -1, int(i), 1, -1)
            n += 1
        self.ctx[sir.CTX_NREC:sir.CTX_NREC + 4].view(np.int32)[0] = n

    def disable_checks(self) -> None:
        self.ctx[sir.CTX_DISABLED:sir.CTX_DISABLED + 4].view(np.int32)[0] = 1

    def stored(self) -> np.ndarray:
        n = int(self.ctx[sir.CTX_NREC:sir.CTX_NREC + 4].view(np.int32)[0])
        return self.records[:n]


def run_sanitized(executable: CpuKernel, grid: tuple[int, int, int], args: Sequence[Any], *,
                  names: Sequence[str], mode: bool | str = True, seed: int = 0,
                  tensors: dict[str, Any] | None = None,
                  float_atomics: dict[str, float] | None = None,
                  describe: Callable[[Instr], tuple[str | None, str | None]] | None = None,
                  kernel_name: str | None = None) -> None:
    """Run ``executable`` (compiled with ``sanitize=True``) on ``args`` under the sanitizer (the
    module docstring states the contract).

    ``args`` follow the kernel's parameters: numpy arrays (or ``HostTensor``'s byte buffers) for
    pointers, numbers for scalars; ``names`` names each argument in reports. ``tensors`` maps
    names to the ``HostTensor`` views whose values the block-order check compares (none: no
    rerun); ``float_atomics`` maps those a kernel updates with float atomics to their unit
    roundoff. ``describe(stmt)`` gives a Thread IR statement's Tile IR text and source line.
    Raises :class:`SanitizerError` with the reports, after writing the results back.
    """
    k = executable.kernel
    name = kernel_name or k.name
    stop = mode != "continue"
    if len(args) != len(k.params):
        raise TypeError(f"kernel {k.name} takes {len(k.params)} arguments, got {len(args)}")
    buffers = []
    for p, a, n in zip(k.params, args, names, strict=True):
        if p.pointer:
            array = getattr(a, "data", a) if not isinstance(a, np.ndarray) else a
            if not isinstance(array, np.ndarray):
                raise TypeError(f"argument {n}: the sanitizer needs an array (it checks every "
                                f"access against the arrays' bounds), got {type(a).__name__}")
            buffers.append((n, array))
    arena = _Arena(_regions(buffers))
    arena.load()
    snapshot = arena.bytes.copy()
    nx, ny, nz = grid
    blocks = nx * ny * nz
    layout = executable.compiled.layout
    reports: list[SanitizerReport] = []

    def slots_for(target: _Arena) -> np.ndarray:
        slots = np.zeros(max(len(args), 1), np.uint64)
        for i, (p, a, n) in enumerate(zip(k.params, args, names, strict=True)):
            if p.pointer:
                array = a if isinstance(a, np.ndarray) else a.data
                slots[i] = target.address_of(array)
            else:
                assert isinstance(p.type, ScalarType)
                slots[i] = _pack_scalar(a, p.type, n)
        return slots

    def launch(target: _Arena, run: _Run, order: Sequence[int] | None) -> int:
        # tv.debug_print text in block order (debug_ops); the order rerun's is dropped
        hook = getattr(debug_ops, "prints_in_block_order", None)
        with contextlib.ExitStack() as stack:
            if order is not None:
                stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
            if hook is not None:
                stack.enter_context(hook(executable.compiled, grid))
            return launch_blocks(target, run, order)

    def launch_blocks(target: _Arena, run: _Run, order: Sequence[int] | None) -> int:
        space = np.zeros(layout.total + 64, np.uint8)
        ws = space.ctypes.data + (-space.ctypes.data) % 64
        slots = slots_for(target)
        ranges = [(0, blocks)] if order is None else [(int(b), int(b) + 1) for b in order]
        for b0, b1 in ranges:
            rc = executable._entry(slots.ctypes.data, nx, ny, nz, b0, b1, ws, 0,
                                   run.err.ctypes.data)
            if rc != 0:
                return rc
        return 0

    try:
        run = _Run(arena, k.shared_bytes, stop, frozenset(float_atomics or {}))
        rc = launch(arena, run, None)
        if rc == 0:
            run.final_scan()
        reports += _reports(executable, run, arena, grid, name, describe)
        if rc != 0 and int(run.err[0]) != sir.SANITIZER_ERROR:
            reports.append(SanitizerReport(name, executable._describe(run.err, grid)))
        if rc == 0 and tensors and blocks > 1 and (not reports or not stop):
            reports += _order_check(executable, arena, run, snapshot, launch, grid, seed,
                                    tensors, float_atomics or {}, name)
    finally:
        arena.write_back()
    if reports:
        raise SanitizerError(reports[:1] if stop else reports)


def _block_xyz(block: int, grid: tuple[int, int, int]) -> tuple[int, int, int]:
    nx, ny, _ = grid
    return (block % nx, block // nx % ny, block // (nx * ny))


def _reports(executable: CpuKernel, run: _Run, arena: _Arena, grid: tuple[int, int, int],
             name: str, describe: Callable | None) -> list[SanitizerReport]:
    out = []
    stmts = executable._stmts
    def place(sid: int) -> tuple[str | None, str | None]:
        stmt = stmts[sid]
        tile_text, loc = describe(stmt) if describe else (None, getattr(stmt, "loc", None))
        if tile_text:
            tile_text = re.sub(r' loc\("[^)]*\)', "", tile_text)
        return tile_text, loc

    for record in run.stored():
        kind, sid, block, tid, other, address, nbytes, other_sid = (int(v) for v in record)
        stmt = stmts[sid]
        tile_text, loc = place(sid)
        threads = _thread(tid)
        if kind == sir.TWO_BLOCKS:
            threads += f"; block {_block_xyz(other, grid)} wrote the byte before"
            where = arena.describe(address)
        elif kind in (sir.OUT_OF_BOUNDS, sir.CPA_SOURCE_OUT_OF_BOUNDS):
            where = arena.describe(address) + f", {nbytes}-byte access"
        else:
            where = f"shared byte {address}"
            if kind in (sir.RACE_WRITE_READ, sir.RACE_WRITE_WRITE):
                threads += f"; written by {_thread(other)} in the same barrier interval"
            elif kind == sir.RACE_READ_WRITE:
                threads += f"; read by {_thread(other)} in the same barrier interval"
            elif kind == sir.PENDING_READ:
                threads += f"; cp.async issued by {_thread(other)} not yet waited for"
            if other_sid >= 0:
                other_text, other_loc = place(other_sid)
                access = "read" if kind == sir.RACE_READ_WRITE else "write"
                threads += f" (that {access}: {other_loc or '?'}, `{other_text}`)"
        out.append(SanitizerReport(
            name, sir.KINDS[kind], tile_text, loc,
            format_stmt(stmt) if isinstance(stmt, Instr) else None,
            _block_xyz(block, grid), threads, where))
    return out


def _float_sums(t: Any, arena: _Arena, run: _Run, snapshot: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray] | None:
    """Per element of ``t``: the magnitude sum and the number of terms of its float atomic
    adds in the checked run, its initial value (from the snapshot) included; ``None`` when no
    add was recorded (f16/bf16 atomic adds are compare-and-swap loops on the CPU)."""
    from tilevm.ir.host_tensor import HostTensor

    start = arena.address_of(t.data) - arena.base
    initial = HostTensor(snapshot[start:start + t.data.nbytes], t.dtype, t.shape, t.strides,
                         t.offset).to_numpy()
    for r, sums in zip(arena.regions, run.sums, strict=True):
        if sums is not None and r.at <= start < r.at + max(r.nbytes, 1):
            word = (start - r.at + t.bit_offsets() // 8) // 4
            if sums[1::2].any():
                return np.abs(initial) + sums[2 * word], 1 + sums[2 * word + 1]
    return None


def _order_check(executable: CpuKernel, arena: _Arena, first_run: _Run, snapshot: np.ndarray,
                 launch: Callable, grid: tuple[int, int, int], seed: int,
                 tensors: dict[str, Any], float_atomics: dict[str, float], name: str
                 ) -> list[SanitizerReport]:
    """Rerun the grid from ``snapshot`` in a shuffled block order and compare each tensor with
    the first run's; the first difference as a report (at most one)."""
    from tilevm.ir.host_tensor import HostTensor

    other = _Arena(arena.regions)
    other.load(snapshot)
    run = _Run(other, executable.kernel.shared_bytes, True)
    run.disable_checks()
    blocks = grid[0] * grid[1] * grid[2]
    order = np.random.default_rng(seed).permutation(blocks)
    rc = launch(other, run, order)
    if rc != 0:
        return [SanitizerReport(name, "in a shuffled block order (seed "
                                f"{seed}) the kernel fails: " + executable._describe(run.err,
                                                                                     grid))]
    for tname, t in tensors.items():
        if t.size == 0:
            continue
        first = HostTensor(arena.view_of(t.data), t.dtype, t.shape, t.strides, t.offset)
        second = HostTensor(other.view_of(t.data), t.dtype, t.shape, t.strides, t.offset)
        if tname in float_atomics:
            a, b = first.to_numpy(), second.to_numpy()
            sums = _float_sums(t, arena, first_run, snapshot)
            if sums is None:  # an estimate: one term per block, none above the larger result
                sums = ((blocks + 1) * np.maximum(np.abs(a), np.abs(b)),
                        np.full(a.shape, blocks + 1.0))
            bad = ~atomic_bound(a, b, *sums, float_atomics[tname])
        else:
            bad = first.bits() != second.bits()
            a, b = first.to_numpy(), second.to_numpy()
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            how = ("beyond the bound of a float atomic sum, " if tname in float_atomics else "")
            return [SanitizerReport(
                name, "the result depends on the order of blocks (blocks depend on each other's "
                      f"writes): {tname}[{', '.join(map(str, index))}] is {a[index].item()!r} in "
                      f"index order but {b[index].item()!r} in a shuffled order (seed {seed}; {how}"
                      f"{int(bad.sum())} elements differ)")]
    return []

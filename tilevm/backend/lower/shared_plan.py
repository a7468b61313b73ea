"""Shared-memory planning: an offset for every ``tv.shared`` buffer, and the scratch area.

Buffers are placed in program order at the lowest offset (128-byte aligned, 1024 for swizzled
buffers so that the swizzle's period starts with the buffer) that no buffer *live at the same
time* occupies: a buffer is live from its ``shared`` instruction to its last use, and a use inside
a loop keeps it live for the whole loop. A buffer placed over a dead one is preceded by a barrier
(the other warps may still read the old buffer). After the buffers comes the scratch area that
layout conversions and cross-warp reductions share, sized by the lowering.
"""

from __future__ import annotations

from dataclasses import dataclass

from tilevm.backend.lower.numbered_walk import NumberedWalk
from tilevm.ir.layout.shared import SharedLayout
from tilevm.ir.tile.program import Assign, Instr, Kernel, Var
from tilevm.ir.tile.types import TensorType

__all__ = ["SharedBuffer", "SharedPlan", "buffer_layout", "plan_shared"]


@dataclass(frozen=True)
class SharedBuffer:
    """One ``tv.shared`` buffer: its variable, byte offset, size, and whether a barrier must
    precede its allocation (it reuses the bytes of a dead buffer)."""

    name: str
    offset: int
    size: int
    layout: SharedLayout
    reuses: bool


@dataclass(frozen=True)
class SharedPlan:
    """Every buffer's place and where the scratch area starts."""

    buffers: dict[str, SharedBuffer]
    scratch_offset: int

    @property
    def user_bytes(self) -> int:
        return max((b.offset + b.size for b in self.buffers.values()), default=0)


def buffer_layout(s: Instr) -> SharedLayout:
    """The layout of a ``shared`` instruction's buffer (row-major unless given)."""
    layout = s.attr("layout")
    return layout if layout is not None else SharedLayout.row_major(*s.attr("shape"))


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


class _Ranges(NumberedWalk):
    """Live ranges of shared buffers over a numbering of the program's statements."""

    def __init__(self) -> None:
        super().__init__()
        self.owner: dict[str, str] = {}  # a shared value (a stage of a buffer) → its buffer
        self.first: dict[str, int] = {}
        self.uses: dict[str, list[tuple[int, tuple[tuple[int, int], ...]]]] = {}
        self.order: list[Instr] = []

    def use(self, x: object) -> None:
        if isinstance(x, Var) and x.name in self.owner:
            buffer = self.owner[x.name]
            self.uses[buffer].append((self.position, tuple(map(tuple, self.loops))))

    def instr(self, s: Instr) -> None:
        for a in s.args:
            self.use(a)
        r = s.result
        if s.op == "shared":
            self.owner[r.name] = r.name
            self.first[r.name] = self.position
            self.uses[r.name] = []
            self.order.append(s)
        elif s.op == "index" and isinstance(s.args[0], Var):
            self.owner[r.name] = self.owner.get(s.args[0].name, s.args[0].name)

    def assign(self, s: Assign) -> None:
        self.use(s.value)

    def last(self, buffer: str) -> int:
        """The end of the buffer's live range: its last use, or the end of the loop around a use
        that was entered after the buffer was allocated (each iteration uses it again)."""
        first = self.first[buffer]
        end = first
        for position, loops in self.uses[buffer]:
            end = max(end, position, *(stop for start, stop in loops if start > first))
        return end


def plan_shared(kernel: Kernel) -> SharedPlan:
    """Place every ``shared`` buffer of ``kernel`` (see the module docstring)."""
    ranges = _Ranges()
    ranges.walk(kernel.body)
    placed: list[SharedBuffer] = []
    by_name: dict[str, SharedBuffer] = {}
    for s in ranges.order:
        name = s.result.name
        layout = buffer_layout(s)
        nbits = s.result.type.dtype.nbits if isinstance(s.result.type, TensorType) else 8
        # Whole 16-byte units: an atomic on the 32-bit word holding a buffer's last sub-byte
        # element stays inside the block's shared memory.
        size = _align(layout.size_bytes(nbits), 16)
        alignment = 1024 if layout.swizzle is not None else 128
        first, last = ranges.first[name], ranges.last(name)
        busy = sorted((b.offset, b.offset + b.size) for b in placed
                      if not (ranges.last(b.name) < first or last < ranges.first[b.name]))
        offset = 0
        for lo, hi in busy:
            if _align(offset, alignment) + size <= lo:
                break
            offset = max(offset, hi)
        offset = _align(offset, alignment)
        reuses = any(offset < b.offset + b.size and b.offset < offset + size for b in placed)
        buffer = SharedBuffer(name, offset, size, layout, reuses)
        placed.append(buffer)
        by_name[name] = buffer
    user = max((b.offset + b.size for b in placed), default=0)
    return SharedPlan(by_name, _align(user, 128))

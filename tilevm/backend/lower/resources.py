"""What a kernel needs of a thread block's resources, checked before any code is generated: the
registers its register tiles take (estimated from the tiles live at once) and the shared memory
its buffers and scratch take, against the target's limits. A kernel that cannot fit is a
diagnostic at the line of the tile that does not fit, not a binary that spills everything."""

from __future__ import annotations

from tilevm.backend.lower.dtype_map import is_packed
from tilevm.backend.lower.errors import lowering_error
from tilevm.backend.lower.numbered_walk import NumberedWalk
from tilevm.backend.lower.values import storage_length
from tilevm.ir.tile.program import Assign, Instr, Kernel, Var
from tilevm.ir.tile.types import TensorType

__all__ = ["MAX_REGISTERS", "REFUSED_REGISTERS", "check_shared", "estimate_registers"]

MAX_REGISTERS = 255  # per thread, on every target
# Beyond this many registers per thread for the tiles alone a kernel is refused: ptxas would
# spill nearly all of it to local memory, which is never what the author meant.
REFUSED_REGISTERS = 4 * MAX_REGISTERS


def _words(var: Var) -> int:
    t = var.type
    if not isinstance(t, TensorType) or t.scope != "reg" or t.layout is None:
        return 1 if not isinstance(t, TensorType) else 0
    count = storage_length(t.dtype, t.layout.local_size)
    return count * (2 if t.dtype.nbits == 64 else 1) if not is_packed(t.dtype) else count


class _Live(NumberedWalk):
    """Positions of definitions and last uses of register tiles (a use inside a loop entered
    after the definition keeps the tile live to the loop's end)."""

    def __init__(self) -> None:
        super().__init__()
        self.defs: dict[str, tuple[int, Var, Instr]] = {}
        self.last: dict[str, int] = {}
        self.pending: list[tuple[str, list[int]]] = []

    def use(self, x: object) -> None:
        if isinstance(x, Var) and x.name in self.defs:
            self.last[x.name] = max(self.last.get(x.name, 0), self.position)
            first = self.defs[x.name][0]
            for loop in self.loops:
                if loop[0] > first:
                    self.pending.append((x.name, loop))
                    break

    def instr(self, s: Instr) -> None:
        for a in s.args:
            self.use(a)
        r = s.result
        if r is not None and isinstance(r.type, TensorType) and r.type.scope == "reg":
            self.defs[r.name] = (self.position, r, s)
            self.last.setdefault(r.name, self.position)

    def assign(self, s: Assign) -> None:
        self.use(s.value)
        self.use(s.target)


def estimate_registers(kernel: Kernel) -> int:
    """The most 32-bit registers the kernel's register tiles hold at one time, per thread.

    Raises a :class:`~tilevm.backend.lower.errors.LoweringError` at the defining line of the
    largest live tile when that exceeds :data:`REFUSED_REGISTERS`."""
    live = _Live()
    live.walk(kernel.body)
    for name, loop in live.pending:
        live.last[name] = max(live.last[name], loop[1])
    events: list[tuple[int, int, str]] = []
    for name, (start, var, _) in live.defs.items():
        events.append((start, _words(var), name))
        events.append((live.last[name] + 1, -_words(var), name))
    events.sort(key=lambda e: (e[0], e[1]))
    total = peak = 0
    alive: dict[str, int] = {}
    worst: dict[str, int] = {}
    for _, words, name in events:
        total += words
        if words > 0:
            alive[name] = words
        else:
            alive.pop(name, None)
        if total > peak:
            peak, worst = total, dict(alive)
    if peak > REFUSED_REGISTERS:
        name = max(worst, key=worst.get)
        _, var, instr = live.defs[name]
        t = var.type
        raise lowering_error(
            f"{instr.op}: the register tiles live here need {peak} registers per thread "
            f"(%{name}, {t.dtype.name}{list(t.shape)}, alone takes {worst[name]} in each of "
            f"{32 * kernel.warps} threads); a thread has at most {MAX_REGISTERS}. Use smaller "
            "tiles, more warps, or shared memory", instr.loc)
    return peak


def check_shared(total: int, limit: int, target: str, biggest: Instr | None) -> None:
    """Raise a diagnostic when ``total`` bytes of shared memory exceed the target's ``limit``."""
    if total <= limit:
        return
    where = biggest.loc if biggest is not None else None
    what = f"{biggest.op}: " if biggest is not None else ""
    raise lowering_error(f"{what}the kernel needs {total} bytes of shared memory; {target} "
                         f"allows at most {limit} per block", where)

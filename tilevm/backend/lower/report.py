"""The compile report: what the lowering decided, each decision with the user's line.

It lists the layout of every register tile, every conversion the layout inference inserted (and
how it is done: register moves, warp shuffles or shared memory), the vector width of every global
and shared access and why it is not wider, the shared-memory plan, the estimated registers and
the specialization the kernel was compiled for. ``str(report)`` is the text ``.report`` prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tilevm.ir.tile.program import Loc

__all__ = ["Access", "CompileReport"]


def _at(loc: Loc | None) -> str:
    return f"{loc.file.rsplit('/', 1)[-1]}:{loc.line}" if loc is not None else "?"


@dataclass(frozen=True)
class Access:
    """One memory access of the program, as lowered."""

    loc: Loc | None
    op: str
    tensor: str
    space: str
    vector: int
    bits: int
    reason: str

    def line(self) -> str:
        width = f"{self.bits}-bit" + (f" ({self.vector} elements)" if self.vector > 1 else "")
        why = f": {self.reason}" if self.reason else ""
        return f"{_at(self.loc)}: {self.op} {self.space} '{self.tensor}': {width}{why}"


@dataclass
class CompileReport:
    """Everything the lowering decided (see the module docstring)."""

    kernel: str = ""
    target: str = ""
    specialization: str = ""
    layouts: list[tuple[Loc | None, str, str, str]] = field(default_factory=list)
    conversions: list[tuple[Loc | None, str, str, str, str, str]] = field(default_factory=list)
    accesses: list[Access] = field(default_factory=list)
    shared: list[str] = field(default_factory=list)
    shared_bytes: int = 0
    registers: int = 0
    notes: list[str] = field(default_factory=list)

    def access(self, loc: Loc | None, op: str, tensor: str, space: str, vector: int, bits: int,
               reason: str) -> None:
        self.accesses.append(Access(loc, op, tensor, space, vector, bits, reason))

    def __str__(self) -> str:
        out = [f"kernel {self.kernel} for {self.target}", "", "specialization:"]
        out += [f"  {line}" for line in self.specialization.splitlines()]
        out += ["", "layouts:"]
        out += [f"  {_at(loc)}: %{name} {layout}  ({origin})"
                for loc, name, layout, origin in self.layouts] or ["  (no register tiles)"]
        out += ["", "layout conversions:"]
        out += [f"  {_at(loc)}: %{name} {how}: {src} -> {dst} ({why})"
                for loc, name, src, dst, why, how in self.conversions] or ["  none"]
        out += ["", "memory accesses:"]
        out += [f"  {a.line()}" for a in self.accesses] or ["  none"]
        out += ["", f"shared memory: {self.shared_bytes} bytes"]
        out += [f"  {line}" for line in self.shared]
        out += ["", f"registers per thread (estimated from the tiles live at once): "
                    f"{self.registers}"]
        if self.notes:
            out += ["", "notes:"] + [f"  {n}" for n in self.notes]
        return "\n".join(out) + "\n"

"""Which registers a Thread IR kernel may read before any write on some path.

A register written only inside an ``if`` body, or only inside a loop body that may run zero
times, is not defined after that statement; one written in both branches of an ``if``, or in the
body of a loop with constant bounds and at least one trip, is. The
CUDA printer declares every register at function scope, so such a read gives garbage on a GPU;
the CPU backend reads zeros. Register arrays are not tracked (their elements are written
piecewise by design).
"""

from __future__ import annotations

from tilevm.ir.thread.stmts import For, If, Instr, Kernel, Stmt, While
from tilevm.ir.thread.values import Reg

__all__ = ["undefined_reads"]


def undefined_reads(kernel: Kernel) -> list[str]:
    """The names of the registers read (as operands or guards) at a point some path reaches
    without writing them, in the order first met."""
    found: dict[str, None] = {}

    def walk(stmts: list[Stmt], defined: set[int]) -> set[int]:
        for s in stmts:
            if isinstance(s, Instr):
                for a in (*s.args, s.guard):
                    if isinstance(a, Reg) and id(a) not in defined:
                        found.setdefault(a.name)
                if isinstance(s.dst, Reg):
                    defined.add(id(s.dst))
            elif isinstance(s, If):
                _check(s.cond, defined, found)
                then, other = walk(s.then_body, set(defined)), walk(s.else_body, set(defined))
                defined |= then & other
            elif isinstance(s, For):
                for bound in (s.start, s.stop):
                    _check(bound, defined, found)
                inside = walk(s.body, defined | {id(s.var)})
                if isinstance(s.start, int) and isinstance(s.stop, int) and s.start < s.stop:
                    defined |= inside - {id(s.var)}
            elif isinstance(s, While):
                walk(s.body, walk(s.cond_body, set(defined)))
        return defined

    walk(kernel.body, {id(p.reg) for p in kernel.params})
    return list(found)


def _check(x: object, defined: set[int], found: dict[str, None]) -> None:
    if isinstance(x, Reg) and id(x) not in defined:
        found.setdefault(x.name)

"""What every block-uniform integer scalar of a kernel is known to be a multiple of.

A global access can use vectors of ``v`` elements only where every vector starts at a multiple
of ``v``: its offsets must be known multiples. ``start = tv.block_idx() * 256`` is a multiple of
256 whatever the block; a loop variable is a multiple of what divides both its start and step; a
size the specialization proves a multiple of 16 is one. The analysis is a forward data flow over
the structured program (loop-carried values iterate to a fixed point), with gcd as the meet.
"""

from __future__ import annotations

import math

from tilevm.backend.lower.specialization import Specialization
from tilevm.ir.tile.program import Assign, Const, For, If, Instr, Kernel, Operand, Stmt, Var, While
from tilevm.ir.tile.types import ScalarType

__all__ = ["UNBOUNDED", "divisors"]

UNBOUNDED = 1 << 30  # "a multiple of anything": zero, or not yet seen


def _cap(n: int) -> int:
    return min(abs(n), UNBOUNDED) if n else UNBOUNDED


class _Analysis:
    def __init__(self, kernel: Kernel, spec: Specialization) -> None:
        self.known: dict[str, int] = {}
        for d in kernel.dims():
            self.known[d] = 16 if d in spec.dims16 else 1
        for p in kernel.params:
            if isinstance(p.type, ScalarType):
                self.known[p.name] = 1
        self.changed = False

    def of(self, x: Operand) -> int:
        if isinstance(x, Const):
            return _cap(int(x.value)) if x.dtype.is_integer else 1
        return self.known.get(x.name, UNBOUNDED)

    def meet(self, var: Var, value: int) -> None:
        old = self.known.get(var.name, UNBOUNDED)
        new = math.gcd(old, value) if old != UNBOUNDED else value
        if new != old:
            self.known[var.name] = new
            self.changed = True

    def instr(self, s: Instr) -> None:
        r = s.result
        if r is None or not isinstance(r.type, ScalarType) or not r.type.dtype.is_integer:
            return
        a = [self.of(x) for x in s.args]
        op = s.op
        if op == "mul":
            value = _cap(a[0] * a[1])
        elif op in ("add", "sub", "min", "max", "mod"):
            value = math.gcd(a[0], a[1])
        elif op == "floordiv" and isinstance(s.args[1], Const) and s.args[1].value > 0:
            c = int(s.args[1].value)
            value = a[0] // c if a[0] % c == 0 and a[0] != UNBOUNDED else (
                UNBOUNDED if a[0] == UNBOUNDED else 1)
        elif op == "shl" and isinstance(s.args[1], Const) and 0 <= s.args[1].value < 31:
            value = _cap(a[0] << int(s.args[1].value))
        elif op in ("copy", "neg"):
            value = a[0]
        elif op == "cast" and s.args[0].type.dtype.is_integer:
            value = math.gcd(a[0], 1 << min(r.type.dtype.nbits, 30))
        else:
            value = 1
        self.meet(r, value)

    def block(self, stmts: tuple[Stmt, ...]) -> None:
        for s in stmts:
            if isinstance(s, Instr):
                self.instr(s)
            elif isinstance(s, Assign):
                if isinstance(s.target.type, ScalarType):
                    self.meet(s.target, self.of(s.value))
            elif isinstance(s, For):
                self.meet(s.var, math.gcd(self.of(s.start), self.of(s.step)))
                self.block(s.body)
            elif isinstance(s, If):
                self.block(s.then_body)
                self.block(s.else_body)
            elif isinstance(s, While):
                self.block(s.cond_body)
                self.block(s.body)


def divisors(kernel: Kernel, spec: Specialization) -> dict[str, int]:
    """For each integer scalar variable (and dimension) of ``kernel``, a number it is always a
    multiple of (``UNBOUNDED`` for one never assigned a non-zero value)."""
    analysis = _Analysis(kernel, spec)
    for _ in range(32):  # each pass can only lower a divisor: this converges quickly
        analysis.changed = False
        analysis.block(kernel.body)
        if not analysis.changed:
            break
    return analysis.known

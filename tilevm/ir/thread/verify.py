"""The Thread IR verifier: well-formed instructions, register-array indices, barrier placement,
and (given a target) the architecture and PTX ISA each instruction needs."""

from __future__ import annotations

import itertools

from tilevm.ir.thread.errors import ThreadIRError
from tilevm.ir.thread.printer import format_stmt
from tilevm.ir.thread.stmts import For, If, Instr, Kernel, Stmt, While
from tilevm.ir.thread.types import PRED, ScalarType
from tilevm.ir.thread.values import Const, Elem, Index, IndexOp, Reg

__all__ = ["eval_index", "parse_arch", "verify"]

_MAX_INDEX_POINTS = 1 << 16


def parse_arch(arch: int | str) -> int:
    """``80``, ``"sm_80"``, ``"sm_90a"`` → the integer compute capability (80, 90)."""
    if isinstance(arch, int):
        return arch
    s = arch.lower().removeprefix("sm_").removeprefix("compute_").rstrip("af")
    if not s.isdigit():
        raise ValueError(f"arch must look like sm_80 or 80, got {arch!r}")
    return int(s)


def eval_index(index: Index, env: dict[int, int]) -> int:
    """The value of an index expression with loop variables bound in ``env`` (by ``id``)."""
    if isinstance(index, int):
        return index
    if isinstance(index, Reg):
        return env[id(index)]
    a, b = eval_index(index.a, env), eval_index(index.b, env)
    if index.op == "+":
        return a + b
    if index.op == "-":
        return a - b
    if index.op == "*":
        return a * b
    if index.op == "//":
        return a // b
    if index.op == "%":
        return a % b
    raise ThreadIRError(f"unknown index operator {index.op!r}")


def _index_vars(index: Index) -> list[Reg]:
    if isinstance(index, Reg):
        return [index]
    if isinstance(index, IndexOp):
        return _index_vars(index.a) + _index_vars(index.b)
    return []


class _Verifier:
    def __init__(self, kernel: Kernel, arch: int | None, ptx_isa: tuple[int, int] | None) -> None:
        self.kernel = kernel
        self.arch = arch
        self.ptx_isa = ptx_isa
        self.arrays = {id(a) for a in kernel.arrays}

    def run(self) -> None:
        k = self.kernel
        if k.block_threads % 32 or not 32 <= k.block_threads <= 1024:
            raise ThreadIRError(f"kernel {k.name}: block_threads must be a multiple of 32 in "
                                f"[32, 1024], got {k.block_threads}")
        if k.shared_bytes < 0 or k.local_bytes < 0:
            raise ThreadIRError(f"kernel {k.name}: negative shared_bytes or local_bytes")
        self.body(k.body, loops=[], uniform=True)

    def body(self, body: list[Stmt], loops: list[For], uniform: bool) -> None:
        for s in body:
            if isinstance(s, Instr):
                self.instr(s, loops, uniform)
            elif isinstance(s, If):
                self.operand(s.cond, loops, f"if {s.cond}")
                if s.cond.type != PRED:
                    raise ThreadIRError(f"if condition {s.cond} must be pred, got {s.cond.type}")
                if s.uniform and not uniform:
                    raise ThreadIRError(f"uniform if {s.cond} inside non-uniform control flow")
                self.body(s.then_body, loops, uniform and s.uniform)
                self.body(s.else_body, loops, uniform and s.uniform)
            elif isinstance(s, For):
                self.loop(s, loops, uniform)
            elif isinstance(s, While):
                self.while_(s, loops, uniform)
            else:
                raise ThreadIRError(f"not a Thread IR statement: {s!r}")

    def loop(self, s: For, loops: list[For], uniform: bool) -> None:
        where = f"for {s.var}"
        if not isinstance(s.var.type, ScalarType) or s.var.type.name not in ("s32", "u32"):
            raise ThreadIRError(f"{where}: the loop variable must be s32 or u32")
        if not isinstance(s.step, int) or s.step <= 0:
            raise ThreadIRError(f"{where}: step must be a positive int, got {s.step!r}")
        if s.unroll and not (isinstance(s.start, int) and isinstance(s.stop, int)):
            raise ThreadIRError(f"{where}: an unroll loop needs int bounds")
        for bound in (s.start, s.stop):
            if not isinstance(bound, int):
                self.operand(bound, loops, where)
                if bound.type != s.var.type:
                    raise ThreadIRError(f"{where}: bound {bound} must be {s.var.type}")
        if s.uniform and not uniform:
            raise ThreadIRError(f"{where}: uniform loop inside non-uniform control flow")
        # an unroll loop has constant bounds: uniform wherever it is reached uniformly
        self.body(s.body, [*loops, s], uniform and (s.uniform or s.unroll))

    def while_(self, s: While, loops: list[For], uniform: bool) -> None:
        where = f"while {s.cond}"
        self.operand(s.cond, loops, where)
        if s.cond.type != PRED:
            raise ThreadIRError(f"{where}: the condition must be pred, got {s.cond.type}")
        if s.uniform and not uniform:
            raise ThreadIRError(f"{where}: uniform loop inside non-uniform control flow")
        self.body(s.cond_body, loops, uniform and s.uniform)
        self.body(s.body, loops, uniform and s.uniform)

    def operand(self, x: object, loops: list[For], where: str) -> None:
        if isinstance(x, Elem):
            self.element(x, loops, where)
        elif not isinstance(x, Reg | Const):
            raise ThreadIRError(f"{where}: not an operand: {x!r}")

    def element(self, e: Elem, loops: list[For], where: str) -> None:
        if id(e.array) not in self.arrays:
            raise ThreadIRError(f"{where}: register array {e.array} is not declared in the kernel")
        unrolled = {id(lp.var): lp for lp in loops if lp.unroll}
        variables = {id(v): v for v in _index_vars(e.index)}
        for v in variables.values():
            if id(v) not in unrolled:
                raise ThreadIRError(f"{where}: index {e.index} of {e.array} uses {v}, which is not "
                                    f"the variable of an enclosing unroll loop, so it is not a "
                                    f"constant once loops are unrolled")
        ranges = [range(unrolled[k].start, unrolled[k].stop, unrolled[k].step)  # type: ignore[arg-type]
                  for k in variables]
        points = 1
        for r in ranges:
            points *= max(len(r), 1)
        if points > _MAX_INDEX_POINTS:
            raise ThreadIRError(f"{where}: index {e.index} spans too many unrolled iterations")
        for combo in itertools.product(*ranges):
            i = eval_index(e.index, dict(zip(variables, combo, strict=True)))
            if not 0 <= i < e.array.length:
                raise ThreadIRError(f"{where}: index {e.index} of {e.array} is {i}, outside "
                                    f"[0, {e.array.length})")

    def instr(self, s: Instr, loops: list[For], uniform: bool) -> None:
        where = f"`{format_stmt(s)}`"
        s.op.check(s)
        for a in s.args:
            self.operand(a, loops, where)
        if s.dst is not None:
            if isinstance(s.dst, Elem):
                self.element(s.dst, loops, where)
            elif not isinstance(s.dst, Reg):
                raise ThreadIRError(f"{where}: destination must be a register or array element")
            if any(s.dst is lp.var for lp in loops):
                raise ThreadIRError(f"{where}: assigns the loop variable {s.dst}")
        if s.guard is not None and (not isinstance(s.guard, Reg) or s.guard.type != PRED):
            raise ThreadIRError(f"{where}: guard must be a pred register")
        if s.op.scope == "block" and (not uniform or s.guard is not None):
            raise ThreadIRError(f"{s.op.name} must be reached under block-uniform control flow "
                                f"only (uniform if/for/while, no guard): {where}")
        if self.arch is not None or self.ptx_isa is not None:
            need_arch, need_isa = s.op.requirements(s)
            if self.arch is not None and self.arch < need_arch:
                raise ThreadIRError(f"{s.mnemonic} needs sm_{need_arch} or later; the target is "
                                    f"sm_{self.arch}: {where}")
            if self.ptx_isa is not None and self.ptx_isa < need_isa:
                raise ThreadIRError(f"{s.mnemonic} needs PTX ISA {need_isa[0]}.{need_isa[1]}; the "
                                    f"target has {self.ptx_isa[0]}.{self.ptx_isa[1]}: {where}")


def verify(kernel: Kernel, arch: int | str | None = None,
           ptx_isa: tuple[int, int] | None = None) -> None:
    """Check ``kernel``; raise :class:`ThreadIRError` naming the first bad statement.

    Checks: every instruction's operands and modifiers; register-array indices depend only on
    enclosing ``unroll`` loops' variables and stay in bounds for every unrolled iteration;
    ``bar.sync`` (block scope) only under block-uniform control flow (``uniform`` if/for/while
    nested only in uniform ones); if/while conditions are ``pred``; loop variables are not
    assigned. With ``arch`` (``80``, ``"sm_90a"``) and/or ``ptx_isa`` (``(8, 4)``), every
    instruction's minimum architecture and PTX ISA version — the message names the instruction
    and the arch.
    """
    _Verifier(kernel, parse_arch(arch) if arch is not None else None, ptx_isa).run()

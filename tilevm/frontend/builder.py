"""Emit Tile IR instructions into nested blocks, with fresh names and type inference.

The transpiler drives a :class:`Builder`: ``emit`` types an instruction with the rules of
:mod:`tilevm.ir.tile.ops` (a :class:`~tilevm.ir.tile.TileTypeError` propagates to the caller, who
turns it into a diagnostic at the user's line) and appends it to the innermost open block.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

from tilevm.ir.tile.ops import infer_type
from tilevm.ir.tile.program import Instr, Loc, Operand, Stmt, Var
from tilevm.ir.tile.types import TensorType, Type

__all__ = ["Builder"]


class Builder:
    """A stack of open blocks and a name supply."""

    def __init__(self) -> None:
        self.blocks: list[list[Stmt]] = [[]]
        self.used: set[str] = set()
        self.counter = 0
        self.temps: set[str] = set()

    @property
    def current(self) -> list[Stmt]:
        return self.blocks[-1]

    def fresh(self, hint: str | None = None) -> str:
        """A name not used before in this kernel: ``hint`` itself, else ``hint.1``, ``hint.2``…;
        without a hint, a temporary ``t0``, ``t1``… (only temporaries may be renamed later)."""
        if hint is None:
            while f"t{self.counter}" in self.used:
                self.counter += 1
            name = f"t{self.counter}"
            self.temps.add(name)
        else:
            name, k = hint, 0
            while name in self.used:
                k += 1
                name = f"{hint}.{k}"
        self.used.add(name)
        return name

    def var(self, hint: str, ty: Type) -> Var:
        return Var(self.fresh(hint), ty)

    def emit(self, op: str, args: list[Operand], loc: Loc | None, name: str | None = None, /,
             **attrs: Any) -> Var | None:
        """Type and append ``op(args) {attrs}``; return its result variable (``None`` if none)."""
        ty = infer_type(op, [a.type for a in args], attrs)
        result = None if ty is None else self.var(name, ty)
        self.current.append(Instr.make(result, op, args, loc, **attrs))
        return result

    def set_layout(self, var: Var, layout: Any) -> Var:
        """Give the result of the last instruction (``var``) a layout; returns the new variable."""
        last = self.current[-1]
        assert isinstance(last, Instr) and last.result == var, "set_layout: not the last result"
        new = Var(var.name, TensorType(var.type.dtype, var.type.shape, var.type.scope, layout))
        self.current[-1] = Instr(new, last.op, last.args, last.attrs, last.loc)
        return new

    def append(self, stmt: Stmt) -> None:
        self.current.append(stmt)

    @contextmanager
    def block(self) -> Any:
        """Collect the statements emitted inside the ``with`` into a new list (yielded)."""
        stmts: list[Stmt] = []
        self.blocks.append(stmts)
        try:
            yield stmts
        finally:
            self.blocks.pop()

    def rename_last(self, var: Var, name: str) -> Var | None:
        """If ``var`` is a temporary defined in the current block and not used since, rename it to
        (a fresh form of) ``name`` and return the new variable (``x = expr`` names ``expr``'s
        result ``%x`` instead of copying it)."""
        if var.name not in self.temps:
            return None
        for pos in range(len(self.current) - 1, -1, -1):
            stmt = self.current[pos]
            if isinstance(stmt, Instr) and stmt.result == var:
                break
            if var in _operands(stmt):
                return None
        else:
            return None
        new = Var(self.fresh(name), var.type)
        self.current[pos] = Instr(new, stmt.op, stmt.args, stmt.attrs, stmt.loc)
        self.temps.discard(var.name)
        return new


def _operands(stmt: Stmt) -> list[Operand]:
    """The operands a statement (and the blocks nested in it) reads."""
    from tilevm.ir.tile.program import Assign, For, If, While, walk

    found: list[Operand] = []
    for s in walk([stmt]):
        if isinstance(s, Instr):
            found += s.args
        elif isinstance(s, Assign):
            found += [s.target, s.value]
        elif isinstance(s, For):
            found += [s.start, s.stop, s.step]
        elif isinstance(s, (If, While)):
            found.append(s.cond)
    return found

"""A walk over a Tile IR program that numbers its statements in program order and knows the loops
around each one: what the live ranges of register tiles (:mod:`resources`) and of shared buffers
(:mod:`shared_plan`) are measured on. A value used inside a loop entered after its definition is
live to the end of that loop, since the next iteration uses it again."""

from __future__ import annotations

from tilevm.ir.tile.program import Assign, For, If, Instr, Stmt

__all__ = ["NumberedWalk"]


class NumberedWalk:
    """Subclasses say what an instruction and an assignment mean to them; :meth:`walk` numbers
    the statements (``position``) and keeps ``loops``, the ``[start, end]`` of each enclosing
    loop (``end`` is filled in when the loop has been walked)."""

    def __init__(self) -> None:
        self.position = 0
        self.loops: list[list[int]] = []

    def instr(self, s: Instr) -> None:
        """Called for each instruction, at its position."""

    def assign(self, s: Assign) -> None:
        """Called for each assignment (a loop-carried value or an ``if`` merge)."""

    def walk(self, stmts: tuple[Stmt, ...]) -> None:
        for s in stmts:
            self.position += 1
            if isinstance(s, Instr):
                self.instr(s)
            elif isinstance(s, Assign):
                self.assign(s)
            elif isinstance(s, If):
                self.walk(s.then_body)
                self.walk(s.else_body)
            else:
                loop = [self.position, self.position]
                self.loops.append(loop)
                for body in ((s.body,) if isinstance(s, For) else (s.cond_body, s.body)):
                    self.walk(body)
                self.loops.pop()
                loop[1] = self.position

"""Leaving a block early: ``break``, ``continue`` and ``return`` under run-time conditions.

Tile IR's control flow is structured (``for``, ``while``, ``if``) and has no jumps, so an early
exit is translated as structured programs always have been, with flags (``u1`` variables) and
guards:

- a run-time loop whose body can leave early keeps a ``skip`` flag, cleared at the start of each
  iteration and set by ``break``, ``continue`` and ``return``; the statements after one that may
  have set it run under ``if not skip`` (a *guard*);
- a loop left by ``break`` or ``return`` keeps a ``stop`` flag, which ends it: a ``while`` loop
  tests it with its condition, and a ``tv.range`` loop becomes a ``while`` loop over a counter
  that does (Python's ``range`` semantics: bounds evaluated once, the loop variable read-only);
- a kernel that returns under a run-time condition keeps a ``returned`` flag: its statements
  after one that may have set it are guarded, and the ``return`` also sets every enclosing loop's
  ``stop`` and ``skip``.

All conditions are block-uniform, so every thread takes the same path and a barrier inside a
guard or a loop left early is reached by the whole block or by none of it.

In a compile-time loop (a ``for`` over a tuple or ``range``, unrolled while the kernel is built),
``break`` and ``continue`` act while the kernel is built; under a run-time condition they are a
diagnostic. A ``return`` reached without a run-time condition ends the kernel's translation.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass

from tilevm.frontend.transpiler.base import TranspilerBase
from tilevm.frontend.transpiler.value import U1
from tilevm.ir.tile.program import Assign, Const, If, Var

__all__ = ["Exits", "KernelReturn", "LoopExits", "UnrolledBreak", "UnrolledContinue", "exits_of"]

_ZERO, _ONE = Const(0, U1), Const(1, U1)


class UnrolledBreak(Exception):
    """``break`` of a compile-time loop: unwinds to the loop, which unrolls no further."""


class UnrolledContinue(Exception):
    """``continue`` of a compile-time loop: unwinds to the loop, which goes on with the next
    item."""


class KernelReturn(Exception):
    """A kernel's ``return`` reached without a run-time condition: nothing after it runs."""


@dataclass
class LoopExits:
    """What an early exit from one loop sets (``None``: the loop's body has no such exit)."""

    runtime: bool  # a tv.range or while loop (else: a compile-time loop, unrolled)
    frames: int  # len(frames) in the loop's body: a deeper exit is under a run-time condition
    stop: Var | None = None  # set by break and return: the loop ends
    skip: Var | None = None  # set by break, continue and return: the iteration's rest is skipped


def exits_of(stmts: list[ast.stmt]) -> set[str]:
    """The early exits in a loop body ``stmts``: ``"break"`` and ``"continue"`` of this loop (not
    of loops nested in it), ``"return"`` anywhere."""
    found: set[str] = set()

    def visit(node: ast.AST, own: bool) -> None:
        if isinstance(node, ast.Break) and own:
            found.add("break")
        elif isinstance(node, ast.Continue) and own:
            found.add("continue")
        elif isinstance(node, ast.Return):
            found.add("return")
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            return
        inner = own and not isinstance(node, (ast.For, ast.While, ast.AsyncFor))
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    for s in stmts:
        visit(s, True)
    return found


class Exits(TranspilerBase):
    """The flags and guards of early exits (see the module's docstring)."""

    def new_flag(self, hint: str, node: ast.AST) -> Var:
        """A fresh ``u1`` variable, 0, defined in the current block."""
        return self.builder.emit("copy", [_ZERO], self.loc(node), hint)

    def clear_flag(self, flag: Var, node: ast.AST) -> None:
        self.builder.append(Assign(flag, _ZERO, self.loc(node)))

    def set_flag(self, flag: Var, node: ast.AST) -> None:
        """``flag = 1`` here; the statements after the enclosing ones are guarded on it."""
        self.builder.append(Assign(flag, _ONE, self.loc(node)))
        self.flag_sets[flag.name] = self.flag_sets.get(flag.name, 0) + 1

    def times_set(self, flag: Var | None) -> int:
        return 0 if flag is None else self.flag_sets.get(flag.name, 0)

    def guard_flag(self) -> Var | None:
        """The flag that says the rest of the current block must not run: the innermost run-time
        loop's ``skip``, else (in the kernel's own body) ``returned``."""
        for loop in reversed(self.loops):
            if loop.runtime:
                return loop.skip
        return self.returned if self.depth == 0 else None

    def guarded(self, node: ast.AST, flag: Var, translate: Callable[[], None]) -> None:
        """``if not flag:`` around what ``translate`` emits; ``node``: the statement after which
        ``flag`` may be set."""
        cond = self.builder.emit("eq", [flag, _ZERO], self.loc(node))
        self.push("if", node.lineno)
        try:
            with self.builder.block() as body:
                translate()
        finally:
            self.pop()
        self.builder.append(If(cond, tuple(body), (), self.loc(node)))

    def loop_flags(self, body: list[ast.stmt], node: ast.AST) -> LoopExits:
        """The exits record of a run-time loop with ``body``, its flags defined here (before the
        loop): ``stop`` when ``break`` or a kernel's ``return`` can end it, ``skip`` for any
        early exit."""
        found = exits_of(body)
        if self.depth > 0:
            found.discard("return")  # a helper's return under a run-time condition is refused
        exits = LoopExits(True, 0)
        if found & {"break", "return"}:
            exits.stop = self.new_flag("stop", node)
        if found:
            exits.skip = self.new_flag("skip", node)
        return exits

    def loop_condition(self, exits: LoopExits, cond: Var, node: ast.AST) -> Var:
        """``cond and not stop`` (just ``cond`` for a loop that no ``break`` ends)."""
        if exits.stop is None:
            return cond
        going = self.builder.emit("eq", [exits.stop, _ZERO], self.loc(node))
        return self.builder.emit("and", [cond, going], self.loc(node))

    def loop_body(self, exits: LoopExits, node: ast.AST, translate: Callable[[], None]) -> None:
        """Translate a run-time loop's body (in its open block and frame) with ``exits``."""
        if exits.skip is not None:
            self.clear_flag(exits.skip, node)
        exits.frames = len(self.frames)
        self.loops.append(exits)
        try:
            translate()
        finally:
            self.loops.pop()

    def break_or_continue(self, s: ast.Break | ast.Continue) -> None:
        """``break`` or ``continue`` of the innermost loop."""
        word = "break" if isinstance(s, ast.Break) else "continue"
        if not self.loops:
            raise self.error(s, f"'{word}' outside a loop")
        loop = self.loops[-1]
        if not loop.runtime:
            if len(self.frames) != loop.frames:
                raise self.error(s, f"'{word}' under a run-time condition cannot leave a "
                                    "compile-time loop (a 'for' over a tuple or range() is "
                                    "unrolled while the kernel is built); loop with tv.range to "
                                    f"{word} at run time")
            raise UnrolledBreak() if word == "break" else UnrolledContinue()
        if word == "break":
            assert loop.stop is not None
            self.set_flag(loop.stop, s)
        assert loop.skip is not None
        self.set_flag(loop.skip, s)

    def kernel_return(self, s: ast.Return) -> None:
        """The kernel's ``return`` (it returns nothing): the end of the translation without a
        run-time condition, else every enclosing loop's ``stop`` and ``skip`` and ``returned``."""
        if s.value is not None:
            raise self.error(s, "a kernel returns nothing; write results with tv.store")
        if len(self.frames) == 1:
            raise KernelReturn()
        for loop in self.loops:
            if loop.runtime:
                assert loop.stop is not None and loop.skip is not None
                self.set_flag(loop.stop, s)
                self.set_flag(loop.skip, s)
        if self.returned is None:
            # Defined first in the kernel's body (right after tv.launch, which nothing may
            # precede), so that every guard and loop of the kernel sees it.
            with self.builder.block() as definition:
                self.returned = self.new_flag("returned", s)
            self.builder.blocks[0][0:0] = definition
        self.set_flag(self.returned, s)

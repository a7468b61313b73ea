"""Statements: assignments, ``if``, ``for``, ``while``, ``break``, ``continue``, ``return``,
``assert``.

A statement on compile-time values runs as Python (an ``if`` on a constant keeps one branch, a
``for`` over a tuple unrolls); on run-time values it becomes Tile IR's structured control flow.
``for … in tv.range(...)`` is translated with ``tv.range`` (:mod:`tilevm.frontend.builtins.loops`),
early exits with flags and guards (:mod:`tilevm.frontend.transpiler.exits`).
"""

from __future__ import annotations

import ast
import contextlib
from typing import Any

from tilevm.frontend.builtins.loops import for_loop
from tilevm.frontend.builtins.registry import BUILTINS
from tilevm.frontend.transpiler.exits import Exits, LoopExits, UnrolledBreak, UnrolledContinue
from tilevm.frontend.transpiler.scopes import Frame
from tilevm.frontend.transpiler.value import U1, Value, describe, same_type
from tilevm.ir.tile.program import Assign, Const, If, Operand, Var, While
from tilevm.ir.tile.types import TensorType

__all__ = ["Return", "Statements"]

_UNSUPPORTED_STMTS = {ast.With: "'with' statements", ast.Try: "'try' statements",
                      ast.Raise: "'raise'", ast.Import: "imports", ast.ImportFrom: "imports",
                      ast.Global: "'global'", ast.Nonlocal: "'nonlocal'",
                      ast.FunctionDef: "nested function definitions",
                      ast.ClassDef: "class definitions", ast.Delete: "'del'",
                      ast.AsyncFor: "'async for'", ast.AsyncWith: "'async with'",
                      ast.AnnAssign: "annotated assignments"}


class Return(Exception):
    """A helper function's ``return``: unwinds its statements to the call (with the value)."""

    def __init__(self, value: Any, node: ast.Return | None = None) -> None:
        self.value = value
        self.node = node


class Statements(Exits):
    """The translation of statements and of blocks of them."""

    def body(self, stmts: list[ast.stmt], top: bool = False) -> None:
        """Translate a block; ``top``: the function's own body (a docstring is skipped). After a
        ``break``, ``continue`` or ``return`` the block's rest is unreachable; after a statement
        that may have left early under a run-time condition, it is guarded."""
        for i, s in enumerate(stmts):
            if top and i == 0 and _is_docstring(s):
                continue
            flag = self.guard_flag()
            before = self.times_set(flag)
            self.stmt(s)
            if isinstance(s, (ast.Break, ast.Continue, ast.Return)):
                return
            flag = self.guard_flag()  # the kernel's first run-time return defines `returned`
            rest = stmts[i + 1:]
            if rest and flag is not None and self.times_set(flag) > before:
                self.guarded(rest[0], flag, lambda rest=rest: self.body(rest))
                return

    def stmt(self, s: ast.stmt) -> None:
        """Translate one statement."""
        for kind, what in _UNSUPPORTED_STMTS.items():
            if isinstance(s, kind):
                raise self.error(s, f"{what} are not supported in a tilevm kernel" if
                                 what.endswith("s") else f"{what} is not supported in a tilevm "
                                                          "kernel")
        if isinstance(s, ast.Expr):
            if isinstance(s.value, ast.Constant) and isinstance(s.value.value, str):
                return  # a comment-like string
            self.expr(s.value)
        elif isinstance(s, ast.Assign):
            value = self.expr(s.value)
            for target in s.targets:
                self.assign(target, value, s.value)
        elif isinstance(s, ast.AugAssign):
            if not isinstance(s.target, ast.Name):
                raise self.error(s.target, "augmented assignment needs a plain name")
            current = self.lookup(s.target.id, s.target)
            value = self.binop(s, s.op, current, self.expr(s.value), s.target, s.value)
            self.bind(s.target.id, value, s.target)
        elif isinstance(s, ast.For):
            self.for_stmt(s)
        elif isinstance(s, ast.While):
            self.while_stmt(s)
        elif isinstance(s, ast.If):
            self.if_stmt(s)
        elif isinstance(s, ast.Pass):
            pass
        elif isinstance(s, ast.Return):
            self.return_stmt(s)
        elif isinstance(s, (ast.Break, ast.Continue)):
            self.break_or_continue(s)
        elif isinstance(s, ast.Assert):
            test = self.expr(s.test)
            if isinstance(test, Value):
                raise self.error(s.test, "assert needs a compile-time condition")
            if not test:
                msg = self.const_eval(s.msg) if s.msg else "assertion failed"
                raise self.error(s, f"assertion failed: {msg}")
        else:
            raise self.error(s, f"'{type(s).__name__}' statements are not supported in a "
                                "tilevm kernel")

    def assign(self, target: ast.expr, value: Any, value_node: ast.AST) -> None:
        """Bind ``target`` (a name, or a tuple of targets to unpack ``value`` into)."""
        if isinstance(target, ast.Name):
            self.bind(target.id, value, target)
        elif isinstance(target, (ast.Tuple, ast.List)):
            if isinstance(value, Value) or not isinstance(value, (tuple, list)):
                raise self.error(value_node, f"cannot unpack {describe(value)} into "
                                             f"{len(target.elts)} names")
            if len(value) != len(target.elts):
                raise self.error(value_node, f"cannot unpack {len(value)} values into "
                                             f"{len(target.elts)} names")
            for t, v in zip(target.elts, value):
                self.assign(t, v, value_node)
        else:
            raise self.error(target, "only names can be assigned; write tiles to memory with "
                                     "tv.store")

    def return_stmt(self, s: ast.Return) -> None:
        if self.depth == 0:
            self.kernel_return(s)
            return
        if any(f.kind != "function" for f in self.frames):
            raise self.error(s, "'return' of a helper function inside a run-time loop or branch "
                                "is not supported; assign the result to a name in both branches "
                                "(or use tv.where) and return it at the end")
        raise Return(None if s.value is None else self.expr(s.value), s)

    def for_stmt(self, s: ast.For) -> None:
        if s.orelse:
            raise self.error(s.orelse[0], "'for ... else' is not supported in a tilevm kernel")
        it = s.iter
        if isinstance(it, ast.Call):
            fn = self.expr(it.func)
            if fn is BUILTINS["range"]:
                for_loop(self, s, it)
                return
            iterable = self.call(it, fn)
        else:
            iterable = self.expr(it)
        if isinstance(iterable, Value):
            raise self.error(it, f"cannot iterate over {iterable.describe()}; run-time loops "
                                 "are written 'for i in tv.range(start, stop, step)'")
        try:
            items = list(iterable)
        except TypeError:
            raise self.error(it, f"cannot iterate over {describe(iterable)}") from None
        self.unrolled_loop(s, items)

    def unrolled_loop(self, s: ast.For, items: list) -> None:
        """A compile-time loop: the body once per item. ``break`` and ``continue`` act now; after
        an iteration that may have returned under a run-time condition, the next ones are
        guarded."""
        flag = self.guard_flag()
        before = self.times_set(flag)

        def iteration(item: Any) -> None:
            self.assign(s.target, item, s.iter)
            with contextlib.suppress(UnrolledContinue):
                self.body(s.body)

        self.loops.append(LoopExits(False, len(self.frames)))
        try:
            for item in items:
                flag = self.guard_flag()
                if flag is not None and self.times_set(flag) > before:
                    self.guarded(s, flag, lambda item=item: iteration(item))
                else:
                    iteration(item)
        except UnrolledBreak:
            pass
        finally:
            self.loops.pop()

    def condition(self, node: ast.expr, value: Any, what: str) -> Operand:
        """The run-time scalar ``value`` as a u1 condition (``!= 0``); a tile is a diagnostic."""
        if isinstance(value.type, TensorType):
            raise self.error(node, f"the {what} condition is a {value.type}, not a block-uniform "
                                   "scalar; select elements with tv.where(cond, x, y) or "
                                   "reduce the tile first")
        if value.dtype != U1:
            zero = Const(0.0 if value.dtype.is_float else 0, value.dtype)
            return self.builder.emit("ne", [value.operand, zero], self.loc(node))
        return value.operand

    def if_stmt(self, s: ast.If) -> None:
        test = self.expr(s.test)
        if not isinstance(test, Value):
            self.body(s.body if test else s.orelse)
            return
        cond = self.condition(s.test, test, "if")
        self.materialize(s.body + s.orelse)
        then_frame = self.push("if", s.lineno)
        try:
            with self.builder.block() as then_body:
                self.body(s.body)
        finally:
            self.pop()
        else_frame = self.push("if", s.lineno)
        try:
            with self.builder.block() as else_body:
                self.body(s.orelse)
        finally:
            self.pop()
        self.merge_branches(s, then_frame, then_body, else_frame, else_body)
        self.builder.append(If(cond, tuple(then_body), tuple(else_body), self.loc(s)))

    def merge_branches(self, s: ast.If, then_frame: Frame, then_body: list, else_frame: Frame,
                       else_body: list) -> None:
        """A name that both branches define anew, with one type, lives on after the ``if`` (as in
        Python): it is declared before the ``if`` and each branch assigns it."""
        for name, a in then_frame.names.items():
            b = else_frame.names.get(name)
            if (self.find(name) is not None or not isinstance(a, Value) or
                    not isinstance(b, Value) or not isinstance(a.operand, Var) or
                    not isinstance(b.operand, Var) or not same_type(a.type, b.type) or
                    (a.is_tensor and a.type.scope != "reg")):
                continue
            ty = a.type
            zero = Const(0.0 if ty.dtype.is_float else 0, ty.dtype)
            if isinstance(ty, TensorType):
                var = self.builder.emit("full", [zero], self.loc(s), name, shape=ty.shape,
                                        dtype=ty.dtype)
            else:
                var = self.builder.emit("copy", [zero], self.loc(s), name)
            then_body.append(Assign(var, a.operand, self.loc(s)))
            else_body.append(Assign(var, b.operand, self.loc(s)))
            self.frames[-1].names[name] = Value(var, name)
            self.gone.pop(name, None)

    def while_stmt(self, s: ast.While) -> None:
        if s.orelse:
            raise self.error(s.orelse[0], "'while ... else' is not supported in a tilevm kernel")
        self.materialize(s.body)
        exits = self.loop_flags(s.body, s)
        with self.builder.block() as cond_body:
            test = self.expr(s.test)
            if not isinstance(test, Value):
                raise self.error(s.test, "a while condition must be a run-time scalar; loop over "
                                         "compile-time values with a Python 'for'")
            cond = self.loop_condition(exits, self.condition(s.test, test, "while"), s.test)
        self.push("while", s.lineno)
        try:
            with self.builder.block() as body:
                self.loop_body(exits, s, lambda: self.body(s.body))
        finally:
            self.pop()
        self.builder.append(While(tuple(cond_body), cond, tuple(body), self.loc(s)))


def _is_docstring(s: ast.stmt) -> bool:
    return isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) and isinstance(
        s.value.value, str)


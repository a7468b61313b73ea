"""Run-time loops: ``tv.range``, which heads a ``for`` statement and becomes Tile IR's ``for``.

(This module's ``range`` hides Python's: it uses none.)
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from tilevm.frontend.builtins.registry import builtin, translates
from tilevm.frontend.transpiler.value import I32, Value
from tilevm.ir.tile.program import Assign, Const, For, Operand, Var, While
from tilevm.ir.tile.types import ScalarType

if TYPE_CHECKING:
    from tilevm.frontend.transpiler.core import Transpiler
    from tilevm.frontend.transpiler.exits import LoopExits


@builtin
def range(start: Any, stop: Any = None, step: Any = 1, unroll: bool | int | None = None) -> Any:
    """A run-time loop ``for i in tv.range(...)``; bounds are block-uniform integers."""


@translates(range, bind=False)
def _range(tr: Transpiler, node: ast.Call) -> None:
    # As an expression it means nothing; the for statement translates it with for_loop.
    raise tr.error(node, "tv.range can only be the iterable of a for loop")


def for_loop(tr: Transpiler, s: ast.For, call: ast.Call) -> None:
    """Translate ``s``, a ``for`` statement whose iterable is ``call``, a call of ``tv.range``:
    its bounds are checked block-uniform integers, the loop variable is read-only in the body."""
    a, n = tr.bind_args(call, range)
    start, stop, step = a["start"], a["stop"], a["step"]
    if stop is None:
        start, stop, n["stop"] = 0, start, n["start"]
    if isinstance(step, int) and step == 0:
        raise tr.error(n["step"], "tv.range: step must not be zero")
    bounds = []
    for key, v in (("start", start), ("stop", stop), ("step", step)):
        op = tr.operand(v, n.get(key, call), like=I32)
        if not isinstance(op.type, ScalarType) or not op.type.dtype.is_integer:
            raise tr.error(n.get(key, call), f"tv.range: {key} must be a block-uniform "
                                             f"integer scalar, got {op.type}")
        bounds.append(op)
    unroll = a["unroll"]
    if isinstance(unroll, Value):
        raise tr.error(n["unroll"], "tv.range: unroll must be a compile-time bool or int")
    if not isinstance(s.target, ast.Name):
        raise tr.error(s.target, "a tv.range loop variable must be a plain name")
    tr.materialize(s.body)
    exits = tr.loop_flags(s.body, s)
    if exits.stop is not None:
        if unroll is not None:
            raise tr.error(n["unroll"], "tv.range: unroll cannot be combined with 'break' or "
                                        "'return' in the loop's body")
        _counted_while(tr, s, bounds, exits)
        return
    var = tr.builder.var(s.target.id, ScalarType(bounds[0].type.dtype))
    with _loop_variable(tr, s, var), tr.builder.block() as stmts:
        tr.loop_body(exits, s, lambda: tr.body(s.body))
    tr.builder.append(For(var, *bounds, tuple(stmts), unroll, tr.loc(s)))


@contextmanager
def _loop_variable(tr: Transpiler, s: ast.For, var: Var) -> Iterator[None]:
    """The frame of the loop ``s``'s body, where its target names ``var``, read-only."""
    assert isinstance(s.target, ast.Name)
    name = s.target.id
    frame = tr.push("for", s.lineno)
    frame.names[name] = Value(var, name)
    was_readonly = name in tr.readonly
    tr.readonly.add(name)
    try:
        yield
    finally:
        if not was_readonly:
            tr.readonly.discard(name)
        tr.pop()


def _counted_while(tr: Transpiler, s: ast.For, bounds: list[Operand], exits: LoopExits) -> None:
    """``s`` with a ``break`` or ``return``: a ``while`` loop over a counter, ended by the
    ``stop`` flag too. The bounds were evaluated once, before; the user's name is the counter,
    read-only in the body; a run-time step of zero stops the kernel, as ``for`` does."""
    start, stop, step = bounds
    constant_step = isinstance(step, Const)
    assert isinstance(s.target, ast.Name)
    loc = tr.loc(s)
    zero = Const(0, step.type.dtype)
    if not constant_step:
        tr.builder.emit("device_assert", [tr.builder.emit("ne", [step, zero], loc)], loc,
                        msg="tv.range: step must not be zero")
    counter = tr.builder.emit("copy", [start], loc, s.target.id)
    with tr.builder.block() as cond_body:
        if constant_step:
            going = tr.builder.emit("lt" if step.value > 0 else "gt", [counter, stop], loc)
        else:
            up = tr.builder.emit("and", [tr.builder.emit("gt", [step, zero], loc),
                                         tr.builder.emit("lt", [counter, stop], loc)], loc)
            down = tr.builder.emit("and", [tr.builder.emit("lt", [step, zero], loc),
                                           tr.builder.emit("gt", [counter, stop], loc)], loc)
            going = tr.builder.emit("or", [up, down], loc)
        cond = tr.loop_condition(exits, going, s)
    with _loop_variable(tr, s, counter), tr.builder.block() as body:
        tr.loop_body(exits, s, lambda: tr.body(s.body))
        tr.builder.append(Assign(counter, tr.builder.emit("add", [counter, step], loc), loc))
    tr.builder.append(While(tuple(cond_body), cond, tuple(body), loc))

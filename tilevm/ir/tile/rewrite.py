"""Helpers for passes (functions from Tile IR to Tile IR): rebuild blocks, substitute operands.

Statements are frozen; a pass returns new tuples. :func:`map_block` applies a function to every
statement, innermost blocks first, and lets it replace one statement by any number;
:func:`substitute` renames variables everywhere (definitions and uses).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from tilevm.ir.tile.program import Assign, For, If, Instr, Kernel, Operand, Stmt, Var, While

__all__ = ["map_block", "map_kernel", "substitute"]


def map_block(stmts: tuple[Stmt, ...], fn: Callable[[Stmt], Stmt | list[Stmt] | None]
              ) -> tuple[Stmt, ...]:
    """``stmts`` with each statement ``s`` replaced by ``fn(s)`` (a statement, a list of them, or
    ``None`` to delete it). Nested blocks are rewritten first, so ``fn`` sees new children."""
    out: list[Stmt] = []
    for s in stmts:
        if isinstance(s, For):
            s = replace(s, body=map_block(s.body, fn))
        elif isinstance(s, If):
            s = replace(s, then_body=map_block(s.then_body, fn),
                        else_body=map_block(s.else_body, fn))
        elif isinstance(s, While):
            s = replace(s, cond_body=map_block(s.cond_body, fn), body=map_block(s.body, fn))
        result = fn(s)
        if result is None:
            continue
        out.extend(result if isinstance(result, list) else [result])
    return tuple(out)


def map_kernel(kernel: Kernel, fn: Callable[[Stmt], Stmt | list[Stmt] | None]) -> Kernel:
    """:func:`map_block` over the launch block and the body of ``kernel``."""
    return replace(kernel, launch_body=map_block(kernel.launch_body, fn),
                   body=map_block(kernel.body, fn))


def substitute(kernel: Kernel, mapping: Mapping[Var, Operand]) -> Kernel:
    """``kernel`` with every occurrence of each variable of ``mapping`` (by name and type) replaced:
    definitions must map to variables, uses may map to any operand."""

    def op(x: Operand) -> Operand:
        return mapping.get(x, x) if isinstance(x, Var) else x

    def define(v: Var | None) -> Var | None:
        if v is None or v not in mapping:
            return v
        new = mapping[v]
        if not isinstance(new, Var):
            raise TypeError(f"substitute: the definition of %{v.name} must map to a variable")
        return new

    def one(s: Stmt) -> Stmt:
        if isinstance(s, Instr):
            return replace(s, result=define(s.result), args=tuple(op(a) for a in s.args))
        if isinstance(s, Assign):
            return replace(s, target=define(s.target), value=op(s.value))
        if isinstance(s, For):
            return replace(s, var=define(s.var), start=op(s.start), stop=op(s.stop),
                           step=op(s.step))
        if isinstance(s, (If, While)):
            return replace(s, cond=op(s.cond))
        raise TypeError(f"substitute: unknown statement {s!r}")

    mapped = map_kernel(kernel, one)
    return replace(mapped, grid=tuple(op(g) for g in mapped.grid))

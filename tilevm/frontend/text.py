"""Read the text form of Tile IR back into a :class:`~tilevm.ir.tile.Kernel`.

``parse(print_kernel(k)) == k`` for every kernel: the grammar (``tile_ir.lark``) mirrors
:mod:`tilevm.ir.tile.printer`. Locations are read back into ``loc`` fields. Layouts are read with
:func:`tilevm.ir.layout.parse_layout`. A syntax error is a :class:`TextFormError` with the line
and column of the offending token.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from tilevm.ir.dtypes import dtype
from tilevm.ir.tile.program import (
    Assign,
    Combine,
    Const,
    For,
    If,
    Instr,
    Kernel,
    Loc,
    Operand,
    Var,
    While,
)
from tilevm.ir.tile.types import ScalarType, TensorType, Type

__all__ = ["TextFormError", "parse"]


class TextFormError(ValueError):
    """A text form that does not parse, or uses a name before defining it."""


@functools.cache
def _parser() -> Any:
    import lark

    grammar = (Path(__file__).parent / "tile_ir.lark").read_text()
    return lark.Lark(grammar, parser="lalr", lexer="contextual", propagate_positions=True)


def parse(text: str) -> Kernel:
    """Parse one kernel's text form (as :func:`tilevm.ir.tile.print_kernel` writes it)."""
    import lark

    try:
        tree = _parser().parse(text)
    except lark.exceptions.UnexpectedInput as e:
        line = text.splitlines()[e.line - 1] if 0 < e.line <= len(text.splitlines()) else ""
        raise TextFormError(f"line {e.line}, column {e.column}: syntax error\n  {line}\n  "
                            f"{' ' * (max(e.column, 1) - 1)}^") from None
    return _Reader().kernel(tree.children[0])


def _token(t: Any) -> str:
    return str(t)


class _Reader:
    """Walks the parse tree top-down, keeping the type of every variable defined so far."""

    def __init__(self) -> None:
        self.types: dict[str, Type] = {}

    # -- structure ---------------------------------------------------------------------------------

    def kernel(self, node: Any) -> Kernel:
        name, *rest = node.children
        params, constants, loc = [], (), None
        launch = body = None
        for child in rest:
            if child is None:
                continue
            kind = child.data
            if kind == "param":
                params.append(self.define(child.children[0], self.type(child.children[1])))
            elif kind == "consts":
                constants = self.attrs(child.children[0])
            elif kind == "loc":
                loc = self.loc(child)
            elif kind == "launch":
                launch = child
            elif kind == "body":
                body = child
        for p in params:
            for n in getattr(p.type, "shape", ()):
                if isinstance(n, str):
                    self.types[n] = ScalarType(dtype("i32"))
        *grid_nodes, warps, launch_body = launch.children
        launch_stmts = self.body(launch_body)
        grid = tuple(self.operand(g) for g in grid_nodes)
        return Kernel(_token(name), tuple(params), constants, launch_stmts, grid, int(warps),
                      self.body(body), loc)

    def body(self, node: Any) -> tuple:
        return tuple(self.stmt(s) for s in node.children)

    def stmt(self, node: Any) -> Any:
        return getattr(self, node.data)(node)

    def instr(self, node: Any) -> Instr:
        result = None
        children = [c for c in node.children]
        if children and getattr(children[0], "data", None) == "result":
            res = children.pop(0)
            result_type = self.type(res.children[1])
            result_name = res.children[0]
        else:
            result_type = result_name = None
        op = _token(children.pop(0))
        args, attrs, loc = [], (), None
        for c in children:
            if c is None:
                continue
            if c.data == "operand":
                args.append(self.operand(c))
            elif c.data == "attrdict":
                attrs = self.attrs(c)
            elif c.data == "loc":
                loc = self.loc(c)
        if result_name is not None:
            result = self.define(result_name, result_type)
        return Instr(result, op, tuple(args), attrs, loc)

    def assign(self, node: Any) -> Assign:
        target, value, *loc = node.children
        return Assign(self.use(target), self.operand(value), self.maybe_loc(loc))

    def for_stmt(self, node: Any) -> For:
        var, ty, start, stop, step, *rest = node.children
        unroll = None
        start_op, stop_op, step_op = self.operand(start), self.operand(stop), self.operand(step)
        loop_var = self.define(var, self.type(ty))
        body, loc = (), None
        for c in rest:
            if c is None:
                continue
            if c.data == "unroll":
                tok = c.children[0]
                unroll = True if _token(tok) == "full" else int(tok)
            elif c.data == "body":
                body = self.body(c)
            elif c.data == "loc":
                loc = self.loc(c)
        return For(loop_var, start_op, stop_op, step_op, body, unroll, loc)

    def if_stmt(self, node: Any) -> If:
        cond, then, *rest = node.children
        cond_op, then_body = self.operand(cond), self.body(then)
        else_body, loc = (), None
        for c in rest:
            if c is None:
                continue
            if c.data == "else_block":
                else_body = self.body(c.children[0])
            elif c.data == "loc":
                loc = self.loc(c)
        return If(cond_op, then_body, else_body, loc)

    def while_stmt(self, node: Any) -> While:
        cond_body_node, cond, body, *loc = node.children
        cond_body = self.body(cond_body_node)
        return While(cond_body, self.operand(cond), self.body(body), self.maybe_loc(loc))

    # -- leaves ------------------------------------------------------------------------------------

    def define(self, tok: Any, ty: Type) -> Var:
        name = _token(tok)[1:]
        self.types[name] = ty
        return Var(name, ty)

    def use(self, tok: Any) -> Var:
        name = _token(tok)[1:]
        if name not in self.types:
            raise TextFormError(f"line {tok.line}, column {tok.column}: %{name} is used before "
                                "it is defined")
        return Var(name, self.types[name])

    def operand(self, node: Any) -> Operand:
        child = node.children[0]
        if hasattr(child, "data"):  # const
            number, dt_tok = child.children
            dt = self.dtype(dt_tok)
            text = _token(number)
            return Const(float(text) if dt.is_float else int(text), dt)
        return self.use(child)

    def dtype(self, tok: Any):
        try:
            return dtype(_token(tok))
        except ValueError:
            raise TextFormError(f"line {tok.line}, column {tok.column}: unknown dtype "
                                f"{_token(tok)!r}") from None

    def type(self, node: Any) -> Type:
        if node.data == "scalar_type":
            return ScalarType(self.dtype(node.children[0]))
        kind, dt, *rest = node.children
        shape, layout = [], None
        for c in rest:
            if c is None:
                continue
            if c.data == "dim":
                tok = c.children[0]
                shape.append(int(tok) if tok.type == "INT" else _token(tok))
            elif c.data == "type_layout":
                layout = _parse_layout(c.children[0], shared=_token(kind) == "shared")
        scope = {"tile": "reg", "shared": "shared", "global": "global"}[_token(kind)]
        return TensorType(self.dtype(dt), tuple(shape), scope, layout)

    def attrs(self, node: Any) -> tuple[tuple[str, Any], ...]:
        pairs = []
        for a in node.children:
            if a is None:
                continue
            key, value = a.children
            pairs.append((_token(key), self.value(value)))
        return tuple(pairs)

    def value(self, node: Any) -> Any:
        kind = node.data
        if kind == "int_value":
            return int(node.children[0])
        if kind == "float_value":
            return float(node.children[0])
        if kind == "str_value":
            return json.loads(node.children[0])
        if kind in ("true_value", "false_value"):
            return kind == "true_value"
        if kind == "none_value":
            return None
        if kind == "dtype_value":
            return self.dtype(node.children[0])
        if kind == "list_value":
            return tuple(self.value(c) for c in node.children if c is not None)
        if kind == "layout_value":
            return _parse_layout(node.children[0])
        if kind == "shared_layout_value":
            return _parse_layout(node.children[0], shared=True)
        if kind == "combine_value":
            return self.combine(node)
        raise TextFormError(f"unknown attribute value {node!r}")

    def combine(self, node: Any) -> Combine:
        """A combine function: its parameters and results are defined as the kernel's variables
        are (their names are unique in a kernel the DSL builds)."""
        first, second, *body, result = node.children
        params = tuple(self.define(p.children[0], self.type(p.children[1]))
                       for p in (first, second))
        instrs = tuple(self.instr(c) for c in body)
        return Combine(params, instrs, self.operand(result))

    def loc(self, node: Any) -> Loc:
        file, line, col = node.children
        return Loc(json.loads(file), int(line), int(col))

    def maybe_loc(self, rest: list) -> Loc | None:
        for c in rest:
            if c is not None:
                return self.loc(c)
        return None


def _parse_layout(tok: Any, shared: bool = False) -> Any:
    from tilevm.ir.layout import LayoutSyntaxError, parse_layout, parse_shared_layout

    text = json.loads(_token(tok))
    try:
        return parse_shared_layout(text) if shared else parse_layout(text)
    except (LayoutSyntaxError, ValueError) as e:
        raise TextFormError(f"line {tok.line}, column {tok.column}: bad layout {text!r}: {e}") \
            from None

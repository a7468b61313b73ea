"""The text form of Tile IR (``.tvm``): what :func:`print_kernel` writes,
:func:`tilevm.frontend.text.parse` reads back.

::

    kernel @add(%x: global<f32[n]>, %y: global<f32[n]>) consts {bs = 128} loc("add.py":4:1) {
      launch grid(%g) warps 4 {
        %g: i32 = cdiv(%n, 128:i32)
      }
      %i: i32 = block_idx() {axis = 0}
      %t0: i32 = mul(%i, 128:i32) loc("add.py":7:9)
      %a: tile<f32[128]> = load(%x, %t0) {mask = "bounds", other = 0, shape = [128]}
      store(%y, %a, %t0) {mask = "bounds"}
      for %k: i32 = 0:i32 to %n step 1:i32 unroll 2 { ... }
      if %c { ... } else { ... }
      while { ... } cond %c do { ... }
      assign %acc = %t5
      %m: f32 = reduce(%a) {axis = 0, combine = fn(%p: f32, %q: f32) {
        %r: f32 = max(%p, %q); yield %r }, op = "custom"}  (on one line)
    }

Operands are ``%name`` or ``value:dtype``; results carry their type; attributes are sorted by
name; a layout prints as ``layout("<repr>")`` and a location as a trailing ``loc("file":line:col)``;
a combine function (:class:`~tilevm.ir.tile.program.Combine`) prints on one line as
``fn(%p: T, %q: T) { <instruction>; … yield <operand> }``.
"""

from __future__ import annotations

import json
from typing import Any

from tilevm.ir.dtypes import DType
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
    Stmt,
    While,
)

__all__ = ["format_attr", "print_kernel", "print_stmt"]

_INDENT = "  "


def print_kernel(kernel: Kernel, locations: bool = True) -> str:
    """The text form of ``kernel``; ``locations=False`` leaves out every ``loc(...)``."""
    params = ", ".join(f"%{p.name}: {p.type}" for p in kernel.params)
    consts = ""
    if kernel.constants:
        consts = " consts " + _attrs(kernel.constants)
    lines = [f"kernel @{kernel.name}({params}){consts}{_loc(kernel.loc, locations)} {{"]
    grid = ", ".join(_operand(g) for g in kernel.grid)
    lines.append(f"{_INDENT}launch grid({grid}) warps {kernel.warps} {{")
    lines += [print_stmt(s, 2, locations) for s in kernel.launch_body]
    lines.append(f"{_INDENT}}}")
    lines += [print_stmt(s, 1, locations) for s in kernel.body]
    lines.append("}")
    return "\n".join(lines) + "\n"


def print_stmt(s: Stmt, depth: int = 0, locations: bool = True) -> str:
    """One statement (with its nested blocks) at indentation ``depth``."""
    pad = _INDENT * depth
    loc = _loc(s.loc, locations)
    if isinstance(s, Instr):
        head = "" if s.result is None else f"%{s.result.name}: {s.result.type} = "
        args = ", ".join(_operand(a) for a in s.args)
        attrs = f" {_attrs(s.attrs, locations)}" if s.attrs else ""
        return f"{pad}{head}{s.op}({args}){attrs}{loc}"
    if isinstance(s, Assign):
        return f"{pad}assign %{s.target.name} = {_operand(s.value)}{loc}"
    if isinstance(s, For):
        unroll = ""
        if s.unroll is True:
            unroll = " unroll full"
        elif s.unroll is not None and s.unroll is not False:
            unroll = f" unroll {s.unroll}"
        head = (f"{pad}for %{s.var.name}: {s.var.type} = {_operand(s.start)} to "
                f"{_operand(s.stop)} step {_operand(s.step)}{unroll} {{")
        return "\n".join([head, *_body(s.body, depth, locations), f"{pad}}}{loc}"])
    if isinstance(s, If):
        lines = [f"{pad}if {_operand(s.cond)} {{", *_body(s.then_body, depth, locations)]
        if s.else_body:
            lines += [f"{pad}}} else {{", *_body(s.else_body, depth, locations)]
        lines.append(f"{pad}}}{loc}")
        return "\n".join(lines)
    if isinstance(s, While):
        return "\n".join([f"{pad}while {{", *_body(s.cond_body, depth, locations),
                          f"{pad}}} cond {_operand(s.cond)} do {{",
                          *_body(s.body, depth, locations), f"{pad}}}{loc}"])
    raise TypeError(f"print_stmt: not a statement: {s!r}")


def _body(stmts: tuple[Stmt, ...], depth: int, locations: bool) -> list[str]:
    return [print_stmt(s, depth + 1, locations) for s in stmts]


def _operand(x: Operand) -> str:
    return str(x) if isinstance(x, Const) else f"%{x.name}"


def _loc(loc: Loc | None, locations: bool) -> str:
    if loc is None or not locations:
        return ""
    return f" loc({json.dumps(loc.file)}:{loc.line}:{loc.col})"


def _attrs(attrs: tuple[tuple[str, Any], ...], locations: bool = True) -> str:
    return "{" + ", ".join(f"{k} = {format_attr(v, locations)}" for k, v in attrs) + "}"


def format_attr(v: Any, locations: bool = True) -> str:
    """An attribute value as the text form writes it (``locations``: of a combine function's
    instructions too)."""
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return Const(v, _f64()).text()
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, DType):
        return v.name
    if isinstance(v, tuple):
        return "[" + ", ".join(format_attr(x, locations) for x in v) + "]"
    if isinstance(v, Combine):
        params = ", ".join(f"%{p.name}: {p.type}" for p in v.params)
        body = "".join(f"{print_stmt(s, 0, locations)}; " for s in v.body)
        return f"fn({params}) {{ {body}yield {_operand(v.result)} }}"
    kind = "shared_layout" if type(v).__name__ == "SharedLayout" else "layout"
    return f"{kind}({json.dumps(repr(v))})"


def _f64() -> DType:
    from tilevm.ir.dtypes import dtype

    return dtype("f64")

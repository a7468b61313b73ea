"""The source of a kernel or helper function: its syntax tree, and where it lies in its file."""

from __future__ import annotations

import ast
import inspect
import textwrap
from dataclasses import dataclass
from typing import Any

__all__ = ["Source", "source_of"]


@dataclass
class Source:
    """Where a function's code lives, to map AST positions back to the file."""

    file: str
    lines: list[str]
    first_line: int  # file line of the parsed text's line 1
    indent: int  # columns removed by dedenting
    tree: ast.FunctionDef
    globals: dict[str, Any]


_SOURCES: dict[Any, Source] = {}


def source_of(fn: Any) -> Source:
    """The parsed source of a Python function (cached)."""
    if fn in _SOURCES:
        return _SOURCES[fn]
    try:
        lines, first = inspect.getsourcelines(fn)
        file = inspect.getsourcefile(fn) or "<unknown>"
    except (OSError, TypeError) as e:
        raise TypeError(f"tilevm.kernel: cannot read the source of {fn.__qualname__} ({e})") from e
    text = "".join(lines)
    dedented = textwrap.dedent(text)
    indent = len(lines[0]) - len(lines[0].lstrip()) if dedented != text else 0
    tree = ast.parse(dedented)
    fdef = tree.body[0]
    if not isinstance(fdef, ast.FunctionDef):
        raise TypeError(f"tilevm.kernel: {fn.__qualname__} is not a plain function")
    env = dict(fn.__globals__)
    if fn.__closure__:
        env.update(zip(fn.__code__.co_freevars, (c.cell_contents for c in fn.__closure__)))
    src = Source(file, text.splitlines(), first, indent, fdef, env)
    _SOURCES[fn] = src
    return src

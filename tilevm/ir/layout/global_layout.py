"""Global-memory layouts: shapes and element strides whose entries may be symbolic.

An entry is an ``int`` or a small integer expression in run-time names, written as text:
``"m"``, ``"k*n"``, ``"(n + 7) // 8"``. Expressions use names, integer constants, ``+ - * // %`` and
parentheses; they are checked on construction and evaluated with ``bind``.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

Extent = int | str

_OPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
        ast.FloorDiv: lambda a, b: a // b, ast.Mod: lambda a, b: a % b}


def _parse_extent(what: str, text: str) -> ast.expr:
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise ValueError(f"{what}: {text!r} is not an integer expression") from None
    for node in ast.walk(tree):
        ok = (isinstance(node, (ast.Name, ast.Load, ast.BinOp, ast.UnaryOp, ast.USub))
              or type(node) in _OPS
              or (isinstance(node, ast.Constant) and type(node.value) is int))
        if isinstance(node, ast.BinOp) and type(node.op) not in _OPS:
            ok = False
        if isinstance(node, ast.UnaryOp) and not isinstance(node.op, ast.USub):
            ok = False
        if not ok:
            raise ValueError(f"{what}: {text!r} is not an integer expression of names "
                             f"(only + - * // % and parentheses)")
    return tree


def _evaluate(node: ast.expr, env: Mapping[str, int], text: str) -> int:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in env:
            raise KeyError(f"no value bound for {node.id!r} in {text!r}")
        return int(env[node.id])
    if isinstance(node, ast.UnaryOp):
        return -_evaluate(node.operand, env, text)
    assert isinstance(node, ast.BinOp)
    return _OPS[type(node.op)](_evaluate(node.left, env, text), _evaluate(node.right, env, text))


def _normalize(what: str, extent: Extent) -> Extent:
    if isinstance(extent, bool):
        raise TypeError(f"{what}: expected an int or an expression, got {extent!r}")
    if isinstance(extent, int):
        return extent
    if isinstance(extent, str):
        tree = _parse_extent(what, extent)
        if isinstance(tree, ast.Constant):
            return tree.value
        return ast.unparse(tree)
    raise TypeError(f"{what}: expected an int or an expression, got {extent!r}")


def _times(a: Extent, b: Extent) -> Extent:
    if isinstance(a, int) and isinstance(b, int):
        return a * b
    if a == 1:
        return b
    if b == 1:
        return a
    return f"({a}) * ({b})"  # _normalize's unparse drops the parentheses it does not need


@dataclass(frozen=True, init=False)
class GlobalLayout:
    """A global tensor's ``shape`` and element ``strides``, each entry an int or an expression
    in run-time names. Without ``strides`` the layout is dense row-major."""

    shape: tuple[Extent, ...]
    strides: tuple[Extent, ...]

    def __init__(self, shape: Sequence[Extent], strides: Sequence[Extent] | None = None) -> None:
        shape = tuple(_normalize("GlobalLayout shape", s) for s in shape)
        if strides is None:
            out: list[Extent] = []
            step: Extent = 1
            for s in reversed(shape):
                out.append(step)
                step = _normalize("GlobalLayout stride", _times(s, step))
            strides = tuple(reversed(out))
        strides = tuple(_normalize("GlobalLayout strides", s) for s in strides)
        if len(shape) != len(strides):
            raise ValueError(f"GlobalLayout: shape {shape} and strides {strides} differ in rank")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "strides", strides)

    @property
    def rank(self) -> int:
        """The number of dimensions."""
        return len(self.shape)

    @property
    def symbols(self) -> frozenset[str]:
        """The run-time names the shape and strides use."""
        names = set()
        for e in self.shape + self.strides:
            if isinstance(e, str):
                names |= {n.id for n in ast.walk(ast.parse(e, mode="eval"))
                          if isinstance(n, ast.Name)}
        return frozenset(names)

    def bind(self, env: Mapping[str, int]) -> GlobalLayout:
        """The layout with every name replaced by its value in ``env`` (all entries ints)."""
        def value(e: Extent) -> int:
            return e if isinstance(e, int) else _evaluate(ast.parse(e, mode="eval").body, env, e)
        return GlobalLayout([value(e) for e in self.shape], [value(e) for e in self.strides])

    def offset(self, index: Sequence[int], env: Mapping[str, int] | None = None) -> int:
        """The element offset of ``index`` (names bound from ``env``)."""
        bound = self.bind(env or {})
        if len(index) != self.rank:
            raise ValueError(f"index {tuple(index)} does not have rank {self.rank}")
        return sum(int(i) * int(s) for i, s in zip(index, bound.strides))

    def __repr__(self) -> str:
        return f"GlobalLayout({self.shape!r}, strides={self.strides!r})"


def parse_global_layout(text: str) -> GlobalLayout:
    """Parse the text a ``GlobalLayout`` prints as, e.g.
    ``GlobalLayout(('m', 'k'), strides=('k', 1))``."""
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise ValueError(f"not a GlobalLayout: {text!r}") from None
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "GlobalLayout"):
        raise ValueError(f"not a GlobalLayout: {text!r}")

    def entries(n: ast.AST) -> tuple[Extent, ...]:
        if not isinstance(n, (ast.Tuple, ast.List)) or not all(
                isinstance(e, ast.Constant) and type(e.value) in (int, str) for e in n.elts):
            raise ValueError(f"expected a tuple of ints and strings: {ast.unparse(n)!r} "
                             f"in {text!r}")
        return tuple(e.value for e in n.elts)

    args = [entries(a) for a in node.args]
    kwargs = {k.arg: entries(k.value) for k in node.keywords if k.arg}
    return GlobalLayout(*args, **kwargs)

"""Layouts as text: the constructor expression a layout prints as, its parser, and its picture.

A register layout prints as a product of primitives, e.g. ``local(2, 1) * spatial(8, 4) *
local(1, 2)``; a layout that no such product expresses (a dimension whose thread digits run against
its index order) prints as ``reshape(<product over its modes>, <shape>)``. ``parse_layout`` reads
any expression of the algebra back, through Python's ``ast`` (never ``eval``).
"""

from __future__ import annotations

import ast
import itertools
from typing import TYPE_CHECKING, Any

from tilevm.ir.layout import algebra
from tilevm.ir.layout.register import RegisterLayout

if TYPE_CHECKING:
    from tilevm.ir.layout.shared import SharedLayout

# ---- printing ---------------------------------------------------------------------------------


def _product_terms(layout: RegisterLayout) -> list[str] | None:
    """Factor a canonical layout into the fewest primitives, or None if its chains conflict with
    its dimension order (then no product of primitives expresses it).

    A product lists, per dimension, its factors' modes outer first, and its thread and register
    digits most significant first; so a factorization is an interleaving of the spatial and local
    chains that respects every dimension's mode order. The state of the search is how much of
    each chain is taken; it is small, so we search it exhaustively for the fewest factors.
    """
    dims = layout.mode_dims
    spatial, local = layout.spatial_modes, layout.local_modes
    earlier = {i: {j for j in range(i) if dims[j] == dims[i]} for i in range(len(dims))}

    def factor(chain: tuple[int, ...], start: int, taken: set[int]) -> list[list[int]]:
        """Every factor (list of chain entries) that can come next from ``chain[start:]``."""
        options: list[list[int]] = []
        if start == len(chain):
            return options
        first = chain[start]
        if first < 0:
            return [[first]]
        if not earlier[first] <= taken:
            return options
        members, column = [first], None
        options.append(list(members))
        for f in chain[start + 1 :]:
            if f < 0 or dims[f] in {dims[m] for m in members}:
                break
            if not earlier[f] <= taken | set(members):
                break
            is_column = dims[f] < dims[members[-1]]
            if column is not None and is_column != column:
                break
            column = is_column
            members.append(f)
            options.append(list(members))
        return options

    def term(members: list[int], kind: str) -> str:
        if members[0] < 0:
            return f"replicated({-members[0]})"
        sizes = [1] * layout.rank
        for m in members:
            sizes[dims[m]] = layout.mode_shape[m]
        column = len(members) > 1 and dims[members[1]] < dims[members[0]]
        return f"{'column_' if column else ''}{kind}({', '.join(map(str, sizes))})"

    memo: dict[tuple[int, int], list[str] | None] = {}

    def best(i: int, j: int) -> list[str] | None:
        if i == len(spatial) and j == len(local):
            return []
        if (i, j) in memo:
            return memo[(i, j)]
        taken = set(spatial[:i]) | set(local[:j])
        result: list[str] | None = None
        for chain, kind in ((spatial, "spatial"), (local, "local")):
            start = i if kind == "spatial" else j
            for members in factor(chain, start, taken):
                n = len(members)
                rest = best(i + n, j) if kind == "spatial" else best(i, j + n)
                if rest is not None and (result is None or len(rest) + 1 < len(result)):
                    result = [term(members, kind), *rest]
        memo[(i, j)] = result
        return result

    terms = best(0, 0)
    if terms is not None and all(t.startswith("replicated") for t in terms) and (
            layout.rank or not terms):
        terms.append(f"local({', '.join('1' * layout.rank)})")
    return terms


def layout_expression(layout: RegisterLayout) -> str:
    """A constructor expression of the algebra that denotes ``layout``; ``parse_layout`` reads
    it back to an equal layout."""
    canonical = layout.canonical()
    terms = _product_terms(canonical)
    if terms is not None:
        return " * ".join(terms)
    # Over the space of its modes (one dimension per mode) every layout is a product; a row-major
    # reshape then merges each dimension's modes back.
    modes = canonical.mode_shape
    spread = RegisterLayout(modes, modes, canonical.spatial_modes, canonical.local_modes)
    inner = " * ".join(_product_terms(spread) or ())
    shape = ", ".join(map(str, canonical.shape)) + ("," if canonical.rank == 1 else "")
    return f"reshape({inner}, ({shape}))"


def layout_picture(layout: RegisterLayout) -> str:
    """A text grid: one cell per tile element showing ``thread:local`` of its holders
    (``t0,t1,…:local`` when replicated). Tiles of rank above 2 print one grid per leading index."""
    header = (f"{layout!r}  shape={layout.shape} threads={layout.num_threads} "
              f"local={layout.local_size}")

    def cell(index: tuple[int, ...]) -> str:
        held = layout.holders(index)
        threads = [t for t, _ in held]
        shown = ",".join(map(str, threads)) if len(threads) <= 4 else \
            f"{threads[0]},{threads[1]},…,{threads[-1]}"
        return f"{shown}:{held[0][1]}"

    def grid(prefix: tuple[int, ...], rows: int, cols: int, two_d: bool) -> list[str]:
        cells = [[cell(prefix + ((r, c) if two_d else (c,))) for c in range(cols)]
                 for r in range(rows)]
        width = max(len(c) for row in cells for c in row)
        return ["| " + " | ".join(c.rjust(width) for c in row) + " |" for row in cells]

    lines = [header]
    if layout.rank == 0:
        lines.append(f"| {cell(())} |")
    elif layout.rank == 1:
        lines += grid((), 1, layout.shape[0], False)
    else:
        *lead, rows, cols = layout.shape
        for prefix in itertools.product(*(range(s) for s in lead)):
            if prefix:
                lines.append("[" + ", ".join(map(str, prefix)) + ", :, :]")
            lines += grid(prefix, rows, cols, True)
    return "\n".join(lines)


# ---- parsing ----------------------------------------------------------------------------------

_PRIMITIVES = {
    "spatial": algebra.spatial,
    "local": algebra.local,
    "column_spatial": algebra.column_spatial,
    "column_local": algebra.column_local,
    "replicated": algebra.replicated,
}
_OPERATIONS = {
    "reshape": algebra.reshape,
    "permute": algebra.permute,
    "reduce": algebra.reduce,
    "concat": algebra.concat,
    "left_divide": algebra.left_divide,
}


class LayoutSyntaxError(ValueError):
    """Text that is not an expression of the layout algebra."""


def _fail(text: str, node: ast.AST, why: str) -> LayoutSyntaxError:
    return LayoutSyntaxError(f"{why}: {ast.unparse(node)!r} in {text!r}")


def _constant(text: str, node: ast.AST) -> Any:
    """An int, a bool, None, or a tuple/list of them."""
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, int)):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        value = _constant(text, node.operand)
        if isinstance(value, int) and not isinstance(value, bool):
            return -value
    if isinstance(node, (ast.Tuple, ast.List)):
        return tuple(_constant(text, e) for e in node.elts)
    raise _fail(text, node, "expected an integer constant")


def _parse_root(text: str) -> ast.expr:
    if not isinstance(text, str):
        raise TypeError(f"expected layout text, got {type(text).__name__}")
    try:
        return ast.parse(text.strip(), mode="eval").body
    except SyntaxError as e:
        raise LayoutSyntaxError(f"not a layout expression: {text!r} ({e.msg})") from None


def parse_layout(text: str) -> RegisterLayout:
    """Parse a register-layout expression: primitives (``spatial``, ``local``,
    ``column_spatial``, ``column_local``, ``replicated``) with integer arguments, ``*`` (compose),
    ``/`` (divide), and ``reshape``, ``permute``, ``reduce``, ``concat``, ``left_divide``.

    Raises ``LayoutSyntaxError`` (a ``ValueError``) naming the offending part of the text.
    """

    def walk(node: ast.AST) -> RegisterLayout:
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mult, ast.Div)):
            left, right = walk(node.left), walk(node.right)
            return left * right if isinstance(node.op, ast.Mult) else left / right
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            name = node.func.id
            if name in _PRIMITIVES:
                if node.keywords:
                    raise _fail(text, node, f"{name} takes no keywords")
                args = [_constant(text, a) for a in node.args]
                return _PRIMITIVES[name](*args)
            if name in _OPERATIONS:
                args = [walk(node.args[0])] if node.args else []
                for a in node.args[1:]:
                    is_layout = isinstance(a, (ast.Call, ast.BinOp))
                    args.append(walk(a) if is_layout else _constant(text, a))
                kwargs = {k.arg: _constant(text, k.value) for k in node.keywords if k.arg}
                try:
                    return _OPERATIONS[name](*args, **kwargs)
                except TypeError as e:
                    raise _fail(text, node, f"bad arguments to {name} ({e})") from None
            raise _fail(text, node, f"unknown layout function {name!r}")
        raise _fail(text, node, "not part of the layout algebra")

    return walk(_parse_root(text))


def parse_shared_layout(text: str) -> SharedLayout:
    """Parse the text a ``SharedLayout`` prints as, e.g.
    ``SharedLayout((64, 64), strides=(64, 1), swizzle=Swizzle(3, 0, 3))``.

    Raises ``LayoutSyntaxError`` (a ``ValueError``) naming the offending part of the text.
    """
    from tilevm.ir.layout.shared import SharedLayout, Swizzle

    def call(node: ast.AST, name: str) -> tuple[list[Any], dict[str, Any]]:
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == name):
            raise _fail(text, node, f"expected {name}(...)")
        args = [value(a) for a in node.args]
        kwargs = {k.arg: value(k.value) for k in node.keywords if k.arg}
        return args, kwargs

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Call):
            args, kwargs = call(node, "Swizzle")
            return Swizzle(*args, **kwargs)
        return _constant(text, node)

    args, kwargs = call(_parse_root(text), "SharedLayout")
    try:
        return SharedLayout(*args, **kwargs)
    except TypeError as e:
        raise LayoutSyntaxError(f"bad arguments to SharedLayout in {text!r} ({e})") from None

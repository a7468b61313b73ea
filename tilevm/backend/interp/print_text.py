"""The text the interpreter prints for ``print`` (``tv.debug_print``): the same lines as the
lowering prints (``tilevm/backend/lower/rules_debug.py``), without the layout, which the
interpreter does not have.

Floats print as C's ``%g`` of their value (Python's ``g`` format gives the same digits),
integers in decimal; a tile's cells are right-aligned to the widest value of its dtype (7 for
floats)."""

from __future__ import annotations

import itertools

import numpy as np

from tilevm.ir.dtypes import DType

__all__ = ["print_lines"]

_FLOAT_CELL_WIDTH = 7
_INDENT = "    "


def _width(dt: DType) -> int:
    return _FLOAT_CELL_WIDTH if dt.is_float else max(len(str(dt.min)), len(str(dt.max)))


def _format(value: object, dt: DType, width: int = 0) -> str:
    return f"{float(value):{width}g}" if dt.is_float else f"{int(value):{width}d}"


def print_lines(block: tuple[int, ...], prefix: str,
                values: list[tuple[np.ndarray, DType]]) -> list[str]:
    """The lines of one ``print`` in ``block``: ``values`` are the decoded operands (arrays of
    any rank; rank 0 is a scalar) with their dtypes."""
    head = f"[block {block}] {prefix}"
    tiles: list[tuple[str, np.ndarray, DType]] = []
    for v, dt in values:
        if v.ndim == 0:
            head += " " + _format(v[()], dt)
        else:
            name = f"tile{len(tiles) + 1}"
            head += " " + name
            tiles.append((name, v, dt))
    lines = [head]
    for name, v, dt in tiles:
        title = f"{dt.name}[{', '.join(map(str, v.shape))}]"
        lines.append(f"  {name}: {title} (the interpreter has no layout)")
        lines.append(f"{_INDENT[2:]}  values:")
        width = _width(dt)
        grids = v.reshape((-1, *v.shape[-2:])) if v.ndim >= 2 else v.reshape(1, 1, -1)
        leads = list(itertools.product(*(range(n) for n in v.shape[:-2])))
        for lead, grid in zip(leads, grids, strict=True):
            if lead:
                lines.append(_INDENT + "[" + ", ".join(map(str, lead)) + ", :, :]")
            for row in grid:
                lines.append(_INDENT[1:] + "".join(" " + _format(x, dt, width) for x in row))
    return lines

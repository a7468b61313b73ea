"""The lowering's diagnostics: what a kernel asks of the hardware that it cannot have."""

from __future__ import annotations

import linecache

from tilevm.ir.errors import CompileError
from tilevm.ir.tile.program import Loc

__all__ = ["LoweringError", "lowering_error"]


class LoweringError(CompileError):
    """A kernel the lowering cannot compile (a tile too large for the registers or the shared
    memory, a layout that does not fit the block, an operation the target lacks), reported at the
    user's source line."""


def lowering_error(message: str, loc: Loc | None) -> LoweringError:
    """A :class:`LoweringError` at ``loc`` (the Tile IR instruction's source location), showing
    the source line when the file can be read."""
    if loc is None:
        return LoweringError(message)
    text = linecache.getline(loc.file, loc.line).rstrip("\n")
    return LoweringError(message, loc.file, loc.line, loc.col, text)

"""The state of one translation, shared by the parts of the transpiler, and its diagnostics.

:class:`~tilevm.frontend.transpiler.core.Transpiler` is put together from one class per concern
(scopes, statements, expressions, calls, operands); each derives from :class:`TranspilerBase` and
calls the others' methods through ``self``, as the translation of one construct needs another's
(an expression contains calls, a call of a helper contains statements).
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

from tilevm.frontend.builder import Builder
from tilevm.frontend.diagnostics import CompileError
from tilevm.frontend.transpiler.source import source_of
from tilevm.ir.tile.program import Loc, Var

if TYPE_CHECKING:
    from tilevm.frontend.transpiler.exits import LoopExits
    from tilevm.frontend.transpiler.scopes import Frame
    from tilevm.frontend.transpiler.value import Value

__all__ = ["TranspilerBase"]


class TranspilerBase:
    """What a translation keeps: the function, its constants, the scopes, the IR being built."""

    def __init__(self, fn: Any, constants: dict[str, Any],
                 definition_locals: dict[str, Any] | None = None) -> None:
        self.fn = fn
        self.definition_locals = definition_locals or {}
        self.src = source_of(fn)
        self.constants = dict(constants)
        self.builder = Builder()
        self.frames: list[Frame] = []
        self.readonly: set[str] = set()
        self.gone: dict[str, str] = {}  # names out of scope → why
        self.launch: tuple[tuple, int, list] | None = None
        self.grid_rank = 0
        self.depth = 0
        self.dim_names: set[str] = set()
        self.dim_values: dict[str, Value] = {}
        # early exits (tilevm.frontend.transpiler.exits): the enclosing loops of the function
        # being translated, the kernel's `returned` flag, how often each flag was set so far
        self.loops: list[LoopExits] = []
        self.returned: Var | None = None
        self.flag_sets: dict[str, int] = {}

    def loc(self, node: ast.AST) -> Loc:
        """The file position of ``node`` (a node of the function being translated)."""
        line = getattr(node, "lineno", 1) + self.src.first_line - 1
        col = getattr(node, "col_offset", 0) + self.src.indent + 1
        return Loc(self.src.file, line, col)

    def error(self, node: ast.AST, message: str) -> CompileError:
        """A diagnostic at ``node``, underlining it when it fits on one line (to be raised)."""
        loc = self.loc(node)
        index = getattr(node, "lineno", 1) - 1
        source_line = self.src.lines[index] if 0 <= index < len(self.src.lines) else ""
        end = None
        if getattr(node, "end_lineno", None) == getattr(node, "lineno", None):
            end = node.end_col_offset + self.src.indent + 1
        return CompileError(message, loc.file, loc.line, loc.col, source_line, end)

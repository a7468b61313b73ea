"""Errors every layer may raise or catch, so that catching them needs no import of a backend."""

from __future__ import annotations

__all__ = ["CompileError", "KernelExecutionError"]


class KernelExecutionError(RuntimeError):
    """A kernel did something undefined while it ran (an unmasked access outside a tensor, a
    partial-mask warp instruction…): the user's program is at fault, not the compiler. Each
    backend raises a subclass whose message names the instruction and, where known, the line."""


class CompileError(Exception):
    """A mistake in a kernel's source: message, file, 1-based line and column, the source line.

    Shown like a compiler's diagnostic::

        kernels.py:12:17: error: load: 3 offsets for tensor 'a' of rank 2
            x = tv.load(a, (i, j, k), (bm, bk))
                           ^~~~~~~~~

    The frontend raises it for what it reads in the source, the lowering for what a kernel asks
    of the hardware (a tile that cannot fit, a layout that cannot be used).
    """

    def __init__(self, message: str, file: str = "<unknown>", line: int = 0, col: int = 0,
                 source_line: str = "", end_col: int | None = None) -> None:
        self.message, self.file, self.line, self.col = message, file, line, col
        self.source_line = source_line
        self.end_col = end_col
        super().__init__(self.format())

    def format(self) -> str:
        head = f"{self.file}:{self.line}:{self.col}: error: {self.message}"
        if not self.source_line:
            return head
        width = 1
        if self.end_col is not None and self.end_col > self.col:
            width = self.end_col - self.col
        caret = " " * (self.col - 1) + "^" + "~" * (width - 1)
        return f"{head}\n    {self.source_line}\n    {caret}"

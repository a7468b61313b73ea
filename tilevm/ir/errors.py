"""Errors every layer may raise or catch, so that catching them needs no import of a backend."""

from __future__ import annotations

__all__ = ["CompileError", "KernelExecutionError", "WorkspaceNotRestored",
           "check_restored_workspace"]


class KernelExecutionError(RuntimeError):
    """A kernel did something undefined while it ran (an unmasked access outside a tensor, a
    partial-mask warp instruction…): the user's program is at fault, not the compiler. Each
    backend raises a subclass whose message names the instruction and, where known, the line."""


class WorkspaceNotRestored(KernelExecutionError):
    """A kernel declared a workspace ``restored=True`` but left some of it nonzero: on a GPU the
    next launch on the stream would start from those values."""


def check_restored_workspace(kernel: str, workspace: str, tensor: object) -> None:
    """Raise :class:`WorkspaceNotRestored` when an element of ``tensor`` (a ``HostTensor``),
    ``kernel``'s restored workspace ``workspace``, is not zero after a launch."""
    bits = tensor.bits()  # type: ignore[attr-defined]
    nonzero = bits.nonzero()
    if len(nonzero[0]):
        first = tuple(int(axis[0]) for axis in nonzero)
        raise WorkspaceNotRestored(
            f"kernel {kernel}: workspace '{workspace}' is declared restored=True but the launch "
            f"left {len(nonzero[0])} of its {bits.size} elements nonzero (the first at "
            f"{first}); a kernel that promises to restore a workspace sets every element it "
            "changed back to 0 before the launch ends")


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

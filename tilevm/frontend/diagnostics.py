"""Diagnostics: user mistakes at the user's line and column, and internal compiler errors.

A :class:`CompileError` is the user's mistake, said in the user's terms, shown like a compiler::

    kernels.py:12:17: error: load: 3 offsets for tensor 'a' of rank 2
        x = tv.load(a, (i, j, k), (bm, bk))
                       ^~~~~~~~~

An :class:`InternalCompilerError` is tilevm's bug: it says so, and :func:`internal_error` writes
the IR built so far, the options and the traceback to a file whose path it prints.
"""

from __future__ import annotations

import os
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from tilevm.ir.errors import CompileError

__all__ = ["CompileError", "InternalCompilerError", "internal_error"]


class InternalCompilerError(RuntimeError):
    """A bug in tilevm, never the user's mistake; ``report_path`` holds the IR and options."""

    def __init__(self, message: str, report_path: Path) -> None:
        self.report_path = report_path
        super().__init__(f"internal compiler error — please report: {message}\n"
                         f"  the IR and options are in {report_path}")


def _report_dir() -> Path:
    root = os.environ.get("TILEVM_CACHE_DIR") or os.path.join(tempfile.gettempdir(), "tilevm")
    path = Path(root) / "crash-reports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def internal_error(error: BaseException, what: str, ir_text: str,
                   options: dict[str, Any]) -> InternalCompilerError:
    """Write a crash report for ``error`` (raised while compiling ``what``) and return the
    :class:`InternalCompilerError` to raise in its place."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    fd, name = tempfile.mkstemp(prefix=f"{what}-{stamp}-", suffix=".txt", dir=_report_dir())
    lines = [f"tilevm internal compiler error while compiling {what}", "", "== options =="]
    lines += [f"{k} = {v!r}" for k, v in options.items()]
    lines += ["", "== IR built so far ==", ir_text, "", "== traceback =="]
    lines += traceback.format_exception(type(error), error, error.__traceback__)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines))
    return InternalCompilerError(f"{type(error).__name__}: {error}", Path(name))

"""Compile errors that show the generated CUDA C++ around the line that failed.

NVRTC reports two kinds of error. The C++ front end names the source line
(``kernel.cu(12): error: ...``). ptxas, which assembles the inline PTX, names a line of the PTX
(``ptxas application ptx input, line 33; error : ...``); with ``-lineinfo`` the PTX carries ``.loc``
directives, and the last one above that line gives the CUDA C++ line it came from.
"""

from __future__ import annotations

import re

__all__ = ["CudaCompileError", "error_source_lines", "source_context"]

_PTXAS_LINE = re.compile(r"ptxas[^\n]*?, line (\d+); (?:error|fatal)")
_LOC = re.compile(r"^\s*\.loc\s+1\s+(\d+)\s+\d+")
CONTEXT_LINES = 3


class CudaCompileError(RuntimeError):
    """NVRTC or ptxas rejected a CUDA C++ source.

    Attributes:
        arch: the target name.
        log: NVRTC's full log.
        source: the CUDA C++ that was compiled.
        lines: the 1-based source lines the errors point at (may be empty).
    """

    def __init__(self, summary: str, *, arch: str, log: str, source: str, ptx: str = "") -> None:
        self.arch = arch
        self.log = log
        self.source = source
        self.lines = error_source_lines(log, source, ptx)
        parts = [f"{summary} (arch {arch})", "", "NVRTC log:", log.rstrip()]
        if self.lines:
            parts += ["", "Generated source:", source_context(source, self.lines)]
        ptx_lines = _ptx_error_lines(log)
        if ptx_lines and ptx:
            parts += ["", "PTX:", source_context(ptx, ptx_lines, context=1)]
        super().__init__("\n".join(parts))


def _front_end_lines(log: str) -> list[int]:
    return [int(n) for n in re.findall(r"^\S*?\((\d+)\): (?:error|catastrophe)", log, re.M)]


def _ptx_error_lines(log: str) -> list[int]:
    return [int(n) for n in _PTXAS_LINE.findall(log)]


def _ptx_line_to_source(ptx: str, ptx_line: int) -> int | None:
    lines = ptx.splitlines()
    for index in range(min(ptx_line, len(lines)) - 1, -1, -1):
        if m := _LOC.match(lines[index]):
            return int(m.group(1))
    return None


def error_source_lines(log: str, source: str, ptx: str = "") -> list[int]:
    """The CUDA C++ lines (1-based, sorted, unique) that the errors in ``log`` point at.

    Front-end errors name them directly; ptxas errors are mapped through the PTX's ``.loc``
    directives when the PTX is given.
    """
    found = set(_front_end_lines(log))
    if ptx:
        for ptx_line in _ptx_error_lines(log):
            line = _ptx_line_to_source(ptx, ptx_line)
            if line is not None:
                found.add(line)
    count = source.count("\n") + 1
    return sorted(n for n in found if 1 <= n <= count)


def source_context(text: str, lines: list[int], context: int = CONTEXT_LINES) -> str:
    """``text`` cut to ``context`` lines around each of ``lines`` (1-based), numbered, with the
    named lines marked ``>`` and gaps shown as ``...``."""
    all_lines = text.splitlines()
    keep = sorted({k for n in lines for k in range(n - context, n + context + 1)
                   if 1 <= k <= len(all_lines)})
    width = len(str(keep[-1])) if keep else 1
    marked = set(lines)
    out: list[str] = []
    previous = 0
    for k in keep:
        if previous and k != previous + 1:
            out.append("     ...")
        out.append(f"{'>' if k in marked else ' '} {k:>{width}} | {all_lines[k - 1]}")
        previous = k
    return "\n".join(out)

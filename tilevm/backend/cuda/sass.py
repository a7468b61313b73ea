"""SASS (the GPU's machine code) of a cubin, read with ``cuobjdump`` from the
``nvidia-cuda-cuobjdump`` wheel (a test/bench dependency; no CUDA toolkit needed).

Used to check what ptxas made of the inline PTX (``HMMA`` for ``mma.sync``, ``LDGSTS`` for
``cp.async``) and for static comparisons of kernels.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

__all__ = ["cuobjdump_path", "disassemble", "sass_opcodes"]


def cuobjdump_path() -> Path | None:
    """The wheel's ``cuobjdump`` (``nvidia/cu13/bin/cuobjdump`` under site-packages), or None."""
    for folder in map(Path, sys.path):
        candidate = folder / "nvidia" / "cu13" / "bin" / "cuobjdump"
        if candidate.is_file():
            return candidate
    return None


def disassemble(cubin: bytes) -> str:
    """The ``cuobjdump -sass`` listing of ``cubin``.

    Raises FileNotFoundError when the cuobjdump wheel is not installed, RuntimeError when it
    fails on the binary.
    """
    tool = cuobjdump_path()
    if tool is None:
        raise FileNotFoundError("cuobjdump not found: install the nvidia-cuda-cuobjdump wheel "
                                "(the 'test' extra of tilevm)")
    with tempfile.TemporaryDirectory(prefix="tilevm-sass-") as tmp:
        path = Path(tmp) / "kernel.cubin"
        path.write_bytes(cubin)
        done = subprocess.run([str(tool), "-sass", str(path)], capture_output=True, text=True,
                              check=False)
    if done.returncode != 0:
        raise RuntimeError(f"cuobjdump failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


# An instruction line: /*0040*/  @!P0 STG.E desc[UR4][R2.64], R5 ;
_INSTRUCTION = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_]*)((?:\.\w+)*)")
_FUNCTION = re.compile(r"Function : (\S+)")


def sass_opcodes(listing: str, *, with_modifiers: bool = False) -> dict[str, Counter[str]]:
    """Opcode counts per function of a ``cuobjdump -sass`` listing, e.g.
    ``{"k": Counter({"HMMA": 2, ...})}``; with ``with_modifiers``, ``"HMMA.16816.F32"``."""
    result: dict[str, Counter[str]] = {}
    current: Counter[str] | None = None
    for line in listing.splitlines():
        if m := _FUNCTION.search(line):
            current = result.setdefault(m.group(1), Counter())
        elif current is not None and (m := _INSTRUCTION.search(line)):
            current[m.group(1) + (m.group(2) if with_modifiers else "")] += 1
    return result

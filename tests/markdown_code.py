"""Running the code of a documentation page: its python blocks, as a reader would paste them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

__all__ = ["run_python_blocks"]


def run_python_blocks(page: Path, at_least: int = 1) -> dict[str, Any]:
    """Run every ````python`` block of ``page`` in order, in one namespace (later blocks use
    earlier names), and return the namespace. Each block is padded with the lines above it, so
    that its line numbers — and so the source of its kernels, which tilevm reads from the file —
    are the page's own. Fails when the page has fewer than ``at_least`` blocks."""
    text = page.read_text()
    blocks = list(re.finditer(r"^```python\n(.*?)^```", text, flags=re.S | re.M))
    assert len(blocks) >= at_least, f"{page.name} lost its examples ({len(blocks)} left)"
    namespace: dict[str, Any] = {}
    for block in blocks:
        above = text[:block.start(1)].count("\n")
        exec(compile("\n" * above + block.group(1), str(page), "exec"), namespace)
    return namespace

"""docs/quantization.md: its python blocks run, in order, in one namespace (as tests/test_readme.py
runs the README's), and check what they say with their own assertions."""

from __future__ import annotations

import re
from pathlib import Path

PAGE = Path(__file__).resolve().parents[2] / "docs" / "quantization.md"


def test_python_blocks_of_quantization_md_run():
    text = PAGE.read_text()
    blocks = list(re.finditer(r"^```python\n(.*?)^```", text, flags=re.S | re.M))
    assert len(blocks) >= 4, "docs/quantization.md lost its examples"
    namespace: dict = {}
    for block in blocks:
        # Pad with the lines above the block, so that line numbers are the page's own.
        above = text[:block.start(1)].count("\n")
        exec(compile("\n" * above + block.group(1), str(PAGE), "exec"), namespace)
    assert [type(m).__name__ for m in namespace["model"]] == ["QuantLinear", "GELU", "Linear"]
    assert namespace["model"][0].scale_type.name == "f8e8m0fnu"

"""Global accesses are vectorized where the specialization proves it legal: the vector-add and
softmax examples, compiled for aligned inputs whose sizes and strides are multiples of 128 bits,
use 128-bit loads and stores — in the compile report and in the SASS ptxas made (issue 8). The
general kernel (nothing known) uses one element per access and says why."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

import tilevm as tv
from tilevm.backend.cuda.sass import disassemble

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
WIDE = re.compile(r"^(LDG|STG)(\.[A-Z0-9]+)*\.128$")


def _example(name: str):
    sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def _global_accesses(cubin: bytes) -> list[str]:
    ops = []
    for line in disassemble(cubin).splitlines():
        m = re.search(r"\*/\s+(?:@!?P\w+\s+)?((?:LDG|STG)[A-Z0-9.]*)", line)
        if m:
            ops.append(m.group(1))
    return ops


@pytest.mark.parametrize("name", ["vector_add", "softmax"])
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_aligned_examples_use_128_bit_global_accesses(name, arch):
    compiled = tv.compile(_example(name), arch, spec="aligned")
    report = [a for a in compiled.lowered.report.accesses if a.space == "global"]
    assert report and all(a.bits == 128 for a in report), [a.line() for a in report]
    ops = _global_accesses(compiled.cubin)
    assert any(WIDE.match(op) for op in ops if op.startswith("LDG")), ops
    assert any(WIDE.match(op) for op in ops if op.startswith("STG")), ops
    assert compiled.resources.spills == 0 and compiled.resources.stack == 0


def test_the_general_kernel_says_why_it_does_not_vectorize():
    compiled = tv.compile(_example("vector_add"), "sm_90")
    lines = [a.line() for a in compiled.lowered.report.accesses]
    assert all("stride is not known to be 1" in line for line in lines), lines
    assert not any(WIDE.match(op) for op in _global_accesses(compiled.cubin))

"""The packed-word casts reach the instruction counts of ``notes/cast-targets.md`` in free order:
at most 1.2 × the note's figure where it lists the type, else 3.5 SASS instructions per element to
f16 and 4 to bf16 — for sm_80 and sm_90, counted as ``bench/cast_costs.py`` counts (ptxas of
NVRTC, steady-state loop body, two unroll depths against a copy). Every type of at most 8 bits
that has a sequence is held to it (the float types as ``casts/float_words.py`` provides them);
every integer type must have one. One NVRTC compile per target for all of them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

import tilevm as tv
from tilevm.backend.cache_dir import cache_dir
from tilevm.backend.lower.casts import has_word_cast

_PATH = Path(__file__).resolve().parents[3] / "bench" / "cast_costs.py"
_SPEC = importlib.util.spec_from_file_location("cast_costs", _PATH)
cast_costs = importlib.util.module_from_spec(_SPEC)
sys.modules.setdefault("cast_costs", cast_costs)
_SPEC.loader.exec_module(cast_costs)

SMALL = cast_costs.small_types()
CASES = [(dt.name, dst) for dt in SMALL for dst in ("f16", "bf16")
         if has_word_cast(dt, tv.dtype(dst), 80, free=True)
         and has_word_cast(dt, tv.dtype(dst), 90, free=True)]


@pytest.fixture(scope="module")
def costs() -> dict[tuple[str, str, int], object]:
    types = sorted({name for name, _ in CASES}, key=[dt.name for dt in SMALL].index)
    rows = cast_costs.cast_costs([tv.dtype(n) for n in types], cache_dir=cache_dir() / "nvrtc")
    return {(r.src, r.dst, r.target): r for r in rows}


def test_every_integer_type_has_both_sequences_to_both_halves():
    for dt in SMALL:
        if dt.is_integer:
            for dst in ("f16", "bf16"):
                for target in (80, 90):
                    assert has_word_cast(dt, tv.dtype(dst), target)
                    assert has_word_cast(dt, tv.dtype(dst), target, free=True)


@pytest.mark.parametrize("src,dst", CASES, ids=[f"{s}-{d}" for s, d in CASES])
def test_free_order_reaches_the_note(costs, src, dst):
    bound = cast_costs.limit(src, dst)
    for target in (80, 90):
        row = costs[(src, dst, target)]
        assert row.free is not None and row.natural is not None
        assert row.free <= bound, (f"{src} -> {dst} on sm_{target}: {row.free} SASS instructions "
                                   f"per element in free order, the bound is {bound:.2f}")

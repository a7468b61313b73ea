"""Layout conversions within a warp: register moves and ``shfl.sync.idx`` instead of a trip
through shared memory (issue 8, item 1).

:func:`~tilevm.backend.lower.exchange.plan` is checked against an element-by-element oracle
built from ``RegisterLayout.holders`` on random layout pairs; conversions it plans in registers
or shuffles run on the CPU backend (a converted tile stored back must equal the input: a
conversion changes no bits), their Thread IR has no barrier and ptxas gives them no stack.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from random_programs import _shape, random_layout

import tilevm as tv
from tilevm import column_spatial, local, replicated, spatial
from tilevm.backend.lower.exchange import plan
from tilevm.ir.layout.register import RegisterLayout


def _oracle(source: RegisterLayout, target: RegisterLayout) -> str:
    """Element by element: a target slot may read a source holder of its own thread, else one
    of its own warp; and the source slot must be one per target slot."""
    slots: dict[int, set[int]] = {}
    where = "register moves"
    for t in range(target.num_threads):
        for j in range(target.local_size):
            holders = source.holders(target.coords(t, j))
            mine = [loc for th, loc in holders if th == t]
            warp = [loc for th, loc in holders if th // 32 == t // 32]
            if not warp:
                return "shared memory"
            if not mine:
                where = "warp shuffles"
            slots.setdefault(j, set()).add((mine or warp)[0])
    return where if all(len(s) == 1 for s in slots.values()) else "shared memory"


def test_the_plan_agrees_with_an_element_by_element_oracle():
    seen = set()
    for seed in range(150):
        rng = random.Random(seed)
        threads = 32 * rng.choice([1, 2, 4])
        tile = _shape(rng)
        a, b = random_layout(rng, tile, threads), random_layout(rng, tile, threads)
        got = plan(a, b)
        assert got == _oracle(a, b), (seed, a, b)
        seen.add(got)
    assert seen == {"register moves", "warp shuffles", "shared memory"}


ROWS_OF_8 = spatial(16, 8) * local(1, 8)
CASES = {
    # The same elements in each lane, the lanes permuted within each warp.
    "shuffles": (ROWS_OF_8, spatial(4, 1) * column_spatial(4, 8) * local(1, 8), "warp shuffles"),
    # Into a replicated layout: each element to two lanes.
    "to replicas": (ROWS_OF_8, spatial(16, 4) * replicated(2) * local(1, 16), "warp shuffles"),
    # The same thread holds the same elements, its registers in another order.
    "registers": (ROWS_OF_8, spatial(16, 8) * local(1, 4) * local(1, 2), "register moves"),
}


def _converter(dt, source, target):
    @tv.kernel
    def convert(x: tv.Global[dt, 16, 64], y: tv.Global[dt, 16, 64]):
        tv.launch(grid=1, warps=4)
        t = tv.load(x, (0, 0), (16, 64), layout=source)
        tv.store(y, tv.convert_layout(t, target), (0, 0))
    return convert


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("dt", ["f16", "i4", "f64", "u8"])
def test_in_warp_conversions_move_every_bit_without_a_barrier(case, dt):
    source, target, how = CASES[case]
    assert plan(source, target) == how
    dtype = tv.dtype(dt)
    kernel = _converter(dtype, source, target)
    compiled = tv.compile(kernel, "sm_90")
    assert "bar.sync" not in compiled.thread_ir
    assert ("shfl.sync" in compiled.thread_ir) == (how == "warp shuffles")
    # Registers indexed by the loop's constants once unrolled: no local-memory array.
    assert compiled.resources.stack == 0 and compiled.resources.spills == 0
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 1 << min(dtype.nbits, 62), size=(16, 64), dtype=np.uint64)
    x = tv.HostTensor.from_bits(bits, dt)
    y = tv.HostTensor.from_bits(np.zeros_like(bits), dt)
    kernel(x, y, device="cpu")
    np.testing.assert_array_equal(y.bits(), x.bits())

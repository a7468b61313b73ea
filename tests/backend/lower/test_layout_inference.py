"""Layout inference (issue 8, item 2): the blocked layout that global accesses anchor, the rules in
their priority, loop-carried values and ``if`` merges, the conversions it inserts and why,
determinism, and its diagnostics. Layouts are checked through ``RegisterLayout.coords`` (which
thread holds which element), not through their text."""

from __future__ import annotations

import numpy as np
import pytest

import tilevm as tv
from tilevm import f16, f32, i32, local, spatial, u4
from tilevm.backend.lower.default_layouts import blocked_layout
from tilevm.backend.lower.layout_inference import infer_layouts
from tilevm.ir.layout.register import RegisterLayout
from tilevm.ir.tile.program import Var, walk
from tilevm.ir.tile.types import TensorType


def _layouts(inferred) -> dict[str, RegisterLayout]:
    out = {}
    for s in walk(inferred.kernel.body):
        v = getattr(s, "result", None) or getattr(s, "target", None)
        if isinstance(v, Var) and isinstance(v.type, TensorType) and v.type.layout is not None:
            out[v.name] = v.type.layout
    return out


@pytest.mark.parametrize(("shape", "nbits", "warps"), [
    ((8, 128), 16, 4), ((64, 64), 32, 4), ((16, 64), 4, 2), ((128,), 8, 4), ((4, 4), 32, 1),
    ((2, 8, 32), 16, 2), ((64, 16), 64, 4), ((16,), 32, 4)])
def test_the_blocked_layout_coalesces_16_bytes_per_thread(shape, nbits, warps):
    layout = blocked_layout(shape, nbits, warps)
    threads = 32 * warps
    assert layout.shape == shape and layout.num_threads == threads
    numel = int(np.prod(shape))
    # Every element held; replicas only when there are fewer elements than threads.
    assert layout.local_size * threads == numel * layout.replication
    assert layout.replication == max(1, threads // numel)
    cells = layout.thread_local_to_index()
    flat = np.ravel_multi_index(cells, shape) if len(shape) > 1 else cells[0]
    # Each thread's first registers are a run of consecutive elements of the last dimension:
    # 16 bytes, or as many as the tile allows with every thread busy (a whole byte for u4).
    run = 1
    while run < layout.local_size and np.all(flat[:, run] == flat[:, 0] + run):
        run += 1
    want = min(128 // nbits, shape[-1], max(1, numel // threads))
    if nbits < 8:
        want = max(want, 8 // nbits)
    assert run >= want, (layout, run, want)
    # The lanes of a warp hold consecutive runs.
    if layout.replication == 1:
        assert np.all(np.diff(flat[:32, 0]) == run), (layout, flat[:32, 0])


@tv.kernel
def _scaled_rows(x: tv.Global[f16, "m", 128], y: tv.Global[f32, "m", 128], s: tv.Global[f32, 128]):
    tv.launch(grid=1, warps=4)
    t = tv.load(x, (0, 0), (8, 128))
    w = tv.full((8, 128), 2.0, f32)
    scale = tv.load(s, (0,), (128,))
    out = tv.cast(t, f32) * w + scale[None, :]
    tv.store(y, out, (0, 0))


def test_global_loads_anchor_and_elementwise_results_follow_them_without_conversions():
    inferred = infer_layouts(_scaled_rows.ir())
    layouts = _layouts(inferred)
    loaded = layouts["t"]
    assert loaded == blocked_layout((8, 128), 16, 4)
    # The constant has no preference of its own: it takes the tile's layout (no conversion).
    assert layouts["w"] == loaded and layouts["out"] == loaded
    assert "global load" in inferred.origins["w"]
    # The row of scales, a global load of its own, keeps its coalesced layout; before the add
    # it is converted so that thread t holds exactly the columns of the tile it holds.
    assert layouts["scale"] == blocked_layout((128,), 32, 4)
    (conv,) = inferred.conversions
    assert conv.why == "operand 1 of add" and conv.loc.line > 0
    cols = {t: {loaded.coords(t, j)[1] for j in range(loaded.local_size)} for t in range(128)}
    for t in range(128):
        assert {conv.target.coords(t, j)[1] for j in range(conv.target.local_size)} == cols[t]


def test_a_pinned_layout_wins_and_a_conflict_is_converted_with_the_reason():
    pinned = spatial(8, 16) * local(1, 8)
    other = local(2, 1) * spatial(4, 32) * local(1, 4)

    @tv.kernel
    def add(x: tv.Global[f32, 8, 128], y: tv.Global[f32, 8, 128], z: tv.Global[f32, 8, 128],
            w: tv.Global[f32, 8, 128]):
        tv.launch(grid=1, warps=4)
        a = tv.load(x, (0, 0), (8, 128), layout=pinned)
        b = tv.load(y, (0, 0), (8, 128))
        tv.store(z, a + b, (0, 0))
        c = tv.load(w, (0, 0), (8, 128), layout=other)
        tv.store(w, a * c, (0, 0))

    inferred = infer_layouts(add.ir())
    layouts = _layouts(inferred)
    # The unpinned load takes the pinned layout from the add (the user's priority beats global
    # memory's): loaded so, not converted.
    assert layouts["a"] == layouts["b"] == pinned != blocked_layout((8, 128), 32, 4)
    assert layouts["c"] == other
    # Two pinned layouts meet in the multiply: the first in program order wins.
    (conv,) = inferred.conversions
    assert (conv.value, conv.why) == ("c", "operand 1 of mul")
    assert conv.source == other and conv.target == pinned and conv.loc.line > 0


def test_reductions_keep_their_producers_layout():
    @tv.kernel
    def row_sums(x: tv.Global[f32, 64, 64], y: tv.Global[f32, 64, 1]):
        tv.launch(grid=1, warps=4)
        t = tv.load(x, (0, 0), (64, 64))
        total = tv.sum(t, 1, keepdims=True)
        tv.store(y, total, (0, 0))

    inferred = infer_layouts(row_sums.ir())
    layouts = _layouts(inferred)
    t, total = layouts["t"], layouts["total"]
    # The sum of row r is held by the threads that hold row r of t, in as many registers.
    for thread in range(128):
        rows = sorted({t.coords(thread, j)[0] for j in range(t.local_size)})
        held = sorted({total.coords(thread, j)[0] for j in range(total.local_size)})
        assert held == rows
    assert not [c for c in inferred.conversions if c.value == "t"]


def test_loop_carried_values_and_if_merges_settle_on_one_layout():
    @tv.kernel
    def accumulate(x: tv.Global[f16, "n", 64], y: tv.Global[f32, 16, 64], flag: tv.Scalar[i32]):
        tv.launch(grid=1, warps=2)
        acc = tv.zeros((16, 64), f32)
        for i in tv.range(0, tv.cdiv(x.shape[0], 16)):
            acc = acc + tv.cast(tv.load(x, (i * 16, 0), (16, 64)), f32)
        if flag > 0:
            acc = acc * 2.0
        tv.store(y, acc, (0, 0))

    inferred = infer_layouts(accumulate.ir())
    want = blocked_layout((16, 64), 16, 2)  # the f16 load's layout reaches the accumulator
    carried = [s for s in walk(inferred.kernel.body)
               if getattr(getattr(s, "target", None), "name", "").startswith("acc")]
    assert carried and all(s.target.type.layout == want for s in carried)
    assert _layouts(inferred)["acc"] == want
    assert inferred.conversions == []


def test_inference_is_deterministic():
    first = infer_layouts(_scaled_rows.ir())
    for _ in range(3):
        again = infer_layouts(_scaled_rows.ir())
        assert str(again.kernel) == str(first.kernel)
        assert again.origins == first.origins


def test_sub_byte_loads_keep_whole_bytes_in_one_thread():
    @tv.kernel
    def copy4(x: tv.Global[u4, 16, 64], y: tv.Global[u4, 16, 64]):
        tv.launch(grid=1, warps=4)
        tv.store(y, tv.load(x, (0, 0), (16, 64)), (0, 0))

    (layout,) = {v for k, v in _layouts(infer_layouts(copy4.ir())).items()}
    for thread in range(128):
        cols = [layout.coords(thread, j) for j in range(layout.local_size)]
        # the two nibbles of every byte this thread touches are both its own
        for r, c in cols:
            assert (r, c ^ 1) in cols


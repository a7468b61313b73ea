"""Early exits and device assertions (issue 12, item 3): ``break`` and ``continue`` in run-time
loops, an early ``return`` under a block-uniform condition, ``break`` in a loop with barriers,
compile-time loops, and ``tv.device_assert``.

Each kernel is checked against a plain Python loop or numpy on the interpreter; the suite's
autouse fixture runs every interpreted kernel on the CPU backend too and compiles its cubins for
sm_80 and sm_90 (no spills). Failing assertions are run on the interpreter and on the CPU
backend explicitly."""

from __future__ import annotations

import numpy as np
import pytest

import tilevm as tv
from tilevm import f32, i32

WIDTH = 32


@tv.kernel
def search(x: tv.Global[i32, "n"], key: tv.Scalar[i32], out: tv.Global[i32, "one"], *,
           width: tv.Const = WIDTH):
    tv.launch(grid=1, warps=1)
    found = -1
    for c in tv.range(0, n, width):
        t = tv.load(x, (c,), (width,), other=-1)
        hits = tv.where(t == key, tv.arange(width) + c, n)
        first = tv.min(hits)
        if first < n:
            found = first
            break
    tv.store(out, found, (0,))


def test_search_loop_with_break_finds_the_first_occurrence():
    x = (np.arange(150, dtype=np.int32) // 2) * 3  # each value twice: the first one counts
    for key in (0, 3 * 20, 3 * 74, 7, -5):
        out = np.full(1, -7, np.int32)
        search(x, key, out)
        hits = np.flatnonzero(x == key)
        assert out[0] == (hits[0] if hits.size else -1), key


@tv.kernel
def take_until(x: tv.Global[i32, "n"], limit: tv.Scalar[i32], out: tv.Global[i32, "two"]):
    tv.launch(grid=1, warps=1)
    total = 0
    i = 0
    while i < n:
        v = tv.load(x, (i,), ())
        if total + v > limit:
            break
        total = total + v
        i = i + 1
    tv.store(out, tv.cast(tv.arange(2) == 0, i32) * i + tv.cast(tv.arange(2) == 1, i32) * total,
             (0,))


def test_while_loop_with_break_stops_before_the_limit():
    x = np.array([3, 1, 4, 1, 5, 9, 2, 6], np.int32)
    for limit in (0, 3, 8, 13, 30, 100):
        out = np.zeros(2, np.int32)
        take_until(x, limit, out)
        total = taken = 0
        for v in x:  # the oracle: the same loop in Python
            if total + v > limit:
                break
            total, taken = total + v, taken + 1
        assert out.tolist() == [taken, total], limit


@tv.kernel
def sum_quiet_chunks(x: tv.Global[f32, "n"], threshold: tv.Scalar[f32],
                     out: tv.Global[f32, "one"], *, width: tv.Const = WIDTH):
    tv.launch(grid=1, warps=1)
    acc = tv.zeros((width,), f32)
    for c in tv.range(0, n, width):
        t = tv.load(x, (c,), (width,))
        if tv.max(abs(t)) > threshold:
            continue  # a loud chunk: skipped
        acc = acc + t
    tv.store(out, tv.sum(acc), (0,))


def test_continue_skips_the_rest_of_the_iteration():
    rng = np.random.default_rng(3)
    x = np.round(rng.standard_normal(200) * 4).astype(np.float32)  # small integers: exact sums
    for threshold in (5.0, 8.0, 100.0):
        out = np.zeros(1, np.float32)
        sum_quiet_chunks(x, threshold, out)
        chunks = [x[c:c + WIDTH] for c in range(0, x.size, WIDTH)]
        want = sum(float(ch.sum()) for ch in chunks if np.abs(ch).max() <= threshold)
        assert out[0] == want, threshold


@tv.kernel
def row_sums_unless_negative(x: tv.Global[f32, "m", "n"], out: tv.Global[f32, "m"], *,
                             width: tv.Const = WIDTH):
    tv.launch(grid=m + 2, warps=1)  # two blocks past the rows: they return at once
    r = tv.block_idx()
    if r >= m:
        return
    acc = tv.zeros((1, width), f32)
    for c in tv.range(0, n, width):
        t = tv.load(x, (r, c), (1, width))
        if tv.min(tv.reshape(t, (width,))) < 0.0:
            return  # a row with a negative element stores nothing
        acc = acc + t
    tv.store(out, tv.sum(tv.reshape(acc, (width,))), (r,))


def test_early_return_in_the_kernel_and_in_a_loop():
    rng = np.random.default_rng(4)
    x = rng.integers(0, 9, (6, 70)).astype(np.float32)
    x[1, 40] = -1.0
    x[4, 3] = -2.0
    out = np.full(6, -7.0, np.float32)
    row_sums_unless_negative(x, out)
    want = np.where((x < 0).any(1), -7.0, x.sum(1))
    assert np.array_equal(out, want)


@tv.kernel
def staged_prefix(x: tv.Global[f32, "n"], limit: tv.Scalar[f32], out: tv.Global[f32, "two"], *,
                  width: tv.Const = 128):
    tv.launch(grid=1, warps=4)
    stage = tv.shared((width,), f32)
    total = 0.0
    chunks = 0
    for c in tv.range(0, n, width):
        tv.store(stage, tv.load(x, (c,), (width,)), (0,))
        tv.sync()  # a barrier inside the loop that break leaves
        s = tv.sum(tv.load(stage, (0,), (width,)))
        tv.sync()
        if total + s > limit:
            break
        total = total + s
        chunks = chunks + 1
    both = tv.where(tv.arange(2) == 0, tv.cast(chunks, f32), total)
    tv.store(out, both, (0,))


def test_break_out_of_a_loop_with_barriers():
    x = np.arange(1000, dtype=np.float32) % 7  # small integers: exact sums in f32
    sums = [float(x[c:c + 128].sum()) for c in range(0, x.size, 128)]
    for limit in (10.0, 1000.0, 2000.0, 1e9):
        out = np.zeros(2, np.float32)
        staged_prefix(x, limit, out)
        total, chunks = 0.0, 0
        for s in sums:
            if total + s > limit:
                break
            total, chunks = total + s, chunks + 1
        assert out.tolist() == [chunks, total], limit


@tv.kernel
def last_at_most(x: tv.Global[i32, "n"], key: tv.Scalar[i32], step: tv.Scalar[i32],
                 out: tv.Global[i32, "one"]):
    tv.launch(grid=1, warps=1)
    found = -1
    for i in tv.range(n - 1, -1, step):  # a run-time (negative) step
        if tv.load(x, (i,), ()) <= key:
            found = i
            break
    tv.store(out, found, (0,))


def test_break_in_a_loop_with_a_run_time_step():
    x = np.array([1, 3, 3, 8, 10, 10, 12], np.int32)
    for key, step in ((9, -1), (10, -1), (0, -1), (100, -2), (9, -2)):
        out = np.zeros(1, np.int32)
        last_at_most(x, key, step, out)
        visited = range(x.size - 1, -1, step)
        want = next((i for i in visited if x[i] <= key), -1)
        assert out[0] == want, (key, step)


@pytest.mark.parametrize("device", ["interp", "cpu"])
def test_a_run_time_step_of_zero_stops_the_run(device):
    out = np.zeros(1, np.int32)
    with pytest.raises(tv.KernelExecutionError, match=r"tv\.range: step must not be zero"):
        last_at_most(np.ones(4, np.int32), 0, 0, out, device=device)


@tv.kernel
def unrolled_exits(x: tv.Global[i32, "n"], out: tv.Global[i32, "one"], *, stop_at: tv.Const,
                   skip: tv.Const, early: tv.Const = False):
    tv.launch(grid=1, warps=1)
    if early:
        return  # a compile-time return: nothing after it is built
    acc = 0
    for k in range(8):  # compile-time: break and continue act while the kernel is built
        if k == skip:
            continue
        if k == stop_at:
            break
        acc = acc + tv.load(x, (k,), ())
    tv.store(out, acc, (0,))


def test_break_and_continue_in_compile_time_loops_and_a_compile_time_return():
    x = (10 ** np.arange(8)).astype(np.int32)
    for stop_at, skip in ((5, 2), (8, 0), (0, 3)):
        out = np.zeros(1, np.int32)
        unrolled_exits(x, out, stop_at=stop_at, skip=skip)
        assert out[0] == sum(int(x[k]) for k in range(min(stop_at, 8)) if k != skip)
    out = np.full(1, 5, np.int32)
    unrolled_exits(x, out, stop_at=3, skip=1, early=True)
    assert out[0] == 5
    assert "store" not in str(unrolled_exits.ir(stop_at=3, skip=1, early=True))


@tv.kernel
def checked_gather(table: tv.Global[f32, "v", "d"], ids: tv.Global[i32, "b"],
                   out: tv.Global[f32, "b", "d"], *, rows: tv.Const = 8, width: tv.Const = 16):
    tv.launch(grid=tv.cdiv(b, rows), warps=2)
    r0 = tv.block_idx() * rows
    idx = tv.load(ids, (r0,), (rows,))
    real = r0 + tv.arange(rows) < b
    tv.device_assert(((idx >= 0) & (idx < v)) | ~real, "ids in range")
    tv.store(out, tv.load(table, (idx[:, None], 0), (rows, width)), (r0, 0))


TABLE = np.arange(40 * 16, dtype=np.float32).reshape(40, 16)


def test_device_assert_that_holds_changes_nothing():
    ids = np.array([1, 5, 39, 0, 7, 8, 9, 10, 11, 12, 3], np.int32)
    out = np.zeros((11, 16), np.float32)
    checked_gather(TABLE, ids, out)
    assert np.array_equal(out, TABLE[ids])


@pytest.mark.parametrize("device", ["interp", "cpu"])
def test_device_assert_stops_the_run_with_message_line_block_and_element(device):
    ids = np.array([1, 5, 39, 0, 7, 8, 9, 10, 11, 40, 3], np.int32)  # 40 is out of range
    line = checked_gather.fn.__code__.co_firstlineno + 7  # the decorator is the first line
    with pytest.raises(tv.KernelExecutionError) as e:
        checked_gather(TABLE, ids, np.zeros((11, 16), np.float32), device=device)
    text = str(e.value)
    assert f"test_control_flow.py:{line}:5: device_assert failed: ids in range" in text
    assert "(block (1,), element (1,))" in text  # ids[9] is element 1 of block 1


@tv.kernel
def scalar_assert(n_rows: tv.Scalar[i32], out: tv.Global[i32, "one"]):
    tv.launch(grid=(2, 3), warps=2)
    tv.device_assert(n_rows > 0, "n_rows must be positive")
    tv.store(out, n_rows, (0,))


@pytest.mark.parametrize("device", ["interp", "cpu"])
def test_device_assert_on_a_block_uniform_scalar(device):
    out = np.zeros(1, np.int32)
    scalar_assert(3, out, device=device)
    assert out[0] == 3
    with pytest.raises(tv.KernelExecutionError,
                       match=r"n_rows must be positive \(block \(0, 0\)\)"):
        scalar_assert(0, out, device=device)


def test_device_assert_diagnostics():
    @tv.kernel
    def false_constant(out: tv.Global[i32, "one"]):
        tv.launch(grid=1)
        tv.device_assert(1 > 2, "never")

    @tv.kernel
    def not_a_condition(x: tv.Global[i32, "n"]):
        tv.launch(grid=1)
        tv.device_assert(tv.load(x, (0,), (4,)), "ids")

    out = np.zeros(1, np.int32)
    with pytest.raises(tv.CompileError, match="compile-time condition is false: never") as e:
        false_constant(out)
    assert e.value.line == false_constant.fn.__code__.co_firstlineno + 3 and e.value.col == 9
    with pytest.raises(tv.CompileError, match=r"must be u1.*compare it") as e:
        not_a_condition(np.zeros(4, np.int32))
    assert e.value.line == not_a_condition.fn.__code__.co_firstlineno + 3 and e.value.col == 26


def test_break_under_a_run_time_condition_in_a_compile_time_loop_is_a_diagnostic():
    @tv.kernel
    def bad(x: tv.Global[i32, "n"]):
        tv.launch(grid=1)
        for k in range(3):
            if n > k:
                continue

    with pytest.raises(tv.CompileError, match=r"'continue' under a run-time condition") as e:
        bad(np.zeros(4, np.int32))
    assert e.value.line == bad.fn.__code__.co_firstlineno + 5 and e.value.col == 17


def test_break_with_unroll_is_a_diagnostic():
    @tv.kernel
    def bad(x: tv.Global[i32, "n"]):
        tv.launch(grid=1)
        for k in tv.range(0, 8, unroll=True):
            if k > n:
                break

    with pytest.raises(tv.CompileError, match=r"unroll cannot be combined with 'break'") as e:
        bad(np.zeros(4, np.int32))
    assert e.value.line == bad.fn.__code__.co_firstlineno + 3


def test_a_loop_left_by_break_keeps_its_vector_accesses():
    """The counter of a tv.range loop turned into a while still steps by a multiple of the tile,
    so an aligned kernel's loads stay 128-bit (the divisibility analysis follows assignments)."""
    report = tv.compile(search, "sm_90", spec="aligned", width=128).report
    assert "load global 'x': 128-bit (4 elements)" in report, report

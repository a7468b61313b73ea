"""Deliberately buggy kernels for the sanitizer's tests, each next to its correct version.

Each bug's line carries a ``# BUG:`` comment naming it; the tests find the line by that text and
expect the sanitizer's report to name it.
"""

from __future__ import annotations

import tilevm as tv
from tilevm import f16, f32

T = 32  # tile side of the transpose kernels
N = 128  # elements per block of the 1-D kernels


@tv.kernel
def transpose_no_sync(x: tv.Global[f32, "n", "n"], y: tv.Global[f32, "n", "n"]):
    tv.launch(grid=1, warps=4)
    s = tv.shared((T, T), f32)
    tv.store(s, tv.load(x, (0, 0), (T, T)), (0, 0))
    t = tv.load(s, (0, 0), (T, T))  # BUG: transposed read, no sync
    tv.store(y, t.T, (0, 0))


@tv.kernel
def transpose_sync(x: tv.Global[f32, "n", "n"], y: tv.Global[f32, "n", "n"]):
    tv.launch(grid=1, warps=4)
    s = tv.shared((T, T), f32)
    tv.store(s, tv.load(x, (0, 0), (T, T)), (0, 0))
    tv.sync()
    t = tv.load(s, (0, 0), (T, T))
    tv.store(y, t.T, (0, 0))


@tv.kernel
def shift_load(x: tv.Global[f32, "n"], y: tv.Global[f32, "n"], *, off: tv.Const = 1):
    tv.launch(grid=tv.cdiv(n, N), warps=4)
    o = tv.block_idx() * N
    a = tv.load(x, (o + off,), (N,), mask=False)  # BUG: unmasked off-by-one load
    tv.store(y, a, (o,))


@tv.kernel
def shift_store(x: tv.Global[f32, "n"], y: tv.Global[f32, "n"], *, off: tv.Const = 1):
    tv.launch(grid=tv.cdiv(n, N), warps=4)
    o = tv.block_idx() * N
    a = tv.load(x, (o,), (N,))
    tv.store(y, a, (o + off,), mask=False)  # BUG: store past the end


@tv.kernel
def reverse_no_sync(x: tv.Global[f32, "n"], y: tv.Global[f32, "n"]):
    tv.launch(grid=tv.cdiv(n, N), warps=4)
    o = tv.block_idx() * N
    s = tv.shared((2 * N,), f32)
    tv.store(s, tv.load(x, (o,), (N,)), (0,))
    tv.store(s, tv.load(x, (o,), (N,)), (N,))
    a = tv.load(s, (N // 2,), (N,))  # BUG: another warp's store, no sync
    tv.store(y, a, (o,))


@tv.kernel
def reverse_sync(x: tv.Global[f32, "n"], y: tv.Global[f32, "n"]):
    tv.launch(grid=tv.cdiv(n, N), warps=4)
    o = tv.block_idx() * N
    s = tv.shared((2 * N,), f32)
    tv.store(s, tv.load(x, (o,), (N,)), (0,))
    tv.store(s, tv.load(x, (o,), (N,)), (N,))
    tv.sync()
    a = tv.load(s, (N // 2,), (N,))
    tv.store(y, a, (o,))


@tv.kernel
def overlapping_stores(x: tv.Global[f32, "n"], y: tv.Global[f32, "n"]):
    tv.launch(grid=tv.cdiv(n, N), warps=4)
    o = tv.block_idx() * N
    s = tv.shared((2 * N,), f32)
    a = tv.load(x, (o,), (N,))
    tv.store(s, a, (0,))
    tv.store(s, a + 1.0, (N // 2,))  # BUG: two warps write one shared word
    tv.sync()
    tv.store(y, tv.load(s, (0,), (N,)), (o,))


@tv.kernel
def overlapping_stores_sync(x: tv.Global[f32, "n"], y: tv.Global[f32, "n"]):
    tv.launch(grid=tv.cdiv(n, N), warps=4)
    o = tv.block_idx() * N
    s = tv.shared((2 * N,), f32)
    a = tv.load(x, (o,), (N,))
    tv.store(s, a, (0,))
    tv.sync()
    tv.store(s, a + 1.0, (N // 2,))
    tv.sync()
    tv.store(y, tv.load(s, (0,), (N,)), (o,))


@tv.kernel
def copy_no_wait(x: tv.Global[f32, "n"], y: tv.Global[f32, "n"]):
    tv.launch(grid=tv.cdiv(n, N), warps=4)
    o = tv.block_idx() * N
    buf = tv.shared((N,), f32)
    tv.copy_async(buf, x, (o,))
    tv.commit()
    a = tv.load(buf, (0,), (N,))  # BUG: cp.async destination read before its wait
    tv.wait(0)
    tv.store(y, a, (o,))


@tv.kernel
def copy_wait(x: tv.Global[f32, "n"], y: tv.Global[f32, "n"]):
    tv.launch(grid=tv.cdiv(n, N), warps=4)
    o = tv.block_idx() * N
    buf = tv.shared((N,), f32)
    tv.copy_async(buf, x, (o,))
    tv.commit()
    tv.wait(0)
    tv.sync()
    a = tv.load(buf, (0,), (N,))
    tv.store(y, a, (o,))


@tv.kernel
def prefix_from_previous_block(x: tv.Global[f32, "n"], y: tv.Global[f32, "n"]):
    # y[block] = x[block] + y[block - 1]: each block reads what the previous one wrote, which
    # holds in index order only (a GPU runs blocks in any order)
    tv.launch(grid=tv.cdiv(n, N), warps=4)
    i = tv.block_idx()
    a = tv.load(x, (i * N,), (N,))
    if i > 0:
        a = a + tv.load(y, ((i - 1) * N,), (N,))
    tv.store(y, a, (i * N,))


@tv.kernel
def half_written(x: tv.Global[f32, "n"], y: tv.Global[f32, "n"]):
    tv.launch(grid=1, warps=1)
    s = tv.shared((2 * N,), f32)
    tv.store(s, tv.load(x, (0,), (N,)), (0,))
    tv.sync()
    tv.store(y, tv.load(s, (0,), (2 * N,)), (0,))  # BUG: shared memory read, never written


@tv.kernel
def block_sums(x: tv.Global[f32, "n"], total: tv.Global[f32, "one"]):
    # every block adds the sum of its tile to total[0]: the float sum depends on the order
    tv.launch(grid=tv.cdiv(n, N), warps=4)
    i = tv.block_idx()
    tv.atomic_add(total, tv.sum(tv.load(x, (i * N,), (N,)), 0), (0,))


@tv.kernel
def shared_half_sums(x: tv.Global[f16, "n", "n"], y: tv.Global[f16, "n", "n"]):
    # each element of s gets x[i, j] + x[j, i] through f16 atomic adds by two different threads
    # (compare-and-swap loops that read the word plainly first): atomics do not race
    tv.launch(grid=1, warps=4)
    s = tv.shared((T, T), f16)
    tv.store(s, tv.zeros((T, T), f16), (0, 0))
    tv.sync()
    t = tv.load(x, (0, 0), (T, T))
    tv.atomic_add(s, t, (0, 0))
    tv.atomic_add(s, t.T, (0, 0))
    tv.sync()
    tv.store(y, tv.load(s, (0, 0), (T, T)), (0, 0))

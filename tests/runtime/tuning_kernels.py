"""Small autotuned kernels for tests/runtime/test_autotune.py, in a module of their own so that a
second process (the export/import test) imports the very same kernels."""

from __future__ import annotations

import numpy as np

import tilevm as tv
from tilevm import f32, i32

# times (ms) the fake GPU reports per configuration; the test sets them
FAKE_TIMES: dict[tuple, float] = {}


@tv.autotune(space={"block": [64, 128], "wrong": [0, 1]},
             reference=lambda x, out: 2.0 * x)
@tv.kernel
def doubled(x: tv.Global[f32, "n"], out: tv.Global[f32, "n"], *, block: tv.Const = 128,
            wrong: tv.Const = 0):
    """out = 2·x, plus ``wrong`` (a configuration that is wrong on purpose when it is 1)."""
    tv.launch(grid=tv.cdiv(n, block), warps=2)
    start = tv.block_idx() * block
    tv.store(out, tv.load(x, (start,), (block,)) * 2.0 + wrong, (start,))


@tv.autotune(space={"block": [32, 64], "split": [1, 2]})
@tv.kernel
def column_sums(x: tv.Global[i32, "s", "n"], out: tv.Global[i32, "n"], *, block: tv.Const = 32,
                split: tv.Const = 1):
    """out[c] += Σ_r x[r, c]: ``split`` blocks per column tile add their rows' partial sums
    atomically (split-K style: the output must start from zero on every run)."""
    tv.launch(grid=(tv.cdiv(n, block), split), warps=1)
    i, j = tv.block_idx()
    acc = tv.zeros((block,), i32)
    for r in tv.range(j * 8, s, split * 8):
        acc = acc + tv.sum(tv.load(x, (r, i * block), (8, block)), 0)
    tv.atomic_add(out, acc, (i * block,))


def column_sums_numpy(x: np.ndarray) -> np.ndarray:
    return x.astype(np.int64).sum(axis=0)


@tv.autotune(space={"block": [128, 256, 4096, 8192], "warps": [1, 4]},
             prune=lambda c: not (c["block"] == 8192 and c["warps"] == 4))
@tv.kernel
def scaled(x: tv.Global[f32, "n"], out: tv.Global[f32, "n"], *, block: tv.Const = 128,
           warps: tv.Const = 4):
    """out = 3·x; ``block`` elements per block over ``warps`` warps (8192 over 1 warp: 256
    values per thread, more than a thread's 255 registers: it spills)."""
    tv.launch(grid=tv.cdiv(n, block), warps=warps)
    start = tv.block_idx() * block
    tv.store(out, tv.load(x, (start,), (block,)) * 3.0, (start,))


@tv.autotune(space={"block": [128], "stage": [1024, 65536]})
@tv.kernel
def staged(x: tv.Global[f32, "n"], out: tv.Global[f32, "n"], *, block: tv.Const = 128,
           stage: tv.Const = 1024):
    """out = x through a shared buffer of ``stage`` f32 (65536: 256 KB, more than any GPU)."""
    tv.launch(grid=tv.cdiv(n, block), warps=2)
    start = tv.block_idx() * block
    buf = tv.shared((stage,), f32)
    tv.store(buf, tv.load(x, (start,), (block,)), (0,))
    tv.sync()
    tv.store(out, tv.load(buf, (0,), (block,)), (start,))

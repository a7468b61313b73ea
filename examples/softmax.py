"""Row-wise softmax: reductions along a tile dimension.

Each block normalises ``rows`` rows. A whole row fits in one tile of ``width`` columns (a compile-
time constant at least the number of columns n): columns past n load as -inf, so they add
exp(-inf) = 0 to the sum. The arithmetic is in f32; input and output are f16.

Run it: ``python examples/softmax.py`` (it checks itself against numpy in float64).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

import tilevm as tv
from tilevm import f16, f32

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from accuracy import check_accuracy


@tv.kernel
def softmax(x: tv.Global[f16, "m", "n"], y: tv.Global[f16, "m", "n"],
            *, rows: tv.Const = 8, width: tv.Const = 128):
    tv.launch(grid=tv.cdiv(m, rows), warps=4)
    r0 = tv.block_idx() * rows
    # Out-of-range columns read -inf: they do not change the max and contribute exp(-inf) = 0.
    t = tv.cast(tv.load(x, (r0, 0), (rows, width), other=float("-inf")), f32)
    row_max = tv.max(t, 1, keepdims=True)  # shape (rows, 1): broadcasts against (rows, width)
    e = tv.exp(t - row_max)
    total = tv.sum(e, 1, keepdims=True)
    tv.store(y, tv.cast(e / total, f16), (r0, 0))


def main(argv: list[str] | None = None) -> float:
    """Run on random data and check the accuracy rule; returns the largest error."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=37)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--device", default="cpu", help="cpu (the default) or interp")
    args = parser.parse_args(argv)
    width = max(16, 1 << (args.n - 1).bit_length())  # the next power of two holding a row
    rng = np.random.default_rng(0)
    x = (3 * rng.standard_normal((args.m, args.n))).astype(np.float16)
    y = np.zeros_like(x)
    softmax(x, y, device=args.device, rows=args.rows, width=width)

    x64 = x.astype(np.float64)
    ref = np.exp(x64 - x64.max(1, keepdims=True))
    ref /= ref.sum(1, keepdims=True)
    x32 = x.astype(np.float32)
    base = np.exp(x32 - x32.max(1, keepdims=True))
    base = (base / base.sum(1, keepdims=True)).astype(np.float16)
    return check_accuracy("softmax", y, ref, base, tv.f16.unit_roundoff)


if __name__ == "__main__":
    main()

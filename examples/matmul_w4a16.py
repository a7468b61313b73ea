"""A 4-bit-weight matrix multiplication: y = x · Wᵀ with u4 weights and per-group f16 scales.

W (n × k) is stored as 4-bit unsigned codes, two per byte (LSB first), in a ``tilevm.HostTensor``;
numpy has no 4-bit type. Each row of W is split into groups of ``group`` consecutive columns, each
with one f16 scale: the real weight is ``(code − 8) · scale``. Activations x (m × k) and the
result y (m × n) are f16; products accumulate in f32.

Each block computes a (bm, bn) tile of y, one group of K at a time: it loads a (bm, group) tile of
x, a (bn, group) tile of 4-bit codes and the (bn, 1) column of their scales, dequantizes the codes
in registers — ``(cast(q, f16) − 8) · s``, the difference exact and the product rounded once to
f16 — and multiplies with the transposed weight tile.

Run it: ``python examples/matmul_w4a16.py`` (it checks itself against numpy in float64).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

import tilevm as tv
from tilevm import f16, f32, u4

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from accuracy import check_accuracy


@tv.kernel
def matmul_w4a16(x: tv.Global[f16, "m", "k"], w: tv.Global[u4, "n", "k"],
                 scales: tv.Global[f16, "n", "groups"], y: tv.Global[f16, "m", "n"],
                 *, bm: tv.Const = 32, bn: tv.Const = 32, group: tv.Const = 32):
    tv.launch(grid=(tv.cdiv(m, bm), tv.cdiv(n, bn)), warps=4)
    i, j = tv.block_idx()
    acc = tv.zeros((bm, bn), f32)
    for k0 in tv.range(0, k, group):  # one quantization group per step
        a = tv.load(x, (i * bm, k0), (bm, group))
        q = tv.load(w, (j * bn, k0), (bn, group))  # u4 codes, unpacked from the packed bytes
        s = tv.load(scales, (j * bn, k0 // group), (bn, 1))  # broadcasts along the group
        weights = (tv.cast(q, f16) - 8.0) * s
        acc = tv.dot(a, tv.transpose(weights), acc)
    tv.store(y, tv.cast(acc, f16), (i * bm, j * bn))


def main(argv: list[str] | None = None) -> float:
    """Run on random data and check the accuracy rule; returns the largest error."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=40)
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--k", type=int, default=80)
    parser.add_argument("--group", type=int, default=32)
    parser.add_argument("--device", default="cpu", help="cpu (the default) or interp")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    groups = -(-args.k // args.group)
    x = rng.standard_normal((args.m, args.k)).astype(np.float16)
    codes = rng.integers(0, 16, size=(args.n, args.k))
    w = tv.HostTensor.from_bits(codes, "u4")  # packed: two codes per byte
    scales = (rng.uniform(0.5, 1.5, size=(args.n, groups)) / 8).astype(np.float16)
    y = np.zeros((args.m, args.n), np.float16)
    matmul_w4a16(x, w, scales, y, device=args.device, group=args.group)

    col_scale = np.repeat(scales.astype(np.float64), args.group, axis=1)[:, :args.k]
    w_real = (codes - 8) * col_scale  # the dequantized weights, exactly
    ref = x.astype(np.float64) @ w_real.T
    base = (x.astype(np.float32) @ w_real.astype(np.float16).astype(np.float32).T).astype(
        np.float16)
    return check_accuracy("matmul_w4a16", y, ref, base, tv.f16.unit_roundoff)


if __name__ == "__main__":
    main()

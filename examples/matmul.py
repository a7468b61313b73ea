"""Matrix multiplication through shared memory, with a two-stage copy_async pipeline.

C = A·B with f16 inputs, f32 accumulation and an f16 result. Each block computes a (bm, bn) tile of
C. It walks K in steps of bk; for each step the tiles of A and B are copied from global into
shared memory with ``tv.copy_async`` (cp.async on the GPU: the copy runs in the background). Two
stages alternate: while the block multiplies the tiles of step t from stage t % 2, the copies of
step t + 1 fill the other stage.

The protocol: copies join an open group; ``tv.commit()`` closes it; ``tv.wait(1)`` waits for every
committed group but the newest one, i.e. for step t's tiles while step t + 1's are still in
flight; ``tv.sync()`` (a block barrier) makes the copied tiles visible to every warp, and a second
barrier keeps a stage from being overwritten while another warp still reads it.

Run it: ``python examples/matmul.py`` (it checks itself against numpy in float64).
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
def matmul(a: tv.Global[f16, "m", "k"], b: tv.Global[f16, "k", "n"], c: tv.Global[f16, "m", "n"],
           *, bm: tv.Const = 64, bn: tv.Const = 64, bk: tv.Const = 32):
    tv.launch(grid=(tv.cdiv(m, bm), tv.cdiv(n, bn)), warps=4)
    i, j = tv.block_idx()
    # Two stages of each operand tile; sa[s] is the (bm, bk) tile of stage s.
    sa = tv.shared((2, bm, bk), f16)
    sb = tv.shared((2, bk, bn), f16)
    acc = tv.zeros((bm, bn), f32)
    steps = tv.cdiv(k, bk)

    # Prologue: start the copies of step 0. Elements outside A or B are filled with zeros, so the
    # edge tiles contribute nothing extra to the sums.
    tv.copy_async(sa[0], a, (i * bm, 0))
    tv.copy_async(sb[0], b, (0, j * bn))
    tv.commit()
    for t in tv.range(0, steps):
        s = t % 2
        if t + 1 < steps:  # prefetch step t + 1 into the other stage
            tv.copy_async(sa[1 - s], a, (i * bm, (t + 1) * bk))
            tv.copy_async(sb[1 - s], b, ((t + 1) * bk, j * bn))
        tv.commit()  # one group per step (empty on the last), so wait(1) always means "step t"
        tv.wait(1)
        tv.sync()
        x = tv.load(sa[s], (0, 0), (bm, bk))
        y = tv.load(sb[s], (0, 0), (bk, bn))
        acc = tv.dot(x, y, acc)
        tv.sync()  # every warp is done with stage s before step t + 2 overwrites it
    tv.store(c, tv.cast(acc, f16), (i * bm, j * bn))


def main(argv: list[str] | None = None) -> float:
    """Run on random data and check the accuracy rule; returns the largest error."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=100)
    parser.add_argument("--n", type=int, default=72)
    parser.add_argument("--k", type=int, default=88)
    parser.add_argument("--bm", type=int, default=64)
    parser.add_argument("--bn", type=int, default=64)
    parser.add_argument("--bk", type=int, default=32)
    parser.add_argument("--device", default="cpu", help="cpu (the default) or interp")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((args.m, args.k)).astype(np.float16)
    b = rng.standard_normal((args.k, args.n)).astype(np.float16)
    c = np.zeros((args.m, args.n), np.float16)
    matmul(a, b, c, device=args.device, bm=args.bm, bn=args.bn, bk=args.bk)

    ref = a.astype(np.float64) @ b.astype(np.float64)
    base = (a.astype(np.float32) @ b.astype(np.float32)).astype(np.float16)
    return check_accuracy("matmul", c, ref, base, tv.f16.unit_roundoff)


if __name__ == "__main__":
    main()

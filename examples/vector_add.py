"""Vector addition: the smallest tilevm kernel.

Each thread block adds one tile of ``block`` elements: it loads a tile of x and of y, adds them and
stores the sum. The tensors' length ``n`` is a run-time size taken from the arguments; loads and
stores are masked at the tensors' bounds by default, so n need not be a multiple of ``block``.

Run it: ``python examples/vector_add.py`` (it checks itself against numpy).
"""

from __future__ import annotations

import argparse

import numpy as np

import tilevm as tv
from tilevm import f32


@tv.kernel
def vector_add(x: tv.Global[f32, "n"], y: tv.Global[f32, "n"], out: tv.Global[f32, "n"],
               *, block: tv.Const = 1024):
    # One block per `block` elements; tv.cdiv rounds up so the tail gets a block too.
    tv.launch(grid=tv.cdiv(n, block), warps=4)
    i = tv.block_idx()
    start = i * block
    a = tv.load(x, (start,), (block,))  # elements past n read 0 and are never stored
    b = tv.load(y, (start,), (block,))
    tv.store(out, a + b, (start,))


def main(argv: list[str] | None = None) -> float:
    """Run on random data and check against numpy; returns the largest error (0 expected)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--block", type=int, default=1024)
    parser.add_argument("--device", default="cpu", help="cpu (the default) or interp")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(args.n).astype(np.float32)
    y = rng.standard_normal(args.n).astype(np.float32)
    out = np.zeros(args.n, np.float32)
    vector_add(x, y, out, device=args.device, block=args.block)
    # f32 addition rounds once, exactly as numpy's: the result must be identical.
    error = float(np.max(np.abs(out - (x + y)))) if args.n else 0.0
    assert np.array_equal(out, x + y), f"vector_add differs from numpy by {error}"
    print(f"vector_add: n={args.n} matches numpy exactly")
    return error


if __name__ == "__main__":
    main()

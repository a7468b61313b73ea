"""Time of a ``QuantLinear`` call and of its backward on the CPU backend: a layer (u4, groups of
128, ``--size`` square) called on ``--rows`` rows that need a gradient, then ``backward``. Each
is the best of ``--repeat`` after one untimed call (which compiles). The backward is
``grad_x = grad_y · W``, W the layer's weights in the activation type, made a slice at a time.

The CPU backend runs the kernels' per-thread code with the exact semantics of every warp
instruction, to test them without a GPU: it is not a fast CPU implementation.

Usage: ``python bench/layer_cpu_time.py [--size N] [--rows M] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere in the repo

import torch

from tilevm.ops import QuantLinear


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    torch.manual_seed(0)
    layer = QuantLinear.from_linear(torch.nn.Linear(options.size, options.size), "u4", 128)
    x = torch.randn(options.rows, options.size, dtype=torch.float16, requires_grad=True)
    grad_y = torch.randn(options.rows, options.size, dtype=torch.float16)
    forward, backward = [], []
    for _ in range(options.repeat + 1):
        start = time.perf_counter()
        y = layer(x)
        forward.append(time.perf_counter() - start)
        start = time.perf_counter()
        y.backward(grad_y)
        backward.append(time.perf_counter() - start)
    print(f"a {options.size}×{options.size} u4 layer on {options.rows} rows, CPU backend:")
    for name, times in (("forward", forward), ("backward", backward)):
        print(f"  {name:8s} {min(times[1:]) * 1e3:8.1f} ms (first call {times[0] * 1e3:.0f} ms)")


if __name__ == "__main__":
    main()

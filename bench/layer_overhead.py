"""Host time of an eager ``QuantLinear`` call outside its kernel: a layer (u4, groups of 32,
96 → 40) called on a (0, 96) input, which runs everything a call does (the checks, the stale
weights check, the dispatch or its bypass, the output's allocation) except the launch, which
an empty input skips. Compare with ``bench/launch_overhead.py`` for the launch itself.

Rows: a plain eager call, the same under ``torch.no_grad()`` and ``torch.inference_mode()``,
and the op called through the dispatcher (``torch.ops.tilevm.prepared_linear``, what a call
needing a gradient or traced by torch.compile runs). Best of ``--repeat`` runs of ``--calls``
calls each.

Usage: ``python bench/layer_overhead.py [--calls N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere in the repo

import torch

from tilevm.ops import QuantLinear


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    torch.manual_seed(0)
    layer = QuantLinear.from_linear(torch.nn.Linear(96, 40), "u4", 32)
    x = torch.zeros(0, 96, dtype=torch.float16)
    operands = (x, layer.prepared_codes, layer.prepared_scales, layer.prepared_zeros,
                layer.bias, layer.wtype, "f16", layer.group_size, layer.prepared_bk,
                layer._padded_k, layer.out_features, False)

    def best(call) -> float:
        call()
        runs = timeit.repeat(call, number=options.calls, repeat=options.repeat)
        return min(runs) / options.calls * 1e6

    rows = [("layer(x)", best(lambda: layer(x)))]
    with torch.no_grad():
        rows.append(("layer(x) under torch.no_grad()", best(lambda: layer(x))))
    with torch.inference_mode():
        rows.append(("layer(x) under torch.inference_mode()", best(lambda: layer(x))))
    rows.append(("torch.ops.tilevm.prepared_linear(...)",
                 best(lambda: torch.ops.tilevm.prepared_linear(*operands))))
    for name, micros in rows:
        print(f"{name:40s} {micros:6.1f} µs per call")


if __name__ == "__main__":
    main()

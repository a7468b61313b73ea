"""The sanitizer's slowdown on the W4A16 example: run time (JIT excluded: both builds are
compiled by a warm-up call first) of ``sanitize=True`` against a plain CPU call.

Run: ``python bench/sanitizer_overhead.py [--m 64 --n 128 --k 256 --repeat 3]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=64)
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--k", type=int, default=256)
    parser.add_argument("--group", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location("w4a16", EXAMPLES / "matmul_w4a16.py")
    ex = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ex)
    def timed(sanitize: bool) -> float:
        best = float("inf")
        for _ in range(args.repeat + 1):  # the first call compiles (JIT, excluded)
            t0 = time.perf_counter()
            ex.main(["--m", str(args.m), "--n", str(args.n), "--k", str(args.k), "--group",
                     str(args.group), "--device", "cpu"]) if not sanitize else None
            if sanitize:
                import os

                os.environ["TILEVM_SANITIZE"] = "1"
                try:
                    ex.main(["--m", str(args.m), "--n", str(args.n), "--k", str(args.k),
                             "--group", str(args.group), "--device", "cpu"])
                finally:
                    del os.environ["TILEVM_SANITIZE"]
            best = min(best, time.perf_counter() - t0)
        return best

    plain = timed(False)
    checked = timed(True)
    ratio = checked / plain
    print(f"W4A16 m={args.m} n={args.n} k={args.k}: plain {plain * 1e3:.1f} ms, sanitized "
          f"{checked * 1e3:.1f} ms (with the shuffled-order rerun): {ratio:.1f}x "
          "(best of the calls after the compiling one; both include main()'s numpy reference)")
    return float(np.float64(ratio))


if __name__ == "__main__":
    main()

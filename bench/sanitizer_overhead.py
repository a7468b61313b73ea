"""The sanitizer's slowdown on the W4A16 example (examples/matmul_w4a16.py): the time of one
kernel call with ``sanitize=True`` against a plain CPU call, JIT excluded (a first call of each
compiles; the best of ``--repeat`` later calls is kept). The sanitized time is split into the
checked in-order run and the shuffled-order rerun (which runs the same checked build with its
checks switched off, one block per call).

Run: ``python bench/sanitizer_overhead.py [--m 128 --n 256 --k 512 --repeat 3]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _example() -> Any:
    sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location("matmul_w4a16", EXAMPLES / "matmul_w4a16.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def best_time(call: Any, repeat: int) -> float:
    """The fastest of ``repeat`` calls after a first, compiling one (seconds)."""
    call()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=128)
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--k", type=int, default=512)
    parser.add_argument("--group", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    import tilevm as tv
    from tilevm.backend.cpu import sanitizer

    ex = _example()
    rng = np.random.default_rng(0)
    groups = -(-args.k // args.group)
    x = rng.standard_normal((args.m, args.k)).astype(np.float16)
    w = tv.HostTensor.from_bits(rng.integers(0, 16, size=(args.n, args.k)), "u4")
    scales = (rng.uniform(0.5, 1.5, size=(args.n, groups)) / 8).astype(np.float16)
    y = np.zeros((args.m, args.n), np.float16)

    def run(sanitize: bool) -> None:
        ex.matmul_w4a16(x, w, scales, y, device="cpu", group=args.group, sanitize=sanitize)

    plain = best_time(lambda: run(False), args.repeat)
    checked = best_time(lambda: run(True), args.repeat)
    # the in-order checked run alone: the order check switched off for this measurement
    order_check = sanitizer._order_check
    sanitizer._order_check = lambda *a, **k: []
    try:
        in_order = best_time(lambda: run(True), args.repeat)
    finally:
        sanitizer._order_check = order_check
    # JIT, reported separately: the LLVM compilation of each build of the lowered kernel
    from tilevm.backend.cpu.jit import _compile
    from tilevm.runtime.cpu_device import _memo

    lowered = next(v[1] for v in _memo.values() if v[1].thread.name == "matmul_w4a16")
    jit = {}
    for sanitize in (False, True):
        t0 = time.perf_counter()
        _compile(lowered.thread, sanitize)
        jit[sanitize] = time.perf_counter() - t0
    out = {"plain_s": plain, "sanitized_s": checked, "checked_run_s": in_order,
           "slowdown": checked / plain, "checked_run_slowdown": in_order / plain,
           "jit_plain_s": jit[False], "jit_sanitized_s": jit[True]}
    print(f"W4A16 m={args.m} n={args.n} k={args.k} group={args.group} "
          f"({-(-args.m // 32) * -(-args.n // 32)} blocks, 1 host thread for plain runs up to "
          f"the cores): plain {plain * 1e3:.1f} ms; sanitized {checked * 1e3:.1f} ms "
          f"({checked / plain:.1f}x), of which the checked in-order run {in_order * 1e3:.1f} ms "
          f"({in_order / plain:.1f}x); JIT (excluded above): plain {jit[False]:.2f} s, "
          f"sanitized {jit[True]:.2f} s")
    return out


if __name__ == "__main__":
    main()

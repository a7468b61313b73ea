"""CPU-backend JIT time of ``mma.sync``: a one-warp kernel of N straight-line ``mma.sync``
statements (each accumulating into the same fragment), compiled with an empty disk cache for two
values of N (the fastest of a few runs each); the difference between the two, divided by the
difference of N, is the JIT cost of one ``mma.sync`` statement (the fixed cost of the module and
its helpers cancels).

Usage: ``python bench/mma_jit_time.py [--n 16 240] [--form m16n8k16:f16:f32 ...] [--repeat 3]``.
The same is printed for the straight-line statements of ``bench/jit_time.py`` (integer, bit and
f32 arithmetic), the machine's yardstick: JIT time varies several-fold with a shared machine's
load. The aim is at most 0.5 ms per ``mma.sync`` statement.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))   # jit_time, the yardstick

FORMS = ("m16n8k16:f16:f32", "m16n8k16:f16:f16", "m16n8k32:s8:s32", "m16n8k32:e4m3:f32",
         "m16n8k8:tf32:f32")


def mma_chain(form: str, n: int):
    """A one-warp kernel that loads the fragments and runs ``n`` ``mma.sync`` of ``form``
    (``shape:atype:ctype``) in a row, accumulating, then stores the accumulator."""
    from tilevm.ir.thread import B32, U64, KernelBuilder, vector

    shape, atype, ctype = form.split(":")
    kb = KernelBuilder(f"mma_chain_{n}", block_threads=32)
    src, dst = kb.param("src", U64, pointer=True), kb.param("dst", U64, pointer=True)
    a = kb.ld("global", src, vector(B32, 4))
    b = kb.ld("global", src, vector(B32, 2), offset=16)
    c_type = vector(B32, 2) if ctype == "f16" else vector(ctype, 4)
    acc = kb.reg(c_type, name="acc")
    loaded = kb.ld("global", src, c_type, offset=32)
    kb.mma(shape, atype, a, b, loaded, ctype=ctype, out=acc)
    for _ in range(n - 1):
        kb.mma(shape, atype, a, b, acc, ctype=ctype, out=acc)
    kb.st("global", dst, acc)
    return kb.finish()


def jit_seconds(kernel) -> float:
    """Cold JIT time of ``kernel`` (an empty cache directory), in CPU seconds of this process:
    the JIT runs in one thread, and CPU time is less disturbed than wall time by the other
    processes of a shared machine."""
    from tilevm.backend.cpu.jit import jit

    with tempfile.TemporaryDirectory() as d:
        os.environ["TILEVM_CACHE_DIR"] = d
        t0 = time.process_time()
        result = jit(kernel)
        seconds = time.process_time() - t0
    assert not result.cached
    return seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs=2, default=(16, 240), help="the two chain lengths")
    ap.add_argument("--form", nargs="*", default=list(FORMS), help="shape:atype:ctype")
    ap.add_argument("--repeat", type=int, default=3, help="runs per kernel; the fastest counts")
    args = ap.parse_args(argv)
    small, large = args.n
    for form in args.form:
        t_small = min(jit_seconds(mma_chain(form, small)) for _ in range(args.repeat))
        t_large = min(jit_seconds(mma_chain(form, large)) for _ in range(args.repeat))
        per = 1000 * (t_large - t_small) / (large - small)
        print(f"{form:>18}: N={small} {t_small:.3f} s, N={large} {t_large:.3f} s (CPU), "
              f"{per:.3f} ms per mma.sync statement")
    from jit_time import straight_line

    (k_small, n_small), (k_large, n_large) = straight_line(4 * small), straight_line(4 * large)
    t_small = min(jit_seconds(k_small) for _ in range(args.repeat))
    t_large = min(jit_seconds(k_large) for _ in range(args.repeat))
    per = 1000 * (t_large - t_small) / (n_large - n_small)
    print(f"{'straight-line':>18}: {n_small} statements {t_small:.3f} s, {n_large} {t_large:.3f} s "
          f"(CPU), {per:.3f} ms per statement")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

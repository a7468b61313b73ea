"""CPU-backend JIT time: straight-line Thread IR of 1,000 and 10,000 statements, a looped
kernel, and kernels written in the DSL and lowered — the examples the lowering handles and a
chain of tile operations sized to about 500, 2,000 and 8,000 Thread IR statements — each compiled
at the backend's optimisation level (``tilevm.backend.cpu.jit.OPT_LEVEL``) with an empty disk
cache; then the same kernels loaded from the cache. For the lowered kernels the time of the
lowering itself is reported too.

Usage: ``python bench/jit_time.py [--out results.json] [--opt N]``. The aim is under 1 ms per
statement at every size, and under 1 s of cold JIT for every example.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from sass_examples import load_example  # bench/ is the script's folder


def _statements(kb, x, n: int) -> int:
    """Append about ``n`` statements: a mix of integer, bit and f32 operations, each reading
    values made by the last few statements (as a kernel's bounded register pressure does),
    loaded from and stored to global memory at ``x``. Returns the number appended."""
    from tilevm.ir.thread import B32, F32, U32

    tid = kb.sreg("tid.x")
    addr = kb.add(x, kb.mul(tid, 4, mode="wide"))
    f = [kb.ld("global", addr, F32)]
    u = [kb.mov(f[0], U32)]
    count = 4
    while count < n:
        k = count % 6
        if k == 0:
            f.append(kb.fma(f[-1], f[-2 if len(f) > 1 else -1], 1.5))
        elif k == 1:
            u.append(kb.add(u[-1], count))
        elif k == 2:
            u.append(kb.lop3(u[-1], u[-min(len(u), 7)], kb.mov(f[-1], B32), 0x96))
        elif k == 3:
            f.append(kb.mul(f[-1], f[-min(len(f), 5)]))
        elif k == 4:
            u.append(kb.shl(kb.mov(u[-1], B32), count % 31))
        else:
            f.append(kb.cvt(kb.mov(u[-1], U32), F32, rnd="rn"))
        count += 1
    kb.st("global", addr, kb.add(f[-1], kb.cvt(kb.mov(u[-1], U32), F32, rnd="rn")))
    return count + 1


def straight_line(n: int):
    """A kernel of ``n`` straight-line statements."""
    from tilevm.ir.thread import U64, KernelBuilder

    kb = KernelBuilder(f"straight_{n}", block_threads=128)
    x = kb.param("x", U64, pointer=True)
    count = _statements(kb, x, n)
    return kb.finish(), count


def looped(n: int = 1000):
    """A kernel of about ``n`` statements in loops: a block-uniform loop with a barrier around
    a lane-dependent loop, whose body holds an unrolled loop and straight-line code."""
    from tilevm.ir.thread import S32, U64, KernelBuilder, walk

    kb = KernelBuilder("looped", block_threads=128, shared_bytes=512)
    x = kb.param("x", U64, pointer=True)
    tiles = kb.param("tiles", S32)
    with kb.for_(0, tiles, uniform=True, name="tile"):
        trips = kb.and_(kb.mov(kb.sreg("laneid"), "b32"), 3, type="b32")
        with kb.for_(0, kb.mov(trips, S32), name="lane_loop"):
            with kb.for_(0, 4, unroll=True, name="u"):
                _statements(kb, x, n // 8)
            _statements(kb, x, n // 2)
        kb.bar_sync()
    k = kb.finish()
    return k, sum(1 for _ in walk(k.body))


def lowered(name: str, kernel_ir, note: str = ""):
    """A builder of the Thread IR the lowering makes of ``kernel_ir`` (the time it takes is
    returned with it)."""
    def build():
        from tilevm.backend.lower import lower
        from tilevm.ir.thread import walk

        t0 = time.perf_counter()
        thread = lower(kernel_ir, 80).thread
        seconds = time.perf_counter() - t0
        thread.name = name
        return thread, sum(1 for _ in walk(thread.body)), seconds
    return build


def _examples() -> list:
    """Every example (the GEMMs and attention through tensor cores)."""
    return [(f"example_{name}", load_example(name).ir())
            for name in ("vector_add", "softmax", "matmul", "matmul_w4a16", "attention")]


def _chain_kernel():
    """A DSL kernel whose lowered size grows with its constant ``steps``: each step loads a tile,
    normalizes it by a row reduction, converts it through shared memory and accumulates."""
    import tilevm as tv

    @tv.kernel
    def chain(x: tv.Global[tv.f16, "m", "n"], y: tv.Global[tv.f32, "m", "n"],
              *, steps: tv.Const = 4):
        tv.launch(grid=tv.cdiv(m, 16), warps=4)
        r0 = tv.block_idx() * 16
        acc = tv.zeros((16, 64), tv.f32)
        for s in range(steps):  # compile-time: the Tile IR grows with steps
            t = tv.cast(tv.load(x, (r0, s * 64), (16, 64)), tv.f32)
            t = t - tv.max(t, 1, keepdims=True)
            acc = acc + tv.exp(t) * (s + 1.0)
        tv.store(y, acc, (r0, 0))

    return chain


def _chains(targets: tuple[int, ...]) -> list:
    """Chain kernels of about ``targets`` Thread IR statements each."""
    from tilevm.backend.lower import lower
    from tilevm.ir.thread import walk

    kernel = _chain_kernel()
    size_of_one = sum(1 for _ in walk(lower(kernel.ir(steps=1), 80).thread.body))
    size_of_two = sum(1 for _ in walk(lower(kernel.ir(steps=2), 80).thread.body))
    per_step = size_of_two - size_of_one
    out = []
    for target in targets:
        steps = max(1, round((target - size_of_one) / per_step) + 1)
        out.append((f"chain_{target}", kernel.ir(steps=steps)))
    return out


def measure(build, opt: int) -> dict:
    from tilevm.backend.cpu import jit as jitmod
    from tilevm.backend.cpu.jit import jit

    jitmod.OPT_LEVEL = opt
    jitmod._environment_key.cache_clear()
    built = build()
    kernel, statements = built[0], built[1]
    # the previous kernel's LLVM IR objects are cyclic garbage: collected here, not during (and
    # charged to) this kernel's code generation
    gc.collect()
    lowering_s = built[2] if len(built) > 2 else None
    with tempfile.TemporaryDirectory() as d:
        os.environ["TILEVM_CACHE_DIR"] = d
        t0 = time.perf_counter()
        cold = jit(kernel)
        cold_s = time.perf_counter() - t0
        warm = jit(kernel)
    assert not cold.cached and warm.cached
    from tilevm.backend.cpu.jit import PASSES

    row = {"kernel": kernel.name, "statements": statements, "passes": list(PASSES),
           "jit_s": round(cold_s, 4),
           "ms_per_statement": round(1000 * cold_s / statements, 4),
           "cached_load_s": round(warm.seconds, 4)}
    if lowering_s is not None:
        row["lowering_s"] = round(lowering_s, 4)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    ap.add_argument("--opt", type=int, default=None, help="LLVM speed level (default: backend's)")
    args = ap.parse_args(argv)
    from tilevm.backend.cpu import jit as jitmod

    opt = jitmod.OPT_LEVEL if args.opt is None else args.opt
    rows = [measure(lambda: straight_line(1000), opt), measure(lambda: straight_line(10000), opt),
            measure(looped, opt)]
    for name, kernel_ir in _examples() + _chains((500, 2000, 8000)):
        rows.append(measure(lowered(name, kernel_ir), opt))
    import llvmlite

    result = {"opt_level": opt, "llvmlite": llvmlite.__version__, "python": sys.version.split()[0],
              "machine": platform.machine(), "processor": platform.processor(), "rows": rows}
    for r in rows:
        lowering = f", lowering {r['lowering_s']:.3f} s" if "lowering_s" in r else ""
        print(f"{r['kernel']:>18}: {r['statements']:>6} statements, JIT {r['jit_s']:.3f} s "
              f"({r['ms_per_statement']:.3f} ms/statement), cached load "
              f"{r['cached_load_s']:.3f} s{lowering}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The remaining intrinsics on the CPU backend vs the PTX ISA, on all 32 lanes: logic on words
and predicates, float ``setp`` with ordered/unordered comparisons ("Comparison and Selection
Instructions: setp", table of floating-point comparison operators), f64 arithmetic, the special
registers, more atomics (``atom`` op semantics from "Parallel Synchronization and Communication
Instructions: atom"), fences, and warp-synchronous checks (``bar.warp.sync``, ``ldmatrix`` with a
partial mask)."""

from __future__ import annotations

import numpy as np
import pytest
from cpu_harness import lane_program, random_words

from tilevm.backend.cpu import CpuKernelError, compile_kernel
from tilevm.ir.thread import B32, F32, S32, U32, U64, KernelBuilder

N = 32 * 32
FCMPS = ["eq", "ne", "lt", "le", "gt", "ge", "equ", "neu", "ltu", "leu", "gtu", "geu", "num",
         "nan"]


@pytest.fixture(scope="module")
def rng() -> np.random.Generator:
    return np.random.default_rng(99)


def test_logic_on_words_and_predicates(rng) -> None:
    def body(kb, v):
        a, b = v
        p, q = kb.setp("lt", a, b), kb.setp("ne", kb.and_(a, 1), 0)
        return [kb.and_(a, b), kb.or_(a, b), kb.xor(a, b), kb.unary("not", a),
                kb.and_(p, q), kb.or_(p, q), kb.xor(p, q), kb.unary("not", p)]
    prog = lane_program("logic", ["b32", "b32"], body)
    a, b = random_words(rng, N), random_words(rng, N)
    out = [o.tolist() for o in prog(a, b)]
    for i, (x, y) in enumerate(zip(a.tolist(), b.tolist(), strict=True)):
        p, q = x < y, (x & 1) != 0    # setp.lt on b32 operands compares unsigned (lo)
        assert [out[k][i] for k in range(4)] == [x & y, x | y, x ^ y, ~x & 0xFFFFFFFF]
        assert [out[k][i] for k in range(4, 8)] == [p and q, p or q, p != q, not p]


def fcmp_oracle(cmp: str, x: float, y: float) -> bool:
    unordered = np.isnan(x) or np.isnan(y)
    if cmp == "num":
        return not unordered
    if cmp == "nan":
        return unordered
    base = {"eq": x == y, "ne": x != y, "lt": x < y, "le": x <= y, "gt": x > y, "ge": x >= y}
    if cmp.endswith("u") and cmp[:-1] in base:
        return unordered or bool(base[cmp[:-1]])
    return (not unordered) and bool(base[cmp])   # ordered: false with a NaN


def test_float_setp_ordered_and_unordered(rng) -> None:
    def body(kb, v):
        a, b = v
        h, g = kb.cvt(a, "f16", rnd="rn"), kb.cvt(b, "f16", rnd="rn")
        return [kb.setp(c, a, b) for c in FCMPS] + [kb.setp(c, h, g) for c in FCMPS]
    prog = lane_program("fsetp", ["f32", "f32"], body)
    vals = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 2.5], np.float32)
    a = rng.choice(vals, N).astype(np.float32)
    b = rng.choice(vals, N).astype(np.float32)
    out = prog(a.view(np.uint32), b.view(np.uint32))
    for k, cmp in enumerate(FCMPS):
        want = [int(fcmp_oracle(cmp, float(x), float(y))) for x, y in zip(a, b, strict=True)]
        assert out[k].tolist() == want, cmp
        assert out[len(FCMPS) + k].tolist() == want, f"f16 {cmp}"


def test_f64_arithmetic(rng) -> None:
    def body(kb, v):
        a, b = (kb.mov(x, "f64") for x in v)
        return [kb.add(a, b), kb.mul(a, b), kb.fma(a, b, a), kb.min(a, b),
                kb.cvt(a, "f32", rnd="rz")]
    prog = lane_program("f64", ["b64", "b64"], body)
    a = rng.standard_normal(N) * 1e10
    b = rng.standard_normal(N)
    out = prog(a.view(np.uint64), b.view(np.uint64))
    assert np.array_equal(out[0].view(np.float64), a + b)
    assert np.array_equal(out[1].view(np.float64), a * b)
    assert np.array_equal(out[3].view(np.float64), np.minimum(a, b))
    # fma: rounding once; float64 with exact Python integers as the check on a subset
    from fractions import Fraction
    got = out[2].view(np.float64)
    for i in range(0, N, 37):
        exact = Fraction(a[i]) * Fraction(b[i]) + Fraction(a[i])
        assert abs(Fraction(got[i]) - exact) <= abs(Fraction(np.nextafter(got[i], np.inf)) -
                                                    Fraction(got[i])) / 2
    # cvt.rz.f32.f64: the f32 next to a toward zero: |r| <= |a| < |next f32 away from zero|
    rz = out[4].view(np.float32)
    away = np.nextafter(rz, (np.sign(a) * np.inf).astype(np.float32)).astype(np.float64)
    assert np.all(np.abs(rz.astype(np.float64)) <= np.abs(a)) and np.all(np.abs(away) > np.abs(a))


def test_special_registers() -> None:
    kb = KernelBuilder("sregs", block_threads=64)
    out = kb.param("out", U64, pointer=True)
    names = ["tid.x", "ntid.x", "ctaid.x", "nctaid.x", "laneid", "tid.y", "ntid.y", "ctaid.z"]
    tid = kb.sreg("tid.x")
    g = kb.mad(kb.sreg("ctaid.x"), 64, tid)
    for k, name in enumerate(names):
        pos = kb.mul(kb.add(kb.mul(g, len(names)), k), 4, mode="wide")
        kb.st("global", kb.add(out, pos), kb.sreg(name))
    run = compile_kernel(kb.finish())
    got = np.zeros(3 * 64 * len(names), np.uint32)
    run(3, got)
    got = got.reshape(3 * 64, len(names))
    for g_ in range(3 * 64):
        block, t = divmod(g_, 64)
        assert got[g_].tolist() == [t, 64, block, 3, t % 32, 0, 1, 0]


@pytest.mark.parametrize("grid", [(3, 2, 4), (5, 3), (2, 1, 3), (7,), 4])
def test_multi_dimensional_grids(grid) -> None:
    # every block writes (ctaid.x, ctaid.y, ctaid.z, nctaid.x, nctaid.y, nctaid.z) at its
    # CUDA linear index x + nx * (y + ny * z), computed from the special registers themselves
    kb = KernelBuilder("grid3d", block_threads=32)
    out = kb.param("out", U64, pointer=True)
    regs = [kb.sreg(n) for n in ("ctaid.x", "ctaid.y", "ctaid.z", "nctaid.x", "nctaid.y",
                                 "nctaid.z")]
    cx, cy, cz, nx, ny, _ = regs
    linear = kb.mad(kb.mad(cz, ny, cy), nx, cx)
    with kb.if_(kb.setp("eq", kb.sreg("tid.x"), 0)):
        for k, r in enumerate(regs):
            kb.st("global", kb.add(out, kb.mul(kb.mad(linear, 6, k), 4, mode="wide")), r)
    run = compile_kernel(kb.finish())
    dims = (grid,) if isinstance(grid, int) else grid
    gx, gy, gz = (*dims, 1, 1)[:3]
    for threads in (1, None):
        got = np.full(gx * gy * gz * 6, 0xDEAD, np.uint32)
        run(grid, got, threads=threads)
        want = [[x, y, z, gx, gy, gz] for z in range(gz) for y in range(gy) for x in range(gx)]
        assert got.reshape(-1, 6).tolist() == want


def test_grid_extents_are_checked() -> None:
    kb = KernelBuilder("nothing", block_threads=32)
    run = compile_kernel(kb.finish())
    run((0, 5))                                       # an empty grid runs nothing
    for bad, what in (((1, 2, 3, 4), "1 to 3 ints"), ((2, -1), r"y extent must be in \[0, 65535\]"),
                      ((1, 1, 65536), "z extent"), (2.0, "an int or a tuple"),
                      ((2**31 - 1, 2), r"more than 2\*\*31 - 1 blocks")):
        with pytest.raises(ValueError, match=what):
            run(bad)


def test_errors_name_the_block_by_its_coordinates() -> None:
    kb = KernelBuilder("trap_one_block", block_threads=32)
    last = kb.setp("eq", kb.sreg("ctaid.y"), 2)
    kb.loc = "user.py:4"
    kb.trap(guard=last)
    run = compile_kernel(kb.finish())
    # the first block with y = 2 is (0, 2, 0), number 4
    with pytest.raises(CpuKernelError, match=r"trap executed .*`@%r\d+ trap` \(user\.py:4\) — "
                                             r"block 4 \(x=0, y=2, z=0\), warp 0"):
        run((2, 3), threads=1)


def test_more_atomics_and_fences() -> None:
    kb = KernelBuilder("atomics2", block_threads=32)
    p, olds = kb.param("p", U64, pointer=True), kb.param("olds", U64, pointer=True)
    lane = kb.sreg("laneid")
    o0 = kb.atom("global", "dec", p, 5, type=U32)
    o1 = kb.atom("global", "min", kb.add(p, 4), kb.sub(100, kb.mov(lane, S32)), type=S32)
    o2 = kb.atom("global", "and", kb.add(p, 8), kb.unary("not", kb.shl(kb.mov(1, B32), lane)),
                 type=B32)
    o3 = kb.atom("global", "or", kb.add(p, 12), kb.shl(kb.mov(1, B32), lane), type=B32)
    o4 = kb.atom("global", "xor", kb.add(p, 16), kb.mov(lane, B32), type=B32)
    kb.fence("sc", "gpu")
    kb.membar("cta")
    for k, o in enumerate((o0, o1, o2, o3, o4)):
        kb.st("global", kb.add(olds, kb.mul(kb.add(kb.mul(lane, 5), k), 4, mode="wide")), o)
    run = compile_kernel(kb.finish())
    mem = np.array([2, 1000, 0xFFFFFFFF, 0, 0], np.uint32)
    olds = np.zeros(32 * 5, np.uint32)
    run(1, mem, olds)
    olds = olds.reshape(32, 5)
    # lanes in order 0..31; dec: old == 0 or old > 5 ? 5 : old - 1
    x, want = 2, []
    for _ in range(32):
        want.append(x)
        x = 5 if (x == 0 or x > 5) else x - 1
    assert olds[:, 0].tolist() == want and mem[0] == x
    assert mem[1].view(np.int32) == 100 - 31 and olds[:, 1].view(np.int32).tolist() == [
        min([1000] + [100 - j for j in range(i)]) for i in range(32)]
    assert mem[2] == 0 and mem[3] == 0xFFFFFFFF
    assert mem[4] == np.bitwise_xor.reduce(np.arange(32, dtype=np.uint32))


def test_bar_warp_sync_with_a_wrong_mask_fails() -> None:
    kb = KernelBuilder("warp_sync", block_threads=32)
    with kb.if_(kb.setp("lt", kb.sreg("laneid"), 8)):
        kb.bar_warp_sync(0xFF)       # exactly the executing lanes: fine
        kb.bar_warp_sync(0xFFFF)     # names lanes 8..15, which never arrive
    run = compile_kernel(kb.finish())
    with pytest.raises(CpuKernelError, match=r"bar\.warp\.sync.*membermask 0x0000ffff"):
        run(1)


def test_ldmatrix_with_a_partial_mask_fails() -> None:
    kb = KernelBuilder("ldm_partial", block_threads=32, shared_bytes=512)
    out = kb.param("out", U64, pointer=True)
    lane = kb.sreg("laneid")
    with kb.if_(kb.setp("ne", lane, 5)):
        r = kb.ldmatrix(kb.mul(lane, 16), 1)
        kb.st("global", out, r)
    run = compile_kernel(kb.finish())
    with pytest.raises(CpuKernelError, match=r"ldmatrix\.sync\.aligned.*partial.*0xffffffdf"):
        run(1, np.zeros(1, np.uint32))


_ = (F32, U32)

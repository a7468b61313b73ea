"""Warp collectives on the CPU backend vs the PTX ISA, on all 32 lanes:

- ``shfl.sync`` in every mode, with partial member masks and random ``b``/``c`` (clamp and
  segment mask), against the ISA's semantics pseudo-code ("Data Movement and Conversion
  Instructions: shfl.sync");
- ``vote.sync`` (all/any/uni/ballot) and ``activemask`` under partial masks;
- ``ldmatrix`` x1/x2/x4, with and without ``.trans``, with permuted row addresses (ISA
  "Warp-level matrix load instruction: ldmatrix": lane i holds row i/4, columns 2(i%4), +1);
- ``mma.sync`` m16n8k16 f16/bf16 and m16n8k32 s8/u8/e4m3/e5m2 on random data against a float64
  (and exact rational) matmul, with A, B, C, D placed through the fragment formulas of the ISA
  sections "Matrix Fragments for mma.m16n8k16" and "... mma.m16n8k32".
"""

from __future__ import annotations

from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from cpu_harness import nearest_f32

from tilevm.backend.cpu import CpuKernelError, compile_kernel
from tilevm.ir.thread import B32, F32, S32, U32, U64, KernelBuilder, vector

WARPS = 16


@pytest.fixture(scope="module")
def rng() -> np.random.Generator:
    return np.random.default_rng(77)


# -- shfl.sync ---------------------------------------------------------------------------------

def shfl_oracle(mode: str, a: list[int], b: list[int], c: list[int]) -> list[int]:
    """The ISA pseudo-code, for one warp (per-lane b and c)."""
    out = []
    for lane in range(32):
        bval, cval, mask = b[lane] & 31, c[lane] & 31, (c[lane] >> 8) & 31
        max_lane = (lane & mask) | (cval & ~mask & 31)
        min_lane = lane & mask
        if mode == "up":
            j = lane - bval
            pval = j >= max_lane
        elif mode == "down":
            j = lane + bval
            pval = j <= max_lane
        elif mode == "bfly":
            j = lane ^ bval
            pval = j <= max_lane
        else:
            j = min_lane | (bval & ~mask & 31)
            pval = j <= max_lane
        out.append(j if pval else lane)
    return out  # source lane of each lane


SHFL_MODES = ["idx", "up", "down", "bfly"]


@pytest.fixture(scope="module")
def shfl_prog():
    """Per warp: lanes in the warp's member mask M run shfl.sync (every mode) with membermask M;
    other lanes keep 0xDEADBEEF."""
    kb = KernelBuilder("shfl_modes", block_threads=32)
    pa, pb, pc, pm = (kb.param(n, U64, pointer=True) for n in ("a", "b", "c", "m"))
    out = kb.param("out", U64, pointer=True)
    g = kb.mad(kb.sreg("ctaid.x"), 32, kb.sreg("tid.x"))
    off = kb.mul(g, 4, mode="wide")
    a, b, c, m = (kb.ld("global", kb.add(p, off), t) for p, t in
                  ((pa, B32), (pb, U32), (pc, U32), (pm, U32)))
    lane = kb.sreg("laneid")
    inside = kb.setp("ne", kb.and_(kb.shr(kb.mov(m, B32), lane), 1, type=B32), 0, type=B32)
    results = [kb.reg(B32, f"d_{mode}") for mode in SHFL_MODES]
    for r in results:
        kb.mov(0xDEADBEEF, B32, out=r)
    with kb.if_(inside):
        for mode, r in zip(SHFL_MODES, results, strict=True):
            kb.shfl(mode, a, b, c, m, out=r)
    for k, r in enumerate(results):
        pos = kb.add(kb.mul(kb.cvt(g, U64), 4, type=U64), kb.const(k * 32 * WARPS * 4, U64))
        kb.st("global", kb.add(out, pos), r)
    return compile_kernel(kb.finish())


def test_shfl_every_mode_with_partial_masks(shfl_prog, rng) -> None:
    n = 32 * WARPS
    a = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    b = rng.integers(0, 40, n).astype(np.uint32)              # past 31 too: only b[4:0] counts
    c = rng.choice(np.array([0, 0x1F, 0x0F, 0x181F, 0x1C07, 0x1F00, 0x0810], np.uint32), n)
    masks = [0xFFFFFFFF, 0x0000FFFF, 0xF0F0F0F0, 0x80000001, 0x12345678, 0xFFFF0000]
    masks += [int(x) for x in rng.integers(1, 2**32, WARPS - len(masks), dtype=np.uint64)]
    m = np.repeat(np.array(masks, np.uint32), 32)
    out = np.zeros(4 * n, np.uint32)
    shfl_prog(WARPS, a, b, c, m, out)
    out = out.reshape(4, WARPS, 32)
    checked = 0
    for w in range(WARPS):
        sl = slice(32 * w, 32 * w + 32)
        members = [lane for lane in range(32) if masks[w] >> lane & 1]
        for k, mode in enumerate(SHFL_MODES):
            src = shfl_oracle(mode, a[sl].tolist(), b[sl].tolist(), c[sl].tolist())
            for lane in range(32):
                got = int(out[k, w, lane])
                if lane not in members:
                    assert got == 0xDEADBEEF
                elif src[lane] in members:  # reading an inactive lane is undefined
                    assert got == int(a[sl][src[lane]]), (mode, w, lane)
                    checked += 1
    assert checked > 500


def test_shfl_with_a_lane_missing_from_membermask_fails() -> None:
    kb = KernelBuilder("shfl_bad_mask", block_threads=32)
    out = kb.param("out", U64, pointer=True)
    lane = kb.sreg("laneid")
    with kb.if_(kb.setp("lt", lane, 16)):
        v = kb.shfl("idx", kb.mov(lane, B32), 0, 31, 0xFFFFFFFF)
        kb.st("global", out, v)
    run = compile_kernel(kb.finish())
    with pytest.raises(CpuKernelError, match=r"shfl\.sync.*membermask"):
        run(1, np.zeros(1, np.uint32))


# -- vote.sync, activemask ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def vote_prog():
    kb = KernelBuilder("votes", block_threads=32)
    pv, pm, out = (kb.param(n, U64, pointer=True) for n in ("v", "m", "out"))
    g = kb.mad(kb.sreg("ctaid.x"), 32, kb.sreg("tid.x"))
    off = kb.mul(g, 4, mode="wide")
    v = kb.setp("ne", kb.ld("global", kb.add(pv, off), U32), 0)
    m = kb.ld("global", kb.add(pm, off), U32)
    lane = kb.sreg("laneid")
    inside = kb.setp("ne", kb.and_(kb.shr(kb.mov(m, B32), lane), 1, type=B32), 0, type=B32)
    res = [kb.reg(B32, f"r{k}") for k in range(5)]
    for r in res:
        kb.mov(0xDEADBEEF, B32, out=r)
    with kb.if_(inside):
        kb.mov(kb.vote("ballot", v, m), B32, out=res[0])
        for k, mode in enumerate(("all", "any", "uni"), start=1):
            kb.selp(1, 0, kb.vote(mode, v, m), type=B32, out=res[k])
        kb.mov(kb.activemask(), B32, out=res[4])
    for k, r in enumerate(res):
        pos = kb.add(kb.mul(kb.cvt(g, U64), 4, type=U64), kb.const(k * 32 * WARPS * 4, U64))
        kb.st("global", kb.add(out, pos), r)
    return compile_kernel(kb.finish())


def test_vote_and_activemask_under_partial_masks(vote_prog, rng) -> None:
    n = 32 * WARPS
    masks = [0xFFFFFFFF, 0x0000FFFF, 0x00000001, 0xAAAAAAAA] + \
        [int(x) for x in rng.integers(1, 2**32, WARPS - 4, dtype=np.uint64)]
    m = np.repeat(np.array(masks, np.uint32), 32)
    v = rng.integers(0, 2, n).astype(np.uint32)
    v[32 * 4:32 * 5] = 1   # a warp where every lane votes yes
    v[32 * 5:32 * 6] = 0   # and one where none does
    out = np.zeros(5 * n, np.uint32)
    vote_prog(WARPS, v, m, out)
    out = out.reshape(5, WARPS, 32)
    for w, mask in enumerate(masks):
        # ISA vote.sync: over the threads in membermask; ballot bit i = predicate of lane i
        yes = sum(1 << i for i in range(32) if mask >> i & 1 and v[32 * w + i])
        want = [yes, int(yes == mask), int(yes != 0), int(yes in (0, mask)), mask]
        for lane in range(32):
            got = [int(out[k, w, lane]) for k in range(5)]
            assert got == (want if mask >> lane & 1 else [0xDEADBEEF] * 5), (w, lane)


# -- ldmatrix ----------------------------------------------------------------------------------

LDM_VARIANTS = [(1, False), (2, False), (4, False), (1, True), (2, True), (4, True)]


@pytest.fixture(scope="module")
def ldmatrix_prog():
    kb = KernelBuilder("ldmatrix_all", block_threads=32, shared_bytes=512)
    init, rows, out = (kb.param(n, U64, pointer=True) for n in ("init", "rows", "out"))
    lane = kb.sreg("laneid")
    smem = kb.shared_base()
    off = kb.mul(lane, 16)
    kb.st("shared", kb.add(smem, off), kb.ld("global", kb.add(init, kb.cvt(off, U64)),
                                              vector(B32, 4)))
    kb.bar_sync()
    row = kb.ld("global", kb.add(rows, kb.mul(lane, 4, mode="wide")), U32)
    addr = kb.add(smem, row)
    k = 0
    for num, trans in LDM_VARIANTS:
        frag = kb.ldmatrix(addr, num, trans=trans)
        regs = [frag] if num == 1 else kb.unpack(frag)
        for r in regs:
            pos = kb.mul(kb.add(lane, k * 32), 4, mode="wide")
            kb.st("global", kb.add(out, pos), r)
            k += 1
    return compile_kernel(kb.finish())


def test_ldmatrix_x1_x2_x4_with_and_without_trans(ldmatrix_prog, rng) -> None:
    mem = rng.integers(0, 2**16, 256).astype(np.uint16)       # 512 bytes of shared memory
    rows = (rng.permutation(32) * 16).astype(np.uint32)       # each lane names one 16-byte row
    out = np.zeros(14 * 32, np.uint32)
    ldmatrix_prog(1, mem.view(np.uint32), rows, out)
    out = out.reshape(14, 32)

    def matrix(q: int) -> np.ndarray:
        # matrix q's row r is the 8 b16 elements at the address given by lane 8q + r
        return np.stack([mem[rows[8 * q + r] // 2: rows[8 * q + r] // 2 + 8] for r in range(8)])

    k = 0
    for num, trans in LDM_VARIANTS:
        for q in range(num):
            mq = matrix(q).T if trans else matrix(q)
            for i in range(32):
                lo, hi = int(mq[i // 4, 2 * (i % 4)]), int(mq[i // 4, 2 * (i % 4) + 1])
                assert int(out[k, i]) == lo | hi << 16, (num, trans, q, i)
            k += 1


# -- mma.sync ----------------------------------------------------------------------------------

def a_coords(i: int, lane: int, eight_bit: bool) -> tuple[int, int]:
    g, t = lane // 4, lane % 4
    if not eight_bit:   # m16n8k16 A: a0..a7
        row = g if i in (0, 1, 4, 5) else g + 8
        col = t * 2 + (i & 1) + (8 if i >= 4 else 0)
    else:               # m16n8k32 A: a0..a15
        row = g if (i < 4 or 8 <= i < 12) else g + 8
        col = t * 4 + (i & 3) + (16 if i >= 8 else 0)
    return row, col


def b_coords(i: int, lane: int, eight_bit: bool) -> tuple[int, int]:
    g, t = lane // 4, lane % 4
    if not eight_bit:   # b0..b3
        return t * 2 + (i & 1) + (8 if i >= 2 else 0), g
    return t * 4 + (i & 3) + (16 if i >= 4 else 0), g   # b0..b7


def c_coords(i: int, lane: int) -> tuple[int, int]:
    g, t = lane // 4, lane % 4
    return (g if i < 2 else g + 8), t * 2 + (i & 1)


def pack_fragment(bits: np.ndarray, coords, n_elems: int, elem_bits: int, eight_bit: bool
                  ) -> np.ndarray:
    """[lane][reg] u32 words holding the elements (bit patterns) at the ISA's coordinates."""
    per = 32 // elem_bits
    words = np.zeros((32, n_elems // per), np.uint32)
    for lane in range(32):
        for i in range(n_elems):
            r, c = coords(i, lane, eight_bit)
            words[lane, i // per] |= np.uint32(int(bits[r, c]) << (elem_bits * (i % per)))
    return words


MMA_CASES = [("f16", ml_dtypes.float16 if hasattr(ml_dtypes, "float16") else np.float16, False),
             ("bf16", ml_dtypes.bfloat16, False), ("s8", np.int8, True), ("u8", np.uint8, True),
             ("e4m3", ml_dtypes.float8_e4m3fn, True), ("e5m2", ml_dtypes.float8_e5m2, True)]


def mma_program(atype: str):
    acc = S32 if atype in ("s8", "u8") else F32
    shape = "m16n8k32" if atype in ("s8", "u8", "e4m3", "e5m2") else "m16n8k16"
    kb = KernelBuilder(f"mma_{atype}", block_threads=32)
    pa, pb, pc, pd = (kb.param(n, U64, pointer=True) for n in ("a", "b", "c", "d"))
    lane = kb.sreg("laneid")
    a = kb.ld("global", kb.add(pa, kb.mul(lane, 16, mode="wide")), vector(B32, 4))
    b = kb.ld("global", kb.add(pb, kb.mul(lane, 8, mode="wide")), vector(B32, 2))
    c = kb.ld("global", kb.add(pc, kb.mul(lane, 16, mode="wide")), vector(acc, 4))
    d = kb.mma(shape, atype, a, b, c)
    kb.st("global", kb.add(pd, kb.mul(lane, 16, mode="wide")), d)
    return compile_kernel(kb.finish())


def random_matrix(rng: np.random.Generator, atype: str, np_t, shape: tuple[int, int]):
    if atype in ("s8", "u8"):
        info = np.iinfo(np_t)
        vals = rng.integers(info.min, info.max + 1, shape).astype(np_t)
        return vals, vals.astype(np.int64).astype(object)
    if atype in ("e4m3", "e5m2"):
        bits = rng.integers(0, 256, shape).astype(np.uint8)
        vals = bits.view(np_t)
        bits[~np.isfinite(vals.astype(np.float64))] = 0x38      # no NaN/inf: 0x38 is finite
        vals = bits.view(np_t)
    else:
        vals = (rng.standard_normal(shape) * 4).astype(np_t)
    return vals, vals.astype(np.float64)


@pytest.mark.parametrize("atype,np_t,eight_bit", MMA_CASES, ids=[c[0] for c in MMA_CASES])
def test_mma_sync_vs_float64_matmul_through_fragments(atype, np_t, eight_bit, rng) -> None:
    k_dim = 32 if eight_bit else 16
    is_int = atype in ("s8", "u8")
    run = mma_program(atype)
    for _ in range(3):
        a_vals, a64 = random_matrix(rng, atype, np_t, (16, k_dim))
        b_vals, b64 = random_matrix(rng, atype, np_t, (k_dim, 8))
        if is_int:
            c = rng.integers(-2**20, 2**20, (16, 8)).astype(np.int32)
        else:
            c = (rng.standard_normal((16, 8)) * 8).astype(np.float32)
        elem_bits = 8 if eight_bit else 16
        ubits = np.uint8 if eight_bit else np.uint16
        af = pack_fragment(a_vals.view(ubits), a_coords, 16 if eight_bit else 8, elem_bits,
                           eight_bit)
        bf = pack_fragment(b_vals.view(ubits), b_coords, 8 if eight_bit else 4, elem_bits,
                           eight_bit)
        cf = np.zeros((32, 4), c.dtype)
        for lane in range(32):
            for i in range(4):
                cf[lane, i] = c[c_coords(i, lane)]
        df = np.zeros((32, 4), c.dtype)
        run(1, af, bf, cf, df)
        d = np.zeros((16, 8), c.dtype)
        for lane in range(32):
            for i in range(4):
                d[c_coords(i, lane)] = df[lane, i]
        if is_int:
            exact = (np.array(a64, dtype=np.int64) @ np.array(b64, dtype=np.int64)) + c
            assert np.array_equal(d, exact.astype(np.int32))
            continue
        ref64 = a64 @ b64 + c.astype(np.float64)
        assert np.allclose(d, ref64, rtol=2e-7, atol=1e-30)
        # DESIGN §3: the exact sum of the K products and C, rounded once to f32
        for r in range(16):
            for col in range(8):
                exact = sum((Fraction(float(a64[r, k])) * Fraction(float(b64[k, col]))
                             for k in range(k_dim)), Fraction(float(c[r, col])))
                assert d[r, col] == nearest_f32(exact), (r, col)


def test_mma_rounds_once_where_f32_accumulation_would_not() -> None:
    # 1 + 2^-24 + 2^-24 in f32 steps gives 1; summed exactly then rounded it is 1 + 2^-23.
    run = mma_program("f16")
    a = np.zeros((16, 16), np.float16)
    b = np.zeros((16, 8), np.float16)
    a[0, 0], b[0, 0] = np.float16(2.0 ** -12), np.float16(2.0 ** -12)
    a[0, 1], b[1, 0] = np.float16(2.0 ** -12), np.float16(2.0 ** -12)
    c = np.zeros((16, 8), np.float32)
    c[0, 0] = 1.0
    af = pack_fragment(a.view(np.uint16), a_coords, 8, 16, False)
    bf = pack_fragment(b.view(np.uint16), b_coords, 4, 16, False)
    cf = np.array([[c[c_coords(i, lane)] for i in range(4)] for lane in range(32)], np.float32)
    df = np.zeros((32, 4), np.float32)
    run(1, af, bf, cf, df)
    assert df[0, 0] == np.float32(1 + 2.0 ** -23)


_ = B32


def test_mma_exact_where_an_f64_sum_would_double_round() -> None:
    # C = 2^30 and products 2^6 and 2^-24: the exact sum lies just above the f32 midpoint
    # 2^30 + 2^6, so it rounds up to 2^30 + 2^7; an f64 sum loses the 2^-24 (54 bits apart)
    # and then ties to even, down to 2^30.
    run = mma_program("f16")
    a = np.zeros((16, 16), np.float16)
    b = np.zeros((16, 8), np.float16)
    a[0, 0], b[0, 0] = 2.0 ** 3, 2.0 ** 3
    a[0, 5], b[5, 0] = 2.0 ** -12, 2.0 ** -12
    c = np.zeros((16, 8), np.float32)
    c[0, 0] = 2.0 ** 30
    af = pack_fragment(a.view(np.uint16), a_coords, 8, 16, False)
    bf = pack_fragment(b.view(np.uint16), b_coords, 4, 16, False)
    cf = np.array([[c[c_coords(i, lane)] for i in range(4)] for lane in range(32)], np.float32)
    df = np.zeros((32, 4), np.float32)
    run(1, af, bf, cf, df)
    exact = Fraction(2**30) + Fraction(2**6) + Fraction(1, 2**24)
    assert df[0, 0] == nearest_f32(exact) == np.float32(2.0 ** 30 + 2.0 ** 7)


def test_mma_infinities_and_nan() -> None:
    # IEEE: inf * finite stays inf, inf + (-inf) and 0 * inf are NaN (PTX's canonical NaN)
    run = mma_program("f16")
    a = np.zeros((16, 16), np.float16)
    b = np.ones((16, 8), np.float16)
    a[0, 0] = np.inf                      # row 0: inf * 1 + ... = inf
    a[1, 0], a[1, 1] = np.inf, -np.inf    # row 1: inf - inf = NaN
    a[2, 3] = np.inf
    b[3, :] = 0                           # row 2: inf * 0 = NaN
    c = np.zeros((16, 8), np.float32)
    af = pack_fragment(a.view(np.uint16), a_coords, 8, 16, False)
    bf = pack_fragment(b.view(np.uint16), b_coords, 4, 16, False)
    cf = np.array([[c[c_coords(i, lane)] for i in range(4)] for lane in range(32)], np.float32)
    df = np.zeros((32, 4), np.float32)
    run(1, af, bf, cf, df)
    d = np.zeros((16, 8), np.float32)
    for lane in range(32):
        for i in range(4):
            d[c_coords(i, lane)] = df[lane, i]
    assert np.all(d[0] == np.inf)
    assert d[1:3].view(np.uint32).tolist() == [[0x7FFFFFFF] * 8] * 2
    assert np.all(d[3:] == 0)

"""Corners of the PTX ISA where the CPU backend once departed from it, on all 32 lanes.

- ``atom``/``red`` ``.add.f32`` (PTX ISA, "Parallel Synchronization and Communication
  Instructions: atom" and "red"): "atom.add.f32 on global memory flushes subnormal inputs and
  results to sign-preserving zero; whereas atom.add.f32 on shared memory supports subnormal inputs
  and results and doesn't flush them to zero." ``d`` is the value read, unflushed. A NaN sum is
  the NaN ``add.rn`` gives, in both spaces and for f64 too.
- ``ldmatrix`` (PTX ISA, "Warp Level Matrix Multiply-Accumulate Instructions: ldmatrix", table of
  row addresses): ``.x1`` takes its eight row addresses from threads 0-7 and ``.x2`` its sixteen
  from threads 0-15; the other threads' address registers are not used, so whatever they hold
  is no error.
- ``cvt`` from s64/u64 to f64/f32/f16/bf16 in every rounding mode (once missing on the CPU,
  though the printer printed it and ptxas takes it).
- Natural alignment of every memory access ("Addresses as Operands").
- ``bfe``/``bfi`` on 64-bit words (sign fill and position/length clipping at msb 63).
- ``cvt`` from f64 to f32/f16/bf16 and between f16 and bf16, in every rounding mode.
- ``mul``/``mad`` ``.lo/.hi/.wide`` at every width; ``prmt`` modes against values a GPU gave.
"""

from __future__ import annotations

from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from cpu_harness import lane_program

from tilevm.backend.cpu import CpuKernelError, compile_kernel
from tilevm.ir.thread import F32, U8, U16, U32, U64, KernelBuilder, vector

TINY = np.float32(2.0 ** -126)


def ftz(x: np.ndarray) -> np.ndarray:
    """Subnormals to the zero of their sign (the ISA's "sign-preserving zero")."""
    x = np.asarray(x, np.float32).copy()
    small = np.abs(x) < TINY
    x[small] = np.copysign(np.float32(0.0), x[small])
    return x


def _operands() -> tuple[np.ndarray, np.ndarray]:
    """Per lane: the word in memory and the value added, around the subnormal range."""
    s = float(TINY)
    mem = [1e-39, -1e-39, 1.0, s, s, -s, 3 * s, 1e-45, 0.0, -0.0, 2.5, 1e-40, s * 1.5, -2 * s,
           5e-39, 7.0]
    val = [1e-39, 2e-39, 1e-40, -0.5 * s, -s, 0.25 * s, -2.5 * s, 1e-45, -1e-39, 1e-41, 1.0,
           1e-40, -s, 1.5 * s, -5e-39, 1e-44]
    m = np.array(mem * 2, np.float32)
    v = np.array(val * 2, np.float32)
    return m, v


def test_atom_and_red_add_f32_flush_on_global_not_on_shared() -> None:
    kb = KernelBuilder("fadd_ftz", block_threads=32, shared_bytes=4 * 32 * 2)
    g_atom, g_red, vals, olds, sh_out = (kb.param(n, U64, pointer=True) for n in
                                         ("g_atom", "g_red", "vals", "olds", "sh_out"))
    lane = kb.sreg("laneid")
    off = kb.mul(lane, 4, mode="wide")
    v = kb.ld("global", kb.add(vals, off), F32)
    old = kb.atom("global", "add", kb.add(g_atom, off), v, type=F32)
    kb.red("global", "add", kb.add(g_red, off), v, type=F32)
    # shared: start from the same words (g_red's initial values were copied to olds[32:])
    sh = kb.mul(lane, 4)
    kb.st("shared", sh, kb.ld("global", kb.add(olds, kb.add(off, 128)), F32))
    sold = kb.atom("shared", "add", sh, v, type=F32)
    kb.red("shared", "add", kb.add(sh, 128), v, type=F32)
    kb.st("global", kb.add(olds, off), old)
    kb.st("global", kb.add(sh_out, off), kb.ld("shared", sh, F32))
    kb.st("global", kb.add(sh_out, kb.add(off, 128)), sold)
    run = compile_kernel(kb.finish())

    m, v = _operands()
    g_atom_a, g_red_a = m.copy(), m.copy()
    olds = np.concatenate([np.zeros(32, np.float32), m])
    sh_out = np.zeros(64, np.float32)
    run(1, g_atom_a.view(np.uint32), g_red_a.view(np.uint32), v.view(np.uint32),
        olds.view(np.uint32), sh_out.view(np.uint32))

    def bits(x: np.ndarray) -> list[int]:
        return np.asarray(x, np.float32).view(np.uint32).tolist()

    flushed = ftz(ftz(m) + ftz(v))
    assert bits(g_atom_a) == bits(flushed)
    assert bits(g_red_a) == bits(flushed)
    assert bits(olds[:32]) == bits(m)                 # d: the value read, not flushed
    assert bits(sh_out[:32]) == bits(m + v)           # shared: IEEE, subnormals kept
    assert bits(sh_out[32:]) == bits(m)
    # the operands really exercise the difference
    assert bits(flushed) != bits(m + v)


def test_ldmatrix_x1_x2_ignore_the_addresses_of_unused_threads() -> None:
    for num in (1, 2):
        kb = KernelBuilder(f"ldm_x{num}", block_threads=32, shared_bytes=256)
        src, out = kb.param("src", U64, pointer=True), kb.param("out", U64, pointer=True)
        lane = kb.sreg("laneid")
        # 8*num rows of 16 bytes, row r at shared byte 16*r, loaded from src
        with kb.if_(kb.setp("lt", lane, 16)):
            word = kb.ld("global", kb.add(src, kb.mul(lane, 16, mode="wide")), U32)
            kb.st("shared", kb.mul(lane, 16), word)
            for k in range(1, 4):
                kb.st("shared", kb.mul(lane, 16),
                      kb.ld("global", kb.add(src, kb.mul(lane, 16, mode="wide")), U32,
                            offset=4 * k), offset=4 * k)
        kb.bar_sync()
        used = kb.setp("lt", lane, 8 * num)
        # threads past 8*num hold addresses far outside shared memory
        addr = kb.selp(kb.mul(lane, 16), kb.add(0xFFFF0000, lane), used, type=U32)
        regs = kb.ldmatrix(addr, num)
        parts = [regs] if num == 1 else kb.unpack(regs)
        for q, r in enumerate(parts):
            kb.st("global", kb.add(out, kb.mul(kb.add(kb.mul(lane, num), q), 4, mode="wide")),
                  r)
        run = compile_kernel(kb.finish())
        data = np.arange(64, dtype=np.uint32) * 0x01010101 + 0x00030201
        got = np.zeros(32 * num, np.uint32)
        run(1, data, got)     # no out-of-bounds error
        rows = data[: 4 * 8 * num].reshape(8 * num, 4)   # row r = 4 words
        for lane_id in range(32):
            for q in range(num):
                # ISA fragment: thread i holds row i // 4, 32-bit column i % 4 of matrix q
                assert got[lane_id * num + q] == rows[8 * q + lane_id // 4, lane_id % 4], (
                    num, lane_id, q)


# -- cvt from 64-bit integers ------------------------------------------------------------------
# PTX ISA, "cvt": integer -> float conversions take a rounding .rn/.rz/.rm/.rp (mandatory) and
# round the integer's exact value once (IEEE 754 rounding to the destination format).

ROUNDINGS = ("rn", "rz", "rm", "rp")
FLOATS = {"f64": np.float64, "f32": np.float32, "f16": np.float16, "bf16": ml_dtypes.bfloat16}


def round_rational(q: Fraction, dt: type, mode: str) -> float:
    """``q`` rounded to ``dt`` with IEEE rounding ``mode``, by exact comparison of neighbours."""
    info = ml_dtypes.finfo(dt)
    mx = Fraction(float(info.max))
    prev = Fraction(float(np.nextafter(np.array(info.max, dt), np.array(0, dt))))
    if mode == "rn" and abs(q) >= mx + (mx - prev) / 2:
        return float(np.copysign(np.inf, float(q)))
    with np.errstate(over="ignore"):
        start = np.array(float(q), np.float64).astype(dt)
    seeds = [start, np.array(info.max, dt), np.array(-info.max, dt)]
    cands: set[float] = set()
    for seed in seeds:
        for direction in (np.inf, -np.inf):
            c = seed
            for _ in range(3):
                if np.isfinite(float(c)):
                    cands.add(float(c))
                with np.errstate(over="ignore"):
                    c = np.nextafter(c, np.array(direction, dt))
    below = [c for c in cands if Fraction(c) <= q]
    above = [c for c in cands if Fraction(c) >= q]
    lo = max(below) if below else -np.inf
    hi = min(above) if above else np.inf
    if lo == hi:
        return lo
    if mode == "rz":
        return lo if q > 0 else hi
    if mode == "rm":
        return lo
    if mode == "rp":
        return hi
    if not np.isfinite(lo) or not np.isfinite(hi):   # rn below the overflow threshold
        return lo if np.isfinite(lo) else hi
    dlo, dhi = q - Fraction(lo), Fraction(hi) - q
    if dlo != dhi:
        return lo if dlo < dhi else hi
    bits = {8: np.uint64, 4: np.uint32, 2: np.uint16}[np.dtype(dt).itemsize]
    return lo if int(np.array(lo, dt).view(bits)) % 2 == 0 else hi


def test_cvt_from_64_bit_integers_every_rounding() -> None:
    def body(kb, v):
        (x,) = v
        return [kb.cvt(kb.mov(x, src), d, rnd=r) for src in ("s64", "u64") for d in FLOATS
                for r in ROUNDINGS]

    prog = lane_program("cvt_i64", ["u64"], body)
    rng = np.random.default_rng(64)
    mags = rng.integers(0, 64, 32 * 4)
    x = np.array([int(rng.integers(0, 2**63)) >> (63 - int(m)) if m else 0 for m in mags],
                 np.uint64)
    x[1::2] = (~x[1::2] + np.uint64(1))          # negative as s64, huge as u64
    x[:8] = np.array([2**63, 2**64 - 1, 2**53 + 1, 2**24 + 1, 65520, 65519, 2**62 + 2**38 + 1,
                      (2**64 - 2**39 - 1)], np.uint64)
    outs = prog(x)
    k = 0
    for src in ("s64", "u64"):
        vals = x.view(np.int64) if src == "s64" else x
        for d, dt in FLOATS.items():
            for r in ROUNDINGS:
                got = outs[k].view({"f64": np.float64, "f32": np.float32}.get(d, dt))
                want = [round_rational(Fraction(int(v)), dt, r) for v in vals.tolist()]
                assert np.array(got, np.float64).tolist() == want, (src, d, r)
                k += 1


# -- alignment ---------------------------------------------------------------------------------
# PTX ISA, "Addresses as Operands": "The address must be naturally aligned to a multiple of the
# access size. If an address is not properly aligned, the resulting behavior is undefined." A GPU
# faults; the CPU reports it, naming the instruction, instead of computing a result.

def _misaligned(kind: str):
    kb = KernelBuilder(f"mis_{kind}", block_threads=32, shared_bytes=1024)
    src, out = kb.param("src", U64, pointer=True), kb.param("out", U64, pointer=True)
    lane = kb.sreg("laneid")
    bad = kb.setp("eq", lane, 5)
    skew = kb.selp(2, 0, bad, type=U32)           # lane 5 alone is 2 bytes off
    if kind == "shared":
        kb.st("global", out, kb.ld("shared", kb.add(kb.mul(lane, 4), skew), U32))
    elif kind == "global_v4":
        addr = kb.add(src, kb.cvt(kb.add(kb.mul(lane, 16), kb.mul(skew, 4)), U64))
        kb.st("global", out, kb.extract(kb.ld("global", addr, vector(U32, 4)), 0))
    else:   # cp.async with a misaligned global source
        addr = kb.add(src, kb.cvt(kb.add(kb.mul(lane, 16), kb.mul(skew, 4)), U64))
        kb.cp_async(kb.mul(lane, 16), addr, 16, cache="cg")
        kb.wait_group(0, kb.commit_group())
    return compile_kernel(kb.finish())


@pytest.mark.parametrize("kind", ["shared", "global_v4", "cp_async"])
def test_misaligned_accesses_are_reported(kind: str) -> None:
    run = _misaligned(kind)
    src = np.zeros(32 * 16 + 64, np.uint32)   # numpy buffers are 16-byte aligned
    assert src.ctypes.data % 16 == 0
    with pytest.raises(CpuKernelError, match="misaligned address"):
        run(1, src, np.zeros(4, np.uint32))


def test_aligned_accesses_of_every_size_pass() -> None:
    kb = KernelBuilder("aligned", block_threads=32, shared_bytes=32 * 16)
    src, out = kb.param("src", U64, pointer=True), kb.param("out", U64, pointer=True)
    lane = kb.sreg("laneid")
    base = kb.mul(lane, 16)
    for t in (U8, U16, U32, vector(U32, 2), vector(U32, 4)):
        kb.st("shared", base, kb.ld("global", kb.add(src, kb.cvt(base, U64)), t))
    kb.st("global", kb.add(out, kb.cvt(base, U64)), kb.ld("shared", base, vector(U32, 4)))
    run = compile_kernel(kb.finish())
    src = np.arange(32 * 4, dtype=np.uint32)
    got = np.zeros(32 * 4, np.uint32)
    run(1, src, got)
    assert got.tolist() == src.tolist()


# -- 64-bit bfe / bfi --------------------------------------------------------------------------
# PTX ISA, "Integer Arithmetic Instructions: bfe": msb = 63 for .u64/.s64; pos = b & 0xff,
# len = c & 0xff; sbit = (unsigned or len == 0) ? 0 : a[min(pos + len - 1, msb)];
# d[i] = (i < len && pos + i <= msb) ? a[pos + i] : sbit. "bfi": f = b; for i < len and
# pos + i <= msb: f[pos + i] = a[i].

def bfe64(a: int, pos: int, ln: int, signed: bool) -> int:
    pos, ln = pos & 0xFF, ln & 0xFF
    sbit = 0 if (not signed or ln == 0) else a >> min(pos + ln - 1, 63) & 1
    return sum(((a >> (pos + i) & 1) if (i < ln and pos + i <= 63) else sbit) << i
               for i in range(64))


def bfi64(a: int, b: int, pos: int, ln: int) -> int:
    pos, ln = pos & 0xFF, ln & 0xFF
    for i in range(ln):
        if pos + i > 63:
            break
        b = (b & ~(1 << (pos + i))) | ((a >> i & 1) << (pos + i))
    return b


def test_bfe_bfi_on_64_bit_words() -> None:
    def body(kb, v):
        a, b, p, n = v
        return [kb.bfe(kb.mov(a, "u64"), p, n), kb.bfe(kb.mov(a, "s64"), p, n),
                kb.bfi(a, b, p, n, type="b64")]

    prog = lane_program("bits64", ["b64", "b64", "u32", "u32"], body)
    rng = np.random.default_rng(77)
    n = 32 * 8
    a = rng.integers(0, 2**64, n, dtype=np.uint64)
    b = rng.integers(0, 2**64, n, dtype=np.uint64)
    p = rng.choice(np.array([0, 1, 31, 32, 33, 60, 63, 64, 70, 255, 256 + 40], np.uint32), n)
    ln = rng.choice(np.array([0, 1, 7, 32, 33, 63, 64, 65, 200, 256 + 9], np.uint32), n)
    outs = prog(a, b, p, ln)
    rows = list(zip(a.tolist(), b.tolist(), p.tolist(), ln.tolist(), strict=True))
    assert outs[0].tolist() == [bfe64(x, q, m, False) for x, _, q, m in rows]
    assert outs[1].tolist() == [bfe64(x, q, m, True) for x, _, q, m in rows]
    assert outs[2].tolist() == [bfi64(x, y, q, m) for x, y, q, m in rows]


# -- cvt between floats: from f64, and between f16 and bf16 -----------------------------------
# PTX ISA, "cvt": a float-to-float conversion to a narrower (or, f16 <-> bf16, differently
# shaped) type rounds once with .rn/.rz/.rm/.rp; IEEE 754 semantics (overflow to inf or max per
# the rounding direction, subnormals kept). NaN stays NaN.

def _interesting_f64(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal(n) * np.exp2(rng.integers(-160, 140, n).astype(np.float64))
    x[:12] = [0.0, -0.0, np.inf, -np.inf, 65519.99, 65520.0, -65536.0, 2.0 ** -25, 3.4e38,
              3.5e38, 1e-45, -2.0 ** -149 * 0.75]
    return x


def test_cvt_from_f64_and_between_f16_and_bf16_every_rounding() -> None:
    halves = ("f16", "bf16")

    def body(kb, v):
        x, h = v
        out = [kb.cvt(x, d, rnd=r) for d in ("f32", "f16", "bf16") for r in ROUNDINGS]
        for s, d in (("f16", "bf16"), ("bf16", "f16")):
            out += [kb.cvt(kb.mov(h, s), d, rnd=r) for r in ROUNDINGS]
        return out

    prog = lane_program("cvt_f64", ["f64", "b16"], body)
    rng = np.random.default_rng(6)
    n = 32 * 8
    x = _interesting_f64(rng, n)
    h = rng.integers(0, 2**16, n).astype(np.uint16)
    h[:4] = [0x7BFF, 0x0001, 0x7F7F, 0x8001]   # f16 max, f16 min subnormal, bf16 max, -tiny
    outs = prog(x.view(np.uint64), h)
    k = 0
    for d in ("f32", "f16", "bf16"):
        for r in ROUNDINGS:
            got = outs[k].view(FLOATS[d])
            want = [np.nan if np.isnan(v) else float(np.copysign(np.inf, v)) if np.isinf(v)
                    else round_rational(Fraction(v), FLOATS[d], r) for v in x.tolist()]
            got64 = np.array(got, np.float64)
            # the sign of a zero result is the input's (a rounding never crosses zero)
            want_bits = [float(np.copysign(w, v)) if w == 0 else w for w, v in
                         zip(want, x.tolist(), strict=True)]
            assert np.array_equal(got64, want_bits, equal_nan=True), (d, r)
            num = ~np.isnan(got64)
            assert np.array_equal(np.signbit(got64[num]), np.signbit(np.array(want_bits)[num])), (
                d, r)
            k += 1
    for s, d in zip(halves, halves[::-1], strict=True):
        with np.errstate(invalid="ignore"):
            vals = h.view(FLOATS[s]).astype(np.float64)
        for r in ROUNDINGS:
            got = np.array(outs[k].view(FLOATS[d]), np.float64)
            want = []
            for v in vals.tolist():
                if not np.isfinite(v):
                    want.append(v)
                    continue
                w = round_rational(Fraction(v), FLOATS[d], r)
                want.append(float(np.copysign(w, v)) if w == 0 else w)
            assert np.array_equal(got, want, equal_nan=True), (s, d, r)
            num = ~np.isnan(got)       # (which NaN comes out is the GPU's to say)
            assert np.array_equal(np.signbit(got[num]), np.signbit(np.array(want)[num])), (s, d, r)
            k += 1


# -- mul / mad halves and widths ---------------------------------------------------------------
# PTX ISA, "Integer Arithmetic Instructions: mul, mad": t = a * b as a 2n-bit product of n-bit
# operands signed for .s types; .lo keeps t<n-1:0>, .hi t<2n-1:n>, .wide all 2n bits; mad adds c
# (2n bits for .wide) modulo 2**n (2**2n).

def _wrap(x: int, bits: int, signed: bool) -> int:
    x &= (1 << bits) - 1
    return x - (1 << bits) if signed and x >> (bits - 1) else x


def test_mul_mad_lo_hi_wide_every_width_and_signedness() -> None:
    cases = [(t, m) for t in ("u16", "s16", "u32", "s32", "u64", "s64")
             for m in ("lo", "hi", "wide") if not (m == "wide" and t.endswith("64"))]

    def body(kb, v):
        a64, b64, c64 = v
        out = []
        for t, m in cases:
            bits = int(t[1:])
            a = kb.mov(kb.cvt(a64, f"u{bits}") if bits < 64 else a64, t)
            b = kb.mov(kb.cvt(b64, f"u{bits}") if bits < 64 else b64, t)
            wide = f"{t[0]}{2 * bits}" if m == "wide" else t
            cbits = int(wide[1:])
            c = kb.mov(kb.cvt(c64, f"u{cbits}") if cbits < 64 else c64, wide)
            out += [kb.mul(a, b, mode=m), kb.mad(a, b, c, mode=m)]
        return out

    prog = lane_program("mul_mad", ["u64", "u64", "u64"], body)
    rng = np.random.default_rng(17)
    n = 32 * 4
    a, b, c = (rng.integers(0, 2**64, n, dtype=np.uint64) for _ in range(3))
    a[:4] = [2**63, 2**64 - 1, 0x8000, 0xFFFF_FFFF]
    b[:4] = [2**64 - 1, 2**64 - 1, 0x8000, 0x8000_0000]
    outs = prog(a, b, c)
    k = 0
    for t, m in cases:
        bits, signed = int(t[1:]), t[0] == "s"
        out_bits = 2 * bits if m == "wide" else bits
        for i, (x, y, z) in enumerate(zip(a.tolist(), b.tolist(), c.tolist(), strict=True)):
            p = _wrap(x, bits, signed) * _wrap(y, bits, signed)
            part = p >> bits if m == "hi" else p
            mask = (1 << out_bits) - 1
            assert int(outs[k][i]) & mask == part & mask, (t, m, "mul", i)
            assert int(outs[k + 1][i]) & mask == (part + _wrap(z, out_bits, signed)) & mask, (
                t, m, "mad", i)
        k += 2


# -- prmt modes against values a GPU produced ---------------------------------------------------
# ckennelly/panoptes, src/tests/sm_20/vtest_k_prmt.cu, asserts these results of the prmt modes
# (also when run natively on a GPU) for a = 0x809122B3, b = 0xC455E6FF, c = 0x8F94 (c[1:0] = 0).
# Its "rc8" kernel actually runs .b4e, so rc8 is not among them. The ISA's mode table ("Data
# Movement and Conversion Instructions: prmt") gives the same bytes.
PANOPTES_PRMT = {"f4e": 0x809122B3, "b4e": 0xE655C4B3, "ecl": 0x809122B3, "ecr": 0xB3B3B3B3,
                 "rc16": 0x22B322B3}


def test_prmt_modes_match_values_recorded_on_a_gpu() -> None:
    modes = list(PANOPTES_PRMT)
    prog = lane_program("prmt_gpu", ["b32", "b32", "b32"],
                        lambda kb, v: [kb.prmt(v[0], v[1], v[2], mode=m) for m in modes])
    a, b, c = (np.full(32, x, np.uint32) for x in (0x809122B3, 0xC455E6FF, 0x8F94))
    outs = prog(a, b, c)
    for m, out in zip(modes, outs, strict=True):
        assert set(out.tolist()) == {PANOPTES_PRMT[m]}, m


def test_atomic_float_add_gives_the_nan_an_add_gives() -> None:
    # inf + -inf: atom/red.add (global and shared, f32 and f64) store the NaN that add.rn does.
    kb = KernelBuilder("fadd_nan", block_threads=32, shared_bytes=64)
    g32, g64, plain, sh = (kb.param(n, U64, pointer=True) for n in ("g32", "g64", "plain", "sh"))
    inf32, inf64 = kb.param("inf32", F32), kb.param("inf64", "f64")
    neg32, neg64 = kb.unary("neg", inf32), kb.unary("neg", inf64)
    lane = kb.sreg("laneid")
    with kb.if_(kb.setp("eq", lane, 0)):
        kb.atom("global", "add", g32, neg32, type=F32)
        kb.red("global", "add", g64, neg64, type="f64")
        kb.st("shared", kb.mov(0, U32), inf32)
        kb.st("shared", kb.mov(8, U32), inf64)
        kb.atom("shared", "add", kb.mov(0, U32), neg32, type=F32)
        kb.red("shared", "add", kb.mov(8, U32), neg64, type="f64")
        kb.st("global", sh, kb.ld("shared", kb.mov(0, U32), F32))
        kb.st("global", sh, kb.ld("shared", kb.mov(8, U32), "f64"), offset=8)
        kb.st("global", plain, kb.add(inf32, neg32))
        kb.st("global", plain, kb.add(inf64, neg64), offset=8)
    run = compile_kernel(kb.finish())
    g32_a, g64_a = np.array([np.inf], np.float32), np.array([np.inf], np.float64)
    plain_a, sh_a = np.zeros(2, np.uint64), np.zeros(2, np.uint64)
    run(1, g32_a.view(np.uint32), g64_a.view(np.uint64), plain_a, sh_a, np.float32(np.inf),
        np.float64(np.inf))
    add32, add64 = int(plain_a[0]) & 0xFFFFFFFF, int(plain_a[1])
    assert np.isnan(np.uint32(add32).view(np.float32)) and np.isnan(np.uint64(add64).view(
        np.float64))
    assert int(g32_a.view(np.uint32)[0]) == add32 == int(sh_a[0]) & 0xFFFFFFFF
    assert int(g64_a.view(np.uint64)[0]) == add64 == int(sh_a[1])


# -- membermask groups -------------------------------------------------------------------------
# PTX ISA, shfl.sync / vote.sync: a thread must be in its own membermask and waits until every
# thread of the membermask has executed the same instruction with the same membermask. A
# converged warp may therefore run one shfl.sync as two groups, each naming itself; vote.sync
# then reduces over each lane's own membermask.

HALF_MASKS = [0x0000FFFF if lane < 16 else 0xFFFF0000 for lane in range(32)]


def _group_program(masks_of_lanes: list[int], cond: str | None = None):
    kb = KernelBuilder("groups", block_threads=32)
    pm, pv, out = (kb.param(n, U64, pointer=True) for n in ("m", "v", "out"))
    lane = kb.sreg("laneid")
    off = kb.mul(lane, 4, mode="wide")
    m = kb.ld("global", kb.add(pm, off), U32)
    v = kb.ld("global", kb.add(pv, off), U32)
    p = kb.setp("ne", v, 0)
    res = [kb.reg(U32, f"o{k}") for k in range(5)]
    for r in res:
        kb.mov(0xDEAD, U32, out=r)

    def body() -> None:
        kb.mov(kb.shfl("bfly", kb.mov(lane, "b32"), 1, 0x1F, m), U32, out=res[0])
        kb.mov(kb.vote("ballot", p, m), U32, out=res[1])
        for k, mode in enumerate(("all", "any", "uni"), 2):
            kb.selp(1, 0, kb.vote(mode, p, m), type=U32, out=res[k])

    if cond is None:
        body()
    else:
        with kb.if_(kb.setp("lt", lane, 16)):
            body()
    for k, r in enumerate(res):
        kb.st("global", kb.add(out, kb.add(off, 128 * k)), r)
    run = compile_kernel(kb.finish())
    out_a = np.zeros(32 * 5, np.uint32)

    def call(votes: list[int]) -> np.ndarray:
        run(1, np.array(masks_of_lanes, np.uint32), np.array(votes, np.uint32), out_a)
        return out_a.reshape(5, 32)
    return call


def test_two_membermask_groups_in_a_converged_warp() -> None:
    call = _group_program(HALF_MASKS)
    votes = [int(lane % 3 == 0) for lane in range(16)] + [1] * 16
    got = call(votes)
    assert got[0].tolist() == [lane ^ 1 for lane in range(32)]
    for lane in range(32):
        group = [j for j in range(32) if HALF_MASKS[lane] >> j & 1]
        ballot = sum(votes[j] << j for j in group)
        assert got[1, lane] == ballot, lane
        assert got[2, lane] == int(all(votes[j] for j in group))
        assert got[3, lane] == int(any(votes[j] for j in group))
        assert got[4, lane] == int(len({votes[j] for j in group}) == 1)


@pytest.mark.parametrize(("masks", "cond", "named"), [
    # lane 1 is not in its own mask (lane 0, naming lane 1, is the first lane found wrong)
    ([0xFFFFFFFF] + [0xFFFFFFFD] + [0xFFFFFFFF] * 30, None, 0xFFFFFFFF),
    ([0x1FFFF] * 32, "lt16", 0x1FFFF),                          # names lane 16, which is absent
    ([0x0000FFFF] * 16 + [0xFFFFFFFF] * 16, None, 0xFFFFFFFF),  # lanes 16.. name the other group
])
def test_membermasks_that_are_not_groups_are_reported(masks, cond, named) -> None:
    call = _group_program(masks, cond)
    with pytest.raises(CpuKernelError, match=f"not a group of executing lanes.*membermask "
                                             f"0x{named:08x}"):
        call([1] * 32)

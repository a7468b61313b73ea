"""Floating-point intrinsics on the CPU backend vs the PTX ISA and the numeric contract
(DESIGN §3), on all 32 lanes of many warps: every f16/bf16/f32 operation rounds once to nearest
even (oracles: numpy/ml_dtypes IEEE arithmetic, or exact rationals rounded by comparing
neighbours); ``cvt`` with its rounding modes, ``.satfinite`` and the f16x2/bf16x2 packs (ISA
"cvt": ``cvt.rn.f16x2.f32 d, a, b`` puts a in the upper half); min/max NaN and signed-zero rules;
``ex2.approx``/``rcp.approx`` exact after their flush to zero."""

from __future__ import annotations

from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from cpu_harness import lane_program

N = 32 * 64
BF16 = ml_dtypes.bfloat16


@pytest.fixture(scope="module")
def rng() -> np.random.Generator:
    return np.random.default_rng(2024)


def interesting_f32(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random f32 values of many magnitudes, plus zeros, infinities, NaN and subnormals."""
    x = (rng.standard_normal(n) * np.exp2(rng.integers(-30, 30, n))).astype(np.float32)
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, -1e-42, 65504.0, 65520.0,
                         -65536.0, 3.4e38, 5.96e-8, 2.98e-8, 1.0], np.float32)
    x[: len(specials)] = specials
    return x


def nearest(x: Fraction, dtype: type, zero: float = 0.0) -> np.ndarray:
    """``x`` rounded to nearest even in ``dtype`` (f16, bf16, f32), by exact comparison; an
    exact zero gets the sign of ``zero`` (IEEE's sign rules are the caller's)."""
    if x == 0:
        return np.array(zero, dtype)
    f = np.array(float(x), np.float64).astype(np.float32).astype(dtype)
    cands = [np.nextafter(f, np.array(-np.inf, dtype)), f, np.nextafter(f, np.array(np.inf, dtype))]
    best = None
    for c in cands:
        if not np.isfinite(c.astype(np.float64)):
            continue
        d = abs(Fraction(float(c)) - x)
        even = int(c.view(np.uint16 if c.dtype.itemsize == 2 else np.uint32)) % 2 == 0
        if best is None or d < best[0] or (d == best[0] and even):
            best = (d, c)
    return best[1]


def same_bits(got: np.ndarray, want: np.ndarray) -> bool:
    """Equal bit patterns, where any NaN matches any NaN."""
    g, w = got.astype(np.float64), want.astype(np.float64)
    both_nan = np.isnan(g) & np.isnan(w)
    eq = got.view(f"u{got.itemsize}") == want.view(f"u{want.itemsize}")
    return bool(np.all(eq | both_nan))


# -- f32 ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def f32_prog():
    def body(kb, v):
        a, b, c = v
        return [kb.add(a, b), kb.sub(a, b), kb.mul(a, b), kb.fma(a, b, c), kb.min(a, b),
                kb.max(a, b), kb.unary("ex2", a, ftz=True), kb.unary("rcp", a, ftz=True),
                kb.unary("neg", a), kb.unary("abs", a)]
    return lane_program("f32_ops", ["f32", "f32", "f32"], body)


def ptx_min(a: float, b: float, is_max: bool) -> float:
    # ISA min/max.f32: NaN inputs are ignored (both NaN: NaN); -0.0 < +0.0.
    if np.isnan(a):
        return b
    if np.isnan(b):
        return a
    if a == b == 0:
        neg = (np.signbit(a) and np.signbit(b)) if is_max else (np.signbit(a) or np.signbit(b))
        return -0.0 if neg else 0.0
    return max(a, b) if is_max else min(a, b)


def ftz(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32).copy()
    tiny = np.abs(x) < np.float32(2.0 ** -126)
    x[tiny] = np.copysign(np.float32(0), x[tiny])
    return x


def test_f32_arithmetic_rounds_once(f32_prog, rng) -> None:
    a, b, c = interesting_f32(rng, N), interesting_f32(rng, N)[::-1].copy(), interesting_f32(
        rng, N)
    outs = [o.view(np.float32) for o in f32_prog(a.view(np.uint32), b.view(np.uint32),
                                                 c.view(np.uint32))]
    with np.errstate(all="ignore"):
        assert same_bits(outs[0], a + b)
        assert same_bits(outs[1], a - b)
        assert same_bits(outs[2], a * b)
        fin = np.isfinite(a) & np.isfinite(b) & np.isfinite(c) & np.isfinite(
            a.astype(np.float64) * b + c)
        for i in np.flatnonzero(fin)[:400]:
            exact = Fraction(float(a[i])) * Fraction(float(b[i])) + Fraction(float(c[i]))
            if abs(exact) < 3.4e38:
                zero = float(a[i]) * float(b[i]) + float(c[i])   # IEEE sign of an exact zero
                want = nearest(exact, np.float32, zero)
                assert outs[3][i].view(np.uint32) == want.view(np.uint32)
        assert same_bits(outs[4], np.array([ptx_min(x, y, False) for x, y in zip(a, b,
                                            strict=True)], np.float32))
        assert same_bits(outs[5], np.array([ptx_min(x, y, True) for x, y in zip(a, b,
                                            strict=True)], np.float32))
        # ex2.approx.ftz / rcp.approx.ftz: exact after flushing input and output subnormals
        assert same_bits(outs[6], ftz(np.exp2(ftz(a).astype(np.float64))))
        assert same_bits(outs[7], ftz(1.0 / ftz(a).astype(np.float64)))
        assert same_bits(outs[8], -a)
        assert same_bits(outs[9], np.abs(a))


# -- f16 / bf16 / packed -----------------------------------------------------------------------

def half_body(kb, v):
    h, g, k, p, q = v
    out = []
    for t in ("f16", "bf16"):
        a, b, c = (kb.mov(x, t) for x in (h, g, k))
        out += [kb.add(a, b), kb.mul(a, b), kb.fma(a, b, c), kb.min(a, b), kb.max(a, b)]
    for t in ("f16x2", "bf16x2"):
        a, b = kb.mov(p, t), kb.mov(q, t)
        out += [kb.add(a, b), kb.fma(a, b, a)]
    return out


@pytest.fixture(scope="module")
def half_prog():
    return lane_program("half_ops", ["b16", "b16", "b16", "b32", "b32"], half_body)


def halves(rng: np.random.Generator, dtype: type, n: int) -> np.ndarray:
    x = (rng.standard_normal(n) * np.exp2(rng.integers(-12, 12, n))).astype(dtype)
    x[:6] = np.array([0.0, -0.0, np.inf, np.nan, -np.inf, 1e-7], np.float32).astype(dtype)
    return x


def test_f16_bf16_and_packed_arithmetic_round_once(half_prog, rng) -> None:
    f16 = [halves(rng, np.float16, N) for _ in range(3)]
    # the inputs are bit patterns: the f16 and bf16 programs read the same words differently
    words = [f16[i].view(np.uint16) for i in range(3)]
    p = rng.integers(0, 2**32, N, dtype=np.uint64).astype(np.uint32)
    q = rng.integers(0, 2**32, N, dtype=np.uint64).astype(np.uint32)
    outs = half_prog(*words, p, q)
    with np.errstate(all="ignore"):
        for k, dt in enumerate((np.float16, BF16)):
            a, b, c = (w.view(dt) for w in words)
            got = [o.view(dt) for o in outs[5 * k: 5 * k + 5]]
            assert same_bits(got[0], a + b), dt
            assert same_bits(got[1], a * b), dt
            fin = np.isfinite(a.astype(np.float64) * b.astype(np.float64) + c.astype(np.float64))
            for i in np.flatnonzero(fin)[:300]:
                exact = Fraction(float(a[i])) * Fraction(float(b[i])) + Fraction(float(c[i]))
                want = nearest(exact, dt, float(a[i]) * float(b[i]) + float(c[i]))
                if np.isfinite(want.astype(np.float64)) and abs(float(exact)) < float(
                        np.finfo(np.float16).max if dt is np.float16 else 3.38e38):
                    assert got[2][i].view(np.uint16) == want.view(np.uint16), (dt, i)
            mins = np.array([ptx_min(float(x), float(y), False) for x, y in zip(a, b,
                                                                               strict=True)])
            maxs = np.array([ptx_min(float(x), float(y), True) for x, y in zip(a, b,
                                                                             strict=True)])
            assert same_bits(got[3], mins.astype(dt)), dt
            assert same_bits(got[4], maxs.astype(dt)), dt
        for k, dt in enumerate((np.float16, BF16)):
            pa, qa = p.view(dt), q.view(dt)            # element 0 in the low half
            assert same_bits(outs[10 + 2 * k].view(dt), pa + qa), dt
            prod = pa.astype(np.float64) * qa.astype(np.float64) + pa.astype(np.float64)
            fin = np.isfinite(prod) & (np.abs(prod) < 6e4)
            fma_got = outs[11 + 2 * k].view(dt)
            for i in np.flatnonzero(fin)[:200]:
                exact = Fraction(float(pa[i])) * Fraction(float(qa[i])) + Fraction(float(pa[i]))
                zero = float(pa[i]) * float(qa[i]) + float(pa[i])
                assert fma_got[i].view(np.uint16) == nearest(exact, dt, zero).view(np.uint16)


# -- cvt ---------------------------------------------------------------------------------------

ROUNDINGS = ["rn", "rz", "rm", "rp"]


def cvt_body(kb, v):
    x, y = v
    out = [kb.cvt(x, "f16", rnd=r) for r in ROUNDINGS]
    out += [kb.cvt(x, "bf16", rnd=r) for r in ROUNDINGS]
    out += [kb.cvt(x, "f16", rnd="rn", sat="satfinite"),
            kb.cvt(x, "bf16", rnd="rn", sat="satfinite")]
    out += [kb.cvt_pack(x, y, "f16x2"), kb.cvt_pack(x, y, "bf16x2")]
    out += [kb.cvt(x, "s32", rnd=r + "i") for r in ROUNDINGS]
    out += [kb.cvt(x, "u8", rnd="rni"), kb.cvt(kb.cvt(x, "f16", rnd="rn"), "f32")]
    out += [kb.cvt(kb.mov(y, "s32"), "f32", rnd=r) for r in ROUNDINGS]
    return out


@pytest.fixture(scope="module")
def cvt_prog():
    return lane_program("cvt_all", ["f32", "f32"], cvt_body)


def directed(x: float, dt: type, mode: str) -> np.ndarray:
    """x (an f32 value) rounded to dt (f16/bf16/f32) with the IEEE rounding ``mode``."""
    if np.isnan(x):
        return np.array(np.nan, dt)
    if mode == "rn":
        with np.errstate(over="ignore"):
            return np.array(x, np.float32).astype(dt)
    if np.isinf(x):
        return np.array(x, dt)
    mx = np.array(float(ml_dtypes.finfo(dt).max), dt)
    inf = np.array(np.inf, dt)
    exact = Fraction(x)
    if abs(x) > float(mx):                      # between ±max and ±inf
        lo, hi = (mx, inf) if x > 0 else (-inf, -mx)
    else:
        near = np.array(x, np.float32).astype(dt)
        if Fraction(float(near)) == exact:
            return near
        if Fraction(float(near)) > exact:
            lo, hi = np.nextafter(near, -inf), near
        else:
            lo, hi = near, np.nextafter(near, inf)
    if mode == "rz":
        return lo if x > 0 else hi
    return lo if mode == "rm" else hi


def test_cvt_rounding_modes_satfinite_and_packs(cvt_prog, rng) -> None:
    x = interesting_f32(rng, N)
    y = (rng.standard_normal(N) * 1e3).astype(np.float32)
    y[:4] = [2.0**31, -2.0**31 - 256, 16777217.0, 1.5]
    outs = cvt_prog(x.view(np.uint32), y.view(np.uint32))
    for k, mode in enumerate(ROUNDINGS):
        for dt, col in ((np.float16, k), (BF16, 4 + k)):
            want = np.array([directed(float(v), dt, mode) for v in x], dt)
            assert same_bits(outs[col].view(dt), want), (dt, mode)
    # .satfinite: overflow and ±inf clamp to ±max, NaN stays NaN
    for dt, col in ((np.float16, 8), (BF16, 9)):
        mx = float(ml_dtypes.finfo(dt).max)
        with np.errstate(over="ignore"):
            want = np.clip(x.astype(np.float32).astype(dt).astype(np.float64), -mx, mx).astype(dt)
        assert same_bits(outs[col].view(dt), want), dt
    # packs: a (here x) goes to the upper half, b (y) to the lower half
    for dt, col in ((np.float16, 10), (BF16, 11)):
        with np.errstate(over="ignore"):
            hi, lo = x.astype(dt).view(np.uint16), y.astype(dt).view(np.uint16)
        got = outs[col]
        assert same_bits((got >> 16).astype(np.uint16).view(dt), hi.view(dt))
        assert same_bits((got & 0xFFFF).astype(np.uint16).view(dt), lo.view(dt))
    # float -> s32 with rni/rzi/rmi/rpi: round to an integer, saturate, NaN -> 0
    rounders = {"rn": np.rint, "rz": np.trunc, "rm": np.floor, "rp": np.ceil}
    for k, mode in enumerate(ROUNDINGS):
        r = rounders[mode](x.astype(np.float64))
        want = np.where(np.isnan(r), 0, np.clip(np.nan_to_num(r), -2**31, 2**31 - 1))
        assert outs[12 + k].view(np.int32).tolist() == want.astype(np.int64).tolist(), mode
    r = np.rint(x.astype(np.float64))
    assert outs[16].tolist() == np.where(np.isnan(r), 0, np.clip(np.nan_to_num(r), 0, 255)
                                         ).astype(np.int64).tolist()
    with np.errstate(over="ignore"):
        assert same_bits(outs[17].view(np.float32), x.astype(np.float16).astype(np.float32))
    # s32 -> f32: y reinterpreted as s32, rounded four ways
    ys = y.view(np.int32)
    for k, mode in enumerate(ROUNDINGS):
        want = np.array([directed(float(v), np.float32, mode) if mode != "rn" else
                         np.float32(v) for v in ys.tolist()], np.float32)
        assert same_bits(outs[18 + k].view(np.float32), want), mode


def test_without_f16c_the_integer_conversions_give_the_same_bits(half_prog, cvt_prog, rng,
                                                                  monkeypatch, tmp_path) -> None:
    """On a host with F16C (like CI's) f32 -> f16 rounding and the widening inside f16
    arithmetic use the hardware conversions, which the tests above hold to their oracles; a
    host without F16C runs the integer code, held here to the same bits (a fresh JIT cache: the
    key does not see the switch)."""
    from tilevm.backend.cpu import numerics

    monkeypatch.setenv("TILEVM_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(numerics, "host_has_f16c", lambda: False)
    words = [halves(rng, np.float16, N).view(np.uint16) for _ in range(3)]
    pairs = [rng.integers(0, 1 << 32, N, dtype=np.uint64).astype(np.uint32) for _ in range(2)]
    x = interesting_f32(rng, N)
    y = (rng.standard_normal(N) * 1e3).astype(np.float32)
    with_f16c = (half_prog(*words, *pairs), cvt_prog(x.view(np.uint32), y.view(np.uint32)))
    half_int = lane_program("half_ops_integer", ["b16", "b16", "b16", "b32", "b32"], half_body)
    cvt_int = lane_program("cvt_all_integer", ["f32", "f32"], cvt_body)
    without = (half_int(*words, *pairs), cvt_int(x.view(np.uint32), y.view(np.uint32)))
    for got, want in zip(without, with_f16c, strict=True):
        for k, (g, w) in enumerate(zip(got, want, strict=True)):
            assert np.array_equal(g, w), k

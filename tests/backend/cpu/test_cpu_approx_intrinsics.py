"""The transcendental, division, square-root and rounding intrinsics on the CPU backend, on all 32
lanes of many warps, against independent oracles:

- ``div.rn`` and ``sqrt.rn`` (f32, f64; PTX ISA 9.1 §9.7.3.8, §9.7.3.15): correctly rounded,
  checked with exact rationals (a quotient or root is correctly rounded iff the exact value lies
  between the midpoints to its neighbours);
- the ``.approx`` instructions ``ex2``, ``lg2``, ``sin``, ``cos``, ``rsqrt``, ``tanh``
  (§9.7.3.16–22) with and without ``.ftz``: the exactly rounded f32 of the function of the
  (flushed) input (DESIGN §3), from mpmath at 200 bits rounded by exact comparison; the special
  values of the ISA's tables bit for bit (a NaN result is the canonical ``0x7fffffff``);
- ``cvt.{rni,rzi,rmi,rpi}`` from a float type to itself (§9.7.9.21): numpy's rint/trunc/floor/ceil
  (exact operations), signed zeros kept, NaN canonical;
- ``cvt`` of NaN to an integer: 0, or ``1 << (bits - 1)`` from f64 or into 64 bits (the ISA's
  "Integer Notes");
- ``min``/``max`` on signed zeros and NaNs in every float type (§9.7.3.11/12, §9.7.4.7/8).
"""

from __future__ import annotations

from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from cpu_harness import lane_program, nearest_f32

mpmath = pytest.importorskip("mpmath")

N = 32 * 48
BF16 = ml_dtypes.bfloat16
CANONICAL_NAN = 0x7FFFFFFF


@pytest.fixture(scope="module")
def rng() -> np.random.Generator:
    return np.random.default_rng(31)


def wide_f32(rng: np.random.Generator, n: int, lo: int = -40, hi: int = 40) -> np.ndarray:
    """Random f32 of magnitudes 2**lo .. 2**hi and both signs, with subnormals, zeros,
    infinities and NaN at the front."""
    x = (rng.standard_normal(n) * np.exp2(rng.integers(lo, hi, n))).astype(np.float32)
    specials = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, -1e-40, 1.4e-45, -3e-39, 1.0, -1.0,
                0.5, 2.0, 3.0e38, -3.0e38, 1e30, -1e30, 100.0, -0.75, 1.1754942e-38]
    x[: len(specials)] = np.array(specials, np.float32)
    return x


def ftz(x: np.ndarray) -> np.ndarray:
    x = np.array(x, np.float32)
    tiny = np.abs(x) < np.float32(2.0**-126)
    x[tiny] = np.copysign(np.float32(0), x[tiny])
    return x


def bits(x: np.ndarray) -> list[int]:
    return np.asarray(x, np.float32).view(np.uint32).tolist()


def canonical_bits(x: np.ndarray) -> list[int]:
    """The f32 bit patterns, NaN as PTX's canonical NaN."""
    return [CANONICAL_NAN if v != v else b for v, b in zip(np.asarray(x, np.float32).tolist(),
                                                            bits(x), strict=True)]


# -- div.rn, sqrt.rn -----------------------------------------------------------------------------

def test_div_and_sqrt_round_once_to_nearest(rng) -> None:
    def body(kb, v):
        a, b = v
        a64, b64 = kb.cvt(a, "f64"), kb.cvt(b, "f64")
        # f64 operands that are not f32 values: a·(1 + 2^-40)
        a64 = kb.fma(a64, 1.0 + 2.0**-40, 0.0)
        return [kb.div(a, b), kb.sqrt(a), kb.div(a64, b64), kb.sqrt(a64)]
    prog = lane_program("div_sqrt", ["f32", "f32"], body)
    a, b = wide_f32(rng, N), wide_f32(rng, N)[::-1].copy()
    q, r, q64, r64 = prog(a.view(np.uint32), b.view(np.uint32))
    q, r, q64, r64 = (q.view(np.float32), r.view(np.float32), q64.view(np.float64),
                      r64.view(np.float64))
    with np.errstate(all="ignore"):
        assert bits(q) == canonical_bits(a / b)              # numpy: IEEE f32 division
        assert bits(r) == canonical_bits(np.sqrt(a))         # and square root
    assert bits(r[np.flatnonzero((a == 0) & np.signbit(a))]) == [0x80000000] * int(
        np.sum((a == 0) & np.signbit(a)))                    # sqrt(-0) = -0
    assert {v for v in q64.view(np.uint64).tolist() + r64.view(np.uint64).tolist()
            if v & (0x7FF << 52) == 0x7FF << 52 and v & ((1 << 52) - 1)} <= {0x7FFFFFFFFFFFFFFF}
    # the f64 results against exact rationals: within half an ulp of the true value
    for i in range(N):
        x = float(a[i]) * (1.0 + 2.0**-40)
        if np.isfinite(x) and np.isfinite(b[i]) and b[i] != 0 and np.isfinite(q64[i]):
            exact = Fraction(x) / Fraction(float(b[i]))
            got = float(q64[i])
            gap = abs(Fraction(np.nextafter(got, np.inf)) - Fraction(got))
            assert abs(Fraction(got) - exact) <= gap / 2, (x, b[i])
        if np.isfinite(x) and x > 0:
            got = Fraction(float(r64[i]))
            lo = (got + Fraction(float(np.nextafter(r64[i], 0.0)))) / 2
            hi = (got + Fraction(float(np.nextafter(r64[i], np.inf)))) / 2
            assert lo * lo <= Fraction(x) <= hi * hi, x
    # f32 quotients, exactly, on a subset with finite nonzero results
    for i in np.flatnonzero(np.isfinite(q) & (q != 0))[:300]:
        assert q[i] == nearest_f32(Fraction(float(a[i])) / Fraction(float(b[i])))


# -- the .approx instructions ----------------------------------------------------------------------

MP = {"ex2": lambda v: mpmath.power(2, v), "lg2": lambda v: mpmath.log(v, 2),
      "sin": mpmath.sin, "cos": mpmath.cos, "tanh": mpmath.tanh,
      "rsqrt": lambda v: 1 / mpmath.sqrt(v)}


def exactly_rounded(op: str, x: float) -> np.float32:
    """The f32 nearest to op(x) for a finite x in the function's domain (mpmath, 200 bits, then
    rounded by exact comparison of the neighbours)."""
    if op == "ex2" and not -150 < x < 128:     # 2**x overflows, or rounds to 0 (2**-150 is
        return np.float32(np.inf if x > 0 else 0.0)    # the tie between 0 and 2**-149: even)
    with mpmath.workprec(200):
        sign, man, exp, _ = MP[op](mpmath.mpf(x))._mpf_     # (-1)**sign · man · 2**exp
        exact = (-1) ** sign * Fraction(int(man)) * Fraction(2) ** int(exp) if man else Fraction(0)
    if abs(exact) >= Fraction(2) ** 128 - Fraction(2) ** 103:    # rounds to infinity
        return np.float32(np.inf if exact > 0 else -np.inf)
    return nearest_f32(exact) if exact else np.float32(0.0)


@pytest.fixture(scope="module")
def approx_prog():
    ops = ["ex2", "lg2", "sin", "cos", "rsqrt"]

    def body(kb, v):
        (a,) = v
        out = []
        for op in ops:
            out += [getattr(kb, op)(a), getattr(kb, op)(a, ftz=True)]
        return [*out, kb.tanh(a)]
    return ops, lane_program("approx", ["f32"], body)


@pytest.mark.parametrize("magnitudes", [(-40, 40), (-3, 8)])
def test_approx_instructions_are_exactly_rounded_after_the_flush(approx_prog, rng,
                                                                 magnitudes) -> None:
    ops, prog = approx_prog
    a = wide_f32(rng, 32 * 8, *magnitudes)
    a[20:40] = [-130.5, -149.0, -126.5, 127.9, 128.0, 0.99999994, 1.0000001, 3.1415927,
                -3.1415927, 1.5707964, 6.2831855, 314.15927, 1e6, 8388609.0, 0.625, -10.0,
                9.0, 20.0, 1e-3, -1e-20]                    # ex2 under/overflow, near pi, big
    outs = [o.view(np.float32) for o in prog(a.view(np.uint32))]
    for k, op in enumerate([*[(op, f) for op in ops for f in (False, True)], ("tanh", False)]):
        name, flush = op
        got = outs[k]
        for i, x in enumerate(a.tolist()):
            xin = float(ftz(np.float32(x))[()]) if flush else x
            if not np.isfinite(xin) or xin == 0 or (name in ("lg2", "rsqrt") and xin < 0):
                continue                                   # special values: the next test
            want = exactly_rounded(name, xin)
            if flush:
                want = ftz(want)[()]
            assert bits(got[i]) == bits(want), (name, flush, x, got[i], want)


def _special(op: str, x: float) -> float:
    """The PTX ISA's table of results for special inputs (tanh: also subnormals pass through)."""
    nan, inf = float("nan"), float("inf")
    neg = np.signbit(x)
    if np.isnan(x):
        return nan
    table = {
        "ex2": {-inf: 0.0, inf: inf, 0.0: 1.0},
        "lg2": {-inf: nan, inf: inf, 0.0: -inf},
        "sin": {-inf: nan, inf: nan, 0.0: x},
        "cos": {-inf: nan, inf: nan, 0.0: 1.0},
        "rsqrt": {-inf: nan, inf: 0.0, 0.0: -inf if neg else inf},
        "tanh": {-inf: -1.0, inf: 1.0, 0.0: x},
    }[op]
    if x in table:
        return table[x]
    assert x < 0 and op in ("lg2", "rsqrt")               # a negative normal
    return nan


def test_special_values_of_the_isa_tables(approx_prog) -> None:
    ops, prog = approx_prog
    specials = [-np.inf, -2.0, -0.0, 0.0, np.inf, np.nan, -1e-40, 1e-40]
    a = np.resize(np.array(specials, np.float32), 32)
    outs = [o.view(np.float32) for o in prog(a.view(np.uint32))]
    cases = [*[(op, f) for op in ops for f in (False, True)], ("tanh", False)]
    for k, (op, flush) in enumerate(cases):
        for i, x in enumerate(a[:len(specials)].tolist()):
            if abs(x) < 2.0**-126 and x != 0:
                if not flush and op != "tanh":
                    continue                                # an ordinary tiny input
                if op == "tanh":
                    assert bits(outs[k][i]) == bits(np.float32(x)), "subnormals pass through"
                    continue
                x = float(np.copysign(0.0, x))               # .ftz: a zero of its sign
            if (op in ("lg2", "rsqrt") and x == -2.0) or x in (0.0, np.inf, -np.inf) or x != x:
                want = np.float32(_special(op, x))
                assert bits(outs[k][i]) == (
                    CANONICAL_NAN if np.isnan(want) else bits(want)), (op, flush, x)


def test_hard_cases_are_exactly_rounded(approx_prog) -> None:
    # The inputs where the f64 value, rounded to f32, may round the wrong way (within a few f64
    # ulps of an f32 midpoint): every table entry is mpmath's exactly rounded value, and the
    # CPU gives it (for both signs where the function is odd or even).
    from tilevm.backend.cpu.approx_tables import exception_table

    ops, prog = approx_prog
    names = {"sin": "sin", "cos": "cos", "tanh": "tanh", "log2": "lg2", "exp2": "ex2"}
    entries = [(names[f], x, y) for f in names for x, y in exception_table(f)]
    assert ("sin", 9830.3984375, -0.34761324524879456) in entries
    for op, x, y in entries:
        assert np.float32(x) == x and np.float32(y) == y
        assert exactly_rounded(op, x) == np.float32(y), (op, x)
    cases = [*[(op, f) for op in ops for f in (False, True)], ("tanh", False)]
    for start in range(0, len(entries), 32):
        chunk = entries[start:start + 32]
        a = np.resize(np.array([x for _, x, _ in chunk], np.float32), 32)
        outs = [o.view(np.float32) for o in prog(a.view(np.uint32))]
        for i, (op, x, y) in enumerate(chunk):
            k = cases.index((op, False))
            assert bits(outs[k][i]) == bits(np.float32(y)), (op, x)


# -- cvt to an integral value in the same float type ---------------------------------------------

def test_cvt_rounds_to_an_integral_value_in_the_same_type(rng) -> None:
    modes = ["rni", "rzi", "rmi", "rpi"]
    rounders = {"rni": np.rint, "rzi": np.trunc, "rmi": np.floor, "rpi": np.ceil}

    def body(kb, v):
        a, d = v
        h, g = kb.mov(kb.cvt(kb.mov(a, "u32"), "u16"), "f16"), kb.mov(
            kb.cvt(kb.mov(a, "u32"), "u16"), "bf16")
        return [kb.cvt(x, x.type, rnd=m) for x in (a, d, h, g) for m in modes]
    prog = lane_program("cvt_integral", ["f32", "f64"], body)
    a = (rng.standard_normal(N) * np.exp2(rng.integers(-4, 26, N))).astype(np.float32)
    a[:12] = [0.5, -0.5, 1.5, 2.5, -2.5, -0.3, 0.0, -0.0, np.inf, -np.inf, np.nan, 8388607.5]
    d = a.astype(np.float64) * (1 + 2.0**-45)
    d[:3] = [4503599627370495.5, -0.49999999999999994, 2.0**60 + 0.0]
    a[12:20] = np.array([0x3C00 | 0x200, 0xBD00, 0x7E01, 0xFC00, 0x0001, 0x8001, 0x4A4D,
                         0x3800], np.uint32).view(np.float32)   # f16/bf16 patterns in the low half
    outs = prog(a.view(np.uint32), d.view(np.uint64))
    for k, m in enumerate(modes):
        f = rounders[m]
        got32, got64 = outs[k].view(np.float32), outs[4 + k].view(np.float64)
        want32, want64 = f(a), f(d)
        assert bits(got32) == canonical_bits(want32), m
        nan64 = np.isnan(want64)
        assert np.array_equal(got64.view(np.uint64)[~nan64], want64.view(np.uint64)[~nan64]), m
        assert set(got64.view(np.uint64)[nan64].tolist()) <= {0x7FFFFFFFFFFFFFFF}
        for j, dt in ((8, np.float16), (12, BF16)):
            h = (a.view(np.uint32) & 0xFFFF).astype(np.uint16).view(dt)
            got = outs[j + k].astype(np.uint16)
            with np.errstate(invalid="ignore"):
                want = f(h.astype(np.float32)).astype(dt).view(np.uint16)
            nan = np.isnan(h.astype(np.float32))
            assert np.array_equal(got[~nan], want[~nan]), (m, dt)
            assert set(got[nan].tolist()) <= {0x7FFF}, (m, dt)


def test_cvt_of_nan_to_an_integer() -> None:
    # "Zero if source is not .f64 and destination is not .s64, .u64. Otherwise 1 << (BitWidth(dst)
    # - 1)"
    def body(kb, v):
        a, d = v
        h = kb.cvt(a, "f16", rnd="rn")
        return [kb.cvt(a, "s32", rnd="rzi"), kb.cvt(a, "u16", rnd="rni"),
                kb.cvt(a, "s64", rnd="rzi"), kb.cvt(a, "u64", rnd="rmi"),
                kb.cvt(d, "s32", rnd="rzi"), kb.cvt(d, "u32", rnd="rpi"),
                kb.cvt(d, "s16", rnd="rni"), kb.cvt(d, "s64", rnd="rni"),
                kb.cvt(h, "s64", rnd="rzi"), kb.cvt(h, "u8", rnd="rzi")]
    prog = lane_program("cvt_nan_int", ["f32", "f64"], body)
    a = np.full(32, np.nan, np.float32)
    d = np.full(32, np.nan, np.float64)
    a[1], d[1] = -np.nan, -np.nan
    outs = prog(a.view(np.uint32), d.view(np.uint64))
    want = [0, 0, 1 << 63, 1 << 63, 1 << 31, 1 << 31, 1 << 15, 1 << 63, 1 << 63, 0]
    assert [int(o[0]) for o in outs] == want
    assert [int(o[1]) for o in outs] == want


# -- min / max: signed zeros and NaN ---------------------------------------------------------------

def _ptx_min_max(x: float, y: float, is_max: bool) -> float:
    # min_num / max_num of the ISA: a NaN operand is ignored; "+0.0 > -0.0"
    if np.isnan(x) and np.isnan(y):
        return float("nan")
    if np.isnan(x):
        return y
    if np.isnan(y):
        return x
    if x == y == 0:
        neg_x, neg_y = np.signbit(x), np.signbit(y)
        return -0.0 if ((neg_x and neg_y) if is_max else (neg_x or neg_y)) else 0.0
    return max(x, y) if is_max else min(x, y)


def test_min_max_signed_zeros_and_nans_in_every_float_type() -> None:
    values = [0.0, -0.0, float("nan"), 1.0, -1.0, float("inf"), float("-inf"), 2.0**-140]
    pairs = [(x, y) for x in values for y in values]
    a = np.resize(np.array([p[0] for p in pairs], np.float64), 32 * 2)
    b = np.resize(np.array([p[1] for p in pairs], np.float64), 32 * 2)

    def body(kb, v):
        x, y = v
        out = []
        for t in ("f64", "f32", "f16", "bf16"):
            xt = x if t == "f64" else kb.cvt(x, t, rnd="rn")
            yt = y if t == "f64" else kb.cvt(y, t, rnd="rn")
            out += [kb.min(xt, yt), kb.max(xt, yt)]
        for t in ("f16x2", "bf16x2"):   # the pair (x, y) against (y, x), half by half
            fmt = t[:-2]
            xh, yh = kb.cvt(x, fmt, rnd="rn"), kb.cvt(y, fmt, rnd="rn")
            lo_x, lo_y = (kb.cvt(kb.mov(h, "u16"), "u32") for h in (xh, yh))
            p = kb.mov(kb.or_(lo_x, kb.shl(kb.mov(lo_y, "b32"), 16), type="b32"), t)
            q = kb.mov(kb.or_(lo_y, kb.shl(kb.mov(lo_x, "b32"), 16), type="b32"), t)
            out += [kb.min(p, q), kb.max(p, q)]
        return out
    prog = lane_program("min_max_zeros", ["f64", "f64"], body)
    outs = prog(a, b)
    nan_bits = {"f64": 0x7FFFFFFFFFFFFFFF, "f32": 0x7FFFFFFF, "f16": 0x7FFF, "bf16": 0x7FFF}
    dts = {"f64": np.float64, "f32": np.float32, "f16": np.float16, "bf16": BF16}
    ints = {8: np.uint64, 4: np.uint32, 2: np.uint16}
    for k, t in enumerate(("f64", "f32", "f16", "bf16")):
        dt = dts[t]
        for j, is_max in enumerate((False, True)):
            got = outs[2 * k + j]
            for i in range(len(a)):
                x, y = (float(np.array(v, dt)) for v in (a[i], b[i]))
                w = np.array(_ptx_min_max(x, y, is_max), dt)
                want = nan_bits[t] if np.isnan(w) else int(w.view(ints[w.itemsize]))
                assert int(got[i]) & ((1 << (8 * w.itemsize)) - 1) == want, (t, is_max, x, y)
    for k, t in enumerate(("f16", "bf16")):
        dt = dts[t]
        for j, is_max in enumerate((False, True)):
            got = outs[8 + 2 * k + j]
            for i in range(len(a)):
                x, y = (float(np.array(v, dt)) for v in (a[i], b[i]))
                for half, (u, v) in enumerate(((x, y), (y, x))):
                    w = np.array(_ptx_min_max(u, v, is_max), dt)
                    want = nan_bits[t] if np.isnan(w) else int(w.view(np.uint16))
                    assert (int(got[i]) >> (16 * half)) & 0xFFFF == want, (t, is_max, u, v)

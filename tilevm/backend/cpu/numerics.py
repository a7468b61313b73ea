"""Exact floating-point semantics on warp vectors (DESIGN §3), in integer and f32/f64 LLVM ops.

f16 and bf16 are i16 bit patterns. Conversions are written with integer operations so that no
libcall or target feature decides a rounding. An f16/bf16 add, sub or mul is computed in f32 and
rounded once more: f32 has at least 2p+2 bits for both (p = 11, 8), so the double rounding is
innocuous. ``fma`` goes through f64 with round-to-odd, which makes the final rounding exact.
"""

from __future__ import annotations

from llvmlite import ir

from tilevm.backend.cpu.lanes import F32, F64, I16, I32, I64, Lanes

__all__ = [
    "F16_NAN", "F32_NAN", "bf16_to_f32", "f16_to_f32", "f32_to_half", "f64_to_f32_odd",
    "fma_half", "ftz_f32", "half_to_f32", "int64_to_f64", "minmax",
]

F32_NAN = 0x7FFFFFFF
F16_NAN = 0x7FFF  # PTX's canonical f16 and bf16 NaN


def f16_to_f32(L: Lanes, h: ir.Value) -> ir.Value:
    """i16 f16 patterns → exact f32."""
    b = L.b
    x = b.zext(h, L.vec(I32))
    sign = b.shl(b.and_(x, L.cint(0x8000, I32)), L.cint(16, I32))
    e = b.and_(b.lshr(x, L.cint(10, I32)), L.cint(0x1F, I32))
    m = b.and_(x, L.cint(0x3FF, I32))
    normal = b.or_(b.shl(b.add(e, L.cint(112, I32)), L.cint(23, I32)), b.shl(m, L.cint(13, I32)))
    special = b.or_(L.cint(0x7F800000, I32), b.shl(m, L.cint(13, I32)))
    sub = b.bitcast(b.fmul(b.uitofp(m, L.vec(F32)), L.splat(2.0 ** -24, F32)), L.vec(I32))
    bits = b.select(b.icmp_unsigned("==", e, L.cint(0, I32)), sub,
                    b.select(b.icmp_unsigned("==", e, L.cint(31, I32)), special, normal))
    return b.bitcast(b.or_(bits, sign), L.vec(F32))


def bf16_to_f32(L: Lanes, h: ir.Value) -> ir.Value:
    """i16 bf16 patterns → exact f32."""
    b = L.b
    return b.bitcast(b.shl(b.zext(h, L.vec(I32)), L.cint(16, I32)), L.vec(F32))


def half_to_f32(L: Lanes, h: ir.Value, fmt: str) -> ir.Value:
    """``fmt`` ("f16"/"bf16") patterns → exact f32."""
    return f16_to_f32(L, h) if fmt == "f16" else bf16_to_f32(L, h)


def _f32_to_f16_rn(L: Lanes, x: ir.Value) -> ir.Value:
    b = L.b
    c = lambda v: L.cint(v, I32)  # noqa: E731
    u = b.bitcast(x, L.vec(I32))
    sign = b.trunc(b.lshr(b.and_(u, c(0x80000000)), c(16)), L.vec(I16))
    a = b.and_(u, c(0x7FFFFFFF))
    # normal range: add the rounding bias, then drop 13 mantissa bits and re-bias the exponent
    lsb = b.and_(b.lshr(a, c(13)), c(1))
    normal = b.lshr(b.sub(b.add(b.add(a, c(0xFFF)), lsb), c(0x38000000)), c(13))
    # subnormal results: shift the full significand right by 126 - e with round-half-even
    e = b.lshr(a, c(23))
    m = b.or_(b.and_(a, c(0x7FFFFF)), c(0x800000))
    s = b.sub(c(126), e)
    s_safe = b.select(b.icmp_unsigned("<", s, c(31)), s, c(31))
    half = b.sub(b.shl(c(1), b.sub(s_safe, c(1))), c(1))
    odd = b.and_(b.lshr(m, s_safe), c(1))
    sub = b.lshr(b.add(b.add(m, half), odd), s_safe)
    h = b.select(b.icmp_unsigned("<", a, c(0x38800000)),
                 b.select(b.icmp_unsigned("<", a, c(0x33000000)), c(0), sub), normal)
    h = b.select(b.icmp_unsigned(">=", a, c(0x477FF000)), c(0x7C00), h)
    h = b.trunc(h, L.vec(I16))
    h = b.or_(h, sign)
    return b.select(b.icmp_unsigned(">", a, c(0x7F800000)), L.cint(F16_NAN, I16), h)


def _f32_to_bf16_rn(L: Lanes, x: ir.Value) -> ir.Value:
    b = L.b
    c = lambda v: L.cint(v, I32)  # noqa: E731
    u = b.bitcast(x, L.vec(I32))
    lsb = b.and_(b.lshr(u, c(16)), c(1))
    r = b.trunc(b.lshr(b.add(b.add(u, c(0x7FFF)), lsb), c(16)), L.vec(I16))
    nan = b.icmp_unsigned(">", b.and_(u, c(0x7FFFFFFF)), c(0x7F800000))
    return b.select(nan, L.cint(F16_NAN, I16), r)


def _step_magnitude(L: Lanes, h: ir.Value, up: ir.Value, cond: ir.Value, bits_t: ir.Type
                    ) -> ir.Value:
    """Where ``cond``: move the sign-magnitude pattern ``h`` one code away from zero (``up``) or
    toward zero."""
    b = L.b
    step = b.select(up, L.cint(1, bits_t), L.cint(-1, bits_t))
    return b.select(cond, b.add(h, step), h)


def f32_to_half(L: Lanes, x: ir.Value, fmt: str, rnd: str = "rn", satfinite: bool = False
                ) -> ir.Value:
    """f32 → f16/bf16 pattern with rounding ``rnd`` (rn/rz/rm/rp), optionally ``.satfinite``
    (±inf and overflow → ±max, NaN stays NaN). Directed modes round to nearest, then step one
    code where the nearest value lies on the wrong side of ``x`` (compared exactly in f32)."""
    b = L.b
    h = _f32_to_f16_rn(L, x) if fmt == "f16" else _f32_to_bf16_rn(L, x)
    if rnd != "rn":
        y = half_to_f32(L, h, fmt)
        isnan = b.fcmp_unordered("uno", x, x)
        neg = b.icmp_unsigned("!=", b.and_(h, L.cint(0x8000, I16)), L.cint(0, I16))
        if rnd == "rz":
            wrong = b.fcmp_ordered(">", b.call(L.intrinsic("llvm.fabs.v32f32", L.vec(F32),
                                                            [L.vec(F32)]), [y]),
                                   b.call(L.intrinsic("llvm.fabs.v32f32", L.vec(F32),
                                                      [L.vec(F32)]), [x]))
            up = ir.Constant(ir.VectorType(ir.IntType(1), 32), 0)
        elif rnd == "rm":
            wrong = b.fcmp_ordered(">", y, x)
            up = neg  # stepping down: more negative = larger magnitude for negatives
        elif rnd == "rp":
            wrong = b.fcmp_ordered("<", y, x)
            up = b.not_(neg)
        else:
            raise ValueError(f"unknown rounding {rnd!r}")
        # RN keeps the sign of a zero, so a step never crosses zero: from ±0 it goes outward
        h = _step_magnitude(L, h, up, b.and_(wrong, b.not_(isnan)), I16)
    if satfinite:
        maxc = 0x7BFF if fmt == "f16" else 0x7F7F
        mag = b.and_(h, L.cint(0x7FFF, I16))
        isinf = b.icmp_unsigned("==", mag, L.cint(0x7C00 if fmt == "f16" else 0x7F80, I16))
        h = b.select(isinf, b.or_(b.and_(h, L.cint(0x8000, I16)), L.cint(maxc, I16)), h)
    return h


def f64_to_f32_odd(L: Lanes, x: ir.Value) -> ir.Value:
    """f64 → f32 rounded to odd (an inexact result gets an odd last bit), so that a later
    rounding to a type of at most 22 significant bits is exact."""
    b = L.b
    r = b.fptrunc(x, L.vec(F32))
    back = b.fpext(r, L.vec(F64))
    inexact = b.fcmp_ordered("!=", back, x)
    rb = b.bitcast(r, L.vec(I32))
    even = b.icmp_unsigned("==", b.and_(rb, L.cint(1, I32)), L.cint(0, I32))
    fabs = L.intrinsic("llvm.fabs.v32f64", L.vec(F64), [L.vec(F64)])
    up = b.fcmp_ordered(">", b.call(fabs, [x]), b.call(fabs, [back]))
    rb = _step_magnitude(L, rb, up, b.and_(inexact, even), I32)
    return b.bitcast(rb, L.vec(F32))


def _two_sum_odd(L: Lanes, a: ir.Value, c: ir.Value) -> ir.Value:
    """round-to-odd(a + c) in f64, from the exact error of TwoSum."""
    b = L.b
    s = b.fadd(a, c)
    bb = b.fsub(s, a)
    err = b.fadd(b.fsub(a, b.fsub(s, bb)), b.fsub(c, bb))
    sb = b.bitcast(s, L.vec(I64))
    even = b.icmp_unsigned("==", b.and_(sb, L.cint(1, I64)), L.cint(0, I64))
    inexact = b.fcmp_ordered("!=", err, L.splat(0.0, F64))
    finite = b.fcmp_ordered("<", b.call(L.intrinsic("llvm.fabs.v32f64", L.vec(F64), [L.vec(F64)]),
                                        [s]), L.splat(float("inf"), F64))
    same_sign = b.icmp_unsigned("==", b.lshr(sb, L.cint(63, I64)),
                                b.lshr(b.bitcast(err, L.vec(I64)), L.cint(63, I64)))
    sb = _step_magnitude(L, sb, same_sign, b.and_(b.and_(inexact, even), finite), I64)
    return b.bitcast(sb, L.vec(F64))


def int64_to_f64(L: Lanes, x: ir.Value, signed: bool, rnd: str) -> ir.Value:
    """A 64-bit integer vector → f64 rounded with ``rnd`` (rn/rz/rm/rp), or to odd (``"odd"``,
    for a later rounding to at most 51 significant bits). The value is the exact sum of its high
    word times 2**32 and its low word (both exact in f64); TwoSum gives the rounding error."""
    b = L.b
    hi = b.ashr(x, L.cint(32, I64)) if signed else b.lshr(x, L.cint(32, I64))
    hi_f = b.sitofp(hi, L.vec(F64)) if signed else b.uitofp(hi, L.vec(F64))
    a = b.fmul(hi_f, L.splat(2.0 ** 32, F64))
    c = b.uitofp(b.and_(x, L.cint(0xFFFFFFFF, I64)), L.vec(F64))
    if rnd == "odd":
        return _two_sum_odd(L, a, c)
    s = b.fadd(a, c)
    if rnd == "rn":
        return s
    bb = b.fsub(s, a)
    err = b.fadd(b.fsub(a, b.fsub(s, bb)), b.fsub(c, bb))     # x - s, exactly
    sb = b.bitcast(s, L.vec(I64))
    neg = b.icmp_signed("<", sb, L.cint(0, I64))
    zero = L.splat(0.0, F64)
    if rnd == "rz":     # s is past x (away from zero) where the error has the other sign
        wrong = b.and_(b.fcmp_ordered("!=", err, zero),
                       b.xor(b.fcmp_ordered("<", err, zero), neg))
        up = ir.Constant(ir.VectorType(ir.IntType(1), 32), 0)
    elif rnd == "rm":
        wrong, up = b.fcmp_ordered("<", err, zero), neg
    elif rnd == "rp":
        wrong, up = b.fcmp_ordered(">", err, zero), b.not_(neg)
    else:
        raise ValueError(f"unknown rounding {rnd!r}")
    return b.bitcast(_step_magnitude(L, sb, up, wrong, I64), L.vec(F64))


def fma_half(L: Lanes, a: ir.Value, x: ir.Value, c: ir.Value, fmt: str) -> ir.Value:
    """``fma.rn`` on f16/bf16 patterns: the product is exact in f64, the sum is rounded to odd
    in f64 and again in f32, and the final rounding to nearest even is then exact."""
    b = L.b
    fa, fx, fc = (b.fpext(half_to_f32(L, v, fmt), L.vec(F64)) for v in (a, x, c))
    p = b.fmul(fa, fx)
    s = _two_sum_odd(L, p, fc)
    return f32_to_half(L, f64_to_f32_odd(L, s), fmt)


def ftz_f32(L: Lanes, x: ir.Value) -> ir.Value:
    """Flush f32 subnormals to a zero of the same sign (PTX ``.ftz``)."""
    b = L.b
    u = b.bitcast(x, L.vec(I32))
    tiny = b.icmp_unsigned("<", b.and_(u, L.cint(0x7FFFFFFF, I32)), L.cint(0x00800000, I32))
    return b.bitcast(b.select(tiny, b.and_(u, L.cint(0x80000000, I32)), u), L.vec(F32))


def minmax(L: Lanes, a: ir.Value, c: ir.Value, is_max: bool, float_t: ir.Type,
           nan_bits: int) -> ir.Value:
    """PTX ``min``/``max`` on f32/f64 vectors: a NaN operand is ignored, two NaNs give the
    canonical NaN, and −0 < +0."""
    b = L.b
    bits_t = I32 if float_t == F32 else I64
    an = b.fcmp_unordered("uno", a, a)
    cn = b.fcmp_unordered("uno", c, c)
    ab, cb = b.bitcast(a, L.vec(bits_t)), b.bitcast(c, L.vec(bits_t))
    both_zero = b.and_(b.fcmp_ordered("==", a, L.splat(0.0, float_t)),
                       b.fcmp_ordered("==", c, L.splat(0.0, float_t)))
    if is_max:
        pick_a = b.fcmp_ordered(">", a, c)
        zero = b.and_(ab, cb)  # +0 unless both are -0
    else:
        pick_a = b.fcmp_ordered("<", a, c)
        zero = b.or_(ab, cb)  # -0 if either is -0
    r = b.select(pick_a, ab, cb)
    r = b.select(both_zero, zero, r)
    r = b.select(cn, ab, r)
    r = b.select(an, cb, r)
    r = b.select(b.and_(an, cn), L.cint(nan_bits, bits_t), r)
    return b.bitcast(r, L.vec(float_t))

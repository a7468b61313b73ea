"""Exact floating-point semantics on warp vectors (DESIGN §3), in integer and f32/f64 LLVM ops.

f16 and bf16 are i16 bit patterns. Conversions are written with integer operations so that no
libcall decides a rounding, except where the host has F16C: there f32 → f16 rounding to nearest
even, and the widening of f16 operands inside arithmetic, are the hardware's IEEE conversions
(NaNs canonicalized after), several times cheaper to compile than the integer code; the tests hold
both to the same oracles. An f16/bf16 add, sub or mul is computed in f32 and
rounded once more: f32 has at least 2p+2 bits for both (p = 11, 8), so the double rounding is
innocuous. ``fma`` goes through f64 with round-to-odd, which makes the final rounding exact.
"""

from __future__ import annotations

import functools

from llvmlite import ir

from tilevm.backend.cpu.lanes import F32, F64, I16, I32, I64, Lanes

__all__ = [
    "F16_NAN", "F32_NAN", "FP8_FORMATS", "FP8_NAN", "bf16_to_f32", "f16_to_f32", "f32_to_fp8",
    "f32_to_half", "f32_to_tf32", "f64_to_f32_odd", "fma_half", "fp8_to_f32", "ftz_f32",
    "half_to_f32", "int64_to_f64", "minmax",
]

F32_NAN = 0x7FFFFFFF
F16_NAN = 0x7FFF  # PTX's canonical f16 and bf16 NaN
FP8_NAN = 0x7F  # the NaN code the GPU's cvt to e4m3/e5m2 writes (S.1111.111 / S.11111.11)

# fp8 formats of cvt: (exponent bits, mantissa bits, bias, code of the largest finite value,
# its f32 bit pattern, OCP "fn" (no infinity; only S.1111.111 is NaN) rather than IEEE specials)
FP8_FORMATS = {"e4m3": (4, 3, 7, 0x7E, 0x43E00000, True),     # 448
               "e5m2": (5, 2, 15, 0x7B, 0x47600000, False)}   # 57344


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


@functools.cache
def host_has_f16c() -> bool:
    """Whether this host converts between f16 and f32 in hardware (x86 F16C)."""
    from llvmlite import binding as llvm

    llvm.initialize_native_target()
    return bool(llvm.get_host_cpu_features().get("f16c", False))


def half_to_f32(L: Lanes, h: ir.Value, fmt: str, quiet_nan: bool = False) -> ir.Value:
    """``fmt`` ("f16"/"bf16") patterns → exact f32. With ``quiet_nan`` a NaN may come back
    quieted (its payload's top bit set): for operands of arithmetic, whose NaN results are
    canonical anyway, that allows the hardware conversion."""
    if fmt == "f16" and quiet_nan and host_has_f16c():
        return L.b.fpext(L.b.bitcast(h, ir.VectorType(ir.HalfType(), 32)), L.vec(F32))
    return f16_to_f32(L, h) if fmt == "f16" else bf16_to_f32(L, h)


def _f32_to_f16_rn(L: Lanes, x: ir.Value) -> ir.Value:
    b = L.b
    if host_has_f16c():  # IEEE round to nearest even, then PTX's canonical NaN
        h = b.bitcast(b.fptrunc(x, ir.VectorType(ir.HalfType(), 32)), L.vec(I16))
        return b.select(b.fcmp_unordered("uno", x, x), L.cint(F16_NAN, I16), h)
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
    fa, fx, fc = (b.fpext(half_to_f32(L, v, fmt, quiet_nan=True), L.vec(F64)) for v in (a, x, c))
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


def _pow2_f32(L: Lanes, k: ir.Value) -> ir.Value:
    """2**k as f32 for an i32 vector k in the normal range."""
    b = L.b
    return b.bitcast(b.shl(b.add(k, L.cint(127, I32)), L.cint(23, I32)), L.vec(F32))


def fp8_to_f32(L: Lanes, x: ir.Value, fmt: str) -> ir.Value:
    """Codes (the low byte of i32 lanes) of ``fmt`` (``"e4m3"``: OCP fn, ``"e5m2"``: IEEE
    specials) → exact f32; every NaN code gives a NaN."""
    eb, mb, bias, _, _, fn = FP8_FORMATS[fmt]
    b = L.b
    c = lambda v: L.cint(v, I32)  # noqa: E731
    e = b.and_(b.lshr(x, c(mb)), c((1 << eb) - 1))
    m = b.and_(x, c((1 << mb) - 1))
    sub = b.icmp_unsigned("==", e, c(0))
    sig = b.select(sub, m, b.or_(m, c(1 << mb)))
    scale = _pow2_f32(L, b.sub(b.select(sub, c(1), e), c(bias + mb)))
    v = b.fmul(b.uitofp(sig, L.vec(F32)), scale)   # exact: at most 4 significant bits
    top = b.icmp_unsigned("==", e, c((1 << eb) - 1))
    if fn:
        nan = b.and_(top, b.icmp_unsigned("==", m, c((1 << mb) - 1)))
    else:
        v = b.select(top, L.splat(float("inf"), F32), v)
        nan = b.and_(top, b.icmp_unsigned("!=", m, c(0)))
    v = b.select(nan, L.splat(float("nan"), F32), v)
    neg = b.icmp_unsigned("!=", b.and_(x, c(0x80)), c(0))
    return b.select(neg, b.fneg(v), v)


def f32_to_fp8(L: Lanes, x: ir.Value, fmt: str) -> ir.Value:
    """``cvt.rn.satfinite`` of f32 lanes to ``fmt`` codes (in i32 lanes): round to nearest even;
    "If the absolute value of input (ignoring sign) is greater than MAX_NORM of the specified
    destination format, then the result is sign-preserved MAX_NORM" (±inf included); "if the
    input value is NaN, then the result is NaN" (PTX ISA cvt, ``.satfinite``), the code
    ``FP8_NAN`` whatever the input's sign, as the GPU writes it. A zero keeps its sign."""
    _, mb, bias, max_code, max_bits, _ = FP8_FORMATS[fmt]
    b = L.b
    c = lambda v: L.cint(v, I32)  # noqa: E731
    u = b.bitcast(x, L.vec(I32))
    sign = b.and_(b.lshr(u, c(24)), c(0x80))
    a = b.and_(u, c(0x7FFFFFFF))
    # normal results: round the f32 pattern to mb mantissa bits, then re-bias the exponent
    shift = 23 - mb
    lsb = b.and_(b.lshr(a, c(shift)), c(1))
    rounded = b.lshr(b.add(b.add(a, c((1 << (shift - 1)) - 1)), lsb), c(shift))
    normal = b.sub(rounded, c((127 - bias) << mb))
    # subnormal results (|x| < 2^(1 - bias)): |x| in units of the smallest subnormal, exact in
    # f32, rounded to an integer (nearest even); a carry into the exponent is the right code
    units = b.fmul(b.bitcast(a, L.vec(F32)), L.splat(2.0 ** (mb + bias - 1), F32))
    sub = b.fptoui(L.call("roundeven", [units]), L.vec(I32))
    min_normal = (1 - bias + 127) << 23
    code = b.select(b.icmp_unsigned("<", a, c(min_normal)), sub, normal)
    code = b.select(b.icmp_unsigned(">", a, c(max_bits)), c(max_code), code)
    code = b.or_(code, sign)
    return b.select(b.icmp_unsigned(">", a, c(0x7F800000)), c(FP8_NAN), code)


def f32_to_tf32(L: Lanes, x: ir.Value, satfinite: bool) -> ir.Value:
    """``cvt.rna{.satfinite}.tf32.f32`` on f32 lanes, as the bits (i32 lanes) ptxas computes
    it on sm_80, sm_89 and sm_90 (NVRTC 13.0's SASS: ``FSETP.GEU |x|, +INF``, ``@!P IADD x,
    0x1000``, ``LOP3 & 0xffffe000``, and for ``.satfinite`` ``@P IADD -0x2000`` where the result
    is not finite): a finite x rounds to nearest, ties away from zero, on 10 mantissa bits (an
    overflow gives ±inf); inf and NaN lose their low 13 bits only, so a NaN whose payload lies
    there becomes ±inf. With ``.satfinite`` a non-finite result then steps one tf32 code down:
    ±inf (and overflow) give ±MAX_NORM (0x7f7fe000), a NaN stays a NaN (``0x7fc00000`` becomes
    ``0x7fbfe000``) and a NaN that had become ±inf gives ±MAX_NORM."""
    b = L.b
    c = lambda v: L.cint(v, I32)  # noqa: E731
    u = b.bitcast(x, L.vec(I32))
    finite = b.icmp_unsigned("<", b.and_(u, c(0x7FFFFFFF)), c(0x7F800000))
    r = b.and_(b.select(finite, b.add(u, c(0x1000)), u), c(-0x2000))
    if satfinite:
        big = b.icmp_unsigned(">=", b.and_(r, c(0x7FFFFFFF)), c(0x7F800000))
        r = b.select(big, b.sub(r, c(0x2000)), r)
    return r

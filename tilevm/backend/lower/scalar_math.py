"""Thread IR for one element: the arithmetic, comparisons and casts of every tilevm type.

Each function emits the instructions for one value (a register of the type's compute type, see
:mod:`~tilevm.backend.lower.dtype_map`) and returns the result register. The results follow the
numeric contract (DESIGN §3) exactly, except the transcendental functions (bounded):

- integers are computed in 32 or 64 bits and wrapped to their width (*normalized*);
  ``floordiv``/``mod`` round toward −∞, a zero divisor acts as 1; shift amounts are unsigned, so
  a negative or too large amount shifts everything out;
- ``f16`` adds, subtracts and multiplies with the hardware's correctly rounded f16 instructions;
  it divides and takes square roots in f32, as ``bf16`` and the narrow floats do every operation,
  rounding once to their type: f32 has more than ``2p + 2`` bits for every such type, so the
  double rounding is innocuous and the result is the correctly rounded one. Their ``fma``
  uses the hardware's ``fma.rn.f16``/``.bf16``, or for the narrow floats an f32 sum rounded to
  odd (TwoSum) before the one rounding to the narrow type;
- conversions into a type round once: where no instruction rounds directly (an integer or f64
  into bf16 or a narrow float), the value is first rounded to odd in f32 (24 bits, more than
  ``p + 2`` for each target), which makes the final round-to-nearest-even exact;
- narrow floats are decoded to f32 exactly and encoded with round to nearest even, saturating,
  NaN to the canonical code (or +max where the type has no NaN), as ``DType.encode`` does.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from tilevm.backend.lower.dtype_map import compute_type, is_narrow_float
from tilevm.backend.lower.errors import lowering_error
from tilevm.ir.dtypes import DType
from tilevm.ir.thread.builder import KernelBuilder
from tilevm.ir.thread.types import (
    B16,
    B32,
    B64,
    BF16,
    F16,
    F32,
    F64,
    PRED,
    S32,
    S64,
    U32,
    U64,
    ScalarType,
)
from tilevm.ir.thread.values import Const, Operand, Reg

__all__ = [
    "APPROX_FUNCTIONS",
    "binary",
    "cast",
    "compare",
    "decode_narrow",
    "encode_narrow",
    "fma",
    "from_f32",
    "normalize",
    "to_f32",
    "to_storage",
    "unary",
]

F32_NAN = 0x7FFFFFFF
LOG2_E = float(np.float32(math.log2(math.e)))
LN_2 = float(np.float32(math.log(2.0)))
# Transcendental functions, computed with the hardware's f32 approximations (DESIGN §3).
APPROX_FUNCTIONS = ("exp", "exp2", "log", "log2", "sin", "cos", "tanh", "rsqrt")


def _const(value: int | float, t: ScalarType) -> Const:
    return Const.of(value, t)


def _is_64(t: ScalarType) -> bool:
    return t.bits == 64


# -- integers ----------------------------------------------------------------------------------


def normalize(kb: KernelBuilder, x: Operand, dt: DType) -> Operand:
    """A 32-bit integer result wrapped to ``dt``'s width: sign-extended for signed types,
    zero-extended for unsigned ones (64-bit and 32-bit types are returned as they are)."""
    if dt.nbits >= 32:
        return x
    if dt.kind == "int":
        return kb.bfe(x, 0, dt.nbits, type=S32)
    return kb.and_(x, (1 << dt.nbits) - 1, type=B32)


def _int_type(dt: DType) -> ScalarType:
    return compute_type(dt)


def _floor_div_mod(kb: KernelBuilder, x: Operand, y: Operand, dt: DType, op: str) -> Operand:
    """Python's ``//`` and ``%`` (toward −∞); a zero divisor acts as 1 (the interpreter's rule,
    since both sides of a ``where`` are computed)."""
    t = _int_type(dt)
    if isinstance(y, Const) and y.value > 0 and y.value & (y.value - 1) == 0:
        # A power of two: an arithmetic shift rounds toward −∞, the low bits are the remainder
        # (no division, whose slow path is a call on the GPU).
        if op == "floordiv":
            return kb.shr(x, y.value.bit_length() - 1, type=t)
        return kb.mov(kb.and_(x, y.value - 1, type=B64 if _is_64(t) else B32), t)
    safe = (y if y.value != 0 else _const(1, t)) if isinstance(y, Const) else \
        kb.selp(1, y, kb.setp("eq", y, 0, type=t), type=t)
    q = kb.div(x, safe, type=t)
    r = kb.rem(x, safe, type=t)
    if dt.kind == "int":
        # Truncation went the wrong way when the remainder and the divisor differ in sign.
        wrong = kb.and_(kb.setp("ne", r, 0, type=t),
                        kb.xor(kb.setp("lt", r, 0, type=t), kb.setp("lt", safe, 0, type=t),
                               type=PRED), type=PRED)
        if op == "floordiv":
            q = kb.sub(q, kb.selp(1, 0, wrong, type=t), type=t)
        else:
            r = kb.add(r, kb.selp(safe, _const(0, t), wrong, type=t), type=t)
    return q if op == "floordiv" else r


def _shift(kb: KernelBuilder, x: Operand, y: Operand, dt: DType, left: bool) -> Operand:
    t = _int_type(dt)
    if _is_64(t):
        # The amount as u32, clamped so that truncating it cannot bring a huge one back in range.
        amount = kb.cvt(kb.min(y, 64, type=U64), U32, src=U64)
        if left:
            return kb.shl(x, amount, type=B64)
        return kb.shr(x, amount, type=t)
    if left:
        return kb.shl(x, y, type=B32)
    return kb.shr(x, y, type=t)


def _int_binary(kb: KernelBuilder, op: str, x: Operand, y: Operand, dt: DType) -> Operand:
    t = _int_type(dt)
    bits = B64 if _is_64(t) else B32
    if op in ("add", "sub"):
        r = (kb.add if op == "add" else kb.sub)(x, y, type=t)
    elif op == "mul":
        r = kb.mul(x, y, type=t)
    elif op in ("floordiv", "mod"):
        r = _floor_div_mod(kb, x, y, dt, op)
    elif op in ("min", "max"):
        return (kb.min if op == "min" else kb.max)(x, y, type=t)
    elif op in ("and", "or", "xor"):
        # Normalized operands give a normalized result: no wrap needed.
        return {"and": kb.and_, "or": kb.or_, "xor": kb.xor}[op](x, y, type=bits)
    elif op in ("shl", "shr"):
        r = _shift(kb, x, y, dt, op == "shl")
    else:
        raise AssertionError(f"not an integer operation: {op}")
    return normalize(kb, r, dt)


# -- narrow floats -----------------------------------------------------------------------------


def _narrow_codes(dt: DType) -> tuple[int, int]:
    """(code of +max, code NaN encodes to) of a narrow float type."""
    max_code = int(dt.encode(dt.max))
    return max_code, int(dt.encode(np.nan))


def decode_narrow(kb: KernelBuilder, code: Operand, dt: DType) -> Reg:
    """The f32 value (exact) of a narrow float's code (a u32 holding the low ``nbits``)."""
    if dt.mantissa_bits == 0:  # f8e8m0fnu: 2**(code - 127), code 0 a subnormal f32, 0xFF NaN
        bits = kb.selp(0x00400000, kb.shl(code, 23, type=B32), kb.setp("eq", code, 0, type=U32),
                       type=B32)
        bits = kb.selp(F32_NAN, bits, kb.setp("eq", code, 0xFF, type=U32), type=B32)
        return kb.mov(bits, F32)
    n, m, bias = dt.nbits, dt.mantissa_bits, dt.bias
    signed = dt.float_signed
    mag = kb.and_(code, (1 << (n - 1)) - 1, type=B32) if signed else code
    ef = kb.shr(mag, m, type=U32)
    mf = kb.and_(mag, (1 << m) - 1, type=B32)
    normal = kb.or_(kb.shl(kb.add(ef, 127 - bias, type=U32), 23, type=B32),
                    kb.shl(mf, 23 - m, type=B32), type=B32)
    # Subnormals: mantissa * 2**(1 - bias - m), exact in f32 for every narrow type.
    tiny = kb.mul(kb.cvt(mf, F32, src=U32, rnd="rn"), 2.0 ** (1 - bias - m), type=F32)
    bits = kb.selp(kb.mov(tiny, B32), normal, kb.setp("eq", ef, 0, type=U32), type=B32)
    if signed:
        bits = kb.or_(bits, kb.shl(kb.shr(code, n - 1, type=U32), 31, type=B32), type=B32)
    all_ones = (1 << (n - 1)) - 1
    if dt.specials == "ieee":
        emax = (1 << dt.exponent_bits) - 1
        special = kb.setp("eq", ef, emax, type=U32)
        inf = kb.or_(kb.and_(bits, 0x80000000, type=B32), 0x7F800000, type=B32)
        value = kb.selp(inf, F32_NAN, kb.setp("eq", mf, 0, type=U32), type=B32)
        bits = kb.selp(value, bits, special, type=B32)
    elif dt.specials == "fn" and n >= 8:
        bits = kb.selp(F32_NAN, bits, kb.setp("eq", mag, all_ones, type=U32), type=B32)
    elif dt.specials == "fnuz":
        bits = kb.selp(F32_NAN, bits, kb.setp("eq", code, 1 << (n - 1), type=U32), type=B32)
    return kb.mov(bits, F32)


def encode_narrow(kb: KernelBuilder, x: Operand, dt: DType) -> Reg:
    """The code (a u32) of the f32 value ``x`` rounded to the narrow float ``dt``: to nearest,
    ties to the even code, saturating overflow and ±inf to ±max, NaN to the canonical code (+max
    for types without NaN) — ``DType.encode``'s rules."""
    max_code, nan_code = _narrow_codes(dt)
    xb = kb.mov(x, B32)
    a = kb.and_(xb, 0x7FFFFFFF, type=B32)
    is_nan = kb.setp("gt", a, 0x7F800000, type=U32)
    is_inf = kb.setp("eq", a, 0x7F800000, type=U32)
    e = kb.shr(a, 23, type=U32)
    mant = kb.and_(a, 0x7FFFFF, type=B32)
    if dt.mantissa_bits == 0:
        return _encode_e8m0(kb, xb, a, e, mant, is_nan, is_inf)
    m, bias, n = dt.mantissa_bits, dt.bias, dt.nbits
    mant = kb.or_(mant, kb.selp(0x800000, 0, kb.setp("ne", e, 0, type=U32), type=U32), type=B32)
    # value = mant * 2**(ue - 23); the target's last place is 2**(t - m) with t = max(ue, 1-bias)
    ue = kb.sub(kb.max(e, 1, type=S32), 127, type=S32)
    t = kb.max(ue, 1 - bias, type=S32)
    shift = kb.min(kb.add(kb.sub(t, ue, type=S32), 23 - m, type=S32), 32, type=S32)
    q = kb.shr(mant, shift, type=U32)
    rem = kb.and_(mant, kb.sub(kb.shl(1, shift, type=B32), 1, type=U32), type=B32)
    half = kb.shl(1, kb.sub(shift, 1, type=S32), type=B32)
    up = kb.or_(kb.setp("gt", rem, half, type=U32),
                kb.and_(kb.setp("eq", rem, half, type=U32),
                        kb.setp("ne", kb.and_(q, 1, type=B32), 0, type=U32), type=PRED),
                type=PRED)
    q = kb.add(q, kb.selp(1, 0, up, type=U32), type=U32)
    # The exponent field follows from t; a rounding carry into it is just the next code.
    code = kb.add(q, kb.shl(kb.add(t, bias - 1, type=S32), m, type=B32), type=U32)
    over = kb.or_(kb.setp("gt", code, max_code, type=U32), is_inf, type=PRED)
    code = kb.selp(max_code, code, over, type=U32)
    if dt.float_signed:
        sign = kb.shl(kb.shr(xb, 31, type=U32), n - 1, type=B32)
        if dt.specials == "fnuz":  # no negative zero: -0 is the NaN code
            sign = kb.selp(0, sign, kb.setp("eq", code, 0, type=U32), type=U32)
        code = kb.or_(code, sign, type=B32)
    return kb.selp(nan_code, code, is_nan, type=U32)


def _encode_e8m0(kb: KernelBuilder, xb: Operand, a: Operand, e: Operand, mant: Operand,
                 is_nan: Operand, is_inf: Operand) -> Reg:
    """f8e8m0fnu: powers of two 2**-127 .. 2**127; ties to the even code; zero and negative
    values are NaN (0xFF); overflow saturates to 0xFE."""
    odd = kb.setp("ne", kb.and_(e, 1, type=B32), 0, type=U32)
    up = kb.or_(kb.setp("gt", mant, 0x400000, type=U32),
                kb.and_(kb.setp("eq", mant, 0x400000, type=U32), odd, type=PRED), type=PRED)
    normal = kb.add(e, kb.selp(1, 0, up, type=U32), type=U32)
    # Below 2**-126 (f32 subnormals) the candidates are 2**-127 (code 0) and 2**-126 (code 1).
    tiny = kb.selp(1, 0, kb.setp("gt", mant, 0x600000, type=U32), type=U32)
    code = kb.selp(tiny, normal, kb.setp("eq", e, 0, type=U32), type=U32)
    over = kb.or_(kb.setp("gt", code, 0xFE, type=U32), is_inf, type=PRED)
    code = kb.selp(0xFE, code, over, type=U32)
    not_positive = kb.or_(kb.setp("ne", kb.shr(xb, 31, type=U32), 0, type=U32),
                          kb.setp("eq", a, 0, type=U32), type=PRED)
    return kb.selp(0xFF, code, kb.or_(is_nan, not_positive, type=PRED), type=U32)


# -- f32 as the common ground -------------------------------------------------------------------


def to_f32(kb: KernelBuilder, x: Operand, dt: DType) -> Operand:
    """The exact f32 value of a compute value of a float type of at most 32 bits."""
    if dt.name == "f16":
        return kb.cvt(x, F32, src=F16)
    if dt.name == "bf16":
        return kb.cvt(x, F32, src=BF16)
    return x  # f32, and narrow floats (computed in f32 already)


def from_f32(kb: KernelBuilder, x: Operand, dt: DType) -> Operand:
    """An f32 value rounded once into ``dt``'s storage (f16/bf16 register or narrow code)."""
    if dt.name == "f16":
        return kb.cvt(x, F16, src=F32, rnd="rn")
    if dt.name == "bf16":
        return kb.cvt(x, BF16, src=F32, rnd="rn")
    if is_narrow_float(dt):
        return encode_narrow(kb, x, dt)
    return x


def to_storage(kb: KernelBuilder, x: Operand, dt: DType) -> Operand:
    """A compute value in ``dt``'s storage form: narrow floats are encoded (one rounding)."""
    return encode_narrow(kb, x, dt) if is_narrow_float(dt) else x


def _f32_odd(kb: KernelBuilder, truncated: Operand, inexact: Operand) -> Reg:
    """Round to odd: the truncated f32 with its last bit set where the conversion was inexact."""
    return kb.mov(kb.or_(kb.mov(truncated, B32), kb.selp(1, 0, inexact, type=U32), type=B32), F32)


def _f32_round_to_odd(kb: KernelBuilder, x: Operand, src: ScalarType) -> Reg:
    """An integer or f64 ``x`` rounded to odd in f32: correct input for one more rounding to a
    type of at most 22 bits of precision."""
    r = kb.cvt(x, F32, src=src, rnd="rz")
    if src == F64:
        back = kb.cvt(r, F64, src=F32)
        inexact = kb.setp("ne", back, x, type=F64)
    else:
        back = kb.cvt(r, src, src=F32, rnd="rzi")
        inexact = kb.setp("ne", back, x, type=src)
    return _f32_odd(kb, r, inexact)


# -- casts -----------------------------------------------------------------------------------------


def cast(kb: KernelBuilder, x: Operand, src: DType, dst: DType) -> Operand:
    """``cast`` of one compute value of ``src`` into the storage form of ``dst`` (DESIGN §3):
    into ``u1`` ``x != 0``; into integers from floats toward zero, saturating, NaN to 0; between
    integers wrapping; into floats rounding once to nearest even (saturating into narrow types)."""
    ts, td = compute_type(src), compute_type(dst)
    if dst.nbits == 1 and dst.is_integer:
        return kb.selp(1, 0, _nonzero(kb, x, src), type=U32)
    if dst.is_integer:
        if src.is_integer:
            return _int_to_int(kb, x, src, dst)
        return _float_to_int(kb, x, src, dst)
    if src.is_integer:
        return _int_to_float(kb, x, ts, dst)
    return _float_to_float(kb, x, src, dst, td)


def _nonzero(kb: KernelBuilder, x: Operand, dt: DType) -> Reg:
    t = compute_type(dt)
    if dt.is_integer:
        return kb.setp("ne", x, 0, type=t)
    if dt.name in ("f32", "f64", "f16"):
        return kb.setp("neu", x, 0.0, type=t)  # NaN != 0, as numpy says
    return kb.setp("neu", to_f32(kb, x, dt), 0.0, type=F32)


def _int_to_int(kb: KernelBuilder, x: Operand, src: DType, dst: DType) -> Operand:
    ts, td = compute_type(src), compute_type(dst)
    if _is_64(ts) and not _is_64(td):
        x = kb.cvt(x, U32, src=U64 if ts == U64 else S64)
    elif not _is_64(ts) and _is_64(td):
        x = kb.cvt(x, td, src=ts)  # extends by the source's signedness: the value is kept
    return normalize(kb, x, dst)


def _float_to_int(kb: KernelBuilder, x: Operand, src: DType, dst: DType) -> Operand:
    td = compute_type(dst)
    ts = compute_type(src)
    if src.name not in ("f16", "f32", "f64"):
        x, ts = to_f32(kb, x, src), F32
    r = kb.cvt(x, td, src=ts, rnd="rzi")  # saturates to the 32/64-bit range
    if td.bits == 64 or ts.bits == 64:
        # PTX gives 1 << (bits - 1) for NaN here (0 into 32 bits from f16/f32); tilevm gives 0.
        r = kb.selp(0, r, kb.setp("nan", x, x, type=ts), type=td)
    if dst.nbits < 32:
        r = kb.max(kb.min(r, int(dst.max), type=td), int(dst.min), type=td)
    return r


def _int_to_float(kb: KernelBuilder, x: Operand, ts: ScalarType, dst: DType) -> Operand:
    if dst.name in ("f16", "f32", "f64"):
        return kb.cvt(x, compute_type(dst), src=ts, rnd="rn")
    # bf16 and the narrow floats have no direct conversion on every target: round to odd in f32.
    return from_f32(kb, _f32_round_to_odd(kb, x, ts), dst)


def _float_to_float(kb: KernelBuilder, x: Operand, src: DType, dst: DType,
                    td: ScalarType) -> Operand:
    if src == dst:
        return x if not is_narrow_float(dst) else encode_narrow(kb, x, dst)
    if src.name == "f64":
        if dst.name in ("f16", "f32"):
            return kb.cvt(x, td, src=F64, rnd="rn")
        return from_f32(kb, _f32_round_to_odd(kb, x, F64), dst)
    if dst.name == "f64":
        if src.name in ("f16", "f32"):
            return kb.cvt(x, F64, src=compute_type(src))
        return kb.cvt(to_f32(kb, x, src), F64, src=F32)
    return from_f32(kb, to_f32(kb, x, src), dst)  # exact widening, then one rounding


# -- arithmetic ------------------------------------------------------------------------------------


def _via_f32(kb: KernelBuilder, dt: DType, fn: Callable[..., Operand], *xs: Operand) -> Operand:
    """``fn`` of the operands widened to f32, rounded once back into ``dt``'s storage."""
    return from_f32(kb, fn(*(to_f32(kb, x, dt) for x in xs)), dt)


def binary(kb: KernelBuilder, op: str, x: Operand, y: Operand, dt: DType) -> Operand:
    """``x op y`` on compute values of ``dt``; the result in ``dt``'s storage form."""
    if dt.is_integer:
        return _int_binary(kb, op, x, y, dt)
    t = compute_type(dt)
    if op in ("min", "max"):
        fn = kb.min if op == "min" else kb.max
        if dt.name in ("f16", "f32", "f64"):
            return fn(x, y, type=t)
        return _via_f32(kb, dt, lambda a, b: fn(a, b, type=F32), x, y)
    if op == "div":
        if dt.name in ("f32", "f64"):
            return kb.emit("div", (x, y), type=t, rnd="rn")
        return _via_f32(kb, dt, lambda a, b: kb.emit("div", (a, b), type=F32, rnd="rn"), x, y)
    emit = {"add": kb.add, "sub": kb.sub, "mul": kb.mul}[op]
    if dt.name in ("f16", "f32", "f64"):
        return emit(x, y, type=t)
    return _via_f32(kb, dt, lambda a, b: emit(a, b, type=F32), x, y)


def fma(kb: KernelBuilder, a: Operand, b: Operand, c: Operand, dt: DType) -> Operand:
    """``a * b + c`` rounded once into ``dt``'s storage."""
    t = compute_type(dt)
    if dt.name in ("f16", "bf16", "f32", "f64"):
        return kb.fma(a, b, c, type=t)
    # Narrow floats: a * b is exact in f32 (at most 2 x 8 significant bits); the sum s = RN(p + c)
    # and its exact error (TwoSum) give the sum rounded to odd, which rounds correctly once more.
    p = kb.mul(a, b, type=F32)
    s = kb.add(p, c, type=F32)
    bb = kb.sub(s, p, type=F32)
    err = kb.add(kb.sub(p, kb.sub(s, bb, type=F32), type=F32), kb.sub(c, bb, type=F32), type=F32)
    sb = kb.mov(s, B32)
    even = kb.setp("eq", kb.and_(sb, 1, type=B32), 0, type=U32)
    inexact = kb.and_(kb.setp("ne", err, 0.0, type=F32), even, type=PRED)
    # Move one place toward the error: up in magnitude when it has the sign of s.
    same_sign = kb.setp("eq", kb.shr(kb.xor(sb, kb.mov(err, B32), type=B32), 31, type=U32), 0,
                        type=U32)
    step = kb.selp(1, -1, same_sign, type=S32)
    odd = kb.selp(kb.add(sb, step, type=S32), sb, inexact, type=B32)
    return encode_narrow(kb, kb.mov(odd, F32), dt)


_CMP = {"lt": "lt", "le": "le", "gt": "gt", "ge": "ge", "eq": "eq", "ne": "neu"}


def compare(kb: KernelBuilder, op: str, x: Operand, y: Operand, dt: DType) -> Reg:
    """The predicate ``x op y`` (float comparisons are false with a NaN, but ``ne`` is true)."""
    t = compute_type(dt)
    if dt.is_integer:
        return kb.setp(op, x, y, type=t)
    if dt.name in ("f16", "f32", "f64"):
        return kb.setp(_CMP[op], x, y, type=t)
    return kb.setp(_CMP[op], to_f32(kb, x, dt), to_f32(kb, y, dt), type=F32)


def unary(kb: KernelBuilder, op: str, x: Operand, dt: DType, loc: object = None) -> Operand:
    """``op(x)`` on a compute value of ``dt``; the result in ``dt``'s storage form.

    Raises a diagnostic at ``loc`` for a transcendental function of f64 (the hardware's
    approximations are f32 only)."""
    t = compute_type(dt)
    if dt.is_integer:
        bits = B64 if _is_64(t) else B32
        if op == "neg":
            return normalize(kb, kb.sub(_const(0, t), x, type=t), dt)
        if op == "abs":
            if dt.kind == "uint":
                return x
            return normalize(kb, kb.unary("abs", x, type=t), dt)
        if op == "invert":
            if dt.nbits == 1:
                return kb.xor(x, 1, type=B32)
            return normalize(kb, kb.unary("not", x, type=bits), dt)
        raise AssertionError(f"not an integer operation: {op}")
    if op in ("neg", "abs") and not is_narrow_float(dt):
        # The sign bit alone, as PTX neg/abs do (NaN payloads kept).
        bits = {16: B16, 32: B32, 64: B64}[t.bits]
        raw = kb.mov(x, bits)
        sign = 1 << (t.bits - 1)
        r = kb.xor(raw, sign, type=bits) if op == "neg" else kb.and_(raw, sign - 1, type=bits)
        return kb.mov(r, t)
    if op in ("floor", "ceil", "rint"):
        rnd = {"floor": "rmi", "ceil": "rpi", "rint": "rni"}[op]
        if dt.name in ("f16", "f32", "f64"):
            return kb.cvt(x, t, src=t, rnd=rnd)
        return _via_f32(kb, dt, lambda a: kb.cvt(a, F32, src=F32, rnd=rnd), x)
    if op == "sqrt":
        if dt.name in ("f32", "f64"):
            return kb.emit("sqrt", (x,), type=t, rnd="rn")
        return _via_f32(kb, dt, lambda a: kb.emit("sqrt", (a,), type=F32, rnd="rn"), x)
    if op in ("neg", "abs"):
        return _via_f32(kb, dt, lambda a: kb.unary(op, a, type=F32), x)
    if op in APPROX_FUNCTIONS:
        if dt.name == "f64":
            raise lowering_error(f"{op} of f64: the GPU's approximations are f32 only; cast the "
                                 "operand to f32 (docs/numeric-contract.md)", loc)  # type: ignore[arg-type]
        return _via_f32(kb, dt, lambda a: _approx(kb, op, a), x)
    raise AssertionError(f"not a float operation: {op}")


def _approx(kb: KernelBuilder, op: str, a: Operand) -> Reg:
    """The hardware approximation of ``op`` on an f32 value (DESIGN §3)."""
    if op == "exp":
        return kb.unary("ex2", kb.mul(a, LOG2_E, type=F32), type=F32, ftz=True)
    if op == "exp2":
        return kb.unary("ex2", a, type=F32, ftz=True)
    if op == "log":
        return kb.mul(kb.unary("lg2", a, type=F32, ftz=True), LN_2, type=F32)
    if op == "log2":
        return kb.unary("lg2", a, type=F32, ftz=True)
    if op in ("sin", "cos", "rsqrt"):
        return kb.unary(op, a, type=F32, ftz=True)
    if op == "tanh":
        return kb.unary("tanh", a, type=F32)
    raise AssertionError(op)


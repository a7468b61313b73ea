"""``dot`` under the numeric contract (DESIGN §3, docs/numeric-contract.md), following
:func:`~tilevm.ir.tile.ops.dot_rule` of the operands' dtypes and the ``precision`` attribute.

- Floats, per K-chunk of the rule (16 for f16/bf16, 32 for the fp8 types, 8 for tf32): the exact
  products of the chunk summed in increasing k, the accumulator added last, one rounding to the
  accumulator type (f32, or f16). With ``precision="tf32"`` each f32 operand is first rounded as
  PTX ``cvt.rna.tf32.f32`` does (:func:`round_to_tf32`).
- f32 with ``precision="ieee"`` (chunk 1): ``acc = fma(a[:, k], b[k, :], acc)`` for k = 0, 1, …,
  each step exact and rounded once to f32.
- Integers: the exact sum modulo 2^32 (``mma`` without ``.satfinite`` wraps, PTX ISA).

Exactness is obtained with integers: every value of a float type of ``m`` mantissa bits and bias
``b`` is an integer multiple of its smallest subnormal 2^-(b + m - 1), so products and sums of
scaled integers are exact (int64 limbs where both operand types allow, Python integers for wider
ranges), and the one rounding to the accumulator type is done from the exact integer. The f32
``fma`` chain uses an error-free transformation instead: a product of two f32 values is exact in
float64, TwoSum gives the exact error of its sum with the accumulator, and a float64 sum rounded to
odd rounds correctly into f32.
"""

from __future__ import annotations

import math

import numpy as np

from tilevm.backend.interp.numeric import decode, encode, round_sum_to_odd, two_sum
from tilevm.ir.dtypes import DType
from tilevm.ir.tile.ops import dot_rule

__all__ = ["dot", "exact_sum", "round_to_tf32"]


def _scale(dt: DType) -> int:
    return 0 if dt.is_integer else dt.bias + dt.mantissa_bits - 1


def _scaled_ints(values: np.ndarray, scale: int) -> np.ndarray:
    scaled = np.ldexp(values, scale)
    return np.frompyfunc(int, 1, 1)(scaled).astype(object)


def _round_ints(totals: np.ndarray, unit: int, dt: DType) -> np.ndarray:
    """The values ``totals · 2^-unit`` (an array of Python ints) rounded once to ``dt``, as
    float64.

    ``float(int)`` rounds to nearest; moving an inexact result to its odd neighbour (round to odd)
    makes the second rounding, to ``dt``, give the correctly rounded value of the integer.
    """
    totals = np.asarray(totals, dtype=object)
    approx = np.asarray(totals.astype(np.float64), dtype=np.float64)
    back = np.frompyfunc(int, 1, 1)(approx)
    diff = totals - back
    up = np.asarray(diff > 0, dtype=bool)
    down = np.asarray(diff < 0, dtype=bool)
    even = (approx.view(np.uint64) & np.uint64(1)) == 0
    approx = np.where(up & even, np.nextafter(approx, np.inf), approx)
    approx = np.where(down & even, np.nextafter(approx, -np.inf), approx)
    return decode(encode(np.ldexp(approx, -unit), dt), dt)


_LIMB = 28  # two 28-bit limbs: a chunk of up to 32 limb products stays below 2^63


def _fits_two_limbs(dt: DType) -> bool:
    """Whether every scaled value of ``dt`` is below 2^52 (then two limbs hold it)."""
    return math.ceil(math.log2(dt.max)) + _scale(dt) + 1 <= 52


def _chunk_products(a: np.ndarray, b: np.ndarray, sa: int, sb: int, limbs: bool) -> np.ndarray:
    """The exact ``a @ b`` of one chunk, in units of 2^-(sa + sb), as an array of Python ints."""
    if not limbs:
        return _scaled_ints(a, sa).dot(_scaled_ints(b, sb))
    ai = np.ldexp(a, sa).astype(np.int64)
    bi = np.ldexp(b, sb).astype(np.int64)
    mask = (1 << _LIMB) - 1
    a1, a0, b1, b0 = ai >> _LIMB, ai & mask, bi >> _LIMB, bi & mask
    high = (a1 @ b1).astype(object) << (2 * _LIMB)
    middle = (a1 @ b0 + a0 @ b1).astype(object) << _LIMB
    return high + middle + (a0 @ b0).astype(object)


def round_to_tf32(bits: np.ndarray) -> np.ndarray:
    """PTX ``cvt.rna.tf32.f32`` on f32 bit patterns: each finite value rounded to 10 mantissa bits,
    to nearest with ties away from zero, kept as an f32 pattern whose low 13 bits are zero.

    The exponent range is f32's: subnormals round on the same grid (multiples of 2^-136), and a
    value from (2 - 2^-11)·2^127 up becomes ±inf (IEEE rounding; only ``.satfinite`` would clamp).
    The ISA says no more than "rna" for inf and NaN; as ptxas compiles the instruction for sm_80
    to sm_90 (and as ``mma`` reads a tf32 operand: its low 13 bits ignored) they lose their low 13
    bits: ±inf stay, a NaN stays a NaN unless its payload lies only there, when it becomes ±inf.
    """
    bits = np.asarray(bits).astype(np.uint32)
    finite = (bits & np.uint32(0x7F800000)) != np.uint32(0x7F800000)
    # Adding half a tf32 ulp to the magnitude bits and truncating rounds ties away from zero; a
    # carry moves into the exponent (up to inf) as the value demands.
    rounded = np.where(finite, bits + np.uint32(0x1000), bits)
    return rounded & np.uint32(0xFFFFE000)


def _fma_chain(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``acc = fma(a[:, k], b[k, :], acc)`` from ``acc = c`` for k in increasing order, each step
    rounded once to f32 (values as float64, result as float64)."""
    acc = c.copy()
    with np.errstate(invalid="ignore", over="ignore"):
        for k in range(a.shape[1]):
            # A product of two f32 values has at most 48 significant bits and an exponent far
            # inside float64's range: exact. TwoSum then gives the exact error of the sum.
            product = a[:, k, None] * b[None, k, :]
            s, err = two_sum(product, acc)
            acc = round_sum_to_odd(s, err).astype(np.float32).astype(np.float64)
    return acc


def _negative_zero(a: np.ndarray, b: np.ndarray, acc: np.ndarray) -> np.ndarray:
    """Where an IEEE sum of the products ``a[i, k]·b[k, j]`` and ``acc`` is −0: every term a zero
    of negative sign (any cancellation of non-zero terms gives +0 when rounding to nearest)."""
    product_zero = (a[:, :, None] == 0) | (b[None, :, :] == 0)
    product_negative = np.signbit(a)[:, :, None] ^ np.signbit(b)[None, :, :]
    return (product_zero & product_negative).all(axis=1) & (acc == 0) & np.signbit(acc)


def _chunked_float_dot(a: np.ndarray, b: np.ndarray, c: np.ndarray, a_dt: DType, b_dt: DType,
                       c_dt: DType, chunk: int) -> np.ndarray:
    """Per chunk of ``chunk`` K values: the exact products plus the accumulator, rounded once to
    ``c_dt`` (values as float64, result as float64)."""
    sa, sb, sc = _scale(a_dt), _scale(b_dt), _scale(c_dt)
    unit = max(sa + sb, sc)
    finite_a, finite_b = np.isfinite(a), np.isfinite(b)
    a_finite = np.where(finite_a, a, 0.0)
    b_finite = np.where(finite_b, b, 0.0)
    limbs = _fits_two_limbs(a_dt) and _fits_two_limbs(b_dt)
    acc = c.copy()
    for k0 in range(0, a.shape[1], chunk):
        ks = slice(k0, min(k0 + chunk, a.shape[1]))
        finite_acc = np.isfinite(acc)
        products = _chunk_products(a_finite[:, ks], b_finite[ks, :], sa, sb, limbs)
        acc_int = _scaled_ints(np.where(finite_acc, acc, 0.0), sc)
        total = products * (1 << (unit - sa - sb)) + acc_int * (1 << (unit - sc))
        new = _round_ints(total, unit, c_dt)
        # A chunk that meets an inf or a NaN follows IEEE arithmetic: its terms, each an exact
        # float64 product (inf·0 is NaN), summed (inf − inf is NaN; finite terms cannot overflow
        # float64). Element-wise numpy, not a BLAS matmul, which may skip zero operands.
        special = ~(finite_a[:, ks].all(1)[:, None] & finite_b[ks, :].all(0)[None, :] &
                    finite_acc)
        if special.any():
            with np.errstate(invalid="ignore", over="ignore"):
                ieee = (a[:, ks, None] * b[None, ks, :]).sum(axis=1) + acc
            new = np.where(special, ieee, new)
        # An exact zero is +0 unless every term is −0; a non-zero sum keeps its sign when it
        # rounds to zero (_round_ints does that).
        new = np.where(~special & _negative_zero(a[:, ks], b[ks, :], acc), -0.0, new)
        acc = new
    return acc


def dot(a_bits: np.ndarray, b_bits: np.ndarray, c_bits: np.ndarray, a_dt: DType, b_dt: DType,
        c_dt: DType, precision: str = "ieee") -> np.ndarray:
    """``a @ b + c`` on bit patterns of types ``a_dt``, ``b_dt`` and ``c_dt`` under
    ``dot_rule(a_dt, b_dt, precision)``; returns the bit patterns of the result (``c_dt``).

    Raises ``ValueError`` (from :func:`~tilevm.ir.tile.ops.dot_rule`) for a pair or precision no
    rule covers; the verifier refuses those first.
    """
    rule = dot_rule(a_dt, b_dt, precision)
    if a_dt.is_integer:
        # Every product of two 8-bit integers is below 2^16 in magnitude: int64 holds any sum of
        # them; the accumulator's type then wraps it modulo 2^32, as mma without .satfinite does.
        a, b, c = decode(a_bits, a_dt), decode(b_bits, b_dt), decode(c_bits, c_dt)
        total = a.astype(np.int64) @ b.astype(np.int64) + c.astype(np.int64)
        return encode(total, c_dt)
    if precision == "tf32":
        a_bits, b_bits = round_to_tf32(a_bits), round_to_tf32(b_bits)
    a, b, c = decode(a_bits, a_dt), decode(b_bits, b_dt), decode(c_bits, c_dt)
    if rule.chunk == 1:
        result = _fma_chain(a, b, c)
    else:
        result = _chunked_float_dot(a, b, c, a_dt, b_dt, c_dt, rule.chunk)
    return encode(result, c_dt)


def exact_sum(values: np.ndarray, dt: DType, axis: int, keepdims: bool) -> np.ndarray:
    """The exact sum of float ``values`` (of type ``dt``) along ``axis``, rounded once to ``dt``.

    Sums that meet an inf or NaN follow float64 arithmetic (inf − inf is NaN).
    """
    finite = np.isfinite(values)
    scale = _scale(dt)
    ints = _scaled_ints(np.where(finite, values, 0.0), scale)
    totals = np.asarray(ints.sum(axis=axis, keepdims=keepdims), dtype=object)
    out = _round_ints(totals, scale, dt)
    with np.errstate(invalid="ignore", over="ignore"):
        approx = values.sum(axis=axis, keepdims=keepdims)
    special = ~finite.all(axis=axis, keepdims=keepdims)
    # An all-(-0.0) sum is -0.0, as in IEEE arithmetic.
    negative_zero = (np.signbit(values) & (values == 0)).all(axis=axis, keepdims=keepdims)
    out = np.where(special, approx, out)
    return np.where(negative_zero, -0.0, out)

"""``dot`` under the numeric contract (DESIGN §3): for each K-chunk (16 for f16/bf16, 32 for 8-bit
types, 8 for f32), the exact products summed in increasing k, the accumulator added last, one
rounding to the accumulator type.

Exactness is obtained with integers: every value of a float type of ``m`` mantissa bits and bias
``b`` is an integer multiple of its smallest subnormal 2^-(b + m - 1), so products and sums of
scaled integers are exact (int64 limbs for f16 and the 8-bit types, Python integers for wider
ranges), and the one rounding to the accumulator type is done from the exact integer.
"""

from __future__ import annotations

import math

import numpy as np

from tilevm.backend.interp.numeric import decode, encode
from tilevm.ir.dtypes import DType
from tilevm.ir.tile.ops import DOT_RULES

__all__ = ["dot", "exact_sum"]


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


def _chunk_products(a: np.ndarray, b: np.ndarray, scale: int, limbs: bool) -> np.ndarray:
    """The exact ``a @ b`` of one chunk, in units of 2^-(2·scale), as an array of Python ints."""
    if not limbs:
        return _scaled_ints(a, scale).dot(_scaled_ints(b, scale))
    ai = np.ldexp(a, scale).astype(np.int64)
    bi = np.ldexp(b, scale).astype(np.int64)
    mask = (1 << _LIMB) - 1
    a1, a0, b1, b0 = ai >> _LIMB, ai & mask, bi >> _LIMB, bi & mask
    high = (a1 @ b1).astype(object) << (2 * _LIMB)
    middle = (a1 @ b0 + a0 @ b1).astype(object) << _LIMB
    return high + middle + (a0 @ b0).astype(object)


def dot(a_bits: np.ndarray, b_bits: np.ndarray, c_bits: np.ndarray, a_dt: DType,
        c_dt: DType) -> np.ndarray:
    """``a @ b + c`` on bit patterns of types ``a_dt`` (a and b) and ``c_dt``; returns patterns."""
    a, b, c = decode(a_bits, a_dt), decode(b_bits, a_dt), decode(c_bits, c_dt)
    if a_dt.is_integer:
        total = a.astype(np.int64) @ b.astype(np.int64) + c.astype(np.int64)
        return encode(total, c_dt)
    chunk = DOT_RULES[a_dt.name][1]
    sa, sc = _scale(a_dt), _scale(c_dt)
    unit = max(2 * sa, sc)
    finite_a, finite_b = np.isfinite(a), np.isfinite(b)
    a_finite = np.where(finite_a, a, 0.0)
    b_finite = np.where(finite_b, b, 0.0)
    limbs = _fits_two_limbs(a_dt)
    k = a.shape[1]
    acc = c.copy()
    for k0 in range(0, k, chunk):
        ks = slice(k0, min(k0 + chunk, k))
        finite_acc = np.isfinite(acc)
        products = _chunk_products(a_finite[:, ks], b_finite[ks, :], sa, limbs)
        acc_int = _scaled_ints(np.where(finite_acc, acc, 0.0), sc)
        total = products * (1 << (unit - 2 * sa)) + acc_int * (1 << (unit - sc))
        new = _round_ints(total, unit, c_dt)
        # Signed zeros and non-finite values follow IEEE float64 arithmetic.
        with np.errstate(invalid="ignore", over="ignore"):
            approx = a[:, ks] @ b[:, :][ks, :] + acc
        special = ~(finite_a[:, ks].all(1)[:, None] & finite_b[ks, :].all(0)[None, :] &
                    finite_acc)
        new = np.where(special, approx, new)
        new = np.where((new == 0) & (approx == 0), approx, new)
        acc = new
    return encode(acc, c_dt)


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

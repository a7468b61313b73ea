"""``dot`` under the numeric contract (DESIGN §3): for each K-chunk (16 for f16/bf16, 32 for 8-bit
types, 8 for f32), the exact products summed in increasing k, the accumulator added last, one
rounding to the accumulator type.

Exactness is obtained with Python integers: every value of a float type of ``m`` mantissa bits and
bias ``b`` is an integer multiple of its smallest subnormal 2^-(b + m - 1), so products and sums of
scaled integers are exact, and the final rounding to the accumulator type is done on the integer.
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


def _round_scaled(n: int, scale: int, dt: DType) -> float:
    """The value ``n · 2^-scale`` rounded to nearest even in ``dt`` (overflow to inf)."""
    if n == 0:
        return 0.0
    m = abs(n)
    p = dt.mantissa_bits + 1
    e = m.bit_length() - 1 - scale
    q = max(e, 1 - dt.bias) - (p - 1)
    shift = q + scale
    if shift > 0:
        r = m >> shift
        rem = m - (r << shift)
        half = 1 << (shift - 1)
        if rem > half or (rem == half and r & 1):
            r += 1
    else:
        r = m << -shift
    try:
        value = math.ldexp(r, q)
    except OverflowError:
        value = math.inf
    if value > dt.max:
        value = math.inf
    return -value if n < 0 else value


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
    a_int = _scaled_ints(np.where(finite_a, a, 0.0), sa)
    b_int = _scaled_ints(np.where(finite_b, b, 0.0), sa)
    m, k = a.shape
    n = b.shape[1]
    acc = c.copy()
    for k0 in range(0, k, chunk):
        ks = slice(k0, min(k0 + chunk, k))
        finite_acc = np.isfinite(acc)
        products = a_int[:, ks].dot(b_int[ks, :]) if k else np.zeros((m, n), object)
        acc_int = _scaled_ints(np.where(finite_acc, acc, 0.0), sc)
        total = products * (1 << (unit - 2 * sa)) + acc_int * (1 << (unit - sc))
        new = np.array([_round_scaled(int(x), unit, c_dt) for x in total.ravel()],
                       dtype=np.float64).reshape(m, n)
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
    totals = ints.sum(axis=axis, keepdims=keepdims)
    flat = [_round_scaled(int(x), scale, dt) for x in np.asarray(totals).ravel()]
    out = np.array(flat, dtype=np.float64).reshape(np.shape(totals))
    with np.errstate(invalid="ignore", over="ignore"):
        approx = values.sum(axis=axis, keepdims=keepdims)
    special = ~finite.all(axis=axis, keepdims=keepdims)
    # An all-(-0.0) sum is -0.0, as in IEEE arithmetic.
    negative_zero = (np.signbit(values) & (values == 0)).all(axis=axis, keepdims=keepdims)
    out = np.where(special, approx, out)
    return np.where(negative_zero, -0.0, out)

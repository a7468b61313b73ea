"""Values of the interpreter: tiles are arrays of bit patterns; arithmetic decodes them to float64
(or int64) values, computes exactly there, and rounds once back to the dtype (DESIGN §3).

float64 holds every f16, bf16 and f32 value exactly, and the exact result of +, −, ×, ÷ and √ of
two such values rounded to float64 and then to the narrower type is the correctly rounded result
(float64 has more than 2p + 2 bits). ``fma`` rounds the float64 sum to odd first, which makes the
second rounding exact as well.
"""

from __future__ import annotations

import numpy as np

from tilevm.ir.dtypes import DType

__all__ = ["decode", "encode", "round_sum_to_odd"]


def decode(bits: np.ndarray, dt: DType) -> np.ndarray:
    """The values of bit patterns: float64 for floats, int64 for integers (uint64 for u64)."""
    bits = np.asarray(bits)
    if dt.name == "f16":
        return bits.astype(np.uint16).view(np.float16).astype(np.float64)
    if dt.name == "f32":
        return bits.astype(np.uint32).view(np.float32).astype(np.float64)
    if dt.name == "bf16":
        return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32).astype(np.float64)
    if dt.name == "f64":
        return bits.astype(np.uint64).view(np.float64)
    return dt.decode(bits)


def encode(values: np.ndarray, dt: DType, saturate: bool | None = None) -> np.ndarray:
    """Round values to ``dt`` once (to nearest even) and return the bit patterns.

    Integers wrap unless ``saturate``; f16/f32 overflow to inf (IEEE); narrower types follow
    :meth:`DType.encode`'s defaults.
    """
    values = np.asarray(values)
    if dt.name == "f16" and values.dtype.kind == "f":
        with np.errstate(over="ignore"):
            return values.astype(np.float64).astype(np.float16).view(np.uint16)
    if dt.name == "f32" and values.dtype.kind == "f":
        with np.errstate(over="ignore"):
            return values.astype(np.float64).astype(np.float32).view(np.uint32)
    if dt.name == "f64":
        return values.astype(np.float64).view(np.uint64)
    if dt.is_integer and saturate is None:
        saturate = False
    return dt.encode(values, saturate=saturate)


def round_sum_to_odd(s: np.ndarray, err: np.ndarray) -> np.ndarray:
    """Given ``s = fl(x)`` and the exact error ``err = x - s``, the float64 nearest ``x`` whose last
    mantissa bit is odd when ``x`` is inexact (round to odd): rounding it once more to any type of
    at most 51 bits of precision gives the correctly rounded ``x``."""
    s = np.array(s, dtype=np.float64, copy=True)
    even = (s.view(np.uint64) & np.uint64(1)) == 0
    fix = (err != 0) & even & np.isfinite(s)
    if np.any(fix):
        s[fix] = np.nextafter(s[fix], s[fix] + err[fix] * np.inf)
    return s


def two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Knuth's TwoSum: ``s = fl(a + b)`` and the exact error ``a + b - s``."""
    with np.errstate(invalid="ignore", over="ignore"):
        s = a + b
        bb = s - a
        err = (a - (s - bb)) + (b - bb)
    err = np.where(np.isfinite(s), err, 0.0)
    return s, err

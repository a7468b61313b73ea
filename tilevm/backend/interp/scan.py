"""The interpreter's ``scan``: prefix sums, products, maxima and minima along an axis
(the definition the lowering is held to; see ``tilevm.ir.tile.ops``)."""

from __future__ import annotations

import numpy as np

from tilevm.backend.interp.dot import _round_ints, _scale, _scaled_ints
from tilevm.ir.dtypes import DType

__all__ = ["scan", "scan_start"]


def scan_start(op: str, dt: DType) -> float | int:
    """Element 0 of an exclusive scan (the empty prefix): 0 (−0.0 for floats, the identity of
    IEEE addition), 1, or for ``max``/``min`` the type's lowest/highest value (−inf/+inf for
    floats, converted to the type as a cast does)."""
    if op == "sum":
        return -0.0 if dt.is_float else 0
    if op == "prod":
        return 1.0 if dt.is_float else 1
    if dt.is_float:
        return float("-inf") if op == "max" else float("inf")
    return int(dt.min) if op == "max" else int(dt.max)


def _inclusive(x: np.ndarray, op: str, dt: DType, axis: int) -> np.ndarray:
    """Each prefix's value: float sums exact and rounded once (f64 sums and every product, the
    float64 running value), integers wrapping, max/min ignoring NaN with −0 below +0."""
    with np.errstate(all="ignore"):
        if op == "sum" and dt.is_float and dt.name != "f64":
            finite = np.isfinite(x)
            scale = _scale(dt)
            totals = np.cumsum(_scaled_ints(np.where(finite, x, 0.0), scale), axis=axis)
            out = _round_ints(np.asarray(totals, dtype=object), scale, dt)
            special = ~np.logical_and.accumulate(finite, axis=axis)
            out = np.where(special, np.cumsum(x, axis=axis), out)
            negative_zero = np.logical_and.accumulate(np.signbit(x) & (x == 0), axis=axis)
            return np.where(negative_zero, -0.0, out)
        if op in ("sum", "prod"):
            fn = np.cumsum if op == "sum" else np.cumprod
            if dt.is_integer:  # wraps: the low bits of the int64 running value are right
                return fn(x.astype(np.int64), axis=axis)
            return fn(x.astype(np.float64), axis=axis)
        out = (np.fmax if op == "max" else np.fmin).accumulate(x, axis=axis)
        if dt.is_float:  # −0 < +0, whatever the order of the elements
            zeros = x == 0
            plus = np.logical_or.accumulate(zeros & ~np.signbit(x), axis=axis)
            minus = np.logical_or.accumulate(zeros & np.signbit(x), axis=axis)
            if op == "max":
                out = np.where(out == 0, np.where(plus, 0.0, -0.0), out)
            else:
                out = np.where(out == 0, np.where(minus, -0.0, 0.0), out)
        return out


def scan(x: np.ndarray, op: str, dt: DType, axis: int, exclusive: bool) -> np.ndarray:
    """``scan {op, axis, exclusive}`` of the decoded values ``x`` of type ``dt`` (the result's
    values, before encoding)."""
    out = _inclusive(x, op, dt, axis)
    if not exclusive:
        return out
    start = np.full_like(np.take(out, [0], axis=axis), scan_start(op, dt),
                         dtype=np.float64 if dt.is_float else out.dtype)
    rest = np.take(out, np.arange(x.shape[axis] - 1), axis=axis)
    return np.concatenate([start, rest.astype(start.dtype)], axis=axis)

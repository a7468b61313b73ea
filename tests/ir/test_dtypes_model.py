"""Every ``allfinite`` float type against a float64 model written here from the format's definition.

The model decodes with the textbook formula and encodes by brute force: the nearest of all codes
by absolute difference, a tie going to the code whose last bit is 0. It shares no code with
tilevm/ir/dtypes.py, which decodes through a table and encodes by binary search over midpoints.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import tilevm as tv
from tilevm.ir.dtypes import all_dtypes

ALLFINITE = [dt for dt in all_dtypes() if dt.specials == "allfinite"]


def model_value(code: int, e: int, m: int) -> float:
    """(-1)^s · 2^(E − bias) · (1 + M/2^m), or 2^(1 − bias) · M/2^m when E = 0; bias 2^(e−1) − 1."""
    bias = 2 ** (e - 1) - 1
    sign = -1.0 if code >> (e + m) else 1.0
    exponent = (code >> m) & (2**e - 1)
    mantissa = code & (2**m - 1)
    if exponent == 0:
        return sign * math.ldexp(mantissa / 2**m, 1 - bias)
    return sign * math.ldexp(1 + mantissa / 2**m, exponent - bias)


def model_encode(x: float, e: int, m: int) -> int:
    """Nearest, ties to even, saturating at ±max; -0 and negative underflow keep their sign."""
    n = 1 + e + m
    codes = range(2**n)
    values = [model_value(c, e, m) for c in codes]
    if math.isnan(x):
        return max(range(2 ** (n - 1)), key=lambda c: values[c])  # +max, as documented
    top = max(values)
    x = min(max(x, -top), top)
    same_sign = [c for c in codes if (c >> (n - 1)) == (1 if math.copysign(1, x) < 0 else 0)]
    best = min(abs(values[c] - x) for c in same_sign)
    nearest = [c for c in same_sign if abs(values[c] - x) == best]
    return min(nearest, key=lambda c: (c % 2, c))


@pytest.mark.parametrize("dt", ALLFINITE, ids=str)
def test_every_bit_pattern_decodes_like_the_model(dt):
    e, m = dt.exponent_bits, dt.mantissa_bits
    codes = np.arange(2**dt.nbits)
    expected = np.array([model_value(int(c), e, m) for c in codes])
    ours = dt.decode(codes)
    np.testing.assert_array_equal(ours, expected)
    np.testing.assert_array_equal(np.signbit(ours), np.signbit(expected))
    assert dt.max == expected.max() and dt.min == expected.min()


@pytest.mark.parametrize("dt", ALLFINITE, ids=str)
def test_encoding_matches_the_model_on_every_value_midpoint_and_quarter_point(dt):
    e, m = dt.exponent_bits, dt.mantissa_bits
    values = np.unique([model_value(c, e, m) for c in range(2**dt.nbits)])
    gaps = np.diff(values)
    points = np.concatenate([values, *(values[:-1] + gaps * f for f in (0.25, 0.5, 0.75)),
                             [values[-1] * 1.2, values[-1] * 3, -values[-1] * 3, 1e30, -1e30,
                              np.inf, -np.inf, np.nan, -0.0, 1e-30, -1e-30]])
    expected = np.array([model_encode(float(x), e, m) for x in points])
    np.testing.assert_array_equal(dt.encode(points).astype(np.int64), expected)


def test_ties_go_to_even():
    # f4e2m1: 2.5 lies between 2 (code 4) and 3 (code 5); 3.5 between 3 (5) and 4 (6).
    assert tv.f4e2m1.encode([2.5, 3.5, -2.5]).tolist() == [4, 6, 12]
    # f5e2m2: 0.125 is halfway between 0 (code 0) and 0.25 (code 1), the smallest subnormal.
    assert tv.f5e2m2.decode(1) == 0.25 and tv.f5e2m2.encode(0.125) == 0
    assert tv.f5e2m2.encode(0.375) == 2  # between 0.25 (1) and 0.5 (2)


def test_generic_names_and_aliases():
    assert tv.dtype("f4e2m1") is tv.f4e2m1fn
    assert tv.dtype("f6e3m2") is tv.f6e3m2fn is tv.f6e3m2
    assert tv.dtype("f8e4m3") is tv.f8e4m3fn
    assert tv.dtype("f7e3m3").bias == 3 and tv.f7e3m3.specials == "allfinite"
    # f3e1m1 has bias 0: code 1 is the subnormal 0.1b · 2^1 = 1, codes 2, 3 are 1.0b, 1.1b · 2^1.
    assert tv.f3e1m1.decode([0, 1, 2, 3]).tolist() == [0.0, 1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="cannot hold"):
        tv.dtype("f5e3m2")
    with pytest.raises(ValueError, match="unknown dtype 'q7'"):
        tv.dtype("q7")

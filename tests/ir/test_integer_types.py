"""Integer types of every width: range, rounding, saturation and wrapping, against Python ints."""

from __future__ import annotations

import numpy as np
import pytest

import tilevm as tv


@pytest.mark.parametrize("bits", [*range(1, 33), 64])
@pytest.mark.parametrize("signed", [False, True])
def test_range_and_decode_of_every_pattern(bits, signed):
    dt = tv.dtype(("i" if signed else "u") + str(bits))
    assert dt.nbits == bits and dt.is_signed == signed and not dt.is_float
    assert dt.min == (-(2 ** (bits - 1)) if signed else 0)
    assert dt.max == (2 ** (bits - 1) - 1 if signed else 2**bits - 1)
    rng = np.random.default_rng(bits)
    patterns = [0, 1, 2**bits - 1, 2 ** (bits - 1)] + [int(v) for v in rng.integers(
        0, 2**bits, 50, dtype=np.uint64)]
    expected = [p - 2**bits if signed and p >= 2 ** (bits - 1) else p for p in patterns]
    decoded = dt.decode(np.array(patterns, dtype=np.uint64))
    assert [int(v) for v in decoded] == expected
    assert [int(v) for v in dt.encode(decoded)] == patterns


def python_encode(x: float, lo: int, hi: int, bits: int, saturate: bool) -> int:
    v = 0 if x != x else round(x) if abs(x) != float("inf") else (hi if x > 0 else lo)
    v = min(max(v, lo), hi) if saturate else v
    return v % 2**bits


@pytest.mark.parametrize("name", ["u1", "u3", "u4", "i2", "i4", "i5", "u8", "i8", "i16", "u32"])
@pytest.mark.parametrize("saturate", [True, False])
def test_encode_rounds_half_to_even_then_saturates_or_wraps(name, saturate):
    dt = tv.dtype(name)
    values = [-300.5, -9.5, -8.5, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 7.5, 8.49, 15.5, 16.5, 255.5,
              1e10, -1e10, float("nan")]
    if not saturate:  # wrapping is defined for values within ±2**62
        values = values[:-3]
    expected = [python_encode(v, dt.min, dt.max, dt.nbits, saturate) for v in values]
    assert dt.encode(np.array(values), saturate=saturate).tolist() == expected


def test_64_bit_integers_are_exact():
    assert tv.u64.encode([2**64 - 1, -1]).tolist() == [2**64 - 1, 0]
    assert tv.u64.encode([-1], saturate=False).tolist() == [2**64 - 1]
    assert tv.i64.decode(tv.i64.encode(np.array([-(2**63), 2**63 - 1]))).tolist() == [
        -(2**63), 2**63 - 1]
    assert tv.u64.decode(np.array([2**64 - 1], dtype=np.uint64)).dtype == np.uint64


def test_decode_rejects_patterns_that_do_not_fit():
    with pytest.raises(ValueError, match="0x10 does not fit in 4 bits"):
        tv.u4.decode([3, 16])
    with pytest.raises(ValueError, match="negative"):
        tv.i4.decode([-1])
    with pytest.raises(TypeError, match="must be integers"):
        tv.f8e4m3fn.decode([1.0])

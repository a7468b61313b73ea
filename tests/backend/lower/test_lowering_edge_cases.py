"""Corners of the numeric contract (DESIGN §3), each run on the interpreter against a numpy
oracle and — through the suite's autouse check — on the CPU backend, which must agree bit for bit:
signed zeros in min/max, shift amounts out of range, integer division by zero and of negative
numbers, and conversions of NaN, infinities and huge values into every kind of type."""

from __future__ import annotations

import numpy as np
import pytest

import tilevm as tv
from tilevm import f32, i8, i32, u8, u16
from tilevm.ir.host_tensor import HostTensor

N = 64


@tv.kernel
def min_max(x: tv.Global[f32, "n"], y: tv.Global[f32, "n"], lo: tv.Global[f32, "n"],
            hi: tv.Global[f32, "n"], lows: tv.Global[f32, 2], highs: tv.Global[f32, 2]):
    tv.launch(grid=1, warps=2)
    a, b = tv.load(x, (0,), (N,)), tv.load(y, (0,), (N,))
    tv.store(lo, tv.minimum(a, b), (0,))
    tv.store(hi, tv.maximum(a, b), (0,))
    pair = tv.reshape(a, (2, N // 2))
    tv.store(lows, tv.min(pair, 1), (0,))
    tv.store(highs, tv.max(pair, 1), (0,))


def test_min_and_max_order_negative_zero_below_positive_zero():
    x = np.zeros(N, np.float32)
    y = np.zeros(N, np.float32)
    x[0::2] = -0.0  # (-0, +0) and (+0, -0) pairs, NaNs, and plain numbers
    y[1::4] = -0.0
    x[5], y[6], x[7], y[7] = np.nan, np.nan, np.nan, np.nan
    x[8:12] = [1.0, -2.0, 3.0, -0.0]
    x[32:] = -0.0  # the second half of the reduction holds only -0: its max is -0
    lo, hi = np.zeros(N, np.float32), np.zeros(N, np.float32)
    lows, highs = np.zeros(2, np.float32), np.zeros(2, np.float32)
    min_max(x, y, lo, hi, lows, highs, device="interp")
    zero = (x == 0) & (y == 0)
    want_lo = np.where(zero, np.where(np.signbit(x) | np.signbit(y), -0.0, 0.0), np.fmin(x, y))
    want_hi = np.where(zero, np.where(np.signbit(x) & np.signbit(y), -0.0, 0.0), np.fmax(x, y))
    assert np.array_equal(lo.view(np.uint32)[~np.isnan(lo)],
                          want_lo.astype(np.float32).view(np.uint32)[~np.isnan(lo)])
    assert np.array_equal(hi.view(np.uint32)[~np.isnan(hi)],
                          want_hi.astype(np.float32).view(np.uint32)[~np.isnan(hi)])
    assert np.isnan(lo[7]) and np.isnan(hi[7]) and lo[5] == y[5]
    assert highs[1] == 0 and np.signbit(highs[1])  # all -0
    assert lows[1] == 0 and np.signbit(lows[1])


@tv.kernel
def shifts(x: tv.Global[i32, "n"], s: tv.Global[i32, "n"], left: tv.Global[i32, "n"],
           right: tv.Global[i32, "n"], left8: tv.Global[u8, "n"], right8: tv.Global[i8, "n"]):
    tv.launch(grid=1)
    a, k = tv.load(x, (0,), (N,)), tv.load(s, (0,), (N,))
    tv.store(left, a << k, (0,))
    tv.store(right, a >> k, (0,))
    tv.store(left8, tv.cast(a, u8) << tv.cast(k, u8), (0,))
    tv.store(right8, tv.cast(a, i8) >> tv.cast(k, i8), (0,))


def test_shift_amounts_are_unsigned_and_shift_everything_out_beyond_the_width():
    rng = np.random.default_rng(0)
    x = rng.integers(-2**31, 2**31, N).astype(np.int32)
    s = np.arange(-20, N - 20).astype(np.int32)
    out = [np.zeros(N, np.int32), np.zeros(N, np.int32), np.zeros(N, np.uint8),
           np.zeros(N, np.int8)]
    shifts(x, s, *out, device="interp")

    def reference(v, k, bits, signed, left):
        v, k = int(v), int(k)
        if k < 0 or k >= bits:
            return (-1 if v < 0 else 0) if (signed and not left) else 0
        r = (v << k) if left else (v >> k)
        r &= (1 << bits) - 1
        return r - (1 << bits) if signed and r >> (bits - 1) else r

    x8, s8 = x.astype(np.uint8), s.astype(np.uint8)
    xi8, si8 = x.astype(np.int8), s.astype(np.int8)
    assert out[0].tolist() == [reference(v, k, 32, True, True) for v, k in zip(x, s)]
    assert out[1].tolist() == [reference(v, k, 32, True, False) for v, k in zip(x, s)]
    assert out[2].tolist() == [reference(v, k, 8, False, True) for v, k in zip(x8, s8)]
    assert out[3].tolist() == [reference(v, k, 8, True, False) for v, k in zip(xi8, si8)]


@tv.kernel
def division(x: tv.Global[i32, "n"], y: tv.Global[i32, "n"], q: tv.Global[i32, "n"],
             r: tv.Global[i32, "n"], q16: tv.Global[u16, "n"], r8: tv.Global[i8, "n"]):
    tv.launch(grid=1)
    a, b = tv.load(x, (0,), (N,)), tv.load(y, (0,), (N,))
    tv.store(q, a // b, (0,))
    tv.store(r, a % b, (0,))
    tv.store(q16, tv.cast(a, u16) // tv.cast(b, u16), (0,))
    tv.store(r8, tv.cast(a, i8) % tv.cast(b, i8), (0,))


def test_integer_division_rounds_toward_minus_infinity_and_a_zero_divisor_acts_as_one():
    rng = np.random.default_rng(1)
    x = rng.integers(-1000, 1000, N).astype(np.int32)
    y = rng.integers(-9, 10, N).astype(np.int32)
    x[:3], y[:3] = [-2**31, 7, -7], [-1, 0, 0]
    q, r = np.zeros(N, np.int32), np.zeros(N, np.int32)
    q16, r8 = np.zeros(N, np.uint16), np.zeros(N, np.int8)
    division(x, y, q, r, q16, r8, device="interp")
    safe = np.where(y == 0, 1, y).astype(np.int64)
    assert q.tolist() == [int(np.int32(v)) for v in (x.astype(np.int64) // safe).astype(np.int32)]
    assert r.tolist() == (x.astype(np.int64) % safe).tolist()
    x16, y16 = x.astype(np.uint16).astype(np.int64), y.astype(np.uint16).astype(np.int64)
    assert q16.tolist() == (x16 // np.where(y16 == 0, 1, y16)).tolist()
    x8, y8 = x.astype(np.int8).astype(np.int64), y.astype(np.int8).astype(np.int64)
    assert r8.tolist() == (x8 % np.where(y8 == 0, 1, y8)).tolist()


@pytest.mark.parametrize("name", ["i8", "u8", "i32", "u32", "i4", "u3", "u1", "i64", "u64",
                                  "f8e4m3fn", "f8e5m2", "f4e2m1fn", "f8e8m0fnu", "f16", "bf16",
                                  "f6e3m2fn", "f5e2m2"])
def test_special_values_convert_as_the_contract_says(name):
    dt = tv.dtype(name)

    @tv.kernel
    def convert(x: tv.Global[f32, "n"], y: tv.Global[dt, "n"]):
        tv.launch(grid=1)
        tv.store(y, tv.cast(tv.load(x, (0,), (N,)), dt), (0,))

    x = np.array([np.nan, np.inf, -np.inf, 3e38, -3e38, 0.0, -0.0, 0.5, -0.5, 1.5, 2.5, -2.5,
                  1e-30, -1e-30, 7.99, 255.5, -128.9, 2.0**31, -(2.0**31), 2.0**63, 65504.0,
                  448.0, 464.0, 480.0, 6.0, 7.0, 3.25, 2.0**-127, 2.0**-150, 1e6, -1e6, 33.3],
                 np.float32)
    x = np.resize(x, N)
    y = HostTensor.empty((N,), dt)
    convert(x, y, device="interp")
    if dt.is_integer:
        with np.errstate(invalid="ignore"):
            want = np.where(np.isnan(x), 0, np.trunc(x.astype(np.float64)))
        if dt.nbits == 1:
            want = (x != 0).astype(np.int64)
        assert np.array_equal(y.bits(), dt.encode(want, saturate=True))
    else:
        assert np.array_equal(y.bits(), dt.encode(x.astype(np.float64)))


@pytest.mark.parametrize("name", ["u12", "i9", "u17", "i31", "u3", "i6"])
def test_odd_widths_load_and_store_at_every_bit_offset(name):
    # Elements of 9 to 31 bits span up to five bytes at an odd bit offset; a view starting at
    # element 1 of a packed buffer moves every element off its byte.
    dt = tv.dtype(name)

    @tv.kernel
    def shift_copy(x: tv.Global[dt, "m", "n"], y: tv.Global[dt, "p", "q"]):
        tv.launch(grid=1, warps=1)
        tv.store(y, tv.load(x, (0, 1), (4, 8)) + tv.load(x, (1, 0), (4, 8)), (0, 0))

    rng = np.random.default_rng(dt.nbits)
    bits = rng.integers(0, 1 << dt.nbits, (5, 10))
    big = HostTensor.from_bits(bits, dt)
    x = big[:, 1:]  # offset 1: rows and elements start mid-byte
    out_big = HostTensor.from_bits(np.zeros((5, 10), np.int64), dt)
    y = out_big[1:, 1:]
    shift_copy(x, y, device="interp")
    values = dt.decode(bits)[:, 1:]
    want = dt.decode(dt.encode(values[0:4, 1:9] + values[1:5, 0:8], saturate=False))
    assert np.array_equal(y.to_numpy()[:4, :8], want)
    assert np.array_equal(out_big.to_numpy()[0], np.zeros(10))  # nothing else written

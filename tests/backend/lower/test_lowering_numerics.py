"""The per-element Thread IR of the lowering (:mod:`tilevm.backend.lower.scalar_math`), run on
every lane of the CPU backend and held to independent oracles: ``DType.encode``/``decode``
(themselves checked against ml_dtypes) for the narrow floats' codes, exact rational arithmetic
for the rounding of conversions and of ``fma``."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from cpu_harness import lane_program

import tilevm as tv
from tilevm.backend.lower import scalar_math as sm
from tilevm.ir.dtypes import all_dtypes

NARROW_FLOATS = [dt for dt in all_dtypes()
                 if dt.is_float and dt.name not in ("f16", "bf16", "f32", "f64")]


def _pad(values: np.ndarray, dtype) -> np.ndarray:
    """``values`` repeated to a multiple of 32 lanes."""
    n = -(-len(values) // 32) * 32
    return np.resize(np.asarray(values, dtype), n)


def _f32_sweep(dt) -> np.ndarray:
    """Every value of ``dt``, the midpoints between neighbours and points just beside them, both
    signs, beyond the range, f32 subnormals, ±0, ±inf and NaN — as f32 (all exact)."""
    finite = np.unique(dt.decode(np.arange(1 << dt.nbits))[np.isfinite(
        dt.decode(np.arange(1 << dt.nbits)))])
    positive = finite[finite >= 0]
    mids = (positive[:-1] + positive[1:]) / 2
    near = np.concatenate([mids, np.nextafter(mids.astype(np.float32), np.float32(np.inf)),
                           np.nextafter(mids.astype(np.float32), np.float32(0))])
    top = float(dt.max)
    beyond = [top * 1.01, top * 2, 3e38, 1e30, 2.0**-126, 2.0**-140, 2.0**-149, 1.25 * 2.0**-127,
              1.5 * 2.0**-127, 1.75 * 2.0**-127, 2.0**-127]
    with np.errstate(over="ignore"):
        values = np.concatenate([positive, near, beyond]).astype(np.float32)
    values = np.concatenate([values, -values, [0.0, -0.0, np.inf, -np.inf, np.nan]])
    return values.astype(np.float32)


@pytest.mark.parametrize("dt", NARROW_FLOATS, ids=str)
def test_decoding_every_code_gives_the_value_of_the_type(dt):
    codes = np.arange(1 << dt.nbits, dtype=np.uint32)
    run = lane_program(f"decode_{dt.name}", ["u32"],
                       lambda kb, v: [kb.mov(sm.decode_narrow(kb, v[0], dt), "u32")])
    (got,) = run(_pad(codes, np.uint32))
    got = got[:len(codes)].view(np.float32).astype(np.float64)
    want = dt.decode(codes)
    same = (np.isnan(got) & np.isnan(want)) | ((got == want) & (np.signbit(got) ==
                                                                np.signbit(want)))
    bad = np.nonzero(~same)[0]
    assert bad.size == 0, f"code {codes[bad[0]]:#x}: {got[bad[0]]} instead of {want[bad[0]]}"


@pytest.mark.parametrize("dt", NARROW_FLOATS, ids=str)
def test_encoding_rounds_like_the_type_does(dt):
    x = _f32_sweep(dt)
    run = lane_program(f"encode_{dt.name}", ["f32"],
                       lambda kb, v: [sm.encode_narrow(kb, v[0], dt)])
    (got,) = run(_pad(x, np.float32))
    got = got[:len(x)]
    want = dt.encode(x.astype(np.float64)).astype(np.uint32)
    bad = np.nonzero(got != want)[0]
    assert bad.size == 0, (f"{dt.name}: {x[bad[0]]!r} encodes to {got[bad[0]]:#x}, "
                           f"DType.encode says {want[bad[0]]:#x} ({bad.size} values differ)")


@pytest.mark.parametrize("name", ["bf16", "f8e4m3fn", "f6e3m2fn", "f4e2m1fn"])
def test_integers_round_once_into_floats_that_have_no_direct_conversion(name):
    dt = tv.dtype(name)
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.integers(-2**31, 2**31, 200), [2**24 + 2**16 + 1, -(2**24 + 2**16 + 1),
                        0, 1, -1, 2**31 - 1, -2**31, 2**24 + 1]]).astype(np.int32)
    def body(kb, v):
        out = sm.cast(kb, v[0], tv.i32, dt)
        return [kb.cvt(kb.mov(out, "u16"), "u32", src="u16") if name == "bf16" else out]

    (got,) = lane_program(f"i2f_{name}", ["s32"], body)(_pad(x, np.int32))
    want = dt.encode(x.astype(np.float64))  # float64 holds every int32: one rounding
    np.testing.assert_array_equal(got[:len(x)], want.astype(np.uint32))


def test_int_to_bf16_avoids_the_double_rounding_of_going_through_f32():
    # 2**24 + 2**16 + 1 rounds to 2**24 + 2**16 in f32 (a tie, to even), which is a bf16
    # midpoint that rounds down; the value itself lies above the midpoint and rounds up.
    value = 2**24 + 2**16 + 1
    run = lane_program("i2bf16", ["s32"],
                       lambda kb, v: [kb.cvt(kb.mov(sm.cast(kb, v[0], tv.i32, tv.bf16), "u16"),
                                             "u32", src="u16")])
    (got,) = run(_pad(np.array([value]), np.int32))
    assert tv.bf16.decode(np.array([got[0]]))[0] == 2**24 + 2**17


@pytest.mark.parametrize("name", ["f8e4m3fn", "f8e5m2", "f6e2m3fn", "f4e2m1fn", "f5e2m2"])
def test_narrow_fma_rounds_once(name):
    dt = tv.dtype(name)
    values = dt.decode(np.arange(1 << dt.nbits))
    finite = values[np.isfinite(values)]
    rng = np.random.default_rng(2)
    a, b, c = (rng.choice(finite, 256) for _ in range(3))
    run = lane_program(f"fma_{name}", ["f32", "f32", "f32"],
                       lambda kb, v: [sm.fma(kb, v[0], v[1], v[2], dt)])
    (got,) = run(*(x.astype(np.float32) for x in (a, b, c)))
    for x, y, z, code in zip(a, b, c, got):
        exact = Fraction(float(x)) * Fraction(float(y)) + Fraction(float(z))
        if exact == 0:  # the sign of a zero sum follows IEEE, which float64 gets right here
            exact_value = float(x) * float(y) + float(z)
            assert code == int(dt.encode(exact_value)), (x, y, z, code)
            continue
        want = int(dt.encode(float(exact))) if float(exact) == exact else None
        if want is None:  # float() of the exact value rounded: compare with exact neighbours
            got_value = Fraction(float(dt.decode(np.array([code]))[0]))
            best = min(abs(Fraction(float(v)) - exact) for v in finite)
            assert abs(got_value - exact) == best, (x, y, z, code)
        else:
            assert code == want, (x, y, z, code, want)

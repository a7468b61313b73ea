"""The tensor-core conversions on the CPU backend: ``cvt.rna{.satfinite}.tf32.f32``,
``cvt.rn.satfinite.{e4m3x2,e5m2x2}.f32`` and ``cvt.rn.f16x2.{e4m3x2,e5m2x2}`` (PTX ISA, "Data
Movement and Conversion Instructions: cvt").

Oracles: tf32 rounding from the definition (the two tf32 neighbours of x compared as exact
rationals, a tie away from zero, beyond the largest the overflow to ±inf); fp8 values from
ml_dtypes (``float8_e4m3fn``, ``float8_e5m2``), held to the ISA where ml_dtypes differs:
``.satfinite`` makes ±inf and every |x| > MAX_NORM ±MAX_NORM (ml_dtypes gives NaN for e4m3fn,
±inf for e5m2) and a NaN input the NaN code 0x7f. Packing from the ISA's semantics: "d[15:8] =
convert(a); d[7:0] = convert(b)" and "the value converted from the upper 8 bits of a is stored in
the upper 16 bits of d". Inf and NaN through ``cvt.rna.tf32.f32`` (the ISA says no more than
"rna") follow ptxas's code for sm_80–sm_90 (see ``numerics.f32_to_tf32``).
"""

from __future__ import annotations

from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from cpu_harness import lane_program, random_words

FP8 = {"e4m3": (ml_dtypes.float8_e4m3fn, 448.0, 0x7E), "e5m2": (ml_dtypes.float8_e5m2, 57344.0,
                                                               0x7B)}


def f32(bits: int) -> float:
    return float(np.array(bits, np.uint32).view(np.float32))


def tf32_rna(bits: int) -> int:
    """Round the finite f32 ``bits`` to nearest tf32 (10 mantissa bits), ties away from zero."""
    sign, mag = bits & 0x80000000, bits & 0x7FFFFFFF
    lo = mag & ~0x1FFF
    hi = lo + 0x2000   # the next tf32 magnitude (0x7f800000 = inf past the largest)
    x, vlo = Fraction(f32(mag)), Fraction(f32(lo))
    vhi = Fraction(2) ** 128 if hi == 0x7F800000 else Fraction(f32(hi))
    return sign | (hi if x - vlo >= vhi - x else lo)


def test_tf32_rna_rounds_to_nearest_ties_away() -> None:
    rng = np.random.default_rng(5)
    prog = lane_program("tf32", ["f32"], lambda kb, v: [kb.cvt_tf32(v[0]),
                                                          kb.cvt_tf32(v[0], satfinite=True)])
    edges = [0x3F800000 | low for low in (0x0FFF, 0x1000, 0x1001, 0x2FFF, 0x3000)]  # ties
    edges += [0x7F7FEFFF, 0x7F7FF000, 0x7F7FFFFF, 0x00000FFF, 0x00001000, 0x00001FFF, 0,
              0x80000000, 0x80001000]
    words = np.concatenate([random_words(rng, 4096 - 32), np.array(edges * 2, np.uint32)[:32]])
    finite = words[(words & 0x7FFFFFFF) < 0x7F800000]
    x = np.resize(finite, 4096).astype(np.uint32)
    rna, sat = prog(x.view(np.float32))
    want = np.array([tf32_rna(int(b)) for b in x], np.uint32)
    assert np.array_equal(rna, want)
    # satfinite: "If the absolute value of input (ignoring sign) is greater than MAX_NORM of
    # the specified destination format, then the result is sign-preserved MAX_NORM"
    big = (want & 0x7FFFFFFF) == 0x7F800000
    assert np.array_equal(sat, np.where(big, (want & 0x80000000) | 0x7F7FE000, want))
    assert np.array_equal(rna & 0x1FFF, np.zeros_like(rna))


def test_tf32_inf_and_nan() -> None:
    prog = lane_program("tf32_special", ["u32"], lambda kb, v: [
        kb.cvt_tf32(kb.mov(v[0], "f32")), kb.cvt_tf32(kb.mov(v[0], "f32"), satfinite=True)])
    inputs = np.array([0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC01234, 0x7F800001, 0x7FBFFFFF]
                      + [0] * 26, np.uint32)
    rna, sat = prog(inputs)
    # inf stays inf; NaN keeps its high 19 bits (a payload only in the low 13 becomes inf)
    assert [hex(v) for v in rna[:6]] == ["0x7f800000", "0xff800000", "0x7fc00000",
                                         "0xffc00000", "0x7f800000", "0x7fbfe000"]
    # .satfinite: ±inf -> ±MAX_NORM; a NaN stays a NaN (one code down)
    assert [hex(v) for v in sat[:2]] == ["0x7f7fe000", "0xff7fe000"]
    assert np.isnan(sat[2:4].view(np.float32)).all() and np.isnan(sat[5:6].view(np.float32))


def fp8_oracle(x: np.ndarray, fmt: str) -> np.ndarray:
    """The ISA's cvt.rn.satfinite to ``fmt`` (codes), from ml_dtypes' value conversion."""
    dtype, max_norm, max_code = FP8[fmt]
    with np.errstate(invalid="ignore", over="ignore"):
        codes = x.astype(dtype).view(np.uint8).astype(np.uint32)
    sign = np.where(np.signbit(x), 0x80, 0).astype(np.uint32)
    codes = np.where(np.abs(x) > max_norm, sign | max_code, codes)   # ±inf included
    return np.where(np.isnan(x), 0x7F, codes).astype(np.uint32)


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
def test_f32_pairs_to_fp8_codes(fmt) -> None:
    rng = np.random.default_rng(6)
    prog = lane_program(f"to_{fmt}", ["f32", "f32"],
                        lambda kb, v: [kb.mov(kb.cvt_fp8x2(v[0], v[1], fmt), "u16")])
    dtype, max_norm, _ = FP8[fmt]
    # every code's value, the midpoints between neighbours (ties) and a step either side,
    # random magnitudes over and beyond the range, random patterns (NaN, inf, subnormal f32)
    values = np.array(range(256), np.uint8).view(dtype).astype(np.float64)
    values = np.sort(values[np.isfinite(values)])
    mids = (values[1:] + values[:-1]) / 2
    near = np.concatenate([mids, np.nextafter(mids.astype(np.float32), np.float32(np.inf)),
                           np.nextafter(mids.astype(np.float32), np.float32(-np.inf)), values,
                           [max_norm * 1.03, max_norm * 1.1, -max_norm * 4, 1e-30, -0.0]])
    spread = rng.choice([-1, 1], 4000) * np.exp2(rng.uniform(-30, 20, 4000))
    pattern = random_words(rng, 2000).view(np.float32)
    x = np.concatenate([near.astype(np.float32), spread.astype(np.float32), pattern,
                        np.array([np.inf, -np.inf, np.nan], np.float32)])
    x = np.resize(x, (len(x) + 31) // 32 * 32 * 2).astype(np.float32)
    a, b = x[: len(x) // 2], x[len(x) // 2:]
    (d,) = prog(a, b)
    assert np.array_equal(d >> 8, fp8_oracle(a, fmt)), "a goes to the upper byte"
    assert np.array_equal(d & 0xFF, fp8_oracle(b, fmt))


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
def test_fp8_pairs_to_f16x2_every_code(fmt) -> None:
    prog = lane_program(f"from_{fmt}", ["u16"], lambda kb, v: [kb.mov(kb.cvt_f16x2_fp8x2(
        v[0], fmt), "u32")], threads=128)
    dtype = FP8[fmt][0]
    codes = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    (d,) = prog(codes)
    halves = {}
    for name, byte in (("hi", codes >> 8), ("lo", codes & 0xFF)):
        vals = byte.astype(np.uint8).view(dtype).astype(np.float16)  # exact in f16
        bits = vals.view(np.uint16).astype(np.uint32)
        halves[name] = np.where(np.isnan(vals), 0x7FFF, bits)   # NaN: canonical 0x7fff
    assert np.array_equal(d >> 16, halves["hi"]), "the upper byte goes to the upper half"
    assert np.array_equal(d & 0xFFFF, halves["lo"])

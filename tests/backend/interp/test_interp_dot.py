"""The interpreter's ``tv.dot`` against a reference written plainly here, from the numeric
contract (docs/numeric-contract.md) and the IEEE 754 formats: per K-chunk, the exact products
(``fractions``) summed, the accumulator added, one rounding to nearest even; IEEE arithmetic for
inf and NaN; −0 only when every term is −0; tf32 operands rounded as PTX ``cvt.rna.tf32.f32``
does; integer dots modulo 2^32.
"""

# No `from __future__ import annotations`: the kernels' annotations use the factory's dtypes.
import math
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest

import tilevm as tv
from tilevm.backend.interp.dot import round_to_tf32

NP_TYPES = {"f16": np.float16, "bf16": ml_dtypes.bfloat16, "f32": np.float32,
            "f8e4m3fn": ml_dtypes.float8_e4m3fn, "f8e5m2": ml_dtypes.float8_e5m2,
            "i8": np.int8, "u8": np.uint8, "i32": np.int32}
# IEEE 754 binary32 and binary16: precision p (significand bits), emin, emax.
FORMATS = {"f32": (24, -126, 127), "f16": (11, -14, 15)}


def make_dot(a_name: str, b_name: str, c_name: str, precision: str):
    a_dt, b_dt, c_dt = tv.dtype(a_name), tv.dtype(b_name), tv.dtype(c_name)

    @tv.kernel
    def dot_kernel(a: tv.Global[a_dt, "m", "k"], b: tv.Global[b_dt, "k", "n"],
                   c: tv.Global[c_dt, "m", "n"], *, bm: tv.Const, bn: tv.Const, bk: tv.Const):
        tv.launch(grid=1)
        acc = tv.load(c, (0, 0), (bm, bn))
        x = tv.load(a, (0, 0), (bm, bk))
        y = tv.load(b, (0, 0), (bk, bn))
        tv.store(c, tv.dot(x, y, acc, precision=precision), (0, 0))

    return dot_kernel


def run_dot(a: np.ndarray, b: np.ndarray, c: np.ndarray, names: tuple[str, str, str],
            precision: str = "ieee") -> np.ndarray:
    out = c.copy()
    (m, k), n = a.shape, b.shape[1]
    make_dot(*names, precision)(a, b, out, device="interp", bm=m, bn=n, bk=k)
    return out


# -- the reference ---------------------------------------------------------------------------------


def floor_log2(x: Fraction) -> int:
    e = x.numerator.bit_length() - x.denominator.bit_length()
    return e - 1 if Fraction(2) ** e > x else e


def round_to_format(x: Fraction, fmt: str) -> float:
    """``x`` rounded once to nearest, ties to even, in an IEEE binary format with subnormals;
    ±inf beyond the largest finite value; a non-zero ``x`` that rounds to zero keeps its sign."""
    p, emin, emax = FORMATS[fmt]
    if x == 0:
        return 0.0
    sign = -1.0 if x < 0 else 1.0
    quantum = Fraction(2) ** (max(floor_log2(abs(x)), emin) - p + 1)
    value = round(abs(x) / quantum) * quantum  # round() of a Fraction: ties to even
    if value >= Fraction(2) ** (emax + 1):
        return sign * math.inf
    return sign * float(value)


def tf32_rna(x: float) -> float:
    """PTX ``cvt.rna.tf32.f32``: to 10 mantissa bits (f32's exponent range), to nearest with ties
    away from zero; overflow to ±inf; inf and NaN unchanged."""
    if not math.isfinite(x) or x == 0:
        return x
    quantum = Fraction(2) ** (max(math.frexp(x)[1] - 1, -126) - 10)
    steps = math.floor(abs(Fraction(x)) / quantum + Fraction(1, 2))  # ties away from zero
    value = steps * quantum
    if value >= Fraction(2) ** 128:
        return math.copysign(math.inf, x)
    return math.copysign(float(value), x)


def ieee_special(pairs: list[tuple[float, float]], acc: float) -> float | None:
    """The IEEE value of ``Σ x·y + acc`` when a term is inf or NaN, else None."""
    infinities = []
    for x, y in pairs:
        if math.isnan(x) or math.isnan(y):
            return math.nan
        if math.isinf(x) or math.isinf(y):
            if x == 0 or y == 0:
                return math.nan  # inf · 0
            infinities.append(math.copysign(1, x) * math.copysign(1, y))
    if math.isnan(acc):
        return math.nan
    if math.isinf(acc):
        infinities.append(math.copysign(1, acc))
    if not infinities:
        return None
    return infinities[0] * math.inf if len(set(infinities)) == 1 else math.nan


def reference_dot(a: np.ndarray, b: np.ndarray, c: np.ndarray, chunk: int, acc_format: str,
                  tf32: bool = False) -> np.ndarray:
    """``a @ b + c`` (float64 arrays of the operands' values) under the contract."""
    if tf32:
        a, b = np.vectorize(tf32_rna)(a), np.vectorize(tf32_rna)(b)
    (m, k), n = a.shape, b.shape[1]
    out = np.zeros((m, n))
    for i in range(m):
        for j in range(n):
            acc = float(c[i, j])
            for k0 in range(0, k, chunk):
                pairs = [(float(a[i, kk]), float(b[kk, j])) for kk in range(k0, min(k0 + chunk, k))]
                special = ieee_special(pairs, acc)
                if special is not None:
                    acc = special
                    continue
                exact = sum(Fraction(x) * Fraction(y) for x, y in pairs) + Fraction(acc)
                if exact == 0:
                    all_negative_zeros = all(
                        x * y == 0 and math.copysign(1, x) != math.copysign(1, y)
                        for x, y in pairs) and math.copysign(1, acc) < 0
                    acc = -0.0 if all_negative_zeros else 0.0
                else:
                    acc = round_to_format(exact, acc_format)
            out[i, j] = acc
    return out


def assert_same(got: np.ndarray, expected: np.ndarray) -> None:
    """Equal bit patterns, signed zeros included; a NaN only needs to be a NaN."""
    expected = expected.astype(got.dtype)
    nan = np.isnan(expected.astype(np.float64))
    assert np.array_equal(np.isnan(got.astype(np.float64)), nan)
    bits = f"u{got.dtype.itemsize}"
    assert np.array_equal(got.view(bits)[~nan], expected.view(bits)[~nan])


# -- operands --------------------------------------------------------------------------------------


def spread(rng: np.random.Generator, shape: tuple[int, int], name: str) -> np.ndarray:
    """Values over many binades of the type, half of each row cancelling the other half."""
    span = {"f16": 8, "bf16": 30, "f32": 30, "f8e4m3fn": 3, "f8e5m2": 6}[name]
    x = rng.standard_normal(shape) * np.exp2(rng.integers(-span, span, shape))
    half = shape[1] // 2
    x[:, half:2 * half] = -x[:, :half]
    return x.astype(NP_TYPES[name])


def spread_k_major(rng: np.random.Generator, shape: tuple[int, int], name: str) -> np.ndarray:
    return spread(rng, shape[::-1], name).T.copy()


FLOAT_RULES = [  # (a, b, accumulator, precision, chunk of the contract)
    ("f16", "f16", "f32", "ieee", 16),
    ("f16", "f16", "f16", "ieee", 16),
    ("bf16", "bf16", "f32", "ieee", 16),
    ("f8e4m3fn", "f8e4m3fn", "f32", "ieee", 32),
    ("f8e4m3fn", "f8e5m2", "f32", "ieee", 32),
    ("f8e5m2", "f8e4m3fn", "f32", "ieee", 32),
    ("f8e5m2", "f8e5m2", "f32", "ieee", 32),
    ("f32", "f32", "f32", "ieee", 1),
    ("f32", "f32", "f32", "tf32", 8),
]
IDS = [f"{a}x{b}->{c}-{p}" for a, b, c, p, _ in FLOAT_RULES]


@pytest.mark.parametrize(("a_name", "b_name", "c_name", "precision", "chunk"), FLOAT_RULES,
                         ids=IDS)
def test_float_dot_rounds_once_per_chunk_of_exact_products(a_name, b_name, c_name, precision,
                                                           chunk):
    rng = np.random.default_rng(sum(map(ord, a_name + b_name + c_name + precision)))
    # chunks of 16 end at 64 and 72; of 32 at 64 and 72; of 8 evenly. (M and N of partial atoms
    # are covered by tests/backend/lower/test_dot_lowering.py; here a 5 x 72 f16 tile would spill
    # in its default layout, which has to replicate the odd rows.)
    m, n, k = 8, 8, 72
    a = spread(rng, (m, k), a_name)
    b = spread_k_major(rng, (k, n), b_name)
    scale = 2.0 ** (4 if c_name == "f16" else 12)
    c = (rng.standard_normal((m, n)) * scale).astype(NP_TYPES[c_name])
    got = run_dot(a, b, c, (a_name, b_name, c_name), precision)
    expected = reference_dot(a.astype(np.float64), b.astype(np.float64), c.astype(np.float64),
                             chunk, c_name, tf32=precision == "tf32")
    assert_same(got, expected)


def specials_of(name: str) -> list[float]:
    """inf, NaN, signed zeros, subnormals and extremes, as far as the type has them."""
    info = ml_dtypes.finfo(NP_TYPES[name])
    tiny = float(info.smallest_subnormal)
    return [math.inf, -math.inf, math.nan, 0.0, -0.0, tiny, -tiny, 3 * tiny, float(info.max),
            -float(info.max)]


@pytest.mark.parametrize(("a_name", "b_name", "c_name", "precision", "chunk"), FLOAT_RULES,
                         ids=IDS)
def test_float_dot_special_values_follow_ieee_arithmetic(a_name, b_name, c_name, precision,
                                                         chunk):
    rng = np.random.default_rng(sum(map(ord, a_name + c_name)) + 17)
    m, n, k = 8, 8, 40
    a = spread(rng, (m, k), a_name).astype(np.float64)
    b = spread_k_major(rng, (k, n), b_name).astype(np.float64)
    c = rng.standard_normal((m, n))
    # Rows 0-3 of a and columns 0-3 of b meet specials; row 4 and column 4 are zeros of both signs
    # with an accumulator of -0 or +0; the rest stay finite.
    for row in range(4):
        a[row, rng.integers(0, k, 2)] = rng.choice(specials_of(a_name), 2)
        b[rng.integers(0, k, 2), row] = rng.choice(specials_of(b_name), 2)
    a[4] = rng.choice([0.0, -0.0], k)
    b[:, 4] = rng.choice([0.0, -0.0], k)
    a[5], b[:, 5] = -0.0, 0.0  # every product −0
    c[4, :] = -0.0
    c[5, 5], c[6, 6] = -0.0, 0.0
    c[7, :] = rng.choice(specials_of(c_name), n)
    a, b, c = (x.astype(NP_TYPES[t]) for x, t in ((a, a_name), (b, b_name), (c, c_name)))
    got = run_dot(a, b, c, (a_name, b_name, c_name), precision)
    expected = reference_dot(a.astype(np.float64), b.astype(np.float64), c.astype(np.float64),
                             chunk, c_name, tf32=precision == "tf32")
    assert np.signbit(expected[5, 5]) and expected[5, 5] == 0  # the −0 case is exercised
    assert_same(got, expected)


@pytest.mark.parametrize(("a_name", "c_name", "precision"), [
    ("bf16", "f32", "ieee"), ("f32", "f32", "ieee"), ("f32", "f32", "tf32"),
    ("f16", "f16", "ieee")])
def test_float_dot_rounds_correctly_into_subnormals(a_name, c_name, precision):
    rng = np.random.default_rng(3)
    m, n, k = 4, 4, 24
    # Products and accumulators around the accumulator type's smallest normal: results are
    # subnormal, or round to zero of either sign.
    emin = FORMATS[c_name][1]
    half = (emin - 5) / 2
    a = (rng.standard_normal((m, k)) * 2.0 ** half).astype(NP_TYPES[a_name])
    b = (rng.standard_normal((k, n)) * 2.0 ** half).astype(NP_TYPES[a_name])
    c = (rng.standard_normal((m, n)) * 2.0 ** (emin - 3)).astype(NP_TYPES[c_name])
    chunk = {"f32": 1 if precision == "ieee" else 8, "bf16": 16, "f16": 16}[a_name]
    got = run_dot(a, b, c, (a_name, a_name, c_name), precision)
    expected = reference_dot(a.astype(np.float64), b.astype(np.float64), c.astype(np.float64),
                             chunk, c_name, tf32=precision == "tf32")
    assert (np.abs(expected) < 2.0 ** emin).sum() >= m * n // 2  # mostly subnormal
    assert_same(got, expected)


def test_f16_accumulator_rounds_each_chunk_to_f16_and_overflows_to_inf():
    m, n, k = 2, 2, 48
    a = np.full((m, k), 64.0, np.float16)
    b = np.full((k, n), 64.0, np.float16)  # 4096 per product, 65536 per chunk: above f16's max
    b[:, 1] = 1.0
    c = np.array([[0.0, 1.0], [-65504.0, 0.5]], np.float16)
    a[1, :16] = -64.0
    got = run_dot(a, b, c, ("f16", "f16", "f16"))
    expected = reference_dot(a.astype(np.float64), b.astype(np.float64), c.astype(np.float64), 16,
                             "f16")
    assert math.isinf(expected[0, 0]) and not math.isinf(expected[1, 1])
    assert_same(got, expected)
    # The per-chunk rounding shows: f16's step is 1 from 1024 to 2048, and each chunk adds 16.5,
    # a tie that goes to even: 1024 → 1040 → 1056 → 1072, where one rounding of the whole sum,
    # 1073.5, would give 1074.
    a2 = np.full((1, k), 1 + 2**-5, np.float16)
    b2 = np.full((k, 1), 1.0, np.float16)
    c2 = np.array([[1024.0]], np.float16)
    got2 = run_dot(a2, b2, c2, ("f16", "f16", "f16"))
    per_chunk = Fraction(1024)
    for _ in range(3):
        per_chunk = Fraction(round_to_format(per_chunk + Fraction(33, 2), "f16"))
    assert per_chunk == 1072 and round_to_format(Fraction(2147, 2), "f16") == 1074
    assert float(got2[0, 0]) == 1072


def wrap_i32(x: int) -> int:
    return (x + 2**31) % 2**32 - 2**31


@pytest.mark.parametrize(("a_name", "b_name"), [("i8", "i8"), ("i8", "u8"), ("u8", "i8"),
                                                ("u8", "u8")])
def test_integer_dot_is_the_exact_sum_modulo_2_to_the_32(a_name, b_name):
    rng = np.random.default_rng(len(a_name + b_name))
    m, n, k = 4, 3, 96
    info_a, info_b = np.iinfo(NP_TYPES[a_name]), np.iinfo(NP_TYPES[b_name])
    a = rng.integers(info_a.min, info_a.max + 1, (m, k)).astype(NP_TYPES[a_name])
    b = rng.integers(info_b.min, info_b.max + 1, (k, n)).astype(NP_TYPES[b_name])
    # Rows 0 and 1 are the extremes: every product at its largest or most negative, so that the
    # sum added to an accumulator near the ends of i32 leaves the range and wraps.
    a[0], a[1] = info_a.max, info_a.min
    b[:, 0], b[:, 1] = info_b.max, info_b.min
    c = rng.integers(-2**31, 2**31, (m, n)).astype(np.int32)
    c[0, 0], c[1, 0], c[0, 1], c[1, 1] = 2**31 - 5, -2**31 + 5, -2**31 + 3, 2**31 - 3
    got = run_dot(a, b, c, (a_name, b_name, "i32"))
    expected = np.array([[wrap_i32(sum(int(a[i, kk]) * int(b[kk, j]) for kk in range(k)) +
                                   int(c[i, j])) for j in range(n)] for i in range(m)])
    wrapped = [(i, j) for i in range(2) for j in range(2)
               if sum(int(a[i, kk]) * int(b[kk, j]) for kk in range(k)) + int(c[i, j]) !=
               expected[i, j]]
    assert wrapped  # the case under test
    assert np.array_equal(got.astype(np.int64), expected)


# -- cvt.rna.tf32.f32 ------------------------------------------------------------------------------


def test_tf32_rounding_is_cvt_rna_on_every_kind_of_f32():
    rng = np.random.default_rng(11)
    bits = rng.integers(0, 2**32, 4000, dtype=np.uint64).astype(np.uint32)
    one = 0x3F800000
    edges = [one | 0x1000, one | 0xFFF, one | 0x1FFF, one | 0x3000, 0x80000000 | one | 0x1000,
             0x7F7FF000, 0x7F7FEFFF, 0xFF7FF000, 0x7F7FFFFF, 0x00001000, 0x00000FFF, 0x807FF000,
             0x007FFFFF, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC01234, 0x7F800001, 0x00000000,
             0x80000000]
    bits = np.concatenate([bits, np.array(edges, np.uint32)])
    got = round_to_tf32(bits)
    with np.errstate(invalid="ignore"):  # signalling NaNs
        values = bits.view(np.float32).astype(np.float64)
    finite = np.isfinite(values)
    expected = np.array([tf32_rna(float(v)) for v in values[finite]], np.float32)
    assert np.array_equal(got[finite], expected.view(np.uint32))
    # inf and NaN: the low 13 bits dropped, as ptxas's code for sm_80-sm_90 and mma's reading of
    # a tf32 operand do: a NaN stays a NaN unless its payload lay only there.
    assert np.array_equal(got[~finite], bits[~finite] & np.uint32(0xFFFFE000))
    assert (got & 0x1FFF == 0).all()
    e = dict(zip(edges, got[len(bits) - len(edges):].tolist()))
    assert e[one | 0x1000] == np.float32(1 + 2**-10).view(np.uint32)  # ties away from zero
    assert e[0x80000000 | one | 0x1000] == np.float32(-(1 + 2**-10)).view(np.uint32)
    assert e[0x7F7FF000] == 0x7F800000 and e[0xFF7FF000] == 0xFF800000  # overflow to inf
    assert e[0x7FC00000] == 0x7FC00000 and e[0xFFC01234] == 0xFFC00000  # NaN stays NaN
    assert e[0x7F800001] == 0x7F800000


def test_tf32_precision_rounds_the_operands_before_the_chunks():
    # 1 + 2^-11 is a tie for tf32 and becomes 1 + 2^-10; with "ieee" it stays itself.
    a = np.full((1, 8), 1 + 2**-11, np.float32)
    b = np.full((8, 1), 1.0, np.float32)
    c = np.zeros((1, 1), np.float32)
    assert run_dot(a, b, c, ("f32", "f32", "f32"), "tf32")[0, 0] == 8 * (1 + 2**-10)
    assert run_dot(a, b, c, ("f32", "f32", "f32"), "ieee")[0, 0] == 8 * (1 + 2**-11)


def test_ieee_f32_is_a_sequential_fma_chain_not_one_rounding_per_chunk():
    # 1 + 2^-24 + 2^-24 ... : each fma rounds the 2^-24 away (a tie to even), while one rounding
    # of the exact sum of the chunk would keep 2^-23.
    a = np.array([[2.0**-24, 2.0**-24]], np.float32)
    b = np.ones((2, 1), np.float32)
    c = np.ones((1, 1), np.float32)
    assert run_dot(a, b, c, ("f32", "f32", "f32"), "ieee")[0, 0] == 1.0
    assert run_dot(a, b, c, ("f32", "f32", "f32"), "tf32")[0, 0] == 1.0 + 2**-23


def test_ieee_f32_fma_is_exact_where_float64_would_round_twice():
    # a·b = 2^-24 + r·2^-71 with 0 < r < 2^18: 1 + a·b lies just above the f32 tie 1 + 2^-24, but
    # float64 rounds it onto the tie, and a second rounding to f32 would then give 1.
    ma = next(m for m in range(2**23, 2**24) if -(-2**47 // m) < 2**24 and
              0 < m * -(-2**47 // m) - 2**47 < 2**18)
    mb = -(-2**47 // ma)
    a = np.array([[ma * 2.0**-23]], np.float32)
    b = np.array([[mb * 2.0**-48]], np.float32)
    c = np.ones((1, 1), np.float32)
    expected = reference_dot(a.astype(np.float64), b.astype(np.float64), c.astype(np.float64), 1,
                             "f32")
    assert expected[0, 0] == 1 + 2**-23
    assert np.float32(1.0 + float(a[0, 0]) * float(b[0, 0])) == 1.0  # the double rounding
    assert_same(run_dot(a, b, c, ("f32", "f32", "f32")), expected)


# -- the operator and the default accumulator ------------------------------------------------------


def make_matmul(a_name: str, b_name: str):
    a_dt, b_dt = tv.dtype(a_name), tv.dtype(b_name)
    out_dt = tv.dtype("i32" if a_dt.is_integer else "f32")

    @tv.kernel
    def matmul(a: tv.Global[a_dt, "m", "k"], b: tv.Global[b_dt, "k", "n"],
               d: tv.Global[out_dt, "m", "n"]):
        tv.launch(grid=1)
        tv.store(d, tv.load(a, (0, 0), (4, 64)) @ tv.load(b, (0, 0), (64, 4)), (0, 0))

    return matmul


@pytest.mark.parametrize(("a_name", "b_name"), [("i8", "u8"), ("f8e5m2", "f8e4m3fn"),
                                                ("f16", "f16"), ("f32", "f32")])
def test_the_operator_sums_from_zero_in_the_default_accumulator(a_name, b_name):
    rng = np.random.default_rng(5)
    if a_name in ("i8", "u8"):
        a = rng.integers(-128, 128, (4, 64)).astype(np.int8)
        b = rng.integers(0, 256, (64, 4)).astype(np.uint8)
        out = np.zeros((4, 4), np.int32)
        make_matmul(a_name, b_name)(a, b, out, device="interp")
        assert np.array_equal(out, a.astype(np.int64) @ b.astype(np.int64))
        return
    a, b = spread(rng, (4, 64), a_name), spread_k_major(rng, (64, 4), b_name)
    out = np.zeros((4, 4), np.float32)
    make_matmul(a_name, b_name)(a, b, out, device="interp")
    chunk = {"f8e5m2": 32, "f16": 16, "f32": 1}[a_name]
    expected = reference_dot(a.astype(np.float64), b.astype(np.float64), np.zeros((4, 4)), chunk,
                             "f32")
    assert_same(out, expected)

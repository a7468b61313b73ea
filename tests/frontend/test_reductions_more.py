"""Fuller reductions (issue 12 item 2): ``dtype=`` and the i32 default of narrow integer sums,
all axes at once, ``argmax``/``argmin``, the scans ``cumsum``/``cumprod``/``cummax``/``cummin``.

Every kernel runs on the interpreter and, through the conftest fixture, on the CPU backend and
through NVRTC for sm_80/sm_90; results are checked against numpy (float64 or wide integers)."""

from __future__ import annotations

import numpy as np
import pytest

import tilevm as tv
from tilevm.ir.dtypes import dtype
from tilevm.ir.host_tensor import HostTensor

i8, u8, i32, u32, f16, f32, u4, bf16 = (dtype(n) for n in ("i8", "u8", "i32", "u32", "f16", "f32",
                                                           "u4", "bf16"))


# -- (a) dtype= and the i32 default for narrow integer sums ----------------------------------------


@tv.kernel
def narrow_sums(x: tv.Global[i8, 64, 128], default: tv.Global[i32, 128],
                wide: tv.Global[i32, 64], narrow: tv.Global[i8, 64]):
    tv.launch(grid=1)
    t = tv.load(x, (0, 0), (64, 128))
    tv.store(default, tv.sum(t, 0), (0,))             # i8 accumulates in i32 by default
    tv.store(wide, tv.sum(t, 1, dtype=i32), (0,))     # the same, asked for
    tv.store(narrow, tv.sum(t, 1, dtype=i8), (0,))    # asked to wrap in i8


def test_narrow_integer_sum_accumulates_in_i32_by_default_and_dtype_chooses():
    rng = np.random.default_rng(1)
    x = rng.integers(-128, 128, (64, 128)).astype(np.int8)
    x[:, 0] = 100  # 64 × 100 wraps to 0 in i8, is 6400 in i32
    default = np.zeros(128, np.int32)
    wide = np.zeros(64, np.int32)
    narrow = np.zeros(64, np.int8)
    narrow_sums(x, default, wide, narrow)
    exact0, exact1 = x.astype(np.int64).sum(0), x.astype(np.int64).sum(1)
    assert default[0] == 6400
    np.testing.assert_array_equal(default, exact0)
    np.testing.assert_array_equal(wide, exact1)
    np.testing.assert_array_equal(narrow, ((exact1 + 128) % 256 - 128).astype(np.int8))


@tv.kernel
def unsigned_and_float_sums(x: tv.Global[u8, 8, 64], h: tv.Global[f16, 8, 64],
                            total: tv.Global[u32, 8], hsum: tv.Global[f32, 8]):
    tv.launch(grid=1)
    tv.store(total, tv.sum(tv.load(x, (0, 0), (8, 64)), 1), (0,))        # u8 → u32
    tv.store(hsum, tv.sum(tv.load(h, (0, 0), (8, 64)), 1, dtype=f32), (0,))


def test_unsigned_sum_accumulates_in_u32_and_f16_sums_into_f32():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (8, 64)).astype(np.uint8)
    h = (rng.standard_normal((8, 64)) * 1000).astype(np.float16)
    total = np.zeros(8, np.uint32)
    hsum = np.zeros(8, np.float32)
    unsigned_and_float_sums(x, h, total, hsum)
    np.testing.assert_array_equal(total, x.astype(np.int64).sum(1))
    # the interpreter's f32 sum is the exact sum rounded once to f32 (not to f16)
    exact = h.astype(np.float64).sum(1)
    np.testing.assert_allclose(hsum, exact, rtol=2 ** -23, atol=0)
    assert np.any(np.abs(exact - exact.astype(np.float16).astype(np.float64)) > 0)


def test_reduce_dtype_must_be_a_dtype():
    @tv.kernel
    def bad(x: tv.Global[i8, 64], y: tv.Global[i32, 1]):
        tv.launch(grid=1)
        tv.store(y, tv.sum(tv.load(x, (0,), (64,)), 0, dtype="i99")[None], (0,))

    with pytest.raises(tv.CompileError, match=r"tv\.sum: dtype"):
        bad(np.zeros(64, np.int8), np.zeros(1, np.int32), device="interp")


# -- (b) all axes at once -------------------------------------------------------------------------


@tv.kernel
def whole_tile(x: tv.Global[f32, 32, 64], q: tv.Global[i8, 32, 64], out: tv.Global[f32, 3],
               ints: tv.Global[i32, 2], rows: tv.Global[f32, 1, 1], cols: tv.Global[f32, 32, 1]):
    tv.launch(grid=1, warps=4)
    t = tv.load(x, (0, 0), (32, 64))
    s = tv.load(q, (0, 0), (32, 64))
    tv.store(out, tv.max(t), (0,))              # a scalar: every element
    tv.store(out, tv.sum(t), (1,))
    tv.store(out, tv.min(t, (1, 0)), (2,))      # a tuple of axes, in any order
    tv.store(ints, tv.sum(s), (0,))             # i8 → i32 over all 2048 elements
    tv.store(ints, tv.max(s, None, dtype=i32), (1,))
    tv.store(rows, tv.sum(t, keepdims=True), (0, 0))   # shape (1, 1)
    tv.store(cols, tv.max(t, (-1,), keepdims=True), (0, 0))


def test_reduction_over_all_axes():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((32, 64)).astype(np.float32)
    q = rng.integers(-128, 128, (32, 64)).astype(np.int8)
    q[0, 0] = 127
    out = np.zeros(3, np.float32)
    ints = np.zeros(2, np.int32)
    rows = np.zeros((1, 1), np.float32)
    cols = np.zeros((32, 1), np.float32)
    whole_tile(x, q, out, ints, rows, cols)
    exact = x.astype(np.float64).sum()
    assert out[0] == x.max() and out[2] == x.min()
    assert out[1] == np.float32(exact) and rows[0, 0] == np.float32(exact)
    np.testing.assert_array_equal(ints, [q.astype(np.int64).sum(), 127])
    np.testing.assert_array_equal(cols, x.max(1, keepdims=True))


@pytest.mark.parametrize(("axis", "message"), [((0, 0), "distinct"), (2, "axis 2 of a tile"),
                                               ((), "distinct")])
def test_reduction_axes_are_checked(axis, message):
    @tv.kernel
    def bad(x: tv.Global[f32, 4, 4], y: tv.Global[f32, 1], *, axes: tv.Const):
        tv.launch(grid=1)
        tv.store(y, tv.sum(tv.load(x, (0, 0), (4, 4)), axes), (0,))

    with pytest.raises(tv.CompileError, match=message):
        bad(np.zeros((4, 4), np.float32), np.zeros(1, np.float32), device="interp", axes=axis)


# -- (c) argmax / argmin ---------------------------------------------------------------------------


@tv.kernel
def arg_extremes(x: tv.Global[f32, 16, 64], q: tv.Global[i8, 16, 64], amax: tv.Global[i32, 16],
                 amin: tv.Global[i32, 64], qmax: tv.Global[i32, 16, 1], flat: tv.Global[i32, 2]):
    tv.launch(grid=1, warps=4)
    t = tv.load(x, (0, 0), (16, 64))
    s = tv.load(q, (0, 0), (16, 64))
    tv.store(amax, tv.argmax(t, 1), (0,))
    tv.store(amin, tv.argmin(t, 0), (0,))
    tv.store(qmax, tv.argmax(s, -1, keepdims=True), (0, 0))
    tv.store(flat, tv.argmax(t), (0,))      # the flat (row-major) index, as numpy
    tv.store(flat, tv.argmin(s), (1,))


def test_argmax_argmin_give_the_first_extreme_nan_counting_as_extreme():
    rng = np.random.default_rng(4)
    # few distinct values: many ties, whose first index must win
    x = rng.integers(-3, 4, (16, 64)).astype(np.float32)
    x[0, 10] = x[0, 50] = np.nan             # NaN is the maximum and the minimum (numpy)
    x[1, :] = 0.0
    x[1, 5] = -0.0                          # −0 ties with +0: index 0 wins both
    x[2, :] = -np.inf
    x[3, 7] = np.inf
    x[4, 3] = 7.0
    x[4, 60] = 7.0
    q = rng.integers(-4, 4, (16, 64)).astype(np.int8)
    q[5, :] = -128
    q[6, 63] = 127
    amax = np.zeros(16, np.int32)
    amin = np.zeros(64, np.int32)
    qmax = np.zeros((16, 1), np.int32)
    flat = np.zeros(2, np.int32)
    arg_extremes(x, q, amax, amin, qmax, flat)
    np.testing.assert_array_equal(amax, np.argmax(x, 1))
    np.testing.assert_array_equal(amin, np.argmin(x, 0))
    np.testing.assert_array_equal(qmax, np.argmax(q, 1)[:, None])
    np.testing.assert_array_equal(flat, [np.argmax(x), np.argmin(q)])
    assert amax[0] == 10 and amax[1] == 0 and amax[4] == 3 and flat[0] == 10


# -- (d) scans: cumsum, cumprod, cummax, cummin, inclusive and exclusive ---------------------------


def _exclusive(inclusive: np.ndarray, axis: int, start) -> np.ndarray:
    """numpy's inclusive scan shifted by one along ``axis``, ``start`` first."""
    first = np.full_like(np.take(inclusive, [0], axis=axis), start)
    rest = np.take(inclusive, np.arange(inclusive.shape[axis] - 1), axis=axis)
    return np.concatenate([first, rest], axis=axis)


@tv.kernel
def prefix_sum(x: tv.Global[i32, 32, 64], inclusive: tv.Global[i32, 32, 64],
               exclusive: tv.Global[i32, 32, 64]):
    """The prefix-sum kernel: each row's running total, with and without its own element."""
    tv.launch(grid=1, warps=4)
    t = tv.load(x, (0, 0), (32, 64))
    tv.store(inclusive, tv.cumsum(t, 1), (0, 0))
    tv.store(exclusive, tv.cumsum(t, 1, exclusive=True), (0, 0))


def test_prefix_sum_matches_numpy():
    x = np.random.default_rng(5).integers(-1000, 1000, (32, 64)).astype(np.int32)
    x[3, :] = 2**30  # wraps in i32, as numpy's int32 cumsum
    inclusive = np.zeros_like(x)
    exclusive = np.zeros_like(x)
    prefix_sum(x, inclusive, exclusive)
    want = np.cumsum(x, 1, dtype=np.int32)
    np.testing.assert_array_equal(inclusive, want)
    np.testing.assert_array_equal(exclusive, _exclusive(want, 1, 0))


@tv.kernel
def scans(q: tv.Global[i8, 64, 16], f: tv.Global[f32, 64, 16], h: tv.Global[f16, 16, 64],
          qsum: tv.Global[i32, 64, 16], qprod: tv.Global[i8, 64, 16],
          qmax: tv.Global[i8, 64, 16], fmin: tv.Global[f32, 64, 16],
          fmax_ex: tv.Global[f32, 64, 16], fsum: tv.Global[f32, 64, 16],
          hsum: tv.Global[f16, 16, 64], fprod: tv.Global[f32, 64, 16]):
    tv.launch(grid=1, warps=2)
    a = tv.load(q, (0, 0), (64, 16))
    b = tv.load(f, (0, 0), (64, 16))
    tv.store(qsum, tv.cumsum(a, 0), (0, 0))                     # i8 → i32, down the columns
    tv.store(qprod, tv.cumprod(a, 0, exclusive=True), (0, 0))   # wraps in i8
    tv.store(qmax, tv.cummax(a, -2), (0, 0))
    tv.store(fmin, tv.cummin(b, 0), (0, 0))
    tv.store(fmax_ex, tv.cummax(b, 0, exclusive=True), (0, 0))
    tv.store(fsum, tv.cumsum(b, 0), (0, 0))
    tv.store(hsum, tv.cumsum(tv.load(h, (0, 0), (16, 64)), 1), (0, 0))
    tv.store(fprod, tv.cumprod(b, 0), (0, 0))


def test_scans_against_numpy():
    rng = np.random.default_rng(6)
    q = rng.integers(-128, 128, (64, 16)).astype(np.int8)
    f = rng.standard_normal((64, 16)).astype(np.float32)
    f[5, 2] = np.nan                       # max/min ignore NaN
    f[:, 3] = -0.0
    f[7, 3] = 0.0                          # −0 below +0
    f[:, 4] = 1 + rng.standard_normal(64).astype(np.float32) * 2**-10   # a product that stays
    h = (rng.standard_normal((16, 64)) * 8).astype(np.float16)
    outs = [np.zeros((64, 16), t) for t in (np.int32, np.int8, np.int8, np.float32, np.float32,
                                             np.float32)]
    hsum = np.zeros((16, 64), np.float16)
    fprod = np.zeros((64, 16), np.float32)
    lowered = [np.zeros_like(o) for o in outs] + [np.zeros_like(hsum), np.zeros_like(fprod)]
    scans(q, f, h, *outs, hsum, fprod)
    scans(q, f, h, *lowered, device="cpu")
    qsum, qprod, qmax, fmin, fmax_ex, fsum = outs
    wide = q.astype(np.int64)
    np.testing.assert_array_equal(qsum, np.cumsum(wide, 0))
    np.testing.assert_array_equal(qprod, _exclusive(np.cumprod(wide, 0), 0, 1).astype(np.int8))
    np.testing.assert_array_equal(qmax, np.maximum.accumulate(q, 0))
    np.testing.assert_array_equal(fmin, np.fmin.accumulate(f, 0))
    np.testing.assert_array_equal(fmax_ex, _exclusive(np.fmax.accumulate(f, 0), 0, -np.inf))
    assert np.signbit(fmin[:7, 3]).all() and np.signbit(fmax_ex[1:8, 3]).all()
    assert not np.signbit(fmax_ex[8:, 3]).any() and np.signbit(fmin[8:, 3]).all()
    # float sums: each prefix's exact sum rounded once (the interpreter's definition)
    exact = np.cumsum(f.astype(np.float64), 0)
    finite = np.isfinite(exact)
    np.testing.assert_array_equal(fsum[finite], exact[finite].astype(np.float32))
    hexact = np.cumsum(h.astype(np.float64), 1)
    np.testing.assert_array_equal(hsum, hexact.astype(np.float16))
    # products: the float64 running product rounded once
    np.testing.assert_array_equal(fprod[:, 4], np.cumprod(f[:, 4].astype(np.float64)).astype(
        np.float32))
    # the lowering's float scans are within the bound of docs/numeric-contract.md: prefix k of
    # (k − 1)·2⁻²⁴·Σ|x| + 2u·|interpreter| + 2·tiny for sums, relative for products
    k = np.arange(1, 65, dtype=np.float64)
    for got, want, x, axis, u, tiny in ((lowered[5], fsum, f, 0, 2.0**-24, 2.0**-149),
                                        (lowered[6], hsum, h, 1, 2.0**-11, 2.0**-24)):
        ks = k[:, None] if axis == 0 else k[None, :]
        magnitude = np.cumsum(np.abs(x.astype(np.float64)), axis)
        bound = (ks - 1) * 2.0**-24 * magnitude + 2 * u * np.abs(want) + 2 * tiny
        ok = np.isfinite(want)
        assert np.all(np.abs(got[ok].astype(np.float64) - want[ok]) <= bound[ok])
    product = np.abs(np.cumprod(f[:, 4].astype(np.float64)))
    bound = ((k - 1) * 2.0**-24 + k * 2.0**-53) * 1.01 * product + 2 * 2.0**-24 * product
    assert np.all(np.abs(lowered[7][:, 4] - fprod[:, 4].astype(np.float64)) <= bound)
    assert np.any(lowered[5] != fsum)  # the bound is not vacuous: the orders do differ


@tv.kernel
def narrow_types(n: tv.Global[u4, 8, 32], b: tv.Global[bf16, 8, 32], nmax: tv.Global[u4, 8, 32],
                 nsum: tv.Global[u32, 8, 32], bmax: tv.Global[i32, 8],
                 bmin: tv.Global[bf16, 8, 32]):
    tv.launch(grid=1, warps=1)
    t = tv.load(n, (0, 0), (8, 32))
    s = tv.load(b, (0, 0), (8, 32))
    tv.store(nmax, tv.cummax(t, 1), (0, 0))                 # a packed 4-bit scan
    tv.store(nsum, tv.cumsum(t, 1), (0, 0))                 # u4 → u32
    tv.store(bmax, tv.argmax(s, 1), (0,))
    tv.store(bmin, tv.cummin(s, 1, exclusive=True), (0, 0))


def test_sub_byte_and_bf16_scans_and_argmax():
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 16, (8, 32))
    values = rng.integers(-4, 4, (8, 32)).astype(np.float64)
    values[2, 9] = np.nan
    n, b = HostTensor.from_bits(bits, u4), HostTensor.from_numpy(values, bf16)
    nmax, nsum = HostTensor.empty((8, 32), u4), np.zeros((8, 32), np.uint32)
    bmax, bmin = np.zeros(8, np.int32), HostTensor.empty((8, 32), bf16)
    narrow_types(n, b, nmax, nsum, bmax, bmin)
    np.testing.assert_array_equal(nmax.to_numpy(), np.maximum.accumulate(bits, 1))
    np.testing.assert_array_equal(nsum, np.cumsum(bits, 1))
    np.testing.assert_array_equal(bmax, np.argmax(values, 1))
    np.testing.assert_array_equal(bmin.to_numpy(),
                                  _exclusive(np.fmin.accumulate(values, 1), 1, np.inf))


@tv.kernel
def misused(x: tv.Global[f32, 4, 4], y: tv.Global[f32, 4, 4], *, case: tv.Const):
    tv.launch(grid=1)
    t = tv.load(x, (0, 0), (4, 4))
    if case == 0:
        tv.store(y, tv.cumsum(t, 2), (0, 0))
    elif case == 1:
        tv.store(y, tv.cummax(t, 0, exclusive=1), (0, 0))
    elif case == 2:
        tv.store(y, tv.argmax(t, (1, 1)), (0, 0))
    else:
        tv.store(y, tv.cumprod(t, 0, dtype="q7"), (0, 0))


@pytest.mark.parametrize(("case", "message"), [
    (0, r"tv\.cumsum: axis 2 of a tile of rank 2"),
    (1, r"tv\.cummax: exclusive must be bool"),
    (2, r"tv\.argmax: axis \(1, 1\) must name distinct axes"),
    (3, r"tv\.cumprod: dtype"),
])
def test_scan_and_arg_diagnostics_name_the_builtin(case, message):
    with pytest.raises(tv.CompileError, match=message):
        misused(np.zeros((4, 4), np.float32), np.zeros((4, 4), np.float32), device="interp",
                case=case)

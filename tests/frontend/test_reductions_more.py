"""Fuller reductions (issue 12 item 2): ``dtype=`` and the i32 default of narrow integer sums,
all axes at once, ``argmax``/``argmin``.

Every kernel runs on the interpreter and, through the conftest fixture, on the CPU backend and
through NVRTC for sm_80/sm_90; results are checked against numpy (float64 or wide integers)."""

from __future__ import annotations

import numpy as np
import pytest

import tilevm as tv
from tilevm.ir.dtypes import dtype

i8, u8, i32, u32, f16, f32 = (dtype(n) for n in ("i8", "u8", "i32", "u32", "f16", "f32"))


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

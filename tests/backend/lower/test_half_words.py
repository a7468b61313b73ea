"""16-bit tiles as f16x2/bf16x2 words: elementwise runs two elements at a time
(:mod:`tilevm.backend.lower.pair_ops`), and bounded vector accesses whose groups lie inside or
outside the tensor as a whole.

Oracles: numpy float16 and ml_dtypes bfloat16 (operations of two halves rounded once), and the
interpreter (the session runs every interpreter kernel on the CPU backend too, bit for bit, and
:func:`run_lowered` runs the lowering for a chosen target on the CPU backend).
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from test_casts_int import run_lowered

import tilevm as tv
from tilevm.ir.thread.printer import dump as print_kernel

SPECIALS = [0.0, -0.0, 1.0, -1.5, 65504.0, -65504.0, 6e-8, -6e-8, 6.1e-5, 0.1, np.inf, -np.inf,
            np.nan, 3.0, -2.0, 1024.5, 1e-39, -3e-39, 3e38, -3e38]
HALF = {"f16": np.float16, "bf16": ml_dtypes.bfloat16}


def _halves(rng: np.random.Generator, shape: tuple[int, int], t: type) -> np.ndarray:
    """Random half values with the special ones spread over them."""
    with np.errstate(over="ignore"):
        specials = np.array(SPECIALS, np.float32).astype(t)
        x = (rng.standard_normal(shape) * 100).astype(t)
    flat = x.reshape(-1)
    flat[rng.choice(flat.size, specials.size * 3, replace=False)] = np.tile(specials, 3)
    return x


def _arith(half):
    @tv.kernel
    def half_arith(x: tv.Global[half, "r", "c"], y: tv.Global[half, "r", "c"],
                   z: tv.Global[half, "r", "c"], out: tv.Global[half, 8, "r", "c"]):
        tv.launch(grid=1, warps=1)
        layout = tv.spatial(8, 4) * tv.local(1, 8)
        a = tv.load(x, (0, 0), (8, 32), layout=layout)
        b = tv.load(y, (0, 0), (8, 32), layout=layout)
        e = tv.load(z, (0, 0), (8, 32), layout=layout)
        tv.store(out, tv.reshape(a + b, (1, 8, 32)), (0, 0, 0))
        tv.store(out, tv.reshape(a - b, (1, 8, 32)), (1, 0, 0))
        tv.store(out, tv.reshape(a * b, (1, 8, 32)), (2, 0, 0))
        tv.store(out, tv.reshape(tv.fma(a, b, e), (1, 8, 32)), (3, 0, 0))
        tv.store(out, tv.reshape(tv.minimum(a, b), (1, 8, 32)), (4, 0, 0))
        tv.store(out, tv.reshape(tv.maximum(a, b), (1, 8, 32)), (5, 0, 0))
        tv.store(out, tv.reshape(-a, (1, 8, 32)), (6, 0, 0))
        tv.store(out, tv.reshape(abs(b), (1, 8, 32)), (7, 0, 0))

    return half_arith


_PAIR_OPS = {("f16", 80): ("add.rn.f16x2", "sub.rn.f16x2", "mul.rn.f16x2", "fma.rn.f16x2"),
             ("bf16", 80): ("fma.rn.bf16x2",),
             ("bf16", 90): ("add.rn.bf16x2", "sub.rn.bf16x2", "mul.rn.bf16x2", "fma.rn.bf16x2")}


@pytest.mark.parametrize("half,target", sorted(_PAIR_OPS))
def test_half_arithmetic_goes_by_words_and_rounds_each_half_as_the_scalar_operation(half,
                                                                                     target):
    t = HALF[half]
    rng = np.random.default_rng(5)
    x, y, z = (_halves(rng, (8, 32), t) for _ in range(3))
    out = np.zeros((8, 8, 32), t)
    kernel = _arith(tv.dtype(half))
    lowered = run_lowered(kernel, target, x, y, z, out)
    text = print_kernel(lowered.thread)
    for op in (*_PAIR_OPS[(half, target)], f"min.{half}x2", f"max.{half}x2"):
        assert op in text, op
    assert f" {half} = " not in text  # no element is taken out of its word
    # Two halves' sum, difference or product rounded once from f32 is rounded once (f32 has
    # more than twice their bits plus two).
    a, b = x.astype(np.float32), y.astype(np.float32)
    with np.errstate(all="ignore"):
        want = [a + b, a - b, a * b, None, np.fmin(a, b), np.fmax(a, b), -a, abs(b)]
    for k, w in enumerate(want):
        if w is None:
            continue
        w = w.astype(t)
        got = out[k]
        nan = np.isnan(got.astype(np.float32))
        same = (got.view(np.uint16) == w.view(np.uint16)) | (nan & np.isnan(w.astype(np.float32)))
        if k in (4, 5):  # min/max of +0 and -0 may give either zero
            same |= (got.astype(np.float32) == 0) & (w.astype(np.float32) == 0)
        assert same.all(), (k, x[~same], y[~same], got[~same], w[~same])
    again = np.zeros_like(out)
    kernel(x, y, z, again, device="interp")  # the session checks the CPU backend against it
    nan = np.isnan(out.astype(np.float32))
    assert np.array_equal(np.isnan(again.astype(np.float32)), nan)
    assert np.array_equal(again.view(np.uint16)[~nan], out.view(np.uint16)[~nan])


def _narrowing(half):
    @tv.kernel
    def narrow(x: tv.Global[tv.f32, "r", "c"], out: tv.Global[half, "r", "c"]):
        tv.launch(grid=1, warps=1)
        a = tv.load(x, (0, 0), (8, 32), layout=tv.spatial(8, 4) * tv.local(1, 8))
        tv.store(out, tv.cast(a, half), (0, 0))

    return narrow


@pytest.mark.parametrize("half,target", [("f16", 80), ("bf16", 90)])
def test_f32_to_half_casts_write_pairs(half, target):
    rng = np.random.default_rng(9)
    x = (rng.standard_normal((8, 32)) * 1e3).astype(np.float32)
    x.reshape(-1)[:8] = [np.nan, np.inf, -np.inf, 1e30, -0.0, 65520.0, 1.0 + 2**-11, 3e-8]
    t = np.float16 if half == "f16" else ml_dtypes.bfloat16
    out = np.zeros((8, 32), t)
    lowered = run_lowered(_narrowing(tv.dtype(half)), target, x, out)
    assert f"cvt.rn.{half}x2.f32" in print_kernel(lowered.thread)
    want = x.astype(t)
    nan = np.isnan(want.astype(np.float32))
    assert np.array_equal(np.isnan(out.astype(np.float32)), nan)
    assert np.array_equal(out.view(np.uint16)[~nan], want.view(np.uint16)[~nan])


@tv.kernel
def shifted_copy(x: tv.Global[tv.f16, "r", "c"], y: tv.Global[tv.f16, "r", "c"], *,
                 c0: tv.Const = 32):
    tv.launch(grid=1, warps=1)
    a = tv.load(x, (0, c0), (8, 64), layout=tv.spatial(8, 4) * tv.local(1, 16), other=-1.0)
    tv.store(y, a + 1.0, (0, c0))


def test_groups_inside_or_outside_as_a_whole_need_no_element_code():
    """c = 48 is a multiple of 16 and of the 8-element vectors: at columns 32…95 each vector is
    inside or outside the tensor, so the edge takes no element-wise path; at c = 50 it must."""
    rng = np.random.default_rng(2)
    for c, whole in ((48, True), (50, False)):
        x = rng.standard_normal((8, c)).astype(np.float16)
        y = np.zeros((8, c), np.float16)
        lowered = run_lowered(shifted_copy, 80, x, y)
        want = np.zeros((8, c), np.float16)
        want[:, 32:] = x[:, 32:] + np.float16(1.0)
        assert np.array_equal(y, want)
        text = print_kernel(lowered.thread)
        assert ("ld.global.u16" not in text and "st.global.u16" not in text) == whole, c
        again = np.zeros((8, c), np.float16)
        shifted_copy(x, again, device="interp")
        assert np.array_equal(again, want)

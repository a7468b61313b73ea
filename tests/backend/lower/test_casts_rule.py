"""The ``cast`` rule around the word sequences: a dequantization chain ``(cast(q) − z)·s`` stays
one loop over the thread's groups, partial groups at the end of a thread's elements, a cast whose
operand the same run computes, and a multiply by an e8m0 scale (built from the code, not
decoded).

Oracles: numpy/ml_dtypes in float64 rounded once, and the interpreter (the session runs every
interpreter kernel on the CPU backend too, lowered for sm_80, bit for bit; :func:`run_lowered`
runs the sm_90 lowering)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from test_casts_int import run_lowered

import tilevm as tv
from tilevm.backend.lower.casts import group_size
from tilevm.ir.thread.printer import dump

HALF = {"f16": np.float16, "bf16": ml_dtypes.bfloat16}


def _dequant_kernel(src, half):
    @tv.kernel
    def dequant(q: tv.Global[src, "r", "c"], z: tv.Global[half, "r", 1],
                s: tv.Global[half, "r", 1], out: tv.Global[half, "r", "c"]):
        tv.launch(grid=tv.cdiv(r, 4), warps=1)
        o = tv.block_idx() * 4
        layout = tv.spatial(4, 8) * tv.local(1, 16)
        codes = tv.load(q, (o, 0), (4, 128), layout=layout)
        zero = tv.load(z, (o, 0), (4, 1))
        scale = tv.load(s, (o, 0), (4, 1))
        tv.store(out, (tv.cast(codes, half) - zero) * scale, (o, 0))

    return dequant


@pytest.mark.parametrize("src,half,target", [("u4", "f16", 80), ("i3", "bf16", 80),
                                             ("u8", "bf16", 90), ("i4", "f16", 90)])
def test_scales_and_zero_points_fuse_around_the_word_cast(src, half, target):
    dt, ht = tv.dtype(src), tv.dtype(half)
    rows = 6
    rng = np.random.default_rng(7)
    codes = rng.integers(0, 1 << dt.nbits, (rows, 128))
    z = rng.integers(-4, 5, (rows, 1)).astype(HALF[half])
    s = (rng.integers(1, 64, (rows, 1)) / 16).astype(HALF[half])
    out = np.zeros((rows, 128), HALF[half])
    lowered = run_lowered(_dequant_kernel(dt, ht), target, tv.HostTensor.from_bits(codes, dt), z,
                          s, out)
    values = dt.decode(codes).astype(np.float64)
    t = HALF[half]
    want = ((values.astype(t).astype(np.float64) - z.astype(np.float64)).astype(t).astype(
        np.float64) * s.astype(np.float64)).astype(t)
    assert np.array_equal(out.view(np.uint16), want.view(np.uint16))
    # One loop: the cast's and the difference's elements never reach a register array. Half
    # tiles are f16x2/bf16x2 words: z and s one word each, the result (16 halves) 8 words, and
    # no other array of 8 words (the codes take 2 to 4, a group's pairs 2, 4 or 16).
    arrays = [a for a in lowered.thread.arrays if a.type.name == "b32" and a.length in (1, 8)
              and not a.name.startswith("magic")]
    assert sorted(a.length for a in arrays) == [1, 1, 8], [(a.name, a.type, a.length)
                                                           for a in arrays]
    # And the interpreter agrees (the session checks the CPU backend against it too).
    again = np.zeros_like(out)
    _dequant_kernel(dt, ht)(tv.HostTensor.from_bits(codes, dt), z, s, again, device="interp")
    assert np.array_equal(again.view(np.uint16), out.view(np.uint16))


def _partial_kernel(src, per_thread: int):
    @tv.kernel
    def cast_some(q: tv.Global[src, "n"], h: tv.Global[tv.f16, "n"], b: tv.Global[tv.bf16, "n"]):
        tv.launch(grid=1, warps=1)
        codes = tv.load(q, (0,), (32 * per_thread,), layout=tv.spatial(32) * tv.local(per_thread))
        tv.store(h, tv.cast(codes, tv.f16), (0,))
        tv.store(b, tv.cast(codes, tv.bf16), (0,))

    return cast_some


@pytest.mark.parametrize("name,per_thread", [("u3", 40), ("i5", 8), ("u8", 6), ("i1", 48),
                                              ("u6", 20), ("i2", 4)])
def test_partial_groups_convert_only_what_exists(name, per_thread):
    """A thread's count that is not a multiple of the group: the last group is partial (its
    missing words read as zeros), or the only one."""
    dt = tv.dtype(name)
    assert per_thread % group_size(dt)
    rng = np.random.default_rng(per_thread)
    n = 32 * per_thread - 5  # the tensor ends inside the last thread's elements
    codes = rng.integers(0, 1 << dt.nbits, n)
    h = np.zeros(n, np.float16)
    b = np.zeros(n, ml_dtypes.bfloat16)
    _partial_kernel(dt, per_thread)(tv.HostTensor.from_bits(codes, dt), h, b, device="interp")
    values = dt.decode(codes).astype(np.float64)
    assert np.array_equal(h.astype(np.float64), values)
    assert np.array_equal(b.astype(np.float64), values)
    for target in (80, 90):
        h2, b2 = np.zeros_like(h), np.zeros_like(b)
        run_lowered(_partial_kernel(dt, per_thread), target, tv.HostTensor.from_bits(codes, dt),
                    h2, b2)
        assert np.array_equal(h2.view(np.uint16), h.view(np.uint16))
        assert np.array_equal(b2.view(np.uint16), b.view(np.uint16))


@tv.kernel
def _shifted_then_cast(q: tv.Global[tv.u4, "n"], zq: tv.Global[tv.i8, "n"],
                       out: tv.Global[tv.f16, "n"]):
    tv.launch(grid=1, warps=1)
    layout = tv.spatial(32) * tv.local(8)
    centered = tv.cast(tv.load(q, (0,), (256,), layout=layout), tv.i8) - tv.load(
        zq, (0,), (256,), layout=layout)
    tv.store(out, tv.cast(centered, tv.f16) * 0.25, (0,))


def test_a_cast_of_a_value_the_run_computes():
    """The run is cut before the cast: its operand (an i8 tile) is written out as words."""
    rng = np.random.default_rng(11)
    codes = rng.integers(0, 16, 256)
    zq = rng.integers(-128, 128, 256).astype(np.int8)
    out = np.zeros(256, np.float16)
    _shifted_then_cast(tv.HostTensor.from_bits(codes, tv.u4), zq, out, device="interp")
    centered = ((codes - zq.astype(np.int64) + 128) % 256) - 128  # i8 wraps
    assert np.array_equal(out, (centered * 0.25).astype(np.float16))


def _scaled_kernel(half):
    @tv.kernel
    def scaled(x: tv.Global[half, "n"], e: tv.Global[tv.f8e8m0fnu, "n"],
               y: tv.Global[half, "n"]):
        tv.launch(grid=tv.cdiv(n, 256), warps=1)
        o = tv.block_idx() * 256
        layout = tv.spatial(32) * tv.local(8)
        values = tv.load(x, (o,), (256,), layout=layout)
        codes = tv.load(e, (o,), (256,), layout=layout)
        tv.store(y, values * tv.cast(codes, half), (o,))

    return scaled


def _special_values(half: str) -> np.ndarray:
    t = HALF[half]
    info = np.finfo(np.float16) if half == "f16" else ml_dtypes.finfo(ml_dtypes.bfloat16)
    tiny = float(info.smallest_subnormal)
    return np.array([0.0, -0.0, 1.0, -1.5, tiny, -tiny, 3 * tiny, float(info.smallest_normal),
                     float(info.max), -float(info.max), 0.7, 1000.0, np.inf, -np.inf, np.nan,
                     float(info.smallest_normal) * 0.75], dtype=t)


@pytest.mark.parametrize("half", ["f16", "bf16"])
def test_multiplying_by_an_e8m0_scale_rounds_as_the_interpreter(half):
    """Every scale code against zeros, subnormals, the largest values, inf and NaN: results
    that overflow to inf, fall to subnormals or zero, and NaN codes, for sm_80 and sm_90 (bf16:
    ``fma`` with −0 there, ``mul`` here)."""
    xs = _special_values(half)
    codes = np.repeat(np.arange(256), len(xs))
    x = np.tile(xs, 256)
    ht = tv.dtype(half)
    y = np.zeros_like(x)
    _scaled_kernel(ht)(x, tv.HostTensor.from_bits(codes, tv.f8e8m0fnu), y, device="interp")
    scale = ml_dtypes.float8_e8m0fnu
    with np.errstate(over="ignore", invalid="ignore"):  # inf and NaN are wanted here
        factor = codes.astype(np.uint8).view(scale).astype(np.float64).astype(HALF[half])
        want = (x.astype(np.float64) * factor.astype(np.float64)).astype(HALF[half])
    same = (np.isnan(y.astype(np.float64)) & np.isnan(want.astype(np.float64))) | (
        y.view(np.uint16) == want.view(np.uint16))
    assert same.all(), np.nonzero(~same)[0][:5]
    y90 = np.zeros_like(x)
    lowered = run_lowered(_scaled_kernel(ht), 90, x, tv.HostTensor.from_bits(codes,
                                                                          tv.f8e8m0fnu), y90)
    same = (np.isnan(y90.astype(np.float64)) & np.isnan(want.astype(np.float64))) | (
        y90.view(np.uint16) == want.view(np.uint16))
    assert same.all(), np.nonzero(~same)[0][:5]
    text = str(lowered.thread)
    assert "0x7fffffff" not in text  # e8m0 is not decoded to f32 (decode_narrow's NaN)
    assert ("mul.rn.bf16 " if half == "bf16" else "mul.rn.f16 ") in text


def _offset_kernel(src, half, c: float, add: bool):
    @tv.kernel
    def offset(q: tv.Global[src, "n"], out: tv.Global[half, "n"]):
        tv.launch(grid=1, warps=1)
        codes = tv.load(q, (0,), (32 * 16,), layout=tv.spatial(32) * tv.local(16))
        tv.store(out, c + tv.cast(codes, half) if add else tv.cast(codes, half) - c, (0,))

    return offset


_PAIR_STEPS = ("add.rn.f16x2", "add.rn.bf16x2", "fma.rn.bf16x2", "sub.rn", "add.rn.f16 ",
               "fma.rn.bf16 ")


@pytest.mark.parametrize("src,half,target,c,add,joined", [
    ("u4", "f16", 80, 8.0, False, True), ("i3", "f16", 90, -2.0, True, True),
    ("u8", "f16", 80, 100.0, False, True), ("i8", "f16", 90, 3.0, True, True),
    ("u4", "bf16", 80, 8.0, False, True), ("u5", "bf16", 90, 3.0, True, True),
    ("u4", "f16", 80, 1000.5, False, False),  # 1024 + 1000.5 is not exact in f16
    ("i8", "f16", 80, 0.25, True, False),  # nor 1024 + 128 - 0.25
    ("u8", "bf16", 80, 8.0, False, False)])  # its addends are computed: nothing to join
def test_a_constant_subtracted_after_a_cast_joins_its_sequence(src, half, target, c, add,
                                                               joined):
    """``cast(q) − c`` (or ``c + cast(q)``): the sequence's last subtraction takes ``c`` where
    the joint constant is exact (one pair step per word, no second one), each element
    ``code − c`` rounded once either way; numpy (float64, rounded once) is the oracle."""
    dt, t = tv.dtype(src), HALF[half]
    codes = np.arange(32 * 16) % (1 << dt.nbits)
    out = np.zeros(32 * 16, t)
    kernel = _offset_kernel(dt, tv.dtype(half), c, add)
    lowered = run_lowered(kernel, target, tv.HostTensor.from_bits(codes, dt), out)
    values = dt.decode(codes).astype(np.float64)
    c_half = float(np.array(c, t))  # the constant as the half it becomes
    want = ((values + c_half) if add else (values - c_half)).astype(np.float32).astype(t)
    assert np.array_equal(out.view(np.uint16), want.view(np.uint16)), (codes, out, want)
    text = dump(lowered.thread)
    steps = sum(text.count(op) for op in _PAIR_STEPS)
    assert (steps == 1) == joined, text
    again = np.zeros_like(out)
    kernel(tv.HostTensor.from_bits(codes, dt), again, device="interp")
    assert np.array_equal(again.view(np.uint16), out.view(np.uint16))

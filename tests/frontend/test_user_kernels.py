"""Kernels as LLM-serving and vision users write them, run on the interpreter and held to float64
numpy references under the accuracy rule (DESIGN §8), on shapes that are not multiples of the
tiles: fused attention, asymmetric W4A16, fp8 GEMM, grouped convolution, RMSNorm with int8
quantization, sub-byte stores whose edge bytes blocks share, split-K with atomics."""

import importlib.util
import itertools
import sys

import ml_dtypes
import numpy as np
import pytest

import tilevm as tv
from tilevm import bf16, f4e2m1fn, f8e4m3fn, f8e8m0fnu, f16, f32, i8, i32, u4
from tilevm.backend.interp import run
from tilevm.frontend.arguments import bind_arguments
from tilevm.ir.host_tensor import HostTensor


def assert_accurate(ours, ref, base, out_dtype):
    """DESIGN §8: max|ours − ref| ≤ 2·max|base − ref| + u·max|ref|."""
    ours, base = np.asarray(ours, np.float64), np.asarray(base, np.float64)
    error = np.max(np.abs(ours - ref))
    bound = 2 * np.max(np.abs(base - ref)) + out_dtype.unit_roundoff * np.max(np.abs(ref))
    assert error <= bound, f"error {error:.3g} exceeds the accuracy bound {bound:.3g}"


def run_in_order(kernel, args, order, **constants):
    """Run on the interpreter with blocks in ``order`` (as a GPU may schedule them)."""
    ir = kernel.ir(**constants)
    bound = bind_arguments(ir, args)
    run(ir, bound.tensors, bound.scalars, bound.dims, block_order=order)
    bound.finish()


# -- 1. fused attention forward, one head, online softmax ------------------------------------------


@tv.kernel
def attention(q: tv.Global[f16, "sq", "d"], k: tv.Global[f16, "sk", "d"],
              v: tv.Global[f16, "sk", "d"], o: tv.Global[f16, "sq", "d"], scale: tv.Scalar[f32],
              *, bm: tv.Const = 16, bn: tv.Const = 16, hd: tv.Const = 32, causal: tv.Const = True):
    tv.launch(grid=tv.cdiv(sq, bm), warps=4)
    row0 = tv.block_idx() * bm
    qt = tv.load(q, (row0, 0), (bm, hd))  # head dims past d read 0: they add nothing to q·k
    m_i = tv.full((bm,), float("-inf"), f32)  # running row max
    l_i = tv.zeros((bm,), f32)  # running row sum of exp(s - m_i)
    acc = tv.zeros((bm, hd), f32)
    rows = row0 + tv.arange(0, bm)
    # Causal: key blocks past the block's last row are all masked; the first key is never masked,
    # so m_i is finite after the first step and exp(m_i - m_new) never sees inf - inf.
    end = min(sk, row0 + bm) if causal else sk
    for n0 in tv.range(0, end, bn):
        kt = tv.load(k, (n0, 0), (bn, hd))
        s = tv.dot(qt, kt.T) * scale  # no accumulator: summed from zero in f32
        cols = n0 + tv.arange(0, bn)
        valid = cols[None, :] < sk
        if causal:
            valid = valid & (cols[None, :] <= rows[:, None])
        s = tv.where(valid, s, float("-inf"))
        m_new = tv.maximum(m_i, tv.max(s, 1))
        p = tv.exp(s - m_new[:, None])
        alpha = tv.exp(m_i - m_new)  # rescales what was accumulated under the old max
        l_i = l_i * alpha + tv.sum(p, 1)
        acc = tv.dot(tv.cast(p, f16), tv.load(v, (n0, 0), (bn, hd)), acc * alpha[:, None])
        m_i = m_new
    tv.store(o, tv.cast(acc / l_i[:, None], f16), (row0, 0))


@pytest.mark.parametrize(("causal", "sq", "sk"), [(True, 37, 37), (False, 21, 45)])
def test_fused_attention_with_online_softmax(causal, sq, sk):
    rng = np.random.default_rng(sq)
    d = 24
    q, k, v = (rng.standard_normal((n, d)).astype(np.float16) for n in (sq, sk, sk))
    scale = 1 / np.sqrt(d)
    o = np.zeros((sq, d), np.float16)
    attention(q, k, v, o, scale, device="interp", causal=causal)

    allowed = np.arange(sk)[None, :] <= np.arange(sq)[:, None] if causal else np.ones((sq, sk),
                                                                                      bool)

    def softmax_rows(s):
        s = np.where(allowed, s, -np.inf)
        e = np.exp(s - s.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    q64, k64, v64 = (x.astype(np.float64) for x in (q, k, v))
    ref = softmax_rows(q64 @ k64.T * scale) @ v64
    p32 = softmax_rows(q.astype(np.float32) @ k.astype(np.float32).T * np.float32(scale))
    base = (p32.astype(np.float16).astype(np.float32) @ v.astype(np.float32)).astype(np.float16)
    assert_accurate(o, ref, base, f16)


# -- 2. W4A16 with asymmetric quantization ---------------------------------------------------------


@tv.kernel
def w4a16_asym(x: tv.Global[f16, "m", "k"], w: tv.Global[u4, "n", "k"],
               scales: tv.Global[f16, "n", "groups"], zeros: tv.Global[u4, "n", "groups"],
               y: tv.Global[f16, "m", "n"], *, bm: tv.Const = 16, bn: tv.Const = 16,
               group: tv.Const = 16):
    tv.launch(grid=(tv.cdiv(m, bm), tv.cdiv(n, bn)))
    i, j = tv.block_idx()
    acc = tv.zeros((bm, bn), f32)
    for k0 in tv.range(0, k, group):
        g = k0 // group
        a = tv.load(x, (i * bm, k0), (bm, group))
        codes = tv.load(w, (j * bn, k0), (bn, group))
        s = tv.load(scales, (j * bn, g), (bn, 1))
        z = tv.load(zeros, (j * bn, g), (bn, 1))  # u4 zero points: rows start mid-byte
        weights = (tv.cast(codes, f16) - tv.cast(z, f16)) * s  # code - zero is exact in f16
        acc = tv.dot(a, weights.T, acc)
    tv.store(y, tv.cast(acc, f16), (i * bm, j * bn))


def test_w4a16_gemm_with_scales_and_zero_points():
    rng = np.random.default_rng(2)
    m, n, k, group = 19, 27, 72, 16
    groups = -(-k // group)  # 5 groups: a row of zero points is 20 bits
    x = rng.standard_normal((m, k)).astype(np.float16)
    codes = rng.integers(0, 16, (n, k))
    zero_codes = rng.integers(0, 16, (n, groups))
    scales = rng.uniform(0.01, 0.1, (n, groups)).astype(np.float16)
    y = np.zeros((m, n), np.float16)
    w4a16_asym(x, HostTensor.from_bits(codes, u4), scales, HostTensor.from_bits(zero_codes, u4),
               y, device="interp", group=group)

    per_column = np.repeat(np.arange(groups), group)[:k]
    w_real = (codes - zero_codes[:, per_column]) * scales.astype(np.float64)[:, per_column]
    ref = x.astype(np.float64) @ w_real.T
    base = (x.astype(np.float32) @ w_real.astype(np.float16).astype(np.float32).T)
    assert_accurate(y, ref, base.astype(np.float16), f16)


# -- 3. fp8 x fp8 GEMM, per-tensor scale, bf16 out -------------------------------------------------


@tv.kernel
def fp8_gemm(a: tv.Global[f8e4m3fn, "m", "k"], b: tv.Global[f8e4m3fn, "n", "k"],
             c: tv.Global[bf16, "m", "n"], scale: tv.Scalar[f32],
             *, bm: tv.Const = 16, bn: tv.Const = 16, bk: tv.Const = 32):
    tv.launch(grid=(tv.cdiv(m, bm), tv.cdiv(n, bn)))
    i, j = tv.block_idx()
    acc = tv.zeros((bm, bn), f32)
    for k0 in tv.range(0, k, bk):
        acc = tv.dot(tv.load(a, (i * bm, k0), (bm, bk)), tv.load(b, (j * bn, k0), (bn, bk)).T,
                     acc)
    tv.store(c, tv.cast(acc * scale, bf16), (i * bm, j * bn))


def test_fp8_gemm_with_a_per_tensor_scale_and_bf16_output():
    rng = np.random.default_rng(3)
    m, n, k, scale = 23, 18, 70, 0.05
    a = (4 * rng.standard_normal((m, k))).astype(ml_dtypes.float8_e4m3fn)
    b = (4 * rng.standard_normal((n, k))).astype(ml_dtypes.float8_e4m3fn)
    c = np.zeros((m, n), ml_dtypes.bfloat16)
    fp8_gemm(a, b, c, scale, device="interp")
    ref = a.astype(np.float64) @ b.astype(np.float64).T * scale
    base = (a.astype(np.float32) @ b.astype(np.float32).T * np.float32(scale))
    assert_accurate(c, ref, base.astype(ml_dtypes.bfloat16), bf16)


# -- 4. grouped 3x3 convolution as an implicit GEMM ------------------------------------------------


@tv.kernel
def grouped_conv3x3(x: tv.Global[f16, "batch", "h", "w", "c"],
                    weight: tv.Global[f16, "c", 3, 3, "cg"],
                    y: tv.Global[f16, "batch", "h", "w", "c"],
                    *, bh: tv.Const = 4, bw: tv.Const = 8, g: tv.Const = 8):
    """NHWC, stride 1, padding 1, groups of ``g`` channels; weights are (c_out, 3, 3, g)."""
    tv.launch(grid=(batch * tv.cdiv(h, bh), tv.cdiv(w, bw), c // g))
    bi, wj, grp = tv.block_idx()
    nb = bi // tv.cdiv(h, bh)
    h0 = (bi % tv.cdiv(h, bh)) * bh
    w0 = wj * bw
    # M = the block's bh x bw pixels, N = the group's output channels, K = 3 x 3 x g.
    acc = tv.zeros((bh * bw, g), f32)
    for r in range(3):  # compile-time loops: nine shifted tiles
        for s in range(3):
            # The halo reads outside the image: masked loads give the zero padding.
            pixels = tv.load(x, (nb, h0 + r - 1, w0 + s - 1, grp * g), (1, bh, bw, g))
            taps = tv.load(weight, (grp * g, r, s, 0), (g, 1, 1, g))
            acc = tv.dot(tv.reshape(pixels, (bh * bw, g)), tv.reshape(taps, (g, g)).T, acc)
    tv.store(y, tv.reshape(tv.cast(acc, f16), (1, bh, bw, g)), (nb, h0, w0, grp * g))


def test_grouped_convolution_as_an_implicit_gemm():
    rng = np.random.default_rng(4)
    batch, h, w, c, g = 2, 7, 11, 24, 8
    x = rng.standard_normal((batch, h, w, c)).astype(np.float16)
    weight = rng.standard_normal((c, 3, 3, g)).astype(np.float16)
    y = np.zeros_like(x)
    grouped_conv3x3(x, weight, y, device="interp")

    def conv(xv, wv):
        padded = np.pad(xv, ((0, 0), (1, 1), (1, 1), (0, 0)))
        out = np.zeros(x.shape, xv.dtype)
        for grp in range(c // g):
            ch = slice(grp * g, (grp + 1) * g)
            for r in range(3):
                for s in range(3):
                    out[..., ch] += padded[:, r:r + h, s:s + w, ch] @ wv[ch, r, s, :].T
        return out

    ref = conv(x.astype(np.float64), weight.astype(np.float64))
    base = conv(x.astype(np.float32), weight.astype(np.float32)).astype(np.float16)
    assert_accurate(y, ref, base, f16)


def test_a_fixed_size_in_an_annotation_is_checked_at_call_time():
    assert grouped_conv3x3.ir().param("weight").type.shape == ("c", 3, 3, "cg")
    x = np.zeros((1, 4, 4, 8), np.float16)
    with pytest.raises(ValueError, match=r"argument 'weight': shape \(8, 3, 2, 8\) does not "
                                         r"match \[c, 3, 3, cg\] \(a dimension fixed to 3 is 2\)"):
        grouped_conv3x3(x, np.zeros((8, 3, 2, 8), np.float16), x.copy(), device="interp")
    with pytest.raises(TypeError, match=r"a positive int \(a fixed size\), got 0"):
        tv.Global[f16, "m", 0]


# -- 5. RMSNorm, then int8 quantization per row ----------------------------------------------------


@tv.kernel
def rmsnorm_int8(x: tv.Global[f16, "m", "n"], weight: tv.Global[f16, "n"],
                 q: tv.Global[i8, "m", "n"], scales: tv.Global[f32, "m"],
                 *, rows: tv.Const = 4, width: tv.Const = 64, eps: tv.Const = 1e-6):
    tv.launch(grid=tv.cdiv(m, rows))
    r0 = tv.block_idx() * rows
    t = tv.cast(tv.load(x, (r0, 0), (rows, width)), f32)  # columns past n read 0
    mean_square = tv.sum(t * t, 1, keepdims=True) / tv.cast(n, f32)
    y = t * tv.rsqrt(mean_square + eps) * tv.cast(tv.load(weight, (0,), (width,)), f32)[None, :]
    scale = tv.maximum(tv.max(abs(y), 1, keepdims=True), 1e-8) / 127.0
    tv.store(q, tv.cast(round(y / scale), i8), (r0, 0))  # round() ties to even, then exact cast
    tv.store(scales, tv.reshape(scale, (rows,)), (r0,))


def test_rmsnorm_then_row_wise_int8_quantization():
    rng = np.random.default_rng(5)
    m, n = 13, 50
    x = rng.standard_normal((m, n)).astype(np.float16)
    weight = rng.uniform(0.5, 1.5, n).astype(np.float16)
    q = np.zeros((m, n), np.int8)
    scales = np.zeros(m, np.float32)
    rmsnorm_int8(x, weight, q, scales, device="interp")

    x64 = x.astype(np.float64)
    y = x64 / np.sqrt((x64 ** 2).mean(1, keepdims=True) + 1e-6) * weight
    ref_scale = np.abs(y).max(1) / 127
    x32 = x.astype(np.float32)
    y32 = x32 / np.sqrt((x32 ** 2).mean(1, keepdims=True) + np.float32(1e-6)) * weight
    assert_accurate(scales, ref_scale, np.abs(y32).max(1) / np.float32(127), f32)
    # Each code is y / scale rounded to the nearest integer: off by at most half a step (and the
    # f32 rounding of y / scale), and the row's largest magnitude is exactly ±127.
    assert np.max(np.abs(q - y / ref_scale[:, None])) <= 0.5 + 1e-4
    assert np.array_equal(np.abs(q).max(1), np.full(m, 127))


@tv.kernel
def rounding(x: tv.Global[f32, "n"], a: tv.Global[i32, "n"], b: tv.Global[f32, "n"]):
    tv.launch(grid=1)
    t = tv.load(x, (0,), (16,))
    tv.store(a, tv.cast(round(t), i32), (0,))
    tv.store(b, tv.rint(t), (0,))


def test_round_and_rint_round_half_to_even_where_cast_truncates():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4999998, 7.5, -7.5, 1e9 + 0.5, 3.7, -3.7],
                 np.float32)
    a, b = np.zeros(len(x), np.int32), np.zeros(len(x), np.float32)
    rounding(x, a, b, device="interp")
    expected = [round(float(v)) for v in x]  # Python's round: to nearest, ties to even
    assert a.tolist() == expected
    assert b.tolist() == [float(e) for e in expected]
    assert np.signbit(b[3])  # rint(-0.5) is -0.0


# -- 6. sub-byte output tiles whose edge bytes neighbouring blocks share ---------------------------


def make_quantizer(dt):
    """A factory: the kernel's annotations use the factory's argument."""
    low, high = dt.min, dt.max

    @tv.kernel
    def quantize(x: tv.Global[f32, "m", "n"], out: tv.Global[dt, "m", "n"],
                 *, br: tv.Const = 3, bc: tv.Const = 5, odd_only: tv.Const = False):
        tv.launch(grid=(tv.cdiv(m, br), tv.cdiv(n, bc)))
        i, j = tv.block_idx()
        t = tv.load(x, (i * br, j * bc), (br, bc))
        codes = tv.cast(tv.minimum(tv.maximum(round(t * 2.0), float(low)), float(high)), dt)
        if odd_only:
            cols = j * bc + tv.arange(0, bc)
            inside = (cols[None, :] < n) & (i * br + tv.arange(0, br)[:, None] < m)
            tv.store(out, codes, (i * br, j * bc), mask=inside & (cols[None, :] % 2 == 1))
        else:
            tv.store(out, codes, (i * br, j * bc))

    return quantize


@pytest.mark.parametrize("name", ["u3", "i4"])
@pytest.mark.parametrize("order", ["forward", "reverse", 7])
def test_sub_byte_tiles_sharing_edge_bytes_keep_every_bit(name, order):
    # A block stores 3 x 5 elements: 15 bits of u3 or 20 of i4 per row, so neighbouring blocks'
    # tiles share bytes; rows of 13 elements start mid-byte; the tensor is a view with sentinel
    # elements on both sides that no block may change (DESIGN §3: a store changes its elements'
    # bits only, edge bytes by atomic read-modify-write).
    dt = tv.dtype(name)
    quantize = make_quantizer(dt)
    rng = np.random.default_rng(6)
    m, n, sentinel = 7, 13, 5
    x = (2 * rng.standard_normal((m, n))).astype(np.float32)
    expected = np.clip(np.rint(x.astype(np.float64) * 2), dt.min, dt.max)
    for odd_only in (False, True):
        big = HostTensor.from_bits(np.full((m, n + 3), sentinel), dt)
        run_in_order(quantize, (x, big[:, 1:n + 1]), order, odd_only=odd_only)
        values = big.to_numpy()
        want = np.full((m, n + 3), float(dt.decode(np.asarray(sentinel))))
        cols = np.arange(n) % 2 == 1 if odd_only else np.ones(n, bool)
        want[:, 1:n + 1][:, cols] = expected[:, cols]
        assert np.array_equal(values, want)


# -- 7. split-K GEMM: atomics into a launch-wide f32 workspace -------------------------------------


@tv.kernel
def split_k_gemm(a: tv.Global[f16, "m", "k"], b: tv.Global[f16, "k", "n"],
                 c: tv.Global[f16, "m", "n"], *, bm: tv.Const = 16, bn: tv.Const = 16,
                 bk: tv.Const = 16, splits: tv.Const = 3):
    tv.launch(grid=(tv.cdiv(m, bm), tv.cdiv(n, bn), splits))
    i, j, s = tv.block_idx()
    partial = tv.workspace((m, n), f32)  # zero-filled, shared by every block of the launch
    arrivals = tv.workspace((m, n), i32)  # one counter per tile, at the tile's first element
    per_split = tv.cdiv(tv.cdiv(k, bk), splits) * bk
    acc = tv.zeros((bm, bn), f32)
    for k0 in tv.range(s * per_split, min(k, (s + 1) * per_split), bk):
        acc = tv.dot(tv.load(a, (i * bm, k0), (bm, bk)), tv.load(b, (k0, j * bn), (bk, bn)), acc)
    tv.atomic_add(partial, acc, (i * bm, j * bn))
    tv.fence()  # the partial sums are visible before the arrival is
    arrived = tv.atomic_add(arrivals, 1, (i * bm, j * bn))
    if arrived == splits - 1:  # the last split of this tile writes it out
        tv.fence()
        tv.store(c, tv.cast(tv.load(partial, (i * bm, j * bn), (bm, bn)), f16), (i * bm, j * bn))


@pytest.mark.parametrize("order", ["forward", "reverse", 11])
def test_split_k_gemm_accumulates_with_atomics_in_a_workspace(order):
    rng = np.random.default_rng(7)
    m, n, k = 21, 30, 100
    a = rng.standard_normal((m, k)).astype(np.float16)
    b = rng.standard_normal((k, n)).astype(np.float16)
    c = np.zeros((m, n), np.float16)
    run_in_order(split_k_gemm, (a, b, c), order)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    base = (a.astype(np.float32) @ b.astype(np.float32)).astype(np.float16)
    assert_accurate(c, ref, base, f16)
    workspaces = [s for s in tv.ir.tile.walk(split_k_gemm.ir().body) if getattr(s, "op", "") ==
                  "workspace"]
    assert [w.result.type.shape for w in workspaces] == [("m", "n"), ("m", "n")]


# -- kernels made by factories ---------------------------------------------------------------------


def make_scaler(dt, block):
    @tv.kernel
    def scale_by_two(x: tv.Global[dt, "n"], y: tv.Global[dt, "n"]):
        tv.launch(grid=tv.cdiv(n, block))
        i = tv.block_idx()
        tv.store(y, tv.load(x, (i * block,), (block,)) * 2.0, (i * block,))

    return scale_by_two


FUTURE_MODULE = '''
from __future__ import annotations

import tilevm as tv


def make(dt, block):
    @tv.kernel
    def scale_by_two(x: tv.Global[dt, "n"], y: tv.Global[dt, "n"]):
        tv.launch(grid=tv.cdiv(n, block))
        i = tv.block_idx()
        tv.store(y, tv.load(x, (i * block,), (block,)) * 2.0, (i * block,))

    return scale_by_two


def make_undecorated(dt):
    def copy(x: tv.Global[dt, "n"]):
        tv.launch(grid=1)

    return copy
'''


@pytest.fixture
def future_module(tmp_path):
    path = tmp_path / "factory_with_future_annotations.py"
    path.write_text(FUTURE_MODULE)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[path.stem]


@pytest.mark.parametrize("where", ["plain", "future"])
def test_a_kernel_made_in_a_factory_uses_the_factory_arguments(where, future_module):
    make = make_scaler if where == "plain" else future_module.make
    for dt, np_type in ((f32, np.float32), (bf16, ml_dtypes.bfloat16)):
        x = np.arange(10).astype(np_type)
        y = np.zeros_like(x)
        make(dt, 4)(x, y, device="interp")
        assert np.array_equal(y.astype(np.float64), 2 * np.arange(10))


def test_a_future_annotation_naming_a_variable_tilevm_cannot_see_is_a_clear_error(
        future_module):
    kernel = tv.kernel(future_module.make_undecorated(f32))  # decorated outside the factory
    with pytest.raises(tv.CompileError) as info:
        kernel.ir()
    e = info.value
    lines = FUTURE_MODULE.splitlines()
    line = next(i for i, text in enumerate(lines, 1) if "def copy(" in text)
    assert (e.line, e.col) == (line, lines[line - 1].index("tv.Global") + 1)
    assert "'from __future__ import annotations' makes every annotation a string" in e.message
    assert "undefined name 'dt'" in e.message


# -- mistakes around the new features --------------------------------------------------------------


def test_workspace_sizes_and_fence_scopes_are_checked_where_written():
    @tv.kernel
    def bad_workspace(x: tv.Global[f32, "n"]):
        tv.launch(grid=1)
        tv.workspace((n * 2,), f32)

    @tv.kernel
    def bad_fence(x: tv.Global[f32, "n"]):
        tv.launch(grid=1)
        tv.fence("device")

    with pytest.raises(tv.CompileError, match=r"a size is a compile-time integer or a dimension "
                                              r"name of the parameters, not the run-time "
                                              r"expression \(i32\)"):
        bad_workspace.ir()
    with pytest.raises(tv.CompileError, match=r"fence: scope must be one of \('block', 'gpu', "
                                              r"'sys'\), got 'device'") as info:
        bad_fence.ir()
    assert info.value.line == bad_fence.fn.__code__.co_firstlineno + 3  # the decorator is + 0


def test_a_constant_named_like_a_dimension_is_a_diagnostic_not_a_silent_shadow():
    @tv.kernel
    def shadowed(a: tv.Global[f32, "m", "k"], *, k: tv.Const = 16):
        tv.launch(grid=1)
        tv.store(a, tv.load(a, (0, 0), (4, k)), (0, 0))

    with pytest.raises(tv.CompileError, match="constant 'k' has the name of a dimension") as info:
        shadowed.ir()
    assert info.value.source_line.strip().startswith("def shadowed(")
    assert info.value.source_line[info.value.col - 1:].startswith("k: tv.Const")


# -- small things users write ----------------------------------------------------------------------


@tv.kernel
def row_stats(a: tv.Global[f32, "m", 4], out: tv.Global[f32, "m", 4]):
    tv.launch(grid=1)
    rows, cols = a.shape  # a global tensor's sizes: the run-time dimension and the fixed 4
    t = tv.load(a, (0, 0), (8, cols))
    acc = tv.zeros((8, cols), f32)
    acc += t
    acc *= 2.0
    tv.store(out, acc, (0, 0))
    tv.store(out, tv.cast(rows, f32), (0, 0))  # a scalar stores one element
    tv.store(out, tv.sum(tv.sum(t, 1), 0), (1, 0))
    tv.store(out, -1.0, (max(rows - 1, 0, 1), cols - 1))  # so does a number


def test_global_shapes_scalar_stores_and_augmented_assignment():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    out = np.zeros_like(a)
    row_stats(a, out, device="interp")
    expected = 2 * a
    expected[0, 0], expected[1, 0], expected[2, 3] = 3, a.sum(), -1
    assert np.array_equal(out, expected)


def test_the_attention_example_checks_itself():
    from pathlib import Path

    examples = Path(__file__).resolve().parents[2] / "examples"
    sys.path.insert(0, str(examples))
    try:
        spec = importlib.util.spec_from_file_location("example_attention",
                                                      examples / "attention.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for argv in (["--sq", "29", "--sk", "29", "--d", "20"],
                     ["--no-causal", "--sq", "17", "--sk", "40", "--d", "36"]):
            assert np.isfinite(module.main(argv))
    finally:
        sys.path.remove(str(examples))


# -- variable-length sequences: scalars loaded from memory steer the loops -------------------------


@tv.kernel
def varlen_mean(x: tv.Global[f16, "tokens", "d"], cu_seqlens: tv.Global[i32, "batch1"],
                out: tv.Global[f32, "batch", "d"], *, bt: tv.Const = 8, bd: tv.Const = 32):
    """The mean over each sequence's tokens; sequence b is rows cu_seqlens[b] to [b + 1]."""
    tv.launch(grid=batch)
    b = tv.block_idx()
    start = tv.load(cu_seqlens, (b,), ())  # shape (): one element, a block-uniform scalar
    end = tv.load(cu_seqlens, (b + 1,), ())
    acc = tv.zeros((bd,), f32)
    for t0 in tv.range(start, end, bt):
        rows = t0 + tv.arange(0, bt)
        inside = (rows < end)[:, None] & (tv.arange(0, bd) < d)[None, :]
        acc = acc + tv.sum(tv.cast(tv.load(x, (t0, 0), (bt, bd), mask=inside), f32), 0)
    if end > start:
        acc = acc / tv.cast(end - start, f32)
    tv.store(out, acc[None], (b, 0))  # as numpy: acc[None, :]


def test_scalars_loaded_from_memory_bound_loops_and_branches():
    lengths = [5, 0, 17, 9]
    cu_seqlens = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    x = np.random.default_rng(8).standard_normal((cu_seqlens[-1], 20)).astype(np.float16)
    out = np.full((len(lengths), 20), 7, np.float32)
    varlen_mean(x, cu_seqlens, out, device="interp")
    ref = np.stack([x[a:b].astype(np.float64).mean(0) if b > a else np.zeros(20)
                    for a, b in itertools.pairwise(cu_seqlens)])
    base = np.stack([x[a:b].astype(np.float32).mean(0) if b > a else np.zeros(20, np.float32)
                     for a, b in itertools.pairwise(cu_seqlens)])
    assert_accurate(out, ref, base, f32)


# -- MXFP4 weights: f4e2m1fn codes with an f8e8m0fnu scale per 32 ---------------------------------


@tv.kernel
def mxfp4_gemm(x: tv.Global[bf16, "m", "k"], w: tv.Global[f4e2m1fn, "n", "k"],
               w_scales: tv.Global[f8e8m0fnu, "n", "kb"], y: tv.Global[bf16, "m", "n"],
               *, bm: tv.Const = 16, bn: tv.Const = 16):
    tv.launch(grid=(tv.cdiv(m, bm), tv.cdiv(n, bn)))
    i, j = tv.block_idx()
    acc = tv.zeros((bm, bn), f32)
    for k0 in tv.range(0, k, 32):
        codes = tv.load(w, (j * bn, k0), (bn, 32))
        scale = tv.load(w_scales, (j * bn, k0 // 32), (bn, 1))
        weights = tv.cast(codes, bf16) * tv.cast(scale, bf16)  # exact: a power of two times e2m1
        acc = tv.dot(tv.load(x, (i * bm, k0), (bm, 32)), weights.T, acc)
    tv.store(y, tv.cast(acc, bf16), (i * bm, j * bn))


def test_mxfp4_gemm_dequantizes_in_registers():
    rng = np.random.default_rng(9)
    m, n, k = 10, 20, 96
    x = rng.standard_normal((m, k)).astype(ml_dtypes.bfloat16)
    w = rng.standard_normal((n, k)).astype(ml_dtypes.float4_e2m1fn)
    scales = (2.0 ** rng.integers(-3, 3, (n, k // 32))).astype(ml_dtypes.float8_e8m0fnu)
    y = np.zeros((m, n), ml_dtypes.bfloat16)
    mxfp4_gemm(x, HostTensor.from_numpy(w.astype(np.float32), "f4e2m1fn"), scales, y,
               device="interp")
    w_real = w.astype(np.float64) * np.repeat(scales.astype(np.float64), 32, axis=1)
    ref = x.astype(np.float64) @ w_real.T
    base = x.astype(np.float32) @ w_real.astype(np.float32).T
    assert_accurate(y, ref, base.astype(ml_dtypes.bfloat16), bf16)


# -- W8A8 (SmoothQuant): int8 x int8 with per-row and per-column scales ----------------------------


def dequantize(acc, row_scales, col_scales):
    """A helper returning two values: inlined, its tuple unpacked by the caller."""
    out = tv.cast(acc, f32) * row_scales[..., None] * col_scales[None, ...]
    return out, tv.max(abs(out), 1)


@tv.kernel
def w8a8_gemm(a: tv.Global[i8, "m", "k"], b: tv.Global[i8, "n", "k"],
              a_scales: tv.Global[f32, "m"], b_scales: tv.Global[f32, "n"],
              c: tv.Global[f16, "m", "n"], row_max: tv.Global[f32, "m", "col_blocks"],
              *, bm: tv.Const = 16, bn: tv.Const = 16, bk: tv.Const = 32):
    tv.launch(grid=(tv.cdiv(m, bm), tv.cdiv(n, bn)))
    i, j = tv.block_idx()
    acc = tv.dot(tv.load(a, (i * bm, 0), (bm, bk)), tv.load(b, (j * bn, 0), (bn, bk)).T)  # i32
    for k0 in tv.range(bk, k, bk, unroll=True):
        acc = tv.dot(tv.load(a, (i * bm, k0), (bm, bk)), tv.load(b, (j * bn, k0), (bn, bk)).T,
                     acc)
    out, largest = dequantize(acc, tv.load(a_scales, (i * bm,), (bm,)),
                              tv.load(b_scales, (j * bn,), (bn,)))
    tv.store(c, tv.cast(out, f16), (i * bm, j * bn))
    tv.store(row_max, largest[:, None], (i * bm, j))


def test_w8a8_gemm_accumulates_exactly_in_i32():
    rng = np.random.default_rng(10)
    m, n, k, bn = 20, 17, 100, 16
    a = rng.integers(-128, 128, (m, k)).astype(np.int8)
    b = rng.integers(-128, 128, (n, k)).astype(np.int8)
    a_scales = rng.uniform(0.001, 0.01, m).astype(np.float32)
    b_scales = rng.uniform(0.001, 0.01, n).astype(np.float32)
    c = np.zeros((m, n), np.float16)
    row_max = np.zeros((m, -(-n // bn)), np.float32)
    w8a8_gemm(a, b, a_scales, b_scales, c, row_max, device="interp", bn=bn)
    exact = a.astype(np.int64) @ b.astype(np.int64).T  # the i32 accumulation is exact here
    ref = exact * a_scales.astype(np.float64)[:, None] * b_scales.astype(np.float64)[None, :]
    base32 = exact.astype(np.float32) * a_scales[:, None] * b_scales[None, :]
    assert_accurate(c, ref, base32.astype(np.float16), f16)
    for jb in range(row_max.shape[1]):
        cols = slice(jb * bn, (jb + 1) * bn)
        assert_accurate(row_max[:, jb], np.abs(ref[:, cols]).max(1),
                        np.abs(base32[:, cols]).max(1), f32)


# -- paged attention decode: a block table steers the loads ----------------------------------------


@tv.kernel
def paged_decode(q: tv.Global[f16, "batch", "d"], k_cache: tv.Global[f16, "pages", "page", "d"],
                 v_cache: tv.Global[f16, "pages", "page", "d"],
                 block_table: tv.Global[i32, "batch", "max_pages"],
                 context_lens: tv.Global[i32, "batch"], o: tv.Global[f16, "batch", "d"],
                 scale: tv.Scalar[f32], *, ps: tv.Const = 8, hd: tv.Const = 32):
    """One query token per sequence; sequence b's keys live in the pages block_table[b, :]."""
    tv.launch(grid=batch)
    b = tv.block_idx()
    length = tv.load(context_lens, (b,), ())
    qt = tv.load(q, (b, 0), (1, hd))
    m_i = tv.full((1,), float("-inf"), f32)
    l_i = tv.zeros((1,), f32)
    acc = tv.zeros((1, hd), f32)
    for j in tv.range(0, tv.cdiv(length, ps)):
        where = tv.load(block_table, (b, j), ())  # a scalar from memory, used as an offset
        kt = tv.reshape(tv.load(k_cache, (where, 0, 0), (1, ps, hd)), (ps, hd))
        vt = tv.reshape(tv.load(v_cache, (where, 0, 0), (1, ps, hd)), (ps, hd))
        s = (qt @ kt.T) * scale  # '@' is tv.dot from zero, in f32
        s = tv.where((j * ps + tv.arange(0, ps) < length)[None, :], s, float("-inf"))
        m_new = tv.maximum(m_i, tv.max(s, 1))
        p = tv.exp(s - m_new[:, None])
        alpha = tv.exp(m_i - m_new)
        l_i = l_i * alpha + tv.sum(p, 1)
        acc = tv.dot(tv.cast(p, f16), vt, acc * alpha[:, None])
        m_i = m_new
    tv.store(o, tv.cast(acc / l_i[:, None], f16), (b, 0))


def test_paged_attention_decode_follows_the_block_table():
    rng = np.random.default_rng(11)
    batch, d, page, pages, max_pages = 3, 20, 8, 12, 4
    lengths = np.array([5, 27, 16], np.int32)
    table = rng.permutation(pages)[:batch * max_pages].reshape(batch, max_pages).astype(np.int32)
    q = rng.standard_normal((batch, d)).astype(np.float16)
    k_cache, v_cache = (rng.standard_normal((pages, page, d)).astype(np.float16)
                        for _ in range(2))
    o = np.zeros((batch, d), np.float16)
    scale = 1 / np.sqrt(d)
    paged_decode(q, k_cache, v_cache, table, lengths, o, scale, device="interp")

    def attend(dt, b):
        keys = k_cache[table[b]].reshape(-1, d)[:lengths[b]].astype(dt)
        values = v_cache[table[b]].reshape(-1, d)[:lengths[b]].astype(dt)
        s = keys @ q[b].astype(dt) * dt(scale)
        p = np.exp(s - s.max())
        p = p / p.sum()
        if dt is np.float32:
            p = p.astype(np.float16).astype(np.float32)
        return p @ values

    ref = np.stack([attend(np.float64, b) for b in range(batch)])
    base = np.stack([attend(np.float32, b) for b in range(batch)]).astype(np.float16)
    assert_accurate(o, ref, base, f16)


def test_arguments_by_name_and_array_constants():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    out = np.zeros_like(a)
    row_stats(out=out, a=a, device="interp")  # tensors by name, in any order
    assert out[1, 0] == a.sum()
    with pytest.raises(TypeError, match=r"missing argument 'b' \(its parameters are a, b, "):
        split_k_gemm(a, c=out, device="interp")
    with pytest.raises(TypeError, match="argument 'a' is given by position and by name"):
        row_stats(a, a=a, out=out, device="interp")
    # An array where a number is needed is the user's mistake, not an internal error.
    with pytest.raises(tv.CompileError, match="expected a tile, a scalar or a number, got ndarray"):
        split_k_gemm.ir(splits=np.arange(2))


@pytest.mark.parametrize(("index", "message"), [
    ("t[0]", "tiles are indexed only with ':', '...' and None"),
    ("t[..., None, ...]", "a tile index has at most one '...'"),
    ("t[:, :, :]", "3 ':' for a tile of rank 2"),
])
def test_tile_indexing_mistakes(index, message, tmp_path):
    path = tmp_path / "indexing.py"
    path.write_text("import tilevm as tv\nfrom tilevm import f32\n\n\n@tv.kernel\n"
                    "def k(x: tv.Global[f32, 'm', 'n']):\n    tv.launch(grid=1)\n"
                    f"    t = tv.load(x, (0, 0), (4, 4))\n    y = {index}\n")
    spec = importlib.util.spec_from_file_location("indexing", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(tv.CompileError, match=message.replace("(", r"\(")) as info:
        module.k.ir()
    assert info.value.line == 9


# -- a helper function passed as a constant (an epilogue) ------------------------------------------


def silu(x):
    return x / (1.0 + tv.exp(-x))


@tv.kernel
def epilogue(x: tv.Global[f32, "n"], y: tv.Global[f32, "n"], *, act: tv.Const = None,
             out_dtype: tv.Const = f16, bs: tv.Const = 8):
    tv.launch(grid=tv.cdiv(n, bs))
    i = tv.block_idx()
    t = tv.load(x, (i * bs,), (bs,))
    if act is not None:  # compile time: one version per activation
        t = act(t)
    tv.store(y, tv.cast(tv.cast(t, out_dtype), f32), (i * bs,))


def test_a_function_constant_is_inlined_and_recorded_without_an_address():
    x = np.linspace(-3, 3, 20).astype(np.float32)
    y = np.zeros_like(x)
    epilogue(x, y, act=silu, device="interp")
    x64 = x.astype(np.float64)
    ref = x64 / (1 + np.exp(-x64))
    base = (x / (1 + np.exp(-x))).astype(np.float16)
    assert_accurate(y, ref, base, f16)
    assert dict(epilogue.ir(act=silu).constants)["act"] == f"<function {__name__}.silu>"

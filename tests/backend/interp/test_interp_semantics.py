# ruff: noqa: SIM108  (the kernels here spell out if/else on purpose)
"""The reference interpreter against oracles written independently of it: packing, exact rational
arithmetic (fractions), numpy / ml_dtypes rounding, and the layouts' own coordinate maps."""


from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest

import tilevm as tv
from tilevm import bf16, f16, f32, i8, u4, u8
from tilevm.backend.interp import InterpreterError
from tilevm.ir.dtypes import dtype
from tilevm.ir.host_tensor import HostTensor
from tilevm.ir.layout import local, spatial
from tilevm.ir.packing import pack, unpack


def make_copy(dt):
    @tv.kernel
    def copy(src: tv.Global[dt, "n"], dst: tv.Global[dt, "m"], *, bs: tv.Const = 16,
             shift: tv.Const = 3):
        tv.launch(grid=tv.cdiv(n, bs))
        i = tv.block_idx()
        x = tv.load(src, (i * bs,), (bs,))
        tv.store(dst, x, (i * bs + shift,))

    return copy


@pytest.mark.parametrize("name", ["u1", "u2", "u3", "i4", "u5", "f6e3m2", "i7", "u12"])
def test_sub_byte_loads_and_stores_agree_with_pack_and_unpack(name):
    dt = dtype(name)
    rng = np.random.default_rng(dt.nbits)
    n, m, shift = 37, 45, 3
    src = HostTensor.from_bits(rng.integers(0, 1 << dt.nbits, n), dt)
    dst = HostTensor.empty((m,), dt)
    make_copy(dt)(src, dst, device="interp", shift=shift)
    patterns = unpack(src.data, dt.nbits, n)
    expected = np.zeros(m, dtype=np.int64)
    expected[shift:shift + n] = patterns[:m - shift]
    assert np.array_equal(dst.data, pack(expected, dt.nbits))


def _round_fraction(x: Fraction, np_type) -> float:
    """Round an exact rational to the nearest value of a numpy float type, ties to even."""
    guess = np_type(float(x))
    candidates = {guess, np.nextafter(guess, np_type(np.inf)),
                  np.nextafter(guess, np_type(-np.inf))}
    best = min(candidates, key=lambda c: (abs(Fraction(float(c)) - x),
                                          int(np.asarray(c).view(f"u{np.dtype(np_type).itemsize}"))
                                          & 1))
    return float(best)


@tv.kernel
def dot_kernel(a: tv.Global[f16, "m", "k"], b: tv.Global[f16, "k", "n"],
               c: tv.Global[f32, "m", "n"], *, bm: tv.Const, bn: tv.Const, bk: tv.Const):
    tv.launch(grid=1)
    acc = tv.load(c, (0, 0), (bm, bn))
    acc = tv.dot(tv.load(a, (0, 0), (bm, bk)), tv.load(b, (0, 0), (bk, bn)), acc)
    tv.store(c, acc, (0, 0))


def test_dot_rounds_once_per_k_chunk_of_exact_products():
    rng = np.random.default_rng(1)
    m, n, k = 3, 4, 40  # chunks of 16, 16 and 8
    # Wide exponent ranges make cancellation and rounding visible.
    a = (rng.standard_normal((m, k)) * 2.0 ** rng.integers(-12, 12, (m, k))).astype(np.float16)
    b = (rng.standard_normal((k, n)) * 2.0 ** rng.integers(-12, 12, (k, n))).astype(np.float16)
    c = (rng.standard_normal((m, n)) * 1e3).astype(np.float32)
    expected = np.zeros((m, n))
    for i in range(m):
        for j in range(n):
            acc = Fraction(float(c[i, j]))
            for k0 in range(0, k, 16):
                exact = sum(Fraction(float(a[i, kk])) * Fraction(float(b[kk, j]))
                            for kk in range(k0, min(k0 + 16, k)))
                acc = Fraction(_round_fraction(exact + acc, np.float32))
            expected[i, j] = float(acc)
    out = c.copy()
    dot_kernel(a, b, out, device="interp", bm=m, bn=n, bk=k)
    assert np.array_equal(out.astype(np.float64), expected)


def make_binary(dt, op):
    @tv.kernel
    def binary(x: tv.Global[dt, "n"], y: tv.Global[dt, "n"], z: tv.Global[dt, "n"]):
        tv.launch(grid=1)
        a = tv.load(x, (0,), (64,))
        b = tv.load(y, (0,), (64,))
        if op == "add":  # compile-time: one kernel per operator
            r = a + b
        elif op == "mul":
            r = a * b
        else:
            r = a / b
        tv.store(z, r, (0,))

    return binary


@pytest.mark.parametrize("op", ["add", "mul", "div"])
@pytest.mark.parametrize("np_type", [np.float16, ml_dtypes.bfloat16])
def test_f16_and_bf16_arithmetic_rounds_once_like_numpy(op, np_type):
    dt = f16 if np_type is np.float16 else bf16
    rng = np.random.default_rng(2)
    x = (rng.standard_normal(64) * 100).astype(np_type)
    y = (rng.standard_normal(64) * 3).astype(np_type)
    z = np.zeros(64, np_type)
    make_binary(dt, op)(x, y, z, device="interp")
    # Both numpy float16 and ml_dtypes bfloat16 compute in float32 and round once, which is the
    # correctly rounded result for these formats.
    expected = {"add": x + y, "mul": x * y, "div": x / y}[op]
    assert np.array_equal(z.view(np.uint16), expected.view(np.uint16))


@tv.kernel
def fma_kernel(a: tv.Global[f32, "n"], b: tv.Global[f32, "n"], c: tv.Global[f32, "n"],
               d: tv.Global[f32, "n"]):
    tv.launch(grid=1)
    x = tv.load(a, (0,), (32,))
    tv.store(d, tv.fma(x, tv.load(b, (0,), (32,)), tv.load(c, (0,), (32,))), (0,))


def test_fma_rounds_once():
    rng = np.random.default_rng(3)
    a = rng.standard_normal(32).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    # c ≈ -a·b makes the result a small difference that one rounding gets right.
    c = (-(a.astype(np.float64) * b) + rng.standard_normal(32) * 1e-9).astype(np.float32)
    d = np.zeros(32, np.float32)
    fma_kernel(a, b, c, d, device="interp")
    expected = [_round_fraction(Fraction(float(x)) * Fraction(float(y)) + Fraction(float(z)),
                                np.float32) for x, y, z in zip(a, b, c)]
    assert np.array_equal(d.astype(np.float64), np.array(expected))


@tv.kernel
def cast_kernel(x: tv.Global[f32, "n"], y: tv.Global[i8, "n"]):
    tv.launch(grid=1)
    tv.store(y, tv.cast(tv.load(x, (0,), (16,)), i8), (0,))


def test_float_to_int_cast_truncates_and_saturates():
    x = np.array([1.7, -1.7, 127.9, 300, -300, 0.5, -0.5, np.nan, 2.5, -2.5, 3, 4, 5, 6, 7, 8],
                 np.float32)
    y = np.zeros(16, np.int8)
    cast_kernel(x, y, device="interp")
    expected = np.clip(np.trunc(np.nan_to_num(x, nan=0.0)), -128, 127).astype(np.int8)
    assert np.array_equal(y, expected)


L_U4 = spatial(8, 4) * local(1, 2)  # (8, 8) u4: two nibbles per thread, one byte
L_U8 = spatial(4, 8)  # (4, 8) u8: one byte per thread


@tv.kernel
def view_kernel(x: tv.Global[u4, "m", "n"], y: tv.Global[u8, "p", "q"],
                z: tv.Global[u4, "m", "n"]):
    tv.launch(grid=1, warps=1)  # the layouts spread over one warp's 32 threads
    t = tv.load(x, (0, 0), (8, 8), layout=L_U4)
    as_bytes = tv.view(t, u8, L_U8)
    tv.store(y, as_bytes, (0, 0))
    tv.store(z, tv.view(tv.convert_layout(as_bytes, L_U8), u4, L_U4), (0, 0))


def test_view_round_trips_through_two_layouts_and_back():
    rng = np.random.default_rng(4)
    codes = rng.integers(0, 16, (8, 8))
    x = HostTensor.from_bits(codes, u4)
    y = np.zeros((4, 8), np.uint8)
    z = HostTensor.empty((8, 8), u4)
    view_kernel(x, y, z, device="interp")
    expected = np.zeros((4, 8), np.uint8)
    for thread in range(32):
        lo, hi = (codes[L_U4.coords(thread, j)] for j in range(2))
        expected[L_U8.coords(thread, 0)] = lo | (hi << 4)
    assert np.array_equal(y, expected)
    assert np.array_equal(z.bits(), codes)


@tv.kernel
def bitcast_kernel(x: tv.Global[u4, "m", "n"], y: tv.Global[u8, "m", "p"]):
    tv.launch(grid=1)
    tv.store(y, tv.bitcast(tv.load(x, (0, 0), (4, 8)), u8), (0, 0))


def test_bitcast_packs_along_the_last_dimension():
    codes = np.random.default_rng(5).integers(0, 16, (4, 8))
    y = np.zeros((4, 4), np.uint8)
    bitcast_kernel(HostTensor.from_bits(codes, u4), y, device="interp")
    assert np.array_equal(y, np.stack([pack(row, 4) for row in codes]))


@tv.kernel
def async_kernel(a: tv.Global[f32, "n"], before: tv.Global[f32, "n"],
                 after: tv.Global[f32, "n"]):
    tv.launch(grid=1)
    s = tv.shared((2, 16), f32)
    tv.store(s[1], tv.zeros((16,), f32), (0,))
    tv.copy_async(s[1], a, (0,))
    tv.commit()
    tv.copy_async(s[0], a, (0,))  # never committed: a wait does not complete it
    tv.store(before, tv.load(s[1], (0,), (16,)), (0,))
    tv.wait(0)
    tv.sync()
    tv.store(after, tv.load(s[1], (0,), (16,)), (0,))


def test_copy_async_lands_only_at_wait():
    a = np.arange(1, 11, dtype=np.float32)  # shorter than the tile: the rest is zero-filled
    before, after = np.full(10, 7, np.float32), np.zeros(10, np.float32)
    async_kernel(a, before, after, device="interp")
    assert np.array_equal(before, np.zeros(10, np.float32))
    assert np.array_equal(after, a)


@tv.kernel
def atomic_kernel(out: tv.Global[f32, "n"], counts: tv.Global[tv.i32, "n"]):
    tv.launch(grid=(3, 2))
    i, j = tv.block_idx()
    tv.atomic_add(out, tv.full((4,), 0.5, f32), (0,))
    tv.atomic_max(counts, i * 2 + j, (0,))


def test_atomics_from_every_block_accumulate():
    out, counts = np.zeros(4, np.float32), np.full(4, -1, np.int32)
    atomic_kernel(out, counts, device="interp")
    assert np.array_equal(out, np.full(4, 3.0, np.float32))
    assert counts[0] == 5 and np.array_equal(counts[1:], [-1, -1, -1])


@tv.kernel
def unchecked_kernel(a: tv.Global[f32, "n"]):
    tv.launch(grid=1)
    tv.store(a, tv.load(a, (0,), (16,), mask=False), (0,))


def test_unmasked_access_outside_the_tensor_is_an_error():
    with pytest.raises(InterpreterError, match=r"load .* element \(10,\) is outside the tensor"):
        unchecked_kernel(np.zeros(10, np.float32), device="interp")


@tv.kernel
def control_kernel(a: tv.Global[tv.i32, "n"], *, reps: tv.Const = 3):
    tv.launch(grid=1)
    total = 0
    k = 1
    while k < n:
        k = k * 2
    for r in range(reps):  # unrolled at compile time
        total = total + r
    for i in tv.range(0, n, 2):
        if i % 4 == 0:
            total = total + i
        else:
            total = total - 1
    tv.store(a, tv.full((1,), total * 1000 + k, tv.i32), (0,))


def test_structured_control_flow_matches_python():
    a = np.zeros(11, np.int32)
    control_kernel(a, device="interp")
    k, total = 1, sum(range(3))
    while k < 11:
        k *= 2
    for i in range(0, 11, 2):
        total = total + i if i % 4 == 0 else total - 1
    assert a[0] == total * 1000 + k


def test_ml_dtypes_and_torch_arguments_are_accepted():
    import torch

    @tv.kernel
    def scale(x: tv.Global[bf16, "n"], y: tv.Global[bf16, "n"]):
        tv.launch(grid=1)
        tv.store(y, tv.load(x, (0,), (32,)) * 2.0, (0,))

    x = np.linspace(-3, 3, 20).astype(ml_dtypes.bfloat16)
    y = np.zeros(20, ml_dtypes.bfloat16)
    scale(x, y, device="interp")
    assert np.array_equal(y, x * ml_dtypes.bfloat16(2))
    ty = torch.zeros(20, dtype=torch.bfloat16)
    scale(torch.from_numpy(x.view(np.int16)).view(torch.bfloat16), ty, device="interp")
    assert np.array_equal(ty.view(torch.int16).numpy(), y.view(np.int16))


@tv.kernel
def sum_kernel(x: tv.Global[f32, "m", "n"], y: tv.Global[f32, "m", "n"]):
    tv.launch(grid=1)
    t = tv.load(x, (0, 0), (4, 64))
    tv.store(y, tv.sum(t, 1, keepdims=True), (0, 0))
    tv.store(y, tv.max(t, 1, keepdims=True), (0, 1))


def test_reduce_sum_is_exact_then_rounded_once_and_max_ignores_nan():
    rng = np.random.default_rng(6)
    x = (rng.standard_normal((4, 64)) * 2.0 ** rng.integers(-30, 30, (4, 64))).astype(np.float32)
    x[:, 0] = 3e30
    x[:, 1] = -3e30  # cancels: a float32 running sum would lose everything else
    x[3, 5] = np.nan
    y = np.zeros((4, 64), np.float32)
    sum_kernel(x, y, device="interp")
    for r in range(3):
        exact = sum(Fraction(float(v)) for v in x[r])
        assert y[r, 0] == _round_fraction(exact, np.float32)
        assert y[r, 1] == x[r].max()
    assert np.isnan(y[3, 0]) and y[3, 1] == np.nanmax(x[3])


@tv.kernel
def bf16_dot_kernel(a: tv.Global[bf16, "m", "k"], b: tv.Global[bf16, "k", "n"],
                    c: tv.Global[f32, "m", "n"]):
    tv.launch(grid=1)
    acc = tv.load(c, (0, 0), (2, 3))
    tv.store(c, tv.dot(tv.load(a, (0, 0), (2, 16)), tv.load(b, (0, 0), (16, 3)), acc), (0, 0))


def test_dot_rounds_correctly_into_subnormals():
    rng = np.random.default_rng(8)
    m, n, k = 2, 3, 16
    # bf16 products near 2^-140 and an accumulator near 2^-135: the sums are f32 subnormals.
    a = (rng.standard_normal((m, k)) * 2.0**-70).astype(ml_dtypes.bfloat16)
    b = (rng.standard_normal((k, n)) * 2.0**-70).astype(ml_dtypes.bfloat16)
    c = (rng.standard_normal((m, n)) * 2.0**-135).astype(np.float32)
    expected = np.array([[_round_fraction(
        sum(Fraction(float(a[i, kk])) * Fraction(float(b[kk, j])) for kk in range(k)) +
        Fraction(float(c[i, j])), np.float32) for j in range(n)] for i in range(m)])
    out = c.copy()
    bf16_dot_kernel(a, b, out, device="interp")
    assert np.all(np.abs(expected) < np.finfo(np.float32).tiny)  # the case under test
    assert np.array_equal(out.astype(np.float64), expected)


@tv.kernel
def masked_kernel(x: tv.Global[f32, "n"], y: tv.Global[f32, "m", "n"]):
    tv.launch(grid=(2, 3))
    r = tv.arange(0, 8)
    keep = (r % 2 == 0) & (r < 7)
    t = tv.load(x, (0,), (8,), mask=keep, other=-1.5)
    g = tv.cast(tv.grid_dim(1) * 10 + tv.grid_dim(0), f32)
    tv.store(y, tv.broadcast(t[None, :] + g, (2, 8)), (0, 0), mask=tv.arange(0, 2)[:, None] < 1)


def test_tile_masks_other_values_grid_size_and_broadcast():
    x = np.arange(8, dtype=np.float32)
    y = np.full((2, 8), 9, np.float32)
    masked_kernel(x, y, device="interp")
    r = np.arange(8)
    loaded = np.where((r % 2 == 0) & (r < 7), x, -1.5)
    assert np.array_equal(y[0], loaded + 32)
    assert np.array_equal(y[1], np.full(8, 9, np.float32))  # masked off


@tv.kernel
def fp8_dot(a: tv.Global[tv.f8e4m3fn, "m", "k"], b: tv.Global[tv.f8e4m3fn, "k", "n"],
            c: tv.Global[f32, "m", "n"], d: tv.Global[f32, "m", "k"]):
    tv.launch(grid=1)
    x = tv.load(a, (0, 0), (2, 64))
    tv.store(d, tv.cast(x, f32), (0, 0))
    acc = tv.load(c, (0, 0), (2, 2))
    tv.store(c, tv.dot(x, tv.load(b, (0, 0), (64, 2)), acc), (0, 0))


def test_fp8_arguments_casts_and_dot_chunks_of_32():
    rng = np.random.default_rng(9)
    a = (rng.standard_normal((2, 64)) * 8).astype(ml_dtypes.float8_e4m3fn)
    b = (rng.standard_normal((64, 2)) * 8).astype(ml_dtypes.float8_e4m3fn)
    c = rng.standard_normal((2, 2)).astype(np.float32)
    d = np.zeros((2, 64), np.float32)
    out = c.copy()
    fp8_dot(a, b, out, d, device="interp")
    assert np.array_equal(d, a.astype(np.float32))  # ml_dtypes' exact widening
    for i in range(2):
        for j in range(2):
            acc = Fraction(float(c[i, j]))
            for k0 in (0, 32):
                exact = sum(Fraction(float(a[i, k])) * Fraction(float(b[k, j]))
                            for k in range(k0, k0 + 32))
                acc = Fraction(_round_fraction(exact + acc, np.float32))
            assert out[i, j] == float(acc)


@pytest.mark.parametrize("name", ["f32", "f16", "bf16"])
def test_exact_integers_round_once_even_where_float64_would_round_twice(name):
    from tilevm.backend.interp.dot import _round_ints

    dt = dtype(name)
    p = dt.mantissa_bits + 1
    rng = np.random.default_rng(10)
    cases = []
    for shift in (0, 5, 15):
        half = ((1 << p) + 1) << shift  # exactly halfway between two values of dt
        cases += [half, half + 1, half - 1, -half - 1, (3 << (p + shift)) + (1 << shift)]
    half = ((1 << p) + 1) << 60  # a tie in dt once float64 has dropped the last bit
    cases += [half + 1, -half - 1, half - 1, ((3 << p) + 1 << 60) + 1]
    cases += [int(x) << (p + 2) for x in rng.integers(-(2**60), 2**60, 20)]  # ~2p + 62 bits
    # Scale each integer into [1, 4): inside every type's normal range.
    units = [abs(n).bit_length() - 1 for n in cases]
    got = [_round_ints(np.array([n], dtype=object), u, dt)[0] for n, u in zip(cases, units)]
    np_type = {"f32": np.float32, "f16": np.float16, "bf16": ml_dtypes.bfloat16}[name]
    expected = [_round_fraction(Fraction(n, 1 << u), np_type) for n, u in zip(cases, units)]
    assert np.array_equal(got, np.array(expected))


@tv.kernel
def atomic_old(out: tv.Global[f32, "n"], olds: tv.Global[f32, "m", "n"]):
    tv.launch(grid=3)
    b = tv.block_idx()
    before = tv.atomic_add(out, tv.full((4,), 0.25, f32), (0,))
    tv.store(olds, before[None, :], (b, 0))


def test_atomics_return_the_values_they_replaced():
    out, olds = np.zeros(4, np.float32), np.zeros((3, 4), np.float32)
    atomic_old(out, olds, device="interp")
    assert np.array_equal(olds, np.array([[0.0] * 4, [0.25] * 4, [0.5] * 4], np.float32))


def test_block_order_is_forward_reverse_or_a_seed():
    from tilevm.backend.interp import run
    from tilevm.frontend.arguments import bind_arguments

    i32 = dtype("i32")

    @tv.kernel
    def record(ticket: tv.Global[i32, "one"], order: tv.Global[i32, "n"]):
        tv.launch(grid=n)
        slot = tv.atomic_add(ticket, 1, (0,))  # how many blocks ran before this one
        tv.store(order, slot, (tv.block_idx(),))

    def positions(block_order):
        ticket, order = np.zeros(1, np.int32), np.zeros(6, np.int32)
        bound = bind_arguments(record.ir(), (ticket, order))
        run(record.ir(), bound.tensors, bound.scalars, bound.dims, block_order=block_order)
        return order.tolist()

    assert positions("forward") == [0, 1, 2, 3, 4, 5]
    assert positions("reverse") == [5, 4, 3, 2, 1, 0]
    shuffled = positions(3)
    assert sorted(shuffled) == list(range(6)) and shuffled != list(range(6))
    assert positions(3) == shuffled  # a seed is reproducible
    with pytest.raises(ValueError, match="block_order is 'forward', 'reverse' or an int seed"):
        positions("sideways")

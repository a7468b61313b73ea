"""Reductions with a combine function written in the DSL (issue 12 item 2e):
``tv.reduce(x, fn, axis)``.

Associative and commutative combines (bit operations, integer arithmetic, min/max) give the same
value on every execution: they are checked against numpy on the interpreter, and the conftest
fixture runs each kernel on the CPU backend too (bit for bit) and compiles it for sm_80/sm_90.
A float combine that is not associative is checked against a left-to-right loop on the
interpreter and within the bound of docs/numeric-contract.md on the CPU backend."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import tilevm as tv
from tilevm.frontend.text import parse
from tilevm.ir.dtypes import dtype
from tilevm.ir.tile import VerifyError, print_kernel, verify

i8, i32, u32, f16, f32 = (dtype(n) for n in ("i8", "i32", "u32", "f16", "f32"))


def larger_magnitude(a, b):
    """max(|a|, |b|): associative and commutative on the values."""
    return max(abs(a), abs(b))


def bitwise_xor(a, b):
    return a ^ b


def bitwise_or(a, b):
    c = a | b
    return c


def smaller(a, b):
    return tv.where(a < b, a, b)


def plus(a, b):
    return a + b


# -- associative combines: exact on every execution ------------------------------------------------


@tv.kernel
def exact_combines(x: tv.Global[f32, 64, 32], h: tv.Global[f16, 16, 64],
                   n: tv.Global[i32, 64, 32], q: tv.Global[i8, 64, 16],
                   xmag: tv.Global[f32, 64], hmag: tv.Global[f16, 16, 1],
                   nxor: tv.Global[i32, 32], nor: tv.Global[i32, 1], qmin: tv.Global[i8, 16]):
    tv.launch(grid=1, warps=4)
    t = tv.load(x, (0, 0), (64, 32))
    u = tv.load(h, (0, 0), (16, 64))
    m = tv.load(n, (0, 0), (64, 32))
    s = tv.load(q, (0, 0), (64, 16))
    tv.store(xmag, tv.reduce(t, larger_magnitude, 1), (0,))
    tv.store(hmag, tv.reduce(u, larger_magnitude, -1, keepdims=True), (0, 0))
    tv.store(nxor, tv.reduce(m, bitwise_xor, 0), (0,))       # across the warps' rows
    tv.store(nor, tv.reduce(m, bitwise_or, None), (0,))  # every element: a scalar
    tv.store(qmin, tv.reduce(s, smaller, 0), (0,))            # a packed 8-bit type


def test_associative_combines_match_numpy_on_every_execution():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((64, 32)).astype(np.float32)
    x[3, 0] = -9.0  # the largest magnitude is negative, and is its row's first element
    h = (rng.standard_normal((16, 64)) * 100).astype(np.float16)
    n = rng.integers(-2**31, 2**31, (64, 32), dtype=np.int64).astype(np.int32)
    q = rng.integers(-128, 128, (64, 16)).astype(np.int8)
    # The fixture holds every float combine to the bounded class; these are exact, so the CPU
    # backend's results are checked against numpy here too, bit for bit.
    for device in ("interp", "cpu"):
        xmag = np.zeros(64, np.float32)
        hmag = np.zeros((16, 1), np.float16)
        nxor = np.zeros(32, np.int32)
        nor = np.zeros(1, np.int32)
        qmin = np.zeros(16, np.int8)
        exact_combines(x, h, n, q, xmag, hmag, nxor, nor, qmin, device=device)
        np.testing.assert_array_equal(xmag, np.abs(x).max(1))
        assert xmag[3] == 9.0
        np.testing.assert_array_equal(hmag, np.abs(h).max(1, keepdims=True))
        np.testing.assert_array_equal(nxor, np.bitwise_xor.reduce(n, 0))
        np.testing.assert_array_equal(nor, [np.bitwise_or.reduce(n.reshape(-1))])
        np.testing.assert_array_equal(qmin, q.min(0))


# -- a float combine that is not associative: the bounded class ------------------------------------


@tv.kernel
def float_combines(x: tv.Global[f32, 16, 256], total: tv.Global[f32, 16],
                   squares: tv.Global[f32, 16], builtin: tv.Global[f32, 16]):
    tv.launch(grid=1, warps=4)
    t = tv.load(x, (0, 0), (16, 256))
    tv.store(total, tv.reduce(t, plus, 1), (0,))
    tv.store(squares, tv.reduce(t * t, plus, 1), (0,))
    tv.store(builtin, tv.sum(t * t, 1), (0,))


def _left_to_right(x: np.ndarray) -> np.ndarray:
    """Each row's f32 sum, one f32 rounding per step, in increasing index."""
    acc = x[:, 0].copy()
    for k in range(1, x.shape[1]):
        acc = (acc + x[:, k]).astype(np.float32)
    return acc


def test_float_combine_is_left_to_right_on_the_interpreter_and_bounded_on_the_cpu():
    rng = np.random.default_rng(12)
    # magnitudes spread over 2^±12: every order rounds differently
    x = (rng.standard_normal((16, 256)) * 2.0 ** rng.integers(-12, 12, (16, 256))).astype(
        np.float32)
    outs = {k: np.zeros(16, np.float32) for k in ("interp", "cpu")}
    squares = {k: np.zeros(16, np.float32) for k in ("interp", "cpu")}
    builtin = np.zeros(16, np.float32)
    float_combines(x, outs["interp"], squares["interp"], builtin)
    float_combines(x, outs["cpu"], squares["cpu"], np.zeros(16, np.float32), device="cpu")
    np.testing.assert_array_equal(outs["interp"], _left_to_right(x))
    sq = (x * x).astype(np.float32)
    np.testing.assert_array_equal(squares["interp"], _left_to_right(sq))
    # docs/numeric-contract.md: a combine that is a float add rounded once per step is, in any
    # order, within gamma_(n-1) * sum|x| of the exact sum (n = 256, u = 2^-24)
    n, u = x.shape[1], 2.0 ** -24
    gamma = (n - 1) * u / (1 - (n - 1) * u)
    for values, results in ((x, outs), (sq, squares)):
        exact = values.astype(np.float64).sum(1)
        bound = gamma * np.abs(values.astype(np.float64)).sum(1)
        for where, r in results.items():
            assert np.all(np.abs(r - exact) <= bound), where
    # the builtin sum (exact, rounded once) is within the same bound of the custom one
    assert np.all(np.abs(builtin.astype(np.float64) - squares["interp"]) <=
                  gamma * (sq.astype(np.float64)).sum(1))


# -- scans with a combine function: left to right everywhere, so exact ----------------------------


def decay(a, b):
    """A running average that forgets: not associative, so its value depends on the order."""
    return 0.5 * a + b


@tv.kernel
def custom_scans(x: tv.Global[f32, 16, 64], n: tv.Global[i32, 32, 16], q: tv.Global[i8, 8, 64],
                 xs: tv.Global[f32, 16, 64], ns: tv.Global[i32, 32, 16],
                 qs: tv.Global[i8, 8, 64], hs: tv.Global[f16, 16, 64]):
    tv.launch(grid=1, warps=4)
    t = tv.load(x, (0, 0), (16, 64))
    tv.store(xs, tv.scan(t, decay, 1), (0, 0))
    tv.store(ns, tv.scan(tv.load(n, (0, 0), (32, 16)), bitwise_xor, 0), (0, 0))
    tv.store(qs, tv.scan(tv.load(q, (0, 0), (8, 64)), smaller, -1), (0, 0))
    tv.store(hs, tv.scan(t, decay, 1, dtype=f16), (0, 0))   # the combine runs in f16


def test_scans_with_a_combine_function_match_a_left_to_right_loop():
    rng = np.random.default_rng(13)
    x = (rng.standard_normal((16, 64)) * 2.0 ** rng.integers(-8, 8, (16, 64))).astype(np.float32)
    n = rng.integers(-2**31, 2**31, (32, 16), dtype=np.int64).astype(np.int32)
    q = rng.integers(-128, 128, (8, 64)).astype(np.int8)
    xs = np.zeros_like(x)
    ns = np.zeros_like(n)
    qs = np.zeros_like(q)
    hs = np.zeros((16, 64), np.float16)
    custom_scans(x, n, q, xs, ns, qs, hs)  # the fixture holds the CPU backend to it bit for bit
    for values, out, ty in ((x, xs, np.float32), (x.astype(np.float16), hs, np.float16)):
        want = values.copy()
        for k in range(1, 64):
            want[:, k] = (ty(0.5) * want[:, k - 1] + values[:, k]).astype(ty)
        np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(ns, np.bitwise_xor.accumulate(n, 0))
    np.testing.assert_array_equal(qs, np.minimum.accumulate(q, 1))


def test_scan_takes_a_combine_function():
    @tv.kernel
    def uses(x: tv.Global[f32, 4, 32], y: tv.Global[f32, 4, 32], *, combine: tv.Const):
        tv.launch(grid=1)
        tv.store(y, tv.scan(tv.load(x, (0, 0), (4, 32)), combine, 1), (0, 0))

    for fn, message in (("sum", "use tv.cumsum"), (3, "op must be a combine function"),
                        (changes_dtype, "returns a f16")):
        with pytest.raises(tv.CompileError, match=message):
            uses.ir(combine=fn)


# -- the text form ---------------------------------------------------------------------------------


def test_a_combine_function_prints_and_reads_back():
    kernel = exact_combines.ir()
    text = print_kernel(kernel)
    assert 'op = "custom"' in text
    assert "combine = fn(%bitwise_or.a: i32, %bitwise_or.b: i32)" in text
    assert parse(text) == kernel
    verify(parse(text))
    assert parse(print_kernel(kernel, locations=False)) == kernel


_TEXT = """kernel @k(%x: global<f32[4, 8]>, %y: global<f32[4]>) {
  launch grid(1:i32) warps 1 {
  }
  %a: tile<f32[4, 8]> = load(%x, 0:i32, 0:i32) {mask = "bounds", other = 0, shape = [4, 8]}
  %s: f32 = add(1.0:f32, 2.0:f32)
  %m: tile<f32[4]> = reduce(%a) {axis = 1, combine = fn(%p: f32, %q: f32) { BODY }, op = "custom"}
  store(%y, %m, 0:i32) {mask = "bounds"}
}
"""


@pytest.mark.parametrize(("body", "message"), [
    ("%r: f32 = add(%p, %q); yield %r", None),
    ("%r: f32 = add(%p, %s); yield %r", "not its parameter"),          # a kernel value
    ("%r: tile<f32[2]> = broadcast(%p) {shape = [2]}; yield %p", "elementwise operations only"),
    ("%r: i32 = cast(%p) {dtype = i32}; yield %r", "returns a f32 scalar"),
])
def test_the_verifier_checks_a_combine_function(body, message):
    kernel = parse(_TEXT.replace("BODY", body))
    if message is None:
        verify(kernel)
        assert parse(print_kernel(kernel)) == kernel
    else:
        with pytest.raises(VerifyError, match=message):
            verify(kernel)


# -- diagnostics at the user's line ----------------------------------------------------------------


def loads(a, b):
    return a + tv.load(a, (0,), (1,))


def waits(a, b):
    tv.sync()
    return a + b


def three(a, b, c):
    return a + b + c


def makes_a_tile(a, b):
    return tv.full((4,), a, f32)


def sums_a_tile(a, b):
    return a + tv.sum(tv.full((4,), b, f32), 0)


def changes_dtype(a, b):
    return tv.cast(a + b, f16)


def branches(a, b):
    if a < b:
        a = b
    return a


def two_values(a, b):
    return a, b


def _line(fn, text: str) -> int:
    """The file line of the first line of ``fn`` that contains ``text``."""
    lines, first = inspect.getsourcelines(fn)
    return first + next(k for k, line in enumerate(lines) if text in line)


@pytest.mark.parametrize(("fn", "at", "message"), [
    (loads, "tv.load", "load"),
    (waits, "tv.sync", "sync is not allowed in a combine function"),
    (makes_a_tile, "return", "returns a tile"),
    (sums_a_tile, "return", r"full \(making tile<f32\[4\]>\) is not allowed"),
    (changes_dtype, "return", "returns a f16 scalar|not f32"),
    (branches, "if a < b", "control flow"),
    (two_values, "return", "returns 2 values"),
])
def test_a_bad_combine_function_is_a_diagnostic_at_its_line(fn, at, message):
    @tv.kernel
    def uses(x: tv.Global[f32, 4, 32], y: tv.Global[f32, 4], *, combine: tv.Const):
        tv.launch(grid=1)
        tv.store(y, tv.reduce(tv.load(x, (0, 0), (4, 32)), combine, 1), (0,))

    with pytest.raises(tv.CompileError, match=message) as e:
        uses.ir(combine=fn)
    assert e.value.line == _line(fn, at) and e.value.col > 0, e.value
    assert e.value.file == inspect.getsourcefile(fn)


def test_a_combine_function_takes_two_arguments_and_is_a_def():
    @tv.kernel
    def uses(x: tv.Global[f32, 4, 32], y: tv.Global[f32, 4], *, combine: tv.Const):
        tv.launch(grid=1)
        tv.store(y, tv.reduce(tv.load(x, (0, 0), (4, 32)), combine, 1), (0,))

    call_line = _line(uses, "tv.reduce")
    for fn, message in ((three, r"three\(a, b, c\) must take two arguments"),
                        (lambda a, b: a + b, "not a lambda"),
                        (3, 'op must be "sum", "max", "min" or a combine function')):
        with pytest.raises(tv.CompileError, match=message) as e:
            uses.ir(combine=fn)
        assert e.value.line == call_line, e.value

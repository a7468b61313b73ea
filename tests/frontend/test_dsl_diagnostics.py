# ruff: noqa: F841, B007  (the kernels here make mistakes on purpose)
"""User mistakes in a kernel give a diagnostic at the right line and column, in the user's terms.

The expected position is found independently of the compiler: the line carrying the ``# here``
marker, and the column where the offending snippet starts on it.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np
import pytest

import tilevm as tv
from tilevm import bf16, f16, f32, i8, i32, u8
from tilevm.ir.layout import spatial


def expected_position(fn, snippet: str) -> tuple[int, int]:
    lines, first = inspect.getsourcelines(fn.fn)
    for i, line in enumerate(lines):
        if "# here" in line:
            return first + i, line.index(snippet) + 1
    raise AssertionError("no '# here' marker")


def check(fn, snippet: str, message: str, **consts) -> tv.CompileError:
    with pytest.raises(tv.CompileError) as info:
        fn.ir(**consts)
    err = info.value
    line, col = expected_position(fn, snippet)
    assert (err.line, err.col) == (line, col), str(err)
    assert err.file == __file__
    assert re.search(message, err.message), err.message
    text = str(err)
    assert f"{Path(__file__)}:{line}:{col}: error:" in text
    source_line, caret_line = text.splitlines()[1:3]
    assert caret_line.index("^") == source_line.index(snippet)
    return err


@tv.kernel
def wrong_arity(a: tv.Global[f16, "m", "k"]):
    tv.launch(grid=1)
    x = tv.load(a, (0, 0))  # here
    tv.store(a, x, (0, 0))


@tv.kernel
def dot_dtype_mismatch(a: tv.Global[f16, "m", "k"], b: tv.Global[f32, "k", "n"]):
    tv.launch(grid=1)
    x = tv.load(a, (0, 0), (16, 16))
    y = tv.load(b, (0, 0), (16, 16))
    acc = tv.dot(x, y, tv.zeros((16, 16), f32))  # here


@tv.kernel
def shape_mismatch(a: tv.Global[f32, "m", "k"]):
    tv.launch(grid=1)
    x = tv.load(a, (0, 0), (16, 32))
    y = tv.load(a, (0, 0), (32, 16))
    z = x + y  # here
    tv.store(a, z, (0, 0))


@tv.kernel
def undefined_name(a: tv.Global[f32, "n"]):
    tv.launch(grid=1)
    tv.store(a, zz, (0,))  # here


@tv.kernel
def runtime_shape(a: tv.Global[f32, "n"]):
    tv.launch(grid=1)
    x = tv.zeros((n, 16), f32)  # here


@tv.kernel
def tile_if(a: tv.Global[f32, "n"]):
    tv.launch(grid=1)
    x = tv.load(a, (0,), (16,))
    if x > 0.0:  # here
        tv.store(a, x, (0,))


@tv.kernel
def with_statement(a: tv.Global[f32, "n"]):
    tv.launch(grid=1)
    with open("f") as f:  # here
        pass


@tv.kernel
def missing_annotation(a: tv.Global[f32, "n"], b):  # here
    tv.launch(grid=1)


@tv.kernel
def too_many_offsets(a: tv.Global[f32, "m", "k"]):
    tv.launch(grid=1)
    x = tv.load(a, (0, 0, 0), (16, 16))  # here


@tv.kernel
def store_dtype(a: tv.Global[f16, "n"]):
    tv.launch(grid=1)
    tv.store(a, tv.zeros((16,), f32), (0,))  # here


@tv.kernel
def type_change_in_loop(a: tv.Global[f16, "n"]):
    tv.launch(grid=1)
    acc = tv.zeros((16,), f32)
    for k in tv.range(0, n, 16):
        acc = tv.load(a, (k,), (16,))  # here


@tv.kernel
def layout_change_in_loop(a: tv.Global[f32, "n"]):
    tv.launch(grid=1, warps=1)
    t = tv.load(a, (0,), (64,), layout=spatial(32) * tv.local(2))
    for k in tv.range(0, n, 64):
        t = tv.convert_layout(t, tv.local(2) * spatial(32))  # here


@tv.kernel
def defined_in_loop(a: tv.Global[f32, "n"]):
    tv.launch(grid=1)
    for k in tv.range(0, n, 16):
        x = tv.load(a, (k,), (16,))
    tv.store(a, x, (0,))  # here


@tv.kernel
def no_launch(a: tv.Global[f32, "n"]):  # here
    x = tv.zeros((16,), f32)


@tv.kernel
def int_division(a: tv.Global[i32, "n"]):
    tv.launch(grid=1)
    x = tv.load(a, (0,), (16,))
    tv.store(a, x / 2, (0,))  # here


@tv.kernel
def break_statement(a: tv.Global[f32, "n"]):
    tv.launch(grid=1)
    for k in range(4):  # a compile-time loop, unrolled
        if n > k:
            break  # here


@tv.kernel
def range_outside_for(a: tv.Global[f32, "n"]):
    tv.launch(grid=1)
    r = tv.range(0, n)  # here


@tv.kernel
def reduce_axis(a: tv.Global[f32, "m", "k"]):
    tv.launch(grid=1)
    x = tv.load(a, (0, 0), (16, 16))
    s = tv.sum(x, 2)  # here


@tv.kernel
def dot_accumulator(a: tv.Global[f16, "m", "k"]):
    tv.launch(grid=1)
    x = tv.load(a, (0, 0), (16, 16))
    acc = tv.dot(x, x, tv.zeros((16, 16), i32))  # here


@tv.kernel
def positional_const(a: tv.Global[f32, "n"], bs: tv.Const):  # here
    tv.launch(grid=1)


@tv.kernel
def python_print(a: tv.Global[f32, "n"]):
    tv.launch(grid=1)
    print(n)  # here


@tv.kernel
def assign_parameter(a: tv.Global[f32, "n"]):
    tv.launch(grid=1)
    n = 3  # here


@tv.kernel
def load_from_tile(a: tv.Global[f32, "n"]):
    tv.launch(grid=1)
    x = tv.zeros((16,), f32)
    y = tv.load(x, (0,), (16,))  # here


@tv.kernel
def runtime_warps(a: tv.Global[f32, "n"]):
    tv.launch(grid=1, warps=n)  # here


@tv.kernel
def chained_compare(a: tv.Global[f32, "n"]):
    tv.launch(grid=1)
    i = tv.block_idx()
    if 0 < i < n:  # here
        pass


@tv.kernel
def dim_is_param(n: tv.Global[f32, "n"]):  # here
    tv.launch(grid=1)


@tv.kernel
def stale_after_loop(a: tv.Global[f32, "n"]):
    tv.launch(grid=1)
    j = 0
    for k in tv.range(0, n):
        for j in range(2):
            pass
    tv.store(a, tv.full((1,), j, f32), (0,))  # here


@tv.kernel
def layout_shape(a: tv.Global[f32, "n"]):
    tv.launch(grid=1, warps=1)
    x = tv.zeros((4, 4), f32, layout=spatial(8, 4))  # here


@tv.kernel
def int_other(a: tv.Global[i32, "n"]):
    tv.launch(grid=1)
    x = tv.load(a, (0,), (16,), other=float("-inf"))  # here


@tv.kernel
def dot_tf32_of_f16(a: tv.Global[f16, "m", "k"]):
    tv.launch(grid=1)
    x = tv.load(a, (0, 0), (16, 16))
    acc = tv.dot(x, x, precision="tf32")  # here


@tv.kernel
def dot_unknown_precision(a: tv.Global[f32, "m", "k"]):
    tv.launch(grid=1)
    x = tv.load(a, (0, 0), (16, 16))
    acc = tv.dot(x, x, precision="fast")  # here


@tv.kernel
def dot_runtime_precision(a: tv.Global[f32, "m", "k"]):
    tv.launch(grid=1)
    x = tv.load(a, (0, 0), (16, 16))
    acc = tv.dot(x, x, precision=m)  # here


@tv.kernel
def dot_unsupported_pair(a: tv.Global[f16, "m", "k"], b: tv.Global[bf16, "k", "n"]):
    tv.launch(grid=1)
    x = tv.load(a, (0, 0), (16, 16))
    yb = tv.load(b, (0, 0), (16, 8))
    acc = x @ yb  # here


@tv.kernel
def dot_mixed_accumulator(a: tv.Global[i8, "m", "k"], b: tv.Global[u8, "k", "n"]):
    tv.launch(grid=1)
    x = tv.load(a, (0, 0), (16, 32))
    y = tv.load(b, (0, 0), (32, 8))
    acc = tv.dot(x, y, tv.zeros((16, 8), f32))  # here


CASES = [
    (wrong_arity, "tv.load(", r"tv\.load: missing a required argument: 'shape'"),
    (dot_dtype_mismatch, "y, tv.zeros", r"dot: dtype mismatch: a is f16 but b is f32"),
    (shape_mismatch, "x + y", r"add: shapes \[16, 32\] and \[32, 16\] do not broadcast"),
    (undefined_name, "zz", r"undefined name 'zz'"),
    (runtime_shape, "(n, 16)", r"must be compile-time constants.*scalar 'n'"),
    (tile_if, "x > 0.0", r"if condition is a tile<u1\[16\]>.*tv\.where"),
    (with_statement, "with", r"'with' statements are not supported"),
    (missing_annotation, "b)", r"parameter 'b' has no annotation"),
    (too_many_offsets, "(0, 0, 0)",
     r"tv\.load: 3 offsets for tensor 'a' \(global<f32\[m, k\]>\) of rank 2"),
    (store_dtype, "tv.zeros", r"store: dtype mismatch: the tensor holds f16 but the value is f32"),
    (type_change_in_loop, "acc =", r"'acc' is tile<f32\[16\]> before this for but "
                                   r"tile<f16\[16\]> here"),
    (layout_change_in_loop, "t =", r"'t' is held in spatial\(32\) \* local\(2\) before this "
                                  r"for but in local\(2\) \* spatial\(32\) here; a variable "
                                  r"keeps its layout"),
    (defined_in_loop, "x, (0,)", r"'x' is only defined inside the 'for' at line \d+"),
    (no_launch, "def", r"never calls tv\.launch"),
    (int_division, "x / 2", r"'/' on i32 values; integer division is '//'"),
    (break_statement, "break", r"'break' under a run-time condition cannot leave a "
                                r"compile-time loop.*tv\.range"),
    (range_outside_for, "tv.range", r"tv\.range can only be the iterable of a for loop"),
    (reduce_axis, "2)", r"tv\.sum: axis 2 of a tile of rank 2"),
    (dot_accumulator, "tv.zeros((16, 16), i32)", r"a f16 dot accumulates in f32 or f16, not i32"),
    (positional_const, "bs", r"constants are keyword-only"),
    (python_print, "print", r"tv\.debug_print"),
    (assign_parameter, "n =", r"cannot assign to 'n'"),
    (load_from_tile, "x,", r"tv\.load: expected a global or shared tensor, got tile 'x'"),
    (runtime_warps, "n)", r"warps must be a compile-time constant"),
    (chained_compare, "0 < i < n", r"chained comparisons"),
    (stale_after_loop, "j, f32", r"'j' was given a compile-time value inside the 'for' at "
                                 r"line \d+, so it has no single value after it"),
    (layout_shape, "spatial", r"tv\.zeros: layout spatial\(8, 4\) is not a register layout "
                              r"of shape \[4, 4\]"),
    (int_other, "tv.load", r"load: other=-inf is not a value of i32"),
    (dim_is_param, '"n"]', r"dimension name 'n' is also the name of a parameter"),
    (dot_tf32_of_f16, '"tf32"', r"tv\.dot: precision='tf32' applies to f32 operands only .*, "
                                r"not f16 and f16"),
    (dot_unknown_precision, '"fast"', r"tv\.dot: precision must be one of \('ieee', 'tf32'\), "
                                      r"got 'fast'"),
    (dot_runtime_precision, "m)", r"tv\.dot: precision must be a compile-time constant"),
    (dot_unsupported_pair, "yb", r"dot: dtype mismatch: a is f16 but b is bf16, a pair no dot "
                                 r"instruction takes \(supported \(a, b\) pairs: .*\)"),
    (dot_mixed_accumulator, "tv.zeros", r"dot: a i8 x u8 dot accumulates in i32, not f32"),
]


@pytest.mark.parametrize(("fn", "snippet", "message"), CASES, ids=[c[0].__name__ for c in CASES])
def test_user_mistake_is_reported_at_its_line_and_column(fn, snippet, message):
    check(fn, snippet, message)


def test_at_least_fifteen_distinct_mistakes():
    assert len({c[2] for c in CASES}) >= 15


@tv.kernel
def needs_const(a: tv.Global[f32, "n"], *, bs: tv.Const):  # here
    tv.launch(grid=1)


def test_missing_constant_is_reported_at_the_parameter():
    check(needs_const, "bs", r"constant 'bs' has no default and was not given")


def test_unknown_constant_names_the_constants():
    with pytest.raises(TypeError, match=r"unknown constant\(s\) \['bq'\]"):
        needs_const.ir(bs=4, bq=2)


@tv.kernel
def copy_kernel(x: tv.Global[f32, "n"], y: tv.Global[f32, "n"]):
    tv.launch(grid=tv.cdiv(n, 16))
    i = tv.block_idx()
    tv.store(y, tv.load(x, (i * 16,), (16,)), (i * 16,))


def test_dimension_bound_to_two_sizes_names_the_argument():
    with pytest.raises(ValueError, match=r"argument 'y': dimension 'n' is 5 here but 4 from "
                                         r"argument 'x'"):
        copy_kernel(np.zeros(4, np.float32), np.zeros(5, np.float32), device="interp")


def test_wrong_dtype_and_rank_name_the_argument():
    with pytest.raises(TypeError, match=r"argument 'x': expected f32 data, got numpy dtype "
                                        r"float16"):
        copy_kernel(np.zeros(4, np.float16), np.zeros(4, np.float32), device="interp")
    with pytest.raises(ValueError, match=r"argument 'y': expected 1 dimensions \(n\), got shape "
                                         r"\(2, 2\)"):
        copy_kernel(np.zeros(4, np.float32), np.zeros((2, 2), np.float32), device="interp")
    with pytest.raises(TypeError, match=r"takes 2 arguments \(x, y\), got 1"):
        copy_kernel(np.zeros(4, np.float32), device="interp")


def test_internal_error_says_so_and_writes_a_report(monkeypatch, tmp_path):
    monkeypatch.setenv("TILEVM_CACHE_DIR", str(tmp_path))
    from tilevm.frontend import builder

    def broken(self, *args, **kwargs):
        raise KeyError("deliberate")

    @tv.kernel
    def fine(a: tv.Global[f32, "n"], *, bs: tv.Const = 4):
        tv.launch(grid=1)
        x = tv.zeros((bs,), f32)
        tv.store(a, x, (0,))

    monkeypatch.setattr(builder.Builder, "rename_last", broken)
    with pytest.raises(tv.InternalCompilerError) as info:
        fine.ir(bs=8)
    err = info.value
    assert str(err).startswith("internal compiler error — please report")
    assert not isinstance(err, tv.CompileError)
    report = err.report_path.read_text()
    assert err.report_path.parent.parent == tmp_path
    assert str(err.report_path) in str(err)
    assert "'bs': 8" in report and "KeyError" in report and "full(" in report


def test_a_crash_while_running_is_an_internal_error_too(monkeypatch, tmp_path):
    monkeypatch.setenv("TILEVM_CACHE_DIR", str(tmp_path))
    from tilevm.backend.interp import machine

    def broken(self, blk, s):
        raise KeyError("deliberate")

    monkeypatch.setattr(machine._Machine, "op_load", broken)
    with pytest.raises(tv.InternalCompilerError, match="please report") as info:
        copy_kernel(np.zeros(4, np.float32), np.zeros(4, np.float32), device="interp")
    report = info.value.report_path.read_text()
    assert "load(%x" in report and "'n': 4" in report


@tv.kernel
def scaled(x: tv.Global[tv.u4, "n"], s: tv.Scalar[i32], y: tv.Global[f32, "n"]):
    tv.launch(grid=1)
    tv.store(y, tv.cast(tv.load(x, (0,), (8,)), f32) * tv.cast(s, f32), (0,))


def test_scalar_and_sub_byte_arguments_are_checked_by_name():
    codes = tv.HostTensor.from_bits(np.arange(8) % 16, "u4")
    y = np.zeros(8, np.float32)
    scaled(codes, 3, y, device="interp")
    assert np.array_equal(y, np.arange(8) * 3.0)
    with pytest.raises(TypeError, match=r"argument 's': expected an integer for i32, got float"):
        scaled(codes, 3.5, y, device="interp")
    with pytest.raises(ValueError, match=r"argument 's': 4294967296 does not fit in i32"):
        scaled(codes, 2**32, y, device="interp")
    with pytest.raises(TypeError, match=r"argument 'x': expected u4 data, got numpy dtype uint8 "
                                        r"\(sub-byte data is passed as a tilevm.HostTensor\)"):
        scaled(np.zeros(8, np.uint8), 1, y, device="interp")
    with pytest.raises(TypeError, match=r"argument 'x': expected u4 data, got a HostTensor of u8"):
        scaled(tv.HostTensor.from_bits(np.zeros(8, np.uint8), "u8"), 1, y, device="interp")


def test_a_pinned_layout_must_cover_every_thread_of_the_block():
    from tilevm import spatial

    one_warp = spatial(4, 8)

    @tv.kernel
    def narrow(x: tv.Global[f32, "m", "n"]):
        tv.launch(grid=1, warps=4)
        t = tv.load(x, (0, 0), (4, 8), layout=one_warp)
        tv.store(x, tv.convert_layout(t, one_warp), (0, 0))

    with pytest.raises(tv.CompileError, match=r"tv.load: the layout spatial\(4, 8\) spreads over "
                                              r"32 threads, but the kernel has 4 warps = 128 "
                                              r"threads") as info:
        narrow.ir()
    assert info.value.source_line.strip().startswith("t = tv.load(")


# -- issue 12 item 6: messages that name the fix --------------------------------------------------


def _compile_error(fn, at: str | None = None, column_of: str | None = None) -> str:
    """The message of the CompileError ``fn``'s call raises; with ``at``, also checks that it
    points at the line of this file holding ``at``, at the column where ``column_of`` starts."""
    x = np.ones(64, np.float32)
    with pytest.raises(tv.CompileError) as info:
        fn(x, np.zeros(64, np.float32))
    if at is not None:
        lines = Path(__file__).read_text().splitlines()
        line = next(k for k, text in enumerate(lines, 1) if at in text)
        assert (info.value.line, info.value.col) == (
            line, lines[line - 1].index(at) + at.index(column_of or at) + 1)
    return str(info.value)


def test_a_tile_as_the_axis_of_tv_max_suggests_tv_maximum():
    @tv.kernel
    def pairwise(x: tv.Global[tv.f32, "n"], y: tv.Global[tv.f32, "n"]):
        tv.launch(grid=1, warps=1)
        a = tv.load(x, (0,), (64,))
        tv.store(y, tv.min(a, a), (0,))

    assert "use tv.minimum(a, b)" in _compile_error(pairwise, "tv.min(a, a)", "a)")


def test_math_functions_and_fractional_powers_on_tiles_suggest_the_builtin():
    import math

    @tv.kernel
    def with_math(x: tv.Global[tv.f32, "n"], y: tv.Global[tv.f32, "n"]):
        tv.launch(grid=1, warps=1)
        tv.store(y, math.sqrt(tv.load(x, (0,), (64,))), (0,))

    @tv.kernel
    def with_power(x: tv.Global[tv.f32, "n"], y: tv.Global[tv.f32, "n"]):
        tv.launch(grid=1, warps=1)
        tv.store(y, tv.load(x, (0,), (64,)) ** 0.5, (0,))

    message = _compile_error(with_math, "math.sqrt(tv.load(x, (0,), (64,)))")
    assert "math.sqrt computes on Python numbers" in message
    assert "on run-time values use tv.sqrt" in message
    assert "for a square root use tv.sqrt(x)" in _compile_error(
        with_power, "tv.load(x, (0,), (64,)) ** 0.5")


def test_calling_a_kernel_from_a_kernel_says_helpers_are_plain_functions():
    @tv.kernel
    def inner(x: tv.Global[tv.f32, "n"], y: tv.Global[tv.f32, "n"]):
        tv.launch(grid=1, warps=1)
        tv.store(y, tv.load(x, (0,), (64,)), (0,))

    @tv.kernel
    def outer(x: tv.Global[tv.f32, "n"], y: tv.Global[tv.f32, "n"]):
        tv.launch(grid=1, warps=1)
        inner(x, y)

    message = _compile_error(outer, "        inner(x, y)", "inner")
    assert "inner is a @tv.kernel: a kernel cannot launch another" in message
    assert "plain Python function" in message


def test_a_compile_error_shows_the_users_frames_not_tilevms():
    import traceback

    @tv.kernel
    def broken(x: tv.Global[tv.f32, "n"], y: tv.Global[tv.f32, "n"]):
        tv.launch(grid=1, warps=1)
        tv.store(y, tv.load(x, (0,), (64,)) ** 0.5, (0,))

    with pytest.raises(tv.CompileError) as info:
        broken(np.ones(64, np.float32), np.zeros(64, np.float32))
    package = str(Path(tv.__file__).resolve().parent)
    frames = traceback.extract_tb(info.value.__traceback__)
    inside = [f for f in frames if str(Path(f.filename).resolve()).startswith(package)]
    assert len(inside) <= 1, [f"{f.filename}:{f.lineno}" for f in inside]
    assert info.value.__suppress_context__


# -- issue 12 item 5: fewer explicit casts where no precision is at stake ------------------------


def test_a_number_beyond_the_tiles_float_range_is_a_diagnostic_not_inf():
    @tv.kernel
    def shifted(x: tv.Global[tv.f16, "n"], y: tv.Global[tv.f16, "n"], *, c: tv.Const = 1.0):
        tv.launch(grid=1, warps=1)
        tv.store(y, tv.load(x, (0,), (64,)) + c, (0,))

    x, y = np.ones(64, np.float16), np.zeros(64, np.float16)
    with pytest.raises(tv.CompileError, match=r"constant 70000 does not fit in f16 \(largest "
                                              r"finite value 65504\)"):
        shifted(x, y, c=70000.0)
    with pytest.raises(tv.CompileError, match="does not fit in f16"):
        shifted(x, y, c=65520.0)  # half an ulp above the largest: rounds to inf
    shifted(x, y, c=65519.0)  # rounds to 65504: fine
    assert np.array_equal(y, np.full(64, np.float16(65504.0) + np.float16(1)))


def test_an_integer_size_in_float_arithmetic_converts_but_integer_tiles_do_not():
    @tv.kernel
    def mean(x: tv.Global[tv.f32, "n"], y: tv.Global[tv.f32, "n"]):
        tv.launch(grid=1, warps=1)
        t = tv.load(x, (0,), (64,))
        tv.store(y, tv.zeros((64,), tv.f32) + tv.sum(t, 0) / n, (0,))

    x = np.arange(64, dtype=np.float32)
    y = np.zeros(64, np.float32)
    mean(x, y)
    assert np.array_equal(y, np.full(64, np.float32(x.sum()) / np.float32(64)))

    @tv.kernel
    def mixed(x: tv.Global[tv.f32, "n"], k: tv.Global[tv.i32, "n"], y: tv.Global[tv.f32, "n"]):
        tv.launch(grid=1, warps=1)
        tv.store(y, tv.load(x, (0,), (64,)) + tv.load(k, (0,), (64,)), (0,))

    with pytest.raises(tv.CompileError, match="dtype mismatch: lhs is f32 but rhs is i32"):
        mixed(x, np.zeros(64, np.int32), y)


def test_a_name_rebound_to_another_layout_outside_loops_is_a_new_value():
    """``t = tv.convert_layout(t, other)`` in straight-line code names the converted tile (as
    Python rebinds a name), not an assignment the layouts would forbid."""
    @tv.kernel
    def rebound(x: tv.Global[f32, "n"], y: tv.Global[f32, "n"]):
        tv.launch(grid=1, warps=1)
        t = tv.load(x, (0,), (64,), layout=spatial(32) * tv.local(2))
        t = tv.convert_layout(t, tv.local(2) * spatial(32))
        tv.store(y, t * 2.0, (0,))

    x = np.arange(64, dtype=np.float32)
    y = np.zeros(64, np.float32)
    rebound(x, y)
    assert np.array_equal(y, 2 * x)

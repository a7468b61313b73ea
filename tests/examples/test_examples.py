"""The examples and the DESIGN §5 matmul, run on shapes that are not multiples of the tiles,
checked with the accuracy rule against float64 references."""

from __future__ import annotations

import numpy as np
import pytest
from example_loader import load_example

import tilevm as tv
from tilevm import f16, f32


@pytest.mark.parametrize(("name", "argv"), [
    ("vector_add", ["--n", "1000", "--block", "128"]),
    ("softmax", ["--m", "13", "--n", "75", "--rows", "4"]),
    ("matmul", ["--m", "70", "--n", "45", "--k", "72", "--bm", "32", "--bn", "32", "--bk", "32"]),
    ("matmul_w4a16", ["--m", "21", "--n", "37", "--k", "80", "--group", "32"]),
])
def test_example_checks_itself(name, argv):
    error = load_example(name).main(argv)
    assert np.isfinite(error)


def test_examples_are_not_trivially_passing():
    # The accuracy check must fail for a wrong result.
    check = load_example("accuracy").check_accuracy
    ref = np.linspace(1, 2, 10)
    with pytest.raises(AssertionError, match="exceeds the accuracy bound"):
        check("wrong", ref + 0.1, ref, ref.astype(np.float16), 2.0**-11)


@tv.kernel
def design_matmul(a: tv.Global[f16, "m", "k"], b: tv.Global[f16, "k", "n"],
                  c: tv.Global[f16, "m", "n"],
                  *, bm: tv.Const = 64, bn: tv.Const = 64, bk: tv.Const = 16):
    tv.launch(grid=(tv.cdiv(m, bm), tv.cdiv(n, bn)), warps=4)
    i, j = tv.block_idx()
    acc = tv.zeros((bm, bn), f32)
    for k0 in tv.range(0, k, bk):
        x = tv.load(a, (i * bm, k0), (bm, bk))
        y = tv.load(b, (k0, j * bn), (bk, bn))
        acc = tv.dot(x, y, acc)
    tv.store(c, tv.cast(acc, f16), (i * bm, j * bn))


def test_design_matmul_as_written():
    rng = np.random.default_rng(7)
    m, n, k = 70, 67, 40
    a = rng.standard_normal((m, k)).astype(np.float16)
    b = rng.standard_normal((k, n)).astype(np.float16)
    c = np.zeros((m, n), np.float16)
    design_matmul(a, b, c, device="interp")
    ref = a.astype(np.float64) @ b.astype(np.float64)
    base = (a.astype(np.float32) @ b.astype(np.float32)).astype(np.float16)
    load_example("accuracy").check_accuracy("design matmul", c, ref, base, f16.unit_roundoff)


@pytest.mark.parametrize(("wtype", "device"), [
    ("u3", "interp"),  # the suite's fixture also runs it on the CPU backend: bit for bit
    ("i5", "cpu"),
    ("f4e2m1", "cpu"),
])
def test_matmul_wna16_checks_itself_for_each_kind_of_weight(wtype, device):
    # main asserts the accuracy rule against float64 (examples/accuracy.py) and returns the error
    error = load_example("matmul_wna16").main(
        ["--wtype", wtype, "--m", "21", "--n", "37", "--k", "80", "--group", "32",
         "--device", device])
    assert np.isfinite(error) and error > 0


def test_matmul_wna16_refuses_weights_that_are_not_low_bit():
    wna16 = load_example("matmul_wna16")
    for wtype, message in (("u9", "1- to 8-bit"), ("f8e8m0fnu", "do not fit f16"),
                           ("f16", "1- to 8-bit")):
        with pytest.raises(ValueError, match=message):
            wna16.weight_type(wtype)

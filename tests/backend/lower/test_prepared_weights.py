"""Prepared weights: codes re-laid out offline (``prepare_weights``) are loaded as whole words per
thread and ``view``\\ ed straight into the ``dot``'s B fragment layout.

The oracles are independent of the preparation: the interpreter evaluates ``view`` through the
two layouts (so a wrong byte order would give a wrong GEMM there too), the result is compared
with float64, and the fixture compares the CPU backend with the interpreter bit for bit. The
layout functions are checked against their definitions element by element.
"""

from __future__ import annotations

import numpy as np
import pytest

import tilevm as tv
from tilevm import f16, f32, u32
from tilevm.backend.lower.cast_order import free_cast_operand_layout
from tilevm.backend.lower.dot_layouts import accumulator_layout, dot_shape, operand_layouts
from tilevm.ir.layout.algebra import permute
from tilevm.ir.layout.thread_words import (
    bit_permutation,
    permute_local_bits,
    thread_words_layout,
)
from tilevm.ir.tile.ops import dot_rule
from tilevm.kernels.weight_preparation import prepare_weights, prepared_tile_rows


def weight_layout(bm: int, bn: int, bk: int, warps: int):
    """The layout of a (bn, bk) weight tile that a (bm, bn) f16 dot reads as its transposed B."""
    atom = dot_shape(dot_rule("f16", "f16"))
    _, b = operand_layouts(accumulator_layout((bm, bn), atom, warps), bk, atom)
    return permute(b, [1, 0])


def make_gemm(name: str, layout, rows: int, words: int):
    wdt = tv.dtype(name)
    words_layout = thread_words_layout(layout, wdt.nbits)

    @tv.kernel
    def prepared_gemm(x: tv.Global[f16, "m", "k"], wp: tv.Global[u32, "r", "w"],
                      scales: tv.Global[f16, "n", "groups"], y: tv.Global[f16, "m", "n"],
                      *, bm: tv.Const, bn: tv.Const, bk: tv.Const, zero: tv.Const):
        tv.launch(grid=(tv.cdiv(m, bm), tv.cdiv(n, bn)), warps=4)
        i, j = tv.block_idx()
        steps = k // bk
        acc = tv.zeros((bm, bn), f32)
        for kb in tv.range(0, steps):
            a = tv.load(x, (i * bm, kb * bk), (bm, bk))
            packed = tv.load(wp, ((j * steps + kb) * rows, 0), (rows, words), layout=words_layout)
            q = tv.view(packed, wdt, layout)
            s = tv.load(scales, (j * bn, kb), (bn, 1))
            acc = tv.dot(a, tv.transpose((tv.cast(q, f16) - zero) * s), acc)
        tv.store(y, tv.cast(acc, f16), (i * bm, j * bn))

    return prepared_gemm


@pytest.mark.parametrize("order", ["natural", "free"])
@pytest.mark.parametrize("name", ["u4", "u2", "u8", "f4e2m1fn"])
def test_a_gemm_on_prepared_weights(name, order):
    dt = tv.dtype(name)
    bm, bn, bk = 32, 32, 32
    layout = weight_layout(bm, bn, bk, 4)
    if order == "free":  # the weights in the order the fast cast emits
        layout = free_cast_operand_layout(layout, dt, tv.f16) or layout
    rows = prepared_tile_rows(layout, dt.nbits)
    words = layout.local_size * dt.nbits // 32
    rng = np.random.default_rng(dt.nbits)
    m, n, k = 32, 64, 64
    codes = rng.integers(0, 1 << dt.nbits, size=(n, k))
    values = dt.decode(codes).astype(np.float64)
    zero = float(2 ** (dt.nbits - 1)) if dt.kind == "uint" else 0.0
    x = rng.standard_normal((m, k)).astype(np.float16)
    scales = (rng.uniform(0.5, 1.5, size=(n, k // bk)) / 4).astype(np.float16)
    y = np.zeros((m, n), np.float16)
    prepared = prepare_weights(codes, dt, layout)
    assert prepared.shape == (n // bn * k // bk * rows, words)
    make_gemm(name, layout, rows, words)(x, prepared, scales, y, bm=bm, bn=bn, bk=bk, zero=zero)

    w16 = ((values - zero) * np.repeat(scales.astype(np.float64), bk, axis=1)).astype(
        np.float16).astype(np.float64)
    expected = x.astype(np.float64) @ w16.T
    magnitude = np.abs(x.astype(np.float64)) @ np.abs(w16).T
    bound = 2.0**-11 * np.abs(expected) + 2.0**-20 * magnitude + 2.0**-24
    assert np.all(np.abs(y.astype(np.float64) - expected) <= bound)


def test_prepared_rows_hold_each_threads_codes_in_local_order():
    layout = weight_layout(32, 32, 32, 4)
    codes = np.arange(32 * 32).reshape(32, 32) % 16
    prepared = prepare_weights(codes, "u4", layout)
    words = thread_words_layout(layout, 4)
    r, c = layout.thread_local_to_index()
    for d in range(words.shape[0]):
        thread = words.holders((d, 0))[0][0]
        nibbles = [(int(prepared[d, e // 8]) >> (4 * (e % 8))) & 15
                   for e in range(layout.local_size)]
        assert nibbles == [codes[r[thread, e], c[thread, e]] for e in range(layout.local_size)]


@pytest.mark.parametrize("perm", [(0, 4, 1, 5, 2, 6, 3, 7), (0, 2, 4, 6, 1, 3, 5, 7), (0, 1, 2, 3)])
def test_permuted_local_bits_read_what_the_cast_writes(perm):
    layout = weight_layout(32, 32, 32, 4)
    permuted = permute_local_bits(layout, perm)
    assert permuted is not None
    group = len(perm)
    for t in (0, 5, 37, 127):
        for g in range(layout.local_size // group):
            for s in range(group):
                assert permuted.coords(t, g * group + perm[s]) == layout.coords(t, g * group + s)


def test_only_bit_permutations_are_layouts():
    assert bit_permutation((0, 4, 1, 5, 2, 6, 3, 7)) == (1, 2, 0)
    assert bit_permutation((0, 2, 1, 3)) == (1, 0)
    assert bit_permutation((1, 0, 2, 3)) is None
    assert bit_permutation((0, 1, 2)) is None
    assert permute_local_bits(weight_layout(32, 32, 32, 4), (2, 0, 1, 3)) is None

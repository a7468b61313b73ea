"""Fragment layouts against the PTX ISA's fragment formulas, for every lane and element.

The oracles below are the ISA's text, transcribed (PTX ISA 8.x/9.x, chapter "Warp Level Matrix
Multiply-Accumulate Instructions"; section numbers move between versions, titles do not):

- §9.7.14.5.7 "Matrix Fragments for mma.m16n8k8" (.tf32 A, B; C/D of .f16x2/.f32 type);
- §9.7.14.5.8 "Matrix Fragments for mma.m16n8k16 with floating point type" (.f16/.bf16 A, B, C);
- §9.7.14.5.10 "Matrix Fragments for mma.m16n8k32" (.s8/.u8/.e4m3/.e5m2 A, B; C/D);
- §9.7.14.5.15 "Warp-level matrix load instruction: ldmatrix".

In each, ``groupID = %laneid >> 2`` and ``threadID_in_group = %laneid % 4``; the fragment's
element ``i`` is the layout's local index ``i``.
"""

from __future__ import annotations

import pytest

from tilevm.ir.layout import (
    ldmatrix_fragment,
    ldmatrix_row_starts,
    local,
    mma_fragment,
    mma_min_sm,
    spatial,
)


def m16n8k16_a(lane: int, i: int) -> tuple[int, int]:
    group, tig = lane >> 2, lane % 4
    row = group if (0 <= i < 2 or 4 <= i < 6) else group + 8
    col = tig * 2 + (i & 0x1) if i < 4 else tig * 2 + (i & 0x1) + 8
    return row, col


def m16n8k16_b(lane: int, i: int) -> tuple[int, int]:
    group, tig = lane >> 2, lane % 4
    row = tig * 2 + (i & 0x1) if i < 2 else tig * 2 + (i & 0x1) + 8
    return row, group


def m16n8_c(lane: int, i: int) -> tuple[int, int]:
    group, tig = lane >> 2, lane % 4
    row = group if i < 2 else group + 8
    return row, tig * 2 + (i & 0x1)


def m16n8k32_a(lane: int, i: int) -> tuple[int, int]:
    group, tig = lane >> 2, lane % 4
    row = group if (0 <= i < 4 or 8 <= i < 12) else group + 8
    col = tig * 4 + (i & 0x3) if i < 8 else tig * 4 + (i & 0x3) + 16
    return row, col


def m16n8k32_b(lane: int, i: int) -> tuple[int, int]:
    group, tig = lane >> 2, lane % 4
    row = tig * 4 + (i & 0x3) if i < 4 else tig * 4 + (i & 0x3) + 16
    return row, group


def m16n8k8_tf32_a(lane: int, i: int) -> tuple[int, int]:
    group, tig = lane >> 2, lane % 4
    row = group if i in (0, 2) else group + 8
    col = tig if i in (0, 1) else tig + 4
    return row, col


def m16n8k8_tf32_b(lane: int, i: int) -> tuple[int, int]:
    group, tig = lane >> 2, lane % 4
    return (tig if i == 0 else tig + 4), group


CASES = [
    ("m16n8k8", "tf32", op, formula, shape, count)
    for op, formula, shape, count in (("a", m16n8k8_tf32_a, (16, 8), 4),
                                      ("b", m16n8k8_tf32_b, (8, 8), 2),
                                      ("c", m16n8_c, (16, 8), 4))
] + [
    ("m16n8k16", dt, op, formula, shape, count)
    for dt in ("f16", "bf16")
    for op, formula, shape, count in (("a", m16n8k16_a, (16, 16), 8),
                                      ("b", m16n8k16_b, (16, 8), 4),
                                      ("c", m16n8_c, (16, 8), 4))
] + [
    ("m16n8k32", dt, op, formula, shape, count)
    for dt in ("s8", "u8", "e4m3", "e5m2")
    for op, formula, shape, count in (("a", m16n8k32_a, (16, 32), 16),
                                      ("b", m16n8k32_b, (32, 8), 8),
                                      ("c", m16n8_c, (16, 8), 4))
]


@pytest.mark.parametrize("shape_name, dtype_name, operand, formula, shape, count", CASES)
def test_mma_fragment_matches_the_isa(shape_name, dtype_name, operand, formula, shape, count):
    layout = mma_fragment(shape_name, dtype_name, operand)
    assert layout.shape == shape
    assert (layout.num_threads, layout.local_size) == (32, count)
    for lane in range(32):
        for i in range(count):
            assert layout.coords(lane, i) == formula(lane, i), (lane, i)
            assert layout.holders(formula(lane, i)) == [(lane, i)]


def test_accumulator_fragment_is_the_design_example():
    # DESIGN §4: the m16n8k16 C fragment is local(2,1) * spatial(8,4) * local(1,2).
    assert mma_fragment("m16n8k16", "f16", "c") == local(2, 1) * spatial(8, 4) * local(1, 2)
    assert repr(mma_fragment("m16n8k16", "f16", "c")) == \
        "local(2, 1) * spatial(8, 4) * local(1, 2)"


def test_f16_accumulator_pairs_share_a_register_at_the_f32_coordinates():
    # "Accumulators (C or D)": .f16 is "two .f16x2 registers" holding c0..c3 low to high; the
    # same row/col formula as .f32. Elements 2r, 2r+1 are register r's halves: adjacent columns.
    for shape, dtype in (("m16n8k8", "tf32"), ("m16n8k16", "f16"), ("m16n8k32", "e4m3")):
        c = mma_fragment(shape, dtype, "c")
        for lane in range(32):
            for r in range(2):
                (row0, col0), (row1, col1) = c.coords(lane, 2 * r), c.coords(lane, 2 * r + 1)
                assert (row0, col0 + 1) == (row1, col1) == (m16n8_c(lane, 2 * r + 1))


def test_min_sm_marks_fp8_as_sm89():
    assert mma_min_sm("m16n8k32", "e4m3") == mma_min_sm("m16n8k32", "e5m2") == 89
    assert mma_min_sm("m16n8k32", "s8") == mma_min_sm("m16n8k16", "bf16") == 80
    assert mma_min_sm("m16n8k8", "tf32") == 80
    assert mma_min_sm("m16n8k32", "f8e4m3fn") == 89  # tilevm's dtype names are accepted
    assert mma_fragment("m16n8k32", "i8", "a") == mma_fragment("m16n8k32", "s8", "a")


def test_mma_fragment_errors_name_the_argument():
    with pytest.raises(ValueError, match="shape 'm8n8k4'"):
        mma_fragment("m8n8k4", "f16", "a")
    with pytest.raises(ValueError, match="dtype 's8'"):
        mma_fragment("m16n8k16", "s8", "a")
    with pytest.raises(ValueError, match="dtype 'f16'"):
        mma_fragment("m16n8k8", "f16", "a")  # tilevm takes only tf32 at m16n8k8
    with pytest.raises(ValueError, match="operand"):
        mma_fragment("m16n8k16", "f16", "d")


def ldmatrix_isa(lane: int, i: int, trans: bool, blocks: list[tuple[int, int]]
                 ) -> tuple[int, int]:
    """Element i of lane's registers: register i // 2 holds matrix i // 2. Without .trans,
    "a group of four threads loads an entire row": lane holds row lane // 4, columns
    2 * (lane % 4) + {0, 1}; ".trans ... loaded in column-major format" swaps row and column."""
    row, col = lane // 4, 2 * (lane % 4) + i % 2
    if trans:
        row, col = col, row
    block_row, block_col = blocks[i // 2]
    return block_row * 8 + row, block_col * 8 + col


ARRANGEMENTS = {
    1: [[(0, 0)]],
    2: [[(0, 0), (1, 0)], [(0, 0), (0, 1)]],
    4: [[(0, 0), (1, 0), (0, 1), (1, 1)], [(0, 0), (0, 1), (1, 0), (1, 1)],
        [(0, 0), (1, 0), (2, 0), (3, 0)]],
}


@pytest.mark.parametrize("trans", [False, True])
@pytest.mark.parametrize("num, blocks", [(n, b) for n, bs in ARRANGEMENTS.items() for b in bs])
def test_ldmatrix_fragment_matches_the_isa(num, blocks, trans):
    layout = ldmatrix_fragment(num, trans, blocks)
    assert (layout.num_threads, layout.local_size) == (32, 2 * num)
    for lane in range(32):
        for i in range(2 * num):
            assert layout.coords(lane, i) == ldmatrix_isa(lane, i, trans, blocks), (lane, i)
    # Lanes 8j..8j+7 give the row addresses of matrix j.
    assert ldmatrix_row_starts(num, blocks) == [
        (blocks[lane // 8][0] * 8 + lane % 8, blocks[lane // 8][1] * 8) for lane in range(8 * num)]


def test_ldmatrix_defaults_feed_mma_operands():
    # The default arrangement is the mma-A order, so x4 loads exactly the A fragment, and x2
    # .trans of a row-major K x N tile loads exactly the B fragment.
    assert ldmatrix_fragment(4) == mma_fragment("m16n8k16", "f16", "a")
    assert ldmatrix_fragment(2, trans=True) == mma_fragment("m16n8k16", "f16", "b")
    assert ldmatrix_fragment(4, arrangement=[(0, 0), (1, 0), (0, 1), (1, 1)]) == \
        ldmatrix_fragment(4)


def test_ldmatrix_errors_name_the_argument():
    with pytest.raises(ValueError, match="num"):
        ldmatrix_fragment(3)
    with pytest.raises(ValueError, match="row-major or column-major"):
        ldmatrix_fragment(4, arrangement=[(0, 0), (1, 1), (0, 1), (1, 0)])
    with pytest.raises(ValueError, match="holding 4 matrices"):
        ldmatrix_fragment(4, arrangement=local(2, 1))

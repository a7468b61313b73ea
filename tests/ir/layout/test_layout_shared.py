"""Shared layouts with XOR swizzles, the bank-conflict model (DESIGN §4), and global layouts.

Oracles: CuTe's Swizzle<B, M, S> formula on byte offsets, written from its documentation
(``offset ^ shiftr(offset & yyy_msk, S)`` with ``yyy_msk = ((1 << B) - 1) << (M + max(0, S))``;
``shiftr`` by a negative amount shifts left), and bank counts worked out by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tilevm.ir.layout import (
    GlobalLayout,
    SharedLayout,
    Swizzle,
    bank_conflicts,
    ldmatrix_bank_conflicts,
)


def cute_swizzle(offset: int, b: int, m: int, s: int) -> int:
    picked = offset & (((1 << b) - 1) << (m + max(0, s)))
    return offset ^ (picked >> s if s >= 0 else picked << -s)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 3), st.integers(0, 3), st.integers(3, 5), st.booleans(),
       st.integers(0, 1 << 16))
def test_swizzle_is_cute_swizzle_on_bytes_with_16_byte_atoms(bits, base, shift, down, offset):
    shift = -shift if down else shift
    swizzle = Swizzle(bits, base, shift)
    assert swizzle.cute() == (bits, base + 4, shift)
    assert swizzle.apply(offset) == cute_swizzle(offset, bits, base + 4, shift)
    assert swizzle.apply(swizzle.apply(offset)) == offset
    assert swizzle.apply(offset) & 15 == offset & 15


def test_wgmma_tma_swizzle_modes():
    # 128-byte mode: the 16-byte chunk (bits 4-6) is XORed with the 128-byte row index mod 8
    # (bits 7-9); 64 and 32 bytes use 2 and 1 of those bits.
    for nbytes, bits in ((32, 1), (64, 2), (128, 3)):
        swizzle = Swizzle.mode(nbytes)
        for offset in range(0, 4096, 16):
            chunk, row = (offset >> 4) & 7, (offset >> 7) & 7
            mask = (1 << bits) - 1
            expected = (offset & ~(mask << 4)) | (((chunk ^ row) & mask) << 4)
            assert swizzle.apply(offset) == expected
    with pytest.raises(ValueError, match="nbytes"):
        Swizzle.mode(16)
    with pytest.raises(ValueError, match="shift"):
        Swizzle(3, 0, 2)


def test_swizzled_tile_offsets_are_a_permutation():
    layout = SharedLayout.row_major(64, 64, swizzle=Swizzle.mode(128))
    offsets = layout.bit_offsets(16)
    assert sorted(offsets.ravel().tolist()) == list(range(0, 64 * 64 * 16, 16))
    assert layout.size_bytes(16) == 8192
    assert layout.byte_offset((1, 8), 16) == 128 + (1 ^ 1) * 16
    assert layout.byte_offset((3, 0), 16) == 3 * 128 + 3 * 16


def test_sub_byte_elements_keep_their_bit_position():
    layout = SharedLayout.row_major(16, 64, swizzle=Swizzle.mode(32))
    # u4: element (1, 0) is at byte 32 = 16-byte chunk 2, row 0 of 128 bytes: unswizzled;
    # element (4, 1) is at bit 4*256 + 4 = byte 128 + bit 4, chunk 8: row 1 flips chunk bit 0.
    assert layout.bit_offset((1, 0), 4) == 256
    assert layout.bit_offset((4, 1), 4) == (128 + 16) * 8 + 4
    with pytest.raises(ValueError, match="not on a byte"):
        layout.byte_offset((0, 1), 4)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1, 8), min_size=1, max_size=3), st.sampled_from((4, 8, 16)),
       st.sampled_from((None, Swizzle.mode(32), Swizzle.mode(128))), st.data())
def test_vectorized_offsets_match_scalar_offsets(shape, nbits, swizzle, data):
    strides = [data.draw(st.integers(0, 64)) for _ in shape]
    layout = SharedLayout(shape, strides, swizzle)
    offsets = layout.bit_offsets(nbits)
    for index in np.ndindex(*shape):
        unswizzled = sum(i * s for i, s in zip(index, strides)) * nbits
        expected = unswizzled if swizzle is None else \
            swizzle.apply(unswizzled // 8) * 8 + unswizzled % 8
        assert layout.bit_offset(index, nbits) == offsets[index] == expected


def test_shared_layout_constructors_and_errors():
    assert SharedLayout.row_major(4, 8).strides == (8, 1)
    assert SharedLayout.column_major(4, 8).strides == (1, 4)
    assert SharedLayout((4, 8), (1, 4)).element_offset((3, 2)) == 11
    with pytest.raises(ValueError, match="differ in rank"):
        SharedLayout((4, 8), (1,))
    with pytest.raises(ValueError, match="outside"):
        SharedLayout.row_major(4, 8).element_offset((4, 0))
    with pytest.raises(TypeError, match="swizzle"):
        SharedLayout((4,), (1,), swizzle=(3, 0, 3))
    layout = SharedLayout.row_major(4, 4)
    assert hash(layout) == hash(SharedLayout((4, 4), (4, 1)))


def ldmatrix_x4_addresses(layout: SharedLayout) -> list[int]:
    """Row addresses of an ldmatrix.x4 of the 16x16 f16 tile at the origin, matrices in mma-A
    order: lane 8j + r gives row r of matrix j, which covers rows 8(j % 2)…, columns 8(j // 2)…"""
    lanes = []
    for lane in range(32):
        j, r = divmod(lane, 8)
        lanes.append(layout.byte_offset(((j % 2) * 8 + r, (j // 2) * 8), 16))
    return lanes


def test_ldmatrix_on_an_unswizzled_64x64_f16_tile_is_8_way():
    # Row r of the tile starts at byte 128 r, so bank (128 r / 4) % 32 = 0 for every r: the 8
    # rows of a matrix all hit banks 0-3 (plus a column offset), 8 distinct words per bank.
    # Each of the 4 phases takes 8 wavefronts instead of 1: 4 * 7 = 28 extra.
    addresses = ldmatrix_x4_addresses(SharedLayout.row_major(64, 64))
    assert addresses[:8] == [128 * r for r in range(8)]
    assert ldmatrix_bank_conflicts(addresses) == 28
    assert bank_conflicts(addresses, 16) == 28


def test_ldmatrix_on_a_128_byte_swizzled_64x64_f16_tile_is_conflict_free():
    # With Swizzle(3, 0, 3), row r's chunk c moves to chunk c ^ (r % 8): the 8 rows of a matrix
    # read chunks c ^ 0 … c ^ 7, eight different groups of 4 banks: 1 wavefront per phase.
    layout = SharedLayout.row_major(64, 64, swizzle=Swizzle.mode(128))
    addresses = ldmatrix_x4_addresses(layout)
    assert addresses[:8] == [128 * r + 16 * r for r in range(8)]
    assert ldmatrix_bank_conflicts(addresses) == 0


def test_bank_model_small_cases():
    words = [4 * lane for lane in range(32)]
    assert bank_conflicts(words, 4) == 0                       # one word per bank
    assert bank_conflicts([0] * 32, 4) == 0                    # broadcast of one word is free
    assert bank_conflicts([8 * lane for lane in range(32)], 4) == 1   # stride 2 words: 2-way
    assert bank_conflicts([128 * lane for lane in range(32)], 4) == 31  # all in bank 0
    assert bank_conflicts([8 * lane for lane in range(32)], 8) == 0   # 2 phases of 16 lanes
    assert bank_conflicts([2 * lane for lane in range(32)], 2) == 0   # 16 words, pairs share
    column = [128 * lane for lane in range(32)]                # f16 column of a 64-wide tile
    assert bank_conflicts(column, 2) == 31
    assert bank_conflicts([None] * 31 + [4], 4) == 0
    assert bank_conflicts([16 * lane for lane in range(32)], 16) == 0  # 4 phases of 8 lanes
    with pytest.raises(ValueError, match="width"):
        bank_conflicts([0], 3)
    with pytest.raises(ValueError, match="lane 1"):
        bank_conflicts([0, 6], 4)
    with pytest.raises(ValueError, match="32 lanes"):
        bank_conflicts([0] * 33, 4)


def test_global_layout_symbolic_strides():
    g = GlobalLayout(("m", "k", "n"))
    assert g.strides == ("k * n", "n", 1)
    assert g.symbols == {"m", "k", "n"}
    env = {"m": 4, "k": 5, "n": 6}
    assert g.bind(env) == GlobalLayout((4, 5, 6), (30, 6, 1))
    index = (1, 2, 3)
    assert g.offset(index, env) == int(np.ravel_multi_index(index, (4, 5, 6)))
    padded = GlobalLayout(("m", "k"), strides=("(k + 7) // 8 * 8", 1))
    assert padded.bind({"m": 2, "k": 13}).strides == (16, 1)
    with pytest.raises(KeyError, match="'k'"):
        g.offset(index, {"m": 1})
    with pytest.raises(ValueError, match="integer expression"):
        GlobalLayout(("m", "__import__('os')"))
    with pytest.raises(ValueError, match="integer expression"):
        GlobalLayout(("m ** 2",))
    with pytest.raises(ValueError, match="differ in rank"):
        GlobalLayout(("m",), strides=(1, 1))

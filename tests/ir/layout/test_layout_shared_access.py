"""A register layout over a shared layout (tilevm/ir/layout/shared_access.py), against element-by-
element oracles: the shared layout's own offsets of the elements each thread holds, brute-force
contiguity and alignment of every thread's groups, and the bank model on the listed addresses."""

from __future__ import annotations

import numpy as np
import pytest

from tilevm.ir.layout import (
    SharedLayout,
    Swizzle,
    bank_conflicts,
    ldmatrix_fragment,
    local,
    replicated,
    spatial,
)
from tilevm.ir.layout.shared_access import (
    bit_offsets,
    ldmatrix_form,
    shared_bank_conflicts,
    shared_vector_bits,
)

CASES = [
    (spatial(8, 16) * local(1, 8), SharedLayout.row_major(8, 128), 16),
    (spatial(8, 16) * local(1, 8), SharedLayout.row_major(8, 128, swizzle=Swizzle.mode(128)), 16),
    (local(2, 1) * spatial(16, 8) * local(1, 4), SharedLayout.row_major(32, 32), 32),
    (spatial(32, 4) * local(1, 2), SharedLayout((32, 8), (9, 1)), 8),
    (replicated(2) * spatial(4, 16) * local(1, 4), SharedLayout.column_major(4, 64), 4),
    (local(4, 2) * spatial(8, 16), SharedLayout.row_major(32, 32), 16),
]


@pytest.mark.parametrize(("reg", "shared", "nbits"), CASES)
def test_offsets_are_the_shared_layouts_offsets_of_the_elements_held(reg, shared, nbits):
    want = shared.bit_offsets(nbits)[reg.thread_local_to_index()]
    assert np.array_equal(bit_offsets(reg, shared, nbits), want)


def _brute_vector_bits(reg, shared, nbits) -> int:
    offsets = shared.bit_offsets(nbits)[reg.thread_local_to_index()]
    best = nbits
    for bits in (8, 16, 32, 64, 128):
        count = bits // nbits
        if bits % nbits or count < 2 or reg.local_size % count:
            continue
        groups = offsets.reshape(reg.num_threads, -1, count)
        contiguous = np.all(groups == groups[:, :, :1] + nbits * np.arange(count))
        if not (contiguous and np.all(groups[:, :, 0] % bits == 0)):
            break
        best = bits
    return best


@pytest.mark.parametrize(("reg", "shared", "nbits"), CASES)
def test_the_vector_width_is_what_every_thread_can_use(reg, shared, nbits):
    assert shared_vector_bits(reg, shared, nbits) == _brute_vector_bits(reg, shared, nbits)


def test_ldmatrix_needs_the_fragment_and_16_byte_rows():
    tile = local(2, 2) * ldmatrix_fragment(4)  # a 32 x 32 f16 tile of 2 x 2 x4 loads
    assert ldmatrix_form(tile, SharedLayout.row_major(32, 32), 16) == (4, False)
    assert ldmatrix_form(tile, SharedLayout.row_major(32, 32, swizzle=Swizzle.mode(64)),
                         16) == (4, False)
    # Rows 36 elements apart start 72 bytes apart: not on a 16-byte boundary (40 would be).
    assert ldmatrix_form(tile, SharedLayout((32, 32), (36, 1)), 16) is None
    assert ldmatrix_form(tile, SharedLayout((32, 32), (40, 1)), 16) == (4, False)
    assert ldmatrix_form(spatial(8, 16) * local(4, 2), SharedLayout.row_major(32, 32), 16) is None
    assert ldmatrix_form(ldmatrix_fragment(2, trans=True), SharedLayout.row_major(16, 8),
                         16) is not None


@pytest.mark.parametrize(("reg", "shared", "nbits"), CASES)
def test_bank_conflicts_score_warp_0_on_the_bank_model(reg, shared, nbits):
    bits = shared_vector_bits(reg, shared, nbits)
    offsets = shared.bit_offsets(nbits)[reg.thread_local_to_index()][:32] // 8
    width, count = max(bits // 8, 1), max(bits // nbits, 1)
    want = sum(bank_conflicts([int(a) - int(a) % width for a in offsets[:, k]], width)
               for k in range(0, reg.local_size, count))
    assert shared_bank_conflicts(reg, shared, nbits, bits) == want


def test_a_swizzle_removes_the_conflicts_of_a_column_walk():
    # Each lane reads 16 bytes of one row; 8 lanes walk down a column of 128-byte rows.
    reg = spatial(32, 1) * local(1, 8)
    plain = SharedLayout((32, 8), (64, 1))  # the first 8 columns of 32 rows of 64 f16
    swizzled = SharedLayout((32, 8), (64, 1), swizzle=Swizzle.mode(128))
    assert shared_bank_conflicts(reg, plain, 16, 128) > 0
    assert shared_bank_conflicts(reg, swizzled, 16, 128) == 0

"""Dense LSB-first packing (DESIGN §3): round trips for every width and hand-computed bytes."""

from __future__ import annotations

import numpy as np
import pytest

from tilevm.ir.dtypes import pack, unpack
from tilevm.ir.packing import read_patterns, write_patterns


def reference_pack(values: list[int], nbits: int) -> bytes:
    """Element k occupies bits [k·n, (k+1)·n) of one big little-endian integer."""
    whole = 0
    for k, v in enumerate(values):
        whole |= v << (k * nbits)
    return whole.to_bytes((len(values) * nbits + 7) // 8, "little")


@pytest.mark.parametrize("nbits", [*range(1, 33), 64])
def test_pack_unpack_round_trip_every_width(nbits):
    rng = np.random.default_rng(nbits)
    for count in (0, 1, 7, 8, 9, 123):
        values = rng.integers(0, 2**nbits, size=count, dtype=np.uint64)
        buf = pack(values, nbits)
        assert buf.dtype == np.uint8 and buf.size == (count * nbits + 7) // 8
        assert bytes(buf) == reference_pack([int(v) for v in values], nbits)
        np.testing.assert_array_equal(unpack(buf, nbits, count), values)


def test_hand_written_bytes():
    # u3 values 1..7, 0: bits 001 010 011 100 101 110 111 000 from the LSB up.
    # byte 0 = 1 | 2<<3 | (3 & 0b11)<<6 = 0xD1; byte 1 = 3>>2 | 4<<1 | 5<<4 | (6 & 1)<<7 = 0x58;
    # byte 2 = 6>>1 | 7<<2 | 0<<5 = 0x1F.
    assert pack(np.array([1, 2, 3, 4, 5, 6, 7, 0]), 3).tolist() == [0xD1, 0x58, 0x1F]
    # u4: element 0 is the low nibble.
    assert pack(np.array([0x1, 0x2, 0x3]), 4).tolist() == [0x21, 0x03]
    # u1: bit k of byte 0 is element k.
    assert pack(np.array([1, 0, 1, 1, 0, 0, 0, 1, 1]), 1).tolist() == [0b10001101, 0b1]
    # u5: 31, 1 → 11111 | 00001<<5 = 0x03F.
    assert pack(np.array([31, 1]), 5).tolist() == [0x3F, 0x00]
    # u12: 0xABC, 0x123 → 0x123ABC little-endian.
    assert pack(np.array([0xABC, 0x123]), 12).tolist() == [0xBC, 0x3A, 0x12]


def test_unpack_at_a_bit_offset():
    values = np.arange(20) % 8
    buf = pack(values, 3)
    np.testing.assert_array_equal(unpack(buf, 3, 5, bit_offset=3 * 11), values[11:16])


def test_write_patterns_leaves_other_bits_alone():
    buf = np.full(4, 0xFF, dtype=np.uint8)
    write_patterns(buf, np.array([3, 14]), np.array([0, 0b101]), 5)
    expected = int.from_bytes(b"\xff" * 4, "little")
    expected &= ~(0b11111 << 3) & ~(0b11111 << 14)
    expected |= 0b101 << 14
    assert bytes(buf) == expected.to_bytes(4, "little")
    np.testing.assert_array_equal(read_patterns(buf, np.array([3, 14]), 5), [0, 0b101])


def test_bad_input_is_reported():
    with pytest.raises(ValueError, match="does not fit in 3 bits"):
        pack(np.array([8]), 3)
    with pytest.raises(ValueError, match="nbits must be"):
        pack(np.array([1]), 33)
    with pytest.raises(ValueError, match="buffer holds 8"):
        unpack(np.zeros(1, np.uint8), 3, 3)
    with pytest.raises(TypeError, match="must be uint8"):
        unpack(np.zeros(1, np.int32), 3, 1)
    with pytest.raises(TypeError, match="must be integers"):
        pack(np.array([1.5]), 3)

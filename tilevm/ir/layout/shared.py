"""Shared-memory layouts: element strides plus an XOR swizzle of byte offsets.

The swizzle is CuTe's ``Swizzle<B, M, S>`` applied to byte offsets with the 16-byte unit as its
atom: bits ``[base + shift, base + shift + bits)`` of the 16-byte unit index are XORed into bits
``[base, base + bits)``. Bytes inside a 16-byte unit never move, so 16-byte vector accesses and
``ldmatrix`` rows stay contiguous. In CuTe's byte terms this is ``Swizzle<bits, base + 4, shift>``;
the 32-, 64- and 128-byte modes of wgmma and TMA are ``Swizzle(1, 0, 3)``, ``Swizzle(2, 0, 3)``
and ``Swizzle(3, 0, 3)`` (``Swizzle.mode(n)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tilevm.ir.layout.register import _ints, _prod

_UNIT_BITS = 4  # the swizzle atom is 16 bytes


@dataclass(frozen=True)
class Swizzle:
    """XOR swizzle on 16-byte units (see the module docstring).

    ``bits``: how many bits are XORed; ``base``: how many low bits of the unit index stay fixed;
    ``shift``: how far above them the source bits lie (negative: below). ``|shift| >= bits`` so
    that the swizzle is its own inverse, as CuTe requires.
    """

    bits: int
    base: int
    shift: int

    def __post_init__(self) -> None:
        _ints("Swizzle", (self.bits, self.base, self.shift))
        if self.bits < 0 or self.base < 0:
            raise ValueError(f"{self!r}: bits and base must be non-negative")
        if abs(self.shift) < self.bits:
            raise ValueError(f"{self!r}: |shift| must be at least bits")

    @classmethod
    def mode(cls, nbytes: int) -> Swizzle:
        """The wgmma/TMA swizzle mode of ``nbytes`` (32, 64 or 128) bytes."""
        modes = {32: 1, 64: 2, 128: 3}
        if nbytes not in modes:
            raise ValueError(f"Swizzle.mode: nbytes must be 32, 64 or 128, got {nbytes!r}")
        return cls(modes[nbytes], 0, 3)

    def cute(self) -> tuple[int, int, int]:
        """The equivalent CuTe ``Swizzle<B, M, S>`` on byte offsets."""
        return (self.bits, self.base + _UNIT_BITS, self.shift)

    def apply_units(self, unit: int | np.ndarray) -> int | np.ndarray:
        """Swizzle a 16-byte unit index (an int or an integer numpy array)."""
        source = ((1 << self.bits) - 1) << (self.base + max(0, self.shift))
        if self.shift >= 0:
            return unit ^ ((unit & source) >> self.shift)
        return unit ^ ((unit & source) << -self.shift)

    def apply(self, byte_offset: int | np.ndarray) -> int | np.ndarray:
        """Swizzle a byte offset (an int or an integer numpy array)."""
        return (self.apply_units(byte_offset >> _UNIT_BITS) << _UNIT_BITS) | (byte_offset & 15)

    def __repr__(self) -> str:
        return f"Swizzle({self.bits}, {self.base}, {self.shift})"


@dataclass(frozen=True, init=False)
class SharedLayout:
    """A shared-memory tile layout: ``shape``, element ``strides`` and an optional ``swizzle``.

    The address of element ``index`` for elements of ``nbits`` bits is the bit offset
    ``sum(index * strides) * nbits`` with its byte part swizzled (bits inside a byte never move).
    """

    shape: tuple[int, ...]
    strides: tuple[int, ...]
    swizzle: Swizzle | None

    def __init__(self, shape: Sequence[int], strides: Sequence[int],
                 swizzle: Swizzle | None = None) -> None:
        shape, strides = _ints("shape", shape), _ints("strides", strides)
        if len(shape) != len(strides):
            raise ValueError(f"SharedLayout: shape {shape} and strides {strides} differ in rank")
        if any(s < 1 for s in shape) or any(s < 0 for s in strides):
            raise ValueError(f"SharedLayout: shape {shape} must be positive and strides "
                             f"{strides} non-negative")
        if swizzle is not None and not isinstance(swizzle, Swizzle):
            raise TypeError(f"SharedLayout: swizzle must be a Swizzle or None, got {swizzle!r}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "strides", strides)
        object.__setattr__(self, "swizzle", swizzle)

    @classmethod
    def row_major(cls, *shape: int, swizzle: Swizzle | None = None) -> SharedLayout:
        """A dense row-major layout (last dimension contiguous)."""
        strides, step = [], 1
        for s in reversed(_ints("shape", shape)):
            strides.append(step)
            step *= s
        return cls(shape, tuple(reversed(strides)), swizzle)

    @classmethod
    def column_major(cls, *shape: int, swizzle: Swizzle | None = None) -> SharedLayout:
        """A dense column-major layout (first dimension contiguous)."""
        strides, step = [], 1
        for s in _ints("shape", shape):
            strides.append(step)
            step *= s
        return cls(shape, tuple(strides), swizzle)

    @property
    def size(self) -> int:
        """The number of elements of the tile."""
        return _prod(self.shape)

    def element_offset(self, index: Sequence[int]) -> int:
        """The unswizzled linear element offset of ``index``."""
        index = _ints("index", index)
        if len(index) != len(self.shape) or any(not 0 <= i < s for i, s in zip(index, self.shape)):
            raise ValueError(f"index {index} is outside the tile shape {self.shape}")
        return sum(i * s for i, s in zip(index, self.strides))

    def _swizzle_bits(self, bits: int | np.ndarray) -> int | np.ndarray:
        if self.swizzle is None:
            return bits
        return (self.swizzle.apply(bits >> 3) << 3) | (bits & 7)

    def bit_offset(self, index: Sequence[int], nbits: int) -> int:
        """The bit offset of element ``index`` for elements of ``nbits`` bits."""
        return int(self._swizzle_bits(self.element_offset(index) * nbits))

    def byte_offset(self, index: Sequence[int], nbits: int) -> int:
        """The byte offset of element ``index``; raises if the element does not start a byte."""
        bits = self.bit_offset(index, nbits)
        if bits % 8:
            raise ValueError(f"element {tuple(index)} of {nbits}-bit type starts at bit {bits}, "
                             f"not on a byte")
        return bits // 8

    def bit_offsets(self, nbits: int) -> np.ndarray:
        """Every element's bit offset: an int64 array of the tile's shape."""
        grids = np.indices(self.shape, dtype=np.int64)
        linear = sum((g * s for g, s in zip(grids, self.strides)), np.zeros(self.shape, np.int64))
        return self._swizzle_bits(linear * nbits)

    def size_bytes(self, nbits: int) -> int:
        """Bytes the tile spans from offset 0: the end of its last element, rounded up."""
        return int((self.bit_offsets(nbits).max() + nbits + 7) // 8)

    def __repr__(self) -> str:
        shape = repr(self.shape)
        tail = f", swizzle={self.swizzle!r}" if self.swizzle is not None else ""
        return f"SharedLayout({shape}, strides={self.strides!r}{tail})"

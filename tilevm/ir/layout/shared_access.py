"""A register layout over a shared layout: where each thread's elements live in shared memory,
the widest access that reaches them, whether ``ldmatrix`` can, and the bank conflicts of a warp.

The address is affine in the register layout's digits (:mod:`digits`): a digit of dimension ``d``
and weight ``w`` moves the element ``w · strides[d]`` elements, so each digit has a coefficient in
bits, and

    bit offset(thread, local) = swizzle(Σ digit value · coefficient)

where the swizzle permutes 16-byte units and never moves bits inside one. Vector widths and
``ldmatrix`` legality follow from the coefficients (divisibility), not from listing elements;
the bank-conflict score lists one warp's addresses, because the bank model is defined on them.
"""

from __future__ import annotations

import math

import numpy as np

from tilevm.ir.layout.algebra import LayoutDivisionError, divide
from tilevm.ir.layout.banks import bank_conflicts
from tilevm.ir.layout.digits import Digit, layout_digits
from tilevm.ir.layout.fragments import ldmatrix_fragment
from tilevm.ir.layout.register import RegisterLayout
from tilevm.ir.layout.shared import SharedLayout

__all__ = ["bit_offsets", "coefficients", "ldmatrix_form", "shared_bank_conflicts",
           "shared_vector_bits"]


def coefficients(reg: RegisterLayout, shared: SharedLayout, nbits: int
                 ) -> list[tuple[Digit, int]]:
    """Every digit of ``reg`` that selects elements, with the bits one step of it moves the
    element in ``shared`` (before the swizzle)."""
    if tuple(reg.shape) != tuple(shared.shape):
        raise ValueError(f"a register layout of shape {reg.shape} over a shared layout of shape "
                         f"{shared.shape}")
    return [(g, g.weight * shared.strides[g.dim] * nbits) for g in layout_digits(reg)
            if g.kind != "replica"]


def bit_offsets(reg: RegisterLayout, shared: SharedLayout, nbits: int) -> np.ndarray:
    """The bit offset of every (thread, local) element: an int64 array of shape
    ``(threads, locals)``, swizzle applied."""
    t = np.arange(reg.num_threads, dtype=np.int64)[:, None]
    i = np.arange(reg.local_size, dtype=np.int64)[None, :]
    total = np.zeros((reg.num_threads, reg.local_size), np.int64)
    for g, coef in coefficients(reg, shared, nbits):
        number = t if g.kind == "thread" else i
        total = total + (number // g.stride) % g.size * coef
    if shared.swizzle is not None:
        total = (shared.swizzle.apply(total >> 3) << 3) | (total & 7)
    return total


def shared_vector_bits(reg: RegisterLayout, shared: SharedLayout, nbits: int,
                       base_bits: int = 1024) -> int:
    """The widest access (8 to 128 bits; ``nbits`` when none groups elements) that reads every
    thread's groups of consecutive local elements of ``reg`` in ``shared`` at once: the group
    must be contiguous in shared memory (the innermost local digit, of coefficient ``nbits``)
    and start at a multiple of the width (every other coefficient, and the buffer's start
    ``base_bits``, a multiple of it). A swizzle moves whole 16-byte units, so it keeps such a
    group whole."""
    terms = coefficients(reg, shared, nbits)
    run = next((g.size for g, c in terms if g.kind == "local" and g.stride == 1 and c == nbits),
               1)
    best = nbits
    for bits in (8, 16, 32, 64, 128):
        count = bits // nbits
        if bits % nbits or count < 2 or run % count:
            continue
        align = base_bits
        for g, c in terms:
            inner = g.kind == "local" and g.stride == 1 and c == nbits
            align = math.gcd(align, c * count if inner else c) if c else align
        if align % bits:
            break
        best = bits
    return best


def ldmatrix_form(reg: RegisterLayout, shared: SharedLayout, nbits: int = 16
                  ) -> tuple[int, bool] | None:
    """``(num, trans)`` of the widest ``ldmatrix.x{num}{.trans}`` that loads 16-bit elements of
    ``shared`` into ``reg`` (``reg`` divides by the instruction's fragment, and every 8-element
    row of each matrix is 16 contiguous bytes starting on a 16-byte boundary), or ``None``."""
    if nbits != 16 or reg.rank != 2 or shared.strides[-1] != 1:
        return None
    for num in (4, 2, 1):
        for trans in (False, True):
            try:
                divide(reg, ldmatrix_fragment(num, trans))
            except (LayoutDivisionError, ValueError):
                continue
            # Column steps inside one 8-element row are contiguous (stride 1); every other step
            # must keep a row start on a 16-byte boundary.
            ok = all(c % 128 == 0 for g, c in coefficients(reg, shared, nbits)
                     if not (g.dim == 1 and g.weight < 8))
            if ok:
                return num, trans
    return None


def shared_bank_conflicts(reg: RegisterLayout, shared: SharedLayout, nbits: int,
                          bits: int) -> int:
    """The extra wavefronts warp 0 needs, summed over the accesses of ``bits`` bits that cover
    its elements (the bank model of :func:`~tilevm.ir.layout.banks.bank_conflicts`)."""
    offsets = bit_offsets(reg, shared, nbits)[:32] // 8
    width = max(bits // 8, 1)
    per_access = max(bits // nbits, 1)
    total = 0
    for first in range(0, reg.local_size, per_access):
        total += bank_conflicts([int(a) - int(a) % width for a in offsets[:, first]], width)
    return total

"""How a tile access is cut into memory instructions: the vector width, proven in the algebra.

A thread's elements of a tile in layout ``L`` are visited in *groups* of ``v`` consecutive local
indices that are also consecutive along the tensor's last dimension: that needs ``L``'s innermost
local digit (local stride 1) to run along the last dimension with weight 1 (a *run* of that
digit's size), and the last dimension's memory stride to be 1. One group is one memory
instruction of ``v · nbits`` bits (8 to 128, a power of two). The instruction must be naturally
aligned, which is proven, not hoped for: a group starts at the bit offset

    base + Σ_d (offset_d + index_d) · stride_d · nbits

and each term is a known multiple — the base by the specialization's alignment fact, an offset
by the divisibility analysis of the program's scalars, a stride by the specialization, and an
index by the weights of the layout's digits (the run's digit moves in steps of ``v``). The width
is the largest power of two dividing all of them, at most the run and 128 bits.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from tilevm.backend.lower.divisibility import UNBOUNDED
from tilevm.ir.layout.digits import layout_digits
from tilevm.ir.layout.register import RegisterLayout

__all__ = ["AccessPlan", "index_divisor", "innermost_run", "plan_access"]


@dataclass(frozen=True)
class AccessPlan:
    """``vector`` elements per memory instruction, ``bits`` wide, and why not wider."""

    vector: int
    bits: int
    reason: str


def innermost_run(layout: RegisterLayout) -> int:
    """How many consecutive local elements of ``layout`` are consecutive along its last
    dimension (the innermost local digit's size, if it has stride 1 and runs along the last
    dimension with weight 1; else 1)."""
    for g in layout_digits(layout):
        if g.kind == "local" and g.stride == 1 and g.dim == layout.rank - 1 and g.weight == 1:
            return g.size
    return 1


def index_divisor(layout: RegisterLayout, dim: int, vector: int) -> int:
    """What the index along ``dim`` of the first element of every group of ``vector``
    consecutive local elements is a multiple of (``UNBOUNDED`` if it is always 0)."""
    d = UNBOUNDED
    for g in layout_digits(layout):
        if g.kind == "replica" or g.dim != dim:
            continue
        runs = g.kind == "local" and g.stride == 1 and g.weight == 1 and dim == layout.rank - 1
        d = math.gcd(d, vector if runs else g.weight) if d != UNBOUNDED else (
            vector if runs else g.weight)
    return d


def plan_access(layout: RegisterLayout, nbits: int, contiguous: bool,
                alignment: Callable[[int], int], why_single: str = "") -> AccessPlan:
    """The widest legal access for a tile in ``layout`` of ``nbits``-bit elements (see the
    module docstring). ``alignment(v)`` is what every group's start is proven a multiple of, in
    bits, for groups of ``v`` elements. ``why_single`` forces one element per access (a mask
    tile, say) and says why."""
    if why_single:
        return AccessPlan(1, nbits, why_single)
    if not contiguous:
        return AccessPlan(1, nbits, "the last dimension's stride is not known to be 1")
    run = innermost_run(layout)
    if run == 1:
        return AccessPlan(1, nbits, "no two consecutive registers hold consecutive elements of "
                                    "the last dimension")
    best = AccessPlan(1, nbits, "")
    for bits in (8, 16, 32, 64, 128):
        vector = bits // nbits
        if bits % nbits or vector < 2 or run % vector:
            continue
        if alignment(vector) % bits:
            break
        best = AccessPlan(vector, bits, "")
    if best.vector == 1:
        reason = ("the addresses are not known to be aligned to two elements" if nbits % 8 == 0
                  else f"{nbits}-bit elements fill whole bytes only in groups the alignment "
                       "does not allow")
    elif best.bits == 128:
        reason = "the widest access"
    elif best.vector == run or best.bits * 2 > run * nbits:
        reason = f"each thread holds runs of {run} consecutive elements"
    else:
        reason = f"the addresses are proven multiples of {best.bits // 8} bytes only"
    return AccessPlan(best.vector, best.bits, reason)

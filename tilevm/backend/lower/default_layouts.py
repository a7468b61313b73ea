"""The layouts the lowering chooses when the program does not say: coalesced and vectorized.

:func:`blocked_layout` is what a global load or store wants (Triton's "blocked" encoding in
tilevm's algebra): each thread holds a vector of up to 16 bytes along the last dimension, the
lanes of a warp hold consecutive vectors (the last dimension first, then the ones before it), the
warps split the outer dimensions, and what is left repeats in each thread's registers. A tile with
fewer vectors than threads gets narrower vectors first (but elements of 2 to 7 bits keep whole
bytes in one thread), and is *replicated* (several threads hold the same elements) only when it
has fewer elements than threads.
"""

from __future__ import annotations

import math
from functools import cache

from tilevm.ir.layout.algebra import local, replicated, spatial
from tilevm.ir.layout.register import RegisterLayout

__all__ = ["blocked_layout"]


def _power_of_two_divisor(n: int, limit: int) -> int:
    """The largest power of two that divides ``n`` and is at most ``limit``."""
    p = 1
    while p * 2 <= limit and n % (p * 2) == 0:
        p *= 2
    return p


@cache
def blocked_layout(shape: tuple[int, ...], nbits: int, warps: int,
                   vector_bits: int = 128, spread: bool = True) -> RegisterLayout:
    """The coalesced layout of a tile of ``shape`` with ``nbits``-bit elements over ``warps``
    warps: ``local(rest) * spatial(warps) * spatial(lanes) * local(vector)`` with replication
    where the tile has too few elements (see the module docstring). ``spread=False`` keeps the
    widest vectors even where threads then hold replicas (an asynchronous copy wants that)."""
    rank = len(shape)
    rest = list(shape)
    vector = [1] * rank
    # Vectors as wide as 16 bytes, but not so wide that threads go idle holding replicas.
    numel = 1
    for n in shape:
        numel *= n
    per_thread = max(1, numel // (32 * warps)) if spread else numel
    if 1 < nbits < 8:  # packed elements: at least a whole byte per thread, no shared bytes
        per_thread = max(per_thread, 8 // math.gcd(8, nbits))
    vector[-1] = _power_of_two_divisor(rest[-1], max(1, min(max(vector_bits // nbits, 1),
                                                            per_thread)))
    rest[-1] //= vector[-1]
    lanes = [1] * rank
    left = 32
    for d in reversed(range(rank)):
        lanes[d] = _power_of_two_divisor(rest[d], left)
        rest[d] //= lanes[d]
        left //= lanes[d]
    lane_replicas = left
    per_warp = [1] * rank
    left = warps
    for d in range(rank):
        per_warp[d] = _power_of_two_divisor(rest[d], left)
        rest[d] //= per_warp[d]
        left //= per_warp[d]
    warp_replicas = left
    return (local(*rest) * (spatial(*per_warp) * replicated(warp_replicas))
            * (replicated(lane_replicas) * spatial(*lanes)) * local(*vector))

"""The static heuristic that picks an autotuned kernel's configuration without a GPU
(docs/tuning.md, "Without a GPU").

From the candidates whose static resources fit (the pruning rules of the tuner; spilling ones only
when nothing else is left), in this order of preference:

1. those whose estimated occupancy reaches :data:`MIN_OCCUPANCY` (enough warps to hide latency);
2. the most work per block: the fewest blocks in the grid at the key's sizes;
3. the occupancy closest to :data:`TARGET_OCCUPANCY`;
4. the fewest registers per thread;
5. the first in the space's order.

Occupancy is the fraction of an SM's warp slots the kernel can fill: blocks per SM limited by
registers (ceil(regs/8)·8 × 32 per warp, 65536 per SM), shared memory (per-SM capacity, 1 KB
reserved per block), warps and the per-SM block limit of the architecture, times the block's
warps, over the SM's warps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["MIN_OCCUPANCY", "SM_LIMITS", "TARGET_OCCUPANCY", "SmLimits", "heuristic_rank",
           "occupancy"]

MIN_OCCUPANCY = 0.125  # 8 of 64 warps: what a register-heavy tile kernel typically reaches
TARGET_OCCUPANCY = 0.5


@dataclass(frozen=True)
class SmLimits:
    """What one SM holds (CUDA C++ Programming Guide, compute capabilities table)."""

    warps: int
    blocks: int
    registers: int
    shared_bytes: int


_KIB = 1024
SM_LIMITS = {
    80: SmLimits(64, 32, 65536, 164 * _KIB),
    86: SmLimits(48, 16, 65536, 100 * _KIB),
    89: SmLimits(48, 24, 65536, 100 * _KIB),
    90: SmLimits(64, 32, 65536, 228 * _KIB),
}
_RESERVED_SHARED = _KIB  # per block, taken by the system on sm_80 and later


def occupancy(registers: int, shared_bytes: int, warps: int, sm: int) -> float:
    """The fraction of an SM's warps that blocks of this kernel can keep resident on ``sm``
    (80, 86, 89, 90); 0 when not even one block fits."""
    limits = SM_LIMITS[sm]
    per_block_regs = -(-max(registers, 1) // 8) * 8 * 32 * warps
    blocks = min(limits.registers // per_block_regs,
                 limits.shared_bytes // (shared_bytes + _RESERVED_SHARED),
                 limits.warps // warps, limits.blocks)
    return blocks * warps / limits.warps


def heuristic_rank(candidates: Sequence[Any], sm: int, minimum: float = MIN_OCCUPANCY,
                   target: float = TARGET_OCCUPANCY) -> list[Any]:
    """``candidates`` (each with ``resources`` — registers, shared, warps — ``blocks`` at the
    call's sizes and ``index``) best first by the rule of this module."""
    def score(c: Any) -> tuple:
        r = c.resources
        occ = occupancy(r.registers, r.shared, r.warps, sm)
        return (occ < minimum, c.blocks, abs(occ - target), r.registers, c.index)

    return sorted(candidates, key=score)

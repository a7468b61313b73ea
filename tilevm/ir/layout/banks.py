"""The shared-memory bank-conflict model (DESIGN §4).

Shared memory has 32 banks of 4-byte words: the bank of byte address ``a`` is ``(a // 4) % 32``.
A warp's access of ``w`` bytes per thread is served in phases of ``128 / w`` consecutive lanes
(all 32 lanes in one phase for ``w <= 4``). Within a phase each bank delivers one distinct word per
wavefront, and threads reading the same word share it (broadcast is free), so a phase takes as many
wavefronts as the most distinct words any one bank must deliver. An ``ldmatrix`` matrix is one
phase of its 8 row addresses (16 bytes each), which is exactly the 16-byte rule.
"""

from __future__ import annotations

from collections.abc import Sequence

NUM_BANKS = 32
BANK_BYTES = 4
_WIDTHS = (1, 2, 4, 8, 16)


def _phase_wavefronts(addresses: Sequence[int], width: int) -> int:
    words: dict[int, set[int]] = {}
    for a in addresses:
        for word in range(a // BANK_BYTES, (a + width - 1) // BANK_BYTES + 1):
            words.setdefault(word % NUM_BANKS, set()).add(word)
    return max((len(w) for w in words.values()), default=0)


def bank_conflicts(addresses: Sequence[int | None], width: int) -> int:
    """The extra wavefronts a warp's shared access needs beyond one per phase.

    ``addresses``: the byte address each lane accesses (at most 32, lane order; ``None`` for a lane
    that does not take part); ``width``: bytes per lane (1, 2, 4, 8 or 16), each address naturally
    aligned. Returns ``sum over phases of (wavefronts - 1)``: 0 for a conflict-free access, 7 per
    phase for an 8-way conflict.
    """
    if width not in _WIDTHS:
        raise ValueError(f"bank_conflicts: width must be one of {_WIDTHS} bytes, got {width!r}")
    if len(addresses) > 32:
        raise ValueError(f"bank_conflicts: a warp has 32 lanes, got {len(addresses)} addresses")
    for lane, a in enumerate(addresses):
        if a is not None and (a < 0 or a % width):
            raise ValueError(f"bank_conflicts: lane {lane} address {a} is not a non-negative "
                             f"multiple of the width {width}")
    per_phase = 32 if width <= BANK_BYTES else 128 // width
    total = 0
    for start in range(0, 32, per_phase):
        phase = [a for a in addresses[start : start + per_phase] if a is not None]
        if phase:
            total += _phase_wavefronts(phase, width) - 1
    return total


def ldmatrix_bank_conflicts(row_addresses: Sequence[int | None]) -> int:
    """Extra wavefronts of an ``ldmatrix``: lane ``8j + r`` gives the byte address of row ``r``
    of matrix ``j`` (16 bytes); each matrix is one phase."""
    return bank_conflicts(row_addresses, 16)

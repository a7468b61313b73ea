"""A register layout as digits: the form the lowering computes with.

A register layout is a mixed-radix map from (thread, local) to a tile index (:mod:`register`).
Each mode is one *digit*: of the thread number (``"thread"``), of the local number (``"local"``),
or a replication of the thread number that selects nothing (``"replica"``). A digit has a size, a
``stride`` (its place value in its number) and, unless it is a replica, the tile dimension it
indexes and its ``weight`` there (its place value in the index along that dimension)::

    index[d] = sum(((number // digit.stride) % digit.size) * digit.weight
                   for digit in digits if digit.dim == d)

where ``number`` is the thread or the local number, as the digit's kind says. Because a thread
block has ``32 · warps`` threads, every thread digit and replica has a power-of-two size and stride;
:func:`split_lanes` cuts the one that straddles the lane/warp boundary, so that each thread digit
lies wholly in the lane bits (``stride < 32``) or wholly in the warp bits. That split is what plans
a reduction (butterflies over lane digits, shared memory over warp digits) and classifies a
layout conversion (registers, shuffles within a warp, or shared memory across warps).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tilevm.ir.layout.register import RegisterLayout

__all__ = ["Digit", "layout_digits", "local_digits", "split_lanes", "thread_digits"]

WARP_SIZE = 32


@dataclass(frozen=True)
class Digit:
    """One digit of a layout (see the module docstring)."""

    kind: str  # "thread", "local" or "replica"
    size: int
    stride: int
    dim: int = -1  # the tile dimension; -1 for a replica
    weight: int = 0  # the place value along ``dim``; 0 for a replica

    @property
    def in_lanes(self) -> bool:
        """Whether a thread digit or replica lies in the lane bits (after :func:`split_lanes`)."""
        return self.stride < WARP_SIZE


def layout_digits(layout: RegisterLayout) -> tuple[Digit, ...]:
    """Every digit of ``layout``: thread digits and replicas most significant first, then local
    digits most significant first (modes of size 1 have none)."""
    weights = []
    for i, d in enumerate(layout.mode_dims):
        w = 1
        for j in range(i + 1, len(layout.mode_shape)):
            if layout.mode_dims[j] == d:
                w *= layout.mode_shape[j]
        weights.append(w)
    out: list[Digit] = []
    for kind, chain in (("thread", layout.spatial_modes), ("local", layout.local_modes)):
        stride = 1
        chain_digits = []
        for e in reversed(chain):
            size = layout.mode_shape[e] if e >= 0 else -e
            if e >= 0:
                chain_digits.append(Digit(kind, size, stride, layout.mode_dims[e], weights[e]))
            else:
                chain_digits.append(Digit("replica", size, stride))
            stride *= size
        out += reversed(chain_digits)
    return tuple(out)


def split_lanes(digits: tuple[Digit, ...]) -> tuple[Digit, ...]:
    """``digits`` with the thread digit (or replica) that straddles thread 32 cut in two: the low
    part in the lane bits, the high part in the warp bits."""
    out: list[Digit] = []
    for g in digits:
        if g.kind == "local" or not g.stride < WARP_SIZE < g.stride * g.size:
            out.append(g)
            continue
        low = WARP_SIZE // g.stride
        high = replace(g, size=g.size // low, stride=WARP_SIZE,
                       weight=g.weight * low if g.kind == "thread" else 0)
        out += [high, replace(g, size=low)]
    return tuple(out)


def thread_digits(layout: RegisterLayout) -> tuple[Digit, ...]:
    """The thread digits and replicas of ``layout``, split at the lane/warp boundary."""
    return tuple(g for g in split_lanes(layout_digits(layout)) if g.kind != "local")


def local_digits(layout: RegisterLayout) -> tuple[Digit, ...]:
    """The local digits of ``layout``, most significant first."""
    return tuple(g for g in layout_digits(layout) if g.kind == "local")

"""The register layouts of a ``dot``: how the accumulator is spread over warps and tensor-core
atoms, and what that asks of the operands (DESIGN §4: division selects the instruction).

A tensor-core ``dot`` computes its accumulator C (M×N) in atoms of the ``mma.sync`` C fragment
(16×8). Its layout is ``Q * C_frag`` where the *quotient* Q (M/16 × N/8 atoms, one "thread" per
warp) says which warp holds which atoms and in which local order; by default warps split M×N as
squarely as the tile allows (:func:`warp_tiling`), never K, so that every accumulator element is
summed by one warp in increasing k (the per-chunk contract of DESIGN §3). An author who pins the
accumulator's layout chooses Q (it must divide by the C fragment).

The operands follow from Q: warp w needs the A rows and the B columns of its atoms, for every K
atom. So ``A = (reduce(Q, N) * local(1, K/s)) * A_half`` and ``B = (reduce(Q, M) * local(K/s, 1)) *
B_half``, with ``s`` half the atom's K (:class:`DotShape`): a warp's local atoms of A are its M
atoms (in Q's order) times the K steps, and the threads that split N in C hold replicas of A (and
those that split M replicas of B).

A ``dot`` in f32 with ``precision="ieee"`` has no tensor-core atom: each thread computes its own
accumulator elements by a sequential ``fma`` over k, so it holds whole rows of A and whole columns
of B (the same formulas with a 1×1 "fragment").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

from tilevm.backend.lower.default_layouts import blocked_layout
from tilevm.ir.layout import algebra
from tilevm.ir.layout.algebra import column_spatial, local, replicated, spatial
from tilevm.ir.layout.fragments import mma_fragment
from tilevm.ir.layout.register import RegisterLayout
from tilevm.ir.tile.ops import DotRule
from tilevm.ir.tile.program import Instr

__all__ = ["DotShape", "accumulator_layout", "dot_shape", "operand_layouts", "padded_shape",
           "quotient", "warp_tiling", "whole_atoms"]

_ATOM_K = {"m16n8k16": 16, "m16n8k32": 32, "m16n8k8": 8}


@dataclass(frozen=True)
class DotShape:
    """The atom of one ``dot``: its instruction (``None`` for the fma path), the atom's M, N and K,
    the K step of the operand layouts (half the atom's K; 1 for the fma path), and the fragment
    layouts: C's, and A's and B's for one K step (*half fragments*: the instruction's A fragment
    is ``local(1, 2) * a``, its B fragment ``local(2, 1) * b``). Laying operands out in half
    fragments lets a K that is an odd number of half atoms run, its last ``mma`` reading zeros
    for the missing half: zero products leave each chunk's exact sum as it is."""

    instruction: str | None
    m: int
    n: int
    k: int
    k_step: int
    a: RegisterLayout
    b: RegisterLayout
    c: RegisterLayout


@cache
def dot_shape(rule: DotRule) -> DotShape:
    """The atom a ``dot`` under ``rule`` is computed in."""
    if rule.instruction is None:
        one = local(1, 1)
        return DotShape(None, 1, 1, 1, 1, one, one, one)
    k = _ATOM_K[rule.instruction]
    inner = k // 8  # consecutive K elements per 32-bit register: 2 (16-bit), 4 (8-bit), 1 (tf32)
    a_type = rule.ptx_types[0] if rule.ptx_types else rule.a
    # PTX ISA, "Matrix Fragments for mma.m16n8k*": a_i sits at row g + 8·(i // inner % 2) and
    # the K half i // (2·inner); b_i at K half i // inner; the half fragments drop the K halves.
    a = local(2, 1) * spatial(8, 4) * local(1, inner)
    b = column_spatial(4, 8) * local(inner, 1)
    return DotShape(rule.instruction, 16, 8, k, k // 2, a, b,
                    mma_fragment(rule.instruction, a_type, "c"))


def padded_shape(s: Instr, atom: DotShape) -> tuple[int, int, int]:
    """``(M, N, K)`` of a ``dot`` rounded up to whole atoms (K to whole K steps)."""
    (m, k), n = s.args[0].type.shape, s.args[1].type.shape[1]
    return -(-m // atom.m) * atom.m, -(-n // atom.n) * atom.n, -(-k // atom.k_step) * atom.k_step


def whole_atoms(s: Instr, atom: DotShape) -> bool:
    """Whether a ``dot``'s M, N and K are whole numbers of atoms (K: of K steps); otherwise it is
    computed on zero-padded copies of its operands (:mod:`~tilevm.backend.lower.rules_dot`)."""
    (m, k), n = s.args[0].type.shape, s.args[1].type.shape[1]
    return padded_shape(s, atom) == (m, n, k)


def warp_tiling(m_atoms: int, n_atoms: int, warps: int) -> tuple[int, int]:
    """``(wm, wn)``: warps along M and N, each dividing its atom count, ``wm · wn`` as large as
    possible (at most ``warps``; the rest of the warps replicate), then the warp tile as square as
    possible (in atoms of 16×8 elements), then more warps along M."""
    best: tuple[float, int, int, int] | None = None
    for wm in range(1, warps + 1):
        for wn in range(1, warps // wm + 1):
            if m_atoms % wm or n_atoms % wn or warps % (wm * wn):
                continue
            aspect = abs(math.log2((m_atoms // wm * 16) / (n_atoms // wn * 8)))
            key = (-(wm * wn), aspect, -wm, wn)
            if best is None or key < best:
                best = key
    assert best is not None  # wm = wn = 1 always qualifies
    return -best[2], best[3]


def accumulator_layout(shape: tuple[int, int], atom: DotShape, warps: int) -> RegisterLayout:
    """The default layout of a ``dot``'s accumulator of ``shape`` (see the module docstring)."""
    m, n = shape
    if atom.instruction is None:
        return blocked_layout(shape, 32, warps)
    wm, wn = warp_tiling(m // atom.m, n // atom.n, warps)
    q = local(m // atom.m // wm, n // atom.n // wn) * spatial(wm, wn)
    if warps // (wm * wn) > 1:
        q = q * replicated(warps // (wm * wn))
    return q * atom.c


def quotient(acc: RegisterLayout, atom: DotShape) -> RegisterLayout:
    """The accumulator layout divided by the C fragment: one thread per warp, one local element
    per atom. Raises ``ValueError`` when it does not divide."""
    return algebra.divide(acc, atom.c)


def operand_layouts(acc: RegisterLayout, k: int, atom: DotShape
                    ) -> tuple[RegisterLayout, RegisterLayout]:
    """The layouts of A (M×``k``) and B (``k``×N) that a ``dot`` with accumulator layout ``acc``
    reads without moving data between warps. Raises ``ValueError`` when ``acc`` does not divide
    by the atom's C fragment."""
    q = quotient(acc, atom)
    steps = k // atom.k_step
    a = (algebra.reduce(q, [1], keepdims=True) * local(1, steps)) * atom.a
    b = (algebra.reduce(q, [0], keepdims=True) * local(steps, 1)) * atom.b
    return a, b

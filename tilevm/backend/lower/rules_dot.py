"""Lowering of ``dot``: tensor-core atoms (``mma.sync``) or a sequential ``fma`` per element.

The operands arrive in the layouts :mod:`~tilevm.backend.lower.dot_layouts` derives from the
accumulator's (layout inference converts them there), so every thread already holds the fragments
of its warp's atoms: element ``f`` of the fragment of local atom ``q`` is local element
``q · fragment_size + f``. The lowering is a rolled loop over the K atoms (outermost, so each
accumulator element sums its chunks in increasing k, DESIGN §3) and over the local digits of the
accumulator's quotient, with one ``mma.sync`` per atom: 32-bit fragment words are built from the
thread's registers (two 16-bit or four 8-bit elements per word), and the result goes back into the
accumulator's registers.
"""

from __future__ import annotations

from tilevm.backend.lower import values as vals
from tilevm.backend.lower.context import LoweringContext, rule
from tilevm.backend.lower.dot_layouts import DotShape, dot_shape, operand_layouts, quotient
from tilevm.backend.lower.dtype_map import is_packed
from tilevm.backend.lower.errors import lowering_error
from tilevm.ir.layout.digits import local_digits
from tilevm.ir.layout.register import RegisterLayout
from tilevm.ir.thread.types import B32, F32, U32
from tilevm.ir.thread.values import Index, Operand
from tilevm.ir.tile.ops import DotRule, dot_rule
from tilevm.ir.tile.program import Instr

__all__ = ["dot_rule_of", "lower_dot"]

_TARGETS_WITH = {89: "sm_89 and sm_90"}


def dot_rule_of(s: Instr) -> DotRule:
    """The rule of a Tile IR ``dot`` instruction."""
    a, b = s.args[0].type.dtype, s.args[1].type.dtype
    return dot_rule(a, b, s.attr("precision") or "ieee")


def _check_target(ctx: LoweringContext, s: Instr, r: DotRule) -> None:
    if ctx.target < r.min_sm:
        raise lowering_error(
            f"dot: {r.a} x {r.b} needs mma.sync of sm_{r.min_sm} or newer "
            f"({_TARGETS_WITH.get(r.min_sm, f'sm_{r.min_sm}+')}); this kernel is compiled for "
            f"sm_{ctx.target}: compile it for one of those targets, or cast the operands to "
            f"f16/bf16 first", s.loc)


class _Atoms:
    """Index arithmetic of one ``dot``: which local elements of A, B and C an atom uses."""

    def __init__(self, acc: RegisterLayout, k: int, atom: DotShape) -> None:
        self.atom = atom
        self.q = quotient(acc, atom)
        self.k_atoms = k // atom.k
        self.digits = local_digits(self.q)

    def _compact(self, qc: Index, dim: int) -> Index:
        """The local index, in ``reduce(q, other dim)``, of the atom ``qc`` of ``q``."""
        out: Index = 0
        place = 1
        for g in reversed(self.digits):
            if g.dim == dim:
                out = vals.plus(out, vals.scale(vals.digit(qc, g.stride, g.size), place))
                place *= g.size
        return out

    def a(self, qc: Index, kk: Index) -> Index:
        """The first local element of A's fragment for atom ``qc`` and K atom ``kk``."""
        qa = vals.plus(vals.scale(self._compact(qc, 0), self.k_atoms), kk)
        return vals.scale(qa, self.atom.a.local_size)

    def b(self, qc: Index, kk: Index) -> Index:
        qb = vals.plus(vals.scale(self._compact(qc, 1), self.k_atoms), kk)
        return vals.scale(qb, self.atom.b.local_size)

    def c(self, qc: Index) -> Index:
        return vals.scale(qc, self.atom.c.local_size)


def _word(ctx: LoweringContext, tile: vals.TileValue, i0: Index, per_word: int) -> Operand:
    """The 32-bit register holding local elements ``i0 … i0 + per_word − 1`` of ``tile``,
    LSB-first (``i0`` a multiple of ``per_word``)."""
    kb, dt = ctx.kb, tile.dtype
    if per_word == 1:  # tf32: the f32 rounded to nearest, ties away, low 13 bits zero
        return kb.cvt(vals.read(kb, tile, i0), B32, src=F32, rnd="rna")
    if is_packed(dt) and dt.nbits * per_word == 32:
        return tile.array[vals.quotient(i0, per_word)]
    if per_word == 2:
        lo, hi = vals.read_raw(kb, tile, i0), vals.read_raw(kb, tile, vals.plus(i0, 1))
        return kb.prmt(lo, hi, 0x5410)
    word = vals.read_raw(kb, tile, i0)
    for j in range(1, per_word):
        word = kb.bfi(vals.read_raw(kb, tile, vals.plus(i0, j)), word, 8 * j, 8)
    return word


def _words(ctx: LoweringContext, tile: vals.TileValue, i0: Index, count: int) -> Operand:
    per_word = 32 // tile.dtype.nbits if tile.dtype.nbits < 32 else 1
    if tile.dtype.name == "f32":
        per_word = 1
    regs = [_word(ctx, tile, vals.plus(i0, w * per_word), per_word) for w in range(count)]
    return ctx.kb.pack(regs, B32)


def _mma(ctx: LoweringContext, r: DotRule, atoms: _Atoms, a: vals.TileValue, b: vals.TileValue,
         acc: vals.TileValue, qc: Index, kk: Index) -> None:
    kb = ctx.kb
    i0 = atoms.c(qc)
    a_words = _words(ctx, a, atoms.a(qc, kk), 4)
    b_words = _words(ctx, b, atoms.b(qc, kk), 2)
    assert r.instruction is not None and r.ptx_types is not None
    atype, btype = r.ptx_types
    if acc.dtype.name == "f16":
        c_words = _words(ctx, acc, i0, 2)
        d = kb.mma(r.instruction, atype, a_words, b_words, c_words, btype=btype, ctype="f16")
        for w in range(2):
            word = kb.mov(kb.extract(d, w), U32) if d.type.elem != U32 else kb.extract(d, w)
            vals.write_raw(kb, acc, vals.plus(i0, 2 * w), kb.and_(word, 0xFFFF, type=B32))
            vals.write_raw(kb, acc, vals.plus(i0, 2 * w + 1), kb.shr(word, 16, type=U32))
        return
    c_regs = kb.pack([acc.array[vals.plus(i0, j)] for j in range(4)])
    d = kb.mma(r.instruction, atype, a_words, b_words, c_regs, btype=btype)
    for j in range(4):
        kb.extract(d, j, out=acc.array[vals.plus(i0, j)])


def _fma(ctx: LoweringContext, atoms: _Atoms, a: vals.TileValue, b: vals.TileValue,
         acc: vals.TileValue, qc: Index, kk: Index) -> None:
    kb = ctx.kb
    x, y = vals.read(kb, a, atoms.a(qc, kk)), vals.read(kb, b, atoms.b(qc, kk))
    kb.fma(x, y, acc.array[atoms.c(qc)], type=F32, out=acc.array[atoms.c(qc)])


@rule("dot")
def lower_dot(ctx: LoweringContext, s: Instr) -> None:
    """``dot(a, b, acc)`` (see the module docstring)."""
    kb = ctx.kb
    r = dot_rule_of(s)
    _check_target(ctx, s, r)
    atom = dot_shape(r)
    a, b, c = (ctx.tile(x) for x in s.args)
    result = ctx.new_tile(s.result)
    want_a, want_b = operand_layouts(result.layout, s.args[0].type.shape[1], atom)
    assert (a.layout, b.layout, c.layout) == (want_a, want_b, result.layout), (
        "layout inference gives a dot's operands the layouts its accumulator asks for")
    with vals.locals_loop(kb, result.array.length, "c") as i:
        kb.mov(c.array[i], result.array.type, out=result.array[i])
    atoms = _Atoms(result.layout, s.args[0].type.shape[1], atom)
    with (vals.locals_loop(kb, atoms.k_atoms, "kk") as kk,
          vals.locals_loop(kb, atoms.q.local_size, "atom", atoms.q) as qc):
        if atom.instruction is None:
            _fma(ctx, atoms, a, b, result, qc, kk)
        else:
            _mma(ctx, r, atoms, a, b, result, qc, kk)
    ctx.bind(s.result, result)


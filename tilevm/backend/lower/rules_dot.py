"""Lowering of ``dot``: tensor-core atoms (``mma.sync``), or a sequential ``fma`` per element.

The operands arrive in the layouts :mod:`~tilevm.backend.lower.dot_layouts` derives from the
accumulator's (layout inference converts them there), so every thread already holds the half
fragments of its warp's atoms: element ``f`` of the half fragment of local atom ``q`` is local
element ``q · half_size + f``. The lowering is a rolled loop over pairs of K steps (outermost, so
each accumulator element sums its chunks in increasing k, DESIGN §3) and over the local digits of
the accumulator's quotient, with one ``mma.sync`` per atom: 32-bit fragment words come straight
from a packed tile (8- and 16-bit types: four bytes or two halves to a word), tf32 words by
``cvt.rna.tf32.f32``; the result goes back into the accumulator's registers. A ``dot`` of partial
atoms runs on zero-padded copies; an f32 ``dot`` with ``precision="ieee"`` reads A and B from
shared memory, element by element, in an ``fma`` chain.
"""

from __future__ import annotations

from tilevm.backend.lower import values as vals
from tilevm.backend.lower.context import LoweringContext, rule
from tilevm.backend.lower.dot_layouts import (
    DotShape,
    accumulator_layout,
    dot_shape,
    operand_layouts,
    padded_shape,
    quotient,
    whole_atoms,
)
from tilevm.backend.lower.dtype_map import is_packed
from tilevm.backend.lower.errors import lowering_error
from tilevm.backend.lower.exchange import scratch_addressing, scratch_tensor
from tilevm.backend.lower.memory_access import (
    load_element,
    load_tile,
    raw_const,
    store_tile,
    zero_offsets,
)
from tilevm.ir.layout.digits import local_digits
from tilevm.ir.layout.register import RegisterLayout
from tilevm.ir.layout.shared import SharedLayout
from tilevm.ir.thread.types import B32, F32, TF32, U32
from tilevm.ir.thread.values import Const, Index, Operand
from tilevm.ir.tile.ops import DotRule, dot_rule_of
from tilevm.ir.tile.program import Instr

__all__ = ["lower_dot"]

_TARGETS_WITH = {89: "sm_89 and sm_90"}


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
        self.steps = k // atom.k_step  # the operands' K steps (half atoms; k for fma)
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

    def a(self, qc: Index, step: Index) -> Index:
        """The first local element of A's half fragment for atom ``qc`` and K step ``step``."""
        qa = vals.plus(vals.scale(self._compact(qc, 0), self.steps), step)
        return vals.scale(qa, self.atom.a.local_size)

    def b(self, qc: Index, step: Index) -> Index:
        """The first local element of B's half fragment for atom ``qc`` and K step ``step``."""
        qb = vals.plus(vals.scale(self._compact(qc, 1), self.steps), step)
        return vals.scale(qb, self.atom.b.local_size)

    def c(self, qc: Index) -> Index:
        return vals.scale(qc, self.atom.c.local_size)


def _word(ctx: LoweringContext, tile: vals.TileValue, i0: Index, per_word: int) -> Operand:
    """The 32-bit register holding local elements ``i0 … i0 + per_word − 1`` of ``tile``,
    LSB-first (``i0`` a multiple of ``per_word``)."""
    kb, dt = ctx.kb, tile.dtype
    if per_word == 1:  # tf32: the f32 rounded to nearest, ties away, low 13 bits zero
        return kb.mov(kb.cvt(vals.read(kb, tile, i0), TF32, src=F32, rnd="rna"), B32)
    assert is_packed(dt), dt  # 8- and 16-bit types: whole words already, in fragment order
    return tile.array[vals.quotient(i0, per_word)]


def _words(ctx: LoweringContext, tile: vals.TileValue, i0: Index, count: int) -> list[Operand]:
    """``count`` fragment words of ``tile`` from local element ``i0`` on."""
    nbits = tile.dtype.nbits
    per_word = 1 if tile.dtype.name == "f32" else 32 // nbits
    return [_word(ctx, tile, vals.plus(i0, w * per_word), per_word) for w in range(count)]


def _half_words(ctx: LoweringContext, tile: vals.TileValue, i0: Index | None, count: int,
                zero: float) -> list[Operand]:
    """The words of one half fragment, or ``zero`` (±0.0) in every element (``i0`` None) for the
    missing half of an odd number of K steps."""
    if i0 is None:
        dt = tile.dtype
        per_word = 1 if dt.name == "f32" else 32 // dt.nbits
        code = raw_const(dt, zero).value
        word = sum(code << (dt.nbits * j) for j in range(per_word))
        return [Const.of(word, B32)] * count
    return _words(ctx, tile, i0, count)


def _mma(ctx: LoweringContext, r: DotRule, atoms: _Atoms, a: vals.TileValue, b: vals.TileValue,
         acc: vals.TileValue, qc: Index, step: Index, last: bool) -> None:
    """One ``mma.sync`` on K steps ``step`` and ``step + 1`` (only ``step`` when ``last``)."""
    kb = ctx.kb
    i0 = atoms.c(qc)
    second = None if last else vals.plus(step, 1)
    a_words = [*_words(ctx, a, atoms.a(qc, step), 2),
               *_half_words(ctx, a, None if second is None else atoms.a(qc, second), 2, -0.0)]
    b_words = [*_words(ctx, b, atoms.b(qc, step), 1),
               *_half_words(ctx, b, None if second is None else atoms.b(qc, second), 1, 0.0)]
    assert r.instruction is not None and r.ptx_types is not None
    atype, btype = r.ptx_types
    a_reg, b_reg = kb.pack(a_words, B32), kb.pack(b_words, B32)
    if acc.dtype.name == "f16":
        c_words = _words(ctx, acc, i0, 2)
        d = kb.mma(r.instruction, atype, a_reg, b_reg, kb.pack(c_words, B32), btype=btype,
                   ctype="f16")
        for w in range(2):  # f16x2 words, in fragment order: the tile's own words
            kb.mov(kb.extract(d, w), B32, out=acc.array[vals.plus(vals.quotient(i0, 2), w)])
        return
    c_regs = kb.pack([acc.array[vals.plus(i0, j)] for j in range(4)])
    d = kb.mma(r.instruction, atype, a_reg, b_reg, c_regs, btype=btype)
    for j in range(4):
        kb.extract(d, j, out=acc.array[vals.plus(i0, j)])


def _fma_through_shared(ctx: LoweringContext, s: Instr, a: vals.TileValue, b: vals.TileValue,
                        acc: vals.TileValue) -> None:
    """``acc += a @ b`` in f32 by a sequential ``fma.rn`` over k for each accumulator element (the
    "ieee" precision): A and B go to the shared scratch area, each thread reads the row and the
    column of each of its elements from there, so no thread holds whole rows of A in registers."""
    kb = ctx.kb
    (m, k), n = a.layout.shape, b.layout.shape[1]
    zeros = zero_offsets(2)
    a_bytes = -(-m * k * 4 // 16) * 16
    base = ctx.scratch(a_bytes + k * n * 4)
    a_sh = vals.SharedTensor(a.dtype, base, SharedLayout.row_major(m, k), name="scratch")
    b_sh = vals.SharedTensor(b.dtype, base + a_bytes, SharedLayout.row_major(k, n),
                             name="scratch")
    a_acc, b_acc = scratch_addressing(a.dtype, a_sh), scratch_addressing(b.dtype, b_sh)
    ctx.barrier()  # the scratch area's last readers are done
    store_tile(ctx, s, a_acc, zeros, a, "none", None)
    store_tile(ctx, s, b_acc, zeros, b, "none", None)
    ctx.barrier()
    with vals.locals_loop(kb, acc.count, "e", acc.layout) as e:
        row, col = ctx.element_index(acc.layout, e)
        with vals.locals_loop(kb, k, "k") as kk:
            ki = vals.index_reg(kb, kk)
            x = kb.mov(load_element(ctx, a_acc, [row, ki], None, Const.of(0, U32)), F32)
            y = kb.mov(load_element(ctx, b_acc, [ki, col], None, Const.of(0, U32)), F32)
            kb.fma(x, y, acc.array[e], type=F32, out=acc.array[e])


def _through_scratch(ctx: LoweringContext, s: Instr, tile: vals.TileValue,
                     layout: RegisterLayout, name: str, pad: float = 0.0) -> vals.TileValue:
    """``tile`` moved through the shared scratch area into a tile in ``layout``, whose shape may
    be larger (the extra elements read ``pad``) or smaller (the elements outside are dropped)."""
    kb, dt = ctx.kb, tile.dtype
    small = tuple(min(x, y) for x, y in zip(tile.layout.shape, layout.shape, strict=True))
    sh = scratch_tensor(ctx, dt, small)
    zeros = zero_offsets(2)
    ctx.barrier()  # the scratch area's last readers are done
    store_tile(ctx, s, scratch_addressing(dt, sh), zeros, tile, "bounds", None)
    ctx.barrier()
    out = vals.new_tile(kb, dt, layout, name)
    load_tile(ctx, s, scratch_addressing(dt, sh), zeros, out, "bounds", None, pad)
    return out


def _compute(ctx: LoweringContext, s: Instr, r: DotRule, atom: DotShape, a: vals.TileValue,
             b: vals.TileValue, acc: vals.TileValue) -> None:
    """``acc += a @ b`` in place, the operands in the layouts ``acc``'s implies."""
    kb = ctx.kb
    atoms = _Atoms(acc.layout, a.layout.shape[1], atom)
    # K steps in pairs, the chunks in increasing k; an odd last step pairs with zeros.
    with (vals.locals_loop(kb, atoms.steps // 2, "kk") as kk,
          vals.locals_loop(kb, atoms.q.local_size, "atom", atoms.q) as qc):
        _mma(ctx, r, atoms, a, b, acc, qc, vals.scale(kk, 2), False)
    if atoms.steps % 2:
        with vals.locals_loop(kb, atoms.q.local_size, "atom", atoms.q) as qc:
            _mma(ctx, r, atoms, a, b, acc, qc, atoms.steps - 1, True)


@rule("dot")
def lower_dot(ctx: LoweringContext, s: Instr) -> None:
    """``dot(a, b, acc)`` (see the module docstring). A ``dot`` whose M, N or K is not a whole
    number of atoms runs on zero-padded copies of its operands made through shared memory, and
    its result is cut back the same way (zero products leave every chunk's sum as it is)."""
    kb = ctx.kb
    r = dot_rule_of(s)
    _check_target(ctx, s, r)
    atom = dot_shape(r)
    a, b, c = (ctx.tile(x) for x in s.args)
    result = ctx.new_tile(s.result)
    if atom.instruction is None:
        with vals.locals_loop(kb, result.array.length, "c") as i:
            kb.mov(c.array[i], result.array.type, out=result.array[i])
        _fma_through_shared(ctx, s, a, b, result)
    elif whole_atoms(s, atom):
        want_a, want_b = operand_layouts(result.layout, a.layout.shape[1], atom)
        assert (a.layout, b.layout, c.layout) == (want_a, want_b, result.layout), (
            "layout inference gives a dot's operands the layouts its accumulator asks for")
        with vals.locals_loop(kb, result.array.length, "c") as i:
            kb.mov(c.array[i], result.array.type, out=result.array[i])
        _compute(ctx, s, r, atom, a, b, result)
    else:
        m, n, k = padded_shape(s, atom)
        acc_layout = accumulator_layout((m, n), atom, ctx.kernel.warps)
        a_layout, b_layout = operand_layouts(acc_layout, k, atom)
        padded = _through_scratch(ctx, s, c, acc_layout, "acc_padded")
        # Padding products are (−0)·(+0) = −0: they leave every sum as it is, even −0.
        _compute(ctx, s, r, atom, _through_scratch(ctx, s, a, a_layout, "a_padded", -0.0),
                 _through_scratch(ctx, s, b, b_layout, "b_padded"), padded)
        result = _through_scratch(ctx, s, padded, result.layout, "dot_result")
        ctx.report.notes.append(
            f"{s.loc}: dot of {list(s.args[0].type.shape)} x {list(s.args[1].type.shape)} is not "
            f"whole {atom.instruction} atoms: computed on operands zero-padded to [{m}, {k}] x "
            f"[{k}, {n}] through shared memory (tiles of whole atoms avoid the round trips)")
    ctx.bind(s.result, result)

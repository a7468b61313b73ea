"""Lowering of the elementwise operations: arithmetic, comparisons, ``where``, ``fma``, ``cast``,
``copy`` — on tiles (a rolled loop over each thread's elements) and on block-uniform scalars.

An operand of another shape is broadcast: layout inference gave it the result's layout reduced
over the broadcast dimensions, so each thread holds the operand elements it needs, at the local
index made of the result's local digits along the kept dimensions (:func:`operand_local`).

A ``cast`` from a type of at most 8 bits to f16/bf16 whose operand is a tile in the result's
layout converts whole words (:mod:`~tilevm.backend.lower.casts`): the loop goes over the thread's
*groups* (the elements one conversion makes, a last partial group after the loop), each group's
words are converted at once, and the rest of the fused run (scales, zero points: ``(q − z)·s``)
runs element by element inside the group on the converted halves — still one loop, no register
array in between. A multiply by ``cast(e8m0 → f16/bf16)`` builds the power of two from the code
(:mod:`~tilevm.backend.lower.casts.e8m0_scale`) instead of decoding the e8m0 element.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass

from tilevm.backend.lower import scalar_math as sm
from tilevm.backend.lower import values as vals
from tilevm.backend.lower.cast_order import free_cast_operand_layout, free_cast_permutation
from tilevm.backend.lower.casts import (
    cast_words,
    cast_words_free,
    group_size,
    group_words,
    has_word_cast,
)
from tilevm.backend.lower.casts.e8m0_scale import multiply_by_e8m0
from tilevm.backend.lower.context import LoweringContext, rule
from tilevm.backend.lower.dtype_map import (
    is_half_float,
    is_narrow_float,
    is_packed,
    scalar_register_type,
    storage_type,
)
from tilevm.backend.lower.pair_ops import dup_half, pair_layout, pair_op, pair_read, pairable_op
from tilevm.ir.layout.digits import layout_digits, local_digits
from tilevm.ir.layout.register import RegisterLayout
from tilevm.ir.thread.types import B32, BF16, F16, S32, U16, U32
from tilevm.ir.thread.values import Const, Index, Operand, RegArray
from tilevm.ir.tile.ops import BINARY_OPS, COMPARE_OPS, UNARY_OPS
from tilevm.ir.tile.program import Instr, Kernel, Var, walk
from tilevm.ir.tile.types import TensorType

__all__ = ["ELEMENTWISE_OPS", "lower_fused", "operand_local"]

ELEMENTWISE_OPS = frozenset((*UNARY_OPS, *BINARY_OPS, *COMPARE_OPS, "where", "fma", "cast",
                            "copy"))
# Operations that move stored bit patterns: they read the storage form (a code), not the value.
_MOVES = ("where", "copy")


def operand_local(layout: RegisterLayout, shape: tuple[int, ...], i: Index) -> Index:
    """The local index, in an operand of ``shape`` broadcast against a result in ``layout``, of
    the element the result's local element ``i`` reads."""
    rank = layout.rank
    padded = (1,) * (rank - len(shape)) + tuple(shape)
    if padded == tuple(layout.shape):
        return i
    kept = [g for g in layout_digits(layout)
            if g.kind == "local" and not (padded[g.dim] == 1 and layout.shape[g.dim] != 1)]
    out: Index = 0
    stride = 1
    for g in reversed(kept):
        out = vals.plus(out, vals.scale(vals.digit(i, g.stride, g.size), stride))
        stride *= g.size
    return out


def _compute(ctx: LoweringContext, s: Instr) -> Callable[[list[Operand]], Operand]:
    """The per-element computation of ``s``: operand values (compute form, or storage form for
    ``where``'s choices and ``copy``) to the result's storage form."""
    kb, op = ctx.kb, s.op
    dt = s.result.type.dtype
    if op in UNARY_OPS:
        return lambda v: sm.unary(kb, op, v[0], dt, s.loc)
    if op in BINARY_OPS:
        return lambda v: sm.binary(kb, op, v[0], v[1], dt)
    if op in COMPARE_OPS:
        src = s.args[0].type.dtype
        return lambda v: kb.selp(1, 0, sm.compare(kb, op, v[0], v[1], src), type=U32)
    if op == "fma":
        return lambda v: sm.fma(kb, v[0], v[1], v[2], dt)
    if op == "cast":
        src = s.args[0].type.dtype
        return lambda v: sm.cast(kb, v[0], src, dt)
    if op == "where":
        t = storage_type(dt) if not is_packed(dt) else scalar_register_type(dt) \
            if is_half_float(dt) else U32
        return lambda v: kb.selp(v[1], v[2], kb.setp("ne", v[0], 0, type=U32), type=t)
    if op == "copy":
        return lambda v: v[0]
    raise AssertionError(op)


def _reader(ctx: LoweringContext, s: Instr, k: int) -> Callable[[Index], Operand]:
    """How operand ``k`` of ``s`` gives its element for the result's local element ``i``."""
    kb = ctx.kb
    x = s.args[k]
    value = ctx.value(x)
    storage = s.op in _MOVES and not (s.op == "where" and k == 0)
    read = vals.read_storage if storage else vals.read
    if isinstance(value, vals.ScalarValue):
        once = read(kb, value)  # the same in every element: read it before the loop
        return lambda i: once
    r = s.result.type
    shape = tuple(x.type.shape)
    return lambda i: read(kb, value, operand_local(r.layout, shape, i))


@rule(*UNARY_OPS, *BINARY_OPS, *COMPARE_OPS, "where", "fma", "cast", "copy")
def lower_elementwise(ctx: LoweringContext, s: Instr) -> None:
    r = s.result
    kb = ctx.kb
    if not isinstance(r.type, TensorType):
        args = [vals.read_storage(kb, ctx.value(a)) if s.op in _MOVES and not (
            s.op == "where" and k == 0) else ctx.scalar(a) for k, a in enumerate(s.args)]
        result = _compute(ctx, s)(args)
        ctx.bind(r, vals.ScalarValue(r.type.dtype, _stored(ctx, result, r.type.dtype)))
        return
    source = ctx.value(s.args[0])
    if (s.op == "copy" and isinstance(source, vals.TileValue) and source.layout == r.type.layout
            and ctx.can_alias(r.name, s.args[0].name)):
        ctx.bind(r, source)
        return
    lower_fused(ctx, [s], lambda name: True)


def _pair_reader(ctx: LoweringContext, s: Instr, k: int) -> Callable[[Index], object]:
    """How operand ``k`` of ``s`` gives the pair word for the result's local elements ``i``
    and ``i + 1`` (``i`` even); for a ``cast``, its two f32 values."""
    kb = ctx.kb
    if s.op == "cast":
        one = _reader(ctx, s, k)
        return lambda i: [one(i), one(vals.plus(i, 1))]
    x = s.args[k]
    value = ctx.value(x)
    if isinstance(value, vals.ScalarValue):
        once = dup_half(kb, vals.half_code(kb, value.reg))  # before the loop
        return lambda i: once
    layout = s.result.type.layout
    shape = tuple(x.type.shape)
    if shape == tuple(layout.shape) and value.layout == layout:
        return lambda i: pair_read(kb, value, i, None, True)
    inner = min(local_digits(layout), key=lambda g: g.stride)
    padded = (1,) * (layout.rank - len(shape)) + shape
    if padded[inner.dim] == 1:  # both elements of a pair read one operand element
        return lambda i: pair_read(kb, value, operand_local(layout, shape, i), None, False)
    return lambda i: pair_read(kb, value, operand_local(layout, shape, i),
                               operand_local(layout, shape, vals.plus(i, 1)), False)


def _to_compute(kb: object, value: Operand, dt: object) -> Operand:
    """The compute form of an element's storage form (a fused intermediate)."""
    if is_narrow_float(dt):
        return sm.decode_narrow(kb, value, dt)
    if is_packed(dt) and dt.kind == "int":
        return kb.bfe(value, 0, dt.nbits, type=S32)  # a code or a normalized value alike
    return value


# -- which casts convert words, which multiplies add exponents ---------------------------------


def _word_cast(ctx: LoweringContext, s: Instr) -> bool:
    """``s`` is a cast from at most 8 bits to f16/bf16 of a tile in the result's layout and
    shape (or in the layout of the free-order sequence, :func:`_free_order`), and
    :mod:`~tilevm.backend.lower.casts` has a sequence for it."""
    if s.op != "cast":
        return False
    x, r = s.args[0], s.result
    return (isinstance(x, Var) and isinstance(x.type, TensorType) and x.type.scope == "reg"
            and (x.type.layout == r.type.layout or _free_order(s))
            and tuple(x.type.shape) == tuple(r.type.shape)
            and has_word_cast(x.type.dtype, r.type.dtype, ctx.target))


def _free_order(s: Instr) -> bool:
    """The cast's operand is in the layout whose free-order sequence emits the result's order
    (prepared weights, :mod:`~tilevm.backend.lower.cast_order`)."""
    x, r = s.args[0], s.result
    return (x.type.layout != r.type.layout
            and x.type.layout.local_size % group_size(x.type.dtype) == 0
            and x.type.layout == free_cast_operand_layout(r.type.layout, x.type.dtype,
                                                          r.type.dtype))


_DEFINITIONS: weakref.WeakKeyDictionary[Kernel, dict[str, Instr]] = weakref.WeakKeyDictionary()


def _definition(ctx: LoweringContext, x: object) -> Instr | None:
    """The instruction that computes the variable ``x`` (None for parameters and constants)."""
    if not isinstance(x, Var):
        return None
    defs = _DEFINITIONS.get(ctx.kernel)
    if defs is None:
        defs = {st.result.name: st for st in walk(ctx.kernel.body)
                if isinstance(st, Instr) and st.result is not None}
        _DEFINITIONS[ctx.kernel] = defs
    return defs.get(x.name)


def _is_e8m0_scale(d: Instr | None, dt: object) -> bool:
    return (d is not None and d.op == "cast" and d.args[0].type.dtype.name == "f8e8m0fnu"
            and d.result.type.dtype == dt)


@dataclass
class _Scaled:
    """A multiply by ``cast(code: e8m0 → f16/bf16)``: the other operand's position and how to
    read the code for the result's element ``i`` (given the results made for it so far)."""

    other: int
    cast: Instr
    code: Callable[[Index, dict[str, Operand]], Operand]


def _e8m0_multiplies(ctx: LoweringContext, run: list[Instr]) -> dict[int, _Scaled]:
    """The multiplies of ``run`` that scale by an e8m0 code, by ``id``."""
    inside = {st.result.name: st for st in run}
    layout = run[0].result.type.layout
    found: dict[int, _Scaled] = {}
    for st in run:
        dt = st.result.type.dtype
        if st.op != "mul" or dt.name not in ("f16", "bf16"):
            continue
        for k, a in enumerate(st.args):
            d = inside.get(a.name) if isinstance(a, Var) else None
            d = d or _definition(ctx, a)
            if not _is_e8m0_scale(d, dt):
                continue
            code = _code_reader(ctx, d, a, set(inside), layout)
            if code is not None:
                found[id(st)] = _Scaled(1 - k, d, code)
                break
    return found


def _code_reader(ctx: LoweringContext, cast: Instr, used: Var, inside: set[str],
                 layout: RegisterLayout) -> Callable[[Index, dict[str, Operand]], Operand] | None:
    """How to read the e8m0 code under ``cast`` (whose result the multiply reads as ``used``) for
    the multiply's element ``i``, or None where the code is not at hand in a matching layout."""
    kb = ctx.kb
    x = cast.args[0]
    if isinstance(x, Var) and x.name in inside:
        return lambda i, made: made[x.name]  # the code, computed earlier in the run
    value = ctx.values.get(x.name) if isinstance(x, Var) else ctx.value(x)
    if isinstance(value, vals.ScalarValue):
        return lambda i, made: value.reg
    if not isinstance(value, vals.TileValue):
        return None
    if cast.result.name in inside:  # the cast runs at element i: its operand is broadcast
        shape = tuple(x.type.shape)
        return lambda i, made: vals.read_storage(kb, value, operand_local(layout, shape, i))
    if value.layout != used.type.layout or tuple(x.type.shape) != tuple(used.type.shape):
        return None
    shape = tuple(used.type.shape)  # the multiply reads the cast's element j = its code's
    return lambda i, made: vals.read_storage(kb, value, operand_local(layout, shape, i))


# -- the fused loop ----------------------------------------------------------------------------


def lower_fused(ctx: LoweringContext, run: list[Instr], needed: Callable[[str], bool]) -> None:
    """A run of elementwise instructions whose results share one layout, in one loop over each
    thread's elements (or its groups, see the module docstring): results used only later in the
    run stay registers of the loop body (no register array, no second loop); ``needed(name)``
    says which results are written out."""
    inside: set[str] = set()
    for k, s in enumerate(run):
        if k and _word_cast(ctx, s) and s.args[0].name in inside:
            # The cast converts the words of a tile: the run before it writes its operand out.
            later = {a.name for t in run[k:] for a in t.args if isinstance(a, Var)}
            lower_fused(ctx, run[:k], lambda name, later=later: needed(name) or name in later)
            lower_fused(ctx, run[k:], needed)
            return
        inside.add(s.result.name)
    _FusedRun(ctx, run, needed).lower()


class _FusedRun:
    """The loop of one run (see :func:`lower_fused`)."""

    def __init__(self, ctx: LoweringContext, run: list[Instr], needed: Callable[[str], bool]
                 ) -> None:
        self.ctx, self.run, self.kb = ctx, run, ctx.kb
        self.layout = run[0].result.type.layout
        self.scaled = _e8m0_multiplies(ctx, run)
        users: dict[str, list[Instr]] = {}
        for s in run:
            for a in s.args:
                if isinstance(a, Var):
                    users.setdefault(a.name, []).append(s)
        # A scale cast that only multiplies by exponent is not computed.
        self.dead = {sc.cast.result.name for sc in self.scaled.values()
                     if not needed(sc.cast.result.name)
                     and all(id(u) in self.scaled and self.scaled[id(u)].cast is sc.cast
                             for u in users.get(sc.cast.result.name, []))}
        self.tiles = {s.result.name: ctx.new_tile(s.result) for s in run
                      if needed(s.result.name) and s.result.name not in self.dead}
        made = {s.result.name for s in run}
        words = [s for s in run if s.result.name not in self.dead and _word_cast(ctx, s)]
        first = words[0].args[0].type.dtype if words else None
        self.grouped = [s for s in words if group_size(s.args[0].type.dtype) == group_size(first)]
        self.joined = self._joined(users, needed)
        self.dead |= {g.result.name for g in self.grouped if id(g) in self.joined}
        self.paired = self._pairable(made)
        read = _pair_reader if self.paired else _reader
        self.readers = {(id(s), k): read(ctx, s, k) for s in run for k, a in enumerate(s.args)
                        if not (isinstance(a, Var) and a.name in made)
                        and not (id(s) in self.scaled and k != self.scaled[id(s)].other)}
        self.computes = {id(s): _compute(ctx, s) for s in run}

    def _joined(self, users: dict[str, list[Instr]], needed: Callable[[str], bool]
                ) -> dict[int, tuple[Instr, float]]:
        """The grouped casts whose one use adds or subtracts a constant that their sequence's
        own subtraction can take (``(q − 8)·s`` of integer codes: one pair add fewer), by
        ``id``: the use and the constant to subtract. The sequence makes the use's result
        (``code − c`` rounded once, as the use rounds the exact cast once); the cast itself is
        not computed."""
        joined: dict[int, tuple[Instr, float]] = {}
        for s in self.grouped:
            name = s.result.name
            uses = users.get(name, [])
            if needed(name) or len(uses) != 1 or s.args[0].type.dtype.is_float:
                continue
            u = uses[0]
            if u.op not in ("add", "sub") or u.result.type.dtype != s.result.type.dtype:
                continue
            mine = [k for k, a in enumerate(u.args) if isinstance(a, Var) and a.name == name]
            if len(mine) != 1 or (u.op == "sub" and mine[0] != 0):
                continue
            other = self.ctx.value(u.args[1 - mine[0]])
            if not (isinstance(other, vals.ScalarValue) and isinstance(other.reg, Const)):
                continue
            c = float(other.reg.value)
            minus = c if u.op == "sub" else -c
            if minus and has_word_cast(s.args[0].type.dtype, s.result.type.dtype,
                                       self.ctx.target, _free_order(s), minus):
                joined[id(s)] = (u, minus)
        return joined

    def _pairable(self, made: set[str]) -> bool:
        """Whether the run goes two elements (one word of each half tile) at a time
        (:mod:`~tilevm.backend.lower.pair_ops`): every result it computes is a half with a pair
        operation (or a grouped word cast), and the thread's elements fall into whole pairs."""
        if self.scaled or not pair_layout(self.layout):
            return False
        grouped = {id(s) for s in self.grouped}
        for s in self.run:
            if s.result.name in self.dead or id(s) in grouped:
                continue
            dtypes = [a.type.dtype for a in s.args]
            if not pairable_op(s.op, dtypes, s.result.type.dtype):
                return False
            if s.op == "cast" and isinstance(s.args[0], Var) and s.args[0].name in made:
                return False  # an f32 operand is read two elements at a time, never made here
        return True

    def lower(self) -> None:
        kb = self.kb
        count = self.layout.local_size
        if not self.grouped and self.paired:
            with vals.locals_loop(kb, count // 2, "p", self.layout, 2) as p:
                self.pairs(vals.scale(p, 2), {})
        elif not self.grouped:
            with vals.locals_loop(kb, count) as i:
                self.elements(i, {})
        else:
            group = group_size(self.grouped[0].args[0].type.dtype)
            full, tail = divmod(count, group)
            if full:
                with vals.locals_loop(kb, full, "g") as g:
                    self.group(g, group, group)
            if tail:
                self.group(full, group, tail)
        for s in self.run:
            if s.result.name in self.tiles:
                self.ctx.bind(s.result, self.tiles[s.result.name])

    def group(self, g: Index, group: int, count: int) -> None:
        """Group ``g`` of ``group`` elements, of which the first ``count`` exist."""
        kb = self.kb
        halves: dict[str, RegArray] = {}
        for s in self.grouped:
            src = s.args[0].type.dtype
            tile = self.ctx.tile(s.args[0])
            nwords = group_words(src)
            first = vals.scale(g, nwords)
            words: list[Operand] = []
            for k in range(nwords):
                # A partial last group may lack its last words: their elements do not exist.
                exists = not isinstance(first, int) or first + k < tile.array.length
                words.append(tile.array[vals.plus(first, k)] if exists else Const(0, B32))
            dst = s.result.type.dtype
            use, minus = self.joined.get(id(s), (s, 0.0))
            if _free_order(s):
                pairs, perm = cast_words_free(kb, words, src, dst, self.ctx.target, minus)
                assert perm == free_cast_permutation(src, dst), (src, dst, perm)
            else:
                pairs = cast_words(kb, words, src, dst, self.ctx.target, minus)
            array = kb.array(B32, len(pairs), name="halves")
            for j, pair in enumerate(pairs):
                kb.mov(pair, B32, out=array[j])
            halves[use.result.name] = array
        if self.paired:  # count is even: the group and the thread's elements are
            with vals.locals_loop(kb, count // 2, "e") as e:
                self.pairs(vals.plus(vals.scale(g, group), vals.scale(e, 2)),
                           {name: array[e] for name, array in halves.items()})
            return
        with vals.locals_loop(kb, count, "e") as e:
            self.elements(vals.plus(vals.scale(g, group), e), {
                name: _half(kb, array, e, self._dtype(name)) for name, array in halves.items()})

    def _dtype(self, name: str) -> object:
        return next(s.result.type.dtype for s in self.run if s.result.name == name)

    def elements(self, i: Index, made: dict[str, Operand]) -> None:
        """The run's instructions for the thread's element ``i`` (``made``: results already
        computed for it)."""
        for s in self.run:
            name = s.result.name
            if name in self.dead:
                continue
            if name not in made:
                made[name] = self.compute(s, i, made)
            if name in self.tiles:
                vals.write(self.kb, self.tiles[name], i, made[name])

    def pairs(self, i: Index, made: dict[str, Operand]) -> None:
        """The run's instructions for the thread's elements ``i`` and ``i + 1`` (``i`` even),
        one word of each half tile (``made``: pair words already computed for them)."""
        for s in self.run:
            name = s.result.name
            if name in self.dead:
                continue
            if name not in made:
                args = [self.readers[(id(s), k)](i) if (id(s), k) in self.readers
                        else made[a.name] for k, a in enumerate(s.args)]
                dt = s.result.type.dtype
                target = self.ctx.target
                made[name] = (pair_op(self.kb, "cast", [], dt, target, lows=args[0])
                              if s.op == "cast" else pair_op(self.kb, s.op, args, dt, target))
            if name in self.tiles:
                tile = self.tiles[name]
                self.kb.mov(made[name], B32, out=tile.array[vals.quotient(i, 2)])

    def compute(self, s: Instr, i: Index, made: dict[str, Operand]) -> Operand:
        kb = self.kb
        args = []
        for k, a in enumerate(s.args):
            if (id(s), k) in self.readers:
                args.append(self.readers[(id(s), k)](i))
                continue
            if id(s) in self.scaled and k != self.scaled[id(s)].other:
                continue
            moved = s.op in _MOVES and not (s.op == "where" and k == 0)
            value = made[a.name]
            args.append(value if moved else _to_compute(kb, value, a.type.dtype))
        if id(s) in self.scaled:
            scaled = self.scaled[id(s)]
            code = scaled.code(i, made)
            return multiply_by_e8m0(kb, args[0], code, s.result.type.dtype, self.ctx.target)
        return self.computes[id(s)](args)


def _half(kb: object, pairs: RegArray, e: Index, dt: object) -> Operand:
    """Element ``e`` of the converted pairs: half ``e % 2`` of word ``e // 2``, as an f16/bf16
    register."""
    word = pairs[vals.quotient(e, 2)]
    if isinstance(e, int):
        shifted = kb.shr(word, 16 * (e % 2), type=U32) if e % 2 else word
    else:
        shifted = kb.shr(word, kb.shl(vals.low_bits(kb, e, 2), 4, type=B32), type=U32)
    return kb.mov(kb.cvt(shifted, U16, src=U32), F16 if dt.name == "f16" else BF16)


def _stored(ctx: LoweringContext, value: Operand, dt: object) -> Operand:
    """A scalar result in a register of its own (a constant operand may have come through)."""
    if isinstance(value, Const):
        return value
    t = storage_type(dt) if not is_packed(dt) else value.type
    return ctx.kb.mov(value, t)

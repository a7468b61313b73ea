"""Loads and stores of register tiles from and to global or shared memory.

A thread visits its elements in groups (:mod:`~tilevm.backend.lower.access_plan`): one memory
instruction of up to 128 bits per group. At the tensor's bounds a group that is only partly inside
falls back to one access per element, under a per-element predicate (the fast path stays branch-
free inside the tensor). Elements of 1 to 7 bits are addressed by bit: a group of whole bytes is
one plain access; a single element is read from the byte(s) holding it and written by an atomic
read-modify-write of its 32-bit word (``red.and`` then ``red.or``), so that threads and blocks
writing neighbouring elements of one byte never lose each other's bits (DESIGN §3).

An offset may be an index tile (a gather or scatter, :class:`TileOffsets`): each thread reads
the indices of its elements from the index tile's registers (layout inference gave it the data
tile's layout, reduced over the dimensions it is broadcast along) and addresses every element by
them. Groups stay vectorized along the last dimension when its offset is a scalar and no index
tile varies along it (a row gather: every element of a group has the same row).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tilevm.backend.lower import values as vals
from tilevm.backend.lower.access_plan import AccessPlan, index_divisor, plan_access
from tilevm.backend.lower.context import LoweringContext
from tilevm.backend.lower.divisibility import UNBOUNDED
from tilevm.backend.lower.dtype_map import I32, is_packed, raw_bits_type
from tilevm.backend.lower.rules_elementwise import operand_local
from tilevm.ir.dtypes import DType
from tilevm.ir.layout.register import RegisterLayout
from tilevm.ir.layout.shared import SharedLayout
from tilevm.ir.layout.shared_access import shared_bank_conflicts
from tilevm.ir.thread.types import (
    B32,
    B64,
    PRED,
    S32,
    S64,
    U8,
    U16,
    U32,
    U64,
    Type,
    vector,
)
from tilevm.ir.thread.values import Const, Index, Operand, Reg
from tilevm.ir.tile.ops import is_index_tile
from tilevm.ir.tile.program import Const as TileConst
from tilevm.ir.tile.program import Instr

__all__ = ["Addressing", "TileOffsets", "index_divisor_of", "load_element", "load_tile",
           "raw_const", "store_element", "store_tile", "write_bits", "zero_offsets"]



@dataclass
class TileOffsets:
    """The offsets of a tile access, lowered: per dimension a scalar start (element ``i`` of
    the tile is at ``start + i``) or an index tile (element ``i`` is at the index tile's value
    there) with its Tile IR shape."""

    starts: list[Operand | None]
    indices: dict[int, tuple[vals.TileValue, tuple[int, ...]]]

    @staticmethod
    def of(ctx: LoweringContext, offsets: list[object]) -> TileOffsets:
        """Lower the Tile IR ``offsets`` of an access (scalars and index tiles)."""
        starts: list[Operand | None] = []
        indices = {}
        for d, o in enumerate(offsets):
            if is_index_tile(o.type):
                indices[d] = (ctx.tile(o), tuple(o.type.shape))
                starts.append(None)
            else:
                starts.append(ctx.index_scalar(o))
        return TileOffsets(starts, indices)

    def index(self, ctx: LoweringContext, layout: RegisterLayout, i: Index) -> list[Operand]:
        """The tensor index (s32 per dimension) of this thread's local element ``i`` of a tile
        in ``layout``."""
        kb = ctx.kb
        local = ctx.element_index(layout, i) if len(self.indices) < len(self.starts) else None
        out = []
        for d, start in enumerate(self.starts):
            if start is None:
                tile, shape = self.indices[d]
                out.append(vals.read(kb, tile, operand_local(layout, shape, i)))
            else:
                out.append(kb.add(start, local[d], type=S32))
        return out

    def why_single(self, rank: int) -> str:
        """Why the access must go one element at a time (``""`` if it need not): an index tile
        on the last dimension, or one that varies along it."""
        for d, (_, shape) in self.indices.items():
            if d == rank - 1:
                return "an index tile gives the last dimension's indices"
            padded = (1,) * (rank - len(shape)) + shape
            if padded[-1] != 1:
                return (f"the index tile of dimension {d} varies along the last dimension, so "
                        "consecutive elements are not neighbours in memory")
        return ""


def zero_offsets(rank: int) -> list[TileConst]:
    """Tile IR offsets ``(0, …, 0)``: a tile at the start of a tensor."""
    return [TileConst(0, I32) for _ in range(rank)]


def raw_const(dt: DType, value: int | float) -> Const:
    """The bit pattern of ``value`` encoded into ``dt`` (as a u32, or u64 for 64-bit types)."""
    return Const(int(dt.encode(value)), raw_bits_type(dt))


def _cap(n: int) -> int:
    return min(n, UNBOUNDED)


@dataclass
class Addressing:
    """Where element ``index`` of one tensor lives (global or shared memory)."""

    dtype: DType
    space: str
    sizes: list[Operand]
    name: str
    contiguous: bool
    base_bits: int  # what the address of element 0 is a multiple of, in bits
    stride_bits: list[int]  # per dimension, what stride_d · nbits is a multiple of
    tensor: vals.GlobalTensor | None = None
    shared: vals.SharedTensor | None = None

    @property
    def rank(self) -> int:
        return len(self.sizes)

    def alignment(self, ctx: LoweringContext, offsets: list[object], layout: RegisterLayout,
                  count: int) -> int:
        """What every group's first element's bit address is a multiple of (groups of ``count``
        consecutive local elements of ``layout`` at the Tile IR ``offsets``)."""
        total = self.base_bits
        for d in range(self.rank):
            a = math.gcd(index_divisor_of(ctx, offsets[d]), index_divisor(layout, d, count))
            total = math.gcd(total, _cap(a * self.stride_bits[d]))
        return total

    def address(self, ctx: LoweringContext, index: list[Operand]) -> tuple[Operand, Operand | None]:
        """The byte address of element ``index`` (u64 global, u32 shared) and, for elements of 2
        to 7 bits, the bit of that byte where the element starts (u32)."""
        kb = ctx.kb
        nbits = self.dtype.nbits
        if self.tensor is not None:
            t = self.tensor
            e: Operand = t.offset
            # Offsets proven to fit in i32 are summed in 32 bits and widened by the last
            # multiply (mul.wide); otherwise every term is a 64-bit multiply-add.
            narrow = t.offset.type == S32
            for i, stride in zip(index, t.strides, strict=True):
                unit = isinstance(stride, Const) and stride.value == 1
                if narrow:
                    e = kb.add(e, i, type=S32) if unit else kb.mad(i, stride, e, type=S32)
                else:
                    wide = kb.cvt(i, S64, src=S32)
                    e = kb.add(e, wide if unit else kb.mul(wide, stride, type=S64), type=S64)
            mode = "wide" if narrow else "lo"
            if nbits % 8 == 0:
                if nbits > 8:
                    byte = kb.mul(e, nbits // 8, mode=mode, type=e.type)
                else:
                    byte = kb.cvt(e, S64, src=S32) if narrow else e
                return kb.add(t.base, byte, type=U64), None
            bit = kb.mul(e, nbits, mode=mode, type=e.type)
            bit_in_byte = kb.cvt(kb.and_(bit, 7, type=B64), U32, src=U64)
            return kb.add(t.base, kb.shr(bit, 3, type=S64), type=U64), bit_in_byte
        sh = self.shared
        assert sh is not None
        lin: Operand = Const.of(0, S32)
        strides = sh.layout.strides
        for k, p in enumerate([*sh.prefix, *index]):
            if strides[k] == 0:
                continue
            term = p if strides[k] == 1 else kb.mul(p, strides[k], type=S32)
            lin = term if isinstance(lin, Const) else kb.add(lin, term, type=S32)
        bits = lin if nbits == 1 else kb.mul(lin, nbits, type=S32)
        byte = kb.shr(bits, 3, type=S32)
        bit_in_byte = None if nbits % 8 == 0 else kb.and_(bits, 7, type=B32)
        if sh.layout.swizzle is not None:
            byte = _swizzle(ctx, byte, sh.layout.swizzle)
        base = sh.base if not isinstance(sh.base, int) else Const.of(sh.base, U32)
        return kb.add(kb.add(ctx.smem, base, type=U32), byte, type=U32), bit_in_byte

    def in_bounds(self, ctx: LoweringContext, index: list[Operand], count: int) -> Operand:
        """``index`` and the ``count - 1`` elements after it along the last dimension are all
        inside the tensor (as unsigned comparisons: a negative index is outside)."""
        kb = ctx.kb
        pred = None
        for d, (i, n) in enumerate(zip(index, self.sizes, strict=True)):
            ok = kb.setp("lt", i, n, type=U32)
            if d == self.rank - 1 and count > 1:
                last = kb.add(i, count - 1, type=S32)
                ok = kb.and_(ok, kb.setp("lt", last, n, type=U32), type=PRED)
            pred = ok if pred is None else kb.and_(pred, ok, type=PRED)
        assert pred is not None
        return pred


def index_divisor_of(ctx: LoweringContext, x: object) -> int:
    """What a Tile IR index (a constant or a scalar variable) is known to be a multiple of."""
    if isinstance(x, TileConst):
        return _cap(abs(int(x.value))) if x.value else UNBOUNDED
    if is_index_tile(x.type):
        return 1  # indices from data: nothing known
    return ctx.divisors.get(x.name, 1)


def _swizzle(ctx: LoweringContext, byte: Operand, sw: object) -> Operand:
    """The shared layout's XOR swizzle of a byte offset (on 16-byte units)."""
    kb = ctx.kb
    unit = kb.shr(byte, 4, type=U32)
    source = ((1 << sw.bits) - 1) << (sw.base + max(0, sw.shift))
    picked = kb.and_(unit, source, type=B32)
    moved = kb.shr(picked, sw.shift, type=U32) if sw.shift >= 0 else kb.shl(picked, -sw.shift,
                                                                            type=B32)
    unit = kb.xor(unit, moved, type=B32)
    return kb.or_(kb.shl(unit, 4, type=B32), kb.and_(byte, 15, type=B32), type=B32)


def _access_type(bits: int, nbits: int) -> Type:
    if bits == 128:
        return vector(U64, 2) if nbits == 64 else vector(B32, 4)
    if bits == 64:
        return U64 if nbits == 64 else vector(B32, 2)
    return {8: U8, 16: U16, 32: B32}[bits]


def _words(ctx: LoweringContext, loaded: Reg, bits: int, nbits: int) -> list[Operand]:
    """The registers (u32, or u64 for 64-bit elements) of a loaded group, lowest first."""
    kb = ctx.kb
    t = loaded.type
    if t.kind == "vector":
        return [kb.extract(loaded, k) for k in range(t.count)]
    if bits < 32:
        return [kb.cvt(loaded, U32, src=t)]
    return [loaded]


def plan_for(ctx: LoweringContext, acc: Addressing, s: Instr, offsets: list[object],
             layout: RegisterLayout, op: str, per_element: str = "") -> AccessPlan:
    """The access plan of one tile access, recorded in the report."""
    plan = plan_access(layout, acc.dtype.nbits, acc.contiguous,
                       lambda v: acc.alignment(ctx, offsets, layout, v), per_element)
    reason = plan.reason
    if acc.shared is not None and acc.shared.shape == tuple(layout.shape):
        sh = acc.shared
        k = len(sh.prefix)
        tile = SharedLayout(sh.layout.shape[k:], sh.layout.strides[k:], sh.layout.swizzle)
        extra = shared_bank_conflicts(layout, tile, acc.dtype.nbits, plan.bits)
        reason += f"; {extra} extra wavefronts from bank conflicts (warp 0)" if extra else \
            "; no bank conflicts"
    ctx.report.access(s.loc, op, acc.name, acc.space, plan.vector, plan.bits, reason)
    return plan


# -- loads ---------------------------------------------------------------------------------------


def load_tile(ctx: LoweringContext, s: Instr, acc: Addressing, offsets: list[object],
              tile: vals.TileValue, mode: str, mask: vals.TileValue | None,
              other: int | float) -> None:
    """Fill ``tile`` (in its layout) from the tensor at the Tile IR ``offsets``; elements outside
    the tensor (``mode`` "bounds") or not selected by ``mask`` (``mode`` "tile") read ``other``."""
    kb = ctx.kb
    layout = tile.layout
    at = TileOffsets.of(ctx, offsets)
    plan = plan_for(ctx, acc, s, offsets, layout, "load",
                    "a mask tile selects elements one by one" if mode == "tile" else
                    at.why_single(acc.rank))
    other_raw = raw_const(tile.dtype, other)
    v = plan.vector
    whole = mode == "bounds" and whole_groups(ctx, acc, offsets, layout, v)
    with vals.locals_loop(kb, tile.count // v, "g", layout, v) as g:
        i0 = vals.scale(g, v)
        index = at.index(ctx, layout, i0)
        if mode == "tile":
            active = mask_and_bounds(ctx, acc, at, mask, layout, i0, index)
            _load_one(ctx, acc, tile, i0, index, active, other_raw)
        elif mode == "none" and v == 1:
            _load_one(ctx, acc, tile, i0, index, None, other_raw)
        elif mode == "none":
            _load_group(ctx, acc, tile, i0, index, plan)
        elif v == 1:
            _load_one(ctx, acc, tile, i0, index, acc.in_bounds(ctx, index, 1), other_raw)
        elif whole:  # a group is inside or outside the tensor as a whole
            with kb.if_(acc.in_bounds(ctx, index, 1)):
                _load_group(ctx, acc, tile, i0, index, plan)
            with kb.else_():
                _fill_group(ctx, tile, i0, v, plan, other_raw)
        else:
            with kb.if_(acc.in_bounds(ctx, index, v)):
                _load_group(ctx, acc, tile, i0, index, plan)
            with kb.else_():
                _per_element(ctx, acc, index, v, lambda k, idx: _load_one(
                    ctx, acc, tile, vals.plus(i0, k), idx, acc.in_bounds(ctx, idx, 1),
                    other_raw))


def whole_groups(ctx: LoweringContext, acc: Addressing, offsets: list[object],
                 layout: RegisterLayout, count: int) -> bool:
    """Whether every group of ``count`` consecutive local elements of ``layout`` at the Tile IR
    ``offsets`` lies inside the tensor or outside it as a whole: its first index along the last
    dimension and that dimension's size are both multiples of ``count`` (so that the bounds test
    of the first element decides for the group, and no edge group needs element-wise code)."""
    if count == 1:
        return True
    last = acc.rank - 1
    start = math.gcd(index_divisor_of(ctx, offsets[last]), index_divisor(layout, last, count))
    return start % count == 0 and size_divisor(ctx, acc.sizes[last]) % count == 0


def size_divisor(ctx: LoweringContext, size: Operand) -> int:
    """What a tensor size (a constant or a run-time size of the kernel) is known to be a
    multiple of (the specialization's multiples of 16)."""
    if isinstance(size, Const):
        return _cap(abs(int(size.value))) if size.value else UNBOUNDED
    known = [name for name, reg in ctx.dims.items() if reg is size]
    return 16 if any(name in ctx.spec.dims16 for name in known) else 1


def _fill_group(ctx: LoweringContext, tile: vals.TileValue, i0: Index, count: int,
                plan: AccessPlan, other_raw: Const) -> None:
    """Elements ``i0 … i0 + count − 1`` of ``tile`` := the bit pattern ``other_raw``."""
    kb = ctx.kb
    nbits = tile.dtype.nbits
    if is_packed(tile.dtype) and plan.bits >= 32:
        word = sum(other_raw.bits << (nbits * j) for j in range(32 // nbits)) & 0xFFFFFFFF
        _words_into_packed(ctx, tile, i0, [Const(word, B32)] * (plan.bits // 32), plan.bits)
        return
    with kb.for_(0, count, unroll=True, name="k") as k:
        vals.write_raw(kb, tile, vals.plus(i0, k), other_raw)


def mask_and_bounds(ctx: LoweringContext, acc: Addressing, at: TileOffsets,
                     mask: vals.TileValue, layout: RegisterLayout, i: Index,
                     index: list[Operand]) -> Operand:
    """Whether element ``i`` is accessed under a mask tile: the mask holds there, and with
    index tiles the element is also inside the tensor (indices come from data)."""
    kb = ctx.kb
    shape = tuple(int(n) for n in mask.layout.shape)
    selected = kb.setp("ne", vals.read(kb, mask, operand_local(layout, shape, i)), 0, type=U32)
    if not at.indices:
        return selected
    return kb.and_(selected, acc.in_bounds(ctx, index, 1), type=PRED)


def _per_element(ctx: LoweringContext, acc: Addressing, index: list[Operand], count: int,
                 body: object) -> None:
    """``body(k, index_k)`` for the ``count`` elements of a group (a rolled loop)."""
    kb = ctx.kb
    with kb.for_(0, count, unroll=True, name="k") as k:
        idx = [*index[:-1], kb.add(index[-1], k, type=S32)]
        body(k, idx)


def _load_group(ctx: LoweringContext, acc: Addressing, tile: vals.TileValue, i0: Index,
                index: list[Operand], plan: AccessPlan) -> None:
    kb = ctx.kb
    nbits = tile.dtype.nbits
    addr, _ = acc.address(ctx, index)
    loaded = kb.ld(acc.space, addr, _access_type(plan.bits, nbits))
    words = _words(ctx, loaded, plan.bits, nbits)
    if is_packed(tile.dtype):
        _words_into_packed(ctx, tile, i0, words, plan.bits)
        return
    per_word = max(1, 32 // nbits) if nbits < 64 else 1
    for w, word in enumerate(words):
        count = min(per_word, plan.vector)
        if count == 1:
            vals.write_raw(kb, tile, vals.plus(i0, w), word)
            continue
        with kb.for_(0, count, unroll=True, name="k") as k:
            raw = kb.bfe(word, kb.mul(k, nbits, type=S32), nbits, type=U32)
            vals.write_raw(kb, tile, vals.plus(i0, vals.plus(w * count, k)), raw)


def _words_into_packed(ctx: LoweringContext, tile: vals.TileValue, i0: Index,
                       words: list[Operand], bits: int) -> None:
    kb = ctx.kb
    nbits = tile.dtype.nbits
    first = vals.scale(i0, nbits)
    if bits >= 32:
        for w, word in enumerate(words):
            kb.mov(word, B32, out=tile.array[vals.plus(vals.quotient(first, 32), w)])
        return
    slot = tile.array[vals.quotient(first, 32)]
    kb.bfi(words[0], slot, vals.low_bits(kb, first, 32), bits, out=slot)


def load_element(ctx: LoweringContext, acc: Addressing, index: list[Operand],
                 active: Operand | None, other_raw: Const) -> Operand:
    """The bit pattern (u32, u64 for 64-bit types) of the element at ``index`` where ``active``
    (always if ``None``), else ``other_raw``; nothing is read where not ``active``."""
    kb = ctx.kb
    dt = acc.dtype
    addr, bit = acc.address(ctx, index)
    if bit is None:
        t = _access_type(max(dt.nbits, 8), dt.nbits) if dt.nbits < 64 else U64
        loaded = kb.ld(acc.space, addr, t, guard=active)
        raw = loaded if t in (B32, U64) else kb.cvt(loaded, U32, src=t)
    else:
        raw = _read_bits(ctx, acc, addr, bit, dt.nbits, active)
    if active is not None:
        raw = kb.selp(raw, other_raw, active, type=raw_bits_type(dt))
    return raw


def _load_one(ctx: LoweringContext, acc: Addressing, tile: vals.TileValue, i: Index,
              index: list[Operand], active: Operand | None, other_raw: Const) -> None:
    """Element ``i`` := the element at ``index`` where ``active``, else ``other``."""
    vals.write_raw(ctx.kb, tile, i, load_element(ctx, acc, index, active, other_raw))


def _read_bits(ctx: LoweringContext, acc: Addressing, addr: Operand, bit: Operand, nbits: int,
               active: Operand | None) -> Operand:
    """The ``nbits``-bit code (at most 32 bits) starting at bit ``bit`` of the byte at ``addr``:
    the bytes it covers are read one by one (the last ones only where it reaches them), so that
    no byte past the element is touched."""
    kb = ctx.kb
    low = kb.cvt(kb.ld(acc.space, addr, U8, guard=active), U32, src=U8)
    if 8 % nbits == 0:
        return kb.bfe(low, bit, nbits, type=U32)
    at = U64 if acc.space == "global" else U32
    value = kb.cvt(low, U64, src=U32)
    end = kb.add(bit, nbits, type=U32)  # one past the element's last bit, from addr's bit 0
    for k in range(1, (7 + nbits + 7) // 8):
        reaches = kb.setp("gt", end, 8 * k, type=U32)
        if active is not None:
            reaches = kb.and_(active, reaches, type=PRED)
        byte = kb.ld(acc.space, kb.add(addr, k, type=at), U8, guard=reaches)
        byte = kb.selp(kb.cvt(byte, U64, src=U8), 0, reaches, type=U64)
        value = kb.or_(value, kb.shl(byte, 8 * k, type=B64), type=B64)
    shifted = kb.shr(value, bit, type=U64)
    return kb.cvt(kb.and_(shifted, (1 << nbits) - 1, type=B64), U32, src=U64)


# -- stores --------------------------------------------------------------------------------------


def store_tile(ctx: LoweringContext, s: Instr, acc: Addressing, offsets: list[object],
               tile: vals.TileValue, mode: str, mask: vals.TileValue | None) -> None:
    """Store ``tile`` at the Tile IR ``offsets``: every element inside the tensor (``mode``
    "bounds"), every element (``"none"``) or those ``mask`` selects (``"tile"``); replicated
    elements are stored by their first holder only."""
    kb = ctx.kb
    layout = tile.layout
    at = TileOffsets.of(ctx, offsets)
    plan = plan_for(ctx, acc, s, offsets, layout, "store",
                    "a mask tile selects elements one by one" if mode == "tile" else
                    at.why_single(acc.rank))
    first = ctx.replica_zero(layout)
    v = plan.vector
    whole = mode == "bounds" and whole_groups(ctx, acc, offsets, layout, v)
    with vals.locals_loop(kb, tile.count // v, "g", layout, v) as g:
        i0 = vals.scale(g, v)
        index = at.index(ctx, layout, i0)

        def both(p: Operand | None) -> Operand | None:
            if first is None:
                return p
            return first if p is None else kb.and_(p, first, type=PRED)

        if mode == "tile":
            active = mask_and_bounds(ctx, acc, at, mask, layout, i0, index)
            _store_one(ctx, acc, tile, i0, index, both(active))
        elif mode == "none" and v == 1:
            _store_one(ctx, acc, tile, i0, index, both(None))
        elif mode == "none":
            _store_group(ctx, acc, tile, i0, index, plan, both(None))
        elif v == 1:
            _store_one(ctx, acc, tile, i0, index, both(acc.in_bounds(ctx, index, 1)))
        elif whole:  # a group is inside or outside the tensor as a whole
            with kb.if_(acc.in_bounds(ctx, index, 1)):
                _store_group(ctx, acc, tile, i0, index, plan, first)
        else:
            inside = acc.in_bounds(ctx, index, v)
            with kb.if_(inside):
                _store_group(ctx, acc, tile, i0, index, plan, first)
            with kb.else_():
                _per_element(ctx, acc, index, v, lambda k, idx: _store_one(
                    ctx, acc, tile, vals.plus(i0, k), idx, both(acc.in_bounds(ctx, idx, 1))))


def _store_group(ctx: LoweringContext, acc: Addressing, tile: vals.TileValue, i0: Index,
                 index: list[Operand], plan: AccessPlan, guard: Operand | None) -> None:
    kb = ctx.kb
    dt = tile.dtype
    nbits = dt.nbits
    addr, _ = acc.address(ctx, index)
    if is_packed(dt):
        first = vals.scale(i0, nbits)
        if plan.bits >= 32:
            words = [tile.array[vals.plus(vals.quotient(first, 32), w)]
                     for w in range(plan.bits // 32)]
        else:
            words = [kb.bfe(tile.array[vals.quotient(first, 32)], vals.low_bits(kb, first, 32),
                            plan.bits, type=U32)]
    elif nbits == 64:
        words = [vals.read_raw(kb, tile, vals.plus(i0, k)) for k in range(plan.vector)]
    else:
        per_word = 32 // nbits
        words = []
        for w in range(max(1, plan.bits // 32)):
            count = min(per_word, plan.vector)
            if count == 1:
                words.append(vals.read_raw(kb, tile, vals.plus(i0, w)))
                continue
            word = kb.reg(U32, "word")
            kb.mov(Const.of(0, U32), U32, out=word)
            with kb.for_(0, count, unroll=True, name="k") as k:
                raw = vals.read_raw(kb, tile, vals.plus(i0, vals.plus(w * count, k)))
                kb.bfi(raw, word, kb.mul(k, nbits, type=S32), nbits, out=word)
            words.append(word)
    t = _access_type(plan.bits, nbits)
    if t.kind == "vector":
        value = kb.pack(words, t.elem)
    elif plan.bits < 32:
        value = kb.cvt(words[0], t, src=U32)
    else:
        value = words[0]
    kb.st(acc.space, addr, value, guard=guard)


def _store_one(ctx: LoweringContext, acc: Addressing, tile: vals.TileValue, i: Index,
               index: list[Operand], active: Operand | None) -> None:
    """Store element ``i`` at ``index`` where ``active`` (always when ``None``)."""
    store_element(ctx, acc, index, vals.read_raw(ctx.kb, tile, i), active)


def store_element(ctx: LoweringContext, acc: Addressing, index: list[Operand], raw: Operand,
                  active: Operand | None) -> None:
    """Store the bit pattern ``raw`` (u32, u64 for 64-bit types) as the element at ``index``
    where ``active`` (always when ``None``); a sub-byte element changes only its own bits."""
    kb = ctx.kb
    dt = acc.dtype
    addr, bit = acc.address(ctx, index)
    if bit is None:
        t = _access_type(max(dt.nbits, 8), dt.nbits) if dt.nbits < 64 else U64
        value = raw if t in (B32, U64) else kb.cvt(raw, t, src=U32)
        kb.st(acc.space, addr, value, guard=active)
        return
    write_bits(ctx, acc.space, addr, bit, dt.nbits, raw, active)


def write_bits(ctx: LoweringContext, space: str, addr: Operand, bit: Operand, nbits: int,
               code: Operand, active: Operand | None) -> None:
    """Atomically replace the ``nbits`` bits at bit ``bit`` of the byte at ``addr`` by ``code``:
    ``red.and`` clears them and ``red.or`` sets them in the aligned 32-bit word(s) holding them."""
    kb = ctx.kb
    at = U64 if space == "global" else U32
    word_addr = kb.and_(addr, ~3 & ((1 << at.bits) - 1), type=B64 if at.bits == 64 else B32)
    byte_in_word = kb.cvt(kb.and_(addr, 3, type=B64 if at.bits == 64 else B32), U32, src=at) \
        if at.bits == 64 else kb.and_(addr, 3, type=B32)
    pos = kb.add(kb.shl(byte_in_word, 3, type=B32), bit, type=U32)
    ones = (1 << nbits) - 1
    low_mask = kb.shl(ones, pos, type=B32)
    kb.red(space, "and", word_addr, kb.unary("not", low_mask, type=B32), type="b32", guard=active)
    kb.red(space, "or", word_addr, kb.shl(code, pos, type=B32), type="b32", guard=active)
    if 32 % nbits == 0:
        return
    # The bits past the word's end go to the next word (shifting by 32 - pos ≥ 32 gives 0).
    rest = kb.sub(32, pos, type=U32)
    high_mask = kb.shr(ones, rest, type=U32)
    spills = kb.setp("ne", high_mask, 0, type=U32)
    if active is not None:
        spills = kb.and_(spills, active, type=PRED)
    next_word = kb.add(word_addr, 4, type=at)
    kb.red(space, "and", next_word, kb.unary("not", high_mask, type=B32), type="b32", guard=spills)
    kb.red(space, "or", next_word, kb.shr(code, rest, type=U32), type="b32", guard=spills)


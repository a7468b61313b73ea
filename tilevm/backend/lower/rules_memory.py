"""Lowering of memory operations: ``load``, ``store``, ``shared``/``index``, ``copy_async`` with
``commit``/``wait``, ``sync``, ``fence``, ``atomic`` and ``workspace``."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

from tilevm.backend.lower import memory_access as ma
from tilevm.backend.lower import scalar_math as sm
from tilevm.backend.lower import values as vals
from tilevm.backend.lower.abi import Workspace
from tilevm.backend.lower.access_plan import index_divisor, plan_access
from tilevm.backend.lower.context import LoweringContext, rule
from tilevm.backend.lower.default_layouts import blocked_layout
from tilevm.backend.lower.divisibility import UNBOUNDED
from tilevm.backend.lower.dtype_map import raw_bits_type, scalar_register_type, storage_type
from tilevm.backend.lower.exchange import relayout
from tilevm.backend.lower.ldmatrix_load import ldmatrix_plan, load_by_ldmatrix
from tilevm.ir.layout.algebra import replicated
from tilevm.ir.layout.register import RegisterLayout
from tilevm.ir.thread.builder import KernelBuilder
from tilevm.ir.thread.types import B32, B64, PRED, S32, S64, U32, U64
from tilevm.ir.thread.values import Const, Operand, Reg
from tilevm.ir.tile.ops import is_index_tile
from tilevm.ir.tile.program import Instr

__all__ = ["addressing"]


def addressing(ctx: LoweringContext, value: object) -> ma.Addressing:
    """How to address a global or shared tensor value."""
    if isinstance(value, vals.GlobalTensor):
        nbits = value.dtype.nbits
        base = 128 if value.aligned else (nbits if nbits % 8 == 0 else 1)
        contiguous = isinstance(value.strides[-1], Const) and value.strides[-1].value == 1
        bits = [nbits * d for d in value.stride_divisor]
        return ma.Addressing(value.dtype, "global", value.sizes, value.name, contiguous, base,
                             bits, tensor=value)
    assert isinstance(value, vals.SharedTensor)
    dt = value.dtype
    strides = value.layout.strides[len(value.prefix):]
    base = math.gcd(value.base * 8 if isinstance(value.base, int) else 1024, value.prefix_bits)
    bits = [s * dt.nbits if s else UNBOUNDED for s in strides]
    sizes = [Const.of(n, S32) for n in value.shape]
    return ma.Addressing(dt, "shared", sizes, value.name, strides[-1] == 1, base or UNBOUNDED,
                         bits, shared=value)


def _offsets(s: Instr, first: int, rank: int) -> list[object]:
    return list(s.args[first:first + rank])


@rule("load")
def lower_load(ctx: LoweringContext, s: Instr) -> None:
    src = ctx.value(s.args[0])
    acc = addressing(ctx, src)
    offsets = _offsets(s, 1, acc.rank)
    mode = s.attr("mask")
    if not s.attr("shape"):
        ctx.bind(s.result, _load_scalar(ctx, acc, offsets, mode, s.attr("other")))
        return
    mask = ctx.tile(s.args[-1]) if mode == "tile" else None
    tile = ctx.new_tile(s.result)
    gather = any(is_index_tile(o.type) for o in offsets)
    plan = ldmatrix_plan(tile.layout, acc, ctx, offsets) if mode != "tile" and not gather \
        else None
    if plan is not None:
        load_by_ldmatrix(ctx, s, acc, offsets, tile, plan, lambda: ma.load_tile(
            ctx, s, acc, offsets, tile, mode, mask, s.attr("other")))
        num, trans = plan[0], plan[1]
        ctx.report.access(s.loc, "load", acc.name, "shared", 2 * num, 32 * num,
                          f"ldmatrix.x{num}{'.trans' if trans else ''}")
    else:
        ma.load_tile(ctx, s, acc, offsets, tile, mode, mask, s.attr("other"))
    ctx.bind(s.result, tile)


def _load_scalar(ctx: LoweringContext, acc: ma.Addressing, offsets: list[object], mode: str,
                 other: int | float) -> vals.ScalarValue:
    """One element, loaded by every thread (a block-uniform value)."""
    dt = acc.dtype
    index = [ctx.index_scalar(o) for o in offsets]
    active = acc.in_bounds(ctx, index, 1) if mode == "bounds" else None
    raw = ma.load_element(ctx, acc, index, active, ma.raw_const(dt, other))
    return vals.ScalarValue(dt, _scalar_storage(ctx, raw, dt))


def _scalar_storage(ctx: LoweringContext, raw: Operand, dt: object) -> Operand:
    """A scalar's storage form from its bit pattern (packed integers: normalized values)."""
    if vals.is_packed(dt) and dt.kind == "int":
        return sm.normalize(ctx.kb, raw, dt)
    return vals.from_raw(ctx.kb, raw, dt)


@rule("store")
def lower_store(ctx: LoweringContext, s: Instr) -> None:
    dst = ctx.value(s.args[0])
    acc = addressing(ctx, dst)
    offsets = _offsets(s, 2, acc.rank)
    mode = s.attr("mask")
    value = ctx.value(s.args[1])
    if isinstance(value, vals.ScalarValue):
        _store_scalar(ctx, s, acc, offsets, mode, value)
        return
    mask = ctx.tile(s.args[-1]) if mode == "tile" else None
    ma.store_tile(ctx, s, acc, offsets, value, mode, mask)


def _store_scalar(ctx: LoweringContext, s: Instr, acc: ma.Addressing, offsets: list[object],
                  mode: str, value: vals.ScalarValue) -> None:
    """One element, stored by thread 0."""
    kb = ctx.kb
    index = [ctx.index_scalar(o) for o in offsets]
    active = kb.setp("eq", ctx.tid, 0, type=U32)
    if mode == "bounds":
        active = kb.and_(active, acc.in_bounds(ctx, index, 1), type=PRED)
    ctx.report.access(s.loc, "store", acc.name, acc.space, 1, acc.dtype.nbits, "one element")
    ma.store_element(ctx, acc, index, vals.read_raw(kb, value), active)


@rule("shared")
def lower_shared(ctx: LoweringContext, s: Instr) -> None:
    buffer = ctx.plan.buffers[s.result.name]
    if buffer.reuses:
        ctx.barrier()  # the buffer's bytes belonged to one no longer used: wait for its readers
    ctx.bind(s.result, vals.SharedTensor(s.result.type.dtype, buffer.offset, buffer.layout,
                                         name=s.result.name))


@rule("index")
def lower_index(ctx: LoweringContext, s: Instr) -> None:
    sh = ctx.value(s.args[0])
    assert isinstance(sh, vals.SharedTensor)
    stage = s.args[1]
    k = len(sh.prefix)
    divisor = ma.index_divisor_of(ctx, stage)
    term = min(divisor * sh.layout.strides[k] * sh.dtype.nbits, UNBOUNDED) or UNBOUNDED
    ctx.bind(s.result, vals.SharedTensor(sh.dtype, sh.base, sh.layout,
                                         [*sh.prefix, ctx.index_scalar(stage)], sh.name,
                                         math.gcd(sh.prefix_bits, term)))


@rule("copy_async")
def lower_copy_async(ctx: LoweringContext, s: Instr) -> None:
    kb = ctx.kb
    dst, src = ctx.value(s.args[0]), ctx.value(s.args[1])
    assert isinstance(dst, vals.SharedTensor) and isinstance(src, vals.GlobalTensor)
    dt = dst.dtype
    sacc, gacc = addressing(ctx, dst), addressing(ctx, src)
    offsets = _offsets(s, 2, gacc.rank)
    zeros = ma.zero_offsets(len(dst.shape))
    mode = s.attr("mask")
    mask = ctx.tile(s.args[-1]) if mode == "tile" else None
    # A mask of the destination's shape gives the copy its layout; a broadcast one was converted
    # (layout inference) to the default copy layout reduced over its broadcast dimensions.
    layout = mask.layout if mask is not None and tuple(mask.layout.shape) == tuple(
        dst.shape) else blocked_layout(tuple(dst.shape), dt.nbits, ctx.kernel.warps,
                                       spread=False)
    why = "a mask tile selects elements one by one" if mode == "tile" else ""
    plan_g = plan_access(layout, dt.nbits, gacc.contiguous,
                         lambda v: gacc.alignment(ctx, offsets, layout, v), why)
    plan_s = plan_access(layout, dt.nbits, sacc.contiguous,
                         lambda v: sacc.alignment(ctx, zeros, layout, v), why)
    bits = min(plan_g.bits, plan_s.bits)
    if bits < 32:
        # cp.async copies 4, 8 or 16 bytes: anything narrower goes through registers now (the
        # copy is complete at once, which a program that waits before reading cannot tell).
        reason = plan_g.reason if plan_g.bits <= plan_s.bits else plan_s.reason
        ctx.report.access(s.loc, "copy_async (synchronous)", src.name, "global", 1,
                          min(plan_g.bits, plan_s.bits), reason)
        tile = vals.new_tile(kb, dt, layout, "staged")
        ma.load_tile(ctx, s, gacc, offsets, tile, mode, mask, 0)
        ma.store_tile(ctx, s, sacc, zeros, tile, "none", None)
        return
    vector = bits // dt.nbits
    ctx.report.access(s.loc, "copy_async", src.name, "global", vector, bits,
                      plan_g.reason if plan_g.bits == bits else plan_s.reason)
    starts = [ctx.index_scalar(o) for o in offsets]
    first = ctx.replica_zero(layout)  # replicated groups are copied by their first holder
    with (vals.locals_loop(kb, layout.local_size // vector, "g", layout, vector) as g,
          _only(kb, first)):
        i0 = vals.scale(g, vector)
        local = ctx.element_index(layout, i0)
        index = [kb.add(o, e, type=S32) for o, e in zip(starts, local, strict=True)]
        to, _ = sacc.address(ctx, local)
        size = bits // 8
        cache = "cg" if size == 16 else "ca"
        if mode == "none":
            frm, _ = gacc.address(ctx, index)
            kb.cp_async(to, frm, size, cache=cache)
        elif mode == "tile":  # one element per copy: selected ones are copied, the rest zeroed
            selected = ma.mask_and_bounds(ctx, gacc, ma.TileOffsets(starts, {}), mask, layout,
                                          i0, index)
            with kb.if_(selected):
                frm, _ = gacc.address(ctx, index)
                kb.cp_async(to, frm, size, cache=cache)
            with kb.else_():
                kb.cp_async(to, src.base, size, cache=cache, src_size=0)
        else:
            whole = ma.whole_groups(ctx, gacc, offsets, layout, vector)
            with kb.if_(gacc.in_bounds(ctx, index, vector)):
                frm, _ = gacc.address(ctx, index)
                kb.cp_async(to, frm, size, cache=cache)
            with kb.else_():
                if whole:  # a group outside the tensor is outside as a whole: zeros
                    kb.cp_async(to, src.base, size, cache=cache, src_size=0)
                else:
                    _partial_copy(ctx, gacc, sacc, src, index, local, to, vector, size, cache,
                                  _prefixes_suffice(ctx, gacc, offsets, layout, vector))


def _prefixes_suffice(ctx: LoweringContext, gacc: ma.Addressing, offsets: list[object],
                      layout: RegisterLayout, vector: int) -> bool:
    """Whether every edge group's valid part is a prefix of whole bytes (no element-wise
    copy): its first index along the last dimension is a multiple of ``vector`` (so it cannot
    start before the tensor and end inside it), and a prefix of sub-byte elements ends on a
    byte because the size is a multiple of the elements per byte."""
    last = gacc.rank - 1
    start = math.gcd(ma.index_divisor_of(ctx, offsets[last]), index_divisor(layout, last, vector))
    nbits = gacc.dtype.nbits
    per_byte = 8 // math.gcd(8, nbits)
    return start % vector == 0 and ma.size_divisor(ctx, gacc.sizes[last]) % per_byte == 0


@contextmanager
def _only(kb: KernelBuilder, pred: Operand | None) -> Iterator[None]:
    """Emit the body under ``pred`` (a non-uniform ``if``), or unconditionally for ``None``."""
    if pred is None:
        yield
        return
    with kb.if_(pred):
        yield


def _partial_copy(ctx: LoweringContext, gacc: ma.Addressing, sacc: ma.Addressing,
                  src: vals.GlobalTensor, index: list[Operand], local: list[Operand],
                  to: Operand, vector: int, size: int, cache: str, prefixes_suffice: bool
                  ) -> None:
    """A group at the tensor's edge: a copy of its valid prefix with the rest zero-filled
    (``cp.async``'s source size), or element by element when the valid part may not be a
    prefix of whole bytes (never where ``prefixes_suffice``: then the group is empty)."""
    kb = ctx.kb
    nbits = gacc.dtype.nbits
    rows = None
    for d in range(gacc.rank - 1):
        ok = kb.setp("lt", index[d], gacc.sizes[d], type=U32)
        rows = ok if rows is None else kb.and_(rows, ok, type=PRED)
    last, n = index[-1], gacc.sizes[-1]
    starts_inside = kb.setp("ge", last, 0, type=S32)
    prefix = starts_inside if rows is None else kb.and_(rows, starts_inside, type=PRED)
    valid = kb.max(kb.min(kb.sub(n, last, type=S32), vector, type=S32), 0, type=S32)
    if nbits % 8 and not prefixes_suffice:  # a prefix of sub-byte elements need not end on a byte
        whole = kb.setp("eq", kb.and_(kb.mul(valid, nbits, type=S32), 7, type=B32), 0, type=U32)
        prefix = kb.and_(prefix, whole, type=PRED)
    with kb.if_(prefix):
        frm, _ = gacc.address(ctx, index)
        nbytes = kb.shr(kb.mul(valid, nbits, type=S32), 3, type=U32)
        # An empty prefix reads nothing: point it at the tensor's first element, always valid.
        frm = kb.selp(frm, src.base, kb.setp("gt", nbytes, 0, type=U32), type=U64)
        kb.cp_async(to, frm, size, cache=cache, src_size=nbytes)
    with kb.else_():
        if prefixes_suffice:
            kb.cp_async(to, src.base, size, cache=cache, src_size=0)
            return
        empty = kb.or_(kb.setp("ge", last, n, type=S32),
                       kb.setp("lt", kb.add(last, vector - 1, type=S32), 0, type=S32), type=PRED)
        if rows is not None:
            empty = kb.or_(empty, kb.unary("not", rows, type=PRED), type=PRED)
        with kb.if_(empty):
            kb.cp_async(to, src.base, size, cache=cache, src_size=0)
        with kb.else_():
            zero = ma.raw_const(gacc.dtype, 0)
            with kb.for_(0, vector, unroll=True, name="k") as k:
                g = [*index[:-1], kb.add(index[-1], k, type=S32)]
                raw = ma.load_element(ctx, gacc, g, gacc.in_bounds(ctx, g, 1), zero)
                ma.store_element(ctx, sacc, [*local[:-1], kb.add(local[-1], k, type=S32)], raw,
                                 None)


@rule("commit")
def lower_commit(ctx: LoweringContext, s: Instr) -> None:
    ctx.kb.commit_group()


@rule("wait")
def lower_wait(ctx: LoweringContext, s: Instr) -> None:
    ctx.kb.wait_group(s.attr("n"))


@rule("sync")
def lower_sync(ctx: LoweringContext, s: Instr) -> None:
    ctx.barrier()


@rule("fence")
def lower_fence(ctx: LoweringContext, s: Instr) -> None:
    ctx.barrier()
    scope = {"block": "cta", "gpu": "gpu", "sys": "sys"}[s.attr("scope")]
    ctx.kb.fence("acq_rel", scope)


_ATOM_TYPES = {"add": {"f32": "f32", "f64": "f64", "i32": "s32", "u32": "u32", "u64": "u64"},
               "max": {"i32": "s32", "u32": "u32", "i64": "s64", "u64": "u64"},
               "min": {"i32": "s32", "u32": "u32", "i64": "s64", "u64": "u64"},
               "exch": {"i32": "b32", "u32": "b32", "f32": "b32", "i64": "b64", "u64": "b64"},
               "and": {"i32": "b32", "u32": "b32", "i64": "b64", "u64": "b64"},
               "or": {"i32": "b32", "u32": "b32", "i64": "b64", "u64": "b64"},
               "xor": {"i32": "b32", "u32": "b32", "i64": "b64", "u64": "b64"}}


@rule("atomic")
def lower_atomic(ctx: LoweringContext, s: Instr) -> None:
    kb = ctx.kb
    dst = ctx.value(s.args[0])
    acc = addressing(ctx, dst)
    offsets = _offsets(s, 2, acc.rank)
    mode, op = s.attr("mask"), s.attr("op")
    value = ctx.value(s.args[1])
    dt = acc.dtype
    ctx.report.access(s.loc, f"atomic {op}", acc.name, acc.space, 1, dt.nbits, "one element "
                      "per atomic instruction")
    if isinstance(value, vals.ScalarValue):
        starts = [ctx.index_scalar(o) for o in offsets]
        single = vals.new_tile(kb, dt, replicated(1), "value")
        vals.write(kb, single, 0, value.reg)
        old = vals.new_tile(kb, dt, replicated(1), "old")
        active = kb.setp("eq", ctx.tid, 0, type=U32)
        if mode == "bounds":
            active = kb.and_(active, acc.in_bounds(ctx, starts, 1), type=PRED)
        _atomic_one(ctx, acc, op, single, old, 0, starts, active)
        ctx.bind(s.result, vals.ScalarValue(dt, _broadcast_from_thread0(ctx, s, old)))
        return
    mask = ctx.tile(s.args[-1]) if mode == "tile" else None
    old = vals.new_tile(kb, dt, value.layout, "old")
    first = ctx.replica_zero(value.layout)
    at = ma.TileOffsets.of(ctx, offsets)
    with vals.locals_loop(kb, value.count, layout=value.layout) as i:
        index = at.index(ctx, value.layout, i)
        if mode == "tile":
            active = ma.mask_and_bounds(ctx, acc, at, mask, value.layout, i, index)
        elif mode == "bounds":
            active = acc.in_bounds(ctx, index, 1)
        else:
            active = None
        if first is not None:
            active = first if active is None else kb.and_(active, first, type=PRED)
        _atomic_one(ctx, acc, op, value, old, i, index, active)
    if first is not None and s.result.name in ctx.used:
        # Only the first holders did the atomics: the other holders get the old values from them.
        old = relayout(ctx, s, old, value.layout, "old")
    ctx.bind(s.result, old)


def _atomic_one(ctx: LoweringContext, acc: ma.Addressing, op: str, value: vals.TileValue,
                old: vals.TileValue, i: object, index: list[Operand],
                active: Operand | None) -> None:
    """``old[i] := atom.op(element at index, value[i])`` where ``active``; 0 elsewhere."""
    kb = ctx.kb
    dt = acc.dtype
    addr, _ = acc.address(ctx, index)
    x = vals.read_storage(kb, value, i)
    if dt.name in ("f16", "bf16"):  # packed tiles: the old half goes into its word at the end
        seen = kb.reg(scalar_register_type(dt), "old_half")
        kb.mov(Const.of(0, seen.type), seen.type, out=seen)
        _half_atomic_add(ctx, acc, addr, x, seen, active)
        vals.write(kb, old, i, seen)
        return
    t = storage_type(dt)
    kb.mov(Const.of(0, t), t, out=old.array[i])
    ptx = _ATOM_TYPES[op][dt.name]
    got = kb.atom(acc.space, op, addr, x, type=ptx, guard=active)
    kb.mov(got, t, out=old.array[i], guard=active)


def _half_atomic_add(ctx: LoweringContext, acc: ma.Addressing, addr: Operand, x: Operand,
                     old: Reg, active: Operand | None) -> None:
    """An f16/bf16 atomic add as a compare-and-swap loop on the aligned 32-bit word; ``old``
    := the value it replaced, where ``active``."""
    kb = ctx.kb
    dt = acc.dtype
    at = U64 if acc.space == "global" else U32
    bt = B64 if at == U64 else B32
    word = kb.and_(addr, ~3 & ((1 << at.bits) - 1), type=bt)
    shift = kb.shl(kb.cvt(kb.and_(addr, 2, type=bt), U32, src=at) if at == U64 else
                   kb.and_(addr, 2, type=B32), 3, type=B32)
    seen = kb.reg(U32, "seen")
    kb.mov(Const.of(0, U32), U32, out=seen)
    going = kb.reg(PRED, "going")
    kb.mov(active if active is not None else kb.setp("eq", 0, 0, type=U32), PRED, out=going)
    kb.mov(kb.ld(acc.space, word, U32, guard=active), U32, out=seen, guard=active)
    with kb.while_() as loop:
        loop.cond(going)
        half = kb.bfe(seen, shift, 16, type=U32)
        current = vals.from_raw(kb, half, dt)
        total = sm.binary(kb, "add", current, x, dt)
        raw = vals.read_raw(kb, vals.ScalarValue(dt, total))
        new = kb.bfi(raw, seen, shift, 16)
        prev = kb.atom(acc.space, "cas", word, seen, new, type="b32")
        done = kb.setp("eq", prev, seen, type=U32)
        kb.mov(kb.unary("not", done, type=PRED), PRED, out=going)
        kb.mov(prev, U32, out=seen)
        kb.mov(current, old.type, out=old, guard=done)


def _broadcast_from_thread0(ctx: LoweringContext, s: Instr, tile: vals.TileValue) -> Operand:
    """Thread 0's element 0 of ``tile`` in every thread (through the scratch area)."""
    kb = ctx.kb
    dt = tile.dtype
    nbytes = max(8, dt.nbits // 8)
    offset = ctx.scratch(nbytes)
    ctx.barrier()
    addr = kb.add(ctx.smem, offset, type=U32)
    raw = vals.read_raw(kb, tile, 0)
    kb.st("shared", addr, raw, guard=kb.setp("eq", ctx.tid, 0, type=U32))
    ctx.barrier()
    got = kb.ld("shared", addr, raw_bits_type(dt))
    return _scalar_storage(ctx, got, dt)


@rule("workspace")
def lower_workspace(ctx: LoweringContext, s: Instr) -> None:
    kb = ctx.kb
    r = s.result
    dt = r.type.dtype
    k = len(ctx.workspaces)
    ctx.workspaces.append(Workspace(r.name, tuple(s.attr("shape")), dt, bool(s.attr("zeroed")),
                                    bool(s.attr("restored"))))
    base = ctx.param(f"workspace{k}", U64, "workspace", r.name, pointer=True)
    shape = s.attr("shape")
    sizes = [Const.of(n, S32) if isinstance(n, int) else ctx.dims[n] for n in shape]
    # Row-major: each stride is the product of the sizes after it (folded where constant).
    strides: list[Operand] = [Const.of(1, S64)]
    divisor = [1]  # and what each stride is known to be a multiple of
    for n, size in zip(reversed(shape[1:]), reversed(sizes[1:]), strict=True):
        inner = strides[0]
        if isinstance(size, Const) and isinstance(inner, Const):
            strides.insert(0, Const.of(inner.value * size.value, S64))
        else:
            wide = Const.of(size.value, S64) if isinstance(size, Const) else kb.cvt(size, S64,
                                                                                   src=S32)
            strides.insert(0, kb.mul(inner, wide, type=S64))
        divisor.insert(0, divisor[0] * (n if isinstance(n, int) else
                                        (16 if n in ctx.spec.dims16 else 1)))
    ctx.bind(r, vals.GlobalTensor(dt, base, Const.of(0, S64), sizes, strides, r.name, True,
                                  divisor))

"""The kernel sanitizer's LLVM side (see :mod:`tilevm.backend.cpu.sanitizer` for the contract).

A sanitized kernel is the same Thread IR compiled with ``generate(..., sanitize=True)``: every
global and shared access of ``ld``/``st``/``atom``/``red``/``ldmatrix`` becomes, after the usual
code, one store of the 32 lane addresses to a scratch array and one call of ``tv_san_access``
(scalar and pointer arguments only: LLVM's instruction selection stays linear in the kernel);
``cp.async`` calls ``tv_san_cpa_issue`` per lane and ``cp.async.wait_group`` calls
``tv_san_cpa_wait`` before performing the copies; the block driver calls ``tv_san_block`` when a
block starts and ``tv_san_phase`` at every phase (barrier epoch). The helpers find the sanitizer's
state through the error buffer: its bytes 32..39 hold the address of the *context*.

Context (``CTX_*`` byte offsets, written by the host):

====  ====  ==========================================================================
 0    i32   stop at the first report (1) or record and continue (0)
 4    i32   barrier epoch (incremented at every block start and phase)
 8    i32   the running block (linear number)
12    i32   number of global buffers
16    ptr   shared memory of the running block
24    ptr   shared shadow: ``SHADOW_BYTES`` per shared byte (below)
32    ptr   global buffers: ``[base i64, end i64, shadow ptr, sums ptr]`` each, the shadow one
          i32 per byte (0, or 1 + the block that last wrote the byte non-atomically); the sums
          (null unless the host asks) two f64 per 4-byte word: the sum of the magnitudes of the
          float atomic adds into the word and their number (the block-order check's bound)
40    i64   shared memory bytes
48    i32   records stored
52    i32   record capacity
56    ptr   records: 8 × i64 each: kind, stmt, block, thread, other thread (or block),
          address, bytes, the other access's stmt (or -1)
64    i32   checks disabled (1: the helpers return at once; the order rerun uses it)
68    i32   shared bytes read while never written, not yet reported (the phase hook scans)
====  ====  ==========================================================================

Shared shadow entry (24 bytes): ``[write epoch i32][read epoch i32][writer i16][reader i16]
[cp.async issuer i16][flags i8][pad][writer's stmt i32][reader's stmt i32]``; flags: 1 written,
2 a ``cp.async`` pending, 4 the last write was atomic, 8 read while never written. A reader of
``0xFFFF`` means several threads read the byte in that epoch. Atomics race only with plain
writes: a plain read and an atomic of one byte in one interval are not reported (the CAS loops
of f16/bf16 atomic adds read the word plainly, then validate it).

A read of a never-written byte is not reported at once: warps run one after another, so a
write by a later warp of the same barrier interval may follow (a read/write race, reported at
that write with both statements). What stays unwritten to the end of the interval is reported
by the phase hook (``tv_san_phase``/``tv_san_block``, scanning only when such reads exist) and,
after the last block, by the host.
"""

from __future__ import annotations

from typing import Any

from llvmlite import ir

from tilevm.backend.cpu.lanes import I1, I8, I16, I32, I64, PTR, WARP

__all__ = ["CTX_BYTES", "KINDS", "SANITIZER_ERROR", "SHADOW_BYTES", "check_access",
           "check_cpa_issue", "check_cpa_wait", "driver_hooks", "helpers_module",
           "record_float_add"]

SANITIZER_ERROR = 9  # the err[0] code of a sanitizer report (the details are in the records)

CTX_STOP, CTX_EPOCH, CTX_BLOCK, CTX_NBUF = 0, 4, 8, 12
CTX_SMEM, CTX_SHADOW, CTX_BUFFERS, CTX_SHARED_BYTES = 16, 24, 32, 40
CTX_NREC, CTX_CAP, CTX_RECORDS, CTX_DISABLED, CTX_UNREAD = 48, 52, 56, 64, 68
CTX_BYTES = 72
ERR_CTX_OFFSET = 32  # where in the error buffer the context's address is
SHADOW_BYTES = 24
TABLE_ENTRY_BYTES = 32
RECORD_WORDS = 8
WRITTEN, PENDING, ATOMIC, UNREAD = 1, 2, 4, 8
SEVERAL = 0xFFFF

# access kinds passed to tv_san_access
GLOBAL_READ, GLOBAL_WRITE, GLOBAL_ATOMIC, SHARED_READ, SHARED_WRITE, SHARED_ATOMIC = range(6)

# report kinds (a record's first word)
OUT_OF_BOUNDS, RACE_WRITE_READ, RACE_WRITE_WRITE, RACE_READ_WRITE = 1, 2, 3, 4
UNWRITTEN_READ, PENDING_READ, TWO_BLOCKS, CPA_SOURCE_OUT_OF_BOUNDS = 5, 6, 7, 8
KINDS = {
    OUT_OF_BOUNDS: "global access out of bounds",
    RACE_WRITE_READ: "data race on shared memory (write/read)",
    RACE_WRITE_WRITE: "data race on shared memory (write/write)",
    RACE_READ_WRITE: "data race on shared memory (read/write)",
    UNWRITTEN_READ: "read of shared memory never written",
    PENDING_READ: "read of a cp.async destination before its wait",
    TWO_BLOCKS: "one global byte written non-atomically by two blocks",
    CPA_SOURCE_OUT_OF_BOUNDS: "cp.async source out of bounds",
}


# -- code emitted into the kernel ------------------------------------------------------------------

def _declare(m: ir.Module, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
    fn = m.globals.get(name)
    if fn is None:
        fn = ir.Function(m, ir.FunctionType(ret, args), name=name)
    return fn


def check_access(cg: Any, space: str, ptrs: ir.Value, nbytes: int, stmt: Any) -> None:
    """Emit the check of an access of ``nbytes`` per active lane at ``ptrs`` (``<32 x ptr>``):
    one vector store and one ``tv_san_access`` call; a report in stop mode fails the warp with
    :data:`SANITIZER_ERROR`. ``cp.async`` and local accesses are not checked here."""
    op = stmt.op.name
    if space not in ("global", "shared") or op == "cp.async":
        return
    base = GLOBAL_READ if space == "global" else SHARED_READ
    kind = base + (2 if op in ("atom", "red") else 1 if op == "st" else 0)
    b, L = cg.b, cg.L
    addrs = cg.scratch(L.vec(I64))
    b.store(b.ptrtoint(ptrs, L.vec(I64)), addrs, align=8)
    fn = _declare(cg.m, "tv_san_access", I32, [PTR, PTR, I32, I32, I32, I32, I32])
    r = b.call(fn, [cg.err, addrs, L.bits(cg.active()), I32(nbytes), I32(kind),
                    I32(cg.stmt_ids[id(stmt)]), cg.warp])
    cg.check(b.icmp_unsigned("==", r, I32(0)), SANITIZER_ERROR, stmt)


def record_float_add(cg: Any, pointer: ir.Value, value: ir.Value) -> None:
    """Emit, inside a float ``atom``/``red`` add's per-lane loop, the call that adds ``|value|``
    and one term to the sums of the word at ``pointer`` (global buffers with sums only)."""
    b = cg.b
    fn = _declare(cg.m, "tv_san_fadd", ir.VoidType(), [PTR, I64, ir.DoubleType()])
    wide = value if value.type == ir.DoubleType() else b.fpext(value, ir.DoubleType())
    b.call(fn, [cg.err, b.ptrtoint(pointer, I64), wide])


def check_cpa_issue(cg: Any, lane: ir.Value, dst: ir.Value, src: ir.Value, size: int,
                    src_size: ir.Value, stmt: Any) -> ir.Value:
    """Emit, inside ``cp.async``'s per-lane loop, the check of one lane's copy (source bounds
    for ``min(src_size, size)`` bytes, the destination marked pending); returns the i32 result
    (non-zero: stop with a report)."""
    fn = _declare(cg.m, "tv_san_cpa_issue", I32, [PTR, I32, I32, I64, I32, I32, I32, I32])
    return cg.b.call(fn, [cg.err, lane, dst, src, I32(size), src_size,
                          I32(cg.stmt_ids[id(stmt)]), cg.warp])


def check_cpa_wait(cg: Any, lane: ir.Value, n: int) -> None:
    """Emit, before one lane's ``tv_cpa_wait``, the call that marks the bytes of the copies the
    wait performs as written by that thread in this epoch (no longer pending)."""
    fn = _declare(cg.m, "tv_san_cpa_wait", ir.VoidType(), [PTR, PTR, I32, I32, I32])
    cg.b.call(fn, [cg.err, cg.cpq, lane, I32(n), cg.warp])


def driver_hooks(module: ir.Module) -> tuple[ir.Function, ir.Function]:
    """``i32 tv_san_block(err, block, smem)`` and ``i32 tv_san_phase(err)`` for the block
    driver (non-zero: stop, error :data:`SANITIZER_ERROR`)."""
    return (_declare(module, "tv_san_block", I32, [PTR, I32, PTR]),
            _declare(module, "tv_san_phase", I32, [PTR]))


# -- the helpers -------------------------------------------------------------------------------

class _F:
    """A helper function under construction: a builder and small conveniences."""

    def __init__(self, m: ir.Module, name: str, ret: ir.Type, args: list[ir.Type]) -> None:
        self.fn = ir.Function(m, ir.FunctionType(ret, args), name=name)
        self.b = ir.IRBuilder(self.fn.append_basic_block("entry"))

    def block(self, name: str) -> ir.Block:
        return self.fn.append_basic_block(name)

    def field(self, base: ir.Value, offset: int | ir.Value, t: ir.Type) -> ir.Value:
        off = I64(offset) if isinstance(offset, int) else offset
        return self.b.gep(base, [off], source_etype=I8)

    def load(self, base: ir.Value, offset: int | ir.Value, t: ir.Type) -> ir.Value:
        return self.b.load(self.field(base, offset, t), typ=t)

    def store(self, v: ir.Value, base: ir.Value, offset: int | ir.Value) -> None:
        self.b.store(v, self.field(base, offset, v.type))

    def ctx(self, err: ir.Value) -> ir.Value:
        return self.load(err, ERR_CTX_OFFSET, PTR)


def _report(m: ir.Module) -> ir.Function:
    """``i32 tv_san_report(ctx, kind, stmt, thread, other, address, nbytes, other_stmt)``: store
    a record unless one of the same kind and statement is stored (or the records are full);
    returns 1."""
    f = _F(m, "tv_san_report", I32, [PTR, I32, I32, I32, I32, I64, I32, I32])
    ctx, kind, stmt, tid, other, addr, nbytes, other_stmt = f.fn.args
    b = f.b
    entry = b.block
    count = f.load(ctx, CTX_NREC, I32)
    cap = f.load(ctx, CTX_CAP, I32)
    recs = f.load(ctx, CTX_RECORDS, PTR)
    head, body, nxt, store, done = (f.block(n) for n in ("head", "body", "next", "store",
                                                           "done"))
    b.branch(head)
    b.position_at_end(head)
    i = b.phi(I32)
    i.add_incoming(I32(0), entry)
    b.cbranch(b.icmp_unsigned("<", i, count), body, store)
    b.position_at_end(body)
    rec = f.field(recs, b.mul(b.zext(i, I64), I64(8 * RECORD_WORDS)), I64)
    same = b.and_(b.icmp_unsigned("==", b.load(rec, typ=I64), b.zext(kind, I64)),
                  b.icmp_unsigned("==", f.load(rec, 8, I64), b.zext(stmt, I64)))
    b.cbranch(same, done, nxt)
    b.position_at_end(nxt)
    i1 = b.add(i, I32(1))
    i.add_incoming(i1, nxt)
    b.branch(head)
    b.position_at_end(store)
    room = f.block("room")
    b.cbranch(b.icmp_unsigned("<", count, cap), room, done)
    b.position_at_end(room)
    rec = f.field(recs, b.mul(b.zext(count, I64), I64(8 * RECORD_WORDS)), I64)
    block = f.load(ctx, CTX_BLOCK, I32)
    for k, v in enumerate([b.zext(kind, I64), b.zext(stmt, I64), b.sext(block, I64),
                           b.sext(tid, I64), b.sext(other, I64), addr, b.zext(nbytes, I64),
                           b.sext(other_stmt, I64)]):
        f.store(v, rec, 8 * k)
    f.store(b.add(count, I32(1)), ctx, CTX_NREC)
    b.branch(done)
    b.position_at_end(done)
    b.ret(I32(1))
    return f.fn


def _global(m: ir.Module, report: ir.Function) -> ir.Function:
    """``i32 tv_san_global(ctx, addr, nbytes, kind, stmt, thread)``: ``[addr, addr+nbytes)`` must
    lie in one buffer; a non-atomic write records its block per byte and reports a byte another
    block wrote. 1 when it reported."""
    f = _F(m, "tv_san_global", I32, [PTR, I64, I32, I32, I32, I32])
    ctx, addr, nbytes, kind, stmt, tid = f.fn.args
    b = f.b
    entry = b.block
    n64 = b.zext(nbytes, I64)
    end = b.add(addr, n64)
    nbuf = f.load(ctx, CTX_NBUF, I32)
    table = f.load(ctx, CTX_BUFFERS, PTR)
    head, body, nxt, missing, found = (f.block(n) for n in ("head", "body", "next", "missing",
                                                              "found"))
    b.branch(head)
    b.position_at_end(head)
    i = b.phi(I32)
    i.add_incoming(I32(0), entry)
    b.cbranch(b.icmp_unsigned("<", i, nbuf), body, missing)
    b.position_at_end(body)
    entry_p = f.field(table, b.mul(b.zext(i, I64), I64(TABLE_ENTRY_BYTES)), I64)
    base = b.load(entry_p, typ=I64)
    bend = f.load(entry_p, 8, I64)
    inside = b.and_(b.icmp_unsigned(">=", addr, base), b.icmp_unsigned("<=", end, bend))
    b.cbranch(inside, found, nxt)
    b.position_at_end(nxt)
    i.add_incoming(b.add(i, I32(1)), nxt)
    b.branch(head)
    b.position_at_end(missing)
    out_kind = b.select(b.icmp_unsigned("==", kind, I32(-1)), I32(CPA_SOURCE_OUT_OF_BOUNDS),
                        I32(OUT_OF_BOUNDS))
    b.ret(b.call(report, [ctx, out_kind, stmt, tid, I32(-1), addr, nbytes, I32(-1)]))
    b.position_at_end(found)
    write, ok = f.block("write"), f.block("ok")
    b.cbranch(b.icmp_unsigned("==", kind, I32(GLOBAL_WRITE)), write, ok)
    b.position_at_end(ok)
    b.ret(I32(0))
    b.position_at_end(write)
    shadow = f.load(entry_p, 16, PTR)
    me = b.add(f.load(ctx, CTX_BLOCK, I32), I32(1))
    first = b.sub(addr, base)
    whead, wbody, wbad, wnext = (f.block(n) for n in ("whead", "wbody", "wbad", "wnext"))
    b.branch(whead)
    b.position_at_end(whead)
    j = b.phi(I64)
    j.add_incoming(I64(0), write)
    b.cbranch(b.icmp_unsigned("<", j, n64), wbody, ok)
    b.position_at_end(wbody)
    p = f.field(shadow, b.mul(b.add(first, j), I64(4)), I32)
    seen = b.load(p, typ=I32)
    clash = b.and_(b.icmp_unsigned("!=", seen, I32(0)), b.icmp_unsigned("!=", seen, me))
    b.cbranch(clash, wbad, wnext)
    b.position_at_end(wbad)
    b.ret(b.call(report, [ctx, I32(TWO_BLOCKS), stmt, tid, b.sub(seen, I32(1)), b.add(addr, j),
                          I32(1), I32(-1)]))
    b.position_at_end(wnext)
    b.store(me, p)
    j.add_incoming(b.add(j, I64(1)), wnext)
    b.branch(whead)
    return f.fn


def _shared(m: ir.Module, report: ir.Function) -> ir.Function:
    """``i32 tv_san_shared(ctx, offset, nbytes, kind, stmt, thread)``: the shadow rules of one
    thread's shared access (module docstring); 1 when it reported."""
    f = _F(m, "tv_san_shared", I32, [PTR, I64, I32, I32, I32, I32])
    ctx, off, nbytes, kind, stmt, tid = f.fn.args
    b = f.b
    entry = b.block
    epoch = f.load(ctx, CTX_EPOCH, I32)
    shadow = f.load(ctx, CTX_SHADOW, PTR)
    tid16 = b.trunc(tid, I16)
    n64 = b.zext(nbytes, I64)
    head, body, done = f.block("head"), f.block("body"), f.block("done")
    b.branch(head)
    b.position_at_end(head)
    j = b.phi(I64)
    j.add_incoming(I64(0), entry)
    b.cbranch(b.icmp_unsigned("<", j, n64), body, done)
    b.position_at_end(done)
    b.ret(I32(0))

    b.position_at_end(body)
    at = b.add(off, j)
    e = f.field(shadow, b.mul(at, I64(SHADOW_BYTES)), I8)
    wepoch, repoch = b.load(e, typ=I32), f.load(e, 4, I32)
    writer, reader = f.load(e, 8, I16), f.load(e, 10, I16)
    issuer, flags = f.load(e, 12, I16), f.load(e, 14, I8)
    wstmt, rstmt = f.load(e, 16, I32), f.load(e, 20, I32)
    address = at

    def flag(bit: int) -> ir.Value:
        return b.icmp_unsigned("!=", b.and_(flags, I8(bit)), I8(0))

    other_writer = b.and_(b.icmp_unsigned("==", wepoch, epoch),
                          b.icmp_unsigned("!=", writer, tid16))
    other_reader = b.and_(b.icmp_unsigned("==", repoch, epoch),
                          b.icmp_unsigned("!=", reader, tid16))
    nxt = f.block("next")

    def fail_if(cond: ir.Value, what: int, other: ir.Value, other_stmt: ir.Value, name: str,
                at_stmt: ir.Value | None = None) -> None:
        bad, go = f.block(name), f.block(name + "_ok")
        b.cbranch(cond, bad, go)
        b.position_at_end(bad)
        b.ret(b.call(report, [ctx, I32(what), at_stmt or stmt, tid, b.zext(other, I32), address,
                              I32(1), other_stmt]))
        b.position_at_end(go)

    read, write, atomic = f.block("read"), f.block("write"), f.block("atomic")
    sw = b.switch(kind, read)
    sw.add_case(I32(SHARED_WRITE), write)
    sw.add_case(I32(SHARED_ATOMIC), atomic)

    b.position_at_end(read)
    fail_if(flag(PENDING), PENDING_READ, issuer, I32(-1), "pending")
    # a read after another thread's atomic is not a race: the compare-and-swap loops of the
    # f16/bf16 atomic adds read the word plainly first (the CAS validates what they read)
    fail_if(b.and_(other_writer, b.not_(flag(ATOMIC))), RACE_WRITE_READ, writer, wstmt, "raw")
    unwritten = b.and_(b.not_(flag(WRITTEN)), b.not_(flag(UNREAD)))
    count_it, counted = f.block("count_unread"), f.block("counted")
    b.cbranch(unwritten, count_it, counted)
    b.position_at_end(count_it)  # deferred: a later warp's write may follow (module docstring)
    f.store(b.add(f.load(ctx, CTX_UNREAD, I32), I32(1)), ctx, CTX_UNREAD)
    f.store(b.or_(flags, I8(UNREAD)), e, 14)
    b.branch(counted)
    b.position_at_end(counted)
    new_reader = b.icmp_unsigned("!=", repoch, epoch)
    f.store(epoch, e, 4)
    f.store(b.select(new_reader, tid16, b.select(b.icmp_unsigned("==", reader, tid16), tid16,
                                                  I16(SEVERAL))), e, 10)
    f.store(stmt, e, 20)
    b.branch(nxt)

    def unread_by_self() -> None:
        """The byte was read unwritten by this thread alone, this interval: report that read."""
        mine = b.and_(flag(UNREAD), b.not_(other_reader))
        fail_if(mine, UNWRITTEN_READ, reader, I32(-1), "unwritten", at_stmt=rstmt)

    b.position_at_end(write)
    fail_if(b.and_(other_writer, flag(WRITTEN)), RACE_WRITE_WRITE, writer, wstmt, "waw")
    fail_if(other_reader, RACE_READ_WRITE, reader, rstmt, "war")
    unread_by_self()
    b.store(epoch, e)
    f.store(tid16, e, 8)
    f.store(stmt, e, 16)
    f.store(b.and_(b.or_(flags, I8(WRITTEN)), I8(~(PENDING | ATOMIC | UNREAD) & 0xFF)), e, 14)
    b.branch(nxt)

    b.position_at_end(atomic)
    plain = b.and_(flag(WRITTEN), b.not_(flag(ATOMIC)))
    fail_if(b.and_(other_writer, plain), RACE_WRITE_WRITE, writer, wstmt, "waw_atomic")
    b.store(epoch, e)
    f.store(tid16, e, 8)
    f.store(stmt, e, 16)
    f.store(b.or_(flags, I8(WRITTEN | ATOMIC)), e, 14)
    b.branch(nxt)

    b.position_at_end(nxt)
    j.add_incoming(b.add(j, I64(1)), nxt)
    b.branch(head)
    return f.fn


def _access(m: ir.Module, glob: ir.Function, shared: ir.Function) -> None:
    """``i32 tv_san_access(err, addrs, mask, nbytes, kind, stmt, warp)``: each active lane's
    access checked in lane order; at the first report returns the stop flag."""
    f = _F(m, "tv_san_access", I32, [PTR, PTR, I32, I32, I32, I32, I32])
    err, addrs, mask, nbytes, kind, stmt, warp = f.fn.args
    b = f.b
    ctx = f.ctx(err)
    entry = b.block
    head, body, work, nxt, done, bad = (f.block(n) for n in ("head", "body", "work", "next",
                                                             "done", "bad"))
    off = f.block("off")
    b.cbranch(b.icmp_unsigned("!=", f.load(ctx, CTX_DISABLED, I32), I32(0)), done, off)
    b.position_at_end(off)
    is_shared = b.icmp_unsigned(">=", kind, I32(SHARED_READ))
    smem = b.ptrtoint(f.load(ctx, CTX_SMEM, PTR), I64)
    b.branch(head)
    b.position_at_end(head)
    lane = b.phi(I32)
    lane.add_incoming(I32(0), off)
    b.cbranch(b.icmp_unsigned("<", lane, I32(WARP)), body, done)
    b.position_at_end(body)
    on = b.trunc(b.lshr(mask, lane), I1)
    b.cbranch(on, work, nxt)
    b.position_at_end(work)
    a = b.load(b.gep(addrs, [b.zext(lane, I64)], source_etype=I64), typ=I64)
    tid = b.add(b.mul(warp, I32(WARP)), lane)
    r_shared = f.block("shared")
    r_global = f.block("global")
    merge = f.block("merge")
    b.cbranch(is_shared, r_shared, r_global)
    b.position_at_end(r_shared)
    rs = b.call(shared, [ctx, b.sub(a, smem), nbytes, kind, stmt, tid])
    b.branch(merge)
    b.position_at_end(r_global)
    rg = b.call(glob, [ctx, a, nbytes, kind, stmt, tid])
    b.branch(merge)
    b.position_at_end(merge)
    r = b.phi(I32)
    r.add_incoming(rs, r_shared)
    r.add_incoming(rg, r_global)
    b.cbranch(b.icmp_unsigned("!=", r, I32(0)), bad, nxt)
    b.position_at_end(nxt)
    lane.add_incoming(b.add(lane, I32(1)), nxt)
    b.branch(head)
    b.position_at_end(bad)
    b.ret(f.load(ctx, CTX_STOP, I32))
    b.position_at_end(done)
    b.ret(I32(0))
    _ = entry


def _fadd(m: ir.Module) -> None:
    """``void tv_san_fadd(err, addr, value)``: in the buffer holding ``addr``, if it has sums,
    add ``|value|`` and 1 to those of the word ``(addr - base) / 4``."""
    f = _F(m, "tv_san_fadd", ir.VoidType(), [PTR, I64, ir.DoubleType()])
    err, addr, value = f.fn.args
    b = f.b
    ctx = f.ctx(err)
    on, head, body, nxt, found, add, done = (f.block(n) for n in (
        "on", "head", "body", "next", "found", "add", "done"))
    b.cbranch(b.icmp_unsigned("!=", f.load(ctx, CTX_DISABLED, I32), I32(0)), done, on)
    b.position_at_end(on)
    nbuf = f.load(ctx, CTX_NBUF, I32)
    table = f.load(ctx, CTX_BUFFERS, PTR)
    b.branch(head)
    b.position_at_end(head)
    i = b.phi(I32)
    i.add_incoming(I32(0), on)
    b.cbranch(b.icmp_unsigned("<", i, nbuf), body, done)
    b.position_at_end(body)
    entry_p = f.field(table, b.mul(b.zext(i, I64), I64(TABLE_ENTRY_BYTES)), I64)
    base = b.load(entry_p, typ=I64)
    inside = b.and_(b.icmp_unsigned(">=", addr, base),
                    b.icmp_unsigned("<", addr, f.load(entry_p, 8, I64)))
    b.cbranch(inside, found, nxt)
    b.position_at_end(nxt)
    i.add_incoming(b.add(i, I32(1)), nxt)
    b.branch(head)
    b.position_at_end(found)
    sums = f.load(entry_p, 24, PTR)
    b.cbranch(b.icmp_unsigned("!=", b.ptrtoint(sums, I64), I64(0)), add, done)
    b.position_at_end(add)
    word = b.lshr(b.sub(addr, base), I64(2))
    p = f.field(sums, b.mul(word, I64(16)), I8)
    fabs = m.globals.get("llvm.fabs.f64") or ir.Function(
        m, ir.FunctionType(ir.DoubleType(), [ir.DoubleType()]), name="llvm.fabs.f64")
    dt = ir.DoubleType()
    b.store(b.fadd(b.load(p, typ=dt), b.call(fabs, [value])), p)
    q = f.field(p, 8, I8)
    b.store(b.fadd(b.load(q, typ=dt), ir.Constant(dt, 1.0)), q)
    b.branch(done)
    b.position_at_end(done)
    b.ret_void()


def _cpa_issue(m: ir.Module, glob: ir.Function, report: ir.Function, lane_bytes: int) -> None:
    """``i32 tv_san_cpa_issue(err, lane, dst, src, size, src_size, stmt, warp)``: the source's
    ``min(src_size, size)`` bytes must lie in one buffer (none read: no access); a destination
    byte read by another thread in this epoch is a read/write race; the destination becomes
    pending (its issuer recorded)."""
    f = _F(m, "tv_san_cpa_issue", I32, [PTR, I32, I32, I64, I32, I32, I32, I32])
    err, lane, dst, src, size, ss, stmt, warp = f.fn.args
    b = f.b
    ctx = f.ctx(err)
    tid = b.add(b.mul(warp, I32(WARP)), lane)
    on, src_check, dst_mark, done = (f.block(n) for n in ("on", "src", "dst", "done"))
    b.cbranch(b.icmp_unsigned("!=", f.load(ctx, CTX_DISABLED, I32), I32(0)), done, on)
    b.position_at_end(on)
    n = b.select(b.icmp_unsigned("<", ss, size), ss, size)
    b.cbranch(b.icmp_unsigned("!=", n, I32(0)), src_check, dst_mark)
    b.position_at_end(src_check)
    r = b.call(glob, [ctx, src, n, I32(-1), stmt, tid])
    bad = f.block("bad")
    b.cbranch(b.icmp_unsigned("!=", r, I32(0)), bad, dst_mark)
    b.position_at_end(bad)
    b.ret(f.load(ctx, CTX_STOP, I32))
    b.position_at_end(dst_mark)
    epoch = f.load(ctx, CTX_EPOCH, I32)
    shadow = f.load(ctx, CTX_SHADOW, PTR)
    tid16 = b.trunc(tid, I16)
    head, body, mark, war = f.block("head"), f.block("body"), f.block("mark"), f.block("war")
    b.branch(head)
    b.position_at_end(head)
    j = b.phi(I32)
    j.add_incoming(I32(0), dst_mark)
    b.cbranch(b.icmp_unsigned("<", j, size), body, done)
    b.position_at_end(body)
    at = b.zext(b.add(dst, j), I64)
    e = f.field(shadow, b.mul(at, I64(SHADOW_BYTES)), I8)
    repoch, reader = f.load(e, 4, I32), f.load(e, 10, I16)
    racing = b.and_(b.icmp_unsigned("==", repoch, epoch), b.icmp_unsigned("!=", reader, tid16))
    b.cbranch(racing, war, mark)
    b.position_at_end(war)
    b.call(report, [ctx, I32(RACE_READ_WRITE), stmt, tid, b.zext(reader, I32), at, I32(1),
                    f.load(e, 20, I32)])
    b.ret(f.load(ctx, CTX_STOP, I32))
    b.position_at_end(mark)
    flags = f.load(e, 14, I8)
    f.store(b.or_(flags, I8(PENDING)), e, 14)
    f.store(tid16, e, 12)
    j.add_incoming(b.add(j, I32(1)), mark)
    b.branch(head)
    b.position_at_end(done)
    b.ret(I32(0))


def _cpa_wait(m: ir.Module, lane_bytes: int) -> None:
    """``void tv_san_cpa_wait(err, queues, lane, n, warp)``: for each copy of the lane's queue that
    ``cp.async.wait_group n`` performs (group older than the n newest commits, as
    ``tv_cpa_wait``), its destination bytes become written by the thread, now, not pending."""
    f = _F(m, "tv_san_cpa_wait", ir.VoidType(), [PTR, PTR, I32, I32, I32])
    err, q, lane, n, warp = f.fn.args
    b = f.b
    ctx = f.ctx(err)
    entry = b.block
    epoch = f.load(ctx, CTX_EPOCH, I32)
    shadow = f.load(ctx, CTX_SHADOW, PTR)
    tid16 = b.trunc(b.add(b.mul(warp, I32(WARP)), lane), I16)
    lq = f.field(q, b.mul(b.zext(lane, I64), I64(lane_bytes)), I8)
    count = b.load(lq, typ=I32)
    threshold = b.sub(f.load(lq, 4, I32), n)
    head, body, perform, nxt, done = (f.block(x) for x in ("head", "body", "perform", "next",
                                                           "done"))
    b.branch(head)
    b.position_at_end(head)
    i = b.phi(I32)
    i.add_incoming(I32(0), entry)
    b.cbranch(b.icmp_unsigned("<", i, count), body, done)
    b.position_at_end(body)
    e = f.field(lq, b.add(I64(8), b.mul(b.zext(i, I64), I64(24))), I8)
    group = f.load(e, 12, I32)
    b.cbranch(b.icmp_signed("<", group, threshold), perform, nxt)
    b.position_at_end(perform)
    dst = b.load(e, typ=I32)
    size = f.load(e, 4, I32)
    bhead, bbody = f.block("bhead"), f.block("bbody")
    b.branch(bhead)
    b.position_at_end(bhead)
    j = b.phi(I32)
    j.add_incoming(I32(0), perform)
    b.cbranch(b.icmp_unsigned("<", j, size), bbody, nxt)
    b.position_at_end(bbody)
    s = f.field(shadow, b.mul(b.zext(b.add(dst, j), I64), I64(SHADOW_BYTES)), I8)
    b.store(epoch, s)
    f.store(tid16, s, 8)
    flags = f.load(s, 14, I8)
    f.store(b.and_(b.or_(flags, I8(WRITTEN)), I8(~(PENDING | ATOMIC) & 0xFF)), s, 14)
    j.add_incoming(b.add(j, I32(1)), bbody)
    b.branch(bhead)
    b.position_at_end(nxt)
    i.add_incoming(b.add(i, I32(1)), nxt)
    b.branch(head)
    b.position_at_end(done)
    b.ret_void()


def _scan(m: ir.Module, report: ir.Function) -> ir.Function:
    """``i32 tv_san_scan(ctx)``: report (once per reading statement) the shared bytes read while
    never written in the interval that ends, clear their flags; 1 if it reported."""
    f = _F(m, "tv_san_scan", I32, [PTR])
    (ctx,) = f.fn.args
    b = f.b
    entry = b.block
    head, body, hit, nxt, done, scan = (f.block(n) for n in ("head", "body", "hit", "next",
                                                             "done", "scan"))
    b.cbranch(b.icmp_unsigned("==", f.load(ctx, CTX_UNREAD, I32), I32(0)), done, scan)
    b.position_at_end(scan)
    shadow = f.load(ctx, CTX_SHADOW, PTR)
    size = f.load(ctx, CTX_SHARED_BYTES, I64)
    f.store(I32(0), ctx, CTX_UNREAD)
    b.branch(head)
    b.position_at_end(head)
    i = b.phi(I64)
    found = b.phi(I32)
    i.add_incoming(I64(0), scan)
    found.add_incoming(I32(0), scan)
    b.cbranch(b.icmp_unsigned("<", i, size), body, done)
    b.position_at_end(body)
    e = f.field(shadow, b.mul(i, I64(SHADOW_BYTES)), I8)
    flags = f.load(e, 14, I8)
    b.cbranch(b.icmp_unsigned("!=", b.and_(flags, I8(UNREAD)), I8(0)), hit, nxt)
    b.position_at_end(hit)
    f.store(b.and_(flags, I8(~UNREAD & 0xFF)), e, 14)
    b.call(report, [ctx, I32(UNWRITTEN_READ), f.load(e, 20, I32),
                    b.zext(f.load(e, 10, I16), I32), I32(-1), i, I32(1), I32(-1)])
    b.branch(nxt)
    b.position_at_end(nxt)
    now = b.phi(I32)
    now.add_incoming(found, body)
    now.add_incoming(I32(1), hit)
    i.add_incoming(b.add(i, I64(1)), nxt)
    found.add_incoming(now, nxt)
    b.branch(head)
    b.position_at_end(done)
    result = b.phi(I32)
    result.add_incoming(I32(0), entry)
    result.add_incoming(found, head)
    b.ret(b.and_(result, f.load(ctx, CTX_STOP, I32)))
    return f.fn


def _block_and_phase(m: ir.Module, scan: ir.Function) -> None:
    """``i32 tv_san_block(err, block, smem)`` and ``i32 tv_san_phase(err)``: the interval that
    ends is scanned, the epoch advances (a block also clears the shared shadow); non-zero: stop
    with a report."""
    f = _F(m, "tv_san_block", I32, [PTR, I32, PTR])
    err, blk, smem = f.fn.args
    b = f.b
    ctx = f.ctx(err)
    r = b.call(scan, [ctx])
    f.store(blk, ctx, CTX_BLOCK)
    f.store(smem, ctx, CTX_SMEM)
    memset = m.globals.get("llvm.memset.p0.i64") or ir.Function(
        m, ir.FunctionType(ir.VoidType(), [PTR, I8, I64, I1]), name="llvm.memset.p0.i64")
    size = b.mul(f.load(ctx, CTX_SHARED_BYTES, I64), I64(SHADOW_BYTES))
    b.call(memset, [f.load(ctx, CTX_SHADOW, PTR), I8(0), size, I1(0)])
    f.store(b.add(f.load(ctx, CTX_EPOCH, I32), I32(1)), ctx, CTX_EPOCH)
    b.ret(r)

    f = _F(m, "tv_san_phase", I32, [PTR])
    ctx = f.ctx(f.fn.args[0])
    r = f.b.call(scan, [ctx])
    f.store(f.b.add(f.load(ctx, CTX_EPOCH, I32), I32(1)), ctx, CTX_EPOCH)
    f.b.ret(r)


def helpers_module(triple: str, lane_bytes: int) -> str:
    """The LLVM IR text of the sanitizer's helpers, linked into sanitized kernels only
    (``lane_bytes``: the size of one lane's ``cp.async`` queue)."""
    m = ir.Module(name="tv_sanitizer")
    m.triple = triple
    report = _report(m)
    glob = _global(m, report)
    shared = _shared(m, report)
    _access(m, glob, shared)
    _cpa_issue(m, glob, report, lane_bytes)
    _cpa_wait(m, lane_bytes)
    _fadd(m)
    _block_and_phase(m, _scan(m, report))
    return str(m)

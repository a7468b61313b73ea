"""LLVM emission of memory intrinsics: masked gathers/scatters by address space, per-lane
atomics, and the deferred ``cp.async`` queue (helpers in :mod:`helpers_ir`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llvmlite import ir

from tilevm.backend.cpu.lanes import F32, F64, I1, I32, I64, PTR, WARP, elem_llvm_type
from tilevm.ir.thread.stmts import Instr
from tilevm.ir.thread.types import ScalarType, VectorType, scalar_type

__all__ = ["MEMORY_OPS", "check_alignment", "for_each_lane", "lane_pointers"]

MEMORY_OPS: dict[str, Callable[[Any, Instr], list[ir.Value]]] = {}


def _op(*names: str) -> Callable:
    def deco(fn: Callable) -> Callable:
        for n in names:
            MEMORY_OPS[n] = fn
        return fn
    return deco


def lane_pointers(cg: Any, space: str, addr: ir.Value, offset: int, nbytes: int, stmt: Instr
                  ) -> ir.Value:
    """``<32 x ptr>`` for an access of ``nbytes`` at ``addr + offset`` in ``space``; shared and
    local accesses of active lanes are bounds-checked (errors 6 and 7), and every access must be
    aligned to ``nbytes`` (error 8): PTX ISA, "Addresses as Operands": "The address must be
    naturally aligned to a multiple of the access size. If an address is not properly aligned,
    the resulting behavior is undefined" (a GPU faults with a misaligned address)."""
    b, L = cg.b, cg.L
    if space == "global":
        a = b.add(addr, L.splat(offset, I64)) if offset else addr
        check_alignment(cg, a, nbytes, stmt)
        ptrs = b.inttoptr(a, ir.VectorType(PTR, WARP))
        if cg.sanitize:  # sanitizer: bounds (and writes by two blocks) per active lane
            from tilevm.backend.cpu.sanitizer_ir import check_access

            check_access(cg, space, ptrs, nbytes, stmt)
        return ptrs
    a = b.zext(addr, L.vec(I64))
    if offset:
        a = b.add(a, L.splat(offset, I64))
    # shared and local windows start 16-byte aligned on the GPU, so their offsets must be aligned
    check_alignment(cg, a, nbytes, stmt)
    if space == "shared":
        limit, base, code = cg.kernel.shared_bytes, cg.smem, 6
        basev = L.splat_value(b.ptrtoint(base, I64))
    else:
        limit, base, code = cg.kernel.local_bytes, cg.local, 7
        lane_base = b.mul(b.zext(L.lane_ids(), L.vec(I64)), L.splat(cg.kernel.local_bytes, I64))
        basev = b.add(L.splat_value(b.ptrtoint(base, I64)), lane_base)
    end = b.add(a, L.splat(nbytes, I64))
    bad = b.and_(cg.active(), b.icmp_unsigned(">", end, L.splat(limit, I64)))
    cg.check(b.not_(L.any(bad)), code, stmt)
    ptrs = b.inttoptr(b.add(basev, a), ir.VectorType(PTR, WARP))
    if cg.sanitize:  # sanitizer: the shared-memory shadow (races, unwritten, pending cp.async)
        from tilevm.backend.cpu.sanitizer_ir import check_access

        check_access(cg, space, ptrs, nbytes, stmt)
    return ptrs


def check_alignment(cg: Any, addr64: ir.Value, nbytes: int, stmt: Instr) -> None:
    """Error 8 unless every active lane's ``addr64`` (i64 lanes) is a multiple of ``nbytes``."""
    if nbytes <= 1 or nbytes & (nbytes - 1):
        return
    b, L = cg.b, cg.L
    low = b.and_(addr64, L.splat(nbytes - 1, I64))
    bad = b.and_(cg.active(), b.icmp_unsigned("!=", low, L.splat(0, I64)))
    cg.check(b.not_(L.any(bad)), 8, stmt)


def _gather(cg: Any, ptrs: ir.Value, lt: ir.Type, align: int, mask: ir.Value) -> ir.Value:
    L = cg.L
    vt = L.vec(lt)
    fn = L.intrinsic(f"llvm.masked.gather.{L.suffix(vt)}.v{WARP}p0", vt,
                     [ir.VectorType(PTR, WARP), I32, ir.VectorType(I1, WARP), vt])
    return cg.b.call(fn, [ptrs, I32(align), mask, ir.Constant(vt, None)])


def _scatter(cg: Any, value: ir.Value, ptrs: ir.Value, align: int, mask: ir.Value) -> None:
    L = cg.L
    fn = L.intrinsic(f"llvm.masked.scatter.{L.suffix(value.type)}.v{WARP}p0", ir.VoidType(),
                     [value.type, ir.VectorType(PTR, WARP), I32, ir.VectorType(I1, WARP)])
    cg.b.call(fn, [value, ptrs, I32(align), mask])


def _elements(t: Any) -> tuple[ScalarType, int]:
    return (t.elem, t.count) if isinstance(t, VectorType) else (t, 1)


@_op("ld")
def _ld(cg: Any, s: Instr) -> list[ir.Value]:
    space = s.mod("space")
    addr = cg.read(s.args[0])
    elem, n = _elements(s.dst.type)
    esize = max(elem.bits // 8, 1)
    ptrs = lane_pointers(cg, space, addr, s.mod("offset", 0), esize * n, s)
    out = []
    for k in range(n):
        p = ptrs if k == 0 else _advance(cg, ptrs, k * esize)
        out.append(_gather(cg, p, elem_llvm_type(elem), esize, cg.active()))
    return out


def _advance(cg: Any, ptrs: ir.Value, nbytes: int) -> ir.Value:
    b, L = cg.b, cg.L
    a = b.ptrtoint(ptrs, L.vec(I64))
    return b.inttoptr(b.add(a, L.splat(nbytes, I64)), ir.VectorType(PTR, WARP))


@_op("st")
def _st(cg: Any, s: Instr) -> list[ir.Value]:
    space = s.mod("space")
    addr = cg.read(s.args[0])
    t = s.args[1].type
    elem, n = _elements(t)
    vals = cg.read(s.args[1], t)
    vals = vals if isinstance(vals, list) else [vals]
    esize = max(elem.bits // 8, 1)
    ptrs = lane_pointers(cg, space, addr, s.mod("offset", 0), esize * n, s)
    for k in range(n):
        p = ptrs if k == 0 else _advance(cg, ptrs, k * esize)
        _scatter(cg, vals[k], p, esize, cg.active())
    return []


def for_each_lane(cg: Any, mask: ir.Value, body: Callable[[ir.Value], None]) -> None:
    """Emit a loop over lanes 0..31 in order, running ``body(lane)`` where ``mask`` is set."""
    b = cg.b
    fn = cg.fn
    pre = b.block
    head = fn.append_basic_block("lane_head")
    work = fn.append_basic_block("lane_work")
    skip = fn.append_basic_block("lane_next")
    out = fn.append_basic_block("lane_done")
    b.branch(head)
    b.position_at_end(head)
    lane = b.phi(I32, "lane")
    lane.add_incoming(I32(0), pre)
    on = b.extract_element(mask, lane)
    b.cbranch(on, work, skip)
    b.position_at_end(work)
    body(lane)
    b.branch(skip)
    b.position_at_end(skip)
    nxt = b.add(lane, I32(1))
    lane.add_incoming(nxt, skip)
    b.cbranch(b.icmp_unsigned("<", nxt, I32(WARP)), head, out)
    b.position_at_end(out)


_RMW = {"add": "add", "exch": "xchg", "and": "and", "or": "or", "xor": "xor",
        "inc": "uinc_wrap", "dec": "udec_wrap"}


@_op("atom", "red")
def _atom(cg: Any, s: Instr) -> list[ir.Value]:
    b, L = cg.b, cg.L
    t = s.type
    lt = elem_llvm_type(t)
    esize = t.bits // 8
    ptrs = lane_pointers(cg, s.mod("space"), cg.read(s.args[0]), 0, esize, s)
    vals = [cg.read(a, t) for a in s.args[1:]]
    res = cg.scratch(ir.ArrayType(lt, WARP))
    op = s.mod("op")
    rmw = ("" if t.is_signed else "u") + op if op in ("min", "max") else _RMW.get(op)

    # PTX ISA atom/red: "atom.add.f32 on global memory flushes subnormal inputs and results to
    # sign-preserving zero" (on shared memory it does not). Float adds go through a
    # compare-and-swap loop on the bits, which also makes a NaN sum the canonical NaN, as the
    # CPU's add.f32/f64 do (the host's atomic fadd would give its own NaN).
    float_add = op == "add" and t.is_float
    flush = float_add and t.name == "f32" and s.mod("space") == "global"

    def one(lane: ir.Value) -> None:
        p = b.extract_element(ptrs, lane)
        v = b.extract_element(vals[0], lane)
        if float_add:
            if cg.sanitize and s.mod("space") == "global":  # sanitizer: the order check's bound
                from tilevm.backend.cpu.sanitizer_ir import record_float_add

                record_float_add(cg, p, v)
            old = b.bitcast(_float_add(cg, p, v, t.bits, flush), lt)
        elif op == "cas":
            new = b.extract_element(vals[1], lane)
            pair = b.cmpxchg(p, v, new, "monotonic", "monotonic")
            old = b.extract_value(pair, 0)
        else:
            old = b.atomic_rmw(rmw, p, v, "monotonic")
        b.store(old, b.gep(res, [I32(0), lane]))

    for_each_lane(cg, cg.active(), one)
    if s.dst is None:
        return []
    return [b.load(res, typ=L.vec(lt), align=4)]


def _flush_bits(b: ir.IRBuilder, u: ir.Value) -> ir.Value:
    """An f32 bit pattern with a subnormal flushed to the zero of its sign."""
    tiny = b.icmp_unsigned("<", b.and_(u, I32(0x7FFFFFFF)), I32(0x00800000))
    return b.select(tiny, b.and_(u, I32(0x80000000)), u)


def _float_add(cg: Any, p: ir.Value, v: ir.Value, bits: int, flush: bool) -> ir.Value:
    """Atomically ``*p = *p + v`` for an f32/f64 ``v`` (with ``flush``, f32 only: ``ftz(ftz(*p) +
    ftz(v))``), a NaN sum being the canonical NaN; returns the bits read (unflushed), as ``atom``
    returns the value it read."""
    b = cg.b
    it, ft = (I32, F32) if bits == 32 else (I64, F64)
    nan = I32(0x7FFFFFFF) if bits == 32 else I64(0x7FFFFFFFFFFFFFFF)
    vb = b.bitcast(v, it)
    if flush:
        vb = _flush_bits(b, vb)
    pre = b.block
    loop = cg.fn.append_basic_block("float_add")
    done = cg.fn.append_basic_block("float_add_done")
    first = b.load_atomic(p, "monotonic", bits // 8, typ=it)
    b.branch(loop)
    b.position_at_end(loop)
    seen = b.phi(it)
    seen.add_incoming(first, pre)
    mem = _flush_bits(b, seen) if flush else seen
    total = b.fadd(b.bitcast(mem, ft), b.bitcast(vb, ft))
    nb = b.bitcast(total, it)
    if flush:
        nb = _flush_bits(b, nb)
    nb = b.select(b.fcmp_unordered("uno", total, total), nan, nb)
    pair = b.cmpxchg(p, seen, nb, "monotonic", "monotonic")
    seen.add_incoming(b.extract_value(pair, 0), loop)
    b.cbranch(b.extract_value(pair, 1), done, loop)
    b.position_at_end(done)
    return seen


def _helper(cg: Any, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
    fn = cg.m.globals.get(name)
    if fn is None:
        fn = ir.Function(cg.m, ir.FunctionType(ret, args), name=name)
    return fn


@_op("cp.async")
def _cp_async(cg: Any, s: Instr) -> list[ir.Value]:
    b, L = cg.b, cg.L
    size = s.mod("size")
    dst = cg.read(s.args[0], scalar_type("u32"))
    src = cg.read(s.args[1], scalar_type("u64"))
    ss = cg.read(s.args[2], scalar_type("u32")) if len(s.args) == 3 else L.splat(size, I32)
    lane_pointers(cg, "shared", dst, 0, size, s)  # bounds and alignment check only
    check_alignment(cg, src, size, s)   # cp.async: both addresses aligned to cp-size
    issue = _helper(cg, "tv_cpa_issue", I32, [PTR, I32, I32, I64, I32, I32])
    failed = cg.scratch(I32)
    b.store(I32(0), failed)

    if cg.sanitize:  # sanitizer: a report stops the warp (error 9)
        from tilevm.backend.cpu.sanitizer_ir import SANITIZER_ERROR, check_cpa_issue

        reported = cg.scratch(I32)
        b.store(I32(0), reported)

    def one(lane: ir.Value) -> None:
        if cg.sanitize:
            r = check_cpa_issue(cg, lane, b.extract_element(dst, lane),
                                b.extract_element(src, lane), size, b.extract_element(ss, lane), s)
            b.store(b.or_(b.load(reported), r), reported)
        r = b.call(issue, [cg.cpq, lane, b.extract_element(dst, lane),
                           b.extract_element(src, lane), I32(size), b.extract_element(ss, lane)])
        b.store(b.or_(b.load(failed), r), failed)

    for_each_lane(cg, cg.active(), one)
    if cg.sanitize:
        cg.check(b.icmp_unsigned("==", b.load(reported), I32(0)), SANITIZER_ERROR, s)
    cg.check(b.icmp_unsigned("==", b.load(failed), I32(0)), 5, s)
    return []


@_op("cp.async.commit_group")
def _commit(cg: Any, s: Instr) -> list[ir.Value]:
    commit = _helper(cg, "tv_cpa_commit", ir.VoidType(), [PTR, I32])
    for_each_lane(cg, cg.active(), lambda lane: cg.b.call(commit, [cg.cpq, lane]))
    return [cg.L.splat(0, I32)]


@_op("cp.async.wait_group")
def _wait(cg: Any, s: Instr) -> list[ir.Value]:
    wait = _helper(cg, "tv_cpa_wait", ir.VoidType(), [PTR, I32, I32, PTR])
    n = s.mod("n")

    def one(lane: ir.Value) -> None:
        if cg.sanitize:  # sanitizer: the copies performed now write their destinations
            from tilevm.backend.cpu.sanitizer_ir import check_cpa_wait

            check_cpa_wait(cg, lane, n)
        cg.b.call(wait, [cg.cpq, lane, I32(n), cg.smem])

    for_each_lane(cg, cg.active(), one)
    return []


@_op("fence", "membar")
def _fence(cg: Any, s: Instr) -> list[ir.Value]:
    # a block's warps run one after another on one host thread: program order is memory order
    return []


@_op("shared_base", "local_base")
def _base(cg: Any, s: Instr) -> list[ir.Value]:
    return [cg.L.splat(0, I32)]

"""LLVM emission of warp collectives and special registers: ``shfl.sync``, ``vote.sync``,
``activemask``, ``bar.warp.sync``, ``ldmatrix``, ``mma.sync`` (one call of the exact helper
``tv_mma`` on the raw fragment words), and ``sreg``. The fragment placements follow the PTX ISA
tables quoted in :mod:`tilevm.ir.thread.intrinsics.warp`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llvmlite import ir

from tilevm.backend.cpu.helpers_ir import TV_MMA_ACCUMULATOR_CODES, TV_MMA_INPUT_CODES
from tilevm.backend.cpu.lanes import I16, I32, I64, PTR, WARP
from tilevm.backend.cpu.memory_ops import lane_pointers
from tilevm.ir.thread.stmts import Instr
from tilevm.ir.thread.types import B32, U32, VectorType

__all__ = ["COLLECTIVES"]

COLLECTIVES: dict[str, Callable[[Any, Instr], list[ir.Value]]] = {}


def _op(*names: str) -> Callable:
    def deco(fn: Callable) -> Callable:
        for n in names:
            COLLECTIVES[n] = fn
        return fn
    return deco


def _check_members(cg: Any, s: Instr, members: ir.Value) -> None:
    """The executing lanes must form groups that each name exactly themselves (PTX ISA,
    ``shfl.sync``/``vote.sync``/``bar.warp.sync``: a thread must be in its membermask, and waits
    for every thread of it to execute the same instruction with the same membermask; a named
    lane that does not arrive would hang). Usually every lane names all executing lanes, checked
    first; otherwise each executing lane's mask is checked against the masks of the lanes it
    names."""
    b, L = cg.b, cg.L
    act = cg.active()
    act_bits = L.bits(act)
    same = b.icmp_unsigned("==", members, L.splat_value(act_bits))
    common = b.not_(L.any(b.and_(act, b.not_(same))))
    slow = cg.fn.append_basic_block("members_groups")
    done = cg.fn.append_basic_block("members_ok")
    b.cbranch(common, done, slow)
    b.position_at_end(slow)
    buf = cg.scratch(members.type)
    b.store(members, buf)
    helper = cg.m.globals.get("tv_members_bad") or ir.Function(
        cg.m, ir.FunctionType(I64, [PTR, I32]), name="tv_members_bad")
    bad = b.call(helper, [buf, act_bits])
    cg.check(b.icmp_unsigned("==", bad, I64(0)), 2, s, b.trunc(bad, I32))
    b.branch(done)
    b.position_at_end(done)


def _group_bits(cg: Any, members: ir.Value, lane_bits: ir.Value) -> ir.Value:
    """Per lane: ``lane_bits`` (a warp-wide bit set) restricted to the lane's membermask."""
    return cg.b.and_(cg.L.splat_value(lane_bits), members)


@_op("sreg")
def _sreg(cg: Any, s: Instr) -> list[ir.Value]:
    b, L = cg.b, cg.L
    name = s.mod("name")
    lanes = L.lane_ids()
    if name == "laneid":
        return [lanes]
    if name == "tid.x":
        return [b.add(L.splat_value(b.mul(cg.warp, I32(WARP))), lanes)]
    if name == "ntid.x":
        return [L.splat(cg.kernel.block_threads, I32)]
    if name.startswith("nctaid."):
        return [L.splat_value(cg.nctaid["xyz".index(name[-1])])]
    if name.startswith("ctaid."):
        # the linear block number b, x fastest: (b % nx, (b / nx) % ny, b / (nx * ny))
        nx, ny, _ = cg.nctaid
        if name == "ctaid.x":
            v = b.urem(cg.ctaid, nx)
        elif name == "ctaid.y":
            v = b.urem(b.udiv(cg.ctaid, nx), ny)
        else:
            v = b.udiv(cg.ctaid, b.mul(nx, ny))
        return [L.splat_value(v)]
    return [L.splat(1 if name.startswith("n") else 0, I32)]  # one-dimensional blocks


@_op("activemask")
def _activemask(cg: Any, s: Instr) -> list[ir.Value]:
    return [cg.L.splat_value(cg.L.bits(cg.active()))]


@_op("bar.warp.sync")
def _bar_warp(cg: Any, s: Instr) -> list[ir.Value]:
    _check_members(cg, s, cg.read(s.args[0], U32))
    return []


@_op("vote.sync")
def _vote(cg: Any, s: Instr) -> list[ir.Value]:
    # Each lane votes over its own membermask's lanes (which _check_members proves are a group
    # of executing lanes naming the same mask).
    b, L = cg.b, cg.L
    a = cg.read(s.args[0])
    members = cg.read(s.args[1], U32)
    _check_members(cg, s, members)
    act = cg.active()
    yes = _group_bits(cg, members, L.bits(b.and_(act, a)))
    mode = s.mod("mode")
    if mode == "ballot":
        return [yes]
    zero = L.splat(0, I32)
    if mode == "all":
        r = b.icmp_unsigned("==", yes, members)
    elif mode == "any":
        r = b.icmp_unsigned("!=", yes, zero)
    else:
        r = b.or_(b.icmp_unsigned("==", yes, members), b.icmp_unsigned("==", yes, zero))
    return [r]


def _gather_lanes(cg: Any, v: ir.Value, src: ir.Value) -> ir.Value:
    """Lane i of the result is lane ``src[i]`` of ``v`` (0 <= src < 32)."""
    b, L = cg.b, cg.L
    buf = cg.scratch(v.type)
    b.store(v, buf)
    base = L.splat_value(b.ptrtoint(buf, I64))
    size = v.type.element.width // 8
    ptrs = b.inttoptr(b.add(base, b.mul(b.zext(src, L.vec(I64)), L.splat(size, I64))),
                      ir.VectorType(PTR, WARP))
    fn = L.intrinsic(f"llvm.masked.gather.{L.suffix(v.type)}.v{WARP}p0", v.type,
                     [ir.VectorType(PTR, WARP), I32, ir.VectorType(ir.IntType(1), WARP), v.type])
    return b.call(fn, [ptrs, I32(size), L.all_ones(), ir.Constant(v.type, None)])


@_op("shfl.sync")
def _shfl(cg: Any, s: Instr) -> list[ir.Value]:
    b, L = cg.b, cg.L
    a = cg.read(s.args[0], B32)
    bv, cv = (cg.read(x, U32) for x in s.args[1:3])
    _check_members(cg, s, cg.read(s.args[3], U32))
    c31 = L.splat(31, I32)
    lane = L.lane_ids()
    bval = b.and_(bv, c31)
    cval = b.and_(cv, c31)
    seg = b.and_(b.lshr(cv, L.splat(8, I32)), c31)
    max_lane = b.or_(b.and_(lane, seg), b.and_(cval, b.not_(seg)))
    min_lane = b.and_(lane, seg)
    mode = s.mod("mode")
    if mode == "up":
        j = b.sub(lane, bval)
        ok = b.icmp_signed(">=", j, max_lane)
    elif mode == "down":
        j = b.add(lane, bval)
        ok = b.icmp_signed("<=", j, max_lane)
    elif mode == "bfly":
        j = b.xor(lane, bval)
        ok = b.icmp_signed("<=", j, max_lane)
    else:
        j = b.or_(min_lane, b.and_(bval, b.not_(seg)))
        ok = b.icmp_signed("<=", j, max_lane)
    j = b.select(ok, j, lane)
    return [_gather_lanes(cg, a, j)]


@_op("ldmatrix")
def _ldmatrix(cg: Any, s: Instr) -> list[ir.Value]:
    b, L = cg.b, cg.L
    addr = cg.read(s.args[0], U32)
    num = s.mod("num")
    if num < 4:
        # PTX ISA ldmatrix, table of addresses: .x1 takes addr0-addr7 from threads 0-7, .x2
        # addr0-addr15 from threads 0-15; the other lanes' registers may hold anything, so they
        # are neither read nor bounds-checked (lane 0's row stands in for them).
        used = b.icmp_unsigned("<", L.lane_ids(), L.splat(8 * num, I32))
        addr = b.select(used, addr, L.splat_value(b.extract_element(addr, I32(0))))
    rows = lane_pointers(cg, "shared", addr, 0, 16, s)  # lanes give row addresses (checked)
    rows_int = b.ptrtoint(rows, L.vec(I64))
    out = []
    for q in range(num):
        if not s.mod("trans"):
            # lane i: row i // 4 of matrix q, columns 2*(i % 4) and +1 (one 32-bit word)
            src = L.permute(rows_int, [8 * q + i // 4 for i in range(WARP)])
            p = b.add(src, ir.Constant(L.vec(I64), [4 * (i % 4) for i in range(WARP)]))
            out.append(_gather_i(cg, p, I32, 4))
        else:
            # transposed: lane i gets (row 2*(i % 4), col i // 4) low, (row +1, same col) high
            col = ir.Constant(L.vec(I64), [2 * (i // 4) for i in range(WARP)])
            lo = b.add(L.permute(rows_int, [8 * q + 2 * (i % 4) for i in range(WARP)]), col)
            hi = b.add(L.permute(rows_int, [8 * q + 2 * (i % 4) + 1 for i in range(WARP)]), col)
            lo16, hi16 = _gather_i(cg, lo, I16, 2), _gather_i(cg, hi, I16, 2)
            out.append(b.or_(b.zext(lo16, L.vec(I32)),
                             b.shl(b.zext(hi16, L.vec(I32)), L.splat(16, I32))))
    return out


def _gather_i(cg: Any, addr64: ir.Value, lt: ir.Type, align: int) -> ir.Value:
    b, L = cg.b, cg.L
    vt = L.vec(lt)
    fn = L.intrinsic(f"llvm.masked.gather.{L.suffix(vt)}.v{WARP}p0", vt,
                     [ir.VectorType(PTR, WARP), I32, ir.VectorType(ir.IntType(1), WARP), vt])
    ptrs = b.inttoptr(addr64, ir.VectorType(PTR, WARP))
    return b.call(fn, [ptrs, I32(align), L.all_ones(), ir.Constant(vt, None)])


@_op("mma.sync")
def _mma(cg: Any, s: Instr) -> None:
    """One call of ``tv_mma_at`` (helpers_ir.py) with the addresses of the fragment registers'
    slots (A, B, C, D: ``mma.sync`` operands always have slots, see ``WarpCodegen``); the
    helper's ``tv_mma`` decodes, multiplies, sums exactly and rounds once, and writes D's slots.
    No vector value crosses the call: the statement is one call with scalar arguments, which
    LLVM's fast instruction selector takes (10 fragment vectors passed by value cost about
    1.2 ms of instruction selection; ``bench/mma_jit_time.py`` measures it)."""
    atype = s.mod("atype")
    c = s.args[2]
    assert isinstance(c.type, VectorType)
    fn = cg.m.globals.get("tv_mma_at") or ir.Function(
        cg.m, ir.FunctionType(ir.VoidType(), [PTR] * 4 + [I32] * 4), name="tv_mma_at")
    cg.b.call(fn, [*(cg.slot_address(x) for x in (*s.args, s.dst)),
                   I32(TV_MMA_INPUT_CODES[atype]), I32(TV_MMA_INPUT_CODES[s.mod("btype", atype)]),
                   I32(TV_MMA_ACCUMULATOR_CODES[s.type.name]), I32(c.type.count)])
    cg.forget(s.dst)

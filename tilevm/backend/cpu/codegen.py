"""Thread IR → LLVM IR: one resumable function per warp, and the block driver (DESIGN §6).

``tv_warp`` runs one warp of one block from a resume point to the next ``bar.sync`` (or the end)
and returns that barrier's number (0 at the end, -1 on an error). Every Thread IR value of the
warp is a ``<32 x T>`` vector: an SSA value when it is a temporary, else held in an ``alloca``
(promoted to SSA by LLVM) or, when a barrier separates a write of it from a read, in the warp's
register file; at a barrier the function returns, and resuming jumps to the code after it.
Lane-dependent control flow runs under an active mask (``<32 x i1>``): writes are selects,
memory accesses masked gathers and scatters.

``tv_run`` executes a range of blocks: for each block, phase after phase, it calls ``tv_warp`` for
every warp in a fixed order (reversed on request) and checks that all warps stopped at the same
barrier. Blocks are numbered linearly over the grid ``(nx, ny, nz)``, x fastest: block ``b`` is
``(b % nx, (b / nx) % ny, b / (nx·ny))``, which ``ctaid.x/y/z`` give.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llvmlite import ir

from tilevm.backend.cpu import collectives, debug_ops, memory_ops
from tilevm.backend.cpu.lanes import I1, I8, I32, I64, PTR, WARP, Lanes, elem_llvm_type
from tilevm.backend.cpu.liveness import live_after_barriers, temporaries
from tilevm.backend.cpu.sanitizer_ir import SANITIZER_ERROR
from tilevm.backend.cpu.thread_ops import THREAD_OPS
from tilevm.ir.thread.stmts import For, If, Instr, Kernel, Stmt, While, walk
from tilevm.ir.thread.types import ScalarType, Type, VectorType
from tilevm.ir.thread.values import Const, Elem, IndexOp, Operand, Reg, RegArray

__all__ = ["ERRORS", "Layout", "generate"]

# error codes written to err[0]; err[1] = statement number, err[2] = block, err[3] = warp,
# err[4] = active mask, err[5] = detail
ERRORS = {
    1: "reached with a partial active mask (a .aligned instruction needs the whole warp)",
    2: "membermask is not a group of executing lanes that all name it (each lane must be in its "
       "membermask, and every lane named must execute this instruction with the same mask)",
    3: "condition of a uniform if/for/while differs between lanes",
    4: "warps of a block stopped at different barriers (or one finished early)",
    5: "too many pending cp.async copies in one thread",
    6: "shared-memory access out of bounds",
    7: "local-memory access out of bounds",
    8: "misaligned address (PTX needs every access aligned to its size)",
    debug_ops.TRAP_ERROR: "executed (PTX trap: abort the kernel)",
    SANITIZER_ERROR: "sanitizer report",  # the details are in the sanitizer's records
}

SLOT_ALIGN = 64


@dataclass
class Layout:
    """Sizes and offsets of the per-worker workspace that ``tv_run`` receives."""

    warps: int
    shared_bytes: int
    local_bytes: int
    regfile_bytes: int
    cpq_bytes: int

    @property
    def smem_offset(self) -> int:
        return 0

    @property
    def local_offset(self) -> int:
        return _align(max(self.shared_bytes, 16), SLOT_ALIGN)

    @property
    def regfile_offset(self) -> int:
        return self.local_offset + _align(self.warps * WARP * self.local_bytes, SLOT_ALIGN)

    @property
    def cpq_offset(self) -> int:
        return self.regfile_offset + self.warps * self.regfile_bytes

    @property
    def total(self) -> int:
        return self.cpq_offset + self.warps * self.cpq_bytes


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def _lane_bytes(t: ScalarType) -> int:
    return 1 if t.kind == "pred" else max(t.bits // 8, 4 if t.kind == "token" else 1)


class _Mask:
    """The active mask: an LLVM ``<32 x i1>`` and whether it is statically the whole warp."""

    def __init__(self, value: ir.Value, full: bool) -> None:
        self.value = value
        self.full = full


class WarpCodegen:
    """Emits ``tv_warp`` for one kernel."""

    def __init__(self, kernel: Kernel, module: ir.Module) -> None:
        self.kernel = kernel
        self.m = module
        self.stmt_ids = {id(s): i for i, s in enumerate(walk(kernel.body))}
        # id -> (alloca or None for the register file, element type, offset, stride, count)
        self.slots: dict[int, tuple[ir.Value | None, ir.Type, int, int, int]] = {}
        self.slot_ptrs: dict[tuple[int, int], ir.Value] = {}
        self._known_block: ir.Block | None = None
        self._known_values: dict[tuple[int, int], ir.Value] = {}
        self.regfile_bytes = 0
        self.n_barriers = 0
        self._guard: ir.Value | None = None  # the instruction's mask when it has a guard
        self._alloca_builder: ir.IRBuilder | None = None
        self.temporaries = temporaries(kernel.body)
        self.live = live_after_barriers(kernel.body, self.temporaries)
        # Temporaries that no barrier separates from their reads stay LLVM SSA values: no alloca
        # for LLVM to promote (SROA's work grows faster than linearly with the allocas).
        crossing = set().union(*self.live.values()) if self.live else set()
        self.ssa = (self.temporaries - crossing - {id(p.reg) for p in kernel.params}
                    - _mma_operands(kernel))
        self.ssa_values: dict[int, dict[int, ir.Value]] = {}
        # sanitizer: every global/shared access checked by a helper (sanitizer_ir.py)
        self.sanitize = False

    # -- function skeleton ----------------------------------------------------------------------

    def build(self) -> ir.Function:
        fnty = ir.FunctionType(I32, [PTR, PTR, PTR, PTR, PTR, PTR, I32, I32, I32, I32, I32, I32])
        fn = ir.Function(self.m, fnty, name="tv_warp")
        fn.linkage = "internal"
        # ctaid: the linear block number; nctaid: the grid's (x, y, z) extents
        (self.params, self.smem, self.local, self.regfile, self.cpq, self.err, self.ctaid,
         nx, ny, nz, self.warp, resume) = fn.args
        self.nctaid = (nx, ny, nz)
        self.fn = fn
        entry = fn.append_basic_block("entry")
        self.b = ir.IRBuilder(entry)
        self.L = Lanes(self.m, self.b)
        self._allocate()
        start = fn.append_basic_block("start")
        self.switch = self.b.switch(resume, start)
        self.b.position_at_end(start)
        self._zero_resident()
        self._load_params()
        self.mask = _Mask(self.L.all_ones(), True)
        self.body(self.kernel.body)
        self.b.ret(I32(0))
        return fn

    def _allocate(self) -> None:
        """A slot per register: an ``alloca`` (promoted to SSA by LLVM) for one that no barrier
        separates from its reads, else its place in the warp's register file (a barrier then
        saves and restores nothing: the code of a barrier with hundreds of live registers made
        most of a kernel's instruction-selection time)."""
        offset = 0
        resident = set().union(*self.live.values())
        things: list[Reg | RegArray] = [*self.kernel.registers(), *self.kernel.arrays]
        for x in things:
            if id(x) in self.ssa:
                continue
            t = x.type
            elem = t.elem if isinstance(t, VectorType) else t
            n = (t.count if isinstance(t, VectorType) else 1) * (
                x.length if isinstance(x, RegArray) else 1)
            vt = self.L.vtype(elem)
            if id(x) in resident:
                stride = _align(WARP * _lane_bytes(elem), 16)
                self.slots[id(x)] = (None, vt, offset, stride, n)
                for k in range(n):
                    self.slot_ptrs[(id(x), k)] = self.b.gep(
                        self.regfile, [I64(offset + k * stride)], source_etype=I8)
                offset += n * stride
                continue
            slot = self.b.alloca(ir.ArrayType(vt, n), name=x.name.replace(".", "_"))
            self.b.store(ir.Constant(ir.ArrayType(vt, n), None), slot)
            self.slots[id(x)] = (slot, vt, 0, 0, n)
            for k in range(n):
                self.slot_ptrs[(id(x), k)] = self.b.gep(slot, [I32(0), I32(k)], inbounds=True)
        self.regfile_bytes = _align(max(offset, 16), SLOT_ALIGN)

    def _zero_resident(self) -> None:
        """Registers start as zeros (as the allocas do); those in the register file are
        zeroed once, at the start of the warp, not at every resume."""
        for key, (slot, vt, _, _, n) in self.slots.items():
            if slot is None:
                zero = ir.Constant(vt, None)
                for k in range(n):
                    self.b.store(zero, self.slot_ptrs[(key, k)], align=16)

    def _load_params(self) -> None:
        b, L = self.b, self.L
        for i, p in enumerate(self.kernel.params):
            t = p.type
            assert isinstance(t, ScalarType)
            raw = b.load(b.gep(self.params, [I64(8 * i)], source_etype=I8), typ=I64, align=8)
            lt = elem_llvm_type(t)
            if isinstance(lt, ir.IntType):
                v = b.trunc(raw, lt) if lt.width < 64 else raw
            elif lt == ir.FloatType():
                v = b.bitcast(b.trunc(raw, I32), lt)
            else:
                v = b.bitcast(raw, lt)
            self._store_slot(p.reg, 0, L.splat_value(v), full=True)

    # -- register access ------------------------------------------------------------------------

    def _slot_ptr(self, x: Reg | RegArray, i: ir.Value | int) -> tuple[ir.Value, ir.Type, int]:
        """The address of element ``i`` of ``x``'s slot, the element's LLVM type and the
        alignment to access it with (16 in the register file, natural in an ``alloca``)."""
        slot, vt, offset, stride, _ = self.slots[id(x)]
        align = 16 if slot is None else 0
        if isinstance(i, int):
            return self.slot_ptrs[(id(x), i)], vt, align
        if slot is None:
            at = self.b.add(I64(offset), self.b.mul(self.b.zext(i, I64), I64(stride)))
            return self.b.gep(self.regfile, [at], source_etype=I8), vt, align
        return self.b.gep(slot, [I32(0), i], inbounds=True), vt, align

    def _known(self) -> dict[tuple[int, int], ir.Value]:
        """Values of register slots stored earlier in the current basic block: reading them
        again needs no load (less IR for LLVM to clean up, which is most of the JIT time)."""
        if self.b.block is not self._known_block:
            self._known_block = self.b.block
            self._known_values = {}
        return self._known_values

    def _load_slot(self, x: Reg | RegArray, i: ir.Value | int) -> ir.Value:
        if id(x) in self.ssa:
            value = self.ssa_values.get(id(x), {}).get(i)  # type: ignore[arg-type]
            if value is None:  # read before any write: the zeros an alloca would hold
                t = x.type
                value = ir.Constant(self.L.vtype(t.elem if isinstance(t, VectorType) else t),
                                    None)
            return value
        known = self._known()
        if isinstance(i, int) and (id(x), i) in known:
            return known[(id(x), i)]
        p, vt, align = self._slot_ptr(x, i)
        v = self.b.load(p, typ=vt, align=align or None)
        if isinstance(i, int):
            known[(id(x), i)] = v
        return v

    def _store_slot(self, x: Reg | RegArray, i: ir.Value | int, v: ir.Value, full: bool) -> None:
        if id(x) in self.ssa:  # a temporary: written once, in every lane (see temporaries)
            t = x.type
            vt = self.L.vtype(t.elem if isinstance(t, VectorType) else t)
            self.ssa_values.setdefault(id(x), {})[i] = v if v.type == vt else self.b.bitcast(
                v, vt)
            return
        p, vt, align = self._slot_ptr(x, i)
        if v.type != vt:
            v = self.b.bitcast(v, vt)
        if not full:
            old = self._load_slot(x, i)
            v = self.b.select(self.mask.value if self._guard is None else self._guard, v, old)
        self.b.store(v, p, align=align or None)
        known = self._known()
        if isinstance(i, int):
            known[(id(x), i)] = v
        else:  # a run-time index may alias any element of the array
            for key in [k for k in known if k[0] == id(x)]:
                del known[key]

    def index_value(self, index: Any) -> ir.Value:
        """A register-array index as a scalar i32 (loop variables read from lane 0: an unroll
        loop's variable is the same in every lane)."""
        if isinstance(index, int):
            return I32(index)
        if isinstance(index, Reg):
            return self.b.extract_element(self._load_slot(index, 0), I32(0))
        assert isinstance(index, IndexOp)
        a, c = self.index_value(index.a), self.index_value(index.b)
        op = {"+": self.b.add, "-": self.b.sub, "*": self.b.mul, "//": self.b.sdiv,
              "%": self.b.srem}[index.op]
        return op(a, c)

    def _locate(self, x: Reg | Elem) -> tuple[Reg | RegArray, ir.Value | int, int]:
        if isinstance(x, Elem):
            t = x.array.type
            n = t.count if isinstance(t, VectorType) else 1
            if isinstance(x.index, int):
                return x.array, x.index * n, n
            base = self.index_value(x.index)
            return x.array, (self.b.mul(base, I32(n)) if n > 1 else base), n
        t = x.type
        return x, 0, t.count if isinstance(t, VectorType) else 1

    def read(self, x: Operand, want: Type | None = None) -> Any:
        """The lane vectors of an operand: one ``ir.Value`` for a scalar, a list for a vector.
        With ``want``, a scalar of another type of the same width is bitcast to it."""
        if isinstance(x, Const):
            lt = elem_llvm_type(x.type)
            if isinstance(lt, ir.IntType):
                bits = x.bits - (1 << lt.width) if x.bits >> (lt.width - 1) & 1 else x.bits
                v = self.L.splat(bits, lt)
            else:
                v = self.L.splat(float(x.value), lt)
            return self._as(v, x.type, want)
        owner, base, n = self._locate(x)
        vals = []
        for k in range(n):
            i = base if k == 0 else (self.b.add(base, I32(k)) if not isinstance(base, int)
                                     else base + k)
            vals.append(self._load_slot(owner, i))
        if isinstance(x.type, VectorType):
            if isinstance(want, VectorType) and want.elem != x.type.elem:
                return [self._as(v, x.type.elem, want.elem) for v in vals]
            return vals
        return self._as(vals[0], x.type, want)

    def _as(self, v: ir.Value, have: ScalarType, want: Type | None) -> ir.Value:
        if want is None or not isinstance(want, ScalarType):
            return v
        lt = self.L.vtype(want)
        return v if v.type == lt else self.b.bitcast(v, lt)

    def write(self, x: Reg | Elem, values: list[ir.Value], full: bool) -> None:
        owner, base, n = self._locate(x)
        for k in range(n):
            i = base if k == 0 else (self.b.add(base, I32(k)) if not isinstance(base, int)
                                     else base + k)
            self._store_slot(owner, i, values[k], full)

    def slot_address(self, x: Operand) -> ir.Value:
        """The address of ``x``'s lane vectors, its elements in a row (a register's slot is
        an array of them): its slot's, or for a constant or an SSA value a scratch copy's."""
        if isinstance(x, Const) or (isinstance(x, Reg) and id(x) in self.ssa):
            values = self.read(x)
            values = values if isinstance(values, list) else [values]
            copy = self.scratch(ir.ArrayType(values[0].type, len(values)))
            for k, v in enumerate(values):
                self.b.store(v, self.b.gep(copy, [I32(0), I32(k)], inbounds=True))
            return copy
        owner, base, _ = self._locate(x)
        return self._slot_ptr(owner, base)[0]

    def forget(self, x: Reg | Elem) -> None:
        """Drop what is known of ``x``'s slots: something other than ``_store_slot`` wrote
        them (a helper, through ``slot_address``)."""
        owner = x.array if isinstance(x, Elem) else x
        known = self._known()
        for key in [k for k in known if k[0] == id(owner)]:
            del known[key]

    def scratch(self, t: ir.Type) -> ir.Value:
        """A stack buffer for helper calls, allocated once in the entry block (an ``alloca`` in
        a loop body would grow the stack every iteration)."""
        # At the start of the entry block, through a builder of its own: positioning the main
        # builder before the entry block's terminator searches that (long) block every time.
        if self._alloca_builder is None:
            self._alloca_builder = ir.IRBuilder(self.fn.entry_basic_block)
        self._alloca_builder.position_at_start(self.fn.entry_basic_block)
        return self._alloca_builder.alloca(t)

    # -- errors ---------------------------------------------------------------------------------

    def check(self, ok: ir.Value, code: int, stmt: Stmt, detail: ir.Value | None = None) -> None:
        """Continue where ``ok`` (i1) holds; otherwise record error ``code`` and return -1."""
        b = self.b
        bad = self.fn.append_basic_block("error")
        cont = self.fn.append_basic_block("ok")
        b.cbranch(ok, cont, bad)
        b.position_at_end(bad)
        fields = [I32(code), I32(self.stmt_ids[id(stmt)]), self.ctaid, self.warp,
                  self.L.bits(self.mask.value), detail if detail is not None else I32(0)]
        for k, v in enumerate(fields):
            b.store(v, b.gep(self.err, [I32(k)], source_etype=I32), align=4)
        b.ret(I32(-1))
        b.position_at_end(cont)

    def active(self) -> ir.Value:
        """The effective mask of the instruction being emitted (active mask and guard)."""
        return self.mask.value if self._guard is None else self._guard

    # -- statements -----------------------------------------------------------------------------

    def body(self, stmts: list[Stmt]) -> None:
        for s in stmts:
            if isinstance(s, Instr):
                self.instr(s)
            elif isinstance(s, If):
                self.if_(s)
            elif isinstance(s, While):
                self.while_(s)
            else:
                self.for_(s)

    def instr(self, s: Instr) -> None:
        b = self.b
        self._guard = None
        full = self.mask.full
        if s.guard is not None:
            g = self.read(s.guard)
            if s.guard_negated:
                g = b.not_(g)
            self._guard = b.and_(self.mask.value, g)
            full = False
        name = s.op.name
        if isinstance(s.dst, Reg) and id(s.dst) in self.temporaries:
            full = True  # nobody reads its inactive lanes: write them too, no blend
        # .aligned needs the whole warp; under a full mask and no guard it has it (no check)
        if s.op.aligned and name != "bar.sync" and not (self.mask.full and s.guard is None):
            ok = b.icmp_unsigned("==", self.L.bits(self.active()), I32(-1))
            self.check(ok, 1, s)
        if name == "bar.sync":
            self.barrier(s)
        elif name in THREAD_OPS:
            self.write(s.dst, THREAD_OPS[name](self, s), full)
        elif name in memory_ops.MEMORY_OPS:
            r = memory_ops.MEMORY_OPS[name](self, s)
            if s.dst is not None:
                self.write(s.dst, r, full)
        elif name in debug_ops.DEBUG_OPS:
            debug_ops.DEBUG_OPS[name](self, s)
        elif name in collectives.COLLECTIVES:
            r = collectives.COLLECTIVES[name](self, s)
            if s.dst is not None and r is not None:  # None: the emitter wrote the slots itself
                self.write(s.dst, r, full)
        elif name == "pack":
            t = s.dst.type
            assert isinstance(t, VectorType)
            self.write(s.dst, [self.read(a, t.elem) for a in s.args], full)
        elif name == "extract":
            vals = self.read(s.args[0])
            self.write(s.dst, [vals[s.mod("index")]], full)
        else:
            raise NotImplementedError(f"the CPU backend has no emitter for {name}")
        self._guard = None

    def barrier(self, s: Instr) -> None:
        """``bar.sync``: return the barrier's number; resume here. The registers live across it
        are in the register file already (``_allocate``)."""
        b = self.b
        if not self.mask.full:
            self.check(b.icmp_unsigned("==", self.L.bits(self.mask.value), I32(-1)), 1, s)
        self.n_barriers += 1
        k = self.n_barriers
        b.ret(I32(k))
        resume = self.fn.append_basic_block(f"resume{k}")
        self.switch.add_case(I32(k), resume)
        b.position_at_end(resume)

    def _uniform_cond(self, cond: ir.Value, stmt: Stmt) -> ir.Value:
        """The i1 value of a block-uniform condition, checking the active lanes agree."""
        b = self.b
        act = b.and_(cond, self.mask.value)
        any_ = self.L.any(act)
        all_ = b.icmp_unsigned("==", self.L.bits(act), self.L.bits(self.mask.value))
        self.check(b.icmp_unsigned("==", any_, all_), 3, stmt)
        return any_

    def if_(self, s: If) -> None:
        b = self.b
        cond = self.read(s.cond)
        after = self.fn.append_basic_block("endif")
        if s.uniform:
            c = self._uniform_cond(cond, s)
            then_b = self.fn.append_basic_block("then")
            else_b = self.fn.append_basic_block("else") if s.else_body else after
            b.cbranch(c, then_b, else_b)
            b.position_at_end(then_b)
            self.body(s.then_body)
            b.branch(after)
            if s.else_body:
                b.position_at_end(else_b)
                self.body(s.else_body)
                b.branch(after)
            b.position_at_end(after)
            return
        outer = self.mask
        m_then = b.and_(outer.value, cond)
        m_else = b.and_(outer.value, b.not_(cond))
        for body, m in ((s.then_body, m_then), (s.else_body, m_else)):
            if not body:
                continue
            blk = self.fn.append_basic_block("branch")
            nxt = self.fn.append_basic_block("branch_end")
            b.cbranch(self.L.any(m), blk, nxt)
            b.position_at_end(blk)
            self.mask = _Mask(m, False)
            self.body(body)
            b.branch(nxt)
            b.position_at_end(nxt)
            self.mask = outer
        b.branch(after)
        b.position_at_end(after)

    def for_(self, s: For) -> None:
        b, L = self.b, self.L
        t = s.var.type
        assert isinstance(t, ScalarType)
        start = self.read(s.start, t) if not isinstance(s.start, int) else L.splat(s.start, I32)
        lockstep = s.unroll or s.uniform
        self._guard = None
        self._store_slot(s.var, 0, start, full=lockstep or self.mask.full)
        head = self.fn.append_basic_block("for_head")
        body = self.fn.append_basic_block("for_body")
        exit_ = self.fn.append_basic_block("for_exit")
        b.branch(head)
        b.position_at_end(head)
        var = self.read(s.var, t)
        stop = self.read(s.stop, t) if not isinstance(s.stop, int) else L.splat(s.stop, I32)
        lt = b.icmp_signed("<", var, stop)  # signed, for u32 variables too (For's contract)
        outer = self.mask
        if lockstep:
            c = self._uniform_cond(lt, s) if s.uniform and not s.unroll else \
                b.extract_element(lt, I32(0))
            b.cbranch(c, body, exit_)
            b.position_at_end(body)
        else:
            active = b.and_(outer.value, lt)
            b.cbranch(L.any(active), body, exit_)
            b.position_at_end(body)
            self.mask = _Mask(active, False)
        self.body(s.body)
        var = self.read(s.var, t)
        nxt = b.add(var, L.splat(s.step, I32))
        self._guard = None
        self._store_slot(s.var, 0, nxt, full=lockstep or self.mask.full)
        self.mask = outer
        b.branch(head)
        b.position_at_end(exit_)

    def while_(self, s: While) -> None:
        """``loop { cond_body; if (!cond) break; body }``. A uniform loop branches on the
        condition, checked to agree across the active lanes; its bodies may contain barriers
        (all state lives in register slots, so a resume point may lie inside the loop). A
        non-uniform loop carries the mask of the lanes still looping in a phi; a lane whose
        condition fails leaves it for good."""
        b, L = self.b, self.L
        head = self.fn.append_basic_block("while_head")
        body = self.fn.append_basic_block("while_body")
        exit_ = self.fn.append_basic_block("while_exit")
        self._guard = None
        if s.uniform:
            b.branch(head)
            b.position_at_end(head)
            self.body(s.cond_body)
            b.cbranch(self._uniform_cond(self.read(s.cond), s), body, exit_)
            b.position_at_end(body)
            self.body(s.body)
            b.branch(head)
            b.position_at_end(exit_)
            return
        outer = self.mask
        pre = b.block
        b.branch(head)
        b.position_at_end(head)
        looping = b.phi(L.vec(I1), "looping")
        looping.add_incoming(outer.value, pre)
        self.mask = _Mask(looping, False)
        self.body(s.cond_body)
        going = b.and_(looping, self.read(s.cond))
        b.cbranch(L.any(going), body, exit_)
        b.position_at_end(body)
        self.mask = _Mask(going, False)
        self.body(s.body)
        looping.add_incoming(going, b.block)
        b.branch(head)
        b.position_at_end(exit_)
        self.mask = outer


def _mma_operands(kernel: Kernel) -> set[int]:
    """The registers and arrays ``mma.sync`` reads or writes: they keep a slot (no SSA value),
    whose address the statement passes to its helper."""
    out: set[int] = set()
    for s in walk(kernel.body):
        if isinstance(s, Instr) and s.op.name == "mma.sync":
            for x in (*s.args, s.dst):
                if isinstance(x, Reg):
                    out.add(id(x))
                elif isinstance(x, Elem):
                    out.add(id(x.array))
    return out


def _driver(module: ir.Module, kernel: Kernel, layout: Layout, warp_fn: ir.Function,
            sanitize: bool = False) -> None:
    """``i32 tv_run(params, nx, ny, nz, block_begin, block_end, workspace, reverse, err)``: run
    the blocks numbered ``[block_begin, block_end)`` of an ``nx × ny × nz`` grid. With
    ``sanitize``, each block start and each phase call the sanitizer's hooks (sanitizer_ir)."""
    fnty = ir.FunctionType(I32, [PTR, I32, I32, I32, I32, I32, PTR, I32, PTR])
    fn = ir.Function(module, fnty, name="tv_run")
    params, nx, ny, nz, b0, b1, ws, reverse, err = fn.args
    entry = fn.append_basic_block("entry")
    b = ir.IRBuilder(entry)
    memset = module.globals.get("llvm.memset.p0.i64") or ir.Function(
        module, ir.FunctionType(ir.VoidType(), [PTR, I8, I64, I1]), name="llvm.memset.p0.i64")
    smem = b.gep(ws, [I64(layout.smem_offset)], source_etype=I8)
    local = b.gep(ws, [I64(layout.local_offset)], source_etype=I8)
    regfile = b.gep(ws, [I64(layout.regfile_offset)], source_etype=I8)
    cpq = b.gep(ws, [I64(layout.cpq_offset)], source_etype=I8)
    blk_head = fn.append_basic_block("block_head")
    blk_init = fn.append_basic_block("block_init")
    phase_head = fn.append_basic_block("phase_head")
    warp_head = fn.append_basic_block("warp_head")
    warp_body = fn.append_basic_block("warp_body")
    warp_next = fn.append_basic_block("warp_next")
    phase_end = fn.append_basic_block("phase_end")
    fail = fn.append_basic_block("fail")
    mismatch = fn.append_basic_block("mismatch")
    done = fn.append_basic_block("done")
    b.branch(blk_head)

    b.position_at_end(blk_head)
    blk = b.phi(I32, "blk")
    blk.add_incoming(b0, entry)
    b.cbranch(b.icmp_signed("<", blk, b1), blk_init, done)

    b.position_at_end(blk_init)
    # shared memory starts zeroed (deterministic), cp.async queues empty: each lane's two
    # counters (its entries beyond the count are never read)
    b.call(memset, [smem, I8(0), I64(max(layout.shared_bytes, 16)), I1(0)])
    if sanitize:  # sanitizer: a new block (shared shadow cleared)
        from tilevm.backend.cpu.sanitizer_ir import driver_hooks

        san_block, san_phase = driver_hooks(module)
        san_fail = fn.append_basic_block("sanitizer_report")
        san_ok = fn.append_basic_block("block_init_checked")
        b.cbranch(b.icmp_signed("==", b.call(san_block, [err, blk, smem]), I32(0)), san_ok,
                  san_fail)
        b.position_at_end(san_fail)
        for k, v in enumerate([I32(SANITIZER_ERROR), I32(-1), blk, I32(-1), I32(0), I32(0)]):
            b.store(v, b.gep(err, [I32(k)], source_etype=I32), align=4)
        b.ret(I32(-1))
        b.position_at_end(san_ok)
    lanes = layout.warps * WARP
    lane_head = fn.append_basic_block("queue_reset")
    lane_done = fn.append_basic_block("queue_reset_done")
    queue_entry = b.block  # blk_init (or, sanitized, the block after its hook)
    b.branch(lane_head)
    b.position_at_end(lane_head)
    lane = b.phi(I64, "lane")
    lane.add_incoming(I64(0), queue_entry)
    counters = b.gep(cpq, [b.mul(lane, I64(layout.cpq_bytes // WARP))], source_etype=I8)
    b.store(I64(0), counters, align=4)
    lane1 = b.add(lane, I64(1))
    lane.add_incoming(lane1, lane_head)
    b.cbranch(b.icmp_unsigned("<", lane1, I64(lanes)), lane_head, lane_done)
    b.position_at_end(lane_done)
    b.branch(phase_head)

    b.position_at_end(phase_head)
    resume = b.phi(I32, "resume")
    resume.add_incoming(I32(0), lane_done)
    if sanitize:  # sanitizer: a new barrier epoch
        b.cbranch(b.icmp_signed("==", b.call(san_phase, [err]), I32(0)), warp_head, san_fail)
    else:
        b.branch(warp_head)

    b.position_at_end(warp_head)
    wi = b.phi(I32, "wi")
    first = b.phi(I32, "first")
    wi.add_incoming(I32(0), phase_head)
    first.add_incoming(I32(-2), phase_head)
    b.cbranch(b.icmp_signed("<", wi, I32(layout.warps)), warp_body, phase_end)

    b.position_at_end(warp_body)
    w = b.select(b.icmp_unsigned("!=", reverse, I32(0)), b.sub(I32(layout.warps - 1), wi), wi)
    w64 = b.zext(w, I64)
    wl = b.gep(local, [b.mul(w64, I64(WARP * kernel.local_bytes))], source_etype=I8)
    wr = b.gep(regfile, [b.mul(w64, I64(layout.regfile_bytes))], source_etype=I8)
    wq = b.gep(cpq, [b.mul(w64, I64(layout.cpq_bytes))], source_etype=I8)
    r = b.call(warp_fn, [params, smem, wl, wr, wq, err, blk, nx, ny, nz, w, resume])
    b.cbranch(b.icmp_signed("<", r, I32(0)), fail, warp_next)

    b.position_at_end(warp_next)
    agree = b.or_(b.icmp_signed("==", first, I32(-2)), b.icmp_signed("==", first, r))
    wi1 = b.add(wi, I32(1))
    wi.add_incoming(wi1, warp_next)
    first.add_incoming(r, warp_next)
    b.cbranch(agree, warp_head, mismatch)

    b.position_at_end(mismatch)
    for k, v in enumerate([I32(4), I32(-1), blk, w, I32(0), r]):
        b.store(v, b.gep(err, [I32(k)], source_etype=I32), align=4)
    b.ret(I32(-1))

    b.position_at_end(phase_end)
    more = b.icmp_signed(">", first, I32(0))
    next_blk = fn.append_basic_block("next_block")
    resume.add_incoming(first, phase_end)
    b.cbranch(more, phase_head, next_blk)

    b.position_at_end(next_blk)
    blk1 = b.add(blk, I32(1))
    blk.add_incoming(blk1, next_blk)
    b.branch(blk_head)

    b.position_at_end(fail)
    b.ret(I32(-1))
    b.position_at_end(done)
    b.ret(I32(0))


def generate(kernel: Kernel, triple: str, sanitize: bool = False) -> tuple[str, Layout]:
    """The LLVM IR text of ``kernel`` (helpers not yet linked) and its workspace layout; with
    ``sanitize``, the sanitizer's checked variant (sanitizer_ir.py)."""
    from tilevm.backend.cpu.helpers_ir import CPA_LANE_BYTES

    module = ir.Module(name=kernel.name)
    module.triple = triple
    cg = WarpCodegen(kernel, module)
    cg.sanitize = sanitize
    warp_fn = cg.build()
    layout = Layout(kernel.block_threads // WARP, kernel.shared_bytes, kernel.local_bytes,
                    cg.regfile_bytes, WARP * CPA_LANE_BYTES)
    _driver(module, kernel, layout, warp_fn, sanitize)
    return str(module), layout

"""The lowering driver: a Tile IR kernel to one Thread IR kernel (DESIGN §1).

The passes run in order — layout inference, the shared-memory plan, the divisibility of scalars,
the resource estimate — and then every statement is lowered by its rule (:data:`RULES`), with
block-uniform control flow becoming uniform Thread IR control flow. Each Thread IR statement
carries the user's source location and the id of the Tile IR instruction it came from.

The kernel's parameters are listed by :class:`~tilevm.backend.lower.abi.AbiParam`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# The rules register themselves on import.
from tilevm.backend.lower import (  # noqa: F401
    rules_assert,
    rules_debug,
    rules_dot,
    rules_elementwise,
    rules_memory,
    rules_misc,
    rules_scan,
    rules_shape,
)
from tilevm.backend.lower import values as vals
from tilevm.backend.lower.abi import AbiParam, Workspace
from tilevm.backend.lower.context import RULES, LoweringContext
from tilevm.backend.lower.divisibility import divisors
from tilevm.backend.lower.dtype_map import I32, compute_type, scalar_register_type
from tilevm.backend.lower.layout_inference import infer_layouts
from tilevm.backend.lower.report import CompileReport
from tilevm.backend.lower.resources import check_shared, estimate_registers
from tilevm.backend.lower.rules_elementwise import ELEMENTWISE_OPS, lower_fused
from tilevm.backend.lower.shared_plan import plan_shared
from tilevm.backend.lower.specialization import Specialization
from tilevm.ir.thread import stmts as thread
from tilevm.ir.thread.builder import KernelBuilder
from tilevm.ir.thread.types import S32, S64, U32, U64, ScalarType
from tilevm.ir.thread.values import Const, Operand
from tilevm.ir.thread.verify import parse_arch
from tilevm.ir.tile.program import Assign, For, If, Instr, Kernel, Stmt, Var, While, walk
from tilevm.ir.tile.types import ScalarType as TileScalar
from tilevm.ir.tile.types import TensorType

__all__ = ["LoweredKernel", "lower"]


@dataclass
class LoweredKernel:
    """A kernel lowered for one target and specialization."""

    tile: Kernel  # with every register tile's layout, and the inserted conversions
    thread: thread.Kernel
    abi: tuple[AbiParam, ...]
    workspaces: tuple[Workspace, ...]
    report: CompileReport
    target: int
    spec: Specialization = field(default_factory=Specialization.generic)


def _instr_ids(kernel: Kernel) -> dict[int, int]:
    return {id(s): n for n, s in enumerate(walk(kernel.body)) if isinstance(s, Instr)}


def _assigned(kernel: Kernel) -> frozenset[str]:
    """The variables an ``Assign`` writes (loop-carried values, ``if`` merges)."""
    return frozenset(s.target.name for s in walk(kernel.body) if isinstance(s, Assign))


class _Driver:
    def __init__(self, ctx: LoweringContext, users: dict[str, set[int]]) -> None:
        self.ctx = ctx
        self.kb = ctx.kb
        self.param = ctx.param
        self.users = users

    def parameters(self) -> None:
        ctx = self.ctx
        kernel = ctx.kernel
        for p in kernel.params:
            t = p.type
            if isinstance(t, TileScalar):
                reg = self.param(p.name, scalar_register_type(t.dtype), "scalar", p.name)
                ctx.values[p.name] = vals.ScalarValue(t.dtype, reg)
                continue
            assert isinstance(t, TensorType)
            base = self.param(p.name, U64, "pointer", p.name, pointer=True)
            facts = ctx.spec.tensor(p.name)
            # Offsets proven to fit in i32 are computed in 32 bits (the ABI keeps 64).
            index = S32 if facts.offsets32 else S64
            offset = self._index(self.param(f"{p.name}_offset", S64, "offset", p.name), index)
            strides, divisor = [], []
            for d in range(len(t.shape)):
                reg = self.param(f"{p.name}_stride{d}", S64, "stride", p.name, d)
                fact = facts.stride(d)
                strides.append(Const.of(1, index) if fact == "1" else self._index(reg, index))
                elems = 128 // math.gcd(128, t.dtype.nbits)
                divisor.append(elems if fact == "16" else 1)
            ctx.values[p.name] = vals.GlobalTensor(t.dtype, base, offset, [], strides, p.name,
                                                   facts.aligned, divisor)
        for d in kernel.dims():
            reg = self.param(d, S32, "size", d)
            ctx.dims[d] = reg
            ctx.values[d] = vals.ScalarValue(I32, reg)
        for p in kernel.params:
            t = p.type
            if isinstance(t, TensorType):
                ctx.values[p.name].sizes = [Const.of(n, S32) if isinstance(n, int) else
                                            ctx.dims[n] for n in t.shape]

    def _index(self, param: Operand, index: ScalarType) -> Operand:
        """A 64-bit offset or stride parameter as an ``index`` (s32 or s64) register."""
        return param if index == S64 else self.kb.cvt(param, S32, src=S64)

    # -- statements ------------------------------------------------------------------------------

    def block(self, stmts: tuple[Stmt, ...]) -> None:
        at = 0
        while at < len(stmts):
            s = stmts[at]
            self.kb.loc = str(s.loc) if s.loc is not None else None
            self.kb.origin = self.ctx.instr_ids.get(id(s))
            run = _elementwise_run(stmts, at)
            at += max(len(run), 1)
            if len(run) > 1:
                ids = {id(x) for x in run}
                lower_fused(self.ctx, run, lambda name, ids=ids: bool(
                    self.users.get(name, set()) - ids) or name in self.ctx.assigned)
            elif isinstance(s, Instr):
                RULES[s.op](self.ctx, s)
            elif isinstance(s, Assign):
                self.assign(s)
            elif isinstance(s, For):
                self.for_(s)
            elif isinstance(s, If):
                self.if_(s)
            else:
                self.while_(s)

    def assign(self, s: Assign) -> None:
        kb = self.kb
        target = self.ctx.value(s.target)
        value = self.ctx.value(s.value)
        if isinstance(target, vals.ScalarValue):
            kb.mov(vals.read_storage(kb, value), target.reg.type, out=target.reg)
            return
        assert isinstance(target, vals.TileValue) and isinstance(value, vals.TileValue)
        if value.array is target.array:
            return
        with vals.locals_loop(kb, target.array.length, "i") as i:
            kb.mov(value.array[i], target.array.type, out=target.array[i])

    def condition(self, x: object) -> object:
        return self.kb.setp("ne", self.ctx.scalar(x), 0, type=U32)

    def if_(self, s: If) -> None:
        kb = self.kb
        with kb.if_(self.condition(s.cond), uniform=True):
            self.block(s.then_body)
        if s.else_body:
            with kb.else_():
                self.block(s.else_body)

    def while_(self, s: While) -> None:
        kb = self.kb
        with kb.while_(uniform=True) as loop:
            self.block(s.cond_body)
            loop.cond(self.condition(s.cond))
            self.block(s.body)

    def for_(self, s: For) -> None:
        kb, ctx = self.kb, self.ctx
        dt = s.var.type.dtype
        t = compute_type(dt)
        start, stop, step = (_typed(kb, ctx.scalar(x), t) for x in (s.start, s.stop, s.step))
        constant_step = isinstance(step, Const) and step.value > 0
        if constant_step and t == S32:
            bounds = [b.value if isinstance(b, Const) else b for b in (start, stop)]
            unroll = s.unroll is True and all(isinstance(b, int) for b in bounds)
            with kb.for_(bounds[0], bounds[1], step.value, uniform=True, unroll=unroll,
                         name=_c(s.var.name)) as var:
                ctx.values[s.var.name] = vals.ScalarValue(dt, var)
                self.block(s.body)
            return
        # A run-time or negative step: a while loop, Python's range semantics.
        if not isinstance(step, Const):
            kb.emit("trap", (), guard=kb.setp("eq", step, 0, type=t))
        var = kb.reg(t, _c(s.var.name))
        kb.mov(start, t, out=var)
        with kb.while_(uniform=True) as loop:
            if isinstance(step, Const):
                going = kb.setp("lt" if step.value > 0 else "gt", var, stop, type=t)
            else:
                up = kb.and_(kb.setp("gt", step, 0, type=t), kb.setp("lt", var, stop, type=t),
                             type="pred")
                down = kb.and_(kb.setp("lt", step, 0, type=t), kb.setp("gt", var, stop, type=t),
                               type="pred")
                going = kb.or_(up, down, type="pred")
            loop.cond(going)
            ctx.values[s.var.name] = vals.ScalarValue(dt, var)
            self.block(s.body)
            kb.add(var, step, type=t, out=var)


def _typed(kb: KernelBuilder, x: object, t: ScalarType) -> object:
    """``x`` as a register (or constant) of exactly ``t`` (loop bounds must match the loop
    variable's type)."""
    if x.type == t:
        return x
    if isinstance(x, Const):
        return Const(x.bits, t)
    return kb.mov(x, t)


def _is_tile(x: object) -> bool:
    return isinstance(x, Var) and isinstance(x.type, TensorType) and x.type.scope == "reg"


def _elementwise_run(stmts: tuple[Stmt, ...], at: int) -> list[Instr]:
    """The elementwise instructions from ``stmts[at]`` on whose tile results share one layout
    (fused into one loop by :func:`lower_fused`)."""
    run: list[Instr] = []
    for s in stmts[at:]:
        if not (isinstance(s, Instr) and s.op in ELEMENTWISE_OPS and _is_tile(s.result)):
            break
        if run and s.result.type.layout != run[0].result.type.layout:
            break
        run.append(s)
    return run


def _users(kernel: Kernel) -> dict[str, set[int]]:
    """For each variable, the statements that read it."""
    out: dict[str, set[int]] = {}

    def use(x: object, s: Stmt) -> None:
        if isinstance(x, Var):
            out.setdefault(x.name, set()).add(id(s))

    for s in walk(kernel.body):
        if isinstance(s, Instr):
            for a in s.args:
                use(a, s)
        elif isinstance(s, Assign):
            use(s.value, s)
        elif isinstance(s, For):
            for x in (s.start, s.stop, s.step):
                use(x, s)
        else:
            use(s.cond, s)
    return out


def _c(name: str) -> str:
    return name.replace(".", "_")


def _report_layouts(report: CompileReport, kernel: Kernel, priorities: dict[str, str]) -> None:
    for s in walk(kernel.body):
        if isinstance(s, Instr) and s.result is not None and isinstance(
                s.result.type, TensorType) and s.result.type.scope == "reg":
            report.layouts.append((s.loc, s.result.name, repr(s.result.type.layout),
                                   priorities.get(s.result.name, s.op)))


def lower(kernel: Kernel, target: int | str = 80, spec: Specialization | None = None,
          name: str | None = None) -> LoweredKernel:
    """Lower a verified Tile IR kernel to Thread IR for ``target`` (``80``, ``"sm_90"``…) and the
    specialization ``spec`` (the general kernel by default).

    Raises :class:`~tilevm.backend.lower.errors.LoweringError` at the user's line for a kernel
    that cannot be compiled as written (a tile that does not fit, a layout that does not cover
    the block, an operation not lowered yet)."""
    from tilevm.backend.cuda.emit_cuda import usable_kernel_name
    from tilevm.backend.cuda.targets import cuda_target

    sm = parse_arch(target)
    spec = spec or Specialization.generic()
    inferred = infer_layouts(kernel)
    typed = inferred.kernel
    registers = estimate_registers(typed)
    plan = plan_shared(typed)
    users = _users(typed)
    report = CompileReport(kernel.name, f"sm_{sm}", spec.describe())
    # A kernel named like a C++ keyword (`double`) gets a symbol of its own.
    symbol = kernel.name if usable_kernel_name(kernel.name) else f"tv_{kernel.name}"
    kb = KernelBuilder(name or symbol, block_threads=32 * kernel.warps)
    ctx = LoweringContext(typed, kb, sm, spec, plan, divisors(typed, spec), report,
                          _assigned(typed), frozenset(users), _instr_ids(typed))
    ctx.conversion_reasons = {c.result: c.why for c in inferred.conversions}
    driver = _Driver(ctx, users)
    driver.parameters()
    ctx.start()
    driver.block(typed.body)
    kb.loc = kb.origin = None
    total = plan.scratch_offset + ctx.scratch_bytes if ctx.scratch_bytes else plan.user_bytes
    limit = cuda_target(f"sm_{sm}").max_shared_bytes
    biggest = max((s for s in walk(typed.body) if isinstance(s, Instr) and s.op == "shared"),
                  key=lambda s: plan.buffers[s.result.name].size, default=None)
    check_shared(total, limit, f"sm_{sm}", biggest)
    kb.shared_bytes = total
    report.shared_bytes = total
    report.shared = [f"%{b.name}: {b.size} bytes at {b.offset}" + (
        " (reuses a dead buffer's bytes)" if b.reuses else "") for b in plan.buffers.values()]
    if ctx.scratch_bytes:
        report.shared.append(f"scratch (layout conversions, reductions across warps): "
                             f"{ctx.scratch_bytes} bytes at {plan.scratch_offset}")
    report.registers = registers
    _report_layouts(report, typed, inferred.origins)
    thread_kernel = kb.finish(verify_arch=sm)
    return LoweredKernel(typed, thread_kernel, tuple(ctx.abi), tuple(ctx.workspaces), report,
                         sm, spec)


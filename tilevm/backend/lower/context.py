"""The state of one lowering: the Thread IR being built, the values of Tile IR variables, and the
per-thread index arithmetic every rule shares.

Rules (the ``rules_*`` modules) are functions ``rule(ctx, instr)`` registered for Tile IR op names
in :data:`RULES`; the driver (:mod:`~tilevm.backend.lower.lower_kernel`) walks the program and
calls them. A rule reads its operands with :meth:`LoweringContext.value`, builds Thread IR with
``ctx.kb`` and binds its result with :meth:`LoweringContext.bind`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tilevm.backend.lower import values as vals
from tilevm.backend.lower.abi import AbiParam, Workspace
from tilevm.backend.lower.dtype_map import compute_type, is_narrow_float, scalar_register_type
from tilevm.backend.lower.report import CompileReport
from tilevm.backend.lower.shared_plan import SharedPlan
from tilevm.backend.lower.specialization import Specialization
from tilevm.ir.dtypes import DType
from tilevm.ir.layout.digits import Digit, layout_digits, split_lanes
from tilevm.ir.layout.register import RegisterLayout
from tilevm.ir.thread.builder import KernelBuilder
from tilevm.ir.thread.stmts import For
from tilevm.ir.thread.types import PRED, S32, U32, ScalarType
from tilevm.ir.thread.values import Const, Index, Operand, Reg
from tilevm.ir.tile.program import Const as TileConst
from tilevm.ir.tile.program import Instr, Kernel, Var
from tilevm.ir.tile.types import TensorType

__all__ = ["RULES", "LoweringContext", "rule"]

Value = vals.TileValue | vals.ScalarValue | vals.GlobalTensor | vals.SharedTensor
RULES: dict[str, Callable[[LoweringContext, Instr], None]] = {}


def rule(*ops: str) -> Callable:
    """Register a lowering rule for the Tile IR operations ``ops``."""
    def deco(fn: Callable[[LoweringContext, Instr], None]) -> Callable:
        for op in ops:
            if op in RULES:
                raise AssertionError(f"two lowering rules for {op}")
            RULES[op] = fn
        return fn
    return deco


def storage_const(dt: DType, value: int | float) -> Const:
    """A scalar constant of ``dt`` in its storage form: a narrow float's code, an integer's
    value (packed elements take its low bits when written into a tile)."""
    if is_narrow_float(dt):
        return Const(int(dt.encode(value)), U32)
    return Const.of(value, scalar_register_type(dt))


def compute_const(dt: DType, value: int | float) -> Const:
    """A constant of ``dt`` as a compute value (narrow floats: their value in f32)."""
    if is_narrow_float(dt):
        return Const.of(float(dt.decode(dt.encode(value))), compute_type(dt))
    return Const.of(value, compute_type(dt))


@dataclass
class LoweringContext:
    """What every rule sees (see the module docstring)."""

    kernel: Kernel
    kb: KernelBuilder
    target: int
    spec: Specialization
    plan: SharedPlan
    divisors: dict[str, int]
    report: CompileReport
    assigned: frozenset[str]
    used: frozenset[str]
    instr_ids: dict[int, int]
    values: dict[str, Value] = field(default_factory=dict)
    dims: dict[str, Operand] = field(default_factory=dict)
    conversion_reasons: dict[str, str] = field(default_factory=dict)
    scratch_bytes: int = 0
    workspaces: list[Workspace] = field(default_factory=list)
    abi: list[AbiParam] = field(default_factory=list)
    # key -> (value, the Thread IR statement lists open where it was emitted, outermost first)
    _cached: dict[Any, tuple[Operand, tuple]] = field(default_factory=dict)
    _tid: Operand | None = None
    _smem: Operand | None = None

    def param(self, name: str, t: ScalarType, kind: str, source: str, dim: int = -1,
              pointer: bool = False) -> Reg:
        """A new kernel parameter, recorded in the ABI."""
        reg = self.kb.param(name, t, pointer=pointer)
        self.abi.append(AbiParam(reg.name, kind, source, t, dim))
        return reg

    # -- values --------------------------------------------------------------------------------

    def value(self, x: object) -> Value:
        """The lowered value of a Tile IR operand (a constant becomes a :class:`ScalarValue`)."""
        if isinstance(x, TileConst):
            return vals.ScalarValue(x.dtype, storage_const(x.dtype, x.value))
        assert isinstance(x, Var)
        return self.values[x.name]

    def tile(self, x: object) -> vals.TileValue:
        v = self.value(x)
        assert isinstance(v, vals.TileValue), x
        return v

    def bind(self, var: Var | None, value: Value) -> None:
        """``var`` is ``value`` from now on. A scalar that the program reassigns gets a register
        of its own (an assignment writes it)."""
        if var is None:
            return
        if isinstance(value, vals.ScalarValue) and var.name in self.assigned:
            t = scalar_register_type(value.dtype)
            value = vals.ScalarValue(value.dtype, self.kb.mov(value.reg, t))
        self.values[var.name] = value

    def new_tile(self, var: Var) -> vals.TileValue:
        """Fresh registers for the tile ``var`` (in its inferred layout)."""
        t = var.type
        assert isinstance(t, TensorType) and t.layout is not None, var
        return vals.new_tile(self.kb, t.dtype, t.layout, _c_name(var.name))

    def can_alias(self, *names: str) -> bool:
        """Whether values may share registers: none of them is ever reassigned."""
        return not any(n in self.assigned for n in names)

    def scalar(self, x: object) -> Operand:
        """The compute value of a scalar operand (a constant, a parameter, a loaded scalar)."""
        v = self.value(x)
        assert isinstance(v, vals.ScalarValue), x
        return vals.read(self.kb, v)

    def index_scalar(self, x: object) -> Operand:
        """An integer scalar operand as an s32 (offsets, sizes and bounds are 32-bit)."""
        v = self.scalar(x)
        t = v.type
        if t.bits == 64:
            return self.kb.cvt(v, S32, src=t)
        return v

    def cached(self, key: Any, make: Callable[[], Operand]) -> Operand:
        """The value ``make`` emits for ``key`` (a function of the thread's index alone), reused
        wherever it is defined: while the block it was emitted into is still being built, or
        after loops that certainly ran (constant bounds, at least one trip) have closed around
        it; not after an ``if`` (a lane index computed inside one warp's branch of a rule is no
        value for the other warps) — there it is emitted again."""
        here = self.kb.open_blocks()
        hit = self._cached.get(key)
        if hit is not None and _defined_here(hit[1], here):
            return hit[0]
        value = make()
        self._cached[key] = (value, here)
        return value

    # -- threads -------------------------------------------------------------------------------

    @property
    def tid(self) -> Operand:
        assert self._tid is not None
        return self._tid

    @property
    def smem(self) -> Operand:
        """The shared address of the block's dynamic shared memory (u32)."""
        assert self._smem is not None
        return self._smem

    def start(self) -> None:
        """Emit what every kernel needs first: the thread index and the shared window."""
        self._tid = self.kb.sreg("tid.x")
        self._smem = self.kb.shared_base()

    def thread_digit(self, g: Digit) -> Operand:
        """The value (u32) of a thread digit or replica of the current thread."""
        def make() -> Operand:
            shift = g.stride.bit_length() - 1
            return self.kb.bfe(self.tid, shift, g.size.bit_length() - 1, type=U32)
        return self.cached(("digit", g.stride, g.size), make)

    def thread_part(self, layout: RegisterLayout) -> list[Operand]:
        """Per dimension, the part of the index that the thread number selects (s32)."""
        def make_dim(d: int) -> Operand:
            total: Operand = Const.of(0, S32)
            for g in layout_digits(layout):
                if g.kind == "thread" and g.dim == d:
                    term = self.kb.mul(self.thread_digit(g), g.weight, type=S32)
                    total = term if isinstance(total, Const) else self.kb.add(total, term,
                                                                              type=S32)
            return total
        return [self.cached(("tpart", layout, d), lambda d=d: make_dim(d))
                for d in range(layout.rank)]

    @staticmethod
    def local_part(layout: RegisterLayout, i: Index) -> list[Index]:
        """Per dimension, the part of the index of local element ``i`` (an index expression)."""
        parts: list[Index] = [0] * layout.rank
        for g in layout_digits(layout):
            if g.kind == "local":
                parts[g.dim] = vals.plus(parts[g.dim],
                                         vals.scale(vals.digit(i, g.stride, g.size), g.weight))
        return parts

    def element_index(self, layout: RegisterLayout, i: Index) -> list[Operand]:
        """The tile index (s32 per dimension) of this thread's local element ``i``."""
        out = []
        for t, loc in zip(self.thread_part(layout), self.local_part(layout, i), strict=True):
            if isinstance(loc, int) and loc == 0:
                out.append(t)
            elif isinstance(t, Const) and t.bits == 0:
                out.append(vals.index_reg(self.kb, loc))
            else:
                out.append(self.kb.add(t, vals.index_reg(self.kb, loc), type=S32))
        return out

    def replica_zero(self, layout: RegisterLayout) -> Operand | None:
        """A predicate: this thread is the first holder of its elements (every replica digit 0);
        ``None`` when the layout has no replication."""
        pred = None
        for g in split_lanes(layout_digits(layout)):
            if g.kind != "replica":
                continue
            zero = self.kb.setp("eq", self.thread_digit(g), 0, type=U32)
            pred = zero if pred is None else self.kb.and_(pred, zero, type=PRED)
        return pred

    # -- shared scratch ------------------------------------------------------------------------

    def scratch(self, nbytes: int) -> int:
        """The byte offset of a scratch area of ``nbytes`` (shared by every conversion and
        cross-warp reduction; each use starts with a barrier)."""
        self.scratch_bytes = max(self.scratch_bytes, (nbytes + 15) // 16 * 16)
        return self.plan.scratch_offset

    def barrier(self) -> None:
        self.kb.bar_sync()


def _c_name(name: str) -> str:
    return name.replace(".", "_")


def _defined_here(there: tuple[list, ...], here: tuple[list, ...]) -> bool:
    """Whether a value emitted with the blocks ``there`` open is defined with ``here`` open:
    every block closed since is the body of a loop that certainly ran."""
    k = 0  # the deepest block open both then and now
    while k + 1 < min(len(there), len(here)) and there[k + 1] is here[k + 1]:
        k += 1
    for outer, inner in zip(there[k:], there[k + 1:]):
        loop = next(s for s in outer if _holds(s, inner))
        if not (isinstance(loop, For) and loop.body is inner and isinstance(loop.start, int)
                and isinstance(loop.stop, int) and loop.start < loop.stop):
            return False
    return True


def _holds(stmt: object, block: list) -> bool:
    """Whether ``block`` is one of the statement lists of ``stmt`` (an if, a loop)."""
    return any(getattr(stmt, name, None) is block
               for name in ("then_body", "else_body", "body", "cond_body"))

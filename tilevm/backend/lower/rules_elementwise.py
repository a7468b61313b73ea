"""Lowering of the elementwise operations: arithmetic, comparisons, ``where``, ``fma``, ``cast``,
``copy`` — on tiles (a rolled loop over each thread's elements) and on block-uniform scalars.

An operand of another shape is broadcast: layout inference gave it the result's layout reduced
over the broadcast dimensions, so each thread holds the operand elements it needs, at the local
index made of the result's local digits along the kept dimensions (:func:`operand_local`).
"""

from __future__ import annotations

from collections.abc import Callable

from tilevm.backend.lower import scalar_math as sm
from tilevm.backend.lower import values as vals
from tilevm.backend.lower.context import LoweringContext, rule
from tilevm.backend.lower.dtype_map import is_narrow_float, is_packed, storage_type
from tilevm.ir.layout.digits import layout_digits
from tilevm.ir.layout.register import RegisterLayout
from tilevm.ir.thread.types import S32, U32
from tilevm.ir.thread.values import Const, Index, Operand
from tilevm.ir.tile.ops import BINARY_OPS, COMPARE_OPS, UNARY_OPS
from tilevm.ir.tile.program import Instr, Var
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
        t = storage_type(dt) if not is_packed(dt) else U32
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
    readers = [_reader(ctx, s, k) for k in range(len(s.args))]
    compute = _compute(ctx, s)
    tile = ctx.new_tile(r)
    with vals.locals_loop(kb, tile.count) as i:
        vals.write(kb, tile, i, compute([read(i) for read in readers]))
    ctx.bind(r, tile)


def _to_compute(kb: object, value: Operand, dt: object) -> Operand:
    """The compute form of an element's storage form (a fused intermediate)."""
    if is_narrow_float(dt):
        return sm.decode_narrow(kb, value, dt)
    if is_packed(dt) and dt.kind == "int":
        return kb.bfe(value, 0, dt.nbits, type=S32)  # a code or a normalized value alike
    return value


def lower_fused(ctx: LoweringContext, run: list[Instr], needed: Callable[[str], bool]) -> None:
    """A run of elementwise instructions whose results share one layout, in one loop over each
    thread's elements: results used only later in the run stay registers of the loop body (no
    register array, no second loop); ``needed(name)`` says which results are written out."""
    kb = ctx.kb
    count = run[0].result.type.layout.local_size
    inside = {s.result.name for s in run}
    tiles = {s.result.name: ctx.new_tile(s.result) for s in run if needed(s.result.name)}
    readers = {(id(s), k): _reader(ctx, s, k) for s in run for k, a in enumerate(s.args)
               if not (isinstance(a, Var) and a.name in inside)}
    computes = [_compute(ctx, s) for s in run]
    with vals.locals_loop(kb, count) as i:
        made: dict[str, Operand] = {}
        for s, compute in zip(run, computes, strict=True):
            args = []
            for k, a in enumerate(s.args):
                if (id(s), k) in readers:
                    args.append(readers[(id(s), k)](i))
                    continue
                moved = s.op in _MOVES and not (s.op == "where" and k == 0)
                value = made[a.name]
                args.append(value if moved else _to_compute(kb, value, a.type.dtype))
            made[s.result.name] = compute(args)
            if s.result.name in tiles:
                vals.write(kb, tiles[s.result.name], i, made[s.result.name])
    for s in run:
        if s.result.name in tiles:
            ctx.bind(s.result, tiles[s.result.name])


def _stored(ctx: LoweringContext, value: Operand, dt: object) -> Operand:
    """A scalar result in a register of its own (a constant operand may have come through)."""
    if isinstance(value, Const):
        return value
    t = storage_type(dt) if not is_packed(dt) else value.type
    return ctx.kb.mov(value, t)

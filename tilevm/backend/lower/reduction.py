"""``reduce`` (along one axis or several): in a fixed order that the layout decides (DESIGN §3).

1. Each thread combines its own elements of each output element, in increasing local index,
   starting from the operation's identity (−0.0 for a float sum, so that a sum of −0.0 stays
   −0.0; NaN for a float max or min, which PTX's ``max``/``min`` ignore).
2. The lanes of a warp that hold parts of one output combine with ``shfl.sync.bfly`` butterflies,
   in increasing lane distance; afterwards every one of them holds the same value.
3. Where warps hold parts of one output, each warp's first holders write their value to shared
   memory, and after a barrier every holder combines the warps' values in increasing warp order.

Integer sums, ``max`` and ``min`` are exact in any order. Float sums are the bounded class: they
accumulate in f32 (f64 for f64) and round once to the type at the end, so their error is within
``(n − 1)·u·Σ|x|`` of the exact sum the interpreter gives.

A combine function (``op = "custom"``, :func:`lower_custom_reduce`) has no identity: each thread
starts from its first element of each output; a butterfly applies the function with the lower
lane's value first, on both lanes, so that they keep holding the same value; the warps' values
are combined starting from warp 0's. Values stay in the reduction's dtype (its scalar register
form) and every application is the function's own instructions, lowered as the scalar
elementwise operations they are, so each step rounds as the interpreter's does; only the order
differs (DESIGN §3).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from tilevm.backend.lower import scalar_math as sm
from tilevm.backend.lower import values as vals
from tilevm.backend.lower.context import RULES, LoweringContext
from tilevm.backend.lower.dtype_map import compute_type, is_packed, scalar_register_type
from tilevm.backend.lower.rules_elementwise import operand_local
from tilevm.backend.lower.warp_shuffle import shuffle
from tilevm.ir.dtypes import DType
from tilevm.ir.layout import algebra
from tilevm.ir.layout.digits import layout_digits, split_lanes
from tilevm.ir.layout.register import RegisterLayout
from tilevm.ir.thread.types import B32, F16, F32, F64, S32, U32, ScalarType
from tilevm.ir.thread.values import Const, Operand
from tilevm.ir.tile.ops import ARG_REDUCE_OPS, CUSTOM_REDUCE, reduce_axes
from tilevm.ir.tile.program import Combine, Instr

__all__ = ["accumulator_type", "apply_combine", "axis_digits", "combine_from_first",
           "element_value", "flat_position",
           "lower_custom_reduce", "lower_reduce", "warp_coordinate", "widen", "writer_predicate"]


def accumulator_type(dt: DType, op: str) -> ScalarType:
    """The type partial results are combined in."""
    if dt.is_integer:
        return compute_type(dt)
    if dt.name == "f64":
        return F64
    if op != "sum" and dt.name == "f16":
        return F16
    return F32


def _identity(dt: DType, op: str, t: ScalarType) -> Const:
    if dt.is_float:
        return Const.of(-0.0 if op == "sum" else float("nan"), t)
    if op == "sum":
        return Const.of(0, t)
    return Const.of(int(dt.min) if op == "max" else int(dt.max), t)


def _combine(ctx: LoweringContext, op: str, a: Operand, b: Operand, t: ScalarType) -> Operand:
    kb = ctx.kb
    if op == "sum":
        return kb.add(a, b, type=t)
    return (kb.max if op == "max" else kb.min)(a, b, type=t)


def widen(ctx: LoweringContext, x: Operand, dt: DType, t: ScalarType) -> Operand:
    """An element's compute value in the accumulator type (exact)."""
    if x.type == t or dt.is_integer:
        return x
    return sm.to_f32(ctx.kb, x, dt) if t == F32 else x


def axis_digits(layout: RegisterLayout,
                 axes: tuple[int, ...]) -> tuple[list[int], list[tuple[int, int]]]:
    """The lane distances (increasing) and the warp digits (stride, size; least significant
    first) of the thread digits along ``axes``."""
    distances, warps = [], []
    for g in split_lanes(layout_digits(layout)):
        if g.kind != "thread" or g.dim not in axes:
            continue
        if g.in_lanes:
            distances += [g.stride << b for b in range(g.size.bit_length() - 1)]
        else:
            warps.append((g.stride, g.size))
    return sorted(distances), sorted(warps)


def lower_reduce(ctx: LoweringContext, s: Instr) -> tuple[vals.TileValue | None, Operand | None]:
    """Lower ``reduce``; returns the result tile, or for a rank-1 operand the scalar (storage
    form)."""
    if s.attr("op") in ARG_REDUCE_OPS:
        # imported here: arg_reduction builds on this module's helpers
        from tilevm.backend.lower.arg_reduction import lower_arg_reduce

        return lower_arg_reduce(ctx, s)
    if s.attr("op") == CUSTOM_REDUCE:
        return lower_custom_reduce(ctx, s)
    kb = ctx.kb
    x = ctx.tile(s.args[0])
    op, axes = s.attr("op"), reduce_axes(s.attr("axis"))
    dt = x.dtype
    layout = x.layout
    out_layout = algebra.reduce(layout, axes, keepdims=bool(s.attr("keepdims")))
    t = accumulator_type(dt, op)
    count = out_layout.local_size
    acc = kb.array(t, count, name="acc")
    with vals.locals_loop(kb, count, "j") as j:
        kb.mov(_identity(dt, op, t), t, out=acc[j])
    # 1. this thread's elements, in increasing local index
    keep_shape = tuple(1 if d in axes else n for d, n in enumerate(layout.shape))
    with vals.locals_loop(kb, x.count) as i:
        j = operand_local(layout, keep_shape, i)
        value = widen(ctx, vals.read(kb, x, i), dt, t)
        kb.mov(_combine(ctx, op, acc[j], value, t), t, out=acc[j])
    distances, warps = axis_digits(layout, axes)
    # 2. butterflies across the lanes holding one output, nearest first
    for distance in distances:
        with vals.locals_loop(kb, count, "j") as j:
            other = shuffle(ctx.kb, acc[j], "bfly", distance)
            kb.mov(_combine(ctx, op, acc[j], other, t), t, out=acc[j])
    # 3. across warps, through shared memory, in increasing warp order
    if warps:
        _across_warps(ctx, s, layout, out_layout, acc, warps, t,
                      lambda a, b: _combine(ctx, op, a, b, t), _identity(dt, op, t))
    return _finish(ctx, s, acc, out_layout, dt, op, t)


def _across_warps(ctx: LoweringContext, s: Instr, layout: RegisterLayout,
                  out_layout: RegisterLayout, acc: object, warps: list[tuple[int, int]],
                  t: ScalarType, combine: Callable[[Operand, Operand], Operand],
                  identity: Operand | None) -> None:
    """Step 3: each warp's value to shared memory, then every holder combines them in
    increasing warp order with ``combine``, from ``identity`` or, without one, from warp 0's
    value."""
    kb = ctx.kb
    nwarps = math.prod(size for _, size in warps)
    count = out_layout.local_size
    nbytes = t.bits // 8
    base = kb.add(ctx.smem, ctx.scratch(math.prod(out_layout.shape) * nwarps * nbytes), type=U32)
    coordinate = warp_coordinate(ctx, layout, warps)
    writer = writer_predicate(ctx, layout, reduce_axes(s.attr("axis")))
    ctx.barrier()
    with vals.locals_loop(kb, count, "j", out_layout) as j:
        flat = flat_position(ctx, out_layout, j)
        slot = kb.mul(kb.add(kb.mul(flat, nwarps, type=U32), coordinate, type=U32), nbytes,
                      type=U32)
        kb.st("shared", kb.add(base, slot, type=U32), acc[j], guard=writer)
    ctx.barrier()
    with vals.locals_loop(kb, count, "j", out_layout) as j:
        first = kb.add(base, kb.mul(kb.mul(flat_position(ctx, out_layout, j), nwarps, type=U32),
                                    nbytes, type=U32), type=U32)
        kb.mov(kb.ld("shared", first, t) if identity is None else identity, t, out=acc[j])
        with kb.for_(0 if identity is not None else 1, nwarps, unroll=True, name="w") as w:
            part = kb.ld("shared", kb.add(first, kb.mul(w, nbytes, type=S32), type=U32), t)
            kb.mov(combine(acc[j], part), t, out=acc[j])


def lower_custom_reduce(ctx: LoweringContext, s: Instr
                        ) -> tuple[vals.TileValue | None, Operand | None]:
    """Lower ``reduce {op = "custom"}`` in the order of the module docstring, applying the
    ``combine`` function (:func:`apply_combine`) in place of an operation."""
    kb = ctx.kb
    x = ctx.tile(s.args[0])
    combine, axes = s.attr("combine"), reduce_axes(s.attr("axis"))
    dt, layout = x.dtype, x.layout
    out_layout = algebra.reduce(layout, axes, keepdims=bool(s.attr("keepdims")))
    t = scalar_register_type(dt)
    count = out_layout.local_size
    acc = kb.array(t, count, name="acc")
    with vals.locals_loop(kb, count, "j") as j:
        kb.mov(Const.of(0, t), t, out=acc[j])  # overwritten by the first element: never read
    # 1. this thread's elements, in increasing local index, starting from the first of each
    keep_shape = tuple(1 if d in axes else n for d, n in enumerate(layout.shape))
    with vals.locals_loop(kb, x.count) as i:
        j = operand_local(layout, keep_shape, i)
        value = element_value(kb, x, i)
        kb.mov(combine_from_first(ctx, combine, layout, axes, i, acc[j], value), t, out=acc[j])
    distances, warps = axis_digits(layout, axes)
    # 2. butterflies across the lanes holding one output, nearest first, the lower lane's value
    # as the function's first argument on both lanes (bit `distance` of tid.x is the lane's)
    for distance in distances:
        lower = kb.setp("eq", kb.and_(ctx.tid, distance, type=B32), 0, type=U32)
        with vals.locals_loop(kb, count, "j") as j:
            other = shuffle(ctx.kb, acc[j], "bfly", distance)
            low = kb.selp(acc[j], other, lower, type=t)
            high = kb.selp(other, acc[j], lower, type=t)
            kb.mov(apply_combine(ctx, combine, low, high), t, out=acc[j])
    # 3. across warps, through shared memory, from warp 0's value in increasing warp order
    if warps:
        _across_warps(ctx, s, layout, out_layout, acc, warps, t,
                      lambda a, b: apply_combine(ctx, combine, a, b), None)
    return accumulators_result(ctx, s, acc, out_layout)


def element_value(kb: object, x: vals.TileValue, i: vals.Index) -> Operand:
    """Element ``i`` of ``x`` in the form a scalar of its dtype takes
    (:func:`~tilevm.backend.lower.dtype_map.scalar_register_type`)."""
    if is_packed(x.dtype):
        return vals.from_raw(kb, vals.read_raw(kb, x, i), x.dtype)
    return vals.read_storage(kb, x, i)


def combine_from_first(ctx: LoweringContext, combine: Combine, layout: RegisterLayout,
                       axes: tuple[int, ...], i: vals.Index, acc: Operand,
                       value: Operand) -> Operand:
    """``combine(acc, value)`` for this thread's element ``i``, or ``value`` itself where ``i``
    is the thread's first element along ``axes`` of its line (its local digits along ``axes``
    all 0: a constant once the loop over the elements is unrolled), so that no identity is
    needed (``acc`` must hold some value, which is then not used)."""
    kb = ctx.kb
    along: vals.Index = 0
    for g in layout_digits(layout):
        if g.kind == "local" and g.dim in axes and layout.shape[g.dim] != 1:
            along = vals.plus(vals.scale(along, g.size), vals.digit(i, g.stride, g.size))
    if isinstance(along, int) and along == 0:
        return value  # one element per thread along the axes: always the first
    combined = apply_combine(ctx, combine, acc, value)
    first = kb.setp("eq", vals.index_reg(kb, along), 0, type=S32)
    return kb.selp(value, combined, first, type=value.type)


def apply_combine(ctx: LoweringContext, combine: Combine, a: Operand, b: Operand) -> Operand:
    """``combine(a, b)`` on registers in the scalar form of its dtype: its instructions lowered
    by the scalar elementwise rules, as they would be in the kernel's body; the result in the
    same form."""
    dt = combine.params[0].type.dtype
    for param, value in zip(combine.params, (a, b), strict=True):
        ctx.bind(param, vals.ScalarValue(dt, value))
    for st in combine.body:
        RULES[st.op](ctx, st)
    result = ctx.value(combine.result)
    assert isinstance(result, vals.ScalarValue), combine.result
    return result.reg


def warp_coordinate(ctx: LoweringContext, layout: RegisterLayout,
                    warps: list[tuple[int, int]]) -> Operand:
    """This warp's coordinate (u32) along the reduced axes' warp digits ``warps`` (as
    :func:`axis_digits` gives them), least significant first."""
    kb = ctx.kb
    coordinate: Operand = Const.of(0, U32)
    scale = 1
    for stride, size in warps:
        g = next(g for g in split_lanes(layout_digits(layout))
                 if g.kind == "thread" and g.stride == stride and g.size == size)
        term = kb.mul(ctx.thread_digit(g), scale, type=U32)
        coordinate = term if isinstance(coordinate, Const) else kb.add(coordinate, term,
                                                                       type=U32)
        scale *= size
    return coordinate


def writer_predicate(ctx: LoweringContext, layout: RegisterLayout,
                     axes: tuple[int, ...]) -> Operand | None:
    """Whether this lane writes its warp's partial results: one writer per output and warp, the
    lane whose lane digits along ``axes`` and replica digits are 0 (``None``: every lane)."""
    kb = ctx.kb
    writer = None
    for g in split_lanes(layout_digits(layout)):
        if g.kind == "replica" or (g.kind == "thread" and g.dim in axes and g.in_lanes):
            zero = kb.setp("eq", ctx.thread_digit(g), 0, type=U32)
            writer = zero if writer is None else kb.and_(writer, zero, type="pred")
    return writer


def flat_position(ctx: LoweringContext, layout: RegisterLayout, j: object) -> Operand:
    """The row-major position of this thread's output element ``j``."""
    kb = ctx.kb
    index = ctx.element_index(layout, j)
    flat: Operand = Const.of(0, U32)
    for d, i in enumerate(index):
        rest = 1
        for n in layout.shape[d + 1:]:
            rest *= n
        term = i if rest == 1 else kb.mul(i, rest, type=U32)
        flat = term if isinstance(flat, Const) else kb.add(flat, term, type=U32)
    return flat


def rounded(kb: object, v: Operand, dt: DType, t: ScalarType) -> Operand:
    """An accumulator ``v`` of type ``t`` as a ``dt`` element's storage value: integers
    normalized to their width, narrower floats rounded once from f32."""
    if dt.is_integer:
        return sm.normalize(kb, v, dt)
    if t == F32 and dt.name != "f32":
        return sm.from_f32(kb, v, dt)
    return v


def accumulators_result(ctx: LoweringContext, s: Instr, acc: object,
                        out_layout: RegisterLayout,
                        convert: Callable[[Operand], Operand] = lambda v: v
                        ) -> tuple[vals.TileValue | None, Operand | None]:
    """The result of a reduction from its accumulators ``acc`` (one per local element of
    ``out_layout``), each through ``convert``: a scalar for rank 0, else a fresh tile."""
    kb = ctx.kb
    if out_layout.rank == 0:
        value = convert(acc[0])
        return None, kb.mov(value, value.type)
    tile = ctx.new_tile(s.result)
    with vals.locals_loop(kb, tile.count, "j") as j:
        vals.write(kb, tile, j, convert(acc[j]))
    return tile, None


def _finish(ctx: LoweringContext, s: Instr, acc: object, out_layout: RegisterLayout,
            dt: DType, op: str, t: ScalarType) -> tuple[vals.TileValue | None, Operand | None]:
    """The accumulators rounded once into the result's storage."""
    return accumulators_result(ctx, s, acc, out_layout, lambda v: rounded(ctx.kb, v, dt, t))


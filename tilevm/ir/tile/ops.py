"""The operations of Tile IR and their typing rules.

Each operation is an :class:`OpDef`: its operand names, its attributes with defaults, and an
``infer`` function from operand types and attributes to the result type (``None`` for operations
without a value). ``infer`` raises :class:`TileTypeError` naming the operation and the operand;
the verifier and the DSL share it, so a program the DSL accepts is one the verifier accepts.

Operand conventions for the memory operations (``offsets`` has one operand per dimension of the
tensor, ``mask`` is present only when the ``mask`` attribute is ``"tile"``):

- an offset is an integer scalar (element ``i`` of the tile along that dimension is element
  ``offset + i`` of the tensor) or, for ``load``, ``store`` and ``atomic`` of a tile, an *index
  tile*: an i32 register tile broadcastable to the tile's shape, of the tile's size along its own
  dimension, whose element at a tile position is the absolute tensor index along that dimension
  there (a gather or a scatter). The bounds check covers indices from index tiles as any other;
  with ``mask="tile"`` and an index tile an element is accessed only where the mask holds *and*
  it is inside the tensor. A ``store`` whose index tiles give one element twice writes one of
  the values (which one is unspecified); ``atomic`` applies every element's operation.

- ``load(src, *offsets, [mask]) {shape, mask, other}``: a register tile from global or shared
  memory (``shape = []``: one element, as a block-uniform scalar). ``mask`` is ``"bounds"``
  (elements outside the tensor read ``other``), ``"none"`` (unchecked: every element must be
  inside) or ``"tile"`` (a ``u1`` tile of ``shape``).
- ``store(dst, value, *offsets, [mask]) {mask}`` (a scalar ``value`` stores one element);
  ``copy_async(dst_shared, src, *offsets, [mask]) {mask}`` (the tile ``dst_shared`` is filled
  from ``src``; masked elements become zero);
  ``atomic(dst, value, *offsets, [mask]) {op, mask}`` returns the old values.

What each operation computes (the reference interpreter, :mod:`tilevm.backend.interp`, is the
definition; DESIGN §3 is the contract):

- float arithmetic (``add``… ``fma``, ``sqrt``, ``exp``…) is computed exactly (or, for the
  transcendental functions, in float64) and rounded once to the dtype, to nearest even; ``floor``,
  ``ceil`` and ``rint`` give integral values of the operand's float type, ``rint`` to nearest
  with ties to even (PTX ``cvt.rni``, numpy ``rint``); f16, bf16
  and f32 overflow to inf; ``min``/``max`` return the other operand when one is NaN and order
  −0 below +0 (PTX);
- integer arithmetic wraps modulo 2^nbits; ``floordiv`` and ``mod`` round toward −∞ (Python);
  shift amounts are unsigned (as PTX reads them): an amount of the width or more, or a negative
  one, gives 0 (or −1 for ``shr`` of a negative value);
- ``cast`` rounds to nearest even into floats (saturating into types of 8 bits or fewer), truncates
  toward zero and saturates from floats into integers (NaN → 0), wraps between integers, and gives
  ``x != 0`` into ``u1``;
- ``dot {precision}`` follows :func:`dot_rule` of its operands' dtypes (which may differ: i8/u8,
  or the two fp8 types) and ``precision`` (``"ieee"``, the default, or ``"tf32"`` for f32
  operands): per K-chunk of the rule (16 for f16/bf16, 32 for the 8-bit types, 8 for f32 with
  ``"tf32"``, after each operand is rounded as PTX ``cvt.rna.tf32.f32`` does) the exact products
  summed in increasing k plus the accumulator, rounded once to the accumulator's type (f32, or
  f16 for f16 operands); f32 ``"ieee"`` is a chain of ``fma`` in increasing k, each rounded once;
  integer dots wrap modulo 2^32 (``mma`` without ``.satfinite``);
- ``fence {scope}`` orders the block's memory accesses before it before those after it, as seen
  by other blocks (``"gpu"``) or the host too (``"sys"``): a block barrier then PTX
  ``fence.acq_rel``; blocks that hand data over through global memory (a counter taken with an
  atomic, then a load of what other blocks wrote) put one on each side. The interpreter runs
  blocks one after another, so it has nothing to do;
- ``store`` into a tensor of fewer than 8 bits changes the bits of the stored elements only: a
  byte it shares with elements it does not store (a neighbouring block's, a masked one's, one
  outside the tile) is updated with an atomic read-modify-write, so blocks storing neighbouring
  sub-byte tiles never lose each other's bits, whatever their order or concurrency (DESIGN §3);
- ``reduce {op, axis, keepdims}`` reduces along one axis or a tuple of increasing axes
  (:func:`reduce_axes`); ``sum`` of floats is the exact sum rounded once (the lowering's sum, in
  an order its layout fixes, is within the bound of DESIGN §3), of integers wraps; ``max``/``min``
  ignore NaN unless all are NaN, and order −0 below +0; ``argmax``/``argmin`` give the i32
  row-major position, among the reduced axes, of the first largest/smallest element (NaN counts
  as the extreme, as numpy's; −0 and +0 tie); ``custom`` applies the ``combine`` function
  (:class:`~tilevm.ir.tile.program.Combine`) left to right: ``fn(…fn(fn(x0, x1), x2)…, xn)``
  over the reduced elements in increasing (row-major) index, each step rounded as its
  instructions are. The lowering combines in the order its layout fixes (each thread its own
  elements in increasing local index, then lane butterflies, the lower lane's value first, then
  warps in increasing order), so it equals this exactly when ``fn`` is associative and
  commutative on the values (integer and bit operations, ``min``/``max``) and is in the bounded
  class of DESIGN §3 otherwise (float combines: docs/numeric-contract.md);
- ``scan {op, axis, exclusive}`` (``op`` ``sum``, ``prod``, ``max``, ``min``): element ``i``
  along ``axis`` combines elements ``0…i`` (``0…i−1`` when ``exclusive``; element 0 is then the
  identity: 0, 1, or for ``max``/``min`` the type's lowest/highest value, −inf/+inf where it has
  them). Integer scans wrap, ``max``/``min`` as ``reduce``'s are exact; a float ``sum`` prefix
  is its exact sum rounded once and a float ``prod`` prefix the float64 running product rounded
  once (the lowering's, accumulated in f32 left to right, is within the bound of DESIGN §3);
  ``custom`` (inclusive only) gives at ``i`` the ``combine`` function applied left to right over
  elements ``0…i``, as ``reduce``'s; the lowering applies it in the same order, so exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tilevm.ir.dtypes import DType, dtype
from tilevm.ir.tile.types import ScalarType, TensorType, Type

__all__ = [
    "ATOMIC_DTYPES",
    "BINARY_OPS",
    "COMBINE_OPS",
    "COMPARE_OPS",
    "CUSTOM_REDUCE",
    "DOT_PRECISIONS",
    "DOT_RULES",
    "OPS",
    "UNARY_OPS",
    "DotRule",
    "OpDef",
    "TileTypeError",
    "broadcast_shapes",
    "check_combine",
    "dot_rule",
    "dot_rule_of",
    "infer_type",
    "is_index_tile",
]


class TileTypeError(Exception):
    """An ill-typed instruction: ``op`` and, when one operand is at fault, its index."""

    def __init__(self, op: str, message: str, operand: int | None = None) -> None:
        super().__init__(f"{op}: {message}")
        self.op = op
        self.message = message
        self.operand = operand


@dataclass(frozen=True)
class OpDef:
    """One operation: name, attributes (name → default; ``REQUIRED`` when none) and typing rule."""

    name: str
    infer: Callable[[list[Type], dict[str, Any]], Type | None]
    attrs: dict[str, Any] = field(default_factory=dict)
    has_effects: bool = False


REQUIRED = object()
OPS: dict[str, OpDef] = {}

UNARY_OPS = ("neg", "abs", "exp", "exp2", "log", "log2", "sqrt", "rsqrt", "sin", "cos", "tanh",
             "floor", "ceil", "rint", "invert")
FLOAT_ONLY_UNARY = ("exp", "exp2", "log", "log2", "sqrt", "rsqrt", "sin", "cos", "tanh", "floor",
                    "ceil", "rint")
BINARY_OPS = ("add", "sub", "mul", "div", "floordiv", "mod", "min", "max", "and", "or", "xor",
              "shl", "shr")
INT_ONLY_BINARY = ("floordiv", "mod", "and", "or", "xor", "shl", "shr")
COMPARE_OPS = ("lt", "le", "gt", "ge", "eq", "ne")
REDUCE_OPS = ("sum", "max", "min")
# reduce {op = "custom", combine = <Combine>}: a combine function written in the DSL
CUSTOM_REDUCE = "custom"
# what a combine function's body may do: scalar elementwise operations
COMBINE_OPS = (*UNARY_OPS, *BINARY_OPS, *COMPARE_OPS, "where", "fma", "cast", "copy")
# reductions to the (i32) index of the extreme element along the reduced axes
ARG_REDUCE_OPS = ("argmax", "argmin")
SCAN_OPS = ("sum", "prod", "max", "min")
ATOMIC_OPS = ("add", "max", "min", "exch", "and", "or", "xor")
# What PTX's atom/red offer (PTX ISA §9.7.13.5): add on f32, f16 (and f16x2), bf16, f64 and the
# 32/64-bit integers; min/max on integers; bitwise ops and exch on 32/64-bit bit types.
ATOMIC_DTYPES = {
    "add": ("f32", "f16", "bf16", "f64", "i32", "u32", "u64"),
    "max": ("i32", "u32", "i64", "u64"),
    "min": ("i32", "u32", "i64", "u64"),
    "exch": ("i32", "u32", "i64", "u64", "f32"),
    "and": ("i32", "u32", "i64", "u64"),
    "or": ("i32", "u32", "i64", "u64"),
    "xor": ("i32", "u32", "i64", "u64"),
}
MASK_MODES = ("bounds", "none", "tile")


def _register(name: str, infer: Callable, effects: bool = False, **attrs: Any) -> None:
    OPS[name] = OpDef(name, infer, attrs, effects)


def infer_type(op: str, args: list[Type], attrs: dict[str, Any]) -> Type | None:
    """The result type of ``op`` on operands of ``args``' types, attributes defaulted.

    Raises :class:`TileTypeError` for an unknown operation, a missing attribute or ill-typed
    operands.
    """
    if op not in OPS:
        raise TileTypeError(op, "unknown operation")
    d = OPS[op]
    full = {}
    for key, default in d.attrs.items():
        if key in attrs:
            full[key] = attrs[key]
        elif default is REQUIRED:
            raise TileTypeError(op, f"missing attribute {key!r}")
        else:
            full[key] = default
    extra = set(attrs) - set(d.attrs)
    if extra:
        raise TileTypeError(op, f"unknown attribute {sorted(extra)[0]!r}")
    return d.infer(list(args), full)


# -- helpers ---------------------------------------------------------------------------------------


def _fail(op: str, message: str, operand: int | None = None) -> None:
    raise TileTypeError(op, message, operand)


def _shape(t: Type) -> tuple:
    return t.shape if isinstance(t, TensorType) else ()


def _dt(t: Type) -> DType:
    return t.dtype


def _is_reg(t: Type) -> bool:
    return isinstance(t, ScalarType) or t.scope == "reg"


def broadcast_shapes(op: str, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    """numpy's broadcasting of tile shapes; ``TileTypeError`` naming both shapes when they clash."""
    rank = max((len(s) for s in shapes), default=0)
    out = [1] * rank
    for s in shapes:
        padded = (1,) * (rank - len(s)) + tuple(s)
        for i, n in enumerate(padded):
            if n != 1 and out[i] not in (1, n):
                shown = " and ".join(f"[{', '.join(map(str, x))}]" for x in shapes)
                _fail(op, f"shapes {shown} do not broadcast")
            if n != 1:
                out[i] = n
    return tuple(out)


def _elementwise_result(op: str, args: list[Type], dt: DType) -> Type:
    for i, a in enumerate(args):
        if not _is_reg(a):
            _fail(op, f"operand {i} is a {a.scope} tensor; load it into registers first", i)
    if all(isinstance(a, ScalarType) for a in args):
        return ScalarType(dt)
    return TensorType(dt, broadcast_shapes(op, [_shape(a) for a in args]))


def _same_dtype(op: str, args: list[Type], names: tuple[str, ...]) -> DType:
    first = args[0].dtype
    for i, a in enumerate(args[1:], 1):
        if a.dtype != first:
            _fail(op, f"dtype mismatch: {names[0]} is {first.name} but {names[i]} is "
                      f"{a.dtype.name}; convert one with cast (values are never promoted "
                      "implicitly)", i)
    return first


def _arity(op: str, args: list, n: int) -> None:
    if len(args) != n:
        _fail(op, f"takes {n} operand{'s' if n != 1 else ''}, got {len(args)}")


def _static_shape(op: str, shape: Any, what: str = "shape") -> tuple[int, ...]:
    if not isinstance(shape, tuple) or not all(isinstance(n, int) and n > 0 for n in shape):
        _fail(op, f"{what} must be a tuple of positive integers, got {shape!r}")
    return shape


def _scalar_int(op: str, t: Type, i: int, what: str) -> None:
    if not isinstance(t, ScalarType) or not t.dtype.is_integer:
        _fail(op, f"{what} must be an integer scalar, got {t}", i)


# -- creation and indices --------------------------------------------------------------------------


def _full(args: list[Type], a: dict) -> Type:
    _arity("full", args, 1)
    shape = _static_shape("full", a["shape"])
    dt = dtype(a["dtype"])
    if not isinstance(args[0], ScalarType) or args[0].dtype != dt:
        _fail("full", f"the fill value must be a {dt.name} scalar, got {args[0]}", 0)
    return TensorType(dt, shape)


def _arange(args: list[Type], a: dict) -> Type:
    _arity("arange", args, 0)
    if not (isinstance(a["start"], int) and isinstance(a["stop"], int) and a["stop"] > a["start"]):
        _fail("arange", f"needs integers start < stop, got {a['start']!r}, {a['stop']!r}")
    return TensorType(dtype("i32"), (a["stop"] - a["start"],))


def _axis_index(op: str) -> Callable:
    def infer(args: list[Type], a: dict) -> Type:
        _arity(op, args, 0)
        if a["axis"] not in (0, 1, 2):
            _fail(op, f"axis must be 0, 1 or 2, got {a['axis']!r}")
        return ScalarType(dtype("i32"))

    return infer


_register("full", _full, shape=REQUIRED, dtype=REQUIRED)
_register("arange", _arange, start=REQUIRED, stop=REQUIRED)
_register("block_idx", _axis_index("block_idx"), axis=REQUIRED)
_register("grid_dim", _axis_index("grid_dim"), axis=REQUIRED)


# -- elementwise -----------------------------------------------------------------------------------


def _unary(op: str) -> Callable:
    def infer(args: list[Type], a: dict) -> Type:
        _arity(op, args, 1)
        dt = args[0].dtype
        if op in FLOAT_ONLY_UNARY and not dt.is_float:
            _fail(op, f"needs a float operand, got {dt.name}; cast it first", 0)
        if op == "invert" and dt.is_float:
            _fail(op, f"needs an integer or u1 operand, got {dt.name}", 0)
        if op == "neg" and dt.kind == "uint":
            _fail(op, f"cannot negate unsigned {dt.name}", 0)
        return _elementwise_result(op, args, dt)

    return infer


def _binary(op: str) -> Callable:
    def infer(args: list[Type], a: dict) -> Type:
        _arity(op, args, 2)
        dt = _same_dtype(op, args, ("lhs", "rhs"))
        if op in INT_ONLY_BINARY and dt.is_float:
            _fail(op, f"needs integer operands, got {dt.name}", 0)
        return _elementwise_result(op, args, dt)

    return infer


def _compare(op: str) -> Callable:
    def infer(args: list[Type], a: dict) -> Type:
        _arity(op, args, 2)
        _same_dtype(op, args, ("lhs", "rhs"))
        return _elementwise_result(op, args, dtype("u1"))

    return infer


def _where(args: list[Type], a: dict) -> Type:
    _arity("where", args, 3)
    if args[0].dtype.name != "u1":
        _fail("where", f"the condition must be u1 (a comparison), got {args[0].dtype.name}", 0)
    dt = _same_dtype("where", args[1:], ("x", "y"))
    return _elementwise_result("where", args, dt)


def _fma(args: list[Type], a: dict) -> Type:
    _arity("fma", args, 3)
    dt = _same_dtype("fma", args, ("a", "b", "c"))
    if not dt.is_float:
        _fail("fma", f"needs float operands, got {dt.name}", 0)
    return _elementwise_result("fma", args, dt)


def _cdiv(args: list[Type], a: dict) -> Type:
    _arity("cdiv", args, 2)
    for i, t in enumerate(args):
        _scalar_int("cdiv", t, i, f"operand {i}")
    return ScalarType(_same_dtype("cdiv", args, ("a", "b")))


for _op in UNARY_OPS:
    _register(_op, _unary(_op))
for _op in BINARY_OPS:
    _register(_op, _binary(_op))
for _op in COMPARE_OPS:
    _register(_op, _compare(_op))
_register("where", _where)
_register("copy", lambda args, a: (_arity("copy", args, 1), args[0])[1])
_register("fma", _fma)
_register("cdiv", _cdiv)


# -- conversions -----------------------------------------------------------------------------------


def _cast(args: list[Type], a: dict) -> Type:
    _arity("cast", args, 1)
    dt = dtype(a["dtype"])
    src = args[0]
    if isinstance(src, TensorType) and src.scope != "reg":
        _fail("cast", f"operand is a {src.scope} tensor; load it first", 0)
    return ScalarType(dt) if isinstance(src, ScalarType) else TensorType(dt, src.shape)


def _bitcast(args: list[Type], a: dict) -> Type:
    _arity("bitcast", args, 1)
    dt = dtype(a["dtype"])
    src = args[0]
    if isinstance(src, ScalarType):
        if src.dtype.nbits != dt.nbits:
            _fail("bitcast", f"a {src.dtype.name} scalar has {src.dtype.nbits} bits, "
                             f"{dt.name} has {dt.nbits}", 0)
        return ScalarType(dt)
    if src.scope != "reg" or not src.shape:
        _fail("bitcast", "needs a register tile of rank >= 1", 0)
    bits = src.shape[-1] * src.dtype.nbits
    if bits % dt.nbits:
        _fail("bitcast", f"the last dimension holds {bits} bits ({src.shape[-1]} x "
                         f"{src.dtype.name}), not a multiple of {dt.name}'s {dt.nbits}", 0)
    return TensorType(dt, (*src.shape[:-1], bits // dt.nbits))


def _view(args: list[Type], a: dict) -> Type:
    _arity("view", args, 1)
    dt = dtype(a["dtype"])
    src, layout = args[0], a["layout"]
    if not isinstance(src, TensorType) or src.scope != "reg":
        _fail("view", "needs a register tile", 0)
    if src.layout is None:
        _fail("view", "the operand needs a layout (give it with convert_layout)", 0)
    shape = tuple(layout.shape)
    src_bits = src.layout.local_size * src.dtype.nbits
    dst_bits = layout.local_size * dt.nbits
    if src.layout.num_threads != layout.num_threads:
        _fail("view", f"the layouts have {src.layout.num_threads} and {layout.num_threads} "
                      "threads", 0)
    if src_bits != dst_bits:
        _fail("view", f"each thread holds {src_bits} bits of {src.dtype.name} but the new layout "
                      f"holds {dst_bits} bits of {dt.name}", 0)
    return TensorType(dt, shape, layout=layout)


def _convert_layout(args: list[Type], a: dict) -> Type:
    _arity("convert_layout", args, 1)
    src = args[0]
    if not isinstance(src, TensorType) or src.scope != "reg":
        _fail("convert_layout", "needs a register tile", 0)
    layout = a["layout"]
    if tuple(getattr(layout, "shape", src.shape)) != src.shape:
        _fail("convert_layout", f"layout shape {tuple(layout.shape)} differs from the tile's "
                                f"{src.shape}", 0)
    return TensorType(src.dtype, src.shape, layout=layout)


_register("cast", _cast, dtype=REQUIRED)
_register("bitcast", _bitcast, dtype=REQUIRED)
_register("view", _view, dtype=REQUIRED, layout=REQUIRED)
_register("convert_layout", _convert_layout, layout=REQUIRED)


# -- shape manipulation and reduction --------------------------------------------------------------


def _reg_tile(op: str, t: Type, i: int = 0) -> TensorType:
    if not isinstance(t, TensorType) or t.scope != "reg":
        _fail(op, f"operand {i} must be a register tile, got {t}", i)
    return t


def reduce_axes(axis: int | tuple[int, ...]) -> tuple[int, ...]:
    """The axes a ``reduce``'s ``axis`` attribute names: one axis, or several (increasing)."""
    return axis if isinstance(axis, tuple) else (axis,)


def check_combine(combine: Any, dt: DType, op: str = "reduce") -> None:
    """Raise :class:`TileTypeError` unless ``combine`` is a well-typed
    :class:`~tilevm.ir.tile.program.Combine` of ``dt``: two ``dt`` scalar parameters, a body of
    :data:`COMBINE_OPS` on scalars, each operand a parameter, an earlier result or a constant,
    and a ``dt`` scalar result."""
    from tilevm.ir.tile.program import Combine, Var

    if not isinstance(combine, Combine):
        _fail(op, f'op "custom" needs a combine function, got {combine!r}')
    want = ScalarType(dt)
    if len(combine.params) != 2 or any(p.type != want for p in combine.params):
        _fail(op, f"a combine function takes two {dt.name} scalars, got "
                  f"({', '.join(f'%{p.name}: {p.type}' for p in combine.params)})")
    scope: dict[str, Type] = {p.name: p.type for p in combine.params}

    def operand_type(x: Any) -> Type:
        if isinstance(x, Var):
            if scope.get(x.name) != x.type:
                _fail(op, f"the combine function reads %{x.name}, which is not its parameter "
                          "or an earlier result of the same type")
            return x.type
        return x.type

    for s in combine.body:
        if s.op not in COMBINE_OPS or s.result is None:
            _fail(op, f"a combine function computes with scalar elementwise operations only, "
                      f"not {s.op}")
        inferred = infer_type(s.op, [operand_type(x) for x in s.args], s.attr_dict)
        if not isinstance(inferred, ScalarType) or s.result.type != inferred:
            _fail(op, f"the combine function's {s.op} gives {inferred}, declared "
                      f"{s.result.type}; its values are scalars")
        if s.result.name in scope:
            _fail(op, f"the combine function defines %{s.result.name} twice")
        scope[s.result.name] = s.result.type
    if operand_type(combine.result) != want:
        _fail(op, f"a combine function of {dt.name} returns a {dt.name} scalar, not "
                  f"{combine.result.type}")


def _reduce(args: list[Type], a: dict) -> Type:
    _arity("reduce", args, 1)
    src = _reg_tile("reduce", args[0])
    if a["op"] == CUSTOM_REDUCE:
        check_combine(a["combine"], src.dtype)
    elif a["op"] not in REDUCE_OPS + ARG_REDUCE_OPS:
        _fail("reduce", f"op must be one of {REDUCE_OPS + ARG_REDUCE_OPS} or \"custom\", got "
                        f"{a['op']!r}")
    elif a["combine"] is not None:
        _fail("reduce", f'a combine function belongs to op "custom", not {a["op"]!r}')
    axes = reduce_axes(a["axis"])
    if (not axes or not all(isinstance(d, int) and 0 <= d < src.rank for d in axes)
            or list(axes) != sorted(set(axes))):
        _fail("reduce", f"axis {a['axis']!r} is not an axis, or increasing distinct axes, of a "
                        f"tile of rank {src.rank}", 0)
    if a["keepdims"]:
        shape = tuple(1 if i in axes else n for i, n in enumerate(src.shape))
    else:
        shape = tuple(n for i, n in enumerate(src.shape) if i not in axes)
    # argmax/argmin give an index: i32
    dt = dtype("i32") if a["op"] in ARG_REDUCE_OPS else src.dtype
    return TensorType(dt, shape) if shape else ScalarType(dt)


def _scan(args: list[Type], a: dict) -> Type:
    _arity("scan", args, 1)
    src = _reg_tile("scan", args[0])
    if a["op"] == CUSTOM_REDUCE:
        check_combine(a["combine"], src.dtype, "scan")
        if a["exclusive"]:
            _fail("scan", 'an exclusive scan has no op "custom" (its first element would be '
                          "the combine function's identity)")
    elif a["op"] not in SCAN_OPS:
        _fail("scan", f"op must be one of {SCAN_OPS} or \"custom\", got {a['op']!r}")
    elif a["combine"] is not None:
        _fail("scan", f'a combine function belongs to op "custom", not {a["op"]!r}')
    axis = a["axis"]
    if not isinstance(axis, int) or not 0 <= axis < src.rank:
        _fail("scan", f"axis {axis!r} is out of range for a tile of rank {src.rank}", 0)
    if not isinstance(a["exclusive"], bool):
        _fail("scan", f"exclusive must be a bool, got {a['exclusive']!r}")
    return TensorType(src.dtype, src.shape)


def _transpose(args: list[Type], a: dict) -> Type:
    _arity("transpose", args, 1)
    src = _reg_tile("transpose", args[0])
    perm = a["perm"]
    if perm is None:
        perm = tuple(reversed(range(src.rank)))
    if sorted(perm) != list(range(src.rank)):
        _fail("transpose", f"{perm} is not a permutation of {src.rank} axes", 0)
    return TensorType(src.dtype, tuple(src.shape[p] for p in perm))


def _reshape(args: list[Type], a: dict) -> Type:
    _arity("reshape", args, 1)
    src = _reg_tile("reshape", args[0])
    shape = _static_shape("reshape", a["shape"])
    count = 1
    for n in shape:
        count *= n
    if count != src.numel:
        _fail("reshape", f"cannot reshape {src.numel} elements {list(src.shape)} to {list(shape)}",
              0)
    return TensorType(src.dtype, shape)


def _broadcast(args: list[Type], a: dict) -> Type:
    _arity("broadcast", args, 1)
    src = args[0]
    shape = _static_shape("broadcast", a["shape"])
    if isinstance(src, TensorType):
        _reg_tile("broadcast", src)
        if broadcast_shapes("broadcast", [src.shape, shape]) != shape:
            _fail("broadcast", f"cannot broadcast {list(src.shape)} to {list(shape)}", 0)
    return TensorType(src.dtype, shape)


_register("reduce", _reduce, op=REQUIRED, axis=REQUIRED, keepdims=False, combine=None)
_register("scan", _scan, op=REQUIRED, axis=REQUIRED, exclusive=False, combine=None)
_register("transpose", _transpose, perm=None)
_register("reshape", _reshape, shape=REQUIRED)
_register("broadcast", _broadcast, shape=REQUIRED)


# -- memory ----------------------------------------------------------------------------------------


def is_index_tile(t: Type) -> bool:
    """Whether a memory operation's offset of type ``t`` is an index tile (a gather or scatter
    along its dimension) rather than a scalar offset."""
    return isinstance(t, TensorType)


def _memory_operands(op: str, args: list[Type], first: int, mem: Type, mode: str,
                     tile_shape: tuple[int, ...], gather: str | None = None) -> None:
    """Check offsets (one per dimension of ``mem``: an integer scalar, or where ``gather`` is
    ``""`` an i32 index tile broadcastable to ``tile_shape`` and not broadcast along its own
    dimension; any other string says why an index tile is not allowed) and the optional mask."""
    if mode not in MASK_MODES:
        _fail(op, f"mask must be one of {MASK_MODES}, got {mode!r}")
    rest = args[first:]
    n_mask = 1 if mode == "tile" else 0
    rank = mem.rank
    if len(rest) != rank + n_mask:
        _fail(op, f"{len(rest) - n_mask} offsets for a tensor of rank {rank}")
    for i, t in enumerate(rest[:rank]):
        if gather is not None and is_index_tile(t):
            if gather:
                _fail(op, f"an index tile (offset {i}) {gather}", first + i)
            if mem.shape[i] == 1:
                _fail(op, f"an index tile (offset {i}) on dimension {i} of size 1, where the "
                          "only index is 0: use the offset 0", first + i)
            _index_tile(op, t, first + i, i, tile_shape)
        else:
            _scalar_int(op, t, first + i, f"offset {i}")
    if n_mask:
        m = rest[-1]
        if not isinstance(m, TensorType) or m.dtype.name != "u1" or m.scope != "reg":
            _fail(op, f"the mask must be a u1 tile, got {m}", len(args) - 1)
        if broadcast_shapes(op, [m.shape, tile_shape]) != tile_shape:
            _fail(op, f"mask shape {list(m.shape)} does not match the tile's {list(tile_shape)}",
                  len(args) - 1)
    if len(tile_shape) != rank:
        _fail(op, f"a tile of rank {len(tile_shape)} for a tensor of rank {rank}")


def _index_tile(op: str, t: TensorType, at: int, dim: int, tile_shape: tuple[int, ...]) -> None:
    """An index tile for dimension ``dim``: i32, in registers, broadcastable to the tile's shape
    and as long as the tile along ``dim`` (else one index would serve a whole row)."""
    if t.scope != "reg" or t.dtype.name != "i32":
        _fail(op, f"the index tile of dimension {dim} must be an i32 register tile, got {t}"
                  + ("; cast it to i32" if t.scope == "reg" and t.dtype.is_integer else ""), at)
    try:
        fits = len(t.shape) <= len(tile_shape) and \
            broadcast_shapes(op, [t.shape, tile_shape]) == tuple(tile_shape)
    except TileTypeError:
        fits = False
    if not fits:
        _fail(op, f"the index tile of dimension {dim} has shape {list(t.shape)}, which does not "
                  f"broadcast to the tile's {list(tile_shape)}", at)
    padded = (1,) * (len(tile_shape) - len(t.shape)) + tuple(t.shape)
    if padded[dim] != tile_shape[dim]:
        _fail(op, f"the index tile of dimension {dim} has shape {list(t.shape)}: of size 1 along "
                  f"dimension {dim}, where the tile has {tile_shape[dim]} elements, every one "
                  f"would read the same index; give it the tile's size there (e.g. "
                  f"{list(tile_shape[:dim + 1]) + [1] * (len(tile_shape) - dim - 1)})", at)


def _scatter_value(value: Type) -> str:
    """Whether a store or atomic of ``value`` may take index tiles (``""``) or why not."""
    return "" if isinstance(value, TensorType) else "needs a tile value, not a scalar"


def _memory(op: str, t: Type, i: int, scopes: tuple[str, ...]) -> TensorType:
    if not isinstance(t, TensorType) or t.scope not in scopes:
        _fail(op, f"operand {i} must be a {' or '.join(scopes)} tensor, got {t}", i)
    return t


def _load(args: list[Type], a: dict) -> Type:
    if not args:
        _fail("load", "needs a tensor operand")
    src = _memory("load", args[0], 0, ("global", "shared"))
    shape = _static_shape("load", a["shape"])
    if not shape and a["mask"] == "tile":
        _fail("load", "a scalar load is masked at the bounds or not at all, not by a tile")
    # shape [] loads one element as a block-uniform scalar (an index, a length, a table entry).
    _memory_operands("load", args, 1, src, a["mask"], shape or (1,) * src.rank,
                     gather="" if shape else "needs a tile load, not shape []")
    other = a["other"]
    if isinstance(other, bool) or not isinstance(other, (int, float)):
        _fail("load", f"other must be a number, got {other!r}")
    if src.dtype.is_integer and (not isinstance(other, int) or
                                 not src.dtype.min <= other <= src.dtype.max):
        _fail("load", f"other={other!r} is not a value of {src.dtype.name}")
    return TensorType(src.dtype, shape) if shape else ScalarType(src.dtype)


def _store(args: list[Type], a: dict) -> None:
    if len(args) < 2:
        _fail("store", "needs a tensor and a value")
    dst = _memory("store", args[0], 0, ("global", "shared"))
    value = args[1]
    if not _is_reg(value):
        _fail("store", "the value must be a register tile", 1)
    if value.dtype != dst.dtype:
        _fail("store", f"dtype mismatch: the tensor holds {dst.dtype.name} but the value is "
                       f"{value.dtype.name}; cast it first", 1)
    # A scalar stores one element, like a tile of shape (1, …, 1).
    shape = (1,) * dst.rank if isinstance(value, ScalarType) else _shape(value)
    _memory_operands("store", args, 2, dst, a["mask"], shape, gather=_scatter_value(value))
    return None


def _shared(args: list[Type], a: dict) -> Type:
    _arity("shared", args, 0)
    return TensorType(dtype(a["dtype"]), _static_shape("shared", a["shape"]), "shared",
                      a["layout"])


def _index(args: list[Type], a: dict) -> Type:
    _arity("index", args, 2)
    src = _memory("index", args[0], 0, ("shared",))
    if src.rank < 2:
        _fail("index", "needs a shared tensor of rank >= 2 (a stage dimension first)", 0)
    _scalar_int("index", args[1], 1, "the stage index")
    return TensorType(src.dtype, src.shape[1:], "shared")


def _copy_async(args: list[Type], a: dict) -> None:
    if len(args) < 2:
        _fail("copy_async", "needs a shared destination and a global source")
    dst = _memory("copy_async", args[0], 0, ("shared",))
    src = _memory("copy_async", args[1], 1, ("global",))
    if dst.dtype != src.dtype:
        _fail("copy_async", f"dtype mismatch: shared {dst.dtype.name}, global {src.dtype.name}", 1)
    _memory_operands("copy_async", args, 2, src, a["mask"], dst.shape)
    return None


def _no_operands(op: str) -> Callable:
    def infer(args: list[Type], a: dict) -> None:
        _arity(op, args, 0)
        if op == "wait" and (not isinstance(a["n"], int) or a["n"] < 0):
            _fail(op, f"n must be a non-negative integer, got {a['n']!r}")
        return None

    return infer


FENCE_SCOPES = ("block", "gpu", "sys")


def _fence(args: list[Type], a: dict) -> None:
    _arity("fence", args, 0)
    if a["scope"] not in FENCE_SCOPES:
        _fail("fence", f"scope must be one of {FENCE_SCOPES}, got {a['scope']!r}")
    return None


def _atomic(args: list[Type], a: dict) -> Type:
    if len(args) < 2:
        _fail("atomic", "needs a tensor and a value")
    dst = _memory("atomic", args[0], 0, ("global", "shared"))
    value = args[1]
    if not _is_reg(value):
        _fail("atomic", "the value must be a register tile or scalar", 1)
    op = a["op"]
    if op not in ATOMIC_OPS:
        _fail("atomic", f"op must be one of {ATOMIC_OPS}, got {op!r}")
    if value.dtype != dst.dtype:
        _fail("atomic", f"dtype mismatch: the tensor holds {dst.dtype.name} but the value is "
                        f"{value.dtype.name}", 1)
    if dst.dtype.name not in ATOMIC_DTYPES[op]:
        _fail("atomic", f"atomic {op} is not available for {dst.dtype.name} (PTX offers it for "
                        f"{', '.join(ATOMIC_DTYPES[op])})", 1)
    shape = _shape(value)
    if isinstance(value, ScalarType):
        shape = (1,) * dst.rank
    _memory_operands("atomic", args, 2, dst, a["mask"], shape, gather=_scatter_value(value))
    return value


def _workspace(args: list[Type], a: dict) -> Type:
    _arity("workspace", args, 0)
    if not isinstance(a["zeroed"], bool):
        _fail("workspace", f"zeroed must be a bool, got {a['zeroed']!r}")
    if not isinstance(a["restored"], bool):
        _fail("workspace", f"restored must be a bool, got {a['restored']!r}")
    if a["restored"] and not a["zeroed"]:
        _fail("workspace", "restored=True promises the kernel leaves the workspace zeroed as it "
                           "found it: it needs zeroed=True")
    shape = a["shape"]
    # A size is an int or the name of one of the kernel's dimensions (the verifier checks which):
    # the runtime allocates a workspace before the launch, from the arguments' shapes.
    if not isinstance(shape, tuple) or not shape or not all(
            (isinstance(n, int) and not isinstance(n, bool) and n > 0) or
            (isinstance(n, str) and n.isidentifier()) for n in shape):
        _fail("workspace", "shape must be a tuple of positive integers and dimension names, got "
                           f"{shape!r}")
    return TensorType(dtype(a["dtype"]), shape, "global")


def _print(args: list[Type], a: dict) -> None:
    # ``block``: the one block that prints (an index per grid axis; empty means block 0).
    block = a["block"]
    if not isinstance(block, tuple) or not all(
            isinstance(b, int) and not isinstance(b, bool) and b >= 0 for b in block):
        _fail("print", f"block must be a tuple of non-negative integers, got {block!r}")
    for i, t in enumerate(args):
        if not _is_reg(t):
            _fail("print", f"operand {i} is a {t.scope} tensor; load it first", i)
    return None


def _device_assert(args: list[Type], a: dict) -> None:
    _arity("device_assert", args, 1)
    if not _is_reg(args[0]) or _dt(args[0]).name != "u1":
        _fail("device_assert", f"the condition must be a u1 tile or scalar, got {args[0]}", 0)
    if not isinstance(a["msg"], str):
        _fail("device_assert", f"msg must be a string, got {a['msg']!r}")
    return None


_register("load", _load, shape=REQUIRED, mask="bounds", other=0)
_register("store", _store, effects=True, mask="bounds")
_register("shared", _shared, effects=True, shape=REQUIRED, dtype=REQUIRED, layout=None)
_register("index", _index)
_register("copy_async", _copy_async, effects=True, mask="bounds")
_register("commit", _no_operands("commit"), effects=True)
_register("wait", _no_operands("wait"), effects=True, n=0)
_register("sync", _no_operands("sync"), effects=True)
_register("fence", _fence, effects=True, scope="gpu")
_register("atomic", _atomic, effects=True, op=REQUIRED, mask="bounds")
_register("workspace", _workspace, effects=True, shape=REQUIRED, dtype=REQUIRED, zeroed=True,
          restored=False)
_register("print", _print, effects=True, prefix="", block=())
# Stops the run where an element of the condition is false (the interpreter and the CPU backend
# report msg, the block and the element; the GPU prints that and traps).
_register("device_assert", _device_assert, effects=True, msg=REQUIRED)


# -- dot -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DotRule:
    """How ``dot`` multiplies one pair of operand types (DESIGN §3; docs/numeric-contract.md).

    Attributes:
        a, b: the operands' tilevm dtype names (canonical: ``"f8e4m3fn"``, not ``"e4m3"``).
        accumulators: the accumulator dtype names allowed, the default (a fresh ``a @ b``) first.
        chunk: K values per exact chunk: the chunk's exact products summed in increasing k plus
            the accumulator, rounded once to the accumulator's type. 1 is a sequential ``fma``
            in increasing k, each step rounded once.
        instruction: the ``mma.sync`` shape whose K is ``chunk`` (``"m16n8k16"``, ``"m16n8k32"``,
            ``"m16n8k8"``), or ``None`` for a sequence of ``fma.rn.f32``.
        ptx_types: the PTX ``.atype`` and ``.btype`` of that ``mma`` (``"f16"``, ``"bf16"``,
            ``"s8"``, ``"u8"``, ``"e4m3"``, ``"e5m2"``, ``"tf32"``), ``None`` without one.
        min_sm: the lowest ``sm_`` that has the instruction (89 for the fp8 types, else 80).
    """

    a: str
    b: str
    accumulators: tuple[str, ...]
    chunk: int
    instruction: str | None
    ptx_types: tuple[str, str] | None
    min_sm: int


DOT_PRECISIONS = ("ieee", "tf32")
_PTX_TYPE = {"f16": "f16", "bf16": "bf16", "i8": "s8", "u8": "u8", "f8e4m3fn": "e4m3",
             "f8e5m2": "e5m2"}


def _dot_rules() -> dict[tuple[str, str, str], DotRule]:
    rules = [DotRule("f16", "f16", ("f32", "f16"), 16, "m16n8k16", ("f16", "f16"), 80),
             DotRule("bf16", "bf16", ("f32",), 16, "m16n8k16", ("bf16", "bf16"), 80)]
    # mma.sync takes its .atype and .btype independently among the 8-bit integers, and among the
    # two fp8 types (PTX ISA, "Matrix multiply-accumulate operation using mma instruction").
    for family, accumulator, min_sm in ((("i8", "u8"), "i32", 80),
                                        (("f8e4m3fn", "f8e5m2"), "f32", 89)):
        rules += [DotRule(a, b, (accumulator,), 32, "m16n8k32", (_PTX_TYPE[a], _PTX_TYPE[b]),
                          min_sm) for a in family for b in family]
    table = {(r.a, r.b, "ieee"): r for r in rules}
    # f32 "ieee": fma.rn.f32 in increasing k, exact on every execution; "tf32": each operand
    # rounded as cvt.rna.tf32.f32 does, then m16n8k8's chunks of 8.
    table["f32", "f32", "ieee"] = DotRule("f32", "f32", ("f32",), 1, None, None, 80)
    table["f32", "f32", "tf32"] = DotRule("f32", "f32", ("f32",), 8, "m16n8k8", ("tf32", "tf32"),
                                          80)
    return table


# (a dtype name, b dtype name, precision) → the rule: the one table that the interpreter, the DSL
# and the lowering read.
DOT_RULES: dict[tuple[str, str, str], DotRule] = _dot_rules()


def _supported_dot_pairs() -> str:
    pairs = dict.fromkeys((a, b) for a, b, _ in DOT_RULES)
    return ", ".join(f"({a}, {b})" for a, b in pairs)


def dot_rule(a: DType | str, b: DType | str, precision: str = "ieee") -> DotRule:
    """The rule of ``dot`` for operands of dtypes ``a`` and ``b`` (dtypes or their names, aliases
    included) and ``precision`` (one of :data:`DOT_PRECISIONS`; ``"tf32"`` only for f32
    operands).

    Raises ``ValueError`` for an unknown precision, ``"tf32"`` on other operands, or a pair of
    dtypes no rule covers; the message lists the supported (a, b) pairs.
    """
    a_name, b_name = dtype(a).name, dtype(b).name
    if precision not in DOT_PRECISIONS:
        raise ValueError(f"precision must be one of {DOT_PRECISIONS}, got {precision!r}")
    if precision != "ieee" and (a_name, b_name) != ("f32", "f32"):
        raise ValueError(f"precision={precision!r} applies to f32 operands only (it rounds them "
                         f"to tf32 for the m16n8k8 tensor-core instruction), not {a_name} and "
                         f"{b_name}")
    rule = DOT_RULES.get((a_name, b_name, precision))
    if rule is None:
        what = (f"no dot instruction for {a_name} operands" if a_name == b_name else
                f"dtype mismatch: a is {a_name} but b is {b_name}, a pair no dot instruction "
                "takes")
        raise ValueError(f"{what} (supported (a, b) pairs: {_supported_dot_pairs()}); cast "
                         f"{'them' if a_name == b_name else 'one of them'} first")
    return rule


def dot_rule_of(instr: Any) -> DotRule:
    """The rule of a Tile IR ``dot`` instruction: its operands' dtypes and its ``precision``
    attribute (``"ieee"`` when absent)."""
    a, b = instr.args[0].type.dtype, instr.args[1].type.dtype
    return dot_rule(a, b, instr.attr("precision") or "ieee")


def _dot(args: list[Type], a: dict) -> Type:
    _arity("dot", args, 3)
    x, y, acc = (_reg_tile("dot", t, i) for i, t in enumerate(args))
    for i, t in enumerate((x, y, acc)):
        if t.rank != 2:
            _fail("dot", f"operand {'abc'[i]} must be a 2-D tile, got shape {list(t.shape)}", i)
    precision = a["precision"]
    try:
        rule = dot_rule(x.dtype, y.dtype, precision)
    except ValueError as e:
        # dot_rule judges the precision first: with "ieee" the fault is the pair's.
        at = (0 if x.dtype == y.dtype else 1) if precision == "ieee" else None
        raise TileTypeError("dot", str(e), at) from None
    if acc.dtype.name not in rule.accumulators:
        pair = x.dtype.name if x.dtype == y.dtype else f"{x.dtype.name} x {y.dtype.name}"
        _fail("dot", f"a {pair} dot accumulates in {' or '.join(rule.accumulators)}, not "
                     f"{acc.dtype.name}", 2)
    (m, k), (k2, n) = x.shape, y.shape
    if k != k2:
        _fail("dot", f"inner dimensions differ: a is [{m}, {k}] and b is [{k2}, {n}]", 1)
    if acc.shape != (m, n):
        _fail("dot", f"the accumulator is {list(acc.shape)} but a @ b is [{m}, {n}]", 2)
    return acc.with_()


_register("dot", _dot, precision="ieee")

"""Reductions along an axis: ``tv.reduce`` and its forms with the operation fixed, ``tv.sum``,
``tv.max``, ``tv.min`` (:data:`FORMS`); ``tv.argmax`` and ``tv.argmin``; the scans
``tv.cumsum``, ``tv.cumprod``, ``tv.cummax``, ``tv.cummin`` (:data:`SCANS`) and ``tv.scan`` with
a combine function."""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tilevm.frontend.builtins.registry import Args, Nodes, builtin, translates
from tilevm.ir.dtypes import DType, dtype

if TYPE_CHECKING:
    from tilevm.frontend.transpiler.core import Transpiler
    from tilevm.frontend.transpiler.value import Value

# tv.<op>(x, axis, keepdims=False, dtype=None) is tv.reduce(x, op, axis, keepdims, dtype).
FORMS = ("sum", "max", "min")


@builtin
def reduce(x: Any, op: str | Callable[[Any, Any], Any], axis: int | tuple[int, ...] | None = None,
           keepdims: bool = False, dtype: DType | None = None) -> Any:
    """Reduce along ``axis`` (an axis, a tuple of axes, or ``None``: all) with ``"sum"``,
    ``"max"`` or ``"min"``, or with a combine function ``op(acc, element)`` written in the DSL
    (a plain ``def`` of two scalars returning one, with scalar arithmetic, comparisons, casts
    and ``tv.where`` only), in ``dtype`` (default: ``x``'s). The interpreter applies a combine
    function left to right in increasing index; the lowering in an order its layout fixes: the
    same result when ``op`` is associative and commutative (integer and bit operations,
    ``min``/``max``), otherwise within the bound of docs/numeric-contract.md."""


@translates(reduce)
def _reduce(tr: Transpiler, node: ast.Call, a: Args, n: Nodes) -> Value:
    if not isinstance(a["op"], str):  # a combine function (or a mistake it names)
        return _custom(tr, node, a, n)
    return _along(tr, node, a, n, tr.const(a["op"], n["op"], "tv.reduce: op", (str,)))


def _custom(tr: Transpiler, node: ast.Call, a: Args, n: Nodes) -> Value:
    """``reduce {op = "custom", combine}`` of ``a["x"]`` (in ``dtype=``, else its own dtype)
    with the combine function ``a["op"]`` traced on two scalars of that dtype."""
    x = tr.value(a["x"], n["x"], "tv.reduce")
    rank = x.type.rank if x.is_tensor else 0
    axis = reduction_axes(tr, a["axis"], n.get("axis", node), rank, "tv.reduce")
    if a["dtype"] is not None:
        wanted = tr.dtype_arg(a["dtype"], n["dtype"], "tv.reduce: dtype")
        if wanted != x.dtype:
            x = tr.emit(node, "cast", [(x, n["x"])], dtype=wanted)
    combine = tr.trace_combine(a["op"], n["op"], x.dtype, "tv.reduce")
    return tr.emit(node, "reduce", [(x, n["x"])], op="custom", axis=axis,
                   keepdims=bool(a["keepdims"]), combine=combine)


def accumulation_dtype(source: DType, op: str, requested: DType | None) -> DType:
    """The dtype a reduction ``op`` of ``source`` elements combines and returns in.

    ``requested`` (the user's ``dtype=``) wins; otherwise an integer ``sum`` of fewer than 32
    bits accumulates in ``i32`` (``u32`` for unsigned types), as Triton does, so that a sum of
    narrow integers does not wrap in their own width; every other reduction keeps ``source``."""
    if requested is not None:
        return requested
    if op == "sum" and source.is_integer and source.nbits < 32:
        return dtype("i32" if source.is_signed else "u32")
    return source


def _along(tr: Transpiler, node: ast.Call, a: Args, n: Nodes, op: str) -> Value:
    """``reduce {op, axis, keepdims}`` of ``a["x"]`` converted to its accumulation dtype
    (:func:`accumulation_dtype`), the axes checked against its rank.

    Diagnostics name ``tv.<op>`` (``tv.sum`` for ``tv.reduce(x, "sum", …)`` too)."""
    x = tr.value(a["x"], n["x"], f"tv.{op}")
    rank = x.type.rank if x.is_tensor else 0
    axis = reduction_axes(tr, a["axis"], n.get("axis", node), rank, f"tv.{op}")
    requested = (None if a["dtype"] is None
                 else tr.dtype_arg(a["dtype"], n["dtype"], f"tv.{op}: dtype"))
    wanted = accumulation_dtype(x.dtype, op, requested)
    if wanted != x.dtype:
        x = tr.emit(node, "cast", [(x, n["x"])], dtype=wanted)
    return tr.emit(node, "reduce", [(x, n["x"])], op=op, axis=axis,
                   keepdims=bool(a["keepdims"]))


def reduction_axes(tr: Transpiler, axis: Any, node: ast.AST, rank: int,
                   what: str) -> int | tuple[int, ...]:
    """The ``axis`` attribute for the user's ``axis`` of a tile of ``rank``: one axis (negative
    counts from the end), a tuple of distinct axes, or ``None`` for all of them; a single axis
    stays an int, several become an increasing tuple."""
    if rank == 0:
        raise tr.error(node, f"{what}: needs a tile, not a scalar")
    if axis is None:
        axes = list(range(rank))
    else:
        items = list(axis) if isinstance(axis, (tuple, list)) else [axis]
        axes = []
        from tilevm.frontend.transpiler.value import Value

        if what in ("tv.max", "tv.min") and any(isinstance(i, Value) for i in items):
            pairwise = "tv.maximum" if what == "tv.max" else "tv.minimum"
            raise tr.error(node, f"{what} reduces one tile along an axis, and its second "
                                 f"argument is the axis, not a tile; for the elementwise "
                                 f"{what[3:]}imum of two tiles use {pairwise}(a, b)")
        for item in items:
            d = tr.const(item, node, f"{what}: axis")
            if not -rank <= d < rank:
                raise tr.error(node, f"{what}: axis {d} of a tile of rank {rank}")
            axes.append(d % rank)
        if not axes or len(set(axes)) != len(axes):
            raise tr.error(node, f"{what}: axis {axis} must name distinct axes")
    return axes[0] if len(axes) == 1 else tuple(sorted(axes))


def _form(x: Any, axis: int | tuple[int, ...] | None = None, keepdims: bool = False,
          dtype: DType | None = None) -> Any:
    """The signature of each of :data:`FORMS` (defined from the table: named ``sum``, ``max`` and
    ``min`` here, they would hide Python's in this module)."""


for _op in FORMS:
    translates(builtin(_form, name=_op, doc=f'``reduce(x, "{_op}", axis)``.'))(
        functools.partial(_along, op=_op))
del _op


def _arg_form(x: Any, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Any:
    """The signature of ``tv.argmax`` and ``tv.argmin``."""


def _arg(tr: Transpiler, node: ast.Call, a: Args, n: Nodes, op: str) -> Value:
    """``reduce {op: argmax|argmin}``: the i32 index of the first extreme element."""
    x = tr.value(a["x"], n["x"], f"tv.{op}")
    rank = x.type.rank if x.is_tensor else 0
    axis = reduction_axes(tr, a["axis"], n.get("axis", node), rank, f"tv.{op}")
    return tr.emit(node, "reduce", [(x, n["x"])], op=op, axis=axis,
                   keepdims=bool(a["keepdims"]))


for _op, _extreme in (("argmax", "largest"), ("argmin", "smallest")):
    translates(builtin(_arg_form, name=_op, doc=(
        f"The i32 index along ``axis`` (``None``: the flat index) of the first {_extreme} "
        "element; NaN counts as the extreme, as in numpy.")))(functools.partial(_arg, op=_op))
del _op, _extreme


# tv.<name>(x, axis, exclusive=False, dtype=None) is scan {op, axis, exclusive}.
SCANS = {"cumsum": "sum", "cumprod": "prod", "cummax": "max", "cummin": "min"}


def _scan_form(x: Any, axis: int, exclusive: bool = False, dtype: DType | None = None) -> Any:
    """The signature of each of :data:`SCANS`."""


def _scan(tr: Transpiler, node: ast.Call, a: Args, n: Nodes, name: str) -> Value:
    """``scan {op, axis, exclusive}`` of ``a["x"]`` in its accumulation dtype (a ``cumsum`` of
    narrow integers in i32/u32, as ``tv.sum``; ``dtype=`` chooses)."""
    x = tr.value(a["x"], n["x"], f"tv.{name}")
    rank = x.type.rank if x.is_tensor else 0
    axis = tr.const(a["axis"], n["axis"], f"tv.{name}: axis")
    if rank == 0 or not -rank <= axis < rank:
        raise tr.error(n["axis"], f"tv.{name}: axis {axis} of a tile of rank {rank}")
    exclusive = tr.const(a["exclusive"], n.get("exclusive", node), f"tv.{name}: exclusive",
                         (bool,))
    requested = (None if a["dtype"] is None
                 else tr.dtype_arg(a["dtype"], n["dtype"], f"tv.{name}: dtype"))
    wanted = accumulation_dtype(x.dtype, SCANS[name], requested)
    if wanted != x.dtype:
        x = tr.emit(node, "cast", [(x, n["x"])], dtype=wanted)
    return tr.emit(node, "scan", [(x, n["x"])], op=SCANS[name], axis=axis % rank,
                   exclusive=exclusive)


@builtin
def scan(x: Any, op: Callable[[Any, Any], Any], axis: int, dtype: DType | None = None) -> Any:
    """Inclusive prefix along ``axis`` with a combine function ``op(acc, element)`` written in
    the DSL (as ``tv.reduce``'s), in ``dtype`` (default: ``x``'s): element ``i`` is ``op``
    applied left to right over elements ``0…i``; every execution applies it in that order, so
    the result is exact whatever ``op`` is."""


@translates(scan)
def _custom_scan(tr: Transpiler, node: ast.Call, a: Args, n: Nodes) -> Value:
    x = tr.value(a["x"], n["x"], "tv.scan")
    rank = x.type.rank if x.is_tensor else 0
    axis = tr.const(a["axis"], n["axis"], "tv.scan: axis")
    if rank == 0 or not -rank <= axis < rank:
        raise tr.error(n["axis"], f"tv.scan: axis {axis} of a tile of rank {rank}")
    if isinstance(a["op"], str):
        raise tr.error(n["op"], f"tv.scan takes a combine function; for op {a['op']!r} use "
                                "tv.cumsum, tv.cumprod, tv.cummax or tv.cummin")
    if a["dtype"] is not None:
        wanted = tr.dtype_arg(a["dtype"], n["dtype"], "tv.scan: dtype")
        if wanted != x.dtype:
            x = tr.emit(node, "cast", [(x, n["x"])], dtype=wanted)
    combine = tr.trace_combine(a["op"], n["op"], x.dtype, "tv.scan")
    return tr.emit(node, "scan", [(x, n["x"])], op="custom", axis=axis % rank, combine=combine)


for _name, _op in SCANS.items():
    translates(builtin(_scan_form, name=_name, doc=(
        f"Inclusive (or ``exclusive``) prefix {_op} along ``axis``, in ``dtype``.")))(
        functools.partial(_scan, name=_name))
del _name, _op

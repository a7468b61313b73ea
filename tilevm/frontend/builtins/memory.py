"""Global and shared memory: ``tv.load``, ``tv.store``, ``tv.shared``, ``tv.workspace``."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

from tilevm.frontend.builtins.registry import Args, Nodes, builtin, translates
from tilevm.frontend.transpiler.value import I32, Value
from tilevm.ir.dtypes import DType
from tilevm.ir.tile.ops import TileTypeError, broadcast_shapes, is_index_tile
from tilevm.ir.tile.program import Operand, Var
from tilevm.ir.tile.types import ScalarType

if TYPE_CHECKING:
    from tilevm.frontend.transpiler.core import Transpiler


def access_offsets(tr: Transpiler, v: Any, node: ast.AST, tensor: Value,
                   what: str) -> list[Operand]:
    """``v`` (one offset or a sequence) as one operand per dimension of ``tensor``: an integer
    scalar (the tile's start along that dimension), or an i32 register tile of absolute indices
    along it (a gather or scatter; its shape is checked against the tile's by the operation)."""
    items = list(v) if isinstance(v, (tuple, list)) else [v]
    if not any(isinstance(x, Value) and x.is_tensor for x in items):
        return tr.offsets(v, node, tensor, what)
    rank = tensor.type.rank
    if len(items) != rank:
        raise tr.error(node, f"{what}: {len(items)} offset{'s' if len(items) != 1 else ''} "
                             f"for {tensor.describe()} of rank {rank}")
    out = []
    for d, x in enumerate(items):
        if isinstance(x, Value) and x.is_tensor:
            if x.type.scope != "reg" or x.dtype.name != "i32":
                hint = "; cast it to i32" if x.type.scope == "reg" and x.dtype.is_integer else ""
                raise tr.error(node, f"{what}: offset {d} is {x.describe()}; an index tile must "
                                     f"be an i32 tile{hint}")
            out.append(x.operand)
        else:
            op = tr.operand(x, node, I32)
            if not isinstance(op.type, ScalarType) or not op.type.dtype.is_integer:
                raise tr.error(node, f"{what}: offsets must be integer scalars or i32 index "
                                     f"tiles, got {op.type}")
            out.append(op)
    return out


def scatter_value(tr: Transpiler, value: Value, offsets: list[Operand], node: ast.AST,
                  tensor: Value) -> Value:
    """A scalar ``value`` stored or applied through index tiles: broadcast to the index tiles'
    shape (one element per index), padded to ``tensor``'s rank; else ``value`` itself."""
    shapes = [o.type.shape for o in offsets if is_index_tile(o.type)]
    if value.is_tensor or not shapes:
        return value
    try:
        shape = broadcast_shapes("scatter", shapes)
    except TileTypeError as e:
        raise tr.error(node, f"index tiles: {e.message}") from None
    shape = (1,) * (tensor.type.rank - len(shape)) + shape
    return tr.emit(node, "full", [(value, node)], shape=shape, dtype=value.dtype)


@builtin
def load(tensor: Any, offsets: tuple, shape: tuple[int, ...], mask: Any = None,
         other: float = 0, layout: Any = None) -> Any:
    """Load a tile of ``shape`` at ``offsets`` from a global or shared tensor.

    ``mask=None`` masks at the tensor's bounds (outside elements read ``other``), ``False`` is
    unchecked, a u1 tile selects elements. ``layout`` fixes the tile's register layout.
    ``shape=()`` loads the one element at ``offsets`` as a block-uniform scalar (a sequence
    length, a table entry), usable as a loop bound, an offset or an ``if`` condition.
    An offset may be an i32 tile of absolute indices along its dimension (a gather)."""


@translates(load)
def _load(tr: Transpiler, node: ast.Call, a: Args, n: Nodes) -> Value:
    t = tr.memory_tensor(a["tensor"], n["tensor"], "tv.load", ("global", "shared"))
    offs = access_offsets(tr, a["offsets"], n["offsets"], t, "tv.load")
    shape = tr.shape(a["shape"], n["shape"], "tv.load")
    if shape and len(shape) != t.type.rank:  # () loads one element as a scalar
        raise tr.error(n["shape"], f"tv.load: a tile shape of rank {len(shape)} for "
                                   f"{t.describe()} of rank {t.type.rank}")
    mode, mask = tr.mask(a["mask"], n["mask"], "tv.load")
    other = tr.const(a["other"], n["other"], "tv.load: other", (int, float))
    value = tr.emit_access(node, "load", [(t.operand, n["tensor"])], offs, n["offsets"], mask,
                           n["mask"], shape=shape, mask=mode, other=other)
    return tr.with_layout(value, a["layout"], n["layout"], "tv.load")


@builtin
def store(tensor: Any, value: Any, offsets: tuple, mask: Any = None) -> None:
    """Store a tile (or a scalar or a number: one element) at ``offsets`` of a global or shared
    tensor, masked like :func:`load`. Into a sub-byte tensor only the stored elements' bits
    change: bytes shared with a neighbouring block's elements are updated atomically.
    An offset may be an i32 tile of absolute indices along its dimension (a scatter)."""


@translates(store)
def _store(tr: Transpiler, node: ast.Call, a: Args, n: Nodes) -> None:
    t = tr.memory_tensor(a["tensor"], n["tensor"], "tv.store", ("global", "shared"))
    v = a["value"]
    if not isinstance(v, Value):  # a number: one element of the tensor's type
        v = Value(tr.operand(v, n["value"], t.dtype))
    offs = access_offsets(tr, a["offsets"], n["offsets"], t, "tv.store")
    v = scatter_value(tr, v, offs, n["value"], t)
    if v.is_tensor and v.type.rank != t.type.rank:
        raise tr.error(n["value"], f"tv.store: a tile of rank {v.type.rank} into "
                                   f"{t.describe()} of rank {t.type.rank}")
    mode, mask = tr.mask(a["mask"], n["mask"], "tv.store")
    tr.emit_access(node, "store", [(t.operand, n["tensor"]), (v.operand, n["value"])], offs,
                   n["offsets"], mask, n["mask"], mask=mode)


@builtin
def shared(shape: tuple[int, ...], dtype: DType, layout: Any = None) -> Any:
    """Allocate a shared-memory tensor; a leading stage dimension is indexed with ``s[stage]``."""


@translates(shared)
def _shared(tr: Transpiler, node: ast.Call, a: Args, n: Nodes) -> Value:
    shape = tr.shape(a["shape"], n["shape"], "tv.shared")
    dt = tr.dtype_arg(a["dtype"], n["dtype"], "tv.shared")
    return tr.emit(node, "shared", [], shape=shape, dtype=dt, layout=a["layout"])


@builtin
def workspace(shape: tuple[int, ...], dtype: DType, zeroed: bool = True,
              restored: bool = False) -> Any:
    """A global tensor owned by this launch, shared by every block (zero-filled if ``zeroed``).
    ``restored=True`` (with ``zeroed``) promises that the kernel leaves every element it changed
    zero again before the launch ends: the GPU runtime then zeroes the workspace once, when it
    allocates it, and keeps it for later launches on the same stream instead of clearing it
    before each one; the CPU backend checks the promise after every launch."""


@translates(workspace)
def _workspace(tr: Transpiler, node: ast.Call, a: Args, n: Nodes) -> Value:
    sizes = a["shape"] if isinstance(a["shape"], (tuple, list)) else [a["shape"]]
    # A dimension of the parameters may size a workspace: the runtime knows it before the
    # launch. Other run-time values cannot (the workspace is allocated on the host).
    names = {i: x.operand.name for i, x in enumerate(sizes) if isinstance(x, Value) and
             isinstance(x.operand, Var) and x.operand.name in tr.dim_names}
    for x in sizes:
        if isinstance(x, Value) and not (isinstance(x.operand, Var) and
                                         x.operand.name in tr.dim_names):
            shown = f"'{x.name}'" if x.name else "expression"
            raise tr.error(n["shape"], f"tv.workspace: a size is a compile-time integer or "
                                       f"a dimension name of the parameters, not the "
                                       f"run-time {shown} ({x.type}): the workspace is "
                                       "allocated before the launch; size it by a "
                                       "dimension and index it by tile")
    static = tr.shape([1 if i in names else x for i, x in enumerate(sizes)], n["shape"],
                      "tv.workspace")
    shape = tuple(names.get(i, x) for i, x in enumerate(static))
    dt = tr.dtype_arg(a["dtype"], n["dtype"], "tv.workspace")
    zeroed = tr.const(a["zeroed"], n["zeroed"], "tv.workspace: zeroed", (bool,))
    restored = tr.const(a["restored"], n["restored"], "tv.workspace: restored", (bool,))
    if restored and not zeroed:
        raise tr.error(n["restored"], "tv.workspace: restored=True promises the kernel leaves "
                                      "the workspace zeroed as it found it; it needs "
                                      "zeroed=True")
    return tr.emit(node, "workspace", [], shape=shape, dtype=dt, zeroed=zeroed,
                   restored=restored)

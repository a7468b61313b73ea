"""The Tile IR verifier: every operand defined and typed as declared, every result well typed.

The rules of each operation live in :mod:`tilevm.ir.tile.ops`; this module walks the program with
its scopes (a name defined inside a loop or branch is not visible after it) and reports the first
problem as a :class:`VerifyError` that names the instruction, the operand and the location.
"""

from __future__ import annotations

from tilevm.ir.tile.ops import TileTypeError, infer_type
from tilevm.ir.tile.program import Assign, Const, For, If, Instr, Kernel, Operand, Stmt, Var, While
from tilevm.ir.tile.types import ScalarType, TensorType, Type

__all__ = ["VerifyError", "types_match", "verify"]


class VerifyError(Exception):
    """An ill-formed or ill-typed Tile IR program."""


def types_match(declared: Type, inferred: Type) -> bool:
    """Whether a declared type agrees with the inferred one; a layout left out on either side is
    compatible with any (layouts are filled in later by inference)."""
    if isinstance(declared, ScalarType) or isinstance(inferred, ScalarType):
        return declared == inferred
    if (declared.dtype, declared.shape, declared.scope) != (
            inferred.dtype, inferred.shape, inferred.scope):
        return False
    return declared.layout is None or inferred.layout is None or declared.layout == inferred.layout


def verify(kernel: Kernel) -> None:
    """Raise :class:`VerifyError` unless ``kernel`` is well formed and well typed."""
    scope: dict[str, Type] = {}
    for p in kernel.params:
        _define(scope, p, f"parameter %{p.name}")
        if isinstance(p.type, TensorType) and p.type.scope != "global":
            raise VerifyError(f"parameter %{p.name}: tensors are passed in global memory, "
                              f"not {p.type.scope}")
    for d in kernel.dims():
        if d in scope:
            raise VerifyError(f"dimension {d!r} has the name of a parameter")
        scope[d] = ScalarType(_i32())
    if kernel.warps not in (1, 2, 4, 8, 16, 32):
        raise VerifyError(f"warps must be a power of two from 1 to 32, got {kernel.warps}")
    launch_scope = dict(scope)
    _block(kernel.launch_body, launch_scope, frozenset(kernel.dims()))
    if not 1 <= len(kernel.grid) <= 3:
        raise VerifyError(f"the grid has {len(kernel.grid)} axes; 1 to 3 are allowed")
    for g in kernel.grid:
        t = _operand(g, launch_scope, "grid")
        if not isinstance(t, ScalarType) or not t.dtype.is_integer:
            raise VerifyError(f"grid: {g} is {t}, not an integer scalar")
    _block(kernel.body, scope, frozenset(kernel.dims()))


def _i32():
    from tilevm.ir.dtypes import dtype

    return dtype("i32")


def _define(scope: dict[str, Type], var: Var, what: str) -> None:
    if var.name in scope:
        raise VerifyError(f"{what}: %{var.name} is defined twice")
    scope[var.name] = var.type


def _operand(x: Operand, scope: dict[str, Type], where: str) -> Type:
    if isinstance(x, Const):
        _check_const(x, where)
        return x.type
    if not isinstance(x, Var):
        raise VerifyError(f"{where}: operand {x!r} is neither a variable nor a constant")
    if x.name not in scope:
        raise VerifyError(f"{where}: %{x.name} is used before it is defined (or out of scope)")
    if not types_match(scope[x.name], x.type):
        raise VerifyError(f"{where}: %{x.name} is used as {x.type} but defined as {scope[x.name]}")
    return scope[x.name]


def _check_const(c: Const, where: str) -> None:
    if c.dtype.is_float:
        if not isinstance(c.value, float):
            raise VerifyError(f"{where}: float constant {c} must hold a Python float")
    elif isinstance(c.value, bool) or not isinstance(c.value, int):
        raise VerifyError(f"{where}: integer constant {c} must hold a Python int")
    elif not (c.dtype.min <= c.value <= c.dtype.max):
        raise VerifyError(f"{where}: constant {c.value} does not fit in {c.dtype.name}")


def _where(s: Stmt) -> str:
    from tilevm.ir.tile.printer import print_stmt

    text = print_stmt(s, 0, locations=False).splitlines()[0].strip()
    return f"`{text}`" + (f" at {s.loc}" if s.loc else "")


def _scalar_cond(x: Operand, scope: dict[str, Type], where: str) -> None:
    t = _operand(x, scope, where)
    if not isinstance(t, ScalarType) or t.dtype.name != "u1":
        raise VerifyError(f"{where}: the condition must be a u1 scalar, got {t}")


def _block(stmts: tuple[Stmt, ...], outer: dict[str, Type], dims: frozenset[str]) -> None:
    """Check ``stmts`` in ``outer`` (extended in place); ``dims`` are the kernel's dimension names,
    the only names a workspace's shape may use."""
    scope = outer  # statements of one block share it; nested blocks get copies
    for s in stmts:
        if isinstance(s, Instr):
            where = _where(s)
            types = [_operand(a, scope, where) for a in s.args]
            try:
                inferred = infer_type(s.op, types, s.attr_dict)
            except TileTypeError as e:
                operand = ("" if e.operand is None else
                           f" (operand {e.operand}: {s.args[e.operand]})")
                raise VerifyError(f"{where}: {e}{operand}") from None
            if s.op == "workspace":
                unknown = [d for d in s.attr("shape") if isinstance(d, str) and d not in dims]
                if unknown:
                    raise VerifyError(f"{where}: workspace size {unknown[0]!r} is not a dimension "
                                      f"of the kernel's parameters ({', '.join(sorted(dims))})")
            if (inferred is None) != (s.result is None):
                raise VerifyError(f"{where}: {s.op} " + (
                    "has no result" if inferred is None else "needs a result variable"))
            if s.result is not None:
                if not types_match(s.result.type, inferred):
                    raise VerifyError(f"{where}: the result is declared {s.result.type} but "
                                      f"{s.op} gives {inferred}")
                _define(scope, s.result, where)
        elif isinstance(s, Assign):
            where = f"assign %{s.target.name}" + (f" at {s.loc}" if s.loc else "")
            target_type = _operand(s.target, scope, where)
            value_type = _operand(s.value, scope, where)
            if not types_match(target_type, value_type):
                raise VerifyError(f"{where}: cannot assign {value_type} to a {target_type}")
        elif isinstance(s, For):
            where = f"for %{s.var.name}" + (f" at {s.loc}" if s.loc else "")
            for x in (s.start, s.stop, s.step):
                t = _operand(x, scope, where)
                if not isinstance(t, ScalarType) or not t.dtype.is_integer:
                    raise VerifyError(f"{where}: the bounds must be integer scalars, got {t}")
            if not isinstance(s.var.type, ScalarType) or not s.var.type.dtype.is_integer:
                raise VerifyError(f"{where}: the loop variable must be an integer scalar")
            inner = dict(scope)
            _define(inner, s.var, where)
            _block(s.body, inner, dims)
        elif isinstance(s, If):
            where = "if" + (f" at {s.loc}" if s.loc else "")
            _scalar_cond(s.cond, scope, where)
            _block(s.then_body, dict(scope), dims)
            _block(s.else_body, dict(scope), dims)
        elif isinstance(s, While):
            where = "while" + (f" at {s.loc}" if s.loc else "")
            inner = dict(scope)
            _block(s.cond_body, inner, dims)
            _scalar_cond(s.cond, inner, where)
            _block(s.body, dict(inner), dims)
        else:
            raise VerifyError(f"unknown statement {s!r}")

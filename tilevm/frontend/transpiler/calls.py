"""Calls: of DSL builtins (dispatched to their translations), of Python's own builtins on run-time
values, of helper functions (translated inline), and of anything else at compile time.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import linecache
from typing import Any

from tilevm.frontend.builtins.registry import (
    Args,
    Builtin,
    Nodes,
    OutsideKernelError,
    definition_of,
)
from tilevm.frontend.diagnostics import CompileError
from tilevm.frontend.transpiler.base import TranspilerBase
from tilevm.frontend.transpiler.scopes import Frame
from tilevm.frontend.transpiler.source import source_of
from tilevm.frontend.transpiler.statements import Return
from tilevm.frontend.transpiler.value import Value, describe
from tilevm.ir.dtypes import DType
from tilevm.ir.tile.ops import COMBINE_OPS
from tilevm.ir.tile.program import Combine, Instr, Loc, Operand
from tilevm.ir.tile.types import ScalarType

__all__ = ["Calls"]


class Calls(TranspilerBase):
    """The translation of calls."""

    def call(self, node: ast.Call, fn: Any) -> Any:
        """Translate the call ``node`` of ``fn`` (already evaluated from ``node.func``)."""
        definition = definition_of(fn)
        if definition is not None:
            return self.call_builtin(node, definition)
        for arg in [*node.args, *(k.value for k in node.keywords)]:
            if isinstance(arg, ast.Starred):
                raise self.error(arg, "'*' arguments are not supported in a tilevm kernel")
        if any(k.arg is None for k in node.keywords):
            raise self.error(node, "'**' arguments are not supported in a tilevm kernel")
        args = [self.expr(x) for x in node.args]
        kwargs = {k.arg: self.expr(k.value) for k in node.keywords}
        runtime = _contains_value(args) or _contains_value(list(kwargs.values()))
        if fn in (builtins.min, builtins.max, builtins.abs) and runtime:
            return self.python_minmax(node, fn, args)
        if fn is builtins.round and runtime:
            if len(args) != 1 or kwargs:
                raise self.error(node, "round() of a run-time value takes one argument (it rounds "
                                       "to an integral value, ties to even: tv.rint)")
            return self.emit(node, "rint", [(self.value(args[0], node.args[0], "round()"),
                                             node.args[0])])
        if fn in (builtins.int, builtins.float, builtins.bool) and runtime:
            raise self.error(node, f"{fn.__name__}() of a run-time value; use tv.cast(x, dtype)")
        if fn is builtins.print:
            raise self.error(node, "print() runs at compile time; use tv.debug_print(prefix, "
                                   "*values) to print run-time values")
        if fn is builtins.range and runtime:
            raise self.error(node, "range() with run-time bounds; write tv.range(start, stop, "
                                   "step)")
        if _is_kernel(fn):
            raise self.error(node, f"{fn.__name__} is a @tv.kernel: a kernel cannot launch "
                                   "another; write the shared code as a plain Python function "
                                   "(it is inlined where it is called)")
        if inspect.isfunction(fn) and runtime:
            return self.inline(node, fn, args, kwargs)
        if runtime:
            name = getattr(fn, "__name__", fn)
            module = getattr(fn, "__module__", None) or getattr(inspect.getmodule(fn), "__name__",
                                                                 None)
            from tilevm.frontend.dsl import BUILTINS

            if module in ("math", "cmath", "numpy") and name in BUILTINS:
                raise self.error(node, f"{module}.{name} computes on Python numbers when the "
                                       f"kernel is compiled; on run-time values use "
                                       f"tv.{name}")
            raise self.error(node, f"cannot call {name!s} with run-time values")
        try:
            return fn(*args, **kwargs)  # compile-time Python
        except CompileError:
            raise
        except OutsideKernelError:
            if inspect.isfunction(fn):  # a helper that emits instructions: translate it instead
                return self.inline(node, fn, args, kwargs)
            raise self.error(node, f"{getattr(fn, '__name__', fn)} uses tilevm instructions "
                                   "but is not a plain Python function") from None
        except Exception as e:
            raise self.error(node, f"compile-time call failed: {type(e).__name__}: {e}") from None

    def call_builtin(self, node: ast.Call, definition: Builtin) -> Any:
        """Translate a call of a DSL builtin: bind its arguments, then run its translation (which
        binds them itself when it was registered with ``bind=False``)."""
        if not definition.bind:
            return definition.translate(self, node)
        a, n = self.bind_args(node, definition.function)
        return definition.translate(self, node, a, n)

    def bind_args(self, node: ast.Call, fn: Any) -> tuple[Args, Nodes]:
        """Bind the arguments of ``node``, a call of the builtin ``fn``, to its parameters and
        evaluate them: the values by parameter name, defaults filled in (a ``*`` parameter gets
        the tuple of its values), and the node of each, the call's own where there is none."""
        definition = definition_of(fn)
        sig, name = definition.signature, definition.name
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise self.error(arg, "'*' arguments are not supported in a tilevm kernel")
        try:
            nodes = sig.bind(*node.args, **{k.arg: k.value for k in node.keywords})
        except TypeError as e:
            raise self.error(node, f"tv.{name}: {e} (signature: {name}{sig})") from None
        values: Args = {}
        node_map: Nodes = {}
        for key, v in nodes.arguments.items():
            if sig.parameters[key].kind is inspect.Parameter.VAR_POSITIONAL:
                values[key] = tuple(self.expr(x) for x in v)
            else:
                values[key] = self.expr(v)
                node_map[key] = v
        for key, param in sig.parameters.items():
            if key not in values:
                if param.kind is inspect.Parameter.VAR_POSITIONAL:
                    values[key] = ()
                elif param.default is not inspect.Parameter.empty:
                    values[key] = param.default
            node_map.setdefault(key, node)
        return values, node_map

    def inline(self, node: ast.Call, fn: Any, args: list, kwargs: dict) -> Any:
        """Translate a call of the helper function ``fn`` by translating its body in place; its
        ``return`` value is the call's."""
        if self.depth > 50:
            raise self.error(node, "helper functions nest more than 50 deep")
        try:
            src = source_of(fn)
        except TypeError as e:
            raise self.error(node, str(e)) from None
        try:
            bound = inspect.signature(fn).bind(*args, **kwargs)
        except TypeError as e:
            raise self.error(node, f"{fn.__name__}(): {e}") from None
        bound.apply_defaults()
        saved = (self.src, self.frames, self.gone, self.loops)
        self.src, self.gone, self.loops = src, {}, []
        self.frames = [Frame("function", src.tree.lineno, dict(bound.arguments))]
        self.depth += 1
        try:
            self.body(src.tree.body)
            return None
        except Return as r:
            return r.value
        finally:
            self.depth -= 1
            self.src, self.frames, self.gone, self.loops = saved

    def trace_combine(self, fn: Any, fn_node: ast.AST, dt: DType, what: str) -> Combine:
        """The combine function ``fn`` (a plain Python function of two scalars written in the
        DSL, passed at ``fn_node``) traced on two ``dt`` scalars into a
        :class:`~tilevm.ir.tile.program.Combine`: its body must be scalar elementwise
        operations (:data:`~tilevm.ir.tile.ops.COMBINE_OPS`) and it must return one ``dt``
        scalar; otherwise a diagnostic at the line in ``fn`` (``what`` names the builtin)."""
        name = getattr(fn, "__name__", None)
        if not inspect.isfunction(fn) or _is_kernel(fn):
            names = '"sum", "max", "min" or ' if what == "tv.reduce" else ""
            raise self.error(fn_node, f"{what}: op must be {names}a combine function "
                                      f"(def fn(a, b): ...), got {describe(fn)}")
        if name == "<lambda>":
            raise self.error(fn_node, f"{what}: a combine function is a def, not a lambda "
                                      "(tilevm reads its source)")
        signature = inspect.signature(fn)
        try:
            bound = signature.bind(0, 0)
        except TypeError:
            raise self.error(fn_node, f"{what}: the combine function {name}{signature} must "
                                      "take two arguments: the running value and the next "
                                      "element") from None
        bound.apply_defaults()
        try:
            src = source_of(fn)
        except TypeError as e:
            raise self.error(fn_node, str(e)) from None
        first, second = list(bound.arguments)[:2]
        # named after the function, so that they take no name the kernel's own values may want
        params = tuple(self.builder.var(f"{name}.{p}", ScalarType(dt)) for p in (first, second))
        arguments = dict(bound.arguments)
        arguments[first], arguments[second] = (Value(p, p.name) for p in params)
        saved = (self.src, self.frames, self.gone)
        self.src, self.gone = src, {}
        self.frames = [Frame("function", src.tree.lineno, arguments)]
        self.depth += 1
        returned: Any = None
        return_node: ast.AST = src.tree
        try:
            with self.builder.block() as body:
                try:
                    self.body(src.tree.body)
                except Return as r:
                    returned, return_node = r.value, r.node or src.tree
            # checked here, where the diagnostics point into fn's source
            result = self._combine_result(returned, return_node, name, dt)
            for stmt in body:
                self._check_combine_stmt(stmt, name)
        finally:
            self.depth -= 1
            self.src, self.frames, self.gone = saved
        return Combine(params, tuple(body), result)

    def _combine_result(self, value: Any, node: ast.AST, name: str, dt: DType) -> Operand:
        """What a combine function returned, as the operand it yields."""
        if isinstance(value, tuple):
            raise self.error(node, f"combine function {name} returns {len(value)} values; it "
                                   "returns one scalar (a combine of several values, as argmax "
                                   "needs, is not supported)")
        if value is None:
            raise self.error(node, f"combine function {name} returns nothing; it returns the "
                                   f"combined {dt.name} scalar")
        if isinstance(value, Value):
            if value.is_tensor:
                raise self.error(node, f"combine function {name} returns {value.describe()}; "
                                       f"it combines scalars and returns one {dt.name} scalar")
            if value.dtype != dt:
                raise self.error(node, f"combine function {name} returns {value.describe()}, "
                                       f"not {dt.name}: it returns a value of the reduction's "
                                       f"dtype (tv.cast it, or choose the reduction's dtype=)")
            return value.operand
        return self.operand(value, node, dt)

    def _check_combine_stmt(self, stmt: Any, name: str) -> None:
        """A statement of a combine function's body must be a scalar elementwise instruction."""
        if not isinstance(stmt, Instr):
            kind = type(stmt).__name__.lower()
            raise self._error_at(stmt.loc, f"combine function {name}: run-time control flow "
                                           f"({kind}) is not allowed in a combine function; "
                                           "choose with tv.where, min or max")
        if stmt.op not in COMBINE_OPS or not isinstance(stmt.result.type, ScalarType):
            made = "" if stmt.result is None else f" (making {stmt.result.type})"
            raise self._error_at(stmt.loc, f"combine function {name}: {stmt.op}{made} is not "
                                           "allowed in a combine function, which computes with "
                                           "scalar arithmetic, comparisons, casts and tv.where "
                                           "only (no memory, no tiles, no barriers)")

    def _error_at(self, loc: Loc | None, message: str) -> CompileError:
        """A diagnostic at ``loc`` (the location of an instruction emitted from any source)."""
        if loc is None:
            return CompileError(message)
        line = linecache.getline(loc.file, loc.line).rstrip("\n")
        return CompileError(message, loc.file, loc.line, loc.col, line)

    def python_minmax(self, node: ast.Call, fn: Any, args: list) -> Any:
        """Python's ``min``, ``max`` (of two or more) and ``abs`` on run-time values."""
        if fn is builtins.abs:
            return self.emit(node, "abs", [(args[0], node.args[0])])
        if len(args) < 2:
            raise self.error(node, f"{fn.__name__}() of run-time values takes two or more "
                                   f"arguments (tv.{fn.__name__}(x, axis) reduces a tile)")
        op = "min" if fn is builtins.min else "max"
        result, first = args[0], node.args[0]
        for value, value_node in zip(args[1:], node.args[1:]):
            result = self.emit(node, op, [(result, first), (value, value_node)])
        return result


def _contains_value(items: Any) -> bool:
    """Whether a run-time value is among ``items`` (nested tuples and lists included)."""
    for x in items:
        if isinstance(x, Value):
            return True
        if isinstance(x, (tuple, list)) and _contains_value(x):
            return True
    return False


def _is_kernel(fn: object) -> bool:
    from tilevm.frontend.kernel import KernelFunction

    return isinstance(fn, KernelFunction)

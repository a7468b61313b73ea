"""Calls: of DSL builtins (dispatched to their translations), of Python's own builtins on run-time
values, of helper functions (translated inline), and of anything else at compile time.
"""

from __future__ import annotations

import ast
import builtins
import inspect
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
from tilevm.frontend.transpiler.value import Value

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

"""Translate a ``@tilevm.kernel`` function's syntax tree into Tile IR.

The function is not run: its statements are read one by one. Compile-time Python (numbers,
constants, dtypes, tuples, helper functions, loops over ``range`` and ``if`` on constants) is
evaluated as Python; everything that depends on a parameter, a dimension or the block index is a
run-time :class:`~tilevm.frontend.transpiler.value.Value` and becomes instructions. ``for … in
tv.range``, ``while`` and ``if`` on run-time scalars become structured control flow. A mistake
raises :class:`~tilevm.frontend.diagnostics.CompileError` at the node's line and column.

This module holds the kernel itself (its parameters, dimensions and constants); the translation
of its body is put together from the package's other modules, one concern each.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
from typing import Any

from tilevm.frontend import dsl
from tilevm.frontend.diagnostics import CompileError
from tilevm.frontend.transpiler.calls import Calls
from tilevm.frontend.transpiler.exits import KernelReturn
from tilevm.frontend.transpiler.expressions import Expressions
from tilevm.frontend.transpiler.operands import Operands
from tilevm.frontend.transpiler.scopes import Frame, Scopes
from tilevm.frontend.transpiler.statements import Statements
from tilevm.frontend.transpiler.value import I32, Value
from tilevm.ir.dtypes import DType
from tilevm.ir.tile.program import Kernel, Var
from tilevm.ir.tile.types import ScalarType, TensorType, Type

__all__ = ["Transpiler"]


class Transpiler(Statements, Expressions, Calls, Operands, Scopes):
    """Builds one kernel for one set of constants (see :meth:`build`)."""

    def build(self) -> Kernel:
        """Translate the function; raises :class:`CompileError` on a user mistake."""
        fdef = self.src.tree
        a = fdef.args
        if a.vararg or a.kwarg or a.posonlyargs:
            raise self.error(fdef, "kernel parameters are plain names: no *args, **kwargs or /")
        frame = Frame("function", fdef.lineno)
        self.frames = [frame]
        params: list[Var] = []
        dims: dict[str, ast.AST] = {}
        variables: dict[str, DType] = {}  # dtype variables (tv.Dtype) and their bindings
        for arg in a.args:
            spec = self.annotation(arg)
            if isinstance(spec, (dsl.GlobalSpec, dsl.ScalarSpec)) and isinstance(spec.dtype,
                                                                                   dsl.Dtype):
                bound = self.dtype_variable(arg, spec.dtype.name)
                variables[spec.dtype.name] = bound
                spec = (dsl.GlobalSpec(bound, spec.dims) if isinstance(spec, dsl.GlobalSpec)
                        else dsl.ScalarSpec(bound))
            if isinstance(spec, dsl.GlobalSpec):
                ty: Type = TensorType(spec.dtype, spec.dims, "global")
                for d in spec.dims:
                    if isinstance(d, int):
                        continue  # a fixed size: checked when the kernel is called
                    at = next((x for x in ast.walk(arg.annotation) if isinstance(x, ast.Constant)
                               and x.value == d), arg.annotation)
                    dims.setdefault(d, at)
            elif isinstance(spec, dsl.ScalarSpec):
                ty = ScalarType(spec.dtype)
            else:
                raise self.error(arg, f"parameter '{arg.arg}': constants are keyword-only; "
                                      f"write them after '*' (def f(..., *, {arg.arg}: tv.Const))")
            var = Var(arg.arg, ty)
            self.builder.used.add(arg.arg)
            params.append(var)
            frame.names[arg.arg] = Value(var, arg.arg)
            self.readonly.add(arg.arg)
        for d, node in dims.items():
            if d in frame.names:
                raise self.error(node, f"dimension name '{d}' is also the name of a parameter")
            self.builder.used.add(d)
            self.dim_names.add(d)
            self.dim_values[d] = frame.names[d] = Value(Var(d, ScalarType(I32)), d)
            self.readonly.add(d)
        given = dict(self.constants)
        used_consts = []
        for name, bound in variables.items():
            given.pop(name)
            frame.names[name] = bound
            used_consts.append((name, bound))
        for arg, default in zip(a.kwonlyargs, a.kw_defaults):
            if arg.annotation is None:
                raise self.error(arg, f"parameter '{arg.arg}' has no annotation; write "
                                      f"'{arg.arg}: tv.Const' for a compile-time constant")
            spec = self.annotation(arg)
            if spec is not dsl.Const:
                raise self.error(arg.annotation, f"keyword-only parameter '{arg.arg}' must be "
                                                 "annotated tv.Const")
            if arg.arg in self.dim_names:
                raise self.error(arg, f"constant '{arg.arg}' has the name of a dimension of the "
                                      "tensor parameters; rename one (a size known when the "
                                      "kernel is written is an int in the annotation: "
                                      f"tv.Global[f16, \"m\", 64])")
            if arg.arg in given:
                value = given.pop(arg.arg)
            elif default is not None:
                kwdefaults = getattr(self.fn, "__kwdefaults__", None) or {}
                value = kwdefaults[arg.arg] if arg.arg in kwdefaults else self.const_eval(default)
            else:
                raise self.error(arg, f"constant '{arg.arg}' has no default and was not given")
            frame.names[arg.arg] = value
            used_consts.append((arg.arg, value))
        if given:
            raise TypeError(f"kernel {fdef.name}: unknown constant(s) {sorted(given)}; its "
                            f"constants are {[c.arg for c in a.kwonlyargs]}")
        with contextlib.suppress(KernelReturn):  # a return without a run-time condition
            self.body(fdef.body, top=True)
        if self.launch is None:
            raise self.error(fdef, f"kernel '{fdef.name}' never calls "
                                   "tv.launch(grid=..., warps=...)")
        grid, warps, launch_body = self.launch
        return Kernel(fdef.name, tuple(params), tuple(_attr_const(v) for v in used_consts),
                      tuple(launch_body), grid, warps, tuple(self.builder.blocks[0]),
                      self.loc(fdef))

    def dtype_variable(self, arg: ast.arg, name: str) -> DType:
        """The dtype the call bound to the variable ``name`` of ``arg``'s annotation."""
        value = self.constants.get(name)
        if value is None:
            raise self.error(arg.annotation, f"dtype variable '{name}' of '{arg.arg}' is not "
                                             f"bound: call the kernel with a tensor for it, or "
                                             f"give {name}=tv.f16 (a dtype)")
        if not isinstance(value, DType):
            raise self.error(arg.annotation, f"dtype variable '{name}' of '{arg.arg}' is bound "
                                             f"to {value!r}, not a dtype")
        return value

    def annotation(self, arg: ast.arg) -> Any:
        """The value of parameter ``arg``'s annotation (a spec such as ``tv.Global[…]``), evaluated
        where the function was defined."""
        if arg.annotation is None:
            raise self.error(arg, f"parameter '{arg.arg}' has no annotation; write "
                                  f"'{arg.arg}: tv.Global[f16, \"m\", \"k\"]' or "
                                  f"'{arg.arg}: tv.Scalar[f32]'")
        evaluated = getattr(self.fn, "__annotations__", {}).get(arg.arg)
        if evaluated is not None and not isinstance(evaluated, str) and self.depth == 0:
            # Python evaluated it where the function was defined (enclosing scopes included).
            return evaluated
        node = arg.annotation
        # A string: `from __future__ import annotations` (PEP 563), or the user's quotes.
        deferred = isinstance(evaluated, str)
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            node = ast.parse(node.value, mode="eval").body
            for sub in ast.walk(node):
                ast.copy_location(sub, arg.annotation)
        # An annotation is evaluated where the function is defined, where the parameters are not
        # in scope yet (but a factory's variables are).
        saved = self.frames
        self.frames = [Frame("function", 0, dict(self.definition_locals))]
        try:
            return self.const_eval(node)
        except (TypeError, ValueError) as e:
            raise self.error(arg.annotation, f"bad annotation for '{arg.arg}': {e}") from None
        except CompileError as e:
            if deferred and "undefined name" in e.message:
                raise self.error(arg.annotation, f"the annotation of '{arg.arg}' is the string "
                                 f"{ast.unparse(node)!r} ('from __future__ import annotations' "
                                 f"makes every annotation a string), and it uses a name that is "
                                 f"not visible to tilevm: {e.message}. A kernel made inside a "
                                 "function must be decorated with @tilevm.kernel right there; or "
                                 "remove the __future__ import from this module, or use only "
                                 "module-level names in annotations") from None
            raise
        finally:
            self.frames = saved


def _attr_const(pair: tuple[str, Any]) -> tuple[str, Any]:
    """A constant as the kernel records it: values the text form cannot write are kept as their
    ``repr`` (the program itself has them substituted already)."""
    name, value = pair

    def printable(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return tuple(printable(x) for x in v)
        if v is None or isinstance(v, (bool, int, float, str, DType)):
            return v
        if type(v).__name__ in ("RegisterLayout", "SharedLayout"):
            return v
        if inspect.isfunction(v) or inspect.isclass(v):
            # Not repr: it holds a memory address, and the text form keys the binary cache.
            return f"<{type(v).__name__} {v.__module__}.{v.__qualname__}>"
        return repr(v)

    return name, printable(value)


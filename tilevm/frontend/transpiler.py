"""Translate a ``@tilevm.kernel`` function's syntax tree into Tile IR.

The function is not run: its statements are read one by one. Compile-time Python (numbers,
constants, dtypes, tuples, helper functions, loops over ``range`` and ``if`` on constants) is
evaluated as Python; everything that depends on a parameter, a dimension or the block index is a
run-time :class:`Value` and becomes instructions. ``for … in tv.range``, ``while`` and ``if`` on
run-time scalars become structured control flow. A mistake raises
:class:`~tilevm.frontend.diagnostics.CompileError` at the node's line and column.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import textwrap
from dataclasses import dataclass, field
from typing import Any

from tilevm.frontend import dsl
from tilevm.frontend.builder import Builder
from tilevm.frontend.diagnostics import CompileError
from tilevm.ir.dtypes import DType, dtype
from tilevm.ir.tile.ops import DOT_RULES, TileTypeError
from tilevm.ir.tile.program import Assign, Const, For, If, Kernel, Loc, Operand, Var, While
from tilevm.ir.tile.types import ScalarType, TensorType, Type

__all__ = ["Source", "Transpiler", "Value", "source_of"]

_I32 = dtype("i32")
_U1 = dtype("u1")
_F32 = dtype("f32")

_BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div",
           ast.FloorDiv: "floordiv", ast.Mod: "mod", ast.BitAnd: "and", ast.BitOr: "or",
           ast.BitXor: "xor", ast.LShift: "shl", ast.RShift: "shr"}
_CMPOPS = {ast.Lt: "lt", ast.LtE: "le", ast.Gt: "gt", ast.GtE: "ge", ast.Eq: "eq", ast.NotEq: "ne"}
_UNSUPPORTED_STMTS = {ast.With: "'with' statements", ast.Try: "'try' statements",
                      ast.Raise: "'raise'", ast.Import: "imports", ast.ImportFrom: "imports",
                      ast.Global: "'global'", ast.Nonlocal: "'nonlocal'",
                      ast.FunctionDef: "nested function definitions",
                      ast.ClassDef: "class definitions", ast.Delete: "'del'",
                      ast.Break: "'break'", ast.Continue: "'continue'",
                      ast.AsyncFor: "'async for'", ast.AsyncWith: "'async with'",
                      ast.AnnAssign: "annotated assignments"}


@dataclass
class Value:
    """A run-time value in the transpiler: an IR operand and the name the user knows it by."""

    operand: Operand
    name: str | None = None

    @property
    def type(self) -> Type:
        return self.operand.type

    @property
    def dtype(self) -> DType:
        return self.operand.type.dtype

    @property
    def is_tensor(self) -> bool:
        return isinstance(self.type, TensorType)

    def describe(self) -> str:
        what = "scalar" if not self.is_tensor else (
            "tile" if self.type.scope == "reg" else "tensor")
        return f"{what} '{self.name}' ({self.type})" if self.name else f"a {self.type}"


@dataclass
class Source:
    """Where a function's code lives, to map AST positions back to the file."""

    file: str
    lines: list[str]
    first_line: int  # file line of the parsed text's line 1
    indent: int  # columns removed by dedenting
    tree: ast.FunctionDef
    globals: dict[str, Any]


_SOURCES: dict[Any, Source] = {}


def source_of(fn: Any) -> Source:
    """The parsed source of a Python function (cached)."""
    if fn in _SOURCES:
        return _SOURCES[fn]
    try:
        lines, first = inspect.getsourcelines(fn)
        file = inspect.getsourcefile(fn) or "<unknown>"
    except (OSError, TypeError) as e:
        raise TypeError(f"tilevm.kernel: cannot read the source of {fn.__qualname__} ({e})") from e
    text = "".join(lines)
    dedented = textwrap.dedent(text)
    indent = len(lines[0]) - len(lines[0].lstrip()) if dedented != text else 0
    tree = ast.parse(dedented)
    fdef = tree.body[0]
    if not isinstance(fdef, ast.FunctionDef):
        raise TypeError(f"tilevm.kernel: {fn.__qualname__} is not a plain function")
    env = dict(fn.__globals__)
    if fn.__closure__:
        env.update(zip(fn.__code__.co_freevars, (c.cell_contents for c in fn.__closure__)))
    src = Source(file, text.splitlines(), first, indent, fdef, env)
    _SOURCES[fn] = src
    return src


class _Return(Exception):
    def __init__(self, value: Any) -> None:
        self.value = value


@dataclass
class _Frame:
    kind: str  # "function", "for", "if", "while"
    line: int
    names: dict[str, Any] = field(default_factory=dict)


class Transpiler:
    """Builds one kernel for one set of constants (see :meth:`build`)."""

    def __init__(self, fn: Any, constants: dict[str, Any],
                 definition_locals: dict[str, Any] | None = None) -> None:
        self.fn = fn
        self.definition_locals = definition_locals or {}
        self.src = source_of(fn)
        self.constants = dict(constants)
        self.builder = Builder()
        self.frames: list[_Frame] = []
        self.readonly: set[str] = set()
        self.gone: dict[str, str] = {}  # names out of scope → why
        self.launch: tuple[tuple, int, list] | None = None
        self.grid_rank = 0
        self.depth = 0
        self.dim_names: set[str] = set()
        self.dim_values: dict[str, Value] = {}

    # -- diagnostics -------------------------------------------------------------------------------

    def loc(self, node: ast.AST) -> Loc:
        line = getattr(node, "lineno", 1) + self.src.first_line - 1
        col = getattr(node, "col_offset", 0) + self.src.indent + 1
        return Loc(self.src.file, line, col)

    def error(self, node: ast.AST, message: str) -> CompileError:
        loc = self.loc(node)
        index = getattr(node, "lineno", 1) - 1
        source_line = self.src.lines[index] if 0 <= index < len(self.src.lines) else ""
        end = None
        if getattr(node, "end_lineno", None) == getattr(node, "lineno", None):
            end = node.end_col_offset + self.src.indent + 1
        return CompileError(message, loc.file, loc.line, loc.col, source_line, end)

    # -- the kernel --------------------------------------------------------------------------------

    def build(self) -> Kernel:
        """Translate the function; raises :class:`CompileError` on a user mistake."""
        fdef = self.src.tree
        a = fdef.args
        if a.vararg or a.kwarg or a.posonlyargs:
            raise self.error(fdef, "kernel parameters are plain names: no *args, **kwargs or /")
        frame = _Frame("function", fdef.lineno)
        self.frames = [frame]
        params: list[Var] = []
        dims: dict[str, ast.AST] = {}
        for arg in a.args:
            spec = self.annotation(arg)
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
            self.dim_values[d] = frame.names[d] = Value(Var(d, ScalarType(_I32)), d)
            self.readonly.add(d)
        given = dict(self.constants)
        used_consts = []
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
        self.body(fdef.body, top=True)
        if self.launch is None:
            raise self.error(fdef, f"kernel '{fdef.name}' never calls "
                                   "tv.launch(grid=..., warps=...)")
        grid, warps, launch_body = self.launch
        return Kernel(fdef.name, tuple(params), tuple(_attr_const(v) for v in used_consts),
                      tuple(launch_body), grid, warps, tuple(self.builder.blocks[0]),
                      self.loc(fdef))

    def annotation(self, arg: ast.arg) -> Any:
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
        self.frames = [_Frame("function", 0, dict(self.definition_locals))]
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

    def const_eval(self, node: ast.AST) -> Any:
        value = self.expr(node)
        if isinstance(value, Value):
            raise self.error(node, "this must be a compile-time value")
        return value

    # -- scopes ------------------------------------------------------------------------------------

    def lookup(self, name: str, node: ast.AST) -> Any:
        for frame in reversed(self.frames):
            if name in frame.names:
                return frame.names[name]
        if name in self.src.globals:
            return self.src.globals[name]
        if hasattr(builtins, name):
            return getattr(builtins, name)
        if name in self.gone:
            raise self.error(node, self.gone[name])
        raise self.error(node, f"undefined name '{name}'")

    def find(self, name: str) -> _Frame | None:
        for frame in reversed(self.frames):
            if name in frame.names:
                return frame
        return None

    def bind(self, name: str, value: Any, node: ast.AST) -> None:
        if name in self.readonly:
            raise self.error(node, f"cannot assign to '{name}': parameters, dimensions and loop "
                                   "variables are read-only")
        frame = self.find(name)
        old = frame.names[name] if frame else None
        current = self.frames[-1]
        if isinstance(value, Value):
            if isinstance(old, Value) and isinstance(old.operand, Var):
                if _same_type(old.type, value.type):
                    if value.operand != old.operand:
                        self.builder.append(Assign(old.operand, value.operand, self.loc(node)))
                    return
                if frame is not current:
                    raise self.error(node, f"'{name}' is {old.type} before this {current.kind} "
                                           f"but {value.type} here; a variable keeps its type "
                                           "across a run-time loop or branch (cast it, or use "
                                           "another name)")
            new = None
            if isinstance(value.operand, Var):
                new = self.builder.rename_last(value.operand, name)
                if new is not None:
                    value.operand = new  # other references to this value see the new name
            if new is None:
                new = self.builder.emit("copy", [value.operand], self.loc(node), name)
            current.names[name] = Value(new, name)
            return
        if isinstance(old, Value) and isinstance(old.operand, Var) and frame is not current:
            if isinstance(value, (bool, int, float)) and not old.is_tensor:
                const = self.operand(value, node, like=old.dtype)
                self.builder.append(Assign(old.operand, const, self.loc(node)))
                return
            raise self.error(node, f"'{name}' is a run-time {old.type} before this "
                                   f"{current.kind}; it cannot become a compile-time value here")
        current.names[name] = value

    def materialize(self, stmts: list[ast.stmt]) -> None:
        """Make the compile-time numbers that a run-time block assigns into run-time variables."""
        for name in _assigned_names(stmts):
            frame = self.find(name)
            if frame is None:
                continue
            value = frame.names[name]
            if isinstance(value, (bool, int, float)) or (
                    isinstance(value, Value) and isinstance(value.operand, Const)):
                const = self.operand(value, None)
                var = self.builder.emit("copy", [const], None, name)
                frame.names[name] = Value(var, name)

    def push(self, kind: str, line: int) -> _Frame:
        frame = _Frame(kind, line)
        self.frames.append(frame)
        return frame

    def pop(self) -> None:
        frame = self.frames.pop()
        line = frame.line + self.src.first_line - 1
        for name, value in frame.names.items():
            outer = self.find(name)
            if outer is None:
                self.gone[name] = (f"'{name}' is only defined inside the '{frame.kind}' at line "
                                   f"{line}; define it before that block to use it after")
            elif outer.names[name] is not value:
                # A compile-time value rebound inside a run-time block: after the block the name
                # has no single value, so reading it is an error.
                del outer.names[name]
                self.gone[name] = (f"'{name}' was given a compile-time value inside the "
                                   f"'{frame.kind}' at line {line}, so it has no single value "
                                   "after it; use a run-time value (a tile or tv.cast) or "
                                   "another name")

    # -- statements --------------------------------------------------------------------------------

    def body(self, stmts: list[ast.stmt], top: bool = False) -> None:
        for i, s in enumerate(stmts):
            if top and i == 0 and _is_docstring(s):
                continue
            self.stmt(s, last=top and i == len(stmts) - 1)

    def stmt(self, s: ast.stmt, last: bool = False) -> None:
        for kind, what in _UNSUPPORTED_STMTS.items():
            if isinstance(s, kind):
                raise self.error(s, f"{what} are not supported in a tilevm kernel" if
                                 what.endswith("s") else f"{what} is not supported in a tilevm "
                                                          "kernel")
        if isinstance(s, ast.Expr):
            if isinstance(s.value, ast.Constant) and isinstance(s.value.value, str):
                return  # a comment-like string
            self.expr(s.value)
        elif isinstance(s, ast.Assign):
            value = self.expr(s.value)
            for target in s.targets:
                self.assign(target, value, s.value)
        elif isinstance(s, ast.AugAssign):
            if not isinstance(s.target, ast.Name):
                raise self.error(s.target, "augmented assignment needs a plain name")
            current = self.lookup(s.target.id, s.target)
            value = self.binop(s, s.op, current, self.expr(s.value), s.target, s.value)
            self.bind(s.target.id, value, s.target)
        elif isinstance(s, ast.For):
            self.for_stmt(s)
        elif isinstance(s, ast.While):
            self.while_stmt(s)
        elif isinstance(s, ast.If):
            self.if_stmt(s)
        elif isinstance(s, ast.Pass):
            pass
        elif isinstance(s, ast.Return):
            self.return_stmt(s, last)
        elif isinstance(s, ast.Assert):
            test = self.expr(s.test)
            if isinstance(test, Value):
                raise self.error(s.test, "assert needs a compile-time condition")
            if not test:
                msg = self.const_eval(s.msg) if s.msg else "assertion failed"
                raise self.error(s, f"assertion failed: {msg}")
        else:
            raise self.error(s, f"'{type(s).__name__}' statements are not supported in a "
                                "tilevm kernel")

    def assign(self, target: ast.expr, value: Any, value_node: ast.AST) -> None:
        if isinstance(target, ast.Name):
            self.bind(target.id, value, target)
        elif isinstance(target, (ast.Tuple, ast.List)):
            if isinstance(value, Value) or not isinstance(value, (tuple, list)):
                raise self.error(value_node, f"cannot unpack {_describe(value)} into "
                                             f"{len(target.elts)} names")
            if len(value) != len(target.elts):
                raise self.error(value_node, f"cannot unpack {len(value)} values into "
                                             f"{len(target.elts)} names")
            for t, v in zip(target.elts, value):
                self.assign(t, v, value_node)
        else:
            raise self.error(target, "only names can be assigned; write tiles to memory with "
                                     "tv.store")

    def return_stmt(self, s: ast.Return, last: bool) -> None:
        if self.depth == 0:
            if s.value is not None:
                raise self.error(s, "a kernel returns nothing; write results with tv.store")
            if not last:
                raise self.error(s, "'return' is only allowed as the kernel's last statement")
            return
        if any(f.kind != "function" for f in self.frames):
            raise self.error(s, "'return' inside a run-time loop or branch is not supported")
        raise _Return(None if s.value is None else self.expr(s.value))

    def for_stmt(self, s: ast.For) -> None:
        if s.orelse:
            raise self.error(s.orelse[0], "'for ... else' is not supported in a tilevm kernel")
        it = s.iter
        if isinstance(it, ast.Call):
            fn = self.expr(it.func)
            if fn is dsl.BUILTINS["range"]:
                self.runtime_for(s, it)
                return
            iterable = self.call(it, fn)
        else:
            iterable = self.expr(it)
        if isinstance(iterable, Value):
            raise self.error(it, f"cannot iterate over {iterable.describe()}; run-time loops "
                                 "are written 'for i in tv.range(start, stop, step)'")
        try:
            items = list(iterable)
        except TypeError:
            raise self.error(it, f"cannot iterate over {_describe(iterable)}") from None
        for item in items:
            self.assign(s.target, item, it)
            self.body(s.body)

    def runtime_for(self, s: ast.For, call: ast.Call) -> None:
        a, n = self.bind_args(call, dsl.BUILTINS["range"])
        start, stop, step = a["start"], a["stop"], a["step"]
        if stop is None:
            start, stop, n["stop"] = 0, start, n["start"]
        if isinstance(step, int) and step == 0:
            raise self.error(n["step"], "tv.range: step must not be zero")
        bounds = []
        for key, v in (("start", start), ("stop", stop), ("step", step)):
            op = self.operand(v, n.get(key, call), like=_I32)
            if not isinstance(op.type, ScalarType) or not op.type.dtype.is_integer:
                raise self.error(n.get(key, call), f"tv.range: {key} must be a block-uniform "
                                                   f"integer scalar, got {op.type}")
            bounds.append(op)
        unroll = a["unroll"]
        if isinstance(unroll, Value):
            raise self.error(n["unroll"], "tv.range: unroll must be a compile-time bool or int")
        if not isinstance(s.target, ast.Name):
            raise self.error(s.target, "a tv.range loop variable must be a plain name")
        self.materialize(s.body)
        frame = self.push("for", s.lineno)
        var = self.builder.var(s.target.id, ScalarType(bounds[0].type.dtype))
        frame.names[s.target.id] = Value(var, s.target.id)
        was_readonly = s.target.id in self.readonly
        self.readonly.add(s.target.id)
        try:
            with self.builder.block() as stmts:
                self.body(s.body)
        finally:
            if not was_readonly:
                self.readonly.discard(s.target.id)
            self.pop()
        self.builder.append(For(var, *bounds, tuple(stmts), unroll, self.loc(s)))

    def condition(self, node: ast.expr, value: Any, what: str) -> Operand:
        if isinstance(value.type, TensorType):
            raise self.error(node, f"the {what} condition is a {value.type}, not a block-uniform "
                                   "scalar; select elements with tv.where(cond, x, y) or "
                                   "reduce the tile first")
        if value.dtype != _U1:
            zero = Const(0.0 if value.dtype.is_float else 0, value.dtype)
            return self.builder.emit("ne", [value.operand, zero], self.loc(node))
        return value.operand

    def if_stmt(self, s: ast.If) -> None:
        test = self.expr(s.test)
        if not isinstance(test, Value):
            self.body(s.body if test else s.orelse)
            return
        cond = self.condition(s.test, test, "if")
        self.materialize(s.body + s.orelse)
        then_frame = self.push("if", s.lineno)
        try:
            with self.builder.block() as then_body:
                self.body(s.body)
        finally:
            self.pop()
        else_frame = self.push("if", s.lineno)
        try:
            with self.builder.block() as else_body:
                self.body(s.orelse)
        finally:
            self.pop()
        self.merge_branches(s, then_frame, then_body, else_frame, else_body)
        self.builder.append(If(cond, tuple(then_body), tuple(else_body), self.loc(s)))

    def merge_branches(self, s: ast.If, then_frame: _Frame, then_body: list, else_frame: _Frame,
                       else_body: list) -> None:
        """A name that both branches define anew, with one type, lives on after the ``if`` (as in
        Python): it is declared before the ``if`` and each branch assigns it."""
        for name, a in then_frame.names.items():
            b = else_frame.names.get(name)
            if (self.find(name) is not None or not isinstance(a, Value) or
                    not isinstance(b, Value) or not isinstance(a.operand, Var) or
                    not isinstance(b.operand, Var) or not _same_type(a.type, b.type) or
                    (a.is_tensor and a.type.scope != "reg")):
                continue
            ty = a.type
            zero = Const(0.0 if ty.dtype.is_float else 0, ty.dtype)
            if isinstance(ty, TensorType):
                var = self.builder.emit("full", [zero], self.loc(s), name, shape=ty.shape,
                                        dtype=ty.dtype)
            else:
                var = self.builder.emit("copy", [zero], self.loc(s), name)
            then_body.append(Assign(var, a.operand, self.loc(s)))
            else_body.append(Assign(var, b.operand, self.loc(s)))
            self.frames[-1].names[name] = Value(var, name)
            self.gone.pop(name, None)

    def while_stmt(self, s: ast.While) -> None:
        if s.orelse:
            raise self.error(s.orelse[0], "'while ... else' is not supported in a tilevm kernel")
        self.materialize(s.body)
        with self.builder.block() as cond_body:
            test = self.expr(s.test)
            if not isinstance(test, Value):
                raise self.error(s.test, "a while condition must be a run-time scalar; loop over "
                                         "compile-time values with a Python 'for'")
            cond = self.condition(s.test, test, "while")
        self.push("while", s.lineno)
        try:
            with self.builder.block() as body:
                self.body(s.body)
        finally:
            self.pop()
        self.builder.append(While(tuple(cond_body), cond, tuple(body), self.loc(s)))

    # -- expressions -------------------------------------------------------------------------------

    def expr(self, node: ast.expr) -> Any:
        method = getattr(self, "e_" + type(node).__name__, None)
        if method is None:
            raise self.error(node, f"{_expr_name(node)} is not supported in a tilevm kernel")
        return method(node)

    def e_Constant(self, node: ast.Constant) -> Any:
        return node.value

    def e_Name(self, node: ast.Name) -> Any:
        return self.lookup(node.id, node)

    def e_Tuple(self, node: ast.Tuple) -> Any:
        return tuple(self.expr(e) for e in node.elts)

    def e_List(self, node: ast.List) -> Any:
        return [self.expr(e) for e in node.elts]

    def e_JoinedStr(self, node: ast.JoinedStr) -> Any:
        parts = []
        for v in node.values:
            if isinstance(v, ast.FormattedValue):
                x = self.const_eval(v.value)
                spec = self.const_eval(v.format_spec) if v.format_spec else ""
                parts.append(format(x, spec))
            else:
                parts.append(v.value)
        return "".join(parts)

    def e_Attribute(self, node: ast.Attribute) -> Any:
        base = self.expr(node.value)
        if isinstance(base, Value):
            if node.attr == "shape":
                if not base.is_tensor:
                    return ()
                # A global tensor's named sizes are the run-time dimensions (fixed ones are ints).
                return tuple(self.dim_values[d] if isinstance(d, str) else d
                             for d in base.type.shape)
            if node.attr == "dtype":
                return base.dtype
            if node.attr == "T":
                return self.emit(node, "transpose", [(base, node.value)])
            raise self.error(node, f"{base.describe()} has no attribute '{node.attr}' "
                                   "(tiles have .shape, .dtype and .T)")
        try:
            return getattr(base, node.attr)
        except AttributeError:
            raise self.error(node, f"{_describe(base)} has no attribute '{node.attr}'") from None

    def e_BinOp(self, node: ast.BinOp) -> Any:
        return self.binop(node, node.op, self.expr(node.left), self.expr(node.right), node.left,
                          node.right)

    def binop(self, node: ast.AST, op: ast.operator, x: Any, y: Any, xn: ast.AST,
              yn: ast.AST) -> Any:
        if not isinstance(x, Value) and not isinstance(y, Value):
            try:
                return _python_binop(op, x, y)
            except Exception as e:
                raise self.error(node, f"compile-time arithmetic failed: {e}") from None
        if isinstance(op, ast.Pow):
            if isinstance(y, int) and isinstance(x, Value) and 1 <= y <= 8:
                result = x
                for _ in range(y - 1):
                    result = self.emit(node, "mul", [(result, xn), (x, xn)])
                return result
            raise self.error(node, "'**' needs a compile-time integer exponent from 1 to 8")
        if isinstance(op, ast.MatMult):  # x @ y is tv.dot(x, y): summed from zero in f32
            if isinstance(node, ast.AugAssign):
                raise self.error(node, "'@=' on tiles; write acc = tv.dot(x, y, acc)")
            return self.b_dot(node, {"a": x, "b": y, "acc": None}, {"a": xn, "b": yn, "acc": node})
        name = _BINOPS.get(type(op))
        if name is None:
            raise self.error(node, f"operator {type(op).__name__} is not supported on tiles")
        if name == "div":
            dt = (x if isinstance(x, Value) else y).dtype
            if dt.is_integer:
                raise self.error(node, f"'/' on {dt.name} values; integer division is '//'")
        return self.emit(node, name, [(x, xn), (y, yn)])

    def e_UnaryOp(self, node: ast.UnaryOp) -> Any:
        x = self.expr(node.operand)
        if not isinstance(x, Value):
            return {ast.USub: lambda v: -v, ast.UAdd: lambda v: +v, ast.Not: lambda v: not v,
                    ast.Invert: lambda v: ~v}[type(node.op)](x)
        if isinstance(node.op, ast.UAdd):
            return x
        if isinstance(node.op, ast.Not):
            if x.is_tensor:
                raise self.error(node, "'not' on a tile; use '~' for an elementwise not")
            cond = self.condition(node.operand, x, "'not'")
            return self.emit(node, "eq", [(Value(cond), node.operand), (False, node)])
        return self.emit(node, "neg" if isinstance(node.op, ast.USub) else "invert",
                         [(x, node.operand)])

    def e_Compare(self, node: ast.Compare) -> Any:
        values = [self.expr(node.left)] + [self.expr(c) for c in node.comparators]
        if not any(isinstance(v, Value) for v in values):
            result = True
            for op, a, b in zip(node.ops, values, values[1:]):
                result = result and _python_compare(op, a, b)
            return result
        if len(node.ops) != 1:
            raise self.error(node, "chained comparisons of run-time values are not supported; "
                                   "combine two comparisons with '&'")
        name = _CMPOPS.get(type(node.ops[0]))
        if name is None:
            raise self.error(node, f"'{type(node.ops[0]).__name__}' is not supported on "
                                   "run-time values")
        return self.emit(node, name, [(values[0], node.left), (values[1], node.comparators[0])])

    def e_BoolOp(self, node: ast.BoolOp) -> Any:
        values = [self.expr(v) for v in node.values]
        if not any(isinstance(v, Value) for v in values):
            if isinstance(node.op, ast.And):
                return all(values) and values[-1]
            return next((v for v in values if v), values[-1])
        result = values[0]
        for v, vn in zip(values[1:], node.values[1:]):
            for w, wn in ((result, node.values[0]), (v, vn)):
                if isinstance(w, Value) and w.is_tensor:
                    raise self.error(wn, "'and'/'or' on a tile; use '&' and '|' elementwise")
            result = self.emit(node, "and" if isinstance(node.op, ast.And) else "or",
                               [(result, node.values[0]), (v, vn)])
        return result

    def e_IfExp(self, node: ast.IfExp) -> Any:
        test = self.expr(node.test)
        if not isinstance(test, Value):
            return self.expr(node.body if test else node.orelse)
        return self.emit(node, "where", [(test, node.test), (self.expr(node.body), node.body),
                                         (self.expr(node.orelse), node.orelse)])

    def e_Subscript(self, node: ast.Subscript) -> Any:
        base = self.expr(node.value)
        if not isinstance(base, Value):
            index = self.expr(node.slice)
            if isinstance(index, Value):
                raise self.error(node.slice, f"cannot index {_describe(base)} with a run-time "
                                             "value")
            try:
                return base[index]
            except Exception as e:
                raise self.error(node, f"compile-time indexing failed: {e}") from None
        ty = base.type
        if isinstance(ty, TensorType) and ty.scope == "shared":
            index = self.expr(node.slice)
            if isinstance(index, tuple):
                raise self.error(node.slice, "a shared tensor is indexed by one stage index; "
                                             "load tiles from it with tv.load")
            stage = self.operand(index, node.slice, _I32)
            return self.emit_raw(node, "index", [base.operand, stage], [node.value, node.slice])
        if isinstance(ty, TensorType) and ty.scope == "reg":
            items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]

            def is_const(x: ast.AST, value: Any) -> bool:
                return isinstance(x, ast.Constant) and x.value is value

            for item in items:
                if not (is_const(item, Ellipsis) or is_const(item, None) or (
                        isinstance(item, ast.Slice) and not (item.lower or item.upper or
                                                             item.step))):
                    raise self.error(item, "tiles are indexed only with ':', '...' and None (to "
                                           "add a dimension); load elements with tv.load")
            ellipses = [x for x in items if is_const(x, Ellipsis)]
            if len(ellipses) > 1:
                raise self.error(ellipses[1], "a tile index has at most one '...'")
            if not ellipses:  # as in numpy, dimensions left out at the end are kept
                items = [*items, ast.Constant(Ellipsis)]
            named = sum(1 for x in items if not is_const(x, None) and not is_const(x, Ellipsis))
            if named > ty.rank:
                raise self.error(node.slice, f"{named} ':' for a tile of rank {ty.rank}")
            shape, axis = [], 0
            for item in items:
                if is_const(item, Ellipsis):
                    kept = ty.rank - named
                    shape += ty.shape[axis:axis + kept]
                    axis += kept
                elif is_const(item, None):
                    shape.append(1)
                else:
                    shape.append(ty.shape[axis])
                    axis += 1
            return self.emit(node, "reshape", [(base, node.value)], shape=tuple(shape))
        raise self.error(node, f"cannot index {base.describe()}; global tensors are read with "
                               "tv.load")

    def e_Call(self, node: ast.Call) -> Any:
        fn = self.expr(node.func)
        return self.call(node, fn)

    # -- calls -------------------------------------------------------------------------------------

    def call(self, node: ast.Call, fn: Any) -> Any:
        name = getattr(fn, "__tilevm_builtin__", None)
        if name is not None:
            if name == "launch":
                return self.b_launch(node)
            if name == "range":
                raise self.error(node, "tv.range can only be the iterable of a for loop")
            a, n = self.bind_args(node, fn)
            handler = getattr(self, "b_" + name, None)
            if handler is None:
                return self.unary_builtin(node, name, a, n)
            return handler(node, a, n)
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
        if inspect.isfunction(fn) and runtime:
            return self.inline(node, fn, args, kwargs)
        if runtime:
            raise self.error(node, f"cannot call {getattr(fn, '__name__', fn)!s} with run-time "
                                   "values")
        try:
            return fn(*args, **kwargs)  # compile-time Python
        except CompileError:
            raise
        except dsl.OutsideKernelError:
            if inspect.isfunction(fn):  # a helper that emits instructions: translate it instead
                return self.inline(node, fn, args, kwargs)
            raise self.error(node, f"{getattr(fn, '__name__', fn)} uses tilevm instructions "
                                   "but is not a plain Python function") from None
        except Exception as e:
            raise self.error(node, f"compile-time call failed: {type(e).__name__}: {e}") from None

    def bind_args(self, node: ast.Call, fn: Any) -> tuple[dict[str, Any], dict[str, ast.AST]]:
        sig = inspect.signature(fn.__wrapped_signature__)
        name = fn.__tilevm_builtin__
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise self.error(arg, "'*' arguments are not supported in a tilevm kernel")
        try:
            nodes = sig.bind(*node.args, **{k.arg: k.value for k in node.keywords})
        except TypeError as e:
            raise self.error(node, f"tv.{name}: {e} (signature: {name}{sig})") from None
        values = {}
        for key, v in nodes.arguments.items():
            if key == "values":
                values[key] = tuple(self.expr(x) for x in v)
            else:
                values[key] = self.expr(v)
        node_map = {k: v for k, v in nodes.arguments.items() if k != "values"}
        for key, param in sig.parameters.items():
            if key not in values and param.default is not inspect.Parameter.empty:
                values[key] = param.default
            node_map.setdefault(key, node)
        return values, node_map

    def inline(self, node: ast.Call, fn: Any, args: list, kwargs: dict) -> Any:
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
        saved = (self.src, self.frames, self.gone)
        self.src, self.gone = src, {}
        self.frames = [_Frame("function", src.tree.lineno, dict(bound.arguments))]
        self.depth += 1
        try:
            self.body(src.tree.body)
            return None
        except _Return as r:
            return r.value
        finally:
            self.depth -= 1
            self.src, self.frames, self.gone = saved

    def python_minmax(self, node: ast.Call, fn: Any, args: list) -> Any:
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

    # -- operands and instructions -----------------------------------------------------------------

    def operand(self, v: Any, node: ast.AST | None, like: DType | None = None) -> Operand:
        """An IR operand for a run-time value or a Python number (typed like ``like``)."""
        if isinstance(v, Value):
            return v.operand
        if isinstance(v, bool):
            dt = like if like is not None and like == _U1 else _U1
            return Const(int(v), dt)
        if isinstance(v, int):
            dt = like or _I32
            if dt.is_float:
                return Const(_round_to(float(v), dt), dt)
            if not dt.min <= v <= dt.max:
                raise self.error(node, f"constant {v} does not fit in {dt.name}")
            return Const(v, dt)
        if isinstance(v, float):
            dt = like or _F32
            if not dt.is_float:
                raise self.error(node, f"float constant {v} used with a {dt.name} value; cast "
                                       "one of them")
            return Const(_round_to(v, dt), dt)
        if hasattr(v, "item") and callable(v.item) and getattr(v, "shape", None) == ():
            return self.operand(v.item(), node, like)  # numpy scalars (not arrays)
        raise self.error(node, f"expected a tile, a scalar or a number, got {_describe(v)}")

    def emit(self, node: ast.AST, op: str, args: list[tuple[Any, ast.AST]], /,
             **attrs: Any) -> Value:
        """Emit ``op`` on (value, node) pairs; Python numbers take the dtype of the run-time
        operands. A typing error becomes a diagnostic at the offending operand."""
        like = next((v.dtype for v, _ in args if isinstance(v, Value) and not
                     (op == "where" and v is args[0][0])), None)
        operands = []
        for i, (v, n) in enumerate(args):
            want = _U1 if (op == "where" and i == 0 and not isinstance(v, Value)) else like
            operands.append(self.operand(v, n, want))
        try:
            result = self.builder.emit(op, operands, self.loc(node), **attrs)
        except TileTypeError as e:
            at = args[e.operand][1] if e.operand is not None and e.operand < len(args) else node
            raise self.error(at, str(e)) from None
        return None if result is None else Value(result)

    def emit_raw(self, node: ast.AST, op: str, operands: list[Operand], nodes: list[ast.AST], /,
                 **attrs: Any) -> Value | None:
        try:
            result = self.builder.emit(op, operands, self.loc(node), **attrs)
        except TileTypeError as e:
            at = nodes[e.operand] if e.operand is not None and e.operand < len(nodes) else node
            raise self.error(at, str(e)) from None
        return None if result is None else Value(result)

    def value(self, v: Any, node: ast.AST, what: str) -> Value:
        if not isinstance(v, Value):
            raise self.error(node, f"{what} must be a tile or a run-time value, got "
                                   f"{_describe(v)}")
        return v

    def const(self, v: Any, node: ast.AST, what: str, kinds: tuple = (int,)) -> Any:
        if isinstance(v, Value):
            raise self.error(node, f"{what} must be a compile-time constant, not the run-time "
                                   f"{v.describe()}")
        if not isinstance(v, kinds) or (isinstance(v, bool) and bool not in kinds):
            raise self.error(node, f"{what} must be {' or '.join(k.__name__ for k in kinds)}, "
                                   f"got {_describe(v)}")
        return v

    def shape(self, v: Any, node: ast.AST, what: str) -> tuple[int, ...]:
        if isinstance(v, int) and not isinstance(v, bool):
            v = (v,)
        if isinstance(v, Value):
            raise self.error(node, f"{what}: a shape must be compile-time integers, not the "
                                   f"run-time {v.describe()}")
        if not isinstance(v, (tuple, list)):
            raise self.error(node, f"{what}: a shape is a tuple of integers, got {_describe(v)}")
        for x in v:
            if isinstance(x, Value):
                raise self.error(node, f"{what}: shape entries must be compile-time constants, "
                                       f"not the run-time {x.describe()} (use a tv.Const "
                                       "parameter)")
            if not isinstance(x, int) or isinstance(x, bool) or x <= 0:
                raise self.error(node, f"{what}: shape entries must be positive integers, got "
                                       f"{x!r}")
        return tuple(v)

    def dtype_arg(self, v: Any, node: ast.AST, what: str) -> DType:
        if isinstance(v, Value):
            raise self.error(node, f"{what}: expected a dtype, got the run-time {v.describe()}")
        try:
            return dtype(v)
        except (ValueError, TypeError) as e:
            raise self.error(node, f"{what}: {e}") from None

    def offsets(self, v: Any, node: ast.AST, tensor: Value, what: str) -> list[Operand]:
        items = list(v) if isinstance(v, (tuple, list)) else [v]
        rank = tensor.type.rank
        if len(items) != rank:
            raise self.error(node, f"{what}: {len(items)} offset{'s' if len(items) != 1 else ''} "
                                   f"for {tensor.describe()} of rank {rank}")
        out = []
        for x in items:
            op = self.operand(x, node, _I32)
            if not isinstance(op.type, ScalarType) or not op.type.dtype.is_integer:
                raise self.error(node, f"{what}: offsets must be integer scalars, got {op.type}")
            out.append(op)
        return out

    def memory_tensor(self, v: Any, node: ast.AST, what: str, scopes: tuple[str, ...]) -> Value:
        if not isinstance(v, Value) or not v.is_tensor or v.type.scope not in scopes:
            shown = v.describe() if isinstance(v, Value) else _describe(v)
            raise self.error(node, f"{what}: expected a {' or '.join(scopes)} tensor, got {shown}")
        return v

    def mask(self, v: Any, node: ast.AST, what: str) -> tuple[str, list[Operand]]:
        if v is None:
            return "bounds", []
        if v is False:
            return "none", []
        if isinstance(v, Value):
            return "tile", [v.operand]
        raise self.error(node, f"{what}: mask is None (the tensor's bounds), False (unchecked) or "
                               f"a u1 tile, got {_describe(v)}")

    # -- builtins ----------------------------------------------------------------------------------

    def b_launch(self, node: ast.Call) -> None:
        if self.launch is not None:
            raise self.error(node, "tv.launch is called twice")
        if self.depth or len(self.frames) != 1:
            raise self.error(node, "tv.launch must be called at the top level of the kernel")
        if self.builder.blocks[0]:
            raise self.error(node, "tv.launch must come before any run-time computation")
        with self.builder.block() as launch_body:
            a, n = self.bind_args(node, dsl.BUILTINS["launch"])
            grid = a["grid"]
            items = list(grid) if isinstance(grid, (tuple, list)) else [grid]
            if not 1 <= len(items) <= 3:
                raise self.error(n["grid"], f"tv.launch: the grid has {len(items)} axes; "
                                            "1 to 3 are allowed")
            ops = []
            for x in items:
                op = self.operand(x, n["grid"], _I32)
                if not isinstance(op.type, ScalarType) or not op.type.dtype.is_integer:
                    raise self.error(n["grid"], f"tv.launch: grid sizes must be integers, got "
                                                f"{op.type}")
                ops.append(op)
        warps = self.const(a["warps"], n["warps"], "tv.launch: warps")
        if warps not in (1, 2, 4, 8, 16, 32):
            raise self.error(n["warps"], f"tv.launch: warps must be a power of two from 1 to 32, "
                                         f"got {warps}")
        self.launch = (tuple(ops), warps, launch_body)
        self.grid_rank = len(ops)

    def _axes(self, node: ast.Call, a: dict, n: dict, op: str) -> Any:
        if self.launch is None:
            raise self.error(node, f"tv.{op} needs the grid: call tv.launch first")
        axis = a["axis"]
        if axis is not None:
            axis = self.const(axis, n["axis"], f"tv.{op}: axis")
            if not 0 <= axis < self.grid_rank:
                raise self.error(n["axis"], f"tv.{op}: axis {axis} of a {self.grid_rank}-D grid")
            return self.emit(node, op, [], axis=axis)
        values = tuple(self.emit(node, op, [], axis=i) for i in range(self.grid_rank))
        return values[0] if self.grid_rank == 1 else values

    def b_block_idx(self, node: ast.Call, a: dict, n: dict) -> Any:
        return self._axes(node, a, n, "block_idx")

    def b_grid_dim(self, node: ast.Call, a: dict, n: dict) -> Any:
        return self._axes(node, a, n, "grid_dim")

    def b_cdiv(self, node: ast.Call, a: dict, n: dict) -> Any:
        x, y = a["a"], a["b"]
        if not isinstance(x, Value) and not isinstance(y, Value):
            self.const(x, n["a"], "tv.cdiv")
            self.const(y, n["b"], "tv.cdiv")
            if y == 0:
                raise self.error(n["b"], "tv.cdiv: division by zero")
            return -(-x // y)
        return self.emit(node, "cdiv", [(x, n["a"]), (y, n["b"])])

    def with_layout(self, value: Value, layout: Any, node: ast.AST, what: str) -> Value:
        """Fix the register layout of a just-built tile (the ``layout=`` option)."""
        if layout is None:
            return value
        layout = self.const(layout, node, f"{what}: layout", (object,))
        shape = tuple(getattr(layout, "shape", ()))
        if not hasattr(layout, "num_threads") or shape != value.type.shape:
            raise self.error(node, f"{what}: layout {layout!r} is not a register layout of shape "
                                   f"{list(value.type.shape)}")
        value.operand = self.builder.set_layout(value.operand, layout)
        return value

    def b_zeros(self, node: ast.Call, a: dict, n: dict) -> Any:
        shape = self.shape(a["shape"], n["shape"], "tv.zeros")
        dt = self.dtype_arg(a["dtype"], n["dtype"], "tv.zeros")
        zero = Const(0.0 if dt.is_float else 0, dt)
        value = self.emit_raw(node, "full", [zero], [node], shape=shape, dtype=dt)
        return self.with_layout(value, a["layout"], n["layout"], "tv.zeros")

    def b_full(self, node: ast.Call, a: dict, n: dict) -> Any:
        shape = self.shape(a["shape"], n["shape"], "tv.full")
        dt = self.dtype_arg(a["dtype"], n["dtype"], "tv.full")
        value = self.operand(a["value"], n["value"], dt)
        result = self.emit_raw(node, "full", [value], [n["value"]], shape=shape, dtype=dt)
        return self.with_layout(result, a["layout"], n["layout"], "tv.full")

    def b_arange(self, node: ast.Call, a: dict, n: dict) -> Any:
        start = self.const(a["start"], n["start"], "tv.arange: start")
        stop = a["stop"]
        if stop is None:
            start, stop = 0, start
        stop = self.const(stop, n["stop"], "tv.arange: stop")
        if stop <= start:
            raise self.error(node, f"tv.arange: empty range [{start}, {stop})")
        return self.emit(node, "arange", [], start=start, stop=stop)

    def b_load(self, node: ast.Call, a: dict, n: dict) -> Any:
        t = self.memory_tensor(a["tensor"], n["tensor"], "tv.load", ("global", "shared"))
        offs = self.offsets(a["offsets"], n["offsets"], t, "tv.load")
        shape = self.shape(a["shape"], n["shape"], "tv.load")
        if shape and len(shape) != t.type.rank:  # () loads one element as a scalar
            raise self.error(n["shape"], f"tv.load: a tile shape of rank {len(shape)} for "
                                         f"{t.describe()} of rank {t.type.rank}")
        mode, mask = self.mask(a["mask"], n["mask"], "tv.load")
        other = self.const(a["other"], n["other"], "tv.load: other", (int, float))
        nodes = [n["tensor"]] + [n["offsets"]] * len(offs) + [n["mask"]] * len(mask)
        value = self.emit_raw(node, "load", [t.operand, *offs, *mask], nodes, shape=shape,
                              mask=mode, other=other)
        return self.with_layout(value, a["layout"], n["layout"], "tv.load")

    def b_store(self, node: ast.Call, a: dict, n: dict) -> None:
        t = self.memory_tensor(a["tensor"], n["tensor"], "tv.store", ("global", "shared"))
        v = a["value"]
        if not isinstance(v, Value):  # a number: one element of the tensor's type
            v = Value(self.operand(v, n["value"], t.dtype))
        offs = self.offsets(a["offsets"], n["offsets"], t, "tv.store")
        if v.is_tensor and v.type.rank != t.type.rank:
            raise self.error(n["value"], f"tv.store: a tile of rank {v.type.rank} into "
                                         f"{t.describe()} of rank {t.type.rank}")
        mode, mask = self.mask(a["mask"], n["mask"], "tv.store")
        nodes = [n["tensor"], n["value"]] + [n["offsets"]] * len(offs) + [n["mask"]] * len(mask)
        self.emit_raw(node, "store", [t.operand, v.operand, *offs, *mask], nodes, mask=mode)

    def b_shared(self, node: ast.Call, a: dict, n: dict) -> Any:
        shape = self.shape(a["shape"], n["shape"], "tv.shared")
        dt = self.dtype_arg(a["dtype"], n["dtype"], "tv.shared")
        return self.emit(node, "shared", [], shape=shape, dtype=dt, layout=a["layout"])

    def b_copy_async(self, node: ast.Call, a: dict, n: dict) -> None:
        dst = self.memory_tensor(a["dst"], n["dst"], "tv.copy_async", ("shared",))
        src = self.memory_tensor(a["src"], n["src"], "tv.copy_async", ("global",))
        offs = self.offsets(a["offsets"], n["offsets"], src, "tv.copy_async")
        if dst.type.rank != src.type.rank:
            raise self.error(n["dst"], f"tv.copy_async: a shared tile of rank {dst.type.rank} "
                                       f"from {src.describe()} of rank {src.type.rank}")
        mode, mask = self.mask(a["mask"], n["mask"], "tv.copy_async")
        nodes = [n["dst"], n["src"]] + [n["offsets"]] * len(offs) + [n["mask"]] * len(mask)
        self.emit_raw(node, "copy_async", [dst.operand, src.operand, *offs, *mask], nodes,
                      mask=mode)

    def b_fence(self, node: ast.Call, a: dict, n: dict) -> None:
        scope = self.const(a["scope"], n["scope"], "tv.fence: scope", (str,))
        self.emit_raw(node, "fence", [], [], scope=scope)

    def b_commit(self, node: ast.Call, a: dict, n: dict) -> None:
        self.emit(node, "commit", [])

    def b_wait(self, node: ast.Call, a: dict, n: dict) -> None:
        self.emit(node, "wait", [], n=self.const(a["n"], n["n"], "tv.wait: n"))

    def b_sync(self, node: ast.Call, a: dict, n: dict) -> None:
        self.emit(node, "sync", [])

    def b_dot(self, node: ast.Call, a: dict, n: dict) -> Any:
        x, y = (self.value(a[k], n[k], f"tv.dot: {k}") for k in ("a", "b"))
        acc = a["acc"]
        if acc is None:  # a fresh accumulator of zeros, in the instruction's widest type
            rule = DOT_RULES.get(x.dtype.name)
            dt = dtype(rule[0][0]) if rule else _F32
            shape = (x.type.shape[0] if x.is_tensor and x.type.rank == 2 else 1,
                     y.type.shape[-1] if y.is_tensor and y.type.rank >= 1 else 1)
            zero = Const(0.0 if dt.is_float else 0, dt)
            acc = self.emit_raw(node, "full", [zero], [node], shape=shape, dtype=dt)
        args = [(x, n["a"]), (y, n["b"]), (self.value(acc, n["acc"], "tv.dot: acc"), n["acc"])]
        return self.emit(node, "dot", args)

    def b_cast(self, node: ast.Call, a: dict, n: dict) -> Any:
        dt = self.dtype_arg(a["dtype"], n["dtype"], "tv.cast")
        x = a["x"]
        if not isinstance(x, Value):
            return Value(self.operand(x, n["x"], dt))
        if x.dtype == dt:
            return x
        return self.emit(node, "cast", [(x, n["x"])], dtype=dt)

    def b_bitcast(self, node: ast.Call, a: dict, n: dict) -> Any:
        dt = self.dtype_arg(a["dtype"], n["dtype"], "tv.bitcast")
        return self.emit(node, "bitcast", [(self.value(a["x"], n["x"], "tv.bitcast"), n["x"])],
                         dtype=dt)

    def b_view(self, node: ast.Call, a: dict, n: dict) -> Any:
        dt = self.dtype_arg(a["dtype"], n["dtype"], "tv.view")
        layout = self.const(a["layout"], n["layout"], "tv.view: layout", (object,))
        return self.emit(node, "view", [(self.value(a["x"], n["x"], "tv.view"), n["x"])],
                         dtype=dt, layout=layout)

    def b_convert_layout(self, node: ast.Call, a: dict, n: dict) -> Any:
        layout = self.const(a["layout"], n["layout"], "tv.convert_layout: layout", (object,))
        x = self.value(a["x"], n["x"], "tv.convert_layout")
        return self.emit(node, "convert_layout", [(x, n["x"])], layout=layout)

    def b_where(self, node: ast.Call, a: dict, n: dict) -> Any:
        return self.emit(node, "where", [(a["cond"], n["cond"]), (a["x"], n["x"]),
                                         (a["y"], n["y"])])

    def _reduce(self, node: ast.Call, x: Any, xn: ast.AST, op: str, axis: Any, axn: ast.AST,
                keepdims: Any) -> Any:
        x = self.value(x, xn, f"tv.{op}")
        axis = self.const(axis, axn, f"tv.{op}: axis")
        rank = x.type.rank if x.is_tensor else 0
        if not -rank <= axis < rank:
            raise self.error(axn, f"tv.{op}: axis {axis} of a tile of rank {rank}")
        return self.emit(node, "reduce", [(x, xn)], op=op, axis=axis % rank,
                         keepdims=bool(keepdims))

    def b_reduce(self, node: ast.Call, a: dict, n: dict) -> Any:
        op = self.const(a["op"], n["op"], "tv.reduce: op", (str,))
        return self._reduce(node, a["x"], n["x"], op, a["axis"], n["axis"], a["keepdims"])

    def b_sum(self, node: ast.Call, a: dict, n: dict) -> Any:
        return self._reduce(node, a["x"], n["x"], "sum", a["axis"], n["axis"], a["keepdims"])

    def b_max(self, node: ast.Call, a: dict, n: dict) -> Any:
        return self._reduce(node, a["x"], n["x"], "max", a["axis"], n["axis"], a["keepdims"])

    def b_min(self, node: ast.Call, a: dict, n: dict) -> Any:
        return self._reduce(node, a["x"], n["x"], "min", a["axis"], n["axis"], a["keepdims"])

    def b_maximum(self, node: ast.Call, a: dict, n: dict) -> Any:
        return self.emit(node, "max", [(a["x"], n["x"]), (a["y"], n["y"])])

    def b_minimum(self, node: ast.Call, a: dict, n: dict) -> Any:
        return self.emit(node, "min", [(a["x"], n["x"]), (a["y"], n["y"])])

    def b_fma(self, node: ast.Call, a: dict, n: dict) -> Any:
        return self.emit(node, "fma", [(a[k], n[k]) for k in ("a", "b", "c")])

    def unary_builtin(self, node: ast.Call, name: str, a: dict, n: dict) -> Any:
        x = self.value(a["x"], n["x"], f"tv.{name}")
        return self.emit(node, name, [(x, n["x"])])

    def b_transpose(self, node: ast.Call, a: dict, n: dict) -> Any:
        perm = a["perm"]
        if perm is not None:
            perm = tuple(self.const(p, n["perm"], "tv.transpose: perm") for p in perm)
        return self.emit(node, "transpose", [(a["x"], n["x"])], perm=perm)

    def b_reshape(self, node: ast.Call, a: dict, n: dict) -> Any:
        shape = self.shape(a["shape"], n["shape"], "tv.reshape")
        return self.emit(node, "reshape", [(self.value(a["x"], n["x"], "tv.reshape"), n["x"])],
                         shape=shape)

    def b_broadcast(self, node: ast.Call, a: dict, n: dict) -> Any:
        shape = self.shape(a["shape"], n["shape"], "tv.broadcast")
        return self.emit(node, "broadcast", [(a["x"], n["x"])], shape=shape)

    def _atomic(self, node: ast.Call, a: dict, n: dict, op: str) -> Any:
        t = self.memory_tensor(a["tensor"], n["tensor"], f"tv.atomic_{op}", ("global", "shared"))
        v = a["value"]
        v_op = self.operand(v, n["value"], t.type.dtype)
        offs = self.offsets(a["offsets"], n["offsets"], t, f"tv.atomic_{op}")
        mode, mask = self.mask(a["mask"], n["mask"], f"tv.atomic_{op}")
        nodes = [n["tensor"], n["value"]] + [n["offsets"]] * len(offs) + [n["mask"]] * len(mask)
        return self.emit_raw(node, "atomic", [t.operand, v_op, *offs, *mask], nodes, op=op,
                             mask=mode)

    def b_atomic(self, node: ast.Call, a: dict, n: dict) -> Any:
        op = self.const(a["op"], n["op"], "tv.atomic: op", (str,))
        return self._atomic(node, a, n, op)

    def b_atomic_add(self, node: ast.Call, a: dict, n: dict) -> Any:
        return self._atomic(node, a, n, "add")

    def b_atomic_max(self, node: ast.Call, a: dict, n: dict) -> Any:
        return self._atomic(node, a, n, "max")

    def b_atomic_min(self, node: ast.Call, a: dict, n: dict) -> Any:
        return self._atomic(node, a, n, "min")

    def b_atomic_exch(self, node: ast.Call, a: dict, n: dict) -> Any:
        return self._atomic(node, a, n, "exch")

    def b_workspace(self, node: ast.Call, a: dict, n: dict) -> Any:
        sizes = a["shape"] if isinstance(a["shape"], (tuple, list)) else [a["shape"]]
        # A dimension of the parameters may size a workspace: the runtime knows it before the
        # launch. Other run-time values cannot (the workspace is allocated on the host).
        names = {i: x.operand.name for i, x in enumerate(sizes) if isinstance(x, Value) and
                 isinstance(x.operand, Var) and x.operand.name in self.dim_names}
        for x in sizes:
            if isinstance(x, Value) and not (isinstance(x.operand, Var) and
                                             x.operand.name in self.dim_names):
                shown = f"'{x.name}'" if x.name else "expression"
                raise self.error(n["shape"], f"tv.workspace: a size is a compile-time integer or "
                                             f"a dimension name of the parameters, not the "
                                             f"run-time {shown} ({x.type}): the workspace is "
                                             "allocated before the launch; size it by a "
                                             "dimension and index it by tile")
        static = self.shape([1 if i in names else x for i, x in enumerate(sizes)], n["shape"],
                            "tv.workspace")
        shape = tuple(names.get(i, x) for i, x in enumerate(static))
        dt = self.dtype_arg(a["dtype"], n["dtype"], "tv.workspace")
        zeroed = self.const(a["zeroed"], n["zeroed"], "tv.workspace: zeroed", (bool,))
        return self.emit(node, "workspace", [], shape=shape, dtype=dt, zeroed=zeroed)

    def b_debug_print(self, node: ast.Call, a: dict, n: dict) -> None:
        prefix = self.const(a["prefix"], n["prefix"], "tv.debug_print: prefix", (str,))
        values = [(self.value(v, node, "tv.debug_print: a value"), node) for v in a["values"]]
        self.emit(node, "print", values, prefix=prefix)


# -- helpers ---------------------------------------------------------------------------------------


def _same_type(a: Type, b: Type) -> bool:
    if isinstance(a, ScalarType) or isinstance(b, ScalarType):
        return a == b
    return (a.dtype, a.shape, a.scope) == (b.dtype, b.shape, b.scope)


def _round_to(v: float, dt: DType) -> float:
    if dt.name == "f64":
        return float(v)
    import numpy as np

    return float(dt.decode(dt.encode(np.float64(v)))[()])


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


def _is_docstring(s: ast.stmt) -> bool:
    return isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) and isinstance(
        s.value.value, str)


def _assigned_names(stmts: list[ast.stmt]) -> list[str]:
    names: list[str] = []
    for s in stmts:
        for node in ast.walk(s):
            targets: list[ast.AST] = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AugAssign):
                targets = [node.target]
            for t in targets:
                for x in ast.walk(t):
                    if isinstance(x, ast.Name) and x.id not in names:
                        names.append(x.id)
    return names


def _contains_value(items: Any) -> bool:
    for x in items:
        if isinstance(x, Value):
            return True
        if isinstance(x, (tuple, list)) and _contains_value(x):
            return True
    return False


def _describe(v: Any) -> str:
    if isinstance(v, Value):
        return v.describe()
    if isinstance(v, DType):
        return f"the dtype {v.name}"
    return f"{type(v).__name__} {v!r}"


def _expr_name(node: ast.AST) -> str:
    names = {"Lambda": "lambda", "ListComp": "a list comprehension",
             "GeneratorExp": "a generator expression", "DictComp": "a dict comprehension",
             "SetComp": "a set comprehension", "Dict": "a dict", "Set": "a set",
             "NamedExpr": "':='", "Starred": "'*'", "Await": "'await'", "Yield": "'yield'",
             "Slice": "a slice"}
    return names.get(type(node).__name__, f"'{type(node).__name__}'")


def _python_binop(op: ast.operator, x: Any, y: Any) -> Any:
    import operator

    table = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
             ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
             ast.Pow: operator.pow, ast.BitAnd: operator.and_, ast.BitOr: operator.or_,
             ast.BitXor: operator.xor, ast.LShift: operator.lshift, ast.RShift: operator.rshift,
             ast.MatMult: operator.matmul}
    return table[type(op)](x, y)


def _python_compare(op: ast.cmpop, x: Any, y: Any) -> bool:
    import operator

    table = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
             ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Is: operator.is_,
             ast.IsNot: operator.is_not, ast.In: lambda a, b: a in b,
             ast.NotIn: lambda a, b: a not in b}
    return table[type(op)](x, y)

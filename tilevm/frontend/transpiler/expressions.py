"""Expressions: names, constants, operators, attributes, subscripts, calls.

An expression on compile-time values is evaluated as Python; one with a run-time operand emits
Tile IR. Python numbers mixed with run-time values take the run-time operand's dtype.
"""

from __future__ import annotations

import ast
from typing import Any

from tilevm.frontend.builtins.registry import DEFINITIONS
from tilevm.frontend.transpiler.base import TranspilerBase
from tilevm.frontend.transpiler.value import I32, Value, describe
from tilevm.ir.tile.types import TensorType

__all__ = ["Expressions"]

_BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div",
           ast.FloorDiv: "floordiv", ast.Mod: "mod", ast.BitAnd: "and", ast.BitOr: "or",
           ast.BitXor: "xor", ast.LShift: "shl", ast.RShift: "shr"}
_CMPOPS = {ast.Lt: "lt", ast.LtE: "le", ast.Gt: "gt", ast.GtE: "ge", ast.Eq: "eq", ast.NotEq: "ne"}


class Expressions(TranspilerBase):
    """The translation of expressions."""

    def const_eval(self, node: ast.AST) -> Any:
        """The value of ``node``, which must be known at compile time."""
        value = self.expr(node)
        if isinstance(value, Value):
            raise self.error(node, "this must be a compile-time value")
        return value

    def expr(self, node: ast.expr) -> Any:
        """The value of ``node``: a Python object, or a :class:`Value` whose instructions are
        emitted (by the method ``e_<node type>``)."""
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
            raise self.error(node, f"{describe(base)} has no attribute '{node.attr}'") from None

    def e_BinOp(self, node: ast.BinOp) -> Any:
        return self.binop(node, node.op, self.expr(node.left), self.expr(node.right), node.left,
                          node.right)

    def binop(self, node: ast.AST, op: ast.operator, x: Any, y: Any, xn: ast.AST,
              yn: ast.AST) -> Any:
        """``x op y`` (``xn`` and ``yn`` their nodes), in Python or as an instruction."""
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
            hint = {0.5: "; for a square root use tv.sqrt(x)", -0.5: "; use tv.rsqrt(x)"}.get(
                y if isinstance(y, float) else None,
                "; for another power use tv.exp2(y * tv.log2(x))")
            raise self.error(node, f"'**' needs a compile-time integer exponent from 1 to 8{hint}")
        if isinstance(op, ast.MatMult):  # x @ y is tv.dot(x, y): summed from zero in f32
            if isinstance(node, ast.AugAssign):
                raise self.error(node, "'@=' on tiles; write acc = tv.dot(x, y, acc)")
            return DEFINITIONS["dot"].translate(self, node, {"a": x, "b": y, "acc": None},
                                                {"a": xn, "b": yn, "acc": node})
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
                raise self.error(node.slice, f"cannot index {describe(base)} with a run-time "
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
            stage = self.operand(index, node.slice, I32)
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

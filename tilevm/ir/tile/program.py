"""The structure of a Tile IR program: operands, statements and kernels, as frozen dataclasses.

A kernel body is a tuple of statements. An :class:`Instr` applies one operation (see
:mod:`tilevm.ir.tile.ops`) to operands and binds its result to a fresh :class:`Var`; operands are
variables or typed :class:`Const` scalars, so every intermediate value is named and typed (three
address code), which is what layout inference annotates. :class:`Assign` updates a variable
defined earlier (loop-carried values: ``acc = dot(x, y, acc)``); ``For``, ``If`` and ``While`` are
structured and block-uniform. Source locations are kept beside each statement and excluded from
equality, so ``parse(print(p)) == p`` compares structure only.

Passes are functions from IR to IR: they rebuild tuples with :func:`dataclasses.replace`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Union

from tilevm.ir.dtypes import DType
from tilevm.ir.tile.types import ScalarType, Type

__all__ = [
    "Assign",
    "Combine",
    "Const",
    "For",
    "If",
    "Instr",
    "Kernel",
    "Loc",
    "Operand",
    "Stmt",
    "Var",
    "While",
    "walk",
]


@dataclass(frozen=True)
class Loc:
    """A source location: file, 1-based line and column."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Var:
    """A named, typed value. Names are unique within a kernel."""

    name: str
    type: Type

    def __str__(self) -> str:
        return f"%{self.name}"


@dataclass(frozen=True, eq=False)
class Const:
    """A compile-time scalar of one dtype: a Python ``int`` for integer types, ``float`` for floats.

    Equality compares the printed value, so NaN equals NaN and 0.0 differs from -0.0.
    """

    value: int | float
    dtype: DType

    @property
    def type(self) -> ScalarType:
        return ScalarType(self.dtype)

    def text(self) -> str:
        """The value as the text form writes it (``inf``, ``-0.0``, ``nan``, ``3``)."""
        v = self.value
        if self.dtype.is_float:
            v = float(v)
            if math.isnan(v):
                return "nan"
            if math.isinf(v):
                return "inf" if v > 0 else "-inf"
            return repr(v)
        return str(int(v))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Const) and (self.text(), self.dtype) == (other.text(), other.dtype)

    def __hash__(self) -> int:
        return hash((self.text(), self.dtype.name))

    def __str__(self) -> str:
        return f"{self.text()}:{self.dtype.name}"


Operand = Union[Var, Const]  # noqa: UP007 - a runtime alias that also works on Python 3.10


@dataclass(frozen=True)
class Instr:
    """``result = op(args) {attrs}``; ``result`` is ``None`` for operations without a value.

    ``attrs`` is a tuple of (name, value) pairs, kept sorted by name; use :meth:`attr` to read one.
    """

    result: Var | None
    op: str
    args: tuple[Operand, ...] = ()
    attrs: tuple[tuple[str, Any], ...] = ()
    loc: Loc | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        # One canonical order, so that equality does not depend on how attributes were listed.
        object.__setattr__(self, "args", tuple(self.args))
        object.__setattr__(self, "attrs", tuple(sorted(self.attrs, key=lambda kv: kv[0])))

    def attr(self, name: str, default: Any = None) -> Any:
        for key, value in self.attrs:
            if key == name:
                return value
        return default

    @property
    def attr_dict(self) -> dict[str, Any]:
        return dict(self.attrs)

    @staticmethod
    def make(result: Var | None, op: str, args: tuple[Operand, ...] | list[Operand] = (),
             loc: Loc | None = None, /, **attrs: Any) -> Instr:
        """Build an instruction, sorting ``attrs`` into their canonical order."""
        return Instr(result, op, tuple(args), tuple(sorted(attrs.items())), loc)


@dataclass(frozen=True)
class Assign:
    """Overwrite an existing variable with an operand of the same type."""

    target: Var
    value: Operand
    loc: Loc | None = field(default=None, compare=False)


@dataclass(frozen=True)
class For:
    """``for var in range(start, stop, step)`` with block-uniform integer bounds.

    ``unroll`` is a hint: ``None`` (the compiler decides), ``True`` (fully) or a factor.
    """

    var: Var
    start: Operand
    stop: Operand
    step: Operand
    body: tuple[Stmt, ...]
    unroll: bool | int | None = None
    loc: Loc | None = field(default=None, compare=False)


@dataclass(frozen=True)
class If:
    """Run ``then_body`` when the block-uniform ``cond`` (a ``u1`` scalar) holds, else
    ``else_body``."""

    cond: Operand
    then_body: tuple[Stmt, ...]
    else_body: tuple[Stmt, ...] = ()
    loc: Loc | None = field(default=None, compare=False)


@dataclass(frozen=True)
class While:
    """Run ``cond_body``, test ``cond``; while it holds run ``body`` and repeat."""

    cond_body: tuple[Stmt, ...]
    cond: Operand
    body: tuple[Stmt, ...]
    loc: Loc | None = field(default=None, compare=False)


Stmt = Union[Instr, Assign, For, If, While]  # noqa: UP007 - as Operand


@dataclass(frozen=True)
class Combine:
    """A combine function written in the DSL (``tv.reduce(x, fn, axis)``): the value of the
    ``combine`` attribute of ``reduce {op = "custom"}``.

    ``fn(params[0], params[1])`` is ``result`` after ``body``, a straight-line sequence of scalar
    elementwise instructions (:data:`~tilevm.ir.tile.ops.COMBINE_OPS`) on the two parameters, the
    instructions' own results and constants; ``params[0]`` is the running value and
    ``params[1]`` the next element, both of the reduction's dtype, as is the result. It reads
    nothing else: no memory, no other variable of the kernel, no control flow, so it can be
    applied anywhere (the interpreter vectorizes it, the lowering repeats it on registers). Its
    variables' names are unique in the kernel but visible only inside it."""

    params: tuple[Var, Var]
    body: tuple[Instr, ...]
    result: Operand

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", tuple(self.params))
        object.__setattr__(self, "body", tuple(self.body))


@dataclass(frozen=True)
class Kernel:
    """A kernel: what one thread block does.

    Attributes:
        name: the kernel's name.
        params: global tensors and run-time scalars, in call order.
        constants: the compile-time constants this program was specialised for, (name, value).
        launch_body: statements computing the grid from the parameters and dimensions.
        grid: one operand per grid axis (1 to 3).
        warps: threads per block / 32.
        body: the block's program. The dimensions named in global shapes are ``i32`` variables in
            scope in ``launch_body`` and ``body`` (see :meth:`dims`).
    """

    name: str
    params: tuple[Var, ...]
    constants: tuple[tuple[str, Any], ...]
    launch_body: tuple[Stmt, ...]
    grid: tuple[Operand, ...]
    warps: int
    body: tuple[Stmt, ...]
    loc: Loc | None = field(default=None, compare=False)

    def dims(self) -> tuple[str, ...]:
        """The run-time dimension names of the global parameters, in order of first use."""
        seen: list[str] = []
        for p in self.params:
            for n in getattr(p.type, "shape", ()):
                if isinstance(n, str) and n not in seen:
                    seen.append(n)
        return tuple(seen)

    def dim_vars(self) -> tuple[Var, ...]:
        """The dimensions as the ``i32`` variables the body reads."""
        from tilevm.ir.dtypes import dtype

        return tuple(Var(d, ScalarType(dtype("i32"))) for d in self.dims())

    def param(self, name: str) -> Var:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(f"kernel {self.name} has no parameter {name!r}")

    def __str__(self) -> str:
        from tilevm.ir.tile.printer import print_kernel

        return print_kernel(self)


def walk(stmts: tuple[Stmt, ...] | list[Stmt]) -> Iterator[Stmt]:
    """Every statement of ``stmts`` and of the blocks nested in them, in program order."""
    for s in stmts:
        yield s
        if isinstance(s, For):
            yield from walk(s.body)
        elif isinstance(s, If):
            yield from walk(s.then_body)
            yield from walk(s.else_body)
        elif isinstance(s, While):
            yield from walk(s.cond_body)
            yield from walk(s.body)

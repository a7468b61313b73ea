"""Layout inference: a register layout for every register tile, conversions where one value needs
two (DESIGN §4).

Rules, in a fixed priority (a lower number wins; at equal priority the first proposal in program
order wins, so the result is deterministic):

0. *user*: layouts the program gives (``layout=``, ``convert_layout``, ``view``) are kept;
1. *dot*: a ``dot``'s accumulator wants its warp tiling over tensor-core atoms
   (:func:`~tilevm.backend.lower.dot_layouts.accumulator_layout`);
2. *global memory*: a global load's result, and the value of a global store or atomic, want the
   coalesced :func:`~tilevm.backend.lower.default_layouts.blocked_layout`;
3. *dot operand*: a ``dot``'s operands want the fragment layouts its accumulator implies
   (:func:`~tilevm.backend.lower.dot_layouts.operand_layouts`) — below global memory, so that an
   operand loaded from global memory is loaded coalesced and converted (listed in the report),
   while one loaded from shared memory is loaded straight into fragments (``ldmatrix``);
5. *default*: the same blocked layout for whatever is left.

(Shared-memory accesses have no preference and take their partner's layout.) A layout propagates at
the priority of its origin: an elementwise result takes its highest-priority operand's layout and
gives it back to the others (a broadcast operand gets the layout *reduced* over the broadcast
dimensions, so each thread holds what it needs); ``reduce``, ``transpose``, ``reshape`` and
``bitcast`` map layouts through the algebra both ways where it can; ``assign`` (loop-carried
values, ``if`` merges) ties its two sides. Sweeps forward and backward repeat until nothing changes
(a bounded number of times: a layout only ever moves up in priority). A cast of an operand made by
``view`` into f16/bf16 whose fast sequence emits another order takes the result layout that makes
that order natural (:mod:`~tilevm.backend.lower.cast_order`).

Then every operand whose layout differs from what its instruction needs gets an explicit
``convert_layout`` before the instruction (or after it, for an instruction whose result layout
follows from its operand's); each is listed with the user's line and the two layouts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from tilevm.backend.lower.cast_order import free_cast_operand_layout, free_cast_result_layout
from tilevm.backend.lower.default_layouts import blocked_layout
from tilevm.backend.lower.dot_layouts import (
    DotShape,
    accumulator_layout,
    dot_shape,
    operand_layouts,
    whole_atoms,
)
from tilevm.backend.lower.errors import lowering_error
from tilevm.ir.layout import algebra
from tilevm.ir.layout.algebra import local
from tilevm.ir.layout.register import RegisterLayout
from tilevm.ir.tile.ops import BINARY_OPS, COMPARE_OPS, UNARY_OPS, dot_rule_of, reduce_axes
from tilevm.ir.tile.program import Assign, For, If, Instr, Kernel, Loc, Stmt, Var, While
from tilevm.ir.tile.types import TensorType

__all__ = ["Conversion", "Inferred", "infer_layouts", "project"]

USER, DOT, GLOBAL, DOT_OPERAND, SHARED, DEFAULT = range(6)
PRIORITY_NAMES = {USER: "given by the program", DOT: "dot", GLOBAL: "global memory",
                  DOT_OPERAND: "dot operand", SHARED: "shared memory", DEFAULT: "default"}
ELEMENTWISE = frozenset((*UNARY_OPS, *BINARY_OPS, *COMPARE_OPS, "where", "fma", "cast", "copy"))
_MAX_SWEEPS = 12


@dataclass(frozen=True)
class Conversion:
    """A ``convert_layout`` the inference inserted: where, of what, between which layouts."""

    loc: Loc | None
    value: str
    source: RegisterLayout
    target: RegisterLayout
    why: str
    result: str  # the variable the conversion defines


@dataclass(frozen=True)
class Inferred:
    """The result of layout inference: the kernel with layouts and conversions, the conversions
    it inserted, and for each register tile where its layout came from."""

    kernel: Kernel
    conversions: list[Conversion]
    origins: dict[str, str]


@dataclass
class _Choice:
    layout: RegisterLayout
    priority: int
    origin: str


def _is_tile(x: object) -> bool:
    return isinstance(x, Var) and isinstance(x.type, TensorType) and x.type.scope == "reg"


def project(layout: RegisterLayout, shape: tuple[int, ...]) -> RegisterLayout:
    """The layout an operand of ``shape`` needs to be broadcast (numpy's rules) against a result
    in ``layout``: each thread holds the operand elements its result elements read."""
    rank = layout.rank
    padded = (1,) * (rank - len(shape)) + tuple(shape)
    if padded == layout.shape:
        return layout
    dims = [d for d in range(rank) if padded[d] == 1 and layout.shape[d] != 1]
    reduced = algebra.reduce(layout, dims, keepdims=True) if dims else layout
    return algebra.reshape(reduced, shape) if shape != reduced.shape else reduced


def _where(loc: Loc | None) -> str:
    return f" at {loc}" if loc is not None else ""


def _bitcast_forward(x: RegisterLayout, a: int, b: int) -> RegisterLayout | None:
    """The layout of ``bitcast`` from ``a``-bit to ``b``-bit elements of a tile in ``x``: each
    thread's groups of ``lcm(a, b)`` bits along the last dimension stay in the thread, so ``x``
    must end in a local run of ``lcm/a`` elements, which becomes a run of ``lcm/b``."""
    if a == b:
        return x
    ones = (1,) * (x.rank - 1)
    group = math.lcm(a, b)
    try:
        outer = algebra.divide(x, local(*ones, group // a)) if group > a else x
    except ValueError:
        return None
    return outer * local(*ones, group // b) if group > b else outer


def _bitcast_groups(shape: tuple[int, ...], a: int, b: int, warps: int) -> RegisterLayout:
    """A layout of a bitcast's operand that always works: the blocked layout of its groups of
    ``lcm(a, b)`` bits, each group's elements in one thread."""
    group = math.lcm(a, b)
    groups = shape[-1] * b // group
    outer = blocked_layout((*shape[:-1], groups), group, warps)
    return outer * local(*(1,) * (len(shape) - 1), group // a)


def _bitcast_backward(r: RegisterLayout, a: int, b: int) -> RegisterLayout | None:
    return _bitcast_forward(r, b, a)


class _Inference:
    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.warps = kernel.warps
        self.choice: dict[str, _Choice] = {}
        self.types: dict[str, TensorType] = {}
        self.changed = False

    # -- bookkeeping -------------------------------------------------------------------------------

    def propose(self, var: object, layout: RegisterLayout | None, priority: int,
                origin: str) -> None:
        if layout is None or not _is_tile(var):
            return
        assert isinstance(var, Var)
        if tuple(layout.shape) != tuple(var.type.shape):
            return
        old = self.choice.get(var.name)
        if old is None or priority < old.priority:
            self.choice[var.name] = _Choice(layout, priority, origin)
            self.changed = True

    def get(self, var: object) -> _Choice | None:
        return self.choice.get(var.name) if _is_tile(var) else None

    def blocked(self, var: Var) -> RegisterLayout:
        t = var.type
        return blocked_layout(tuple(t.shape), t.dtype.nbits, self.warps)

    # -- the walk ----------------------------------------------------------------------------------

    def statements(self, stmts: tuple[Stmt, ...]) -> Iterator[Stmt]:
        for s in stmts:
            if isinstance(s, For):
                yield from self.statements(s.body)
            elif isinstance(s, If):
                yield from self.statements(s.then_body)
                yield from self.statements(s.else_body)
            elif isinstance(s, While):
                yield from self.statements(s.cond_body)
                yield from self.statements(s.body)
            else:
                yield s

    def seed(self, flat: list[Stmt]) -> None:
        for s in flat:
            if not isinstance(s, Instr) or s.result is None or not _is_tile(s.result):
                continue
            self.types[s.result.name] = s.result.type
            given = s.result.type.layout
            if given is not None:
                self.check_threads(given, s)
                self.propose(s.result, given, USER, f"{s.op}{_where(s.loc)}")
            elif s.op == "load" and s.args[0].type.scope == "global":
                self.propose(s.result, self.blocked(s.result), GLOBAL,
                             f"global load{_where(s.loc)}")
            elif s.op == "dot" and _tensor_core_dot(s):
                self.propose(s.result, accumulator_layout(tuple(s.result.type.shape), _dot_atom(s),
                                                          self.warps), DOT, f"dot{_where(s.loc)}")
        for p in self.kernel.params:
            if _is_tile(p):  # parameters are global: never register tiles
                raise AssertionError(p)

    def check_threads(self, layout: RegisterLayout, s: Instr) -> None:
        want = 32 * self.warps
        if layout.num_threads != want:
            raise lowering_error(
                f"{s.op}: the layout {layout!r} spreads over {layout.num_threads} threads, but "
                f"the kernel has {self.warps} warps = {want} threads; a register layout must "
                f"cover every thread of the block (replicate with replicated(n) where fewer "
                f"threads hold distinct elements)", s.loc)

    def follow(self, dst: object, src: object, mapping: Callable[[RegisterLayout],
                                                                  RegisterLayout | None]) -> None:
        """Propose for ``dst`` the image of ``src``'s layout (if it has one) under ``mapping``,
        at ``src``'s priority and origin."""
        c = self.get(src)
        if c is not None:
            self.propose(dst, mapping(c.layout), c.priority, c.origin)

    def forward(self, s: Stmt) -> None:
        if isinstance(s, Assign):
            self.follow(s.target, s.value, lambda x: x)
            return
        assert isinstance(s, Instr)
        r = s.result
        if s.op == "cast" and self.free_order_cast(s):
            c = self.get(s.args[0])
            self.propose(r, free_cast_result_layout(c.layout, s.args[0].type.dtype,
                                                    r.type.dtype), c.priority, c.origin)
        elif s.op in ELEMENTWISE and _is_tile(r):
            same_shape = [a for a in s.args
                          if self.get(a) is not None and tuple(a.type.shape) == tuple(r.type.shape)]
            if same_shape:  # the first of the highest priority
                self.follow(r, min(same_shape, key=lambda a: self.get(a).priority), lambda x: x)
        elif s.op == "reduce" and _is_tile(r):
            self.follow(r, s.args[0], lambda x: algebra.reduce(x, reduce_axes(s.attr("axis")),
                                                               s.attr("keepdims")))
        elif s.op == "transpose":
            self.follow(r, s.args[0], lambda x: algebra.permute(x, self.perm(s)))
        elif s.op == "reshape":
            self.follow(r, s.args[0], lambda x: _try(algebra.reshape, x, tuple(r.type.shape)))
        elif s.op == "bitcast" and _is_tile(r):
            a, b = s.args[0].type.dtype.nbits, r.type.dtype.nbits
            self.follow(r, s.args[0], lambda x: _bitcast_forward(x, a, b))
        elif s.op == "atomic" and _is_tile(r):
            self.follow(r, s.args[1], lambda x: x)
        elif s.op == "dot":  # a pinned accumulator pins the result
            self.follow(r, s.args[2], lambda x: x)

    def free_order_cast(self, s: Instr) -> bool:
        """A cast of an operand whose layout the program gave (a ``view`` of prepared weights)
        into a type whose fast cast emits another order: its result takes the layout that makes
        that order the result's (:mod:`~tilevm.backend.lower.cast_order`)."""
        c = self.get(s.args[0])
        return (c is not None and c.priority == USER and _is_tile(s.result)
                and free_cast_result_layout(c.layout, s.args[0].type.dtype,
                                            s.result.type.dtype) is not None)

    def backward(self, s: Stmt) -> None:
        if isinstance(s, Assign):
            self.follow(s.value, s.target, lambda x: x)
            return
        assert isinstance(s, Instr)
        r = s.result
        if r is not None and self.get(r) is not None:
            if s.op in ELEMENTWISE:
                for a in s.args:
                    if _is_tile(a):
                        shape = tuple(a.type.shape)
                        self.follow(a, r, lambda x, shape=shape: _try(project, x, shape))
            elif s.op == "broadcast":
                shape = tuple(s.args[0].type.shape)
                self.follow(s.args[0], r, lambda x: _try(project, x, shape))
            elif s.op == "transpose":
                inverse = [0] * len(self.perm(s))
                for i, p in enumerate(self.perm(s)):
                    inverse[p] = i
                self.follow(s.args[0], r, lambda x: algebra.permute(x, inverse))
            elif s.op == "reshape":
                shape = tuple(s.args[0].type.shape)
                self.follow(s.args[0], r, lambda x: _try(algebra.reshape, x, shape))
            elif s.op == "bitcast" and _is_tile(s.args[0]):
                a, b = s.args[0].type.dtype.nbits, r.type.dtype.nbits
                self.follow(s.args[0], r, lambda x: _bitcast_backward(x, a, b))
            elif s.op == "dot" and _tensor_core_dot(s):
                self.follow(s.args[2], r, lambda x: x)
                operands = _try(_dot_operands, s, self.get(r).layout)
                if operands is not None:
                    for x, layout in zip(s.args[:2], operands, strict=True):
                        self.propose(x, layout, DOT_OPERAND, f"dot operand{_where(s.loc)}")
        if s.op in ("store", "atomic") and _is_tile(s.args[1]):
            value = s.args[1]
            if r is not None:  # an atomic's old values and its operand share the layout
                self.follow(value, r, lambda x: x)
            if s.args[0].type.scope == "global":
                self.propose(value, self.blocked(value), GLOBAL, f"global {s.op}{_where(s.loc)}")
        if s.op in ("load", "store", "atomic") and s.attr("mask") == "tile":
            tile = r if s.op == "load" else s.args[1]
            shape = tuple(s.args[-1].type.shape)
            self.follow(s.args[-1], tile, lambda x: _try(project, x, shape))
        for k in _index_tiles(s):  # index tiles, like masks, are read where the tile is
            tile = r if s.op == "load" else s.args[1]
            shape = tuple(s.args[k].type.shape)
            self.follow(s.args[k], tile, lambda x, shape=shape: _try(project, x, shape))

    @staticmethod
    def perm(s: Instr) -> tuple[int, ...]:
        p = s.attr("perm")
        return tuple(p) if p is not None else tuple(reversed(range(s.args[0].type.rank)))

    # -- the pass ----------------------------------------------------------------------------------

    def run(self) -> Inferred:
        flat = list(self.statements(self.kernel.body))
        self.seed(flat)
        for _ in range(_MAX_SWEEPS):
            self.changed = False
            for s in flat:
                self.forward(s)
            for s in reversed(flat):
                self.backward(s)
            if not self.changed:
                break
        for s in flat:  # whatever no rule reached
            if isinstance(s, Instr) and s.result is not None and _is_tile(s.result):
                self.propose(s.result, self.blocked(s.result), DEFAULT, "default")
        rewriter = _Rewriter(self)
        body = rewriter.block(self.kernel.body)
        return Inferred(replace(self.kernel, body=body), rewriter.conversions,
                        {name: f"{c.origin}, {PRIORITY_NAMES[c.priority]}"
                         for name, c in self.choice.items()})


def _index_tiles(s: Instr) -> list[int]:
    """The positions of the index tiles among the offsets of a ``load``, ``store`` or
    ``atomic`` of a tile (a gather or scatter); empty for other instructions."""
    if s.op not in ("load", "store", "atomic"):
        return []
    first = 1 if s.op == "load" else 2
    rank = s.args[0].type.rank
    return [k for k in range(first, first + rank) if _is_tile(s.args[k])]


def _tensor_core_dot(s: Instr) -> bool:
    """A ``dot`` that runs on tensor-core atoms in registers (not padded, not the fma path)."""
    atom = _dot_atom(s)
    return atom.instruction is not None and whole_atoms(s, atom)


def _dot_atom(s: Instr) -> DotShape:
    return dot_shape(dot_rule_of(s))


def _dot_operands(s: Instr, acc: RegisterLayout) -> tuple[RegisterLayout, RegisterLayout]:
    return operand_layouts(acc, s.args[0].type.shape[1], _dot_atom(s))


def _try(fn: Callable[..., Any], *args: object) -> Any:
    try:
        return fn(*args)
    except ValueError:
        return None


class _Rewriter:
    """Puts the chosen layouts into the types and inserts the conversions."""

    def __init__(self, inference: _Inference) -> None:
        self.inf = inference
        self.conversions: list[Conversion] = []
        self.vars: dict[str, Var] = {}
        self.counter = 0

    def typed(self, x: object) -> object:
        if not _is_tile(x):
            return x
        assert isinstance(x, Var)
        c = self.inf.choice[x.name]
        return Var(x.name, TensorType(x.type.dtype, x.type.shape, "reg", c.layout))

    def fresh(self, base: str) -> str:
        self.counter += 1
        return f"{base}.cvt{self.counter}"

    def convert(self, operand: Var, target: RegisterLayout, loc: Loc | None, why: str,
                out: list[Stmt]) -> Var:
        """``operand`` in ``target`` (a new ``convert_layout`` appended to ``out`` if needed)."""
        typed = self.typed(operand)
        assert isinstance(typed, Var)
        if typed.type.layout == target:
            return typed
        new = Var(self.fresh(operand.name), replace(typed.type, layout=target))
        out.append(Instr.make(new, "convert_layout", [typed], loc, layout=target))
        self.conversions.append(Conversion(loc, operand.name, typed.type.layout, target, why,
                                           new.name))
        return new

    def block(self, stmts: tuple[Stmt, ...]) -> tuple[Stmt, ...]:
        out: list[Stmt] = []
        for s in stmts:
            if isinstance(s, For):
                out.append(replace(s, body=self.block(s.body)))
            elif isinstance(s, If):
                out.append(replace(s, then_body=self.block(s.then_body),
                                   else_body=self.block(s.else_body)))
            elif isinstance(s, While):
                out.append(replace(s, cond_body=self.block(s.cond_body), body=self.block(s.body)))
            elif isinstance(s, Assign):
                value = s.value
                if _is_tile(value):
                    target = self.inf.choice[s.target.name].layout
                    value = self.convert(value, target, s.loc, "a loop-carried or merged value "
                                         "keeps one layout", out)
                out.append(Assign(self.typed(s.target), value, s.loc))
            else:
                self.instr(s, out)
        return tuple(out)

    def instr(self, s: Instr, out: list[Stmt]) -> None:
        r = s.result
        args = [self.typed(a) for a in s.args]
        result = self.typed(r) if r is not None else None
        want = result.type.layout if result is not None and _is_tile(result) else None
        natural = None
        free = (free_cast_operand_layout(want, s.args[0].type.dtype, r.type.dtype)
                if s.op == "cast" and want is not None else None)
        if free is not None and args[0].type.layout == free:
            pass  # the fast cast's own order: no conversion
        elif s.op in ELEMENTWISE and want is not None:
            for k, a in enumerate(s.args):
                if _is_tile(a):
                    args[k] = self.convert(a, project(want, tuple(a.type.shape)), s.loc,
                                           f"operand {k} of {s.op}", out)
        elif s.op == "broadcast" and _is_tile(s.args[0]):
            args[0] = self.convert(s.args[0], project(want, tuple(s.args[0].type.shape)), s.loc,
                                   "broadcast operand", out)
        elif s.op == "atomic" and _is_tile(s.args[1]) and want is not None:
            args[1] = self.convert(s.args[1], want, s.loc, "atomic value", out)
        elif s.op == "dot" and _tensor_core_dot(s):
            try:
                operands = _dot_operands(s, want)
            except ValueError as e:
                raise lowering_error(
                    f"dot: the accumulator's layout {want!r} does not divide by the tensor-core "
                    f"atom's accumulator fragment ({e}); pin a layout made of whole atoms, or "
                    f"leave it to inference", s.loc) from e
            for k, (x, layout) in enumerate(zip(s.args, (*operands, want), strict=True)):
                args[k] = self.convert(x, layout, s.loc, f"operand {'ab'[k] if k < 2 else 'acc'} "
                                       f"of dot", out)
        elif s.op == "reduce" and want is not None:
            natural = algebra.reduce(args[0].type.layout, reduce_axes(s.attr("axis")),
                                     s.attr("keepdims"))
        elif s.op == "transpose":
            natural = algebra.permute(args[0].type.layout, self.inf.perm(s))
        elif s.op == "reshape":
            natural = _try(algebra.reshape, args[0].type.layout, tuple(r.type.shape))
            if natural is None:  # the operand's layout has no reshaped form: convert it first
                back = _try(algebra.reshape, want, tuple(s.args[0].type.shape))
                if back is not None:
                    args[0] = self.convert(s.args[0], back, s.loc, "reshape operand", out)
                    natural = want
        elif s.op == "bitcast" and want is not None:
            a, b = s.args[0].type.dtype.nbits, r.type.dtype.nbits
            natural = _bitcast_forward(args[0].type.layout, a, b)
            if natural is None:
                back = _bitcast_backward(want, a, b)
                if back is None:  # no layout of the operand bitcasts to `want`: go via groups
                    back = _bitcast_groups(tuple(r.type.shape), a, b, self.inf.warps)
                args[0] = self.convert(s.args[0], back, s.loc, "bitcast operand", out)
                natural = _bitcast_forward(back, a, b)
        if s.op in ("load", "store", "atomic") and s.attr("mask") == "tile":
            tile = result if s.op == "load" else args[1]
            if _is_tile(tile):
                args[-1] = self.convert(s.args[-1], project(tile.type.layout,
                                                            tuple(s.args[-1].type.shape)),
                                        s.loc, f"mask of {s.op}", out)
        if s.op == "copy_async" and s.attr("mask") == "tile":
            dst, shape = s.args[0].type, tuple(s.args[-1].type.shape)
            if shape != tuple(dst.shape):  # the copy's own layout, reduced for the mask
                full = blocked_layout(tuple(dst.shape), dst.dtype.nbits, self.inf.warps,
                                      spread=False)
                args[-1] = self.convert(s.args[-1], project(full, shape), s.loc,
                                        "mask of copy_async", out)
        for k in _index_tiles(s):
            tile = result if s.op == "load" else args[1]
            args[k] = self.convert(s.args[k], project(tile.type.layout,
                                                      tuple(s.args[k].type.shape)),
                                   s.loc, f"index tile of {s.op}", out)
        if natural is not None and want is not None and natural != want:
            temp = Var(self.fresh(r.name), replace(result.type, layout=natural))
            out.append(Instr(temp, s.op, tuple(args), s.attrs, s.loc))
            out.append(Instr.make(result, "convert_layout", [temp], s.loc, layout=want))
            self.conversions.append(Conversion(s.loc, r.name, natural, want,
                                               f"result of {s.op}", r.name))
            return
        out.append(Instr(result, s.op, tuple(args), s.attrs, s.loc))


def infer_layouts(kernel: Kernel) -> Inferred:
    """``kernel`` with a register layout in the type of every register tile and
    ``convert_layout`` instructions where needed (see the module docstring), the conversions it
    inserted and where each layout came from. Raises a
    :class:`~tilevm.backend.lower.errors.LoweringError` at the user's line for a layout that does
    not fit the block."""
    return _Inference(kernel).run()


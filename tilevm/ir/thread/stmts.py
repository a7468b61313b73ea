"""Statements and kernels of Thread IR: instructions, structured control flow, the kernel.

Control flow is structured: :class:`If`, :class:`For` and :class:`While` own their bodies. Each
says whether its condition or trip count is *block-uniform* (the same for every thread of the
block): only block-uniform control flow may contain ``bar.sync``, and the CPU backend drives it
around the block's phases; other control flow runs under an active mask. A :class:`For` marked
``unroll`` has constant bounds, is unrolled by the CUDA printer (``#pragma unroll``) and its
variable may index register arrays.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tilevm.ir.thread.types import ScalarType, Type
from tilevm.ir.thread.values import Const, Dest, Operand, Reg, RegArray

if TYPE_CHECKING:
    from tilevm.ir.thread.intrinsics.base import Intrinsic

__all__ = ["For", "If", "Instr", "Kernel", "Param", "Stmt", "While", "walk"]


@dataclass(eq=False)
class Instr:
    """One intrinsic applied: ``[@guard] dst = op.type args`` with modifiers.

    Attributes:
        op: the intrinsic (a singleton from :data:`tilevm.ir.thread.intrinsics.INTRINSICS`);
            backends dispatch on ``op.name``.
        dst: the register or array element written, or ``None``.
        args: operands, in the intrinsic's documented order.
        type: the PTX instruction type (``.s32`` in ``add.s32``), or ``None`` where the
            intrinsic has none.
        mods: modifiers, keys and meanings documented on the intrinsic.
        guard: an optional ``pred`` register; the instruction runs where it holds (or, with
            ``guard_negated``, where it does not), as PTX's ``@p`` / ``@!p``.
        loc: where the instruction came from (the user's line), for diagnostics.
        origin: the id of the Tile IR instruction this one was lowered from, or ``None``
            (tooling: compile reports, the sanitizer's messages; not part of the text dump).
    """

    op: Intrinsic
    dst: Dest | None
    args: tuple[Operand, ...]
    type: ScalarType | None = None
    mods: dict[str, Any] = field(default_factory=dict)
    guard: Reg | None = None
    guard_negated: bool = False
    loc: str | None = None
    origin: int | None = None

    def mod(self, key: str, default: Any = None) -> Any:
        return self.mods.get(key, default)

    @property
    def mnemonic(self) -> str:
        """The full PTX opcode with modifiers, e.g. ``mma.sync.aligned.m16n8k16.row.col…``."""
        return self.op.mnemonic(self)


@dataclass(eq=False)
class If:
    """``if cond { then_body } else { else_body }``; ``cond`` is a ``pred``.

    ``uniform=True`` promises every thread of the block takes the same branch (required around a
    ``bar.sync``). ``loc`` and ``origin`` as for :class:`Instr`.
    """

    cond: Operand
    then_body: list[Stmt] = field(default_factory=list)
    else_body: list[Stmt] = field(default_factory=list)
    uniform: bool = False
    loc: str | None = None
    origin: int | None = None


@dataclass(eq=False)
class For:
    """``for var = start; var < stop; var += step { body }`` (signed compare; ``step`` > 0).

    ``var`` is an ``s32`` or ``u32`` register owned by the loop. ``unroll=True`` needs int
    ``start``/``stop``; ``uniform=True`` promises the trip count is the same in every thread of
    the block (required around a ``bar.sync``; an unroll loop, with its constant bounds, is
    uniform wherever it is reached under block-uniform control flow). ``loc`` and ``origin`` as
    for :class:`Instr`.
    """

    var: Reg
    start: Operand | int
    stop: Operand | int
    step: int
    body: list[Stmt] = field(default_factory=list)
    unroll: bool = False
    uniform: bool = False
    loc: str | None = None
    origin: int | None = None


@dataclass(eq=False)
class While:
    """``loop { cond_body; if (!cond) break; body }``: ``cond`` (a ``pred`` operand, usually
    computed by ``cond_body``) is tested after ``cond_body`` in every iteration, before ``body``.

    ``uniform=True`` promises every thread of the block takes the same number of iterations
    (required around a ``bar.sync``, in either body). A non-uniform loop runs each lane until its
    own ``cond`` fails: lanes leave at different iterations, the loop ends when none is left (a
    per-thread compare-and-swap retry loop is written this way). ``loc`` and ``origin`` as for
    :class:`Instr`.
    """

    cond_body: list[Stmt]
    cond: Operand
    body: list[Stmt] = field(default_factory=list)
    uniform: bool = False
    loc: str | None = None
    origin: int | None = None


Stmt = Instr | If | For | While


@dataclass(eq=False)
class Param:
    """A kernel parameter: a register set at launch. ``pointer=True`` marks a global address
    (``u64``); the CPU backend passes host addresses there."""

    reg: Reg
    pointer: bool = False

    @property
    def name(self) -> str:
        return self.reg.name

    @property
    def type(self) -> Type:
        return self.reg.type


@dataclass(eq=False)
class Kernel:
    """A Thread IR kernel: what each thread of a block of ``block_threads`` threads executes.

    Attributes:
        name: the kernel's symbol (``extern "C"`` name on the GPU).
        params: parameters in launch order.
        body: the statements.
        block_threads: threads per block (a multiple of 32, at most 1024; one dimension).
        shared_bytes: bytes of dynamic shared memory; ``shared_base`` gives its address.
        local_bytes: bytes of local memory per thread; ``local_base`` gives its address.
        arrays: the register arrays the body uses (declared up front, like CUDA locals).
    """

    name: str
    params: list[Param]
    body: list[Stmt]
    block_threads: int
    shared_bytes: int = 0
    local_bytes: int = 0
    arrays: list[RegArray] = field(default_factory=list)

    def registers(self) -> list[Reg]:
        """Every register the kernel mentions (params first), each once, in first-use order."""
        seen: dict[int, Reg] = {}
        for p in self.params:
            seen.setdefault(id(p.reg), p.reg)

        def add(x: object) -> None:
            if isinstance(x, Reg):
                seen.setdefault(id(x), x)

        for s in walk(self.body):
            if isinstance(s, Instr):
                if s.guard is not None:
                    add(s.guard)
                for a in s.args:
                    add(a)
                add(s.dst)
            elif isinstance(s, If | While):
                add(s.cond)
            else:
                add(s.var)
                add(s.start)
                add(s.stop)
        return list(seen.values())

    def __str__(self) -> str:
        from tilevm.ir.thread.printer import dump

        return dump(self)


def walk(body: list[Stmt]) -> Iterator[Stmt]:
    """Every statement of ``body``, nested ones included, in program order (pre-order; a
    :class:`While`'s ``cond_body`` before its ``body``)."""
    for s in body:
        yield s
        if isinstance(s, If):
            yield from walk(s.then_body)
            yield from walk(s.else_body)
        elif isinstance(s, For):
            yield from walk(s.body)
        elif isinstance(s, While):
            yield from walk(s.cond_body)
            yield from walk(s.body)


_ = Const

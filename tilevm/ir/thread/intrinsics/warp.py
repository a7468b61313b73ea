"""Barriers, warp collectives, warp-level matrix instructions and special registers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tilevm.ir.thread.intrinsics.base import Intrinsic, register
from tilevm.ir.thread.types import B32, PRED, U32, vector

if TYPE_CHECKING:
    from tilevm.ir.thread.stmts import Instr

__all__ = ["MMA_SHAPES", "SPECIAL_REGISTERS", "Activemask", "BarSync", "BarWarpSync", "Ldmatrix",
           "Mma", "ShflSync", "SpecialReg", "VoteSync"]


@register
class BarSync(Intrinsic):
    """``bar.sync id`` (= ``barrier.sync.aligned``; PTX ISA, Parallel Synchronization and
    Communication Instructions: ``bar``): waits until every thread of the block has arrived at
    barrier ``id`` (modifier ``id``, default 0); memory accesses before it are visible to the block
    after it. ``.aligned``: every thread of a warp executes the same ``bar.sync``, so it must be
    reached with a full active mask and only under block-uniform control flow. Scope block; sm_50,
    PTX 1.0."""

    name = "bar.sync"
    scope = "block"
    ptx_isa = (1, 0)
    aligned = True
    has_result = False

    def check(self, instr: Instr) -> None:
        super().check(instr)
        self.expect_arity(instr, 0)
        self.expect(instr.mod("id", 0) == 0, instr, "only barrier 0 is supported")

    def mnemonic(self, instr: Instr) -> str:
        return "bar.sync"


@register
class BarWarpSync(Intrinsic):
    """``bar.warp.sync membermask`` (PTX ISA, Parallel Synchronization and Communication
    Instructions: ``bar.warp.sync``): the lanes in ``membermask`` (``u32``) wait for each other;
    every executing lane must be in the mask. Scope warp; sm_50, PTX 6.0."""

    name = "bar.warp.sync"
    scope = "warp"
    has_result = False

    def check(self, instr: Instr) -> None:
        super().check(instr)
        self.expect_arity(instr, 1)
        self.expect_operand(instr, 0, U32, "membermask")

    def mnemonic(self, instr: Instr) -> str:
        return self.name


SHFL_MODES = ("idx", "up", "down", "bfly")


@register
class ShflSync(Intrinsic):
    """``shfl.sync.mode.b32 d, a, b, c, membermask`` (PTX ISA, "Data Movement and Conversion
    Instructions: shfl.sync").

    With ``bval = b & 31``, ``cval = c & 31`` (clamp) and ``mask = (c >> 8) & 31`` (segment
    mask), lane ``i`` computes ``maxLane = (i & mask) | (cval & ~mask)``, ``minLane = i & mask``
    and a source lane ``j``: ``up``: ``i - bval``, valid if ``j >= maxLane``; ``down``:
    ``i + bval``, valid if ``j <= maxLane``; ``bfly``: ``i ^ bval``, valid if ``j <= maxLane``;
    ``idx``: ``minLane | (bval & ~mask)``, valid if ``j <= maxLane``. An invalid ``j`` becomes
    ``i``; ``d = a`` of lane ``j`` (undefined if lane ``j`` is inactive; tilevm: lane ``j``'s
    register anyway). Each executing lane must be in its ``membermask``, and every lane it names
    must execute this instruction with the same ``membermask`` (so the executing lanes form one
    or more groups). Operands ``(a, b, c, membermask)``, ``b``/``c``/``membermask`` ``u32``.
    Scope warp; sm_50, PTX 6.0.
    """

    name = "shfl.sync"
    scope = "warp"

    def check(self, instr: Instr) -> None:
        super().check(instr)
        self.expect_arity(instr, 4)
        self.expect(instr.mod("mode") in SHFL_MODES, instr, f"mode must be one of {SHFL_MODES}")
        self.expect_type(instr, ("b32",))
        self.expect_operand(instr, 0, B32, "a")
        for i, what in ((1, "b"), (2, "c"), (3, "membermask")):
            self.expect_operand(instr, i, U32, what)
        self.expect_dst(instr, B32)

    def mnemonic(self, instr: Instr) -> str:
        return f"shfl.sync.{instr.mod('mode')}.b32"


VOTE_MODES = ("all", "any", "uni", "ballot")


@register
class VoteSync(Intrinsic):
    """``vote.sync.mode d, a, membermask`` (PTX ISA, Parallel Synchronization and Communication
    Instructions: ``vote.sync``): over the lanes of the lane's ``membermask`` (which must form a
    group, as for :class:`ShflSync`), ``all``/``any``/``uni`` give a ``pred`` (``uni``: all
    equal); ``ballot`` gives a ``b32`` whose bit ``i`` is ``a`` of lane ``i`` of the group (0 for
    other lanes). Operands ``(a: pred, membermask:
    u32)``. Scope warp; sm_50, PTX 6.0."""

    name = "vote.sync"
    scope = "warp"

    def check(self, instr: Instr) -> None:
        super().check(instr)
        self.expect_arity(instr, 2)
        mode = instr.mod("mode")
        self.expect(mode in VOTE_MODES, instr, f"mode must be one of {VOTE_MODES}")
        self.expect_operand(instr, 0, PRED, "a")
        self.expect_operand(instr, 1, U32, "membermask")
        self.expect_dst(instr, B32 if mode == "ballot" else PRED)

    def mnemonic(self, instr: Instr) -> str:
        mode = instr.mod("mode")
        return f"vote.sync.{mode}.{'b32' if mode == 'ballot' else 'pred'}"


@register
class Activemask(Intrinsic):
    """``activemask.b32 d`` (PTX ISA, Parallel Synchronization and Communication Instructions:
    ``activemask``): bit ``i`` of ``d`` is set iff lane ``i`` is executing this instruction. Scope
    warp; sm_50, PTX 6.2."""

    name = "activemask"
    scope = "warp"
    ptx_isa = (6, 2)

    def check(self, instr: Instr) -> None:
        super().check(instr)
        self.expect_arity(instr, 0)
        self.expect_dst(instr, B32)

    def mnemonic(self, instr: Instr) -> str:
        return "activemask.b32"


@register
class Ldmatrix(Intrinsic):
    """``ldmatrix.sync.aligned.m8n8.xN{.trans}.shared.b16 d, [a]`` (PTX ISA, Warp Level Matrix
    Multiply-Accumulate Instructions: ``ldmatrix``).

    Loads N (modifier ``num``: 1, 2, 4) 8x8 matrices of 16-bit elements from shared memory. Lanes
    ``8q..8q+7`` give the row addresses (16 bytes each, 16-byte aligned) of matrix ``q``
    (lanes 0–7 only for x1, 0–15 for x2). Fragment: lane ``i`` receives in ``d[q]`` the elements
    (row ``i // 4``, columns ``2*(i % 4)`` and ``+1``) of matrix ``q``, the lower column in the
    low half; with ``trans`` it receives matrix ``q`` transposed, i.e. elements (row
    ``2*(i % 4)`` and ``+1``, column ``i // 4``). ``d`` is ``b32``, ``b32v2`` or ``b32v4``.
    ``.aligned``: needs the full warp. Scope warp; sm_75, PTX 6.5.
    """

    name = "ldmatrix"
    scope = "warp"
    min_arch = 75
    ptx_isa = (6, 5)
    aligned = True

    def check(self, instr: Instr) -> None:
        super().check(instr)
        self.expect_arity(instr, 1)
        num = instr.mod("num")
        self.expect(num in (1, 2, 4), instr, f"num must be 1, 2 or 4, got {num!r}")
        self.expect_operand(instr, 0, U32, "shared address")
        self.expect_dst(instr, B32 if num == 1 else vector(B32, num))

    def mnemonic(self, instr: Instr) -> str:
        trans = ".trans" if instr.mod("trans") else ""
        return f"ldmatrix.sync.aligned.m8n8.x{instr.mod('num')}{trans}.shared.b16"


# (shape, a/b type) -> (accumulator type, minimum arch, PTX ISA)
MMA_SHAPES: dict[tuple[str, str], tuple[str, int, tuple[int, int]]] = {
    ("m16n8k16", "f16"): ("f32", 80, (7, 0)),
    ("m16n8k16", "bf16"): ("f32", 80, (7, 0)),
    ("m16n8k32", "s8"): ("s32", 80, (7, 0)),
    ("m16n8k32", "u8"): ("s32", 80, (7, 0)),
    ("m16n8k32", "e4m3"): ("f32", 89, (8, 4)),
    ("m16n8k32", "e5m2"): ("f32", 89, (8, 4)),
}


@register
class Mma(Intrinsic):
    """``mma.sync.aligned.shape.row.col.dtype.atype.btype.ctype d, a, b, c`` (PTX ISA, Warp Level
    Matrix Multiply-Accumulate Instructions: ``mma``; fragments in "Matrix Fragments for
    mma.m16n8k16" and "... for mma.m16n8k32").

    ``D = A·B + C`` for a 16xK row-major ``A``, Kx8 column-major ``B`` and 16x8 ``C``/``D``,
    spread over the warp: ``a`` is ``b32v4`` (8 16-bit or 16 8-bit elements per lane), ``b`` is
    ``b32v2``, ``c`` and ``d`` are ``f32v4`` (``s32v4`` for s8/u8). With ``g = lane // 4``,
    ``t = lane % 4``: A element ``a_i`` of a lane is at row ``g + 8*((i // 2) % 2)`` for 16-bit
    (``g + 8*((i // 4) % 2)`` for 8-bit), column ``2t + (i % 2) + 8*(i // 4)`` for 16-bit
    (``4t + (i % 4) + 16*(i // 8)`` for 8-bit); B element ``b_i`` at row ``2t + (i % 2) + 8*(i //
    2)`` (8-bit: ``4t + (i % 4) + 16*(i // 4)``), column ``g``; C/D element ``c_i`` at row
    ``g + 8*(i // 2)``, column ``2t + (i % 2)``. Modifiers ``shape`` (m16n8k16 / m16n8k32) and
    ``atype`` (f16, bf16; s8, u8; e4m3, e5m2; B has the same type); ``Instr.type`` is the
    accumulator type. On the CPU each call is one K-chunk: exact products summed in increasing k,
    then C added, one rounding (DESIGN §3). ``.aligned``: needs the full warp. Scope warp; sm_80,
    PTX 7.0 (e4m3/e5m2: sm_89, PTX 8.4).
    """

    name = "mma.sync"
    scope = "warp"
    min_arch = 80
    ptx_isa = (7, 0)
    aligned = True

    def check(self, instr: Instr) -> None:
        super().check(instr)
        self.expect_arity(instr, 3)
        key = (instr.mod("shape"), instr.mod("atype"))
        self.expect(key in MMA_SHAPES, instr, f"unsupported shape/type {key}; known: "
                    f"{sorted(MMA_SHAPES)}")
        acc = MMA_SHAPES[key][0]
        self.expect_type(instr, (acc,))
        self.expect_operand(instr, 0, vector(B32, 4), "a")
        self.expect_operand(instr, 1, vector(B32, 2), "b")
        self.expect_operand(instr, 2, vector(acc, 4), "c")
        self.expect_dst(instr, vector(acc, 4))

    def requirements(self, instr: Instr) -> tuple[int, tuple[int, int]]:
        _, arch, isa = MMA_SHAPES.get((instr.mod("shape"), instr.mod("atype")),
                                      (None, self.min_arch, self.ptx_isa))
        return arch, isa

    def mnemonic(self, instr: Instr) -> str:
        a, t = instr.mod("atype"), instr.type
        return f"mma.sync.aligned.{instr.mod('shape')}.row.col.{t}.{a}.{a}.{t}"


SPECIAL_REGISTERS = ("tid.x", "tid.y", "tid.z", "ntid.x", "ntid.y", "ntid.z", "ctaid.x", "ctaid.y",
                     "ctaid.z", "nctaid.x", "nctaid.y", "nctaid.z", "laneid")


@register
class SpecialReg(Intrinsic):
    """``mov.u32 d, %name`` of a special register (PTX ISA, Special Registers): ``tid``, ``ntid``,
    ``ctaid``, ``nctaid`` (``.x/.y/.z``) and ``laneid`` (modifier ``name``). tilevm blocks are
    one-dimensional (``tid.y = tid.z = 0``, ``ntid.y = ntid.z = 1``); grids have up to three
    dimensions (``ctaid``/``nctaid`` ``.x/.y/.z``). Scope thread; sm_50, PTX 1.0 (``laneid``:
    1.3)."""

    name = "sreg"
    ptx_isa = (1, 3)

    def check(self, instr: Instr) -> None:
        super().check(instr)
        self.expect_arity(instr, 0)
        self.expect(instr.mod("name") in SPECIAL_REGISTERS, instr,
                    f"name must be one of {SPECIAL_REGISTERS}, got {instr.mod('name')!r}")
        self.expect_dst(instr, U32)

    def mnemonic(self, instr: Instr) -> str:
        return f"mov.u32 %{instr.mod('name')}"

"""Barriers, warp collectives, warp-level matrix instructions and special registers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tilevm.ir.thread.intrinsics.base import Intrinsic, register
from tilevm.ir.thread.types import B32, F16X2, PRED, U32, VectorType, vector

if TYPE_CHECKING:
    from tilevm.ir.thread.stmts import Instr

__all__ = ["MMA_FORMS", "MMA_SHAPES", "SPECIAL_REGISTERS", "Activemask", "BarSync", "BarWarpSync",
           "Ldmatrix", "Mma", "ShflSync", "SpecialReg", "VoteSync", "mma_default_ctype",
           "mma_register_types"]


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


# K of each mma.sync shape tilevm emits (M = 16, N = 8): one K-chunk per instruction.
MMA_SHAPES: dict[str, int] = {"m16n8k8": 8, "m16n8k16": 16, "m16n8k32": 32}

_MMA_INPUTS = {  # shape -> the input types of A and B it takes (A and B may differ where listed)
    "m16n8k8": (("tf32",),),
    "m16n8k16": (("f16",), ("bf16",)),
    "m16n8k32": (("s8", "u8"), ("e4m3", "e5m2")),
}
_MMA_ACCUMULATORS = {"tf32": ("f32",), "f16": ("f32", "f16"), "bf16": ("f32",), "s8": ("s32",),
                     "u8": ("s32",), "e4m3": ("f32",), "e5m2": ("f32",)}
# PTX ISA mma, "Target ISA Notes" / "PTX ISA Notes": .e4m3/.e5m2 "requires sm_89 or higher"
# (sm_90 included: ptxas emulates it there, see Mma), introduced in PTX ISA 8.4; the others sm_80,
# PTX ISA 7.0.
_MMA_FP8 = ("e4m3", "e5m2")


def _mma_forms() -> dict[tuple[str, str, str, str], tuple[int, tuple[int, int]]]:
    forms = {}
    for shape, families in _MMA_INPUTS.items():
        for family in families:
            for a in family:
                for b in family:
                    for c in _MMA_ACCUMULATORS[a]:
                        forms[shape, a, b, c] = (89, (8, 4)) if a in _MMA_FP8 else (80, (7, 0))
    return forms


# (shape, atype, btype, ctype) -> (minimum sm, minimum PTX ISA) of every form tilevm takes.
MMA_FORMS: dict[tuple[str, str, str, str], tuple[int, tuple[int, int]]] = _mma_forms()


def mma_default_ctype(atype: str) -> str:
    """The accumulator type an ``mma.sync`` on ``atype`` inputs gets unless told: ``s32`` for
    ``s8``/``u8``, ``f32`` for the floats."""
    return "s32" if atype in ("s8", "u8") else "f32"


def mma_register_types(ctype: str) -> tuple[VectorType, VectorType, VectorType]:
    """The register types of operands ``a``, ``b`` and of ``c``/``d`` of an ``mma.sync`` with
    accumulator ``ctype``: ``b32v4``, ``b32v2`` and ``f32v4`` / ``s32v4`` / ``f16x2v2`` (the ISA's
    two ``.f16x2`` registers for an f16 accumulator)."""
    acc = vector(F16X2, 2) if ctype == "f16" else vector(ctype, 4)
    return vector(B32, 4), vector(B32, 2), acc


@register
class Mma(Intrinsic):
    """``mma.sync.aligned.shape.row.col.dtype.atype.btype.ctype d, a, b, c`` (PTX ISA, Warp Level
    Matrix Multiply-Accumulate Instructions: ``mma``; fragments in "Matrix Fragments for
    mma.m16n8k8", "... for mma.m16n8k16 with floating point type" and "... for mma.m16n8k32").

    ``D = A·B + C`` for a 16xK row-major ``A``, Kx8 column-major ``B`` and 16x8 ``C``/``D``,
    spread over the warp. Modifiers: ``shape``, ``atype``, ``btype`` (absent: ``atype``);
    ``Instr.type`` is the accumulator type (``.ctype`` = ``.dtype``, as the ISA requires for
    these shapes). The forms (:data:`MMA_FORMS`):

    - ``m16n8k16``: ``f16`` x ``f16`` -> ``f32`` or ``f16``; ``bf16`` x ``bf16`` -> ``f32``.
    - ``m16n8k32``: ``s8``/``u8`` in any mix -> ``s32``; ``e4m3``/``e5m2`` in any mix -> ``f32``.
    - ``m16n8k8``: ``tf32`` x ``tf32`` -> ``f32``.

    Registers: ``a`` is ``b32v4`` (8 16-bit, 16 8-bit or 4 tf32 elements per lane), ``b`` is
    ``b32v2``, ``c``/``d`` are ``f32v4`` / ``s32v4``, or for an f16 accumulator the ISA's two
    ``.f16x2`` registers, ``f16x2v2`` (a ``b32v2`` may stand for it; printed as two ``"r"``
    operands in braces, as the ISA's ``{%Rd0, %Rd1}``). With ``g = lane // 4``, ``t = lane % 4``
    and ``p`` elements per 32-bit register (2 for 16-bit types, 4 for 8-bit, 1 for tf32;
    ``K = 8p``), element ``i`` of register ``r`` of a lane (PTX element index ``p·r + i``) is: A
    at row ``g + 8·(r % 2)``, column ``p·t + i + (K/2)·(r // 2)``; B at row
    ``p·t + i + (K/2)·r``, column ``g``; C/D element ``c_j`` (register ``j``, or half ``j % 2``
    of register ``j // 2`` for f16) at row ``g + 8·(j // 2)``, column ``2t + j % 2``.

    Values: an f16/bf16/fp8 element is its IEEE (``e5m2``) or OCP ``fn`` (``e4m3``: no inf,
    S.1111.111 is NaN) value. A ``tf32`` register is an f32 pattern of which the tensor core reads
    the high 19 bits (sign, exponent, 10 mantissa bits), ignoring the low 13: the ISA calls
    tf32's internal layout "implementation defined" and makes tf32 with ``cvt.rna.tf32.f32``,
    which leaves them zero (ptxas: ``LOP3 & 0xffffe000``); ptxas hands an mma operand register
    to ``HMMA.1688.F32.TF32`` unmasked, and converters that only add 0x1000 (e.g. tilelang's)
    rely on the tensor core dropping them. So an f32 given as tf32 is truncated toward zero (a
    NaN whose payload lies in the low bits reads as inf). Integer forms take no
    ``.satfinite``: "If .satfinite is not specified, the accumulated value is wrapped", so ``d``
    is ``c + sum`` modulo 2^32.

    On the CPU each instruction is one K-chunk (DESIGN §3): the exact products summed in
    increasing k, C added, one rounding to the accumulator type (nearest even; inf and NaN as
    IEEE arithmetic gives them, NaN canonical ``0x7fffffff`` / ``0x7fff``). The ISA leaves the
    GPU's order and rounding unspecified ("with at least single precision"; an f16 accumulator
    "at least half precision").

    ``.aligned``: needs the full warp. Scope warp; sm_80, PTX 7.0; ``e4m3``/``e5m2``: sm_89,
    PTX 8.4 ("requires sm_89 or higher", so sm_90 too; ptxas has no fp8 tensor-core
    instruction there and emulates it: each fp8 operand converted to f16 with ``F2FP``, two
    ``HMMA.16816.F32`` on a zero accumulator, then C added with ``FADD``, as the SASS of NVRTC
    13.0 for sm_90 shows, against one ``QMMA.16832`` on sm_89).
    """

    name = "mma.sync"
    scope = "warp"
    min_arch = 80
    ptx_isa = (7, 0)
    aligned = True

    def check(self, instr: Instr) -> None:
        super().check(instr)
        self.expect_arity(instr, 3)
        shape, atype = instr.mod("shape"), instr.mod("atype")
        btype = instr.mod("btype", atype)
        self.expect(shape in _MMA_INPUTS, instr,
                    f"shape must be one of {', '.join(MMA_SHAPES)}, got {shape!r}")
        takes = [t for family in _MMA_INPUTS[shape] for t in family]
        self.expect(atype in takes, instr,
                    f"{shape} takes atype {' / '.join(takes)}, got {atype!r}")
        family = next(f for f in _MMA_INPUTS[shape] if atype in f)
        self.expect(btype in family, instr,
                    f"{shape} with atype {atype} takes btype {' / '.join(family)}, got "
                    f"{btype!r}")
        accs = _MMA_ACCUMULATORS[atype]
        self.expect(instr.type is not None and instr.type.name in accs, instr,
                    f"{shape}.{atype} accumulates in {' / '.join(accs)}, got {instr.type}")
        a, b, c = mma_register_types(instr.type.name)  # type: ignore[union-attr]
        self.expect_operand(instr, 0, a, "a")
        self.expect_operand(instr, 1, b, "b")
        self.expect_operand(instr, 2, c, "c")
        self.expect_dst(instr, c)

    def requirements(self, instr: Instr) -> tuple[int, tuple[int, int]]:
        atype = instr.mod("atype")
        key = (instr.mod("shape"), atype, instr.mod("btype", atype),
               instr.type.name if instr.type is not None else "")
        return MMA_FORMS.get(key, (self.min_arch, self.ptx_isa))

    def mnemonic(self, instr: Instr) -> str:
        a, t = instr.mod("atype"), instr.type
        return f"mma.sync.aligned.{instr.mod('shape')}.row.col.{t}.{a}.{instr.mod('btype', a)}.{t}"


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

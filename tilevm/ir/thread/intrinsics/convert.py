"""Conversions and register plumbing: ``cvt``, ``mov``, and vector ``pack``/``extract``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tilevm.ir.thread.intrinsics.base import Intrinsic, compatible, register
from tilevm.ir.thread.types import E4M3X2, E5M2X2, F16X2, F32, TF32, ScalarType, VectorType

if TYPE_CHECKING:
    from tilevm.ir.thread.stmts import Instr

__all__ = ["FLOAT_ROUNDINGS", "INT_ROUNDINGS", "Cvt", "Extract", "Mov", "Pack"]

FLOAT_ROUNDINGS = ("rn", "rz", "rm", "rp")
INT_ROUNDINGS = ("rni", "rzi", "rmi", "rpi")
_CVT_TYPES = ("u8", "u16", "u32", "u64", "s8", "s16", "s32", "s64", "f16", "bf16", "f32", "f64")
_FP8X2 = (E4M3X2, E5M2X2)


@register
class Cvt(Intrinsic):
    """``cvt{.rnd}{.sat|.satfinite}.dtype.stype d, a{, b}`` (PTX ISA, Data Movement and Conversion
    Instructions: ``cvt``).

    Modifiers: ``src`` (the source type), ``rnd``, ``sat``. Rules, as in the ISA:

    - float → narrower float (and f16 ↔ bf16): ``rnd`` is ``rn``/``rz``/``rm``/``rp``
      (required); overflow gives ±inf or ±max as IEEE directed rounding says; with
      ``sat="satfinite"`` (only f32 → f16/bf16 with ``rn``/``rz``) ±inf and overflow become
      ±max, NaN stays NaN. bf16 from f32 with ``rm``/``rp`` needs PTX 7.8; bf16 to or from any
      type but f32 needs sm_90, PTX 7.8.
    - float → wider float: exact, no ``rnd`` (nor for the same type: ``cvt.f32.f32`` copies).
    - float → the same float type with an integer rounding ``rnd`` = ``rni`` (nearest, ties to
      even), ``rzi`` (toward zero), ``rmi`` (toward -inf), ``rpi`` (toward +inf): the value
      rounded to an integral value, kept in that type ("A floating-point value may be rounded to
      an integral value using the integer rounding modifiers ... The operands must be of the
      same size. The result is an integral value, stored in floating-point format"), e.g.
      ``cvt.rmi.f32.f32`` is floor. ±0, ±inf and integral values stay as they are, the sign of a
      zero result is the input's (``rzi`` of -0.5 is -0.0). The ISA does not say which NaN a NaN
      gives; tilevm's CPU gives the canonical NaN (``0x7fffffff``, ``0x7fffffffffffffff``,
      ``0x7fff``), as its float arithmetic does. ``f16``, ``f32``, ``f64``; ``bf16`` on sm_90.
    - float → integer: ``rnd`` is ``rni``/``rzi``/``rmi``/``rpi`` (required); the result saturates
      to the destination's range. NaN gives 0 when the source is not ``f64`` and the destination
      is not 64-bit, otherwise ``1 << (bits - 1)`` (``INT_MIN`` for signed types: the ISA's
      "Integer Notes").
    - integer → float: ``rnd`` ``rn``/``rz``/``rm``/``rp`` (required).
    - integer → integer: truncates or extends by the source's signedness; ``sat="sat"`` clamps
      to the destination's range instead (only where some source value lies outside it).
    - packs: ``cvt.rn{.satfinite}.f16x2.f32 d, a, b`` and ``.bf16x2.f32``: ``d`` holds ``a``
      converted in its **upper** half and ``b`` in its lower half (sm_80, PTX 7.0).
    - tf32: ``cvt.rna{.satfinite}.tf32.f32 d, a`` (``d`` of type ``tf32``, a ``.b32`` register):
      round to nearest, ties away from zero, to 10 mantissa bits, the low 13 bits zero. The ISA
      says no more for inf and NaN without ``.satfinite``; tilevm computes what ptxas emits for
      sm_80–sm_90 (see ``numerics.f32_to_tf32``): an overflow rounds to ±inf, inf and NaN keep
      their high 19 bits. ``.satfinite``: "if the input value is NaN, then the result is NaN"
      and beyond MAX_NORM "sign-preserved MAX_NORM". sm_80, PTX 7.0 (``.satfinite``: PTX 8.1).
      The other tf32 roundings (``.rn``/``.rz``: sm_90, PTX 7.8) are not taken.
    - fp8 packs: ``cvt.rn.satfinite.e4m3x2.f32 d, a, b`` and ``.e5m2x2.f32`` (``.satfinite``
      is mandatory): ``d`` (type ``e4m3x2``/``e5m2x2``, a ``.b16``) holds ``a`` converted in its
      **upper** byte and ``b`` in its lower byte ("d[15:8] = convert(a); d[7:0] =
      convert(b)"); nearest even, beyond MAX_NORM (448 / 57344, ±inf included) ±MAX_NORM, NaN
      the code 0x7f. ``cvt.rn.f16x2.e4m3x2 d, a`` and ``.e5m2x2``: the two fp8 codes of ``a``
      (a ``.b16``) exactly as f16, the upper byte into the upper half ("d[31:16] =
      convert(a[15:8])"), a NaN as 0x7fff. sm_89 with PTX 8.1 (sm_90 had them from PTX 7.8:
      tilevm asks PTX 8.1 of both). No ``.relu`` forms.

    Scope thread; sm_50, PTX 1.0 (bf16: sm_80, PTX 7.0, and ``cvt.f32.bf16`` PTX 7.1; satfinite
    f16/bf16: PTX 8.1). Section: PTX ISA 9.1 §9.7.9.21 "Data Movement and Conversion
    Instructions: cvt".
    """

    name = "cvt"
    ptx_isa = (1, 0)

    def check(self, instr: Instr) -> None:
        super().check(instr)
        d = instr.type
        s = instr.mod("src")
        rnd, sat = instr.mod("rnd"), instr.mod("sat")
        self.expect(isinstance(s, ScalarType), instr, "modifier src must be a ScalarType")
        self.expect(d is not None, instr, "needs a destination type")
        assert d is not None and isinstance(s, ScalarType)
        self.expect(sat in (None, "sat", "satfinite"), instr,
                    f"sat must be sat or satfinite, got {sat!r}")
        if d == TF32 or d in _FP8X2 or s in _FP8X2:
            self._check_tensor_format(instr, d, s)
            return
        self.expect(rnd != "rna", instr, f"rna rounds only f32 to tf32 (cvt.rna.tf32.f32), not "
                    f"{s} to {d}")
        if d.kind == "packed":
            self.expect_arity(instr, 2)
            self.expect(s == F32 and rnd == "rn", instr, f"{d} packs convert f32 with .rn")
            self.expect(sat in (None, "satfinite"), instr, "packs take only .satfinite")
            for i in range(2):
                self.expect_operand(instr, i, F32)
            self.expect_dst(instr, d)
            return
        self.expect_arity(instr, 1)
        self.expect(d.name in _CVT_TYPES and s.name in _CVT_TYPES, instr,
                    f"cannot convert {s} to {d}")
        # ptxas: "Arguments mismatch for instruction 'cvt'" for cvt.rn.bf16.s8, cvt.rni.u8.bf16
        self.expect("bf16" not in (d.name, s.name) or 8 not in (d.bits, s.bits), instr,
                    f"cannot convert {s} to {d}: bf16 converts to and from 8-bit integers only "
                    "through a 16-bit one")
        self.expect_operand(instr, 0, s, "a")
        self.expect_dst(instr, d)
        if d.is_float and s.is_float:
            if s == d and rnd in INT_ROUNDINGS:
                pass  # rounded to an integral value in the same type
            elif _exact_float(s, d):
                self.expect(rnd is None, instr, f"{s}->{d} is exact and takes no rounding" + (
                    " (rni/rzi/rmi/rpi round to an integral value)" if s == d else ""))
            else:
                self.expect(rnd in FLOAT_ROUNDINGS, instr, f"{s}->{d} needs rn/rz/rm/rp")
            self.expect(sat != "sat", instr, "float conversions take .satfinite, not .sat")
            # cvt.frnd2{.satfinite}.{f16,bf16}.f32 with .frnd2 = {.rn, .rz} is the only form
            self.expect(sat is None or (d.name in ("f16", "bf16") and s == F32
                                        and rnd in ("rn", "rz")), instr,
                        ".satfinite is for f32 -> f16/bf16 with rn or rz")
        elif s.is_float:
            self.expect(rnd in INT_ROUNDINGS, instr, f"{s}->{d} needs rni/rzi/rmi/rpi")
            self.expect(sat is None, instr, "float->int conversions always saturate")
        elif d.is_float:
            self.expect(rnd in FLOAT_ROUNDINGS, instr, f"{s}->{d} needs rn/rz/rm/rp")
            self.expect(sat is None, instr, "int->float takes no saturation")
        else:
            self.expect(rnd is None, instr, "int->int takes no rounding")
            self.expect(sat in (None, "sat"), instr, "int->int takes only .sat")
            # ptxas: "Illegal modifier '.sat' for instruction 'cvt'" where nothing can saturate
            self.expect(sat is None or not _int_range(d)[0] <= _int_range(s)[0]
                        <= _int_range(s)[1] <= _int_range(d)[1], instr,
                        f".sat: every {s} value is a {d} value, nothing to saturate")

    def _check_tensor_format(self, instr: Instr, d: ScalarType, s: ScalarType) -> None:
        """The tf32 and fp8 forms (see the class docstring)."""
        rnd, sat = instr.mod("rnd"), instr.mod("sat")
        if d == TF32:
            self.expect(s == F32 and rnd == "rna", instr,
                        f"tf32 is made from f32 with .rna (cvt.rna.tf32.f32), got "
                        f"{f'.{rnd}' if rnd else 'no rounding'} from {s}")
            self.expect(sat in (None, "satfinite"), instr, "tf32 takes only .satfinite")
            self.expect_arity(instr, 1)
            self.expect_operand(instr, 0, F32, "a")
        elif d in _FP8X2:
            self.expect(s == F32, instr, f"{d} is made from two f32 values, not from {s}")
            self.expect(rnd == "rn" and sat == "satfinite", instr,
                        f"cvt to {d} is cvt.rn.satfinite.{d}.f32 (.satfinite is mandatory)")
            self.expect_arity(instr, 2)
            for i, what in enumerate(("a (upper byte)", "b (lower byte)")):
                self.expect_operand(instr, i, F32, what)
        else:
            self.expect(d == F16X2, instr, f"{s} converts only to f16x2 (cvt.rn.f16x2.{s})")
            self.expect(rnd == "rn" and sat is None, instr,
                        f"cvt.rn.f16x2.{s} takes .rn and no saturation")
            self.expect_arity(instr, 1)
            self.expect_operand(instr, 0, s, "a")
        self.expect_dst(instr, d)

    def requirements(self, instr: Instr) -> tuple[int, tuple[int, int]]:
        d, s = instr.type, instr.mod("src")
        if d in _FP8X2 or s in _FP8X2:
            # "cvt with .e4m3x2/.e5m2x2 requires sm89 or higher", introduced for sm_89 in PTX
            # ISA 8.1 (for sm_90 in 7.8)
            return 89, (8, 1)
        if d == TF32:
            # ".tf32 destination format requires sm_80", PTX 7.0; "cvt.satfinite.{...,
            # tf32}.f32 introduced in PTX ISA version 8.1"
            return 80, (8, 1) if instr.mod("sat") == "satfinite" else (7, 0)
        names = {d.name if d else "", s.name if isinstance(s, ScalarType) else ""}
        arch, isa = self.min_arch, self.ptx_isa
        if names & {"bf16", "bf16x2"} or names & {"f16x2"}:
            arch, isa = 80, (7, 0)
        if d is not None and d.name == "f32" and "bf16" in names:
            isa = (7, 1)  # "cvt.f32.bf16 introduced in PTX ISA version 7.1"
        if "bf16" in names and instr.mod("rnd") in ("rm", "rp"):
            # cvt.{rm,rp}.bf16.f32: the general form cvt.frnd.dtype.atype (the frnd2 line lists
            # only rn/rz); ptxas takes it for sm_80 ("{.bf16} destination formats require
            # sm_80"). The ISA does not say which PTX version added it: 7.8, with the other bf16
            # conversions, to be safe.
            arch, isa = 80, (7, 8)
        if "bf16" in names and (not names <= {"bf16", "f32"} or names == {"bf16"}):
            # bf16 to or from anything but f32 (f64, f16, integers, bf16 itself) needs sm_90,
            # PTX 7.8 (ptxas: "Feature 'cvt with .bf16.f64' requires .target sm_90 or higher")
            arch, isa = 90, (7, 8)
        if instr.mod("sat") == "satfinite":
            isa = max(isa, (8, 1))
        return arch, isa

    def mnemonic(self, instr: Instr) -> str:
        rnd = f".{instr.mod('rnd')}" if instr.mod("rnd") else ""
        sat = f".{instr.mod('sat')}" if instr.mod("sat") else ""
        return f"cvt{rnd}{sat}.{instr.type}.{instr.mod('src')}"


def _int_range(t: ScalarType) -> tuple[int, int]:
    """The smallest and largest value of an integer type."""
    if t.is_signed:
        return -(1 << (t.bits - 1)), (1 << (t.bits - 1)) - 1
    return 0, (1 << t.bits) - 1


def _exact_float(s: ScalarType, d: ScalarType) -> bool:
    """Whether every ``s`` value is a ``d`` value (f16 and bf16 hold each other's values only in
    part, so a conversion between them rounds)."""
    return s == d or d.bits > s.bits


@register
class Mov(Intrinsic):
    """``mov.type d, a`` (PTX ISA, Data Movement and Conversion Instructions: ``mov``): copies
    ``a``; when ``d``'s type differs but has the same width, the bits are reinterpreted (as
    ``mov.b32`` between ``f32`` and ``u32``). Scope thread; sm_50, PTX 1.0."""

    name = "mov"
    ptx_isa = (1, 0)

    def check(self, instr: Instr) -> None:
        super().check(instr)
        self.expect_arity(instr, 1)
        a, d = instr.args[0].type, instr.dst.type  # type: ignore[union-attr]
        self.expect(isinstance(a, ScalarType) and isinstance(d, ScalarType), instr,
                    "moves scalars (use pack/extract for vectors)")
        self.expect(a.bits == d.bits and (a.kind == "pred") == (d.kind == "pred"), instr,
                    f"cannot move {a} into {d}: widths differ")
        self.expect(instr.type == d, instr, "instruction type must be the destination type")

    def mnemonic(self, instr: Instr) -> str:
        t = instr.type
        if t is not None and t.kind == "pred":
            return "mov.pred"
        # PTX has no mov.b8 (mov's types start at 16 bits); 8-bit values live in 16-bit
        # registers (PTX ISA, "Data Movement and Conversion Instructions: mov").
        return f"mov.b{max(t.bits, 16) if t else 0}"


@register
class Pack(Intrinsic):
    """``d = {a0, a1[, a2, a3]}``: builds a vector register from scalars (register plumbing, no
    instruction of its own; printed as a brace list). Scope thread."""

    name = "pack"
    ptx_isa = (1, 0)

    def check(self, instr: Instr) -> None:
        super().check(instr)
        d = instr.dst.type  # type: ignore[union-attr]
        self.expect(isinstance(d, VectorType), instr, "destination must be a vector")
        assert isinstance(d, VectorType)
        self.expect_arity(instr, d.count)
        for i in range(d.count):
            self.expect(compatible(instr.args[i].type, d.elem), instr,
                        f"element {i} must be {d.elem}, got {instr.args[i].type}")

    def mnemonic(self, instr: Instr) -> str:
        return "pack"


@register
class Extract(Intrinsic):
    """``d = a.i``: element ``i`` (modifier ``index``) of a vector register (register plumbing).
    Scope thread."""

    name = "extract"
    ptx_isa = (1, 0)

    def check(self, instr: Instr) -> None:
        super().check(instr)
        self.expect_arity(instr, 1)
        a = instr.args[0].type
        self.expect(isinstance(a, VectorType), instr, "operand must be a vector")
        assert isinstance(a, VectorType)
        i = instr.mod("index")
        self.expect(isinstance(i, int) and 0 <= i < a.count, instr, f"index {i!r} out of range")
        self.expect_dst(instr, a.elem)

    def mnemonic(self, instr: Instr) -> str:
        return "extract"

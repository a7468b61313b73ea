"""Scalar arithmetic, logic and comparison intrinsics (one thread each).

Integer results wrap modulo 2**bits. Float operations round once to nearest even (the ``rn``
rounding is printed explicitly so that no compiler contracts them, DESIGN §3); ``f16x2`` and
``bf16x2`` operate on both halves independently. The ``.approx`` instructions (``ex2``, ``lg2``,
``sin``, ``cos``, ``rsqrt``, ``tanh``, ``rcp``) are the GPU's fast approximations, whose error the
PTX ISA bounds (:data:`APPROX_ERROR_BOUNDS`); the CPU backend computes each as the exactly
rounded value after its flush to zero (DESIGN §3).

Section numbers cite the PTX ISA 9.1 ("Parallel Thread Execution ISA", chapter 9.7
"Instructions").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tilevm.ir.thread.intrinsics.base import Intrinsic, register
from tilevm.ir.thread.types import PRED, U32, scalar_type

if TYPE_CHECKING:
    from tilevm.ir.thread.stmts import Instr

__all__ = ["APPROX_ERROR_BOUNDS", "FLOAT_TYPES", "INT_TYPES", "ApproxBound"]

INT_TYPES = ("b16", "b32", "b64", "u16", "u32", "u64", "s16", "s32", "s64")
FLOAT_TYPES = ("f16", "bf16", "f32", "f64", "f16x2", "bf16x2")


def _float_requirements(instr: Instr, default: tuple[int, tuple[int, int]]
                        ) -> tuple[int, tuple[int, int]]:
    t = instr.type.name if instr.type is not None else ""
    if t in ("f16", "f16x2"):
        return max(default[0], 53), max(default[1], (4, 2))
    if t in ("bf16", "bf16x2"):
        return max(default[0], 90), max(default[1], (7, 8))
    return default


class _Elementwise(Intrinsic):
    """Shared checks: ``arity`` operands of the instruction type, a result of the same type."""

    arity = 2
    types: tuple[str, ...] = INT_TYPES + FLOAT_TYPES

    def check(self, instr: Instr) -> None:
        super().check(instr)
        self.expect_arity(instr, self.arity)
        t = self.expect_type(instr, self.types)
        for i in range(self.arity):
            self.expect_operand(instr, i, t)
        self.expect_dst(instr, t)

    def requirements(self, instr: Instr) -> tuple[int, tuple[int, int]]:
        return _float_requirements(instr, (self.min_arch, self.ptx_isa))

    def mnemonic(self, instr: Instr) -> str:
        t = instr.type
        rn = ".rn" if t is not None and t.kind in ("float", "packed") else ""
        return f"{self.name}{rn}.{t}"


@register
class Add(_Elementwise):
    """``add.type d, a, b`` (PTX ISA, Integer Arithmetic, Floating-Point and Half Precision
    Floating-Point Instructions: ``add``): ``d = a + b``. Scope thread; sm_50, PTX 1.0 (f16: sm_53,
    PTX 4.2; bf16: sm_90, PTX 7.8)."""

    name = "add"
    ptx_isa = (1, 0)


@register
class Sub(_Elementwise):
    """``sub.type d, a, b`` (PTX ISA, Integer/Floating-Point/Half Precision Instructions: ``sub``):
    ``d = a - b``. Scope thread; sm_50, PTX 1.0 (f16: sm_53; bf16: sm_90)."""

    name = "sub"
    ptx_isa = (1, 0)


class _IntMul(Intrinsic):
    arity = 2

    def check(self, instr: Instr) -> None:
        super().check(instr)
        self.expect_arity(instr, self.arity)
        mode = instr.mod("mode")
        t = instr.type
        self.expect(t is not None, instr, "needs a type")
        assert t is not None
        if t.kind in ("float", "packed"):
            self.expect(self.name == "mul" and mode is None, instr,
                        f"float {self.name} takes no lo/hi/wide mode (use fma for mad)")
            self.expect(t.name in FLOAT_TYPES, instr, f"bad type {t}")
            for i in range(self.arity):
                self.expect_operand(instr, i, t)
            self.expect_dst(instr, t)
            return
        self.expect(mode in ("lo", "hi", "wide"), instr,
                    f"mode must be lo, hi or wide, got {mode!r}")
        self.expect(t.kind in ("uint", "int") and t.bits in (16, 32, 64), instr,
                    f"integer type must be u16..s64, got {t}")
        self.expect(mode != "wide" or t.bits < 64, instr, ".wide needs a 16- or 32-bit type")
        for i in range(2):
            self.expect_operand(instr, i, t)
        wide = scalar_type(f"{t.name[0]}{2 * t.bits}") if mode == "wide" else t
        if self.arity == 3:
            self.expect_operand(instr, 2, wide, "c")
        self.expect_dst(instr, wide)

    def requirements(self, instr: Instr) -> tuple[int, tuple[int, int]]:
        return _float_requirements(instr, (self.min_arch, self.ptx_isa))

    def mnemonic(self, instr: Instr) -> str:
        t = instr.type
        if t is not None and t.kind in ("float", "packed"):
            return f"{self.name}.rn.{t}"
        return f"{self.name}.{instr.mod('mode')}.{t}"


@register
class Mul(_IntMul):
    """``mul{.lo,.hi,.wide}.type d, a, b`` (PTX ISA, Integer Arithmetic and Floating-Point
    Instructions: ``mul``): integer product, its low half (``lo``), high half (``hi``) or full
    double-width product (``wide``, ``d`` of twice the bits); for floats ``mul.rn.type``. Scope
    thread; sm_50, PTX 1.0 (f16: sm_53; bf16: sm_90)."""

    name = "mul"
    ptx_isa = (1, 0)


@register
class Mad(_IntMul):
    """``mad{.lo,.hi,.wide}.type d, a, b, c`` (PTX ISA, Integer Arithmetic Instructions: ``mad``):
    ``d = (a·b)[lo|hi|wide] + c`` with ``c`` of the result's width; integers only (floats:
    :class:`Fma`). Scope thread; sm_50, PTX 1.0."""

    name = "mad"
    ptx_isa = (1, 0)
    arity = 3


class _IntOnly(_Elementwise):
    types = ("u16", "u32", "u64", "s16", "s32", "s64")


@register
class Div(_Elementwise):
    """``div.type d, a, b``: ``d = a / b``.

    - Integers (§9.7.1 "Integer Arithmetic Instructions: div", ``u16``..``s64``): the quotient
      truncated toward zero; ``b == 0`` gives an unspecified value (tilevm's CPU: all ones), and
      ``INT_MIN / -1`` wraps to ``INT_MIN``. Printed ``div.s32``.
    - ``f32``/``f64`` (§9.7.3.8 "Floating Point Instructions: div"): ``div.rn.f32`` /
      ``div.rn.f64``, IEEE 754 division rounded once to nearest even ("Divide with IEEE 754
      compliant rounding"); subnormal inputs and results are kept (no ``.ftz``). A NaN result is
      a NaN (tilevm's CPU: the canonical ``0x7fffffff`` / ``0x7fffffffffffffff``, as its other
      float operations).

    Scope thread; sm_50; PTX 1.0 (integers), PTX 1.4 (``div.rn``: "Explicit modifiers .approx,
    .full, .ftz, and rounding introduced in PTX ISA version 1.4"; ``div.rnd.f32`` needs sm_20,
    ``div.rn.f64`` sm_13).
    """

    name = "div"
    ptx_isa = (1, 0)
    types = ("u16", "u32", "u64", "s16", "s32", "s64", "f32", "f64")

    def requirements(self, instr: Instr) -> tuple[int, tuple[int, int]]:
        if instr.type is not None and instr.type.is_float:
            return self.min_arch, (1, 4)
        return self.min_arch, self.ptx_isa

    def mnemonic(self, instr: Instr) -> str:
        t = instr.type
        return f"div.rn.{t}" if t is not None and t.is_float else f"div.{t}"


@register
class Rem(_IntOnly):
    """``rem.type d, a, b`` (PTX ISA, Integer Arithmetic Instructions: ``rem``): integer remainder
    with the sign of ``a``. Scope thread; sm_50, PTX 1.0."""

    name = "rem"
    ptx_isa = (1, 0)


@register
class Min(_Elementwise):
    """``min.type d, a, b``: the smaller of ``a`` and ``b``.

    Integers (§9.7.1 "Integer Arithmetic Instructions: min"): signed or unsigned by the type.
    Floats (§9.7.3.11 "Floating Point Instructions: min" for ``f32``/``f64``, §9.7.4.7 "Half
    Precision Floating Point Instructions: min" for ``f16``/``bf16``/``f16x2``/``bf16x2``, each
    half on its own), as the ISA's ``min_num``:

    - a NaN operand is ignored: ``min(NaN, x) = min(x, NaN) = x`` (``x`` itself, bit for bit);
    - both NaN: a NaN (tilevm's CPU: the canonical NaN, ``0x7fffffff`` / ``0x7fffffffffffffff``
      / ``0x7fff``);
    - signed zeros are ordered: "If values of both inputs are 0.0, then +0.0 > -0.0", so
      ``min(-0.0, +0.0) = min(+0.0, -0.0) = -0.0``.

    No ``.ftz``, ``.NaN`` or ``.xorsign.abs`` forms: subnormals are kept. Scope thread; sm_50,
    PTX 1.0 (f16/f16x2/bf16/bf16x2: "Requires sm_80 or higher", "Introduced in PTX ISA version
    7.0").
    """

    name = "min"
    ptx_isa = (1, 0)

    def requirements(self, instr: Instr) -> tuple[int, tuple[int, int]]:
        t = instr.type.name if instr.type is not None else ""
        if t in ("f16", "f16x2", "bf16", "bf16x2"):
            return 80, (7, 0)
        return self.min_arch, self.ptx_isa

    def mnemonic(self, instr: Instr) -> str:
        return f"{self.name}.{instr.type}"


@register
class Max(Min):
    """``max.type d, a, b``: the larger of ``a`` and ``b`` (§9.7.1 "Integer Arithmetic
    Instructions: max", §9.7.3.12 "Floating Point Instructions: max", §9.7.4.8 "Half Precision
    Floating Point Instructions: max"). Floats as the ISA's ``max_num``: a NaN operand is ignored
    (``max(NaN, x) = x``), both NaN give a NaN (tilevm's CPU: the canonical one), and "+0.0 >
    -0.0": ``max(-0.0, +0.0) = max(+0.0, -0.0) = +0.0``. Scope thread; sm_50, PTX 1.0
    (f16/bf16 and their pairs: sm_80, PTX 7.0)."""

    name = "max"


@register
class Fma(_Elementwise):
    """``fma.rn.type d, a, b, c`` (PTX ISA, Floating-Point and Half Precision Instructions:
    ``fma``): ``a·b + c`` computed exactly and rounded once to nearest even. Scope thread; sm_50,
    PTX 1.4 (f16: sm_53, PTX 4.2; bf16: sm_80, PTX 7.0)."""

    name = "fma"
    ptx_isa = (1, 4)
    arity = 3
    types = FLOAT_TYPES

    def requirements(self, instr: Instr) -> tuple[int, tuple[int, int]]:
        t = instr.type.name if instr.type is not None else ""
        if t in ("bf16", "bf16x2"):
            return 80, (7, 0)
        return _float_requirements(instr, (self.min_arch, self.ptx_isa))


class _Unary(_Elementwise):
    arity = 1


@register
class Neg(_Unary):
    """``neg.type d, a`` (PTX ISA, Integer Arithmetic and Floating-Point Instructions: ``neg``):
    ``-a`` (floats: sign bit flipped). Scope thread; sm_50, PTX 1.0 (f16: sm_53, PTX 6.0; bf16:
    sm_80, PTX 7.0)."""

    name = "neg"
    ptx_isa = (1, 0)
    types = ("s16", "s32", "s64", *FLOAT_TYPES)

    f16_isa = (6, 0)   # neg.f16/f16x2 came with PTX 6.0 (add.f16 with 4.2)

    def requirements(self, instr: Instr) -> tuple[int, tuple[int, int]]:
        t = instr.type.name if instr.type is not None else ""
        if t in ("bf16", "bf16x2"):
            return 80, (7, 0)
        if t in ("f16", "f16x2"):
            return 53, self.f16_isa
        return _float_requirements(instr, (self.min_arch, self.ptx_isa))

    def mnemonic(self, instr: Instr) -> str:
        return f"neg.{instr.type}"


@register
class Abs(Neg):
    """``abs.type d, a`` (PTX ISA, Integer Arithmetic and Floating-Point Instructions: ``abs``):
    ``|a|`` (floats: sign bit cleared). Scope thread; sm_50, PTX 1.0 (f16: sm_53, PTX 6.5;
    bf16: sm_80, PTX 7.0)."""

    name = "abs"
    f16_isa = (6, 5)

    def mnemonic(self, instr: Instr) -> str:
        return f"abs.{instr.type}"


@dataclass(frozen=True)
class ApproxBound:
    """One accuracy guarantee the PTX ISA states for an ``.approx`` instruction.

    Attributes:
        kind: ``"absolute"`` (``|d - f(a)| <= bound``), ``"relative"`` (``|d - f(a)| <= bound ·
            |f(a)|``) or ``"ulp"`` (``d`` within ``bound`` units in the last place of the
            correctly rounded ``f32`` result).
        bound: the number (``2**-20.5``; for ``"ulp"`` a count of ulps).
        domain: the inputs it holds for, in the ISA's words.
        source: the ISA section and its sentence.
    """

    kind: str
    bound: float
    domain: str
    source: str


_SIN_COS_RANGES = (("[-2pi .. 2pi]", 2**-20.5, "2^-20.5"),
                   ("[-100pi .. +100pi]", 2**-14.7, "2^-14.7"))


def _sin_cos_bounds(name: str, section: str) -> tuple[ApproxBound, ...]:
    return tuple(ApproxBound("absolute", bound, f"inputs in {rng}",
                             f"PTX ISA 9.1 §{section} {name}: \"The maximum absolute error over "
                             f"input range is as follows\": {rng} -> {text}; \"Outside of the "
                             "range [-100pi .. +100pi], only best effort is provided. There are "
                             "no defined error guarantees.\"")
                 for rng, bound, text in _SIN_COS_RANGES)


APPROX_ERROR_BOUNDS: dict[str, tuple[ApproxBound, ...]] = {
    "ex2.approx.f32": (ApproxBound(
        "ulp", 2.0, "the full range of inputs",
        "PTX ISA 9.1 §9.7.3.21 ex2: \"The maximum ulp error is 2 ulp from correctly rounded "
        "result across the full range of inputs.\""),),
    "lg2.approx.f32": (
        ApproxBound("absolute", 2**-22, "inputs in (0.5, 2)",
                    "PTX ISA 9.1 §9.7.3.20 lg2: \"The maximum absolute error is 2^-22 when the "
                    "input operand is in the range (0.5, 2).\""),
        ApproxBound("relative", 2**-22, "positive finite inputs outside (0.5, 2)",
                    "PTX ISA 9.1 §9.7.3.20 lg2: \"For positive finite inputs outside of this "
                    "interval, maximum relative error is 2^-22.\"")),
    "sin.approx.f32": _sin_cos_bounds("sin", "9.7.3.18"),
    "cos.approx.f32": _sin_cos_bounds("cos", "9.7.3.19"),
    "rsqrt.approx.f32": (ApproxBound(
        "relative", 2**-22.9, "the entire positive finite floating-point range",
        "PTX ISA 9.1 §9.7.3.16 rsqrt: \"The maximum relative error for rsqrt.f32 over the "
        "entire positive finite floating-point range is 2^-22.9.\""),),
    "tanh.approx.f32": (ApproxBound(
        "relative", 2**-11, "the entire floating point range",
        "PTX ISA 9.1 §9.7.3.22 tanh: \"The maximum relative error over the entire floating "
        "point range is 2^-11.\""),),
    "rcp.approx.f32": (ApproxBound(
        "ulp", 1.0, "the full range of inputs",
        "PTX ISA 9.1 §9.7.3.13 rcp: \"The maximum ulp error is 1 across the full range of "
        "inputs.\""),),
}
"""The ISA's accuracy guarantees of the ``.approx`` instructions, by mnemonic without and with
``.ftz`` (the ``.ftz`` form flushes subnormal inputs and results to zero first; the ISA states one
bound for both). Several entries for one instruction hold on different input ranges."""

APPROX_ERROR_BOUNDS.update({k.replace(".approx.", ".approx.ftz."): v
                            for k, v in list(APPROX_ERROR_BOUNDS.items())
                            if not k.startswith("tanh")})


class _Approx(_Unary):
    """An ``op.approx{.ftz}.f32 d, a`` instruction. Modifier ``ftz`` (bool): flush a subnormal
    input, and a subnormal result, to a zero of the same sign. On the CPU the value is the
    exactly rounded ``f32`` of the function of the (flushed) input (DESIGN §3), for every input:
    the C library's f64 value rounded once to f32, except at the inputs where the exact value lies
    within a few f64 ulps of an f32 rounding boundary, which come from a table found by checking
    every f32 input (:mod:`tilevm.backend.cpu.approx_tables`); a NaN result is the canonical NaN
    ``0x7fffffff``."""

    types = ("f32",)
    has_ftz = True

    def check(self, instr: Instr) -> None:
        super().check(instr)
        ftz = instr.mod("ftz")
        self.expect(ftz in (None, True, False), instr, f"ftz must be a bool, got {ftz!r}")
        self.expect(self.has_ftz or not ftz, instr,
                    f"{self.name}.approx has no .ftz form (subnormals pass through)")

    def requirements(self, instr: Instr) -> tuple[int, tuple[int, int]]:
        return self.min_arch, self.ptx_isa

    def mnemonic(self, instr: Instr) -> str:
        return f"{self.name}.approx{'.ftz' if instr.mod('ftz') else ''}.f32"


@register
class Ex2(_Approx):
    """``ex2.approx{.ftz}.f32 d, a`` (§9.7.3.21 "Floating Point Instructions: ex2"): ``d ≈ 2**a``.

    Special values: ``ex2(-inf) = +0``, ``ex2(±0) = +1``, ``ex2(+inf) = +inf``, NaN → NaN.
    Accuracy: "The maximum ulp error is 2 ulp from correctly rounded result across the full range
    of inputs" (:data:`APPROX_ERROR_BOUNDS`). The CPU gives the exactly rounded ``2**a`` (after
    the flush, with ``ftz``). Scope thread; sm_50; PTX 1.4 (the explicit ``.approx`` and
    ``.ftz``)."""

    name = "ex2"
    ptx_isa = (1, 4)


@register
class Rcp(_Approx):
    """``rcp.approx{.ftz}.f32 d, a`` (§9.7.3.13 "Floating Point Instructions: rcp"): ``d ≈ 1/a``.

    Special values: ``rcp(±0) = ±inf``, ``rcp(±inf) = ±0``, NaN → NaN. Accuracy: "The maximum
    ulp error is 1 across the full range of inputs". The CPU gives the exactly rounded ``1/a``.
    Scope thread; sm_50, PTX 1.4."""

    name = "rcp"
    ptx_isa = (1, 4)


@register
class Lg2(_Approx):
    """``lg2.approx{.ftz}.f32 d, a`` (§9.7.3.20 "Floating Point Instructions: lg2"): ``d ≈
    log2(a)``.

    Special values (the ISA's table): ``lg2(-inf) = NaN``, ``lg2(negative normal) = NaN``,
    ``lg2(±0) = -inf``, ``lg2(+inf) = +inf``, NaN → NaN; with ``ftz`` a subnormal input counts as
    a zero of its sign (→ ``-inf``). Accuracy: "The maximum absolute error is 2^-22 when the input
    operand is in the range (0.5, 2). For positive finite inputs outside of this interval,
    maximum relative error is 2^-22." The CPU gives the exactly rounded ``log2(a)``. Scope
    thread; sm_50, PTX 1.4."""

    name = "lg2"
    ptx_isa = (1, 4)


@register
class Sin(_Approx):
    """``sin.approx{.ftz}.f32 d, a`` (§9.7.3.18 "Floating Point Instructions: sin"): ``d ≈
    sin(a)``, ``a`` in radians.

    Special values: ``sin(±0) = ±0``, ``sin(±inf) = NaN``, NaN → NaN. Accuracy, "The maximum
    absolute error over input range": 2^-20.5 in [-2pi .. 2pi], 2^-14.7 in [-100pi .. +100pi];
    "Outside of the range [-100pi .. +100pi], only best effort is provided. There are no defined
    error guarantees." The CPU gives the exactly rounded ``sin(a)`` for every ``a``. Scope thread;
    sm_50, PTX 1.4."""

    name = "sin"
    ptx_isa = (1, 4)


@register
class Cos(_Approx):
    """``cos.approx{.ftz}.f32 d, a`` (§9.7.3.19 "Floating Point Instructions: cos"): ``d ≈
    cos(a)``, ``a`` in radians.

    Special values: ``cos(±0) = +1``, ``cos(±inf) = NaN``, NaN → NaN. Accuracy as :class:`Sin`:
    maximum absolute error 2^-20.5 in [-2pi .. 2pi], 2^-14.7 in [-100pi .. +100pi], no guarantee
    outside. The CPU gives the exactly rounded ``cos(a)``. Scope thread; sm_50, PTX 1.4."""

    name = "cos"
    ptx_isa = (1, 4)


@register
class Rsqrt(_Approx):
    """``rsqrt.approx{.ftz}.f32 d, a`` (§9.7.3.16 "Floating Point Instructions: rsqrt"): ``d ≈
    1/sqrt(a)``.

    Special values: ``rsqrt(-inf) = NaN``, ``rsqrt(negative normal) = NaN``, ``rsqrt(-0) =
    -inf``, ``rsqrt(+0) = +inf``, ``rsqrt(+inf) = +0``, NaN → NaN (with ``ftz`` a subnormal
    counts as a zero of its sign). Accuracy: "The maximum relative error for rsqrt.f32 over the
    entire positive finite floating-point range is 2^-22.9." The CPU gives the exactly rounded
    ``1/sqrt(a)`` (computed as ``1/sqrt`` in f64 and rounded to f32, which is correctly rounded
    for every f32 input: checked exhaustively). Scope thread; sm_50, PTX 1.4."""

    name = "rsqrt"
    ptx_isa = (1, 4)


@register
class Tanh(_Approx):
    """``tanh.approx.f32 d, a`` (§9.7.3.22 "Floating Point Instructions: tanh"): ``d ≈ tanh(a)``.

    There is no ``.ftz`` form: "The subnormal numbers are supported", and "The subnormal inputs
    gets passed through to the output" (``tanh(x) ≈ x`` there). Special values: ``tanh(±inf) =
    ±1``, ``tanh(±0) = ±0``, NaN → NaN. Accuracy: "The maximum relative error over the entire
    floating point range is 2^-11." The CPU gives the exactly rounded ``tanh(a)``. Scope thread;
    "Requires sm_75 or higher", "Introduced in PTX ISA version 7.0"."""

    name = "tanh"
    min_arch = 75
    ptx_isa = (7, 0)
    has_ftz = False


@register
class Sqrt(_Unary):
    """``sqrt.rn.type d, a`` for ``f32``/``f64`` (§9.7.3.15 "Floating Point Instructions: sqrt",
    "Square root with IEEE 754 compliant rounding"): the square root rounded once to nearest
    even. ``sqrt(-0) = -0``, ``sqrt(+inf) = +inf``, a negative input or NaN gives NaN (tilevm's
    CPU: the canonical NaN). Subnormals are kept (no ``.ftz``). Scope thread; sm_50; PTX 1.4 for
    ``sqrt.rn.f64``, 2.0 for ``sqrt.rn.f32`` ("General rounding modifiers were added in PTX ISA
    version 2.0"; ``sqrt.rnd.f32`` requires sm_20)."""

    name = "sqrt"
    types = ("f32", "f64")

    def requirements(self, instr: Instr) -> tuple[int, tuple[int, int]]:
        t = instr.type.name if instr.type is not None else ""
        return self.min_arch, (2, 0) if t == "f32" else (1, 4)

    def mnemonic(self, instr: Instr) -> str:
        return f"sqrt.rn.{instr.type}"


class _Logic(_Elementwise):
    types = ("pred", "b16", "b32", "b64")

    def mnemonic(self, instr: Instr) -> str:
        return f"{self.name}.{instr.type}"


@register
class And(_Logic):
    """``and.type d, a, b`` (PTX ISA, Logic and Shift Instructions: ``and``): bitwise and. Scope
    thread; sm_50, PTX 1.0."""

    name = "and"
    ptx_isa = (1, 0)


@register
class Or(_Logic):
    """``or.type d, a, b`` (PTX ISA, Logic and Shift Instructions: ``or``): bitwise or. Scope
    thread; sm_50, PTX 1.0."""

    name = "or"
    ptx_isa = (1, 0)


@register
class Xor(_Logic):
    """``xor.type d, a, b`` (PTX ISA, Logic and Shift Instructions: ``xor``): bitwise xor. Scope
    thread; sm_50, PTX 1.0."""

    name = "xor"
    ptx_isa = (1, 0)


@register
class Not(_Logic):
    """``not.type d, a`` (PTX ISA, Logic and Shift Instructions: ``not``): bitwise complement. Scope
    thread; sm_50, PTX 1.0."""

    name = "not"
    ptx_isa = (1, 0)
    arity = 1


class _Shift(Intrinsic):
    types: tuple[str, ...] = ()

    def check(self, instr: Instr) -> None:
        super().check(instr)
        self.expect_arity(instr, 2)
        t = self.expect_type(instr, self.types)
        self.expect_operand(instr, 0, t, "a")
        self.expect_operand(instr, 1, U32, "shift amount")
        self.expect_dst(instr, t)


@register
class Shl(_Shift):
    """``shl.type d, a, b`` (PTX ISA, Logic and Shift Instructions: ``shl``): ``a << b``; amounts ≥
    the width give 0. Scope thread; sm_50, PTX 1.0."""

    name = "shl"
    ptx_isa = (1, 0)
    types = ("b16", "b32", "b64")


@register
class Shr(_Shift):
    """``shr.type d, a, b`` (PTX ISA, Logic and Shift Instructions: ``shr``): ``a >> b``, arithmetic
    for ``s`` types (sign fill), logical otherwise; amounts ≥ the width give 0 or all sign bits.
    Scope thread; sm_50, PTX 1.0."""

    name = "shr"
    ptx_isa = (1, 0)
    types = ("b16", "b32", "b64", "u16", "u32", "u64", "s16", "s32", "s64")


@register
class Shf(Intrinsic):
    """``shf.{l,r}.{clamp,wrap}.b32 d, a, b, c`` (PTX ISA, Logic and Shift Instructions: ``shf``,
    funnel shift).

    Shifts the 64-bit value ``b:a`` (``b`` the high word) by ``n`` bits, ``n = min(c, 32)``
    (clamp) or ``c & 31`` (wrap); ``shf.l`` returns the high word of ``(b:a) << n``, ``shf.r``
    the low word of ``(b:a) >> n``. Modifiers ``dir`` ("l"/"r"), ``mode`` ("clamp"/"wrap").
    Scope thread; sm_50, PTX 3.1."""

    name = "shf"
    ptx_isa = (3, 1)

    def check(self, instr: Instr) -> None:
        super().check(instr)
        self.expect_arity(instr, 3)
        self.expect(instr.mod("dir") in ("l", "r"), instr, "dir must be l or r")
        self.expect(instr.mod("mode") in ("clamp", "wrap"), instr, "mode must be clamp or wrap")
        t = self.expect_type(instr, ("b32",))
        self.expect_operand(instr, 0, t, "a")
        self.expect_operand(instr, 1, t, "b")
        self.expect_operand(instr, 2, U32, "c")
        self.expect_dst(instr, t)

    def mnemonic(self, instr: Instr) -> str:
        return f"shf.{instr.mod('dir')}.{instr.mod('mode')}.b32"


@register
class Bfe(Intrinsic):
    """``bfe.type d, a, b, c`` (PTX ISA, Integer Arithmetic Instructions: ``bfe``): extracts ``len =
    c & 0xff`` bits of ``a`` starting at ``pos = b & 0xff``; bits past the msb of ``a`` read as the
    sign bit (``s`` types) or 0; the result is sign-extended (``s``) or zero-extended from bit
    ``len-1``; ``len == 0`` gives 0. Scope thread; sm_50, PTX 2.0."""

    name = "bfe"
    ptx_isa = (2, 0)

    def check(self, instr: Instr) -> None:
        super().check(instr)
        self.expect_arity(instr, 3)
        t = self.expect_type(instr, ("u32", "u64", "s32", "s64"))
        self.expect_operand(instr, 0, t, "a")
        self.expect_operand(instr, 1, U32, "pos")
        self.expect_operand(instr, 2, U32, "len")
        self.expect_dst(instr, t)


@register
class Bfi(Intrinsic):
    """``bfi.type f, a, b, c, d`` (PTX ISA, Integer Arithmetic Instructions: ``bfi``): ``f`` is
    ``b`` with its bits ``[pos, pos+len)`` (``pos = c & 0xff``, ``len = d & 0xff``, clipped at the
    width) replaced by the low bits of ``a``. Operands ``(a, b, pos, len)``. Scope thread; sm_50,
    PTX 2.0."""

    name = "bfi"
    ptx_isa = (2, 0)

    def check(self, instr: Instr) -> None:
        super().check(instr)
        self.expect_arity(instr, 4)
        t = self.expect_type(instr, ("b32", "b64"))
        self.expect_operand(instr, 0, t, "a")
        self.expect_operand(instr, 1, t, "b")
        self.expect_operand(instr, 2, U32, "pos")
        self.expect_operand(instr, 3, U32, "len")
        self.expect_dst(instr, t)


@register
class Popc(Intrinsic):
    """``popc.type d, a`` (PTX ISA, Integer Arithmetic Instructions: ``popc``): the number of set
    bits of ``a`` (``b32``/``b64``), as ``u32``. Scope thread; sm_50, PTX 2.0."""

    name = "popc"
    ptx_isa = (2, 0)

    def check(self, instr: Instr) -> None:
        super().check(instr)
        self.expect_arity(instr, 1)
        t = self.expect_type(instr, ("b32", "b64"))
        self.expect_operand(instr, 0, t, "a")
        self.expect_dst(instr, U32)


@register
class Lop3(Intrinsic):
    """``lop3.b32 d, a, b, c, lut`` (PTX ISA, Logic and Shift Instructions: ``lop3``): each bit of
    ``d`` is bit ``(a_bit << 2) | (b_bit << 1) | c_bit`` of the 8-bit table ``lut`` (modifier; e.g.
    ``0xF0 & 0xCC`` = a & b with ``ta = 0xF0, tb = 0xCC, tc = 0xAA``). Scope thread; sm_50, PTX 4.3.
    """

    name = "lop3"
    ptx_isa = (4, 3)

    def check(self, instr: Instr) -> None:
        super().check(instr)
        self.expect_arity(instr, 3)
        lut = instr.mod("lut")
        self.expect(isinstance(lut, int) and 0 <= lut <= 255, instr,
                    f"lut must be 0..255, got {lut!r}")
        t = self.expect_type(instr, ("b32",))
        for i in range(3):
            self.expect_operand(instr, i, t)
        self.expect_dst(instr, t)


PRMT_MODES = (None, "f4e", "b4e", "rc8", "ecl", "ecr", "rc16")


@register
class Prmt(Intrinsic):
    """``prmt.b32{.mode} d, a, b, c`` (PTX ISA, Data Movement and Conversion Instructions:
    ``prmt``).

    The bytes of ``{b, a}`` are numbered 0–7 (``a``'s low byte is 0). Default mode: byte ``i`` of
    ``d`` is selected by nibble ``i`` of ``c``: its low 3 bits pick the source byte, its bit 3
    asks to replicate that byte's sign bit (0x00 or 0xFF). Modes (modifier ``mode``): ``f4e``
    forward 4 extract, ``b4e`` backward, ``rc8`` replicate 8, ``ecl``/``ecr`` edge clamp,
    ``rc16`` replicate 16, driven by ``c & 3``. Scope thread; sm_50, PTX 2.0."""

    name = "prmt"
    ptx_isa = (2, 0)

    def check(self, instr: Instr) -> None:
        super().check(instr)
        self.expect_arity(instr, 3)
        self.expect(instr.mod("mode") in PRMT_MODES, instr, f"mode must be one of {PRMT_MODES}")
        t = self.expect_type(instr, ("b32",))
        for i in range(3):
            self.expect_operand(instr, i, t)
        self.expect_dst(instr, t)

    def mnemonic(self, instr: Instr) -> str:
        mode = instr.mod("mode")
        return f"prmt.b32{'.' + mode if mode else ''}"


SETP_CMPS = ("eq", "ne", "lt", "le", "gt", "ge", "equ", "neu", "ltu", "leu", "gtu", "geu", "num",
             "nan")
_UNSIGNED_CMP = {"lt": "lo", "le": "ls", "gt": "hi", "ge": "hs"}


@register
class Setp(Intrinsic):
    """``setp.cmp.type p, a, b`` (PTX ISA, Comparison and Selection Instructions: ``setp``, tables
    of "comparison operators"): ``p = a cmp b``. ``cmp`` (modifier) is eq/ne/lt/le/gt/ge (for
    unsigned types printed lo/ls/hi/hs); for floats these are ordered (false if either is NaN) and
    equ/neu/ltu/leu/gtu/geu are unordered (true if either is NaN), num/nan test for NaN.
    ``Instr.type`` is the operands' type. Scope thread; sm_50, PTX 1.0 (f16: sm_53; bf16: sm_90)."""

    name = "setp"
    ptx_isa = (1, 0)

    def check(self, instr: Instr) -> None:
        super().check(instr)
        self.expect_arity(instr, 2)
        t = self.expect_type(instr, (*INT_TYPES, "f16", "bf16", "f32", "f64"))
        cmp = instr.mod("cmp")
        ok = cmp in SETP_CMPS[:6] or (t.kind == "float" and cmp in SETP_CMPS)
        self.expect(ok, instr, f"cmp {cmp!r} is not valid for {t}")
        self.expect_operand(instr, 0, t, "a")
        self.expect_operand(instr, 1, t, "b")
        self.expect_dst(instr, PRED)

    def requirements(self, instr: Instr) -> tuple[int, tuple[int, int]]:
        return _float_requirements(instr, (self.min_arch, self.ptx_isa))

    def mnemonic(self, instr: Instr) -> str:
        cmp, t = instr.mod("cmp"), instr.type
        if t is not None and t.kind in ("uint", "bits"):
            cmp = _UNSIGNED_CMP.get(cmp, cmp)
        return f"setp.{cmp}.{t}"


@register
class Selp(Intrinsic):
    """``selp.type d, a, b, c`` (PTX ISA, Comparison and Selection Instructions: ``selp``): ``d = c
    ? a : b`` for a ``pred`` ``c``. Scope thread; sm_50, PTX 1.0."""

    name = "selp"
    ptx_isa = (1, 0)

    def check(self, instr: Instr) -> None:
        super().check(instr)
        self.expect_arity(instr, 3)
        t = self.expect_type(instr, (*INT_TYPES, "f16", "bf16", "f32", "f64", "f16x2", "bf16x2"))
        self.expect_operand(instr, 0, t, "a")
        self.expect_operand(instr, 1, t, "b")
        self.expect_operand(instr, 2, PRED, "c")
        self.expect_dst(instr, t)

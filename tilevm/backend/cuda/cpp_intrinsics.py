"""The intrinsics printed as ordinary C++ statements, because C++ means exactly what PTX does.

A form prints as C++ only where the C++ expression, compiled by NVRTC with
:data:`~tilevm.backend.cuda.BASE_OPTIONS` (``--fmad=false``; NVRTC's defaults ``-ftz=false``, no
``--use_fast_math``, which :func:`~tilevm.backend.cuda.compile_cuda` refuses), gives the
instruction's result bit for bit for every input, with no undefined behaviour:

- integer ``add``, ``sub``, ``mul.lo``, ``mad.lo``, which wrap modulo 2**n: signed overflow is
  undefined in C++, so they compute in ``unsigned`` (``unsigned long long`` for 64 bits) and
  convert to the destination's C type (modulo 2**n: the same bits); a 16-bit ``add`` or ``sub``
  computes in the ``int`` its operands are promoted to, where it cannot overflow (a 16-bit
  product can, so ``mul`` and ``mad`` go through ``unsigned`` at every width);
- ``and``, ``or``, ``xor``, ``not`` on ``b16``/``b32``/``b64`` (predicates already were C++);
- ``setp`` on integers (signed or unsigned by the instruction's type, whatever the registers'
  C types) and on ``f32``/``f64`` with the exact comparison: C++'s ``==``, ``<``, ``<=``, ``>``,
  ``>=`` are PTX's ordered ``eq``/``lt``/``le``/``gt``/``ge`` (false on NaN), C++'s ``!=`` is the
  *unordered* ``neu``; ordered ``ne`` is ``a < b || a > b``, the other unordered ones negate the
  ordered opposite (``ltu`` is ``!(a >= b)``), ``num``/``nan`` compare each operand with itself.
  NVVM folds each back into the one ``setp`` (checked by the tests);
- ``selp`` of any type (a select copies bits), ``mov`` of any non-predicate type (a copy, or a
  reinterpretation through ``__float_as_uint`` and its kin, as ``mov.bN`` between types);
- ``cvt`` between integer types without ``.sat``: truncation, or extension by the source's
  signedness; an 8-bit value (held in a 16-bit C variable, DESIGN §3) is read from its low byte
  and written zero- or sign-extended by its type, as PTX does with a wider register;
- ``add``, ``sub``, ``mul`` of ``f32``/``f64``: under ``--fmad=false`` NVVM prints them
  ``add.rn``/``sub.rn``/``mul.rn``, which ptxas never contracts into an FFMA (``fma`` stays
  inline PTX, as does every other float operation). NVVM may fold an IEEE identity such as
  ``x + -0.0`` or ``x * 1.0`` to ``x``, which keeps an input NaN's payload where the GPU's FADD
  gives its canonical NaN: exact under the numeric contract, which leaves NaN payloads free.

Everything else stays inline PTX (:mod:`tilevm.backend.cuda.ptx_intrinsics`): shifts (C++ is
undefined from the width on, PTX clamps), division and remainder (undefined on zero), float
``min``/``max`` (NaN rules), ``cvt`` with a rounding or saturation, f16/bf16 arithmetic (bit
patterns here), ``bfe``/``bfi``/``prmt``/``lop3``/``shf``, and every memory access (a state-space
address held in an integer has no C++ pointer; the asm also pins the exact ``ld.global.nc.v4``),
barrier, warp collective, ``mma``, approximation and special register.
"""

from __future__ import annotations

from collections.abc import Callable

from tilevm.backend.cuda.cuda_types import CType, c_bitcast, c_literal, c_type
from tilevm.backend.cuda.ptx_intrinsics import CCode, OperandPrinter
from tilevm.ir.thread.stmts import Instr
from tilevm.ir.thread.types import F32, F64, S16, S32, S64, U16, U32, U64, ScalarType
from tilevm.ir.thread.values import Const

__all__ = ["cpp_statement", "prints_as_cpp"]

CppPrinter = Callable[[Instr, OperandPrinter], CCode]

# The Thread IR type whose literal is spelled in each C type (see _operand).
_SCALAR_OF = {"unsigned short": U16, "short": S16, "unsigned": U32, "int": S32,
              "unsigned long long": U64, "long long": S64, "float": F32, "double": F64}
# C++ promotes 16-bit operands of arithmetic and bitwise operators to int.
_PROMOTED = CType("int", "r", 32)
_EXACT_BYTE = {"uint": "unsigned char", "int": "signed char"}
_ARITHMETIC = {"add": "+", "sub": "-", "mul": "*"}
_LOGIC_OPERATORS = {"and": "&", "or": "|", "xor": "^"}
_INT_COMPARISONS = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


def _float_comparison(cmp: str, a: str, b: str) -> str:
    """The C++ boolean expression that is ``setp.cmp`` of floats ``a`` and ``b`` (NaN rules
    included: see the module docstring)."""
    ordered = {"eq": f"{a} == {b}", "lt": f"{a} < {b}", "le": f"{a} <= {b}",
               "gt": f"{a} > {b}", "ge": f"{a} >= {b}", "ne": f"{a} < {b} || {a} > {b}",
               "num": f"{a} == {a} && {b} == {b}"}
    if cmp in ordered:
        return ordered[cmp]
    if cmp == "neu":
        return f"{a} != {b}"
    if cmp == "nan":
        return f"{a} != {a} || {b} != {b}"
    # equ, ltu, leu, gtu, geu: true on NaN, i.e. not the ordered opposite.
    opposite = {"equ": "ne", "ltu": "ge", "leu": "gt", "gtu": "le", "geu": "lt"}[cmp]
    return f"!({ordered[opposite]})"


# -- operands and results -----------------------------------------------------------------------

def _unsigned(bits: int) -> CType:
    """The C type in which n-bit integer arithmetic wraps without undefined behaviour."""
    return c_type(U64 if bits == 64 else U32)


def _operand(ops: OperandPrinter, x: object, ct: CType, *, promoted: bool = False) -> str:
    """``x`` as a C++ expression of type ``ct``: the same bits where the widths are equal; a
    narrower integer converted by value (its C type's zero or sign extension), which callers use
    only where the bits above the instruction's width are dropped. With ``promoted``, a 16-bit
    literal is spelled as the ``int`` it is promoted to (``5``, not ``(unsigned short)5u``)."""
    if isinstance(x, Const):
        t = _SCALAR_OF[ct.name]
        const = Const(x.value if x.type.kind == "int" else x.bits, t)  # type: ignore[arg-type]
        return str(const.value) if promoted and ct.bits == 16 else c_literal(const)
    own = c_type(x.type)  # type: ignore[attr-defined]
    expr = ops.expr(x)
    if own == ct:
        return expr
    if own.bits == ct.bits:
        return c_bitcast(expr, own, ct)
    return f"({ct.name}){expr}"  # an integer widened by value


def _assign(ops: OperandPrinter, dst: object, value: str, ct: CType, *, compound: bool) -> CCode:
    """``dst = value;`` with ``value`` (of C type ``ct``; parenthesized if ``compound``) converted
    to the destination's C type: modulo 2**n between integers, a reinterpretation between a float
    and an integer of its width."""
    dest = c_type(dst.type)  # type: ignore[attr-defined]
    if ct != dest:
        value = f"({value})" if compound else value
        value = c_bitcast(value, ct, dest) if ct.bits == dest.bits else f"({dest.name}){value}"
    return CCode([f"{ops.expr(dst)} = {value};"])


# -- the forms ----------------------------------------------------------------------------------

def _int_arith(instr: Instr, ops: OperandPrinter) -> CCode:
    t: ScalarType = instr.type  # type: ignore[assignment]
    if t.bits == 16 and instr.op.name in ("add", "sub"):
        # Promoted to int, a 16-bit sum or difference cannot overflow: no unsigned detour.
        ct = c_type(t)
        a, b = (_operand(ops, x, ct, promoted=True) for x in instr.args)
        return _assign(ops, instr.dst, f"{a} {_ARITHMETIC[instr.op.name]} {b}", _PROMOTED,
                       compound=True)
    u = _unsigned(t.bits)
    a, b, *c = (_operand(ops, x, u) for x in instr.args)
    if instr.op.name == "mad":
        value = f"{a} * {b} + {c[0]}"
    else:
        value = f"{a} {_ARITHMETIC[instr.op.name]} {b}"
    return _assign(ops, instr.dst, value, u, compound=True)


def _float_arith(instr: Instr, ops: OperandPrinter) -> CCode:
    ct = c_type(instr.type)  # type: ignore[arg-type]
    a, b = (_operand(ops, x, ct) for x in instr.args)
    return _assign(ops, instr.dst, f"{a} {_ARITHMETIC[instr.op.name]} {b}", ct,
                   compound=True)


def _logic(instr: Instr, ops: OperandPrinter) -> CCode:
    ct = c_type(instr.type)  # type: ignore[arg-type]
    args = [_operand(ops, x, ct, promoted=True) for x in instr.args]
    if instr.op.name == "not":
        value, compound = f"~{args[0]}", False
    else:
        value, compound = f"{args[0]} {_LOGIC_OPERATORS[instr.op.name]} {args[1]}", True
    return _assign(ops, instr.dst, value, _PROMOTED if ct.bits == 16 else ct, compound=compound)


def _setp(instr: Instr, ops: OperandPrinter) -> CCode:
    t: ScalarType = instr.type  # type: ignore[assignment]
    ct = c_type(t)  # signed or unsigned as the instruction's type says, not the registers'
    a, b = (_operand(ops, x, ct, promoted=True) for x in instr.args)
    cmp = instr.mod("cmp")
    value = _float_comparison(cmp, a, b) if t.is_float else f"{a} {_INT_COMPARISONS[cmp]} {b}"
    return CCode([f"{ops.expr(instr.dst)} = {value};"])  # a bool: 0 or 1, as predicates are


def _selp(instr: Instr, ops: OperandPrinter) -> CCode:
    dest = c_type(instr.dst.type)  # type: ignore[union-attr]
    a, b = (_operand(ops, x, dest) for x in instr.args[:2])
    return CCode([f"{ops.expr(instr.dst)} = {ops.expr(instr.args[2])} ? {a} : {b};"])


def _mov(instr: Instr, ops: OperandPrinter) -> CCode:
    dest = c_type(instr.dst.type)  # type: ignore[union-attr]
    return CCode([f"{ops.expr(instr.dst)} = {_operand(ops, instr.args[0], dest)};"])


def _int_cvt(instr: Instr, ops: OperandPrinter) -> CCode:
    src: ScalarType = instr.mod("src")
    dst: ScalarType = instr.type  # type: ignore[assignment]
    value = _operand(ops, instr.args[0], c_type(src))
    if src.bits == 8:  # only the low byte is the value (PTX reads a wider register so)
        value = f"({_EXACT_BYTE[src.kind]}){value}"
    if dst.bits == 8:  # extended by its type into the 16-bit variable, as PTX writes one
        value = f"({c_type(dst).name})({_EXACT_BYTE[dst.kind]}){value}"
    elif c_type(dst).name != c_type(src).name or src.bits == 8:
        value = f"({c_type(dst).name}){value}"
    return _assign(ops, instr.dst, value, c_type(dst), compound=False)


def _rule(instr: Instr) -> CppPrinter | None:
    """The C++ printer of ``instr``, or None where it stays inline PTX."""
    name, t = instr.op.name, instr.type
    if t is None or instr.dst is None:
        return None
    if name in ("add", "sub", "mul"):
        if t.is_int:  # mul: only the low half (hi and wide stay PTX)
            return _int_arith if name != "mul" or instr.mod("mode") == "lo" else None
        return _float_arith if t.name in ("f32", "f64") else None
    if name == "mad":
        return _int_arith if instr.mod("mode") == "lo" else None
    if name in ("and", "or", "xor", "not"):
        return _logic if t.kind == "bits" else None  # predicates: ptx_intrinsics' C++ already
    if name == "setp":
        return _setp if t.is_int or t.name in ("f32", "f64") else None
    if name == "selp":
        return _selp
    if name == "mov":
        return _mov if t.kind != "pred" else None
    if name == "cvt":
        src = instr.mod("src")
        plain = instr.mod("rnd") is None and instr.mod("sat") is None and len(instr.args) == 1
        return _int_cvt if plain and t.is_int and src.is_int else None
    return None


def prints_as_cpp(instr: Instr) -> bool:
    """Whether :func:`cpp_statement` spells ``instr`` as C++ (else it is inline PTX)."""
    return _rule(instr) is not None


def cpp_statement(instr: Instr, ops: OperandPrinter) -> CCode | None:
    """``instr`` as a C++ statement where C++ means exactly the PTX instruction (the forms of
    the module docstring), else None. The guard, if any, is the caller's ``if``."""
    rule = _rule(instr)
    return rule(instr, ops) if rule is not None else None

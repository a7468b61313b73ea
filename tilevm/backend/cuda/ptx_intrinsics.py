"""Each Thread IR intrinsic as inline PTX (or, for register plumbing, as a C++ assignment).

:func:`~tilevm.backend.cuda.emit_cuda` prints the forms whose C++ meaning is exactly the PTX
instruction's as C++ (:mod:`tilevm.backend.cuda.cpp_intrinsics`) and asks this module for the
rest; this module spells every intrinsic, those forms included (``emit_cuda(plain_cpp=False)``).

The PTX opcode is the intrinsic's own :meth:`Intrinsic.mnemonic`, so the printed instruction is
the one the Thread IR names; this module adds the operand syntax (``[addr+offset]``, ``{v0, v1}``
vector braces, immediates) and says whether the statement is ``volatile`` (it may not be moved,
merged or deleted: memory accesses, barriers, warp collectives) and touches memory (a ``"memory"``
clobber). Pure arithmetic is non-volatile so that NVVM may schedule and eliminate it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from tilevm.backend.cuda.cuda_types import CType, c_bitcast, c_string, c_type
from tilevm.backend.cuda.inline_asm import InlineAsm
from tilevm.ir.thread.stmts import Instr
from tilevm.ir.thread.types import B32, U32, ScalarType, VectorType

__all__ = ["PRINTERS", "VPRINTF_DECLARATION", "AsmCode", "CCode", "OperandPrinter",
           "print_intrinsic", "ptx_opcode"]


@dataclass(frozen=True)
class AsmCode:
    """PTX lines for an :class:`InlineAsm` statement, and how the compiler must treat it."""

    body: list[str]
    volatile: bool = False
    memory: bool = False


@dataclass(frozen=True)
class CCode:
    """C++ statements (without indentation)."""

    lines: list[str]


class OperandPrinter(Protocol):
    """What an intrinsic's printer needs from the kernel printer."""

    def expr(self, operand: object) -> str:
        """A scalar operand as a C++ expression (or lvalue, for a destination)."""

    def shared_symbol(self) -> str:
        """The name of the kernel's ``extern __shared__`` array (declaring it)."""

    def local_symbol(self) -> str:
        """The name of the thread's local buffer (declaring it)."""


Printer = Callable[[Instr, InlineAsm, OperandPrinter], AsmCode | CCode]
PRINTERS: dict[str, Printer] = {}


def _printer(*names: str) -> Callable[[Printer], Printer]:
    def register(fn: Printer) -> Printer:
        for name in names:
            PRINTERS[name] = fn
        return fn
    return register


def print_intrinsic(instr: Instr, asm: InlineAsm, ops: OperandPrinter) -> AsmCode | CCode:
    """The code of one instruction; raises ValueError for an intrinsic without a printer."""
    fn = PRINTERS.get(instr.op.name)
    if fn is None:
        raise ValueError(f"the CUDA printer has no rule for intrinsic {instr.op.name!r}")
    return fn(instr, asm, ops)


# PTX spells some Thread IR types differently per instruction: ld/st/selp move 16-bit floats,
# packed pairs and the tensor-core formats (tf32, e4m3x2, e5m2x2) as bits, and add/sub/min/max/
# setp have no .bN forms (the IR means them unsigned).
_AS_BITS = ("ld", "st", "selp")
_AS_UNSIGNED = ("add", "sub", "min", "max", "setp")


def ptx_opcode(instr: Instr) -> str:
    """``instr.mnemonic`` with its type suffix made legal PTX for the instruction
    (``st.global.f16`` → ``st.global.b16``, ``add.b32`` → ``add.u32``, ``setp.lo.b32`` →
    ``setp.lo.u32``)."""
    opcode, t = instr.mnemonic, instr.type
    if t is None or not opcode.endswith("." + t.name):
        return opcode
    stem = opcode[: -len(t.name)]
    if instr.op.name in _AS_BITS and t.kind in ("float", "packed") and t.bits <= 32 and (
            t.name != "f32"):
        return f"{stem}b{t.bits}"
    if instr.op.name in _AS_BITS and t.kind == "bits" and t.name != f"b{t.bits}":
        return f"{stem}b{t.bits}"  # tf32, e4m3x2, e5m2x2: PTX declares them .b32 / .b16
    if instr.op.name in _AS_UNSIGNED and t.kind == "bits":
        return f"{stem}u{t.bits}"
    return opcode


def _braced(names: list[str], operand: object) -> str:
    return "{" + ", ".join(names) + "}" if isinstance(operand.type, VectorType) else names[0]  # type: ignore[attr-defined]


def _address(name: str, instr: Instr) -> str:
    offset = instr.mod("offset", 0) or 0
    return f"[{name}+{offset}]" if offset else f"[{name}]"


def _ctype(operand: object) -> CType:
    return c_type(operand.type)  # type: ignore[attr-defined]


# -- memory -------------------------------------------------------------------------------------

@_printer("ld")
def _ld(instr: Instr, asm: InlineAsm, ops: OperandPrinter) -> AsmCode:
    d = _braced(asm.out(instr.dst, instr.type), instr.dst)
    a = asm.one_in(instr.args[0])
    return AsmCode([f"{ptx_opcode(instr)} {d}, {_address(a, instr)};"], volatile=True, memory=True)


@_printer("st")
def _st(instr: Instr, asm: InlineAsm, ops: OperandPrinter) -> AsmCode:
    a = asm.one_in(instr.args[0])
    v = _braced(asm.inp(instr.args[1], instr.type), instr.args[1])
    return AsmCode([f"{ptx_opcode(instr)} {_address(a, instr)}, {v};"], volatile=True, memory=True)


@_printer("cp.async")
def _cp_async(instr: Instr, asm: InlineAsm, ops: OperandPrinter) -> AsmCode:
    d, s = asm.one_in(instr.args[0]), asm.one_in(instr.args[1])
    zero_fill = f", {asm.one_in(instr.args[2])}" if len(instr.args) == 3 else ""
    return AsmCode([f"{ptx_opcode(instr)} [{d}], [{s}], {instr.mod('size')}{zero_fill};"],
                   volatile=True, memory=True)


@_printer("cp.async.commit_group")
def _commit(instr: Instr, asm: InlineAsm, ops: OperandPrinter) -> AsmCode:
    # The token is the Thread IR's record of the group; the GPU keeps groups implicitly.
    return AsmCode(["cp.async.commit_group;"], volatile=True, memory=True)


@_printer("cp.async.wait_group")
def _wait(instr: Instr, asm: InlineAsm, ops: OperandPrinter) -> AsmCode:
    return AsmCode([f"cp.async.wait_group {instr.mod('n')};"], volatile=True, memory=True)


@_printer("atom", "red")
def _atomic(instr: Instr, asm: InlineAsm, ops: OperandPrinter) -> AsmCode:
    d = [asm.one_out(instr.dst, instr.type)] if instr.dst is not None else []
    a = asm.one_in(instr.args[0])
    values = [asm.one_in(x, instr.type) for x in instr.args[1:]]
    operands = ", ".join([*d, f"[{a}]", *values])
    return AsmCode([f"{ptx_opcode(instr)} {operands};"], volatile=True, memory=True)


@_printer("fence", "membar")
def _fence(instr: Instr, asm: InlineAsm, ops: OperandPrinter) -> AsmCode:
    return AsmCode([f"{ptx_opcode(instr)};"], volatile=True, memory=True)


@_printer("shared_base")
def _shared_base(instr: Instr, asm: InlineAsm, ops: OperandPrinter) -> CCode:
    return CCode([f"{ops.expr(instr.dst)} = (unsigned)__cvta_generic_to_shared("
                  f"{ops.shared_symbol()});"])


@_printer("local_base")
def _local_base(instr: Instr, asm: InlineAsm, ops: OperandPrinter) -> CCode:
    return CCode([f"{ops.expr(instr.dst)} = (unsigned)__cvta_generic_to_local("
                  f"{ops.local_symbol()});"])


# -- barriers and warp collectives ---------------------------------------------------------------

@_printer("bar.sync")
def _bar_sync(instr: Instr, asm: InlineAsm, ops: OperandPrinter) -> AsmCode:
    return AsmCode([f"bar.sync {instr.mod('id', 0)};"], volatile=True, memory=True)


@_printer("bar.warp.sync")
def _bar_warp_sync(instr: Instr, asm: InlineAsm, ops: OperandPrinter) -> AsmCode:
    return AsmCode([f"bar.warp.sync {asm.one_in(instr.args[0])};"], volatile=True, memory=True)


@_printer("shfl.sync")
def _shfl(instr: Instr, asm: InlineAsm, ops: OperandPrinter) -> AsmCode:
    d = asm.one_out(instr.dst, B32)
    a = asm.one_in(instr.args[0], B32)
    b, c, mask = (asm.one_in(x) for x in instr.args[1:])
    return AsmCode([f"{ptx_opcode(instr)} {d}, {a}, {b}, {c}, {mask};"], volatile=True)


@_printer("vote.sync")
def _vote(instr: Instr, asm: InlineAsm, ops: OperandPrinter) -> AsmCode:
    a = asm.pred_in(instr.args[0])
    mask = asm.one_in(instr.args[1])
    d = asm.one_out(instr.dst, B32) if instr.mod("mode") == "ballot" else asm.pred_out(instr.dst)
    return AsmCode([f"{ptx_opcode(instr)} {d}, {a}, {mask};"], volatile=True)


@_printer("activemask")
def _activemask(instr: Instr, asm: InlineAsm, ops: OperandPrinter) -> AsmCode:
    return AsmCode([f"activemask.b32 {asm.one_out(instr.dst, B32)};"], volatile=True)


@_printer("ldmatrix")
def _ldmatrix(instr: Instr, asm: InlineAsm, ops: OperandPrinter) -> AsmCode:
    # Always braced: PTX wants a vector operand even for x1.
    d = "{" + ", ".join(asm.out(instr.dst, B32)) + "}"
    a = asm.one_in(instr.args[0])
    return AsmCode([f"{ptx_opcode(instr)} {d}, [{a}];"], volatile=True, memory=True)


@_printer("mma.sync")
def _mma(instr: Instr, asm: InlineAsm, ops: OperandPrinter) -> AsmCode:
    # A/B fragments are .b32, C/D the accumulator's type (the Thread IR also accepts other
    # registers of those widths; inline_asm reinterprets float ones).
    d = _braced(asm.out(instr.dst, instr.type), instr.dst)
    a, b = (_braced(asm.inp(x, B32), x) for x in instr.args[:2])
    c = _braced(asm.inp(instr.args[2], instr.type), instr.args[2])
    # volatile: an .aligned warp instruction must stay where the whole warp executes it.
    return AsmCode([f"{ptx_opcode(instr)} {d}, {a}, {b}, {c};"], volatile=True)


@_printer("trap")
def _trap(instr: Instr, asm: InlineAsm, ops: OperandPrinter) -> AsmCode:
    return AsmCode(["trap;"], volatile=True, memory=True)


VPRINTF_DECLARATION = 'extern "C" __device__ int vprintf(const char *format, const char *args);'


@_printer("vprintf")
def _vprintf(instr: Instr, asm: InlineAsm, ops: OperandPrinter) -> CCode:
    """CUDA's device printf, spelled out: the arguments in a local struct (each member aligned to
    its size, which is the layout vprintf reads) and a call of the system call ``vprintf``
    (declared once per translation unit: :data:`VPRINTF_DECLARATION`)."""
    fmt = c_string(instr.mod("format"))
    if not instr.args:
        return CCode([f"vprintf({fmt}, (const char *)0);"])
    members = " ".join(f"{_ctype(a).name} a{k};" for k, a in enumerate(instr.args))
    values = ", ".join(ops.expr(a) for a in instr.args)
    return CCode(["{",
                  f"  struct {{ {members} }} tilevm_printf_args = {{{values}}};",
                  f"  vprintf({fmt}, (const char *)&tilevm_printf_args);",
                  "}"])


@_printer("sreg")
def _sreg(instr: Instr, asm: InlineAsm, ops: OperandPrinter) -> AsmCode:
    return AsmCode([f"mov.u32 {asm.one_out(instr.dst, U32)}, %%{instr.mod('name')};"])


# -- arithmetic, logic, comparison, conversion ---------------------------------------------------

def _operand_types(instr: Instr) -> tuple[ScalarType | None, list[ScalarType | None]]:
    """The types the PTX instruction gives its destination and operands (as each intrinsic's
    docstring states them)."""
    t, name, n = instr.type, instr.op.name, len(instr.args)
    if name in ("shl", "shr"):
        return t, [t, U32]
    if name == "bfe":
        return t, [t, U32, U32]
    if name == "bfi":
        return t, [t, t, U32, U32]
    if name == "shf":
        return B32, [B32, B32, U32]
    if name == "popc":
        return U32, [t]
    if name == "cvt":
        return t, [instr.mod("src")] * n
    if name == "mov":
        return None, [None]  # mov.bN takes any register of N bits
    if name in ("mul", "mad") and instr.mod("mode") == "wide":
        wide = instr.dst.type  # type: ignore[union-attr]
        return wide, [t, t, wide][:n]  # type: ignore[list-item]
    return t, [t] * n


def _plain(instr: Instr, asm: InlineAsm, *immediates: str) -> AsmCode:
    dst_type, arg_types = _operand_types(instr)
    d = asm.one_out(instr.dst, dst_type)
    operands = [d, *(asm.one_in(x, e) for x, e in zip(instr.args, arg_types, strict=True)),
                *immediates]
    return AsmCode([f"{ptx_opcode(instr)} {', '.join(operands)};"])


@_printer("add", "sub", "mul", "mad", "div", "rem", "min", "max", "fma", "neg", "abs", "sqrt",
          "ex2", "rcp", "lg2", "sin", "cos", "rsqrt", "tanh", "shl", "shr", "shf", "bfe", "bfi",
          "popc", "prmt", "cvt")
def _arith(instr: Instr, asm: InlineAsm, ops: OperandPrinter) -> AsmCode:
    return _plain(instr, asm)


@_printer("lop3")
def _lop3(instr: Instr, asm: InlineAsm, ops: OperandPrinter) -> AsmCode:
    return _plain(instr, asm, f"0x{instr.mod('lut'):02x}")


_C_LOGIC = {"and": "&", "or": "|", "xor": "^"}


@_printer("and", "or", "xor", "not")
def _logic(instr: Instr, asm: InlineAsm, ops: OperandPrinter) -> AsmCode | CCode:
    if instr.type is None or instr.type.kind != "pred":
        return _plain(instr, asm)
    # Predicates are 0/1 words here, so C's bitwise operators are the PTX .pred ones.
    d = ops.expr(instr.dst)
    if instr.op.name == "not":
        return CCode([f"{d} = {ops.expr(instr.args[0])} ^ 1u;"])
    a, b = (ops.expr(x) for x in instr.args)
    return CCode([f"{d} = {a} {_C_LOGIC[instr.op.name]} {b};"])


@_printer("setp")
def _setp(instr: Instr, asm: InlineAsm, ops: OperandPrinter) -> AsmCode:
    p = asm.pred_out(instr.dst)
    a, b = (asm.one_in(x, instr.type) for x in instr.args)
    return AsmCode([f"{ptx_opcode(instr)} {p}, {a}, {b};"])


@_printer("selp")
def _selp(instr: Instr, asm: InlineAsm, ops: OperandPrinter) -> AsmCode:
    d = asm.one_out(instr.dst, instr.type)
    a, b = asm.one_in(instr.args[0], instr.type), asm.one_in(instr.args[1], instr.type)
    c = asm.pred_in(instr.args[2])
    return AsmCode([f"{ptx_opcode(instr)} {d}, {a}, {b}, {c};"])


@_printer("mov")
def _mov(instr: Instr, asm: InlineAsm, ops: OperandPrinter) -> AsmCode | CCode:
    if instr.type is not None and instr.type.kind == "pred":
        return CCode([f"{ops.expr(instr.dst)} = {ops.expr(instr.args[0])};"])
    return _plain(instr, asm)


@_printer("pack")
def _pack(instr: Instr, asm: InlineAsm, ops: OperandPrinter) -> CCode:
    d = ops.expr(instr.dst)
    dest = _ctype(instr.dst)
    return CCode([f"{d}[{k}] = {c_bitcast(ops.expr(x), _ctype(x), dest)};"
                  for k, x in enumerate(instr.args)])


@_printer("extract")
def _extract(instr: Instr, asm: InlineAsm, ops: OperandPrinter) -> CCode:
    v = instr.args[0]
    value = f"{ops.expr(v)}[{instr.mod('index')}]"
    return CCode([f"{ops.expr(instr.dst)} = {c_bitcast(value, _ctype(v), _ctype(instr.dst))};"])

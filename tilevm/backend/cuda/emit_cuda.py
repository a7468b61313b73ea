"""Thread IR → readable, self-contained CUDA C++ (:func:`emit_cuda`).

One ``extern "C" __global__`` function per kernel, with ``__launch_bounds__`` of the block size
(and a minimum of one block per SM when compiled with ``-DTILEVM_ONE_BLOCK_PER_SM``),
the kernel's dynamic shared memory as an ``extern __shared__`` array, registers as C++ locals
declared (zeroed) at the top, structured control flow as ``if``/``for``/``while`` (``#pragma
unroll`` on ``unroll`` loops, ``#pragma unroll 1`` on the other ``for`` loops, which the Thread IR
keeps rolled; a ``While`` is ``while (true) { cond_body; if (!(cond)) break; body }``), each
intrinsic whose C++ meaning is exactly the PTX instruction's as an ordinary C++ statement
(integer ``add``/``sub``/``mul.lo``/``mad.lo``, bitwise logic, ``setp``, ``selp``, ``mov``,
integer ``cvt``, f32/f64 ``add``/``sub``/``mul``: :mod:`tilevm.backend.cuda.cpp_intrinsics`)
and every other one as inline PTX (:mod:`tilevm.backend.cuda.ptx_intrinsics`). Where the
user's source line changes, a ``// file:line:col`` comment heads the statements that came from
it. No templates, no ``#include``: f16/bf16 values are ``unsigned short`` bit patterns
operated on by PTX.

The text depends only on the program and the target, so the same program always prints the same
bytes (a cache key and a golden file can rely on it).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

from tilevm.backend.cuda.cpp_intrinsics import cpp_statement
from tilevm.backend.cuda.cuda_types import c_literal, c_type
from tilevm.backend.cuda.inline_asm import InlineAsm
from tilevm.backend.cuda.ptx_intrinsics import VPRINTF_DECLARATION, AsmCode, print_intrinsic
from tilevm.backend.cuda.targets import CudaTarget, cuda_target
from tilevm.ir.thread.errors import ThreadIRError
from tilevm.ir.thread.stmts import For, If, Instr, Kernel, Stmt, While, walk
from tilevm.ir.thread.types import ScalarType, Type, VectorType
from tilevm.ir.thread.values import Const, Elem, Index, IndexOp, Reg, RegArray
from tilevm.ir.thread.verify import eval_index, verify

__all__ = ["emit_cuda", "usable_kernel_name"]

SHARED_SYMBOL = "tilevm_smem"
LOCAL_SYMBOL = "tilevm_local"
_INDENT = "  "
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# C++ keywords and CUDA built-ins a register name must not shadow.
_RESERVED_WORDS = """
    alignas alignof and and_eq asm auto bitand bitor bool break case catch char char16_t char32_t
    class compl const const_cast constexpr continue decltype default delete do double dynamic_cast
    else enum explicit export extern false float for friend goto if inline int long mutable
    namespace new noexcept not not_eq nullptr operator or or_eq private protected public register
    reinterpret_cast return short signed sizeof static static_assert static_cast struct switch
    template this thread_local throw true try typedef typeid typename union unsigned using virtual
    void volatile wchar_t while xor xor_eq main threadIdx blockIdx blockDim gridDim warpSize
    vprintf
"""
_RESERVED = frozenset(_RESERVED_WORDS.split())
# The IR type names whose C++ spelling says everything; others get a comment at declaration.
_PLAIN_TYPES = {"u16": "unsigned short", "s16": "short", "u32": "unsigned", "s32": "int",
                "u64": "unsigned long long", "s64": "long long", "f32": "float", "f64": "double"}

_FLOOR_HELPERS = """\
// Python's floor division and modulo on register-array indices (C++'s / and % truncate).
__device__ __forceinline__ int tilevm_floordiv(int a, int b) {
  return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}
__device__ __forceinline__ int tilevm_floormod(int a, int b) {
  return a - b * tilevm_floordiv(a, b);
}"""


def emit_cuda(program: Kernel | Sequence[Kernel], target: str | int | CudaTarget, *,
              plain_cpp: bool = True) -> str:
    """CUDA C++ for one Thread IR kernel, or several in one translation unit, for ``target``.

    With ``plain_cpp`` (the default) the intrinsics that C++ expresses exactly print as C++
    statements; ``plain_cpp=False`` prints every one as inline PTX instead (the spelling the
    tests compare the C++ against). Either way the text depends only on the arguments.

    The program is verified first, for the target: an intrinsic whose minimum architecture (or PTX
    ISA version) is above the target's raises :class:`~tilevm.ir.thread.ThreadIRError` naming the
    instruction and the arch. Also raises it for a kernel name that is not a C identifier, two
    kernels of one name, or dynamic shared memory above the target's limit; raises
    :class:`~tilevm.backend.cuda.UnsupportedArchError` for an unknown target.
    """
    tgt = cuda_target(target)
    kernels = [program] if isinstance(program, Kernel) else list(program)
    if not kernels or not all(isinstance(k, Kernel) for k in kernels):
        raise TypeError("program must be a Thread IR Kernel or a non-empty sequence of them")
    names = [k.name for k in kernels]
    if len(set(names)) != len(names):
        raise ThreadIRError(f"kernel names must be distinct in one translation unit: {names}")
    bodies = []
    helpers = False
    for kernel in kernels:
        printer = _KernelPrinter(kernel, tgt, plain_cpp)
        bodies.append("\n".join(printer.run()))
        helpers |= printer.uses_floor_helpers
    title = ", ".join(names)
    header = [f"// CUDA C++ for {title} ({tgt.name}), printed by tilevm from Thread IR.",
              "// Self-contained (needs no header): compile with tilevm.backend.cuda.compile_cuda."]
    parts = ["\n".join(header), ONE_BLOCK_PER_SM_SWITCH]
    if any(isinstance(s, Instr) and s.op.name == "vprintf" for k in kernels for s in walk(k.body)):
        parts.append("// The CUDA device runtime's printf system call.\n" + VPRINTF_DECLARATION)
    if helpers:
        parts.append(_FLOOR_HELPERS)
    parts += bodies
    return "\n\n".join(parts) + "\n"


MIN_BLOCKS_MACRO = "TILEVM_MIN_BLOCKS"
ONE_BLOCK_PER_SM_DEFINE = "TILEVM_ONE_BLOCK_PER_SM"
# Every kernel's launch bounds end with this macro: nothing, or with -DTILEVM_ONE_BLOCK_PER_SM
# a minimum of one block per SM, under which ptxas may give a thread up to the ISA's 255
# registers (under the block size alone it aims at an occupancy of its own and may spill).
ONE_BLOCK_PER_SM_SWITCH = f"""\
#ifdef {ONE_BLOCK_PER_SM_DEFINE}
#define {MIN_BLOCKS_MACRO} , 1
#else
#define {MIN_BLOCKS_MACRO}
#endif"""


def usable_kernel_name(name: str) -> bool:
    """Whether ``name`` can be a kernel's ``extern "C"`` symbol: a C identifier that is no C++
    keyword or CUDA built-in and does not start with ``tilevm_`` (the emitted helpers' prefix)."""
    return bool(_IDENTIFIER.match(name)) and name not in _RESERVED and not name.startswith(
        "tilevm_")


class _KernelPrinter:
    """Prints one kernel; also the :class:`OperandPrinter` the intrinsic printers use."""

    def __init__(self, kernel: Kernel, target: CudaTarget, plain_cpp: bool = True) -> None:
        self.kernel = kernel
        self.target = target
        self.plain_cpp = plain_cpp
        self.names: dict[int, str] = {}
        self.taken: set[str] = set()
        self.loops: list[For] = []
        self.uses_floor_helpers = False
        self.needs_shared = kernel.shared_bytes > 0
        self.needs_local = kernel.local_bytes > 0
        self.last_loc: str | None = None

    # -- checks and names -------------------------------------------------------------------

    def _check(self) -> None:
        k, t = self.kernel, self.target
        if not usable_kernel_name(k.name):
            raise ThreadIRError(f"kernel name {k.name!r} is not usable as a C++ identifier")
        verify(k, arch=t.sm, ptx_isa=t.ptx_isa)
        if k.shared_bytes > t.max_shared_bytes:
            raise ThreadIRError(f"kernel {k.name} needs {k.shared_bytes} bytes of shared memory; "
                                f"{t.name} allows at most {t.max_shared_bytes} per block")
        for p in k.params:
            if not isinstance(p.type, ScalarType) or p.type.kind == "token":
                raise ThreadIRError(f"kernel {k.name}: parameter {p.reg} of type {p.type} cannot "
                                    f"be passed to a CUDA kernel")

    def _name(self, obj: Reg | RegArray) -> str:
        key = id(obj)
        if key in self.names:
            return self.names[key]
        base = obj.name
        if not _IDENTIFIER.match(base):
            base = re.sub(r"\W", "_", base)
            if not base or base[0].isdigit():
                base = "v_" + base
        if base in _RESERVED or base.startswith(("tilevm_", "__")):
            base = "v_" + base
        name = base
        for n in itertools.count(1):
            if name not in self.taken:
                break
            name = f"{base}_{n}"
        self.taken.add(name)
        self.names[key] = name
        return name

    # -- operands (OperandPrinter) ----------------------------------------------------------

    def index(self, index: Index) -> str:
        if isinstance(index, int):
            return str(index)
        if isinstance(index, Reg):
            return self._name(index)
        a, b = self.index(index.a), self.index(index.b)
        if index.op in ("+", "-", "*"):
            return f"({a} {index.op} {b})"
        if self._truncation_is_floor(index):
            return f"({a} {'/' if index.op == '//' else '%'} {b})"
        self.uses_floor_helpers = True
        return f"tilevm_floor{'div' if index.op == '//' else 'mod'}({a}, {b})"

    def _truncation_is_floor(self, index: IndexOp) -> bool:
        """Whether C's truncating / and % equal Python's // and % here: both operands are
        non-negative, resp. positive, in every iteration of the enclosing unroll loops."""
        loops = [lp for lp in self.loops if lp.unroll]
        ranges = [range(lp.start, lp.stop, lp.step) for lp in loops]  # type: ignore[arg-type]
        keys = [id(lp.var) for lp in loops]
        for combo in itertools.product(*ranges):
            env = dict(zip(keys, combo, strict=True))
            try:
                a, b = eval_index(index.a, env), eval_index(index.b, env)
            except KeyError:  # a variable of no enclosing unroll loop: the verifier rejects it
                return False
            if a < 0 or b <= 0:
                return False
        return True

    def ref(self, operand: Reg | Elem) -> str:
        if isinstance(operand, Elem):
            return f"{self._name(operand.array)}[{self.index(operand.index)}]"
        return self._name(operand)

    def expr(self, operand: object) -> str:
        if isinstance(operand, Const):
            return c_literal(operand)
        if isinstance(operand, Reg | Elem):
            return self.ref(operand)
        raise ThreadIRError(f"kernel {self.kernel.name}: not an operand: {operand!r}")

    def components(self, operand: object) -> list[tuple[str, object]]:
        if isinstance(operand, Const):
            return [(c_literal(operand), c_type(operand.type))]
        t = operand.type  # type: ignore[attr-defined]
        if isinstance(t, ScalarType) and t.kind == "token":
            return []
        base = self.expr(operand)
        if isinstance(t, VectorType):
            return [(f"{base}[{k}]", c_type(t)) for k in range(t.count)]
        return [(base, c_type(t))]

    def shared_symbol(self) -> str:
        self.needs_shared = True
        return SHARED_SYMBOL

    def local_symbol(self) -> str:
        self.needs_local = True
        return LOCAL_SYMBOL

    # -- statements -------------------------------------------------------------------------

    def run(self) -> list[str]:
        self._check()
        k = self.kernel
        for p in k.params:
            self._name(p.reg)
        loop_vars = {id(s.var) for s in _walk_loops(k.body)}
        skip = loop_vars | {id(p.reg) for p in k.params}
        declared = [r for r in k.registers() if id(r) not in skip and r.type.kind != "token"]
        for r in declared:
            self._name(r)
        for a in k.arrays:
            self._name(a)
        body: list[str] = []
        self._body(k.body, body, _INDENT)  # first, so that it can ask for shared/local memory

        params = ", ".join(f"{c_type(p.type).name} {self._name(p.reg)}" for p in k.params)
        out = [f'extern "C" __global__ void __launch_bounds__({k.block_threads} '
               f"{MIN_BLOCKS_MACRO}) {k.name}({params}) {{"]
        if self.needs_shared:
            out.append(f"{_INDENT}// {k.shared_bytes} bytes of dynamic shared memory, set at "
                       "launch")
            out.append(f"{_INDENT}extern __shared__ __align__(128) unsigned char "
                       f"{SHARED_SYMBOL}[];")
        if self.needs_local:
            out.append(f"{_INDENT}__align__(16) unsigned char {LOCAL_SYMBOL}"
                       f"[{max(k.local_bytes, 1)}];")
        pointers = [p for p in k.params if p.pointer]
        if pointers:
            out.append(f"{_INDENT}// Pointers arrive as generic addresses; ld/st.global take "
                       "global ones.")
            out += [f'{_INDENT}asm("cvta.to.global.u64 %0, %0;" : "+l"({self._name(p.reg)}));'
                    for p in pointers]
        out += [self._declaration(r.type, self._name(r), None) for r in declared]
        out += [self._declaration(a.type, self._name(a), a.length) for a in k.arrays]
        return [*out, *body, "}"]

    def _declaration(self, t: Type, name: str, length: int | None) -> str:
        ct = c_type(t)
        dims = (f"[{length}]" if length is not None else "") + (
            f"[{t.count}]" if isinstance(t, VectorType) else "")
        init = " = {}" if dims else " = 0"
        plain = _PLAIN_TYPES.get(t.elem.name) == ct.name
        note = "" if plain else f"  // {t.name}"
        return f"{_INDENT}{ct.name} {name}{dims}{init};{note}"

    def _body(self, body: list[Stmt], out: list[str], indent: str) -> None:
        for s in body:
            if isinstance(s, Instr):
                self._instr(s, out, indent)
            elif isinstance(s, If):
                out.append(f"{indent}if ({self.expr(s.cond)}) {{")
                self._body(s.then_body, out, indent + _INDENT)
                if s.else_body:
                    out.append(f"{indent}}} else {{")
                    self._body(s.else_body, out, indent + _INDENT)
                out.append(f"{indent}}}")
            elif isinstance(s, For):
                self._for(s, out, indent)
            elif isinstance(s, While):
                out.append(f"{indent}while (true) {{")
                self._body(s.cond_body, out, indent + _INDENT)
                out.append(f"{indent}{_INDENT}if (!({self.expr(s.cond)})) break;")
                self._body(s.body, out, indent + _INDENT)
                out.append(f"{indent}}}")
            else:
                raise ThreadIRError(f"not a Thread IR statement: {s!r}")

    def _for(self, s: For, out: list[str], indent: str) -> None:
        var = self._name(s.var)
        ct = c_type(s.var.type).name
        start = self.expr(s.start) if not isinstance(s.start, int) else str(s.start)
        stop = self.expr(s.stop) if not isinstance(s.stop, int) else str(s.stop)
        # The Thread IR compares loop bounds signed, also for a u32 variable.
        if ct != "int":
            stop = stop if isinstance(s.stop, int) else f"(int){stop}"
        cond = f"{var} < {stop}" if ct == "int" else f"(int){var} < {stop}"
        out.append(f"{indent}#pragma unroll{'' if s.unroll else ' 1'}")
        out.append(f"{indent}for ({ct} {var} = {start}; {cond}; {var} += {s.step}) {{")
        self.loops.append(s)
        try:
            self._body(s.body, out, indent + _INDENT)
        finally:
            self.loops.pop()
        out.append(f"{indent}}}")

    def _instr(self, s: Instr, out: list[str], indent: str) -> None:
        inner = indent
        if s.guard is not None:
            out.append(f"{indent}if ({'!' if s.guard_negated else ''}{self.expr(s.guard)}) {{")
            inner = indent + _INDENT
        if s.loc and s.loc != self.last_loc:
            out.append(f"{inner}// {s.loc}")  # where the instruction came from, once per line
        self.last_loc = s.loc
        asm = InlineAsm(self.components)  # type: ignore[arg-type]
        code = cpp_statement(s, self) if self.plain_cpp else None
        if code is None:
            code = print_intrinsic(s, asm, self)
        if isinstance(code, AsmCode):
            out += asm.render(code.body, volatile=code.volatile, memory=code.memory,
                              indent=inner)
        else:
            out += [inner + line for line in code.lines]
        if s.guard is not None:
            out.append(f"{indent}}}")


def _walk_loops(body: list[Stmt]) -> list[For]:
    found: list[For] = []
    for s in body:
        if isinstance(s, For):
            found.append(s)
            found += _walk_loops(s.body)
        elif isinstance(s, If):
            found += _walk_loops(s.then_body) + _walk_loops(s.else_body)
        elif isinstance(s, While):
            found += _walk_loops(s.cond_body) + _walk_loops(s.body)
    return found

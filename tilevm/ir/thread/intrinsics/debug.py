"""Instructions a kernel uses to stop or to report: ``trap`` and ``vprintf``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from tilevm.ir.thread.intrinsics.base import Intrinsic, register

if TYPE_CHECKING:
    from tilevm.ir.thread.stmts import Instr

__all__ = ["VPRINTF_MAX_ARGS", "VPRINTF_TYPES", "Trap", "Vprintf", "printf_conversions"]


@register
class Trap(Intrinsic):
    """``trap;`` (PTX ISA 9.1 §9.7.19.4 "Miscellaneous Instructions: trap"): "Abort execution
    and generate an interrupt to the host CPU." No operands; guard it (``@p trap``) to trap where
    a condition holds. On the CPU the kernel stops at the first warp that executes it with any
    active lane, with a ``CpuKernelError`` naming the instruction and its ``loc``. Scope thread;
    all targets (sm_50 and later here); PTX 1.0."""

    name = "trap"
    ptx_isa = (1, 0)
    has_result = False

    def check(self, instr: Instr) -> None:
        super().check(instr)
        self.expect_arity(instr, 0)

    def mnemonic(self, instr: Instr) -> str:
        return "trap"


# What a C printf reads for each conversion: %d %i %u %x %X %o %c take an int (h/hh: still an
# int, promoted) or, with l/ll, a 64-bit integer (LP64: long is 64 bits, on the host and the
# GPU); %f %F %e %E %g %G %a %A take a double (l is allowed and ignored).
_CONVERSION = re.compile(r"%(?P<flags>[-+ #0]*)(?P<width>\d*)(?:\.(?P<precision>\d*))?"
                         r"(?P<length>hh|h|ll|l|)(?P<conv>[diuxXocfFeEgGaA%])")
_INTS = "diuxXoc"

VPRINTF_TYPES = ("u32", "s32", "b32", "u64", "s64", "b64", "f64")
VPRINTF_MAX_ARGS = 32


def printf_conversions(fmt: str) -> list[str]:
    """The argument kind each conversion of ``fmt`` reads, in order: ``"int32"``, ``"int64"``
    or ``"double"``. Raises ``ValueError`` for a conversion tilevm does not pass (``%s``, ``%p``,
    ``%n``, ``*`` widths, ``L``/``j``/``z``/``t`` lengths, ``%c`` with ``l``) or a stray ``%``."""
    kinds: list[str] = []
    pos = 0
    while True:
        k = fmt.find("%", pos)
        if k < 0:
            return kinds
        m = _CONVERSION.match(fmt, k)
        if m is None:
            raise ValueError(f"unsupported printf conversion at {fmt[k:k + 8]!r} (tilevm passes "
                             "integers to %d %i %u %x %X %o %c and doubles to %f %e %g %a)")
        conv, length = m.group("conv"), m.group("length")
        if conv == "%":
            if m.group(0) != "%%":
                raise ValueError(f"malformed %% in {fmt[k:m.end()]!r}")
        elif conv in _INTS:
            if conv == "c" and length in ("l", "ll"):
                raise ValueError("%lc (a wide character) is not supported")
            kinds.append("int64" if length in ("l", "ll") else "int32")
        else:
            if length not in ("", "l"):
                raise ValueError(f"length {length!r} is not valid for %{conv}")
            kinds.append("double")
        pos = m.end()


@register
class Vprintf(Intrinsic):
    """``vprintf(format, args)``: C ``printf`` of scalar operands with a constant format.

    Not a PTX instruction but the CUDA device runtime's system call (``extern "C" __device__ int
    vprintf(const char *format, const char *args)``, which CUDA's device ``printf`` compiles to):
    the operands are laid out in a local buffer, each aligned to its size, and the host prints
    them after the kernel. Modifier ``format`` (a Python ``str``, printf syntax). Operands are
    ``u32``/``s32``/``b32`` (for ``%d %i %u %x %X %o %c``), ``u64``/``s64``/``b64`` (for the same
    with ``l``/``ll``) and ``f64`` (for ``%f %e %g %a``; convert an ``f32`` first, as C varargs
    promote it); ``%%`` prints a ``%``. Each conversion must match its operand's width and kind,
    and at most 32 operands are passed (CUDA's limit). No result.

    On the CPU each active lane, in lane order, formats the values with the C library's
    ``snprintf`` and writes the text to standard output (file descriptor 1), or to the launch's
    print sink when one collects the output of each block; warps print in the order they run.
    On the GPU the order between threads is unspecified. Scope thread; all targets (sm_50 and
    later here); any PTX ISA (it is a call, not an instruction).
    """

    name = "vprintf"
    ptx_isa = (1, 0)
    has_result = False

    def check(self, instr: Instr) -> None:
        super().check(instr)
        fmt = instr.mod("format")
        self.expect(isinstance(fmt, str), instr, f"format must be a str, got {fmt!r}")
        assert isinstance(fmt, str)
        self.expect("\0" not in fmt, instr, "format must not contain a NUL character")
        try:
            kinds = printf_conversions(fmt)
        except ValueError as e:
            self.fail(instr, str(e))
        self.expect(len(instr.args) <= VPRINTF_MAX_ARGS, instr,
                    f"at most {VPRINTF_MAX_ARGS} operands, got {len(instr.args)}")
        self.expect(len(kinds) == len(instr.args), instr,
                    f"the format has {len(kinds)} conversions for {len(instr.args)} operands")
        for i, (a, kind) in enumerate(zip(instr.args, kinds, strict=True)):
            t = a.type
            self.expect(t.name in VPRINTF_TYPES, instr,
                        f"operand {i} is {t}; vprintf takes {', '.join(VPRINTF_TYPES)} (convert "
                        "f32 to f64 and narrow integers to 32 bits)")
            want = {"int32": (32, True), "int64": (64, True), "double": (64, False)}[kind]
            self.expect((t.bits, t.is_int) == want, instr,
                        f"operand {i} ({t}) does not match its conversion, which reads "
                        f"{'a double' if kind == 'double' else 'a ' + kind[3:] + '-bit integer'}")

    def mnemonic(self, instr: Instr) -> str:
        return "vprintf"

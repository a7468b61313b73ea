"""One inline-PTX statement of the generated CUDA C++: operands, constraints, predicates, text.

Operands are numbered outputs first (``%0``…), then inputs, as GCC-style asm requires; a builder
hands out placeholders and numbers them when the statement is rendered, so an intrinsic's printer
can ask for operands in the order its PTX names them. A Thread IR predicate travels as a 0/1
``unsigned`` and becomes a PTX ``.pred`` inside a ``{ }`` scope (``setp.ne`` in, ``selp`` out).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from tilevm.backend.cuda.cuda_types import CType, c_bitcast, c_type
from tilevm.ir.thread.types import B32, B64, F32, F64, ScalarType

__all__ = ["InlineAsm"]

Components = Callable[[object], list[tuple[str, CType]]]

_FLOAT_REGISTERS = {"float": F32, "double": F64}
_BITS_OF = {"float": B32, "double": B64}


def _as_bits(ct: CType, expect: ScalarType | None) -> CType | None:
    """The bit-pattern C type to bind a float register as, or None to bind it as it is."""
    own = _FLOAT_REGISTERS.get(ct.name)
    if own is None or expect is None or expect == own:
        return None
    return c_type(_BITS_OF[ct.name])


_PLACEHOLDER = re.compile(r"@@([oi])(\d+)@@")
_WRAP_AT = 100


class InlineAsm:
    """Builds one ``asm("..." : outputs : inputs : clobbers);`` statement.

    ``components(operand)`` gives the C++ lvalue/rvalue and C type of each scalar register of a
    Thread IR operand (four for a ``b32v4`` register).
    """

    def __init__(self, components: Components) -> None:
        self._components = components
        self._outputs: list[str] = []
        self._inputs: list[str] = []
        self._pre: list[str] = []
        self._post: list[str] = []
        self._preds: list[str] = []
        self._temps: list[tuple[str, CType]] = []
        self._copies: list[str] = []

    def out(self, dst: object, expect: ScalarType | None = None) -> list[str]:
        """Placeholders of ``dst``'s registers as outputs (``"=r"(x)``).

        ``expect`` is the type the instruction gives this operand. A float register (``"f"``,
        ``"d"``: a PTX ``.f32``/``.f64`` register) where the instruction's type is not that float
        is written through a bit-pattern temporary and reinterpreted: ptxas accepts ``.bN``
        registers for any type of N bits but float registers only for floats, while the Thread IR
        lets a ``b32`` operand take an ``f32`` register (e.g. an ``mma`` fragment)."""
        names = []
        for expr, ct in self._components(dst):
            names.append(f"@@o{len(self._outputs)}@@")
            bits = _as_bits(ct, expect)
            if bits is not None:
                temp = f"tilevm_t{len(self._temps)}"
                self._temps.append((temp, bits))
                self._copies.append(f"{expr} = {c_bitcast(temp, bits, ct)};")
                expr, ct = temp, bits
            self._outputs.append(f'"={ct.constraint}"({expr})')
        return names

    def inp(self, operand: object, expect: ScalarType | None = None) -> list[str]:
        """Placeholders of ``operand``'s registers (or literal) as inputs (``"r"(x)``); a float
        register where ``expect`` is not that float is passed as its bit pattern (see
        :meth:`out`)."""
        names = []
        for expr, ct in self._components(operand):
            names.append(f"@@i{len(self._inputs)}@@")
            bits = _as_bits(ct, expect)
            if bits is not None:
                expr, ct = c_bitcast(expr, ct, bits), bits
            self._inputs.append(f'"{ct.constraint}"({expr})')
        return names

    def one_out(self, dst: object, expect: ScalarType | None = None) -> str:
        (name,) = self.out(dst, expect)
        return name

    def one_in(self, operand: object, expect: ScalarType | None = None) -> str:
        (name,) = self.inp(operand, expect)
        return name

    def pred_in(self, operand: object) -> str:
        """A PTX predicate, set inside the asm from the 0/1 value of ``operand``."""
        name = f"p{len(self._preds)}"
        self._preds.append(name)
        self._pre.append(f"setp.ne.b32 {name}, {self.one_in(operand)}, 0;")
        return name

    def pred_out(self, dst: object) -> str:
        """A PTX predicate whose value the asm stores into ``dst`` as 0/1."""
        name = f"p{len(self._preds)}"
        self._preds.append(name)
        self._post.append(f"selp.u32 {self.one_out(dst)}, 1, 0, {name};")
        return name

    def render(self, body: list[str], *, volatile: bool, memory: bool, indent: str) -> list[str]:
        """The statement as C++ lines. ``body`` is the PTX (instructions end with ``;``);
        ``volatile`` keeps the compiler from moving, merging or deleting it; ``memory`` tells it
        that memory is read or written (a compiler barrier for memory accesses)."""
        n_out = len(self._outputs)

        def number(text: str) -> str:
            return _PLACEHOLDER.sub(
                lambda m: f"%{int(m.group(2)) + (0 if m.group(1) == 'o' else n_out)}", text)

        ptx = [number(line) for line in [*self._pre, *body, *self._post]]
        if self._temps:
            indent += "  "  # inside the block that holds the temporaries
        head = f"asm{' volatile' if volatile else ''}("
        sections = [self._outputs, self._inputs]
        if memory:
            sections.append(['"memory"'])
        while len(sections) > 1 and not sections[-1]:
            sections.pop()
        # Always the extended form (at least one colon), where "%%" means a literal "%".
        parts = [f": {', '.join(s)}" if s else ":" for s in sections]
        if self._preds:
            ptx = ["{", f".reg .pred {', '.join(self._preds)};", *ptx, "}"]
        pad = indent + " " * len(head)
        if len(ptx) == 1:
            line = f'{indent}{head}"{ptx[0]}" {" ".join(parts)});'
            if len(line) <= _WRAP_AT:
                return self._in_block(indent, [line])
            lines = [f'{indent}{head}"{ptx[0]}"']
        else:
            lines = [f'{indent}{head}"{ptx[0]}\\n"']
            for k, text in enumerate(ptx[1:], 1):
                nested = "  " if k < len(ptx) - 1 and ptx[0] == "{" else ""
                end = "" if k == len(ptx) - 1 else "\\n"
                lines.append(f'{pad}"{nested}{text}{end}"')
        for items in sections:
            lines += _wrapped(pad, items)
        lines[-1] += ");"
        return self._in_block(indent, lines)

    def _in_block(self, indent: str, lines: list[str]) -> list[str]:
        if not self._temps:
            return lines
        # Outputs through temporaries: a block declares them and copies them out after the asm.
        outer = indent[:-2]
        declarations = [f"{indent}{ct.name} {name};" for name, ct in self._temps]
        return [f"{outer}{{", *declarations, *lines, *(indent + copy for copy in self._copies),
                f"{outer}}}"]


def _wrapped(pad: str, items: list[str]) -> list[str]:
    """One operand section (``: a, b, c``), broken into lines of at most ``_WRAP_AT`` columns."""
    if not items:
        return [f"{pad}:"]
    lines, current = [], f"{pad}: "
    for k, item in enumerate(items):
        piece = item + ("," if k < len(items) - 1 else "")
        if len(current) + len(piece) > _WRAP_AT and current.strip() != ":":
            lines.append(current.rstrip())
            current = pad + "  "
        current += piece + " "
    lines.append(current.rstrip())
    return lines

"""The readable text dump of Thread IR.

The text is complete (every type, modifier and structure is in it) and deterministic, so the CPU
backend keys its JIT cache on it (a statement's ``origin`` is left out: it does not change the
program). Example::

    kernel axpy(%x: u64 ptr, %n: u32) threads=128 shared=0 local=0 {
      %tid: u32 = sreg {name=tid.x}
      %p: pred = setp.lo.u32 %tid, %n {cmp=lt}
      if %p {
        ...
      }
      while uniform {
        %c: pred = setp.lt.s32 %i, %m {cmp=lt}
        if !%c break
        ...
      }
    }
"""

from __future__ import annotations

import json
import re
from typing import Any

from tilevm.ir.thread.stmts import For, If, Instr, Kernel, Stmt, While
from tilevm.ir.thread.types import ScalarType, VectorType

__all__ = ["dump", "format_stmt"]


def _mod_value(key: str, v: Any) -> str:
    if isinstance(v, ScalarType | VectorType):
        return v.name
    if isinstance(v, bool):
        return "true" if v else "false"
    if key == "lut":
        return f"0x{v:02x}"
    if isinstance(v, str) and (key == "format" or not re.fullmatch(r"[\w.:]+", v)):
        return json.dumps(v)  # quoted and escaped: a format string may hold any character
    return str(v)


def format_stmt(s: Instr) -> str:
    """One instruction on one line: ``[@%p ]%d: type = mnemonic args {mods}``."""
    guard = f"@{'!' if s.guard_negated else ''}{s.guard} " if s.guard is not None else ""
    dst = f"{s.dst}: {s.dst.type} = " if s.dst is not None else ""
    args = ", ".join(str(a) for a in s.args)
    mods = ", ".join(f"{k}={_mod_value(k, v)}" for k, v in sorted(s.mods.items()) if v is not None)
    try:
        mnemonic = s.op.mnemonic(s)
    except Exception:  # a malformed instruction still prints, for its error message
        mnemonic = s.op.name
    text = f"{guard}{dst}{mnemonic}"
    if args:
        text += " " + args
    if mods:
        text += " {" + mods + "}"
    return text


def _flags(*pairs: tuple[bool, str]) -> str:
    return "".join(f" {name}" for on, name in pairs if on)


def _body(body: list[Stmt], indent: str, out: list[str]) -> None:
    for s in body:
        if isinstance(s, Instr):
            out.append(indent + format_stmt(s))
        elif isinstance(s, If):
            out.append(f"{indent}if {s.cond}{_flags((s.uniform, 'uniform'))} {{")
            _body(s.then_body, indent + "  ", out)
            if s.else_body:
                out.append(f"{indent}}} else {{")
                _body(s.else_body, indent + "  ", out)
            out.append(indent + "}")
        elif isinstance(s, For):
            out.append(f"{indent}for {s.var}: {s.var.type} = {s.start} to {s.stop} step {s.step}"
                       f"{_flags((s.unroll, 'unroll'), (s.uniform, 'uniform'))} {{")
            _body(s.body, indent + "  ", out)
            out.append(indent + "}")
        elif isinstance(s, While):
            out.append(f"{indent}while{_flags((s.uniform, 'uniform'))} {{")
            _body(s.cond_body, indent + "  ", out)
            out.append(f"{indent}  if !{s.cond} break")
            _body(s.body, indent + "  ", out)
            out.append(indent + "}")
        else:
            raise TypeError(f"not a Thread IR statement: {s!r}")


def dump(kernel: Kernel) -> str:
    """The kernel as text, one statement per line, nested bodies indented by two spaces."""
    params = ", ".join(f"{p.reg}: {p.type}{' ptr' if p.pointer else ''}" for p in kernel.params)
    out = [f"kernel {kernel.name}({params}) threads={kernel.block_threads} "
           f"shared={kernel.shared_bytes} local={kernel.local_bytes} {{"]
    for a in kernel.arrays:
        out.append(f"  array {a}: {a.type}[{a.length}]")
    _body(kernel.body, "  ", out)
    out.append("}")
    return "\n".join(out) + "\n"

"""The printer gives each PTX instruction its operands in the ISA's order, the order in which the
CPU backend reads them (``Instr.args[0]`` is the ISA's ``a``, and so on): the two executions
agree only if both follow the ISA's operand roles. Each case names a role that a swap would
break, with the ISA section defining it:

- ``shf.l.wrap.b32 d, a, b, c``: ``a`` is the low word, ``b`` the high word ("Logic and Shift
  Instructions: shf", ``d = (b << n) | (a >> (32 - n))``);
- ``prmt.b32 d, a, b, c``: ``{b, a}`` numbers bytes 0-3 from ``a`` ("Data Movement and
  Conversion Instructions: prmt");
- ``bfe.u32 d, a, b, c`` (``b`` position, ``c`` length), ``bfi.b32 f, a, b, c, d`` (``a`` the
  inserted field, ``b`` the base) ("Integer Arithmetic Instructions: bfe, bfi");
- ``lop3.b32 d, a, b, c, immLut`` ("Logic and Shift Instructions: lop3");
- ``mad.wide.s32 d, a, b, c`` with a 64-bit ``c`` ("Integer Arithmetic Instructions: mad");
- ``selp.b32 d, a, b, c``: ``d = c ? a : b`` ("Comparison and Selection Instructions: selp"),
  printed so in C++, and in the ISA's order as inline PTX;
- ``shfl.sync.idx.b32 d, a, b, c, membermask`` ("Data Movement and Conversion Instructions:
  shfl.sync");
- ``cp.async.ca.shared.global [dst], [src], cp-size, src-size`` ("cp.async");
- ``mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 d, a, b, c`` ("Warp Level Matrix
  Multiply-Accumulate Instructions: mma").
"""

from __future__ import annotations

import re

from tilevm.backend.cuda import emit_cuda
from tilevm.ir.thread import B32, F32, S32, S64, U32, U64, KernelBuilder, vector


def _source(plain_cpp: bool = True) -> str:
    kb = KernelBuilder("order", block_threads=32, shared_bytes=256)
    out = kb.param("out", U64, pointer=True)
    lo, hi, n = kb.param("lo", B32), kb.param("hi", B32), kb.param("n", U32)
    sa, sb, wc = kb.param("sa", S32), kb.param("sb", S32), kb.param("wc", S64)
    src = kb.param("src", U64, pointer=True)

    def keep(v) -> None:
        kb.st("global", out, v)

    keep(kb.shf(lo, hi, n, dir="l", mode="wrap"))
    keep(kb.prmt(lo, hi, kb.mov(n, B32)))
    keep(kb.bfe(kb.mov(lo, U32), n, 8))
    keep(kb.bfi(lo, hi, n, 4))
    keep(kb.lop3(lo, hi, kb.mov(n, B32), 0xE8))
    keep(kb.mad(sa, sb, wc, mode="wide"))
    keep(kb.selp(lo, hi, kb.setp("lt", sa, sb)))
    keep(kb.shfl("idx", lo, n, 0x1F, 0xFFFFFFFF))
    kb.cp_async(kb.shared_base(), src, 16, src_size=n)
    fa = kb.ld("global", out, vector(B32, 4))
    fb = kb.ld("global", out, vector(B32, 2))
    fc = kb.ld("global", out, vector(F32, 4))
    kb.st("global", out, kb.mma("m16n8k16", "f16", fa, fb, fc))
    return emit_cuda(kb.finish(), "sm_80", plain_cpp=plain_cpp)


def _split_sections(body: str) -> list[str]:
    """The asm arguments split at the colons outside strings and parentheses."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(body):
        if ch == '"' and body[i - 1] != "\\":
            quoted = not quoted
        elif not quoted and ch in "()":
            depth += 1 if ch == "(" else -1
        elif not quoted and depth == 0 and ch == ":":
            parts.append(body[start:i])
            start = i + 1
    return [*parts, body[start:]]


def _asm(source: str, opcode: str) -> tuple[str, list[str], list[str]]:
    """(PTX text, output expressions, input expressions) of the one asm that holds ``opcode``."""
    flat = " ".join(line.strip() for line in source.splitlines())
    found = [m for m in re.finditer(r'asm(?: volatile)?\((".*?)\);', flat) if opcode in m.group(1)]
    assert len(found) == 1, (opcode, [m.group(0) for m in found])
    text_part, *sections = _split_sections(found[0].group(1))
    text = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', text_part))
    sections += ["", ""]
    exprs = [re.findall(r'"[=+]?[a-z]"\(([^()]*(?:\([^()]*\))?[^()]*)\)', x) for x in sections[:2]]
    return text, exprs[0], exprs[1]


def _operands(text: str, opcode: str) -> list[str]:
    line = next(x for x in text.split("\\n") if x.strip().startswith(opcode))
    return [o.strip() for o in line.strip().rstrip(";")[len(opcode):].split(",")]


def test_scalar_operands_in_isa_order() -> None:
    src = _source()
    cases = {
        "shf.l.wrap.b32": ["lo", "hi", "n"],
        "bfi.b32": ["lo", "hi", "n"],
        "mad.wide.s32": ["sa", "sb", "wc"],
    }
    for opcode, want in cases.items():
        text, _, ins = _asm(src, opcode)
        assert _operands(text, opcode) == ["%0", "%1", "%2", "%3"] + (
            ["%4"] if opcode == "bfi.b32" else []), opcode
        assert ins[: len(want)] == want, (opcode, ins)
    # prmt and lop3: a and b are lo and hi, in that order
    for opcode in ("prmt.b32", "lop3.b32"):
        text, _, ins = _asm(src, opcode)
        assert ins[:2] == ["lo", "hi"], (opcode, ins)
    assert _operands(_asm(src, "lop3.b32")[0], "lop3.b32")[-1] == "0xe8"
    # bfe: a, then the position register, then the length
    _, _, ins = _asm(src, "bfe.u32")
    assert ins[1] == "n" and ins[2] == "8u", ins


def test_selp_shfl_cp_async_and_mma_in_isa_order() -> None:
    src = _source()
    # selp prints as C++ (d = c ? a : b), its predicate the result of the setp before it.
    (select,) = re.findall(r"(\w+) = (\w+) \? (\w+) : (\w+);", src)
    assert select[2:] == ("lo", "hi") and f"{select[1]} = sa < sb;" in src
    text, _, ins = _asm(_source(plain_cpp=False), "selp.b32")
    ops = _operands(text, "selp.b32")
    assert ins[:2] == ["lo", "hi"] and ops[1:3] == ["%1", "%2"] and ops[3].startswith("p")
    text, _, ins = _asm(src, "shfl.sync.idx.b32")
    assert _operands(text, "shfl.sync.idx.b32") == ["%0", "%1", "%2", "%3", "%4"]
    assert ins == ["lo", "n", "31u", "0xffffffffu"], ins
    text, _, ins = _asm(src, "cp.async.ca.shared.global")
    assert _operands(text, "cp.async.ca.shared.global") == ["[%0]", "[%1]", "16", "%2"]
    assert ins[1:] == ["src", "n"], ins
    text, outs, ins = _asm(src, "mma.sync.aligned")
    assert _operands(text, "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32")[0] == "{%0"
    assert len(outs) == 4 and len(ins) == 4 + 2 + 4
    # a's four registers, then b's two, then c's four, each in element order
    stems = [re.sub(r"\[\d\]$", "", x) for x in ins]
    idx = [int(re.search(r"\[(\d)\]$", x).group(1)) for x in ins]
    assert idx == [0, 1, 2, 3, 0, 1, 0, 1, 2, 3]
    assert len({stems[0], stems[4], stems[6]}) == 3 and stems[:4] == [stems[0]] * 4

"""The work a GEMM main loop spends making its B operands (the weights), read off the SASS by
data flow rather than by opcode.

``sass_metrics.py`` counts "dequantization" by opcode (LOP3, SHF, PRMT, HADD2...), which also
counts the address arithmetic that uses those opcodes; differencing two kernels then depends on
how much address arithmetic each has. This module follows the registers instead: starting from
the B operand registers of every tensor-core instruction of the main loop, it walks the loop
body backwards (twice around, for values a pipelined loop computes one pass ahead), adding each
instruction that defines a wanted register and wanting its source registers in turn, and stops
at loads (global, shared, ``ldmatrix``): what a weight costs between memory and the MMA. An
instruction that only computes an address never defines a register the slice wants, so it is
never counted. A register-to-register copy (``MOV``, ``IMAD.MOV`` of a register) is followed
but not counted: it carries a value loaded a pass ahead into the register the next pass reads,
and a baseline whose "weights" take four times the registers copies four times as many (a
constant materialized by ``IMAD.MOV``, such as a conversion's mask, is counted).

Usage (from another bench script): ``b_operand_slice(metrics, cubin)`` with ``metrics`` the
loaded ``sass_metrics.py``; returns the sliced instructions' opcode histogram and count, or None
for a loop whose MMAs take B from shared memory (``wgmma``). The slice is meaningful for kernels
that build B in registers (tilevm's prepared-weight kernels); one that converts weights before
storing them to shared memory and reads B back with ``ldmatrix`` slices to nothing.
"""

from __future__ import annotations

import collections
import re
from pathlib import Path
from types import ModuleType

# Instructions whose results come from memory (or another thread): where the slice stops.
_LOADS = frozenset({"LDS", "LDG", "LDSM", "LD", "LDL", "LDC", "ULDC", "LDGSTS", "SHFL"})
_REGISTER = re.compile(r"\bU?R(\d+)\b")
# B operand registers of one HMMA, by shape (m16n8k16: two 32-bit registers; m16n8k8: one).
_B_WIDTH = {"16816": 2, "1688": 1, "884": 1}


def _registers(token: str, width: int = 1) -> list[str]:
    """``R12`` (or ``R12.reuse``, ``-R12``, ``R12.H0_H0``) and the ``width - 1`` after it."""
    m = _REGISTER.search(token)
    if m is None:
        return []
    prefix = "UR" if token.lstrip("-|~!").startswith("UR") else "R"
    return [f"{prefix}{int(m.group(1)) + k}" for k in range(width)]


def _load_width(opcode: str, modifiers: tuple[str, ...]) -> int:
    if opcode == "LDSM":  # .M88.4 / .M88.2 / .M88 (one)
        return int(modifiers[-1]) if modifiers and modifiers[-1].isdigit() else 1
    for bits, width in (("128", 4), ("64", 2)):
        if bits in modifiers:
            return width
    return 1


def _defines(insn: object) -> list[str]:
    """The general registers ``insn`` writes (its first operand; none for stores and branches)."""
    operands = [o.strip() for o in insn.operands.split(",")]
    if not operands or not _REGISTER.match(operands[0].lstrip("-|~!")):
        return []
    width = _load_width(insn.opcode, insn.modifiers) if insn.opcode in _LOADS else (
        2 if "WIDE" in insn.modifiers else 1)
    return _registers(operands[0], width)


def _copied_register(insn: object) -> list[str]:
    """The source register of a register-to-register copy, or [] for anything else."""
    operands = [o.strip() for o in insn.operands.split(",")]
    if insn.opcode == "MOV" and len(operands) == 2:
        source = operands[1]
    elif (insn.opcode == "IMAD" and "MOV" in insn.modifiers and len(operands) == 4
          and operands[1:3] == ["RZ", "RZ"]):
        source = operands[3]
    else:
        return []
    return _registers(source) if _REGISTER.fullmatch(source.split(".")[0]) else []


def b_operand_instructions(body: list) -> list | None:
    """The instructions of a loop ``body`` (``sass_metrics.Instruction``s, in address order, the
    last one the back-edge) that compute its HMMAs' B operands from loaded registers, in
    address order; None when the loop has no HMMA (``wgmma`` reads B from shared memory)."""
    if not any(i.opcode == "HMMA" for i in body):
        return None
    wanted: set[str] = set()
    sliced: dict[int, object] = {}
    for insn in reversed(body + body):  # twice around: values computed a pass ahead
        if insn.opcode == "HMMA":
            shape = insn.modifiers[0] if insn.modifiers else ""
            wanted.update(_registers(insn.operands.split(",")[2], _B_WIDTH[shape]))
            continue
        written = [r for r in _defines(insn) if r in wanted]
        if not written:
            continue
        # A definition ends the register's live range (the parsed text has no predicate; the
        # weights are converted unpredicated, only their loads are predicated).
        wanted.difference_update(written)
        if insn.opcode in _LOADS:
            continue
        copied = _copied_register(insn)
        if copied:  # followed, not counted
            wanted.update(copied)
            continue
        sliced[insn.address] = insn
        for operand in insn.operands.split(",")[1:]:
            wanted.update(_registers(operand))
    return [sliced[a] for a in sorted(sliced)]


def b_operand_slice(metrics: ModuleType, cubin: Path) -> dict | None:
    """The B-operand slice (:func:`b_operand_instructions`) of ``cubin``'s main loop, as
    ``metrics.loop_metrics`` picks it: ``{"instructions", "opcodes"}``, or None."""
    tool = metrics.find_cuobjdump()
    functions = metrics.parse_sass(metrics._run([tool, "-sass", str(cubin)]))
    (function,) = functions.values()
    instructions = function["instructions"]
    main, _ = metrics.loop_metrics(instructions)
    if main is None:
        return None
    start, end = int(main["start"], 16), int(main["end"], 16)
    sliced = b_operand_instructions([i for i in instructions if start <= i.address <= end])
    if sliced is None:
        return None
    opcodes = collections.Counter(i.opcode for i in sliced)
    return {"instructions": len(sliced), "opcodes": dict(opcodes.most_common())}

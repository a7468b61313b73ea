"""SASS instructions per converted element of the packed-word casts to f16/bf16.

For every type of at most 8 bits (the 36 of ``python -m tilevm info``), each of f16 and bf16,
sm_80 and sm_90, and both element orders, a Thread IR kernel converts ``depth`` groups of packed
words per thread with :func:`tilevm.backend.lower.casts.cast_words` (natural order) or
``cast_words_free`` (free order) and stores the pairs. A copy kernel loads the same words and
stores as many words, in a loop of ``iters`` passes (``#pragma unroll 1``) whose body holds
``depth`` conversions (unrolled). All kernels of one target go through NVRTC in one translation
unit; the SASS (``cuobjdump -sass``, :mod:`tilevm.backend.cuda.sass`) of each loop body is
counted, NOPs left out. Per converted element:

    ((convert(D2) − convert(D1)) − (copy(D2) − copy(D1))) / ((D2 − D1) · group)

with depths D1 = 2 and D2 = 4: the method of ``notes/cast-targets.md`` (steady state, the
loop-invariant constants hoisted out of the loop, two unroll depths differenced against a
copy). A type whose sequence does not exist yet is "–".

Usage: ``python bench/cast_costs.py [--readme bench/README.md] [--json FILE]`` prints the table
(and rewrites its section of the README).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from tilevm.backend.cuda import compile_cuda, emit_cuda
from tilevm.backend.cuda.sass import disassemble
from tilevm.backend.lower.casts import (
    cast_words,
    cast_words_free,
    group_size,
    group_words,
    has_word_cast,
)
from tilevm.ir.dtypes import DType, all_dtypes
from tilevm.ir.thread import B32, S32, U64, KernelBuilder
from tilevm.ir.thread.stmts import Kernel

__all__ = ["NOTE_FIGURES", "CostRow", "cast_costs", "limit", "markdown_table", "small_types"]

DEPTHS = (2, 4)
TARGETS = (80, 90)
HALVES = ("f16", "bf16")

# notes/cast-targets.md, column "best": where a row gives a range over several types, each type
# gets the range's upper end (the note does not say which type reaches which end).
NOTE_FIGURES: dict[tuple[str, str], float] = {
    **{(f"u{n}", "f16"): 1.14 for n in (1, 2, 3, 4)},
    **{(f"u{n}", "f16"): 1.44 for n in (5, 6, 7)},
    **{(f"i{n}", "f16"): 1.34 for n in (2, 3, 4, 5)},
    ("i8", "f16"): 1.22,
    ("u8", "f16"): 0.98,
    ("f8e5m2", "f16"): 0.50,
    ("f4e2m1fn", "f16"): 1.75,
    # "2.00 … (NaN codes need one more op if kept)": the contract keeps them (a NaN code gives a
    # NaN), so one more instruction per word of four codes.
    ("f8e4m3fn", "f16"): 2.00 + 0.25,
    **{(t, "f16"): 3.50 for t in ("f3e1m1", "f5e2m2", "f5e3m1", "f6e2m3fn", "f6e3m2fn",
                                 "f7e3m3")},
    ("u3", "bf16"): 1.41,
    ("u4", "bf16"): 1.41,
    ("u8", "bf16"): 2.25,
    ("f4e2m1fn", "bf16"): 3.5,
    ("f6e3m2fn", "bf16"): 3.5,
}


def limit(src: str, dst: str) -> float:
    """What the free order must reach: 1.2 × the note's figure where it lists the type, else 3.5
    instructions per element (f16) or 4 (bf16)."""
    figure = NOTE_FIGURES.get((src, dst))
    if figure is not None:
        return 1.2 * figure
    return 3.5 if dst == "f16" else 4.0


@dataclass(frozen=True)
class CostRow:
    """Instructions per element of one conversion (None: no sequence yet)."""

    src: str
    dst: str
    target: int
    natural: float | None
    free: float | None
    note: float | None


def small_types() -> list[DType]:
    """The 36 types of at most 8 bits, in ``tilevm info``'s order."""
    return [dt for dt in all_dtypes() if dt.nbits <= 8]


def _kernel(name: str, src: DType, depth: int, convert: object) -> Kernel:
    """A loop (``iters`` passes, not unrolled) in which thread t converts ``depth`` groups of
    ``q`` and stores the pairs to ``h``; ``convert(kb, words)`` gives the ``group / 2`` words
    to store. Constants are loop-invariant: ptxas keeps them out of the loop."""
    nwords, pairs = group_words(src), group_size(src) // 2
    kb = KernelBuilder(name, block_threads=32)
    pin, pout = kb.param("q", U64, pointer=True), kb.param("h", U64, pointer=True)
    iters = kb.param("iters", S32)
    t = kb.mov(kb.sreg("tid.x"), "u32")
    first_in = kb.add(pin, kb.mul(t, 4 * nwords * depth, mode="wide"))
    first_out = kb.add(pout, kb.mul(t, 4 * pairs * depth, mode="wide"))
    with kb.for_(0, iters, name="it") as it:
        pass_in = kb.add(first_in, kb.mul(it, 128 * nwords * depth, mode="wide"))
        pass_out = kb.add(first_out, kb.mul(it, 128 * pairs * depth, mode="wide"))
        with kb.for_(0, depth, unroll=True, name="d") as d:
            at_in = kb.add(pass_in, kb.mul(d, 4 * nwords, mode="wide"))
            at_out = kb.add(pass_out, kb.mul(d, 4 * pairs, mode="wide"))
            words = [kb.ld("global", kb.add(at_in, 4 * k), B32) for k in range(nwords)]
            for j, word in enumerate(convert(kb, words)):
                kb.st("global", kb.add(at_out, 4 * j), kb.mov(word, B32))
    return kb.finish()


def _kernels(src: DType, target: int) -> dict[str, Kernel]:
    """Every kernel measuring ``src`` on ``target``, by function name."""
    out: dict[str, Kernel] = {}
    pairs = group_size(src) // 2
    for depth in DEPTHS:
        name = f"copy_{src.name}_{depth}"
        out[name] = _kernel(name, src, depth, lambda kb, w: [w[j % len(w)] for j in range(pairs)])
        for dst in HALVES:
            half = dtype_named(dst)
            if has_word_cast(src, half, target):
                name = f"natural_{src.name}_{dst}_{depth}"
                out[name] = _kernel(name, src, depth, lambda kb, w, h=half: cast_words(
                    kb, w, src, h, target))
            if has_word_cast(src, half, target, free=True):
                name = f"free_{src.name}_{dst}_{depth}"
                out[name] = _kernel(name, src, depth, lambda kb, w, h=half: cast_words_free(
                    kb, w, src, h, target)[0])
    return out


def dtype_named(name: str) -> DType:
    """The type called ``name``."""
    return next(dt for dt in all_dtypes() if dt.name == name)


_LINE = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_]*)\S*\s*([^;]*);")
_FUNCTION = re.compile(r"Function : (\S+)")


def loop_body_counts(listing: str) -> dict[str, int]:
    """Per function of a ``cuobjdump -sass`` listing: the instructions (NOPs left out) of its
    largest loop — between a backward ``BRA``'s target and the branch itself."""
    functions: dict[str, list[tuple[int, str, str]]] = {}
    current: list[tuple[int, str, str]] | None = None
    for line in listing.splitlines():
        if m := _FUNCTION.search(line):
            current = functions.setdefault(m.group(1), [])
        elif current is not None and (m := _LINE.search(line)):
            current.append((int(m.group(1), 16), m.group(2), m.group(3)))
    out: dict[str, int] = {}
    for name, insns in functions.items():
        best = 0
        for address, op, operands in insns:
            target = re.findall(r"0x([0-9a-f]+)", operands)
            if op == "BRA" and target and int(target[-1], 16) < address:
                start = int(target[-1], 16)
                body = [o for a, o, _ in insns if start <= a <= address and o != "NOP"]
                best = max(best, len(body))
        out[name] = best
    return out


def _counts(kernels: dict[str, Kernel], target: int, cache_dir: Path | None) -> dict[str, int]:
    """Loop-body SASS instructions of each kernel, all compiled in one translation unit."""
    source = emit_cuda(list(kernels.values()), f"sm_{target}")
    binary = compile_cuda(source, f"sm_{target}", cache_dir=cache_dir)
    return loop_body_counts(disassemble(binary.cubin))


def cast_costs(types: Iterable[DType] | None = None, targets: Iterable[int] = TARGETS,
               cache_dir: Path | None = None) -> list[CostRow]:
    """The cost table (see the module docstring) for ``types`` (default: all 36)."""
    types = list(types) if types is not None else small_types()
    rows: list[CostRow] = []
    for target in targets:
        kernels: dict[str, Kernel] = {}
        for src in types:
            kernels.update(_kernels(src, target))
        counts = _counts(kernels, target, cache_dir)
        for src in types:
            for dst in HALVES:
                rows.append(CostRow(src.name, dst, target,
                                    _per_element(counts, "natural", src, dst),
                                    _per_element(counts, "free", src, dst),
                                    NOTE_FIGURES.get((src.name, dst))))
    return rows


def _per_element(counts: dict[str, int], kind: str, src: DType, dst: str) -> float | None:
    d1, d2 = DEPTHS
    a, b = f"{kind}_{src.name}_{dst}_{d1}", f"{kind}_{src.name}_{dst}_{d2}"
    if a not in counts:
        return None
    copy = counts[f"copy_{src.name}_{d2}"] - counts[f"copy_{src.name}_{d1}"]
    extra = counts[b] - counts[a] - copy
    return round(extra / ((d2 - d1) * group_size(src)), 3)


def _cell(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def markdown_table(rows: list[CostRow]) -> str:
    """The rows as a markdown table, one line per (type, half type, target)."""
    lines = ["| type | to | target | natural | free | note (best) |",
             "|------|----|--------|--------:|-----:|------------:|"]
    order = {dt.name: k for k, dt in enumerate(small_types())}
    for r in sorted(rows, key=lambda r: (order.get(r.src, 99), r.dst != "f16", r.target)):
        lines.append(f"| {r.src} | {r.dst} | sm_{r.target} | {_cell(r.natural)} | "
                     f"{_cell(r.free)} | {_cell(r.note) if r.note else ''} |")
    return "\n".join(lines)


_SECTION = re.compile(r"(<!-- cast_costs:begin -->\n).*?(<!-- cast_costs:end -->)", re.S)


def _update_readme(path: Path, table: str) -> None:
    text = path.read_text()
    if not _SECTION.search(text):
        raise SystemExit(f"{path}: no <!-- cast_costs:begin --> … <!-- cast_costs:end --> section")
    path.write_text(_SECTION.sub(lambda m: m.group(1) + table + "\n" + m.group(2), text))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--readme", type=Path, help="rewrite the cast_costs section of this README")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON")
    ap.add_argument("--types", help="comma-separated type names (default: all 36)")
    args = ap.parse_args(argv)
    types = None
    if args.types:
        types = [dtype_named(n) for n in args.types.split(",")]
    start = time.time()
    rows = cast_costs(types)
    table = markdown_table(rows)
    print(table)
    print(f"({time.time() - start:.0f} s)", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n")
    if args.readme:
        _update_readme(args.readme, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

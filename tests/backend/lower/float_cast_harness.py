"""Kernels around the packed-float casts of ``tilevm.backend.lower.casts.float_words``.

- :func:`conversion_kernel`: every thread converts ``per_thread`` groups in a rolled loop (load
  the group's words, call the cast for each destination, store the pairs);
- :func:`all_codes_words`: packed words holding every code of a type in every position of the
  group, then random groups;
- :func:`expected_halves`: the oracle, the code's value (``DType.decode``, checked against
  ml_dtypes where it has the type) rounded once by numpy (f16) or ml_dtypes (bf16), NaN as the
  interpreter's pattern; :func:`mismatches` compares results with it, any NaN of the
  destination type standing for a NaN (the numeric contract treats NaN as a class);
- :func:`sass_cost`: SASS instructions per element of the cast, from NVRTC cubins: a kernel
  converting ``depth`` groups straight-line (an unrolled loop) at two depths, minus a kernel that
  only copies the same words (the note's method).

Run ``python tests/backend/lower/float_cast_harness.py`` for the cost table of every type.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import ml_dtypes
import numpy as np

from tilevm.backend.cpu import compile_kernel
from tilevm.backend.cuda import compile_cuda, emit_cuda
from tilevm.backend.cuda.sass import disassemble
from tilevm.backend.lower.casts.float_words import (
    float_group_size,
    float_words_to_half,
    float_words_to_half_free,
)
from tilevm.ir.dtypes import DType, all_dtypes, dtype
from tilevm.ir.thread import B32, U64, Kernel, KernelBuilder

__all__ = ["NAN_BITS", "all_codes_words", "conversion_kernel", "expected_halves", "float_types",
           "is_nan_bits", "mismatches", "run_conversion", "sass_cost"]

THREADS = 32
NAN_BITS = {"f16": 0x7E00, "bf16": 0x7FC0}  # the interpreter's NaN (positive, quiet)


def float_types() -> list[DType]:
    """Every float type of at most 8 bits in the dtype table."""
    return [d for d in all_dtypes() if d.is_float and d.nbits <= 8]


def group_words(src: DType) -> int:
    return src.nbits * float_group_size(src) // 32


def conversion_kernel(src: DType, dsts: Sequence[str], target: int, natural: bool,
                      per_thread: int, *, unroll: bool = False, copy_only: bool = False,
                      name: str | None = None) -> tuple[Kernel, list[tuple[int, ...]]]:
    """A kernel ``(words, out_0, ..., out_k)``: thread ``t`` converts groups ``t·per_thread + i``
    (``i < per_thread``, a loop kept rolled unless ``unroll``) to every destination in ``dsts``
    and stores the pairs; ``copy_only`` stores the loaded words instead (same loads and stores,
    no conversion). Returns the kernel and, per destination, the permutation of the output
    slots (identity in natural order)."""
    nwords = group_words(src)
    pairs = float_group_size(src) // 2
    kernel_name = name or f"cast_{src.name}_{target}_{'nat' if natural else 'free'}"
    kb = KernelBuilder(kernel_name, block_threads=THREADS)
    inp = kb.param("words", U64, pointer=True)
    outs = [kb.param(f"out_{d}", U64, pointer=True) for d in dsts]
    thread = kb.mad(kb.sreg("ctaid.x"), THREADS, kb.sreg("tid.x"))
    perms: list[tuple[int, ...]] = [()] * len(dsts)
    with kb.for_(0, per_thread, unroll=unroll) as i:
        group = kb.mad(thread, per_thread, i)
        src_at = kb.add(inp, kb.mul(group, 4 * nwords, mode="wide"))
        words = [kb.ld("global", kb.add(src_at, 4 * w), B32) for w in range(nwords)]
        for d, (dst, out) in enumerate(zip(dsts, outs, strict=True)):
            if copy_only:
                results = [words[j % nwords] for j in range(pairs)]
                perm = tuple(range(2 * pairs))
            elif natural:
                results = float_words_to_half(kb, words, src, dtype(dst), target)
                perm = tuple(range(2 * pairs))
            else:
                results, perm = float_words_to_half_free(kb, words, src, dtype(dst), target)
            perms[d] = perm
            dst_at = kb.add(out, kb.mul(group, 4 * pairs, mode="wide"))
            for j, r in enumerate(results):
                kb.st("global", kb.add(dst_at, 4 * j), r)
    return kb.finish(), perms


def all_codes_words(src: DType, extra_groups: int, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Groups whose element ``k`` is ``(s + k) mod 2^n`` for every ``s`` (every code in every
    position), then ``extra_groups`` random groups. Returns (codes per group, packed words)."""
    n, size = src.nbits, float_group_size(src)
    count = 1 << n
    sweep = (np.arange(count)[:, None] + np.arange(size)[None, :]) % count
    extra = rng.integers(0, count, size=(extra_groups, size))
    codes = np.concatenate([sweep, extra]).astype(np.int64)
    nwords = group_words(src)
    words = np.zeros((len(codes), nwords), np.uint32)
    for g, row in enumerate(codes):
        value = sum(int(c) << (k * n) for k, c in enumerate(row))
        for w in range(nwords):
            words[g, w] = (value >> (32 * w)) & 0xFFFFFFFF
    return codes, words


def expected_halves(src: DType, dst: str) -> np.ndarray:
    """The bit pattern of every code of ``src`` as ``dst``: its exact value rounded once to
    nearest even (numpy's float64 → float16; ml_dtypes' float64 → bfloat16, every such value
    being exact in bf16), NaN as the interpreter's positive quiet NaN."""
    codes = np.arange(1 << src.nbits)
    values = src.decode(codes)
    if src.ml_dtype is not None:  # the decode agrees with ml_dtypes where it has the type
        reference = codes.astype(np.uint8).view(src.ml_dtype).astype(np.float64)
        same = (values == reference) | (np.isnan(values) & np.isnan(reference))
        assert same.all() and (np.signbit(values) == np.signbit(reference))[~np.isnan(values)].all()
    with np.errstate(over="ignore"):
        if dst == "f16":
            bits = values.astype(np.float16).view(np.uint16)
        else:
            bits = values.astype(ml_dtypes.bfloat16).view(np.uint16)
    return np.where(np.isnan(values), NAN_BITS[dst], bits).astype(np.uint16)


def is_nan_bits(bits: np.ndarray, dst: str) -> np.ndarray:
    """Whether each 16-bit pattern is a NaN of ``dst`` (exponent all ones, mantissa not zero)."""
    bits = np.asarray(bits, np.uint16)
    exponent, mantissa = (0x7C00, 0x03FF) if dst == "f16" else (0x7F80, 0x007F)
    return ((bits & exponent) == exponent) & ((bits & mantissa) != 0)


def mismatches(got: np.ndarray, want: np.ndarray, dst: str) -> np.ndarray:
    """Where ``got`` breaks the numeric contract against ``want`` (from :func:`expected_halves`):
    a NaN expected and something other than a NaN of ``dst`` given, or any other pattern not
    equal bit for bit."""
    expect_nan = is_nan_bits(want, dst)
    return np.where(expect_nan, ~is_nan_bits(got, dst), got != want)


def run_conversion(src: DType, dsts: Sequence[str], target: int, natural: bool,
                   rng: np.random.Generator, per_thread: int = 4
                   ) -> list[tuple[np.ndarray, np.ndarray]]:
    """JIT one kernel for ``(src, target, order)`` converting to every ``dsts``, launch it once
    on the CPU backend over :func:`all_codes_words`, and return per destination (the codes in
    output-slot order, the 16-bit results) for the caller to check."""
    per_block = THREADS * per_thread
    total = -(-(1 << src.nbits) // per_block) * per_block
    codes, words = all_codes_words(src, total - (1 << src.nbits), rng)
    kernel, perms = conversion_kernel(src, dsts, target, natural, per_thread)
    pairs = float_group_size(src) // 2
    outs = [np.zeros(len(codes) * pairs, np.uint32) for _ in dsts]
    compile_kernel(kernel)(total // per_block, words.reshape(-1), *outs)
    results = []
    for out, perm in zip(outs, perms, strict=True):
        halves = out.view(np.uint16).reshape(len(codes), 2 * pairs)  # little-endian: low first
        results.append((codes[:, list(perm)], halves))
    return results


# -- SASS cost ---------------------------------------------------------------------------------


def _instructions(cubin: bytes) -> int:
    """Instructions of the one function in ``cubin``, NOP padding excluded."""
    count = 0
    for line in disassemble(cubin).splitlines():
        text = line.strip()
        if text.startswith("/*") and "*/" in text:
            body = text.split("*/", 1)[1].strip()
            if body and not body.startswith("/*") and not body.startswith("NOP"):
                count += 1
    return count


def sass_cost(src: DType, dst: str, target: int, natural: bool, depths: tuple[int, int] = (4, 12)
              ) -> tuple[float, dict[str, int]]:
    """SASS instructions per element: ``(conv(d2) − conv(d1) − copy(d2) + copy(d1)) /
    ((d2 − d1)·group)``, and the ptxas resources (registers, spill bytes) of the deeper kernel."""
    arch = f"sm_{target}"
    counts = {}
    resources = {}
    for copy in (False, True):
        for depth in depths:
            kernel, _ = conversion_kernel(src, [dst], target, natural, depth, unroll=True,
                                          copy_only=copy, name="k")
            binary = compile_cuda(emit_cuda(kernel, arch), arch)
            counts[copy, depth] = _instructions(binary.cubin)
            if not copy and depth == depths[1]:
                res = binary.resources["k"]
                resources = {"registers": res.registers, "spill_stores": res.spill_store_bytes,
                             "spill_loads": res.spill_load_bytes, "stack": res.stack_frame_bytes}
    d1, d2 = depths
    delta = (counts[False, d2] - counts[False, d1]) - (counts[True, d2] - counts[True, d1])
    return delta / ((d2 - d1) * float_group_size(src)), resources


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="SASS instructions per element of every float cast")
    ap.add_argument("--types", nargs="*", help="type names (default: every float of <= 8 bits)")
    ap.add_argument("--targets", nargs="*", type=int, default=[80, 90])
    args = ap.parse_args(argv)
    types = [dtype(t) for t in args.types] if args.types else float_types()
    print(f"{'type':<12} {'dst':<5} " + " ".join(
        f"{f'sm_{t} {o}':>12}" for t in args.targets for o in ("free", "natural")))
    for src in types:
        for dst in ("f16", "bf16"):
            cells = []
            for target in args.targets:
                for natural in (False, True):
                    cost, res = sass_cost(src, dst, target, natural)
                    spill = res["spill_stores"] + res["spill_loads"]
                    cells.append(f"{cost:>12.3f}" if not spill else f"{'SPILL':>12}")
            print(f"{src.name:<12} {dst:<5} " + " ".join(cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

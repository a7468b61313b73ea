"""Every cast of a type of at most 8 bits to f16 and bf16 (``tilevm.backend.lower.casts``, the
sequences the lowering emits for ``tv.cast``), with the lowering rules of sm_80 and of sm_90:
every code of every type in every position of its group, in natural and in free order.

One kernel per (integers or floats, rules, order): thread ``t`` converts groups ``t·per + i``
(a rolled loop) of each type with ``cast_words`` / ``cast_words_free`` (the free order's
permutation is fixed by the sequence, so its output is compared as it is). The casts are exact
(DESIGN §3); a NaN code may give any NaN of the destination, so outputs are compared bit for bit
with NaNs as a class. The sm_80 rules' kernels are compiled for sm_90 too: an H200 runs them.

Golden outputs are recorded for natural order only: free order gives the same values permuted
(its CPU sequences are held to the exact values by ``tests/backend/lower/test_casts_*``), and
JIT-compiling the free-order kernels too would double the golden test's time. A GPU run checks
both orders against the CPU backend.
"""

from __future__ import annotations

from collections.abc import Sequence

import ml_dtypes
import numpy as np

from tilevm.backend.lower.casts import cast_words, cast_words_free, group_size, group_words
from tilevm.conformance.launch import Check, Launch
from tilevm.conformance.rng import random_words
from tilevm.ir.dtypes import DType, all_dtypes, dtype
from tilevm.ir.thread import B32, U64, KernelBuilder

__all__ = ["CAST_FAMILIES", "CAST_ORDERS", "CAST_RULES", "cast_launch", "cast_launches",
           "cast_sources", "exact_halves", "sweep_codes", "unpack_groups"]

CAST_FAMILIES = ("int", "float")
CAST_RULES = (80, 90)
CAST_ORDERS = ("natural", "free")
_THREADS = 32
_DESTINATIONS = ("f16", "bf16")


def cast_sources(family: str) -> list[DType]:
    """The source types of ``family``: every integer (``"int"``) or float (``"float"``) type of
    at most 8 bits in the dtype table."""
    want_float = family == "float"
    return [d for d in all_dtypes() if d.nbits <= 8 and d.is_float == want_float]


def _groups(src: DType) -> int:
    """Groups converted: one per code (the sweep), rounded up to whole threads."""
    return -(-(1 << src.nbits) // _THREADS) * _THREADS


def sweep_codes(src: DType, seed: int) -> np.ndarray:
    """[groups, group_size] codes: group ``s < 2^n`` holds ``(s + k) mod 2^n`` at position
    ``k`` (every code in every position), then random groups up to whole threads."""
    count, size = 1 << src.nbits, group_size(src)
    sweep = (np.arange(count)[:, None] + np.arange(size)[None, :]) % count
    extra = random_words(seed, (_groups(src) - count, size), src.nbits).astype(np.int64)
    return np.concatenate([sweep, extra]).astype(np.int64)


def _pack_groups(codes: np.ndarray, nbits: int) -> np.ndarray:
    """Each group (row) of ``nbits``-bit codes as its dense LSB-first words."""
    bits = ((codes[..., None] >> np.arange(nbits)) & 1).reshape(len(codes), -1, 32)
    return (bits.astype(np.uint64) << np.arange(32, dtype=np.uint64)).sum(-1).astype(np.uint32)


def unpack_groups(words: np.ndarray, src: DType) -> np.ndarray:
    """The inverse of the packing: [groups, group_size] codes from [groups, words] words."""
    n, size = src.nbits, group_size(src)
    bits = (words.astype(np.uint64)[..., None] >> np.arange(32, dtype=np.uint64)) & np.uint64(1)
    bits = bits.reshape(len(words), -1)[:, : n * size].reshape(len(words), size, n)
    return (bits << np.arange(n, dtype=np.uint64)).sum(-1).astype(np.int64)


def exact_halves(src: DType, codes: np.ndarray, dst: str) -> np.ndarray:
    """The 16-bit patterns the casts must give (DESIGN §3): each code's exact value
    (``DType.decode``) rounded once to nearest even by numpy (f16) or ml_dtypes (bf16); a NaN
    code gives the destination's quiet NaN (any NaN passes an exact check)."""
    values = src.decode(np.asarray(codes))
    with np.errstate(over="ignore"):
        halves = values.astype(np.float16 if dst == "f16" else ml_dtypes.bfloat16)
    return halves.view(np.uint16)


def _name(family: str, rules: int, order: str) -> str:
    return f"conformance_cast_{family}_{order}_sm{rules}"


def cast_launch(family: str, rules: int, order: str, seed: int = 7500,
                types: Sequence[str] | None = None) -> Launch:
    """The launch converting every type of ``family`` with the lowering rules of
    sm_``rules`` in ``order`` (module docstring). Buffers: ``codes_<type>`` (packed groups),
    ``<dst>_<type>`` (the 16-bit results, group by group, output slot order). ``types``: only
    these sources (each with the inputs it has in the whole launch), for a cheaper JIT."""
    every = cast_sources(family)
    sources = every if types is None else [d for d in every if d.name in types]
    kb = KernelBuilder(_name(family, rules, order), block_threads=_THREADS)
    names: list[str] = []
    for src in sources:
        names += [f"codes_{src.name}", *(f"{d}_{src.name}" for d in _DESTINATIONS)]
    params = {n: kb.param(n, U64, pointer=True) for n in names}
    thread = kb.sreg("tid.x")
    for src in sources:
        nwords, size = group_words(src), group_size(src)
        per_thread = _groups(src) // _THREADS
        with kb.for_(0, per_thread) as i:
            group = kb.mad(thread, per_thread, i)
            at = kb.add(params[f"codes_{src.name}"], kb.mul(group, 4 * nwords, mode="wide"))
            words = [kb.ld("global", kb.add(at, 4 * w), B32) for w in range(nwords)]
            for dst in _DESTINATIONS:
                if order == "natural":
                    pairs = cast_words(kb, words, src, dtype(dst), rules)
                else:
                    pairs, _ = cast_words_free(kb, words, src, dtype(dst), rules)
                out = kb.add(params[f"{dst}_{src.name}"], kb.mul(group, 2 * size, mode="wide"))
                for j, pair in enumerate(pairs):
                    kb.st("global", kb.add(out, 4 * j), kb.mov(pair, B32))
    kernel = kb.finish(verify_arch=rules)
    buffers: dict[str, np.ndarray] = {}
    checks: dict[str, Check] = {}
    for src in sources:
        codes = sweep_codes(src, seed + every.index(src))
        buffers[f"codes_{src.name}"] = _pack_groups(codes, src.nbits)
        for dst in _DESTINATIONS:
            buffers[f"{dst}_{src.name}"] = np.zeros((_groups(src), group_size(src)), np.uint16)
            checks[f"{dst}_{src.name}"] = Check("exact", dst)
    return Launch(
        name=_name(family, rules, order), family="cast",
        description=f"{order}-order casts of every {family} type of at most 8 bits to f16 and "
                    f"bf16, sm_{rules} lowering rules, every code in every position",
        kernel=kernel, grid=(1, 1, 1), args=tuple(names), buffers=buffers, checks=checks,
        golden=order == "natural", target_rules=rules)


def cast_launches() -> list[Launch]:
    """Every (family, rules, order) combination."""
    return [cast_launch(f, r, o) for f in CAST_FAMILIES for r in CAST_RULES for o in CAST_ORDERS]

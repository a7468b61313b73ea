"""Every code of every integer type of 1 to 8 bits, in every position of a group, through the
vectorized casts to f16 and bf16 (:mod:`tilevm.backend.lower.casts`), against numpy/ml_dtypes:
the code decoded in float64 and rounded once to f16/bf16.

Natural order goes through the lowering (a DSL kernel: load a tile of codes, cast to both half
types, store), lowered for sm_80 and for sm_90 and run on the CPU backend — one JIT module and
one launch per (type, target). The CPU device lowers for sm_80 only, so :func:`run_lowered` lowers
for a given target with the same public pieces (it is what ``device="cpu"`` does, target aside).
Free order (no DSL operation asks for it) goes through ``cast_words_free`` in a Thread IR kernel,
one per type, checked through the permutation it returns.
"""

from __future__ import annotations

import math
from typing import Any

import ml_dtypes
import numpy as np
import pytest

import tilevm as tv
from tilevm.backend.cpu import compile_kernel
from tilevm.backend.lower.casts import cast_words_free, group_size, group_words
from tilevm.frontend.arguments import bind_arguments
from tilevm.ir.thread import B32, U64, KernelBuilder
from tilevm.runtime.cpu_device import run_on_cpu

INTEGERS = [f"{k}{n}" for k in ("u", "i") for n in range(1, 9)]
TARGETS = [80, 90]


def run_lowered(kernel_fn: Any, target: int, *args: Any, **constants: Any) -> Any:
    """Run ``kernel_fn`` on host arguments through the lowering for sm_``target`` on the CPU
    backend (``device="cpu"`` lowers for sm_80); returns the lowered kernel."""
    kernel = kernel_fn.ir(**constants)
    bound = bind_arguments(kernel, args)
    lowered = run_on_cpu(kernel, bound, constants, target)
    bound.finish()
    return lowered


def every_code_in_every_position(n: int, group: int) -> np.ndarray:
    """Groups (rows) of ``group`` codes of ``n`` bits in which every code appears at every
    position: row ``r`` position ``p`` holds ``(r + 3p) mod 2^n`` (3 is odd: a bijection)."""
    rows = np.arange(1 << n)[:, None]
    return (rows + 3 * np.arange(group)[None, :]) % (1 << n)


def half_values(bits: np.ndarray, dst: str) -> np.ndarray:
    bits = np.asarray(bits, np.uint16)
    if dst == "f16":
        return bits.view(np.float16).astype(np.float64)
    return bits.view(ml_dtypes.bfloat16).astype(np.float64)


def oracle(values: np.ndarray, dst: str) -> np.ndarray:
    """float64 values rounded once to ``dst``, as float64."""
    t = np.float16 if dst == "f16" else ml_dtypes.bfloat16
    return values.astype(np.float64).astype(t).astype(np.float64)


def _cast_kernel(src, per_thread: int):
    @tv.kernel
    def cast_both(q: tv.Global[src, "n"], h: tv.Global[tv.f16, "n"], b: tv.Global[tv.bf16, "n"]):
        tv.launch(grid=tv.cdiv(n, 32 * per_thread), warps=1)
        o = tv.block_idx() * (32 * per_thread)
        codes = tv.load(q, (o,), (32 * per_thread,), layout=tv.spatial(32) * tv.local(per_thread))
        tv.store(h, tv.cast(codes, tv.f16), (o,))
        tv.store(b, tv.cast(codes, tv.bf16), (o,))

    return cast_both


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", INTEGERS)
def test_every_code_casts_exactly_in_natural_order(name, target):
    src = tv.dtype(name)
    g = group_size(src)
    codes = every_code_in_every_position(src.nbits, g).reshape(-1)
    per_thread = 2 * g  # two groups per thread: the group loop runs
    total = -(-codes.size // (32 * per_thread)) * 32 * per_thread
    codes = np.resize(codes, total)
    h = np.zeros(total, np.float16)
    b = np.zeros(total, ml_dtypes.bfloat16)
    lowered = run_lowered(_cast_kernel(src, per_thread), target,
                          tv.HostTensor.from_bits(codes, src), h, b)
    text = str(lowered.thread)
    assert "f16x2" in text and "bf16x2" in text  # the word sequences ran
    assert "cvt.rn.f16.s32" not in text and "cvt.rn.f16.u32" not in text  # no per-element cast
    values = src.decode(codes)
    for dst, got in (("f16", h), ("bf16", b)):
        got = half_values(got.view(np.uint16), dst)
        bad = np.nonzero(got != oracle(values, dst))[0]
        assert bad.size == 0, (f"{name} -> {dst} on sm_{target}: code {codes[bad[0]]} at "
                               f"position {bad[0] % g} gives {got[bad[0]]}")


def _free_kernel(src, target: int):
    """Thread t converts group t (words from ``q``) to f16 and to bf16 in free order."""
    nwords, g = group_words(src), group_size(src)
    kb = KernelBuilder(f"free_{src.name}", block_threads=32)
    q, h, b = (kb.param(p, U64, pointer=True) for p in ("q", "h", "b"))
    t = kb.mad(kb.sreg("ctaid.x"), 32, kb.sreg("tid.x"))
    base = kb.add(q, kb.mul(t, 4 * nwords, mode="wide"))
    words = [kb.ld("global", kb.add(base, 4 * k), B32) for k in range(nwords)]
    perms = []
    for out, dst in ((h, tv.f16), (b, tv.bf16)):
        pairs, perm = cast_words_free(kb, words, src, dst, target)
        perms.append(perm)
        at = kb.add(out, kb.mul(t, 2 * g, mode="wide"))
        for j, pair in enumerate(pairs):
            kb.st("global", kb.add(at, 4 * j), kb.mov(pair, B32))
    return compile_kernel(kb.finish(verify_arch=target)), perms


def _pack_rows(rows: np.ndarray, n: int) -> np.ndarray:
    """Each row of ``n``-bit codes as LSB-first words."""
    bits = ((rows[..., None] >> np.arange(n)) & 1).reshape(len(rows), -1, 32)
    return (bits.astype(np.uint64) << np.arange(32, dtype=np.uint64)).sum(-1).astype(np.uint32)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", INTEGERS)
def test_every_code_casts_exactly_in_free_order(name, target):
    src = tv.dtype(name)
    g = group_size(src)
    rows = every_code_in_every_position(src.nbits, g)
    rows = np.resize(rows, (-(-len(rows) // 32) * 32, g))
    run, perms = _free_kernel(src, target)
    for perm in perms:
        assert sorted(perm) == list(range(g))
    h = np.zeros((len(rows), g), np.uint16)
    b = np.zeros((len(rows), g), np.uint16)
    run(len(rows) // 32, _pack_rows(rows, src.nbits), h, b)
    values = src.decode(rows)
    for dst, got, perm in (("f16", h, perms[0]), ("bf16", b, perms[1])):
        want = oracle(values[:, list(perm)], dst)
        bad = np.argwhere(half_values(got, dst) != want)
        assert bad.size == 0, f"{name} -> {dst} (sm_{target}): slot {bad[0][1]} of row {bad[0][0]}"


def test_the_group_is_the_fewest_elements_that_fill_whole_words():
    for n in range(1, 9):
        src = tv.dtype(f"u{n}")
        assert group_size(src) * n == 32 * group_words(src)
        assert group_words(src) == n // math.gcd(n, 32)

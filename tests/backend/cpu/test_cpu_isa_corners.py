"""Corners of the PTX ISA where the CPU backend once departed from it, on all 32 lanes.

- ``atom``/``red`` ``.add.f32`` (PTX ISA, "Parallel Synchronization and Communication
  Instructions: atom" and "red"): "atom.add.f32 on global memory flushes subnormal inputs and
  results to sign-preserving zero; whereas atom.add.f32 on shared memory supports subnormal inputs
  and results and doesn't flush them to zero." ``d`` is the value read, unflushed.
- ``ldmatrix`` (PTX ISA, "Warp Level Matrix Multiply-Accumulate Instructions: ldmatrix", table of
  row addresses): ``.x1`` takes its eight row addresses from threads 0-7 and ``.x2`` its sixteen
  from threads 0-15; the other threads' address registers are not used, so whatever they hold
  is no error.
"""

from __future__ import annotations

import numpy as np

from tilevm.backend.cpu import compile_kernel
from tilevm.ir.thread import F32, U32, U64, KernelBuilder

TINY = np.float32(2.0 ** -126)


def ftz(x: np.ndarray) -> np.ndarray:
    """Subnormals to the zero of their sign (the ISA's "sign-preserving zero")."""
    x = np.asarray(x, np.float32).copy()
    small = np.abs(x) < TINY
    x[small] = np.copysign(np.float32(0.0), x[small])
    return x


def _operands() -> tuple[np.ndarray, np.ndarray]:
    """Per lane: the word in memory and the value added, around the subnormal range."""
    s = float(TINY)
    mem = [1e-39, -1e-39, 1.0, s, s, -s, 3 * s, 1e-45, 0.0, -0.0, 2.5, 1e-40, s * 1.5, -2 * s,
           5e-39, 7.0]
    val = [1e-39, 2e-39, 1e-40, -0.5 * s, -s, 0.25 * s, -2.5 * s, 1e-45, -1e-39, 1e-41, 1.0,
           1e-40, -s, 1.5 * s, -5e-39, 1e-44]
    m = np.array(mem * 2, np.float32)
    v = np.array(val * 2, np.float32)
    return m, v


def test_atom_and_red_add_f32_flush_on_global_not_on_shared() -> None:
    kb = KernelBuilder("fadd_ftz", block_threads=32, shared_bytes=4 * 32 * 2)
    g_atom, g_red, vals, olds, sh_out = (kb.param(n, U64, pointer=True) for n in
                                         ("g_atom", "g_red", "vals", "olds", "sh_out"))
    lane = kb.sreg("laneid")
    off = kb.mul(lane, 4, mode="wide")
    v = kb.ld("global", kb.add(vals, off), F32)
    old = kb.atom("global", "add", kb.add(g_atom, off), v, type=F32)
    kb.red("global", "add", kb.add(g_red, off), v, type=F32)
    # shared: start from the same words (g_red's initial values were copied to olds[32:])
    sh = kb.mul(lane, 4)
    kb.st("shared", sh, kb.ld("global", kb.add(olds, kb.add(off, 128)), F32))
    sold = kb.atom("shared", "add", sh, v, type=F32)
    kb.red("shared", "add", kb.add(sh, 128), v, type=F32)
    kb.st("global", kb.add(olds, off), old)
    kb.st("global", kb.add(sh_out, off), kb.ld("shared", sh, F32))
    kb.st("global", kb.add(sh_out, kb.add(off, 128)), sold)
    run = compile_kernel(kb.finish())

    m, v = _operands()
    g_atom_a, g_red_a = m.copy(), m.copy()
    olds = np.concatenate([np.zeros(32, np.float32), m])
    sh_out = np.zeros(64, np.float32)
    run(1, g_atom_a.view(np.uint32), g_red_a.view(np.uint32), v.view(np.uint32),
        olds.view(np.uint32), sh_out.view(np.uint32))

    def bits(x: np.ndarray) -> list[int]:
        return np.asarray(x, np.float32).view(np.uint32).tolist()

    flushed = ftz(ftz(m) + ftz(v))
    assert bits(g_atom_a) == bits(flushed)
    assert bits(g_red_a) == bits(flushed)
    assert bits(olds[:32]) == bits(m)                 # d: the value read, not flushed
    assert bits(sh_out[:32]) == bits(m + v)           # shared: IEEE, subnormals kept
    assert bits(sh_out[32:]) == bits(m)
    # the operands really exercise the difference
    assert bits(flushed) != bits(m + v)


def test_ldmatrix_x1_x2_ignore_the_addresses_of_unused_threads() -> None:
    for num in (1, 2):
        kb = KernelBuilder(f"ldm_x{num}", block_threads=32, shared_bytes=256)
        src, out = kb.param("src", U64, pointer=True), kb.param("out", U64, pointer=True)
        lane = kb.sreg("laneid")
        # 8*num rows of 16 bytes, row r at shared byte 16*r, loaded from src
        with kb.if_(kb.setp("lt", lane, 16)):
            word = kb.ld("global", kb.add(src, kb.mul(lane, 16, mode="wide")), U32)
            kb.st("shared", kb.mul(lane, 16), word)
            for k in range(1, 4):
                kb.st("shared", kb.mul(lane, 16),
                      kb.ld("global", kb.add(src, kb.mul(lane, 16, mode="wide")), U32,
                            offset=4 * k), offset=4 * k)
        kb.bar_sync()
        used = kb.setp("lt", lane, 8 * num)
        # threads past 8*num hold addresses far outside shared memory
        addr = kb.selp(kb.mul(lane, 16), kb.add(0xFFFF0000, lane), used, type=U32)
        regs = kb.ldmatrix(addr, num)
        parts = [regs] if num == 1 else kb.unpack(regs)
        for q, r in enumerate(parts):
            kb.st("global", kb.add(out, kb.mul(kb.add(kb.mul(lane, num), q), 4, mode="wide")),
                  r)
        run = compile_kernel(kb.finish())
        data = np.arange(64, dtype=np.uint32) * 0x01010101 + 0x00030201
        got = np.zeros(32 * num, np.uint32)
        run(1, data, got)     # no out-of-bounds error
        rows = data[: 4 * 8 * num].reshape(8 * num, 4)   # row r = 4 words
        for lane_id in range(32):
            for q in range(num):
                # ISA fragment: thread i holds row i // 4, 32-bit column i % 4 of matrix q
                assert got[lane_id * num + q] == rows[8 * q + lane_id // 4, lane_id % 4], (
                    num, lane_id, q)

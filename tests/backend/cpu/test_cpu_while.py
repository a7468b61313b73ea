"""``While`` loops on the CPU backend (``loop { cond_body; if (!cond) break; body }``): a uniform
loop whose bodies hold barriers runs as resumable phases (registers live across them, both warp
orders); a non-uniform loop keeps each lane until its own condition fails (a per-thread
compare-and-swap retry loop, a lane-dependent trip count); nested loops of both kinds and
``for`` loops inside; a "uniform" loop whose lanes disagree is an error naming it."""

from __future__ import annotations

import numpy as np
import pytest

from tilevm.backend.cpu import CpuKernelError, compile_kernel
from tilevm.ir.thread import B32, PRED, S32, U32, U64, KernelBuilder


def _store(kb: KernelBuilder, out, index, value) -> None:
    kb.st("global", kb.add(out, kb.mul(index, 4, mode="wide")), value)


def test_uniform_while_with_barriers_in_both_bodies() -> None:
    # Each round every thread publishes its value in shared memory (barrier in the condition's
    # body), then adds the value of thread (t + 33) % 96 (barrier in the body). The loop runs
    # while round < rounds (a parameter), so the barriers sit in a loop the phases go around.
    threads = 96
    kb = KernelBuilder("while_barriers", block_threads=threads, shared_bytes=threads * 4)
    out, rounds = kb.param("out", U64, pointer=True), kb.param("rounds", S32)
    tid = kb.sreg("tid.x")
    slot = kb.add(kb.shared_base(), kb.mul(tid, 4))
    peer = kb.add(kb.shared_base(), kb.mul(kb.rem(kb.add(tid, 33), threads), 4))
    acc, k = kb.reg(U32, "acc"), kb.reg(S32, "k")
    kb.mov(tid, U32, out=acc)
    kb.mov(0, S32, out=k)
    with kb.while_(uniform=True) as loop:
        kb.st("shared", slot, acc)
        kb.bar_sync()
        loop.cond(kb.setp("lt", k, rounds))
        got = kb.ld("shared", peer, U32)
        kb.bar_sync()
        kb.add(acc, kb.add(got, 1), out=acc)
        kb.add(k, 1, out=k)
    _store(kb, out, tid, acc)
    _store(kb, out, kb.add(tid, threads, type=U32), kb.mov(k, U32))
    run = compile_kernel(kb.finish())
    want = list(range(threads))
    for _ in range(4):
        want = [(want[t] + want[(t + 33) % threads] + 1) & 0xFFFFFFFF for t in range(threads)]
    for reverse in (False, True):
        got = np.zeros(2 * threads, np.uint32)
        run(2, got, 4, reverse_warps=reverse)
        assert got[:threads].tolist() == want
        assert got[threads:].tolist() == [4] * threads
    got = np.zeros(2 * threads, np.uint32)
    run(1, got, 0)                                 # no iteration: one barrier, then the exit
    assert got.tolist() == list(range(threads)) + [0] * threads


def test_compare_and_swap_retry_loop_lanes_leave_at_different_iterations() -> None:
    # Every thread increments one shared counter with atom.cas until its own swap succeeds. The
    # CPU runs a warp's lanes in lane order, so each round exactly one lane of a warp wins: lane i
    # of warp w retries i + 1 times. Each thread records the value it claimed and its tries.
    threads = 64
    kb = KernelBuilder("cas_retry", block_threads=threads, shared_bytes=16)
    out = kb.param("out", U64, pointer=True)
    tid = kb.sreg("tid.x")
    smem = kb.shared_base()
    with kb.if_(kb.setp("eq", tid, 0)):
        kb.st("shared", smem, kb.mov(0, B32))
    kb.bar_sync()
    mine, tries, done = kb.reg(B32, "mine"), kb.reg(U32, "tries"), kb.reg(PRED, "done")
    kb.mov(0, U32, out=tries)
    kb.mov(False, PRED, out=done)
    with kb.while_() as loop:
        loop.cond(kb.unary("not", done, type=PRED))
        old = kb.ld("shared", smem, B32)
        seen = kb.atom("shared", "cas", smem, old, kb.add(kb.mov(old, U32), 1), type=B32)
        kb.setp("eq", seen, old, type=B32, out=done)
        kb.mov(old, B32, out=mine)
        kb.add(tries, 1, out=tries)
    kb.bar_sync()
    _store(kb, out, tid, mine)
    _store(kb, out, kb.add(tid, threads, type=U32), tries)
    _store(kb, out, kb.add(tid, 2 * threads, type=U32), kb.ld("shared", smem, U32))
    run = compile_kernel(kb.finish())
    got = np.zeros(3 * threads, np.uint32)
    run(1, got)
    claimed, tries_got, final = got[:threads], got[threads:2 * threads], got[2 * threads:]
    assert sorted(claimed.tolist()) == list(range(threads))   # every value claimed once
    assert tries_got.tolist() == [lane + 1 for _ in range(2) for lane in range(32)]
    assert final.tolist() == [threads] * threads


def _collatz_steps(n: int) -> int:
    steps = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


def test_nested_loops_uniform_and_divergent() -> None:
    # Outer: a uniform while over rounds r < R with a barrier; inside: a per-lane Collatz loop
    # (non-uniform while) on x = seed + r, and inside that a for loop adding 1 three times per
    # step (so steps are counted as 3 per step); then a for loop with a while inside.
    rng = np.random.default_rng(11)
    threads = 64
    kb = KernelBuilder("nested_while", block_threads=threads, shared_bytes=4)
    seeds, out, rounds = (kb.param("seeds", U64, pointer=True), kb.param("out", U64, pointer=True),
                          kb.param("rounds", S32))
    tid = kb.sreg("tid.x")
    seed = kb.ld("global", kb.add(seeds, kb.mul(tid, 4, mode="wide")), U32)
    r, total = kb.reg(S32, "r"), kb.reg(U32, "total")
    kb.mov(0, S32, out=r)
    kb.mov(0, U32, out=total)
    with kb.while_(uniform=True) as outer:
        outer.cond(kb.setp("lt", r, rounds))
        x = kb.reg(U32, "x")
        kb.add(seed, kb.mov(r, U32), out=x)
        with kb.while_() as inner:
            inner.cond(kb.setp("ne", x, 1))
            odd = kb.setp("ne", kb.and_(kb.mov(x, B32), 1, type=B32), 0, type=B32)
            with kb.if_(odd):
                kb.add(kb.mul(x, 3), 1, out=x)
            with kb.else_():
                kb.shr(x, 1, out=x)
            with kb.for_(0, 3):
                kb.add(total, 1, out=total)
        kb.bar_sync()
        kb.add(r, 1, out=r)
    with kb.for_(0, 2, name="j") as j:
        y = kb.reg(S32, "y")
        kb.mov(j, S32, out=y)
        with kb.while_() as loop:                   # lane-dependent: y counts up to tid % 5
            loop.cond(kb.setp("lt", y, kb.mov(kb.rem(tid, 5), S32)))
            kb.add(y, 1, out=y)
            kb.add(total, 100, out=total)
    _store(kb, out, tid, total)
    run = compile_kernel(kb.finish())
    seed_vals = rng.integers(1, 200, threads).astype(np.uint32)
    got = np.zeros(threads, np.uint32)
    run(1, seed_vals, got, 3)
    want = [3 * sum(_collatz_steps(int(s) + k) for k in range(3))
            + 100 * sum(max(0, t % 5 - j) for j in range(2)) for t, s in enumerate(seed_vals)]
    assert got.tolist() == want


def test_uniform_while_whose_lanes_disagree_is_an_error() -> None:
    kb = KernelBuilder("fake_uniform_while", block_threads=32)
    out = kb.param("out", U64, pointer=True)
    i = kb.reg(U32, "i")
    kb.mov(0, U32, out=i)
    with kb.while_(uniform=True) as loop:
        loop.cond(kb.setp("lt", i, kb.sreg("laneid")))     # lane 0 stops at once, others not
        kb.add(i, 1, out=i)
    kb.st("global", out, i)
    run = compile_kernel(kb.finish())
    with pytest.raises(CpuKernelError, match=r"while %r\d+: condition of a uniform if/for/while "
                                             r"differs between lanes"):
        run(1, np.zeros(1, np.uint32))

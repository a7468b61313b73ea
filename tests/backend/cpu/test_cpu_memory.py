"""Memory intrinsics on the CPU backend: deferred cp.async (PTX ISA "cp.async",
"cp.async.commit_group", "cp.async.wait_group": a copy may land any time until the wait that
covers its group; tilevm lands it exactly at that wait), loads and stores of 1–16 bytes, atomics,
local memory, and bounds errors."""

from __future__ import annotations

import numpy as np
import pytest

from tilevm.backend.cpu import CpuKernelError, compile_kernel
from tilevm.ir.thread import B32, F32, S32, U8, U16, U32, U64, KernelBuilder, vector

V4 = vector(B32, 4)


@pytest.fixture(scope="module")
def rng() -> np.random.Generator:
    return np.random.default_rng(9)


@pytest.fixture(scope="module")
def cp_async_prog():
    """Per lane, four 16-byte shared slots filled with the old word 0xA0000000 + 16*lane + slot,
    then copies from src (64 bytes per lane) in three groups and one uncommitted copy; reads of
    the slots are stored after each step (16 words per lane and step)."""
    kb = KernelBuilder("cp_async_groups", block_threads=32, shared_bytes=32 * 64)
    src, out = kb.param("src", U64, pointer=True), kb.param("out", U64, pointer=True)
    lane = kb.sreg("laneid")
    smem = kb.shared_base()
    base = kb.add(smem, kb.mul(lane, 64))
    slot = [kb.add(base, 16 * k) for k in range(4)]
    for k in range(4):
        old = kb.add(kb.mul(lane, 16), 0xA0000000 + k)
        kb.st("shared", slot[k], kb.pack([old] * 4, U32))
    g = kb.add(src, kb.mul(lane, 64, mode="wide"))
    kb.cp_async(slot[0], g, 16, cache="ca")                                  # group 0
    t0 = kb.commit_group()
    kb.cp_async(slot[1], kb.add(g, 16), 4, cache="ca")                       # group 1: 4 + 8 bytes
    kb.cp_async(kb.add(slot[1], 8), kb.add(g, 24), 8, cache="ca")
    t1 = kb.commit_group()
    kb.cp_async(slot[2], kb.add(g, 32), 16, cache="cg", src_size=5)          # group 2, zero-fill
    t2 = kb.commit_group()
    kb.cp_async(slot[3], kb.add(g, 48), 16, cache="cg")                      # open group
    step = [0]

    def dump_slots() -> None:
        for k in range(4):
            pos = kb.mul(kb.add(lane, 32 * (4 * step[0] + k)), 16, mode="wide")
            kb.st("global", kb.add(out, pos), kb.ld("shared", slot[k], V4))
        step[0] += 1

    dump_slots()            # step 0: before any wait
    kb.wait_group(1, t0, t1)
    dump_slots()            # step 1: groups 0 and 1 landed, group 2 pending
    kb.wait_group(0, t2)
    dump_slots()            # step 2: group 2 landed; the uncommitted copy has not
    t3 = kb.commit_group()
    kb.wait_group(0, t3)
    dump_slots()            # step 3: everything landed
    return compile_kernel(kb.finish())


def test_cp_async_lands_only_at_its_wait(cp_async_prog, rng) -> None:
    src = rng.integers(0, 256, 32 * 64).astype(np.uint8)
    out = np.zeros(4 * 4 * 32 * 16, np.uint8)
    cp_async_prog(1, src, out)
    out = out.reshape(4, 4, 32, 16)      # step, slot, lane, byte
    s = src.reshape(32, 64)
    for lane in range(32):
        old = [np.full(4, 0xA0000000 + 16 * lane + k, np.uint32).view(np.uint8) for k in range(4)]
        new = [s[lane, 0:16].copy(),
               np.concatenate([s[lane, 16:20], old[1][4:8], s[lane, 24:32]]),
               np.concatenate([s[lane, 32:37], np.zeros(11, np.uint8)]),
               s[lane, 48:64].copy()]
        landed = {0: [], 1: [0, 1], 2: [0, 1, 2], 3: [0, 1, 2, 3]}
        for st in range(4):
            for k in range(4):
                want = new[k] if k in landed[st] else old[k]
                assert np.array_equal(out[st, k, lane], want), (st, k, lane)


def test_reading_a_cp_async_destination_before_its_wait_sees_old_bytes(cp_async_prog) -> None:
    src = np.full(32 * 64, 0x5A, np.uint8)
    out = np.zeros(4 * 4 * 32 * 16, np.uint8)
    cp_async_prog(1, src, out)
    before = out.reshape(4, 4, 32, 16)[0]
    assert not (before == 0x5A).any()
    assert (out.reshape(4, 4, 32, 16)[3, 0] == 0x5A).all()


def test_loads_and_stores_of_1_to_16_bytes_through_shared(rng) -> None:
    kb = KernelBuilder("widths", block_threads=32, shared_bytes=32 * 32)
    src, dst = kb.param("src", U64, pointer=True), kb.param("dst", U64, pointer=True)
    lane = kb.sreg("laneid")
    g = kb.mul(lane, 32, mode="wide")
    s = kb.add(kb.shared_base(), kb.mul(lane, 32))
    # bytes [0,1) u8, [2,4) u16, [4,8) u32, [8,16) u64 (two words), [16,32) v4
    for off, t in ((0, U8), (2, U16), (4, U32), (8, vector(U32, 2)), (16, V4)):
        v = kb.ld("global", kb.add(src, g), t, nc=(off == 4), offset=off)
        kb.st("shared", s, v, offset=off)
    kb.bar_warp_sync()
    for off, t in ((0, U8), (2, U16), (4, U32), (8, vector(U32, 2)), (16, V4)):
        kb.st("global", kb.add(dst, g), kb.ld("shared", s, t, offset=off), offset=off)
    run = compile_kernel(kb.finish())
    a = rng.integers(0, 256, 32 * 32).astype(np.uint8)
    b = np.zeros_like(a)
    run(1, a, b)
    mask = np.ones(32, bool)
    mask[1] = False      # byte 1 of each lane is never copied
    assert np.array_equal(b.reshape(32, 32)[:, mask], a.reshape(32, 32)[:, mask])
    assert not b.reshape(32, 32)[:, 1].any()


def test_atomics_global_and_shared() -> None:
    kb = KernelBuilder("atomics", block_threads=64, shared_bytes=16)
    cnt, olds, fsum, mx, ring, res = (kb.param(n, U64, pointer=True)
                                      for n in ("cnt", "olds", "fsum", "mx", "ring", "res"))
    tid = kb.sreg("tid.x")
    g = kb.mad(kb.sreg("ctaid.x"), 64, tid)
    old = kb.atom("global", "add", cnt, 1, type=U32)
    kb.st("global", kb.add(olds, kb.mul(g, 4, mode="wide")), old)
    kb.red("global", "add", fsum, kb.cvt(g, F32, rnd="rn"), type=F32)
    kb.atom("global", "max", mx, kb.sub(kb.mov(g, S32), 100), type=S32)
    kb.atom("global", "inc", ring, 6, type=U32)        # counts 0..6 and wraps
    sh = kb.shared_base()
    kb.atom("shared", "add", sh, kb.add(tid, 1), type=U32)
    kb.bar_sync()
    with kb.if_(kb.setp("eq", tid, 0)):
        kb.st("global", kb.add(res, kb.mul(kb.sreg("ctaid.x"), 4, mode="wide")),
              kb.ld("shared", sh, U32))
    run = compile_kernel(kb.finish())
    blocks = 8
    n = 64 * blocks
    cnt_a, olds_a = np.zeros(1, np.uint32), np.zeros(n, np.uint32)
    fsum_a, mx_a = np.zeros(1, np.float32), np.full(1, -(2**31), np.int32)
    ring_a, res_a = np.zeros(1, np.uint32), np.zeros(blocks, np.uint32)
    run(blocks, cnt_a, olds_a, fsum_a, mx_a, ring_a, res_a)
    assert cnt_a[0] == n
    assert sorted(olds_a.tolist()) == list(range(n))     # each old value seen exactly once
    assert fsum_a[0] == n * (n - 1) // 2                 # integer sums: exact in f32 here
    assert mx_a[0] == n - 1 - 100
    assert ring_a[0] == n % 7                            # atom.inc: old >= 6 ? 0 : old + 1
    assert res_a.tolist() == [64 * 65 // 2] * blocks


def test_atom_cas_and_exch() -> None:
    kb = KernelBuilder("cas", block_threads=32)
    p, olds = kb.param("p", U64, pointer=True), kb.param("olds", U64, pointer=True)
    lane = kb.sreg("laneid")
    # lanes run in order: each lane's cas succeeds only if the word still holds its lane id
    old = kb.atom("global", "cas", p, lane, kb.add(lane, 1), type=B32)
    x = kb.atom("global", "exch", kb.add(p, 4), lane, type=B32)
    kb.st("global", kb.add(olds, kb.mul(lane, 8, mode="wide")), kb.pack([old, x]))
    run = compile_kernel(kb.finish())
    mem = np.array([0, 1000], np.uint32)
    olds = np.zeros(64, np.uint32)
    run(1, mem, olds)
    assert mem[0] == 32 and olds[0::2].tolist() == list(range(32))
    assert mem[1] == 31 and olds[1::2].tolist() == [1000, *range(31)]


def test_local_memory_is_per_thread() -> None:
    kb = KernelBuilder("local", block_threads=64, local_bytes=16)
    out = kb.param("out", U64, pointer=True)
    tid = kb.sreg("tid.x")
    loc = kb.local_base()
    for k in range(4):
        kb.st("local", loc, kb.add(kb.mul(tid, 10), k), offset=4 * k)
    acc = kb.reg(U32, "acc")
    kb.mov(0, U32, out=acc)
    for k in range(4):
        kb.add(acc, kb.ld("local", loc, U32, offset=4 * k), out=acc)
    kb.st("global", kb.add(out, kb.mul(tid, 4, mode="wide")), acc)
    run = compile_kernel(kb.finish())
    got = np.zeros(64, np.uint32)
    run(1, got)
    assert got.tolist() == [40 * t + 6 for t in range(64)]


def test_shared_access_out_of_bounds_is_reported() -> None:
    kb = KernelBuilder("oob", block_threads=32, shared_bytes=64)
    out = kb.param("out", U64, pointer=True)
    addr = kb.mul(kb.sreg("laneid"), 4)     # lanes 16.. are past 64 bytes
    kb.st("global", out, kb.ld("shared", addr, U32))
    run = compile_kernel(kb.finish())
    with pytest.raises(CpuKernelError, match=r"ld\.shared\.u32 shared-memory access out of bounds"):
        run(1, np.zeros(1, np.uint32))


def _many_copies(copies: int):
    """Each thread copies ``copies`` words (4 bytes each) of its own row into shared memory in
    one group, waits, and writes the row back; two blocks, the second starting with the queues
    the first left empty."""
    kb = KernelBuilder(f"copies_{copies}", block_threads=32, shared_bytes=32 * 4 * copies)
    src, out = kb.param("src", U64, pointer=True), kb.param("out", U64, pointer=True)
    lane = kb.sreg("laneid")
    row = kb.mad(kb.sreg("ctaid.x"), 32, lane)
    g = kb.add(src, kb.mul(row, 4 * copies, mode="wide"))
    s = kb.add(kb.shared_base(), kb.mul(lane, 4 * copies))
    with kb.for_(0, copies, name="k") as k:
        kb.cp_async(kb.add(s, kb.mul(k, 4)), kb.add(g, kb.mul(k, 4, mode="wide")), 4, cache="ca")
    t = kb.commit_group()
    kb.wait_group(0, t)
    o = kb.add(out, kb.mul(row, 4 * copies, mode="wide"))
    with kb.for_(0, copies, name="k") as k:
        kb.st("global", kb.add(o, kb.mul(k, 4, mode="wide")),
              kb.ld("shared", kb.add(s, kb.mul(k, 4)), U32))
    return compile_kernel(kb.finish())


def test_a_thread_may_have_256_copies_pending_and_the_257th_is_an_error(rng) -> None:
    src = rng.integers(0, 2**32, 2 * 32 * 256, dtype=np.uint64).astype(np.uint32)
    out = np.zeros_like(src)
    _many_copies(256)(2, src, out)
    assert np.array_equal(out, src)
    src = np.zeros(2 * 32 * 257, np.uint32)
    with pytest.raises(CpuKernelError, match=r"too many pending cp\.async copies in one thread"):
        _many_copies(257)(2, src, np.zeros_like(src))

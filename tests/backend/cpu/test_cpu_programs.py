"""Hand-written Thread IR programs on the CPU backend: the issue's three programs (tiled copy
through shared memory with cp.async, warp reduction, one mma.sync tile) with their expected
results, deterministic phase order, divergent control flow, and the errors a wrong program
gets (partial-mask mma.sync, non-uniform 'uniform' branch, barrier mismatch)."""

from __future__ import annotations

from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from cpu_harness import nearest_f32

from tilevm.backend.cpu import CpuKernelError, compile_kernel
from tilevm.ir.thread import B32, F32, S32, U32, U64, KernelBuilder, ThreadIRError, examples, vector


@pytest.fixture(scope="module")
def rng() -> np.random.Generator:
    return np.random.default_rng(5)


@pytest.fixture(scope="module")
def tiled_copy():
    return compile_kernel(examples.tiled_copy(threads=128))


@pytest.mark.parametrize("threads,reverse", [(1, False), (None, False), (2, True)])
def test_tiled_copy_through_shared_memory(tiled_copy, rng, threads, reverse) -> None:
    blocks, tiles = 5, 3
    src = rng.integers(0, 2**32, blocks * tiles * 128 * 4, dtype=np.uint64).astype(np.uint32)
    dst = np.zeros_like(src)
    tiled_copy(blocks, src, dst, tiles, threads=threads, reverse_warps=reverse)
    # each 2048-byte tile comes back with its 16-byte chunks in reverse order
    want = src.reshape(blocks * tiles, 128, 4)[:, ::-1, :].reshape(-1)
    assert np.array_equal(dst, want)


def test_warp_reduction(rng) -> None:
    run = compile_kernel(examples.warp_reduce(threads=128))
    x = rng.standard_normal(3 * 128).astype(np.float32)
    out = np.zeros(12, np.float32)
    run(3, x, out)
    v = x.reshape(-1, 32).copy()
    for k in (16, 8, 4, 2, 1):  # the butterfly's order of f32 additions
        v = (v + v[:, np.arange(32) ^ k]).astype(np.float32)
    assert np.array_equal(out, v[:, 0])
    assert np.allclose(out, x.reshape(-1, 32).astype(np.float64).sum(axis=1), rtol=1e-5)


@pytest.mark.parametrize("atype,np_t", [("f16", np.float16), ("bf16", ml_dtypes.bfloat16)])
def test_one_mma_tile(atype, np_t, rng) -> None:
    run = compile_kernel(examples.mma_tile(atype))
    a = rng.standard_normal((16, 16)).astype(np_t)
    b = rng.standard_normal((16, 8)).astype(np_t)
    c = rng.standard_normal((16, 8)).astype(np.float32)
    d = np.zeros((16, 8), np.float32)
    run(1, a, b, c, d)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    assert np.allclose(d, a64 @ b64 + c, rtol=1e-6, atol=1e-6)
    for i in range(16):
        for j in range(8):
            exact = sum((Fraction(float(a64[i, k])) * Fraction(float(b64[k, j]))
                         for k in range(16)), Fraction(float(c[i, j])))
            assert d[i, j] == nearest_f32(exact)


def _mma_under_partial_mask():
    kb = KernelBuilder("mma_partial", block_threads=32)
    out = kb.param("out", U64, pointer=True)
    lane = kb.sreg("laneid")
    zero = kb.mov(0, B32)
    a = kb.pack([zero] * 4)
    b = kb.pack([zero] * 2)
    c = kb.pack([0.0] * 4, F32)
    with kb.if_(kb.setp("lt", lane, 16)):
        d = kb.mma("m16n8k16", "f16", a, b, c)
        kb.st("global", out, kb.extract(d, 0))
    return kb.finish()


def test_mma_with_a_partial_mask_fails_naming_it() -> None:
    run = compile_kernel(_mma_under_partial_mask())
    with pytest.raises(CpuKernelError, match=r"mma\.sync\.aligned\.m16n8k16.*partial active mask"
                       r".*0x0000ffff"):
        run(1, np.zeros(1, np.float32))


def test_missing_barrier_gives_stale_data_deterministically() -> None:
    # warp 1 writes shared memory, warp 0 reads it with no barrier between: in the fixed order
    # (warp 0 first) the read sees the initial zeros; in reverse order it sees the data.
    kb = KernelBuilder("race", block_threads=64, shared_bytes=256)
    out = kb.param("out", U64, pointer=True)
    tid = kb.sreg("tid.x")
    lane = kb.sreg("laneid")
    smem = kb.shared_base()
    w = kb.shr(tid, 5)
    slot = kb.add(smem, kb.mul(lane, 4))
    with kb.if_(kb.setp("eq", w, 1)):
        kb.st("shared", slot, kb.add(lane, 100))
    with kb.if_(kb.setp("eq", w, 0)):
        kb.st("global", kb.add(out, kb.mul(lane, 4, mode="wide")), kb.ld("shared", slot, U32))
    run = compile_kernel(kb.finish())
    for _ in range(2):
        got = np.ones(32, np.uint32)
        run(1, got)
        assert np.array_equal(got, np.zeros(32, np.uint32))
    got = np.zeros(32, np.uint32)
    run(1, got, reverse_warps=True)
    assert np.array_equal(got, np.arange(32, dtype=np.uint32) + 100)


def test_divergent_loops_and_branches(rng) -> None:
    # per lane: s = sum over i < n of (i odd ? 3*i : i), with a lane-dependent trip count n,
    # plus a register array filled by an unrolled loop and read back by constant indices
    kb = KernelBuilder("divergent", block_threads=64)
    pn, out = kb.param("n", U64, pointer=True), kb.param("out", U64, pointer=True)
    g = kb.sreg("tid.x")
    off = kb.mul(g, 4, mode="wide")
    n = kb.ld("global", kb.add(pn, off), S32)
    s = kb.reg(S32, "s")
    kb.mov(0, S32, out=s)
    with kb.for_(0, n) as i:
        odd = kb.setp("ne", kb.and_(kb.mov(i, B32), 1, type=B32), 0, type=B32)
        with kb.if_(odd):
            kb.add(s, kb.mul(i, 3), out=s)
        with kb.else_():
            kb.add(s, i, out=s)
    arr = kb.array(S32, 4, "arr")
    with kb.for_(0, 4, unroll=True) as j:
        kb.mul(n, kb.add(j, 1), out=arr[j])
    total = kb.add(kb.add(arr[0], arr[1]), kb.add(arr[2], arr[3]))
    kb.st("global", kb.add(out, off), kb.add(s, kb.mul(total, 1000)))
    run = compile_kernel(kb.finish())
    n_vals = rng.integers(0, 20, 64).astype(np.int32)
    got = np.zeros(64, np.int32)
    run(1, n_vals, got)
    want = [sum(3 * i if i % 2 else i for i in range(n)) + 1000 * 10 * n for n in n_vals.tolist()]
    assert got.tolist() == want


def test_uniform_branch_that_diverges_is_an_error() -> None:
    kb = KernelBuilder("fake_uniform", block_threads=32)
    out = kb.param("out", U64, pointer=True)
    lane = kb.sreg("laneid")
    with kb.if_(kb.setp("lt", lane, 3), uniform=True):
        kb.st("global", out, lane)
    run = compile_kernel(kb.finish())
    with pytest.raises(CpuKernelError, match="differs between lanes"):
        run(1, np.zeros(1, np.uint32))


def test_warps_stopping_at_different_barriers_is_an_error() -> None:
    # a uniform branch on the warp index: each warp agrees with itself, not with the block
    kb = KernelBuilder("split_barrier", block_threads=64)
    w = kb.shr(kb.sreg("tid.x"), 5)
    with kb.if_(kb.setp("eq", w, 0), uniform=True):
        kb.bar_sync()
    run = compile_kernel(kb.finish())
    with pytest.raises(CpuKernelError, match="different barriers"):
        run(1)


def test_barrier_under_divergent_control_flow_is_rejected() -> None:
    kb = KernelBuilder("bad_barrier", block_threads=32)
    with kb.if_(kb.setp("lt", kb.sreg("laneid"), 3)):
        kb.bar_sync()
    with pytest.raises(ThreadIRError, match=r"bar\.sync"):
        kb.finish()


_ = (U32, vector)


def test_registers_survive_barriers_in_loops_and_branches() -> None:
    # values written before a barrier (some under a lane-dependent branch, some carried by a
    # uniform loop) are read after it, in every warp, in both warp orders
    kb = KernelBuilder("across_barriers", block_threads=96, shared_bytes=96 * 4)
    out = kb.param("out", U64, pointer=True)
    rounds = kb.param("rounds", S32)
    tid = kb.sreg("tid.x")
    slot = kb.add(kb.shared_base(), kb.mul(tid, 4))
    peer = kb.add(kb.shared_base(), kb.mul(kb.rem(kb.add(tid, 33), 96), 4))
    odd = kb.reg(U32, "odd")
    kb.mov(7, U32, out=odd)
    with kb.if_(kb.setp("ne", kb.and_(kb.mov(tid, B32), 1, type=B32), 0, type=B32)):
        kb.mov(kb.mul(tid, 3), U32, out=odd)
    acc = kb.reg(U32, "acc")
    kb.mov(tid, U32, out=acc)
    with kb.for_(0, rounds, uniform=True, name="round"):
        kb.st("shared", slot, acc)
        kb.bar_sync()
        got = kb.ld("shared", peer, U32)
        kb.bar_sync()
        kb.add(acc, kb.add(got, odd), out=acc)
    kb.st("global", kb.add(out, kb.mul(tid, 4, mode="wide")), acc)
    run = compile_kernel(kb.finish())
    want = list(range(96))
    odd_v = [3 * t if t % 2 else 7 for t in range(96)]
    for _ in range(3):
        want = [(want[t] + want[(t + 33) % 96] + odd_v[t]) & 0xFFFFFFFF for t in range(96)]
    for reverse in (False, True):
        got = np.zeros(96, np.uint32)
        run(2, got, 3, reverse_warps=reverse)
        assert got.tolist() == want


def test_collectives_in_long_loops_keep_a_bounded_stack() -> None:
    # every iteration runs an mma.sync and a shfl.sync, whose helper buffers must not pile up
    kb = KernelBuilder("long_loop", block_threads=32)
    out, n = kb.param("out", U64, pointer=True), kb.param("n", S32)
    one = kb.mov(0x3C003C00, B32)                    # two f16 ones
    a, b = kb.pack([one] * 4), kb.pack([one] * 2)
    acc = kb.reg(vector(F32, 4), "acc")
    kb.pack([0.0] * 4, F32, out=acc)
    lane = kb.reg(B32, "lane")
    kb.mov(kb.sreg("laneid"), B32, out=lane)
    with kb.for_(0, n, uniform=True):
        kb.mma("m16n8k16", "f16", a, b, acc, out=acc)
        kb.shfl("bfly", lane, 1, 31, out=lane)
    kb.st("global", kb.add(out, kb.mul(kb.sreg("laneid"), 8, mode="wide")),
          kb.pack([kb.extract(acc, 0), kb.mov(lane, F32)]))
    run = compile_kernel(kb.finish())
    got = np.zeros(64, np.float32)
    run(1, got, 3001)
    assert np.all(got[0::2] == 16 * 3001)            # each mma adds K = 16 products of 1
    assert got[1::2].view(np.uint32).tolist() == [i ^ 1 for i in range(32)]  # odd count of swaps


def test_barrier_inside_an_unrolled_loop() -> None:
    # an unroll loop has constant bounds, so a barrier inside it is block-uniform
    kb = KernelBuilder("unrolled_barrier", block_threads=64, shared_bytes=256)
    out = kb.param("out", U64, pointer=True)
    tid = kb.sreg("tid.x")
    slot = kb.add(kb.shared_base(), kb.mul(tid, 4))
    other = kb.add(kb.shared_base(), kb.mul(kb.sub(63, tid, type=U32), 4))
    v = kb.reg(U32, "v")
    kb.mov(tid, U32, out=v)
    with kb.for_(0, 3, unroll=True):
        kb.st("shared", slot, v)
        kb.bar_sync()
        kb.add(kb.ld("shared", other, U32), 1, out=v)
        kb.bar_sync()
    kb.st("global", kb.add(out, kb.mul(tid, 4, mode="wide")), v)
    run = compile_kernel(kb.finish())
    got = np.zeros(64, np.uint32)
    run(1, got, reverse_warps=True)
    # three exchanges with the mirror thread, adding 1 each time
    want = list(range(64))
    for _ in range(3):
        want = [want[63 - t] + 1 for t in range(64)]
    assert got.tolist() == want

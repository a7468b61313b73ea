"""The CPU sanitizer (tilevm/backend/cpu/sanitizer.py) on deliberately buggy kernels: each bug is
reported at its line, with the block, thread and address; the correct versions and the
examples produce no report. The oracle is the kernel source: the line of each ``# BUG:`` comment.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest

from tilevm.backend.cpu import compile_kernel
from tilevm.backend.cpu.sanitizer import SanitizerError, run_sanitized
from tilevm.ir.thread import U32, U64, KernelBuilder

from . import buggy_kernels as bk

KERNELS = Path(bk.__file__).name


def bug_line(marker: str, source: Path = Path(bk.__file__)) -> int:
    lines = source.read_text().splitlines()
    hits = [i + 1 for i, line in enumerate(lines) if f"# BUG: {marker}" in line]
    assert len(hits) == 1, marker
    return hits[0]


def arrays(kernel_name: str, n: int = 4 * bk.N) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    shape = (bk.T, bk.T) if kernel_name.startswith("transpose") else (n,)
    x = rng.standard_normal(shape).astype(np.float32)
    return x, np.zeros_like(x)


BUGS = [
    # (buggy kernel, marker, what the report says, its correct version)
    ("transpose_no_sync", "transposed read, no sync", "data race on shared memory",
     "transpose_sync"),
    ("shift_load", "unmasked off-by-one load", "global access out of bounds", None),
    ("shift_store", "store past the end", "global access out of bounds", None),
    ("reverse_no_sync", "another warp's store, no sync", "data race on shared memory",
     "reverse_sync"),
    ("overlapping_stores", "two warps write one shared word",
     "data race on shared memory (write/write)", "overlapping_stores_sync"),
    ("copy_no_wait", "cp.async destination read before its wait",
     "read of a cp.async destination before its wait", "copy_wait"),
]


@pytest.mark.parametrize(("name", "marker", "what", "_fixed"), BUGS)
def test_bug_is_reported_at_its_line(name, marker, what, _fixed):
    x, y = arrays(name)
    with pytest.raises(SanitizerError) as info:
        getattr(bk, name)(x, y, device="cpu", sanitize=True)
    message = str(info.value)
    assert what in message
    assert f"{KERNELS}:{bug_line(marker)}:" in message
    assert "block (" in message and "thread " in message
    assert len(info.value.reports) == 1  # stops at the first


def test_out_of_bounds_names_the_tensor_block_thread_and_address():
    x, y = arrays("shift_load")
    with pytest.raises(SanitizerError) as info:
        bk.shift_load(x, y, device="cpu", sanitize=True)
    message = str(info.value)
    # the last block's last thread reads element n: the first byte past the end of x
    assert "block (3, 0, 0)" in message and "thread 127 (warp 3, lane 31)" in message
    assert "byte 0 past the end of 'x' (2048 bytes)" in message


@pytest.mark.parametrize("fixed", sorted({b[3] for b in BUGS if b[3]}))
def test_correct_versions_produce_no_report(fixed):
    x, y = arrays(fixed)
    getattr(bk, fixed)(x, y, device="cpu", sanitize=True)
    expected = x.T if fixed.startswith("transpose") else None
    if fixed == "overlapping_stores_sync":
        expected = np.concatenate([x[i:i + bk.N] for i in range(0, x.size, bk.N)])
        expected = expected.reshape(-1, bk.N)
        expected[:, bk.N // 2:] = expected[:, :bk.N // 2] + np.float32(1)
        expected = expected.reshape(-1)
    elif fixed == "reverse_sync":
        blocks = x.reshape(-1, bk.N)
        expected = np.concatenate([blocks[:, bk.N // 2:], blocks[:, :bk.N // 2]], 1).reshape(-1)
    elif fixed == "copy_wait":
        expected = x
    np.testing.assert_array_equal(y, expected)  # results are written back to the caller


def test_in_bounds_shift_is_clean_and_matches_the_interpreter():
    # the off-by-one kernels with offset 0 are correct
    x, y = arrays("shift_load")
    bk.shift_load(x, y, device="cpu", sanitize=True, off=0)
    np.testing.assert_array_equal(y, x)
    y2 = np.zeros_like(x)
    bk.shift_store(x, y2, device="cpu", sanitize=True, off=0)
    np.testing.assert_array_equal(y2, x)


def test_continue_collects_every_report():
    x, y = arrays("reverse_no_sync")
    with pytest.raises(SanitizerError) as info:
        bk.reverse_no_sync(x, y, device="cpu", sanitize="continue")
    assert len(info.value.reports) >= 1
    assert any("data race" in str(r) for r in info.value.reports)
    line = bug_line("another warp's store, no sync")
    assert f"{KERNELS}:{line}:" in str(info.value)


def test_environment_variable_turns_it_on(monkeypatch):
    x, y = arrays("shift_load")
    monkeypatch.setenv("TILEVM_SANITIZE", "1")
    with pytest.raises(SanitizerError):
        bk.shift_load(x, y, device="cpu")
    monkeypatch.setenv("TILEVM_SANITIZE", "0")
    bk.shift_load(x, y, device="cpu")  # no check: the unmasked read past the end goes unnoticed


def test_sanitize_needs_the_cpu_backend():
    x, y = arrays("shift_load")
    with pytest.raises(ValueError, match="device='cpu'"):
        bk.shift_load(x, y, device="interp", sanitize=True)


def test_block_order_dependence_is_reported_with_both_values():
    x, y = arrays("prefix_from_previous_block")
    with pytest.raises(SanitizerError) as info:
        bk.prefix_from_previous_block(x, y, device="cpu", sanitize=True)
    message = str(info.value)
    assert "depends on the order of blocks" in message
    # index order is the running sum of the blocks; the reported element has that value
    index = int(message.split("y[")[1].split("]")[0])
    running = np.cumsum(x.reshape(-1, bk.N).astype(np.float32), axis=0, dtype=np.float32)
    assert f" is {float(running.reshape(-1)[index])!r} in index order" in message
    np.testing.assert_array_equal(y, running.reshape(-1))  # the in-order result written back


def test_read_of_shared_memory_never_written():
    x, y = arrays("half_written")
    with pytest.raises(SanitizerError) as info:
        bk.half_written(x, y, device="cpu", sanitize=True)
    message = str(info.value)
    assert "read of shared memory never written" in message
    assert f"{KERNELS}:{bug_line('shared memory read, never written')}:" in message
    # 128 f32 were written: the first byte not written is 512
    assert "shared byte 512" in message


def test_copy_at_the_tensor_edge_is_clean():
    # n is not a multiple of the tile: the last block's copies read fewer bytes, or none
    # (source size 0: not an access, even though its source address is the tensor's start)
    x, y = arrays("copy_wait", n=3 * bk.N + 5)
    bk.copy_wait(x, y, device="cpu", sanitize=True)
    expected = np.zeros_like(x)
    bk.copy_wait(x, expected, device="cpu")
    np.testing.assert_array_equal(y, expected)


def _sum_in_order(values: np.ndarray, order: np.ndarray) -> np.float32:
    total = np.float32(0)
    for v in values[order]:
        total = np.float32(total + v)
    return total


def test_float_atomics_compare_under_their_bound():
    blocks = 16
    x = np.zeros(blocks * bk.N, np.float32)
    # 2**25 first: each 1 added after it is lost (f32's spacing there is 4); the ones added
    # before it are not
    block_values = np.array([2.0**25, -3] + [1] * (blocks - 2), np.float32)
    x[::bk.N] = block_values  # each block's tile sums exactly to its value
    # numpy as the oracle: the index order and the sanitizer's shuffled order (seed 0) give
    # different f32 sums, so only the bound can let the comparison pass
    in_order = _sum_in_order(block_values, np.arange(blocks))
    shuffled = _sum_in_order(block_values, np.random.default_rng(0).permutation(blocks))
    assert in_order != shuffled
    total = np.zeros(1, np.float32)
    bk.block_sums(x, total, device="cpu", sanitize=True)  # no report
    assert total[0] == in_order  # the checked run adds in index order, serially


def test_shared_half_atomics_from_two_threads_do_not_race():
    # f16 atomic adds are CAS loops that read the word plainly first: not a race
    x = (np.arange(bk.T * bk.T) % 7).reshape(bk.T, bk.T).astype(np.float16)
    y = np.zeros_like(x)
    bk.shared_half_sums(x, y, device="cpu", sanitize=True)
    np.testing.assert_array_equal(y, x + x.T)  # small integers: exact in f16 (numpy oracle)


# -- two blocks writing neighbouring u3 tiles: hand-written Thread IR ------------------------------
# Block b owns the 3 u3 elements at bits [9b, 9b + 9): bytes 9b // 8 and (9b + 8) // 8, the edge
# byte shared with the next block. The buggy kernel stores both bytes with st.global.u8; the
# correct one ORs its bits into the 32-bit word holding each byte atomically (red.global.or).

def _u3_tiles(atomic: bool) -> object:
    kb = KernelBuilder("u3_tiles_atomic" if atomic else "u3_tiles", block_threads=32)
    out = kb.param("out", U64, pointer=True)
    b = kb.sreg("ctaid.x")
    tid = kb.sreg("tid.x")
    bit = kb.mul(b, 9)
    here = Path(__file__).name
    b32 = "b32"
    with kb.if_(kb.setp("eq", tid, 0)):
        for k, byte in enumerate((kb.shr(bit, 3), kb.shr(kb.add(bit, 8), 3))):
            # the bits of this block in the byte: from bit % 8 up (first byte), below it (last)
            shift = kb.and_(bit, 7, type=b32)
            ones = kb.shl(kb.mov(0xFF, U32), shift, type=b32) if k == 0 else kb.shr(
                kb.mov(0x1FF, U32), kb.sub(8, shift, type=U32), type=b32)
            if atomic:
                word = kb.and_(byte, 0xFFFFFFFC, type=b32)
                value = kb.shl(kb.and_(ones, 0xFF, type=b32),
                               kb.mul(kb.and_(byte, 3, type=b32), 8, type=U32), type=b32)
                kb.red("global", "or", kb.add(out, kb.cvt(word, U64, src=U32)), value, type=b32)
            else:
                kb.loc = f"{here}:{bug_line('two blocks write one byte', Path(__file__))}"
                low = kb.cvt(kb.and_(ones, 0xFF, type=b32), "u8", src=U32)
                address = kb.add(out, kb.cvt(byte, U64, src=U32))
                kb.st("global", address, low)  # BUG: two blocks write one byte
                kb.loc = None
    return kb.finish()


@pytest.fixture(scope="module")
def u3_kernels():
    return {atomic: compile_kernel(_u3_tiles(atomic), sanitize=True) for atomic in (False, True)}


def test_two_blocks_writing_one_global_byte_is_reported(u3_kernels):
    out = np.zeros(8, np.uint8)
    with pytest.raises(SanitizerError) as info:
        run_sanitized(u3_kernels[False], (4, 1, 1), [out], names=["out"])
    message = str(info.value)
    assert "one global byte written non-atomically by two blocks" in message
    assert f"{Path(__file__).name}:{bug_line('two blocks write one byte', Path(__file__))}" \
        in message
    # block 1 writes byte 1, which block 0 wrote before (its bits 8..9 edge)
    assert "block (1, 0, 0)" in message and "block (0, 0, 0) wrote the byte before" in message
    assert "byte 1 of 'out'" in message


def test_atomic_edge_bytes_are_not_reported(u3_kernels):
    out = np.zeros(8, np.uint8)
    run_sanitized(u3_kernels[True], (4, 1, 1), [out], names=["out"])
    # 4 blocks × 9 bits set: the first 36 bits (numpy as the oracle)
    expected = np.packbits(np.arange(64) < 36, bitorder="little")
    np.testing.assert_array_equal(out, expected)


def test_shuffled_order_of_an_order_independent_kernel_is_clean():
    # every correct kernel above ran with more than one block through the order check; this
    # one checks that a second call reuses the sanitized build (memo) and stays clean
    x, y = arrays("copy_wait")
    bk.copy_wait(x, y, device="cpu", sanitize=True)
    y2 = np.zeros_like(x)
    bk.copy_wait(x, y2, device="cpu", sanitize=True)
    np.testing.assert_array_equal(y, y2)
    assert inspect.isfunction(bk.copy_wait.fn)

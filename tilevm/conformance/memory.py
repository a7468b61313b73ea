"""``cp.async`` with zero-fill: every copy size and cache operator, every ``src_size`` from 0 to
the copy's size, in two committed groups read after ``cp.async.wait_group 1`` and ``0``. Exact.
"""

from __future__ import annotations

import numpy as np

from tilevm.conformance.launch import Check, Launch
from tilevm.conformance.rng import random_words
from tilevm.ir.thread import U32, U64, KernelBuilder, vector

__all__ = ["CP_ASYNC_VARIANTS", "cp_async_launch"]

CP_ASYNC_VARIANTS = [("ca", 4), ("ca", 8), ("ca", 16), ("cg", 16)]  # (cache, size in bytes)
_THREADS = 32
_BLOCKS = 2
_SLOT = 16  # bytes of shared memory per lane and variant
_OLD_WORD = 0xA5A5A5A5  # what shared memory holds before the copies


def cp_async_launch(seed: int = 7200) -> Launch:
    """Each lane fills its four 16-byte shared slots with ``0xA5A5A5A5``, then copies from its
    64 random source bytes into slot ``v`` with variant ``v`` and ``src_size`` from
    ``src_sizes[v, thread]`` (every value 0..size occurs); variants 0-1 form group 0, 2-3 group
    1. After ``wait_group 1`` it stores slots 0-1, after ``wait_group 0`` slots 2-3:
    ``out[thread, v]`` is slot ``v`` (16 bytes; past the copy's size the old bytes remain)."""
    kb = KernelBuilder("conformance_cp_async", block_threads=_THREADS,
                       shared_bytes=_THREADS * _SLOT * len(CP_ASYNC_VARIANTS))
    src, sizes, out = (kb.param(n, U64, pointer=True) for n in ("src", "src_sizes", "out"))
    lane = kb.sreg("laneid")
    thread = kb.mad(kb.sreg("ctaid.x"), _THREADS, lane)
    total = _THREADS * _BLOCKS
    per_lane = _SLOT * len(CP_ASYNC_VARIANTS)
    slots = kb.add(kb.shared_base(), kb.mul(lane, per_lane))
    old = kb.const(_OLD_WORD, U32)
    for v in range(len(CP_ASYNC_VARIANTS)):
        kb.st("shared", kb.add(slots, v * _SLOT), kb.pack([old] * 4, U32))
    source = kb.add(src, kb.mul(thread, per_lane, mode="wide"))
    result = kb.add(out, kb.mul(thread, per_lane, mode="wide"))
    tokens = []
    for v, (cache, size) in enumerate(CP_ASYNC_VARIANTS):
        src_size = kb.ld("global", kb.add(sizes, kb.mul(kb.add(thread, v * total), 4,
                                                        mode="wide")), U32)
        kb.cp_async(kb.add(slots, v * _SLOT), kb.add(source, v * _SLOT), size, cache=cache,
                    src_size=src_size)
        if v % 2:
            tokens.append(kb.commit_group())
    for wait, group in ((1, 0), (0, 1)):
        kb.wait_group(wait, tokens[group])
        for v in (2 * group, 2 * group + 1):
            kb.st("global", kb.add(result, v * _SLOT),
                  kb.ld("shared", kb.add(slots, v * _SLOT), vector(U32, 4)))
    kernel = kb.finish()
    src_sizes = np.zeros((len(CP_ASYNC_VARIANTS), total), np.uint32)
    for v, (_, size) in enumerate(CP_ASYNC_VARIANTS):  # lane t of block b: (t + 5b) mod size+1
        t = np.arange(total)
        src_sizes[v] = (t % _THREADS + 5 * (t // _THREADS)) % (size + 1)
    buffers = {"src": random_words(seed, (total, per_lane), 8).astype(np.uint8),
               "src_sizes": src_sizes,
               "out": np.zeros((total, len(CP_ASYNC_VARIANTS), _SLOT), np.uint8)}
    return Launch(
        name="conformance_cp_async", family="memory",
        description="cp.async.ca (4, 8, 16 bytes) and .cg (16) with src_size 0..size "
                    "(zero-fill), wait_group 1 then 0",
        kernel=kernel, grid=(_BLOCKS, 1, 1), args=("src", "src_sizes", "out"), buffers=buffers,
        checks={"out": Check("exact", "u8")})

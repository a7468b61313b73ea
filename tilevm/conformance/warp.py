"""Warp collectives: ``ldmatrix`` x1/x2/x4 with and without ``.trans``, and ``shfl.sync`` in its
four modes with segment widths 32, 16, 8 and 4. Both are exact (bits move unchanged).
"""

from __future__ import annotations

import numpy as np

from tilevm.conformance.launch import Check, Launch
from tilevm.conformance.rng import random_words
from tilevm.ir.thread import B32, U32, U64, KernelBuilder, vector

__all__ = ["LDMATRIX_VARIANTS", "SHFL_VARIANTS", "ldmatrix_launch", "shfl_launch"]

LDMATRIX_VARIANTS = [(1, False), (2, False), (4, False), (1, True), (2, True), (4, True)]
_LDMATRIX_WORDS = sum(num for num, _ in LDMATRIX_VARIANTS)  # result registers per lane
_LDMATRIX_BLOCKS = 4


def ldmatrix_launch(seed: int = 7000) -> Launch:
    """Each block fills 512 bytes of shared memory from ``smem_init`` (random 16-bit values),
    gives every lane a 16-byte row address from ``rows`` (a random permutation of the 32 rows)
    and runs every variant; ``out[block, register, lane]`` holds each result register."""
    kb = KernelBuilder("conformance_ldmatrix", block_threads=32, shared_bytes=512)
    init, rows, out = (kb.param(n, U64, pointer=True) for n in ("smem_init", "rows", "out"))
    lane = kb.sreg("laneid")
    block = kb.sreg("ctaid.x")
    thread = kb.mad(block, 32, lane)
    smem = kb.shared_base()
    offset = kb.mul(lane, 16)
    words = kb.ld("global", kb.add(init, kb.mul(thread, 16, mode="wide")), vector(B32, 4))
    kb.st("shared", kb.add(smem, offset), words)
    kb.bar_sync()
    row = kb.ld("global", kb.add(rows, kb.mul(thread, 4, mode="wide")), U32)
    addr = kb.add(smem, row)
    base = kb.mul(block, _LDMATRIX_WORDS * 32)
    k = 0
    for num, trans in LDMATRIX_VARIANTS:
        fragment = kb.ldmatrix(addr, num, trans=trans)
        for register in [fragment] if num == 1 else kb.unpack(fragment):
            at = kb.mul(kb.add(base, kb.add(lane, k * 32)), 4, mode="wide")
            kb.st("global", kb.add(out, at), register)
            k += 1
    kernel = kb.finish()
    smem_init = random_words(seed, (_LDMATRIX_BLOCKS, 256), 16).astype(np.uint16)
    permutations = np.argsort(random_words(seed + 1, (_LDMATRIX_BLOCKS, 32)), axis=1)
    buffers = {"smem_init": smem_init, "rows": (permutations * 16).astype(np.uint32),
               "out": np.zeros((_LDMATRIX_BLOCKS, _LDMATRIX_WORDS, 32), np.uint32)}
    return Launch(
        name="conformance_ldmatrix", family="warp",
        description="ldmatrix.sync.aligned.m8n8.x{1,2,4}{,.trans}.shared.b16 from permuted row "
                    "addresses, 4 blocks",
        kernel=kernel, grid=(_LDMATRIX_BLOCKS, 1, 1), args=("smem_init", "rows", "out"),
        buffers=buffers, checks={"out": Check("exact", "u32")})


# (mode, b, c): b an int, or None for each lane's own random b (its low 5 bits used); c packs
# the segment mask (bits 8-12: 32 - width) and the clamp (bits 0-4: 31 for idx/down/bfly, 0 up)
SHFL_VARIANTS: list[tuple[str, int | None, int]] = [
    ("idx", None, 0x001F), ("idx", None, 0x101F), ("idx", None, 0x181F), ("idx", 5, 0x1C1F),
    ("up", 1, 0x0000), ("up", 3, 0x1800), ("up", 5, 0x1000), ("up", 2, 0x1C00),
    ("down", 1, 0x001F), ("down", 3, 0x181F), ("down", 7, 0x1C1F), ("down", 9, 0x101F),
    ("bfly", 1, 0x001F), ("bfly", 16, 0x001F), ("bfly", 5, 0x181F), ("bfly", 2, 0x1C1F),
]
_SHFL_THREADS = 64
_SHFL_BLOCKS = 2


def shfl_launch(seed: int = 7100) -> Launch:
    """Two warps per block, two blocks; every lane shuffles its random ``values`` word in each
    :data:`SHFL_VARIANTS` entry (full membermask); ``out[variant, thread]`` holds the results."""
    kb = KernelBuilder("conformance_shfl", block_threads=_SHFL_THREADS)
    values, lane_b, out = (kb.param(n, U64, pointer=True) for n in ("values", "lane_b", "out"))
    thread = kb.mad(kb.sreg("ctaid.x"), _SHFL_THREADS, kb.sreg("tid.x"))
    at = kb.mul(thread, 4, mode="wide")
    value = kb.ld("global", kb.add(values, at), B32)
    own_b = kb.ld("global", kb.add(lane_b, at), U32)
    total = _SHFL_THREADS * _SHFL_BLOCKS
    for v, (mode, b, c) in enumerate(SHFL_VARIANTS):
        got = kb.shfl(mode, value, own_b if b is None else b, c)
        kb.st("global", kb.add(kb.add(out, at), v * total * 4), got)
    kernel = kb.finish()
    buffers = {"values": random_words(seed, total).astype(np.uint32),
               "lane_b": random_words(seed + 1, total).astype(np.uint32),
               "out": np.zeros((len(SHFL_VARIANTS), total), np.uint32)}
    return Launch(
        name="conformance_shfl", family="warp",
        description="shfl.sync.{idx,up,down,bfly}.b32, segment widths 32/16/8/4, constant and "
                    "per-lane source lanes",
        kernel=kernel, grid=(_SHFL_BLOCKS, 1, 1), args=("values", "lane_b", "out"),
        buffers=buffers, checks={"out": Check("exact", "u32")})

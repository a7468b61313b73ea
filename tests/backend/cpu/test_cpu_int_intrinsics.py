"""Integer arithmetic, comparison, selection and conversion intrinsics on the CPU backend vs the
PTX ISA ("Integer Arithmetic Instructions": add, sub, mul.lo/hi/wide, mad, div, rem, min, max;
"Logic and Shift": shl, shr; "Comparison and Selection": setp, selp; "cvt" between integers),
on all 32 lanes of many warps, with Python integers as the oracle."""

from __future__ import annotations

import numpy as np
import pytest
from cpu_harness import lane_program, random_words

N = 32 * 64
CMPS = ["eq", "ne", "lt", "le", "gt", "ge"]


def s32(x: int) -> int:
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x >> 31 else x


@pytest.fixture(scope="module")
def int_prog():
    def body(kb, v):
        a, b, n = v
        sa, sb = kb.mov(a, "s32"), kb.mov(b, "s32")
        out = [kb.add(sa, sb), kb.sub(sa, sb), kb.mul(sa, sb), kb.mul(sa, sb, mode="hi"),
               kb.mul(a, b, mode="hi"), kb.mul(sa, sb, mode="wide"), kb.mul(a, b, mode="wide"),
               kb.mad(sa, sb, sa), kb.div(sa, sb), kb.rem(sa, sb), kb.div(a, b), kb.rem(a, b),
               kb.min(sa, sb), kb.max(sa, sb), kb.min(a, b), kb.max(a, b),
               kb.shl(kb.mov(a, "b32"), n), kb.shr(kb.mov(a, "b32"), n), kb.shr(sa, n)]
        out += [kb.setp(c, sa, sb) for c in CMPS] + [kb.setp(c, a, b) for c in CMPS]
        out += [kb.selp(sa, sb, kb.setp("lt", n, 16)),
                kb.cvt(sa, "s8", sat="sat"), kb.cvt(a, "u16"), kb.cvt(kb.cvt(sa, "s8"), "s32"),
                kb.cvt(sa, "u8", sat="sat")]
        return out
    return lane_program("int_ops", ["u32", "u32", "u32"], body)


def test_integer_ops(int_prog) -> None:
    rng = np.random.default_rng(31)
    a = random_words(rng, N)
    b = random_words(rng, N)
    b[::7] = rng.integers(0, 5, len(b[::7]))               # small divisors, including zero
    a[:4], b[:4] = [0x80000000, 7, 5, 0], [0xFFFFFFFF, 0xFFFFFFF9, 0, 3]   # INT_MIN / -1 etc.
    n = rng.integers(0, 40, N).astype(np.uint32)           # shift amounts past the width too
    outs = [o.astype(np.uint64).tolist() for o in int_prog(a, b, n)]
    M = 0xFFFFFFFF
    for i, (x, y, k) in enumerate(zip(a.tolist(), b.tolist(), n.tolist(), strict=True)):
        sx, sy = s32(x), s32(y)
        want = [(sx + sy) & M, (sx - sy) & M, (sx * sy) & M, ((sx * sy) >> 32) & M,
                (x * y) >> 32, (sx * sy) & (2**64 - 1), x * y, (sx * sy + sx) & M]
        got = [outs[j][i] for j in range(8)]
        assert got == want, i
        if sy != 0 and not (sx == -2**31 and sy == -1):
            q = abs(sx) // abs(sy) * (1 if (sx < 0) == (sy < 0) else -1)   # toward zero
            assert outs[8][i] == q & M and outs[9][i] == (sx - q * sy) & M, i
        if y != 0:
            assert outs[10][i] == x // y and outs[11][i] == x % y, i
        assert [outs[j][i] for j in range(12, 16)] == [min(sx, sy) & M, max(sx, sy) & M,
                                                       min(x, y), max(x, y)]
        # shl/shr: shift amounts >= 32 give 0 (logical) or the sign fill (arithmetic)
        assert outs[16][i] == ((x << k) & M if k < 32 else 0)
        assert outs[17][i] == (x >> k if k < 32 else 0)
        assert outs[18][i] == (sx >> min(k, 31)) & M
        ops = {"eq": lambda p, q: p == q, "ne": lambda p, q: p != q, "lt": lambda p, q: p < q,
               "le": lambda p, q: p <= q, "gt": lambda p, q: p > q, "ge": lambda p, q: p >= q}
        assert [outs[19 + j][i] for j in range(6)] == [int(ops[c](sx, sy)) for c in CMPS]
        assert [outs[25 + j][i] for j in range(6)] == [int(ops[c](x, y)) for c in CMPS]
        assert outs[31][i] == (x if k < 16 else y)
        assert outs[32][i] == min(max(sx, -128), 127) & 0xFF
        assert outs[33][i] == x & 0xFFFF
        assert outs[34][i] == s32(((x & 0xFF) ^ 0x80) - 0x80) & M     # s8 sign-extended back
        assert outs[35][i] == min(max(sx, 0), 255)

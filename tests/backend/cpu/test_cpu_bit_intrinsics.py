"""Bit-manipulation intrinsics on the CPU backend vs the PTX ISA's definitions, on all 32 lanes
of many warps (random words). Oracles are written from the ISA text ("Integer Arithmetic" and
"Logic and Shift Instructions" chapters: lop3, prmt, shf, bfe, bfi, popc), per element in Python.
"""

from __future__ import annotations

import numpy as np
import pytest
from cpu_harness import lane_program, random_words

N = 32 * 64
M32 = 0xFFFFFFFF


@pytest.fixture(scope="module")
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


# -- lop3: every one of the 256 truth tables --------------------------------------------------

@pytest.fixture(scope="module")
def lop3_all():
    return lane_program("lop3_all", ["b32", "b32", "b32"],
                        lambda kb, v: [kb.lop3(v[0], v[1], v[2], lut) for lut in range(256)])


def lop3_oracle(a: int, b: int, c: int, lut: int) -> int:
    # PTX ISA lop3: bit i of d is immLut's bit (a_i << 2 | b_i << 1 | c_i), the table being
    # defined by F(0xF0, 0xCC, 0xAA) = immLut.
    d = 0
    for i in range(32):
        idx = ((a >> i & 1) << 2) | ((b >> i & 1) << 1) | (c >> i & 1)
        d |= (lut >> idx & 1) << i
    return d


def test_lop3_every_lut_on_random_words(lop3_all, rng) -> None:
    a, b, c = (random_words(rng, 64) for _ in range(3))
    outs = lop3_all(a, b, c)
    for lut in range(256):
        want = [lop3_oracle(int(x), int(y), int(z), lut) for x, y, z in zip(a, b, c, strict=True)]
        assert outs[lut].tolist() == want, f"lut 0x{lut:02x}"


def test_lop3_oracle_follows_the_isa_construction(rng) -> None:
    # The ISA defines immLut = F(0xF0, 0xCC, 0xAA) for the function F wanted; the oracle must
    # then compute F on any words.
    fns = [lambda a, b, c: (a & b) | c, lambda a, b, c: a ^ b ^ c,
           lambda a, b, c: ~a & b, lambda a, b, c: (a | b) & ~c]
    a, b, c = (int(x) for x in random_words(rng, 3))
    for f in fns:
        lut = f(0xF0, 0xCC, 0xAA) & 0xFF
        assert lop3_oracle(a, b, c, lut) == f(a, b, c) & M32


# -- prmt --------------------------------------------------------------------------------------

# PTX ISA prmt, "modes" table: for c[1:0] = 0..3 the source bytes of (d.b3, d.b2, d.b1, d.b0).
PRMT_MODE_TABLE = {
    "f4e": ["3210", "4321", "5432", "6543"],
    "b4e": ["5670", "6701", "7012", "0123"],
    "rc8": ["0000", "1111", "2222", "3333"],
    "ecl": ["3210", "3211", "3222", "3333"],
    "ecr": ["0000", "1110", "2210", "3210"],
    "rc16": ["1010", "3232", "1010", "3232"],
}


def prmt_oracle(a: int, b: int, c: int, mode: str | None) -> int:
    tmp64 = (b << 32) | a  # bytes 0..7 of {b, a}
    d = 0
    for i in range(4):
        if mode is None:
            sel = (c >> (4 * i)) & 0xF
            byte = (tmp64 >> (8 * (sel & 7))) & 0xFF
            if sel & 8:  # msb of the selector: replicate the byte's sign
                byte = 0xFF if byte & 0x80 else 0
        else:
            src = int(PRMT_MODE_TABLE[mode][c & 3][3 - i])
            byte = (tmp64 >> (8 * src)) & 0xFF
        d |= byte << (8 * i)
    return d


MODES = [None, "f4e", "b4e", "rc8", "ecl", "ecr", "rc16"]


@pytest.fixture(scope="module")
def prmt_all():
    return lane_program("prmt_all", ["b32", "b32", "b32"],
                        lambda kb, v: [kb.prmt(v[0], v[1], v[2], mode=m) for m in MODES])


def test_prmt_every_mode_on_random_words(prmt_all, rng) -> None:
    a, b, c = (random_words(rng, N) for _ in range(3))
    outs = prmt_all(a, b, c)
    for k, mode in enumerate(MODES):
        want = [prmt_oracle(int(x), int(y), int(z), mode) for x, y, z in zip(a, b, c, strict=True)]
        assert outs[k].tolist() == want, f"mode {mode}"


# Selectors known when compiling (the lowering's casts and packing use only these): every mode
# with each c[1:0], and generic selectors with random nibbles, sign replication included.
KNOWN_SELECTORS = ([(m, c) for m in MODES[1:] for c in range(4)]
                   + [(None, int(c)) for c in np.random.default_rng(99).integers(0, 1 << 16, 40)]
                   + [(None, c) for c in (0x5410, 0x7632, 0x3210, 0x8888, 0xF0F0)])


@pytest.fixture(scope="module")
def prmt_known():
    return lane_program("prmt_known", ["b32", "b32"],
                        lambda kb, v: [kb.prmt(v[0], v[1], c, mode=m) for m, c in KNOWN_SELECTORS])


def test_prmt_with_a_selector_known_when_compiling(prmt_known, rng) -> None:
    a, b = (random_words(rng, N) for _ in range(2))
    outs = prmt_known(a, b)
    for k, (mode, c) in enumerate(KNOWN_SELECTORS):
        want = [prmt_oracle(int(x), int(y), c, mode) for x, y in zip(a, b, strict=True)]
        assert outs[k].tolist() == want, f"mode {mode}, selector {c:#06x}"


def test_prmt_cub_example() -> None:
    # CUB's documented example of the generic form: a=0x03020100, b=0x07060504, c=0x7531.
    assert prmt_oracle(0x03020100, 0x07060504, 0x00007531, None) == 0x07050301


# -- shf, bfe, bfi, popc -----------------------------------------------------------------------

SHF = [("l", "clamp"), ("l", "wrap"), ("r", "clamp"), ("r", "wrap")]


def shf_oracle(a: int, b: int, c: int, d: str, mode: str) -> int:
    # PTX ISA shf: n = clamp ? min(c, 32) : c & 0x1f; shf.l: high word of ({b, a} << n);
    # shf.r: low word of ({b, a} >> n).
    n = min(c, 32) if mode == "clamp" else c & 31
    x = (b << 32) | a
    return ((x << n) >> 32) & M32 if d == "l" else (x >> n) & M32


def bfe_oracle(a: int, pos: int, ln: int, signed: bool, bits: int) -> int:
    msb = bits - 1
    pos, ln = pos & 0xFF, ln & 0xFF
    sbit = 0 if (not signed or ln == 0) else a >> min(pos + ln - 1, msb) & 1
    d = 0
    for i in range(bits):
        bit = (a >> (pos + i) & 1) if (i < ln and pos + i <= msb) else sbit
        d |= bit << i
    return d


def bfi_oracle(a: int, b: int, pos: int, ln: int, bits: int) -> int:
    msb = bits - 1
    pos, ln = pos & 0xFF, ln & 0xFF
    f = b
    i = 0
    while i < ln and pos + i <= msb:
        f = (f & ~(1 << (pos + i))) | ((a >> i & 1) << (pos + i))
        i += 1
    return f


@pytest.fixture(scope="module")
def bits_prog():
    def body(kb, v):
        a, b, c, p, n = v
        outs = [kb.shf(a, b, c, dir=d, mode=m) for d, m in SHF]
        outs += [kb.bfe(kb.mov(a, "u32"), p, n), kb.bfe(kb.mov(a, "s32"), p, n)]
        outs += [kb.bfi(a, b, p, n), kb.popc(a)]
        return outs
    return lane_program("bits", ["b32", "b32", "u32", "u32", "u32"], body)


def test_shf_bfe_bfi_popc(bits_prog, rng) -> None:
    a, b = random_words(rng, N), random_words(rng, N)
    c = rng.integers(0, 64, N).astype(np.uint32)
    # positions and lengths: mostly in range, some past the msb and past 0xff (masked)
    p = rng.choice(np.array([0, 1, 5, 16, 31, 32, 40, 255, 256 + 3], np.uint32), N)
    n = rng.choice(np.array([0, 1, 3, 8, 17, 31, 32, 33, 200, 256 + 4], np.uint32), N)
    outs = bits_prog(a, b, c, p, n)
    for k, (d, m) in enumerate(SHF):
        want = [shf_oracle(int(x), int(y), int(z), d, m) for x, y, z in zip(a, b, c, strict=True)]
        assert outs[k].tolist() == want, f"shf.{d}.{m}"
    rows = list(zip(a.tolist(), b.tolist(), p.tolist(), n.tolist(), strict=True))
    assert outs[4].tolist() == [bfe_oracle(x, q, m, False, 32) for x, _, q, m in rows]
    assert outs[5].tolist() == [bfe_oracle(x, q, m, True, 32) for x, _, q, m in rows]
    assert outs[6].tolist() == [bfi_oracle(x, y, q, m, 32) for x, y, q, m in rows]
    assert outs[7].tolist() == [bin(x).count("1") for x, *_ in rows]


# Fields known when compiling (the lowering's unpacking uses only these): every position and
# length class of the random test above, as constants, in 32 and 64 bits.
KNOWN_FIELDS = {32: [(p, n) for p in (0, 1, 5, 16, 31, 32, 40, 255, 259)
                     for n in (0, 1, 3, 8, 17, 31, 32, 33, 200, 260)],
                64: [(p, n) for p in (0, 7, 33, 63, 64, 300) for n in (0, 1, 31, 40, 64, 70)]}


@pytest.fixture(scope="module")
def known_fields_prog():
    def body(kb, v):
        outs = []
        for bits, a, b in ((32, v[0], v[1]), (64, v[2], v[3])):
            for p, n in KNOWN_FIELDS[bits]:
                outs += [kb.bfe(kb.mov(a, f"u{bits}"), p, n), kb.bfe(kb.mov(a, f"s{bits}"), p, n),
                         kb.bfi(a, b, p, n, type=f"b{bits}")]
        return outs
    return lane_program("known_fields", ["b32", "b32", "b64", "b64"], body)


def test_bfe_and_bfi_with_a_field_known_when_compiling(known_fields_prog, rng) -> None:
    a, b = random_words(rng, 256), random_words(rng, 256)
    a64, b64 = random_words(rng, 256, 64), random_words(rng, 256, 64)
    outs = iter(known_fields_prog(a, b, a64, b64))
    for bits, x, y in ((32, a, b), (64, a64, b64)):
        for p, n in KNOWN_FIELDS[bits]:
            rows = list(zip(x.tolist(), y.tolist(), strict=True))
            mask = (1 << bits) - 1
            for signed in (False, True):
                want = [bfe_oracle(u, p, n, signed, bits) & mask for u, _ in rows]
                assert next(outs).tolist() == want, (bits, p, n, signed)
            assert next(outs).tolist() == [bfi_oracle(u, w, p, n, bits) for u, w in rows], \
                (bits, p, n)

"""Every ``mma.sync`` form on the CPU backend against an oracle built from the PTX ISA's fragment
formulas and exact arithmetic.

The oracle is the ISA's text (PTX ISA "Warp Level Matrix Multiply-Accumulate Instructions":
"Matrix Fragments for mma.m16n8k8", "... for mma.m16n8k16 with floating point type", "... for
mma.m16n8k32"), transcribed below: each fragment element is placed into A (16×K), B (K×8) and
C (16×8); D = A·B + C is computed exactly (Python integers and fractions), then rounded once to
the accumulator type, nearest even (DESIGN §3), with inf/NaN as IEEE arithmetic gives them and
NaN canonical (0x7fffffff / 0x7fff); integer forms wrap modulo 2^32 (the ISA's integer mma
without ``.satfinite``). Element codes come from ml_dtypes (f16, bf16, e4m3fn, e5m2) and
numpy; a tf32 operand is its f32 pattern with the low 13 bits ignored (the tensor core reads the
high 19 bits; see ``Mma``'s docstring).

One JIT module per form family (f16/bf16, 8-bit integers, fp8, tf32), each running every form of
the family; several random fragment sets per form: wide-range finite values (cancellation,
rounding), subnormal codes, sparse inf/NaN codes, uniformly random codes, and integer extremes.

JIT cost of an mma.sync statement: ``python bench/mma_jit_time.py`` (see the report).
"""

from __future__ import annotations

import math
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest

from tilevm.backend.cpu import compile_kernel
from tilevm.ir.thread import B32, U64, KernelBuilder, vector

# -- the ISA's fragment formulas (groupID = lane >> 2, threadID_in_group = lane % 4) -----------


def a_coord(shape: str, lane: int, i: int) -> tuple[int, int]:
    g, t = lane >> 2, lane % 4
    if shape == "m16n8k8":     # .tf32: a0..a3
        return (g if i in (0, 2) else g + 8), (t if i in (0, 1) else t + 4)
    if shape == "m16n8k16":    # .f16/.bf16: a0..a7
        row = g if (0 <= i < 2 or 4 <= i < 6) else g + 8
        return row, t * 2 + (i & 0x1) + (8 if i >= 4 else 0)
    row = g if (0 <= i < 4 or 8 <= i < 12) else g + 8    # 8-bit: a0..a15
    return row, t * 4 + (i & 0x3) + (16 if i >= 8 else 0)


def b_coord(shape: str, lane: int, i: int) -> tuple[int, int]:
    g, t = lane >> 2, lane % 4
    if shape == "m16n8k8":
        return (t if i == 0 else t + 4), g
    if shape == "m16n8k16":
        return t * 2 + (i & 0x1) + (8 if i >= 2 else 0), g
    return t * 4 + (i & 0x3) + (16 if i >= 4 else 0), g


def c_coord(lane: int, i: int) -> tuple[int, int]:
    g, t = lane >> 2, lane % 4
    return (g if i < 2 else g + 8), t * 2 + (i & 0x1)


K = {"m16n8k8": 8, "m16n8k16": 16, "m16n8k32": 32}
WIDTH = {"tf32": 32, "f16": 16, "bf16": 16, "e4m3": 8, "e5m2": 8, "s8": 8, "u8": 8}
NP_FLOAT = {"f16": np.float16, "bf16": ml_dtypes.bfloat16, "e4m3": ml_dtypes.float8_e4m3fn,
            "e5m2": ml_dtypes.float8_e5m2}
NP_BITS = {8: np.uint8, 16: np.uint16, 32: np.uint32}


def pack(codes: np.ndarray, coord, shape: str, width: int, n_regs: int) -> np.ndarray:
    """[lane][register] u32 words holding matrix ``codes`` (bit patterns) at the ISA's
    coordinates: element i in register i // (32/width), bits (i % (32/width)) * width up."""
    per = 32 // width
    words = np.zeros((32, n_regs), np.uint64)
    for lane in range(32):
        for i in range(n_regs * per):
            code = int(codes[coord(shape, lane, i)]) & ((1 << width) - 1)
            words[lane, i // per] |= code << (width * (i % per))
    return words.astype(np.uint32)


def value(dtype: str, code: int) -> float | int:
    """The exact value of one element code (a float may be inf or NaN)."""
    if dtype == "s8":
        return code - 256 if code >= 128 else code
    if dtype == "u8":
        return code
    if dtype == "tf32":   # the high 19 bits of the f32 pattern
        return float(np.array(code & 0xFFFFE000, np.uint32).view(np.float32))
    width = WIDTH[dtype]
    return float(np.array(code, NP_BITS[width]).view(NP_FLOAT[dtype]))


# -- exact rounding, written from IEEE 754 ---------------------------------------------------

FLOATS = {"f32": (np.float32, np.uint32, 0x7FFFFFFF), "f16": (np.float16, np.uint16, 0x7FFF)}


def round_to(x: Fraction, acc: str) -> int:
    """Bits of ``x`` rounded to nearest even in ``acc`` (f32/f16); overflow gives ±inf (IEEE:
    ``|x| >= max + ulp(max)/2``)."""
    ft, ut, _ = FLOATS[acc]
    largest = float(np.finfo(ft).max)
    ulp = largest - float(np.nextafter(ft(largest), ft(0)))
    top = Fraction(largest) + Fraction(ulp) / 2
    if abs(x) >= top:
        return int(np.array(math.copysign(math.inf, x), ft).view(ut))
    f = ft(float(x))   # within one ulp of x
    best = None
    for cand in (np.nextafter(f, ft(-np.inf)), f, np.nextafter(f, ft(np.inf))):
        if not np.isfinite(cand):
            continue
        d = abs(Fraction(float(cand)) - x)
        bits = int(np.array(cand, ft).view(ut))
        if best is None or d < best[0] or (d == best[0] and bits % 2 == 0):
            best = (d, bits)
    assert best is not None
    return best[1]


def oracle(shape: str, atype: str, btype: str, acc: str, a_codes: np.ndarray,
           b_codes: np.ndarray, c_codes: np.ndarray) -> np.ndarray:
    """D (16×8) bit patterns of one mma.sync: the exact sum of the K products and C, rounded
    once; integers wrapped to 32 bits."""
    k_dim = K[shape]
    a = [[value(atype, int(a_codes[r, k])) for k in range(k_dim)] for r in range(16)]
    b = [[value(btype, int(b_codes[k, n])) for n in range(8)] for k in range(k_dim)]
    d = np.zeros((16, 8), np.uint32)
    for r in range(16):
        for n in range(8):
            if acc == "s32":
                c = int(np.array(c_codes[r, n], np.uint32).view(np.int32))
                total = c + sum(a[r][k] * b[k][n] for k in range(k_dim))
                d[r, n] = total % (1 << 32)
                continue
            c = value("f16", int(c_codes[r, n])) if acc == "f16" else \
                float(np.array(c_codes[r, n], np.uint32).view(np.float32))
            with np.errstate(invalid="ignore"):
                terms = [c] + [float(np.float64(a[r][k]) * np.float64(b[k][n]))
                               for k in range(k_dim)]
                ieee = float(np.sum(np.array(terms, np.float64)))   # inf/NaN: IEEE's answer
            if not all(math.isfinite(x) for x in terms):
                ft, ut, nan = FLOATS[acc]
                d[r, n] = nan if math.isnan(ieee) else int(np.array(ieee, ft).view(ut))
                continue
            exact = sum((Fraction(x) for x in terms), Fraction(0))
            if exact == 0:   # IEEE: -0 only if every addend is -0
                negative = all(x == 0 and math.copysign(1, x) < 0 for x in terms)
                d[r, n] = (0x80000000 if acc == "f32" else 0x8000) if negative else 0
            else:
                d[r, n] = round_to(exact, acc)
    return d


# -- the kernels: one per family, every form of it -------------------------------------------

FAMILIES = {
    "half": [("m16n8k16", "f16", "f16", "f32"), ("m16n8k16", "f16", "f16", "f16"),
             ("m16n8k16", "bf16", "bf16", "f32")],
    "int8": [("m16n8k32", a, b, "s32") for a in ("s8", "u8") for b in ("s8", "u8")],
    "fp8": [("m16n8k32", a, b, "f32") for a in ("e4m3", "e5m2") for b in ("e4m3", "e5m2")],
    "tf32": [("m16n8k8", "tf32", "tf32", "f32")],
}
FORM_BYTES = 2048   # per form: A words at 0, B at 512, C at 768, D at 1280 (32 lanes each)


def family_kernel(name: str):
    kb = KernelBuilder(f"mma_forms_{name}", block_threads=32)
    buf = kb.param("buf", U64, pointer=True)
    lane = kb.sreg("laneid")
    for f, (shape, atype, btype, acc) in enumerate(FAMILIES[name]):
        base = kb.add(buf, f * FORM_BYTES)
        c_type = vector(B32, 2) if acc == "f16" else vector(acc, 4)
        c_bytes = 8 if acc == "f16" else 16
        a = kb.ld("global", kb.add(base, kb.mul(lane, 16, mode="wide")), vector(B32, 4))
        b = kb.ld("global", kb.add(base, kb.mul(lane, 8, mode="wide")), vector(B32, 2),
                  offset=512)
        c = kb.ld("global", kb.add(base, kb.mul(lane, c_bytes, mode="wide")), c_type,
                  offset=768)
        d = kb.mma(shape, atype, a, b, c, btype=btype, ctype=acc)
        kb.st("global", kb.add(base, kb.mul(lane, c_bytes, mode="wide")), d, offset=1280)
    return compile_kernel(kb.finish())


@pytest.fixture(scope="module")
def programs():
    return {}


def program(programs, name):
    if name not in programs:
        programs[name] = family_kernel(name)
    return programs[name]


# -- random fragments ---------------------------------------------------------------------------

def float_codes(rng: np.random.Generator, dtype: str, shape: tuple[int, int], trial: int
                ) -> np.ndarray:
    """Codes of ``dtype``: 0 finite values over a wide range, 1 with subnormal codes, 2 with
    sparse inf/NaN codes, 3 uniformly random codes."""
    width = WIDTH[dtype]
    if trial == 3:
        return rng.integers(0, 1 << width, shape).astype(np.uint64)
    if dtype == "tf32":
        exps = rng.integers(-20, 20, shape) if trial != 1 else rng.integers(-149, -120, shape)
        vals = rng.choice([-1.0, 1.0], shape) * np.ldexp(rng.random(shape) + 0.5, exps)
        codes = vals.astype(np.float32).view(np.uint32).astype(np.uint64)
        codes ^= rng.integers(0, 1 << 13, shape).astype(np.uint64)   # low bits: ignored
    else:
        ft = NP_FLOAT[dtype]
        codes = rng.integers(0, 1 << width, shape).astype(NP_BITS[width])
        with np.errstate(invalid="ignore"):
            good = np.isfinite(codes.view(ft).astype(np.float64))
        top_exponent_bit = 0x4000 if width == 16 else 0x40
        codes = np.where(good, codes, codes & ~np.array(top_exponent_bit, NP_BITS[width]))
        codes = codes.astype(np.uint64)
        if trial == 1:   # exponent field 0: subnormals (and zeros)
            man = {16: 0x83FF if dtype == "f16" else 0x807F, 8: 0x87 if dtype == "e4m3"
                   else 0x83}[width]
            codes = np.where(rng.random(shape) < 0.5, codes & man, codes)
    if trial == 2:
        special = {"f16": [0x7C00, 0xFC00, 0x7E00], "bf16": [0x7F80, 0xFF80, 0x7FC0],
                   "e4m3": [0x7F, 0xFF], "e5m2": [0x7C, 0xFC, 0x7E],
                   "tf32": [0x7F800000, 0xFF800000, 0x7FC00000]}[dtype]
        spots = rng.random(shape) < 0.02
        codes = np.where(spots, rng.choice(special, shape), codes)
    return codes.astype(np.uint64)


def int_codes(rng: np.random.Generator, dtype: str, shape: tuple[int, int], trial: int
              ) -> np.ndarray:
    if trial == 0:
        return rng.integers(0, 256, shape).astype(np.uint64)
    extreme = [0x80, 0x7F, 0xFF] if dtype == "s8" else [0xFF, 0x00, 0x80]
    return rng.choice(extreme, shape).astype(np.uint64)


def acc_codes(rng: np.random.Generator, acc: str, trial: int) -> np.ndarray:
    if acc == "s32":
        if trial == 0:
            return rng.integers(-(2 ** 31), 2 ** 31, (16, 8)).astype(np.int64) & 0xFFFFFFFF
        edge = [2 ** 31 - 1, 2 ** 31 - 2 ** 20, 2 ** 31, 2 ** 31 + 5, 0]   # near ±2^31
        return rng.choice(edge, (16, 8)).astype(np.uint64)
    return float_codes(rng, "tf32" if acc == "f32" else "f16", (16, 8), trial) & (
        0xFFFFFFFF if acc == "f32" else 0xFFFF)


def run_form(prog, family: str, codes) -> list[np.ndarray]:
    """Run every form of ``family`` on its (A, B, C) codes; the D matrices (bit patterns)."""
    buf = np.zeros(len(FAMILIES[family]) * FORM_BYTES // 4, np.uint32)
    for f, ((shape, atype, btype, acc), (a, b, c)) in enumerate(
            zip(FAMILIES[family], codes, strict=True)):
        base = f * FORM_BYTES // 4
        wa, wb = pack(a, a_coord, shape, WIDTH[atype], 4), pack(b, b_coord, shape,
                                                                WIDTH[btype], 2)
        buf[base:base + 128] = wa.ravel()
        buf[base + 128:base + 192] = wb.ravel()
        if acc == "f16":
            wc = pack(c, lambda _s, lane, i: c_coord(lane, i), shape, 16, 2)
            buf[base + 192:base + 256] = wc.ravel()
        else:
            buf[base + 192:base + 320] = np.array(
                [[c[c_coord(lane, i)] for i in range(4)] for lane in range(32)],
                np.uint64).astype(np.uint32).ravel()
    prog(1, buf)
    out = []
    for f, (_, _, _, acc) in enumerate(FAMILIES[family]):
        base = f * FORM_BYTES // 4 + 320
        d = np.zeros((16, 8), np.uint32)
        for lane in range(32):
            for i in range(4):
                if acc == "f16":
                    word = int(buf[base + lane * 2 + i // 2])
                    d[c_coord(lane, i)] = (word >> (16 * (i % 2))) & 0xFFFF
                else:
                    d[c_coord(lane, i)] = buf[base + lane * 4 + i]
        out.append(d)
    return out


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_form_against_the_isa_fragments_and_exact_arithmetic(family, programs) -> None:
    rng = np.random.default_rng(sum(map(ord, family)))
    prog = program(programs, family)
    for trial in range(2 if family == "int8" else 4):
        codes = []
        for shape, atype, btype, acc in FAMILIES[family]:
            make = int_codes if acc == "s32" else float_codes
            codes.append((make(rng, atype, (16, K[shape]), trial),
                          make(rng, btype, (K[shape], 8), trial), acc_codes(rng, acc, trial)))
        got = run_form(prog, family, codes)
        for form, (a, b, c), d in zip(FAMILIES[family], codes, got, strict=True):
            want = oracle(*form, a, b, c)
            bad = np.argwhere(d != want)
            assert not len(bad), (form, trial, bad[:3].tolist(),
                                  [hex(d[tuple(p)]) for p in bad[:3]],
                                  [hex(want[tuple(p)]) for p in bad[:3]])


def test_one_rounding_where_stepwise_f16_accumulation_differs(programs) -> None:
    # f16 accumulator, C = 1 (ulp 2^-10): products 2^-12, 2^-12, 2^-13 added one at a time in
    # f16 are each below half an ulp and lost; their exact sum with C, 1 + 2^-11 + 2^-13, lies
    # above the midpoint 1 + 2^-11 and rounds once to 1 + 2^-10.
    a = np.zeros((16, 16), np.float16)
    b = np.zeros((16, 8), np.float16)
    a[0, 0:3] = [2.0 ** -6, 2.0 ** -6, 2.0 ** -7]
    b[0:3, 0] = [2.0 ** -6, 2.0 ** -6, 2.0 ** -6]
    c = np.zeros((16, 8), np.float16)
    c[0, 0] = 1.0
    codes = [(a.view(np.uint16).astype(np.uint64), b.view(np.uint16).astype(np.uint64),
              np.zeros((16, 8), np.uint64)) for _ in range(3)]
    codes[1] = (codes[1][0], codes[1][1], c.view(np.uint16).astype(np.uint64))
    d = run_form(program(programs, "half"), "half", codes)[1]
    assert d[0, 0] == np.array(1 + 2.0 ** -10, np.float16).view(np.uint16)
    assert d[0, 0] == oracle("m16n8k16", "f16", "f16", "f16", *codes[1])[0, 0]


def test_integer_accumulation_wraps(programs) -> None:
    # s8 x s8: 32 products of (-128)(-128) = 2^19 on top of C = 2^31 - 1 wraps to negative
    a = np.full((16, 32), 0x80, np.uint64)
    b = np.full((32, 8), 0x80, np.uint64)
    c = np.full((16, 8), 2 ** 31 - 1, np.uint64)
    zero = (np.zeros((16, 32), np.uint64), np.zeros((32, 8), np.uint64),
            np.zeros((16, 8), np.uint64))
    d = run_form(program(programs, "int8"), "int8", [(a, b, c), zero, zero, zero])[0]
    assert np.all(d.view(np.int32) == np.int32(2 ** 31 - 1 + 2 ** 19 - 2 ** 32))


def test_tf32_low_bits_are_ignored(programs) -> None:
    # 1 + 2^-10 is a tf32 value; 1 + 2^-10 + 2^-11 (low bits set) reads as 1 + 2^-10 too
    ones = np.float32(1 + 2.0 ** -10).view(np.uint32)
    a = np.full((16, 8), int(ones) | 0x1000, np.uint64)
    b = np.full((8, 8), int(ones) | 0x1FFF, np.uint64)
    d = run_form(program(programs, "tf32"), "tf32", [(a, b, np.zeros((16, 8), np.uint64))])[0]
    exact = 8 * Fraction(1 + 2.0 ** -10) ** 2
    assert np.all(d == round_to(exact, "f32"))

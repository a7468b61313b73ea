"""``mma.sync`` conformance: every form tilevm emits (``MMA_FORMS``), one kernel per family,
four trials of fragments (one block each).

Each form reads its A, B and C fragments per lane from global memory, runs one ``mma.sync`` and
stores D. Trials: 0 finite values over a wide range (cancellation, rounding), 1 half the codes
subnormal, 2 sparse infinities and NaNs, 3 uniformly random codes (integers: random codes,
extremes, accumulators near ±2³¹). Integer forms are exact; float forms are held to the bound of
``docs/numeric-contract.md`` ("``tv.dot``": the GPU's tensor cores against one rounding per
instruction), per element of D:

    (2K + 2)·u·S + Σ_{k: a or b subnormal} |a_k·b_k| + tiny,    S = Σ_k |a_k·b_k| + |c|

with ``u`` the accumulator's unit roundoff and ``tiny`` its smallest normal (one K-chunk per
instruction, n = 1); where S is not finite (an infinite or NaN operand) the bound is 0, so only
the same infinity, or a NaN for a NaN, passes.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from tilevm.conformance.launch import Check, Launch
from tilevm.conformance.rng import random_floats, random_words
from tilevm.ir.thread import B32, U64, KernelBuilder, vector

__all__ = ["FAMILIES", "TRIALS", "a_coord", "b_coord", "c_coord", "element_values",
           "mma_launch"]

FAMILIES: dict[str, list[tuple[str, str, str, str]]] = {  # (shape, atype, btype, ctype)
    "mma_half": [("m16n8k16", "f16", "f16", "f32"), ("m16n8k16", "f16", "f16", "f16"),
                 ("m16n8k16", "bf16", "bf16", "f32")],
    "mma_int8": [("m16n8k32", a, b, "s32") for a in ("s8", "u8") for b in ("s8", "u8")],
    "mma_fp8": [("m16n8k32", a, b, "f32") for a in ("e4m3", "e5m2") for b in ("e4m3", "e5m2")],
    "mma_tf32": [("m16n8k8", "tf32", "tf32", "f32")],
}
TRIALS = 4
K = {"m16n8k8": 8, "m16n8k16": 16, "m16n8k32": 32}
WIDTH = {"tf32": 32, "f16": 16, "bf16": 16, "e4m3": 8, "e5m2": 8, "s8": 8, "u8": 8}
_FLOAT_VIEW = {"f16": np.float16, "bf16": ml_dtypes.bfloat16, "e4m3": ml_dtypes.float8_e4m3fn,
               "e5m2": ml_dtypes.float8_e5m2}
_UINT = {8: np.uint8, 16: np.uint16, 32: np.uint32}
# (unit roundoff, smallest normal) of each accumulator
_ACCUMULATOR = {"f32": (2.0**-24, 2.0**-126), "f16": (2.0**-11, 2.0**-14)}
# Codes of +inf, -inf and a quiet NaN (e4m3 has no infinity: its NaNs, S.1111.111)
_SPECIALS = {"f16": [0x7C00, 0xFC00, 0x7E00], "bf16": [0x7F80, 0xFF80, 0x7FC0],
             "e4m3": [0x7F, 0xFF], "e5m2": [0x7C, 0xFC, 0x7E],
             "tf32": [0x7F800000, 0xFF800000, 0x7FC00000], "f32": [0x7F800000, 0xFF800000,
                                                                    0x7FC00000]}
# Binary exponents of the wide-range finite trial: products and 32-term sums stay finite in
# every accumulator (f16: at most 32·(2·2^3)^2 + 2^10 < 65504).
_EXPONENTS = {"f16": (-7, 3), "bf16": (-20, 20), "e4m3": (-6, 7), "e5m2": (-14, 14),
              "tf32": (-20, 20), "f32": (-10, 10)}


# -- the ISA's fragment coordinates (groupID g = lane >> 2, threadID_in_group t = lane % 4) ----

def a_coord(shape: str, lane: int, i: int) -> tuple[int, int]:
    """(row, column) of A element ``i`` of ``lane`` (PTX ISA "Matrix Fragments for mma.m16n8k8",
    "... m16n8k16 with floating point type", "... m16n8k32")."""
    g, t = lane >> 2, lane % 4
    if shape == "m16n8k8":
        return (g if i in (0, 2) else g + 8), (t if i in (0, 1) else t + 4)
    if shape == "m16n8k16":
        return (g if i in (0, 1, 4, 5) else g + 8), t * 2 + (i & 1) + (8 if i >= 4 else 0)
    return (g if (i < 4 or 8 <= i < 12) else g + 8), t * 4 + (i & 3) + (16 if i >= 8 else 0)


def b_coord(shape: str, lane: int, i: int) -> tuple[int, int]:
    """(row, column) of B element ``i`` of ``lane``."""
    g, t = lane >> 2, lane % 4
    if shape == "m16n8k8":
        return (t if i == 0 else t + 4), g
    if shape == "m16n8k16":
        return t * 2 + (i & 1) + (8 if i >= 2 else 0), g
    return t * 4 + (i & 3) + (16 if i >= 4 else 0), g


def c_coord(lane: int, i: int) -> tuple[int, int]:
    """(row, column) of C/D element ``i`` of ``lane``."""
    g, t = lane >> 2, lane % 4
    return (g if i < 2 else g + 8), t * 2 + (i & 1)


def _pack(codes: np.ndarray, coord, shape: str, width: int, n_regs: int) -> np.ndarray:
    """[lane][register] words holding the matrix of codes at the fragment's coordinates
    (``coord(shape, lane, i)``)."""
    per = 32 // width
    words = np.zeros((32, n_regs), np.uint64)
    for lane in range(32):
        for i in range(n_regs * per):
            code = int(codes[coord(shape, lane, i)])
            words[lane, i // per] |= np.uint64(code << (width * (i % per)))
    return words.astype(np.uint32)


def element_values(dtype: str, codes: np.ndarray) -> np.ndarray:
    """The float64 values of element codes (tf32: the f32 pattern's high 19 bits)."""
    codes = np.asarray(codes, np.uint64)
    with np.errstate(invalid="ignore"):  # widening a signalling NaN raises "invalid"
        return _values(dtype, codes)


def _values(dtype: str, codes: np.ndarray) -> np.ndarray:
    if dtype == "s8":
        return codes.astype(np.uint8).view(np.int8).astype(np.float64)
    if dtype == "u8":
        return codes.astype(np.float64)
    if dtype in ("tf32", "f32"):
        mask = 0xFFFFE000 if dtype == "tf32" else 0xFFFFFFFF
        return (codes & np.uint64(mask)).astype(np.uint32).view(np.float32).astype(np.float64)
    return codes.astype(_UINT[WIDTH[dtype]]).view(_FLOAT_VIEW[dtype]).astype(np.float64)


def _subnormal(dtype: str, codes: np.ndarray) -> np.ndarray:
    if dtype in ("s8", "u8"):
        return np.zeros(codes.shape, bool)
    v = np.abs(element_values(dtype, codes))
    smallest_normal = {"f16": 2.0**-14, "bf16": 2.0**-126, "e4m3": 2.0**-6, "e5m2": 2.0**-14,
                       "tf32": 2.0**-126}[dtype]
    return (v > 0) & (v < smallest_normal)


def _encode(dtype: str, values: np.ndarray) -> np.ndarray:
    if dtype in ("tf32", "f32"):
        return values.astype(np.float32).view(np.uint32).astype(np.uint64)
    return values.astype(_FLOAT_VIEW[dtype]).view(_UINT[WIDTH[dtype]]).astype(np.uint64)


def float_codes(seed: int, dtype: str, shape: tuple[int, int], trial: int) -> np.ndarray:
    """Element codes of a float operand or accumulator for ``trial`` (module docstring)."""
    width = WIDTH.get(dtype, 32)
    if trial == 3:
        return random_words(seed, shape, width)
    lo, hi = _EXPONENTS[dtype]
    exponents = lo + (random_words(seed, shape, 16) % np.uint64(hi - lo + 1)).astype(np.int64)
    signs = np.where(random_words(seed + 1, shape, 1) == 1, -1.0, 1.0)
    values = signs * np.ldexp(1 + random_floats(seed + 2, shape), exponents)
    codes = _encode(dtype, values)
    if dtype == "tf32":  # the low 13 bits are ignored by the tensor cores: make them noise
        codes |= random_words(seed + 3, shape, 13)
    if trial == 1:  # half the codes: keep sign and low mantissa bits only -> subnormal or zero
        keep = {"f16": 0x83FF, "bf16": 0x807F, "e4m3": 0x87, "e5m2": 0x83,
                "tf32": 0x807FFFFF, "f32": 0x807FFFFF}[dtype]
        half = random_words(seed + 4, shape, 1) == 1
        codes = np.where(half, codes & np.uint64(keep), codes)
    if trial == 2:
        spots = random_words(seed + 5, shape, 16) < np.uint64(0.01 * 65536)
        specials = np.array(_SPECIALS[dtype], np.uint64)
        pick = specials[random_words(seed + 6, shape, 16) % np.uint64(len(specials))]
        codes = np.where(spots, pick, codes)
    return codes


def int_codes(seed: int, dtype: str, shape: tuple[int, int], trial: int) -> np.ndarray:
    """Codes of an 8-bit integer operand: random (trials 0, 2) or extremes (1, 3)."""
    if trial in (0, 2):
        return random_words(seed, shape, 8)
    extremes = np.array([0x80, 0x7F, 0xFF] if dtype == "s8" else [0xFF, 0x00, 0x80], np.uint64)
    return extremes[random_words(seed, shape, 16) % np.uint64(3)]


def acc_codes(seed: int, ctype: str, trial: int) -> np.ndarray:
    """Codes of the 16x8 accumulator C."""
    if ctype == "s32":
        if trial in (0, 3):
            return random_words(seed, (16, 8), 32)
        edges = np.array([2**31 - 1, 2**31 - 2**20, 2**31, 2**31 + 5, 0], np.uint64)
        return edges[random_words(seed, (16, 8), 16) % np.uint64(len(edges))]
    return float_codes(seed, ctype, (16, 8), trial)


def _bound(form: tuple[str, str, str, str], a: np.ndarray, b: np.ndarray,
           c: np.ndarray) -> np.ndarray:
    """The 16x8 matrix of bounds (module docstring) for codes ``a`` (16xK), ``b`` (Kx8),
    ``c`` (16x8)."""
    shape, atype, btype, ctype = form
    u, tiny = _ACCUMULATOR[ctype]
    av, bv = np.abs(element_values(atype, a)), np.abs(element_values(btype, b))
    cv = np.abs(element_values(ctype, c))
    with np.errstate(invalid="ignore", over="ignore"):
        products = av[:, :, None] * bv[None, :, :]  # [row, k, column]
        subnormal = _subnormal(atype, a)[:, :, None] | _subnormal(btype, b)[None, :, :]
        s = products.sum(axis=1) + cv
        flushed = np.where(subnormal, products, 0.0).sum(axis=1)
        bound = (2 * K[shape] + 2) * u * s + flushed + tiny
    return np.where(np.isfinite(bound), bound, 0.0)


def _family_launch(family: str, seed: int) -> Launch:
    """One kernel running every form of ``family`` on ``TRIALS`` blocks of fragments."""
    forms = FAMILIES[family]
    kb = KernelBuilder(f"conformance_{family}", block_threads=32)
    params = {f"{part}{f}": kb.param(f"{part}{f}", U64, pointer=True)
              for f in range(len(forms)) for part in "abcd"}
    lane = kb.sreg("laneid")
    trial = kb.sreg("ctaid.x")
    thread = kb.mad(trial, 32, lane)  # one block per trial
    for f, (shape, atype, btype, ctype) in enumerate(forms):
        c_type = vector(B32, 2) if ctype == "f16" else vector(ctype, 4)
        c_bytes = 8 if ctype == "f16" else 16
        a = kb.ld("global", kb.add(params[f"a{f}"], kb.mul(thread, 16, mode="wide")),
                  vector(B32, 4))
        b = kb.ld("global", kb.add(params[f"b{f}"], kb.mul(thread, 8, mode="wide")),
                  vector(B32, 2))
        c = kb.ld("global", kb.add(params[f"c{f}"], kb.mul(thread, c_bytes, mode="wide")), c_type)
        d = kb.mma(shape, atype, a, b, c, btype=btype, ctype=ctype)
        kb.st("global", kb.add(params[f"d{f}"], kb.mul(thread, c_bytes, mode="wide")), d)
    kernel = kb.finish()

    buffers: dict[str, np.ndarray] = {}
    checks: dict[str, Check] = {}
    bounds: dict[str, np.ndarray] = {}
    for f, form in enumerate(forms):
        shape, atype, btype, ctype = form
        k = K[shape]
        words = {"a": [], "b": [], "c": []}
        bound_rows = []
        for t in range(TRIALS):
            s = seed + 100 * f + 10 * t
            make = int_codes if ctype == "s32" else float_codes
            a, b = make(s, atype, (16, k), t), make(s + 7, btype, (k, 8), t)
            c = acc_codes(s + 5, ctype, t)
            words["a"].append(_pack(a, a_coord, shape, WIDTH[atype], 4))
            words["b"].append(_pack(b, b_coord, shape, WIDTH[btype], 2))
            if ctype == "f16":
                words["c"].append(_pack(c, lambda _shape, lane, i: c_coord(lane, i), shape, 16, 2))
            else:
                words["c"].append(np.array([[c[c_coord(lane, i)] for i in range(4)]
                                            for lane in range(32)], np.uint64).astype(np.uint32))
            if ctype != "s32":
                matrix = _bound(form, a, b, c)
                bound_rows.append([[matrix[c_coord(lane, i)] for i in range(4)]
                                   for lane in range(32)])
        for part in "abc":
            buffers[f"{part}{f}"] = np.stack(words[part])
        d_words = 2 if ctype == "f16" else 4
        buffers[f"d{f}"] = np.zeros((TRIALS, 32, d_words), np.uint32)
        element = {"s32": "s32", "f16": "f16", "f32": "f32"}[ctype]
        checks[f"d{f}"] = Check("exact" if ctype == "s32" else "bound", element)
        if bound_rows:
            bounds[f"d{f}"] = np.array(bound_rows, np.float64).reshape(-1)
    names = ", ".join(f"{a}x{b}->{c}" for _, a, b, c in forms)
    return Launch(
        name=f"conformance_{family}", family="mma",
        description=f"mma.sync {forms[0][0]}: {names}; {TRIALS} trials (finite, subnormal, "
                    "inf/NaN, random codes)",
        kernel=kernel, grid=(TRIALS, 1, 1), args=tuple(params), buffers=buffers, checks=checks,
        bounds=(lambda outputs: bounds) if bounds else None)


def mma_launch(family: str) -> Launch:
    """The launch of ``family`` (a key of :data:`FAMILIES`), with its fixed seed."""
    return _family_launch(family, seed=1000 * (list(FAMILIES).index(family) + 1))

"""Arithmetic: ``fma.rn.bf16x2`` (with ``fma.rn.f16x2`` and sm_90's ``mul.rn.bf16x2``) on
subnormal inputs and results, exact; and the ``.approx`` instructions on the GPU held to the PTX
ISA's error bounds around the CPU's exactly rounded value.

``.approx`` bound, per element (``want`` the CPU's result, ``ulp`` its f32 unit in the last
place, ``APPROX_ERROR_BOUNDS`` the ISA's table quoted in the Thread IR): an ``ulp`` guarantee of
``b`` ulps gives ``(b + ½)·ulp``; a ``relative`` one ``r·|want|·(1 + r) + ½ulp``; an
``absolute`` one ``a + ½ulp`` (the ½ulp: the CPU's own rounding of the exact value); plus
``2⁻¹²⁶`` with ``.ftz`` (a result near the smallest normal may be flushed on one side only) or
``2⁻¹⁴⁹`` without. Inputs outside every stated domain (``sin``/``cos`` beyond 100π) get an
infinite bound; a NaN ``want``, any ``want`` of an infinite or NaN input and the infinity of a
zero input get 0 (the special value itself must come out). Other inputs whose exact value
overflows take the bound at the largest finite value, so that the overflow rule of ``compare``
applies.
"""

from __future__ import annotations

import math

import numpy as np

from tilevm.conformance.launch import Check, Launch
from tilevm.conformance.rng import random_floats, random_words
from tilevm.ir.thread import B32, F32, U64, KernelBuilder
from tilevm.ir.thread.intrinsics.arith import APPROX_ERROR_BOUNDS

__all__ = ["APPROX_OPS", "HALF_OPS", "approx_bound", "approx_launch", "half_arith_launch"]

# -- fma / mul on packed halves ------------------------------------------------------------------

HALF_OPS = [("fma", "bf16x2"), ("fma", "f16x2"), ("mul", "bf16x2")]
_HALF_THREADS = 64
_HALF_BLOCKS = 4
# (exponent bias, mantissa bits, smallest normal exponent, largest exponent) per half type
_HALF_FORMAT = {"bf16": (127, 7, -126, 127), "f16": (15, 10, -14, 15)}


def _half_codes(seed: int, half: str, category: np.ndarray) -> tuple[np.ndarray, ...]:
    """16-bit codes of a, b, c per element. Categories: 0 a subnormal, b normal, c subnormal or
    zero; 1 normal a, b whose product is subnormal (or underflows), c zero or subnormal; 2 c
    subnormal with a·b of the same scale (cancellation); 3 uniformly random codes."""
    bias, mbits, emin, emax = _HALF_FORMAT[half]
    n = category.size

    def word(s: int, bits: int) -> np.ndarray:
        return random_words(seed + s, n, bits).astype(np.int64)

    def normal(exponent: np.ndarray, s: int) -> np.ndarray:
        e = np.clip(exponent, emin, emax) + bias
        return (word(s, 1) << 15) | (e << mbits) | word(s + 1, mbits)

    def subnormal(s: int) -> np.ndarray:
        return (word(s, 1) << 15) | np.maximum(word(s + 1, mbits), 1)

    span = emax - emin
    target = emin - mbits - 1 + word(10, 8) % (mbits + 4)        # product below the normals
    ea = emin // 2 + word(11, 8) % 8
    a = np.select([category == 0, category == 1, category == 2],
                  [subnormal(20), normal(ea, 22), normal(emin // 2 + word(12, 4), 24)],
                  word(26, 16))
    b = np.select([category == 0, category == 1, category == 2],
                  [normal(word(13, 8) % (span // 2), 30), normal(target - ea, 32),
                   normal(emin // 2 - word(14, 4), 34)],
                  word(36, 16))
    zero_or_sub = np.where(word(15, 1) == 1, subnormal(40), 0)
    c = np.select([category == 0, category == 1, category == 2],
                  [zero_or_sub, zero_or_sub, subnormal(42)], word(46, 16))
    return a, b, c


def half_arith_launch(seed: int = 7300) -> Launch:
    """Every thread computes each of :data:`HALF_OPS` on its packed ``a``, ``b``, ``c`` words
    (two halves each, of the four categories of :func:`_half_codes`) into ``out_<op>_<type>``."""
    kb = KernelBuilder("conformance_half_arith", block_threads=_HALF_THREADS)
    names = [f"{part}_{half}" for half in ("bf16", "f16") for part in "abc"]
    outs = [f"out_{op}_{packed}" for op, packed in HALF_OPS]
    params = {n: kb.param(n, U64, pointer=True) for n in (*names, *outs)}
    thread = kb.mad(kb.sreg("ctaid.x"), _HALF_THREADS, kb.sreg("tid.x"))
    at = kb.mul(thread, 4, mode="wide")
    for (op, packed), out in zip(HALF_OPS, outs, strict=True):
        half = packed[:-2]
        a, b, c = (kb.mov(kb.ld("global", kb.add(params[f"{p}_{half}"], at), B32), packed)
                   for p in "abc")
        got = kb.fma(a, b, c) if op == "fma" else kb.mul(a, b)
        kb.st("global", kb.add(params[out], at), kb.mov(got, B32))
    kernel = kb.finish()
    total = _HALF_THREADS * _HALF_BLOCKS
    buffers: dict[str, np.ndarray] = {}
    category = np.arange(2 * total) % 4  # two halves per word
    for h, half in enumerate(("bf16", "f16")):
        for part, codes in zip("abc", _half_codes(seed + 100 * h, half, category), strict=True):
            buffers[f"{part}_{half}"] = (codes & 0xFFFF).astype(np.uint16).view(np.uint32)
    for out in outs:
        buffers[out] = np.zeros(total, np.uint32)
    return Launch(
        name="conformance_half_arith", family="arith",
        description="fma.rn.bf16x2, fma.rn.f16x2 and mul.rn.bf16x2 (sm_90) on subnormal inputs, "
                    "products that underflow, cancellation and random codes",
        kernel=kernel, grid=(_HALF_BLOCKS, 1, 1), args=(*names, *outs), buffers=buffers,
        checks={out: Check("exact", packed[:-2])
                for (_, packed), out in zip(HALF_OPS, outs, strict=True)})


# -- .approx --------------------------------------------------------------------------------------

APPROX_OPS: list[tuple[str, bool]] = [(op, ftz) for op in ("ex2", "lg2", "sin", "cos", "rsqrt",
                                                             "rcp") for ftz in (False, True)]
APPROX_OPS.append(("tanh", False))
_APPROX_THREADS = 128
_APPROX_BLOCKS = 2
_SPECIAL_INPUTS = [0.0, -0.0, math.inf, -math.inf, math.nan, 2.0**-149, -(2.0**-140), 2.0**-127,
                   1.0, -1.0, 2.0, 0.5]


def _approx_inputs(seed: int, op: str, n: int) -> np.ndarray:
    """f32 inputs of ``op``: its guaranteed domain, densely where the ISA states a tighter bound,
    plus the special values and subnormals."""
    u = random_floats(seed, n)
    sign = np.where(random_words(seed + 1, n, 1) == 1, -1.0, 1.0)
    magnitude = np.ldexp(1 + random_floats(seed + 2, n),
                         (random_words(seed + 3, n, 16) % 254).astype(np.int64) - 126)
    if op == "ex2":
        x = np.where(u < 0.5, (u - 0.25) * 40, 280 * u - 152)  # |x| <= 10, and -152..128
    elif op == "lg2":
        x = np.where(u < 0.5, 0.5 + 3 * u, magnitude)  # (0.5, 2) and every binade
    elif op in ("sin", "cos"):
        x = np.where(u < 0.5, (4 * u - 1) * 2 * math.pi, (2 * u - 1.5) * 200 * math.pi)
        x = np.clip(x, -100 * math.pi, 100 * math.pi)
    elif op == "tanh":
        x = sign * np.where(u < 0.5, 20 * u, magnitude * 2.0**-100)
    else:  # rsqrt, rcp
        x = (sign if op == "rcp" else 1.0) * magnitude
    x = x.astype(np.float32)
    x[: len(_SPECIAL_INPUTS)] = _SPECIAL_INPUTS
    return x


def _ulp(y: np.ndarray) -> np.ndarray:
    """The f32 unit in the last place at each finite |y| (2⁻¹⁴⁹ in the subnormal range)."""
    with np.errstate(divide="ignore"):
        exponent = np.floor(np.log2(np.abs(y)))
    return np.ldexp(1.0, np.maximum(np.where(np.isfinite(exponent), exponent, -149), -126)
                    .astype(np.int64) - 23)


def approx_bound(op: str, ftz: bool, x: np.ndarray, want: np.ndarray) -> np.ndarray:
    """The bound of the module's docstring for ``op.approx{.ftz}.f32`` at f32 inputs ``x``, the
    CPU's results being ``want``."""
    x64, w = np.asarray(x, np.float64), np.asarray(want, np.float64)
    largest = float(np.finfo(np.float32).max)
    at = np.where(np.isinf(w) & np.isfinite(x64), largest, w)  # overflow: bound at the max
    mnemonic = f"{op}.approx{'.ftz' if ftz else ''}.f32"
    ulp = _ulp(at)
    bound = np.full(x64.shape, np.inf)
    for b in APPROX_ERROR_BOUNDS[mnemonic]:
        if b.kind == "ulp":
            here, value = np.ones(x64.shape, bool), (b.bound + 0.5) * ulp
        elif b.kind == "relative":
            here = np.ones(x64.shape, bool) if "(0.5, 2)" not in b.domain else (
                (x64 <= 0.5) | (x64 >= 2))
            value = b.bound * np.abs(at) * (1 + b.bound) + 0.5 * ulp
        else:
            here = {"inputs in (0.5, 2)": (x64 > 0.5) & (x64 < 2),
                    "inputs in [-2pi .. 2pi]": np.abs(x64) <= 2 * math.pi,
                    "inputs in [-100pi .. +100pi]": np.abs(x64) <= 100 * math.pi}[b.domain]
            value = b.bound + 0.5 * ulp
        bound = np.where(here, np.minimum(bound, value), bound)
    bound = bound + (2.0**-126 if ftz else 2.0**-149)
    # an infinite or NaN input, a NaN result, and the infinity of a zero input (flushed with
    # .ftz: lg2 -> -inf, rcp and rsqrt -> ±inf) are special values the GPU must give exactly
    zero = (x64 == 0) | (ftz & (np.abs(x64) < 2.0**-126))
    special = ~np.isfinite(x64) | np.isnan(w) | (zero & np.isinf(w))
    return np.where(special, 0.0, bound)


def approx_launch(seed: int = 7400) -> Launch:
    """Each thread applies every :data:`APPROX_OPS` entry to its input of that function
    (``x_<op>``, see :func:`_approx_inputs`); ``out[entry, thread]`` (f32)."""
    kb = KernelBuilder("conformance_approx", block_threads=_APPROX_THREADS)
    ops = list(dict.fromkeys(op for op, _ in APPROX_OPS))
    params = {n: kb.param(n, U64, pointer=True) for n in (*(f"x_{op}" for op in ops), "out")}
    thread = kb.mad(kb.sreg("ctaid.x"), _APPROX_THREADS, kb.sreg("tid.x"))
    at = kb.mul(thread, 4, mode="wide")
    total = _APPROX_THREADS * _APPROX_BLOCKS
    inputs = {op: kb.ld("global", kb.add(params[f"x_{op}"], at), F32) for op in ops}
    for k, (op, ftz) in enumerate(APPROX_OPS):
        got = getattr(kb, op)(inputs[op], ftz=ftz) if op != "tanh" else kb.tanh(inputs[op])
        kb.st("global", kb.add(kb.add(params["out"], at), k * total * 4), got)
    kernel = kb.finish()
    buffers = {f"x_{op}": _approx_inputs(seed + 10 * i, op, total) for i, op in enumerate(ops)}
    buffers["out"] = np.zeros((len(APPROX_OPS), total), np.float32)

    def bounds(outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = [approx_bound(op, ftz, buffers[f"x_{op}"], outputs["out"][k])
                for k, (op, ftz) in enumerate(APPROX_OPS)]
        return {"out": np.stack(rows).reshape(-1)}

    return Launch(
        name="conformance_approx", family="arith",
        description="ex2, lg2, sin, cos, rsqrt, rcp (.approx, with and without .ftz) and "
                    "tanh.approx.f32 over their domains, special values and subnormals",
        kernel=kernel, grid=(_APPROX_BLOCKS, 1, 1), args=(*params,), buffers=buffers,
        checks={"out": Check("bound", "f32")}, bounds=bounds)

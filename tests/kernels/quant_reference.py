"""Independent references for the quantized linear layer's tests: decoding of weight codes from
their bit fields (no tilevm), unpacking of LSB-first packed bytes, the quantization schemes of
``tilevm/kernels/quantize.py`` in numpy float32, and the accuracy rule of examples/accuracy.py.

Nothing here calls tilevm: the expected values come from the formats' definitions."""

from __future__ import annotations

import re

import ml_dtypes
import numpy as np

FLOAT_FORMAT = re.compile(r"f(\d)e(\d)m(\d)")


def bits_of(name: str) -> int:
    return int(FLOAT_FORMAT.match(name).group(1)) if name.startswith("f") else int(name[1:])


def is_float(name: str) -> bool:
    return name.startswith("f")


def code_values(name: str) -> np.ndarray:
    """The value of every code of a weight type (float64; NaN for NaN/inf codes)."""
    bits = bits_of(name)
    codes = np.arange(1 << bits)
    if name.startswith("u"):
        return codes.astype(np.float64)
    if name.startswith("i"):
        return np.where(codes >= 1 << (bits - 1), codes - (1 << bits), codes).astype(np.float64)
    _, e, m = (int(g) for g in FLOAT_FORMAT.match(name).groups())
    bias = 2 ** (e - 1) - 1
    sign = np.where(codes >> (e + m) & 1, -1.0, 1.0)
    exponent, mantissa = codes >> m & ((1 << e) - 1), codes & ((1 << m) - 1)
    magnitude = np.where(exponent == 0, mantissa * 2.0 ** (1 - bias - m),
                         (1 + mantissa / 2.0**m) * 2.0 ** (exponent - bias))
    values = sign * magnitude
    if name == "f8e4m3fn":  # S.1111.111 is NaN
        values[(exponent == 15) & (mantissa == 7)] = np.nan
    if name == "f8e5m2":  # IEEE: the top exponent is inf and NaN
        values[exponent == 31] = np.nan
    return values


def implicit_zero(name: str) -> float:
    return float(2 ** (bits_of(name) - 1)) if name.startswith("u") else 0.0


def unpack(data: np.ndarray, bits: int, shape: tuple[int, int]) -> np.ndarray:
    """Codes (int64, ``shape``) from densely packed LSB-first bytes."""
    count = shape[0] * shape[1]
    flat = np.unpackbits(np.asarray(data, np.uint8).reshape(-1), bitorder="little")
    fields = flat[:count * bits].reshape(count, bits).astype(np.int64)
    return (fields @ (1 << np.arange(bits, dtype=np.int64))).reshape(shape)


def act_round(values: np.ndarray, act: str) -> np.ndarray:
    """Round float32 values to f16 or bf16 (to nearest even)."""
    target = np.float16 if act == "f16" else ml_dtypes.bfloat16
    return np.asarray(values, np.float32).astype(target)


def nearest_float_codes(values: np.ndarray, name: str) -> np.ndarray:
    """Round float values to the nearest code of a float type, ties to the even code,
    saturating at the largest finite value."""
    table = code_values(name)
    finite = np.flatnonzero(np.isfinite(table))
    distance = np.abs(values.astype(np.float64)[..., None] - table[finite])
    best = distance.min(axis=-1, keepdims=True)
    ties = distance == best
    # Among the nearest, prefer an even code; any of them when none is even (only ±0 tie).
    even = ties & (finite % 2 == 0)
    pick = np.where(even.any(axis=-1, keepdims=True), even, ties)
    return finite[np.argmax(pick, axis=-1)]


def block_scales(amax: np.ndarray, name: str, scale_type: str) -> np.ndarray:
    """The block-scaled formats' scales of groups whose largest magnitude is ``amax`` (float32):
    OCP MX (``"e8m0"``): ``2^(⌊log2 amax⌋ − emax)``, emax the exponent of the element type's
    largest value, the e8m0 code clamped to [0, 254] (an all-zero group: the smallest scale);
    NVFP4 (``"e4m3"``): ``amax / 6`` rounded to e4m3, saturating. Returns float32 values."""
    if scale_type == "e8m0":
        emax = int(np.floor(np.log2(np.nanmax(code_values(name)))))
        _, exponent = np.frexp(amax.astype(np.float64))  # amax = f · 2^exponent, f in [0.5, 1)
        code = np.where(amax > 0, exponent - 1 + 127 - emax, 0)
        code = np.clip(code, 0, 254)
        return (2.0 ** (code - 127)).astype(np.float32)
    largest = np.float32(np.nanmax(code_values(name)))
    e4m3_max = np.float32(448)
    return np.minimum(amax / largest, e4m3_max).astype(ml_dtypes.float8_e4m3fn).astype(
        np.float32)


def quantize_reference(weight: np.ndarray, name: str, group: int, zero_point: bool,
                       act: str, scale_type: str | None = None,
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The scheme of tilevm/kernels/quantize.py in numpy float32: returns codes (n × kp), scales
    (n × groups, act dtype; float32 values of a block scale type) and zero codes (n × groups)
    or None. ``group=0``: per row."""
    bits = bits_of(name)
    n, k = weight.shape
    unit = max(group, 32)
    kp = -(-k // unit) * unit
    padded = np.zeros((n, kp), np.float32)
    padded[:, :k] = weight
    length = group or kp
    blocks = padded.reshape(n, kp // length, length)
    hi = np.maximum(blocks.max(axis=2), np.float32(0))
    lo = np.minimum(blocks.min(axis=2), np.float32(0))
    values = code_values(name)
    if is_float(name):
        levels = np.float32(np.nanmax(values))
    elif zero_point:
        levels = np.float32(2**bits - 1)
    else:
        levels = np.float32(max(2 ** (bits - 1) - 1, 1))
    span = (hi - lo) if zero_point else np.maximum(hi, -lo)
    if scale_type is not None:
        scales = block_scales(span, name, scale_type)
    else:
        scales = act_round(span / levels, act)
    divisor = scales.astype(np.float32)
    divisor = np.where(divisor == 0, np.float32(1), divisor)[:, :, None]
    quotient = (blocks / divisor).astype(np.float32)
    zero_codes = None
    if is_float(name):
        codes = nearest_float_codes(quotient, name)
    else:
        code_min = 0.0 if name.startswith("u") else -(2.0 ** (bits - 1))
        code_max = code_min + 2.0**bits - 1
        if zero_point:
            offset = np.clip(np.rint(-lo / divisor[:, :, 0]) + code_min, code_min, code_max)
            zero_codes = (offset.astype(np.int64) % (1 << bits))
            offset = offset[:, :, None]
        else:
            offset = implicit_zero(name)
        codes = np.clip(np.rint(quotient) + offset, code_min, code_max).astype(np.int64)
        codes %= 1 << bits  # two's complement bit patterns
    return codes.reshape(n, kp), scales, zero_codes


def dequantize_reference(codes: np.ndarray, scales: np.ndarray, zero_codes: np.ndarray | None,
                         name: str, group: int, k: int) -> np.ndarray:
    """``(value − zero) · scale`` in float64, the first k columns."""
    values = code_values(name)
    kp = codes.shape[1]
    length = group or kp
    zeros = (values[zero_codes] if zero_codes is not None
             else np.full(scales.shape, implicit_zero(name)))
    w = (values[codes] - np.repeat(zeros, length, axis=1)) * np.repeat(
        scales.astype(np.float64), length, axis=1)
    return w[:, :k]


def accuracy_bound(ref: np.ndarray, base: np.ndarray, act: str) -> float:
    """The accuracy rule's bound, ``2·max|base − ref| + u·max|ref|`` (u of the output type)."""
    u = 2.0**-11 if act == "f16" else 2.0**-8
    return 2 * float(np.max(np.abs(np.asarray(base, np.float64) - ref), initial=0.0)) + u * float(
        np.max(np.abs(ref), initial=0.0))


def linear_references(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None,
                      act: str) -> tuple[np.ndarray, np.ndarray]:
    """``ref``: x · wᵀ + bias in float64 from the exact dequantized weights; ``base``: the same
    with the weights rounded to the activation type, f32 accumulation, rounded to ``act``."""
    x64 = np.asarray(x, np.float64)
    ref = x64 @ w.T
    w_act = act_round(w.astype(np.float32), act).astype(np.float32)
    acc = np.asarray(x, np.float32) @ w_act.T
    if bias is not None:
        ref = ref + np.asarray(bias, np.float64)
        acc = acc + np.asarray(bias, np.float32)
    return ref, act_round(acc, act)

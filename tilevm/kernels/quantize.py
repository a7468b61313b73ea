"""Weight quantization, a tile kernel: float weights (n × k) into codes of a 1- to 8-bit type,
per-group scales and optional zero points — the operands of :mod:`tilevm.kernels.quant_linear`.

Each block quantizes ``bn`` rows, one group at a time (a group is ``group`` consecutive columns,
or the whole row when ``group=0``): a first pass over the group finds its largest and smallest
weight, a second divides by the scale and rounds to nearest into the weight type. K is padded
with zero weights up to ``kp`` columns (whole groups, a multiple of 32 so that packed rows start
on byte boundaries); padded columns quantize to the code of zero.

Schemes (``s`` is rounded to the activation type ``A`` first, and the codes are computed from
the rounded scale, so that ``(q − z) · s`` is what the kernel multiplies by):

- floats (``absmax``): ``s = max|w| / max(W)``, ``q = cast(w / s, W)`` (round to nearest even,
  saturating);
- integers without zero points (``absmax``): ``s = max|w| / L`` with ``L = 2^(bits−1) − 1``
  (1 for ``u1``), ``q = sat(rint(w / s) + z₀)``, ``z₀`` the implicit zero point (``2^(bits−1)``
  for unsigned types, 0 for signed);
- integers with zero points (``minmax``): over ``[lo, hi] = [min(w, 0), max(w, 0)]``,
  ``s = (hi − lo) / (2^bits − 1)``, ``z = sat(rint(−lo / s) + min(W))``,
  ``q = sat(rint(w / s) + z)``.

``sat`` saturates into W's range; a scale that rounds to zero (an all-zero group) divides as 1.
Arithmetic is in f32: ``/`` and ``rint`` round once, as numpy's float32 does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import tilevm as tv
from tilevm import f32, i32, u8

from .quant_linear import (
    BLOCK_SCALES,
    activation_dtype,
    check_block_format,
    implicit_zero,
    weight_dtype,
)

__all__ = ["QuantizedWeights", "dequantized", "padded_k", "quantize_kernel", "quantize_weights"]

A = tv.Dtype("A")  # the scales' type: the activation type, or a block scale type
W = tv.Dtype("W")


@tv.kernel
def quantize_kernel(w: tv.Global[f32, "n", "k"], q: tv.Global[W, "n", "kp"],
                    scales: tv.Global[A, "n", "groups"],
                    zeros: tv.Global[W, "zero_rows", "zero_groups"],
                    *, group: tv.Const, is_float: tv.Const, has_zeros: tv.Const,
                    levels: tv.Const, zero: tv.Const, code_min: tv.Const,
                    mx_emax: tv.Const = None, bn: tv.Const = 16, bk: tv.Const = 32,
                    warps: tv.Const = 4):
    """Quantize ``w`` into ``q``, ``scales`` (and ``zeros`` when ``has_zeros``). ``levels``
    divides the range (max(W) for floats); ``zero`` is the implicit zero point, ``code_min``
    the smallest code of an integer type. ``mx_emax`` (MX formats: the exponent of W's
    largest power of two) makes each scale the power of two ``2^(⌊log2 max|w|⌋ − mx_emax)``,
    an ``f8e8m0fnu``. ``bk`` divides ``group`` and ``kp``."""
    tv.launch(grid=tv.cdiv(n, bn), warps=warps)
    j = tv.block_idx()
    length = group if group else kp  # the columns of one group
    for g in tv.range(0, groups):
        start = g * length
        hi = tv.zeros((bn, 1), f32)  # zero is in every range
        lo = tv.zeros((bn, 1), f32)
        for c in tv.range(0, length, bk):
            t = tv.load(w, (j * bn, start + c), (bn, bk))  # columns past k read 0
            hi = tv.maximum(hi, tv.max(t, axis=1, keepdims=True))
            lo = tv.minimum(lo, tv.min(t, axis=1, keepdims=True))
        if mx_emax is not None:
            # The exponent field of max|w| (0 for zero and subnormals) is ⌊log2 max|w|⌋ + 127,
            # so this is the e8m0 code of the OCP MX shared scale, clamped to its range.
            field = (tv.bitcast(tv.maximum(hi, -lo), i32) >> 23) & 255
            code = tv.minimum(tv.maximum(field - mx_emax, 0), 254)
            scale = tv.bitcast(tv.cast(code, u8), A)
        elif has_zeros:
            scale = tv.cast((hi - lo) / levels, A)
        else:
            scale = tv.cast(tv.maximum(hi, -lo) / levels, A)
        tv.store(scales, scale, (j * bn, g))
        divisor = tv.cast(scale, f32)
        divisor = tv.where(divisor == 0.0, 1.0, divisor)
        offset = tv.full((bn, 1), zero, f32)
        if has_zeros:
            # rint(−lo / s) + min(W), saturated into W's range (the cast is exact after it).
            offset = tv.minimum(tv.maximum(tv.rint(-lo / divisor) + code_min, code_min),
                                code_min + levels)
            tv.store(zeros, tv.cast(offset, W), (j * bn, g))
        for c in tv.range(0, length, bk):
            t = tv.load(w, (j * bn, start + c), (bn, bk))
            if is_float:
                codes = tv.cast(t / divisor, W)  # round to nearest even, saturating
            else:
                codes = tv.cast(tv.rint(t / divisor) + offset, W)  # saturating
            tv.store(q, codes, (j * bn, start + c))


def padded_k(k: int, group_size: int) -> int:
    """The columns of prepared weights: k rounded up to whole groups and to a multiple of 32
    (so that every row of packed codes starts on a byte boundary, whatever the bit width).
    ``group_size`` is 16 (NVFP4), a multiple of 32, or 0 (per channel)."""
    if group_size < 0 or (group_size % 32 and group_size != 16):
        raise ValueError(f"group_size={group_size}: 16, a multiple of 32, or 0 per channel")
    unit = max(group_size, 32)
    return -(-k // unit) * unit


def scheme_constants(wtype: tv.DType, zero_point: bool,
                     scale_type: tv.DType | None = None) -> dict[str, Any]:
    """The quantize kernel's constants for ``wtype`` (see the module docstring); ``scale_type``
    a block scale type (``f8e8m0fnu``: MX, ``f8e4m3fn``: NVFP4) or None."""
    if scale_type is not None and scale_type.name == "f8e8m0fnu":
        emax = int(np.floor(np.log2(wtype.max)))  # exact: the largest value's exponent
        return {"is_float": True, "has_zeros": False, "levels": 1.0, "zero": 0.0,
                "code_min": 0.0, "mx_emax": emax}
    if wtype.kind == "float":
        if zero_point:
            raise ValueError(f"zero_point=True: {wtype.name} weights have no zero points "
                             "(integer types only)")
        return {"is_float": True, "has_zeros": False, "levels": float(wtype.max), "zero": 0.0,
                "code_min": 0.0}
    bits = wtype.nbits
    levels = float(2 ** bits - 1) if zero_point else float(max(2 ** (bits - 1) - 1, 1))
    return {"is_float": False, "has_zeros": zero_point, "levels": levels,
            "zero": implicit_zero(wtype), "code_min": float(wtype.min)}


class QuantizedWeights:
    """What :func:`quantize_weights` returns: ``codes`` (n × kp, packed), ``scales``
    (n × groups), ``zeros`` (n × groups, packed) or None, and the parameters."""

    def __init__(self, codes: Any, scales: Any, zeros: Any, wtype: tv.DType, group_size: int,
                 in_features: int) -> None:
        self.codes, self.scales, self.zeros = codes, scales, zeros
        self.wtype, self.group_size, self.in_features = wtype, group_size, in_features

    def dequantize(self) -> np.ndarray:
        """The weights these codes stand for, ``(q − z) · s`` in float64 (n × in_features)."""
        return dequantized(self.codes.bits(), np.asarray(self.scales),
                           None if self.zeros is None else self.zeros.bits(), self.wtype,
                           self.group_size, self.in_features)


def dequantized(codes: np.ndarray, scales: np.ndarray, zeros: np.ndarray | None,
                wtype: tv.DType, group_size: int, in_features: int) -> np.ndarray:
    """``(q − z) · s`` in float64 (n × in_features) from the bit patterns ``codes`` (n × kp) of
    ``wtype``, the scales (n × groups, any float type) and the zero points' bit patterns (n ×
    groups) or None (the implicit zero point: :func:`~tilevm.kernels.quant_linear.implicit_zero`);
    ``group_size`` 0 is one scale per row."""
    from tilevm.kernels.quant_linear import implicit_zero

    kp = codes.shape[1]
    values = wtype.decode(np.asarray(codes).astype(np.int64))
    per_group = group_size or kp
    s = np.asarray(scales).astype(np.float64)
    z = (np.full(s.shape, implicit_zero(wtype)) if zeros is None
         else wtype.decode(np.asarray(zeros).astype(np.int64)))
    weight = (values - np.repeat(z, per_group, axis=1)[:, :kp]) * np.repeat(
        s, per_group, axis=1)[:, :kp]
    return np.ascontiguousarray(weight[:, :in_features])


def quantize_weights(weight: Any, wtype: str | tv.DType, group_size: int = 128, *,
                     zero_point: bool = False, act_dtype: str | tv.DType = "f16",
                     scale_dtype: str | tv.DType | None = None, device: str | None = None,
                     **tiles: int) -> QuantizedWeights:
    """Quantize a float weight matrix (n × k, a numpy array; converted to float32) on the host.

    Returns :class:`QuantizedWeights` with HostTensors of ``wtype`` codes (k padded to
    :func:`padded_k`), scales (a numpy array of ``act_dtype``, or of ``scale_dtype`` for the
    block-scaled formats) and zero points when ``zero_point``. ``group_size=0`` is one scale
    per row. Raises ValueError for an unknown type, zero points of a float type, a group size
    that is not 16 or a multiple of 32, or a block format that does not exist."""
    wt = weight_dtype(wtype)
    at = activation_dtype(act_dtype)
    block = None if scale_dtype is None else tv.dtype(scale_dtype) if isinstance(
        scale_dtype, str) else scale_dtype
    if block is not None:
        if block.name not in BLOCK_SCALES:
            raise ValueError(f"scale_dtype={block.name}: the block scale types are "
                             f"{', '.join(BLOCK_SCALES)}")
        check_block_format(wt, block, group_size)
        if zero_point:
            raise ValueError("zero_point=True: block-scaled weights have no zero points")
    weight = np.ascontiguousarray(np.asarray(weight, dtype=np.float32))
    if weight.ndim != 2:
        raise ValueError(f"weight: a matrix (out_features, in_features), got shape "
                         f"{weight.shape}")
    n, k = weight.shape
    kp = padded_k(k, group_size)
    groups = kp // group_size if group_size else 1
    codes = tv.HostTensor.empty((n, kp), wt)
    scales = np.zeros((n, groups), (block or at).ml_dtype)
    constants = scheme_constants(wt, zero_point, block)
    if group_size % 32:
        tiles = {"bk": 16, **tiles}
    zeros = tv.HostTensor.empty((n, groups) if zero_point else (1, 1), wt)
    quantize_kernel(weight, codes, scales, zeros, device=device, group=group_size,
                    **constants, **tiles)
    return QuantizedWeights(codes, scales, zeros if zero_point else None, wt, group_size, k)

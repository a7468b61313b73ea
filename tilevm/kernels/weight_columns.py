"""A range of columns of a low-bit layer's weights, dequantized to the activation type: the
weights the GEMMs multiply by, bit for bit, as a matrix.

``W[:, first : first + cols]`` (n × cols) in ``A``: each weight ``(q − z) · s`` rounded once
(block-scaled formats: ``q · s`` in f32, exact, then rounded once), made by the helpers that
dequantize a step in the GEMMs themselves — :func:`tilevm.kernels.quant_linear.weight_step`
for dense codes, :func:`tilevm.kernels.prepared_linear.step_weights` for prepared weights —
and stored. It is memory-bound work (a read of the codes and a write of W), which is what a
layer's backward needs (``grad_x = grad_y · W``, a slice of W at a time) without a GEMM.
"""

from __future__ import annotations

from typing import Any

import tilevm as tv
from tilevm import i32, u32
from tilevm.kernels.prepared_layouts import CHUNK_N
from tilevm.kernels.prepared_linear import step_group, step_weights
from tilevm.kernels.prepared_weights import CHUNK_WIDTHS
from tilevm.kernels.quant_linear import (
    BLOCK_SCALES,
    DEFAULT_TILES,
    check_block_format,
    dtype_of,
    group_step,
    implicit_zero,
    stand_in_like,
    weight_step,
)

__all__ = ["COLUMN_ALIGNMENT", "dense_weight_columns", "launch_dense_weight_columns",
           "launch_prepared_weight_columns", "prepared_weight_columns"]

A = tv.Dtype("A")  # the activation type: f16 or bf16
W = tv.Dtype("W")  # the weight codes' type
S = tv.Dtype("S")  # the scales' type: A, or a block scale type

COLUMN_ALIGNMENT = max(CHUNK_WIDTHS)
"""The first column of a range is a multiple of this (128: every step width of both formats
divides it)."""


@tv.kernel
def dense_weight_columns(w: tv.Global[W, "n", "kp"], scales: tv.Global[S, "n", "groups"],
                         zeros: tv.Global[W, "zero_rows", "zero_groups"],
                         out: tv.Global[A, "n", "cols"], first: tv.Scalar[i32],
                         *, group: tv.Const, zero: tv.Const = 0.0,
                         has_zeros: tv.Const = False, block_scaled: tv.Const = False,
                         bn: tv.Const = 64, bk: tv.Const = 32, warps: tv.Const = 4):
    """``out = W[:, first : first + cols]`` from dense codes, scales and zero points (the
    operands of :func:`~tilevm.kernels.quant_linear.quant_linear_kernel`, with its constants);
    ``first`` a multiple of ``bk``."""
    tv.launch(grid=(tv.cdiv(n, bn), tv.cdiv(cols, bk)), warps=warps)
    j, s = tv.block_idx()
    k0 = first + s * bk
    weights = weight_step(w, j * bn, k0, scales, zeros, j * bn, k0, A, group, zero, has_zeros,
                          block_scaled, bn, bk)
    tv.store(out, weights, (j * bn, s * bk))


@tv.kernel
def prepared_weight_columns(wp: tv.Global[u32, "nc", "kc", "lw"],
                            sp: tv.Global[u32, "nc", "groups", "sw"],
                            zp: tv.Global[u32, "zc", "zg", "zw"],
                            out: tv.Global[A, "n", "cols"], first: tv.Scalar[i32],
                            *, wtype: tv.Const, stype: tv.Const, group: tv.Const, bk: tv.Const,
                            zero: tv.Const = 0.0, has_zeros: tv.Const = False,
                            block_scaled: tv.Const = False, warps: tv.Const = 4):
    """``out = W[:, first · bk : first · bk + cols]`` from prepared weights (the operands and
    constants of :func:`~tilevm.kernels.prepared_linear.prepared_linear_split_k`): ``first``
    counts steps of ``bk`` columns."""
    tv.launch(grid=(tv.cdiv(n, warps * CHUNK_N), tv.cdiv(cols, bk)), warps=warps)
    j, s = tv.block_idx()
    step = first + s
    weights = step_weights(wp, (j * warps, step, 0), sp, zp,
                           (j * warps, step_group(step, bk, group), 0), A, wtype, stype, zero,
                           has_zeros, block_scaled, bk, warps)
    tv.store(out, weights, (j * warps * CHUNK_N, s * bk))


def _check_first(first: int, out: Any) -> None:
    if first < 0 or first % COLUMN_ALIGNMENT:
        raise ValueError(f"first={first}: a non-negative multiple of {COLUMN_ALIGNMENT}")
    if len(out.shape) != 2:
        raise ValueError(f"out: a matrix (n, cols), got shape {tuple(out.shape)}")


def launch_dense_weight_columns(w: Any, scales: Any, out: Any, first: int, *, group_size: int,
                                zeros: Any = None, device: str | None = None) -> None:
    """Write ``W[:, first : first + cols]`` into ``out`` (n × cols, of the activation type)
    for the dense operands of :func:`~tilevm.kernels.quant_linear.launch_quant_linear` (``w``
    and ``zeros`` of the weight type, ``scales`` of the activation or a block scale type,
    ``group_size`` 0 per channel). Raises ValueError for a ``first`` that is negative or not a
    multiple of :data:`COLUMN_ALIGNMENT`, or columns past the codes'."""
    _check_first(first, out)
    wtype, scale_type = dtype_of(w), dtype_of(scales)
    if first + out.shape[1] > w.shape[1]:
        raise ValueError(f"out: columns {first}…{first + out.shape[1]} of codes with "
                         f"{w.shape[1]} columns")
    block_scaled = scale_type.name in BLOCK_SCALES
    if block_scaled:
        check_block_format(wtype, scale_type, group_size)
    dense_weight_columns(
        w, scales, zeros if zeros is not None else stand_in_like(out, wtype, 2), out, first,
        device=device, group=group_size, zero=implicit_zero(wtype),
        has_zeros=zeros is not None, block_scaled=block_scaled,
        bk=group_step(group_size) or DEFAULT_TILES["bk"])


def launch_prepared_weight_columns(weights: Any, out: Any, first: int, *,
                                   device: str | None = None) -> None:
    """Write ``W[:, first : first + cols]`` into ``out`` (n × cols, of ``weights.act``) for
    :class:`~tilevm.kernels.prepared_weights.PreparedWeights`. Raises ValueError for a
    ``first`` that is negative or not a multiple of :data:`COLUMN_ALIGNMENT`, or columns past
    the weights'."""
    _check_first(first, out)
    if first + out.shape[1] > weights.kp or out.shape[0] != weights.n:
        raise ValueError(f"out: rows {out.shape[0]}, columns {first}…{first + out.shape[1]} "
                         f"of weights of {weights.n} rows of {weights.kp} codes")
    zeros = weights.zeros if weights.zeros is not None else stand_in_like(out, u32, 3)
    prepared_weight_columns(
        weights.codes, weights.scales, zeros, out, first // weights.bk, device=device,
        wtype=weights.wtype, stype=weights.scale_type, group=weights.group_size,
        bk=weights.bk, zero=implicit_zero(weights.wtype), has_zeros=weights.zeros is not None,
        block_scaled=weights.block_scaled)

"""Columns of a layer's weights dequantized to the activation type (tilevm/kernels/
weight_columns.py, the backward's W): bit for bit the test's own decoding (quant_reference.py,
float64) rounded once to the activation type by ml_dtypes, from dense codes and from prepared
weights, for ranges that start past column 0 and end inside a step. Called with the default
device, each kernel also runs on the CPU backend against the interpreter (the suite's fixture)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from quant_reference import act_round, dequantize_reference, unpack

import tilevm as tv
from tilevm.kernels.prepared_weights import prepare_linear_weights
from tilevm.kernels.quantize import quantize_weights
from tilevm.kernels.weight_columns import (
    launch_dense_weight_columns,
    launch_prepared_weight_columns,
)

N, K = 136, 224  # N not a whole number of 32-row chunks, K not of 128-column ranges

FORMATS = [  # wtype, group, zero point, block scale type, activations
    ("i4", 32, True, None, "bf16"),
    ("u3", 0, False, None, "f16"),  # prepared in steps of 128
    ("f4e2m1", 32, False, "f8e8m0fnu", "f16"),  # MXFP4
    ("f4e2m1", 16, False, "f8e4m3fn", "bf16"),  # NVFP4: steps of 16
]


def _quantized(wtype: str, group: int, zero_point: bool, scale_dtype: str | None, act: str):
    rng = np.random.default_rng(3)
    weights = (rng.standard_normal((N, K)) * 0.1).astype(np.float32)
    q = quantize_weights(weights, wtype, group, zero_point=zero_point, scale_dtype=scale_dtype,
                         act_dtype=act)
    nbits = tv.dtype(wtype).nbits
    codes = unpack(q.codes.data, nbits, q.codes.shape)
    zero_codes = None if q.zeros is None else unpack(q.zeros.data, nbits, q.zeros.shape)
    exact = dequantize_reference(codes, np.asarray(q.scales), zero_codes, wtype, group, K)
    return q, act_round(exact, act).astype(np.float64)


def _empty(rows: int, cols: int, act: str) -> np.ndarray:
    return np.zeros((rows, cols), ml_dtypes.bfloat16 if act == "bf16" else np.float16)


@pytest.mark.parametrize("wtype, group, zero_point, scale_dtype, act", FORMATS)
def test_columns_are_the_weights_rounded_once(wtype, group, zero_point, scale_dtype, act):
    q, want = _quantized(wtype, group, zero_point, scale_dtype, act)
    prepared = prepare_linear_weights(q.codes, q.scales, q.zeros, act=act, group_size=group)
    for first, stop in ((0, 128), (128, K)):
        dense = _empty(N, stop - first, act)
        launch_dense_weight_columns(q.codes, q.scales, dense, first, group_size=group,
                                    zeros=q.zeros)
        np.testing.assert_array_equal(dense.astype(np.float64), want[:, first:stop])
        from_prepared = _empty(N, stop - first, act)
        launch_prepared_weight_columns(prepared, from_prepared, first)
        np.testing.assert_array_equal(from_prepared.astype(np.float64), want[:, first:stop])


def test_ranges_outside_the_weights_or_off_alignment_are_errors():
    q, _ = _quantized("u4", 32, False, None, "f16")
    prepared = prepare_linear_weights(q.codes, q.scales, act="f16", group_size=32)
    with pytest.raises(ValueError, match="first=32: a non-negative multiple of 128"):
        launch_dense_weight_columns(q.codes, q.scales, _empty(N, 32, "f16"), 32, group_size=32)
    with pytest.raises(ValueError, match="first=-128"):
        launch_prepared_weight_columns(prepared, _empty(N, 32, "f16"), -128)
    with pytest.raises(ValueError, match="out: columns 128…384 of codes with 224 columns"):
        launch_dense_weight_columns(q.codes, q.scales, _empty(N, 256, "f16"), 128,
                                    group_size=32)
    with pytest.raises(ValueError, match="out: rows 8"):
        launch_prepared_weight_columns(prepared, _empty(8, 32, "f16"), 0)
    with pytest.raises(ValueError, match="out: a matrix"):
        launch_prepared_weight_columns(prepared, np.zeros(32, np.float16), 0)

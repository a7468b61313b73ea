"""The prefill variant of the quantized linear kernel (issue 14, item 1): x and the weight codes
through shared memory in a multi-stage ``cp.async`` pipeline. Called with the default device each
case also runs on the interpreter and, through the suite's autouse fixture, on the CPU backend bit
for bit, and compiles for sm_80 and sm_90 with no spills; the result is checked against float64
on weights dequantized by the test's own decoder (quant_reference.py) under the accuracy rule."""

from __future__ import annotations

import numpy as np
import pytest
from quant_reference import accuracy_bound, dequantize_reference, linear_references, unpack

from tilevm.kernels.quant_linear import quant_linear_call, quant_linear_prefill
from tilevm.kernels.quantize import quantize_weights


@pytest.mark.parametrize("wtype, group, zero_point, scale_dtype, m, k, stages", [
    ("u4", 32, False, None, 100, 224, 3),      # more steps than stages
    ("u3", 16, True, None, 40, 200, 2),        # 6-byte rows of codes; k padded
    ("f4e2m1fn", 32, False, "f8e8m0fnu", 70, 96, 4),  # as many steps as the pipeline holds
    ("i5", 0, False, None, 33, 64, 3),         # per channel; fewer steps than stages
])
def test_prefill_matches_float64_under_the_accuracy_rule(wtype, group, zero_point, scale_dtype,
                                                         m, k, stages):
    n = 72
    rng = np.random.default_rng(stages)
    weights = (rng.standard_normal((n, k)) * 0.1).astype(np.float32)
    q = quantize_weights(weights, wtype, group, zero_point=zero_point, scale_dtype=scale_dtype)
    kp = q.codes.shape[1]
    codes = unpack(q.codes.data, q.wtype.nbits, (n, kp))
    zeros = None if q.zeros is None else unpack(q.zeros.data, q.wtype.nbits, q.zeros.shape)
    w = dequantize_reference(codes, np.asarray(q.scales), zeros, wtype, group, k)
    x = rng.standard_normal((m, k)).astype(np.float16)
    bias = rng.standard_normal(n).astype(np.float16)
    y = np.zeros((m, n), np.float16)
    args, constants = quant_linear_call(x, q.codes, q.scales, y, group_size=group,
                                        zeros=q.zeros, bias=bias, bm=64, bn=64)
    quant_linear_prefill(*args, stages=stages, **constants)
    ref, base = linear_references(x, w, bias, "f16")
    error = float(np.max(np.abs(y.astype(np.float64) - ref)))
    assert 0 < error <= accuracy_bound(ref, base, "f16")

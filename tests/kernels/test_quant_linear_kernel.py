"""The quantized linear kernel and the quantization kernel, called directly on numpy arrays.

Called with the default device, each kernel also runs on the interpreter and must agree with
the CPU backend bit for bit (tests/conftest.py); the results are checked against references
computed here from the formats' definitions (quant_reference.py): the quantization's codes,
scales and zero points exactly, the product under the accuracy rule.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from quant_reference import (
    accuracy_bound,
    dequantize_reference,
    linear_references,
    quantize_reference,
    unpack,
)

import tilevm as tv
from tilevm.kernels.quant_linear import (
    TUNING_SPACE,
    WEIGHT_TYPES,
    launch_quant_linear,
    quant_linear_kernel,
    quant_linear_tuned,
    weight_dtype,
)
from tilevm.kernels.quantize import (
    padded_k,
    quantize_kernel,
    quantize_weights,
    scheme_constants,
)

NUMPY_ACT = {"f16": np.float16, "bf16": ml_dtypes.bfloat16}


def weights(n: int, k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n, k)).astype(np.float32) * rng.uniform(0.01, 3, (n, 1)).astype(
        np.float32)
    w[1, :] = 0  # an all-zero row: its scales are 0 and its codes the zero point's
    w[2, 5] = 40.0  # an outlier
    return w


def unpacked(quantized, wtype: tv.DType):
    n, kp = quantized.codes.shape
    codes = unpack(quantized.codes.data, wtype.nbits, (n, kp))
    zeros = (unpack(quantized.zeros.data, wtype.nbits, quantized.scales.shape)
             if quantized.zeros is not None else None)
    return codes, zeros


@pytest.mark.parametrize("wtype, group, zero_point, act, k", [
    ("u3", 64, True, "f16", 200),  # k not a multiple of the group: padded to 256
    ("f6e3m2fn", 0, False, "bf16", 96),  # per channel
    ("i4", 32, False, "f16", 72),
])
def test_quantize_then_multiply_on_the_interpreter_and_the_cpu_backend(wtype, group,
                                                                         zero_point, act, k):
    n, m = 40, 19
    wt = weight_dtype(wtype)
    w = weights(n, k, seed=k)
    quantized = quantize_weights(w, wtype, group, zero_point=zero_point, act_dtype=act)
    assert quantized.codes.shape == (n, padded_k(k, group))
    codes, zeros = unpacked(quantized, wt)
    want_codes, want_scales, want_zeros = quantize_reference(w, wtype, group, zero_point, act)
    np.testing.assert_array_equal(quantized.scales.astype(np.float32),
                                  want_scales.astype(np.float32))
    w_deq = dequantize_reference(codes, quantized.scales, zeros, wtype, group, k)
    np.testing.assert_array_equal(
        w_deq, dequantize_reference(want_codes, want_scales, want_zeros, wtype, group, k))
    if zero_point:
        np.testing.assert_array_equal(zeros, want_zeros)
    assert np.all(w_deq[1] == 0)

    rng = np.random.default_rng(m)
    x = rng.standard_normal((m, k)).astype(NUMPY_ACT[act])
    bias = rng.standard_normal(n).astype(NUMPY_ACT[act])
    y = np.zeros((m, n), NUMPY_ACT[act])
    launch_quant_linear(x, quantized.codes, quantized.scales, y, group_size=group,
                        zeros=quantized.zeros, bias=bias)
    ref, base = linear_references(x, w_deq, bias, act)
    assert np.max(np.abs(y.astype(np.float64) - ref)) <= accuracy_bound(ref, base, act)


def test_every_weight_type_of_the_layer_is_accepted_and_others_are_refused():
    assert {weight_dtype(name).name for name in WEIGHT_TYPES} == set(WEIGHT_TYPES)
    for name, message in [("u16", "1 to 8 bits"), ("e8m0", "f8e8m0fnu"), ("f16", "1 to 8")]:
        with pytest.raises(ValueError, match=message):
            weight_dtype(name)


def test_launch_errors_name_the_argument():
    x = np.zeros((2, 64), np.float16)
    w = tv.HostTensor.empty((8, 64), "f4e2m1")
    scales = np.zeros((8, 2), np.float16)
    y = np.zeros((2, 8), np.float16)
    with pytest.raises(ValueError, match="zeros"):
        launch_quant_linear(x, w, scales, y, group_size=32,
                            zeros=tv.HostTensor.empty((8, 2), "f4e2m1"))
    with pytest.raises(ValueError, match="not a multiple of the tile step"):
        launch_quant_linear(x, w, scales, y, group_size=24)
    with pytest.raises(ValueError, match="group_size=48"):
        padded_k(64, 48)
    with pytest.raises(ValueError, match="groups of 32"):
        launch_quant_linear(x, w, np.zeros((8, 4), tv.f8e8m0fnu.ml_dtype), y, group_size=16)


@pytest.fixture(scope="module")
def u4_problem():
    w = weights(72, 160, seed=3)
    quantized = quantize_weights(w, "u4", 32, zero_point=True, device="cpu")
    codes, zeros = unpacked(quantized, tv.u4)
    w_deq = dequantize_reference(codes, quantized.scales, zeros, "u4", 32, 160)
    x = np.random.default_rng(0).standard_normal((37, 160)).astype(np.float16)
    ref, base = linear_references(x, w_deq, None, "f16")
    return quantized, x, ref, base


@pytest.mark.parametrize("variant, tiles", [
    ("general", {"bm": 64, "bn": 32, "bk": 16, "warps": 8}),
    ("general", {"bm": 32, "bn": 128, "bk": 32, "warps": 4}),
    ("prefill", {"bm": 128, "bn": 64, "bk": 32, "warps": 8, "stages": 4}),
])
def test_other_tiles_of_the_tuning_space(u4_problem, variant, tiles):
    quantized, x, ref, base = u4_problem
    y = np.zeros(ref.shape, np.float16)
    launch_quant_linear(x, quantized.codes, quantized.scales, y, group_size=32,
                        zeros=quantized.zeros, device="cpu", variant=variant, **tiles)
    assert np.max(np.abs(y.astype(np.float64) - ref)) <= accuracy_bound(ref, base, "f16")


def test_the_autotuned_kernel_runs_with_the_heuristics_choice(u4_problem):
    quantized, x, ref, base = u4_problem
    y = np.zeros(ref.shape, np.float16)
    launch_quant_linear(x, quantized.codes, quantized.scales, y, group_size=32,
                        zeros=quantized.zeros, device="cpu", tuned=True, variant="general")
    assert quant_linear_tuned.last_choice.source == "heuristic"
    assert set(quant_linear_tuned.last_choice.config) == set(TUNING_SPACE)
    assert np.max(np.abs(y.astype(np.float64) - ref)) <= accuracy_bound(ref, base, "f16")


def test_the_kernels_import_without_torch():
    code = ("import sys, tilevm.kernels.quant_linear, tilevm.kernels.quantize, "
            "tilevm.kernels.quantized_checkpoints; assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


@pytest.mark.parametrize("target", ["sm_80", "sm_90"])
def test_the_kernels_compile_for_the_gpu_without_spills(target):
    builds = [
        (quant_linear_kernel, dict(A=tv.f16, W=tv.u4, S=tv.f16, group=128, zero=8.0,
                                   has_zeros=True, has_bias=True)),
        (quant_linear_kernel, dict(A=tv.bf16, W=tv.u3, S=tv.bf16, group=0, zero=4.0)),
        (quant_linear_kernel, dict(A=tv.bf16, W=tv.f4e2m1fn, S=tv.f8e8m0fnu, group=32,
                                   block_scaled=True, bm=64, bn=128, warps=8)),
        (quant_linear_kernel, dict(A=tv.f16, W=tv.f4e2m1fn, S=tv.f8e4m3fn, group=16,
                                   block_scaled=True, bk=16)),
        (quantize_kernel, dict(A=tv.f16, W=tv.i5, group=64, **scheme_constants(tv.i5, True))),
        (quantize_kernel, dict(A=tv.f8e8m0fnu, W=tv.f6e3m2fn, group=32,
                               **scheme_constants(tv.f6e3m2fn, False, tv.f8e8m0fnu))),
    ]
    for kernel, constants in builds:
        resources = tv.compile(kernel, target, spec="aligned", **constants).resources
        assert resources.spills == 0 and resources.stack == 0, (constants, resources)

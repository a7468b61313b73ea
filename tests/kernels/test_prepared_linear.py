"""The low-bit linear layer on prepared weights (issue 14, items 1 and 2): the decode (split-K)
and prefill (cp.async pipeline) kernels of tilevm/kernels/prepared_linear.py.

The weights are prepared here by the numpy reference of the byte layout
(``weight_preparation.prepare_weights``), and once end to end by the DSL preparation
(``prepared_weights.prepare_linear_weights``, tested byte for byte against that reference in
test_prepared_weights_dsl.py); the expected results
come from the test's own decoder (quant_reference.py) in float64 under the accuracy rule: a
wrong byte order, permutation or scale placement gives a wrong product. Called with the default
device, each kernel also runs on the interpreter and, through the suite's autouse fixture, on the
CPU backend and compiles for sm_80 and sm_90 with no spills."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from quant_reference import (
    accuracy_bound,
    code_values,
    dequantize_reference,
    linear_references,
    unpack,
)

import tilevm as tv
from tilevm.kernels.prepared_layouts import chunk_layout, chunk_words, value_layout, value_words
from tilevm.kernels.prepared_linear import (
    launch_prepared_linear,
    prepared_linear_prefill,
    prepared_linear_split_k,
)
from tilevm.kernels.prepared_weights import default_chunk_k, prepare_linear_weights
from tilevm.kernels.quant_linear import implicit_zero
from tilevm.kernels.quantize import quantize_weights
from tilevm.kernels.weight_preparation import prepare_weights

N, K = 136, 224  # N not a whole number of 32-row chunks


def _chunks(bits: np.ndarray, nbits: int, layout: tv.RegisterLayout, per_lane: int,
            steps: int) -> np.ndarray:
    """``bits`` (rows × columns of ``nbits``-bit patterns) padded with zeros to whole chunks and
    prepared by the numpy reference: (chunks, steps, per_lane) u32."""
    rows = -(-bits.shape[0] // 32) * 32
    cols = steps * layout.shape[1]
    padded = np.zeros((rows, cols), np.int64)
    padded[:bits.shape[0], :bits.shape[1]] = bits
    return prepare_weights(padded, tv.u32 if nbits == 32 else _uint(nbits), layout).reshape(
        rows // 32, steps, per_lane)


def _uint(nbits: int) -> tv.DType:
    return tv.dtype(f"u{nbits}")


def _prepared(wtype: str, act: str, group: int, zero_point: bool, scale_dtype: str | None,
              bk: int, seed: int) -> tuple:
    """The prepared tensors of quantized random weights, the scale type and the float64
    dequantized weights."""
    rng = np.random.default_rng(seed)
    weights = (rng.standard_normal((N, K)) * 0.1).astype(np.float32)
    q = quantize_weights(weights, wtype, group, zero_point=zero_point, scale_dtype=scale_dtype,
                         act_dtype=_act_name(act))
    wt = tv.dtype(wtype)
    kp = q.codes.shape[1]
    codes = unpack(q.codes.data, wt.nbits, (N, kp))
    zero_codes = None if q.zeros is None else unpack(q.zeros.data, wt.nbits, q.zeros.shape)
    w = dequantize_reference(codes, np.asarray(q.scales), zero_codes, wtype, group, K)
    steps = -(-kp // bk)
    code_layout = tv.fast_cast_layout(chunk_layout(bk), wt, _act_name(act))
    wp = _chunks(codes, wt.nbits, code_layout, 32 * chunk_words(bk, wt.nbits), steps)
    scales = np.asarray(q.scales)
    stype = tv.dtype(_act_name(act) if scale_dtype is None else scale_dtype)
    scale_bits = scales.view(np.uint8 if stype.nbits == 8 else np.uint16).astype(np.int64)
    groups = scales.shape[1]
    sp = _chunks(scale_bits, stype.nbits, value_layout(32, 1), 8 * value_words(stype.nbits),
                 groups)
    if zero_codes is None:
        zp = np.zeros((1, 1, 1), np.uint32)
    else:  # zero points as activation values: the test's decoder, rounded by ml_dtypes (exact)
        zero_values = code_values(wtype)[zero_codes].astype(
            ml_dtypes.bfloat16 if act == "bfloat16" else np.float16)
        zp = _chunks(zero_values.view(np.uint16).astype(np.int64), 16, value_layout(32, 1),
                     8 * value_words(16), groups)
    return wp, sp, zp, stype, w


def _act_name(act: str) -> str:
    return "f16" if act == "float16" else "bf16"


@pytest.mark.parametrize("variant, wtype, act, group, zero_point, scale_dtype, bk, m, tiles", [
    ("split_k", "u4", "float16", 32, False, None, 32, 1, {"warps": 1, "split": 2}),
    ("split_k", "i3", "float16", 32, True, None, 32, 3, {"warps": 2, "split": 3}),
    ("split_k", "f4e2m1fn", "float16", 32, False, "f8e8m0fnu", 32, 5,
     {"warps": 4, "split": 2, "deterministic": True}),
    ("split_k", "u8", "bfloat16", 0, False, None, 64, 16, {"warps": 2, "split": 2}),
    # 4 steps split 16 ways: 12 parts without a step, whose step-ahead loads all lie past K
    ("split_k", "u2", "float16", 128, False, None, 64, 2, {"warps": 2, "split": 16}),
    ("prefill", "u4", "float16", 128, True, None, 128, 40, {"bm": 32, "warps": 2, "stages": 3}),
    ("prefill", "u5", "bfloat16", 64, False, None, 64, 17, {"bm": 16, "warps": 1, "stages": 2}),
    ("prefill", "f6e3m2fn", "float16", 32, False, None, 32, 33,
     {"bm": 16, "warps": 2, "stages": 4}),
])
def test_prepared_linear_matches_float64_under_the_accuracy_rule(variant, wtype, act, group,
                                                                 zero_point, scale_dtype, bk,
                                                                 m, tiles):
    wp, sp, zp, stype, w = _prepared(wtype, act, group, zero_point, scale_dtype, bk,
                                        seed=m)
    rng = np.random.default_rng(100 + m)
    dt = ml_dtypes.bfloat16 if act == "bfloat16" else np.float16
    x = rng.standard_normal((m, K)).astype(dt)
    bias = rng.standard_normal(N).astype(dt)
    y = np.zeros((m, N), dt)
    kernel = prepared_linear_split_k if variant == "split_k" else prepared_linear_prefill
    wt = tv.dtype(wtype)
    kernel(x, wp, sp, zp, bias, y, wtype=wt, stype=stype, group=group, bk=bk,
           zero=implicit_zero(wt), has_zeros=zero_point, has_bias=True,
           block_scaled=scale_dtype is not None, **tiles)
    _assert_within_the_accuracy_rule(y, x, w, bias, _act_name(act))


def _assert_within_the_accuracy_rule(y: np.ndarray, x: np.ndarray, w: np.ndarray,
                                     bias: np.ndarray | None, act: str) -> None:
    ref, base = linear_references(x, w, bias, act)
    error = float(np.max(np.abs(y.astype(np.float64) - ref)))
    assert 0 < error <= accuracy_bound(ref, base, act)


@pytest.mark.parametrize("wtype, group, zero_point, m",
                         [("u4", 128, True, 2), ("i3", 0, False, 24), ("u3", 128, False, 20)])
def test_dsl_prepared_weights_reach_the_same_product(wtype, group, zero_point, m):
    """Quantization, the DSL preparation and the layer call end to end, on the variant the call
    chooses (split-K for 2 rows, the prefill pipeline for 20 and 24). 3-bit weights in groups of
    128 take steps of 128 codes: 128 weights, three 16-byte vectors, per lane and step, their
    dequantization in rolled loops (the CPU backend's JIT stays small)."""
    assert wtype != "u3" or default_chunk_k(tv.u3, group) == 128
    rng = np.random.default_rng(7)
    weights = (rng.standard_normal((N, K)) * 0.1).astype(np.float32)
    q = quantize_weights(weights, wtype, group, zero_point=zero_point)
    prepared = prepare_linear_weights(q.codes, np.asarray(q.scales), q.zeros, act="f16",
                                      group_size=group)
    bits = tv.dtype(wtype).nbits
    codes = unpack(q.codes.data, bits, q.codes.shape)
    zero_codes = None if q.zeros is None else unpack(q.zeros.data, bits, q.zeros.shape)
    w = dequantize_reference(codes, np.asarray(q.scales), zero_codes, wtype, group, K)
    x = rng.standard_normal((m, K)).astype(np.float16)
    y = np.zeros((m, N), np.float16)
    launch_prepared_linear(x, prepared, y)
    _assert_within_the_accuracy_rule(y, x, w, None, "f16")


def test_nvfp4_weights_take_steps_of_16():
    """NVFP4 (f4e2m1 codes, an e4m3 scale per 16): prepared in chunks 16 codes wide, one scale
    group per step, 8 bytes per lane; both variants against float64."""
    rng = np.random.default_rng(16)
    weights = (rng.standard_normal((N, K)) * 0.1).astype(np.float32)
    q = quantize_weights(weights, "f4e2m1fn", 16, scale_dtype="f8e4m3fn")
    prepared = prepare_linear_weights(q.codes, np.asarray(q.scales), act="f16", group_size=16)
    assert prepared.bk == 16 == default_chunk_k(tv.f4e2m1fn, 16)
    w = dequantize_reference(unpack(q.codes.data, 4, q.codes.shape), np.asarray(q.scales), None,
                             "f4e2m1fn", 16, K)
    for m in (3, 20):
        x = rng.standard_normal((m, K)).astype(np.float16)
        y = np.zeros((m, N), np.float16)
        launch_prepared_linear(x, prepared, y)
        _assert_within_the_accuracy_rule(y, x, w, None, "f16")

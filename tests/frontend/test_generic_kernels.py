"""Generic kernels (issue 12 item 4): a dtype variable ``tv.Dtype("T")`` in the annotations, bound
at each call to the argument's dtype, so one kernel serves f16 and bf16 without a factory; each
dtype is one specialization. Checked against float64 numpy on the interpreter and — through the
suite's autouse check — on the CPU backend and in cubins for sm_80/sm_90."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import tilevm as tv
from tilevm import f32

T = tv.Dtype("T")


@tv.kernel
def layer_norm(x: tv.Global[T, "m", "n"], w: tv.Global[T, "n"], y: tv.Global[T, "m", "n"],
               eps: tv.Scalar[f32], *, rows: tv.Const = 4, width: tv.Const = 64):
    tv.launch(grid=tv.cdiv(m, rows), warps=4)
    r0 = tv.block_idx() * rows
    t = tv.cast(tv.load(x, (r0, 0), (rows, width)), f32)   # columns past n read 0
    mean = tv.sum(t, 1, keepdims=True) / n                  # n converts to f32
    inside = tv.arange(0, width) < n
    centered = tv.where(inside, t - mean, 0.0)
    var = tv.sum(centered * centered, 1, keepdims=True) / n
    scale = tv.cast(tv.load(w, (0,), (width,)), f32)
    tv.store(y, tv.cast(centered * tv.rsqrt(var + eps) * scale, T), (r0, 0))


def _reference(x, w, eps):
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    mean = x64.mean(1, keepdims=True)
    var = ((x64 - mean) ** 2).mean(1, keepdims=True)
    return (x64 - mean) / np.sqrt(var + eps) * w64


@pytest.mark.parametrize("np_dtype", [np.float16, ml_dtypes.bfloat16], ids=["f16", "bf16"])
def test_one_layer_norm_serves_f16_and_bf16(np_dtype):
    rng = np.random.default_rng(5)
    m, n = 10, 50
    x = (rng.standard_normal((m, n)) * 3 + 1).astype(np_dtype)
    w = rng.uniform(0.5, 1.5, n).astype(np_dtype)
    y = np.zeros((m, n), np_dtype)
    layer_norm(x, w, y, 1e-5)
    ref = _reference(x, w, 1e-5)
    unit = 2.0 ** -11 if np_dtype == np.float16 else 2.0 ** -8
    assert np.max(np.abs(y.astype(np.float64) - ref)) <= 8 * unit * np.max(np.abs(ref))
    dt = tv.f16 if np_dtype == np.float16 else tv.bf16
    assert dict(layer_norm.ir(T=dt).constants)["T"] == dt  # one specialization per dtype


def test_arguments_that_disagree_on_a_dtype_variable_are_named():
    x = np.zeros((4, 64), np.float16)
    with pytest.raises(TypeError, match="dtype variable 'T' is f16 from argument 'x' but bf16 "
                                        "from argument 'w'"):
        layer_norm(x, np.zeros(64, ml_dtypes.bfloat16), np.zeros((4, 64), np.float16), 1e-5)


def test_an_unbound_dtype_variable_is_a_diagnostic_at_the_annotation():
    with pytest.raises(tv.CompileError, match="dtype variable 'T' of 'x' is not bound"):
        layer_norm.ir()


def test_compiling_with_example_arguments_binds_the_dtype_variables():
    """``tilevm.compile(kernel, target, spec=args)`` binds T from the arguments as a call does
    (and an explicit T wins): the cubins for bf16 arguments and for T=bf16 are the same."""
    x = np.zeros((8, 64), ml_dtypes.bfloat16)
    w = np.zeros(64, ml_dtypes.bfloat16)
    args = (x, w, x.copy(), np.float32(1e-5))
    bound = tv.compile(layer_norm, "sm_90", spec=args)
    named = tv.compile(layer_norm, "sm_90", spec=args, T=tv.bf16)
    assert bound.cubin == named.cubin
    assert dict(bound.source_ir.constants)["T"] == tv.bf16

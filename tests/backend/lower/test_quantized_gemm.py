"""Weight-only quantized GEMMs (y = x · Wᵀ with W of 2 to 8 bits, integer or float, and per-group
f16 scales) through the tensor-core lowering.

Each kernel runs with the default device, so the suite's fixture (tests/conftest.py) also runs it
on the interpreter and compares bit for bit (dequantization is exact class, the dot is exact per
K-chunk on both) and compiles it for sm_80 and sm_90 without spills. The test itself checks the
result against float64: W dequantized by the type's own decoding (``DType.decode``), rounded once
to f16 as the kernel's ``(q − z) · s`` is, then multiplied in float64.
"""

from __future__ import annotations

import numpy as np
import pytest

import tilevm as tv
from tilevm import f16, f32

WEIGHT_TYPES = ["u2", "u3", "u4", "u5", "u6", "u8", "i4", "f4e2m1fn", "f6e3m2fn", "f8e4m3fn"]


def make_gemm(name: str):
    wdt = tv.dtype(name)

    @tv.kernel
    def wxa16(x: tv.Global[f16, "m", "k"], w: tv.Global[wdt, "n", "k"],
              scales: tv.Global[f16, "n", "groups"], y: tv.Global[f16, "m", "n"],
              *, bm: tv.Const = 32, bn: tv.Const = 32, group: tv.Const = 32,
              zero: tv.Const = 0.0):
        tv.launch(grid=(tv.cdiv(m, bm), tv.cdiv(n, bn)), warps=4)
        i, j = tv.block_idx()
        acc = tv.zeros((bm, bn), f32)
        for k0 in tv.range(0, k, group):
            a = tv.load(x, (i * bm, k0), (bm, group))
            q = tv.load(w, (j * bn, k0), (bn, group))
            s = tv.load(scales, (j * bn, k0 // group), (bn, 1))
            weights = (tv.cast(q, f16) - zero) * s
            acc = tv.dot(a, tv.transpose(weights), acc)
        tv.store(y, tv.cast(acc, f16), (i * bm, j * bn))

    return wxa16


@pytest.mark.parametrize("name", WEIGHT_TYPES)
def test_weight_only_gemm_of_every_weight_type(name):
    dt = tv.dtype(name)
    rng = np.random.default_rng(dt.nbits * 31 + len(name))
    m, n, k, group = 32, 32, 64, 32
    codes = rng.integers(0, 1 << dt.nbits, size=(n, k))
    values = dt.decode(codes).astype(np.float64)
    bad = ~np.isfinite(values)
    codes[bad], values[bad] = 0, dt.decode(0)  # NaN codes (f8e4m3fn) make no GEMM
    zero = float(2 ** (dt.nbits - 1)) if dt.kind == "uint" else 0.0
    x = rng.standard_normal((m, k)).astype(np.float16)
    scales = (rng.uniform(0.5, 1.5, size=(n, k // group)) / 4).astype(np.float16)
    y = np.zeros((m, n), np.float16)
    make_gemm(name)(x, tv.HostTensor.from_bits(codes, dt), scales, y, group=group, zero=zero)

    col_scale = np.repeat(scales.astype(np.float64), group, axis=1)
    w16 = ((values - zero) * col_scale).astype(np.float16).astype(np.float64)
    expected = x.astype(np.float64) @ w16.T
    magnitude = np.abs(x.astype(np.float64)) @ np.abs(w16).T
    # f32 accumulation (one rounding per chunk of 16) then one rounding to f16
    bound = 2.0**-11 * np.abs(expected) + 2.0**-20 * magnitude + 2.0**-24
    assert np.all(np.abs(y.astype(np.float64) - expected) <= bound)
